//! Reason codes: every MQTT 5.0 reason code, which packets may carry which, and how the MQTT 3.x
//! CONNACK and SUBACK return codes map onto them.

use std::fmt;

use crate::{Error, PacketType};

macro_rules! reason_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, )*) => {
        /// An MQTT 5.0 reason code (section 2.4). The 3.x CONNACK and SUBACK return codes are
        /// represented by the reason code with the same meaning; see [`ReasonCode::to_v3_connack`].
        ///
        /// The value 0x00 has three names in the standard (Success, Normal disconnection,
        /// Granted QoS 0); here it is [`ReasonCode::Success`], with the other two as constants.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum ReasonCode {
            $( $(#[$doc])* $name = $value, )*
        }

        impl ReasonCode {
            /// Every reason code, in ascending order.
            pub const ALL: &'static [ReasonCode] = &[$(Self::$name,)*];

            /// The reason code with this value, if the standard defines one.
            pub const fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $( $value => Some(Self::$name), )*
                    _ => None,
                }
            }
        }
    };
}

reason_codes! {
    /// 0x00: Success / Normal disconnection / Granted QoS 0.
    Success = 0x00,
    /// 0x01: Granted QoS 1 (SUBACK).
    GrantedQoS1 = 0x01,
    /// 0x02: Granted QoS 2 (SUBACK).
    GrantedQoS2 = 0x02,
    /// 0x04: Disconnect with Will Message (DISCONNECT from the client).
    DisconnectWithWillMessage = 0x04,
    /// 0x10: No matching subscribers (PUBACK, PUBREC).
    NoMatchingSubscribers = 0x10,
    /// 0x11: No subscription existed (UNSUBACK).
    NoSubscriptionExisted = 0x11,
    /// 0x18: Continue authentication (AUTH).
    ContinueAuthentication = 0x18,
    /// 0x19: Re-authenticate (AUTH).
    ReAuthenticate = 0x19,
    /// 0x80: Unspecified error.
    UnspecifiedError = 0x80,
    /// 0x81: Malformed Packet.
    MalformedPacket = 0x81,
    /// 0x82: Protocol Error.
    ProtocolError = 0x82,
    /// 0x83: Implementation specific error.
    ImplementationSpecificError = 0x83,
    /// 0x84: Unsupported Protocol Version.
    UnsupportedProtocolVersion = 0x84,
    /// 0x85: Client Identifier not valid.
    ClientIdentifierNotValid = 0x85,
    /// 0x86: Bad User Name or Password.
    BadUserNameOrPassword = 0x86,
    /// 0x87: Not authorized.
    NotAuthorized = 0x87,
    /// 0x88: Server unavailable.
    ServerUnavailable = 0x88,
    /// 0x89: Server busy.
    ServerBusy = 0x89,
    /// 0x8A: Banned.
    Banned = 0x8A,
    /// 0x8B: Server shutting down.
    ServerShuttingDown = 0x8B,
    /// 0x8C: Bad authentication method.
    BadAuthenticationMethod = 0x8C,
    /// 0x8D: Keep Alive timeout.
    KeepAliveTimeout = 0x8D,
    /// 0x8E: Session taken over.
    SessionTakenOver = 0x8E,
    /// 0x8F: Topic Filter invalid.
    TopicFilterInvalid = 0x8F,
    /// 0x90: Topic Name invalid.
    TopicNameInvalid = 0x90,
    /// 0x91: Packet Identifier in use.
    PacketIdentifierInUse = 0x91,
    /// 0x92: Packet Identifier not found.
    PacketIdentifierNotFound = 0x92,
    /// 0x93: Receive Maximum exceeded.
    ReceiveMaximumExceeded = 0x93,
    /// 0x94: Topic Alias invalid.
    TopicAliasInvalid = 0x94,
    /// 0x95: Packet too large.
    PacketTooLarge = 0x95,
    /// 0x96: Message rate too high.
    MessageRateTooHigh = 0x96,
    /// 0x97: Quota exceeded.
    QuotaExceeded = 0x97,
    /// 0x98: Administrative action.
    AdministrativeAction = 0x98,
    /// 0x99: Payload format invalid.
    PayloadFormatInvalid = 0x99,
    /// 0x9A: Retain not supported.
    RetainNotSupported = 0x9A,
    /// 0x9B: QoS not supported.
    QoSNotSupported = 0x9B,
    /// 0x9C: Use another server.
    UseAnotherServer = 0x9C,
    /// 0x9D: Server moved.
    ServerMoved = 0x9D,
    /// 0x9E: Shared Subscriptions not supported.
    SharedSubscriptionsNotSupported = 0x9E,
    /// 0x9F: Connection rate exceeded.
    ConnectionRateExceeded = 0x9F,
    /// 0xA0: Maximum connect time.
    MaximumConnectTime = 0xA0,
    /// 0xA1: Subscription Identifiers not supported.
    SubscriptionIdentifiersNotSupported = 0xA1,
    /// 0xA2: Wildcard Subscriptions not supported.
    WildcardSubscriptionsNotSupported = 0xA2,
}

use ReasonCode as R;

const CONNACK: &[ReasonCode] = &[
    R::Success,
    R::UnspecifiedError,
    R::MalformedPacket,
    R::ProtocolError,
    R::ImplementationSpecificError,
    R::UnsupportedProtocolVersion,
    R::ClientIdentifierNotValid,
    R::BadUserNameOrPassword,
    R::NotAuthorized,
    R::ServerUnavailable,
    R::ServerBusy,
    R::Banned,
    R::BadAuthenticationMethod,
    R::TopicNameInvalid,
    R::PacketTooLarge,
    R::QuotaExceeded,
    R::PayloadFormatInvalid,
    R::RetainNotSupported,
    R::QoSNotSupported,
    R::UseAnotherServer,
    R::ServerMoved,
    R::ConnectionRateExceeded,
];

const PUBACK_PUBREC: &[ReasonCode] = &[
    R::Success,
    R::NoMatchingSubscribers,
    R::UnspecifiedError,
    R::ImplementationSpecificError,
    R::NotAuthorized,
    R::TopicNameInvalid,
    R::PacketIdentifierInUse,
    R::QuotaExceeded,
    R::PayloadFormatInvalid,
];

const PUBREL_PUBCOMP: &[ReasonCode] = &[R::Success, R::PacketIdentifierNotFound];

const SUBACK: &[ReasonCode] = &[
    R::Success,
    R::GrantedQoS1,
    R::GrantedQoS2,
    R::UnspecifiedError,
    R::ImplementationSpecificError,
    R::NotAuthorized,
    R::TopicFilterInvalid,
    R::PacketIdentifierInUse,
    R::QuotaExceeded,
    R::SharedSubscriptionsNotSupported,
    R::SubscriptionIdentifiersNotSupported,
    R::WildcardSubscriptionsNotSupported,
];

const UNSUBACK: &[ReasonCode] = &[
    R::Success,
    R::NoSubscriptionExisted,
    R::UnspecifiedError,
    R::ImplementationSpecificError,
    R::NotAuthorized,
    R::TopicFilterInvalid,
    R::PacketIdentifierInUse,
];

const DISCONNECT: &[ReasonCode] = &[
    R::Success,
    R::DisconnectWithWillMessage,
    R::UnspecifiedError,
    R::MalformedPacket,
    R::ProtocolError,
    R::ImplementationSpecificError,
    R::NotAuthorized,
    R::ServerBusy,
    R::ServerShuttingDown,
    // Table 2-6 lists 0x8C for DISCONNECT, Table 3-10 does not: accepted, so peers that follow
    // Table 2-6 are not cut off.
    R::BadAuthenticationMethod,
    R::KeepAliveTimeout,
    R::SessionTakenOver,
    R::TopicFilterInvalid,
    R::TopicNameInvalid,
    R::ReceiveMaximumExceeded,
    R::TopicAliasInvalid,
    R::PacketTooLarge,
    R::MessageRateTooHigh,
    R::QuotaExceeded,
    R::AdministrativeAction,
    R::PayloadFormatInvalid,
    R::RetainNotSupported,
    R::QoSNotSupported,
    R::UseAnotherServer,
    R::ServerMoved,
    R::SharedSubscriptionsNotSupported,
    R::ConnectionRateExceeded,
    R::MaximumConnectTime,
    R::SubscriptionIdentifiersNotSupported,
    R::WildcardSubscriptionsNotSupported,
];

const AUTH: &[ReasonCode] = &[R::Success, R::ContinueAuthentication, R::ReAuthenticate];

impl ReasonCode {
    /// 0x00 as DISCONNECT names it.
    pub const NORMAL_DISCONNECTION: Self = Self::Success;
    /// 0x00 as SUBACK names it.
    pub const GRANTED_QOS_0: Self = Self::Success;

    /// The wire value.
    pub const fn get(self) -> u8 {
        self as u8
    }

    /// Whether the code reports a failure (0x80 and above).
    pub const fn is_error(self) -> bool {
        self.get() >= 0x80
    }

    /// The reason codes an MQTT 5.0 packet of this type may carry (empty for types without one).
    pub fn allowed_in(packet: PacketType) -> &'static [ReasonCode] {
        match packet {
            PacketType::ConnAck => CONNACK,
            PacketType::PubAck | PacketType::PubRec => PUBACK_PUBREC,
            PacketType::PubRel | PacketType::PubComp => PUBREL_PUBCOMP,
            PacketType::SubAck => SUBACK,
            PacketType::UnsubAck => UNSUBACK,
            PacketType::Disconnect => DISCONNECT,
            PacketType::Auth => AUTH,
            _ => &[],
        }
    }

    /// Fails with [`Error::InvalidReasonCode`] unless a packet of this type may carry this code.
    pub(crate) fn check_in(self, packet: PacketType) -> Result<(), Error> {
        if self.is_allowed_in(packet) {
            Ok(())
        } else {
            Err(Error::InvalidReasonCode {
                packet,
                code: self.get(),
            })
        }
    }

    /// Whether an MQTT 5.0 packet of this type may carry this code.
    pub fn is_allowed_in(self, packet: PacketType) -> bool {
        Self::allowed_in(packet).contains(&self)
    }

    /// The MQTT 3.x CONNACK return code for this reason:
    ///
    /// | 5.0 reason | 3.x return code |
    /// |---|---|
    /// | Success | 0 accepted |
    /// | Unsupported Protocol Version | 1 unacceptable protocol version |
    /// | Client Identifier not valid | 2 identifier rejected |
    /// | Bad User Name or Password, Bad authentication method | 4 bad user name or password |
    /// | Not authorized, Banned | 5 not authorized |
    /// | any other failure | 3 server unavailable |
    pub const fn to_v3_connack(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::UnsupportedProtocolVersion => 1,
            Self::ClientIdentifierNotValid => 2,
            Self::BadUserNameOrPassword | Self::BadAuthenticationMethod => 4,
            Self::NotAuthorized | Self::Banned => 5,
            _ => 3,
        }
    }

    /// The reason for an MQTT 3.x CONNACK return code (0 to 5).
    pub const fn from_v3_connack(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Success,
            1 => Self::UnsupportedProtocolVersion,
            2 => Self::ClientIdentifierNotValid,
            3 => Self::ServerUnavailable,
            4 => Self::BadUserNameOrPassword,
            5 => Self::NotAuthorized,
            _ => return None,
        })
    }

    /// The MQTT 3.x SUBACK return code: the granted QoS, or 0x80 for any failure.
    pub const fn to_v3_suback(self) -> u8 {
        match self {
            Self::Success | Self::GrantedQoS1 | Self::GrantedQoS2 => self.get(),
            _ => 0x80,
        }
    }

    /// The reason for an MQTT 3.x SUBACK return code (0, 1, 2 or 0x80).
    pub const fn from_v3_suback(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Success,
            1 => Self::GrantedQoS1,
            2 => Self::GrantedQoS2,
            0x80 => Self::UnspecifiedError,
            _ => return None,
        })
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} (0x{:02X})", self, self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_value() {
        assert_eq!(ReasonCode::ALL.len(), 43);
        for &code in ReasonCode::ALL {
            assert_eq!(ReasonCode::from_u8(code.get()), Some(code));
        }
        assert_eq!(ReasonCode::from_u8(0x03), None);
        assert_eq!(ReasonCode::from_u8(0xFF), None);
    }

    #[test]
    fn every_code_is_allowed_somewhere() {
        let types = [
            PacketType::ConnAck,
            PacketType::PubAck,
            PacketType::PubRec,
            PacketType::PubRel,
            PacketType::PubComp,
            PacketType::SubAck,
            PacketType::UnsubAck,
            PacketType::Disconnect,
            PacketType::Auth,
        ];
        for &code in ReasonCode::ALL {
            assert!(
                types.iter().any(|&t| code.is_allowed_in(t)),
                "{code} is allowed nowhere"
            );
        }
    }

    #[test]
    fn v3_connack_codes_map_both_ways() {
        for code in 0..=5 {
            let reason = ReasonCode::from_v3_connack(code).unwrap();
            assert_eq!(reason.to_v3_connack(), code);
        }
        assert_eq!(ReasonCode::from_v3_connack(6), None);
        assert_eq!(ReasonCode::Banned.to_v3_connack(), 5);
        assert_eq!(ReasonCode::ServerBusy.to_v3_connack(), 3);
    }

    #[test]
    fn v3_suback_codes_map_both_ways() {
        for code in [0, 1, 2, 0x80] {
            assert_eq!(
                ReasonCode::from_v3_suback(code).unwrap().to_v3_suback(),
                code
            );
        }
        assert_eq!(ReasonCode::NotAuthorized.to_v3_suback(), 0x80);
        assert_eq!(ReasonCode::from_v3_suback(3), None);
    }
}
