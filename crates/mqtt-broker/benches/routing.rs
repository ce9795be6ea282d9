//! The routing path without sockets: one PUBLISH routed to 1, 100 and 10,000 subscribers
//! through the broker core (index match, per-session delivery into the outbox, wake-up), QoS 0
//! and QoS 1. Encoding and writing are not included; draining the outboxes is done between
//! timed batches.
//!
//! Run: `cargo bench -p mqtt-broker --bench routing`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mqtt_broker::config::Config;
use mqtt_broker::core::{Broker, SessionHandle};
use mqtt_codec::{Connect, PacketId, ProtocolVersion, Publish, QoS, QosPid, Subscribe};
use mqtt_topic::{MqttString, TopicFilter, TopicName};

fn setup(subscribers: usize, qos: QoS) -> (Broker, Vec<Arc<SessionHandle>>, Arc<SessionHandle>) {
    let broker = Broker::new(
        Config {
            max_inflight: u16::MAX,
            max_queued_messages: 1_000_000,
            ..Config::default()
        },
        Instant::now(),
    );
    let filter = TopicFilter::try_from("bench/+/temperature").unwrap();
    let handles = (0..subscribers)
        .map(|i| {
            let c = Connect::new(
                ProtocolVersion::V3_1_1,
                MqttString::try_from(format!("sub-{i}")).unwrap(),
            );
            let h = broker.connect(&c, Instant::now()).unwrap().handle;
            broker.subscribe(
                &h,
                &Subscribe::new(PacketId::new(1).unwrap(), filter.clone(), qos),
                Instant::now(),
            );
            h.lock().session.take_outbox();
            h
        })
        .collect();
    let c = Connect::new(
        ProtocolVersion::V3_1_1,
        MqttString::try_from("publisher").unwrap(),
    );
    let publisher = broker.connect(&c, Instant::now()).unwrap().handle;
    (broker, handles, publisher)
}

/// Empties every outbox and acknowledges what is in flight (so QoS 1 windows do not fill).
fn drain(handles: &[Arc<SessionHandle>]) {
    for h in handles {
        let mut slot = h.lock();
        for out in slot.session.take_outbox() {
            if let mqtt_session::Outgoing::Publish { envelope, .. } = out
                && let Some(id) = envelope.qos.packet_id()
            {
                let ack = mqtt_codec::Packet::PubAck(mqtt_codec::PubAck::new(id));
                let _ = slot.session.handle_packet(ack, Instant::now());
            }
        }
        slot.session.take_outbox();
    }
}

fn bench(c: &mut Criterion) {
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let mut group = c.benchmark_group(format!("route_qos{}", qos as u8));
        for subscribers in [1usize, 100, 10_000] {
            let (broker, handles, publisher) = setup(subscribers, qos);
            let mut publish = Publish::new(
                TopicName::try_from("bench/device-42/temperature").unwrap(),
                Bytes::from_static(&[0x5A; 64]),
            );
            publish.qos = QosPid::new(qos, PacketId::new(1)).unwrap();
            let publish = Arc::new(publish);
            group.throughput(Throughput::Elements(subscribers as u64));
            group.bench_function(format!("{subscribers}_subscribers"), |b| {
                b.iter_custom(|iterations| {
                    let mut timed = Duration::ZERO;
                    let mut left = iterations;
                    while left > 0 {
                        let batch = left.min(if subscribers >= 10_000 { 4 } else { 256 });
                        let start = Instant::now();
                        for _ in 0..batch {
                            broker.publish(Arc::clone(&publish), Some(&publisher), start);
                        }
                        timed += start.elapsed();
                        drain(&handles);
                        left -= batch;
                    }
                    timed
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
