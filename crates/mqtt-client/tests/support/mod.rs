//! Test harness shared by the client's integration tests and (via `#[path]`) the CLI's:
//! certificates generated at test time ([`Certs`]), a real Mosquitto broker on free loopback
//! ports ([`Mosquitto`]), and child processes bounded in time ([`run_bounded`], [`Spawned`]).
//!
//! Everything lives in private temporary directories that are removed on drop. Helpers panic
//! with a descriptive message instead of returning errors: they are only used from tests.
//!
//! Needs `rcgen` as a dev-dependency, `/usr/sbin/mosquitto` (Debian package `mosquitto`) and,
//! for tests that use them, `mosquitto_pub`/`mosquitto_sub` (package `mosquitto-clients`).

#![allow(dead_code, unreachable_pub)]
// Tests report through stderr, e.g. the broker's log when a test fails.
#![allow(clippy::print_stderr)]

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The Mosquitto broker binary.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// How long a test waits for a child process (a command-line client) by default.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`Mosquitto`] waits for the broker to start or stop.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times a broker start is retried with fresh ports when a port was taken.
const START_ATTEMPTS: usize = 3;

// ---------------------------------------------------------------------------------------------
// Temporary directories

/// A fresh private (mode 0700 on Unix) directory under the system temp dir, removed with its
/// contents on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<temp>/mqtt-test-<label>-<pid>-<n>-<nanos>`.
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        loop {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = std::env::temp_dir().join(format!(
                "mqtt-test-{label}-{}-{}-{nanos}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed),
            ));
            let mut builder = fs::DirBuilder::new();
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            match builder.create(&path) {
                Ok(()) => return Self { path },
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create temp dir {}: {e}", path.display()),
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path.join(name);
        fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// A throw-away PKI generated with rcgen, as PEM files in a private temp dir:
///
/// * `ca.pem`: a self-signed CA certificate;
/// * `server.pem`/`server.key`: a server certificate for `localhost`, `127.0.0.1` and `::1`
///   signed by the CA;
/// * `client.pem`/`client.key`: a client certificate (CN `mqtt-test-client`) signed by the CA.
///
/// Keys are ECDSA P-256 in PKCS#8. Each call to [`Certs::generate`] makes a new CA, so the
/// certificates of one `Certs` are not trusted by another's CA.
#[derive(Debug)]
pub struct Certs {
    dir: TempDir,
    ca_pem: String,
}

impl Certs {
    /// Generates the CA, server and client certificates and writes them out.
    pub fn generate() -> Self {
        let dir = TempDir::new("certs");

        let mut ca_params = CertificateParams::new(Vec::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "mqtt test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let ca_pem = ca_cert.pem();
        dir.write("ca.pem", &ca_pem);
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |name: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose| {
            let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
            let mut params = CertificateParams::new(sans).expect("leaf params");
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.use_authority_key_identifier_extension = true;
            let key = KeyPair::generate().expect("leaf key");
            let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
            (cert.pem(), key.serialize_pem())
        };
        let (server_pem, server_key) = leaf(
            "localhost",
            &["localhost", "127.0.0.1", "::1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        dir.write("server.pem", server_pem);
        dir.write("server.key", server_key);
        let (client_pem, client_key) =
            leaf("mqtt-test-client", &[], ExtendedKeyUsagePurpose::ClientAuth);
        dir.write("client.pem", client_pem);
        dir.write("client.key", client_key);

        Self { dir, ca_pem }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate (PEM), for `--cafile` / `TlsOptions::ca_file`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The CA certificate as PEM text.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server certificate (PEM).
    pub fn server_cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server's private key (PKCS#8 PEM).
    pub fn server_key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// The client certificate (PEM), for `--cert` / `TlsOptions::client_auth`.
    pub fn client_cert_file(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }

    /// The client's private key (PKCS#8 PEM), for `--key` / `TlsOptions::client_auth`.
    pub fn client_key_file(&self) -> PathBuf {
        self.dir.path().join("client.key")
    }
}

// ---------------------------------------------------------------------------------------------
// Bounded child processes

/// A child process whose stdout and stderr are collected in the background; killed and reaped
/// on drop, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    what: String,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    /// What the process has written to stdout so far.
    live: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Spawned {
    /// Spawns `command` with stdin closed and stdout/stderr captured.
    pub fn new(command: &mut Command) -> Self {
        let what = format!("{command:?}");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let live = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stdout = child.stdout.take().map(|pipe| {
            let live = std::sync::Arc::clone(&live);
            thread::spawn(move || {
                let mut pipe = pipe;
                let mut chunk = [0u8; 4096];
                loop {
                    match pipe.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => live
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .extend_from_slice(&chunk[..n]),
                    }
                }
                live.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            })
        });
        let stderr = child.stderr.take().map(collect);
        Self {
            child,
            what,
            stdout,
            stderr,
            live,
        }
    }

    /// What the process has written to stdout so far.
    pub fn stdout_so_far(&self) -> Vec<u8> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits until what the process wrote to stdout so far satisfies `ready`; panics after
    /// `timeout`.
    pub fn wait_for_stdout(&self, timeout: Duration, ready: impl Fn(&[u8]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let so_far = self
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if ready(&so_far) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print what was expected within {timeout:?}; so far: {:?}",
                self.what,
                String::from_utf8_lossy(&so_far)
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit and returns its output; kills it and panics (showing the
    /// output so far) if it runs longer than `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Output {
        match wait_bounded(&mut self.child, timeout) {
            Some(status) => self.output(status),
            None => {
                let _ = self.child.kill();
                let status = self.child.wait().expect("reap child");
                let output = self.output(status);
                panic!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.what,
                    describe(&output)
                );
            }
        }
    }

    /// Kills the process (SIGKILL) and returns its output.
    pub fn kill(mut self) -> Output {
        let _ = self.child.kill();
        let status = self.child.wait().expect("reap child");
        self.output(status)
    }

    fn output(&mut self, status: ExitStatus) -> Output {
        let join = |handle: Option<JoinHandle<Vec<u8>>>| {
            handle
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default()
        };
        Output {
            status,
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn collect(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Runs `command` to completion with stdin closed, capturing its output; kills it and panics
/// if it takes longer than `timeout` (typically [`CHILD_TIMEOUT`]).
pub fn run_bounded(command: &mut Command, timeout: Duration) -> Output {
    Spawned::new(command).wait(timeout)
}

/// Exit status, stdout and stderr of `output`, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim_end(),
        String::from_utf8_lossy(&output.stderr).trim_end(),
    )
}

/// Polls `child` until it exits or `timeout` passes.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => return None,
            Err(e) => panic!("cannot wait for child {}: {e}", child.id()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mosquitto

/// How to stop the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: Mosquitto shuts down cleanly and, with persistence, saves its database.
    Term,
    /// SIGKILL: a crash; nothing is saved.
    Kill,
}

/// Options of a [`Mosquitto`] broker; start it with [`MosquittoBuilder::start`].
#[derive(Clone, Debug, Default)]
pub struct MosquittoBuilder {
    tls: Option<TlsFiles>,
    require_certificate: bool,
    persistence: bool,
    max_inflight_messages: Option<u16>,
    max_queued_messages: Option<u32>,
    extra: Vec<String>,
}

#[derive(Clone, Debug)]
struct TlsFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl MosquittoBuilder {
    /// Adds a TLS listener on a second port with the server certificate of `certs` (the files
    /// are copied, so `certs` may be dropped before the broker).
    pub fn tls(mut self, certs: &Certs) -> Self {
        self.tls = Some(TlsFiles {
            ca: certs.ca_file(),
            cert: certs.server_cert_file(),
            key: certs.server_key_file(),
        });
        self
    }

    /// Makes the TLS listener demand a client certificate signed by the CA
    /// (`require_certificate true`). Needs [`tls`](Self::tls).
    pub fn require_certificate(mut self, require: bool) -> Self {
        self.require_certificate = require;
        self
    }

    /// Enables persistence in the broker's private directory, so that sessions, queued
    /// messages and retained messages survive [`Mosquitto::restart`] after a
    /// [`Signal::Term`] stop.
    pub fn persistence(mut self, persistence: bool) -> Self {
        self.persistence = persistence;
        self
    }

    /// Sets `max_inflight_messages` (QoS 1/2 messages in flight per client; 0 = unlimited).
    pub fn max_inflight_messages(mut self, n: u16) -> Self {
        self.max_inflight_messages = Some(n);
        self
    }

    /// Sets `max_queued_messages` (messages queued per client beyond those in flight).
    pub fn max_queued_messages(mut self, n: u32) -> Self {
        self.max_queued_messages = Some(n);
        self
    }

    /// Appends a raw line to the global part of the configuration, e.g.
    /// `"retain_available false"`.
    pub fn config_line(mut self, line: impl Into<String>) -> Self {
        self.extra.push(line.into());
        self
    }

    /// Starts the broker and waits until it accepts connections on all its ports; panics
    /// (showing the broker's log) if it cannot be started within 10 s.
    pub fn start(self) -> Mosquitto {
        assert!(
            self.tls.is_some() || !self.require_certificate,
            "require_certificate needs a TLS listener"
        );
        let dir = TempDir::new("mosquitto");
        let tls = self.tls.as_ref().map(|files| {
            let copy = |from: &Path, name: &str| {
                let to = dir.path().join(name);
                fs::copy(from, &to).unwrap_or_else(|e| {
                    panic!("cannot copy {} to {}: {e}", from.display(), to.display())
                });
                to
            };
            TlsFiles {
                ca: copy(&files.ca, "ca.pem"),
                cert: copy(&files.cert, "server.pem"),
                key: copy(&files.key, "server.key"),
            }
        });
        if self.persistence {
            fs::create_dir(dir.path().join("data")).expect("create persistence dir");
        }
        let mut broker = Mosquitto {
            port: 0,
            tls_port: None,
            child: None,
            options: self,
            tls,
            dir,
        };
        for attempt in 1..=START_ATTEMPTS {
            broker.port = free_port();
            broker.tls_port = broker.tls.as_ref().map(|_| free_port());
            broker.write_config();
            match broker.launch() {
                Ok(()) => return broker,
                Err(StartError::AddressInUse) if attempt < START_ATTEMPTS => continue,
                Err(error) => broker.fail(&error.to_string()),
            }
        }
        unreachable!("the last attempt returns or panics")
    }
}

/// A Mosquitto broker (`/usr/sbin/mosquitto`) running on free loopback ports with a generated
/// configuration in a private temp dir: anonymous access, a plain listener, optionally a TLS
/// listener and persistence, and everything logged (`log_type all`) to a file.
///
/// The broker is killed and reaped on drop, also when the test panics; if it is dropped
/// during a panic, its log is printed to stderr.
///
/// ```ignore
/// let certs = Certs::generate();
/// let broker = Mosquitto::builder().tls(&certs).persistence(true).start();
/// let (port, tls_port) = (broker.port(), broker.tls_port());
/// ```
#[derive(Debug)]
pub struct Mosquitto {
    port: u16,
    tls_port: Option<u16>,
    child: Option<Child>,
    options: MosquittoBuilder,
    tls: Option<TlsFiles>,
    // Last, so that it is removed after the broker is gone.
    dir: TempDir,
}

#[derive(Debug)]
enum StartError {
    AddressInUse,
    Exited(ExitStatus),
    Timeout,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AddressInUse => write!(f, "mosquitto could not bind its ports"),
            Self::Exited(status) => write!(f, "mosquitto exited during startup ({status})"),
            Self::Timeout => write!(
                f,
                "mosquitto did not accept connections within {BROKER_TIMEOUT:?}"
            ),
        }
    }
}

impl Mosquitto {
    /// Options for a broker; see [`MosquittoBuilder`].
    pub fn builder() -> MosquittoBuilder {
        MosquittoBuilder::default()
    }

    /// Starts a broker with just the plain listener.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// The host to connect to: `127.0.0.1` (the listeners are bound to IPv4 loopback only, so
    /// connecting to `localhost` must fall back from `::1`; the TLS certificate is valid for
    /// both names).
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The plain MQTT port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The plain listener's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The TLS port; panics if the broker has no TLS listener.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
            .expect("this broker has no TLS listener; use MosquittoBuilder::tls")
    }

    /// The TLS listener's address; panics if the broker has no TLS listener.
    pub fn tls_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.tls_port()))
    }

    /// The broker's private directory (configuration, log, persistence).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The generated configuration file.
    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }

    /// The broker's log file (all starts append to it).
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("mosquitto.log")
    }

    /// The broker's log so far, followed by anything it wrote to stdout/stderr.
    pub fn log(&self) -> String {
        let mut log = fs::read_to_string(self.log_file()).unwrap_or_default();
        let console = fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default();
        if !console.trim().is_empty() {
            let _ = write!(log, "--- stdout/stderr ---\n{console}");
        }
        log
    }

    /// The process id of the running broker, if it is running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the broker process is running (an exit since the last check is noticed).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Stops the broker with `signal` and waits (10 s, then SIGKILL) until it has exited.
    /// Does nothing if it is not running.
    pub fn stop(&mut self, signal: Signal) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        match signal {
            Signal::Term => {
                let sent = run_bounded(
                    Command::new("kill")
                        .arg("-TERM")
                        .arg(child.id().to_string()),
                    CHILD_TIMEOUT,
                );
                assert!(sent.status.success(), "kill -TERM: {}", describe(&sent));
            }
            Signal::Kill => {
                let _ = child.kill();
            }
        }
        if wait_bounded(&mut child, BROKER_TIMEOUT).is_none() {
            let _ = child.kill();
            let _ = child.wait();
            self.fail(&format!(
                "mosquitto did not exit within {BROKER_TIMEOUT:?} of {signal:?}"
            ));
        }
    }

    /// Stops the broker if it is running ([`Signal::Term`]) and starts it again on the same
    /// ports with the same configuration and persistence directory.
    pub fn restart(&mut self) {
        self.stop(Signal::Term);
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match self.launch() {
                Ok(()) => return,
                // The port may be briefly unavailable (or taken by someone else: then
                // retrying does not help and the test fails).
                Err(StartError::AddressInUse) => {
                    last = Some(StartError::AddressInUse);
                    thread::sleep(Duration::from_millis(200));
                }
                Err(error) => self.fail(&format!("restart: {error}")),
            }
        }
        let error = last.map_or_else(String::new, |e| e.to_string());
        self.fail(&format!("restart on the same ports: {error}"));
    }

    fn write_config(&self) {
        let dir = self.dir.path();
        let opts = &self.options;
        let mut conf = String::from("# Generated by the mqtt-client test harness.\n");
        // When running as root, mosquitto would otherwise switch to the `mosquitto` user, which
        // cannot use our private directory. Without root privileges this has no effect.
        conf.push_str("user root\n");
        conf.push_str("per_listener_settings false\nallow_anonymous true\n");
        let _ = writeln!(
            conf,
            "log_dest file {}",
            dir.join("mosquitto.log").display()
        );
        conf.push_str("log_type all\nlog_timestamp true\nconnection_messages true\n");
        if opts.persistence {
            let _ = writeln!(
                conf,
                "persistence true\npersistence_location {}/",
                dir.join("data").display()
            );
        } else {
            conf.push_str("persistence false\n");
        }
        if let Some(n) = opts.max_inflight_messages {
            let _ = writeln!(conf, "max_inflight_messages {n}");
        }
        if let Some(n) = opts.max_queued_messages {
            let _ = writeln!(conf, "max_queued_messages {n}");
        }
        for line in &opts.extra {
            let _ = writeln!(conf, "{line}");
        }
        let _ = writeln!(conf, "\nlistener {} 127.0.0.1", self.port);
        if let (Some(port), Some(tls)) = (self.tls_port, &self.tls) {
            let _ = writeln!(conf, "\nlistener {port} 127.0.0.1");
            let _ = writeln!(conf, "cafile {}", tls.ca.display());
            let _ = writeln!(conf, "certfile {}", tls.cert.display());
            let _ = writeln!(conf, "keyfile {}", tls.key.display());
            if opts.require_certificate {
                conf.push_str("require_certificate true\n");
            }
        }
        fs::write(self.config_file(), conf).expect("write mosquitto.conf");
    }

    /// Starts the process and waits until it accepts connections on all ports.
    fn launch(&mut self) -> Result<(), StartError> {
        let console = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("console.log"))
            .expect("open console.log");
        let log_len = fs::metadata(self.log_file()).map_or(0, |m| m.len());
        let mut child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(self.config_file())
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("clone console.log handle"))
            .stderr(console)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {MOSQUITTO}: {e}"));

        let log_since_start = || {
            let log = fs::read(self.log_file()).unwrap_or_default();
            let start = usize::try_from(log_len).unwrap_or(0);
            String::from_utf8_lossy(log.get(start..).unwrap_or_default()).into_owned()
        };
        let ports: Vec<u16> = std::iter::once(self.port).chain(self.tls_port).collect();
        let deadline = Instant::now() + BROKER_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(if log_since_start().contains("Address already in use") {
                    StartError::AddressInUse
                } else {
                    StartError::Exited(status)
                });
            }
            // Mosquitto logs "running" once all its listeners are bound, so a port that
            // accepts connections after that belongs to it (not to whoever may have taken it
            // between `free_port` and the start).
            if log_since_start().contains(" running")
                && ports.iter().all(|&port| {
                    TcpStream::connect_timeout(
                        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                        Duration::from_millis(200),
                    )
                    .is_ok()
                })
                && matches!(child.try_wait(), Ok(None))
            {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartError::Timeout);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the broker and panics with `message` and the configuration (the log is printed
    /// when the broker is dropped during the panic).
    fn fail(&mut self, message: &str) -> ! {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let config = fs::read_to_string(self.config_file()).unwrap_or_default();
        panic!(
            "{message}\n--- {} ---\n{config}--- end of configuration ---",
            self.config_file().display(),
        );
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "--- mosquitto log ({}) ---\n{}--- end of mosquitto log ---",
                self.log_file().display(),
                self.log()
            );
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

pub mod ours;

/// A broker under test: ours (in process) or Mosquitto.
#[allow(dead_code)]
pub enum Peer {
    /// Our broker.
    Ours(ours::OurBroker),
    /// The Mosquitto broker.
    Mosquitto(Mosquitto),
}

#[allow(dead_code)]
impl Peer {
    /// Its loopback port.
    pub fn port(&self) -> u16 {
        match self {
            Self::Ours(b) => b.port(),
            Self::Mosquitto(b) => b.port(),
        }
    }

    /// "ours" or "mosquitto", for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ours(_) => "ours",
            Self::Mosquitto(_) => "mosquitto",
        }
    }
}

/// Both brokers, freshly started.
#[allow(dead_code)]
pub fn peers() -> [Peer; 2] {
    [
        Peer::Ours(ours::OurBroker::start()),
        Peer::Mosquitto(Mosquitto::start()),
    ]
}

/// The longest one client test may run ([`bounded`]).
pub const TEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(90);
/// The longest a client test waits for one expected event ([`next_message`]).
pub const EVENT_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs a client test within [`TEST_LIMIT`].
pub async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("the test did not finish in time");
}

/// The next message, skipping connection events.
pub async fn next_message(events: &mut mqtt_client::Events) -> mqtt_client::Message {
    loop {
        match tokio::time::timeout(EVENT_LIMIT, events.recv()).await {
            Ok(Some(mqtt_client::Event::Message(m))) => return m,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the event stream ended"),
            Err(_) => panic!("no message within {EVENT_LIMIT:?}"),
        }
    }
}
