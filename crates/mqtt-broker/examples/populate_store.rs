//! Fills a data directory the way a busy broker would: persistent sessions that subscribed and
//! left, and retained messages, written by the broker core itself (no sockets: the records are
//! the ones the broker writes for the same traffic from the network). `cargo xtask
//! bench-persistence` uses it to measure how long a restart takes.
//!
//! Run: `cargo run --release -p mqtt-broker --example populate_store -- DIR [RETAINED] [SESSIONS]`
//! (defaults: 1,000,000 retained messages, 100,000 sessions).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Instant;

use bytes::Bytes;
use mqtt_broker::config::Config;
use mqtt_broker::core::Broker;
use mqtt_codec::{Connect, Packet, PacketId, ProtocolVersion, Publish, QoS, Subscribe};
use mqtt_session::store::SyncPolicy;
use mqtt_topic::{MqttString, TopicFilter, TopicName};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: populate_store DIR [RETAINED] [SESSIONS]");
    let retained: u64 = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let sessions: u64 = args.next().map_or(100_000, |a| a.parse().unwrap());
    let started = Instant::now();
    let config = Config {
        persistence: true,
        data_dir: dir.clone(),
        // Filling is not what is measured: let the operating system write when it likes.
        sync: SyncPolicy::Never,
        max_connections: usize::MAX,
        ..Config::default()
    };
    let broker = Broker::from_config(config, Instant::now()).unwrap();
    let now = Instant::now();
    for i in 0..sessions {
        let mut c = Connect::new(
            ProtocolVersion::V3_1_1,
            MqttString::try_from(format!("client-{i:06}")).unwrap(),
        );
        c.clean_start = false;
        let s = broker.connect(&c, now).unwrap();
        let subscribe = Subscribe::new(
            PacketId::new(1).unwrap(),
            TopicFilter::try_from(format!("sensors/{i}/#")).unwrap(),
            QoS::AtLeastOnce,
        );
        broker
            .handle_packet(&s.handle, s.generation, Packet::Subscribe(subscribe), now)
            .unwrap();
        broker.disconnect(&s.handle, s.generation, true, now);
    }
    let mut c = Connect::new(
        ProtocolVersion::V3_1_1,
        MqttString::try_from("populate").unwrap(),
    );
    c.clean_start = true;
    let p = broker.connect(&c, now).unwrap();
    let payload = Bytes::from(vec![0x5A; 64]);
    for i in 0..retained {
        let mut publish = Publish::new(
            TopicName::try_from(format!("bench/retained/{}/{i}", i % 1000)).unwrap(),
            payload.clone(),
        );
        publish.retain = true;
        broker
            .handle_packet(&p.handle, p.generation, Packet::Publish(publish), now)
            .unwrap();
        // The publisher's outbox is never written: keep it empty.
        p.handle.lock().session.take_outbox();
    }
    broker.disconnect(&p.handle, p.generation, true, now);
    drop(p);
    broker.flush_store();
    println!(
        "{dir}: {} sessions, {} retained messages in {:.1} s",
        broker.session_count(),
        broker.retained_count(),
        started.elapsed().as_secs_f64()
    );
}
