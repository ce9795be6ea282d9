//! [`Session`]: a client's state on the server, and the protocol machine of the connection it is
//! attached to.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_codec::{
    Envelope, Packet, PacketId, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS,
    QosPid, ReasonCode, Subscribe, Unsubscribe, Will,
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
    /// QoS 2 messages received and not yet released by PUBREL.
    pub max_incoming_qos2: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_inflight: 20,
            max_queued_messages: 1000,
            max_queued_bytes: 64 * 1024 * 1024,
            queue_qos0_offline: false,
            max_incoming_qos2: 1000,
        }
    }
}

/// A message on its way to this session: the PUBLISH as it was received (shared by every
/// subscriber, never copied), the QoS it is delivered at (already lowered to the subscription's
/// maximum) and the RETAIN flag it carries.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message; its own QoS, packet identifier, DUP and RETAIN are ignored.
    pub publish: Arc<Publish>,
    /// The QoS it is delivered at.
    pub qos: QoS,
    /// The RETAIN flag of the PUBLISH sent.
    pub retain: bool,
}

impl Delivery {
    fn size(&self) -> usize {
        self.publish.payload.len() + self.publish.topic.len()
    }
}

/// Something to write to the client.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A packet.
    Packet(Packet),
    /// A message, encoded with [`Publish::encode_as`] and this envelope.
    Publish {
        /// The shared message.
        publish: Arc<Publish>,
        /// QoS with packet identifier, DUP and RETAIN for this delivery.
        envelope: Envelope,
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
    /// The client said goodbye: discard the will and close the connection.
    Disconnect,
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
}

/// Counters of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Messages dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// QoS 0 messages dropped because the client was offline.
    pub dropped_offline: u64,
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
    id: PacketId,
    delivery: Delivery,
    state: Await,
}

/// The connection a session is attached to.
#[derive(Debug, Clone)]
struct Connection {
    version: ProtocolVersion,
    keep_alive: Option<Duration>,
    deadline: Option<Instant>,
    will: Option<Will>,
    outbox: Vec<Outgoing>,
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
    queue: VecDeque<Delivery>,
    queued_bytes: usize,
    incoming_qos2: HashSet<PacketId>,
    next_id: PacketId,
    connection: Option<Connection>,
    stats: SessionStats,
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
        }
    }

    /// The client identifier.
    pub fn client_id(&self) -> &MqttString {
        &self.client_id
    }

    /// Whether the session outlives its connections (Clean Session 0).
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// Changes whether the session outlives its connections (a reconnect may change it).
    pub fn set_persistent(&mut self, persistent: bool) {
        self.persistent = persistent;
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
        self.subscriptions.insert(filter.copied(), data)
    }

    /// Forgets a subscription.
    pub fn remove_subscription(&mut self, filter: &TopicFilter) -> Option<SubscriptionData> {
        self.subscriptions.remove(filter)
    }

    /// Discards all state but the client identifier (Clean Session 1 [MQTT-3.1.2-6]); returns
    /// the subscriptions it had, for the broker to remove from its index.
    pub fn clear(&mut self) -> Vec<TopicFilter> {
        self.inflight.clear();
        self.queue.clear();
        self.queued_bytes = 0;
        self.incoming_qos2.clear();
        self.subscriptions.drain().map(|(f, _)| f).collect()
    }

    /// Attaches a connection. A resumed session re-sends its unacknowledged messages with DUP
    /// and their original packet identifiers, and PUBREL for those already received, in their
    /// original order [MQTT-4.4.0-1]; then queued messages fill the in-flight window.
    pub fn attach(&mut self, attach: Attach, now: Instant) {
        let keep_alive = (attach.keep_alive > 0)
            .then(|| Duration::from_millis(u64::from(attach.keep_alive) * 1500));
        let mut outbox = Vec::new();
        for f in &self.inflight {
            outbox.push(match f.state {
                Await::Ack | Await::Received => Outgoing::Publish {
                    publish: Arc::clone(&f.delivery.publish),
                    envelope: Envelope {
                        qos: qos_pid(f.delivery.qos, f.id),
                        dup: true,
                        retain: f.delivery.retain,
                    },
                },
                Await::Complete => Outgoing::Packet(Packet::PubRel(PubRel::new(f.id))),
            });
        }
        self.connection = Some(Connection {
            version: attach.version,
            keep_alive,
            deadline: keep_alive.map(|k| now + k),
            will: attach.will,
            outbox,
        });
        self.pump();
    }

    /// Detaches the connection. Returns its will unless the client said DISCONNECT
    /// (`graceful`): the caller publishes it [MQTT-3.1.2-8, MQTT-3.1.2-10]. Messages sent and not
    /// acknowledged stay in flight, to be sent again on the next attach.
    pub fn detach(&mut self, graceful: bool) -> Option<Will> {
        let connection = self.connection.take()?;
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
                self.acknowledge(ack.packet_id, Await::Ack);
                Ok(None)
            }
            Packet::PubRec(rec) => {
                if let Some(f) = self
                    .inflight
                    .iter_mut()
                    .find(|f| f.id == rec.packet_id && f.state == Await::Received)
                {
                    f.state = Await::Complete;
                }
                // Answered even for an unknown identifier, so the client's flow completes.
                self.send(Packet::PubRel(PubRel::new(rec.packet_id)));
                Ok(None)
            }
            Packet::PubRel(rel) => {
                // The message was routed on PUBLISH; release its identifier [MQTT-4.3.3-2].
                self.incoming_qos2.remove(&rel.packet_id);
                self.send(Packet::PubComp(PubComp::new(rel.packet_id)));
                Ok(None)
            }
            Packet::PubComp(comp) => {
                self.acknowledge(comp.packet_id, Await::Complete);
                Ok(None)
            }
            Packet::Subscribe(subscribe) => Ok(Some(Action::Subscribe(subscribe))),
            Packet::Unsubscribe(unsubscribe) => Ok(Some(Action::Unsubscribe(unsubscribe))),
            Packet::PingReq => {
                self.send(Packet::PingResp);
                Ok(None)
            }
            Packet::Disconnect(_) => Ok(Some(Action::Disconnect)),
            Packet::Connect(_) => Err(violation(
                Some("MQTT-3.1.0-2"),
                "second CONNECT on a connection",
            )),
            Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp
            | Packet::Auth(_) => Err(violation(None, "packet a client must not send")),
        }
    }

    fn handle_publish(&mut self, publish: Publish) -> Result<Option<Action>, Close> {
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
                self.send(Packet::PubRec(PubRec::new(id)));
                Ok(Some(Action::Route(Arc::new(publish))))
            }
        }
    }

    fn acknowledge(&mut self, id: PacketId, state: Await) {
        if let Some(i) = self
            .inflight
            .iter()
            .position(|f| f.id == id && f.state == state)
        {
            self.inflight.remove(i);
            self.pump();
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
    pub fn deliver(&mut self, delivery: Delivery) -> bool {
        if self.connection.is_none() {
            if self.persistent
                && (delivery.qos != QoS::AtMostOnce || self.limits.queue_qos0_offline)
            {
                self.enqueue(delivery);
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
            self.send_delivery(delivery);
            return true;
        }
        self.enqueue(delivery);
        false
    }

    fn can_send(&self, qos: QoS) -> bool {
        qos == QoS::AtMostOnce || self.inflight.len() < usize::from(self.limits.max_inflight)
    }

    fn enqueue(&mut self, delivery: Delivery) {
        let size = delivery.size();
        if self.queue.len() >= self.limits.max_queued_messages
            || self.queued_bytes.saturating_add(size) > self.limits.max_queued_bytes
        {
            self.stats.dropped_queue_full += 1;
            return;
        }
        self.queued_bytes += size;
        self.queue.push_back(delivery);
    }

    /// Moves queued messages out while the window allows.
    fn pump(&mut self) {
        if self.connection.is_none() {
            return;
        }
        while let Some(front) = self.queue.front() {
            if !self.can_send(front.qos) {
                break;
            }
            let Some(delivery) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes = self.queued_bytes.saturating_sub(delivery.size());
            self.send_delivery(delivery);
        }
    }

    fn send_delivery(&mut self, delivery: Delivery) {
        let qos = match delivery.qos {
            QoS::AtMostOnce => QosPid::AtMostOnce,
            qos => {
                let id = self.allocate_id();
                self.inflight.push_back(Inflight {
                    id,
                    delivery: delivery.clone(),
                    state: if qos == QoS::AtLeastOnce {
                        Await::Ack
                    } else {
                        Await::Received
                    },
                });
                qos_pid(qos, id)
            }
        };
        if let Some(c) = &mut self.connection {
            c.outbox.push(Outgoing::Publish {
                publish: delivery.publish,
                envelope: Envelope {
                    qos,
                    dup: false,
                    retain: delivery.retain,
                },
            });
        }
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

fn qos_pid(qos: QoS, id: PacketId) -> QosPid {
    match qos {
        QoS::AtMostOnce => QosPid::AtMostOnce,
        QoS::AtLeastOnce => QosPid::AtLeastOnce(id),
        QoS::ExactlyOnce => QosPid::ExactlyOnce(id),
    }
}
