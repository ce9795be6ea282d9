//! `mqtt bench`: a load generator for MQTT brokers, in the spirit of emqtt-bench.
//!
//! Seven scenarios ([`Scenario`]) share one set of options ([`BenchOptions`]):
//!
//! - `conn`: open connections at a rate, hold them, report connect latency and failures;
//! - `pub` / `sub`: publishers only / subscribers only (run both, in two processes, to
//!   measure across them: payloads carry a wall-clock timestamp);
//! - `fanin`, `fanout`, `pairs`, `latency`: publishers and subscribers in this process, which
//!   also **check delivery**: every payload carries its publisher and a sequence number, each
//!   subscriber records which arrived, and after the publishers stop (and a bounded drain) the
//!   run reports the messages `lost` and `duplicates`. A lost QoS 1 or 2 message, a doubled
//!   QoS 2 message, a failed connection or publish makes the run fail (exit status 1).
//!
//! Every run is bounded: by `--duration` (10 s when neither it nor `--messages` is given), by
//! `--messages` per publisher, and by `--drain` for what is still in flight at the end.
//!
//! One task per client: a publisher keeps up to `--inflight` messages in flight with
//! [`Client::send`] and collects the [`Ack`]s in order; a subscriber reads its
//! [`Events`](mqtt_client::Events). Each task keeps its own histogram and counters; they are
//! merged at the end, so the hot path takes no lock.
//!
//! [`execute`] runs a benchmark and returns its [`Summary`]; [`run`] is the command: it also
//! prints the live progress line (stderr) and the summary (stdout, or one JSON object with
//! `--json`), and turns the verdict into the exit status.

mod flow;
mod payload;
mod progress;
mod report;
mod stats;

use std::collections::VecDeque;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::{Pin, pin};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgAction, Args, Subcommand};
use hdrhistogram::Histogram;
use mqtt_client::{
    Ack, Client, ConnectOptions, Event, OutgoingMessage, ProtocolVersion, QoS, TlsOptions,
    TopicFilter, TopicName,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};

use self::flow::Flow;
use self::payload::{Header, PayloadMaker, Tracker};
use self::progress::Progress;
pub use self::report::{ConnectionSummary, DeliverySummary, Summary};
pub use self::stats::Latency;
use self::stats::{Connections, Counters};

/// How long a run lasts when neither `--duration` nor `--messages` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// A publisher that has neither sent nor had an acknowledgement for this long gives up.
const STALL: Duration = Duration::from_secs(30);

/// At QoS 0, draining ends once nothing has arrived for this long.
const QOS0_IDLE: Duration = Duration::from_millis(500);

/// A paced publisher that falls further behind than this forgets the backlog rather than
/// sending it in one burst.
const MAX_LAG: Duration = Duration::from_secs(1);

/// "No deadline": far enough for any run, near enough for tokio's timer.
const FAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// How many problems of one kind the summary quotes.
const QUOTED_ERRORS: usize = 3;

/// `mqtt bench`: a load generator for MQTT brokers.
#[derive(Args, Debug)]
#[command(
    about = "Load generator: connections, publishers and subscribers, with latency and delivery checks",
    long_about = None
)]
pub struct BenchArgs {
    /// The scenario to run.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// What `mqtt bench` does.
#[derive(Subcommand, Debug)]
pub enum Scenario {
    /// Open -c connections, -I ms apart, hold them for the duration; report connect latency
    /// and failures.
    Conn(BenchOptions),
    /// -c publishers, paced by --rate or as fast as --inflight allows; report msg/s and
    /// publish-to-acknowledgement latency.
    Pub(BenchOptions),
    /// -c subscribers on the -t filter; report received msg/s (and latency, for payloads
    /// from `mqtt bench`).
    Sub(BenchOptions),
    /// -c publishers, one subscriber on all their topics; check delivery.
    Fanin(BenchOptions),
    /// One publisher, -c subscribers; check delivery.
    Fanout(BenchOptions),
    /// -c publisher/subscriber pairs, each on its own topic; check delivery.
    Pairs(BenchOptions),
    /// One pair (or -c) paced at --rate (default 100 msg/s); report end-to-end latency and
    /// check delivery.
    Latency(BenchOptions),
}

/// The options every scenario takes (some scenarios ignore some of them).
#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct BenchOptions {
    /// The broker's host.
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    pub host: String,
    /// The broker's port [default: 1883, 8883 with TLS].
    #[arg(short = 'p', long)]
    pub port: Option<u16>,
    /// The broker as a URL, instead of -h/-p: mqtt://user:password@host:port (user, password
    /// and port optional), or mqtts://… for TLS.
    #[arg(long, conflicts_with_all = ["host", "port"])]
    pub url: Option<String>,
    /// MQTT version: mqttv31, mqttv311 or mqttv5 (or 3, 4, 5).
    #[arg(short = 'V', long = "protocol-version", default_value = "mqttv311",
          value_parser = parse_protocol)]
    pub protocol_version: ProtocolVersion,
    /// User name.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password.
    #[arg(short = 'P', long)]
    pub password: Option<String>,
    /// Connect with TLS (implied by --cafile, --cert and --insecure).
    #[arg(long)]
    pub tls: bool,
    /// Trust the CA certificates in this PEM file instead of the system roots.
    #[arg(long, value_name = "FILE")]
    pub cafile: Option<PathBuf>,
    /// Client certificate chain (PEM), with --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM), with --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Do not check that the server certificate's name matches the host.
    #[arg(long)]
    pub insecure: bool,
    /// QoS of the messages and subscriptions.
    #[arg(short = 'q', long, default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Payload size in bytes (at least 24: the header with publisher, sequence number and
    /// timestamp).
    #[arg(short = 's', long, default_value_t = 32)]
    pub size: usize,
    /// Topic pattern; %i is the client's number (from 1), %c its client id. For `sub`, the
    /// filter. [default: pub bench/%i, sub bench/#, fanin bench/fanin/%i, fanout
    /// bench/fanout, pairs bench/pairs/%i, latency bench/latency/%i]
    #[arg(short = 't', long)]
    pub topic: Option<String>,
    /// fanin/fanout: the subscribers' filter [default: the topic pattern with each level
    /// that holds %i or %c made `+`].
    #[arg(long)]
    pub filter: Option<String>,
    /// Connections (conn), publishers (pub, fanin), subscribers (sub, fanout) or pairs (pairs,
    /// latency) [default: 10; latency 1].
    #[arg(short = 'c', long)]
    pub count: Option<u32>,
    /// Milliseconds between connection starts (the connection rate); 0 starts them all at
    /// once.
    #[arg(short = 'I', long = "interval-ms", default_value_t = 10)]
    pub interval_ms: u64,
    /// Connections being set up at once at most (TCP, TLS, CONNACK, SUBACK); the others wait
    /// their turn. Keeps `-I 0` from overflowing the broker's listen backlog.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_concurrency: u32,
    /// Messages per second per publisher; 0 sends as fast as --inflight allows [default: 0;
    /// latency 100].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Messages in flight per publisher (sent, not yet acknowledged; also the client's
    /// in-flight window).
    #[arg(long, default_value_t = 100,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub inflight: u16,
    /// fanin, fanout, pairs, latency: the most messages a subscriber may have outstanding
    /// (sent to it, not yet received), shared among the publishers it hears from; a publisher
    /// waits for its slowest subscriber. 0: no limit (publishers run as fast as the broker
    /// acknowledges, and a broker that drops messages when a queue overflows will).
    #[arg(long, value_name = "MESSAGES", default_value_t = 1000)]
    pub max_ahead: u64,
    /// Seconds to run (publish, or hold the connections) once every client is connected
    /// [default: 10 when --messages is not given].
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Messages per publisher (`sub`: per subscriber), then stop.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Seconds to wait, after the publishers stop, for acknowledgements and messages still
    /// in flight.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub drain: f64,
    /// Keep alive in seconds.
    #[arg(short = 'k', long, default_value_t = 60)]
    pub keepalive: u16,
    /// Persistent sessions: Clean Session 0 (MQTT 3.x), or (5.0) Clean Start 0 and a Session
    /// Expiry Interval of 300 s, so that a broker with persistence stores the sessions'
    /// messages. Client ids carry the process id: a run does not resume another's sessions.
    #[arg(long)]
    pub persistent: bool,
    /// Seconds a connection (TCP, TLS and CONNACK) may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Client ids are PREFIX-c1, -p1, -s1… (connection, publisher, subscriber) [default:
    /// "bench" and the process id].
    #[arg(long, value_name = "PREFIX")]
    pub client_prefix: Option<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

fn parse_protocol(text: &str) -> Result<ProtocolVersion, String> {
    match text.to_ascii_lowercase().as_str() {
        "mqttv31" | "31" | "3" | "3.1" => Ok(ProtocolVersion::V3_1),
        "mqttv311" | "311" | "4" | "3.1.1" => Ok(ProtocolVersion::V3_1_1),
        "mqttv5" | "5" | "5.0" => Ok(ProtocolVersion::V5),
        _ => Err("expected mqttv31, mqttv311 or mqttv5 (or 3, 4, 5)".to_owned()),
    }
}

fn protocol_name(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V3_1 => "mqttv31",
        ProtocolVersion::V3_1_1 => "mqttv311",
        ProtocolVersion::V5 => "mqttv5",
    }
}

/// A mistake in the options, found before anything connects.
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage<T>(message: impl Into<String>) -> anyhow::Result<T> {
    Err(UsageError(message.into()).into())
}

/// Runs `mqtt bench`: the progress line on stderr while it runs, then the summary on stdout
/// (one JSON object with `--json`).
///
/// Exit status: 0 when everything went well; 1 when a connection or a publish failed, or a
/// QoS 1/2 message was lost, or a QoS 2 message arrived twice; 2 for bad options. Ctrl-C
/// ends the run early (with a summary); a second Ctrl-C exits at once.
///
/// On a current-thread runtime it runs on a multi-threaded one of its own, so that the
/// clients use every core.
///
/// # Errors
/// What cannot be reported in the summary, such as failing to write it.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let outcome = if Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread {
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("mqtt-bench".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .context("cannot start the runtime")
                    .and_then(|runtime| runtime.block_on(run_here(args)));
                let _ = tx.send(result);
            })
            .context("cannot start the benchmark thread")?;
        rx.await.context("the benchmark thread died")?
    } else {
        run_here(args).await
    };
    match outcome {
        Err(e) if e.is::<UsageError>() => {
            writeln!(std::io::stderr().lock(), "Error: {e}")?;
            Ok(ExitCode::from(2))
        }
        other => other,
    }
}

async fn run_here(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let bench = Bench::new(args)?;
    let interrupt = bench.phase.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            interrupt.send_modify(Phase::cut_short);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let json = bench.plan.json;
    let summary = bench.run().await;
    ctrl_c.abort();
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        report::write_human(&mut out, &summary)?;
    }
    out.flush()?;
    Ok(if summary.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs a benchmark and returns its summary, printing nothing but the progress line (which
/// `--quiet` hides, as does a stderr that is not a terminal).
///
/// # Errors
/// Options that cannot work (an invalid topic, a bad URL, conflicting limits).
pub async fn execute(args: BenchArgs) -> anyhow::Result<Summary> {
    Ok(Bench::new(args)?.run().await)
}

/// The scenarios, without their options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Conn,
    Pub,
    Sub,
    Fanin,
    Fanout,
    Pairs,
    Latency,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Conn => "conn",
            Self::Pub => "pub",
            Self::Sub => "sub",
            Self::Fanin => "fanin",
            Self::Fanout => "fanout",
            Self::Pairs => "pairs",
            Self::Latency => "latency",
        }
    }

    fn default_topic(self) -> &'static str {
        match self {
            Self::Conn | Self::Pub => "bench/%i",
            Self::Sub => "bench/#",
            Self::Fanin => "bench/fanin/%i",
            Self::Fanout => "bench/fanout",
            Self::Pairs => "bench/pairs/%i",
            Self::Latency => "bench/latency/%i",
        }
    }

    /// Whether publishers and subscribers run here and delivery is checked.
    fn checks_delivery(self) -> bool {
        matches!(
            self,
            Self::Fanin | Self::Fanout | Self::Pairs | Self::Latency
        )
    }
}

/// Which publishers a subscriber hears from.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Nobody in particular (`sub`).
    Nobody,
    /// Publishers `first..first + count`.
    Range { first: u32, count: u32 },
}

/// Everything the tasks need to know, decided once.
#[derive(Debug)]
struct Plan {
    kind: Kind,
    options: ConnectOptions,
    broker: String,
    protocol: ProtocolVersion,
    qos: QoS,
    size: usize,
    prefix: String,
    run_id: u32,
    /// Each publisher's topic.
    pub_topics: Vec<TopicName>,
    /// Each subscriber's filter and whose messages it expects.
    sub_filters: Vec<(String, Expect)>,
    /// Connections of `conn`.
    conns: u32,
    interval: Duration,
    connect_concurrency: usize,
    rate: f64,
    inflight: usize,
    /// See [`BenchOptions::max_ahead`]; 0 is off.
    max_ahead: u64,
    duration: Option<Duration>,
    messages: Option<u64>,
    drain: Duration,
    json: bool,
    quiet: bool,
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Conn,
    Pub,
    Sub,
}

impl Plan {
    fn new(args: BenchArgs) -> anyhow::Result<Self> {
        let (kind, o) = match args.scenario {
            Scenario::Conn(o) => (Kind::Conn, o),
            Scenario::Pub(o) => (Kind::Pub, o),
            Scenario::Sub(o) => (Kind::Sub, o),
            Scenario::Fanin(o) => (Kind::Fanin, o),
            Scenario::Fanout(o) => (Kind::Fanout, o),
            Scenario::Pairs(o) => (Kind::Pairs, o),
            Scenario::Latency(o) => (Kind::Latency, o),
        };
        let count = o
            .count
            .unwrap_or(if kind == Kind::Latency { 1 } else { 10 });
        if count == 0 {
            return usage("-c/--count must be at least 1");
        }
        let seconds = |value: f64, option: &str| -> anyhow::Result<Duration> {
            if value.is_finite() && value >= 0.0 && value < FAR.as_secs_f64() {
                Ok(Duration::from_secs_f64(value))
            } else {
                usage(format!("{option} must be a number of seconds, not {value}"))
            }
        };
        let duration = match (o.duration, o.messages) {
            (Some(d), _) => Some(seconds(d, "--duration")?),
            (None, None) => Some(DEFAULT_DURATION),
            // `sub` cannot count on anyone publishing: it always has a deadline.
            (None, Some(_)) if kind == Kind::Sub => Some(DEFAULT_DURATION),
            (None, Some(_)) => None,
        };
        if o.messages == Some(0) {
            return usage("--messages must be at least 1");
        }
        let rate = o
            .rate
            .unwrap_or(if kind == Kind::Latency { 100.0 } else { 0.0 });
        if !rate.is_finite() || rate < 0.0 {
            return usage(format!(
                "--rate must be 0 or more messages a second, not {rate}"
            ));
        }
        if o.size > mqtt_codec::PROTOCOL_MAX_PACKET_SIZE as usize {
            return usage("-s/--size is larger than an MQTT packet can be");
        }

        let prefix = o
            .client_prefix
            .clone()
            .unwrap_or_else(|| format!("bench{}", std::process::id()));
        let options = connect_options(&o, seconds(o.connect_timeout, "--connect-timeout")?)?;
        let broker = format!("{}:{}", options.host(), options.port());
        let topic = o
            .topic
            .clone()
            .unwrap_or_else(|| kind.default_topic().to_owned());
        let per_client = topic.contains("%i") || topic.contains("%c");

        let (publishers, subscribers) = match kind {
            Kind::Conn => (0, 0),
            Kind::Pub | Kind::Fanin => (count, u32::from(kind == Kind::Fanin)),
            Kind::Sub => (0, count),
            Kind::Fanout => (1, count),
            Kind::Pairs | Kind::Latency => (count, count),
        };
        if matches!(kind, Kind::Pairs | Kind::Latency) && count > 1 && !per_client {
            return usage(format!(
                "{} needs %i or %c in the topic (-t), so that each pair has a topic of its own",
                kind.name()
            ));
        }
        let mut plan = Self {
            kind,
            broker,
            protocol: o.protocol_version,
            qos: QoS::from_u8(o.qos).unwrap_or_default(),
            size: o.size.max(payload::HEADER_LEN),
            prefix,
            run_id: random_u32(),
            pub_topics: Vec::with_capacity(publishers as usize),
            sub_filters: Vec::with_capacity(subscribers as usize),
            conns: if kind == Kind::Conn { count } else { 0 },
            interval: Duration::from_millis(o.interval_ms),
            connect_concurrency: o.connect_concurrency as usize,
            rate,
            inflight: usize::from(o.inflight),
            max_ahead: o.max_ahead,
            duration,
            messages: o.messages,
            drain: seconds(o.drain, "--drain")?,
            json: o.json,
            quiet: o.quiet,
            options,
        };
        for i in 0..publishers {
            let name = substitute(&topic, i, &plan.client_id(Role::Pub, i));
            match TopicName::try_from(name.as_str()) {
                Ok(t) => plan.pub_topics.push(t),
                Err(e) => return usage(format!("invalid topic {name:?}: {e}")),
            }
        }
        let shared_filter = o.filter.clone().unwrap_or_else(|| wildcard_filter(&topic));
        for j in 0..subscribers {
            let (filter, expect) = match kind {
                Kind::Sub => (
                    substitute(&topic, j, &plan.client_id(Role::Sub, j)),
                    Expect::Nobody,
                ),
                Kind::Fanin => (
                    shared_filter.clone(),
                    Expect::Range {
                        first: 0,
                        count: publishers,
                    },
                ),
                Kind::Fanout => (shared_filter.clone(), Expect::Range { first: 0, count: 1 }),
                // The pair's topic, with the publisher's client id for %c.
                _ => (
                    substitute(&topic, j, &plan.client_id(Role::Pub, j)),
                    Expect::Range { first: j, count: 1 },
                ),
            };
            if let Err(e) = TopicFilter::try_from(filter.as_str()) {
                return usage(format!("invalid topic filter {filter:?}: {e}"));
            }
            plan.sub_filters.push((filter, expect));
        }
        Ok(plan)
    }

    /// The client id of the `index`th (from 0) client of a role.
    fn client_id(&self, role: Role, index: u32) -> String {
        let letter = match role {
            Role::Conn => 'c',
            Role::Pub => 'p',
            Role::Sub => 's',
        };
        format!("{}-{letter}{}", self.prefix, index + 1)
    }

    async fn connect(
        &self,
        role: Role,
        index: u32,
    ) -> Result<(Client, mqtt_client::Events, Duration), String> {
        let options = self.options.clone().client_id(self.client_id(role, index));
        let started = Instant::now();
        match Client::connect(options).await {
            Ok((client, events)) => Ok((client, events, started.elapsed())),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn connect_options(o: &BenchOptions, connect_timeout: Duration) -> anyhow::Result<ConnectOptions> {
    let wants_tls = o.tls || o.cafile.is_some() || o.cert.is_some() || o.insecure;
    let mut options = match &o.url {
        Some(url) => match ConnectOptions::from_url(url) {
            Ok(options) => options,
            Err(e) => return usage(e.to_string()),
        },
        None => {
            let default_port = if wants_tls {
                mqtt_client::DEFAULT_TLS_PORT
            } else {
                mqtt_client::DEFAULT_PORT
            };
            ConnectOptions::new(o.host.clone(), o.port.unwrap_or(default_port))
        }
    };
    if wants_tls {
        let mut tls = TlsOptions::new().insecure_skip_hostname(o.insecure);
        if let Some(cafile) = &o.cafile {
            tls = tls.ca_file(cafile);
        }
        if let (Some(cert), Some(key)) = (&o.cert, &o.key) {
            tls = tls.client_auth(cert, key);
        }
        options = options.tls(tls);
    }
    if let Some(user) = &o.username {
        options = options.credentials(user.clone(), o.password.clone());
    } else if o.password.is_some() {
        return usage("-P/--password needs -u/--username");
    }
    if o.persistent {
        options = options.clean_session(false);
        if o.protocol_version.is_v5() {
            options = options.session_expiry_interval(300);
        }
    }
    Ok(options
        .protocol(o.protocol_version)
        .keep_alive(Duration::from_secs(o.keepalive.into()))
        .reconnect(None)
        .connect_timeout(connect_timeout)
        .request_timeout(Some(connect_timeout.max(Duration::from_secs(10))))
        .flush_timeout(Duration::from_secs(1))
        .max_inflight(o.inflight)
        .queue_capacity(usize::from(o.inflight)))
}

/// `pattern` with `%i` the client's number (from 1) and `%c` its id.
fn substitute(pattern: &str, index: u32, client_id: &str) -> String {
    pattern
        .replace("%i", &(index + 1).to_string())
        .replace("%c", client_id)
}

/// The filter matching every topic of `pattern`: each level holding `%i` or `%c` becomes `+`.
fn wildcard_filter(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|level| {
            if level.contains("%i") || level.contains("%c") {
                "+"
            } else {
                level
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A random number (std's hasher keys are random per process).
fn random_u32() -> u32 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    (hasher.finish() >> 32) as u32
}

/// Where the run is; the tasks watch it.
#[derive(Debug, Clone)]
enum Phase {
    /// Clients are connecting.
    Setup {
        /// Ctrl-C: skip the rest.
        interrupted: bool,
    },
    /// Publishing (or holding connections) until `deadline`.
    Run {
        start: Instant,
        deadline: Option<Instant>,
    },
    /// The publishers are done: the subscribers wait until `deadline` for what they sent
    /// (indexed by publisher).
    Drain { sent: Arc<[u64]>, deadline: Instant },
}

impl Phase {
    /// Ctrl-C: every deadline is now.
    fn cut_short(&mut self) {
        let now = Instant::now();
        match self {
            Self::Setup { interrupted } => *interrupted = true,
            Self::Run { deadline, .. } => *deadline = Some(now),
            Self::Drain { deadline, .. } => *deadline = now,
        }
    }
}

/// How a client's connection went: its connect latency, or why it failed.
type Connected = Result<Duration, String>;

/// What a publisher did.
#[derive(Debug)]
struct PubReport {
    sent: u64,
    acked: u64,
    errors: u64,
    first_error: Option<String>,
    /// When it stopped sending.
    stopped: Option<Instant>,
    histogram: Histogram<u64>,
}

impl Default for PubReport {
    fn default() -> Self {
        Self {
            sent: 0,
            acked: 0,
            errors: 0,
            first_error: None,
            stopped: None,
            histogram: stats::histogram(),
        }
    }
}

impl PubReport {
    fn error(&mut self, error: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }
}

/// What a subscriber did.
#[derive(Debug)]
struct SubReport {
    received: u64,
    /// Messages not from this run (or without a header).
    foreign: u64,
    tracker: Option<Tracker>,
    granted: Option<QoS>,
    dropped: Option<String>,
    last_received: Option<Instant>,
    histogram: Histogram<u64>,
}

impl Default for SubReport {
    fn default() -> Self {
        Self {
            received: 0,
            foreign: 0,
            tracker: None,
            granted: None,
            dropped: None,
            last_received: None,
            histogram: stats::histogram(),
        }
    }
}

/// A benchmark ready to run.
struct Bench {
    plan: Arc<Plan>,
    /// Flow control between publishers and subscribers, when delivery is checked.
    flow: Option<Arc<Flow>>,
    /// Places for connections being set up (`--connect-concurrency`).
    connecting: Arc<Semaphore>,
    phase: Arc<watch::Sender<Phase>>,
    connections: Arc<Connections>,
}

impl Bench {
    fn new(args: BenchArgs) -> anyhow::Result<Self> {
        let plan = Plan::new(args)?;
        let flow = (plan.kind.checks_delivery() && plan.max_ahead > 0).then(|| {
            let ranges = plan.sub_filters.iter().map(|(_, expect)| match expect {
                Expect::Range { first, count } => (*first, *count),
                Expect::Nobody => (0, 0),
            });
            Arc::new(Flow::new(plan.max_ahead, plan.pub_topics.len(), ranges))
        });
        Ok(Self {
            connecting: Arc::new(Semaphore::new(plan.connect_concurrency)),
            plan: Arc::new(plan),
            flow,
            phase: Arc::new(watch::Sender::new(Phase::Setup { interrupted: false })),
            connections: Arc::new(Connections::default()),
        })
    }

    fn interrupted(&self) -> bool {
        matches!(*self.phase.borrow(), Phase::Setup { interrupted: true })
    }

    async fn run(self) -> Summary {
        let plan = Arc::clone(&self.plan);
        let publishers = plan.pub_topics.len();
        let subscribers = plan.sub_filters.len();
        let clients = publishers + subscribers + plan.conns as usize;
        let counters: Arc<[Arc<Counters>]> = (0..clients)
            .map(|_| Arc::new(Counters::default()))
            .collect();
        let progress = Progress::start(
            plan.quiet,
            clients as u64,
            Arc::clone(&self.connections),
            Arc::clone(&counters),
        );
        let mut summary = Summary::new(&plan, publishers, subscribers);
        let mut connect_histogram = stats::histogram();
        let mut connect_errors = Vec::new();
        let mut counter = counters.iter().cloned();
        let mut next_counter = move || counter.next().unwrap_or_default();

        // Subscribers first, so that they miss nothing; then the publishers or connections.
        let mut subs = Vec::with_capacity(subscribers);
        let mut pubs = Vec::with_capacity(publishers);
        let mut holders = Vec::with_capacity(plan.conns as usize);
        let mut outcomes = Vec::with_capacity(clients);
        let mut starter = Starter::new(plan.interval);
        let setup_start = Instant::now();
        for j in 0..subscribers as u32 {
            let Some(task) = self
                .next_task(&mut starter, &mut outcomes, next_counter())
                .await
            else {
                break;
            };
            subs.push(tokio::spawn(subscriber(task, j)));
        }
        self.settle(&mut outcomes, &mut connect_histogram, &mut connect_errors)
            .await;
        for i in 0..publishers as u32 {
            let Some(task) = self
                .next_task(&mut starter, &mut outcomes, next_counter())
                .await
            else {
                break;
            };
            pubs.push(tokio::spawn(publisher(task, i)));
        }
        for i in 0..plan.conns {
            let Some(task) = self
                .next_task(&mut starter, &mut outcomes, next_counter())
                .await
            else {
                break;
            };
            holders.push(tokio::spawn(holder(task, i)));
        }
        self.settle(&mut outcomes, &mut connect_histogram, &mut connect_errors)
            .await;
        let attempted = (subs.len() + pubs.len() + holders.len()) as u64;

        let start = Instant::now();
        let setup = start.saturating_duration_since(setup_start);
        // Nothing to wait for when nothing connected.
        let nobody = Counters::get(&self.connections.up) == 0;
        // In one step with the check, so that a Ctrl-C just now is not lost.
        self.phase.send_modify(|phase| {
            let interrupted = matches!(phase, Phase::Setup { interrupted: true });
            let deadline = if interrupted || nobody {
                Some(start)
            } else {
                plan.duration.map(|d| start + d)
            };
            *phase = Phase::Run { start, deadline };
        });

        let mut sent = vec![0u64; publishers];
        let mut ack_histogram = stats::histogram();
        let mut publish_errors = Vec::new();
        let mut stopped = start;
        for (i, task) in pubs.into_iter().enumerate() {
            let report = task.await.unwrap_or_else(|e| {
                let mut r = PubReport::default();
                r.error(e);
                r
            });
            if let Some(slot) = sent.get_mut(i) {
                *slot = report.sent;
            }
            summary.sent += report.sent;
            summary.acked += report.acked;
            summary.publish_errors += report.errors;
            publish_errors.extend(report.first_error);
            stopped = stopped.max(report.stopped.unwrap_or(start));
            stats::merge(&mut ack_histogram, &report.histogram);
        }
        if plan.kind == Kind::Conn {
            // Hold until the deadline (or Ctrl-C), then let go.
            let mut phase = self.phase.subscribe();
            loop {
                let deadline = match &*phase.borrow_and_update() {
                    Phase::Run { deadline, .. } => deadline.unwrap_or(start + FAR),
                    _ => start,
                };
                tokio::select! {
                    () = sleep_until(deadline) => break,
                    _ = phase.changed() => {}
                }
            }
            stopped = Instant::now();
        }
        let sent: Arc<[u64]> = sent.into();
        if plan.kind != Kind::Sub {
            // `sub` ends by itself at the deadline; the others drain (a Ctrl-C in the
            // meantime only shortened a deadline that no longer matters).
            self.phase.send_replace(Phase::Drain {
                sent: Arc::clone(&sent),
                deadline: Instant::now() + plan.drain,
            });
        }

        let mut latency_histogram = stats::histogram();
        let mut delivery = plan.kind.checks_delivery().then(DeliverySummary::default);
        let mut last_received = None::<Instant>;
        let mut granted = plan.qos;
        let mut dropped = Vec::new();
        for task in subs {
            let report = task.await.unwrap_or_default();
            summary.received += report.received;
            stats::merge(&mut latency_histogram, &report.histogram);
            last_received = last_received.max(report.last_received);
            if let Some(q) = report.granted {
                granted = granted.min(q);
            }
            if let Some(reason) = report.dropped {
                dropped.push(reason);
            }
            if let (Some(d), Some(tracker)) = (delivery.as_mut(), report.tracker.as_ref()) {
                let verdict = tracker.delivery(&sent);
                d.expected += verdict.expected;
                d.lost += verdict.lost;
                d.duplicates += verdict.duplicates;
                d.unexpected += tracker.unexpected;
                d.foreign += report.foreign;
            }
        }
        for task in holders {
            if let Ok(Some(reason)) = task.await {
                dropped.push(reason);
            }
        }
        progress.finish();

        // The numbers.
        let up = Counters::get(&self.connections.up);
        summary.connections = ConnectionSummary {
            attempted,
            connected: up,
            failed: attempted.saturating_sub(up),
            dropped: dropped.len() as u64,
        };
        summary.connect_latency = Latency::of(&connect_histogram);
        summary.connect_secs = round3(setup.as_secs_f64());
        summary.connect_rate = rate(up, setup);
        let elapsed = stopped.saturating_duration_since(start);
        summary.elapsed_secs = round3(elapsed.as_secs_f64());
        summary.send_rate = rate(summary.sent, elapsed);
        summary.ack_latency = Latency::of(&ack_histogram);
        let receiving = if plan.kind == Kind::Sub {
            elapsed.max(Instant::now().saturating_duration_since(start))
        } else {
            last_received.map_or(Duration::ZERO, |t| t.saturating_duration_since(start))
        };
        summary.receive_rate = rate(summary.received, receiving);
        if plan.kind == Kind::Sub {
            summary.elapsed_secs = round3(receiving.as_secs_f64());
        }
        summary.latency = Latency::of(&latency_histogram);
        if let Some(d) = delivery.as_mut() {
            d.qos = granted as u8;
        }
        summary.delivery = delivery;

        // The verdict.
        let mut failures = Vec::new();
        if summary.connections.failed > 0 {
            failures.push(format!(
                "{} of {} connections failed: {}",
                summary.connections.failed,
                attempted,
                quote(&connect_errors)
            ));
        }
        if !dropped.is_empty() {
            failures.push(format!(
                "{} connections dropped: {}",
                dropped.len(),
                quote(&dropped)
            ));
        }
        if summary.publish_errors > 0 {
            failures.push(format!(
                "{} publishes failed or were not acknowledged: {}",
                summary.publish_errors,
                quote(&publish_errors)
            ));
        }
        if let Some(d) = &summary.delivery {
            if d.lost > 0 && d.qos > 0 {
                failures.push(format!(
                    "{} of {} messages lost at QoS {}",
                    d.lost, d.expected, d.qos
                ));
            }
            if d.duplicates > 0 && d.qos == 2 {
                failures.push(format!(
                    "{} messages delivered twice at QoS 2",
                    d.duplicates
                ));
            }
        }
        summary.ok = failures.is_empty();
        summary.failures = failures;
        summary
    }

    /// Waits for the next client's turn (the interval, and a place among the connections
    /// being set up) and makes its task; `None` once a Ctrl-C cut the setup short.
    async fn next_task(
        &self,
        starter: &mut Starter,
        outcomes: &mut Vec<oneshot::Receiver<Connected>>,
        counters: Arc<Counters>,
    ) -> Option<Task> {
        if self.interrupted() {
            return None;
        }
        starter.next().await;
        let permit = Arc::clone(&self.connecting).acquire_owned().await.ok();
        let (tx, rx) = oneshot::channel();
        outcomes.push(rx);
        Some(self.task(counters, tx, permit))
    }

    fn task(
        &self,
        counters: Arc<Counters>,
        connected: oneshot::Sender<Connected>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Task {
        Task {
            permit,
            plan: Arc::clone(&self.plan),
            flow: self.flow.clone(),
            phase: self.phase.subscribe(),
            counters,
            connections: Arc::clone(&self.connections),
            connected: Some(connected),
        }
    }

    /// Waits for every connection started so far.
    async fn settle(
        &self,
        outcomes: &mut Vec<oneshot::Receiver<Connected>>,
        histogram: &mut Histogram<u64>,
        errors: &mut Vec<String>,
    ) {
        for outcome in outcomes.drain(..) {
            match outcome.await {
                Ok(Ok(latency)) => stats::record(histogram, latency),
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push("the client task ended".to_owned()),
            }
        }
    }
}

/// `count` of `problems`, the first few distinct ones quoted.
fn quote(problems: &[String]) -> String {
    let mut distinct: Vec<&str> = Vec::new();
    for p in problems {
        if !distinct.contains(&p.as_str()) {
            distinct.push(p);
            if distinct.len() == QUOTED_ERRORS {
                break;
            }
        }
    }
    if distinct.is_empty() {
        "(no detail)".to_owned()
    } else {
        distinct.join("; ")
    }
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        (count as f64 / elapsed.as_secs_f64()).round()
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Starts connections `interval` apart.
struct Starter {
    interval: Duration,
    next: Option<Instant>,
}

impl Starter {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            next: None,
        }
    }

    async fn next(&mut self) {
        let now = Instant::now();
        match self.next {
            Some(at) if !self.interval.is_zero() => {
                sleep_until(at).await;
                self.next = Some(at.max(now) + self.interval);
            }
            _ => self.next = Some(now + self.interval),
        }
    }
}

/// What every client task gets.
struct Task {
    /// A place among the connections being set up, given back once connected (or failed).
    permit: Option<OwnedSemaphorePermit>,
    plan: Arc<Plan>,
    flow: Option<Arc<Flow>>,
    phase: watch::Receiver<Phase>,
    counters: Arc<Counters>,
    connections: Arc<Connections>,
    connected: Option<oneshot::Sender<Connected>>,
}

impl Task {
    /// Reports how the connection went (once).
    fn report(&mut self, outcome: Connected) {
        let counter = match outcome {
            Ok(_) => &self.connections.up,
            Err(_) => &self.connections.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.permit = None;
        if let Some(tx) = self.connected.take() {
            let _ = tx.send(outcome);
        }
    }

    /// Waits for the run to start: its start and deadline, or `None` when it never will.
    async fn wait_for_run(&mut self) -> Option<(Instant, Option<Instant>)> {
        let phase = self
            .phase
            .wait_for(|p| !matches!(p, Phase::Setup { .. }))
            .await
            .ok()?;
        match &*phase {
            Phase::Run { start, deadline } => Some((*start, *deadline)),
            _ => None,
        }
    }
}

/// Disconnects without waiting long: the run is over.
async fn let_go(client: &Client) {
    let _ = timeout(Duration::from_secs(2), client.disconnect()).await;
}

/// A `conn` connection: connects, holds until the run ends; `Some(reason)` if it dropped.
async fn holder(mut task: Task, index: u32) -> Option<String> {
    let (client, mut events, latency) = match task.plan.connect(Role::Conn, index).await {
        Ok(c) => c,
        Err(e) => {
            task.report(Err(e));
            return None;
        }
    };
    task.report(Ok(latency));
    let mut dropped = None;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Disconnected { reason }) => {
                    dropped = Some(reason.to_string());
                    break;
                }
                Some(_) => {}
                None => {
                    dropped = Some("the client stopped".to_owned());
                    break;
                }
            },
            changed = task.phase.changed() => {
                if changed.is_err() || matches!(*task.phase.borrow(), Phase::Drain { .. }) {
                    break;
                }
            }
        }
    }
    if dropped.is_some() {
        Counters::set(&task.counters.errors, 1);
    }
    let_go(&client).await;
    dropped
}

/// The acknowledgements a publisher waits for, oldest first, with when each was sent.
struct Window {
    acks: VecDeque<(Ack, Instant)>,
    report: PubReport,
}

impl Window {
    /// Takes the acknowledgements that have arrived, in order; how many.
    fn reap(&mut self, cx: &mut Context<'_>) -> usize {
        let mut done = 0;
        let mut now = None;
        while let Some((ack, _)) = self.acks.front_mut() {
            let Poll::Ready(result) = Pin::new(ack).poll(cx) else {
                break;
            };
            let Some((_, sent_at)) = self.acks.pop_front() else {
                break;
            };
            match result {
                Ok(()) => {
                    self.report.acked += 1;
                    let now = *now.get_or_insert_with(Instant::now);
                    stats::record(&mut self.report.histogram, now - sent_at);
                }
                Err(e) => self.report.error(e),
            }
            done += 1;
        }
        done
    }

    /// Takes the acknowledgements that have arrived without waiting.
    fn reap_now(&mut self) -> usize {
        self.reap(&mut Context::from_waker(std::task::Waker::noop()))
    }

    /// Resolves once at least one acknowledgement has arrived.
    fn next(&mut self) -> impl Future<Output = usize> + '_ {
        std::future::poll_fn(|cx| match self.reap(cx) {
            0 => Poll::Pending,
            n => Poll::Ready(n),
        })
    }
}

/// A publisher: connects, then publishes from the start of the run until its deadline or
/// `--messages`, at most `--inflight` unacknowledged, then waits (up to `--drain`) for the
/// acknowledgements.
async fn publisher(mut task: Task, index: u32) -> PubReport {
    let plan = Arc::clone(&task.plan);
    let (client, events, latency) = match plan.connect(Role::Pub, index).await {
        Ok(c) => c,
        Err(e) => {
            task.report(Err(e));
            return PubReport::default();
        }
    };
    // A publisher reads nothing; failures show in its acknowledgements.
    drop(events);
    task.report(Ok(latency));
    let Some((start, deadline)) = task.wait_for_run().await else {
        let_go(&client).await;
        return PubReport::default();
    };
    let topic = plan
        .pub_topics
        .get(index as usize)
        .cloned()
        .unwrap_or_else(TopicName::empty);
    let limit = plan.messages.unwrap_or(u64::MAX).min(u64::from(u32::MAX));
    let pace = (plan.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / plan.rate));
    let mut end = deadline.unwrap_or(start + FAR);
    let mut end_sleep = pin!(sleep_until(end.min(start + STALL)));
    let mut pace_sleep = pin!(sleep_until(start));
    let mut pace_armed = start;
    let mut next_due = start;
    let mut last_progress = start;
    let mut maker = PayloadMaker::new(plan.size);
    let mut window = Window {
        acks: VecDeque::with_capacity(plan.inflight),
        report: PubReport::default(),
    };
    let counters = Arc::clone(&task.counters);
    let flow = task.flow.clone();
    let mut sent: u64 = 0;
    // What the flow control allows without looking again.
    let mut credit: u64 = if flow.is_some() { 0 } else { u64::MAX };
    let mut recheck = false;
    loop {
        if recheck || task.phase.has_changed().unwrap_or(true) {
            recheck = false;
            match &*task.phase.borrow_and_update() {
                Phase::Run { deadline, .. } => {
                    let new_end = deadline.unwrap_or(start + FAR);
                    if new_end != end {
                        end = new_end;
                        end_sleep.as_mut().reset(end.min(last_progress + STALL));
                    }
                }
                _ => break,
            }
        }
        if sent >= limit {
            break;
        }
        let now = Instant::now();
        if now >= end {
            break;
        }
        let mut blocked_on = None;
        if let (Some(flow), 0) = (&flow, credit) {
            match flow.credit(index as usize, sent) {
                Ok(c) => credit = c,
                Err(subscriber) => blocked_on = Some(subscriber),
            }
        }
        let room = window.acks.len() < plan.inflight && blocked_on.is_none();
        let due = pace.is_none() || now >= next_due;
        if room && due {
            if let Some(pace) = pace {
                next_due += pace;
                if next_due + MAX_LAG < now {
                    next_due = now;
                }
            }
            let payload = maker.make(Header {
                run: plan.run_id,
                publisher: index,
                seq: sent as u32,
                sent_us: payload::now_us(),
            });
            let message = OutgoingMessage::with_topic(topic.clone(), payload).qos(plan.qos);
            match client.send(message).await {
                Ok(ack) => {
                    window.acks.push_back((ack, now));
                    sent += 1;
                    credit = credit.saturating_sub(1);
                    last_progress = now;
                    Counters::set(&counters.sent, sent);
                }
                Err(e) => {
                    window.report.error(e);
                    break;
                }
            }
            if window.reap_now() > 0 {
                Counters::set(&counters.acked, window.report.acked);
                Counters::set(&counters.errors, window.report.errors);
            }
            continue;
        }
        let pacing = room && !due;
        if pacing && pace_armed != next_due {
            pace_armed = next_due;
            pace_sleep.as_mut().reset(next_due);
        }
        tokio::select! {
            biased;
            _ = window.next(), if !window.acks.is_empty() => {
                last_progress = Instant::now();
                Counters::set(&counters.acked, window.report.acked);
                Counters::set(&counters.errors, window.report.errors);
            }
            () = &mut pace_sleep, if pacing => {}
            () = flow_wait(flow.as_deref(), blocked_on, index, sent), if blocked_on.is_some() => {
                last_progress = Instant::now();
            }
            () = &mut end_sleep => {
                let now = Instant::now();
                let waiting = !window.acks.is_empty() || blocked_on.is_some();
                if now < end && waiting && now >= last_progress + STALL {
                    window.report.error(match blocked_on {
                        Some(j) => format!(
                            "subscriber {} received nothing new for {} s", j + 1, STALL.as_secs()
                        ),
                        None => format!("no acknowledgement for {} s", STALL.as_secs()),
                    });
                    break;
                }
                // Nothing in flight (a slow pace) is no stall: look again later.
                let since = if waiting { last_progress } else { now };
                end_sleep.as_mut().reset(end.min(since + STALL));
            }
            changed = task.phase.changed() => {
                if changed.is_err() {
                    break;
                }
                recheck = true;
            }
        }
    }
    let stopped = Instant::now();
    // What is still in flight has `--drain` to be acknowledged.
    let drain_end = stopped + plan.drain;
    while !window.acks.is_empty() {
        tokio::select! {
            _ = window.next() => {}
            () = sleep_until(drain_end) => break,
        }
    }
    let unacked = window.acks.len();
    if unacked > 0 {
        window.report.errors += unacked as u64;
        window
            .report
            .first_error
            .get_or_insert_with(|| format!("{unacked} not acknowledged within the drain time"));
    }
    Counters::set(&counters.acked, window.report.acked);
    Counters::set(&counters.errors, window.report.errors);
    window.acks.clear();
    let_go(&client).await;
    PubReport {
        sent,
        stopped: Some(stopped),
        ..window.report
    }
}

/// Waits for subscriber `subscriber` to let publisher `publisher` send again.
async fn flow_wait(flow: Option<&Flow>, subscriber: Option<usize>, publisher: u32, sent: u64) {
    if let (Some(flow), Some(subscriber)) = (flow, subscriber) {
        flow.wait(subscriber, publisher as usize, sent).await;
    }
}

/// A subscriber: connects, subscribes, then counts (and checks) what arrives until the run
/// ends (`sub`) or everything the publishers sent has arrived (or the drain time is up).
async fn subscriber(mut task: Task, index: u32) -> SubReport {
    let plan = Arc::clone(&task.plan);
    let mut report = SubReport::default();
    let (client, mut events, latency) = match plan.connect(Role::Sub, index).await {
        Ok(c) => c,
        Err(e) => {
            task.report(Err(e));
            return report;
        }
    };
    let Some((filter, expect)) = plan.sub_filters.get(index as usize).cloned() else {
        task.report(Err("no filter".to_owned()));
        return report;
    };
    match client.subscribe([(filter.as_str(), plan.qos)]).await {
        Ok(granted) => match granted.first() {
            Some(Ok(qos)) => report.granted = Some(*qos),
            Some(Err(code)) => {
                task.report(Err(format!("subscription to {filter} refused: {code:?}")));
                let_go(&client).await;
                return report;
            }
            None => {}
        },
        Err(e) => {
            task.report(Err(format!("subscribe: {e}")));
            let_go(&client).await;
            return report;
        }
    }
    task.report(Ok(latency));
    let mut tracker = match expect {
        Expect::Nobody => None,
        Expect::Range { first, count } => Some(Tracker::new(first, count)),
    };
    let qos0 = report.granted.unwrap_or(plan.qos).min(plan.qos) == QoS::AtMostOnce;
    let limit = match plan.kind {
        Kind::Sub => plan.messages.unwrap_or(u64::MAX),
        _ => u64::MAX,
    };
    let counters = Arc::clone(&task.counters);
    let far = Instant::now() + FAR;
    let mut stop_sleep = pin!(sleep_until(far));
    let mut expected = None::<u64>;
    let mut drain_deadline = far;
    let mut recheck = true;
    let started = Instant::now();
    loop {
        if recheck {
            recheck = false;
            let phase = task.phase.borrow_and_update().clone();
            match phase {
                Phase::Setup { .. } => {}
                Phase::Run { deadline, .. } => {
                    if plan.kind == Kind::Sub {
                        stop_sleep.as_mut().reset(deadline.unwrap_or(far));
                    }
                }
                Phase::Drain { sent, deadline } => {
                    let Some(t) = &tracker else { break };
                    let want = t.expected(&sent);
                    if t.distinct() >= want {
                        break;
                    }
                    expected = Some(want);
                    drain_deadline = deadline;
                    let wake = if qos0 {
                        deadline.min(Instant::now() + QOS0_IDLE)
                    } else {
                        deadline
                    };
                    stop_sleep.as_mut().reset(wake);
                }
            }
        }
        tokio::select! {
            biased;
            event = events.recv() => match event {
                Some(Event::Message(message)) => {
                    report.received += 1;
                    Counters::set(&counters.received, report.received);
                    match payload::parse(message.payload()) {
                        Some(h) if h.run == plan.run_id => {
                            stats::record_us(
                                &mut report.histogram,
                                payload::now_us().saturating_sub(h.sent_us),
                            );
                            let accepted = tracker
                                .as_mut()
                                .is_some_and(|t| t.record(h.publisher, h.seq));
                            // Only what the tracker accepted opens a publisher's window.
                            if let (true, Some(flow)) = (accepted, &task.flow) {
                                flow.received(index as usize, h.publisher, h.seq);
                            }
                        }
                        Some(h) if tracker.is_none() => {
                            // `sub`: payloads from another `mqtt bench pub`.
                            stats::record_us(
                                &mut report.histogram,
                                payload::now_us().saturating_sub(h.sent_us),
                            );
                        }
                        _ => report.foreign += 1,
                    }
                    report.last_received = Some(Instant::now());
                    if report.received >= limit {
                        break;
                    }
                    if let (Some(want), Some(t)) = (expected, tracker.as_ref())
                        && t.distinct() >= want {
                            break;
                        }
                }
                Some(Event::Disconnected { reason }) => {
                    report.dropped = Some(reason.to_string());
                    Counters::set(&counters.errors, 1);
                }
                Some(_) => {}
                None => {
                    report.dropped.get_or_insert_with(|| "the client stopped".to_owned());
                    break;
                }
            },
            changed = task.phase.changed() => {
                if changed.is_err() {
                    break;
                }
                recheck = true;
            }
            () = &mut stop_sleep => {
                let now = Instant::now();
                if expected.is_some() && qos0 && now < drain_deadline {
                    // QoS 0: stop once nothing has arrived for a while.
                    let idle_end = report.last_received.unwrap_or(started) + QOS0_IDLE;
                    if idle_end > now {
                        stop_sleep.as_mut().reset(idle_end.min(drain_deadline));
                        continue;
                    }
                }
                break;
            }
        }
    }
    report.tracker = tracker;
    let_go(&client).await;
    report
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
    }

    fn plan(args: &[&str]) -> anyhow::Result<Plan> {
        Plan::new(parse(args)?)
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn options_and_defaults() {
        let p = plan(&["pairs", "-h", "broker", "-p", "1999", "-q", "2", "-V", "5"]).unwrap();
        assert_eq!(p.broker, "broker:1999");
        assert_eq!(p.qos, QoS::ExactlyOnce);
        assert_eq!(p.protocol, ProtocolVersion::V5);
        assert_eq!(p.pub_topics.len(), 10);
        assert_eq!(p.pub_topics[2].as_str(), "bench/pairs/3");
        assert_eq!(p.sub_filters[2].0, "bench/pairs/3");
        assert_eq!(p.duration, Some(DEFAULT_DURATION));
        assert_eq!(p.size, 32);

        let p = plan(&[
            "fanin",
            "-c",
            "3",
            "-t",
            "x/%c/y",
            "--messages",
            "5",
            "-s",
            "1",
        ])
        .unwrap();
        assert_eq!(p.pub_topics[0].as_str(), format!("x/{}-p1/y", p.prefix));
        assert_eq!(p.sub_filters.len(), 1);
        assert_eq!(p.sub_filters[0].0, "x/+/y");
        assert_eq!(p.duration, None);
        assert_eq!(p.size, payload::HEADER_LEN);

        let p = plan(&[
            "latency",
            "--url",
            "mqtt://u:pw@h:7",
            "--client-prefix",
            "z",
        ])
        .unwrap();
        assert_eq!((p.broker.as_str(), p.rate), ("h:7", 100.0));
        assert_eq!(p.client_id(Role::Sub, 0), "z-s1");
        assert_eq!(p.pub_topics.len(), 1);

        let p = plan(&["sub", "-c", "2", "-t", "a/%i/#", "--messages", "3"]).unwrap();
        assert_eq!(p.sub_filters[1].0, "a/2/#");
        assert!(p.duration.is_some(), "sub always has a deadline");
        assert_eq!(plan(&["conn", "--tls"]).unwrap().broker, "127.0.0.1:8883");

        for version in ["mqttv31", "3", "mqttv311", "4", "mqttv5", "5"] {
            assert!(parse(&["conn", "-V", version]).is_ok(), "{version}");
        }
    }

    #[test]
    fn bad_options_are_refused() {
        for bad in [
            &["pairs", "-q", "3"][..],
            &["pairs", "-V", "6"],
            &["pub", "--inflight", "0"],
            &["pub", "--url", "mqtt://h", "-p", "3"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        for bad in [
            &["pairs", "-t", "same/topic"][..],
            &["pub", "-t", "a/+"],
            &["sub", "-t", "a/#/b"],
            &["pub", "-c", "0"],
            &["pub", "--rate=-1"],
            &["pub", "--duration", "nan"],
            &["pub", "--messages", "0"],
            &["pub", "--url", "http://h"],
            &["pub", "-P", "secret"],
        ] {
            let e = plan(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(e.is::<UsageError>(), "{bad:?}: {e}");
        }
        // A single pair needs no %i.
        assert!(plan(&["latency", "-t", "one/topic"]).is_ok());
    }

    #[test]
    fn help_is_long_only() {
        let e = parse(&["pub", "--help"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(parse(&["pub", "-h", "somewhere"]).is_ok());
    }
}
