//! The harness shared by the interoperability tests: a [`Broker`] under test on a free loopback
//! port (our `mqtt-broker`, or Mosquitto when `MQTT_TEST_BROKER=mosquitto`), and bounded ways to
//! run the peer programs (`mosquitto_pub`, `mosquitto_sub`, `python3`) against it.
//!
//! Everything here is bounded in time and cleans up after itself: every child process is killed
//! and reaped when its owner is dropped (also when a test panics), and a command that outlives
//! its timeout is killed and fails the test with everything it printed so far.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead as _, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The environment variable choosing the broker under test; `mosquitto` runs Mosquitto, anything
/// else (or nothing) runs our `mqtt-broker`.
pub(crate) const BROKER_ENV: &str = "MQTT_TEST_BROKER";

/// The Mosquitto binary used when `MQTT_TEST_BROKER=mosquitto`.
pub(crate) const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// How long a broker has to accept a TCP connection after it is spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the polling loops look again.
const POLL: Duration = Duration::from_millis(10);

/// Attempts at starting a broker: a port picked as free can be taken by someone else before
/// the broker binds it, and the broker then exits ("address in use"); the next attempt uses
/// another port.
const START_ATTEMPTS: usize = 3;

/// The broker implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Our `mqtt-broker` binary.
    Ours,
    /// `/usr/sbin/mosquitto`, the reference.
    Mosquitto,
}

impl Kind {
    /// The implementation chosen by `MQTT_TEST_BROKER`.
    pub(crate) fn from_env() -> Self {
        match std::env::var(BROKER_ENV) {
            Ok(value) if value.eq_ignore_ascii_case("mosquitto") => Self::Mosquitto,
            _ => Self::Ours,
        }
    }
}

/// A running broker on `127.0.0.1:port()`, killed (and reaped) on drop. Its stdout and stderr go
/// to a log file; if the test is panicking when the broker is dropped, the log is printed.
pub(crate) struct Broker {
    /// Which implementation this is.
    kind: Kind,
    /// The broker process.
    child: Child,
    /// The port it listens on (the first listener's, when it has several).
    port: u16,
    /// Every port it listens on.
    ports: Vec<u16>,
    /// The private directory holding the log (and Mosquitto's configuration file).
    dir: PathBuf,
    /// The log file: the broker's stdout and stderr.
    log_path: PathBuf,
}

impl Broker {
    /// Starts the broker chosen by `MQTT_TEST_BROKER` with its default configuration.
    pub(crate) fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts the broker chosen by `MQTT_TEST_BROKER` with extra command-line arguments for our
    /// binary, e.g. `&["--set", "max_keepalive_secs=60"]`.
    ///
    /// For Mosquitto, each `--set KEY=VALUE` pair is translated into the equivalent line of its
    /// configuration file (see [`mosquitto_setting`]); any other argument, or a key without a
    /// Mosquitto equivalent, fails the test rather than silently testing something else.
    pub(crate) fn start_with(args: &[&str]) -> Self {
        let kind = Kind::from_env();
        let mut failures = String::new();
        for attempt in 1..=START_ATTEMPTS {
            match Self::try_start(kind, args) {
                Ok(broker) => return broker,
                Err(failure) => {
                    let _ = writeln!(failures, "--- attempt {attempt}: {failure}");
                    // Only a port taken in the meantime is worth another try.
                    if !failure.to_ascii_lowercase().contains("in use") {
                        break;
                    }
                }
            }
        }
        panic!("the broker ({kind:?}) did not start:\n{failures}");
    }

    /// One attempt: spawns the broker on a fresh port and waits until it accepts a connection.
    /// On failure the process is gone and the error carries its log.
    fn try_start(kind: Kind, args: &[&str]) -> Result<Self, String> {
        let port = free_port();
        let dir = scratch_dir(&format!("broker-{port}"));
        let command = match kind {
            Kind::Ours => {
                let mut command = our_broker();
                command.arg("-p").arg(port.to_string()).args(args);
                command
            }
            Kind::Mosquitto => {
                let config = dir.join("mosquitto.conf");
                fs::write(&config, mosquitto_config(port, args))
                    .expect("write the Mosquitto configuration file");
                let mut command = Command::new(MOSQUITTO);
                command.arg("-c").arg(&config);
                command
            }
        };
        Self::spawn(kind, command, vec![port], dir)
    }

    /// Starts our broker with `count` listeners on fresh loopback ports, configured by the
    /// TOML file `config(ports, dir)` returns (`dir`: the broker's private directory, where the
    /// test may keep certificates and the like), and waits until every port accepts TCP
    /// connections. [`Broker::port`] is the first port, [`Broker::ports`] all of them.
    pub(crate) fn start_listeners(count: usize, config: impl Fn(&[u16], &Path) -> String) -> Self {
        let mut failures = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let ports: Vec<u16> = (0..count).map(|_| free_port()).collect();
            let dir = scratch_dir(&format!("broker-{}", ports.first().copied().unwrap_or(0)));
            let file = dir.join("broker.toml");
            fs::write(&file, config(&ports, &dir)).expect("write the broker configuration");
            let mut command = our_broker();
            command.arg("-c").arg(&file);
            match Self::spawn(Kind::Ours, command, ports, dir) {
                Ok(broker) => return broker,
                Err(failure) => {
                    let _ = writeln!(failures, "--- attempt {attempt}: {failure}");
                    if !failure.to_ascii_lowercase().contains("in use") {
                        break;
                    }
                }
            }
        }
        panic!("the broker did not start:\n{failures}");
    }

    /// Runs `command` with its output in `dir/broker.log` and waits until it accepts
    /// connections on every one of `ports`. On failure the process is gone and the error
    /// carries its log.
    fn spawn(
        kind: Kind,
        mut command: Command,
        ports: Vec<u16>,
        dir: PathBuf,
    ) -> Result<Self, String> {
        let log_path = dir.join("broker.log");
        let log = fs::File::create(&log_path).expect("create the broker log file");
        let log_err = log.try_clone().expect("clone the broker log file handle");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                let _ = fs::remove_dir_all(&dir);
                panic!("cannot start {}: {error}", command.get_program().display());
            }
        };
        let mut broker = Self {
            kind,
            child,
            port: ports.first().copied().unwrap_or(0),
            ports,
            dir,
            log_path,
        };
        match broker.wait_until_accepting() {
            Ok(()) => Ok(broker),
            Err(error) => {
                broker.stop();
                let failure = format!("{error}\nbroker log:\n{}", broker.log());
                // Nothing to keep: the log is in the failure message.
                broker.remove_dir();
                Err(failure)
            }
        }
    }

    /// Polls until a TCP connection to every port succeeds while the process is still running.
    fn wait_until_accepting(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        for port in self.ports.clone() {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            loop {
                if let Some(status) = self.child.try_wait().expect("poll the broker process") {
                    return Err(format!("the broker exited during startup ({status})"));
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "the broker did not accept a TCP connection on {addr} within \
                         {STARTUP_TIMEOUT:?}"
                    ));
                }
                thread::sleep(POLL);
            }
        }
        // A connection may have reached someone else's listener if our broker failed to bind
        // and is about to exit: make sure it is still there.
        thread::sleep(POLL);
        match self.child.try_wait().expect("poll the broker process") {
            None => Ok(()),
            Some(status) => Err(format!("the broker exited during startup ({status})")),
        }
    }

    /// Which implementation this is.
    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// The TCP port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Every port it listens on, in the order of its listeners.
    pub(crate) fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Its process id (for signals).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its private directory (the log, and whatever the test keeps there).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The address, `127.0.0.1:port`.
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Everything the broker has logged so far (stdout and stderr).
    pub(crate) fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|error| format!("(cannot read {}: {error})", self.log_path.display()))
    }

    /// The log file's path.
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Kills the process and reaps it (idempotent).
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// Removes the private directory (log included).
    fn remove_dir(&self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Broker {
    // Printing the log of a failed test is the point.
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!(
                "---- broker log ({:?}, port {}, {}) ----\n{}---- end of broker log ----",
                self.kind,
                self.port,
                self.log_path.display(),
                self.log()
            );
        } else {
            self.remove_dir();
        }
    }
}

/// Our broker's binary, with none of the test environment's `MQTT_*` variables, logging at
/// `debug` unless `RUST_LOG` says otherwise.
fn our_broker() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mqtt-broker"));
    // The broker reads its configuration from `MQTT_<KEY>` variables: none of the test
    // environment's (MQTT_TEST_BROKER included) may leak into it.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MQTT_") {
            command.env_remove(name);
        }
    }
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "debug");
    }
    command
}

/// Mosquitto's configuration file for the listener on `port`, with the `--set KEY=VALUE` pairs
/// of `args` translated.
fn mosquitto_config(port: u16, args: &[&str]) -> String {
    let mut config = format!(
        "listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         persistence false\n\
         log_dest stderr\n\
         log_type all\n\
         connection_messages true\n"
    );
    if running_as_root() {
        // Mosquitto run as root switches to the `mosquitto` account unless told to stay; staying
        // means the test does not depend on that account existing.
        config.push_str("user root\n");
    }
    let mut rest = args.iter();
    while let Some(&arg) = rest.next() {
        let setting = match arg {
            "--set" => rest
                .next()
                .copied()
                .unwrap_or_else(|| panic!("`--set` without KEY=VALUE in {args:?}")),
            _ => panic!(
                "broker argument `{arg}` has no Mosquitto equivalent in the test harness \
                 (only `--set KEY=VALUE` is translated)"
            ),
        };
        let (key, value) = setting
            .split_once('=')
            .unwrap_or_else(|| panic!("`--set {setting}` is not KEY=VALUE"));
        let line = mosquitto_setting(key, value).unwrap_or_else(|| {
            panic!("configuration key `{key}` has no Mosquitto equivalent in the test harness")
        });
        config.push_str(&line);
        config.push('\n');
    }
    config
}

/// The Mosquitto configuration line equivalent to our configuration key `key = value`, for the
/// keys that have one.
pub(crate) fn mosquitto_setting(key: &str, value: &str) -> Option<String> {
    let bool_value = || match value {
        "true" => Some("true"),
        "false" => Some("false"),
        _ => None,
    };
    let line = match key {
        "max_keepalive_secs" => format!("max_keepalive {value}"),
        "max_inflight" => format!("max_inflight_messages {value}"),
        "max_queued_messages" => format!("max_queued_messages {value}"),
        "max_queued_bytes" => format!("max_queued_bytes {value}"),
        "max_connections" => format!("max_connections {value}"),
        "max_packet_size" => format!("max_packet_size {value}"),
        "sys_interval_secs" => format!("sys_interval {value}"),
        "queue_qos0_offline" => format!("queue_qos0_messages {}", bool_value()?),
        "retain_available" => format!("retain_available {}", bool_value()?),
        _ => return None,
    };
    Some(line)
}

/// Whether this process runs as root (Linux: the real uid in `/proc/self/status`).
fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|uids| uids.split_whitespace().next())
            == Some("0")
    })
}

/// A loopback port that was free a moment ago: bound with port 0, read back and released. No
/// port is handed out twice by one test binary, so parallel tests never race for the same one.
pub(crate) fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..100 {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0 for a free port");
        let port = listener.local_addr().expect("local address").port();
        drop(listener);
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        if handed_out.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no free loopback port found in 100 tries");
}

/// A new, empty directory for one broker or test, under cargo's scratch directory for
/// integration tests (`target/tmp`).
pub(crate) fn scratch_dir(label: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("mqtt-interop")
        .join(format!(
            "{}-{}-{label}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// Runs `command` with no standard input, collecting its stdout and stderr, and fails the test
/// (after killing it) if it has not exited within `timeout`. The exit status is not checked.
pub(crate) fn run_with_timeout(command: &mut Command, timeout: Duration) -> Output {
    let line = command_line(command);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start `{line}`: {error}"));
    let stdout = read_all_in_background(child.stdout.take().expect("piped stdout"));
    let stderr = read_all_in_background(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child process") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(POLL);
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "`{line}` did not finish within {timeout:?} and was killed\n\
             ---- stdout ----\n{}\n---- stderr ----\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// Reads `source` to its end on a thread.
fn read_all_in_background(mut source: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = source.read_to_end(&mut bytes);
        bytes
    })
}

/// The command line, for messages.
pub(crate) fn command_line(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The directory of the Python scripts, `tests/paho`.
pub(crate) fn paho_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("paho")
}

/// Runs `python3 tests/paho/<script> <args>` with a timeout (see [`run_with_timeout`]). Python
/// writes no bytecode into the source tree and its output is unbuffered, so a killed script still
/// shows how far it got.
pub(crate) fn run_python(script: &str, args: &[&str], timeout: Duration) -> Output {
    let path = paho_dir().join(script);
    assert!(path.is_file(), "no Python script {}", path.display());
    let mut command = Command::new("python3");
    command
        .arg("-B")
        .arg(&path)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    run_with_timeout(&mut command, timeout)
}

/// A readable account of a finished command, for failure messages.
pub(crate) fn describe(output: &Output) -> String {
    format!(
        "status: {}\n---- stdout ----\n{}\n---- stderr ----\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A program running in the background whose output lines (stdout and stderr, each in order)
/// can be waited for. It is killed (SIGKILL) and reaped when dropped.
pub(crate) struct Background {
    /// The command line, for messages.
    line: String,
    /// The process.
    child: Child,
    /// Lines as the reader threads see them; closed when both streams end.
    lines: Receiver<String>,
    /// Every line received so far, in arrival order.
    seen: Vec<String>,
}

impl Background {
    /// Spawns `command` with no standard input and its output piped to us.
    pub(crate) fn spawn(command: &mut Command) -> Self {
        let line = command_line(command);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start `{line}`: {error}"));
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        for (stream, prefix) in [
            (Box::new(stdout) as Box<dyn Read + Send>, ""),
            (Box::new(stderr), "stderr: "),
        ] {
            let sender = sender.clone();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(format!("{prefix}{line}")).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            line,
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits until a line (stdout, or stderr prefixed with `stderr: `) satisfies `matches` and
    /// returns it; fails the test if the program ends or `timeout` passes first.
    pub(crate) fn wait_for_line(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "`{}`: no line showing {what} within {timeout:?}\n{}",
                        self.line,
                        self.transcript()
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Its output has ended; it has exited, or is about to.
                    self.kill();
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "`{}` ended ({status:?}) before printing a line showing {what}\n{}",
                        self.line,
                        self.transcript()
                    );
                }
            }
        }
    }

    /// Waits for the program to exit by itself within `timeout` (else kills it and fails the
    /// test); returns its status and every line it printed.
    pub(crate) fn wait(&mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child process") {
                // The streams end with the process (it has no children of its own).
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(line);
                }
                return (status, self.seen.clone());
            }
            if Instant::now() >= deadline {
                self.kill();
                self.drain();
                panic!(
                    "`{}` did not exit within {timeout:?} and was killed\n{}",
                    self.line,
                    self.transcript()
                );
            }
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            thread::sleep(POLL);
        }
    }

    /// Kills the program with SIGKILL (no chance to say goodbye) and reaps it.
    pub(crate) fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// Collects whatever output is left after the process ended.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
    }

    /// Every line printed so far, for failure messages.
    pub(crate) fn transcript(&self) -> String {
        format!(
            "---- output of `{}` ----\n{}\n---- end of output ----",
            self.line,
            self.seen.join("\n")
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}
