//! The broker core: sessions by client identifier, routing, subscriptions, retained messages,
//! wills and counters. No sockets and no clock of its own: the tokio driver (`server.rs`) calls
//! it, and so do the tests, directly, with the time as a parameter.
//!
//! # Concurrency
//!
//! Nothing here is a single thread or a single lock on the publish path. A message is routed on
//! the task of the connection that published it: the subscription index is read through its
//! sharded lock ([`mqtt_topic::SharedIndex`]), the sessions by key through another
//! ([`crossbeam_utils::sync::ShardedLock`]), and each receiving session is locked just long
//! enough to take the message, then its connection task is woken. Locks are always taken in
//! this order, never the other way round: the registry of client identifiers, then one session;
//! the index is never held while a session is locked.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_utils::sync::ShardedLock;
use mqtt_codec::{
    ConnAckProperties, Connect, Packet, ProtocolVersion, Publish, QoS, QosPid, ReasonCode,
    RetainHandling, SubAck, Subscribe, UnsubAck, Unsubscribe, Will,
};
use mqtt_session::store::{MemoryStore, Recovered, SessionStore, StoredRetained};
use mqtt_session::{Action, Attach, Change, Close, Delivery, DeliveryExtras, Limits, Session};
use mqtt_topic::{
    MqttString, Publisher, RetainedTree, SharedIndex, SubscriptionData, SubscriptionIndex,
    TopicName,
};
use tokio::sync::{Notify, watch};

use crate::config::Config;

/// Warnings caused by clients, at most this many a second (then one line says how many were
/// suppressed): a flood of bad clients cannot flood the log.
const WARNINGS_PER_SECOND: u64 = 20;

/// The rate limit of client-caused warnings, shared by the whole process.
pub(crate) static WARNINGS: RateLimit = RateLimit::new(WARNINGS_PER_SECOND);

/// A per-second budget of log lines.
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_second: u64,
    window: AtomicU64,
    count: AtomicU64,
}

impl RateLimit {
    const fn new(per_second: u64) -> Self {
        Self {
            per_second,
            window: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Whether one more line may be logged now.
    pub(crate) fn allow(&self) -> bool {
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.window.swap(second, Ordering::Relaxed) != second {
            let suppressed = self
                .count
                .swap(0, Ordering::Relaxed)
                .saturating_sub(self.per_second);
            if suppressed > 0 {
                tracing::warn!(suppressed, "client warnings suppressed in the last second");
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed) < self.per_second
    }
}

/// The index's key for a session: small and dense, reused after the session ends.
pub type SessionKey = u32;

/// Decides whether a client may connect. The default allows everyone; real authentication
/// arrives with its own issue.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// Checks a CONNECT's credentials.
    ///
    /// # Errors
    /// The reason to refuse the connection with (in MQTT 3.x terms: bad user name or password,
    /// or not authorized).
    fn authenticate(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<(), ReasonCode>;
}

/// Lets every client in.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllowAll;

impl Authenticator for AllowAll {
    fn authenticate(&self, _: &str, _: Option<&str>, _: Option<&[u8]>) -> Result<(), ReasonCode> {
        Ok(())
    }
}

/// A session as the broker holds it: the state machine behind a lock.
#[derive(Debug)]
pub struct SessionHandle {
    key: SessionKey,
    client_id: MqttString,
    slot: Mutex<Slot>,
    /// Where the session's changes are recorded (when it keeps a journal).
    store: Arc<dyn SessionStore>,
    /// Whether the store is durable (the session keeps a journal): without, a guard has
    /// nothing to commit, and does not look.
    journal: bool,
    /// Serializes the changes to the session's subscriptions (SUBSCRIBE, UNSUBSCRIBE) with a
    /// takeover, so that a subscription of the old connection can never land in the new
    /// connection's session. Lock order: `changes`, then retained, index, slot.
    changes: Mutex<()>,
}

/// The locked part of a session handle.
#[derive(Debug)]
pub struct Slot {
    /// The session.
    pub session: Session,
    /// The generation of the connection attached (0: none). A connection whose generation no
    /// longer matches was taken over and must stop.
    pub owner: u64,
    /// Wakes the attached connection's writer: it has something to write, or was taken over.
    /// Each connection has its own, so a takeover can never wake the wrong one.
    pub waker: Option<Arc<Notify>>,
    /// The generation of the connection that last detached: a timer set then is still valid
    /// only while the session stays detached (`owner == 0`) with this value.
    detached: u64,
    /// While detached: when the session expires (`None`: never).
    expires_at: Option<Instant>,
    /// (5.0) While detached: a will waiting for its Will Delay Interval, and when it is due.
    /// Boxed: most sessions never have one, and every session has a slot.
    delayed_will: Option<Box<(Instant, Will)>>,
    /// When this session's entry in the timer heap is due (one live entry per session; others
    /// are stale and skipped).
    scheduled: Option<Instant>,
    /// The store's sequence number that must be durable before what is now in the outbox may
    /// be written: the records it depends on (its packet identifiers, its subscriptions, the
    /// copies of a message it acknowledges).
    pub need: u64,
    /// While this is not 0 the outbox stays unwritten: a message this session published is
    /// being routed (its acknowledgement waits for the routing and its records), or this
    /// session got a copy of a client's QoS 2 message whose routing is not committed yet.
    pub holds: u32,
}

impl Slot {
    /// The next time a timer of this detached session is due.
    fn next_deadline(&self) -> Option<Instant> {
        let will = self.delayed_will.as_ref().map(|d| d.0);
        match (self.expires_at, will) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether a timer entry due at `deadline` must be pushed: none live, or a later one.
    /// Records it as the live one.
    fn schedule(&mut self, deadline: Option<Instant>) -> Option<Instant> {
        let deadline = deadline?;
        if self.scheduled.is_some_and(|s| s <= deadline) {
            return None;
        }
        self.scheduled = Some(deadline);
        Some(deadline)
    }
}

impl Slot {
    /// Wakes the attached connection, if any.
    pub fn wake(&self) {
        if let Some(w) = &self.waker {
            w.notify_one();
        }
    }
}

/// A locked session. Dropping it (or [`SlotGuard::commit`]) hands the changes the session
/// recorded to the store, and raises [`Slot::need`] to their sequence number when what the
/// session says next depends on them: nothing can be written before the records it depends
/// on.
#[derive(Debug)]
pub struct SlotGuard<'a> {
    guard: MutexGuard<'a, Slot>,
    handle: &'a SessionHandle,
}

impl SlotGuard<'_> {
    /// Records the session's changes now; the outbox waits for them if it depends on them
    /// ([`Session::changes_gate_output`]).
    pub fn commit(&mut self) {
        if self.handle.journal && self.guard.session.has_changes() {
            let gates = self.guard.session.changes_gate_output();
            let changes = self.guard.session.take_changes();
            let lsn = self
                .handle
                .store
                .record(self.handle.client_id.as_str(), changes);
            if gates {
                self.guard.need = self.guard.need.max(lsn);
            }
        }
    }
}

impl std::ops::Deref for SlotGuard<'_> {
    type Target = Slot;

    fn deref(&self) -> &Slot {
        &self.guard
    }
}

impl std::ops::DerefMut for SlotGuard<'_> {
    fn deref_mut(&mut self) -> &mut Slot {
        &mut self.guard
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.commit();
    }
}

impl SessionHandle {
    /// The session's key in the index.
    pub fn key(&self) -> SessionKey {
        self.key
    }

    /// The client identifier.
    pub fn client_id(&self) -> &MqttString {
        &self.client_id
    }

    /// Locks the session.
    pub fn lock(&self) -> SlotGuard<'_> {
        // A panic while the lock was held cannot leave the machine half-updated in a way that
        // matters more than losing the broker: recover the guard.
        SlotGuard {
            guard: self.slot.lock().unwrap_or_else(PoisonError::into_inner),
            handle: self,
        }
    }
}

/// A retained message.
#[derive(Debug, Clone)]
struct Retained {
    publish: Arc<Publish>,
    qos: QoS,
    /// (5.0) When its Message Expiry Interval ends.
    expires_at: Option<Instant>,
}

/// A session waiting, detached, for its will delay or its expiry.
#[derive(Debug)]
struct Timer {
    at: Instant,
    handle: Arc<SessionHandle>,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// Counters, shared by every task (Mosquitto's `$SYS/broker/...` names in the comments).
#[derive(Debug, Default)]
pub struct Stats {
    /// Clients connected now (`clients/connected`).
    pub connected: AtomicUsize,
    /// Most clients connected at once (`clients/maximum`).
    pub max_connected: AtomicUsize,
    /// Messages received, all packets (`messages/received`).
    pub messages_received: AtomicU64,
    /// Messages sent, all packets (`messages/sent`).
    pub messages_sent: AtomicU64,
    /// Bytes received (`bytes/received`).
    pub bytes_received: AtomicU64,
    /// Bytes sent (`bytes/sent`).
    pub bytes_sent: AtomicU64,
    /// PUBLISH packets received (`publish/messages/received`).
    pub publish_received: AtomicU64,
    /// PUBLISH packets sent (`publish/messages/sent`).
    pub publish_sent: AtomicU64,
    /// Messages dropped because a session's queue was full (`publish/messages/dropped`).
    pub publish_dropped: AtomicU64,
    /// (5.0) Messages not sent because they were larger than the client's Maximum Packet Size.
    pub publish_too_large: AtomicU64,
    /// (5.0) Messages not sent because their Message Expiry Interval had passed.
    pub publish_expired: AtomicU64,
    /// Persistent sessions that expired.
    pub sessions_expired: AtomicU64,
}

/// What a connection does after a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// (5.0) The client sent AUTH: the connection carries on the authentication exchange.
    Auth(Box<mqtt_codec::Auth>),
    /// Carry on.
    Continue,
    /// The client said DISCONNECT: close, publishing the will only if it asked for that
    /// (5.0 reason 0x04).
    Disconnect {
        /// Whether the will is published all the same.
        publish_will: bool,
    },
    /// Another connection took the session over: stop, touching nothing.
    TakenOver,
}

/// (5.0) A successful enhanced authentication exchange.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The method's name.
    pub method: String,
    /// The authenticated user.
    pub user: String,
    /// The method's last data for the client (sent in CONNACK).
    pub data: Option<Bytes>,
}

/// A successful connect: the session to drive and what to tell the client.
#[derive(Debug)]
pub struct Connected {
    /// The session.
    pub handle: Arc<SessionHandle>,
    /// This connection's generation in the session.
    pub generation: u64,
    /// Notified when the session has something for this connection to write, or when another
    /// connection takes the session over.
    pub waker: Arc<Notify>,
    /// CONNACK's session present flag.
    pub session_present: bool,
    /// Set when the broker chose the client identifier (the client sent an empty one).
    pub assigned_client_id: Option<MqttString>,
    /// (5.0) The CONNACK properties: the server's limits and what it changed of the client's
    /// requests.
    pub properties: ConnAckProperties,
    /// (5.0) The client's Maximum Packet Size (the protocol's maximum if it set none).
    pub max_packet_size: u32,
    /// The store's sequence number that must be durable before CONNACK goes out (what it
    /// says of the session: resumed, or discarded).
    pub need: u64,
}

/// The broker: everything the connection tasks share.
#[derive(Debug)]
pub struct Broker {
    config: Config,
    limits: Limits,
    index: SharedIndex<SessionKey>,
    by_id: Mutex<HashMap<MqttString, Arc<SessionHandle>>>,
    by_key: ShardedLock<Vec<Option<Arc<SessionHandle>>>>,
    free_keys: Mutex<Vec<SessionKey>>,
    retained: RwLock<RetainedTree<Retained>>,
    store: Arc<dyn SessionStore>,
    authenticator: Arc<dyn Authenticator>,
    auth_methods: Vec<Arc<dyn crate::auth::AuthMethod>>,
    timers: Mutex<BinaryHeap<Reverse<Timer>>>,
    /// The store's durable sequence number, for connections waiting to write.
    durable: Arc<watch::Sender<u64>>,
    generations: AtomicU64,
    assigned_ids: AtomicU64,
    id_hasher: std::collections::hash_map::RandomState,
    started: Instant,
    /// The counters.
    pub stats: Stats,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Broker {
    /// A broker with this configuration, sessions kept in memory, and everyone allowed in.
    pub fn new(config: Config, now: Instant) -> Self {
        Self::with(
            config,
            now,
            Arc::new(MemoryStore::new()),
            Arc::new(AllowAll),
        )
    }

    /// A broker with this configuration, and what it asks for beyond the defaults: the
    /// SCRAM-SHA-256 credentials of `scram_users_file`; with `persistence`, the durable store
    /// in `data_dir`, opened and loaded ([`Broker::restore`]).
    ///
    /// # Errors
    /// A file the configuration names that cannot be read or parsed; a data directory that
    /// cannot be used (not a damaged store: that loads its valid part).
    pub fn from_config(config: Config, now: Instant) -> Result<Self, String> {
        Self::from_config_at(config, now, std::time::SystemTime::now())
    }

    /// [`Broker::from_config`] with the wall-clock time of `now` given: the durable store keeps
    /// wall-clock times (tests run the broker on a virtual clock).
    ///
    /// # Errors
    /// As [`Broker::from_config`].
    pub fn from_config_at(
        config: Config,
        now: Instant,
        wall: std::time::SystemTime,
    ) -> Result<Self, String> {
        let scram = config.scram_users_file.clone();
        let mut broker = if config.persistence {
            let dir = std::path::PathBuf::from(&config.data_dir);
            let options = mqtt_session::store::StoreOptions {
                sync: config.sync,
                batch_interval: Duration::from_millis(config.sync_batch_ms),
                ..mqtt_session::store::StoreOptions::default()
            };
            let (store, recovered) =
                mqtt_session::store::DurableStore::open(&dir, options, now, wall)
                    .map_err(|e| format!("data_dir: {e}"))?;
            let broker = Self::with(config, now, Arc::new(store), Arc::new(AllowAll));
            broker.restore(recovered, now);
            broker
        } else {
            Self::new(config, now)
        };
        if !scram.is_empty() {
            let method = crate::auth::ScramMethod::from_file(std::path::Path::new(&scram))
                .map_err(|e| format!("scram_users_file: {e}"))?;
            broker.add_auth_method(Arc::new(method));
        }
        Ok(broker)
    }

    /// A broker with its own session store and authenticator.
    pub fn with(
        config: Config,
        now: Instant,
        store: Arc<dyn SessionStore>,
        authenticator: Arc<dyn Authenticator>,
    ) -> Self {
        let limits = Limits {
            journal: store.is_durable(),
            max_inflight: config.max_inflight,
            max_queued_messages: config.max_queued_messages,
            max_queued_bytes: config.max_queued_bytes,
            queue_qos0_offline: config.queue_qos0_offline,
            max_incoming_qos2: config.max_incoming_qos2,
            max_topic_alias: config.max_topic_alias,
            validate_utf8_payload: config.validate_utf8_payload,
            max_session_expiry: config.max_session_expiry_secs,
        };
        let durable = Arc::new(watch::channel(store.durable()).0);
        {
            let durable = Arc::clone(&durable);
            store.on_durable(Box::new(move |lsn| {
                durable.send_replace(lsn);
            }));
        }
        Self {
            config,
            limits,
            index: SharedIndex::new(SubscriptionIndex::new()),
            by_id: Mutex::new(HashMap::new()),
            by_key: ShardedLock::new(Vec::new()),
            free_keys: Mutex::new(Vec::new()),
            retained: RwLock::new(RetainedTree::new()),
            store,
            authenticator,
            auth_methods: Vec::new(),
            timers: Mutex::new(BinaryHeap::new()),
            durable,
            generations: AtomicU64::new(1),
            assigned_ids: AtomicU64::new(0),
            id_hasher: std::collections::hash_map::RandomState::new(),
            started: now,
            stats: Stats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// (5.0) Offers an enhanced authentication method (replacing one of the same name).
    pub fn add_auth_method(&mut self, method: Arc<dyn crate::auth::AuthMethod>) {
        self.auth_methods.retain(|m| m.name() != method.name());
        self.auth_methods.push(method);
    }

    /// (5.0) The enhanced authentication method of this name, if offered.
    pub fn auth_method(&self, name: &str) -> Option<Arc<dyn crate::auth::AuthMethod>> {
        self.auth_methods.iter().find(|m| m.name() == name).cloned()
    }

    /// The session store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// Waits until the store's records up to `lsn` are durable (at once when they are, or when
    /// the store keeps nothing).
    pub async fn wait_durable(&self, lsn: u64) {
        if self.store.durable() >= lsn {
            return;
        }
        let mut rx = self.durable.subscribe();
        let _ = rx.wait_for(|&d| d >= lsn).await;
    }

    /// Puts back what a durable store held at start-up: the persistent sessions (detached, with
    /// their subscriptions in the index and their timers running) and the retained messages.
    /// A session whose client was connected when the broker stopped without a clean shutdown
    /// is taken as disconnected now.
    pub fn restore(&self, recovered: Recovered, now: Instant) {
        let Recovered {
            sessions,
            retained,
            report,
        } = recovered;
        for damage in &report.damaged {
            tracing::warn!("store: {damage}");
        }
        if report.inconsistencies > 0 {
            tracing::warn!(
                inconsistencies = report.inconsistencies,
                "store: records that did not fit the state were skipped"
            );
        }
        if report.uncommitted > 0 {
            tracing::info!(
                copies = report.uncommitted,
                "store: copies of QoS 2 messages whose routing the stop cut short were dropped \
                 (their publishers send them again)"
            );
        }
        {
            let mut tree = self
                .retained
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for r in &retained {
                tree.insert(
                    r.publish.topic.clone(),
                    Retained {
                        publish: Arc::clone(&r.publish),
                        qos: r.qos,
                        expires_at: r.expires_at,
                    },
                );
            }
        }
        let count = sessions.len();
        let mut lost_wills = Vec::new();
        for stored in sessions {
            let detached_at = stored.detached_at;
            let mut delayed_will = stored.delayed_will.clone();
            // The connection that was attached when the broker stopped was lost: its will is
            // due now, or after its delay.
            let mut lost_will = stored
                .connection_will
                .clone()
                .filter(|_| detached_at.is_none());
            if let Some(w) = lost_will.take_if(|w| will_delay(w) > 0) {
                let at = now + Duration::from_secs(u64::from(will_delay(&w)));
                delayed_will = Some((at, w));
            }
            let session = Session::from_stored(stored, self.limits);
            let client_id = session.client_id().clone();
            let expiry = session.expiry_interval();
            let key = self.allocate_key();
            let handle = Arc::new(SessionHandle {
                key,
                client_id: client_id.clone(),
                slot: Mutex::new(Slot {
                    session,
                    owner: 0,
                    waker: None,
                    detached: 0,
                    expires_at: None,
                    delayed_will: delayed_will.map(Box::new),
                    scheduled: None,
                    need: 0,
                    holds: 0,
                }),
                store: Arc::clone(&self.store),
                journal: self.limits.journal,
                changes: Mutex::new(()),
            });
            let timer = {
                let mut slot = handle.lock();
                let since = detached_at.unwrap_or_else(|| {
                    // Connected when the broker went down: disconnected now.
                    slot.session.record(Change::Detached { at: now });
                    now
                });
                if detached_at.is_none()
                    && let Some((at, will)) = &slot.delayed_will.as_deref().cloned()
                {
                    slot.session.record(Change::DelayedWill {
                        at: *at,
                        will: will.clone(),
                    });
                }
                slot.expires_at =
                    (expiry < u32::MAX).then(|| since + Duration::from_secs(u64::from(expiry)));
                let next = slot.next_deadline();
                let timer = slot.schedule(next);
                let mut index = self.index.write();
                for (filter, data) in slot.session.subscriptions() {
                    index.insert(key, filter, *data);
                }
                index.set_available(key, false);
                timer
            };
            {
                let mut by_id = lock(&self.by_id);
                self.set_key(key, Some(Arc::clone(&handle)));
                by_id.insert(client_id, Arc::clone(&handle));
            }
            if let Some(at) = timer {
                self.push_timer(at, &handle);
            }
            if let Some(will) = lost_will {
                lost_wills.push((handle, will));
            }
        }
        // Published once every session is back, so that every subscriber gets them.
        let wills = lost_wills.len();
        for (handle, will) in lost_wills {
            self.publish_will(will, &handle, now);
        }
        if wills > 0 {
            tracing::info!(
                wills,
                "store: wills of the connections lost with the stop published"
            );
        }
        tracing::info!(
            sessions = count,
            retained = retained.len(),
            records = report.records,
            elapsed_ms = u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
            "store loaded"
        );
    }

    /// Gives a session the bodies of its queued messages that the store keeps (all of them,
    /// or those of shared subscriptions), so that they can be sent or handed on.
    fn fill_spilled(
        &self,
        handle: &SessionHandle,
        slot: &mut Slot,
        shared_only: bool,
        now: Instant,
    ) {
        let entries = slot.session.spilled_entries(shared_only);
        if entries.is_empty() {
            return;
        }
        let loaded = self.store.load_queued(handle.client_id.as_str(), &entries);
        let lost = loaded.iter().filter(|(_, d)| d.is_none()).count();
        if lost > 0 {
            tracing::error!(client_id = %handle.client_id, lost,
                "store: queued messages could not be read back; dropped");
        }
        slot.session.fill(loaded, now);
    }

    /// Blocks until everything recorded is in the store's files (for a clean stop).
    pub fn flush_store(&self) {
        self.store.flush();
    }

    /// When the broker started (for `$SYS/broker/uptime`).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Sessions known (connected or persistent and offline).
    pub fn session_count(&self) -> usize {
        lock(&self.by_id).len()
    }

    /// Subscriptions held.
    pub fn subscription_count(&self) -> usize {
        self.index.read().len()
    }

    /// Retained messages held.
    pub fn retained_count(&self) -> usize {
        self.retained
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The session of `client_id`, if there is one.
    pub fn session(&self, client_id: &str) -> Option<Arc<SessionHandle>> {
        lock(&self.by_id).get(client_id).cloned()
    }

    /// Handles a CONNECT: checks it (client identifier, keep alive, will, credentials), takes
    /// over a session already connected under the same identifier (publishing the old
    /// connection's will unless the session resumes within its will delay), resumes or
    /// discards a stored session as Clean Start says, and attaches the new connection. The
    /// caller then sends CONNACK with [`Connected::properties`].
    ///
    /// # Errors
    /// The CONNACK reason to refuse the connection with.
    pub fn connect(&self, connect: &Connect, now: Instant) -> Result<Connected, ReasonCode> {
        self.connect_authenticated(connect, now, None)
    }

    /// [`Broker::connect`] after an enhanced authentication exchange (5.0 section 4.12) that
    /// succeeded: `authenticated` replaces the user name and password check, and its last data
    /// goes in CONNACK. A CONNECT that names an authentication method needs it.
    ///
    /// # Errors
    /// As [`Broker::connect`]; 0x8C when the CONNECT names a method and no exchange took place.
    pub fn connect_authenticated(
        &self,
        connect: &Connect,
        now: Instant,
        authenticated: Option<&Authenticated>,
    ) -> Result<Connected, ReasonCode> {
        let version = connect.protocol;
        let v5 = version.is_v5();
        let config = &self.config;
        if !config.server_reference.is_empty() {
            // Redirected elsewhere (5.0 section 4.11); a 3.x client is told "unavailable".
            return Err(if config.server_moved {
                ReasonCode::ServerMoved
            } else {
                ReasonCode::UseAnotherServer
            });
        }
        let mut properties = ConnAckProperties::default();
        let mut assigned_client_id = None;
        let client_id = if connect.client_id.is_empty() {
            // MQTT 3.1 requires 1 to 23 characters; 3.1.1 lets the server assign an identifier
            // to a clean session [MQTT-3.1.3-6] and refuses a persistent one [MQTT-3.1.3-8].
            if version == ProtocolVersion::V3_1 || !connect.clean_start {
                return Err(ReasonCode::ClientIdentifierNotValid);
            }
            // Unique (a counter) and not guessable (hashed with this process's random key), so
            // that no client can pick, and take over, an identifier the broker will assign.
            let n = self.assigned_ids.fetch_add(1, Ordering::Relaxed);
            let id = MqttString::try_from(format!("auto-{n}-{:016x}", self.id_hasher.hash_one(n)))
                .map_err(|_| ReasonCode::ServerUnavailable)?;
            assigned_client_id = Some(id.clone());
            if v5 {
                // 5.0: the client learns its identifier from CONNACK [MQTT-3.2.2-16].
                properties.assigned_client_identifier = Some(id.clone());
            }
            id
        } else {
            // Copied so that a session kept for hours does not pin its CONNECT packet.
            connect.client_id.copied_string()
        };
        let too_long = match version {
            ProtocolVersion::V3_1 => client_id.chars().count() > 23,
            _ => client_id.len() > config.max_client_id_len,
        };
        if too_long {
            return Err(ReasonCode::ClientIdentifierNotValid);
        }
        // As Mosquitto: with a maximum below 65,535, a 3.x client asking for more (or for none,
        // keep alive 0) is refused, since 3.x cannot be told to use less; a 5.0 client is told
        // the maximum as Server Keep Alive, which it must use [MQTT-3.2.2-21].
        let max = config.max_keepalive_secs;
        let mut keep_alive = connect.keep_alive;
        if max < u16::MAX && (keep_alive == 0 || keep_alive > max) {
            if !v5 {
                return Err(ReasonCode::ClientIdentifierNotValid);
            }
            keep_alive = max;
            properties.server_keep_alive = Some(max);
        }
        if let Some(will) = &connect.will {
            // A will the server could not publish is refused up front [MQTT-3.2.2-12 and
            // MQTT-3.2.2-13 in 5.0 numbering].
            if will.qos > config.max_qos() {
                return Err(ReasonCode::QoSNotSupported);
            }
            if will.retain && !config.retain_available {
                return Err(ReasonCode::RetainNotSupported);
            }
            if config.validate_utf8_payload
                && will.properties.payload_format_indicator == Some(mqtt_codec::PayloadFormat::Utf8)
                && std::str::from_utf8(&will.payload).is_err()
            {
                return Err(ReasonCode::PayloadFormatInvalid);
            }
        }
        match (&connect.properties.authentication_method, authenticated) {
            // The exchange took place: it is the authentication.
            (Some(_), Some(a)) => {
                properties.authentication_method = MqttString::try_from(a.method.as_str()).ok();
                properties.authentication_data = a.data.clone().map(mqtt_codec::Secret::new);
            }
            // A method nobody ran (5.0 section 4.12: 0x8C).
            (Some(_), None) => return Err(ReasonCode::BadAuthenticationMethod),
            // With enhanced authentication configured, it is the only way in: a CONNECT
            // without a method would otherwise bypass it (3.x: "not authorized", 0x05).
            (None, _) if !self.auth_methods.is_empty() => return Err(ReasonCode::NotAuthorized),
            (None, _) => self.authenticator.authenticate(
                &client_id,
                connect.username.as_deref(),
                connect.password.as_ref().map(|p| p.expose().as_ref()),
            )?,
        }

        // How long the session outlives the connection: 5.0 says it (absent: 0); in 3.x a
        // persistent session lasts until the configured maximum (by default, forever).
        let cap = config.max_session_expiry_secs;
        let asked = if v5 {
            connect.properties.session_expiry_interval.unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            u32::MAX
        };
        if v5 && asked > cap {
            properties.session_expiry_interval = Some(cap);
        }
        let expiry = asked.min(cap);
        let client = &connect.properties;
        let attach = Attach {
            version,
            keep_alive,
            will: connect.will.clone(),
            receive_maximum: client.receive_maximum.map_or(u16::MAX, |r| r.get()),
            max_packet_size: client
                .maximum_packet_size
                .map_or(mqtt_codec::PROTOCOL_MAX_PACKET_SIZE, |m| m.get()),
            topic_alias_maximum: client.topic_alias_maximum.unwrap_or(0),
            requested_session_expiry: asked,
        };
        let max_packet_size = attach.max_packet_size;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let mut old_wills = Vec::new();
        let waker = Arc::new(Notify::new());
        let mut by_id = lock(&self.by_id);
        let existing = by_id.get(&client_id).cloned();
        // Held until the old subscriptions are gone from the index: see `SessionHandle`.
        let changes = existing.as_ref().map(|h| lock(&h.changes));
        let (handle, session_present) = match &existing {
            Some(handle) => {
                let mut slot = handle.lock();
                let expired = slot.owner == 0 && slot.expires_at.is_some_and(|at| now >= at);
                let resume = !connect.clean_start && slot.session.is_persistent() && !expired;
                if slot.owner != 0 {
                    // Takeover [MQTT-3.1.4-2]: the old connection ends as if its network had
                    // failed. Its will is published, unless the session goes on and the will
                    // has a delay: the new connection arrived before it ran out
                    // [MQTT-3.1.3-9].
                    if let Some(will) = slot.session.detach(false) {
                        let delayed = will_delay(&will) > 0;
                        if !(resume && delayed) {
                            old_wills.push(will);
                        }
                    }
                    slot.wake();
                }
                // A will waiting for its delay: cancelled if the session resumes before the delay
                // ran out [MQTT-3.1.3-9], published now if it ran out (the timer may not have
                // run yet) or the session ends here.
                if let Some(delayed) = slot.delayed_will.take() {
                    slot.session.record(Change::WillDone);
                    if !resume || delayed.0 <= now {
                        old_wills.push(delayed.1);
                    }
                }
                slot.expires_at = None;
                if !resume {
                    // Messages of shared subscriptions go to another member: their bodies
                    // first come back from the store.
                    self.fill_spilled(handle, &mut slot, true, now);
                    let orphans = slot.session.take_shared_unacknowledged();
                    // Handed on before the session's records of them are discarded: a crash
                    // in between may double them, never lose them.
                    let need = slot.need;
                    self.redeliver_shared(handle, orphans, now, need);
                    slot.session.clear();
                } else if expiry == 0 {
                    // The session stops being persistent, and the store forgets it: its queue
                    // comes back into memory first.
                    self.fill_spilled(handle, &mut slot, false, now);
                }
                slot.session.set_expiry_interval(expiry);
                slot.owner = generation;
                slot.waker = Some(Arc::clone(&waker));
                slot.session.attach(attach, now);
                drop(slot);
                (Arc::clone(handle), resume)
            }
            None => {
                let key = self.allocate_key();
                let mut session = Session::new(client_id.clone(), expiry > 0, self.limits);
                session.set_expiry_interval(expiry);
                session.attach(attach, now);
                let handle = Arc::new(SessionHandle {
                    key,
                    client_id: client_id.clone(),
                    slot: Mutex::new(Slot {
                        session,
                        owner: generation,
                        waker: Some(Arc::clone(&waker)),
                        detached: 0,
                        expires_at: None,
                        delayed_will: None,
                        scheduled: None,
                        need: 0,
                        holds: 0,
                    }),
                    store: Arc::clone(&self.store),
                    journal: self.limits.journal,
                    changes: Mutex::new(()),
                });
                // The new session's first changes go to the store now.
                drop(handle.lock());
                self.set_key(key, Some(Arc::clone(&handle)));
                by_id.insert(handle.client_id.clone(), Arc::clone(&handle));
                (handle, false)
            }
        };
        drop(by_id);
        if !session_present {
            self.index.write().remove_session(&handle.key);
        }
        self.index.write().set_available(handle.key, true);
        drop(changes);
        if session_present {
            // Messages queued while the client was away: their bodies come back from the
            // store (outside the registry lock), and go out behind the CONNACK.
            let mut slot = handle.lock();
            if slot.owner == generation {
                self.fill_spilled(&handle, &mut slot, false, now);
            }
        }
        let connected = self.stats.connected.fetch_add(1, Ordering::Relaxed) + 1;
        self.stats
            .max_connected
            .fetch_max(connected, Ordering::Relaxed);
        for will in old_wills {
            self.publish_will(will, &handle, now);
        }
        if v5 {
            self.connack_properties(connect, &client_id, &mut properties);
        }
        let need = if self.store.is_durable() && (expiry > 0 || existing.is_some()) {
            self.store.appended()
        } else {
            0
        };
        Ok(Connected {
            handle,
            generation,
            waker,
            session_present,
            assigned_client_id,
            properties,
            max_packet_size,
            need,
        })
    }

    /// The CONNACK properties that state the server's limits and capabilities (5.0 section
    /// 3.2.2.3); absent ones mean the protocol's default.
    fn connack_properties(&self, connect: &Connect, client_id: &str, p: &mut ConnAckProperties) {
        let config = &self.config;
        p.receive_maximum = u16::try_from(config.max_incoming_qos2)
            .ok()
            .and_then(std::num::NonZeroU16::new)
            .filter(|r| r.get() < u16::MAX);
        p.maximum_packet_size = std::num::NonZeroU32::new(config.max_packet_size)
            .filter(|m| m.get() < mqtt_codec::PROTOCOL_MAX_PACKET_SIZE);
        p.topic_alias_maximum = (config.max_topic_alias > 0).then_some(config.max_topic_alias);
        p.maximum_qos = (config.max_qos() < QoS::ExactlyOnce).then(|| config.max_qos());
        p.retain_available = (!config.retain_available).then_some(false);
        p.wildcard_subscription_available =
            (!config.wildcard_subscription_available).then_some(false);
        p.subscription_identifiers_available =
            (!config.subscription_identifier_available).then_some(false);
        p.shared_subscription_available = (!config.shared_subscription_available).then_some(false);
        if connect.properties.request_response_information == Some(true)
            && !config.response_information.is_empty()
        {
            p.response_information =
                MqttString::try_from(format!("{}{client_id}", config.response_information)).ok();
        }
    }

    /// Ends a connection: its will is published unless it said DISCONNECT (`graceful`), now or,
    /// with a 5.0 Will Delay Interval, when that runs out or the session ends, whichever comes
    /// first [MQTT-3.1.2-8]; a session with no expiry ends with it; a persistent one is kept (and
    /// saved) for the client to come back to until its expiry interval runs out. Does nothing
    /// if the connection was taken over meanwhile.
    pub fn disconnect(
        &self,
        handle: &Arc<SessionHandle>,
        generation: u64,
        graceful: bool,
        now: Instant,
    ) {
        let mut by_id = lock(&self.by_id);
        let mut slot = handle.lock();
        if slot.owner != generation {
            return;
        }
        slot.owner = 0;
        slot.waker = None;
        slot.detached = generation;
        let mut will = slot.session.detach(graceful);
        let persistent = slot.session.is_persistent();
        let mut timer = None;
        let mut orphans = Vec::new();
        if persistent {
            let expiry = slot.session.expiry_interval();
            slot.expires_at =
                (expiry < u32::MAX).then(|| now + Duration::from_secs(u64::from(expiry)));
            slot.session.record(Change::Detached { at: now });
            if let Some(w) = will.take_if(|w| will_delay(w) > 0) {
                let at = now + Duration::from_secs(u64::from(will_delay(&w)));
                slot.session.record(Change::DelayedWill {
                    at,
                    will: w.clone(),
                });
                slot.delayed_will = Some(Box::new((at, w)));
            }
            let next = slot.next_deadline();
            timer = slot.schedule(next);
        } else {
            orphans = slot.session.take_shared_unacknowledged();
            slot.session.end();
            by_id.remove(&handle.client_id);
        }
        drop(slot);
        if !persistent {
            // Under the registry lock, as every change of `by_key` (see `set_key`).
            self.set_key(handle.key, None);
        }
        drop(by_id);
        if let Some(at) = timer {
            self.push_timer(at, handle);
        }
        self.stats.connected.fetch_sub(1, Ordering::Relaxed);
        if persistent {
            self.index.write().set_available(handle.key, false);
        } else {
            self.index.write().remove_session(&handle.key);
            lock(&self.free_keys).push(handle.key);
        }
        self.redeliver_shared(handle, orphans, now, 0);
        if let Some(will) = will {
            self.publish_will(will, handle, now);
        }
    }

    /// Hands the messages a shared subscription chose for a session that ended without
    /// acknowledging them to another member of the same group, at that member's QoS (MQTT 5.0
    /// section 4.8.2: "SHOULD send the Application Message to another Client"). Dropped when the
    /// group has no other member.
    ///
    /// A caller may hold the registry lock and the leaving session's lock (the only place two
    /// sessions are locked at once: every such caller holds the registry lock, so no two can
    /// wait for each other). `need` is the leaving session's: the copies wait for its records.
    fn redeliver_shared(
        &self,
        from: &SessionHandle,
        orphans: Vec<Delivery>,
        now: Instant,
        need: u64,
    ) {
        for orphan in orphans {
            let Some(filter) = orphan.shared() else {
                continue;
            };
            let choice = self.index.read().choose_other(
                filter,
                &from.key,
                Publisher {
                    session: None,
                    client_id: from.client_id.as_str(),
                },
            );
            let Some(d) = choice else {
                continue;
            };
            let handle = {
                let by_key = self.by_key.read().unwrap_or_else(PoisonError::into_inner);
                match by_key.get(d.session as usize) {
                    Some(Some(h)) => Arc::clone(h),
                    _ => continue,
                }
            };
            let delivery = routed_delivery(&orphan.publish, d, orphan.expires_at());
            self.deliver_to(&handle, delivery, now, need, false);
        }
    }

    /// Hands a delivery to a session, wakes its connection, and counts what the session
    /// dropped (queue full, too large, expired).
    fn deliver_to(
        &self,
        handle: &SessionHandle,
        delivery: Delivery,
        now: Instant,
        need: u64,
        hold: bool,
    ) {
        let mut slot = handle.lock();
        // Only touched when set: routing to many sessions pays for every cache line.
        if need > 0 {
            slot.need = slot.need.max(need);
        }
        if hold {
            slot.holds += 1;
        }
        let before = slot.session.stats();
        if slot.session.deliver(delivery, now) {
            slot.wake();
        }
        let after = slot.session.stats();
        drop(slot);
        let dropped = after.dropped_queue_full - before.dropped_queue_full;
        if dropped > 0 {
            self.stats
                .publish_dropped
                .fetch_add(dropped, Ordering::Relaxed);
            if WARNINGS.allow() {
                tracing::warn!(
                    client_id = %handle.client_id,
                    "queue full (max_queued_messages / max_queued_bytes): message dropped"
                );
            }
        }
        let too_large = after.dropped_too_large - before.dropped_too_large;
        if too_large > 0 {
            self.stats
                .publish_too_large
                .fetch_add(too_large, Ordering::Relaxed);
        }
        let expired = after.dropped_expired - before.dropped_expired;
        if expired > 0 {
            self.stats
                .publish_expired
                .fetch_add(expired, Ordering::Relaxed);
        }
    }

    fn push_timer(&self, at: Instant, handle: &Arc<SessionHandle>) {
        let mut heap = lock(&self.timers);
        heap.push(Reverse(Timer {
            at,
            handle: Arc::clone(handle),
        }));
        // Entries superseded by an earlier one stay until they come due; when they outnumber
        // the live ones, they are swept (lock order: timers, then a session).
        if heap.len() > 1024 && heap.len() > 2 * lock(&self.by_id).len() {
            heap.retain(|Reverse(t)| t.handle.lock().scheduled == Some(t.at));
        }
    }

    /// Runs the timers of detached sessions that are due: publishes delayed wills and ends
    /// expired sessions (publishing a will still waiting). The server calls it a few times a
    /// second.
    pub fn expire(&self, now: Instant) {
        loop {
            let timer = {
                let mut heap = lock(&self.timers);
                match heap.peek() {
                    Some(Reverse(t)) if t.at <= now => heap.pop().map(|Reverse(t)| t),
                    _ => None,
                }
            };
            let Some(timer) = timer else {
                return;
            };
            let handle = timer.handle;
            let mut by_id = lock(&self.by_id);
            let mut slot = handle.lock();
            if slot.scheduled != Some(timer.at) {
                continue; // superseded by an earlier entry
            }
            slot.scheduled = None;
            if slot.owner != 0 {
                continue; // the client came back since
            }
            let mut will = None;
            if slot.delayed_will.as_ref().is_some_and(|d| d.0 <= now) {
                will = slot.delayed_will.take().map(|d| d.1);
                slot.session.record(Change::WillDone);
            }
            let ended = slot.expires_at.is_some_and(|at| at <= now);
            let mut next = None;
            if ended {
                if let Some(d) = slot.delayed_will.take() {
                    will = Some(d.1);
                }
                self.fill_spilled(&handle, &mut slot, true, now);
                let orphans = slot.session.take_shared_unacknowledged();
                // Handed on before the session's records of them are gone (see `connect`).
                let need = slot.need;
                self.redeliver_shared(&handle, orphans, now, need);
                // Recorded under the registry lock: a new session under this identifier
                // cannot have recorded itself yet.
                slot.session.end();
                slot.commit();
                slot.expires_at = None;
                if by_id
                    .get(&handle.client_id)
                    .is_some_and(|h| Arc::ptr_eq(h, &handle))
                {
                    by_id.remove(&handle.client_id);
                }
            } else {
                let deadline = slot.next_deadline();
                next = slot.schedule(deadline);
            }
            drop(slot);
            if ended {
                self.set_key(handle.key, None);
            }
            drop(by_id);
            if let Some(at) = next {
                self.push_timer(at, &handle);
            }
            if ended {
                self.index.write().remove_session(&handle.key);
                lock(&self.free_keys).push(handle.key);
                self.stats.sessions_expired.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(client_id = %handle.client_id, "session expired");
            }
            if let Some(will) = will {
                self.publish_will(will, &handle, now);
            }
        }
    }

    fn publish_will(&self, will: Will, from: &SessionHandle, now: Instant) {
        let mut publish = Publish::new(will.topic, will.payload);
        publish.retain = will.retain;
        // The will's properties travel with it (5.0 section 3.1.3.2), but not its delay.
        let w = will.properties;
        let properties = publish.properties_mut();
        properties.payload_format_indicator = w.payload_format_indicator;
        properties.message_expiry_interval = w.message_expiry_interval;
        properties.content_type = w.content_type;
        properties.response_topic = w.response_topic;
        properties.correlation_data = w.correlation_data;
        properties.user_properties = w.user_properties;
        let properties = publish.properties().clone();
        publish.set_properties(properties);
        publish.qos = match will.qos {
            QoS::AtMostOnce => QosPid::AtMostOnce,
            // The packet identifier of a routed message is not used: each delivery has its own.
            QoS::AtLeastOnce => {
                QosPid::AtLeastOnce(mqtt_codec::PacketId::from(std::num::NonZeroU16::MIN))
            }
            QoS::ExactlyOnce => {
                QosPid::ExactlyOnce(mqtt_codec::PacketId::from(std::num::NonZeroU16::MIN))
            }
        };
        self.publish(Arc::new(publish), Some(from), now);
    }

    /// Routes a message: stores or clears it as retained, and hands it to every session with a
    /// matching subscription, at the lower of its QoS and the subscription's [MQTT-3.8.4-x], once
    /// per session [MQTT-3.3.5-1]. Messages to `$SYS` topics from clients are dropped. (5.0)
    /// A message with a Message Expiry Interval expires that long after `now`. Returns how many
    /// sessions it was routed to.
    pub fn publish(
        &self,
        publish: Arc<Publish>,
        from: Option<&SessionHandle>,
        now: Instant,
    ) -> usize {
        self.route(publish, from, now, 0, None)
    }

    /// [`Broker::publish`], where no copy may be written before the store's record `need` is
    /// durable; with `held`, every session that got a copy is held ([`Slot::holds`]) and
    /// listed there, for the caller to release.
    fn route(
        &self,
        publish: Arc<Publish>,
        from: Option<&SessionHandle>,
        now: Instant,
        need: u64,
        mut held: Option<&mut Vec<Arc<SessionHandle>>>,
    ) -> usize {
        if from.is_some() && publish.topic.starts_with("$SYS") {
            return 0;
        }
        let qos = publish.qos.qos();
        let expires_at = publish
            .properties()
            .message_expiry_interval
            .map(|secs| now + Duration::from_secs(u64::from(secs)));
        // A retained message is stored and matched against the subscriptions under the
        // retained lock, which a subscribe holds while it adds its subscription and looks up
        // the retained messages: a subscriber gets the message either as retained or live,
        // never both (and never neither).
        let mut retained_guard = None;
        if publish.retain && self.config.retain_available {
            let retained = retained_guard.insert(
                self.retained
                    .write()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            let durable = self.store.is_durable() && !publish.topic.starts_with("$SYS");
            if publish.payload.is_empty() {
                // A zero-byte retained message clears the topic and is never stored
                // [MQTT-3.3.1-10, MQTT-3.3.1-11].
                if retained.remove(&publish.topic).is_some() && durable {
                    self.store.retain(&publish.topic, None);
                }
            } else {
                // A small message is copied so that it does not pin the (much larger) read
                // buffer its packet was split from; a large one is kept as it is.
                let payload = if publish.payload.len() <= 4096 {
                    Bytes::copy_from_slice(&publish.payload)
                } else {
                    publish.payload.clone()
                };
                let mut kept = Publish::new(publish.topic.copied(), payload);
                kept.set_properties(publish.properties().clone());
                let kept = Arc::new(kept);
                if durable {
                    self.store.retain(
                        &kept.topic,
                        Some(&StoredRetained {
                            publish: Arc::clone(&kept),
                            qos,
                            expires_at,
                        }),
                    );
                }
                retained.insert(
                    kept.topic.clone(),
                    Retained {
                        publish: kept,
                        qos,
                        expires_at,
                    },
                );
            }
        }
        let mut deliveries = Vec::new();
        self.index.read().matches(
            &publish.topic,
            Publisher {
                session: from.map(SessionHandle::key),
                client_id: from.map_or("", |h| h.client_id.as_str()),
            },
            &mut deliveries,
        );
        drop(retained_guard);
        let routed = deliveries.len();
        let by_key = self.by_key.read().unwrap_or_else(PoisonError::into_inner);
        for d in deliveries {
            let Some(Some(handle)) = by_key.get(d.session as usize) else {
                continue;
            };
            let delivery = routed_delivery(&publish, d, expires_at);
            self.deliver_to(handle, delivery, now, need, held.is_some());
            if let Some(held) = held.as_deref_mut() {
                held.push(Arc::clone(handle));
            }
        }
        routed
    }

    /// Handles a SUBSCRIBE: adds (or replaces) each subscription [MQTT-3.8.4-3] at the granted
    /// QoS, refuses with 0x80 a filter that breaks a limit, answers with SUBACK (same packet
    /// identifier [MQTT-3.8.4-2], one code per filter in order [MQTT-3.9.3-1]), then sends the
    /// matching retained messages with RETAIN set [MQTT-3.3.1-6, MQTT-3.3.1-8], as the 5.0
    /// Retain Handling option says.
    pub fn subscribe(&self, handle: &SessionHandle, subscribe: &Subscribe, now: Instant) {
        self.subscribe_as(handle, None, subscribe, now);
    }

    /// [`Broker::subscribe`] for the connection `generation`, if it still owns the session
    /// (`None`: whoever does).
    fn subscribe_as(
        &self,
        handle: &SessionHandle,
        generation: Option<u64>,
        subscribe: &Subscribe,
        now: Instant,
    ) {
        let _changes = lock(&handle.changes);
        if generation.is_some_and(|g| handle.lock().owner != g) {
            // Taken over since the packet was read: it is no longer this session's.
            return;
        }
        let mut codes = Vec::with_capacity(subscribe.subscriptions.len());
        let mut retained = Vec::new();
        // The subscriptions are added, the retained messages looked up and queued under the
        // retained lock, which `publish` holds to store a retained message and match it: a
        // retained message published meanwhile comes once, and after the stored one it
        // replaces (lock order: retained, index, session).
        let stored = self.retained.read().unwrap_or_else(PoisonError::into_inner);
        let config = &self.config;
        let identifier = subscribe.properties.subscription_identifier;
        for s in &subscribe.subscriptions {
            let (count, existed) = {
                let slot = handle.lock();
                let existed = slot
                    .session
                    .subscriptions()
                    .any(|(f, _)| f.as_str() == s.filter.as_str());
                (slot.session.subscription_count(), existed)
            };
            let refusal = if s.filter.is_shared() && !config.shared_subscription_available {
                Some(ReasonCode::SharedSubscriptionsNotSupported)
            } else if s.filter.has_wildcards() && !config.wildcard_subscription_available {
                Some(ReasonCode::WildcardSubscriptionsNotSupported)
            } else if s.filter.check_levels(config.max_topic_levels).is_err()
                || (count >= config.max_subscriptions_per_session && !existed)
            {
                Some(ReasonCode::UnspecifiedError)
            } else {
                None
            };
            if let Some(code) = refusal {
                codes.push(code);
                continue;
            }
            let mut options = s.options;
            options.qos = options.qos.min(config.max_qos());
            let data = SubscriptionData {
                options,
                identifier,
            };
            self.index.write().insert(handle.key, &s.filter, data);
            // Shared subscriptions get no retained messages (MQTT 5.0 section 4.8.2); Retain
            // Handling 1 sends them only for a new subscription, 2 never [MQTT-3.3.1-9 to
            // MQTT-3.3.1-11 in 5.0 numbering].
            let send_retained = match options.retain_handling {
                RetainHandling::SendAtSubscribe => true,
                RetainHandling::SendAtSubscribeIfNew => !existed,
                RetainHandling::DoNotSend => false,
            };
            if send_retained && !s.filter.is_shared() {
                stored.for_each_match(&s.filter, |_, r| {
                    if r.expires_at.is_some_and(|at| now >= at) {
                        return;
                    }
                    retained.push(
                        Delivery::new(Arc::clone(&r.publish), r.qos.min(options.qos), true)
                            .with_extras(DeliveryExtras {
                                expires_at: r.expires_at,
                                identifiers: identifier.into_iter().collect(),
                                shared: None,
                            }),
                    );
                });
            }
            handle.lock().session.add_subscription(&s.filter, data);
            codes.push(match options.qos {
                QoS::AtMostOnce => ReasonCode::Success,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            });
        }
        let mut slot = handle.lock();
        slot.session
            .send(Packet::SubAck(SubAck::new(subscribe.packet_id, codes)));
        for d in retained {
            slot.session.deliver(d, now);
        }
        drop(stored);
        slot.wake();
    }

    /// Handles an UNSUBSCRIBE: removes each subscription that exists [MQTT-3.10.4-1] and
    /// answers with UNSUBACK even if none did [MQTT-3.10.4-4, MQTT-3.10.4-5].
    pub fn unsubscribe(&self, handle: &SessionHandle, unsubscribe: &Unsubscribe) {
        self.unsubscribe_as(handle, None, unsubscribe);
    }

    /// [`Broker::unsubscribe`] for the connection `generation`, if it still owns the session
    /// (`None`: whoever does).
    fn unsubscribe_as(
        &self,
        handle: &SessionHandle,
        generation: Option<u64>,
        unsubscribe: &Unsubscribe,
    ) {
        let _changes = lock(&handle.changes);
        if generation.is_some_and(|g| handle.lock().owner != g) {
            return;
        }
        let mut codes = Vec::with_capacity(unsubscribe.filters.len());
        for f in &unsubscribe.filters {
            let existed = self.index.write().remove(&handle.key, f).is_some();
            handle.lock().session.remove_subscription(f);
            codes.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        let mut slot = handle.lock();
        slot.session.send(Packet::UnsubAck(UnsubAck::new(
            unsubscribe.packet_id,
            codes,
        )));
        slot.wake();
    }

    /// Handles one packet from the client attached to `handle` (connection `generation`): the
    /// session machine answers it, and what it asks of the broker (routing, subscribing,
    /// unsubscribing) is done before returning.
    ///
    /// # Errors
    /// A [`Close`] when the connection must end because of the client (protocol violation,
    /// a topic deeper than `max_topic_levels`); its will is then published by
    /// [`Broker::disconnect`].
    pub fn handle_packet(
        &self,
        handle: &Arc<SessionHandle>,
        generation: u64,
        packet: Packet,
        now: Instant,
    ) -> Result<Flow, Close> {
        self.stats.messages_received.fetch_add(1, Ordering::Relaxed);
        match &packet {
            Packet::Publish(p) => {
                self.stats.publish_received.fetch_add(1, Ordering::Relaxed);
                self.check_publish(p)?;
            }
            Packet::Subscribe(s)
                if s.properties.subscription_identifier.is_some()
                    && !self.config.subscription_identifier_available =>
            {
                return Err(Close::Violation {
                    statement: None,
                    detail: "subscription identifier, which this server does not support",
                    reason: ReasonCode::SubscriptionIdentifiersNotSupported,
                });
            }
            _ => {}
        }
        let journaled_qos2 = self.store.is_durable()
            && matches!(&packet, Packet::Publish(p) if p.qos.qos() == QoS::ExactlyOnce);
        let (action, marker) = {
            let mut slot = handle.lock();
            if slot.owner != generation {
                return Ok(Flow::TakenOver);
            }
            let action = slot.session.handle_packet(packet, now)?;
            let routes = matches!(action, Some(Action::Route(_)));
            // The record of a client's QoS 2 packet identifier waits for the routing of its
            // message: it commits the copies the routing makes (`SessionStore::begin_group`).
            let mut marker = None;
            if journaled_qos2 && routes {
                let mut changes = slot.session.take_changes();
                changes.retain(|c| match c {
                    Change::IncomingQos2(id) => {
                        marker = Some(*id);
                        false
                    }
                    _ => true,
                });
                if !changes.is_empty() {
                    self.store.record(handle.client_id.as_str(), changes);
                }
            }
            slot.commit();
            // A PUBACK or PUBREC for a message to route goes out after the routing, which may
            // change its reason code, and whose records it waits for.
            if routes {
                slot.holds += 1;
            } else if slot.session.has_outgoing() {
                slot.wake();
            }
            (action, marker)
        };
        match action {
            None => {}
            Some(Action::Route(publish)) => {
                let id = publish.qos.packet_id();
                let routed = match marker {
                    Some(qos2_id) => {
                        let mut group = Group {
                            broker: self,
                            id: self.store.begin_group(),
                            held: Vec::new(),
                            done: false,
                        };
                        let routed =
                            self.route(publish, Some(handle), now, 0, Some(&mut group.held));
                        group.commit(Some((handle, qos2_id)));
                        routed
                    }
                    None => self.route(publish, Some(handle), now, 0, None),
                };
                let mut slot = handle.lock();
                slot.holds = slot.holds.saturating_sub(1);
                if id.is_some() && self.store.is_durable() {
                    // Acknowledged once every copy the routing stored is durable.
                    slot.need = slot.need.max(self.store.appended());
                }
                if slot.owner != generation {
                    // Taken over while routing: the outbox is the new connection's, whose
                    // writer may have found it held.
                    slot.wake();
                    return Ok(Flow::TakenOver);
                }
                if routed == 0
                    && let Some(id) = id
                    && slot.session.version().is_some_and(ProtocolVersion::is_v5)
                {
                    // 5.0: "the message is accepted but there are no subscribers".
                    slot.session
                        .set_ack_reason(id, ReasonCode::NoMatchingSubscribers);
                }
                if slot.session.has_outgoing() {
                    slot.wake();
                }
            }
            Some(Action::Subscribe(s)) => self.subscribe_as(handle, Some(generation), &s, now),
            Some(Action::Unsubscribe(u)) => self.unsubscribe_as(handle, Some(generation), &u),
            Some(Action::Disconnect { publish_will }) => {
                return Ok(Flow::Disconnect { publish_will });
            }
            Some(Action::Auth(auth)) => return Ok(Flow::Auth(auth)),
        }
        Ok(Flow::Continue)
    }

    /// The limits on a PUBLISH that do not depend on the session: topic depth, the maximum QoS
    /// (5.0: DISCONNECT 0x9B [MQTT-3.2.2-11]) and retained messages when they are off (5.0:
    /// DISCONNECT 0x9A [MQTT-3.2.2-14]).
    fn check_publish(&self, p: &Publish) -> Result<(), Close> {
        if p.topic.check_levels(self.config.max_topic_levels).is_err() {
            return Err(Close::Violation {
                statement: None,
                detail: "topic name deeper than max_topic_levels",
                reason: ReasonCode::TopicNameInvalid,
            });
        }
        if p.qos.qos() > self.config.max_qos() {
            return Err(Close::Violation {
                statement: Some("MQTT-3.2.2-11"),
                detail: "PUBLISH above the server's maximum QoS",
                reason: ReasonCode::QoSNotSupported,
            });
        }
        if p.retain && !self.config.retain_available && !p.payload.is_empty() {
            return Err(Close::Violation {
                statement: Some("MQTT-3.2.2-14"),
                detail: "retained PUBLISH while retained messages are off",
                reason: ReasonCode::RetainNotSupported,
            });
        }
        Ok(())
    }

    /// Publishes the `$SYS/broker/...` topics (retained, as Mosquitto does).
    pub fn publish_sys(&self, now: Instant) {
        for (topic, value) in crate::sys::values(self, now) {
            let Ok(topic) = TopicName::try_from(topic) else {
                continue;
            };
            let mut publish = Publish::new(topic, Bytes::from(value));
            publish.retain = true;
            self.publish(Arc::new(publish), None, now);
        }
    }

    fn allocate_key(&self) -> SessionKey {
        if let Some(key) = lock(&self.free_keys).pop() {
            return key;
        }
        let by_key = self.by_key.read().unwrap_or_else(PoisonError::into_inner);
        u32::try_from(by_key.len()).unwrap_or(u32::MAX)
    }

    /// Sets the session of `key`. Called only with the registry lock held and no session
    /// locked: `by_key` is read while sessions are locked (routing holds it across its
    /// deliveries, `redeliver_shared` takes it with a session locked), and a writer waiting
    /// for it blocks new readers; with every writer holding the registry lock, a thread that
    /// holds the registry lock never meets one.
    fn set_key(&self, key: SessionKey, handle: Option<Arc<SessionHandle>>) {
        let mut by_key = self.by_key.write().unwrap_or_else(PoisonError::into_inner);
        let i = key as usize;
        if by_key.len() <= i {
            by_key.resize(i + 1, None);
        }
        if let Some(slot) = by_key.get_mut(i) {
            *slot = handle;
        }
    }
}

/// The routing of a client's QoS 2 message, in a routing group of the store
/// ([`SessionStore::begin_group`]): the sessions that got a copy are held until the group is
/// committed. Committed (or, should the routing unwind, committed all the same: the copies are
/// in memory, the store must agree) when dropped.
struct Group<'a> {
    broker: &'a Broker,
    id: u64,
    held: Vec<Arc<SessionHandle>>,
    done: bool,
}

impl Group<'_> {
    /// Commits the group, under the publisher's lock: with the record of its packet identifier
    /// if its session still awaits the PUBREL (a takeover with Clean Start may have discarded
    /// it meanwhile), then lets the copies go once the commit is durable.
    fn commit(&mut self, publisher: Option<(&SessionHandle, mqtt_codec::PacketId)>) {
        self.done = true;
        let store = &self.broker.store;
        let lsn = match publisher {
            Some((h, id)) => {
                let slot = h.lock();
                let marker = slot
                    .session
                    .awaits_release(id)
                    .then(|| (h.client_id.as_str(), id));
                store.commit_group(self.id, marker)
            }
            None => store.commit_group(self.id, None),
        };
        for h in self.held.drain(..) {
            let mut slot = h.lock();
            slot.need = slot.need.max(lsn);
            slot.holds = slot.holds.saturating_sub(1);
            slot.wake();
        }
    }
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.commit(None);
        }
    }
}

/// What a session gets of a routed message: the lower of the message's QoS and the
/// subscription's; RETAIN cleared [MQTT-3.3.1-9] unless the subscription asked to keep it (5.0
/// Retain As Published); the expiry, subscription identifiers and shared subscription, when
/// there are any.
fn routed_delivery(
    publish: &Arc<Publish>,
    d: mqtt_topic::Delivery<SessionKey>,
    expires_at: Option<Instant>,
) -> Delivery {
    let mut delivery = Delivery::new(
        Arc::clone(publish),
        publish.qos.qos().min(d.qos),
        d.retain_as_published && publish.retain,
    );
    if expires_at.is_some() || !d.identifiers.is_empty() || d.shared.is_some() {
        delivery = delivery.with_extras(DeliveryExtras {
            expires_at,
            identifiers: d.identifiers.iter().collect(),
            shared: d.shared,
        });
    }
    delivery
}

/// A will's 5.0 Will Delay Interval, in seconds (0 when absent).
fn will_delay(will: &Will) -> u32 {
    will.properties.will_delay_interval.unwrap_or(0)
}

/// A copy of a string in its own buffer, so a handle does not pin a CONNECT packet.
trait CopiedString {
    fn copied_string(&self) -> MqttString;
}

impl CopiedString for MqttString {
    fn copied_string(&self) -> MqttString {
        MqttString::try_from(self.as_str()).unwrap_or_default()
    }
}
