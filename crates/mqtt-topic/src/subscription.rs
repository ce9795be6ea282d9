//! The values a subscription is made of: quality of service, the MQTT 5.0 subscription
//! options, and subscription identifiers. They live here, below the codec, because the
//! subscription index stores them; the codec re-exports them.

use std::num::NonZeroU32;

/// Quality of service of a message or the maximum of a subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum QoS {
    /// QoS 0: at most once.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: at least once.
    AtLeastOnce = 1,
    /// QoS 2: exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS with this wire value, if it is 0, 1 or 2.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }
}

/// Whether retained messages are sent when a subscription is made (MQTT 5.0 section 3.8.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// 1: send them only if the subscription did not already exist.
    SendAtSubscribeIfNew = 1,
    /// 2: do not send retained messages at the time of the subscribe.
    DoNotSend = 2,
}

impl RetainHandling {
    /// The value with this wire encoding, if it is 0, 1 or 2.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::SendAtSubscribe),
            1 => Some(Self::SendAtSubscribeIfNew),
            2 => Some(Self::DoNotSend),
            _ => None,
        }
    }
}

/// The options byte that follows each topic filter of a SUBSCRIBE. Before MQTT 5.0 only `qos`
/// exists on the wire; the other fields are then always their defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SubscriptionOptions {
    /// The maximum QoS the subscriber accepts.
    pub qos: QoS,
    /// (5.0) Do not forward messages published by this same client.
    pub no_local: bool,
    /// (5.0) Keep the RETAIN flag of forwarded messages as published.
    pub retain_as_published: bool,
    /// (5.0) Whether retained messages are sent when subscribing.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with this maximum QoS and every MQTT 5 option at its default.
    pub const fn new(qos: QoS) -> Self {
        Self {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }
    }
}

/// A Subscription Identifier: 1 to 268,435,455 (MQTT 5.0 section 3.8.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(NonZeroU32);

impl SubscriptionId {
    /// The largest identifier a Variable Byte Integer can carry.
    pub const MAX: u32 = 268_435_455;

    /// The identifier with this value, if it is in 1..=268,435,455.
    pub const fn new(value: u32) -> Option<Self> {
        if value > Self::MAX {
            return None;
        }
        match NonZeroU32::new(value) {
            Some(id) => Some(Self(id)),
            None => None,
        }
    }

    /// The value.
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_id_range() {
        assert!(SubscriptionId::new(0).is_none());
        assert_eq!(SubscriptionId::new(1).map(SubscriptionId::get), Some(1));
        assert!(SubscriptionId::new(268_435_455).is_some());
        assert!(SubscriptionId::new(268_435_456).is_none());
    }

    #[test]
    fn qos_orders_by_level() {
        assert!(QoS::AtMostOnce < QoS::AtLeastOnce && QoS::AtLeastOnce < QoS::ExactlyOnce);
        assert_eq!(QoS::from_u8(2), Some(QoS::ExactlyOnce));
        assert_eq!(QoS::from_u8(3), None);
    }
}
