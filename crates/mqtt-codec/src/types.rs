//! Small value types shared by the packets: protocol version, QoS, packet identifiers and
//! subscription options.

use std::fmt;
use std::num::NonZeroU16;

use bytes::Bytes;
use mqtt_topic::QoS;

/// The protocol level a connection speaks. It is a parameter of decoding and encoding, never a
/// second packet model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// MQTT 3.1: protocol name `MQIsdp`, level 3.
    V3_1,
    /// MQTT 3.1.1: protocol name `MQTT`, level 4.
    V3_1_1,
    /// MQTT 5.0: protocol name `MQTT`, level 5.
    V5,
}

impl ProtocolVersion {
    /// Every version, oldest first.
    pub const ALL: [ProtocolVersion; 3] = [Self::V3_1, Self::V3_1_1, Self::V5];

    /// The Protocol Level byte of CONNECT.
    pub const fn level(self) -> u8 {
        match self {
            Self::V3_1 => 3,
            Self::V3_1_1 => 4,
            Self::V5 => 5,
        }
    }

    /// The Protocol Name of CONNECT.
    pub const fn protocol_name(self) -> &'static str {
        match self {
            Self::V3_1 => "MQIsdp",
            Self::V3_1_1 | Self::V5 => "MQTT",
        }
    }

    /// Whether this is MQTT 5.0 (properties and reason codes on the wire).
    pub const fn is_v5(self) -> bool {
        matches!(self, Self::V5)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V3_1 => "MQTT 3.1",
            Self::V3_1_1 => "MQTT 3.1.1",
            Self::V5 => "MQTT 5.0",
        })
    }
}

/// A non-zero packet identifier [MQTT-2.3.1-1 (3.1.1), MQTT-2.2.1-3 (5.0)].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PacketId(NonZeroU16);

impl PacketId {
    /// The identifier with this value, unless it is 0.
    pub const fn new(value: u16) -> Option<Self> {
        match NonZeroU16::new(value) {
            Some(id) => Some(Self(id)),
            None => None,
        }
    }

    /// The wire value.
    pub const fn get(self) -> u16 {
        self.0.get()
    }

    /// The identifier after this one, wrapping from 65,535 to 1.
    pub const fn next(self) -> Self {
        match NonZeroU16::new(self.0.get().wrapping_add(1)) {
            Some(id) => Self(id),
            None => Self(NonZeroU16::MIN),
        }
    }
}

impl From<NonZeroU16> for PacketId {
    fn from(id: NonZeroU16) -> Self {
        Self(id)
    }
}

impl fmt::Display for PacketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The QoS of a PUBLISH together with its packet identifier: QoS 0 has none, QoS 1 and 2 must
/// have one, and the type makes any other combination unrepresentable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosPid {
    /// QoS 0, no packet identifier.
    AtMostOnce,
    /// QoS 1 with its packet identifier.
    AtLeastOnce(PacketId),
    /// QoS 2 with its packet identifier.
    ExactlyOnce(PacketId),
}

impl QosPid {
    /// The QoS.
    pub const fn qos(self) -> QoS {
        match self {
            Self::AtMostOnce => QoS::AtMostOnce,
            Self::AtLeastOnce(_) => QoS::AtLeastOnce,
            Self::ExactlyOnce(_) => QoS::ExactlyOnce,
        }
    }

    /// The packet identifier, for QoS 1 and 2.
    pub const fn packet_id(self) -> Option<PacketId> {
        match self {
            Self::AtMostOnce => None,
            Self::AtLeastOnce(id) | Self::ExactlyOnce(id) => Some(id),
        }
    }

    /// Combines a QoS with the identifier that QoS 1 and 2 need; `None` for QoS 1 or 2 without
    /// an identifier.
    pub const fn new(qos: QoS, packet_id: Option<PacketId>) -> Option<Self> {
        match (qos, packet_id) {
            (QoS::AtMostOnce, _) => Some(Self::AtMostOnce),
            (QoS::AtLeastOnce, Some(id)) => Some(Self::AtLeastOnce(id)),
            (QoS::ExactlyOnce, Some(id)) => Some(Self::ExactlyOnce(id)),
            (_, None) => None,
        }
    }
}

/// The Payload Format Indicator property.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PayloadFormat {
    /// 0: unspecified bytes.
    #[default]
    Unspecified = 0,
    /// 1: UTF-8 encoded character data.
    Utf8 = 1,
}

/// Secret bytes (a password or authentication data): usable as bytes, shown as `<redacted>` by
/// `Debug` so credentials never reach a log.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Bytes);

impl Secret {
    /// Wraps the bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }

    /// The secret bytes.
    pub fn expose(&self) -> &Bytes {
        &self.0
    }
}

impl From<Bytes> for Secret {
    fn from(bytes: Bytes) -> Self {
        Self(bytes)
    }
}

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Self {
        Self(Bytes::from(bytes))
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Self(Bytes::from(text))
    }
}

impl From<&'static str> for Secret {
    fn from(text: &'static str) -> Self {
        Self(Bytes::from_static(text.as_bytes()))
    }
}

impl From<&'static [u8]> for Secret {
    fn from(bytes: &'static [u8]) -> Self {
        Self(Bytes::from_static(bytes))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

/// The type of a control packet: the high four bits of the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// 1: client request to connect.
    Connect = 1,
    /// 2: connect acknowledgement.
    ConnAck = 2,
    /// 3: publish message.
    Publish = 3,
    /// 4: publish acknowledgement (QoS 1).
    PubAck = 4,
    /// 5: publish received (QoS 2, part 1).
    PubRec = 5,
    /// 6: publish release (QoS 2, part 2).
    PubRel = 6,
    /// 7: publish complete (QoS 2, part 3).
    PubComp = 7,
    /// 8: subscribe request.
    Subscribe = 8,
    /// 9: subscribe acknowledgement.
    SubAck = 9,
    /// 10: unsubscribe request.
    Unsubscribe = 10,
    /// 11: unsubscribe acknowledgement.
    UnsubAck = 11,
    /// 12: ping request.
    PingReq = 12,
    /// 13: ping response.
    PingResp = 13,
    /// 14: disconnect notification.
    Disconnect = 14,
    /// 15: authentication exchange (5.0 only).
    Auth = 15,
}

impl PacketType {
    /// The type with this 4-bit value, for the versions that define it (AUTH only in 5.0).
    pub const fn from_bits(bits: u8, version: Option<ProtocolVersion>) -> Option<Self> {
        Some(match bits {
            1 => Self::Connect,
            2 => Self::ConnAck,
            3 => Self::Publish,
            4 => Self::PubAck,
            5 => Self::PubRec,
            6 => Self::PubRel,
            7 => Self::PubComp,
            8 => Self::Subscribe,
            9 => Self::SubAck,
            10 => Self::Unsubscribe,
            11 => Self::UnsubAck,
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            15 if matches!(version, Some(ProtocolVersion::V5) | None) => Self::Auth,
            _ => return None,
        })
    }

    /// The name the standard uses.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Connect => "CONNECT",
            Self::ConnAck => "CONNACK",
            Self::Publish => "PUBLISH",
            Self::PubAck => "PUBACK",
            Self::PubRec => "PUBREC",
            Self::PubRel => "PUBREL",
            Self::PubComp => "PUBCOMP",
            Self::Subscribe => "SUBSCRIBE",
            Self::SubAck => "SUBACK",
            Self::Unsubscribe => "UNSUBSCRIBE",
            Self::UnsubAck => "UNSUBACK",
            Self::PingReq => "PINGREQ",
            Self::PingResp => "PINGRESP",
            Self::Disconnect => "DISCONNECT",
            Self::Auth => "AUTH",
        }
    }

    /// The fixed-header flags this type must carry (PUBLISH has variable flags and is not
    /// checked here).
    pub(crate) const fn required_flags(self) -> u8 {
        match self {
            Self::PubRel | Self::Subscribe | Self::Unsubscribe => 0b0010,
            _ => 0,
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_id_wraps_past_zero() {
        let last = PacketId::new(u16::MAX).unwrap();
        assert_eq!(last.next().get(), 1);
        assert_eq!(PacketId::new(7).unwrap().next().get(), 8);
        assert!(PacketId::new(0).is_none());
    }

    #[test]
    fn qos_pid_couples_qos_and_id() {
        let id = PacketId::new(5);
        assert_eq!(QosPid::new(QoS::AtMostOnce, id), Some(QosPid::AtMostOnce));
        assert_eq!(QosPid::new(QoS::AtLeastOnce, None), None);
        let q2 = QosPid::new(QoS::ExactlyOnce, id).unwrap();
        assert_eq!((q2.qos(), q2.packet_id()), (QoS::ExactlyOnce, id));
    }

    #[test]
    fn auth_type_only_exists_in_v5() {
        assert_eq!(
            PacketType::from_bits(15, Some(ProtocolVersion::V5)),
            Some(PacketType::Auth)
        );
        assert_eq!(
            PacketType::from_bits(15, Some(ProtocolVersion::V3_1_1)),
            None
        );
        assert_eq!(PacketType::from_bits(0, None), None);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = Secret::from(&b"hunter2"[..]);
        assert_eq!(format!("{s:?}"), "<redacted 7 bytes>");
        assert_eq!(s.expose().as_ref(), b"hunter2");
    }
}
