//! DISCONNECT and AUTH (3.14, 3.15): a reason code and properties, both omissible.

use bytes::{BufMut, BytesMut};

use crate::decode::{Cx, PResult, fail, u8};
use crate::{AuthProperties, DisconnectProperties, Error, PacketType, ProtocolVersion, ReasonCode};

/// The last packet on a connection, from either side.
///
/// MQTT 3.x DISCONNECT has no body (and is client to server only); the reason code and
/// properties are MQTT 5.0 and are left out when encoding for 3.x.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// (5.0) Why the connection ends (0x00: normal disconnection).
    pub reason_code: ReasonCode,
    /// (5.0) DISCONNECT properties.
    pub properties: DisconnectProperties,
}

/// (5.0 only) A step of enhanced authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// 0x00 success, 0x18 continue authentication, 0x19 re-authenticate.
    pub reason_code: ReasonCode,
    /// Authentication method and data, reason string, user properties.
    pub properties: AuthProperties,
}

impl Disconnect {
    /// A DISCONNECT with this reason and no properties.
    pub fn new(reason_code: ReasonCode) -> Self {
        Self {
            reason_code,
            properties: DisconnectProperties::default(),
        }
    }

    pub(crate) fn parse<'a>(input: &'a [u8], cx: &Cx<'_>) -> PResult<'a, Self> {
        if !cx.version.is_v5() {
            let (input, ()) = cx.end(input)?;
            return Ok((input, Self::new(ReasonCode::Success)));
        }
        let (input, (reason_code, properties)) =
            parse_tail(input, cx, true, DisconnectProperties::parse)?;
        Ok((
            input,
            Self {
                reason_code,
                properties,
            },
        ))
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, Error> {
        if !version.is_v5() {
            return Ok(0);
        }
        self.reason_code.check_in(PacketType::Disconnect)?;
        // Accepted when received (Table 2-6 lists it), never sent: Table 3-10 leaves it out and
        // peers that follow it refuse it.
        if self.reason_code == ReasonCode::BadAuthenticationMethod {
            return Err(Error::InvalidReasonCode {
                packet: PacketType::Disconnect,
                code: self.reason_code.get(),
            });
        }
        self.properties.check()?;
        Ok(match (self.reason_code, self.properties.is_empty()) {
            (ReasonCode::Success, true) => 0,
            (_, true) => 1,
            (_, false) => 1 + self.properties.wire_len(),
        })
    }

    pub(crate) fn put_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        if !version.is_v5() {
            return;
        }
        let empty = self.properties.is_empty();
        if self.reason_code == ReasonCode::Success && empty {
            return;
        }
        buf.put_u8(self.reason_code.get());
        if !empty {
            self.properties.put(buf);
        }
    }
}

impl Auth {
    /// An AUTH with this reason and no properties.
    pub fn new(reason_code: ReasonCode) -> Self {
        Self {
            reason_code,
            properties: AuthProperties::default(),
        }
    }

    pub(crate) fn parse<'a>(input: &'a [u8], cx: &Cx<'_>) -> PResult<'a, Self> {
        // Unlike DISCONNECT, AUTH may drop the Property Length only together with the reason
        // code (MQTT 5.0 section 3.15.2.2.1): a Remaining Length of 1 is malformed.
        let short = input.is_empty();
        let (input, (reason_code, properties)) =
            parse_tail(input, cx, false, AuthProperties::parse)?;
        // "It is a Protocol Error to omit the Authentication Method" (section 3.15.2.2.2),
        // except in the short form (Remaining Length 0) of section 3.15.2.1.
        if !short && properties.authentication_method.is_none() {
            return fail(Error::AuthWithoutMethod);
        }
        Ok((
            input,
            Self {
                reason_code,
                properties,
            },
        ))
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, Error> {
        if !version.is_v5() {
            return Err(Error::NotInVersion {
                packet: PacketType::Auth,
                version,
            });
        }
        self.reason_code.check_in(PacketType::Auth)?;
        self.properties.check()?;
        let short = self.reason_code == ReasonCode::Success && self.properties.is_empty();
        if !short && self.properties.authentication_method.is_none() {
            return Err(Error::AuthWithoutMethod);
        }
        // Only "Success without properties" may drop the whole body; otherwise the Property
        // Length is always written, which every peer reads.
        Ok(if short {
            0
        } else {
            1 + self.properties.wire_len()
        })
    }

    pub(crate) fn put_body(&self, buf: &mut BytesMut) {
        if self.reason_code == ReasonCode::Success && self.properties.is_empty() {
            return;
        }
        buf.put_u8(self.reason_code.get());
        self.properties.put(buf);
    }
}

/// Reads "reason code, then properties", where a Remaining Length of 0 means Success without
/// properties and, when `properties_optional`, 1 means a reason code without properties.
fn parse_tail<'a, P: Default>(
    input: &'a [u8],
    cx: &Cx<'_>,
    properties_optional: bool,
    parse_properties: fn(&'a [u8], &Cx<'_>) -> PResult<'a, P>,
) -> PResult<'a, (ReasonCode, P)> {
    if input.is_empty() {
        return Ok((input, (ReasonCode::Success, P::default())));
    }
    let (input, code) = u8(input)?;
    let Some(reason_code) = ReasonCode::from_u8(code).filter(|c| c.is_allowed_in(cx.packet)) else {
        return fail(Error::InvalidReasonCode {
            packet: cx.packet,
            code,
        });
    };
    let (input, properties) = if input.is_empty() && properties_optional {
        (input, P::default())
    } else {
        parse_properties(input, cx)?
    };
    let (input, ()) = cx.end(input)?;
    Ok((input, (reason_code, properties)))
}
