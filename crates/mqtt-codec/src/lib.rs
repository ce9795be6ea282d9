//! The MQTT wire codec: every control packet of MQTT 3.1, 3.1.1 and 5.0, decoded from and encoded
//! to bytes, with nothing else attached.
//!
//! # What it is
//!
//! - **One packet model.** [`Packet`] covers all fifteen control packets of all three versions.
//!   The protocol version is a parameter of decoding and encoding, not a second set of types:
//!   fields that only MQTT 5.0 has (reason codes on acknowledgements, properties) simply keep
//!   their defaults in 3.x.
//! - **A framer with limits first.** [`Decoder`] reads the fixed header, checks the packet type,
//!   the flags and the maximum packet size before buffering anything else, and returns
//!   `Ok(None)` until a whole frame is there.
//! - **`nom` parsers over complete frames**, zero-copy: topic names, payloads, strings, binary
//!   data and user properties are [`bytes::Bytes`] slices of the frame.
//! - **Strict validation.** Every rule of the standards that can be checked on a single packet
//!   is checked. The [`Error`] says which normative statement was broken
//!   ([`Error::statement`]) and which MQTT 5.0 reason code answers it ([`Error::reason_code`]).
//! - **An exact encoder.** [`Packet::encoded_len`] is exactly what [`Packet::encode`] writes;
//!   encoding fails cleanly, writing nothing, when the packet would exceed the maximum packet
//!   size or cannot be expressed in the version.
//! - With the `tokio-codec` feature, `MqttCodec` implements `tokio_util::codec::{Decoder,
//!   Encoder}` for `Framed` transports.
//!
//! # What it is not
//!
//! It has no I/O, no clock and no session state: it does not know which packet identifiers are
//! in flight, resolve topic aliases, enforce "CONNECT only once", or decide whether a packet may
//! travel in the direction it came from. Those belong to the session machines above it.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use mqtt_codec::{Decoder, Packet, ProtocolVersion, Publish, QosPid, PacketId};
//! use mqtt_topic::TopicName;
//!
//! let mut publish = Publish::new(TopicName::try_from("sensors/1/temp")?, "21.5");
//! publish.qos = QosPid::AtLeastOnce(PacketId::new(7).unwrap());
//! let packet = Packet::Publish(publish);
//!
//! let mut wire = BytesMut::new();
//! let written = packet.encode(ProtocolVersion::V5, 1024, &mut wire)?;
//! assert_eq!(written, packet.encoded_len(ProtocolVersion::V5)?);
//!
//! let mut decoder = Decoder::new(ProtocolVersion::V5);
//! assert_eq!(decoder.decode(&mut wire)?, Some(packet));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod decode;
mod decoder;
mod error;
mod packet;
mod properties;
mod reason;
mod types;
mod varint;

#[cfg(feature = "tokio-codec")]
mod codec;
#[cfg(fuzzing)]
pub mod fuzzing;

pub use decoder::{Decoder, MIN_READ_BUFFER, PROTOCOL_MAX_PACKET_SIZE};
pub use error::{Error, Statement};
pub use packet::{
    Auth, ConnAck, Connect, DeliveryProperties, Disconnect, Envelope, FixedHeader, Packet, PubAck,
    PubComp, PubRec, PubRel, Publish, SubAck, Subscribe, Subscription, UnsubAck, Unsubscribe, Will,
};
pub use properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PropertyId, PublishProperties, SubscribeProperties, UnsubscribeProperties, UserProperty,
    WillProperties,
};
pub use reason::ReasonCode;
pub use types::{PacketId, PacketType, PayloadFormat, ProtocolVersion, QosPid, Secret};

#[cfg(feature = "tokio-codec")]
pub use codec::MqttCodec;

/// The topic, string and subscription types the packets are made of, from `mqtt-topic`.
pub use mqtt_topic::{
    Error as TopicError, MqttString, QoS, RetainHandling, SubscriptionId, SubscriptionOptions,
    TopicFilter, TopicName,
};
