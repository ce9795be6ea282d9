//! Topic names and topic filters for MQTT 3.1, 3.1.1 and 5.0.
//!
//! This is the lowest layer of the workspace: it has no I/O, reads no clock and depends on nothing
//! of ours. It provides the validated newtypes every other layer passes around:
//!
//! - [`MqttString`]: a UTF-8 Encoded String as the standard defines it (well-formed UTF-8, no
//!   U+0000, at most 65,535 bytes), stored as a zero-copy [`bytes::Bytes`] slice. The codec decodes
//!   every string field of every packet into it.
//! - [`TopicName`]: what a PUBLISH is sent to. No wildcard characters.
//! - [`TopicFilter`]: what a SUBSCRIBE asks for. `+` only as a whole level, `#` only as the whole
//!   last level, and the shared-subscription form `$share/{ShareName}/{filter}` parsed and checked.
//!
//! ```
//! use mqtt_topic::{TopicFilter, TopicName};
//!
//! let name = TopicName::try_from("sport/tennis/player1")?;
//! assert_eq!(name.levels().count(), 3);
//!
//! let filter = TopicFilter::try_from("$share/group/sport/+/player1")?;
//! assert_eq!(filter.share_name(), Some("group"));
//! assert_eq!(filter.filter(), "sport/+/player1");
//!
//! assert!(TopicFilter::try_from("sport/tennis#").is_err()); // `#` must be a whole level
//! # Ok::<(), mqtt_topic::Error>(())
//! ```
//!
//! What it deliberately does not do (yet): the subscription index and matching arrive with their
//! own issue; the types here are what they will be built on.
//!
//! Empty levels are significant (`a//b` has three levels) and topics are compared byte for byte:
//! no normalisation of any kind is applied [MQTT-4.7.3-4].

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod error;
mod filter;
#[cfg(fuzzing)]
pub mod fuzzing;
mod index;
mod intern;
mod matching;
pub mod naive;
mod name;
mod retained;
mod string;
mod subscription;

pub use error::Error;
pub use filter::TopicFilter;
pub use index::{
    DefaultShareRng, Delivery, IndexStats, Publisher, SessionKey, ShareRng, ShareStrategy,
    SubscriptionData, SubscriptionIds, SubscriptionIndex,
};
pub use matching::filter_matches;
pub use name::TopicName;
pub use retained::RetainedTree;
pub use string::MqttString;
pub use subscription::{QoS, RetainHandling, SubscriptionId, SubscriptionOptions};
