//! The client over loopback against our broker (in process): batches of 1,000 messages of 32
//! bytes published with up to 100 in flight, QoS 0, 1 and 2, each batch awaited to the last
//! acknowledgement (QoS 0: handed to the socket). Client, broker and kernel share the machine,
//! so this is the floor of what one client connection does, not the broker's throughput
//! (`cargo xtask bench` measures that, side by side with other brokers).
//!
//! Run: `cargo bench -p mqtt-client --bench client`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mqtt_client::{Client, ConnectOptions, OutgoingMessage, QoS, TopicName};

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let broker = Arc::new(mqtt_broker::core::Broker::new(
        mqtt_broker::config::Config::default(),
        std::time::Instant::now(),
    ));
    runtime.spawn(mqtt_broker::serve(listener, broker, std::future::pending()));
    let options = ConnectOptions::new("127.0.0.1", port)
        .max_inflight(100)
        .queue_capacity(2000)
        .keep_alive(Duration::from_secs(60));
    let (client, _events) = runtime.block_on(Client::connect(options)).unwrap();
    let topic = TopicName::from_static("bench/client").unwrap();
    let payload = Bytes::from_static(&[7u8; 32]);

    const BATCH: u64 = 1000;
    let mut group = c.benchmark_group("client_publish_loopback");
    group.throughput(Throughput::Elements(BATCH));
    group.sample_size(20);
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        group.bench_function(format!("qos{}", qos as u8), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let mut acks = Vec::with_capacity(BATCH as usize);
                    for _ in 0..BATCH {
                        let m =
                            OutgoingMessage::with_topic(topic.clone(), payload.clone()).qos(qos);
                        acks.push(client.send(m).await.unwrap());
                    }
                    for ack in acks {
                        ack.await.unwrap();
                    }
                });
            });
        });
    }
    group.finish();
    runtime.block_on(client.disconnect()).unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
