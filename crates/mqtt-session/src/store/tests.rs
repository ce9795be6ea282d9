//! The durable store against the session machine: whatever a journaling session does, what a
//! reopened store gives back rebuilds the same session; a damaged store gives back a valid
//! prefix of what was written.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use mqtt_codec::{
    Packet, PacketId, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS, QosPid,
    SubscriptionId, TopicFilter, TopicName,
};
use mqtt_topic::{MqttString, SubscriptionData};
use proptest::prelude::*;

use super::record::{FileKind, HEADER_LEN};
use super::state::{FileId, State};
use super::*;
use crate::{Attach, Delivery, DeliveryExtras, Limits, Session};

fn limits() -> Limits {
    Limits {
        journal: true,
        max_inflight: 3,
        max_queued_messages: 8,
        ..Limits::default()
    }
}

fn options() -> StoreOptions {
    StoreOptions {
        sync: SyncPolicy::Always,
        ..StoreOptions::default()
    }
}

/// Every store of a test runs on the same clocks (`now` is the same instant in every call), so
/// that times convert back exactly.
fn open(dir: &Path, now: Instant) -> (DurableStore, Recovered) {
    static WALL: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();
    let wall = *WALL.get_or_init(SystemTime::now);
    DurableStore::open(dir, options(), now, wall).unwrap()
}

/// Loads every spilled entry back into the session.
fn fill_all(store: &DurableStore, s: &mut Session, now: Instant) {
    let entries = s.spilled_entries(false);
    let loaded = store.load_queued(s.client_id().as_str(), &entries);
    assert!(loaded.iter().all(|(_, d)| d.is_some()), "{loaded:?}");
    s.fill(loaded, now);
}

/// The one session restored from a reopened store, with its queue loaded.
fn restored(store: &DurableStore, recovered: Recovered, now: Instant) -> Session {
    assert_eq!(recovered.report.damaged, Vec::<String>::new());
    assert_eq!(recovered.report.inconsistencies, 0);
    let mut sessions = recovered.sessions;
    assert_eq!(sessions.len(), 1);
    let mut s = Session::from_stored(sessions.remove(0), limits());
    fill_all(store, &mut s, now);
    s
}

#[derive(Debug, Clone)]
enum Op {
    Subscribe(u8, u8),
    Unsubscribe(u8),
    Deliver { message: u8, qos: u8, extras: bool },
    Ack(u8),
    Rec(u8),
    Comp(u8),
    IncomingQos2(u16),
    Release(u16),
    Attach,
    Detach,
    Expiry(u32),
    Clear,
    Restart,
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..4u8, 0..3u8).prop_map(|(f, q)| Op::Subscribe(f, q)),
        1 => (0..4u8).prop_map(Op::Unsubscribe),
        4 => (0..6u8, 0..3u8, any::<bool>())
            .prop_map(|(message, qos, extras)| Op::Deliver { message, qos, extras }),
        2 => (0..4u8).prop_map(Op::Ack),
        1 => (0..4u8).prop_map(Op::Rec),
        1 => (0..4u8).prop_map(Op::Comp),
        1 => (1..4u16).prop_map(Op::IncomingQos2),
        1 => (1..4u16).prop_map(Op::Release),
        1 => Just(Op::Attach),
        1 => Just(Op::Detach),
        1 => prop_oneof![Just(0u32), Just(60), Just(u32::MAX)].prop_map(Op::Expiry),
        1 => Just(Op::Clear),
        1 => Just(Op::Restart),
        1 => Just(Op::Compact),
    ]
}

const FILTERS: [&str; 4] = ["a/#", "a/+", "$share/g/a/b", "b"];

/// A few messages, shared between deliveries as the broker shares them.
fn messages() -> Vec<Arc<Publish>> {
    (0..6)
        .map(|i| {
            let mut p = Publish::new(
                TopicName::try_from(format!("a/{i}")).unwrap(),
                Bytes::from(format!("message {i}")),
            );
            p.qos = match i % 3 {
                0 => QosPid::AtMostOnce,
                1 => QosPid::AtLeastOnce(PacketId::new(1).unwrap()),
                _ => QosPid::ExactlyOnce(PacketId::new(1).unwrap()),
            };
            if i == 5 {
                p.properties_mut().content_type = Some("text/plain".try_into().unwrap());
            }
            Arc::new(p)
        })
        .collect()
}

fn attach(s: &mut Session, now: Instant) {
    s.attach(Attach::new(ProtocolVersion::V5, 0, None), now);
}

/// Applies an op to the session (and to the store: restarts and compaction).
fn apply(
    op: &Op,
    s: &mut Session,
    store: &mut Option<DurableStore>,
    dir: &Path,
    messages: &[Arc<Publish>],
    now: Instant,
) {
    let inflight_id = |s: &Session, i: u8| {
        let ids = s.inflight_ids();
        ids.get(usize::from(i) % ids.len().max(1)).copied()
    };
    match op {
        Op::Subscribe(f, q) => {
            let filter = TopicFilter::from_static(FILTERS[usize::from(*f)]).unwrap();
            let mut data = SubscriptionData::new(QoS::from_u8(*q).unwrap());
            data.identifier = SubscriptionId::new(u32::from(*f) + 1);
            s.add_subscription(&filter, data);
        }
        Op::Unsubscribe(f) => {
            let filter = TopicFilter::from_static(FILTERS[usize::from(*f)]).unwrap();
            s.remove_subscription(&filter);
        }
        Op::Deliver {
            message,
            qos,
            extras,
        } => {
            let publish = Arc::clone(&messages[usize::from(*message)]);
            let mut d = Delivery::new(publish, QoS::from_u8(*qos).unwrap(), *message == 4);
            if *extras {
                d = d.with_extras(DeliveryExtras {
                    expires_at: Some(now + Duration::from_secs(3600)),
                    identifiers: vec![SubscriptionId::new(7).unwrap()],
                    shared: Some(TopicFilter::from_static("$share/g/a/#").unwrap()),
                });
            }
            s.deliver(d, now);
        }
        Op::Ack(i) => {
            if let Some(id) = inflight_id(s, *i) {
                let _ = s.handle_packet(Packet::PubAck(PubAck::new(id)), now);
            }
        }
        Op::Rec(i) => {
            if let Some(id) = inflight_id(s, *i) {
                let _ = s.handle_packet(Packet::PubRec(PubRec::new(id)), now);
            }
        }
        Op::Comp(i) => {
            if let Some(id) = inflight_id(s, *i) {
                let _ = s.handle_packet(Packet::PubComp(PubComp::new(id)), now);
            }
        }
        Op::IncomingQos2(id) => {
            if s.is_attached() {
                let mut p = Publish::new(TopicName::from_static("in").unwrap(), "x");
                p.qos = QosPid::ExactlyOnce(PacketId::new(*id).unwrap());
                let _ = s.handle_packet(Packet::Publish(p), now);
            }
        }
        Op::Release(id) => {
            if s.is_attached() {
                let _ = s.handle_packet(
                    Packet::PubRel(PubRel::new(PacketId::new(*id).unwrap())),
                    now,
                );
            }
        }
        Op::Attach => {
            if !s.is_attached() {
                attach(s, now);
                if let Some(store) = store {
                    let changes = s.take_changes();
                    store.record(s.client_id().as_str(), changes);
                    fill_all(store, s, now);
                }
            }
        }
        Op::Detach => {
            s.detach(true);
        }
        Op::Expiry(secs) => {
            // As the broker does: a session becomes persistent only empty (a new CONNECT),
            // and one that stops being persistent gets its queue back from the store first
            // (the store then forgets it).
            if !s.is_persistent() && *secs > 0 {
                s.clear();
            }
            if *secs == 0
                && let Some(store) = store
            {
                fill_all(store, s, now);
            }
            s.set_expiry_interval(*secs);
        }
        Op::Clear => {
            s.clear();
        }
        Op::Restart | Op::Compact => {}
    }
    let Some(st) = store.as_ref() else {
        return;
    };
    let changes = s.take_changes();
    st.record(s.client_id().as_str(), changes);
    match op {
        Op::Compact => st.compact_now(),
        Op::Restart => {
            let attached = s.is_attached();
            s.detach(true);
            let changes = s.take_changes();
            st.record(s.client_id().as_str(), changes);
            st.flush();
            *store = None;
            let (reopened, recovered) = open(dir, now);
            if s.is_persistent() {
                let mut back = restored(&reopened, recovered, now);
                let mut expected = s.clone();
                fill_all(&reopened, &mut expected, now);
                assert_eq!(back.observe(), expected.observe());
                if attached {
                    attach(&mut back, now);
                    let changes = back.take_changes();
                    reopened.record(back.client_id().as_str(), changes);
                    fill_all(&reopened, &mut back, now);
                }
                *s = back;
            } else {
                assert!(recovered.sessions.is_empty(), "{:?}", recovered.sessions);
            }
            *store = Some(reopened);
        }
        _ => {}
    }
}

fn new_session(now: Instant) -> Session {
    let mut s = Session::new(MqttString::try_from("c1").unwrap(), true, limits());
    attach(&mut s, now);
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever a journaling session does, a store reopened at any point gives back the same
    /// session: subscriptions, messages in flight (with their packet identifiers and QoS 2
    /// state), queued messages in order, QoS 2 identifiers awaiting PUBREL, expiry.
    #[test]
    fn a_reopened_store_rebuilds_the_session(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let now = Instant::now();
        let messages = messages();
        let (store, recovered) = open(dir.path(), now);
        prop_assert!(recovered.sessions.is_empty());
        let mut store = Some(store);
        let mut s = new_session(now);
        for op in ops.iter().chain([&Op::Restart]) {
            apply(op, &mut s, &mut store, dir.path(), &messages, now);
        }
        if let Some(store) = &store {
            prop_assert_eq!(store.inconsistencies(), 0);
        }
    }
}

/// A log's records, one state after each, read by the store's own reader.
fn states_by_record(path: &Path) -> Vec<(u64, String)> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut state = State::default();
    let mut offset = HEADER_LEN as usize;
    out.push((offset as u64, view(&state)));
    while offset + 8 <= bytes.len() {
        let head: [u8; 8] = bytes[offset..offset + 8].try_into().unwrap();
        let (len, _) = super::record::frame_header(&head);
        let end = offset + 8 + len as usize;
        let body = Bytes::copy_from_slice(&bytes[offset + 8..end]);
        let loc = super::state::Location {
            file: FileId {
                number: 1,
                kind: FileKind::Log,
            },
            offset: offset as u64,
            len: (end - offset) as u32,
        };
        state.apply(super::record::Record::decode(body).unwrap(), loc);
        offset = end;
        let mut referenced = state.clone();
        referenced.drop_unreferenced();
        out.push((offset as u64, view(&referenced)));
    }
    out
}

/// A comparable view of the store's state (without the in-memory copies).
fn view(state: &State) -> String {
    let mut sessions: Vec<_> = state.sessions.values().map(|s| format!("{s:?}")).collect();
    sessions.sort();
    let mut messages: Vec<_> = state
        .messages
        .iter()
        .map(|(mid, m)| (*mid, m.refs, m.size))
        .collect();
    messages.sort_unstable();
    let mut retained: Vec<_> = state
        .retained
        .iter()
        .map(|(t, r)| format!("{}={:?}", t.as_str(), r.publish.payload))
        .collect();
    retained.sort();
    format!("{sessions:?} {messages:?} {retained:?}")
}

/// Writes a history of a few sessions to a fresh store; returns the path of its log.
fn write_history(dir: &Path, ops: &[Op]) -> std::path::PathBuf {
    let now = Instant::now();
    let messages = messages();
    let (store, _) = open(dir, now);
    let mut store = Some(store);
    let mut s = new_session(now);
    for op in ops {
        if matches!(op, Op::Restart | Op::Compact) {
            continue;
        }
        apply(op, &mut s, &mut store, dir, &messages, now);
    }
    if let Some(store) = &store {
        store.retain(
            &TopicName::from_static("r/1").unwrap(),
            Some(&StoredRetained {
                publish: Arc::clone(&messages[1]),
                qos: QoS::AtLeastOnce,
                expires_at: None,
            }),
        );
        store.flush();
    }
    drop(store);
    dir.join(format!("log-{:020}", 1))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A log cut anywhere, or with a byte changed anywhere, loads as the longest valid prefix
    /// of its records, and the store starts (and then holds no damage).
    #[test]
    fn a_damaged_log_loads_its_valid_prefix(
        ops in prop::collection::vec(op(), 1..40),
        at in any::<prop::sample::Index>(),
        flip in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = write_history(dir.path(), &ops);
        let prefixes = states_by_record(&log);
        let len = std::fs::metadata(&log).unwrap().len();
        let x = at.index(len as usize) as u64;
        let file = OpenOptions::new().read(true).write(true).open(&log).unwrap();
        if flip {
            use std::os::unix::fs::FileExt;
            let mut b = [0u8];
            file.read_exact_at(&mut b, x).unwrap();
            file.write_all_at(&[b[0] ^ 0x5A], x).unwrap();
        } else {
            file.set_len(x).unwrap();
        }
        drop(file);
        // The longest prefix of whole records that ends at or before the damage.
        let expected = prefixes
            .iter()
            .rev()
            .find(|(end, _)| *end <= x)
            .map_or_else(|| view(&State::default()), |(_, v)| v.clone());
        let (store, recovered) = open(dir.path(), Instant::now());
        let at_boundary = prefixes.iter().any(|(end, _)| *end == x);
        prop_assert_eq!(recovered.report.damaged.is_empty(), !flip && at_boundary);
        let state = store.state();
        prop_assert_eq!(view(&state), expected);
        drop(store);
        // The damage is gone for good: the next start finds none.
        let (_, again) = open(dir.path(), Instant::now());
        prop_assert_eq!(again.report.damaged, Vec::<String>::new());
    }
}

#[test]
fn a_second_store_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, _) = open(dir.path(), Instant::now());
    let err =
        DurableStore::open(dir.path(), options(), Instant::now(), SystemTime::now()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
}

#[test]
fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let (store, _) = open(&data, Instant::now());
        let mut s = new_session(Instant::now());
        s.add_subscription(
            &TopicFilter::from_static("a").unwrap(),
            SubscriptionData::new(QoS::AtLeastOnce),
        );
        store.record("c1", s.take_changes());
        store.compact_now();
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}

#[test]
fn retained_messages_and_compaction_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let topic = |i: usize| TopicName::try_from(format!("r/{i}")).unwrap();
    {
        let (store, _) = open(dir.path(), now);
        for i in 0..100 {
            let publish = Arc::new(Publish::new(topic(i), Bytes::from(vec![i as u8; 10])));
            store.retain(
                &topic(i),
                Some(&StoredRetained {
                    publish,
                    qos: QoS::AtMostOnce,
                    expires_at: (i % 2 == 0).then(|| now + Duration::from_secs(60)),
                }),
            );
        }
        store.compact_now();
        for i in 0..50 {
            store.retain(&topic(i), None);
        }
    }
    let (store, recovered) = open(dir.path(), now);
    assert_eq!(recovered.retained.len(), 50);
    let mut topics: Vec<_> = recovered
        .retained
        .iter()
        .map(|r| r.publish.topic.as_str().to_owned())
        .collect();
    topics.sort();
    assert_eq!(topics.first().map(String::as_str), Some("r/50"));
    let r = recovered
        .retained
        .iter()
        .find(|r| r.publish.topic.as_str() == "r/60")
        .unwrap();
    let left = r.expires_at.unwrap().saturating_duration_since(now);
    assert!(
        left > Duration::from_secs(58) && left <= Duration::from_secs(60),
        "{left:?}"
    );
    store.compact_now();
    drop(store);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // One snapshot, its log and the lock: the older files are gone.
    assert_eq!(
        files.iter().filter(|f| f.starts_with("snapshot-")).count(),
        1,
        "{files:?}"
    );
    let (_, recovered) = open(dir.path(), now);
    assert_eq!(recovered.retained.len(), 50);
}

/// A session with a subscription, detached, recording to `store`.
fn offline_subscriber(store: &DurableStore, now: Instant) -> Session {
    let mut s = new_session(now);
    s.add_subscription(
        &TopicFilter::from_static("a/#").unwrap(),
        SubscriptionData::new(QoS::ExactlyOnce),
    );
    s.detach(true);
    store.record("c1", s.take_changes());
    s
}

/// The queue length of the one session a store gives back.
fn queued_after_reopen(dir: &Path, now: Instant) -> (usize, u64) {
    let (store, mut recovered) = open(dir, now);
    let uncommitted = recovered.report.uncommitted;
    recovered.sessions.retain(|s| s.client_id.as_str() == "c1");
    let s = restored(&store, recovered, now);
    (s.queued(), uncommitted)
}

/// The copies of a client's QoS 2 message count only with the record of its packet
/// identifier, which commits them: cut off before it, they are dropped at load (the client
/// sends the message again); after it, they are kept (the repeat is not routed).
#[test]
fn copies_of_a_routing_count_only_once_committed() {
    let now = Instant::now();
    let messages = messages();
    for (commit, compact_between) in [(false, false), (true, false), (false, true), (true, true)] {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, _) = open(dir.path(), now);
            let mut publisher = Session::new(MqttString::try_from("p").unwrap(), true, limits());
            store.record("p", publisher.take_changes());
            let mut s = offline_subscriber(&store, now);
            let group = store.begin_group();
            s.deliver(
                Delivery::new(Arc::clone(&messages[2]), QoS::ExactlyOnce, false),
                now,
            );
            store.record("c1", s.take_changes());
            if compact_between {
                // A snapshot taken mid-routing keeps the copy's group.
                store.compact_now();
            }
            if commit {
                store.commit_group(group, Some(("p", PacketId::new(9).unwrap())));
            }
            store.flush();
            drop(publisher);
        }
        let (queued, uncommitted) = queued_after_reopen(dir.path(), now);
        assert_eq!(
            (queued, uncommitted),
            if commit { (1, 0) } else { (0, 1) },
            "commit {commit}, snapshot in between {compact_between}"
        );
    }
}

/// A queued message whose body nobody holds any more, and whose record is not written yet,
/// still loads: the store keeps it until then.
#[test]
fn an_unwritten_message_loads_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    // A long batch: nothing is written during the test's first part.
    let (store, _) = DurableStore::open(
        dir.path(),
        StoreOptions {
            sync: SyncPolicy::Batch,
            batch_interval: Duration::from_millis(1000),
            ..StoreOptions::default()
        },
        now,
        SystemTime::now(),
    )
    .unwrap();
    let mut s = offline_subscriber(&store, now);
    let body = Arc::new(Publish::new(
        TopicName::from_static("a/x").unwrap(),
        "fresh",
    ));
    s.deliver(Delivery::new(body, QoS::AtLeastOnce, false), now);
    store.record("c1", s.take_changes());
    // The session spilled it, and the test's copy is gone: only the store has it.
    let entries = s.spilled_entries(false);
    assert_eq!(entries.len(), 1);
    let loaded = store.load_queued("c1", &entries);
    assert!(
        matches!(&loaded[..], [(_, Some(d))] if d.publish.payload == "fresh"),
        "{loaded:?}"
    );
    // Written and dropped from memory, it loads from the file, also after a compaction.
    drop(loaded);
    store.flush();
    store.compact_now();
    let loaded = store.load_queued("c1", &entries);
    assert!(
        matches!(&loaded[..], [(_, Some(d))] if d.publish.payload == "fresh"),
        "{loaded:?}"
    );
}

/// A routing of `m` to `s` on another thread, cut before its commit.
fn cut_routing(store: &DurableStore, s: &mut Session, m: Arc<Publish>, now: Instant) {
    std::thread::scope(|t| {
        t.spawn(|| {
            store.begin_group();
            s.deliver(Delivery::new(m, QoS::ExactlyOnce, false), now);
            store.record("c1", s.take_changes());
        });
    });
}

/// The session of c1 among what a store gave back.
fn c1(recovered: Recovered) -> crate::StoredSession {
    recovered
        .sessions
        .into_iter()
        .find(|s| s.client_id.as_str() == "c1")
        .unwrap()
}

fn qos1_message(payload: &str) -> Arc<Publish> {
    let mut p = Publish::new(
        TopicName::from_static("a/x").unwrap(),
        Bytes::from(payload.to_owned()),
    );
    p.qos = QosPid::AtLeastOnce(PacketId::new(1).unwrap());
    Arc::new(p)
}

/// The payloads c1 is sent once restored from a reopened store, and the copies the load
/// dropped.
fn c1_payloads(dir: &Path, now: Instant) -> (Vec<String>, u64) {
    let (store, recovered) = open(dir, now);
    let uncommitted = recovered.report.uncommitted;
    let stored = c1(recovered);
    let mut s = Session::from_stored(
        stored,
        Limits {
            max_inflight: 20,
            ..limits()
        },
    );
    fill_all(&store, &mut s, now);
    attach(&mut s, now);
    let payloads = s
        .take_outbox()
        .into_iter()
        .filter_map(|o| match o {
            crate::Outgoing::Publish { publish, .. } => {
                Some(String::from_utf8_lossy(&publish.payload).into_owned())
            }
            crate::Outgoing::Packet(_) => None,
        })
        .collect();
    (payloads, uncommitted)
}

/// The copies of a routing that never committed are dropped for good at the load that finds
/// them, not only in memory: a later message that reuses their entry numbers, acknowledged
/// in the next run, is still there in the run after (found in review).
#[test]
fn dropped_copies_stay_dropped_across_later_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    {
        let (store, _) = open(dir.path(), now);
        let mut publisher = Session::new(MqttString::try_from("p").unwrap(), true, limits());
        store.record("p", publisher.take_changes());
        let mut s = offline_subscriber(&store, now);
        let mut m = Publish::new(TopicName::from_static("a/x").unwrap(), "cut");
        m.qos = QosPid::ExactlyOnce(PacketId::new(1).unwrap());
        cut_routing(&store, &mut s, Arc::new(m), now);
        store.flush();
    }
    {
        let (store, recovered) = open(dir.path(), now);
        assert_eq!(recovered.report.uncommitted, 1);
        let stored = c1(recovered);
        assert!(stored.queue.is_empty());
        let mut s = Session::from_stored(stored, limits());
        s.deliver(
            Delivery::new(qos1_message("acknowledged"), QoS::AtLeastOnce, false),
            now,
        );
        store.record("c1", s.take_changes());
        store.flush();
    }
    assert_eq!(
        c1_payloads(dir.path(), now),
        (vec!["acknowledged".to_owned()], 0)
    );
}

/// Routing groups are never numbered again after a restart: a new routing's commit cannot
/// commit an old copy that the previous load dropped (found in review).
#[test]
fn a_new_routing_cannot_commit_an_old_copy() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut m = Publish::new(TopicName::from_static("a/x").unwrap(), "qos2");
    m.qos = QosPid::ExactlyOnce(PacketId::new(1).unwrap());
    let m = Arc::new(m);
    {
        let (store, _) = open(dir.path(), now);
        let mut publisher = Session::new(MqttString::try_from("p").unwrap(), true, limits());
        store.record("p", publisher.take_changes());
        let mut s = offline_subscriber(&store, now);
        s.deliver(
            Delivery::new(qos1_message("M0"), QoS::AtLeastOnce, false),
            now,
        );
        store.record("c1", s.take_changes());
        cut_routing(&store, &mut s, Arc::clone(&m), now);
        s.deliver(
            Delivery::new(qos1_message("M3"), QoS::AtLeastOnce, false),
            now,
        );
        store.record("c1", s.take_changes());
        store.flush();
    }
    {
        let (store, recovered) = open(dir.path(), now);
        assert_eq!(recovered.report.uncommitted, 1);
        let stored = c1(recovered);
        let mut s = Session::from_stored(stored, limits());
        // The publisher sends the message again: routed and committed this time.
        let group = store.begin_group();
        s.deliver(Delivery::new(Arc::clone(&m), QoS::ExactlyOnce, false), now);
        store.record("c1", s.take_changes());
        store.commit_group(group, Some(("p", PacketId::new(1).unwrap())));
        store.flush();
    }
    let (payloads, _) = c1_payloads(dir.path(), now);
    assert_eq!(payloads, ["M0", "M3", "qos2"], "the message once");
}

/// A retained message stored by a routing group counts only once the group commits.
#[test]
fn a_retained_message_of_a_cut_routing_is_dropped() {
    let now = Instant::now();
    for commit in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, _) = open(dir.path(), now);
            let topic = TopicName::from_static("r/x").unwrap();
            let group = store.begin_group();
            store.retain(
                &topic,
                Some(&StoredRetained {
                    publish: Arc::new(Publish::new(topic.clone(), "v")),
                    qos: QoS::ExactlyOnce,
                    expires_at: None,
                }),
            );
            if commit {
                store.commit_group(group, None);
            }
            store.flush();
        }
        let (_, recovered) = open(dir.path(), now);
        assert_eq!(
            recovered.retained.len(),
            usize::from(commit),
            "commit {commit}"
        );
    }
}

/// A record whose checksum matches but whose message does not decode is damage too: the valid
/// prefix ends before it, so nothing loaded names a message that cannot be read back (found
/// by the `store_recovery` fuzz target).
#[test]
fn a_message_that_does_not_decode_ends_the_valid_prefix() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let log = write_history(dir.path(), &[]);
    let mut buf = bytes::BytesMut::new();
    super::record::frame(&mut buf, |b| {
        super::record::Record::Message {
            mid: 99,
            size: 3,
            packet: Bytes::from_static(b"not a PUBLISH"),
        }
        .put(b);
    });
    OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(&buf)
        .unwrap();
    let (store, recovered) = open(dir.path(), Instant::now());
    assert_eq!(recovered.report.damaged.len(), 1, "{:?}", recovered.report);
    assert!(!store.state().messages.contains_key(&99));
    drop(store);
    // Cut where the bad record began: the next start finds no damage.
    let (_, again) = open(dir.path(), Instant::now());
    assert!(again.report.damaged.is_empty());
}
