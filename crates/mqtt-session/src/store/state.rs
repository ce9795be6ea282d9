//! The durable store's picture of what its files hold: every persistent session, the messages
//! they reference, and the retained messages, rebuilt by applying the records in order. Loading
//! applies the records read from disk; a running store applies each record as it writes it, so
//! that a snapshot can be written from this picture without asking the broker anything.
//!
//! Message bodies are not kept here: a message is known by where its record lies on disk, and by
//! a weak reference to the copy in memory while some session holds one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use mqtt_codec::{PacketId, Publish, QoS, SubscriptionId, TopicFilter, TopicName};
use mqtt_topic::SubscriptionData;

use super::record::{FileKind, Record, decode_publish};

/// A store file: its kind and number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FileId {
    pub(crate) number: u64,
    pub(crate) kind: FileKind,
}

/// Where a record lies: its file, the offset of its frame, and the frame's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) file: FileId,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

/// A message that sessions reference.
#[derive(Debug, Clone)]
pub(crate) struct MessageState {
    /// How many queue entries reference it; it is forgotten at 0.
    pub(crate) refs: u32,
    /// Topic plus payload length.
    pub(crate) size: u64,
    /// Its record.
    pub(crate) loc: Location,
    /// The copy in memory, while one lives.
    pub(crate) live: Weak<Publish>,
    /// That copy's address in `State::by_ptr` (0: none).
    pub(crate) ptr: usize,
    /// The copy itself, held until its record is written (so that it can always be had).
    pub(crate) pinned: Option<Arc<Publish>>,
}

/// A message in a session's queue or window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryState {
    pub(crate) mid: u64,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) expires: Option<u64>,
    pub(crate) identifiers: Vec<SubscriptionId>,
    pub(crate) shared: Option<TopicFilter>,
    /// In flight: its packet identifier, and whether PUBREC came.
    pub(crate) flight: Option<(PacketId, bool)>,
}

/// A will waiting for its delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WillState {
    pub(crate) at: u64,
    pub(crate) delay: u32,
    pub(crate) packet: Bytes,
}

/// A persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionState {
    pub(crate) client_id: String,
    pub(crate) expiry: u32,
    pub(crate) subscriptions: BTreeMap<TopicFilter, SubscriptionData>,
    /// Queued and in-flight messages by entry: queue order is entry order.
    pub(crate) entries: BTreeMap<u64, EntryState>,
    /// The entries in flight, in the order they were sent.
    pub(crate) inflight: Vec<u64>,
    pub(crate) incoming: BTreeSet<PacketId>,
    /// When the connection detached (wall-clock milliseconds); `None` while one is attached.
    pub(crate) detached_at: Option<u64>,
    pub(crate) will: Option<WillState>,
    /// The will of the connection attached (`at` unused), published if the broker stops
    /// before the connection ends.
    pub(crate) connection_will: Option<WillState>,
}

impl SessionState {
    fn new(client_id: String) -> Self {
        Self {
            client_id,
            expiry: u32::MAX,
            subscriptions: BTreeMap::new(),
            entries: BTreeMap::new(),
            inflight: Vec::new(),
            incoming: BTreeSet::new(),
            detached_at: None,
            will: None,
            connection_will: None,
        }
    }
}

/// A change to the retained messages that waits for its routing group's commit.
#[derive(Debug, Clone)]
pub(crate) enum RetainedChange {
    Set(RetainedState),
    Clear(TopicName),
}

/// What a routing group made, until it commits.
#[derive(Debug, Clone, Default)]
pub(crate) struct PendingGroup {
    /// Copies queued: (session, entry).
    pub(crate) copies: Vec<(u64, u64)>,
    /// Retained messages stored or cleared, in order (applied at the commit).
    pub(crate) retained: Vec<RetainedChange>,
}

/// A retained message.
#[derive(Debug, Clone)]
pub(crate) struct RetainedState {
    pub(crate) publish: Arc<Publish>,
    pub(crate) qos: QoS,
    pub(crate) expires: Option<u64>,
}

/// Everything the store holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub(crate) sessions: HashMap<u64, SessionState>,
    /// Session numbers by client identifier.
    pub(crate) sids: HashMap<String, u64>,
    pub(crate) messages: HashMap<u64, MessageState>,
    /// Message numbers by the address of the copy in memory (valid while its weak reference
    /// keeps the allocation).
    pub(crate) by_ptr: HashMap<usize, u64>,
    pub(crate) retained: HashMap<TopicName, RetainedState>,
    pub(crate) next_sid: u64,
    pub(crate) next_mid: u64,
    /// Records that named something that does not exist (a damaged store, or a bug).
    pub(crate) inconsistencies: u64,
    /// What the routing of a client's QoS 2 message made, by routing, until its identifier
    /// record commits it.
    pub(crate) pending_groups: HashMap<u64, PendingGroup>,
    /// The highest routing group seen.
    pub(crate) max_group: u64,
}

/// The address a message is known by.
pub(crate) fn ptr(publish: &Arc<Publish>) -> usize {
    Arc::as_ptr(publish) as usize
}

impl State {
    /// Applies one record read at `loc`.
    pub(crate) fn apply(&mut self, record: Record, loc: Location) {
        if !self.try_apply(record, loc) {
            self.inconsistencies += 1;
        }
    }

    /// A message whose body is in memory (as the running store writes it).
    pub(crate) fn add_live_message(&mut self, mid: u64, publish: &Arc<Publish>, loc: Location) {
        self.next_mid = self.next_mid.max(mid.saturating_add(1));
        self.by_ptr.insert(ptr(publish), mid);
        self.messages.insert(
            mid,
            MessageState {
                refs: 0,
                size: (publish.topic.len() + publish.payload.len()) as u64,
                loc,
                live: Arc::downgrade(publish),
                ptr: ptr(publish),
                pinned: Some(Arc::clone(publish)),
            },
        );
    }

    /// A retained message whose body is in memory (as the running store writes it).
    pub(crate) fn set_retained(
        &mut self,
        publish: Arc<Publish>,
        qos: QoS,
        expires: Option<u64>,
        group: u64,
    ) {
        let r = RetainedState {
            publish,
            qos,
            expires,
        };
        self.change_retained(RetainedChange::Set(r), group);
    }

    /// Drops the copies of routings that were never committed (the broker stopped between a
    /// client's QoS 2 message's routing and its identifier record: the client sends it again,
    /// and it is routed then); returns how many.
    pub(crate) fn drop_uncommitted(&mut self) -> u64 {
        let mut dropped = 0;
        let groups: Vec<PendingGroup> = self.pending_groups.drain().map(|(_, v)| v).collect();
        for group in &groups {
            dropped += group.retained.len() as u64;
        }
        for (sid, entry) in groups.into_iter().flat_map(|g| g.copies) {
            let Some(s) = self.sessions.get_mut(&sid) else {
                continue;
            };
            let Some(e) = s.entries.remove(&entry) else {
                continue;
            };
            if e.flight.is_some() {
                s.inflight.retain(|&i| i != entry);
            }
            self.release(e.mid);
            dropped += 1;
        }
        dropped
    }

    /// The routing each copy still waiting for its commit belongs to, by (session, entry).
    pub(crate) fn uncommitted(&self) -> HashMap<(u64, u64), u64> {
        self.pending_groups
            .iter()
            .flat_map(|(&g, p)| p.copies.iter().map(move |&c| (c, g)))
            .collect()
    }

    /// A retained message stored (`Some`) or cleared, in a routing group or not.
    pub(crate) fn change_retained(&mut self, change: RetainedChange, group: u64) {
        if group != 0 {
            self.max_group = self.max_group.max(group);
            self.pending_groups
                .entry(group)
                .or_default()
                .retained
                .push(change);
            return;
        }
        match change {
            RetainedChange::Set(r) => {
                self.retained.insert(r.publish.topic.clone(), r);
            }
            RetainedChange::Clear(topic) => {
                self.retained.remove(&topic);
            }
        }
    }

    /// Commits a routing group: its copies count, its retained changes apply.
    fn commit(&mut self, group: u64) {
        self.max_group = self.max_group.max(group);
        if let Some(p) = self.pending_groups.remove(&group) {
            for change in p.retained {
                self.change_retained(change, 0);
            }
        }
    }

    /// Forgets the messages no entry references (after loading: the log may hold messages
    /// whose entries a later snapshot dropped, or none at all after a damaged tail).
    pub(crate) fn drop_unreferenced(&mut self) {
        self.messages.retain(|_, m| m.refs > 0);
        let messages = &self.messages;
        self.by_ptr.retain(|_, mid| messages.contains_key(mid));
    }

    /// The record of message `mid` is written: its body need not be held any longer.
    pub(crate) fn unpin(&mut self, mid: u64) {
        if let Some(m) = self.messages.get_mut(&mid) {
            m.pinned = None;
        }
    }

    /// Records that the message `mid` now has this copy in memory (loaded from disk).
    pub(crate) fn set_live(&mut self, mid: u64, publish: &Arc<Publish>) {
        if let Some(m) = self.messages.get_mut(&mid) {
            if m.ptr != 0 {
                self.by_ptr.remove(&m.ptr);
            }
            m.live = Arc::downgrade(publish);
            m.ptr = ptr(publish);
            self.by_ptr.insert(m.ptr, mid);
        }
    }

    fn release(&mut self, mid: u64) {
        if let Some(m) = self.messages.get_mut(&mid) {
            m.refs = m.refs.saturating_sub(1);
            if m.refs == 0 {
                let address = m.ptr;
                self.messages.remove(&mid);
                if address != 0 && self.by_ptr.get(&address) == Some(&mid) {
                    self.by_ptr.remove(&address);
                }
            }
        }
    }

    fn drop_entries(&mut self, sid: u64) {
        let mids: Vec<u64> = self
            .sessions
            .get(&sid)
            .map(|s| s.entries.values().map(|e| e.mid).collect())
            .unwrap_or_default();
        for mid in mids {
            self.release(mid);
        }
    }

    fn session(&mut self, sid: u64) -> Option<&mut SessionState> {
        self.sessions.get_mut(&sid)
    }

    /// Applies a record; false if it names something unknown.
    fn try_apply(&mut self, record: Record, loc: Location) -> bool {
        match record {
            Record::Message { mid, size, .. } => {
                self.next_mid = self.next_mid.max(mid.saturating_add(1));
                self.messages.insert(
                    mid,
                    MessageState {
                        refs: 0,
                        size,
                        loc,
                        live: Weak::new(),
                        ptr: 0,
                        pinned: None,
                    },
                );
            }
            Record::Open { sid, client_id } => {
                self.next_sid = self.next_sid.max(sid.saturating_add(1));
                if let Some(old) = self.sids.insert(client_id.clone(), sid) {
                    self.drop_entries(old);
                    self.sessions.remove(&old);
                }
                self.sessions.insert(sid, SessionState::new(client_id));
            }
            Record::Expiry { sid, secs } => match self.session(sid) {
                Some(s) => s.expiry = secs,
                None => return false,
            },
            Record::Ended { sid } => {
                self.drop_entries(sid);
                let Some(s) = self.sessions.remove(&sid) else {
                    return false;
                };
                if self.sids.get(&s.client_id) == Some(&sid) {
                    self.sids.remove(&s.client_id);
                }
            }
            Record::Cleared { sid } => {
                self.drop_entries(sid);
                let Some(s) = self.session(sid) else {
                    return false;
                };
                s.subscriptions.clear();
                s.entries.clear();
                s.inflight.clear();
                s.incoming.clear();
            }
            Record::Subscribed { sid, filter, data } => match self.session(sid) {
                Some(s) => {
                    s.subscriptions.insert(filter, data);
                }
                None => return false,
            },
            Record::Unsubscribed { sid, filter } => match self.session(sid) {
                Some(s) => {
                    s.subscriptions.remove(&filter);
                }
                None => return false,
            },
            Record::Queued(q) => {
                if !self.messages.contains_key(&q.mid) || !self.sessions.contains_key(&q.sid) {
                    return false;
                }
                if q.group != 0 {
                    self.max_group = self.max_group.max(q.group);
                    self.pending_groups
                        .entry(q.group)
                        .or_default()
                        .copies
                        .push((q.sid, q.entry));
                }
                let entry = EntryState {
                    mid: q.mid,
                    qos: q.qos,
                    retain: q.retain,
                    expires: q.expires,
                    identifiers: q.identifiers,
                    shared: q.shared,
                    flight: None,
                };
                let replaced = self
                    .session(q.sid)
                    .and_then(|s| s.entries.insert(q.entry, entry));
                if let Some(m) = self.messages.get_mut(&q.mid) {
                    m.refs = m.refs.saturating_add(1);
                }
                if let Some(old) = replaced {
                    self.release(old.mid);
                }
            }
            Record::Sent { sid, entry, id } => {
                let Some(s) = self.session(sid) else {
                    return false;
                };
                let Some(e) = s.entries.get_mut(&entry) else {
                    return false;
                };
                if e.flight.is_none() {
                    s.inflight.push(entry);
                }
                e.flight = Some((id, false));
            }
            Record::Received { sid, entry } => {
                let flight = self
                    .session(sid)
                    .and_then(|s| s.entries.get_mut(&entry))
                    .and_then(|e| e.flight.as_mut());
                match flight {
                    Some(f) => f.1 = true,
                    None => return false,
                }
            }
            Record::Removed { sid, entry } => {
                let Some(s) = self.session(sid) else {
                    return false;
                };
                let Some(e) = s.entries.remove(&entry) else {
                    return false;
                };
                if e.flight.is_some() {
                    s.inflight.retain(|&i| i != entry);
                }
                self.release(e.mid);
            }
            Record::IncomingQos2 { sid, id, group } => {
                if group != 0 {
                    self.commit(group);
                }
                match self.session(sid) {
                    Some(s) => {
                        s.incoming.insert(id);
                    }
                    None => return false,
                }
            }
            Record::IncomingReleased { sid, id } => match self.session(sid) {
                Some(s) => {
                    s.incoming.remove(&id);
                }
                None => return false,
            },
            Record::Attached {
                sid,
                will_delay,
                will,
            } => match self.session(sid) {
                Some(s) => {
                    s.detached_at = None;
                    s.connection_will = (!will.is_empty()).then_some(WillState {
                        at: 0,
                        delay: will_delay,
                        packet: will,
                    });
                }
                None => return false,
            },
            Record::Detached { sid, at } => match self.session(sid) {
                Some(s) => {
                    s.detached_at = Some(at);
                    s.connection_will = None;
                }
                None => return false,
            },
            Record::DelayedWill {
                sid,
                at,
                delay,
                packet,
            } => match self.session(sid) {
                Some(s) => s.will = Some(WillState { at, delay, packet }),
                None => return false,
            },
            Record::WillDone { sid } => match self.session(sid) {
                Some(s) => s.will = None,
                None => return false,
            },
            Record::Retained {
                expires,
                group,
                packet,
            } => {
                let Some(publish) = decode_publish(&packet) else {
                    return false;
                };
                let qos = publish.qos.qos();
                self.set_retained(Arc::new(publish), qos, expires, group);
            }
            Record::Unretained { group, topic } => {
                self.change_retained(RetainedChange::Clear(topic), group);
            }
            Record::GroupCommit { group } => self.commit(group),
            Record::End { .. } => {}
        }
        true
    }
}
