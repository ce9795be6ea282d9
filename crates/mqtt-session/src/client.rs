//! [`ClientSession`]: the client side of an MQTT session, as a sans-IO machine.
//!
//! The machine owns everything a client must remember across connections: packet identifiers
//! in use, QoS 1 and 2 messages sent and not yet acknowledged (in their original order), QoS 2
//! packet identifiers received and not yet released, subscribe and unsubscribe requests waiting
//! for their answer, the subscriptions the server granted, and the keep alive timer. The driver
//! (the `mqtt-client` crate) feeds it packets, requests and time and writes out what it says.
//!
//! Requests carry a caller-chosen token `T` (the driver uses the channel that answers the
//! caller); the machine hands the token back in a [`ClientEvent`] once the request completes.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use mqtt_codec::{
    Packet, PacketId, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS, QosPid,
    ReasonCode, SubAck, Subscribe, SubscribeProperties, Subscription, SubscriptionOptions,
    UnsubAck, Unsubscribe, UnsubscribeProperties,
};
use mqtt_topic::TopicFilter;

/// The limits a client session works within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// QoS 1 and 2 messages sent and not yet acknowledged; more wait in the pending queue.
    pub max_inflight: u16,
    /// QoS 2 messages received and not yet released by PUBREL; a server that sends more breaks
    /// the flow control it agreed to, and the connection is closed.
    pub max_incoming_qos2: usize,
    /// Filters per SUBSCRIBE when the machine re-subscribes after a session was lost.
    pub resubscribe_batch: usize,
    /// (5.0) The highest Topic Alias the server may use (the client's Topic Alias Maximum);
    /// the machine resolves them, so events always carry the topic name.
    pub topic_alias_maximum: u16,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            max_inflight: 100,
            max_incoming_qos2: usize::from(u16::MAX),
            resubscribe_batch: 100,
            topic_alias_maximum: 0,
        }
    }
}

/// Something that happened that the driver passes on to the application.
#[derive(Debug)]
pub enum ClientEvent<T> {
    /// A message from the server (delivered once, even when a QoS 2 message arrives again
    /// before its PUBREL).
    Message(Publish),
    /// A publish request completed: QoS 0 once handed to the driver for writing, QoS 1 on
    /// PUBACK, QoS 2 on PUBCOMP (or on PUBREC when the session was lost after it: the server
    /// took the message). `Err` carries the (5.0) reason code of a refused message.
    Published {
        /// The request's token.
        token: T,
        /// The outcome.
        result: Result<(), ReasonCode>,
    },
    /// A subscribe request was answered: one code per filter, in order (a granted QoS, or a
    /// failure code).
    Subscribed {
        /// The request's token.
        token: T,
        /// The SUBACK's codes.
        codes: Vec<ReasonCode>,
    },
    /// An unsubscribe request was answered (3.x: every code is `Success`).
    Unsubscribed {
        /// The request's token.
        token: T,
        /// The UNSUBACK's codes.
        codes: Vec<ReasonCode>,
    },
    /// (5.0) An AUTH packet from the server (enhanced authentication under way): the driver's
    /// authentication method answers it with [`ClientSession::send_auth`].
    Auth(Box<mqtt_codec::Auth>),
    /// A subscription the machine re-made after the server lost the session was refused.
    ResubscribeFailed {
        /// The filter.
        filter: TopicFilter,
        /// The SUBACK's code.
        code: ReasonCode,
    },
}

/// Why the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientClose {
    /// The server broke the protocol.
    Violation {
        /// The normative statement broken, if the standard numbers it.
        statement: Option<&'static str>,
        /// What happened.
        detail: &'static str,
    },
    /// The server did not answer a PINGREQ in time.
    PingTimeout,
    /// (5.0) The server sent DISCONNECT with this reason.
    ServerDisconnect(ReasonCode),
}

fn violation(statement: Option<&'static str>, detail: &'static str) -> ClientClose {
    ClientClose::Violation { statement, detail }
}

/// Where a QoS 1 or 2 message sent to the server stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Await {
    /// QoS 1, waiting for PUBACK.
    Ack,
    /// QoS 2, waiting for PUBREC.
    Received,
    /// QoS 2, PUBREL sent, waiting for PUBCOMP.
    Complete,
}

#[derive(Debug)]
struct Inflight<T> {
    publish: Publish,
    state: Await,
    token: T,
}

#[derive(Debug)]
struct Pending<T> {
    publish: Publish,
    qos: QoS,
    token: T,
}

/// A SUBSCRIBE or UNSUBSCRIBE waiting for its answer.
#[derive(Debug)]
enum Request<T> {
    Subscribe {
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
        /// `None` for the machine's own re-subscription.
        token: Option<T>,
    },
    Unsubscribe {
        filters: Vec<TopicFilter>,
        properties: UnsubscribeProperties,
        token: T,
    },
}

/// The client side of an MQTT session.
///
/// Call order: [`ClientSession::connected`] after each accepted CONNACK; then any number of
/// [`ClientSession::publish`], [`ClientSession::subscribe`], [`ClientSession::unsubscribe`],
/// [`ClientSession::handle_packet`] and [`ClientSession::handle_timeout`], draining
/// [`ClientSession::poll_transmit`] and [`ClientSession::poll_event`] after each; then
/// [`ClientSession::disconnected`] when the connection is gone. Requests made while
/// disconnected wait, and go out after the next [`ClientSession::connected`].
#[derive(Debug)]
pub struct ClientSession<T> {
    version: ProtocolVersion,
    keep_alive: Option<Duration>,
    limits: ClientLimits,
    connected: bool,
    /// QoS 1 and 2 messages sent and not acknowledged, in the order they were first sent.
    inflight: VecDeque<(PacketId, Inflight<T>)>,
    /// Publish requests waiting for the connection or for room in the in-flight window.
    pending: VecDeque<Pending<T>>,
    /// Subscribe and unsubscribe requests sent (or to be sent) and not answered.
    requests: BTreeMap<u64, (Option<PacketId>, Request<T>)>,
    next_request: u64,
    /// Packet identifiers of `requests`, to find a SUBACK's or UNSUBACK's request.
    request_ids: HashMap<PacketId, u64>,
    /// QoS 2 messages received whose PUBREL has not arrived.
    incoming_qos2: HashSet<PacketId>,
    /// The subscriptions the server granted, to make again if it loses the session.
    subscriptions: BTreeMap<TopicFilter, SubscriptionOptions>,
    next_id: PacketId,
    transmit: VecDeque<Packet>,
    events: VecDeque<ClientEvent<T>>,
    /// When the next PINGREQ is due (keep alive after the last packet sent).
    ping_due: Option<Instant>,
    /// When a PINGREQ in flight times out.
    pong_deadline: Option<Instant>,
    /// (5.0) The server's topic aliases on this connection (index: alias - 1).
    aliases: Vec<Option<mqtt_codec::TopicName>>,
}

impl<T> ClientSession<T> {
    /// A new, empty session for a client speaking `version` with this keep alive (`None`: no
    /// keep alive).
    pub fn new(
        version: ProtocolVersion,
        keep_alive: Option<Duration>,
        limits: ClientLimits,
    ) -> Self {
        Self {
            version,
            keep_alive: keep_alive.filter(|k| !k.is_zero()),
            limits,
            connected: false,
            inflight: VecDeque::new(),
            pending: VecDeque::new(),
            requests: BTreeMap::new(),
            next_request: 0,
            request_ids: HashMap::new(),
            incoming_qos2: HashSet::new(),
            subscriptions: BTreeMap::new(),
            next_id: PacketId::from(std::num::NonZeroU16::MIN),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            ping_due: None,
            pong_deadline: None,
            aliases: Vec::new(),
        }
    }

    /// The protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Changes the in-flight window, for example to the Receive Maximum of a 5.0 server's
    /// CONNACK [MQTT-4.9.0-2]. Call it before [`ClientSession::connected`].
    pub fn set_max_inflight(&mut self, max_inflight: u16) {
        self.limits.max_inflight = max_inflight.max(1);
    }

    /// Changes the keep alive, for example to a 5.0 server's Server Keep Alive
    /// [MQTT-3.2.2-21]. Call it before [`ClientSession::connected`].
    pub fn set_keep_alive(&mut self, keep_alive: Option<Duration>) {
        self.keep_alive = keep_alive.filter(|k| !k.is_zero());
    }

    /// Whether a connection is up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Publish requests not yet sent (waiting for the connection or the in-flight window).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// QoS 1 and 2 messages sent and not yet acknowledged.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Subscribe and unsubscribe requests not yet answered.
    pub fn open_requests(&self) -> usize {
        self.requests.len()
    }

    /// Whether nothing is waiting: no pending publish, none in flight, no open request and
    /// nothing to transmit. A graceful disconnect waits for this.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
            && self.inflight.is_empty()
            && self.requests.is_empty()
            && self.transmit.is_empty()
    }

    /// The subscriptions the server has granted (and that have not been removed since).
    pub fn subscriptions(&self) -> impl Iterator<Item = (&TopicFilter, &SubscriptionOptions)> {
        self.subscriptions.iter()
    }

    /// A connection was accepted. With `session_present` the server kept the session: messages
    /// in flight are sent again, in their original order, with DUP (or their PUBREL), and open
    /// requests are repeated. Without it the server starts afresh: QoS 2 messages the server
    /// had already received (PUBREC) are complete, every other message in flight is sent again
    /// as a new message, the granted subscriptions are made again, and received QoS 2 state is
    /// forgotten.
    pub fn connected(&mut self, session_present: bool, now: Instant) {
        self.connected = true;
        self.transmit.clear();
        // Topic aliases belong to one connection [MQTT-3.3.2-7].
        self.aliases.clear();
        self.pong_deadline = None;
        self.ping_due = self.keep_alive.map(|k| now + k);
        if session_present {
            self.resume();
        } else {
            self.restart();
        }
        self.pump();
    }

    /// Resends what the server still knows about [MQTT-4.4.0-1].
    fn resume(&mut self) {
        for (id, inflight) in &self.inflight {
            let packet = match inflight.state {
                Await::Ack | Await::Received => {
                    let mut publish = inflight.publish.clone();
                    publish.dup = true;
                    Packet::Publish(publish)
                }
                Await::Complete => Packet::PubRel(PubRel::new(*id)),
            };
            self.transmit.push_back(packet);
        }
        let requests: Vec<u64> = self.requests.keys().copied().collect();
        for key in requests {
            self.send_request(key);
        }
    }

    /// Starts a new session on the server with what this one still owes.
    fn restart(&mut self) {
        self.incoming_qos2.clear();
        // Open requests take fresh identifiers when they are sent again below.
        self.request_ids.clear();
        for (id, _) in self.requests.values_mut() {
            *id = None;
        }
        let open: Vec<u64> = self.requests.keys().copied().collect();
        // The re-subscription goes first, so messages on the granted filters flow again and an
        // open UNSUBSCRIBE still comes after the SUBSCRIBE it undoes.
        let subscriptions: Vec<Subscription> = self
            .subscriptions
            .iter()
            .map(|(filter, options)| Subscription {
                filter: filter.clone(),
                options: *options,
            })
            .collect();
        let batch = self.limits.resubscribe_batch.max(1);
        for chunk in subscriptions.chunks(batch) {
            let key = self.add_request(Request::Subscribe {
                subscriptions: chunk.to_vec(),
                properties: SubscribeProperties::default(),
                token: None,
            });
            self.send_request(key);
        }
        for key in open {
            self.send_request(key);
        }
        // Messages the server had received are done; the others start over, in order, ahead
        // of the requests that never went out.
        let inflight = std::mem::take(&mut self.inflight);
        let mut again = Vec::new();
        for (_, inflight) in inflight {
            if inflight.state == Await::Complete {
                self.events.push_back(ClientEvent::Published {
                    token: inflight.token,
                    result: Ok(()),
                });
            } else {
                let mut publish = inflight.publish;
                publish.dup = false;
                let qos = publish.qos.qos();
                again.push(Pending {
                    publish,
                    qos,
                    token: inflight.token,
                });
            }
        }
        for pending in again.into_iter().rev() {
            self.pending.push_front(pending);
        }
    }

    /// The connection is gone. Everything unacknowledged stays, to be sent again on the next
    /// [`ClientSession::connected`]; packets not yet written are dropped (they are rebuilt from
    /// the state then).
    pub fn disconnected(&mut self) {
        self.connected = false;
        self.transmit.clear();
        self.ping_due = None;
        self.pong_deadline = None;
    }

    /// Ends the session for good: every waiting request's token, for the driver to fail.
    pub fn abandon(&mut self) -> Vec<T> {
        self.disconnected();
        let mut tokens: Vec<T> = Vec::new();
        tokens.extend(self.inflight.drain(..).map(|(_, i)| i.token));
        tokens.extend(self.pending.drain(..).map(|p| p.token));
        let requests = std::mem::take(&mut self.requests);
        self.request_ids.clear();
        for (_, (_, request)) in requests {
            match request {
                Request::Subscribe { token, .. } => tokens.extend(token),
                Request::Unsubscribe { token, .. } => tokens.push(token),
            }
        }
        // Events not yet collected still hold tokens too.
        for event in self.events.drain(..) {
            match event {
                ClientEvent::Published { token, .. }
                | ClientEvent::Subscribed { token, .. }
                | ClientEvent::Unsubscribed { token, .. } => tokens.push(token),
                ClientEvent::Message(_)
                | ClientEvent::Auth(_)
                | ClientEvent::ResubscribeFailed { .. } => {}
            }
        }
        tokens
    }

    /// Asks to publish `publish` at `qos` (its own QoS, packet identifier and DUP are
    /// replaced). It goes out at once if the connection is up and the in-flight window has
    /// room, otherwise it waits its turn.
    pub fn publish(&mut self, mut publish: Publish, qos: QoS, token: T) {
        publish.dup = false;
        self.pending.push_back(Pending {
            publish,
            qos,
            token,
        });
        self.pump();
    }

    /// Asks to subscribe; answered by [`ClientEvent::Subscribed`].
    pub fn subscribe(
        &mut self,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
        token: T,
    ) {
        let key = self.add_request(Request::Subscribe {
            subscriptions,
            properties,
            token: Some(token),
        });
        if self.connected {
            self.send_request(key);
        }
    }

    /// Asks to unsubscribe; answered by [`ClientEvent::Unsubscribed`].
    pub fn unsubscribe(
        &mut self,
        filters: Vec<TopicFilter>,
        properties: UnsubscribeProperties,
        token: T,
    ) {
        let key = self.add_request(Request::Unsubscribe {
            filters,
            properties,
            token,
        });
        if self.connected {
            self.send_request(key);
        }
    }

    fn add_request(&mut self, request: Request<T>) -> u64 {
        let key = self.next_request;
        self.next_request += 1;
        self.requests.insert(key, (None, request));
        key
    }

    /// Queues the packet of a request, with its identifier (taking one if it has none).
    fn send_request(&mut self, key: u64) {
        let id = match self.requests.get(&key) {
            Some((Some(id), _)) => *id,
            Some((None, _)) => {
                let Some(id) = self.allocate_id() else {
                    return;
                };
                self.request_ids.insert(id, key);
                if let Some(entry) = self.requests.get_mut(&key) {
                    entry.0 = Some(id);
                }
                id
            }
            None => return,
        };
        let packet = match self.requests.get(&key) {
            Some((
                _,
                Request::Subscribe {
                    subscriptions,
                    properties,
                    ..
                },
            )) => Packet::Subscribe(Subscribe {
                packet_id: id,
                subscriptions: subscriptions.clone(),
                properties: properties.clone(),
            }),
            Some((
                _,
                Request::Unsubscribe {
                    filters,
                    properties,
                    ..
                },
            )) => Packet::Unsubscribe(Unsubscribe {
                packet_id: id,
                filters: filters.clone(),
                properties: properties.clone(),
            }),
            None => return,
        };
        self.transmit.push_back(packet);
    }

    /// A packet identifier not in use by a message in flight or an open request.
    fn allocate_id(&mut self) -> Option<PacketId> {
        let in_use = self.inflight.len() + self.request_ids.len();
        if in_use >= usize::from(u16::MAX) {
            return None;
        }
        loop {
            let id = self.next_id;
            self.next_id = id.next();
            let taken = self.request_ids.contains_key(&id)
                || self.inflight.iter().any(|(used, _)| *used == id);
            if !taken {
                return Some(id);
            }
        }
    }

    /// Moves pending publish requests out while the connection and the window allow.
    fn pump(&mut self) {
        if !self.connected {
            return;
        }
        while let Some(front) = self.pending.front() {
            if front.qos != QoS::AtMostOnce
                && self.inflight.len() >= usize::from(self.limits.max_inflight.max(1))
            {
                break;
            }
            let Some(Pending {
                mut publish,
                qos,
                token,
            }) = self.pending.pop_front()
            else {
                break;
            };
            if qos == QoS::AtMostOnce {
                publish.qos = QosPid::AtMostOnce;
                self.transmit.push_back(Packet::Publish(publish));
                self.events.push_back(ClientEvent::Published {
                    token,
                    result: Ok(()),
                });
                continue;
            }
            let Some(id) = self.allocate_id() else {
                self.pending.push_front(Pending {
                    publish,
                    qos,
                    token,
                });
                break;
            };
            let (qos_pid, state) = if qos == QoS::AtLeastOnce {
                (QosPid::AtLeastOnce(id), Await::Ack)
            } else {
                (QosPid::ExactlyOnce(id), Await::Received)
            };
            publish.qos = qos_pid;
            self.transmit.push_back(Packet::Publish(publish.clone()));
            self.inflight.push_back((
                id,
                Inflight {
                    publish,
                    state,
                    token,
                },
            ));
        }
    }

    /// (5.0) Queues an AUTH packet (re-authentication); nothing happens while disconnected.
    pub fn send_auth(&mut self, auth: mqtt_codec::Auth) {
        if self.connected {
            self.transmit.push_back(Packet::from(auth));
        }
    }

    /// Handles a packet from the server.
    ///
    /// # Errors
    ///
    /// [`ClientClose`] when the connection must be closed.
    pub fn handle_packet(&mut self, packet: Packet, now: Instant) -> Result<(), ClientClose> {
        let _ = now;
        match packet {
            Packet::Publish(publish) => self.receive(publish)?,
            Packet::PubAck(ack) => self.acknowledged(ack.packet_id, Await::Ack, ack.reason_code),
            Packet::PubRec(rec) => self.received(rec),
            Packet::PubRel(rel) => {
                let known = self.incoming_qos2.remove(&rel.packet_id);
                let mut comp = PubComp::new(rel.packet_id);
                if !known && self.version.is_v5() {
                    comp.reason_code = ReasonCode::PacketIdentifierNotFound;
                }
                self.transmit.push_back(Packet::PubComp(comp));
            }
            Packet::PubComp(comp) => {
                self.acknowledged(comp.packet_id, Await::Complete, comp.reason_code);
            }
            Packet::SubAck(ack) => self.sub_acked(ack)?,
            Packet::UnsubAck(ack) => self.unsub_acked(ack)?,
            Packet::PingResp => self.pong_deadline = None,
            Packet::Auth(auth) if self.version.is_v5() => {
                self.events.push_back(ClientEvent::Auth(auth));
            }
            Packet::Disconnect(disconnect) if self.version.is_v5() => {
                return Err(ClientClose::ServerDisconnect(disconnect.reason_code));
            }
            Packet::ConnAck(_) => {
                return Err(violation(
                    Some("MQTT-3.2.0-2"),
                    "a second CONNACK on the connection",
                ));
            }
            _ => {
                return Err(violation(None, "a packet only a client may send"));
            }
        }
        self.pump();
        Ok(())
    }

    /// (5.0) Resolves a Topic Alias from the server: with a topic name it sets the alias, without
    /// one it stands for the topic set before [MQTT-3.3.2-10]. The message is passed on with its
    /// topic name.
    fn resolve_alias(&mut self, publish: &mut Publish) -> Result<(), ClientClose> {
        let Some(alias) = publish.properties().topic_alias else {
            return Ok(());
        };
        if alias.get() > self.limits.topic_alias_maximum {
            return Err(violation(
                Some("MQTT-3.3.2-11"),
                "topic alias above the client's Topic Alias Maximum",
            ));
        }
        let i = usize::from(alias.get() - 1);
        if publish.topic.is_empty() {
            match self.aliases.get(i).and_then(Option::as_ref) {
                Some(topic) => publish.topic = topic.clone(),
                None => return Err(violation(None, "topic alias used before it was set")),
            }
        } else {
            if self.aliases.len() <= i {
                self.aliases.resize(i + 1, None);
            }
            if let Some(slot) = self.aliases.get_mut(i) {
                *slot = Some(publish.topic.copied());
            }
        }
        Ok(())
    }

    fn receive(&mut self, mut publish: Publish) -> Result<(), ClientClose> {
        self.resolve_alias(&mut publish)?;
        match publish.qos {
            QosPid::AtMostOnce => self.events.push_back(ClientEvent::Message(publish)),
            QosPid::AtLeastOnce(id) => {
                self.events.push_back(ClientEvent::Message(publish));
                self.transmit.push_back(Packet::PubAck(PubAck::new(id)));
            }
            QosPid::ExactlyOnce(id) => {
                // Delivered once: a repeat before PUBREL is only acknowledged again.
                if !self.incoming_qos2.contains(&id) {
                    if self.incoming_qos2.len() >= self.limits.max_incoming_qos2 {
                        return Err(violation(
                            Some("MQTT-3.3.4-9"),
                            "more QoS 2 messages unreleased than allowed",
                        ));
                    }
                    self.incoming_qos2.insert(id);
                    self.events.push_back(ClientEvent::Message(publish));
                }
                self.transmit.push_back(Packet::PubRec(PubRec::new(id)));
            }
        }
        Ok(())
    }

    fn position(&self, id: PacketId) -> Option<usize> {
        self.inflight.iter().position(|(used, _)| *used == id)
    }

    /// PUBACK or PUBCOMP: the message in flight with this identifier, in the right state, is
    /// done; anything else is a stale acknowledgement and ignored.
    fn acknowledged(&mut self, id: PacketId, state: Await, code: ReasonCode) {
        let Some(index) = self.position(id) else {
            return;
        };
        if self.inflight.get(index).map(|(_, i)| i.state) != Some(state) {
            return;
        }
        if let Some((_, inflight)) = self.inflight.remove(index) {
            // A PUBCOMP "packet identifier not found" answers a PUBREL sent again after a
            // reconnect for a message the server had already released: it was delivered, the
            // first PUBCOMP was lost with the connection (section 4.3.3, reason 0x92 "not an
            // error during recovery").
            let recovered =
                state == Await::Complete && code == ReasonCode::PacketIdentifierNotFound;
            let result = if code.is_error() && !recovered {
                Err(code)
            } else {
                Ok(())
            };
            self.events.push_back(ClientEvent::Published {
                token: inflight.token,
                result,
            });
        }
    }

    fn received(&mut self, rec: PubRec) {
        let id = rec.packet_id;
        let Some(index) = self.position(id) else {
            // Unknown: release it anyway, so the server's state for it goes away.
            let mut rel = PubRel::new(id);
            if self.version.is_v5() {
                rel.reason_code = ReasonCode::PacketIdentifierNotFound;
            }
            self.transmit.push_back(Packet::PubRel(rel));
            return;
        };
        if rec.reason_code.is_error() {
            // (5.0) The server refused the message: the flow ends here [MQTT-4.3.3-4 note].
            if let Some((_, inflight)) = self.inflight.remove(index) {
                self.events.push_back(ClientEvent::Published {
                    token: inflight.token,
                    result: Err(rec.reason_code),
                });
            }
            return;
        }
        if let Some((_, inflight)) = self.inflight.get_mut(index) {
            match inflight.state {
                Await::Received | Await::Complete => {
                    inflight.state = Await::Complete;
                    // The message is no longer needed: only the identifier is [MQTT-4.3.3-2].
                    inflight.publish.payload = bytes::Bytes::new();
                    self.transmit.push_back(Packet::PubRel(PubRel::new(id)));
                }
                Await::Ack => {}
            }
        }
    }

    fn take_request(&mut self, id: PacketId) -> Option<Request<T>> {
        let key = self.request_ids.remove(&id)?;
        self.requests.remove(&key).map(|(_, request)| request)
    }

    /// The open request a SUBACK or UNSUBACK answers, checked before it is taken: a mismatched
    /// answer closes the connection and leaves the request open, to be sent again.
    fn answered(&self, id: PacketId) -> Option<&Request<T>> {
        let key = self.request_ids.get(&id)?;
        self.requests.get(key).map(|(_, request)| request)
    }

    fn sub_acked(&mut self, ack: SubAck) -> Result<(), ClientClose> {
        match self.answered(ack.packet_id) {
            None => return Ok(()),
            Some(Request::Unsubscribe { .. }) => {
                return Err(violation(
                    Some("MQTT-3.9.3-1"),
                    "SUBACK for an UNSUBSCRIBE's packet identifier",
                ));
            }
            Some(Request::Subscribe { subscriptions, .. }) => {
                if ack.reason_codes.len() != subscriptions.len() {
                    return Err(violation(
                        Some("MQTT-3.9.3-1"),
                        "SUBACK with a different number of codes than filters",
                    ));
                }
            }
        }
        let Some(Request::Subscribe {
            subscriptions,
            token,
            ..
        }) = self.take_request(ack.packet_id)
        else {
            return Ok(());
        };
        for (subscription, code) in subscriptions.iter().zip(&ack.reason_codes) {
            if code.is_error() {
                self.subscriptions.remove(&subscription.filter);
                if token.is_none() {
                    self.events.push_back(ClientEvent::ResubscribeFailed {
                        filter: subscription.filter.clone(),
                        code: *code,
                    });
                }
            } else {
                self.subscriptions
                    .insert(subscription.filter.clone(), subscription.options);
            }
        }
        if let Some(token) = token {
            self.events.push_back(ClientEvent::Subscribed {
                token,
                codes: ack.reason_codes,
            });
        }
        Ok(())
    }

    fn unsub_acked(&mut self, ack: UnsubAck) -> Result<(), ClientClose> {
        match self.answered(ack.packet_id) {
            None => return Ok(()),
            Some(Request::Subscribe { .. }) => {
                return Err(violation(
                    Some("MQTT-3.11.2-1"),
                    "UNSUBACK for a SUBSCRIBE's packet identifier",
                ));
            }
            Some(Request::Unsubscribe { filters, .. }) => {
                if !ack.reason_codes.is_empty() && ack.reason_codes.len() != filters.len() {
                    return Err(violation(
                        Some("MQTT-3.11.3-1"),
                        "UNSUBACK with a different number of codes than filters",
                    ));
                }
            }
        }
        let Some(Request::Unsubscribe { filters, token, .. }) = self.take_request(ack.packet_id)
        else {
            return Ok(());
        };
        // 3.x UNSUBACK has no codes: every filter is gone.
        let codes = if ack.reason_codes.is_empty() {
            vec![ReasonCode::Success; filters.len()]
        } else {
            ack.reason_codes
        };
        for (filter, code) in filters.iter().zip(&codes) {
            if !code.is_error() || *code == ReasonCode::NoSubscriptionExisted {
                self.subscriptions.remove(filter);
            }
        }
        self.events
            .push_back(ClientEvent::Unsubscribed { token, codes });
        Ok(())
    }

    /// When [`ClientSession::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.ping_due, self.pong_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends PINGREQ when the keep alive is up, and gives up on a server that did not answer
    /// the last one within a keep alive period.
    ///
    /// # Errors
    ///
    /// [`ClientClose::PingTimeout`] when the server did not answer.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ClientClose> {
        if self.pong_deadline.is_some_and(|d| now >= d) {
            return Err(ClientClose::PingTimeout);
        }
        if let (Some(due), Some(keep_alive)) = (self.ping_due, self.keep_alive)
            && now >= due
            && self.connected
        {
            self.transmit.push_back(Packet::PingReq);
            if self.pong_deadline.is_none() {
                self.pong_deadline = Some(now + keep_alive);
            }
            self.ping_due = Some(now + keep_alive);
        }
        Ok(())
    }

    /// The next packet to write, if any. Writing restarts the keep alive period (pass the
    /// time of writing to [`ClientSession::sent`]).
    pub fn poll_transmit(&mut self) -> Option<Packet> {
        self.transmit.pop_front()
    }

    /// Packets were written at `now`: the next PINGREQ is due a keep alive period later
    /// [MQTT-3.1.2-23].
    pub fn sent(&mut self, now: Instant) {
        if let Some(keep_alive) = self.keep_alive
            && self.connected
        {
            self.ping_due = Some(now + keep_alive);
        }
    }

    /// The next event for the application, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent<T>> {
        self.events.pop_front()
    }
}
