//! The durable store's own costs, without sockets: what a persistent session's QoS 1 message
//! costs to journal (queued, sent, acknowledged: three records, the body written once), and how
//! long loading a store takes per retained message and per session.
//!
//! The sync policy is `never` for the journaling figure: it measures the CPU work of recording
//! (encoding, the store's lock, the in-memory state), not the disk, which the end-to-end
//! `cargo xtask bench-persistence` measures.
//!
//! Run: `cargo bench -p mqtt-session --bench store`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mqtt_codec::{
    Packet, PacketId, ProtocolVersion, PubAck, Publish, QoS, QosPid, TopicFilter, TopicName,
};
use mqtt_session::store::{DurableStore, SessionStore, StoreOptions, StoredRetained, SyncPolicy};
use mqtt_session::{Attach, Change, Delivery, Limits, Session};
use mqtt_topic::{MqttString, SubscriptionData};

/// A store with `sync = never` in a new directory.
fn open_store(dir: &std::path::Path) -> DurableStore {
    let options = StoreOptions {
        sync: SyncPolicy::Never,
        ..StoreOptions::default()
    };
    DurableStore::open(dir, options, Instant::now(), SystemTime::now())
        .unwrap()
        .0
}

fn journal(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let store = open_store(dir.path());
    let limits = Limits {
        journal: true,
        max_inflight: 100,
        ..Limits::default()
    };
    let mut s = Session::new(MqttString::try_from("bench").unwrap(), true, limits);
    s.attach(Attach::new(ProtocolVersion::V5, 0, None), now);
    s.add_subscription(
        &TopicFilter::try_from("bench/#").unwrap(),
        SubscriptionData::new(QoS::AtLeastOnce),
    );
    store.record("bench", s.take_changes());
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    group.bench_function("journal_qos1_message", |b| {
        b.iter(|| {
            let mut p = Publish::new(
                TopicName::from_static("bench/sensors/building-7/floor-3").unwrap(),
                Bytes::from_static(&[0xA5; 64]),
            );
            p.qos = QosPid::AtLeastOnce(PacketId::new(1).unwrap());
            s.deliver(Delivery::new(Arc::new(p), QoS::AtLeastOnce, false), now);
            let id = match s.take_outbox().pop() {
                Some(mqtt_session::Outgoing::Publish { envelope, .. }) => {
                    envelope.qos.packet_id().unwrap()
                }
                _ => unreachable!(),
            };
            store.record("bench", s.take_changes());
            let _ = s.handle_packet(Packet::PubAck(PubAck::new(id)), now);
            store.record("bench", s.take_changes());
        });
    });
    group.finish();
}

/// A store of `sessions` persistent sessions (one subscription, one queued message each) and
/// `retained` retained messages.
fn filled(sessions: u64, retained: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let store = open_store(dir.path());
    let limits = Limits {
        journal: true,
        ..Limits::default()
    };
    let body = Arc::new(Publish::new(
        TopicName::from_static("sensors/x").unwrap(),
        Bytes::from_static(&[0x5A; 64]),
    ));
    for i in 0..sessions {
        let id = format!("client-{i}");
        let mut s = Session::new(MqttString::try_from(id.as_str()).unwrap(), true, limits);
        s.add_subscription(
            &TopicFilter::try_from(format!("sensors/{i}/#")).unwrap(),
            SubscriptionData::new(QoS::AtLeastOnce),
        );
        s.record(Change::Detached { at: now });
        s.deliver(
            Delivery::new(Arc::clone(&body), QoS::AtLeastOnce, false),
            now,
        );
        store.record(&id, s.take_changes());
    }
    for i in 0..retained {
        let topic = TopicName::try_from(format!("bench/retained/{i}")).unwrap();
        let publish = Arc::new(Publish::new(topic.clone(), Bytes::from_static(&[0x5A; 64])));
        store.retain(
            &topic,
            Some(&StoredRetained {
                publish,
                qos: QoS::AtMostOnce,
                expires_at: None,
            }),
        );
    }
    store.flush();
    dir
}

fn load(c: &mut Criterion) {
    let sessions = 10_000;
    let retained = 100_000;
    let dir = filled(sessions, retained);
    let mut group = c.benchmark_group("store");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(sessions + retained));
    group.bench_function("open_10k_sessions_100k_retained", |b| {
        b.iter(|| {
            let (store, recovered) = DurableStore::open(
                dir.path(),
                StoreOptions {
                    sync: SyncPolicy::Never,
                    ..StoreOptions::default()
                },
                Instant::now(),
                SystemTime::now(),
            )
            .unwrap();
            assert_eq!(recovered.retained.len() as u64, retained);
            assert_eq!(recovered.sessions.len() as u64, sessions);
            drop(store);
        });
    });
    group.finish();
}

criterion_group!(benches, journal, load);
criterion_main!(benches);
