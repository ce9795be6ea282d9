//! Writes the seed corpus of the `store_recovery` fuzz target: real store files, made by the
//! durable store from a few journaling sessions (subscriptions, messages queued, in flight and
//! acknowledged, QoS 2 in both directions, a delayed will, retained messages), as a snapshot
//! and the log after it, and as one log with no snapshot.
//!
//! Run: `cargo run -p mqtt-session --example store_seeds -- fuzz/corpus/store_recovery`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use mqtt_codec::{
    Packet, PacketId, ProtocolVersion, PubAck, PubRec, Publish, QoS, QosPid, TopicFilter,
    TopicName, Will,
};
use mqtt_session::store::{DurableStore, SessionStore, StoreOptions, StoredRetained, SyncPolicy};
use mqtt_session::{Attach, Change, Delivery, DeliveryExtras, Limits, Session};
use mqtt_topic::{MqttString, SubscriptionData};

fn message(topic: &str, payload: &str, qos: QoS) -> Arc<Publish> {
    let mut p = Publish::new(
        TopicName::try_from(topic).unwrap(),
        Bytes::from(payload.to_owned()),
    );
    p.qos = QosPid::new(qos, PacketId::new(1)).unwrap();
    Arc::new(p)
}

/// A short history of two sessions and some retained messages.
fn history(store: &DurableStore, now: Instant) {
    let limits = Limits {
        journal: true,
        max_inflight: 2,
        ..Limits::default()
    };
    for (n, id) in ["sensor-1", "sensor-2"].into_iter().enumerate() {
        let mut s = Session::new(MqttString::try_from(id).unwrap(), true, limits);
        s.set_expiry_interval(3600);
        s.attach(Attach::new(ProtocolVersion::V5, 30, None), now);
        let filter = TopicFilter::try_from(format!("site/{n}/#")).unwrap();
        s.add_subscription(&filter, SubscriptionData::new(QoS::ExactlyOnce));
        for i in 0..4 {
            let qos = if i % 2 == 0 {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            let d = Delivery::new(
                message(&format!("site/{n}/t"), &format!("v{i}"), qos),
                qos,
                false,
            )
            .with_extras(DeliveryExtras {
                expires_at: (i == 3).then(|| now + Duration::from_secs(600)),
                ..DeliveryExtras::default()
            });
            s.deliver(d, now);
        }
        let _ = s.handle_packet(Packet::PubAck(PubAck::new(PacketId::new(1).unwrap())), now);
        let _ = s.handle_packet(Packet::PubRec(PubRec::new(PacketId::new(2).unwrap())), now);
        let mut incoming = Publish::new(TopicName::from_static("in").unwrap(), "x");
        incoming.qos = QosPid::ExactlyOnce(PacketId::new(9).unwrap());
        let _ = s.handle_packet(Packet::Publish(incoming), now);
        s.detach(true);
        s.record(Change::Detached { at: now });
        let mut will = Will {
            topic: TopicName::try_from(format!("status/{id}")).unwrap(),
            payload: Bytes::from_static(b"offline"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: Default::default(),
        };
        will.properties.will_delay_interval = Some(30);
        s.record(Change::DelayedWill {
            at: now + Duration::from_secs(30),
            will,
        });
        store.record(id, s.take_changes());
    }
    for i in 0..3 {
        let topic = TopicName::try_from(format!("site/retained/{i}")).unwrap();
        store.retain(
            &topic,
            Some(&StoredRetained {
                publish: message(topic.as_str(), "kept", QoS::AtMostOnce),
                qos: QoS::AtLeastOnce,
                expires_at: None,
            }),
        );
    }
    store.flush();
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    found.sort();
    found
}

/// The target's input: mode, snapshot length, snapshot, log.
fn input(mode: u8, snapshot: &[u8], log: &[u8]) -> Vec<u8> {
    let mut out = vec![mode];
    out.extend_from_slice(&(snapshot.len() as u32).to_le_bytes());
    out.extend_from_slice(snapshot);
    out.extend_from_slice(log);
    out
}

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus/store_recovery".into()),
    );
    std::fs::create_dir_all(&out).unwrap();
    let work = std::env::temp_dir().join(format!("mqtt-store-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let options = StoreOptions {
        sync: SyncPolicy::Never,
        ..StoreOptions::default()
    };
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);

    // One log, no snapshot.
    let plain = work.join("plain");
    {
        let (store, _) = DurableStore::open(&plain, options, now, wall).unwrap();
        history(&store, now);
    }
    let log = std::fs::read(&files(&plain, "log-")[0]).unwrap();
    std::fs::write(out.join("seed-log"), input(2, &[], &log)).unwrap();

    // A snapshot, then a log after it.
    let compacted = work.join("compacted");
    {
        let (store, _) = DurableStore::open(&compacted, options, now, wall).unwrap();
        history(&store, now);
        store.compact_now();
        store.retain(&TopicName::from_static("site/retained/0").unwrap(), None);
        store.record("sensor-1", vec![Change::Ended]);
        store.flush();
    }
    let snapshot = std::fs::read(&files(&compacted, "snapshot-")[0]).unwrap();
    let log = std::fs::read(files(&compacted, "log-").last().unwrap()).unwrap();
    std::fs::write(out.join("seed-snapshot"), input(1, &snapshot, &[])).unwrap();
    std::fs::write(out.join("seed-snapshot-and-log"), input(3, &snapshot, &log)).unwrap();
    let _ = std::fs::remove_dir_all(&work);
    println!("wrote 3 seeds to {}", out.display());
}
