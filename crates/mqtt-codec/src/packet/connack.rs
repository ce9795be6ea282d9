//! CONNACK (3.2).

use bytes::{BufMut, BytesMut};

use crate::decode::{Cx, PResult, fail, u8};
use crate::{ConnAckProperties, Error, PacketType, ProtocolVersion, ReasonCode};

/// The server's answer to CONNECT.
///
/// The outcome is an MQTT 5.0 reason code in every version: the 3.x return codes 0 to 5 map to
/// the reason with the same meaning ([`ReasonCode::to_v3_connack`] has the table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server resumed a stored session (always false before 3.1.1, and on failure).
    pub session_present: bool,
    /// The outcome.
    pub reason_code: ReasonCode,
    /// (5.0) CONNACK properties.
    pub properties: ConnAckProperties,
}

impl ConnAck {
    /// A CONNACK with this outcome, no session, no properties.
    pub fn new(reason_code: ReasonCode) -> Self {
        Self {
            session_present: false,
            reason_code,
            properties: ConnAckProperties::default(),
        }
    }

    pub(crate) fn parse<'a>(input: &'a [u8], cx: &Cx<'_>) -> PResult<'a, Self> {
        let (input, flags) = u8(input)?;
        let (input, code) = u8(input)?;
        // MQTT 3.1 has no session present flag: the byte is unused.
        let session_present = cx.version != ProtocolVersion::V3_1 && flags & 0x01 != 0;
        if cx.version != ProtocolVersion::V3_1 && flags & 0xFE != 0 {
            return fail(Error::ConnAckReservedFlags { flags });
        }
        let reason_code = if cx.version.is_v5() {
            ReasonCode::from_u8(code).filter(|c| c.is_allowed_in(PacketType::ConnAck))
        } else {
            ReasonCode::from_v3_connack(code)
        };
        let Some(reason_code) = reason_code else {
            return fail(Error::InvalidReasonCode {
                packet: PacketType::ConnAck,
                code,
            });
        };
        if session_present && reason_code != ReasonCode::Success {
            return fail(Error::SessionPresentOnFailure);
        }
        let (input, properties) = if cx.version.is_v5() {
            ConnAckProperties::parse(input, cx)?
        } else {
            (input, ConnAckProperties::default())
        };
        let (input, ()) = cx.end(input)?;
        Ok((
            input,
            Self {
                session_present,
                reason_code,
                properties,
            },
        ))
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, Error> {
        if self.session_present && self.reason_code != ReasonCode::Success {
            return Err(Error::SessionPresentOnFailure);
        }
        self.reason_code.check_in(PacketType::ConnAck)?;
        if !version.is_v5() {
            return Ok(2);
        }
        self.properties.check()?;
        Ok(2 + self.properties.wire_len())
    }

    pub(crate) fn put_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        let session_present = self.session_present && version != ProtocolVersion::V3_1;
        buf.put_u8(u8::from(session_present));
        if version.is_v5() {
            buf.put_u8(self.reason_code.get());
            self.properties.put(buf);
        } else {
            buf.put_u8(self.reason_code.to_v3_connack());
        }
    }
}
