//! The subscription index: who receives a message published to a topic. The structure is
//! described on [`SubscriptionIndex`].

use std::hash::{BuildHasher, Hash};
use std::str::Split;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

use crate::intern::{LevelId, Levels, NO_LEVEL, edge_key};
use crate::{QoS, SubscriptionId, SubscriptionOptions, TopicFilter, TopicName};

/// A node of the trie; `u32` keeps the arena and the edge keys compact.
type NodeId = u32;
/// A shared subscription group.
type GroupId = u32;

/// "No node" in `Node::plus` and `Node::parent`.
const NONE: u32 = u32::MAX;
/// The root node, created with the index and never freed.
const ROOT: NodeId = 0;

/// What the index keeps for one subscription: its options and its MQTT 5.0 subscription
/// identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionData {
    /// Maximum QoS, no local, retain as published, retain handling.
    pub options: SubscriptionOptions,
    /// The subscription identifier, if the SUBSCRIBE carried one.
    pub identifier: Option<SubscriptionId>,
}

impl SubscriptionData {
    /// A subscription at this maximum QoS, with default options and no identifier.
    pub const fn new(qos: QoS) -> Self {
        Self {
            options: SubscriptionOptions::new(qos),
            identifier: None,
        }
    }
}

/// The subscription identifiers of one delivery: usually none or one, kept inline; more only
/// when several of a session's subscriptions match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionIds {
    first: Option<SubscriptionId>,
    rest: Vec<SubscriptionId>,
}

impl SubscriptionIds {
    fn push(&mut self, id: SubscriptionId) {
        if self.first.is_none() {
            self.first = Some(id);
        } else {
            self.rest.push(id);
        }
    }

    /// The identifiers, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = SubscriptionId> + '_ {
        self.first.into_iter().chain(self.rest.iter().copied())
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

/// One delivery decided by matching: a session receives the message once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<K> {
    /// Who receives it.
    pub session: K,
    /// The highest maximum QoS among the session's matching subscriptions (the message is sent
    /// at the lower of this and its own QoS).
    pub qos: QoS,
    /// Whether any matching subscription asked to keep the RETAIN flag as published.
    pub retain_as_published: bool,
    /// The identifiers of the matching subscriptions that have one.
    pub identifiers: SubscriptionIds,
    /// For a delivery chosen from a shared subscription group: that subscription's filter
    /// (`$share/{ShareName}/{filter}`). Shared deliveries are never merged with others.
    pub shared: Option<TopicFilter>,
}

impl<K> Delivery<K> {
    pub(crate) fn new(session: K, data: &SubscriptionData) -> Self {
        let mut identifiers = SubscriptionIds::default();
        if let Some(id) = data.identifier {
            identifiers.push(id);
        }
        Self {
            session,
            qos: data.options.qos,
            retain_as_published: data.options.retain_as_published,
            identifiers,
            shared: None,
        }
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        self.qos = self.qos.max(other.qos);
        self.retain_as_published |= other.retain_as_published;
        for id in other.identifiers.iter() {
            self.identifiers.push(id);
        }
    }
}

/// The publisher of the message being matched: its session (so that its own No Local
/// subscriptions are skipped [MQTT-3.8.3-3]) and its client identifier (for
/// [`ShareStrategy::HashClientId`]).
#[derive(Debug, Clone, Copy)]
pub struct Publisher<'a, K> {
    /// The publishing session, if it has one in this index's key space.
    pub session: Option<K>,
    /// The publishing client's identifier.
    pub client_id: &'a str,
}

/// How a shared subscription group picks the one member that receives a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShareStrategy {
    /// Each member in turn.
    #[default]
    RoundRobin,
    /// A member drawn with the index's [`ShareRng`].
    Random,
    /// A member chosen by a hash of the publisher's client identifier, so that one publisher's
    /// messages keep going to the same member while the group is unchanged.
    HashClientId,
}

/// The source of randomness of [`ShareStrategy::Random`]; inject a deterministic one in tests.
pub trait ShareRng: Send + Sync + std::fmt::Debug {
    /// A uniformly distributed value.
    fn next_u64(&self) -> u64;
}

/// The default [`ShareRng`]: xorshift64* over an atomic state, seeded from the process's
/// random hasher state. Not for cryptography; enough to spread messages.
#[derive(Debug)]
pub struct DefaultShareRng(AtomicU64);

impl Default for DefaultShareRng {
    fn default() -> Self {
        let seed = DefaultHashBuilder::default().hash_one(0x5EED_u64) | 1;
        Self(AtomicU64::new(seed))
    }
}

impl ShareRng for DefaultShareRng {
    fn next_u64(&self) -> u64 {
        let mut x = self.0.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Counts of a [`SubscriptionIndex`]'s internal structures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    /// Subscriptions stored.
    pub subscriptions: usize,
    /// Sessions with subscriptions (or marked unavailable).
    pub sessions: usize,
    /// Live trie nodes, the root included.
    pub nodes: usize,
    /// Literal edges between nodes.
    pub edges: usize,
    /// Distinct interned level texts.
    pub levels: usize,
    /// Shared subscription groups.
    pub groups: usize,
}

/// The key a session is known by in the index: small, copyable, hashable and ordered (the
/// broker uses a dense integer id).
pub trait SessionKey: Copy + Eq + Hash + Ord + std::fmt::Debug {}

impl<T: Copy + Eq + Hash + Ord + std::fmt::Debug> SessionKey for T {}

/// One subscription in a node's list.
#[derive(Debug, Clone, Copy)]
struct Entry<K> {
    session: K,
    data: SubscriptionData,
    /// For a shared group member: whether it may be chosen (the broker marks members whose
    /// client is offline unavailable). Always true elsewhere.
    available: bool,
    /// Whether the session has other non-shared subscriptions, so that a message may match it
    /// twice and its deliveries must be merged. Only these are sorted and merged.
    overlaps: bool,
}

/// A list of subscriptions that holds one inline: most trie nodes have exactly one subscriber,
/// and this spares them a heap allocation each. The vector of a longer list is boxed so that a
/// node stays at 48 bytes.
#[derive(Debug, Clone, Default)]
enum List<K> {
    #[default]
    Empty,
    One(Entry<K>),
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Entry<K>>>),
}

impl<K> List<K> {
    fn is_empty(&self) -> bool {
        matches!(self, Self::Empty)
    }
}

impl<K: Copy> List<K> {
    fn as_slice(&self) -> &[Entry<K>] {
        match self {
            Self::Empty => &[],
            Self::One(entry) => std::slice::from_ref(entry),
            Self::Many(entries) => entries.as_slice(),
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn get_mut(&mut self, pos: usize) -> Option<&mut Entry<K>> {
        match self {
            Self::Empty => None,
            Self::One(entry) => (pos == 0).then_some(entry),
            Self::Many(entries) => entries.get_mut(pos),
        }
    }

    fn push(&mut self, entry: Entry<K>) {
        *self = match std::mem::take(self) {
            Self::Empty => Self::One(entry),
            Self::One(first) => Self::Many(Box::new(vec![first, entry])),
            Self::Many(mut entries) => {
                entries.push(entry);
                Self::Many(entries)
            }
        };
    }

    /// Removes the entry at `pos`, moving the last one into its place.
    fn swap_remove(&mut self, pos: usize) -> Option<Entry<K>> {
        match std::mem::take(self) {
            Self::Empty => None,
            Self::One(entry) if pos == 0 => Some(entry),
            one @ Self::One(_) => {
                *self = one;
                None
            }
            Self::Many(mut entries) => {
                let removed = (pos < entries.len()).then(|| entries.swap_remove(pos));
                *self = match entries.len() {
                    0 => Self::Empty,
                    1 => entries.pop().map_or(Self::Empty, Self::One),
                    _ => Self::Many(entries),
                };
                removed
            }
        }
    }
}

/// Which list of a node a subscription is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The filter ends at the node.
    Exact,
    /// The filter ends with `#` just below the node.
    Multi,
    /// A member of a shared group (which knows whether it is exact or multi).
    Group(GroupId),
}

impl Slot {
    const EXACT: u32 = u32::MAX;
    const MULTI: u32 = u32::MAX - 1;

    /// The slot in one `u32` (group ids stay below `MULTI`), to keep [`SubRef`] at 12 bytes.
    fn pack(self) -> u32 {
        match self {
            Self::Exact => Self::EXACT,
            Self::Multi => Self::MULTI,
            Self::Group(g) => g,
        }
    }

    fn unpack(packed: u32) -> Self {
        match packed {
            Self::EXACT => Self::Exact,
            Self::MULTI => Self::Multi,
            g => Self::Group(g),
        }
    }
}

/// Where one of a session's subscriptions is (12 bytes: there is one per subscription).
#[derive(Debug, Clone, Copy)]
struct SubRef {
    node: NodeId,
    slot: u32,
    pos: u32,
}

impl SubRef {
    fn slot(self) -> Slot {
        Slot::unpack(self.slot)
    }
}

/// Past this many subscriptions, a session's subscriptions are also found through a map, so
/// that no operation scans a large session.
const MAP_SESSION_ABOVE: usize = 32;

/// A session's subscriptions and where each sits.
#[derive(Debug)]
struct SessionEntry {
    subs: Vec<SubRef>,
    /// (node, packed slot) to position in `subs`, once `subs` is large (boxed: most sessions
    /// never need it, and every session pays for the field).
    #[allow(clippy::box_collection)]
    positions: Option<Box<HashMap<(NodeId, u32), u32>>>,
    /// Whether its shared-group memberships may be chosen.
    available: bool,
    /// How many of its subscriptions are not shared.
    plain: u32,
}

impl SessionEntry {
    fn new() -> Self {
        Self {
            subs: Vec::new(),
            positions: None,
            available: true,
            plain: 0,
        }
    }

    fn find(&self, node: NodeId, slot: u32) -> Option<usize> {
        match &self.positions {
            Some(map) => map.get(&(node, slot)).map(|&i| i as usize),
            None => self
                .subs
                .iter()
                .position(|r| r.node == node && r.slot == slot),
        }
    }

    fn find_mut(&mut self, node: NodeId, slot: u32) -> Option<&mut SubRef> {
        let i = self.find(node, slot)?;
        self.subs.get_mut(i)
    }

    fn push(&mut self, sub: SubRef) {
        let i = u32::try_from(self.subs.len()).unwrap_or(u32::MAX);
        self.subs.push(sub);
        match &mut self.positions {
            Some(map) => {
                map.insert((sub.node, sub.slot), i);
            }
            None if self.subs.len() > MAP_SESSION_ABOVE => {
                let map = self
                    .subs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| ((r.node, r.slot), u32::try_from(i).unwrap_or(u32::MAX)))
                    .collect();
                self.positions = Some(Box::new(map));
            }
            None => {}
        }
    }

    fn swap_remove(&mut self, i: usize) -> Option<SubRef> {
        if i >= self.subs.len() {
            return None;
        }
        let removed = self.subs.swap_remove(i);
        if let Some(map) = &mut self.positions {
            map.remove(&(removed.node, removed.slot));
            if let Some(moved) = self.subs.get(i) {
                map.insert(
                    (moved.node, moved.slot),
                    u32::try_from(i).unwrap_or(u32::MAX),
                );
            }
        }
        Some(removed)
    }

    /// Its one non-shared subscription, when it has exactly one.
    fn only_plain(&self) -> Option<SubRef> {
        if self.plain != 1 {
            return None;
        }
        self.subs
            .iter()
            .find(|r| !matches!(r.slot(), Slot::Group(_)))
            .copied()
    }
}

#[derive(Debug)]
struct Node<K> {
    exact: List<K>,
    /// The rarer parts, allocated only when used.
    extra: Option<Box<NodeExtra<K>>>,
    plus: NodeId,
    parent: NodeId,
    /// The level leading here from the parent; [`NO_LEVEL`] for the root and `+` children.
    level: LevelId,
    /// Literal children (edges from this node).
    children: u32,
}

#[derive(Debug)]
struct NodeExtra<K> {
    multi: List<K>,
    groups: Vec<GroupId>,
}

#[derive(Debug)]
struct Group<K> {
    share_name: Box<str>,
    multi: bool,
    /// The node it hangs from, and its place in that node's `groups`.
    node: NodeId,
    index_in_node: u32,
    /// The whole `$share/{ShareName}/{filter}`, owned (not a slice of a received packet).
    filter: TopicFilter,
    members: List<K>,
    next: AtomicUsize,
}

/// A subscription index for one broker: insert, replace and remove subscriptions, and find who
/// receives a message.
///
/// # Structure
///
/// A trie over topic levels, laid out in flat arenas so that a million subscriptions cost a
/// handful of large allocations rather than millions of small ones:
///
/// - `nodes`: one node per distinct filter prefix. A node holds the subscriptions whose
///   filter ends there (`exact`), those whose filter continues with a final `#` (`multi`), the
///   shared groups of either kind, and the id of its `+` child.
/// - `edges`: one hash map from (parent node, level) to child node for every literal level.
///   Levels are interned, so a level text that recurs across the tree
///   (`temperature`, `status`) is stored once and an edge key is two integers.
/// - `sessions`: per session, where each of its subscriptions sits (node, slot, position), so
///   that removing one subscription, or all of a session's, costs time proportional to what is
///   removed and never scans a node's subscriber list.
///
/// Subscriber lists are unordered (one subscriber inline, more in a vector) with swap-remove;
/// the session table is kept up to date
/// with the one entry that moves. Nodes, levels and groups that become empty are freed at once,
/// so memory follows the subscriptions present, not those that ever were.
///
/// Matching walks the topic's levels from the root, following at each node the literal child,
/// the `+` child and collecting the `#` subscriptions: its cost depends on the topic's depth and
/// the number of matches, not on the number of subscriptions.
///
/// It is `Sync`: any number of threads can match at once through `&self` (round-robin counters
/// and the random source are atomics); changes take `&mut self`. The crate documentation says how
/// to share it between threads.
#[derive(Debug)]
pub struct SubscriptionIndex<K> {
    nodes: Vec<Node<K>>,
    free_nodes: Vec<NodeId>,
    groups: Vec<Option<Group<K>>>,
    free_groups: Vec<GroupId>,
    /// Groups by (node, multi, share name).
    group_table: HashTable<GroupId>,
    levels: Levels,
    edges: HashMap<(NodeId, LevelId), NodeId>,
    sessions: HashMap<K, SessionEntry>,
    hasher: DefaultHashBuilder,
    len: usize,
    strategy: ShareStrategy,
    rng: Box<dyn ShareRng>,
}

impl<K: SessionKey> Default for SubscriptionIndex<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: SessionKey> SubscriptionIndex<K> {
    /// An empty index whose shared groups choose round robin.
    pub fn new() -> Self {
        Self {
            nodes: vec![Node::new(NONE, NO_LEVEL)],
            free_nodes: Vec::new(),
            groups: Vec::new(),
            free_groups: Vec::new(),
            group_table: HashTable::new(),
            levels: Levels::default(),
            edges: HashMap::new(),
            sessions: HashMap::new(),
            hasher: DefaultHashBuilder::default(),
            len: 0,
            strategy: ShareStrategy::RoundRobin,
            rng: Box::new(DefaultShareRng::default()),
        }
    }

    /// This index with another shared-group strategy.
    pub fn with_strategy(mut self, strategy: ShareStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// This index with another random source for [`ShareStrategy::Random`].
    pub fn with_rng(mut self, rng: Box<dyn ShareRng>) -> Self {
        self.rng = rng;
        self
    }

    /// The number of subscriptions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no subscriptions.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Counts of the internal structures, for tests and memory measurements.
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            subscriptions: self.len,
            sessions: self.sessions.len(),
            nodes: self.nodes.len() - self.free_nodes.len(),
            edges: self.edges.len(),
            levels: self.levels.len(),
            groups: self.groups.len() - self.free_groups.len(),
        }
    }

    /// The number of subscriptions of `session`.
    pub fn session_len(&self, session: &K) -> usize {
        self.sessions.get(session).map_or(0, |s| s.subs.len())
    }

    /// Adds the subscription of `session` to `filter`, or replaces it if the session already has
    /// one to this filter (one subscription per filter per session); returns the replaced data.
    pub fn insert(
        &mut self,
        session: K,
        filter: &TopicFilter,
        data: SubscriptionData,
    ) -> Option<SubscriptionData> {
        let (node, multi) = self.make_path(filter);
        let slot = match filter.share_name() {
            Some(name) => Slot::Group(self.make_group(node, name, multi, filter)),
            None if multi => Slot::Multi,
            None => Slot::Exact,
        };
        let entry = self
            .sessions
            .entry(session)
            .or_insert_with(SessionEntry::new);
        if let Some(&existing) = entry
            .find(node, slot.pack())
            .and_then(|i| entry.subs.get(i))
        {
            let old = self
                .list_mut(existing.node, existing.slot())?
                .get_mut(existing.pos as usize)?;
            return Some(std::mem::replace(&mut old.data, data));
        }
        let plain = !matches!(slot, Slot::Group(_));
        // The session's first non-shared subscription, which overlaps from now on.
        let first_plain = if plain { entry.only_plain() } else { None };
        if plain {
            entry.plain += 1;
        }
        let new_entry = Entry {
            session,
            data,
            available: entry.available || plain,
            overlaps: plain && entry.plain >= 2,
        };
        let list = self.list_mut(node, slot)?;
        let pos = u32::try_from(list.len()).unwrap_or(u32::MAX);
        list.push(new_entry);
        if let Some(entry) = self.sessions.get_mut(&session) {
            entry.push(SubRef {
                node,
                slot: slot.pack(),
                pos,
            });
        }
        if let Some(first) = first_plain {
            self.set_overlaps(first, true);
        }
        self.len += 1;
        None
    }

    /// Removes the subscription of `session` to `filter`; returns its data if there was one.
    pub fn remove(&mut self, session: &K, filter: &TopicFilter) -> Option<SubscriptionData> {
        let (node, multi) = self.find_path(filter)?;
        let slot = match filter.share_name() {
            Some(name) => Slot::Group(self.find_group(node, name, multi)?),
            None if multi => Slot::Multi,
            None => Slot::Exact,
        };
        let entry = self.sessions.get_mut(session)?;
        let i = entry.find(node, slot.pack())?;
        let sub = entry.swap_remove(i)?;
        let mut last_plain = None;
        if !matches!(slot, Slot::Group(_)) {
            entry.plain = entry.plain.saturating_sub(1);
            last_plain = entry.only_plain();
        }
        if entry.subs.is_empty() {
            self.sessions.remove(session);
        }
        let removed = self.remove_at(sub);
        self.prune(sub.node, sub.slot());
        if let Some(last) = last_plain {
            self.set_overlaps(last, false);
        }
        removed
    }

    /// Removes every subscription of `session` (and forgets whether it was available); returns
    /// how many there were.
    pub fn remove_session(&mut self, session: &K) -> usize {
        let Some(entry) = self.sessions.remove(session) else {
            return 0;
        };
        for sub in &entry.subs {
            self.remove_at(*sub);
            self.prune(sub.node, sub.slot());
        }
        entry.subs.len()
    }

    /// Marks `session` as able (or not) to receive messages of its shared subscriptions: the
    /// choice of a group member skips unavailable members while the group has available ones.
    /// Only sessions with subscriptions are tracked; a session starts available, and
    /// [`SubscriptionIndex::remove_session`] forgets the mark.
    pub fn set_available(&mut self, session: K, available: bool) {
        let Some(entry) = self.sessions.get_mut(&session) else {
            return;
        };
        entry.available = available;
        let members: Vec<SubRef> = entry
            .subs
            .iter()
            .filter(|r| matches!(r.slot(), Slot::Group(_)))
            .copied()
            .collect();
        for sub in members {
            if let Some(member) = self
                .list_mut(sub.node, sub.slot())
                .and_then(|l| l.get_mut(sub.pos as usize))
            {
                member.available = available;
            }
        }
    }

    /// The subscription of `session` to `filter`, if any.
    pub fn get(&self, session: &K, filter: &TopicFilter) -> Option<SubscriptionData> {
        let (node, multi) = self.find_path(filter)?;
        let slot = match filter.share_name() {
            Some(name) => Slot::Group(self.find_group(node, name, multi)?),
            None if multi => Slot::Multi,
            None => Slot::Exact,
        };
        let entry = self.sessions.get(session)?;
        let sub = entry.subs.get(entry.find(node, slot.pack())?)?;
        self.list(sub.node, sub.slot())?
            .as_slice()
            .get(sub.pos as usize)
            .map(|e| e.data)
    }

    /// Sets the `overlaps` mark of one subscription.
    fn set_overlaps(&mut self, sub: SubRef, overlaps: bool) {
        if let Some(e) = self
            .list_mut(sub.node, sub.slot())
            .and_then(|l| l.get_mut(sub.pos as usize))
        {
            e.overlaps = overlaps;
        }
    }

    /// Appends to `out` who receives a message published to `topic`: one [`Delivery`] per
    /// session with matching non-shared subscriptions (its QoS the highest of them, with all
    /// their identifiers), then one per matching shared group, to the member the group's
    /// strategy picks. No Local subscriptions of the publisher's own session are skipped.
    ///
    /// `out` is not cleared, so a caller can reuse one vector across messages.
    pub fn matches(
        &self,
        topic: &TopicName,
        publisher: Publisher<'_, K>,
        out: &mut Vec<Delivery<K>>,
    ) {
        // The empty name only stands for a topic alias, which the broker resolves first.
        if topic.is_empty() {
            return;
        }
        let mut groups = Vec::new();
        let mut overlapping = Vec::new();
        let mut walk = Walk {
            index: self,
            publisher: publisher.session,
            dollar: topic.is_dollar(),
            out,
            overlapping: &mut overlapping,
            groups: &mut groups,
            deferred: Vec::new(),
        };
        walk.run(topic.as_str().split('/'));
        // Only sessions with several non-shared subscriptions can match twice: merge just those.
        merge_by_session(&mut overlapping);
        out.append(&mut overlapping);
        for group in groups {
            if let Some(delivery) = self.choose(group, &publisher) {
                out.push(delivery);
            }
        }
    }

    /// Picks another member of the shared group `filter` (`$share/{ShareName}/{filter}`) than
    /// `leaving`, for a message `leaving` received and did not acknowledge before its session
    /// ended: MQTT 5.0 section 4.8.2 says such a message should go to another member. Available
    /// members first, as for a new message; `None` when the group has no other member.
    pub fn choose_other(
        &self,
        filter: &TopicFilter,
        leaving: &K,
        publisher: Publisher<'_, K>,
    ) -> Option<Delivery<K>> {
        let name = filter.share_name()?;
        let (node, multi) = self.find_path(filter)?;
        let id = self.find_group(node, name, multi)?;
        let group = self.groups.get(id as usize)?.as_ref()?;
        self.pick(group, &publisher, Some(leaving))
    }

    /// Picks the member of a shared group that receives a message.
    fn choose(&self, group: GroupId, publisher: &Publisher<'_, K>) -> Option<Delivery<K>> {
        let group = self.groups.get(group as usize)?.as_ref()?;
        self.pick(group, publisher, None)
    }

    /// The group's strategy applied to its members but `exclude`.
    fn pick(
        &self,
        group: &Group<K>,
        publisher: &Publisher<'_, K>,
        exclude: Option<&K>,
    ) -> Option<Delivery<K>> {
        let members = || {
            group
                .members
                .as_slice()
                .iter()
                .filter(move |m| exclude != Some(&m.session))
        };
        let available = members().filter(|m| m.available).count();
        // Prefer available members; with none, any member (its session queues the message).
        let (candidates, only_available) = if available > 0 {
            (available, true)
        } else {
            (members().count(), false)
        };
        if candidates == 0 {
            return None;
        }
        let draw = match self.strategy {
            ShareStrategy::RoundRobin => group.next.fetch_add(1, Ordering::Relaxed),
            ShareStrategy::Random => self.rng.next_u64() as usize,
            ShareStrategy::HashClientId => self.hasher.hash_one(publisher.client_id) as usize,
        };
        let member = members()
            .filter(|m| m.available || !only_available)
            .nth(draw % candidates)?;
        let mut delivery = Delivery::new(member.session, &member.data);
        delivery.shared = Some(group.filter.clone());
        Some(delivery)
    }

    // --- paths ------------------------------------------------------------------------------

    /// The node a filter's subscriptions live at, created as needed, and whether the filter ends
    /// with `#` (stored at the node of its parent level).
    fn make_path(&mut self, filter: &TopicFilter) -> (NodeId, bool) {
        let mut node = ROOT;
        let mut levels = filter.levels().peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                return (node, true);
            }
            node = if level == "+" {
                self.plus_child(node)
            } else {
                self.literal_child(node, level)
            };
        }
        (node, false)
    }

    /// As [`SubscriptionIndex::make_path`], without creating anything.
    fn find_path(&self, filter: &TopicFilter) -> Option<(NodeId, bool)> {
        let mut node = ROOT;
        let mut levels = filter.levels().peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                return Some((node, true));
            }
            node = if level == "+" {
                Some(self.nodes.get(node as usize)?.plus).filter(|&p| p != NONE)?
            } else {
                self.child(node, level)?
            };
        }
        Some((node, false))
    }

    fn child(&self, node: NodeId, level: &str) -> Option<NodeId> {
        let level = self.levels.find(level)?;
        self.edges.get(&edge_key(node, level)).copied()
    }

    fn plus_child(&mut self, node: NodeId) -> NodeId {
        match self.nodes.get(node as usize).map(|n| n.plus) {
            Some(plus) if plus != NONE => plus,
            _ => {
                let child = self.alloc_node(node, NO_LEVEL);
                if let Some(n) = self.nodes.get_mut(node as usize) {
                    n.plus = child;
                }
                child
            }
        }
    }

    fn literal_child(&mut self, node: NodeId, level: &str) -> NodeId {
        if let Some(child) = self.child(node, level) {
            return child;
        }
        let level = self.levels.acquire(level);
        let child = self.alloc_node(node, level);
        self.edges.insert(edge_key(node, level), child);
        if let Some(n) = self.nodes.get_mut(node as usize) {
            n.children += 1;
        }
        child
    }

    fn alloc_node(&mut self, parent: NodeId, level: LevelId) -> NodeId {
        let node = Node::new(parent, level);
        match self.free_nodes.pop() {
            Some(id) => {
                if let Some(slot) = self.nodes.get_mut(id as usize) {
                    *slot = node;
                }
                id
            }
            None => {
                self.nodes.push(node);
                u32::try_from(self.nodes.len() - 1).unwrap_or(NONE)
            }
        }
    }

    // --- groups -----------------------------------------------------------------------------

    fn group_hash(&self, node: NodeId, name: &str, multi: bool) -> u64 {
        self.hasher.hash_one((node, multi, name))
    }

    fn find_group(&self, node: NodeId, name: &str, multi: bool) -> Option<GroupId> {
        let hash = self.group_hash(node, name, multi);
        self.group_table
            .find(hash, |&g| {
                self.groups
                    .get(g as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|g| g.node == node && g.multi == multi && &*g.share_name == name)
            })
            .copied()
    }

    fn make_group(
        &mut self,
        node: NodeId,
        name: &str,
        multi: bool,
        filter: &TopicFilter,
    ) -> GroupId {
        if let Some(g) = self.find_group(node, name, multi) {
            return g;
        }
        let index_in_node = self
            .nodes
            .get(node as usize)
            .and_then(|n| n.extra.as_ref())
            .map_or(0, |e| u32::try_from(e.groups.len()).unwrap_or(u32::MAX));
        let group = Group {
            share_name: name.into(),
            multi,
            node,
            index_in_node,
            filter: filter.copied(),
            members: List::Empty,
            next: AtomicUsize::new(0),
        };
        let id = match self.free_groups.pop() {
            Some(id) => {
                if let Some(slot) = self.groups.get_mut(id as usize) {
                    *slot = Some(group);
                }
                id
            }
            None => {
                self.groups.push(Some(group));
                u32::try_from(self.groups.len() - 1).unwrap_or(NONE)
            }
        };
        if let Some(n) = self.nodes.get_mut(node as usize) {
            n.extra_mut().groups.push(id);
        }
        let hasher = &self.hasher;
        let groups = &self.groups;
        let hash = hasher.hash_one((node, multi, name));
        self.group_table.insert_unique(hash, id, |&other| {
            groups
                .get(other as usize)
                .and_then(Option::as_ref)
                .map_or(0, |g| hasher.hash_one((g.node, g.multi, &*g.share_name)))
        });
        id
    }

    /// Frees an empty group: out of the table, out of its node's list (the group that takes its
    /// place there learns its new position), its id back to the free list.
    fn free_group(&mut self, id: GroupId) {
        let Some(group) = self.groups.get_mut(id as usize).and_then(Option::take) else {
            return;
        };
        let hash = self.group_hash(group.node, &group.share_name, group.multi);
        if let Ok(entry) = self.group_table.find_entry(hash, |&g| g == id) {
            entry.remove();
        }
        let index = group.index_in_node as usize;
        let moved = self
            .nodes
            .get_mut(group.node as usize)
            .and_then(|n| n.extra.as_mut())
            .and_then(|extra| {
                if index < extra.groups.len() {
                    extra.groups.swap_remove(index);
                }
                extra.groups.get(index).copied()
            });
        if let Some(g) = moved.and_then(|m| self.groups.get_mut(m as usize)?.as_mut()) {
            g.index_in_node = group.index_in_node;
        }
        self.free_groups.push(id);
    }

    // --- lists ------------------------------------------------------------------------------

    fn list(&self, node: NodeId, slot: Slot) -> Option<&List<K>> {
        match slot {
            Slot::Exact => Some(&self.nodes.get(node as usize)?.exact),
            Slot::Multi => Some(&self.nodes.get(node as usize)?.extra.as_ref()?.multi),
            Slot::Group(g) => Some(&self.groups.get(g as usize)?.as_ref()?.members),
        }
    }

    fn list_mut(&mut self, node: NodeId, slot: Slot) -> Option<&mut List<K>> {
        match slot {
            Slot::Exact => Some(&mut self.nodes.get_mut(node as usize)?.exact),
            Slot::Multi => Some(&mut self.nodes.get_mut(node as usize)?.extra_mut().multi),
            Slot::Group(g) => Some(&mut self.groups.get_mut(g as usize)?.as_mut()?.members),
        }
    }

    /// Takes a subscription out of its list; the entry that fills its place gets its position
    /// updated in its session's table.
    fn remove_at(&mut self, sub: SubRef) -> Option<SubscriptionData> {
        let list = self.list_mut(sub.node, sub.slot())?;
        let pos = sub.pos as usize;
        if pos >= list.len() {
            return None;
        }
        let removed = list.swap_remove(pos)?;
        let moved = list.as_slice().get(pos).map(|e| e.session);
        self.len = self.len.saturating_sub(1);
        if let Some(moved) = moved
            && let Some(r) = self
                .sessions
                .get_mut(&moved)
                .and_then(|s| s.find_mut(sub.node, sub.slot))
        {
            r.pos = sub.pos;
        }
        Some(removed.data)
    }

    /// Frees what a removal left empty: the group, then nodes up towards the root.
    fn prune(&mut self, mut node: NodeId, slot: Slot) {
        if let Slot::Group(g) = slot {
            let empty = self
                .groups
                .get(g as usize)
                .and_then(Option::as_ref)
                .is_some_and(|g| g.members.is_empty());
            if empty {
                self.free_group(g);
            }
        }
        while node != ROOT {
            let Some(n) = self.nodes.get_mut(node as usize) else {
                return;
            };
            if n.extra
                .as_ref()
                .is_some_and(|e| e.multi.is_empty() && e.groups.is_empty())
            {
                n.extra = None;
            }
            if !n.is_empty() {
                return;
            }
            let (parent, level) = (n.parent, n.level);
            n.exact = List::Empty;
            self.free_nodes.push(node);
            if level == NO_LEVEL {
                if let Some(p) = self.nodes.get_mut(parent as usize) {
                    p.plus = NONE;
                }
            } else {
                self.edges.remove(&edge_key(parent, level));
                if let Some(p) = self.nodes.get_mut(parent as usize) {
                    p.children = p.children.saturating_sub(1);
                }
                self.levels.release(level);
            }
            node = parent;
        }
    }
}

impl<K> Node<K> {
    fn new(parent: NodeId, level: LevelId) -> Self {
        Self {
            exact: List::Empty,
            extra: None,
            plus: NONE,
            parent,
            level,
            children: 0,
        }
    }

    fn extra_mut(&mut self) -> &mut NodeExtra<K> {
        self.extra.get_or_insert_with(|| {
            Box::new(NodeExtra {
                multi: List::Empty,
                groups: Vec::new(),
            })
        })
    }

    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.extra.is_none() && self.plus == NONE && self.children == 0
    }
}

/// How deep the walk recurses before it defers subtrees to an explicit stack: a hostile
/// `+/+/+/...` subscription and a topic as deep cannot exhaust the thread's stack.
const MAX_RECURSION: usize = 64;

/// One match in progress.
struct Walk<'i, 'o, 't, K> {
    index: &'i SubscriptionIndex<K>,
    publisher: Option<K>,
    dollar: bool,
    out: &'o mut Vec<Delivery<K>>,
    /// Deliveries of sessions that may match more than once, merged at the end.
    overlapping: &'o mut Vec<Delivery<K>>,
    groups: &'o mut Vec<GroupId>,
    /// Subtrees left for later by [`MAX_RECURSION`].
    deferred: Vec<(NodeId, Split<'t, char>)>,
}

impl<'t, K: SessionKey> Walk<'_, '_, 't, K> {
    /// Collects every match under the root for `levels`.
    fn run(&mut self, levels: Split<'t, char>) {
        self.node(ROOT, levels, true, 0);
        while let Some((id, levels)) = self.deferred.pop() {
            self.node(id, levels, false, 0);
        }
    }

    /// Collects the matches under `node` for the remaining `levels`; `root` is true at the top,
    /// where wildcards must not match a `$` topic [MQTT-4.7.2-1].
    fn node(&mut self, id: NodeId, mut levels: Split<'t, char>, root: bool, depth: usize) {
        if depth >= MAX_RECURSION {
            self.deferred.push((id, levels));
            return;
        }
        let index = self.index;
        let Some(node) = index.nodes.get(id as usize) else {
            return;
        };
        let wildcards = !(root && self.dollar);
        // `#` below this node matches the rest, including nothing (`sport/#` matches `sport`).
        if wildcards && let Some(extra) = &node.extra {
            self.collect(extra.multi.as_slice());
            self.collect_groups(extra, true);
        }
        let Some(level) = levels.next() else {
            self.collect(node.exact.as_slice());
            if let Some(extra) = &node.extra {
                self.collect_groups(extra, false);
            }
            return;
        };
        if node.children > 0
            && let Some(child) = index.child(id, level)
        {
            self.node(child, levels.clone(), false, depth + 1);
        }
        if wildcards && node.plus != NONE {
            self.node(node.plus, levels, false, depth + 1);
        }
    }

    fn collect(&mut self, entries: &[Entry<K>]) {
        for e in entries {
            if e.data.options.no_local && Some(e.session) == self.publisher {
                continue;
            }
            let delivery = Delivery::new(e.session, &e.data);
            if e.overlaps {
                self.overlapping.push(delivery);
            } else {
                self.out.push(delivery);
            }
        }
    }

    fn collect_groups(&mut self, extra: &NodeExtra<K>, multi: bool) {
        for &g in &extra.groups {
            let kind = self
                .index
                .groups
                .get(g as usize)
                .and_then(Option::as_ref)
                .map(|g| g.multi);
            if kind == Some(multi) {
                self.groups.push(g);
            }
        }
    }
}

/// Merges `deliveries` so that each session appears once (in place: sort by session, then fold
/// each run into its first delivery).
fn merge_by_session<K: SessionKey>(deliveries: &mut Vec<Delivery<K>>) {
    if deliveries.len() < 2 {
        return;
    }
    deliveries.sort_unstable_by_key(|d| d.session);
    let mut write = 0;
    for read in 1..deliveries.len() {
        let (head, rest) = deliveries.split_at_mut(read);
        let (Some(kept), Some(next)) = (head.get_mut(write), rest.first_mut()) else {
            break;
        };
        if kept.session == next.session {
            kept.merge(next);
        } else {
            write += 1;
            deliveries.swap(write, read);
        }
    }
    deliveries.truncate(write + 1);
}

/// A [`SubscriptionIndex`] shared between threads: many matching at once, occasionally one
/// changing it.
///
/// Reads go through a sharded reader-writer lock (`crossbeam_utils::sync::ShardedLock`): each
/// reader takes the read side of a lock shard chosen by its thread, so matching threads do not
/// contend on one counter; a writer takes every shard. Measured with the `index` benchmark
/// (100k subscriptions, the 2-core project machine; `docs/benchmarks.md` has the runs): with a
/// plain `RwLock`, two matching threads do no better than one (about 3.6M matches/s, or less:
/// both write the lock's reader count), while through the sharded lock they reach 4.7M to 5.4M,
/// close to two threads with no lock at all. Subscription changes are rare next to matches, so
/// their cost (locking every shard) does not matter.
#[derive(Debug)]
pub struct SharedIndex<K> {
    inner: crossbeam_utils::sync::ShardedLock<SubscriptionIndex<K>>,
}

impl<K: SessionKey> Default for SharedIndex<K> {
    fn default() -> Self {
        Self::new(SubscriptionIndex::new())
    }
}

impl<K: SessionKey> SharedIndex<K> {
    /// Shares `index`.
    pub fn new(index: SubscriptionIndex<K>) -> Self {
        Self {
            inner: crossbeam_utils::sync::ShardedLock::new(index),
        }
    }

    /// Read access, for matching. A panic while another thread held the write side leaves the
    /// index as it was after its last completed operation, so the lock's poisoning is ignored.
    pub fn read(&self) -> crossbeam_utils::sync::ShardedLockReadGuard<'_, SubscriptionIndex<K>> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Write access, for subscription changes.
    pub fn write(&self) -> crossbeam_utils::sync::ShardedLockWriteGuard<'_, SubscriptionIndex<K>> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A million subscriptions make about two million nodes and a quarter million sessions:
    /// the size of these records is most of the index's memory (see the benchmark).
    #[test]
    fn node_and_session_records_stay_small() {
        assert!(size_of::<Node<u32>>() <= 48, "{}", size_of::<Node<u32>>());
        assert!(size_of::<SubRef>() <= 12);
        assert!(size_of::<Entry<u32>>() <= 16);
        assert!(
            size_of::<SessionEntry>() <= 40,
            "{}",
            size_of::<SessionEntry>()
        );
    }
}
