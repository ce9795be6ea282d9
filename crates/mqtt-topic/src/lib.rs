//! Topics for MQTT 3.1, 3.1.1 and 5.0: the validated types, and the structures that decide who
//! receives a message.
//!
//! This is the lowest layer of the workspace: it has no I/O, reads no clock and depends on nothing
//! of ours. It provides:
//!
//! - [`MqttString`]: a UTF-8 Encoded String as the standard defines it (well-formed UTF-8, no
//!   U+0000, at most 65,535 bytes), stored as a zero-copy [`bytes::Bytes`] slice. The codec decodes
//!   every string field of every packet into it.
//! - [`TopicName`]: what a PUBLISH is sent to. No wildcard characters.
//! - [`TopicFilter`]: what a SUBSCRIBE asks for. `+` only as a whole level, `#` only as the whole
//!   last level, and the shared-subscription form `$share/{ShareName}/{filter}` parsed and checked.
//!   Both have a `check_levels(max)` for the broker's limit on topic depth.
//! - [`QoS`], [`SubscriptionOptions`], [`SubscriptionId`]: what a subscription is made of (the
//!   codec re-exports them).
//! - [`SubscriptionIndex`]: subscriptions keyed by (session, filter); [`SubscriptionIndex::matches`]
//!   finds, for a topic, one [`Delivery`] per session (the highest QoS of its matching
//!   subscriptions, all their identifiers) and one per matching shared group, to the member its
//!   [`ShareStrategy`] picks among the available ones.
//! - [`RetainedTree`]: retained messages by topic, looked up by filter touching only the matching
//!   subtrees.
//! - [`filter_matches`] and [`naive::NaiveIndex`]: the rules written as plainly as possible, the
//!   oracle the index is tested (and fuzzed) against.
//!
//! ```
//! use mqtt_topic::{Publisher, QoS, SubscriptionData, SubscriptionIndex, TopicFilter, TopicName};
//!
//! let mut index = SubscriptionIndex::new();
//! index.insert(1u32, &TopicFilter::try_from("sport/+/player1")?, SubscriptionData::new(QoS::AtLeastOnce));
//! index.insert(2u32, &TopicFilter::try_from("sport/#")?, SubscriptionData::new(QoS::AtMostOnce));
//!
//! let mut deliveries = Vec::new();
//! let publisher = Publisher { session: None, client_id: "scoreboard" };
//! index.matches(&TopicName::try_from("sport/tennis/player1")?, publisher, &mut deliveries);
//! assert_eq!(deliveries.len(), 2);
//!
//! let filter = TopicFilter::try_from("$share/group/sport/+/player1")?;
//! assert_eq!(filter.share_name(), Some("group"));
//! assert!(TopicFilter::try_from("sport/tennis#").is_err()); // `#` must be a whole level
//! # Ok::<(), mqtt_topic::Error>(())
//! ```
//!
//! # Performance and concurrency
//!
//! The index is a trie over topic levels in flat arenas (see [`SubscriptionIndex`]): matching
//! costs time in the depth of the topic and the number of matches, not the number of
//! subscriptions (0.4 µs at a million subscriptions on the project machine, against 300 µs for a
//! linear scan of just ten thousand), and a subscription costs under 200 bytes. Figures and the
//! command that measures them are in `docs/benchmarks.md`.
//!
//! For a multi-core broker, share it as a [`SharedIndex`]: matching threads read through a
//! sharded reader-writer lock and do not contend with each other; changes (rare next to
//! matches) lock every shard. We measured the alternatives before choosing: a plain `RwLock`
//! gives two matching threads no more than one (every read writes the lock's single reader
//! count, and the cache line bounces between the cores), while the sharded lock runs close to
//! two threads with no lock at all. Copy-on-write
//! snapshots were ruled out because a change would copy an index of a million subscriptions,
//! and per-core replicas because they multiply the memory by the number of cores.
//!
//! What it deliberately does not do: it knows nothing of connections, message queues or
//! persistence. Whether a chosen shared-group member actually gets the message (and what
//! happens to its unacknowledged messages when it leaves) is the broker's business.
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
    SharedIndex, SubscriptionData, SubscriptionIds, SubscriptionIndex,
};
pub use matching::filter_matches;
pub use name::TopicName;
pub use retained::RetainedTree;
pub use string::MqttString;
pub use subscription::{QoS, RetainHandling, SubscriptionId, SubscriptionOptions};
