//! The one error type of the crate, with the normative statement each violation breaks and the
//! MQTT 5.0 reason code to answer it with.

use std::fmt;

use crate::{PacketType, PropertyId, ProtocolVersion, ReasonCode};

/// Everything that can go wrong decoding or encoding a packet.
///
/// Decoding errors mean the byte stream broke the standard; the connection cannot continue
/// (the framing may be lost), so the caller closes it, after sending a DISCONNECT or CONNACK with
/// [`Error::reason_code`] when the protocol version allows. [`Error::statement`] names the
/// normative statement that was broken, for logs and tests.
///
/// Encoding errors mean the packet cannot be expressed on the wire (too large, a field too long,
/// a packet type or value the protocol version does not have); nothing has been written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The packet is larger than the maximum packet size in force. When decoding, this is known
    /// from the fixed header alone, before the rest of the packet is buffered.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge {
        /// The whole packet's size: fixed header plus Remaining Length.
        size: u64,
        /// The limit.
        max: u32,
    },
    /// A Variable Byte Integer (such as the Remaining Length) continues past its fourth byte.
    #[error("variable byte integer longer than 4 bytes")]
    VarIntTooLong,
    /// An MQTT 5.0 Variable Byte Integer that uses more bytes than its value needs.
    #[error("variable byte integer not minimally encoded")]
    NonMinimalVarInt,
    /// Packet type 0, or 15 (AUTH) before MQTT 5.0.
    #[error("reserved packet type {bits}")]
    InvalidPacketType {
        /// The high four bits of the first byte.
        bits: u8,
    },
    /// The fixed-header flags do not have the values the packet type requires.
    #[error("invalid fixed header flags {flags:#06b} for {packet}")]
    InvalidFlags {
        /// The packet type.
        packet: PacketType,
        /// The low four bits of the first byte.
        flags: u8,
    },
    /// A server-side decoder received something other than CONNECT first.
    #[error("{packet} received before CONNECT")]
    FirstPacketNotConnect {
        /// What was received.
        packet: PacketType,
    },
    /// A length inside the packet points past its end (or the packet ends mid-field).
    #[error("{packet} ends in the middle of a field")]
    Truncated {
        /// The packet type.
        packet: PacketType,
    },
    /// Bytes left over after the last field of the packet.
    #[error("{count} unexpected bytes at the end of {packet}")]
    TrailingBytes {
        /// The packet type.
        packet: PacketType,
        /// How many bytes were left.
        count: usize,
    },
    /// A packet identifier of 0.
    #[error("packet identifier 0 in {packet}")]
    ZeroPacketId {
        /// The packet type.
        packet: PacketType,
    },
    /// A string field that is not a valid MQTT UTF-8 string.
    #[error("{field}: {source}")]
    InvalidString {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        source: mqtt_topic::Error,
    },
    /// A topic name (PUBLISH, will, Response Topic) that is empty or contains a wildcard.
    #[error("{field}: {source}")]
    InvalidTopicName {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        source: mqtt_topic::Error,
    },
    /// A SUBSCRIBE or UNSUBSCRIBE topic filter that breaks the wildcard or share-name rules.
    #[error("topic filter: {source}")]
    InvalidTopicFilter {
        /// What is wrong with it.
        source: mqtt_topic::Error,
    },
    /// CONNECT with a protocol name other than `MQTT` or `MQIsdp`.
    #[error("unknown protocol name")]
    InvalidProtocolName,
    /// CONNECT with a protocol level this codec does not speak (or that does not go with the
    /// protocol name). Answer with CONNACK return code 1 / reason 0x84.
    #[error("unsupported protocol level {level}")]
    UnsupportedProtocolVersion {
        /// The level received.
        level: u8,
    },
    /// The reserved bit 0 of the CONNECT flags is set.
    #[error("reserved CONNECT flag set")]
    ConnectReservedFlag,
    /// Will QoS 3.
    #[error("will QoS 3")]
    InvalidWillQoS,
    /// Will QoS other than 0 while the Will Flag is 0.
    #[error("will QoS set without a will")]
    WillQoSWithoutWill,
    /// Will Retain set while the Will Flag is 0.
    #[error("will retain set without a will")]
    WillRetainWithoutWill,
    /// MQTT 3.x: the password flag without the user name flag.
    #[error("password without user name")]
    PasswordWithoutUsername,
    /// Authentication Data without an Authentication Method.
    #[error("authentication data without authentication method")]
    AuthDataWithoutMethod,
    /// Reserved bits of the CONNACK acknowledge flags are set.
    #[error("reserved CONNACK flags {flags:#04x}")]
    ConnAckReservedFlags {
        /// The flags byte.
        flags: u8,
    },
    /// A refused CONNACK that claims a session is present.
    #[error("session present on a refused connection")]
    SessionPresentOnFailure,
    /// QoS 3 in a PUBLISH or a subscription.
    #[error("QoS 3 in {packet}")]
    InvalidQoS {
        /// The packet type.
        packet: PacketType,
    },
    /// The DUP flag on a QoS 0 PUBLISH.
    #[error("DUP flag on a QoS 0 PUBLISH")]
    DupOnQoS0,
    /// A SUBSCRIBE or UNSUBSCRIBE without any topic filter.
    #[error("{packet} without topic filters")]
    NoTopicFilters {
        /// The packet type.
        packet: PacketType,
    },
    /// Reserved bits set in a subscription options byte.
    #[error("reserved subscription option bits set in {options:#04x}")]
    ReservedSubscriptionOptions {
        /// The options byte.
        options: u8,
    },
    /// Retain Handling 3.
    #[error("retain handling 3")]
    InvalidRetainHandling,
    /// No Local on a shared subscription.
    #[error("no local on a shared subscription")]
    NoLocalOnSharedSubscription,
    /// A reason (or return) code the packet type does not allow.
    #[error("reason code {code:#04x} is not valid in {packet}")]
    InvalidReasonCode {
        /// The packet type.
        packet: PacketType,
        /// The code.
        code: u8,
    },
    /// A SUBACK or UNSUBACK without reason codes (there is one per filter of the request).
    #[error("{packet} without reason codes")]
    NoReasonCodes {
        /// The packet type.
        packet: PacketType,
    },
    /// MQTT 5.0 AUTH with properties but no Authentication Method.
    #[error("AUTH without authentication method")]
    AuthWithoutMethod,
    /// A property identifier the standard does not define.
    #[error("unknown property identifier {id:#x}")]
    UnknownProperty {
        /// The identifier.
        id: u32,
    },
    /// A property the packet (or the will) may not carry.
    #[error("property {} not allowed in {context}", id.name())]
    PropertyNotAllowed {
        /// The property.
        id: PropertyId,
        /// Where it appeared.
        context: &'static str,
    },
    /// A property that may appear once appeared again.
    #[error("property {} repeated", id.name())]
    DuplicateProperty {
        /// The property.
        id: PropertyId,
    },
    /// A property value outside its allowed range (0 where 0 is not allowed, a flag that is
    /// neither 0 nor 1, Maximum QoS 2).
    #[error("invalid value for property {}", id.name())]
    InvalidPropertyValue {
        /// The property.
        id: PropertyId,
    },
    /// Encoding: Binary Data longer than 65,535 bytes.
    #[error("{field} of {len} bytes is longer than 65535 bytes")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// Encoding: the packet type does not exist in the protocol version (AUTH before 5.0).
    #[error("{packet} does not exist in {version}")]
    NotInVersion {
        /// The packet type.
        packet: PacketType,
        /// The version.
        version: ProtocolVersion,
    },
    /// The transport failed (only from the `tokio-codec` adapter).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A normative statement, identified in the numbering of the standard it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement {
    /// The identifier in MQTT 3.1.1, if that standard has one for this rule.
    pub v3_1_1: Option<&'static str>,
    /// The identifier in MQTT 5.0, if that standard has one for this rule.
    pub v5: Option<&'static str>,
}

impl Statement {
    const fn both(v3_1_1: &'static str, v5: &'static str) -> Self {
        Self {
            v3_1_1: Some(v3_1_1),
            v5: Some(v5),
        }
    }

    const fn v3(id: &'static str) -> Self {
        Self {
            v3_1_1: Some(id),
            v5: None,
        }
    }

    const fn v5(id: &'static str) -> Self {
        Self {
            v3_1_1: None,
            v5: Some(id),
        }
    }

    /// The identifier in the numbering of `version` (3.1 has none of its own; 3.1.1's is used).
    pub const fn for_version(self, version: ProtocolVersion) -> Option<&'static str> {
        match version {
            ProtocolVersion::V5 => self.v5,
            _ => self.v3_1_1,
        }
    }
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.v3_1_1, self.v5) {
            (Some(a), Some(b)) if a == b => write!(f, "{a}"),
            (Some(a), Some(b)) => write!(f, "{a} (3.1.1) / {b} (5.0)"),
            (Some(a), None) => write!(f, "{a} (3.1.1)"),
            (None, Some(b)) => write!(f, "{b} (5.0)"),
            (None, None) => Ok(()),
        }
    }
}

impl Error {
    /// Sorts a topic-filter validation failure: string rules, or topic-filter rules.
    pub(crate) fn topic_filter(source: mqtt_topic::Error) -> Self {
        match source {
            mqtt_topic::Error::TooLong { .. }
            | mqtt_topic::Error::InvalidUtf8 { .. }
            | mqtt_topic::Error::NullCharacter { .. } => Self::InvalidString {
                field: "topic filter",
                source,
            },
            _ => Self::InvalidTopicFilter { source },
        }
    }

    /// Sorts a topic-name validation failure: string rules, or topic-name rules.
    pub(crate) fn topic_name(field: &'static str, source: mqtt_topic::Error) -> Self {
        match source {
            mqtt_topic::Error::Empty | mqtt_topic::Error::WildcardInTopicName { .. } => {
                Self::InvalidTopicName { field, source }
            }
            _ => Self::InvalidString { field, source },
        }
    }

    /// The identifier of the broken statement in `version`'s numbering, if it has one.
    pub fn statement_for(&self, version: ProtocolVersion) -> Option<&'static str> {
        self.statement().and_then(|s| s.for_version(version))
    }

    /// The normative statement this error breaks, where the standards number one.
    pub fn statement(&self) -> Option<Statement> {
        use mqtt_topic::Error as T;
        Some(match self {
            Self::NonMinimalVarInt => Statement::v5("MQTT-1.5.5-1"),
            Self::InvalidFlags {
                packet: PacketType::PubRel,
                ..
            } => Statement::both("MQTT-3.6.1-1", "MQTT-3.6.1-1"),
            Self::InvalidFlags {
                packet: PacketType::Subscribe,
                ..
            } => Statement::both("MQTT-3.8.1-1", "MQTT-3.8.1-1"),
            Self::InvalidFlags {
                packet: PacketType::Unsubscribe,
                ..
            } => Statement::both("MQTT-3.10.1-1", "MQTT-3.10.1-1"),
            Self::InvalidFlags {
                packet: PacketType::Disconnect,
                ..
            } => Statement::both("MQTT-3.14.1-1", "MQTT-3.14.1-1"),
            Self::InvalidFlags {
                packet: PacketType::Auth,
                ..
            } => Statement::v5("MQTT-3.15.1-1"),
            Self::InvalidFlags { .. } => Statement::both("MQTT-2.2.2-1", "MQTT-2.1.3-1"),
            Self::FirstPacketNotConnect { .. } => Statement::both("MQTT-3.1.0-1", "MQTT-3.1.0-1"),
            Self::ZeroPacketId { .. } => Statement::both("MQTT-2.3.1-1", "MQTT-2.2.1-3"),
            Self::InvalidString {
                source: T::InvalidUtf8 { .. },
                ..
            } => Statement::both("MQTT-1.5.3-1", "MQTT-1.5.4-1"),
            Self::InvalidString {
                source: T::NullCharacter { .. },
                ..
            } => Statement::both("MQTT-1.5.3-2", "MQTT-1.5.4-2"),
            Self::InvalidTopicName {
                source: T::WildcardInTopicName { .. },
                field,
            } if *field == PropertyId::ResponseTopic.name() => Statement::v5("MQTT-3.3.2-14"),
            Self::InvalidTopicName {
                source: T::WildcardInTopicName { .. },
                field,
            } if *field == "topic name" => Statement::both("MQTT-3.3.2-2", "MQTT-3.3.2-2"),
            Self::InvalidTopicName {
                source: T::WildcardInTopicName { .. },
                ..
            } => Statement::both("MQTT-4.7.1-1", "MQTT-4.7.0-1"),
            Self::InvalidTopicName {
                source: T::Empty, ..
            } => Statement::both("MQTT-4.7.3-1", "MQTT-4.7.3-1"),
            Self::InvalidTopicFilter {
                source: T::Empty | T::EmptySharedFilter,
            } => Statement::both("MQTT-4.7.3-1", "MQTT-4.7.3-1"),
            Self::InvalidTopicFilter {
                source: T::EmptyShareName,
            } => Statement::v5("MQTT-4.8.2-1"),
            Self::InvalidTopicFilter {
                source: T::InvalidShareName,
            } => Statement::v5("MQTT-4.8.2-2"),
            Self::InvalidTopicFilter {
                source: T::InvalidWildcard { wildcard: '#', .. },
            } => Statement::both("MQTT-4.7.1-2", "MQTT-4.7.1-1"),
            Self::InvalidTopicFilter {
                source: T::InvalidWildcard { .. },
            } => Statement::both("MQTT-4.7.1-3", "MQTT-4.7.1-2"),
            Self::InvalidProtocolName => Statement::both("MQTT-3.1.2-1", "MQTT-3.1.2-1"),
            Self::UnsupportedProtocolVersion { .. } => {
                Statement::both("MQTT-3.1.2-2", "MQTT-3.1.2-2")
            }
            Self::ConnectReservedFlag => Statement::both("MQTT-3.1.2-3", "MQTT-3.1.2-3"),
            Self::InvalidWillQoS => Statement::both("MQTT-3.1.2-14", "MQTT-3.1.2-12"),
            Self::WillQoSWithoutWill => Statement::both("MQTT-3.1.2-13", "MQTT-3.1.2-11"),
            Self::WillRetainWithoutWill => Statement::both("MQTT-3.1.2-15", "MQTT-3.1.2-13"),
            Self::PasswordWithoutUsername => Statement::v3("MQTT-3.1.2-22"),
            Self::ConnAckReservedFlags { .. } => Statement::v5("MQTT-3.2.2-1"),
            Self::SessionPresentOnFailure => Statement::both("MQTT-3.2.2-4", "MQTT-3.2.2-6"),
            Self::InvalidQoS {
                packet: PacketType::Subscribe,
            } => Statement::v3("MQTT-3-8.3-4"),
            Self::InvalidQoS { .. } => Statement::both("MQTT-3.3.1-4", "MQTT-3.3.1-4"),
            Self::DupOnQoS0 => Statement::both("MQTT-3.3.1-2", "MQTT-3.3.1-2"),
            Self::NoTopicFilters {
                packet: PacketType::Subscribe,
            } => Statement::both("MQTT-3.8.3-3", "MQTT-3.8.3-2"),
            Self::NoTopicFilters { .. } => Statement::both("MQTT-3.10.3-2", "MQTT-3.10.3-2"),
            Self::ReservedSubscriptionOptions { .. } => {
                Statement::both("MQTT-3-8.3-4", "MQTT-3.8.3-5")
            }
            Self::NoLocalOnSharedSubscription => Statement::v5("MQTT-3.8.3-4"),
            Self::InvalidReasonCode {
                packet: PacketType::ConnAck,
                ..
            } => Statement::v5("MQTT-3.2.2-8"),
            Self::NoReasonCodes {
                packet: PacketType::SubAck,
            } => Statement::v5("MQTT-3.9.3-2"),
            Self::NoReasonCodes { .. } => Statement::v5("MQTT-3.11.3-2"),
            Self::InvalidReasonCode {
                packet: PacketType::PubAck,
                ..
            } => Statement::v5("MQTT-3.4.2-1"),
            Self::InvalidReasonCode {
                packet: PacketType::PubRec,
                ..
            } => Statement::v5("MQTT-3.5.2-1"),
            Self::InvalidReasonCode {
                packet: PacketType::PubRel,
                ..
            } => Statement::v5("MQTT-3.6.2-1"),
            Self::InvalidReasonCode {
                packet: PacketType::PubComp,
                ..
            } => Statement::v5("MQTT-3.7.2-1"),
            Self::InvalidReasonCode {
                packet: PacketType::SubAck,
                ..
            } => Statement::both("MQTT-3.9.3-2", "MQTT-3.9.3-2"),
            Self::InvalidReasonCode {
                packet: PacketType::UnsubAck,
                ..
            } => Statement::v5("MQTT-3.11.3-2"),
            Self::InvalidReasonCode {
                packet: PacketType::Disconnect,
                ..
            } => Statement::v5("MQTT-3.14.2-1"),
            Self::InvalidReasonCode {
                packet: PacketType::Auth,
                ..
            } => Statement::v5("MQTT-3.15.2-1"),
            Self::InvalidTopicName { .. }
            | Self::InvalidTopicFilter { .. }
            | Self::InvalidString { .. }
            | Self::InvalidReasonCode { .. }
            | Self::PacketTooLarge { .. }
            | Self::VarIntTooLong
            | Self::InvalidPacketType { .. }
            | Self::Truncated { .. }
            | Self::TrailingBytes { .. }
            | Self::AuthDataWithoutMethod
            | Self::AuthWithoutMethod
            | Self::InvalidRetainHandling
            | Self::UnknownProperty { .. }
            | Self::PropertyNotAllowed { .. }
            | Self::DuplicateProperty { .. }
            | Self::InvalidPropertyValue { .. }
            | Self::FieldTooLong { .. }
            | Self::NotInVersion { .. }
            | Self::Io(_) => return None,
        })
    }

    /// The MQTT 5.0 reason code to put in the DISCONNECT (or CONNACK, for an error in CONNECT)
    /// that answers this error. Section 4.13 of the standard separates a Malformed Packet (the
    /// bytes cannot be parsed as the standard says) from a Protocol Error (they parse, but break
    /// a rule).
    pub fn reason_code(&self) -> ReasonCode {
        use mqtt_topic::Error as T;
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            Self::InvalidProtocolName | Self::UnsupportedProtocolVersion { .. } => {
                ReasonCode::UnsupportedProtocolVersion
            }
            // A topic that breaks the syntax is malformed; Topic Name / Filter invalid (0x90,
            // 0x8F) are for correctly formed ones the receiver does not accept.
            Self::InvalidTopicName {
                source: T::Empty, ..
            } => ReasonCode::ProtocolError,
            Self::InvalidPropertyValue {
                id: PropertyId::TopicAlias,
            } => ReasonCode::TopicAliasInvalid,
            Self::InvalidQoS {
                packet: PacketType::Subscribe,
            } => ReasonCode::ProtocolError,
            Self::FirstPacketNotConnect { .. }
            | Self::ZeroPacketId { .. }
            | Self::NoTopicFilters { .. }
            | Self::InvalidRetainHandling
            | Self::NoLocalOnSharedSubscription
            | Self::DuplicateProperty { .. }
            | Self::InvalidPropertyValue { .. }
            | Self::AuthDataWithoutMethod
            | Self::AuthWithoutMethod
            | Self::NoReasonCodes { .. }
            | Self::SessionPresentOnFailure => ReasonCode::ProtocolError,
            Self::VarIntTooLong
            | Self::NonMinimalVarInt
            | Self::InvalidPacketType { .. }
            | Self::InvalidFlags { .. }
            | Self::Truncated { .. }
            | Self::TrailingBytes { .. }
            | Self::InvalidString { .. }
            | Self::ConnectReservedFlag
            | Self::InvalidWillQoS
            | Self::WillQoSWithoutWill
            | Self::WillRetainWithoutWill
            | Self::PasswordWithoutUsername
            | Self::ConnAckReservedFlags { .. }
            | Self::InvalidQoS { .. }
            | Self::DupOnQoS0
            | Self::ReservedSubscriptionOptions { .. }
            | Self::InvalidReasonCode { .. }
            | Self::InvalidTopicName { .. }
            | Self::InvalidTopicFilter { .. }
            | Self::UnknownProperty { .. }
            | Self::PropertyNotAllowed { .. } => ReasonCode::MalformedPacket,
            Self::FieldTooLong { .. } | Self::NotInVersion { .. } => {
                ReasonCode::ImplementationSpecificError
            }
            Self::Io(_) => ReasonCode::UnspecifiedError,
        }
    }

    /// Whether the error was caused by the bytes received (as opposed to a packet we could not
    /// encode, or the transport).
    pub fn is_peer_violation(&self) -> bool {
        !matches!(
            self,
            Self::FieldTooLong { .. } | Self::NotInVersion { .. } | Self::Io(_)
        )
    }
}
