//! The client against real brokers: ours (in process) and Mosquitto (`/usr/sbin/mosquitto`,
//! Debian package `mosquitto`), each started on a free loopback port by the test.
//!
//! Every test is bounded in time ([`bounded`]) and in message count.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use mqtt_client::{
    Backoff, Client, ConnectOptions, ConnectionError, Error, Event, Events, OutgoingMessage,
    ProtocolVersion, QoS, ReasonCode,
};
use support::ours::{CuttingProxy, OurBroker};
use support::{EVENT_LIMIT, Mosquitto, bounded, next_message, peers};

fn options(port: u16) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", port)
        .connect_timeout(Duration::from_secs(10))
        .request_timeout(Some(Duration::from_secs(30)))
}

/// A fast-reconnecting backoff for tests.
fn quick() -> Option<Backoff> {
    Some(Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        max_attempts: None,
    })
}

/// Waits for an event matching `want`, skipping others.
async fn wait_for(events: &mut Events, what: &str, want: impl Fn(&Event) -> bool) -> Event {
    loop {
        match tokio::time::timeout(EVENT_LIMIT, events.recv()).await {
            Ok(Some(e)) if want(&e) => return e,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the event stream ended waiting for {what}"),
            Err(_) => panic!("no {what} within {EVENT_LIMIT:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_0_1_2_round_trips_in_order() {
    bounded(async {
        for peer in peers() {
            let name = peer.name();
            let (sub, mut sub_events) = Client::connect(options(peer.port())).await.unwrap();
            let granted = sub.subscribe([("rt/#", QoS::ExactlyOnce)]).await.unwrap();
            assert_eq!(granted, [Ok(QoS::ExactlyOnce)], "{name}");
            let (publisher, _events) = Client::connect(options(peer.port())).await.unwrap();
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                for i in 0..30u32 {
                    let payload = format!("{}-{i}", qos as u8);
                    publisher
                        .publish(&format!("rt/{}", qos as u8), payload, qos, false)
                        .await
                        .unwrap();
                }
            }
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                for i in 0..30u32 {
                    let m = next_message(&mut sub_events).await;
                    assert_eq!(m.topic().as_str(), format!("rt/{}", qos as u8), "{name}");
                    assert_eq!(
                        m.payload(),
                        &Bytes::from(format!("{}-{i}", qos as u8)),
                        "{name}"
                    );
                    // [MQTT-3.8.4-6] delivered at the minimum of published and granted QoS.
                    assert_eq!(m.qos(), qos, "{name}");
                    assert_eq!(m.packet_id().is_some(), qos != QoS::AtMostOnce, "{name}");
                    assert!(!m.retain(), "{name}");
                }
            }
            publisher.disconnect().await.unwrap();
            sub.disconnect().await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_version_connects_and_round_trips() {
    bounded(async {
        for peer in peers() {
            for version in ProtocolVersion::ALL {
                let name = format!("{} {version:?}", peer.name());
                let (c, mut events) = Client::connect(options(peer.port()).protocol(version))
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                c.subscribe([("v/x", QoS::AtLeastOnce)]).await.unwrap();
                c.publish("v/x", "hello", QoS::AtLeastOnce, false)
                    .await
                    .unwrap();
                let m = next_message(&mut events).await;
                assert_eq!(m.payload(), &Bytes::from_static(b"hello"), "{name}");
                c.disconnect().await.unwrap();
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_and_unsubscribe() {
    bounded(async {
        for peer in peers() {
            let name = peer.name();
            let (c, mut events) = Client::connect(options(peer.port())).await.unwrap();
            c.publish("keep/me", "kept", QoS::AtLeastOnce, true)
                .await
                .unwrap();
            c.subscribe([("keep/+", QoS::AtLeastOnce)]).await.unwrap();
            let m = next_message(&mut events).await;
            assert!(
                m.retain(),
                "{name}: [MQTT-3.3.1-8] retained flag on a new subscription"
            );
            assert_eq!(m.payload(), &Bytes::from_static(b"kept"), "{name}");
            let codes = c.unsubscribe(["keep/+"]).await.unwrap();
            assert_eq!(codes, [ReasonCode::Success], "{name}");
            c.publish("keep/me", "", QoS::AtLeastOnce, true)
                .await
                .unwrap();
            c.subscribe([("marker", QoS::AtLeastOnce)]).await.unwrap();
            c.publish("marker", "m", QoS::AtLeastOnce, false)
                .await
                .unwrap();
            // Nothing from keep/+ arrives after the unsubscribe: the next message is the marker.
            let m = next_message(&mut events).await;
            assert_eq!(m.topic().as_str(), "marker", "{name}");
            c.disconnect().await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_topics_fail_before_anything_is_sent() {
    bounded(async {
        let broker = OurBroker::start();
        let (c, _events) = Client::connect(options(broker.port())).await.unwrap();
        for topic in ["", "a/+", "a/#", "a\0b"] {
            let err = c.publish(topic, "x", QoS::AtMostOnce, false).await;
            assert!(matches!(err, Err(Error::Topic(_))), "{topic:?}: {err:?}");
        }
        for filter in ["a/#/b", "a+", ""] {
            let err = c.subscribe([(filter, QoS::AtMostOnce)]).await;
            assert!(matches!(err, Err(Error::Topic(_))), "{filter:?}: {err:?}");
        }
        let none: [(&str, QoS); 0] = [];
        assert!(matches!(
            c.subscribe(none).await,
            Err(Error::InvalidOption { .. })
        ));
        // Still connected and working.
        c.publish("fine", "x", QoS::AtLeastOnce, false)
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_published_on_loss_and_not_on_disconnect() {
    bounded(async {
        for peer in peers() {
            let name = peer.name();
            let (watcher, mut events) = Client::connect(options(peer.port())).await.unwrap();
            watcher
                .subscribe([("will/+", QoS::AtLeastOnce)])
                .await
                .unwrap();
            let proxy = CuttingProxy::start(([127, 0, 0, 1], peer.port()).into()).await;
            let dying = options(proxy.port())
                .client_id("dying")
                .reconnect(None)
                .will("will/dying", "gone", QoS::AtLeastOnce, false);
            let (_dying, mut dying_events) = Client::connect(dying).await.unwrap();
            proxy.cut();
            wait_for(&mut dying_events, "Disconnected", |e| {
                matches!(e, Event::Disconnected { .. })
            })
            .await;
            let m = next_message(&mut events).await;
            assert_eq!(m.topic().as_str(), "will/dying", "{name}");
            assert_eq!(m.payload(), &Bytes::from_static(b"gone"), "{name}");

            let polite = options(peer.port()).client_id("polite").will(
                "will/polite",
                "gone",
                QoS::AtLeastOnce,
                false,
            );
            let (polite, _e) = Client::connect(polite).await.unwrap();
            polite.disconnect().await.unwrap();
            // [MQTT-3.1.2-10] no will after DISCONNECT: the next message is the marker.
            watcher
                .subscribe([("marker", QoS::AtLeastOnce)])
                .await
                .unwrap();
            watcher
                .publish("marker", "m", QoS::AtLeastOnce, false)
                .await
                .unwrap();
            assert_eq!(next_message(&mut events).await.topic().as_str(), "marker");
        }
    })
    .await;
}

/// Publishes `count` messages at `qos` through the client, keeping many in flight, and
/// returns how many completed successfully (each must).
async fn publish_pipelined(client: &Client, topic: &str, qos: QoS, count: u32) {
    publish_range(client, topic, qos, 0..count).await;
}

/// [`publish_pipelined`] for the payloads `range`.
async fn publish_range(client: &Client, topic: &str, qos: QoS, range: std::ops::Range<u32>) {
    let mut acks = Vec::new();
    for i in range {
        let message = OutgoingMessage::new(topic, format!("{i}"))
            .unwrap()
            .qos(qos);
        acks.push(client.send(message).await.unwrap());
        // Paced, so that a disruption lands in the middle of the flow.
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    for (i, ack) in acks.into_iter().enumerate() {
        tokio::time::timeout(Duration::from_secs(60), ack)
            .await
            .unwrap_or_else(|_| panic!("message {i} never acknowledged"))
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
    }
}

/// Collects message payloads per topic until `done` says enough, or panics after a while.
async fn collect(
    events: &mut Events,
    done: impl FnMut(&HashMap<String, Vec<u32>>) -> bool,
) -> HashMap<String, Vec<u32>> {
    collect_counting(events, &Progress::default(), done).await
}

/// What a receiving client has seen so far, for the test's disruptor to act on.
#[derive(Default)]
struct Progress {
    messages: AtomicU32,
    connects: AtomicU32,
    /// `messages` when the last connection was made.
    messages_at_connect: AtomicU32,
    done: std::sync::atomic::AtomicBool,
}

impl Progress {
    /// Waits until the receiver has made at least `n` connections.
    async fn connects_at_least(&self, n: u32) {
        while self.connects.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until at least `n` messages have arrived.
    async fn messages_at_least(&self, n: u32) {
        while self.messages.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until the receiver has made a connection after its `connects`-th and received
    /// `n` messages on it; `false` if it finished first.
    async fn wait_new_connection(&self, connects: u32, n: u32) -> bool {
        loop {
            if self.done.load(Ordering::Relaxed) {
                return false;
            }
            if self.connects.load(Ordering::Relaxed) > connects
                && self.messages.load(Ordering::Relaxed)
                    >= self.messages_at_connect.load(Ordering::Relaxed) + n
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// How many different payloads arrived on `topic`.
fn distinct(seen: &HashMap<String, Vec<u32>>, topic: &str) -> u32 {
    let mut v = seen.get(topic).cloned().unwrap_or_default();
    v.sort_unstable();
    v.dedup();
    v.len() as u32
}

/// Options for a persistent session that reconnects quickly with a small window.
fn persistent(port: u16, id: &str) -> ConnectOptions {
    options(port)
        .client_id(id)
        .clean_session(false)
        .reconnect(quick())
        .max_inflight(10)
}

/// [`collect`], counting messages and connections in `progress`.
async fn collect_counting(
    events: &mut Events,
    progress: &Progress,
    mut done: impl FnMut(&HashMap<String, Vec<u32>>) -> bool,
) -> HashMap<String, Vec<u32>> {
    let mut seen: HashMap<String, Vec<u32>> = HashMap::new();
    while !done(&seen) {
        let m = loop {
            match tokio::time::timeout(EVENT_LIMIT, events.recv()).await {
                Ok(Some(Event::Message(m))) => break m,
                Ok(Some(Event::Connected { .. })) => {
                    let messages = progress.messages.load(Ordering::Relaxed);
                    progress
                        .messages_at_connect
                        .store(messages, Ordering::Relaxed);
                    progress.connects.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("the event stream ended"),
                Err(_) => panic!("no message within {EVENT_LIMIT:?}"),
            }
        };
        let n: u32 = std::str::from_utf8(m.payload()).unwrap().parse().unwrap();
        seen.entry(m.topic().to_string()).or_default().push(n);
        progress.messages.fetch_add(1, Ordering::Relaxed);
    }
    progress.done.store(true, Ordering::Relaxed);
    seen
}

/// Both clients go through a proxy that cuts every connection again and again while QoS 1
/// and QoS 2 messages flow; the broker keeps both (persistent) sessions. Every message whose
/// publish completed arrives; QoS 1 at least once, QoS 2 exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_4_3_nothing_lost_nothing_doubled_through_cut_connections() {
    bounded(async {
        for peer in peers() {
            let name = peer.name();
            const N: u32 = 200;
            let proxy = CuttingProxy::start(([127, 0, 0, 1], peer.port()).into()).await;
            let (sub, mut sub_events) =
                Client::connect(persistent(proxy.port(), "cut-sub").event_capacity(8))
                    .await
                    .unwrap();
            sub.subscribe([("cut/+", QoS::ExactlyOnce)]).await.unwrap();
            let (publisher, _pe) = Client::connect(persistent(proxy.port(), "cut-pub"))
                .await
                .unwrap();
            // Cut whenever the subscriber has received 10 messages on a new connection, so
            // every cut lands mid-stream.
            let progress = Progress::default();
            let cutting = async {
                let mut connects = 0;
                while progress.wait_new_connection(connects, 10).await {
                    connects = progress.connects.load(Ordering::Relaxed);
                    proxy.cut();
                }
            };
            // In bursts, each after the subscriber's connection was cut and made again: at
            // least BURSTS - 1 cuts land while messages flow, however fast or loaded the
            // machine (a single burst can be over before the second cut).
            const BURSTS: u32 = 4;
            let publishing = async {
                for b in 0..BURSTS {
                    progress.connects_at_least(b + 1).await;
                    let range = b * N / BURSTS..(b + 1) * N / BURSTS;
                    tokio::join!(
                        publish_range(&publisher, "cut/1", QoS::AtLeastOnce, range.clone()),
                        publish_range(&publisher, "cut/2", QoS::ExactlyOnce, range),
                    );
                }
            };
            let receiving = collect_counting(&mut sub_events, &progress, |seen| {
                distinct(seen, "cut/1") == N && distinct(seen, "cut/2") == N
            });
            let ((), (), seen) = tokio::join!(cutting, publishing, receiving);
            // The first connection is counted too.
            let reconnects = progress.connects.load(Ordering::Relaxed) - 1;
            assert!(
                reconnects >= 2,
                "{name}: only {reconnects} reconnections mid-stream"
            );
            assert_eq!(
                distinct(&seen, "cut/2") as usize,
                seen["cut/2"].len(),
                "{name}: a QoS 2 message arrived twice"
            );
            // Give stragglers a moment: a late duplicate of QoS 2 would show up here.
            publisher
                .publish("cut/2", format!("{N}"), QoS::ExactlyOnce, false)
                .await
                .unwrap();
            let last = collect(&mut sub_events, |s| {
                s.get("cut/2").is_some_and(|v| v.contains(&N))
            })
            .await;
            assert!(
                last["cut/2"].iter().all(|n| *n == N),
                "{name}: a QoS 2 message arrived again: {:?}",
                last["cut/2"]
            );
            publisher.disconnect().await.unwrap();
            sub.disconnect().await.unwrap();
        }
    })
    .await;
}

/// Mosquitto with persistence is stopped and restarted while QoS 1 and 2 messages flow to a
/// persistent subscriber: every message acknowledged to the publisher arrives, no QoS 2
/// message twice. (Mosquitto writes its database on a clean stop, so it is stopped with
/// SIGTERM; our broker's equivalent, with kill -9, waits for its durable store.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_restart_loses_nothing_acknowledged() {
    bounded(async {
        const N: u32 = 150;
        let mut broker = Mosquitto::builder().persistence(true).start();
        let port = broker.port();
        let (sub, mut sub_events) =
            Client::connect(persistent(port, "restart-sub").event_capacity(8))
                .await
                .unwrap();
        sub.subscribe([("rs/+", QoS::ExactlyOnce)]).await.unwrap();
        let (publisher, _pe) = Client::connect(persistent(port, "restart-pub"))
            .await
            .unwrap();
        // Restart when a third of the messages have arrived: mid-stream.
        let progress = Progress::default();
        let restarting = async {
            progress.messages_at_least(2 * N / 3).await;
            tokio::task::block_in_place(|| broker.restart());
        };
        let publishing = async {
            tokio::join!(
                publish_pipelined(&publisher, "rs/1", QoS::AtLeastOnce, N),
                publish_pipelined(&publisher, "rs/2", QoS::ExactlyOnce, N),
            );
        };
        let receiving = collect_counting(&mut sub_events, &progress, |seen| {
            distinct(seen, "rs/1") == N && distinct(seen, "rs/2") == N
        });
        let ((), (), seen) = tokio::join!(restarting, publishing, receiving);
        // The first connection, and the one after the restart.
        assert_eq!(progress.connects.load(Ordering::Relaxed), 2);
        assert_eq!(
            distinct(&seen, "rs/2") as usize,
            seen["rs/2"].len(),
            "a QoS 2 message arrived twice"
        );
        assert!(
            broker.log().contains("Saving in-memory database"),
            "the restart did not go through a save"
        );
    })
    .await;
}

/// Our broker (no durable store yet) is killed and restarted: the client notices, reconnects
/// with backoff, finds its session gone, makes its subscriptions again by itself, and
/// messages flow again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_broker_crash_and_resubscribes() {
    bounded(async {
        let mut broker = OurBroker::start();
        let o = options(broker.port())
            .client_id("crash-sub")
            .clean_session(false)
            .reconnect(quick());
        let (c, mut events) = Client::connect(o).await.unwrap();
        wait_for(&mut events, "Connected", |e| {
            matches!(
                e,
                Event::Connected {
                    session_present: false,
                    ..
                }
            )
        })
        .await;
        c.subscribe([("crash/#", QoS::AtLeastOnce)]).await.unwrap();
        tokio::task::block_in_place(|| broker.restart());
        wait_for(&mut events, "Disconnected", |e| {
            matches!(e, Event::Disconnected { .. })
        })
        .await;
        wait_for(&mut events, "Reconnecting", |e| {
            matches!(e, Event::Reconnecting { attempt: 1, .. })
        })
        .await;
        wait_for(&mut events, "Connected", |e| {
            matches!(
                e,
                Event::Connected {
                    session_present: false,
                    ..
                }
            )
        })
        .await;
        // The re-subscription went out before anything else; a message from another client
        // proves it took effect.
        let (other, _oe) = Client::connect(options(broker.port())).await.unwrap();
        let deadline = tokio::time::Instant::now() + EVENT_LIMIT;
        loop {
            other
                .publish("crash/x", "after", QoS::AtLeastOnce, false)
                .await
                .unwrap();
            match tokio::time::timeout(Duration::from_millis(200), next_message(&mut events)).await
            {
                Ok(m) => {
                    assert_eq!(m.payload(), &Bytes::from_static(b"after"));
                    break;
                }
                Err(_) => assert!(tokio::time::Instant::now() < deadline, "no resubscription"),
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_report_the_connack_code() {
    bounded(async {
        // Mosquitto without anonymous access: not authorised (3.1.1 code 5).
        let broker = Mosquitto::builder()
            .config_line("allow_anonymous false")
            .start();
        let err = Client::connect(options(broker.port())).await.unwrap_err();
        assert!(
            matches!(err, Error::Refused(ReasonCode::NotAuthorized)),
            "{err:?}"
        );
        assert_eq!(
            mqtt_client::connack_return_code(ReasonCode::NotAuthorized),
            5
        );
        // Ours refuses an identifier longer than its limit: identifier rejected (code 2).
        let ours = OurBroker::start();
        let long_id = "x".repeat(300);
        let err = Client::connect(options(ours.port()).client_id(long_id))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Refused(ReasonCode::ClientIdentifierNotValid)),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_fails_the_first_connect() {
    bounded(async {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = Client::connect(options(port)).await.unwrap_err();
        assert!(
            matches!(err, Error::Connection(ConnectionError::Io(_))),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_offline_and_the_queue_is_bounded() {
    bounded(async {
        // A port where nobody listens yet; the client keeps trying.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let o = options(port)
            .reconnect(quick())
            .queue_capacity(4)
            .request_timeout(Some(Duration::from_millis(300)));
        let (c, mut events) = Client::start(o).unwrap();
        wait_for(&mut events, "Reconnecting", |e| {
            matches!(e, Event::Reconnecting { .. })
        })
        .await;
        // Times out, but stays queued.
        let err = c.publish("q", "0", QoS::AtLeastOnce, false).await;
        assert!(matches!(err, Err(Error::Timeout(_))), "{err:?}");
        let mut acks = Vec::new();
        let full = loop {
            match c.try_publish("q", format!("{}", acks.len() + 1), QoS::AtLeastOnce, false) {
                Ok(ack) => acks.push(ack),
                Err(e) => break e,
            }
            assert!(acks.len() < 100, "the queue never filled");
        };
        assert!(matches!(full, Error::QueueFull), "{full:?}");
        // The queue holds `queue_capacity` requests in the session and as many in the channel.
        assert!((4..=9).contains(&acks.len()), "{} queued", acks.len());
        assert!(!c.is_connected());
        // A broker appears on that port: everything queued goes out.
        let _broker = start_ours_on(port);
        for ack in acks {
            ack.await.unwrap();
        }
        assert!(c.is_connected());
    })
    .await;
}

/// Our broker on a given port (for a client that is already trying it).
fn start_ours_on(port: u16) -> std::thread::JoinHandle<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let config = mqtt_broker::config::Config {
                port,
                ..Default::default()
            };
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            ready_tx.send(()).unwrap();
            let broker = std::sync::Arc::new(mqtt_broker::core::Broker::new(
                config,
                std::time::Instant::now(),
            ));
            let stop = tokio::time::sleep(Duration::from_secs(30));
            let _ = mqtt_broker::serve(listener, broker, stop).await;
        });
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    handle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reconnect_a_loss_fails_open_requests_and_ends_the_stream() {
    bounded(async {
        let broker = OurBroker::start();
        let proxy = CuttingProxy::start(broker.addr()).await;
        let o = options(proxy.port()).reconnect(None);
        let (c, mut events) = Client::connect(o).await.unwrap();
        // Subscribe through the proxy, then make the broker unable to answer before the cut:
        // a request in flight when the connection drops fails with Disconnected.
        proxy.cut();
        let err = c.publish("x", "y", QoS::AtLeastOnce, false).await;
        assert!(
            matches!(err, Err(Error::Disconnected | Error::Closed)),
            "{err:?}"
        );
        let mut saw_disconnected = false;
        while let Some(e) = tokio::time::timeout(EVENT_LIMIT, events.recv())
            .await
            .unwrap()
        {
            saw_disconnected |= matches!(e, Event::Disconnected { .. });
        }
        assert!(saw_disconnected);
        assert!(c.is_closed());
        let err = c.publish("x", "y", QoS::AtMostOnce, false).await;
        assert!(matches!(err, Err(Error::Closed)), "{err:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_flushes_what_is_in_flight() {
    bounded(async {
        for peer in peers() {
            let name = peer.name();
            let (sub, mut sub_events) = Client::connect(options(peer.port())).await.unwrap();
            sub.subscribe([("flush", QoS::AtLeastOnce)]).await.unwrap();
            let (c, mut events) = Client::connect(options(peer.port()).max_inflight(5))
                .await
                .unwrap();
            let mut acks = Vec::new();
            for i in 0..100u32 {
                let m = OutgoingMessage::new("flush", format!("{i}"))
                    .unwrap()
                    .qos(QoS::AtLeastOnce);
                acks.push(c.send(m).await.unwrap());
            }
            c.disconnect().await.unwrap();
            for ack in acks {
                ack.await.unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            let e = wait_for(&mut events, "Disconnected", |e| {
                matches!(e, Event::Disconnected { .. })
            })
            .await;
            assert!(
                matches!(
                    e,
                    Event::Disconnected {
                        reason: ConnectionError::Requested
                    }
                ),
                "{name}: {e:?}"
            );
            let got = collect(&mut sub_events, |s| {
                s.get("flush").is_some_and(|v| v.len() == 100)
            })
            .await;
            assert_eq!(got["flush"], (0..100).collect::<Vec<_>>(), "{name}");
            assert!(matches!(
                c.publish("flush", "late", QoS::AtMostOnce, false).await,
                Err(Error::Closed)
            ));
        }
    })
    .await;
}

/// A disconnect asked for while the broker is down keeps reconnecting until what was queued
/// is delivered (within the flush timeout), then disconnects; when the timeout passes first,
/// `disconnect` says how many requests it abandoned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_while_the_broker_is_down_still_flushes() {
    bounded(async {
        let mut broker = OurBroker::start();
        let o = options(broker.port())
            .reconnect(quick())
            .flush_timeout(Duration::from_secs(20));
        let (c, _events) = Client::connect(o).await.unwrap();
        tokio::task::block_in_place(|| broker.kill());
        let m = OutgoingMessage::new("down/flush", "queued offline")
            .unwrap()
            .qos(QoS::AtLeastOnce);
        let ack = c.send(m).await.unwrap();
        let disconnecting = tokio::spawn({
            let c = c.clone();
            async move { c.disconnect().await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !disconnecting.is_finished(),
            "gave up while the broker was down"
        );
        tokio::task::block_in_place(|| broker.restart());
        disconnecting
            .await
            .unwrap()
            .expect("flushed, then disconnected");
        ack.await
            .expect("the queued message was acknowledged after the restart");

        // The flush timeout passes with the broker down: the message is abandoned, and said so.
        let o = options(broker.port())
            .reconnect(quick())
            .flush_timeout(Duration::from_millis(300));
        let (c, _events) = Client::connect(o).await.unwrap();
        tokio::task::block_in_place(|| broker.kill());
        let m = OutgoingMessage::new("down/flush", "never sent")
            .unwrap()
            .qos(QoS::AtLeastOnce);
        let ack = c.send(m).await.unwrap();
        assert!(matches!(c.disconnect().await, Err(Error::Unflushed(1))));
        assert!(matches!(ack.await, Err(Error::Closed)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_holds_an_idle_connection() {
    bounded(async {
        for peer in peers() {
            let name = peer.name();
            let o = options(peer.port()).keep_alive(Duration::from_secs(1));
            let (c, mut events) = Client::connect(o).await.unwrap();
            // Three keep alive periods of silence from the application: the client pings, so
            // the server (which closes after 1.5 periods without a packet) keeps it.
            tokio::time::sleep(Duration::from_millis(3200)).await;
            assert!(c.is_connected(), "{name}");
            while let Some(e) = events.try_recv() {
                assert!(!matches!(e, Event::Disconnected { .. }), "{name}: {e:?}");
            }
            c.disconnect().await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_backpressure_loses_nothing() {
    bounded(async {
        for peer in peers() {
            let name = peer.name();
            let o = options(peer.port()).event_capacity(4);
            let (sub, mut events) = Client::connect(o).await.unwrap();
            sub.subscribe([("slow", QoS::AtLeastOnce)]).await.unwrap();
            let (publisher, _pe) = Client::connect(options(peer.port())).await.unwrap();
            publish_pipelined(&publisher, "slow", QoS::AtLeastOnce, 300).await;
            // Only now does the application read: everything is there, in order.
            let got = collect(&mut events, |s| {
                s.get("slow").is_some_and(|v| v.len() == 300)
            })
            .await;
            assert_eq!(got["slow"], (0..300).collect::<Vec<_>>(), "{name}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_are_cheap_clones_on_one_connection() {
    bounded(async {
        let broker = OurBroker::start();
        let (c, mut events) = Client::connect(options(broker.port())).await.unwrap();
        c.subscribe([("clone/+", QoS::AtLeastOnce)]).await.unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let c = c.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        c.publish(
                            &format!("clone/{t}"),
                            format!("{i}"),
                            QoS::AtLeastOnce,
                            false,
                        )
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let got = collect(&mut events, |s| {
            s.values().map(Vec::len).sum::<usize>() == 100
        })
        .await;
        for t in 0..4 {
            assert_eq!(got[&format!("clone/{t}")], (0..25).collect::<Vec<_>>());
        }
        // Dropping every handle and the events ends the driver gracefully; nothing to assert
        // beyond not hanging.
        drop(c);
        drop(events);
    })
    .await;
}
