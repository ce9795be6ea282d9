//! `mqtt bench` against our broker, in process: every scenario briefly, with the delivery check
//! at QoS 1 and 2 (nothing lost, nothing doubled at QoS 2), failures that must fail the run,
//! and the real binary with `--json`.
//!
//! Small counts and rates throughout: these check correctness, not speed.

#![allow(clippy::print_stderr)]

#[path = "../../mqtt-client/tests/support/ours.rs"]
#[allow(dead_code, unreachable_pub)]
mod ours;

use std::future::Future;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use mqtt_cli::bench::{self, BenchArgs, Summary};
use ours::OurBroker;

/// A bound on each run.
const LIMIT: Duration = Duration::from_secs(20);

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

/// Runs `mqtt bench ARGS` in process against `port` (quietly).
async fn bench(port: u16, args: &[&str]) -> Summary {
    let port = port.to_string();
    let mut argv = vec!["bench"];
    argv.extend_from_slice(args);
    argv.extend(["-p", &port, "--quiet", "-I", "1"]);
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    bounded(bench::execute(cli.bench))
        .await
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("the benchmark did not stop in time")
}

/// Every connection up, every message acknowledged, nothing lost or doubled.
fn assert_clean(s: &Summary) {
    assert!(s.ok, "{s:#?}");
    assert!(s.failures.is_empty(), "{s:#?}");
    assert_eq!(s.connections.failed, 0, "{s:#?}");
    assert_eq!(s.connections.dropped, 0, "{s:#?}");
    assert_eq!(s.publish_errors, 0, "{s:#?}");
    assert_eq!(s.sent, s.acked, "{s:#?}");
}

/// The delivery check found every message once (`duplicates_allowed` at QoS 1).
fn assert_delivered(s: &Summary, expected: u64, qos: u8) {
    assert_clean(s);
    let d = s.delivery.expect("a delivery check");
    assert_eq!(d.qos, qos, "{s:#?}");
    assert_eq!(d.expected, expected, "{s:#?}");
    assert_eq!(d.lost, 0, "{s:#?}");
    if qos == 2 {
        assert_eq!(d.duplicates, 0, "{s:#?}");
    }
    assert_eq!(d.unexpected, 0, "{s:#?}");
    assert!(s.received >= expected, "{s:#?}");
    let latency = s.latency.expect("end-to-end latency");
    assert!(latency.count >= expected && latency.p50_us <= latency.max_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_lose_nothing_at_qos_1_and_2() {
    let broker = OurBroker::start();
    for qos in ["1", "2"] {
        let s = bench(
            broker.port(),
            &[
                "pairs",
                "-c",
                "5",
                "-q",
                qos,
                "--messages",
                "200",
                "--rate",
                "1000",
            ],
        )
        .await;
        assert_delivered(&s, 1000, qos.parse().unwrap());
        assert_eq!((s.publishers, s.subscribers, s.sent), (5, 5, 1000));
        assert!(s.ack_latency.is_some() && s.send_rate > 0.0 && s.receive_rate > 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanin_and_fanout_lose_nothing_as_fast_as_allowed() {
    let broker = OurBroker::start();
    // 5 × 100 messages to one subscriber stay within the broker's queue (1,000).
    let s = bench(
        broker.port(),
        &[
            "fanin",
            "-c",
            "5",
            "-q",
            "1",
            "--messages",
            "100",
            "--inflight",
            "20",
        ],
    )
    .await;
    assert_delivered(&s, 500, 1);
    let s = bench(
        broker.port(),
        &[
            "fanin",
            "-c",
            "5",
            "-q",
            "2",
            "--messages",
            "100",
            "-V",
            "mqttv5",
        ],
    )
    .await;
    assert_delivered(&s, 500, 2);
    assert_eq!(s.protocol, "mqttv5");
    let s = bench(
        broker.port(),
        &[
            "fanout",
            "-c",
            "5",
            "-q",
            "2",
            "--messages",
            "200",
            "-s",
            "256",
        ],
    )
    .await;
    assert_delivered(&s, 1000, 2);
    assert_eq!((s.publishers, s.subscribers, s.payload_bytes), (1, 5, 256));
}

/// A broker whose per-session queue holds 40 messages: unthrottled publishers overflow it
/// (the broker drops, the run reports losses and fails), while `--max-ahead` keeps the backlog
/// below it and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_keeps_a_small_queue_from_overflowing() {
    let config = mqtt_broker::config::Config {
        max_queued_messages: 40,
        max_inflight: 10,
        ..Default::default()
    };
    let broker = OurBroker::start_with(config);
    let fanin = |max_ahead: &'static str| {
        [
            "fanin",
            "-c",
            "4",
            "-q",
            "1",
            "--messages",
            "2000",
            "--max-ahead",
            max_ahead,
            "--drain",
            "2",
        ]
    };
    let s = bench(broker.port(), &fanin("40")).await;
    assert_delivered(&s, 8000, 1);

    let s = bench(broker.port(), &fanin("0")).await;
    let d = s.delivery.expect("a delivery check");
    assert!(d.lost > 0, "2,000 unthrottled messages fit in 40? {s:#?}");
    assert!(
        !s.ok && s.failures.iter().any(|f| f.contains("lost")),
        "{s:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_paced_and_checked() {
    let broker = OurBroker::start();
    let started = Instant::now();
    let s = bench(
        broker.port(),
        &[
            "latency",
            "-q",
            "1",
            "--messages",
            "50",
            "--rate",
            "200",
            "-V",
            "3",
        ],
    )
    .await;
    assert_delivered(&s, 50, 1);
    // 50 messages at 200 a second take about a quarter of a second, not no time at all.
    assert!(started.elapsed() >= Duration::from_millis(200), "{s:#?}");
    assert_eq!(s.protocol, "mqttv31");
    // QoS 0: losses would be allowed, so the run passes either way.
    let s = bench(
        broker.port(),
        &["latency", "--messages", "20", "--rate", "200"],
    )
    .await;
    assert!(s.ok, "{s:#?}");
    assert_eq!(s.delivery.map(|d| d.qos), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_pub_and_sub() {
    let broker = OurBroker::start();
    let s = bench(broker.port(), &["conn", "-c", "10", "--duration", "0.3"]).await;
    assert_clean(&s);
    assert_eq!(s.connections.connected, 10);
    assert_eq!(s.connect_latency.map(|l| l.count), Some(10));
    assert!(s.elapsed_secs >= 0.3, "{s:#?}");
    assert!(s.connect_rate > 0.0 && s.connect_secs > 0.0, "{s:#?}");
    // At most 2 being set up at once: all 10 still connect.
    let s = bench(
        broker.port(),
        &[
            "conn",
            "-c",
            "10",
            "--connect-concurrency",
            "2",
            "--duration",
            "0.1",
        ],
    )
    .await;
    assert_clean(&s);
    assert_eq!(s.connections.connected, 10);

    let s = bench(
        broker.port(),
        &[
            "pub",
            "-c",
            "3",
            "-q",
            "1",
            "--messages",
            "100",
            "--inflight",
            "10",
        ],
    )
    .await;
    assert_clean(&s);
    assert_eq!((s.sent, s.acked), (300, 300));
    assert_eq!(s.ack_latency.map(|l| l.count), Some(300));
    assert!(s.delivery.is_none());

    // Subscribers hear `pub` runs (another run id), with their latency: publish until both
    // subscribers have had their 100 messages.
    let port = broker.port();
    let sub = tokio::spawn(async move {
        bench(
            port,
            &[
                "sub",
                "-c",
                "2",
                "-t",
                "load/#",
                "--messages",
                "100",
                "--duration",
                "15",
            ],
        )
        .await
    });
    while !sub.is_finished() {
        let p = bench(
            port,
            &[
                "pub",
                "-c",
                "2",
                "-t",
                "load/%i",
                "--messages",
                "25",
                "-q",
                "1",
            ],
        )
        .await;
        assert_clean(&p);
    }
    let s = sub.await.expect("sub");
    assert_clean(&s);
    assert_eq!(s.received, 200, "{s:#?}");
    assert_eq!(s.latency.map(|l| l.count), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_connections_fail_the_run() {
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let s = bench(port, &["pairs", "-c", "2", "--messages", "5"]).await;
    assert!(!s.ok);
    assert_eq!((s.connections.attempted, s.connections.failed), (4, 4));
    assert!(s.failures[0].contains("connections failed"), "{s:#?}");
}

#[test]
fn the_binary_prints_json_and_sets_the_exit_status() {
    let broker = OurBroker::start();
    let run = |args: &[&str]| {
        let port = broker.port().to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mqtt"))
            .arg("bench")
            .args(args)
            .args(["-p", &port, "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mqtt runs");
        let deadline = Instant::now() + LIMIT;
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("mqtt bench {args:?} did not stop");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().expect("output");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "mqtt bench {args:?}: {e}\nstdout: {stdout}\nstderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.code(), json)
    };
    let (code, json) = run(&["pairs", "-c", "3", "-q", "2", "--messages", "100"]);
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["ok"], true);
    assert_eq!(json["scenario"], "pairs");
    assert_eq!(json["delivery"]["expected"], 300);
    assert_eq!(json["delivery"]["lost"], 0);
    assert_eq!(json["delivery"]["duplicates"], 0);

    let (code, json) = run(&["conn", "-c", "2", "--duration", "0.1", "-V", "5"]);
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["connections"]["connected"], 2);
}
