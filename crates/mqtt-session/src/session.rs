//! [`Session`]: a client's state on the server, and the protocol machine of the connection it is
//! attached to.

use std::collections::{HashMap, HashSet, VecDeque};
use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_codec::{
    DeliveryProperties, Envelope, PROTOCOL_MAX_PACKET_SIZE, Packet, PacketId, PayloadFormat,
    ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS, QosPid, ReasonCode, Subscribe,
    SubscriptionId, TopicName, Unsubscribe, Will,
};
use mqtt_topic::{MqttString, SubscriptionData, TopicFilter};

/// The limits one session works within. All finite: a slow or absent client costs at most
/// this much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// QoS 1 and 2 messages sent to the client and not yet acknowledged; more wait in the queue.
    pub max_inflight: u16,
    /// Messages waiting in the queue (behind the in-flight window, or while offline).
    pub max_queued_messages: usize,
    /// Payload bytes waiting in the queue.
    pub max_queued_bytes: usize,
    /// Whether QoS 0 messages are queued while a persistent session is offline.
    pub queue_qos0_offline: bool,
    /// QoS 2 messages received and not yet released by PUBREL (in MQTT 5.0 terms, the
    /// server's Receive Maximum: a client sending more is disconnected with 0x93).
    pub max_incoming_qos2: usize,
    /// (5.0) The highest Topic Alias a client may set on this server (its Topic Alias Maximum).
    pub max_topic_alias: u16,
    /// (5.0) Whether a payload marked as UTF-8 (Payload Format Indicator 1) is checked, and
    /// refused with 0x99 when it is not.
    pub validate_utf8_payload: bool,
    /// (5.0) The longest Session Expiry Interval a DISCONNECT may set, in seconds.
    pub max_session_expiry: u32,
    /// Whether a persistent session records its [`Change`]s for a durable store
    /// ([`Session::take_changes`]), and keeps the messages queued while it is offline in that
    /// store instead of in memory ([`Session::spilled_entries`]).
    pub journal: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_inflight: 20,
            max_queued_messages: 1000,
            max_queued_bytes: 64 * 1024 * 1024,
            queue_qos0_offline: false,
            max_incoming_qos2: 1000,
            max_topic_alias: 10,
            validate_utf8_payload: true,
            max_session_expiry: u32::MAX,
            journal: false,
        }
    }
}

/// A message on its way to this session: the PUBLISH as it was received (shared by every
/// subscriber, never copied), the QoS it is delivered at (already lowered to the subscription's
/// maximum) and the RETAIN flag it carries. Small on purpose (three words): the MQTT 5.0 extras
/// sit behind a box that only messages with an expiry, subscription identifiers or a shared
/// subscription allocate.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message; its own QoS, packet identifier, DUP and RETAIN are ignored.
    pub publish: Arc<Publish>,
    /// The QoS it is delivered at.
    pub qos: QoS,
    /// The RETAIN flag of the PUBLISH sent.
    pub retain: bool,
    /// (5.0) Expiry, subscription identifiers, shared subscription; `None` when none applies.
    pub extras: Option<Box<DeliveryExtras>>,
}

/// The parts of a [`Delivery`] few messages have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryExtras {
    /// (5.0) When the message expires (its Message Expiry Interval after it arrived): an
    /// expired message is no longer sent, and the interval sent is what remains.
    pub expires_at: Option<Instant>,
    /// (5.0) The identifiers of the receiving session's subscriptions that matched.
    pub identifiers: Vec<SubscriptionId>,
    /// For a message chosen for this session by a shared subscription: that subscription's
    /// `$share/{ShareName}/{filter}`, so that another member can get it if this session ends
    /// without acknowledging it.
    pub shared: Option<TopicFilter>,
}

impl Delivery {
    /// A delivery of `publish` at `qos` with this RETAIN flag, with no expiry and no
    /// subscription identifiers.
    pub fn new(publish: Arc<Publish>, qos: QoS, retain: bool) -> Self {
        Self {
            publish,
            qos,
            retain,
            extras: None,
        }
    }

    /// This delivery with these extras (none kept if they are all empty).
    pub fn with_extras(mut self, extras: DeliveryExtras) -> Self {
        self.extras = (extras != DeliveryExtras::default()).then(|| Box::new(extras));
        self
    }

    /// When the message expires.
    pub fn expires_at(&self) -> Option<Instant> {
        self.extras.as_ref().and_then(|e| e.expires_at)
    }

    /// The matching subscriptions' identifiers.
    pub fn identifiers(&self) -> &[SubscriptionId] {
        self.extras
            .as_ref()
            .map_or(&[], |e| e.identifiers.as_slice())
    }

    /// The shared subscription that chose this session, if one did.
    pub fn shared(&self) -> Option<&TopicFilter> {
        self.extras.as_ref().and_then(|e| e.shared.as_ref())
    }

    fn size(&self) -> usize {
        self.publish.payload.len() + self.publish.topic.len()
    }

    fn expired(&self, now: Instant) -> bool {
        self.expires_at().is_some_and(|at| now >= at)
    }

    /// What remains of the message's lifetime, rounded up to whole seconds.
    fn remaining_secs(&self, now: Instant) -> Option<u32> {
        self.expires_at().map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }
}

/// A change to the durable state of a persistent session, in the order it happened: what a
/// durable store writes so that the session can be rebuilt after a restart
/// ([`Session::from_stored`]). Only a session with [`Limits::journal`] records them, and only
/// while it is persistent; [`Session::take_changes`] hands them over.
///
/// Messages in the queue and in flight are named by an *entry* number, unique within the
/// session and increasing in queue order.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Change {
    /// The session is persistent with this Session Expiry Interval, in seconds; 0 means it now
    /// ends with its connection, and the store forgets it.
    Expiry(u32),
    /// The session ended (it expired, or its client started a new one): forget it.
    Ended,
    /// Subscriptions, messages and packet identifiers were discarded (Clean Start).
    Cleared,
    /// A subscription was added or replaced.
    Subscribed(TopicFilter, SubscriptionData),
    /// A subscription was removed.
    Unsubscribed(TopicFilter),
    /// A message joined the back of the queue.
    Queued {
        /// Its entry.
        entry: u64,
        /// The message.
        delivery: Delivery,
    },
    /// A queued message was sent with this packet identifier: it is in flight, at the back of
    /// the in-flight window, awaiting PUBACK (QoS 1) or PUBREC (QoS 2).
    Sent {
        /// Its entry.
        entry: u64,
        /// Its packet identifier.
        id: PacketId,
    },
    /// (QoS 2) The client acknowledged the message with PUBREC; PUBREL is sent, PUBCOMP awaited.
    Received {
        /// Its entry.
        entry: u64,
    },
    /// A message left the queue or the window: acknowledged, expired, or dropped.
    Removed {
        /// Its entry.
        entry: u64,
    },
    /// (QoS 2, from the client) A message with this packet identifier was received and routed;
    /// a repeat is not routed again until PUBREL.
    IncomingQos2(PacketId),
    /// (QoS 2, from the client) PUBREL released this packet identifier.
    IncomingReleased(PacketId),
    /// A connection attached, with its will: if the broker stops before the connection ends
    /// (a crash), the will is published after the restart, as for any connection lost.
    Attached {
        /// The connection's will.
        will: Option<Will>,
    },
    /// The connection detached at this time (the session's expiry counts from it).
    Detached {
        /// When.
        at: Instant,
    },
    /// (5.0) A will waits for its Will Delay Interval, until this time.
    DelayedWill {
        /// When it is due.
        at: Instant,
        /// The will.
        will: Will,
    },
    /// (5.0) The delayed will was published or cancelled.
    WillDone,
}

/// What an offline session keeps in memory of a queued message whose body is in the durable
/// store ([`Limits::journal`]): enough to apply its limits, not the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spilled {
    /// The QoS it is delivered at.
    pub qos: QoS,
    /// Its size as the queue counts it (topic and payload).
    pub size: usize,
    /// (5.0) When it expires.
    pub expires_at: Option<Instant>,
    /// Whether a shared subscription chose this session for it.
    pub shared: bool,
}

/// A message in flight, as a durable store gives it back (its body stays in the store until
/// [`Session::fill`]).
#[derive(Debug, Clone)]
pub struct StoredInflight {
    /// Its entry.
    pub entry: u64,
    /// Its packet identifier.
    pub id: PacketId,
    /// What the session keeps of it (its QoS included).
    pub spilled: Spilled,
    /// (QoS 2) Whether the client already sent PUBREC (PUBREL is what goes out again).
    pub received: bool,
}

/// A persistent session as a durable store gives it back at start-up: everything
/// [`Session::from_stored`] needs.
#[derive(Debug, Clone)]
pub struct StoredSession {
    /// The client identifier.
    pub client_id: MqttString,
    /// The Session Expiry Interval, in seconds.
    pub expiry_interval: u32,
    /// The subscriptions.
    pub subscriptions: Vec<(TopicFilter, SubscriptionData)>,
    /// Messages in flight, in the order they were sent, their bodies left in the store.
    pub inflight: Vec<StoredInflight>,
    /// Messages queued, in order, their bodies left in the store.
    pub queue: Vec<(u64, Spilled)>,
    /// (QoS 2, from the client) Packet identifiers awaiting PUBREL.
    pub incoming_qos2: Vec<PacketId>,
    /// When the connection detached; `None` when a connection was attached when the broker
    /// stopped without saying so (a crash).
    pub detached_at: Option<Instant>,
    /// (5.0) A will waiting for its delay, and when it is due.
    pub delayed_will: Option<(Instant, Will)>,
    /// The will of the connection that was attached when the broker stopped without saying so
    /// (only with `detached_at` `None`): that connection was lost, and its will is due.
    pub connection_will: Option<Will>,
}

/// Something to write to the client.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A packet.
    Packet(Packet),
    /// A message, encoded with [`Publish::encode_delivery`], this envelope and these
    /// properties.
    Publish {
        /// The shared message.
        publish: Arc<Publish>,
        /// QoS with packet identifier, DUP and RETAIN for this delivery.
        envelope: Envelope,
        /// (5.0) Topic alias, remaining expiry and subscription identifiers of this delivery.
        properties: DeliveryProperties,
    },
}

/// What the client asked the broker to do.
#[derive(Debug)]
pub enum Action {
    /// Route this message to its subscribers (its QoS flow with the publisher is already
    /// handled: PUBACK or PUBREC is in the outbox, and a repeated QoS 2 message is not routed
    /// again).
    Route(Arc<Publish>),
    /// Add subscriptions, then answer with [`Session::send`] of a SUBACK.
    Subscribe(Subscribe),
    /// Remove subscriptions, then answer with an UNSUBACK.
    Unsubscribe(Unsubscribe),
    /// (5.0) An AUTH packet: enhanced authentication goes on (re-authentication), which the
    /// connection's driver carries out with the broker's authentication method.
    Auth(Box<mqtt_codec::Auth>),
    /// The client said goodbye: close the connection, publishing the will only if it asked
    /// for that (5.0 reason 0x04, "disconnect with will message").
    Disconnect {
        /// Whether the will is published all the same.
        publish_will: bool,
    },
}

/// Why the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Close {
    /// The client broke the protocol.
    Violation {
        /// The normative statement broken, if the standard numbers it.
        statement: Option<&'static str>,
        /// What happened, for the log.
        detail: &'static str,
        /// The MQTT 5.0 reason code for a DISCONNECT.
        reason: ReasonCode,
    },
    /// Nothing arrived for one and a half keep alive periods [MQTT-3.1.2-24].
    KeepAliveTimeout,
}

/// What a connection brings to a session when it attaches.
#[derive(Debug, Clone)]
pub struct Attach {
    /// The protocol version the client speaks.
    pub version: ProtocolVersion,
    /// Its keep alive, in seconds (0: none).
    pub keep_alive: u16,
    /// Its will, published if the connection ends without DISCONNECT.
    pub will: Option<Will>,
    /// (5.0) How many unacknowledged QoS 1 and 2 messages it accepts (its Receive Maximum).
    pub receive_maximum: u16,
    /// (5.0) The largest packet it accepts (its Maximum Packet Size).
    pub max_packet_size: u32,
    /// (5.0) The highest Topic Alias the server may use towards it (its Topic Alias Maximum).
    pub topic_alias_maximum: u16,
    /// (5.0) The Session Expiry Interval its CONNECT asked for: if 0, a DISCONNECT may not
    /// set another.
    pub requested_session_expiry: u32,
}

impl Attach {
    /// A connection of this version, keep alive and will, with the protocol's defaults for
    /// the rest (no limit beyond the protocol's, no topic aliases).
    pub fn new(version: ProtocolVersion, keep_alive: u16, will: Option<Will>) -> Self {
        Self {
            version,
            keep_alive,
            will,
            receive_maximum: u16::MAX,
            max_packet_size: PROTOCOL_MAX_PACKET_SIZE,
            topic_alias_maximum: 0,
            requested_session_expiry: 0,
        }
    }
}

/// Counters of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Messages dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// QoS 0 messages dropped because the client was offline.
    pub dropped_offline: u64,
    /// (5.0) Messages not sent because their Message Expiry Interval had passed.
    pub dropped_expired: u64,
    /// (5.0) Messages not sent because they exceed the client's Maximum Packet Size.
    pub dropped_too_large: u64,
    /// Queued messages dropped because the durable store could not give their bodies back.
    pub dropped_unreadable: u64,
}

/// Where a QoS 1 or 2 message sent to the client stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Await {
    /// QoS 1, waiting for PUBACK.
    Ack,
    /// QoS 2, waiting for PUBREC.
    Received,
    /// QoS 2, PUBREL sent, waiting for PUBCOMP.
    Complete,
}

#[derive(Debug, Clone)]
struct Inflight {
    entry: u64,
    id: PacketId,
    /// The message (offline with a durable store: only its summary).
    item: Item,
    state: Await,
    /// Whether it was sent on the current connection (after a reconnect, messages in flight
    /// are sent again as the client's Receive Maximum allows).
    sent: bool,
}

/// A message in the queue, with its entry number.
#[derive(Debug, Clone)]
struct Queued {
    entry: u64,
    item: Item,
}

/// A queued message: in memory, or (offline, with a durable store) only its summary.
#[derive(Debug, Clone)]
enum Item {
    Loaded(Delivery),
    /// Boxed: only offline sessions have them, and the enum stays the size of a delivery.
    Spilled(Box<Spilled>),
}

impl Item {
    fn is_shared(&self) -> bool {
        match self {
            Item::Loaded(d) => d.shared().is_some(),
            Item::Spilled(s) => s.shared,
        }
    }
}

impl Queued {
    fn size(&self) -> usize {
        match &self.item {
            Item::Loaded(d) => d.size(),
            Item::Spilled(s) => s.size,
        }
    }

    fn qos(&self) -> QoS {
        match &self.item {
            Item::Loaded(d) => d.qos,
            Item::Spilled(s) => s.qos,
        }
    }

    fn expired(&self, now: Instant) -> bool {
        match &self.item {
            Item::Loaded(d) => d.expired(now),
            Item::Spilled(s) => s.expires_at.is_some_and(|at| now >= at),
        }
    }
}

impl Delivery {
    /// What a spilled queue entry keeps of this delivery.
    fn summary(&self) -> Spilled {
        Spilled {
            qos: self.qos,
            size: self.size(),
            expires_at: self.expires_at(),
            shared: self.shared().is_some(),
        }
    }
}

/// The connection a session is attached to.
#[derive(Debug, Clone)]
struct Connection {
    version: ProtocolVersion,
    keep_alive: Option<Duration>,
    deadline: Option<Instant>,
    will: Option<Will>,
    outbox: Vec<Outgoing>,
    receive_maximum: u16,
    max_packet_size: u32,
    /// Topic aliases the client set (index: alias - 1).
    aliases_in: Vec<Option<TopicName>>,
    /// Boxed, and only for a 5.0 client that allows aliases: every connection has the rest.
    aliases_out: Option<Box<AliasesOut>>,
    /// Whether the CONNECT asked for no session expiry.
    asked_no_expiry: bool,
}

/// Topics longer than this get no server topic alias: the table of aliases stays small.
const MAX_ALIASED_TOPIC: usize = 256;

/// (5.0) The topic aliases the server assigns on one connection: the first topics sent get
/// the aliases; once all are taken, they are reassigned in turn.
#[derive(Debug, Clone, Default)]
struct AliasesOut {
    max: u16,
    by_topic: HashMap<TopicName, NonZeroU16>,
    /// The topic each alias stands for (index: alias - 1).
    topics: Vec<TopicName>,
    /// The alias reassigned next once all are taken.
    next: u16,
}

impl AliasesOut {
    /// The alias for `topic`, and whether the client already knows it.
    fn alias(&mut self, topic: &TopicName) -> Option<(NonZeroU16, bool)> {
        if self.max == 0 || topic.is_empty() || topic.len() > MAX_ALIASED_TOPIC {
            return None;
        }
        if let Some(&alias) = self.by_topic.get(topic) {
            return Some((alias, true));
        }
        let copied = topic.copied();
        let alias = if self.topics.len() < usize::from(self.max) {
            self.topics.push(copied.clone());
            u16::try_from(self.topics.len()).ok()?
        } else {
            let alias = self.next % self.max + 1;
            self.next = alias;
            let slot = self.topics.get_mut(usize::from(alias - 1))?;
            let old = std::mem::replace(slot, copied.clone());
            self.by_topic.remove(&old);
            alias
        };
        let alias = NonZeroU16::new(alias)?;
        self.by_topic.insert(copied, alias);
        Some((alias, false))
    }
}

/// A client's session on the server.
///
/// The persistent part (subscriptions, messages in flight and queued, QoS 2 packet identifiers
/// awaiting PUBREL) survives [`Session::detach`] when the session is persistent; the
/// connection part (protocol version, keep alive, will, outbox) does not.
///
/// Call order for a connection: [`Session::attach`]; then any number of
/// [`Session::handle_packet`], [`Session::deliver`], [`Session::handle_timeout`] and
/// [`Session::take_outbox`]; then [`Session::detach`].
#[derive(Debug, Clone)]
pub struct Session {
    client_id: MqttString,
    persistent: bool,
    limits: Limits,
    subscriptions: HashMap<TopicFilter, SubscriptionData>,
    inflight: VecDeque<Inflight>,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    incoming_qos2: HashSet<PacketId>,
    next_id: PacketId,
    connection: Option<Connection>,
    stats: SessionStats,
    expiry_interval: u32,
    /// Messages in flight not yet sent on the current connection.
    unsent: usize,
    /// With [`Limits::journal`]: the changes not yet taken by the store. Boxed: a session
    /// without a journal pays one word for it.
    journal: Option<Box<Journal>>,
}

/// A session's journal ([`Limits::journal`]).
#[derive(Debug, Clone, Default)]
struct Journal {
    /// Changes not yet taken by the store.
    changes: Vec<Change>,
    /// Whether some of them gate the outbox ([`Session::changes_gate_output`]).
    gates: bool,
    /// The entry number of the next message queued.
    next_entry: u64,
}

fn violation(statement: Option<&'static str>, detail: &'static str) -> Close {
    Close::Violation {
        statement,
        detail,
        reason: ReasonCode::ProtocolError,
    }
}

impl Session {
    /// A new, empty session; `persistent` is the inverse of Clean Session.
    pub fn new(client_id: MqttString, persistent: bool, limits: Limits) -> Self {
        Self {
            client_id,
            persistent,
            limits,
            subscriptions: HashMap::new(),
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            incoming_qos2: HashSet::new(),
            next_id: PacketId::from(std::num::NonZeroU16::MIN),
            connection: None,
            stats: SessionStats::default(),
            expiry_interval: if persistent { u32::MAX } else { 0 },
            unsent: 0,
            journal: limits.journal.then(|| {
                Box::new(Journal {
                    next_entry: 1,
                    ..Journal::default()
                })
            }),
        }
        .journaled_from_start()
    }

    /// A new persistent session records that it exists.
    fn journaled_from_start(mut self) -> Self {
        self.record(Change::Expiry(self.expiry_interval));
        self
    }

    /// A session rebuilt from what a durable store kept: detached, its queued messages spilled
    /// (their bodies stay in the store until [`Session::fill`]), its messages in flight to be
    /// sent again on the next attach.
    pub fn from_stored(stored: StoredSession, limits: Limits) -> Self {
        let mut session = Self::new(stored.client_id, stored.expiry_interval > 0, limits);
        // Nothing of what follows is new to the store.
        session.take_changes();
        session.expiry_interval = stored.expiry_interval;
        session.subscriptions = stored.subscriptions.into_iter().collect();
        let mut last = 0;
        for f in stored.inflight {
            last = last.max(f.entry);
            let state = match (f.spilled.qos, f.received) {
                (QoS::ExactlyOnce, true) => Await::Complete,
                (QoS::ExactlyOnce, false) => Await::Received,
                _ => Await::Ack,
            };
            session.inflight.push_back(Inflight {
                entry: f.entry,
                id: f.id,
                item: Item::Spilled(Box::new(f.spilled)),
                state,
                sent: false,
            });
        }
        for (entry, spilled) in stored.queue {
            last = last.max(entry);
            session.queued_bytes += spilled.size;
            session.queue.push_back(Queued {
                entry,
                item: Item::Spilled(Box::new(spilled)),
            });
        }
        session.incoming_qos2 = stored.incoming_qos2.into_iter().collect();
        if let Some(j) = &mut session.journal {
            j.next_entry = last.saturating_add(1);
        }
        session.unsent = session.inflight.len();
        session
    }

    /// Records a change for the store, if this session keeps a journal and is persistent.
    /// The broker records its own ([`Change::Detached`], [`Change::DelayedWill`],
    /// [`Change::WillDone`]) this way, so that they take their place among the session's.
    pub fn record(&mut self, change: Change) {
        if self.persistent
            && let Some(j) = &mut self.journal
        {
            j.changes.push(change);
        }
    }

    /// Records a change that what the session says next depends on: a subscription (SUBACK),
    /// a QoS 2 packet identifier sent (the PUBLISH) or received (PUBREC, PUBCOMP), a PUBREC
    /// (PUBREL). The outbox must not be written before such a change is durable
    /// ([`Session::changes_gate_output`]).
    fn record_gating(&mut self, change: Change) {
        if self.persistent
            && let Some(j) = &mut self.journal
        {
            j.gates = true;
            j.changes.push(change);
        }
    }

    /// Whether changes wait to be taken by the store.
    pub fn has_changes(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| !j.changes.is_empty())
    }

    /// Whether some of the changes waiting to be taken must be durable before the outbox is
    /// written (a SUBACK, a QoS 2 PUBLISH, PUBREC, PUBREL or PUBCOMP depends on them). Other
    /// changes need not hold the outbox back: a QoS 1 message resent after a crash is a
    /// duplicate the protocol allows.
    pub fn changes_gate_output(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.gates)
    }

    /// Takes the changes recorded since the last call, in order.
    pub fn take_changes(&mut self) -> Vec<Change> {
        match &mut self.journal {
            Some(j) => {
                j.gates = false;
                std::mem::take(&mut j.changes)
            }
            None => Vec::new(),
        }
    }

    /// The entries of queued messages whose bodies are in the store (all of them, or only
    /// those a shared subscription chose): the broker loads them with the store and hands them
    /// back with [`Session::fill`] before they can be sent (or given to another member).
    ///
    /// Messages in flight come first (in their order), then queued ones; a QoS 2 message whose
    /// PUBREC came needs no body (only PUBREL goes out again) and is not listed.
    pub fn spilled_entries(&self, shared_only: bool) -> Vec<u64> {
        let wanted =
            |item: &Item| matches!(item, Item::Spilled(_)) && (!shared_only || item.is_shared());
        self.inflight
            .iter()
            .filter(|f| f.state != Await::Complete && wanted(&f.item))
            .map(|f| f.entry)
            .chain(
                self.queue
                    .iter()
                    .filter(|q| wanted(&q.item))
                    .map(|q| q.entry),
            )
            .collect()
    }

    /// Puts back the bodies of spilled queue entries, as loaded from the store; an entry given
    /// `None` could not be read and is dropped (counted in [`SessionStats::dropped_unreadable`]).
    /// An attached session then sends what its window allows; a detached one keeps them
    /// loaded only until [`Session::detach`] spills them again.
    pub fn fill(&mut self, loaded: Vec<(u64, Option<Delivery>)>, now: Instant) {
        let mut loaded: HashMap<u64, Option<Delivery>> = loaded.into_iter().collect();
        let mut lost = Vec::new();
        for f in &mut self.inflight {
            if !matches!(f.item, Item::Spilled(_)) {
                continue;
            }
            match loaded.remove(&f.entry) {
                Some(Some(d)) => f.item = Item::Loaded(d),
                Some(None) => lost.push(f.entry),
                None => {}
            }
        }
        for q in &mut self.queue {
            if !matches!(q.item, Item::Spilled(_)) {
                continue;
            }
            match loaded.remove(&q.entry) {
                Some(Some(d)) => q.item = Item::Loaded(d),
                Some(None) => lost.push(q.entry),
                None => {}
            }
        }
        if !lost.is_empty() {
            let gone: HashSet<u64> = lost.iter().copied().collect();
            let unsent_lost = self
                .inflight
                .iter()
                .filter(|f| !f.sent && gone.contains(&f.entry))
                .count();
            self.unsent = self.unsent.saturating_sub(unsent_lost);
            self.inflight.retain(|f| !gone.contains(&f.entry));
            self.queue.retain(|q| !gone.contains(&q.entry));
            self.queued_bytes = self.queue.iter().map(Queued::size).sum();
            self.stats.dropped_unreadable += lost.len() as u64;
            for entry in lost {
                self.record(Change::Removed { entry });
            }
        }
        self.pump(now);
    }

    /// (5.0) The Session Expiry Interval, in seconds: how long the session outlives its
    /// connection (0: it ends with it; `u32::MAX`: never).
    pub fn expiry_interval(&self) -> u32 {
        self.expiry_interval
    }

    /// Sets the Session Expiry Interval; the session is persistent when it is not 0.
    pub fn set_expiry_interval(&mut self, secs: u32) {
        let was = self.persistent;
        let changed = secs != self.expiry_interval || was != (secs > 0);
        self.expiry_interval = secs;
        // Recorded while persistent and when it becomes so; 0 tells the store to forget it.
        if changed
            && (was || secs > 0)
            && let Some(j) = &mut self.journal
        {
            j.changes.push(Change::Expiry(secs));
        }
        self.persistent = secs > 0;
    }

    /// The client identifier.
    pub fn client_id(&self) -> &MqttString {
        &self.client_id
    }

    /// Whether the session outlives its connections (Clean Session 0).
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// Changes whether the session outlives its connections (a reconnect may change it); a
    /// persistent session set this way never expires.
    pub fn set_persistent(&mut self, persistent: bool) {
        self.set_expiry_interval(if persistent { u32::MAX } else { 0 });
    }

    /// (QoS 2, from the client) Whether the packet identifier `id` awaits its PUBREL.
    pub fn awaits_release(&self, id: PacketId) -> bool {
        self.incoming_qos2.contains(&id)
    }

    /// Whether a connection is attached.
    pub fn is_attached(&self) -> bool {
        self.connection.is_some()
    }

    /// The attached connection's protocol version.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.connection.as_ref().map(|c| c.version)
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Messages waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// QoS 1 and 2 messages sent and not yet acknowledged.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// The session's subscriptions (the broker's index holds the same, for matching; this copy
    /// is what is persisted and what is removed from the index when the session ends).
    pub fn subscriptions(&self) -> impl Iterator<Item = (&TopicFilter, &SubscriptionData)> {
        self.subscriptions.iter()
    }

    /// How many subscriptions the session has.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// Records a subscription (the filter is copied out of its packet); returns the one it
    /// replaces.
    pub fn add_subscription(
        &mut self,
        filter: &TopicFilter,
        data: SubscriptionData,
    ) -> Option<SubscriptionData> {
        let filter = filter.copied();
        self.record_gating(Change::Subscribed(filter.clone(), data));
        self.subscriptions.insert(filter, data)
    }

    /// Forgets a subscription.
    pub fn remove_subscription(&mut self, filter: &TopicFilter) -> Option<SubscriptionData> {
        let removed = self.subscriptions.remove(filter);
        if removed.is_some() {
            self.record_gating(Change::Unsubscribed(filter.copied()));
        }
        removed
    }

    /// Takes out the messages a shared subscription chose for this session that the client has
    /// not received: queued, or in flight without acknowledgement (a QoS 2 message already
    /// acknowledged with PUBREC was received and stays). For the broker to hand them to another
    /// member of their group when the session ends (MQTT 5.0 section 4.8.2).
    ///
    /// Queued messages still spilled to the store are not taken (load them first with
    /// [`Session::spilled_entries`] and [`Session::fill`]).
    pub fn take_shared_unacknowledged(&mut self) -> Vec<Delivery> {
        let mut taken = Vec::new();
        let mut removed = Vec::new();
        let mut kept = VecDeque::with_capacity(self.inflight.len());
        for f in self.inflight.drain(..) {
            match f.item {
                Item::Loaded(d) if d.shared().is_some() && f.state != Await::Complete => {
                    if !f.sent {
                        self.unsent = self.unsent.saturating_sub(1);
                    }
                    removed.push(f.entry);
                    taken.push(d);
                }
                item => kept.push_back(Inflight { item, ..f }),
            }
        }
        self.inflight = kept;
        let mut queue = VecDeque::with_capacity(self.queue.len());
        for q in self.queue.drain(..) {
            match q.item {
                Item::Loaded(d) if d.shared().is_some() => {
                    self.queued_bytes = self.queued_bytes.saturating_sub(d.size());
                    removed.push(q.entry);
                    taken.push(d);
                }
                item => queue.push_back(Queued {
                    entry: q.entry,
                    item,
                }),
            }
        }
        self.queue = queue;
        for entry in removed {
            self.record(Change::Removed { entry });
        }
        taken
    }

    /// Discards all state but the client identifier (Clean Session 1 [MQTT-3.1.2-6]); returns
    /// the subscriptions it had, for the broker to remove from its index.
    pub fn clear(&mut self) -> Vec<TopicFilter> {
        self.record(Change::Cleared);
        self.inflight.clear();
        self.unsent = 0;
        self.queue.clear();
        self.queued_bytes = 0;
        self.incoming_qos2.clear();
        self.subscriptions.drain().map(|(f, _)| f).collect()
    }

    /// Ends the session for good (it expired, or ended with its connection): discards all its
    /// state, as [`Session::clear`], and tells the store to forget it. The session is no
    /// longer persistent.
    pub fn end(&mut self) -> Vec<TopicFilter> {
        let filters = self.clear();
        self.record(Change::Ended);
        self.persistent = false;
        self.expiry_interval = 0;
        filters
    }

    /// Attaches a connection. A resumed session re-sends its unacknowledged messages with DUP
    /// and their original packet identifiers, and PUBREL for those already received, in their
    /// original order [MQTT-4.4.0-1]; then queued messages fill the in-flight window.
    pub fn attach(&mut self, attach: Attach, now: Instant) {
        let keep_alive = (attach.keep_alive > 0)
            .then(|| Duration::from_millis(u64::from(attach.keep_alive) * 1500));
        let connection = Connection {
            version: attach.version,
            keep_alive,
            deadline: keep_alive.map(|k| now + k),
            will: attach.will,
            outbox: Vec::new(),
            receive_maximum: attach.receive_maximum.max(1),
            max_packet_size: attach.max_packet_size,
            aliases_in: Vec::new(),
            // No more aliases than we accept ourselves: the table costs memory per connection.
            aliases_out: {
                let max = attach.topic_alias_maximum.min(self.limits.max_topic_alias);
                (attach.version.is_v5() && max > 0).then(|| {
                    Box::new(AliasesOut {
                        max,
                        ..AliasesOut::default()
                    })
                })
            },
            asked_no_expiry: attach.requested_session_expiry == 0,
        };
        if self.persistent
            && let Some(j) = &mut self.journal
        {
            let will = connection.will.clone();
            j.changes.push(Change::Attached { will });
        }
        self.connection = Some(connection);
        // Everything in flight is sent again, in order, as the window allows [MQTT-4.4.0-1,
        // MQTT-3.3.4-9].
        for f in &mut self.inflight {
            f.sent = false;
        }
        self.unsent = self.inflight.len();
        self.pump(now);
    }

    /// The window of unacknowledged QoS 1 and 2 messages: ours, and the client's Receive
    /// Maximum [MQTT-3.3.4-9].
    fn window(&self) -> usize {
        usize::from(
            self.connection
                .as_ref()
                .map_or(self.limits.max_inflight, |c| {
                    self.limits.max_inflight.min(c.receive_maximum)
                }),
        )
    }

    /// Sends again the messages in flight not yet sent on this connection, while the window
    /// allows: with DUP and their packet identifiers, or PUBREL for those the client already
    /// received. One now larger than the client's Maximum Packet Size is dropped as if
    /// delivered [MQTT-3.1.2-25].
    fn resend(&mut self, now: Instant) {
        let window = self.window();
        let mut sent = self.inflight.len().saturating_sub(self.unsent);
        let mut i = 0;
        while self.unsent > 0 && sent < window {
            let Some(f) = self.inflight.get(i) else {
                self.unsent = 0;
                break;
            };
            if f.sent {
                i += 1;
                continue;
            }
            let Some(c) = self.connection.as_mut() else {
                return;
            };
            let delivery = match (&f.item, f.state) {
                (_, Await::Complete) => None,
                (Item::Loaded(d), _) => Some(d),
                // Its body is still in the store: the rest waits for `fill`, in order.
                (Item::Spilled(_), _) => break,
            };
            self.unsent -= 1;
            let item = match delivery {
                Some(delivery) => {
                    if c.max_packet_size < PROTOCOL_MAX_PACKET_SIZE && c.too_large(delivery, now) {
                        self.stats.dropped_too_large += 1;
                        let entry = f.entry;
                        self.inflight.remove(i);
                        self.record(Change::Removed { entry });
                        continue;
                    }
                    let envelope = Envelope {
                        qos: qos_pid(delivery.qos, f.id),
                        dup: true,
                        retain: delivery.retain,
                    };
                    c.publish(delivery, envelope, now)
                }
                None => Outgoing::Packet(Packet::PubRel(PubRel::new(f.id))),
            };
            c.outbox.push(item);
            if let Some(f) = self.inflight.get_mut(i) {
                f.sent = true;
            }
            sent += 1;
            i += 1;
        }
    }

    /// Detaches the connection. Returns its will unless the client said DISCONNECT
    /// (`graceful`): the caller publishes it [MQTT-3.1.2-8, MQTT-3.1.2-10]. Messages sent and not
    /// acknowledged stay in flight, to be sent again on the next attach.
    ///
    /// With a journal ([`Limits::journal`]), the bodies of queued and in-flight messages are
    /// dropped from memory: the store has them, and gives them back when the client returns.
    pub fn detach(&mut self, graceful: bool) -> Option<Will> {
        let connection = self.connection.take()?;
        if self.limits.journal && self.persistent {
            let spill = |item: &mut Item| {
                if let Item::Loaded(d) = item {
                    *item = Item::Spilled(Box::new(d.summary()));
                }
            };
            self.inflight.iter_mut().for_each(|f| spill(&mut f.item));
            self.queue.iter_mut().for_each(|q| spill(&mut q.item));
        }
        if graceful { None } else { connection.will }
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn deadline(&self) -> Option<Instant> {
        self.connection.as_ref().and_then(|c| c.deadline)
    }

    /// Checks the keep alive: after one and a half keep alive periods without a packet the
    /// connection must close [MQTT-3.1.2-24].
    ///
    /// # Errors
    /// [`Close::KeepAliveTimeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Close> {
        match self.deadline() {
            Some(deadline) if now >= deadline => Err(Close::KeepAliveTimeout),
            _ => Ok(()),
        }
    }

    /// Queues a packet for the client (SUBACK, UNSUBACK, ...).
    pub fn send(&mut self, packet: Packet) {
        if let Some(c) = &mut self.connection {
            c.outbox.push(Outgoing::Packet(packet));
        }
    }

    /// (5.0) Changes the reason code of the PUBACK or PUBREC waiting in the outbox for the
    /// client's message `id` (the broker says 0x10 "no matching subscribers" once it has routed
    /// the message). Does nothing if it was already written.
    pub fn set_ack_reason(&mut self, id: PacketId, reason: ReasonCode) {
        let Some(c) = &mut self.connection else {
            return;
        };
        for item in c.outbox.iter_mut().rev() {
            match item {
                Outgoing::Packet(Packet::PubAck(ack)) if ack.packet_id == id => {
                    ack.reason_code = reason;
                    return;
                }
                Outgoing::Packet(Packet::PubRec(rec)) if rec.packet_id == id => {
                    rec.reason_code = reason;
                    return;
                }
                _ => {}
            }
        }
    }

    /// Takes what is to be written to the client, in order.
    pub fn take_outbox(&mut self) -> Vec<Outgoing> {
        self.connection
            .as_mut()
            .map(|c| std::mem::take(&mut c.outbox))
            .unwrap_or_default()
    }

    /// Whether anything is waiting to be written.
    pub fn has_outgoing(&self) -> bool {
        self.connection
            .as_ref()
            .is_some_and(|c| !c.outbox.is_empty())
    }

    /// Handles a packet from the client.
    ///
    /// # Errors
    /// A [`Close`] when the packet breaks the protocol: the connection must be closed (and the
    /// will published).
    pub fn handle_packet(&mut self, packet: Packet, now: Instant) -> Result<Option<Action>, Close> {
        if let Some(c) = &mut self.connection {
            c.deadline = c.keep_alive.map(|k| now + k);
        }
        match packet {
            Packet::Publish(publish) => self.handle_publish(publish),
            Packet::PubAck(ack) => {
                self.acknowledge(ack.packet_id, Await::Ack, now);
                Ok(None)
            }
            Packet::PubRec(rec) => {
                if rec.reason_code.is_error() {
                    // (5.0) The client refused the message: its flow ends here, without PUBREL
                    // (section 4.3.3); the identifier is free again.
                    self.acknowledge(rec.packet_id, Await::Received, now);
                    return Ok(None);
                }
                let received = self
                    .inflight
                    .iter_mut()
                    .find(|f| f.id == rec.packet_id && f.state == Await::Received)
                    .map(|f| {
                        f.state = Await::Complete;
                        f.entry
                    });
                let known = received.is_some();
                if let Some(entry) = received {
                    self.record_gating(Change::Received { entry });
                }
                // Answered even for an unknown identifier, so the client's flow completes
                // (5.0: with 0x92, "packet identifier not found").
                let mut rel = PubRel::new(rec.packet_id);
                if !known && self.is_v5() {
                    rel.reason_code = ReasonCode::PacketIdentifierNotFound;
                }
                self.send(Packet::PubRel(rel));
                Ok(None)
            }
            Packet::PubRel(rel) => {
                // The message was routed on PUBLISH; release its identifier [MQTT-4.3.3-2].
                let known = self.incoming_qos2.remove(&rel.packet_id);
                if known {
                    self.record_gating(Change::IncomingReleased(rel.packet_id));
                }
                let mut comp = PubComp::new(rel.packet_id);
                if !known && self.is_v5() {
                    comp.reason_code = ReasonCode::PacketIdentifierNotFound;
                }
                self.send(Packet::PubComp(comp));
                Ok(None)
            }
            Packet::PubComp(comp) => {
                self.acknowledge(comp.packet_id, Await::Complete, now);
                Ok(None)
            }
            Packet::Subscribe(subscribe) => Ok(Some(Action::Subscribe(subscribe))),
            Packet::Unsubscribe(unsubscribe) => Ok(Some(Action::Unsubscribe(unsubscribe))),
            Packet::PingReq => {
                self.send(Packet::PingResp);
                Ok(None)
            }
            Packet::Disconnect(disconnect) => {
                if let Some(secs) = disconnect.properties.session_expiry_interval {
                    // A session that was to end with its connection cannot be made to outlive
                    // it at the last moment: a Protocol Error (5.0 section 3.14.2.2.2). The
                    // server's maximum applies as it did at CONNECT.
                    let asked_none = self.connection.as_ref().is_some_and(|c| c.asked_no_expiry);
                    if asked_none && secs != 0 {
                        return Err(violation(
                            None,
                            "DISCONNECT sets a session expiry on a session that had none",
                        ));
                    }
                    self.set_expiry_interval(secs.min(self.limits.max_session_expiry));
                }
                // Only a normal disconnection (0x00) discards the will [MQTT-3.1.2-10,
                // MQTT-3.14.4-3]; 0x04 asks for it, and so does any error reason.
                Ok(Some(Action::Disconnect {
                    publish_will: disconnect.reason_code != ReasonCode::NORMAL_DISCONNECTION,
                }))
            }
            Packet::Connect(_) => Err(violation(
                Some("MQTT-3.1.0-2"),
                "second CONNECT on a connection",
            )),
            Packet::Auth(auth) if self.is_v5() => Ok(Some(Action::Auth(auth))),
            Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp
            | Packet::Auth(_) => Err(violation(None, "packet a client must not send")),
        }
    }

    fn is_v5(&self) -> bool {
        self.connection.as_ref().is_some_and(|c| c.version.is_v5())
    }

    /// (5.0) Resolves the client's Topic Alias: a PUBLISH with a topic name and an alias sets
    /// the alias, one with an empty topic name uses it [MQTT-3.3.2-12]. The alias itself is not
    /// forwarded: aliases belong to one connection.
    fn resolve_alias(&mut self, publish: &mut Publish) -> Result<(), Close> {
        let Some(alias) = publish.properties().topic_alias else {
            return Ok(());
        };
        let max = self.limits.max_topic_alias;
        if alias.get() > max {
            // 0 cannot be decoded; above the maximum we sent in CONNACK [MQTT-3.3.2-9].
            return Err(Close::Violation {
                statement: Some("MQTT-3.3.2-9"),
                detail: "topic alias above the server's Topic Alias Maximum",
                reason: ReasonCode::TopicAliasInvalid,
            });
        }
        let Some(c) = &mut self.connection else {
            return Ok(());
        };
        let i = usize::from(alias.get() - 1);
        if publish.topic.is_empty() {
            match c.aliases_in.get(i).and_then(Option::as_ref) {
                Some(topic) => publish.topic = topic.clone(),
                None => {
                    // A Protocol Error (5.0 section 3.3.2.3.4).
                    return Err(violation(None, "topic alias used before it was set"));
                }
            }
        } else {
            if c.aliases_in.len() <= i {
                c.aliases_in.resize(i + 1, None);
            }
            if let Some(slot) = c.aliases_in.get_mut(i) {
                *slot = Some(publish.topic.copied());
            }
        }
        let mut properties = publish.properties().clone();
        properties.topic_alias = None;
        publish.set_properties(properties);
        Ok(())
    }

    fn handle_publish(&mut self, mut publish: Publish) -> Result<Option<Action>, Close> {
        self.resolve_alias(&mut publish)?;
        if self.limits.validate_utf8_payload
            && publish.properties().payload_format_indicator == Some(PayloadFormat::Utf8)
            && std::str::from_utf8(&publish.payload).is_err()
        {
            // A payload said to be UTF-8 that is not: refused with 0x99, and not routed.
            let reason = ReasonCode::PayloadFormatInvalid;
            match publish.qos {
                QosPid::AtMostOnce => {
                    return Err(Close::Violation {
                        statement: None,
                        detail: "payload marked UTF-8 is not UTF-8",
                        reason,
                    });
                }
                QosPid::AtLeastOnce(id) => {
                    let mut ack = PubAck::new(id);
                    ack.reason_code = reason;
                    self.send(Packet::PubAck(ack));
                }
                QosPid::ExactlyOnce(id) => {
                    let mut rec = PubRec::new(id);
                    rec.reason_code = reason;
                    self.send(Packet::PubRec(rec));
                }
            }
            return Ok(None);
        }
        match publish.qos {
            QosPid::AtMostOnce => Ok(Some(Action::Route(Arc::new(publish)))),
            QosPid::AtLeastOnce(id) => {
                self.send(Packet::PubAck(PubAck::new(id)));
                Ok(Some(Action::Route(Arc::new(publish))))
            }
            QosPid::ExactlyOnce(id) => {
                // A QoS 2 message is routed once: a repeat before PUBREL is only acknowledged
                // again [MQTT-4.3.3-2].
                if self.incoming_qos2.contains(&id) {
                    self.send(Packet::PubRec(PubRec::new(id)));
                    return Ok(None);
                }
                if self.incoming_qos2.len() >= self.limits.max_incoming_qos2 {
                    return Err(Close::Violation {
                        statement: None,
                        detail: "too many QoS 2 messages awaiting PUBREL",
                        reason: ReasonCode::ReceiveMaximumExceeded,
                    });
                }
                self.incoming_qos2.insert(id);
                self.record_gating(Change::IncomingQos2(id));
                self.send(Packet::PubRec(PubRec::new(id)));
                Ok(Some(Action::Route(Arc::new(publish))))
            }
        }
    }

    fn acknowledge(&mut self, id: PacketId, state: Await, now: Instant) {
        if let Some(i) = self
            .inflight
            .iter()
            .position(|f| f.id == id && f.state == state)
            && let Some(f) = self.inflight.remove(i)
        {
            self.record(Change::Removed { entry: f.entry });
            self.pump(now);
        }
    }

    /// Takes a message for the client. Returns whether something was added to the outbox (the
    /// driver should then be woken to write it).
    ///
    /// Online, QoS 0 messages go straight out and QoS 1 and 2 messages into the in-flight window
    /// while it has room; otherwise (and for a persistent session offline) they wait in the
    /// queue, behind anything already there, so that messages keep their order. A full queue
    /// drops the new message (counted in [`SessionStats`]); so does an offline session for QoS 0
    /// unless [`Limits::queue_qos0_offline`], and a non-persistent offline session always.
    /// (5.0) An expired message is dropped, and so is one larger than the client's Maximum
    /// Packet Size (as if it had been sent [MQTT-3.1.2-25]).
    pub fn deliver(&mut self, delivery: Delivery, now: Instant) -> bool {
        if delivery.expired(now) {
            self.stats.dropped_expired += 1;
            return false;
        }
        if self.connection.is_none() {
            if self.persistent
                && (delivery.qos != QoS::AtMostOnce || self.limits.queue_qos0_offline)
            {
                self.enqueue(delivery, now);
            } else {
                self.stats.dropped_offline += 1;
            }
            return false;
        }
        if self.queue.is_empty() && self.can_send(delivery.qos) {
            // A client that does not read: its unwritten QoS 0 messages are bounded too.
            let backlog = self.connection.as_ref().map_or(0, |c| c.outbox.len());
            if delivery.qos == QoS::AtMostOnce && backlog >= self.limits.max_queued_messages {
                self.stats.dropped_queue_full += 1;
                return false;
            }
            return self.send_delivery(delivery, None, now);
        }
        self.enqueue(delivery, now);
        false
    }

    /// Whether changes are recorded for the store now.
    fn journaling(&self) -> bool {
        self.persistent && self.journal.is_some()
    }

    /// A new entry number (0 without a journal: only the store needs them).
    fn new_entry(&mut self) -> u64 {
        match &mut self.journal {
            Some(j) if self.persistent => {
                let entry = j.next_entry;
                j.next_entry += 1;
                entry
            }
            _ => 0,
        }
    }

    /// Whether a message of this QoS may go out now: QoS 1 and 2 only while fewer than the
    /// window (ours, and the client's Receive Maximum [MQTT-3.3.4-9]) are unacknowledged.
    fn can_send(&self, qos: QoS) -> bool {
        qos == QoS::AtMostOnce || (self.unsent == 0 && self.inflight.len() < self.window())
    }

    fn enqueue(&mut self, delivery: Delivery, now: Instant) {
        let size = delivery.size();
        let full = |s: &Self| {
            s.queue.len() >= s.limits.max_queued_messages
                || s.queued_bytes.saturating_add(size) > s.limits.max_queued_bytes
        };
        if full(self) && self.queue.iter().any(|q| q.expired(now)) {
            // Expired messages make room before a live one is refused.
            let mut expired = Vec::new();
            self.queue.retain(|q| {
                let gone = q.expired(now);
                if gone {
                    expired.push(q.entry);
                }
                !gone
            });
            self.stats.dropped_expired += expired.len() as u64;
            self.queued_bytes = self.queue.iter().map(Queued::size).sum();
            for entry in expired {
                self.record(Change::Removed { entry });
            }
        }
        if full(self) {
            self.stats.dropped_queue_full += 1;
            return;
        }
        let entry = self.new_entry();
        let item = if self.journaling() {
            let spill = self.connection.is_none();
            let item = if spill {
                // Offline: the store keeps the body until the client returns.
                Item::Spilled(Box::new(delivery.summary()))
            } else {
                Item::Loaded(delivery.clone())
            };
            self.record(Change::Queued { entry, delivery });
            item
        } else {
            Item::Loaded(delivery)
        };
        self.queued_bytes += size;
        self.queue.push_back(Queued { entry, item });
    }

    /// Moves queued messages out while the window allows (a spilled one waits for
    /// [`Session::fill`]).
    fn pump(&mut self, now: Instant) {
        if self.connection.is_none() {
            return;
        }
        if self.unsent > 0 {
            self.resend(now);
        }
        while let Some(front) = self.queue.front() {
            if matches!(front.item, Item::Spilled(_)) || !self.can_send(front.qos()) {
                break;
            }
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes = self.queued_bytes.saturating_sub(q.size());
            let Item::Loaded(delivery) = q.item else {
                break;
            };
            if delivery.expired(now) {
                self.stats.dropped_expired += 1;
                self.record(Change::Removed { entry: q.entry });
                continue;
            }
            self.send_delivery(delivery, Some(q.entry), now);
        }
    }

    /// Sends a message (taking a packet identifier and a place in the window for QoS 1 and
    /// 2); returns whether it was sent rather than dropped as too large for the client.
    /// `entry` is the message's queue entry if it was queued.
    fn send_delivery(&mut self, delivery: Delivery, entry: Option<u64>, now: Instant) -> bool {
        if let Some(c) = &self.connection
            && c.max_packet_size < PROTOCOL_MAX_PACKET_SIZE
            && c.too_large(&delivery, now)
        {
            // Discarded as if sent [MQTT-3.1.2-25]; counted.
            self.stats.dropped_too_large += 1;
            if let Some(entry) = entry {
                self.record(Change::Removed { entry });
            }
            return false;
        }
        let Some(c) = &mut self.connection else {
            return false;
        };
        let properties = c.properties(&delivery, now);
        let qos = match delivery.qos {
            QoS::AtMostOnce => QosPid::AtMostOnce,
            qos => {
                let id = self.allocate_id();
                qos_pid(qos, id)
            }
        };
        let envelope = Envelope {
            qos,
            dup: false,
            retain: delivery.retain,
        };
        // The message itself moves into the outbox; a QoS 1 or 2 one is also kept in flight.
        let publish = if let Some(id) = qos.packet_id() {
            let publish = Arc::clone(&delivery.publish);
            let entry = match entry {
                Some(entry) => entry,
                None => {
                    let entry = self.new_entry();
                    if self.journaling() {
                        self.record(Change::Queued {
                            entry,
                            delivery: delivery.clone(),
                        });
                    }
                    entry
                }
            };
            // A QoS 2 message goes out only once its packet identifier is durable: resent after
            // a crash with another one, the client would take it for a new message. A QoS 1
            // message may go at once (a resend is a duplicate QoS 1 allows).
            if delivery.qos == QoS::ExactlyOnce {
                self.record_gating(Change::Sent { entry, id });
            } else {
                self.record(Change::Sent { entry, id });
            }
            self.inflight.push_back(Inflight {
                entry,
                sent: true,
                id,
                state: if delivery.qos == QoS::AtLeastOnce {
                    Await::Ack
                } else {
                    Await::Received
                },
                item: Item::Loaded(delivery),
            });
            publish
        } else {
            if let Some(entry) = entry {
                self.record(Change::Removed { entry });
            }
            delivery.publish
        };
        if let Some(c) = &mut self.connection {
            c.outbox.push(Outgoing::Publish {
                publish,
                envelope,
                properties,
            });
        }
        true
    }

    /// The next packet identifier not in flight [MQTT-2.3.1-2, MQTT-2.3.1-4]. The window is at
    /// most 65,535 messages, so one is always free.
    fn allocate_id(&mut self) -> PacketId {
        loop {
            let id = self.next_id;
            self.next_id = id.next();
            if !self.inflight.iter().any(|f| f.id == id) {
                return id;
            }
        }
    }
}

impl Connection {
    /// The outgoing PUBLISH of a delivery on this connection: in 5.0 with the remaining
    /// expiry, the subscription identifiers and a topic alias when the client allows them.
    fn publish(&mut self, delivery: &Delivery, envelope: Envelope, now: Instant) -> Outgoing {
        let properties = self.properties(delivery, now);
        Outgoing::Publish {
            publish: Arc::clone(&delivery.publish),
            envelope,
            properties,
        }
    }

    /// The per-delivery properties of a PUBLISH on this connection.
    fn properties(&mut self, delivery: &Delivery, now: Instant) -> DeliveryProperties {
        let mut properties = DeliveryProperties::default();
        if self.version.is_v5() {
            properties.message_expiry_interval = delivery.remaining_secs(now);
            properties.subscription_identifiers = delivery.identifiers().to_vec();
            if let Some((alias, known)) = self
                .aliases_out
                .as_mut()
                .and_then(|a| a.alias(&delivery.publish.topic))
            {
                properties.topic_alias = Some(alias);
                properties.omit_topic = known;
            }
        }
        properties
    }

    /// Whether the delivery, sent in full (topic name and a new alias), would exceed the
    /// client's Maximum Packet Size.
    fn too_large(&self, delivery: &Delivery, now: Instant) -> bool {
        let properties = DeliveryProperties {
            topic_alias: self.aliases_out.is_some().then_some(NonZeroU16::MIN),
            omit_topic: false,
            message_expiry_interval: delivery.remaining_secs(now),
            subscription_identifiers: delivery.identifiers().to_vec(),
        };
        let envelope = Envelope {
            qos: qos_pid(delivery.qos, PacketId::from(NonZeroU16::MIN)),
            dup: false,
            retain: delivery.retain,
        };
        delivery
            .publish
            .delivery_len(envelope, &properties, self.version)
            .map_or(true, |len| len > self.max_packet_size as usize)
    }
}

fn qos_pid(qos: QoS, id: PacketId) -> QosPid {
    match qos {
        QoS::AtMostOnce => QosPid::AtMostOnce,
        QoS::AtLeastOnce => QosPid::AtLeastOnce(id),
        QoS::ExactlyOnce => QosPid::ExactlyOnce(id),
    }
}

#[cfg(test)]
impl Session {
    /// What can be observed of the session's durable state, comparable.
    pub(crate) fn observe(&self) -> String {
        let mut subs: Vec<_> = self
            .subscriptions
            .iter()
            .map(|(f, d)| format!("{}:{:?}", f.as_str(), d))
            .collect();
        subs.sort();
        let inflight: Vec<_> = self
            .inflight
            .iter()
            .map(|f| match &f.item {
                // Only PUBREL goes out again: its body, loaded or not, does not matter.
                _ if f.state == Await::Complete => format!("{}/{}/Complete", f.entry, f.id),
                Item::Loaded(d) => format!(
                    "{}/{}/{:?}/{:?}/{}/{:?}",
                    f.entry,
                    f.id,
                    f.state,
                    d.qos,
                    String::from_utf8_lossy(&d.publish.payload),
                    d.extras
                ),
                Item::Spilled(s) => {
                    format!("{}/{}/{:?}/{:?}/spilled", f.entry, f.id, f.state, s.qos)
                }
            })
            .collect();
        let queue: Vec<_> = self
            .queue
            .iter()
            .map(|q| match &q.item {
                Item::Loaded(d) => format!(
                    "{}/{:?}/{}/{}/{}/{:?}",
                    q.entry,
                    d.qos,
                    d.retain,
                    d.publish.topic.as_str(),
                    String::from_utf8_lossy(&d.publish.payload),
                    d.extras
                ),
                Item::Spilled(_) => format!("{}/spilled", q.entry),
            })
            .collect();
        let mut incoming: Vec<_> = self.incoming_qos2.iter().map(|i| i.get()).collect();
        incoming.sort_unstable();
        format!(
            "persistent={} expiry={} subs={subs:?} inflight={inflight:?} queue={queue:?} \
             bytes={} incoming={incoming:?}",
            self.persistent, self.expiry_interval, self.queued_bytes
        )
    }

    /// The packet identifiers in flight, in order.
    pub(crate) fn inflight_ids(&self) -> Vec<PacketId> {
        self.inflight.iter().map(|f| f.id).collect()
    }
}
