//! Entry points for the cargo-fuzz targets in `fuzz/` (compiled only under `cfg(fuzzing)`):
//! arbitrary packet streams through the server and client session machines.
//!
//! Input layout (shared with the codec's targets, so the same seed corpus applies): one byte
//! choosing the version (`% 4`: 1 is 3.1, 3 is 5.0, else 3.1.1), one byte of knobs, then the
//! bytes the peer sends.

// A failed assertion is how a fuzz target reports a finding.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    Decoder, PROTOCOL_MAX_PACKET_SIZE, Packet, ProtocolVersion, Publish, QoS, ReasonCode, SubAck,
    SubscribeProperties, Subscription, SubscriptionOptions, TopicFilter, TopicName,
    UnsubscribeProperties,
};
use mqtt_topic::{MqttString, SubscriptionData};

use crate::client::{ClientEvent, ClientLimits, ClientSession};
use crate::{Action, Attach, Delivery, DeliveryExtras, Limits, Outgoing, Session};

fn split(data: &[u8]) -> (ProtocolVersion, u8, &[u8]) {
    let (mode, knobs, rest) = match data {
        [mode, knobs, rest @ ..] => (*mode, *knobs, rest),
        _ => (0, 0, &[][..]),
    };
    let version = match mode % 4 {
        1 => ProtocolVersion::V3_1,
        3 => ProtocolVersion::V5,
        _ => ProtocolVersion::V3_1_1,
    };
    (version, knobs, rest)
}

/// Every packet a machine asks to send must encode.
fn encodes(packet: &Packet, version: ProtocolVersion) {
    let mut buf = BytesMut::new();
    if let Err(e) = packet.encode(version, PROTOCOL_MAX_PACKET_SIZE, &mut buf) {
        panic!("the machine produced a packet that does not encode: {packet:?}: {e}");
    }
}

/// The server session machine fed whatever a client sends (after its CONNECT): it must never
/// panic, must stay within its limits, must only produce packets that encode, and every
/// message it routes is delivered back to it, so both directions of the QoS flows run.
pub fn server_session(data: &[u8]) {
    let (version, knobs, stream) = split(data);
    let limits = Limits {
        max_inflight: u16::from(knobs % 4) + 1,
        max_queued_messages: 8,
        max_queued_bytes: 4096,
        queue_qos0_offline: knobs & 0x10 != 0,
        max_incoming_qos2: 8,
        max_topic_alias: 4,
        validate_utf8_payload: knobs & 0x20 != 0,
        max_session_expiry: 60,
        journal: knobs & 0x08 != 0,
    };
    let mut session = Session::new(MqttString::from_static("fuzz").unwrap(), true, limits);
    let mut attach = Attach::new(version, 10, None);
    // Some runs with the client's 5.0 limits: a small window, small packets, topic aliases.
    if knobs & 0x40 != 0 {
        attach.receive_maximum = 2;
        attach.max_packet_size = 64;
        attach.topic_alias_maximum = 2;
    }
    let mut now = Instant::now();
    session.attach(attach.clone(), now);
    let mut decoder = Decoder::new(version);
    let mut buf = BytesMut::from(stream);
    loop {
        let packet = match decoder.decode(&mut buf) {
            Ok(Some(packet)) => packet,
            Ok(None) | Err(_) => break,
        };
        now += Duration::from_millis(100);
        match session.handle_packet(packet, now) {
            Ok(Some(Action::Route(publish))) => {
                let qos = publish.qos.qos();
                let retain = publish.retain;
                let delivery = Delivery::new(publish, qos, retain).with_extras(DeliveryExtras {
                    expires_at: (knobs & 0x80 != 0).then(|| now + Duration::from_secs(1)),
                    ..DeliveryExtras::default()
                });
                session.deliver(delivery, now);
            }
            Ok(Some(Action::Subscribe(subscribe))) => {
                let mut codes = Vec::new();
                for s in &subscribe.subscriptions {
                    session.add_subscription(&s.filter, SubscriptionData::new(s.options.qos));
                    codes.push(ReasonCode::Success);
                }
                session.send(Packet::SubAck(SubAck::new(subscribe.packet_id, codes)));
            }
            Ok(Some(Action::Unsubscribe(unsubscribe))) => {
                for f in &unsubscribe.filters {
                    session.remove_subscription(f);
                }
            }
            Ok(Some(Action::Disconnect { .. })) | Err(_) => {
                // The connection ends; the client comes back.
                let _ = session.detach(true);
                session.attach(attach.clone(), now);
            }
            // AUTH is the driver's business (the broker's authentication methods).
            Ok(Some(Action::Auth(_)) | None) => {}
        }
        if session.handle_timeout(now).is_err() {
            let _ = session.detach(false);
            session.attach(attach.clone(), now);
        }
        for outgoing in session.take_outbox() {
            match outgoing {
                Outgoing::Packet(packet) => encodes(&packet, version),
                Outgoing::Publish {
                    publish,
                    envelope,
                    properties,
                } => {
                    let mut out = BytesMut::new();
                    publish
                        .encode_delivery(
                            envelope,
                            &properties,
                            version,
                            attach.max_packet_size,
                            &mut out,
                        )
                        .unwrap_or_else(|e| panic!("a delivery does not encode: {e}"));
                }
            }
        }
        assert!(session.inflight() <= usize::from(limits.max_inflight.min(attach.receive_maximum)));
        assert!(session.queued() <= limits.max_queued_messages);
        // With a journal, the changes are taken as the broker takes them.
        drop(session.take_changes());
    }
}

/// The durable store's loader fed arbitrary files: a snapshot and a log, in a fresh data
/// directory. Opening must never panic and must leave a store that opens again without damage
/// and with the same contents; every restored session must rebuild, and its queued messages
/// load.
///
/// Input: one mode byte (bit 0: a snapshot file, bit 1: a log file, bit 2: give each file a
/// valid header before its bytes), a little-endian `u32` length of the snapshot's bytes, the
/// snapshot's bytes, then the log's.
pub fn store_recovery(data: &[u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::SystemTime;

    use crate::store::{DurableStore, SessionStore, StoreOptions, SyncPolicy};

    let (mode, rest) = match data {
        [mode, rest @ ..] => (*mode, rest),
        [] => return,
    };
    let (len, rest) = match rest {
        [a, b, c, d, rest @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]) as usize, rest),
        _ => (0, rest),
    };
    let (snapshot, log) = rest.split_at(len.min(rest.len()));
    static RUN: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mqtt-fuzz-store-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, kind: crate::store::FuzzFile, bytes: &[u8]| {
        let mut file = if mode & 4 != 0 {
            kind.header()
        } else {
            Vec::new()
        };
        file.extend_from_slice(bytes);
        std::fs::write(dir.join(name), file).unwrap();
    };
    if mode & 1 != 0 {
        write(
            "snapshot-00000000000000000001",
            crate::store::FuzzFile::Snapshot,
            snapshot,
        );
    }
    if mode & 2 != 0 {
        write("log-00000000000000000001", crate::store::FuzzFile::Log, log);
    }
    let options = StoreOptions {
        sync: SyncPolicy::Never,
        ..StoreOptions::default()
    };
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let (sessions, retained) = {
        let (store, recovered) = DurableStore::open(&dir, options, now, wall).unwrap();
        let sessions = recovered.sessions.len();
        for stored in recovered.sessions {
            let mut session = Session::from_stored(
                stored,
                Limits {
                    journal: true,
                    ..Limits::default()
                },
            );
            let entries = session.spilled_entries(false);
            let loaded = store.load_queued(session.client_id().as_str(), &entries);
            assert!(
                loaded.iter().all(|(_, d)| d.is_some()),
                "a restored queue entry cannot be read back"
            );
            session.fill(loaded, now);
            session.attach(Attach::new(ProtocolVersion::V5, 0, None), now);
            drop(session.take_outbox());
            let changes = session.take_changes();
            store.record(session.client_id().as_str(), changes);
        }
        (sessions, recovered.retained.len())
    };
    let (store, again) = DurableStore::open(&dir, options, now, wall).unwrap();
    assert!(
        again.report.damaged.is_empty(),
        "{:?}",
        again.report.damaged
    );
    assert_eq!(again.sessions.len(), sessions);
    assert_eq!(again.retained.len(), retained);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The client session machine fed whatever a server sends, with requests made in between:
/// it must never panic, must keep its in-flight window, must only produce packets that
/// encode, and must answer every request exactly once (completed, or handed back when the
/// session is abandoned).
pub fn client_session(data: &[u8]) {
    let (version, knobs, stream) = split(data);
    let max_inflight = u16::from(knobs % 4) + 1;
    let mut session: ClientSession<u32> = ClientSession::new(
        version,
        Some(Duration::from_secs(5)),
        ClientLimits {
            max_inflight,
            max_incoming_qos2: 8,
            resubscribe_batch: 2,
            topic_alias_maximum: u16::from(knobs & 0x03),
        },
    );
    let mut now = Instant::now();
    session.connected(knobs & 0x10 != 0, now);
    let mut decoder = Decoder::new(version);
    let mut buf = BytesMut::from(stream);
    let mut issued = 0u32;
    let mut answered: HashSet<u32> = HashSet::new();
    let topic = TopicName::from_static("fuzz/t").unwrap();
    let filter = TopicFilter::from_static("fuzz/+").unwrap();
    let mut step = 0u32;
    loop {
        match step % 5 {
            0 | 1 | 2 => {
                let qos =
                    [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][(step % 3) as usize];
                session.publish(
                    Publish::new(topic.clone(), Bytes::from_static(b"x")),
                    qos,
                    issued,
                );
                issued += 1;
            }
            3 => {
                let subscription = Subscription {
                    filter: filter.clone(),
                    options: SubscriptionOptions::new(QoS::ExactlyOnce),
                };
                session.subscribe(vec![subscription], SubscribeProperties::default(), issued);
                issued += 1;
            }
            _ => {
                session.unsubscribe(
                    vec![filter.clone()],
                    UnsubscribeProperties::default(),
                    issued,
                );
                issued += 1;
            }
        }
        step += 1;
        let packet = match decoder.decode(&mut buf) {
            Ok(Some(packet)) => packet,
            Ok(None) | Err(_) => break,
        };
        now += Duration::from_secs(1);
        let closed =
            session.handle_packet(packet, now).is_err() || session.handle_timeout(now).is_err();
        while let Some(packet) = session.poll_transmit() {
            encodes(&packet, version);
        }
        session.sent(now);
        if closed {
            session.disconnected();
            session.connected(step % 2 == 0, now);
        }
        while let Some(event) = session.poll_event() {
            match event {
                ClientEvent::Published { token, .. }
                | ClientEvent::Subscribed { token, .. }
                | ClientEvent::Unsubscribed { token, .. } => {
                    assert!(answered.insert(token), "request {token} answered twice");
                }
                ClientEvent::Message(_)
                | ClientEvent::Auth(_)
                | ClientEvent::ResubscribeFailed { .. } => {}
            }
        }
        assert!(session.inflight() <= usize::from(max_inflight));
    }
    for token in session.abandon() {
        assert!(
            answered.insert(token),
            "request {token} answered and abandoned"
        );
    }
    assert_eq!(
        answered.len() as u32,
        issued,
        "a request was never answered"
    );
}
