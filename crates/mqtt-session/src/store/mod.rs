//! Where persistent sessions and retained messages are kept across restarts.
//!
//! The broker keeps every session in memory while it runs; the store is written behind it. A
//! persistent session with a journal ([`Limits::journal`](crate::Limits::journal)) records each
//! change of its durable state as a [`Change`] (a message queued, sent, acknowledged; a
//! subscription; a QoS 2 packet identifier; its expiry clock), and the broker hands the
//! changes to [`SessionStore::record`] in order, under the session's lock. Retained messages go
//! to [`SessionStore::retain`]. Every record gets a sequence number; an acknowledgement that
//! depends on a record (a PUBACK, a SUBACK, a PUBLISH sent with its packet identifier) goes out
//! only once [`SessionStore::durable`] has reached it.
//!
//! Two stores: [`MemoryStore`], which keeps nothing (the default: the broker's memory is the
//! only copy, and a restart loses it), and [`DurableStore`], the embedded durable store (an
//! append-only log with checksums, group commit, snapshots and compaction), which a broker
//! opens at start-up to get back what it held ([`Recovered`]).

mod durable;
mod record;
mod state;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_codec::{Publish, QoS, TopicName};

use crate::session::{Change, Delivery, StoredSession};

pub use durable::{DurableStore, StoreError, StoreOptions, SyncPolicy};

/// The kinds of store file, for the fuzz targets (which write files of their own).
#[cfg(fuzzing)]
#[derive(Debug, Clone, Copy)]
pub enum FuzzFile {
    /// A log.
    Log,
    /// A snapshot.
    Snapshot,
}

#[cfg(fuzzing)]
impl FuzzFile {
    /// The valid header of such a file.
    pub fn header(self) -> Vec<u8> {
        record::header(match self {
            Self::Log => record::FileKind::Log,
            Self::Snapshot => record::FileKind::Snapshot,
        })
        .to_vec()
    }
}

/// A retained message as the store keeps it.
#[derive(Debug, Clone)]
pub struct StoredRetained {
    /// The message (its topic is the retained topic).
    pub publish: Arc<Publish>,
    /// Its QoS.
    pub qos: QoS,
    /// (5.0) When its Message Expiry Interval ends.
    pub expires_at: Option<Instant>,
}

/// What a durable store held when it was opened.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The persistent sessions, detached; the bodies of their messages stay in the store
    /// until [`SessionStore::load_queued`].
    pub sessions: Vec<StoredSession>,
    /// The retained messages.
    pub retained: Vec<StoredRetained>,
    /// What loading found.
    pub report: RecoveryReport,
}

/// What loading a durable store found, for the broker to log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records read.
    pub records: u64,
    /// Sessions restored.
    pub sessions: usize,
    /// Damaged or torn files, and what was done about each (cut at the last valid record, set
    /// aside): empty after a clean stop or a crash that tore nothing.
    pub damaged: Vec<String>,
    /// Records that named something the store did not have (after damage).
    pub inconsistencies: u64,
    /// Copies of a client's QoS 2 message whose routing was cut short by the stop (dropped:
    /// the client sends the message again, and it is routed then).
    pub uncommitted: u64,
    /// How long loading took.
    pub elapsed: Duration,
}

/// Storage for what must survive a restart: persistent sessions, keyed by client identifier,
/// and retained messages.
///
/// Every method returns or takes sequence numbers: each record stored gets the next one, and
/// [`SessionStore::durable`] says up to which one records are as safe as the store makes them.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Whether what is recorded survives a restart. Sessions keep a journal only for a durable
    /// store.
    fn is_durable(&self) -> bool;

    /// Records changes of the session of `client_id`, in the order they happened. Returns the
    /// sequence number of the last record stored (0 if the store keeps nothing).
    fn record(&self, client_id: &str, changes: Vec<Change>) -> u64;

    /// Records that `topic` now retains `message` (`None`: nothing). Returns the sequence number
    /// of the record.
    fn retain(&self, topic: &TopicName, message: Option<&StoredRetained>) -> u64;

    /// Starts a routing group on this thread: the copies of a client's QoS 2 message recorded
    /// from now until [`SessionStore::commit_group`] count only together with its packet
    /// identifier's record, so that a stop between the two neither loses the message (the
    /// identifier kept, its copies not: the client's resend would be taken for a repeat) nor
    /// doubles it (the copies kept, the identifier not). Returns the group (0: the store keeps
    /// nothing).
    fn begin_group(&self) -> u64;

    /// Ends the group on this thread with the record of the client's QoS 2 packet identifier
    /// (`marker`: its client identifier and packet identifier), which commits the group's
    /// copies; without a marker (the client's session no longer awaits the identifier: it was
    /// discarded meanwhile) a plain commit. Returns the commit's sequence number. Call it under
    /// the client's session lock, so that nothing of that session comes between.
    fn commit_group(&self, group: u64, marker: Option<(&str, mqtt_codec::PacketId)>) -> u64;

    /// The sequence number of the last record stored.
    fn appended(&self) -> u64;

    /// Records up to this sequence number are as safe as the sync policy makes them: what
    /// depends on them may be acknowledged.
    fn durable(&self) -> u64;

    /// Calls `f` with the new [`SessionStore::durable`] whenever it advances (from the store's
    /// own thread: `f` must be quick).
    fn on_durable(&self, f: Box<dyn Fn(u64) + Send + Sync>);

    /// The bodies of queued messages that a session keeps only in the store
    /// ([`Session::spilled_entries`](crate::Session::spilled_entries)), for
    /// [`Session::fill`](crate::Session::fill). `None` for one that cannot be read.
    fn load_queued(&self, client_id: &str, entries: &[u64]) -> Vec<(u64, Option<Delivery>)>;

    /// Blocks until everything recorded is written (and synced, as the policy says), for a
    /// clean stop.
    fn flush(&self);
}

/// Keeps nothing: what the broker uses when persistence is off. Sessions then keep no journal
/// and their messages stay in memory; a persistent session survives its client's
/// disconnection, not a restart of the broker.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryStore;

impl MemoryStore {
    /// The store.
    pub fn new() -> Self {
        Self
    }
}

impl SessionStore for MemoryStore {
    fn is_durable(&self) -> bool {
        false
    }

    fn record(&self, _: &str, _: Vec<Change>) -> u64 {
        0
    }

    fn retain(&self, _: &TopicName, _: Option<&StoredRetained>) -> u64 {
        0
    }

    fn begin_group(&self) -> u64 {
        0
    }

    fn commit_group(&self, _: u64, _: Option<(&str, mqtt_codec::PacketId)>) -> u64 {
        0
    }

    fn appended(&self) -> u64 {
        0
    }

    fn durable(&self) -> u64 {
        u64::MAX
    }

    fn on_durable(&self, _: Box<dyn Fn(u64) + Send + Sync>) {}

    fn load_queued(&self, _: &str, entries: &[u64]) -> Vec<(u64, Option<Delivery>)> {
        entries.iter().map(|&e| (e, None)).collect()
    }

    fn flush(&self) {}
}
