//! An async MQTT client on tokio: a cheap-to-clone [`Client`] handle and a background driver
//! task that owns the connection, so nothing has to be polled for the protocol to run.
//!
//! ```no_run
//! use mqtt_client::{Client, ConnectOptions, Event, QoS};
//!
//! # async fn demo() -> Result<(), mqtt_client::Error> {
//! let (client, mut events) = Client::connect(ConnectOptions::from_url("mqtt://localhost")?).await?;
//! client.subscribe([("sensors/+/temperature", QoS::AtLeastOnce)]).await?;
//! client.publish("sensors/7/temperature", "21.5", QoS::AtLeastOnce, false).await?;
//! while let Some(event) = events.recv().await {
//!     if let Event::Message(message) = event {
//!         println!("{} {:?}", message.topic(), message.payload());
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! What it does:
//! - [`Client::publish`] resolves when the server has the message (PUBACK for QoS 1, PUBCOMP
//!   for QoS 2); [`Client::send`] / [`Client::try_send`] queue a message and return an [`Ack`]
//!   to await later, for many messages in flight; the queue is bounded and
//!   [`Client::try_publish`] reports [`Error::QueueFull`] instead of waiting.
//! - Incoming messages and connection events arrive in order on [`Events`] (a
//!   [`futures_core::Stream`]); a full event queue stops reading from the server rather than
//!   dropping messages.
//! - Automatic reconnect with jittered exponential [`Backoff`]. QoS 1 and 2 messages in flight
//!   are sent again (with DUP, in order, when the server kept the session; as new messages
//!   when it did not, after the subscriptions are made again), so nothing acknowledged to the
//!   caller is lost and no QoS 2 message is delivered twice.
//! - MQTT 5.0 by default, 3.1 and 3.1.1 on request ([`ConnectOptions::protocol`]). The 5.0
//!   properties are typed, never raw bytes: CONNECT ([`ConnectOptions::session_expiry_interval`],
//!   [`ConnectOptions::receive_maximum`], [`ConnectOptions::topic_alias_maximum`], user
//!   properties, will properties), CONNACK ([`Event::Connected`]), PUBLISH
//!   ([`OutgoingMessage::properties`], [`Message::properties`]: response topic, correlation
//!   data, user properties, message expiry, subscription identifiers), SUBSCRIBE
//!   ([`Client::subscribe_with`]: no local, retain as published, retain handling, subscription
//!   identifier), DISCONNECT ([`Client::disconnect_with`]). The server's Receive Maximum,
//!   Maximum Packet Size and Server Keep Alive are obeyed and its topic aliases resolved.
//!   Enhanced authentication with SCRAM-SHA-256 ([`ConnectOptions::scram_sha256`],
//!   [`Client::reauthenticate`]). TLS
//!   through rustls ([`TlsOptions`]).
//!
//! The protocol bookkeeping is the sans-IO [`mqtt_session::client::ClientSession`]; this crate
//! is the I/O around it: sockets, TLS, timers and channels.

mod client;
mod driver;
mod error;
mod options;
mod tls;

pub use client::{Ack, Client, Event, Events, Granted, Message, OutgoingMessage};
pub use error::{ConnectionError, Error, connack_return_code};
pub use options::{Backoff, ConnectOptions, DEFAULT_PORT, DEFAULT_TLS_PORT, LastWill};
pub use tls::{TlsError, TlsOptions};

pub use mqtt_codec::{
    ConnAckProperties, ConnectProperties, Disconnect, DisconnectProperties, PayloadFormat,
    ProtocolVersion, PublishProperties, QoS, ReasonCode, RetainHandling, SubscribeProperties,
    Subscription, SubscriptionId, SubscriptionOptions, TopicFilter, TopicName, UserProperty,
    WillProperties,
};

// The handle is meant to be cloned into tasks and threads: keep it so, at compile time.
const _: () = {
    const fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Client>();
};
