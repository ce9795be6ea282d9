//! `cargo xtask bench-persistence`: what durability costs our broker, measured end to end.
//!
//! - QoS 1 throughput with `mqtt bench fanin` (8 publishers, one subscriber on `bench/#`,
//!   64-byte payloads, persistent sessions): persistence off, then on with `sync = never`,
//!   `batch` and `always`, a fresh broker and data directory per run, the order rotating from
//!   round to round; medians and the ratio to persistence off.
//! - Restart: a data directory filled by the broker core itself (`cargo run --release -p
//!   mqtt-broker --example populate_store`, 1,000,000 retained messages and 100,000 persistent
//!   sessions by default), then the broker started on it several times: the time from the
//!   process start to a CONNACK for a new client (the listener is bound before the store
//!   loads, so a client connecting meanwhile waits), and the broker's memory once loaded.
//!
//! Results go to `docs/benchmarks.md`, between the `persistence` markers.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::bench::{Running, free_port, median, num, rss_kib, words, write_marked};
use crate::tools;

/// The options of `cargo xtask bench-persistence`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    pub(crate) rounds: usize,
    pub(crate) seconds: f64,
    pub(crate) retained: u64,
    pub(crate) sessions: u64,
    pub(crate) write: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rounds: 3,
            seconds: 5.0,
            retained: 1_000_000,
            sessions: 100_000,
            write: true,
        }
    }
}

impl Options {
    /// Parses the arguments after `bench-persistence`.
    pub(crate) fn parse(args: &[&str]) -> Result<Self, String> {
        let mut options = Self::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .map(|v| (*v).to_owned())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            let positive = |text: String, name: &str| {
                text.parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("{name} needs a positive number"))
            };
            match *arg {
                "--rounds" => options.rounds = positive(value("--rounds")?, "--rounds")? as usize,
                "--seconds" => {
                    options.seconds = value("--seconds")?
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 600.0)
                        .ok_or("--seconds needs a number of seconds (at most 600)")?;
                }
                "--retained" => options.retained = positive(value("--retained")?, "--retained")?,
                "--sessions" => options.sessions = positive(value("--sessions")?, "--sessions")?,
                "--no-write" => options.write = false,
                other => return Err(format!("unknown bench-persistence option `{other}`")),
            }
        }
        Ok(options)
    }
}

/// How the broker keeps (or does not keep) its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Never,
    Batch,
    Always,
}

const MODES: [Mode; 4] = [Mode::Off, Mode::Never, Mode::Batch, Mode::Always];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Never => "never",
            Self::Batch => "batch",
            Self::Always => "always",
        }
    }
}

/// Our broker with the benchmark settings of `cargo xtask bench`, persistence as `mode` says.
fn spawn(binary: &Path, work: &Path, mode: Mode, data: &Path, log: &Path) -> Result<Running> {
    let port = free_port()?;
    let mut c = Command::new(binary);
    c.args(["--bind", "127.0.0.1", "-p", &port.to_string()]);
    for setting in [
        "max_inflight=100",
        "max_queued_messages=100000",
        "max_queued_bytes=1073741824",
        "sys_interval_secs=0",
        "max_connections=30000",
    ] {
        c.args(["--set", setting]);
    }
    if mode != Mode::Off {
        c.arg("--persistence")
            .arg("--data-dir")
            .arg(data)
            .args(["--sync", mode.name()]);
    }
    let log = fs::File::create(log)?;
    let child = c
        .current_dir(work)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start mqtt-broker")?;
    Ok(Running { child, port })
}

/// Waits for a CONNACK to a new client; returns how long it took from `since`.
fn wait_connack(broker: &mut Running, since: Instant, limit: Duration) -> Result<Duration> {
    // CONNECT, MQTT 3.1.1, clean session, keep alive 10 s, client id "probe".
    const CONNECT: [u8; 19] = [
        0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 10, 0, 5, b'p', b'r', b'o', b'b', b'e',
    ];
    let deadline = since + limit;
    loop {
        if let Ok(Some(status)) = broker.child.try_wait() {
            bail!("the broker exited ({status})");
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", broker.port)) {
            stream.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())))?;
            stream.write_all(&CONNECT)?;
            let mut connack = [0u8; 4];
            stream
                .read_exact(&mut connack)
                .context("no CONNACK in time")?;
            if connack != [0x20, 2, 0, 0] {
                bail!("unexpected CONNACK {connack:?}");
            }
            return Ok(since.elapsed());
        }
        if Instant::now() > deadline {
            bail!("the broker did not listen within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How long a broker with persistence may take to stop (it writes out what it holds).
const STOP_GRACE: Duration = Duration::from_secs(30);

/// The QoS 1 run: `mqtt bench fanin` with persistent sessions.
fn throughput_args(seconds: f64, port: u16) -> Vec<String> {
    words(&format!(
        "bench fanin -c 8 -q 1 -s 64 -t bench/%i --filter bench/# -I 1 --persistent \
         --duration {seconds} -p {port} --json --quiet"
    ))
}

fn run_throughput(mqtt: &Path, seconds: f64, port: u16) -> Result<Value> {
    let out = Command::new(mqtt)
        .args(throughput_args(seconds, port))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run mqtt bench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .with_context(|| format!("mqtt bench printed no summary: {text:?}"))
}

/// The size of the files in `dir`, in bytes.
fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Runs the benchmark.
pub(crate) fn run(root: &Path, options: &Options) -> Result<()> {
    let work = root.join("target/bench-persistence");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(work.join("logs"))?;
    tools::run(tools::cargo().current_dir(root).args([
        "build",
        "--release",
        "--locked",
        "-p",
        "mqtt-broker",
        "-p",
        "mqtt-cli",
        "--example",
        "populate_store",
    ]))?;
    let broker = root.join("target/release/mqtt-broker");
    let mqtt = root.join("target/release/mqtt");
    let populate = root.join("target/release/examples/populate_store");

    // Throughput.
    let mut runs: Vec<(Mode, f64, f64)> = Vec::new();
    let mut serial = 0;
    for round in 0..options.rounds {
        for k in 0..MODES.len() {
            let mode = MODES[(k + round) % MODES.len()];
            serial += 1;
            let data = work.join(format!("data-{serial}"));
            let log = work.join(format!("logs/{}-{serial}.log", mode.name()));
            let mut b = spawn(&broker, &work, mode, &data, &log)?;
            wait_connack(&mut b, Instant::now(), Duration::from_secs(30))?;
            let summary = run_throughput(&mqtt, options.seconds, b.port);
            b.stop_within(STOP_GRACE);
            let summary = summary?;
            let rate = num(&summary, &["receive_rate"]).unwrap_or(0.0);
            let lost = num(&summary, &["delivery", "lost"]).unwrap_or(f64::NAN);
            println!(
                "round {}/{} {:<6} {:>9.0} msg/s received, lost {lost}",
                round + 1,
                options.rounds,
                mode.name(),
                rate
            );
            if lost != 0.0 || summary["ok"].as_bool() != Some(true) {
                bail!("run {serial} ({}) failed: {summary}", mode.name());
            }
            runs.push((mode, rate, lost));
            let _ = fs::remove_dir_all(&data);
        }
    }

    // Restart.
    let data = work.join("restart-data");
    println!(
        "filling {} with {} retained messages and {} sessions",
        data.display(),
        options.retained,
        options.sessions
    );
    let filled = Instant::now();
    tools::run(
        Command::new(&populate)
            .arg(&data)
            .arg(options.retained.to_string())
            .arg(options.sessions.to_string()),
    )?;
    let fill_secs = filled.elapsed().as_secs_f64();
    let bytes = dir_bytes(&data);
    let mut restarts = Vec::new();
    for i in 0..3 {
        let log = work.join(format!("logs/restart-{i}.log"));
        let started = Instant::now();
        let mut b = spawn(&broker, &work, Mode::Batch, &data, &log)?;
        let took = wait_connack(&mut b, started, Duration::from_secs(120))?;
        let rss = rss_kib(b.pid());
        b.stop_within(STOP_GRACE);
        let loaded = fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("store loaded"))
            .map(str::to_owned)
            .unwrap_or_default();
        println!(
            "restart {}: CONNACK after {:.2} s, {} MiB resident; {loaded}",
            i + 1,
            took.as_secs_f64(),
            rss.map_or(0, |k| k / 1024)
        );
        restarts.push((took.as_secs_f64(), rss));
    }
    let report = report(options, &runs, &restarts, bytes, fill_secs);
    println!("\n{report}");
    if options.write {
        write_marked(
            &root.join("docs/benchmarks.md"),
            "<!-- persistence:begin (written by cargo xtask bench-persistence) -->",
            "<!-- persistence:end -->",
            &report,
        )?;
        println!("wrote docs/benchmarks.md (the persistence section)");
    }
    Ok(())
}

fn report(
    options: &Options,
    runs: &[(Mode, f64, f64)],
    restarts: &[(f64, Option<u64>)],
    bytes: u64,
    fill_secs: f64,
) -> String {
    let mut md = String::new();
    let date = Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "Measured {date} with `cargo xtask bench-persistence --rounds {} --seconds {}`: our \
         broker (release build) on loopback, a fresh broker and data directory per run, the \
         order of the modes rotating from round to round; medians of {} rounds.\n",
        options.rounds, options.seconds, options.rounds
    );
    let _ = writeln!(
        md,
        "**QoS 1 throughput**: `mqtt {}` (8 publishers → 1 subscriber, persistent sessions, \
         64-byte payloads; every message acknowledged and delivered, none lost).\n",
        throughput_args(options.seconds, 0)
            .iter()
            .filter(|w| !["-p", "0", "--json", "--quiet"].contains(&w.as_str()))
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    );
    md.push_str("| persistence | msg/s (median) | of persistence off |\n|---|---:|---:|\n");
    let off = median(
        runs.iter()
            .filter(|r| r.0 == Mode::Off)
            .map(|r| r.1)
            .collect(),
    );
    for mode in MODES {
        let m = median(runs.iter().filter(|r| r.0 == mode).map(|r| r.1).collect());
        let ratio = match (m, off) {
            (Some(m), Some(o)) if o > 0.0 => format!("{:.2}x", m / o),
            _ => "-".into(),
        };
        let label = match mode {
            Mode::Off => "off (in memory)".to_owned(),
            _ => format!("on, `sync = \"{}\"`", mode.name()),
        };
        let _ = writeln!(
            md,
            "| {label} | {} | {ratio} |",
            m.map_or("-".into(), |v| format!("{v:.0}"))
        );
    }
    let restart = median(restarts.iter().map(|r| r.0).collect());
    let rss = median(
        restarts
            .iter()
            .filter_map(|r| r.1)
            .map(|k| k as f64 / 1024.0)
            .collect(),
    );
    let _ = writeln!(
        md,
        "\n**Restart** with {} retained messages and {} persistent sessions (one subscription \
         each), filled by the broker core in {fill_secs:.1} s (`populate_store`); {:.0} MiB on \
         disk. Time from starting the process to a new client's CONNACK, median of {} starts: \
         **{}**; resident memory once loaded: {} MiB.",
        options.retained,
        options.sessions,
        bytes as f64 / (1024.0 * 1024.0),
        restarts.len(),
        restart.map_or("-".into(), |s| format!("{s:.2} s")),
        rss.map_or("-".into(), |m| format!("{m:.0}"))
    );
    md
}
