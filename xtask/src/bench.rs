//! `cargo xtask bench`: our broker, Mosquitto and rumqttd side by side on loopback, driven by
//! `mqtt bench`, in the same run.
//!
//! For every round and every scenario, each broker in turn (the order rotates from round to
//! round, so no broker always runs first or last) is started fresh on a free loopback port with
//! equivalent settings (no persistence, large queues, 100 QoS 1/2 messages in flight to a
//! client, no authentication), one `mqtt bench ...
//! --json` runs against it, and the broker is stopped. The medians over the rounds, and the
//! ratios ours/Mosquitto and ours/rumqttd, go to `docs/benchmarks.md` (between the `e2e` markers)
//! with a chart, `docs/benchmarks-e2e.svg`; every run's JSON goes to `target/bench/runs.json`.
//!
//! Flow control is `mqtt bench`'s `--max-ahead` (1,000 messages), the same for every broker, so
//! publishers never outrun a subscriber into a broker's queue limit.
//!
//! Peers: Mosquitto from Debian (installed when missing, as for the tests), rumqttd built with
//! `cargo install` into `target/bench-tools` (once).

use std::fmt::Write as _;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::tools;

/// The rumqttd release measured against.
const RUMQTTD_VERSION: &str = "0.20.0";

/// Connections held in the `conn_max` scenario: as many as fit under the ~20,000 open files a
/// process may hold here (the bench process and the broker each hold one per connection).
const MAX_CONNECTIONS: u32 = 19_000;

/// The options of `cargo xtask bench`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    /// Rounds (each scenario runs once per broker per round).
    pub(crate) rounds: usize,
    /// Seconds each throughput and latency run publishes.
    pub(crate) seconds: f64,
    /// Only these scenarios (all when empty).
    pub(crate) only: Vec<String>,
    /// Write the results into `docs/`.
    pub(crate) write: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rounds: 3,
            seconds: 5.0,
            only: Vec::new(),
            write: true,
        }
    }
}

impl Options {
    /// Parses the arguments after `bench`.
    pub(crate) fn parse(args: &[&str]) -> Result<Self, String> {
        let mut options = Self::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .map(|v| (*v).to_owned())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match *arg {
                "--rounds" => {
                    options.rounds = value("--rounds")?
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or("--rounds needs a positive number")?;
                }
                "--seconds" => {
                    options.seconds = value("--seconds")?
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 600.0)
                        .ok_or("--seconds needs a number of seconds (at most 600)")?;
                }
                "--only" => {
                    let list = value("--only")?;
                    for name in list.split(',') {
                        if !SCENARIOS.iter().any(|s| s.name == name) {
                            return Err(format!("no scenario named `{name}`"));
                        }
                        options.only.push(name.to_owned());
                    }
                }
                "--no-write" => options.write = false,
                other => return Err(format!("unknown bench option `{other}`")),
            }
        }
        Ok(options)
    }
}

/// What a scenario measures, and so which figures it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    /// Messages delivered per second (higher is better).
    Throughput,
    /// End-to-end latency at a fixed rate (lower is better).
    Latency,
    /// Connect rate (higher is better) and broker memory per connection (lower is better).
    Connections,
}

/// One scenario: `mqtt bench` arguments (the port and `--json` are added).
struct Scenario {
    name: &'static str,
    title: &'static str,
    measure: Measure,
    args: fn(f64) -> Vec<String>,
}

pub(crate) fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// The scenarios of issue 6, 64-byte payloads unless said.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "fanin_q0",
        title: "fan-in QoS 0: 8 publishers → 1 subscriber (bench/#)",
        measure: Measure::Throughput,
        args: |s| {
            words(&format!(
                "fanin -c 8 -q 0 -s 64 -t bench/%i --filter bench/# -I 1 --duration {s}"
            ))
        },
    },
    Scenario {
        name: "fanin_q1",
        title: "fan-in QoS 1: 8 publishers → 1 subscriber (bench/#)",
        measure: Measure::Throughput,
        args: |s| {
            words(&format!(
                "fanin -c 8 -q 1 -s 64 -t bench/%i --filter bench/# -I 1 --duration {s}"
            ))
        },
    },
    Scenario {
        name: "fanout_q0",
        title: "fan-out QoS 0: 1 publisher → 100 subscribers (deliveries/s)",
        measure: Measure::Throughput,
        args: |s| words(&format!("fanout -c 100 -q 0 -s 64 -I 1 --duration {s}")),
    },
    Scenario {
        name: "pairs_q0",
        title: "pairs QoS 0: 50 publisher/subscriber pairs",
        measure: Measure::Throughput,
        args: |s| words(&format!("pairs -c 50 -q 0 -s 64 -I 1 --duration {s}")),
    },
    Scenario {
        name: "large_q1",
        title: "large messages QoS 1: 4 pairs, 256 KiB payloads",
        measure: Measure::Throughput,
        args: |s| {
            words(&format!(
                "pairs -c 4 -q 1 -s 262144 --max-ahead 64 -I 1 --duration {s}"
            ))
        },
    },
    Scenario {
        name: "latency_q0",
        title: "latency QoS 0 at 10,000 msg/s",
        measure: Measure::Latency,
        args: |s| words(&format!("latency -q 0 -s 64 --rate 10000 --duration {s}")),
    },
    Scenario {
        name: "latency_q1",
        title: "latency QoS 1 at 10,000 msg/s",
        measure: Measure::Latency,
        args: |s| words(&format!("latency -q 1 -s 64 --rate 10000 --duration {s}")),
    },
    Scenario {
        name: "conn_10k",
        title: "10,000 idle connections",
        measure: Measure::Connections,
        args: |_| words("conn -c 10000 -I 0 --duration 2 --connect-timeout 30"),
    },
    Scenario {
        name: "conn_max",
        title: "19,000 idle connections (about the most this machine's file limit allows)",
        measure: Measure::Connections,
        args: |_| {
            words(&format!(
                "conn -c {MAX_CONNECTIONS} -I 0 --duration 2 --connect-timeout 30"
            ))
        },
    },
];

/// The brokers compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broker {
    Ours,
    Mosquitto,
    Rumqttd,
}

const BROKERS: [Broker; 3] = [Broker::Ours, Broker::Mosquitto, Broker::Rumqttd];

impl Broker {
    fn name(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::Mosquitto => "mosquitto",
            Self::Rumqttd => "rumqttd",
        }
    }
}

/// Where things are.
struct Paths {
    root: PathBuf,
    work: PathBuf,
    broker: PathBuf,
    mqtt: PathBuf,
    rumqttd: PathBuf,
}

/// A broker process on a loopback port (killed when dropped).
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) port: u16,
}

impl Running {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after 5 s.
    fn stop(self) {
        self.stop_within(Duration::from_secs(5));
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub(crate) fn stop_within(mut self, grace: Duration) {
        let _ = Command::new("kill")
            .arg(self.pid().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A free loopback port (bound, read, released).
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts `broker` with its benchmark configuration and waits until it accepts connections.
fn start(broker: Broker, paths: &Paths, serial: usize) -> Result<Running> {
    let port = free_port()?;
    let name = broker.name();
    // rumqttd tells the format by the extension.
    let extension = if broker == Broker::Mosquitto {
        "conf"
    } else {
        "toml"
    };
    let config = paths.work.join(format!("{name}.{extension}"));
    let log = fs::File::create(paths.work.join(format!("logs/{name}-{serial}.log")))?;
    let mut command = match broker {
        Broker::Ours => {
            fs::write(
                &config,
                "# cargo xtask bench: large queues, 100 QoS 1/2 messages in flight to a client\n\
                 # (rumqttd's default), room for the connection scenarios.\n\
                 max_connections = 30000\n\
                 max_inflight = 100\n\
                 max_queued_messages = 100000\n\
                 max_queued_bytes = 1073741824\n\
                 max_packet_size = 1048576\n\
                 sys_interval_secs = 0\n",
            )?;
            let mut c = Command::new(&paths.broker);
            c.arg("-c")
                .arg(&config)
                .args(["--bind", "127.0.0.1", "-p", &port.to_string()]);
            c
        }
        Broker::Mosquitto => {
            fs::write(
                &config,
                format!(
                    "# cargo xtask bench: no persistence, large queues, no authentication.\n\
                     listener {port} 127.0.0.1\n\
                     allow_anonymous true\n\
                     persistence false\n\
                     max_connections -1\n\
                     max_queued_messages 100000\n\
                     max_inflight_messages 100\n\
                     set_tcp_nodelay true\n\
                     log_dest stderr\n\
                     log_type error\n\
                     log_type warning\n"
                ),
            )?;
            let mut c = Command::new(mosquitto_program());
            c.arg("-c").arg(&config);
            c
        }
        Broker::Rumqttd => {
            fs::write(
                &config,
                format!(
                    "# cargo xtask bench: rumqttd {RUMQTTD_VERSION}'s defaults, but the listen address,\n\
                     # room for the connection scenarios and 256 KiB payloads.\n\
                     id = 0\n\
                     [router]\n\
                     id = 0\n\
                     max_connections = 30000\n\
                     max_outgoing_packet_count = 200\n\
                     max_segment_size = 104857600\n\
                     max_segment_count = 10\n\
                     [v4.1]\n\
                     name = \"v4-1\"\n\
                     listen = \"127.0.0.1:{port}\"\n\
                     next_connection_delay_ms = 1\n\
                     [v4.1.connections]\n\
                     connection_timeout_ms = 60000\n\
                     max_payload_size = 1048576\n\
                     max_inflight_count = 100\n\
                     dynamic_filters = true\n"
                ),
            )?;
            let mut c = Command::new(&paths.rumqttd);
            c.arg("-c").arg(&config);
            c
        }
    };
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    let mut running = Running { child, port };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // Let a broker that accepts before it is fully up finish starting.
            std::thread::sleep(Duration::from_millis(200));
            return Ok(running);
        }
        if let Ok(Some(status)) = running.child.try_wait() {
            bail!(
                "{name} exited at start ({status}); see {}",
                paths.work.join("logs").display()
            );
        }
        if Instant::now() > deadline {
            bail!("{name} did not listen on port {port} within 15 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mosquitto_program() -> &'static str {
    if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

/// The resident memory of process `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One `mqtt bench` run against one broker.
#[derive(Debug, Clone)]
struct Run {
    scenario: &'static str,
    broker: Broker,
    round: usize,
    summary: Value,
    rss_before_kib: Option<u64>,
    rss_peak_kib: Option<u64>,
}

/// Runs one scenario against a running broker, sampling its memory while it runs.
fn run_bench(
    paths: &Paths,
    scenario: &Scenario,
    seconds: f64,
    broker: &Running,
) -> Result<(Value, Option<u64>, Option<u64>)> {
    let before = rss_kib(broker.pid());
    let mut args = (scenario.args)(seconds);
    args.extend(words(&format!("-p {} --json --quiet", broker.port)));
    let out = paths.work.join("bench.out");
    let mut child = Command::new(&paths.mqtt)
        .arg("bench")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out)?)
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start mqtt bench")?;
    // `mqtt bench` bounds itself; this bounds it again, generously.
    let deadline = Instant::now() + Duration::from_secs_f64(seconds + 120.0);
    let mut peak = before;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        peak = peak.max(rss_kib(broker.pid()));
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("mqtt bench {} did not stop in time", scenario.name);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = fs::read_to_string(&out)?;
    let summary: Value = serde_json::from_str(text.trim()).with_context(|| {
        format!(
            "mqtt bench {} ({status}) printed no summary: {text:?}",
            scenario.name
        )
    })?;
    Ok((summary, before, peak))
}

/// Runs the benchmarks.
pub(crate) fn run(root: &Path, options: &Options) -> Result<()> {
    tools::ensure_debian_packages(&[("mosquitto", "/usr/sbin/mosquitto")])?;
    let work = root.join("target/bench");
    fs::create_dir_all(work.join("logs"))?;
    let rumqttd = ensure_rumqttd(root)?;
    tools::run(tools::cargo().current_dir(root).args([
        "build",
        "--release",
        "--locked",
        "-p",
        "mqtt-broker",
        "-p",
        "mqtt-cli",
    ]))?;
    let paths = Paths {
        root: root.to_owned(),
        broker: root.join("target/release/mqtt-broker"),
        mqtt: root.join("target/release/mqtt"),
        rumqttd,
        work,
    };
    let scenarios: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| options.only.is_empty() || options.only.iter().any(|o| o == s.name))
        .collect();

    let started = Instant::now();
    let mut runs = Vec::new();
    let mut serial = 0;
    for round in 0..options.rounds {
        for scenario in &scenarios {
            for k in 0..BROKERS.len() {
                // Rotate who goes first, round after round and scenario after scenario.
                let broker = BROKERS[(k + round + serial / BROKERS.len()) % BROKERS.len()];
                serial += 1;
                let running = start(broker, &paths, serial)?;
                println!(
                    "round {}/{} {:<10} {:<9} port {}",
                    round + 1,
                    options.rounds,
                    scenario.name,
                    broker.name(),
                    running.port
                );
                let result = run_bench(&paths, scenario, options.seconds, &running);
                running.stop();
                let (summary, rss_before_kib, rss_peak_kib) = result?;
                println!("    {}", one_line(scenario.measure, &summary));
                runs.push(Run {
                    scenario: scenario.name,
                    broker,
                    round,
                    summary,
                    rss_before_kib,
                    rss_peak_kib,
                });
            }
        }
    }
    let elapsed = started.elapsed();

    let raw: Vec<Value> = runs
        .iter()
        .map(|r| {
            serde_json::json!({
                "scenario": r.scenario, "broker": r.broker.name(), "round": r.round + 1,
                "rss_before_kib": r.rss_before_kib, "rss_peak_kib": r.rss_peak_kib,
                "summary": r.summary,
            })
        })
        .collect();
    fs::write(
        paths.work.join("runs.json"),
        serde_json::to_string_pretty(&raw)?,
    )?;
    let versions = versions(&paths);
    let report = report(&scenarios, &runs, options, &versions, elapsed);
    println!("\n{report}");
    if options.write {
        let svg = chart(&scenarios, &runs);
        fs::write(paths.root.join("docs/benchmarks-e2e.svg"), svg)?;
        write_section(&paths.root.join("docs/benchmarks.md"), &report)?;
        println!("wrote docs/benchmarks.md (the e2e section) and docs/benchmarks-e2e.svg");
    }
    let problems = problems(&runs);
    if problems.iter().any(|p| p.starts_with("ours")) {
        bail!("our broker failed a run:\n{}", problems.join("\n"));
    }
    Ok(())
}

/// rumqttd, built once into `target/bench-tools`. Its published lock file pins a `metrics`
/// release that no longer compiles with current Rust, so it is installed without `--locked`.
fn ensure_rumqttd(root: &Path) -> Result<PathBuf> {
    let tools_dir = root.join("target/bench-tools");
    let program = tools_dir.join("bin/rumqttd");
    if program.is_file() {
        println!("found {}", program.display());
        return Ok(program);
    }
    println!(
        "building rumqttd {RUMQTTD_VERSION} (once) into {}",
        tools_dir.display()
    );
    tools::run(
        tools::cargo()
            .args(["install", "rumqttd", "--version", RUMQTTD_VERSION, "--root"])
            .arg(&tools_dir),
    )?;
    Ok(program)
}

fn versions(paths: &Paths) -> Vec<(String, String)> {
    let first_line = |c: &mut Command| {
        tools::output(c)
            .and_then(|o| o.lines().next().map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned())
    };
    let commit = first_line(Command::new("git").current_dir(&paths.root).args([
        "rev-parse",
        "--short",
        "HEAD",
    ]));
    // `mosquitto -h` prints its version first and exits with status 3.
    let mosquitto = Command::new(mosquitto_program())
        .arg("-h")
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned());
    vec![
        ("ours".to_owned(), format!("mqtt-broker at {commit}")),
        ("Mosquitto".to_owned(), mosquitto),
        ("rumqttd".to_owned(), RUMQTTD_VERSION.to_owned()),
        (
            "rustc".to_owned(),
            first_line(Command::new("rustc").arg("--version")),
        ),
    ]
}

pub(crate) fn num(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_f64()
}

/// The line printed after each run.
fn one_line(measure: Measure, s: &Value) -> String {
    let ok = if s["ok"].as_bool() == Some(true) {
        "ok"
    } else {
        "FAILED"
    };
    match measure {
        Measure::Throughput => format!(
            "{ok}: {:.0} msg/s received, lost {}",
            num(s, &["receive_rate"]).unwrap_or(0.0),
            num(s, &["delivery", "lost"]).unwrap_or(0.0)
        ),
        Measure::Latency => format!(
            "{ok}: p50 {} µs, p99 {} µs",
            num(s, &["latency", "p50_us"]).unwrap_or(f64::NAN),
            num(s, &["latency", "p99_us"]).unwrap_or(f64::NAN)
        ),
        Measure::Connections => format!(
            "{ok}: {} connected at {:.0}/s",
            num(s, &["connections", "connected"]).unwrap_or(0.0),
            num(s, &["connect_rate"]).unwrap_or(0.0)
        ),
    }
}

pub(crate) fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The median of `figure` over the runs of `scenario` on `broker`.
fn median_of(
    runs: &[Run],
    scenario: &str,
    broker: Broker,
    figure: impl Fn(&Run) -> Option<f64>,
) -> Option<f64> {
    median(
        runs.iter()
            .filter(|r| r.scenario == scenario && r.broker == broker)
            .filter_map(&figure)
            .collect(),
    )
}

/// Bytes of broker memory per connection: the growth of its resident memory over the run.
fn bytes_per_connection(r: &Run) -> Option<f64> {
    let connected = num(&r.summary, &["connections", "connected"])?;
    let grown = r.rss_peak_kib?.checked_sub(r.rss_before_kib?)?;
    (connected > 0.0).then(|| grown as f64 * 1024.0 / connected)
}

/// The figures of a scenario: (label, better-is-higher, how to read it from a run).
type Figure = (&'static str, bool, fn(&Run) -> Option<f64>);

fn figures(measure: Measure) -> Vec<Figure> {
    match measure {
        Measure::Throughput => vec![("msg/s received", true, |r| {
            num(&r.summary, &["receive_rate"])
        })],
        Measure::Latency => vec![
            ("p50 µs", false, |r| {
                num(&r.summary, &["latency", "p50_us"])
            }),
            ("p99 µs", false, |r| {
                num(&r.summary, &["latency", "p99_us"])
            }),
            ("p99.9 µs", false, |r| {
                num(&r.summary, &["latency", "p999_us"])
            }),
            ("max µs", false, |r| {
                num(&r.summary, &["latency", "max_us"])
            }),
        ],
        Measure::Connections => vec![
            ("connections/s", true, |r| {
                num(&r.summary, &["connect_rate"])
            }),
            ("bytes/connection", false, bytes_per_connection),
        ],
    }
}

fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "–".to_owned(),
        Some(v) if v.abs() >= 100.0 => {
            // Thousands separated, as the rest of docs/benchmarks.md.
            let s = format!("{:.0}", v);
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 && c != '-' {
                    out.push(',');
                }
                out.push(c);
            }
            out
        }
        Some(v) => format!("{v:.1}"),
    }
}

fn ratio(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "–".to_owned(),
    }
}

/// What went wrong in the runs: failed connections, lost or doubled messages.
fn problems(runs: &[Run]) -> Vec<String> {
    let mut out = Vec::new();
    for r in runs {
        if r.summary["ok"].as_bool() != Some(true) {
            let failures: Vec<&str> = r.summary["failures"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            out.push(format!(
                "{} {} round {}: {}",
                r.broker.name(),
                r.scenario,
                r.round + 1,
                failures.join("; ")
            ));
        }
    }
    out
}

/// The Markdown report.
fn report(
    scenarios: &[&Scenario],
    runs: &[Run],
    options: &Options,
    versions: &[(String, String)],
    elapsed: Duration,
) -> String {
    let mut md = String::new();
    let date = tools::output(Command::new("date").arg("+%Y-%m-%d"))
        .map(|d| d.trim().to_owned())
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "## End to end: ours, Mosquitto and rumqttd side by side\n"
    );
    let mut command = format!(
        "cargo xtask bench --rounds {} --seconds {}",
        options.rounds, options.seconds
    );
    if !options.only.is_empty() {
        let _ = write!(command, " --only {}", options.only.join(","));
    }
    let _ = writeln!(
        md,
        "{date}. Command: `{command}` ({:.0} min). {} rounds, brokers in rotating order, each \
         run on a freshly started broker; medians over the rounds. Versions: {}. Client: `mqtt \
         bench` (release build) on the same 2 cores as the broker; flow control `--max-ahead \
         1000`. Ratios above 1 favour us for rates, below 1 for latency and memory. Every run's \
         JSON: `target/bench/runs.json`.\n",
        elapsed.as_secs_f64() / 60.0,
        options.rounds,
        versions
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let _ = writeln!(md, "![chart](benchmarks-e2e.svg)\n");
    let _ = writeln!(
        md,
        "| scenario | figure | ours | Mosquitto | rumqttd | ours/Mosquitto | ours/rumqttd |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|");
    for s in scenarios {
        for (label, _, figure) in figures(s.measure) {
            let m: Vec<Option<f64>> = BROKERS
                .iter()
                .map(|b| median_of(runs, s.name, *b, figure))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {label} | {} | {} | {} | {} | {} |",
                s.title,
                fmt_num(m[0]),
                fmt_num(m[1]),
                fmt_num(m[2]),
                ratio(m[0], m[1]),
                ratio(m[0], m[2]),
            );
        }
    }
    let problems = problems(runs);
    let _ = writeln!(md);
    if problems.is_empty() {
        let _ = writeln!(
            md,
            "Every run: all connections up, nothing lost at QoS 1, nothing doubled."
        );
    } else {
        let _ = writeln!(md, "Runs that failed (connections, losses, duplicates):\n");
        for p in problems {
            let _ = writeln!(md, "- {p}");
        }
    }
    md
}

/// Replaces the text between the e2e markers of `docs/benchmarks.md` (appending them once).
fn write_section(path: &Path, section: &str) -> Result<()> {
    write_marked(
        path,
        "<!-- e2e:begin (written by cargo xtask bench) -->",
        "<!-- e2e:end -->",
        section,
    )
}

/// Replaces the text between the markers `begin` and `end` of the file at `path` (appending
/// them, with the text, when they are not there yet).
pub(crate) fn write_marked(path: &Path, begin: &str, end: &str, section: &str) -> Result<()> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let block = format!("{begin}\n{section}{end}\n");
    let new = match (text.find(begin), text.find(end)) {
        (Some(b), Some(e)) if e > b => {
            format!(
                "{}{block}{}",
                &text[..b],
                text[e + end.len()..].trim_start_matches('\n')
            )
        }
        _ => format!("{}\n{block}", text.trim_end()),
    };
    fs::write(path, new)?;
    Ok(())
}

/// A bar chart, one panel per figure: each broker's median, scaled to the largest in the panel.
fn chart(scenarios: &[&Scenario], runs: &[Run]) -> String {
    const WIDTH: f64 = 960.0;
    const LABEL: f64 = 330.0;
    const BAR_MAX: f64 = 480.0;
    const BAR: f64 = 14.0;
    const COLORS: [&str; 3] = ["#d9480f", "#1971c2", "#5c940d"];
    let mut panels = Vec::new();
    for s in scenarios {
        for (label, higher, figure) in figures(s.measure) {
            if s.measure == Measure::Latency && label != "p99 µs" {
                continue;
            }
            let values: Vec<Option<f64>> = BROKERS
                .iter()
                .map(|b| median_of(runs, s.name, *b, figure))
                .collect();
            panels.push((format!("{} — {label}", s.title), higher, values));
        }
    }
    let height = 40.0 + panels.len() as f64 * (3.0 * (BAR + 4.0) + 26.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let mut x = 10.0;
    for (i, b) in BROKERS.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="10" width="12" height="12" fill="{}"/><text x="{}" y="21">{}</text>"#,
            COLORS[i],
            x + 16.0,
            b.name()
        );
        x += 110.0;
    }
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="21" fill="#555">bars scaled per panel; (↑) higher is better, (↓) lower is better</text>"##,
        x + 10.0
    );
    let mut y = 40.0;
    for (title, higher, values) in panels {
        let arrow = if higher { "↑" } else { "↓" };
        let _ = writeln!(
            svg,
            r#"<text x="10" y="{}" font-weight="bold">{} ({arrow})</text>"#,
            y + 12.0,
            escape(&title)
        );
        y += 18.0;
        let max = values.iter().flatten().copied().fold(0.0, f64::max);
        for (i, v) in values.iter().enumerate() {
            let w = match v {
                Some(v) if max > 0.0 => (v / max * BAR_MAX).max(1.0),
                _ => 0.0,
            };
            let _ = writeln!(
                svg,
                r##"<text x="{}" y="{}" text-anchor="end" fill="#333">{}</text><rect x="{LABEL}" y="{y}" width="{w:.1}" height="{BAR}" fill="{}"/><text x="{}" y="{}">{}</text>"##,
                LABEL - 6.0,
                y + BAR - 3.0,
                BROKERS[i].name(),
                COLORS[i],
                LABEL + w + 6.0,
                y + BAR - 3.0,
                fmt_num(*v)
            );
            y += BAR + 4.0;
        }
        y += 8.0;
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        assert_eq!(Options::parse(&[]), Ok(Options::default()));
        let o = Options::parse(&[
            "--rounds",
            "1",
            "--seconds",
            "2",
            "--only",
            "fanin_q0,conn_10k",
            "--no-write",
        ])
        .unwrap();
        assert_eq!((o.rounds, o.seconds, o.write), (1, 2.0, false));
        assert_eq!(o.only, ["fanin_q0", "conn_10k"]);
        for bad in [
            &["--rounds", "0"][..],
            &["--seconds", "x"],
            &["--only", "nope"],
            &["--rounds"],
            &["-x"],
        ] {
            assert!(Options::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn medians_and_numbers() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![f64::NAN]), None);
        assert_eq!(fmt_num(Some(1234567.4)), "1,234,567");
        assert_eq!(fmt_num(Some(512.0)), "512");
        assert_eq!(fmt_num(Some(0.43)), "0.4");
        assert_eq!(fmt_num(None), "–");
        assert_eq!(ratio(Some(3.0), Some(2.0)), "1.50x");
        assert_eq!(ratio(Some(3.0), Some(0.0)), "–");
    }

    #[test]
    fn every_scenario_is_a_valid_mqtt_bench_command_line() {
        for s in SCENARIOS {
            let args = (s.args)(1.0);
            assert!(
                ["conn", "fanin", "fanout", "pairs", "latency"].contains(&args[0].as_str()),
                "{}",
                s.name
            );
            assert!(
                !args.iter().any(|a| a == "-p" || a == "--json"),
                "{}",
                s.name
            );
        }
    }

    #[test]
    fn the_section_is_replaced_in_place() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.md");
        fs::write(&path, "# Title\n\nbefore\n").unwrap();
        write_section(&path, "one\n").unwrap();
        write_section(&path, "two\n").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Title\n\nbefore\n"), "{text}");
        assert!(text.contains("two\n") && !text.contains("one\n"), "{text}");
        assert_eq!(text.matches("e2e:begin").count(), 1, "{text}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_the_memory_of_this_process() {
        assert!(rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }
}
