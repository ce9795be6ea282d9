//! PUBACK, PUBREC, PUBREL and PUBCOMP (3.4 to 3.7): one shape, four packet types.

use bytes::{BufMut, BytesMut};

use crate::decode::{Cx, PResult, fail, u8};
use crate::{AckProperties, Error, PacketId, PacketType, ProtocolVersion, ReasonCode};

/// The fields the four QoS acknowledgements share.
trait PubAckFields {
    const TYPE: PacketType;
    fn packet_id(&self) -> PacketId;
    fn reason_code(&self) -> ReasonCode;
    fn properties(&self) -> &AckProperties;
}

macro_rules! pub_ack {
    ($(#[$doc:meta])* $name:ident = $ty:ident) => {
        $(#[$doc])*
        ///
        /// In MQTT 3.x only the packet identifier is on the wire; the reason code and properties
        /// are MQTT 5.0 and are left out when encoding for 3.x.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// The packet identifier of the PUBLISH this belongs to.
            pub packet_id: PacketId,
            /// (5.0) The outcome.
            pub reason_code: ReasonCode,
            /// (5.0) Reason string and user properties.
            pub properties: AckProperties,
        }

        impl $name {
            /// A successful acknowledgement without properties.
            pub fn new(packet_id: PacketId) -> Self {
                Self {
                    packet_id,
                    reason_code: ReasonCode::Success,
                    properties: AckProperties::default(),
                }
            }

            pub(crate) fn parse<'a>(input: &'a [u8], cx: &Cx<'_>) -> PResult<'a, Self> {
                let (input, (packet_id, reason_code, properties)) = parse(input, cx)?;
                Ok((input, Self { packet_id, reason_code, properties }))
            }

            pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, Error> {
                body_len(self, version)
            }

            pub(crate) fn put_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
                put_body(self, version, buf)
            }
        }

        impl PubAckFields for $name {
            const TYPE: PacketType = PacketType::$ty;
            fn packet_id(&self) -> PacketId {
                self.packet_id
            }
            fn reason_code(&self) -> ReasonCode {
                self.reason_code
            }
            fn properties(&self) -> &AckProperties {
                &self.properties
            }
        }
    };
}

pub_ack! {
    /// PUBACK: the answer to a QoS 1 PUBLISH.
    PubAck = PubAck
}
pub_ack! {
    /// PUBREC: the first answer to a QoS 2 PUBLISH.
    PubRec = PubRec
}
pub_ack! {
    /// PUBREL: the answer to PUBREC, releasing the QoS 2 message.
    PubRel = PubRel
}
pub_ack! {
    /// PUBCOMP: the answer to PUBREL, completing the QoS 2 exchange.
    PubComp = PubComp
}

/// MQTT 5.0 lets the reason code go when it is Success and there are no properties (Remaining
/// Length 2), and the properties go when there are none (Remaining Length 3).
fn parse<'a>(input: &'a [u8], cx: &Cx<'_>) -> PResult<'a, (PacketId, ReasonCode, AckProperties)> {
    let (input, packet_id) = cx.packet_id(input)?;
    if !cx.version.is_v5() || input.is_empty() {
        let (input, ()) = cx.end(input)?;
        return Ok((
            input,
            (packet_id, ReasonCode::Success, AckProperties::default()),
        ));
    }
    let (input, code) = u8(input)?;
    let Some(reason_code) = ReasonCode::from_u8(code).filter(|c| c.is_allowed_in(cx.packet)) else {
        return fail(Error::InvalidReasonCode {
            packet: cx.packet,
            code,
        });
    };
    let (input, properties) = if input.is_empty() {
        (input, AckProperties::default())
    } else {
        AckProperties::parse(input, cx)?
    };
    let (input, ()) = cx.end(input)?;
    Ok((input, (packet_id, reason_code, properties)))
}

fn body_len<P: PubAckFields>(ack: &P, version: ProtocolVersion) -> Result<usize, Error> {
    if !version.is_v5() {
        return Ok(2);
    }
    if !ack.reason_code().is_allowed_in(P::TYPE) {
        return Err(Error::InvalidReasonCode {
            packet: P::TYPE,
            code: ack.reason_code().get(),
        });
    }
    ack.properties().check()?;
    Ok(match (ack.reason_code(), ack.properties().is_empty()) {
        (ReasonCode::Success, true) => 2,
        (_, true) => 3,
        (_, false) => 3 + ack.properties().wire_len(),
    })
}

fn put_body<P: PubAckFields>(ack: &P, version: ProtocolVersion, buf: &mut BytesMut) {
    buf.put_u16(ack.packet_id().get());
    if !version.is_v5() {
        return;
    }
    let empty = ack.properties().is_empty();
    if ack.reason_code() == ReasonCode::Success && empty {
        return;
    }
    buf.put_u8(ack.reason_code().get());
    if !empty {
        ack.properties().put(buf);
    }
}
