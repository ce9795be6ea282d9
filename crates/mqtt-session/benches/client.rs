//! The client session machine alone: the cost of one QoS 0, 1 and 2 publish from request to
//! completion (packets out, acknowledgements in, event collected), without encoding or I/O.
//!
//! Run: `cargo bench -p mqtt-session --bench client`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mqtt_codec::{Packet, ProtocolVersion, PubAck, PubComp, PubRec, Publish, QoS, TopicName};
use mqtt_session::client::{ClientEvent, ClientLimits, ClientSession};

/// Publishes `batch` messages at `qos` with a window of 100 and answers each as a server
/// would; returns the completions seen.
fn cycle(session: &mut ClientSession<u32>, message: &Publish, qos: QoS, batch: u32) -> u32 {
    let now = Instant::now();
    let mut done = 0;
    for token in 0..batch {
        session.publish(message.clone(), qos, token);
    }
    while done < batch {
        let mut answers = Vec::new();
        while let Some(packet) = session.poll_transmit() {
            match packet {
                Packet::Publish(p) => match (qos, p.qos.packet_id()) {
                    (QoS::AtLeastOnce, Some(id)) => answers.push(Packet::PubAck(PubAck::new(id))),
                    (QoS::ExactlyOnce, Some(id)) => answers.push(Packet::PubRec(PubRec::new(id))),
                    _ => {}
                },
                Packet::PubRel(rel) => answers.push(Packet::PubComp(PubComp::new(rel.packet_id))),
                _ => {}
            }
        }
        for answer in answers {
            session.handle_packet(answer, now).unwrap();
        }
        while let Some(event) = session.poll_event() {
            if let ClientEvent::Published { .. } = event {
                done += 1;
            }
        }
    }
    done
}

fn bench(c: &mut Criterion) {
    let message = Publish::new(
        TopicName::from_static("bench/sensor/1").unwrap(),
        Bytes::from_static(&[0u8; 32]),
    );
    let mut group = c.benchmark_group("client_session_publish");
    const BATCH: u32 = 1000;
    group.throughput(Throughput::Elements(u64::from(BATCH)));
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let mut session = ClientSession::new(
            ProtocolVersion::V3_1_1,
            Some(Duration::from_secs(60)),
            ClientLimits::default(),
        );
        session.connected(false, Instant::now());
        group.bench_function(format!("qos{}", qos as u8), |b| {
            b.iter(|| cycle(&mut session, &message, qos, BATCH));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
