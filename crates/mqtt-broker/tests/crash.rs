//! Crash tests: the broker binary with persistence on is killed with SIGKILL at random moments
//! while a publisher sends numbered QoS 1 and QoS 2 messages to persistent subscribers, some of
//! which keep going offline; it is restarted on the same port and data directory each time. In
//! the end every message the broker acknowledged has reached every subscriber at least once
//! (QoS 1) or exactly once (QoS 2), the retained messages it acknowledged are there, and every
//! subscriber found its session (and so its subscription) after every restart.
//!
//! The clients are `mqtt-client`s: they keep their side of the session in memory across the
//! broker's restarts (messages in flight, QoS 2 receipts) and reconnect by themselves. Each run
//! prints its seed; `CRASH_SEED=<seed>` repeats the same kill schedule. `CRASH_SYNC=never`
//! runs the broker with the policy that does not wait for the disk, to see the test fail.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mqtt_client::{Backoff, Client, ConnectOptions, Event, Events, OutgoingMessage, QoS};

/// How many times the broker is killed.
const KILLS: usize = 6;
/// Messages published after the last restart, so that the end is reached on a live broker.
const TAIL: u32 = 200;
/// The longest the whole test may take to settle after the last kill.
const SETTLE: Duration = Duration::from_secs(90);
/// Publishing pace: a message every this long (the kills must land mid-stream).
const PACE: Duration = Duration::from_micros(500);

/// xorshift64*: a small seeded generator, so that a failing schedule can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next() % (high - low + 1))
    }
}

/// Our broker as a child process on a fixed port and data directory.
struct BrokerProcess {
    child: Option<Child>,
    port: u16,
    data: PathBuf,
    log: PathBuf,
    starts: usize,
}

impl BrokerProcess {
    fn new(dir: &Path) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut broker = Self {
            child: None,
            port,
            data: dir.join("data"),
            log: dir.join("broker.log"),
            starts: 0,
        };
        broker.start();
        broker
    }

    fn start(&mut self) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_mqtt-broker"));
        command
            .arg("-p")
            .arg(self.port.to_string())
            .arg("--persistence")
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--sync")
            .arg(std::env::var("CRASH_SYNC").unwrap_or_else(|_| "batch".into()))
            // Queues large enough never to overflow (a full queue drops messages by design).
            .args([
                "--set",
                "sys_interval_secs=0",
                "--set",
                "max_queued_messages=1000000",
            ])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("MQTT_") {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().unwrap();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "the broker exited at start {} ({status}):\n{}",
                    self.starts,
                    self.log()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn options(port: u16, id: &str) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", port)
        .client_id(id)
        .clean_session(false)
        .session_expiry_interval(u32::MAX)
        .reconnect(Some(Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
            max_attempts: None,
        }))
        .connect_timeout(Duration::from_secs(5))
        .request_timeout(None)
}

/// What one subscriber received: copies per sequence number, and whether every connection
/// after its first found the session.
#[derive(Default)]
struct Received {
    copies: HashMap<u32, u32>,
    connections: usize,
    lost_sessions: usize,
}

/// Reads a subscriber's events into `received` until the client stops.
async fn collect(mut events: Events, received: Arc<Mutex<Received>>, fresh: bool) {
    let mut first = fresh;
    while let Some(event) = events.recv().await {
        let mut r = received.lock().unwrap();
        match event {
            Event::Connected {
                session_present, ..
            } => {
                r.connections += 1;
                if !first && !session_present {
                    r.lost_sessions += 1;
                }
                first = false;
            }
            Event::Message(m) => {
                let seq: u32 = std::str::from_utf8(m.payload()).unwrap().parse().unwrap();
                *r.copies.entry(seq).or_default() += 1;
            }
            _ => {}
        }
    }
}

/// A subscriber that stays connected (reconnecting by itself after each kill).
async fn steady(port: u16, id: &str, qos: QoS) -> (Client, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let client = subscribed(port, id, qos, &received).await;
    (client, received)
}

/// A new client, subscribed to the numbered messages, its events read into `received`.
async fn subscribed(port: u16, id: &str, qos: QoS, received: &Arc<Mutex<Received>>) -> Client {
    let (client, events) = Client::connect(options(port, id)).await.unwrap();
    client.subscribe([("crash/m/#", qos)]).await.unwrap();
    tokio::spawn(collect(events, Arc::clone(received), true));
    client
}

/// A TCP proxy in front of the broker whose network can be cut: while it is down, its
/// connections are dropped and new ones refused, as a client's link fails.
struct Link {
    port: u16,
    up: Arc<AtomicBool>,
    cut: Arc<tokio::sync::Notify>,
}

impl Link {
    async fn new(broker_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (up2, cut2) = (Arc::clone(&up), Arc::clone(&cut));
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::Acquire) {
                    continue;
                }
                let cut = Arc::clone(&cut2);
                tokio::spawn(async move {
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, broker_port)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = cut.notified() => {}
                    }
                });
            }
        });
        Self { port, up, cut }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Release);
        if !up {
            self.cut.notify_waiters();
        }
    }
}

/// A subscriber whose network keeps failing (through a [`Link`]) until `stop`: the broker
/// sees its connection lost and queues its messages; the client keeps its side of the session
/// (QoS 2 receipts included) and reconnects when the network is back.
async fn flaky(
    broker_port: u16,
    id: &str,
    qos: QoS,
    received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
    seed: u64,
    subscribed: tokio::sync::oneshot::Sender<()>,
) -> Client {
    let mut rng = Rng(seed);
    let link = Link::new(broker_port).await;
    let client = self::subscribed(link.port, id, qos, &received).await;
    let _ = subscribed.send(());
    while !stop.load(Ordering::Acquire) {
        tokio::time::sleep(rng.millis(100, 600)).await;
        link.set_up(false);
        tokio::time::sleep(rng.millis(50, 500)).await;
        link.set_up(true);
    }
    // Stay up: the client reconnects through the proxy, which lives with this task's
    // runtime.
    std::mem::forget(link);
    client
}

/// A subscriber that keeps leaving (DISCONNECT, its session kept) and coming back as a new
/// client, until `stop`; its messages queue up on the broker meanwhile. A new client has no
/// QoS 2 receipts of the old one, so it subscribes at QoS 1 (a resent message is a duplicate
/// the protocol allows).
async fn intermittent(
    port: u16,
    id: String,
    qos: QoS,
    received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
    seed: u64,
    subscribed: tokio::sync::oneshot::Sender<()>,
) -> Client {
    let mut rng = Rng(seed);
    let mut client = self::subscribed(port, &id, qos, &received).await;
    let _ = subscribed.send(());
    loop {
        tokio::time::sleep(rng.millis(100, 600)).await;
        // Leaving may fail while the broker is down: the session stays all the same.
        let _ = tokio::time::timeout(Duration::from_secs(5), client.disconnect()).await;
        tokio::time::sleep(rng.millis(50, 500)).await;
        let (next, events) = Client::start(options(port, &id)).unwrap();
        tokio::spawn(collect(events, Arc::clone(&received), false));
        client = next;
        if stop.load(Ordering::Acquire) {
            return client;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed: {seed} (CRASH_SEED={seed} repeats it)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Mutex::new(BrokerProcess::new(dir.path())));
    let port = broker.lock().unwrap().port;

    // Subscribers: two steady (QoS 1 and 2), one that keeps leaving and coming back as a new
    // client (QoS 1), one whose network keeps failing (QoS 2).
    let (s1, r1) = steady(port, "steady-q1", QoS::AtLeastOnce).await;
    let (s2, r2) = steady(port, "steady-q2", QoS::ExactlyOnce).await;
    let stop = Arc::new(AtomicBool::new(false));
    let r3 = Arc::new(Mutex::new(Received::default()));
    let r4 = Arc::new(Mutex::new(Received::default()));
    let (ready3, subscribed3) = tokio::sync::oneshot::channel();
    let (ready4, subscribed4) = tokio::sync::oneshot::channel();
    let i3 = tokio::spawn(intermittent(
        port,
        "away-q1".into(),
        QoS::AtLeastOnce,
        Arc::clone(&r3),
        Arc::clone(&stop),
        rng.next() | 1,
        ready3,
    ));
    let i4 = tokio::spawn(flaky(
        port,
        "flaky-q2",
        QoS::ExactlyOnce,
        Arc::clone(&r4),
        Arc::clone(&stop),
        rng.next() | 1,
        ready4,
    ));
    // Every subscriber is subscribed before the first message.
    subscribed3.await.unwrap();
    subscribed4.await.unwrap();

    // The publisher: numbered messages, odd ones QoS 2, every 100th also retained.
    let (publisher, _events) = Client::connect(options(port, "publisher")).await.unwrap();
    let acked: Arc<Mutex<HashMap<u32, QoS>>> = Arc::default();
    let killing_done = Arc::new(AtomicBool::new(false));
    let publishing = {
        let publisher = publisher.clone();
        let acked = Arc::clone(&acked);
        let killing_done = Arc::clone(&killing_done);
        tokio::spawn(async move {
            let mut acks = tokio::task::JoinSet::new();
            let mut seq = 0u32;
            let mut tail = 0;
            while tail < TAIL {
                if killing_done.load(Ordering::Acquire) {
                    tail += 1;
                }
                let qos = if seq % 2 == 1 {
                    QoS::ExactlyOnce
                } else {
                    QoS::AtLeastOnce
                };
                let retain = seq.is_multiple_of(100);
                let topic = if retain {
                    format!("crash/r/{seq}")
                } else {
                    format!("crash/m/{seq}")
                };
                let message = OutgoingMessage::new(&topic, seq.to_string())
                    .unwrap()
                    .qos(qos)
                    .retain(retain);
                let ack = publisher.send(message).await.unwrap();
                let acked = Arc::clone(&acked);
                acks.spawn(async move {
                    if ack.await.is_ok() {
                        acked.lock().unwrap().insert(seq, qos);
                    }
                });
                seq += 1;
                tokio::time::sleep(PACE).await;
            }
            while acks.join_next().await.is_some() {}
            seq
        })
    };

    // The killer.
    let mut schedule = Vec::new();
    for _ in 0..KILLS {
        let run = rng.millis(300, 1500);
        let down = rng.millis(0, 400);
        schedule.push((run, down));
        tokio::time::sleep(run).await;
        let b = Arc::clone(&broker);
        tokio::task::spawn_blocking(move || {
            let mut b = b.lock().unwrap();
            b.kill();
            std::thread::sleep(down);
            b.start();
        })
        .await
        .unwrap();
    }
    killing_done.store(true, Ordering::Release);
    eprintln!("kill schedule (run, down): {schedule:?}");

    let published = tokio::time::timeout(SETTLE, publishing)
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: the publisher did not finish"))
        .unwrap();
    stop.store(true, Ordering::Release);
    let s3 = i3.await.unwrap();
    let s4 = i4.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert_eq!(
        acked.len() as u32,
        published,
        "seed {seed}: every message is acknowledged in the end"
    );
    let expected: Vec<u32> = acked
        .keys()
        .copied()
        .filter(|seq| !seq.is_multiple_of(100))
        .collect();

    // Wait for every subscriber to have everything.
    let subscribers = [
        ("steady-q1", &r1, QoS::AtLeastOnce),
        ("steady-q2", &r2, QoS::ExactlyOnce),
        ("away-q1", &r3, QoS::AtLeastOnce),
        ("flaky-q2", &r4, QoS::ExactlyOnce),
    ];
    let deadline = Instant::now() + SETTLE;
    for (name, received, _) in &subscribers {
        loop {
            let missing = {
                let r = received.lock().unwrap();
                expected
                    .iter()
                    .filter(|s| !r.copies.contains_key(s))
                    .count()
            };
            if missing == 0 {
                break;
            }
            if Instant::now() > deadline {
                let r = received.lock().unwrap();
                let mut lost: Vec<_> = expected
                    .iter()
                    .filter(|s| !r.copies.contains_key(s))
                    .collect();
                lost.sort();
                panic!(
                    "seed {seed}: {name} misses {} acknowledged messages: {:?}...\n{}",
                    lost.len(),
                    &lost[..lost.len().min(20)],
                    broker.lock().unwrap().log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for (name, received, qos) in &subscribers {
        let r = std::mem::take(&mut *received.lock().unwrap());
        assert_eq!(
            r.lost_sessions, 0,
            "seed {seed}: {name} found its session gone after a restart"
        );
        if *qos == QoS::ExactlyOnce {
            let doubled: Vec<_> = expected
                .iter()
                .filter(|s| acked[s] == QoS::ExactlyOnce && r.copies[s] != 1)
                .collect();
            assert!(
                doubled.is_empty(),
                "seed {seed}: {name} got QoS 2 messages more than once: {doubled:?}"
            );
        }
        eprintln!(
            "{name}: {} messages, {} connections",
            r.copies.len(),
            r.connections
        );
    }

    // The retained messages the broker acknowledged are all there.
    let (reader, mut events) = Client::connect(options(port, "retained-reader"))
        .await
        .unwrap();
    reader
        .subscribe([("crash/r/#", QoS::AtLeastOnce)])
        .await
        .unwrap();
    let want: HashSet<u32> = acked
        .keys()
        .copied()
        .filter(|s| s.is_multiple_of(100))
        .collect();
    let mut got = HashSet::new();
    while got.len() < want.len() {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(Event::Message(m))) => {
                assert!(m.retain(), "seed {seed}: a retained message");
                got.insert(std::str::from_utf8(m.payload()).unwrap().parse().unwrap());
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    assert_eq!(got, want, "seed {seed}: the acknowledged retained messages");
    let log = broker.lock().unwrap().log();
    assert!(
        !log.contains("queue full"),
        "seed {seed}: a queue overflowed, which this test must not provoke"
    );
    eprintln!(
        "published {published}, {} retained, broker started {} times",
        want.len(),
        broker.lock().unwrap().starts
    );
    for c in [&s1, &s2, &s3, &s4, &publisher, &reader] {
        let _ = tokio::time::timeout(Duration::from_secs(5), c.disconnect()).await;
    }
}
