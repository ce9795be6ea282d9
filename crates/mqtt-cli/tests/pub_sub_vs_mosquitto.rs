//! `mqtt pub` and `mqtt sub` side by side with `mosquitto_pub` and `mosquitto_sub`
//! (Debian package `mosquitto-clients`), against our broker and against Mosquitto: the same
//! inputs must give the same bytes on stdout and the same exit status.
//!
//! Every child process is bounded in time (`-W` on subscribers, and a kill after
//! [`CHILD_TIMEOUT`]); brokers run on free loopback ports and stop with the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../mqtt-client/tests/support/mod.rs"]
mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::ours::OurBroker;
use support::{CHILD_TIMEOUT, Mosquitto, Spawned, TempDir, describe, run_bounded};

const MQTT: &str = env!("CARGO_BIN_EXE_mqtt");

/// A broker under test: ours in process, or Mosquitto.
enum Peer {
    Ours(OurBroker),
    Mosquitto(Mosquitto),
}

impl Peer {
    fn port(&self) -> u16 {
        match self {
            Self::Ours(b) => b.port(),
            Self::Mosquitto(b) => b.port(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Ours(_) => "ours",
            Self::Mosquitto(_) => "mosquitto",
        }
    }
}

fn peers() -> [Peer; 2] {
    [
        Peer::Ours(OurBroker::start()),
        Peer::Mosquitto(Mosquitto::start()),
    ]
}

/// Our tool with a clean environment: no `MQTT_*` variables and no configuration file.
fn ours(tool: &str, home: &TempDir) -> Command {
    let mut c = Command::new(MQTT);
    c.arg(tool);
    isolate(&mut c, home);
    c
}

/// A Mosquitto client (its `~/.config/mosquitto_*` files are kept away the same way).
fn theirs(program: &str, home: &TempDir) -> Command {
    let mut c = Command::new(program);
    isolate(&mut c, home);
    c
}

fn isolate(c: &mut Command, home: &TempDir) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MQTT_") {
            c.env_remove(&key);
        }
    }
    c.env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env("TZ", "UTC");
}

fn port_args(port: u16) -> Vec<String> {
    vec![
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ]
}

/// Publishes with `mosquitto_pub` and checks it worked.
fn mosquitto_pub(port: u16, home: &TempDir, args: &[&str]) {
    let out = run_bounded(
        theirs("mosquitto_pub", home)
            .args(port_args(port))
            .args(args),
        CHILD_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "mosquitto_pub {args:?}\n{}",
        describe(&out)
    );
}

/// The live messages every output comparison sees, published by `mosquitto_pub`.
fn publish_live_messages(port: u16, home: &TempDir, dir: &TempDir) {
    let binary = dir.write("binary", [0u8, 1, 2, b'x', 0xff, 0xfe, b'\n', b'%', 0x7f]);
    let long = "0123456789".repeat(30);
    let json = r#"{"a":1,"b":[true,null,"x"],"c":{"d":-2.5}}"#;
    mosquitto_pub(port, home, &["-t", "cmp/a", "-m", "hello world", "-q", "0"]);
    mosquitto_pub(port, home, &["-t", "cmp/b/c", "-n", "-q", "1"]);
    mosquitto_pub(
        port,
        home,
        &["-t", "cmp/bin", "-f", binary.to_str().unwrap(), "-q", "2"],
    );
    mosquitto_pub(port, home, &["-t", "cmp/json", "-m", json, "-q", "1"]);
    mosquitto_pub(
        port,
        home,
        &["-t", "cmp/utf8", "-m", "héllo ✓ wörld", "-q", "2"],
    );
    mosquitto_pub(port, home, &["-t", "cmp/long", "-m", &long, "-q", "1"]);
    // Retained, but delivered live: the RETAIN flag is 0 for existing subscribers.
    mosquitto_pub(
        port,
        home,
        &["-t", "cmp/kept", "-m", "live+kept", "-r", "-q", "1"],
    );
    mosquitto_pub(port, home, &["-t", "cmp/last", "-m", "last", "-q", "0"]);
}

/// The number of live messages above, plus the retained one each subscriber sees first.
const MESSAGES: usize = 9;

/// Runs `mosquitto_sub` and `mqtt sub` with the same extra arguments on `cmp/#`, publishes
/// the same messages to both, and returns both outputs.
fn both_subscribers(peer: &Peer, extra: &[&str]) -> (Output, Output) {
    let home = TempDir::new("cli-home");
    let dir = TempDir::new("cli-data");
    let port = peer.port();
    // A retained message first: a subscriber that printed it has subscribed.
    mosquitto_pub(
        port,
        &home,
        &["-t", "cmp/0", "-m", "retained-first", "-r", "-q", "1"],
    );
    let count = MESSAGES.to_string();
    let common: Vec<String> = port_args(port)
        .into_iter()
        // Subscribed at QoS 1: libmosquitto hands a QoS 2 message to the application at
        // PUBREL, our client at PUBLISH (both allowed, MQTT-4.3.3), so QoS 2 deliveries could
        // interleave differently with the others.
        .chain(["-t", "cmp/#", "-q", "1", "-C", &count, "-W", "15"].map(String::from))
        .chain(extra.iter().map(|s| (*s).to_owned()))
        .collect();
    let theirs = Spawned::new(theirs("mosquitto_sub", &home).args(&common));
    let ours = Spawned::new(ours("sub", &home).args(&common));
    for sub in [&theirs, &ours] {
        sub.wait_for_stdout(Duration::from_secs(10), |out| !out.is_empty());
    }
    publish_live_messages(port, &home, &dir);
    let theirs = theirs.wait(CHILD_TIMEOUT);
    let ours = ours.wait(CHILD_TIMEOUT);
    // Clear the retained messages for the next comparison.
    for topic in ["cmp/0", "cmp/kept"] {
        mosquitto_pub(port, &home, &["-t", topic, "-n", "-r", "-q", "1"]);
    }
    (theirs, ours)
}

fn assert_same(peer: &Peer, what: &str, theirs: &Output, ours: &Output) {
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "{} {what}: exit status\nmosquitto: {}\nours: {}",
        peer.name(),
        describe(theirs),
        describe(ours)
    );
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout),
        "{} {what}: stdout differs",
        peer.name()
    );
    assert_eq!(
        ours.stdout,
        theirs.stdout,
        "{} {what}: stdout bytes",
        peer.name()
    );
}

#[test]
fn sub_output_matches_mosquitto_sub_byte_for_byte() {
    let formats: &[&[&str]] = &[
        &[],
        &["-v"],
        &["-v", "-N"],
        &["-N"],
        &["-F", "%t %p %q %r %l"],
        &["-F", "%m|%x|%X"],
        &["-F", "[%10t][%-12l][%.4p][%05l][%-5q]"],
        &["-F", "%%|\\t|\\\\|\\e|@@|@Y-@m"],
        &["-v", "-F", "%t:%l"],
        &["-T", "cmp/b/+", "-T", "cmp/json", "-v"],
    ];
    for peer in peers() {
        for extra in formats {
            // -R and -T print fewer messages: they cannot reach -C, so -W ends them with 27.
            let (theirs, ours) = both_subscribers(&peer, extra);
            assert_same(&peer, &format!("{extra:?}"), &theirs, &ours);
        }
    }
}

#[test]
fn pub_sends_what_mosquitto_pub_sends() {
    for peer in peers() {
        let port = peer.port();
        let home = TempDir::new("cli-home");
        let dir = TempDir::new("cli-data");
        let file = dir.write("payload", [b'a', 0, 0xff, b'\n', b'z']);
        let file = file.to_str().unwrap().to_owned();
        let stdin_file = dir.write("stdin", "line one\n\nline three\nno newline at end");
        // (args, stdin file) for one publish; the topic is added per tool.
        let cases: Vec<(Vec<&str>, Option<&std::path::Path>)> = vec![
            (vec!["-m", "plain message"], None),
            (vec!["-m", "q1", "-q", "1"], None),
            (vec!["-m", "q2 retained", "-q", "2", "-r"], None),
            (vec!["-n"], None),
            (vec!["-f", &file, "-q", "1"], None),
            (vec!["-l", "-q", "1"], Some(stdin_file.as_path())),
            (vec!["-s", "-q", "2"], Some(stdin_file.as_path())),
            (
                vec!["-m", "again", "--repeat", "3", "--repeat-delay", "0.01"],
                None,
            ),
        ];
        // One subscriber sees both tools' messages: `m/...` from mosquitto_pub and `o/...`
        // from ours. Each tool's messages arrive in order.
        let expected_per_tool = 1 + 1 + 1 + 1 + 1 + 4 + 1 + 3;
        // Both tools' messages, and the probe set and cleared.
        let total = (2 * expected_per_tool + 2).to_string();
        let sub = Spawned::new(
            theirs("mosquitto_sub", &home)
                .args(port_args(port))
                .args([
                    "-t", "m/#", "-t", "o/#", "-q", "2", "-C", &total, "-W", "20",
                ])
                // One line per message whatever the payload: topic and hex payload.
                .args(["-F", "%t|%x"]),
        );
        // Subscribed once a retained probe is printed.
        mosquitto_pub(port, &home, &["-t", "m/probe", "-m", "probe", "-r"]);
        sub.wait_for_stdout(Duration::from_secs(10), |out| !out.is_empty());
        mosquitto_pub(port, &home, &["-t", "m/probe", "-n", "-r"]);
        for (i, (args, stdin)) in cases.iter().enumerate() {
            for (prefix, tool) in [("m", None), ("o", Some("pub"))] {
                let topic = format!("{prefix}/{i}");
                let mut command = match tool {
                    None => theirs("mosquitto_pub", &home),
                    Some(t) => ours(t, &home),
                };
                command
                    .args(port_args(port))
                    .args(["-t", &topic])
                    .args(args);
                if let Some(path) = stdin {
                    command.stdin(std::fs::File::open(path).unwrap());
                }
                let out = run_bounded_with_stdin(&mut command);
                assert!(
                    out.status.success(),
                    "{} {prefix} {args:?}\n{}",
                    peer.name(),
                    describe(&out)
                );
            }
        }
        let out = sub.wait(CHILD_TIMEOUT);
        assert!(out.status.success(), "{}", describe(&out));
        // Split by tool, strip the prefix, compare.
        let mut by_tool = [Vec::new(), Vec::new()];
        for line in out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let tool = usize::from(line.starts_with(b"o/"));
            let Some(rest) = line.get(2..) else {
                panic!(
                    "unexpected line {:?} in\n{}",
                    String::from_utf8_lossy(line),
                    describe(&out)
                );
            };
            if rest.starts_with(b"probe|") {
                continue;
            }
            by_tool[tool].push(rest.to_vec());
        }
        assert_eq!(
            by_tool[1],
            by_tool[0],
            "{}: messages differ\nmosquitto_pub: {:?}\nmqtt pub: {:?}",
            peer.name(),
            by_tool[0]
                .iter()
                .map(|l| String::from_utf8_lossy(l))
                .collect::<Vec<_>>(),
            by_tool[1]
                .iter()
                .map(|l| String::from_utf8_lossy(l))
                .collect::<Vec<_>>()
        );
        assert_eq!(by_tool[0].len(), expected_per_tool, "{}", peer.name());
    }
}

/// Like [`run_bounded`] but keeps a stdin the caller set.
fn run_bounded_with_stdin(command: &mut Command) -> Output {
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + CHILD_TIMEOUT;
    let id = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if std::time::Instant::now() > deadline {
            let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
            panic!("{command:?} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    waiter.join().unwrap()
}

/// Exit status and stderr of both tools for the same arguments.
fn compare_failure(tool: &str, port: u16, args: &[&str]) -> (Output, Output) {
    let home = TempDir::new("cli-home");
    let program = match tool {
        "pub" => "mosquitto_pub",
        _ => "mosquitto_sub",
    };
    let theirs = run_bounded(
        theirs(program, &home).args(port_args(port)).args(args),
        CHILD_TIMEOUT,
    );
    let ours = run_bounded(
        ours(tool, &home).args(port_args(port)).args(args),
        CHILD_TIMEOUT,
    );
    (theirs, ours)
}

#[test]
fn exit_statuses_match_mosquitto() {
    let broker = Mosquitto::start();
    let refusing = Mosquitto::builder()
        .config_line("allow_anonymous false")
        .start();
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = broker.port();
    let cases: &[(&str, u16, &[&str], &str)] = &[
        ("pub", p, &["-t", "t", "-m", "x"], "success"),
        ("pub", p, &["-t", "a/#", "-m", "x"], "wildcard topic"),
        ("pub", p, &["-t", "t", "-m", "x", "-q", "3"], "QoS 3"),
        ("pub", p, &["-t", "t", "-m", "x", "-k", "3"], "keep alive 3"),
        ("pub", p, &["-t", "t"], "no message"),
        ("pub", p, &["-m", "x"], "no topic"),
        ("pub", p, &["-t", "t", "-m", "x", "-n"], "two messages"),
        (
            "pub",
            p,
            &["-t", "t", "-m", "x", "-V", "mqttv4"],
            "bad version",
        ),
        ("pub", p, &["-t", "t", "-m", "x", "-i", ""], "empty id"),
        (
            "pub",
            p,
            &["-t", "t", "-f", "/nonexistent/file"],
            "missing file",
        ),
        (
            "pub",
            refusing.port(),
            &["-t", "t", "-m", "x"],
            "refused: not authorised",
        ),
        ("pub", free, &["-t", "t", "-m", "x"], "nobody listening"),
        ("sub", p, &[], "no topic"),
        ("sub", p, &["-t", "a/#/b"], "bad filter"),
        ("sub", p, &["-t", "t", "-c"], "-c without id"),
        ("sub", p, &["-t", "t", "-C", "0"], "count 0"),
        ("sub", p, &["-t", "t", "-F", "%"], "incomplete format"),
        ("sub", p, &["-t", "t", "-F", "%Q"], "unknown format"),
        ("sub", p, &["-t", "t", "-W", "0"], "timeout 0"),
        ("sub", p, &["-t", "t", "-W", "1"], "timeout"),
        ("sub", p, &["-t", "t", "-E"], "exit after SUBACK"),
        ("sub", refusing.port(), &["-t", "t"], "refused"),
        ("sub", free, &["-t", "t"], "nobody listening"),
        (
            "sub",
            p,
            &["-t", "t", "--retained-only", "-W", "1"],
            "retained only, none",
        ),
    ];
    for (tool, port, args, what) in cases {
        let (theirs, ours) = compare_failure(tool, *port, args);
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "{tool} {what}\nmosquitto: {}\nours: {}",
            describe(&theirs),
            describe(&ours)
        );
        // The first line of stderr says the same thing (the usage pointer names our tool).
        let first = |o: &Output| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_owned()
        };
        if what != &"no message" {
            assert_eq!(
                first(&ours),
                first(&theirs),
                "{tool} {what}: first line of stderr"
            );
        }
    }
}

#[test]
fn retained_only_and_remove_retained() {
    for peer in peers() {
        let port = peer.port();
        let home = TempDir::new("cli-home");
        for t in ["ret/a", "ret/b"] {
            mosquitto_pub(port, &home, &["-t", t, "-m", t, "-r", "-q", "1"]);
        }
        // --retained-only prints the retained messages and exits at the first live one.
        let sub = Spawned::new(ours("sub", &home).args(port_args(port)).args([
            "-t",
            "ret/#",
            "-v",
            "--retained-only",
            "-W",
            "10",
        ]));
        sub.wait_for_stdout(Duration::from_secs(10), |o| {
            o.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count() == 2
        });
        mosquitto_pub(port, &home, &["-t", "ret/live", "-m", "live"]);
        let out = sub.wait(CHILD_TIMEOUT);
        assert!(out.status.success(), "{}: {}", peer.name(), describe(&out));
        let mut lines: Vec<_> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        assert_eq!(lines, ["ret/a ret/a", "ret/b ret/b"], "{}", peer.name());
        // --remove-retained clears them: a later subscriber sees none.
        let out = run_bounded(
            ours("sub", &home).args(port_args(port)).args([
                "-t",
                "ret/#",
                "--remove-retained",
                "-C",
                "2",
                "-W",
                "10",
            ]),
            CHILD_TIMEOUT,
        );
        assert!(out.status.success(), "{}: {}", peer.name(), describe(&out));
        let out = run_bounded(
            ours("sub", &home)
                .args(port_args(port))
                .args(["-t", "ret/#", "-v", "-W", "1"]),
            CHILD_TIMEOUT,
        );
        assert_eq!(out.status.code(), Some(27), "{}", peer.name());
        assert!(out.stdout.is_empty(), "{}: {}", peer.name(), describe(&out));
    }
}

#[test]
fn defaults_come_from_the_config_file_and_environment() {
    let broker = OurBroker::start();
    let home = TempDir::new("cli-home");
    std::fs::create_dir_all(home.path().join(".config/mqtt")).unwrap();
    // The file names a port nobody listens on; the environment fixes it; a flag wins over both.
    std::fs::write(
        home.path().join(".config/mqtt/config.toml"),
        "host = \"127.0.0.1\"\nport = 1\nqos = 1\n",
    )
    .unwrap();
    let out = run_bounded(
        ours("pub", &home)
            .env("MQTT_PORT", broker.port().to_string())
            .args(["-t", "cfg", "-m", "x"]),
        CHILD_TIMEOUT,
    );
    assert!(out.status.success(), "{}", describe(&out));
    let out = run_bounded(
        ours("pub", &home).env("MQTT_PORT", "1").args([
            "-p",
            &broker.port().to_string(),
            "-t",
            "cfg",
            "-m",
            "x",
        ]),
        CHILD_TIMEOUT,
    );
    assert!(out.status.success(), "{}", describe(&out));
    // A bad file: exit status 2, naming the key.
    std::fs::write(home.path().join(".config/mqtt/config.toml"), "prot = 5\n").unwrap();
    let out = run_bounded(
        ours("pub", &home).args(["-t", "x", "-m", "y"]),
        CHILD_TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("prot"),
        "{}",
        describe(&out)
    );
}

#[test]
fn tls_options_work_like_mosquitto_pub() {
    let certs = support::Certs::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let home = TempDir::new("cli-home");
    let ca = certs.ca_file();
    let ca = ca.to_str().unwrap();
    let port = broker.tls_port().to_string();
    for host in ["localhost", "127.0.0.1"] {
        let out = run_bounded(
            ours("pub", &home).args([
                "-h", host, "-p", &port, "--cafile", ca, "-t", "t", "-m", "x",
            ]),
            CHILD_TIMEOUT,
        );
        assert!(out.status.success(), "{host}: {}", describe(&out));
    }
    let cert = certs.client_cert_file();
    let key = certs.client_key_file();
    let out = run_bounded(
        ours("sub", &home).args([
            "-h",
            "localhost",
            "-p",
            &port,
            "--cafile",
            ca,
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "-t",
            "t",
            "-E",
        ]),
        CHILD_TIMEOUT,
    );
    assert!(out.status.success(), "{}", describe(&out));
    // Without the CA the server cannot be verified: both tools fail with status 1.
    let (theirs, ours_out) = (
        run_bounded(
            theirs("mosquitto_pub", &home).args([
                "-h",
                "localhost",
                "-p",
                &port,
                "--tls-use-os-certs",
                "-t",
                "t",
                "-m",
                "x",
            ]),
            CHILD_TIMEOUT,
        ),
        run_bounded(
            ours("pub", &home).args([
                "-h",
                "localhost",
                "-p",
                &port,
                "--tls-use-os-certs",
                "-t",
                "t",
                "-m",
                "x",
            ]),
            CHILD_TIMEOUT,
        ),
    );
    assert_eq!(
        ours_out.status.code(),
        theirs.status.code(),
        "{}",
        describe(&ours_out)
    );
}

/// `-R` hides retained messages, so a retained message cannot tell that the subscribers are
/// ready: live probes do, and are left out of the comparison.
#[test]
fn sub_without_retained_matches_mosquitto_sub() {
    for peer in peers() {
        let home = TempDir::new("cli-home");
        let dir = TempDir::new("cli-data");
        let port = peer.port();
        mosquitto_pub(
            port,
            &home,
            &["-t", "cmp/0", "-m", "stale", "-r", "-q", "1"],
        );
        let args: Vec<String> = port_args(port)
            .into_iter()
            .chain(["-t", "cmp/#", "-q", "2", "-R", "-v", "-W", "4"].map(String::from))
            .collect();
        let theirs = Spawned::new(theirs("mosquitto_sub", &home).args(&args));
        let ours = Spawned::new(ours("sub", &home).args(&args));
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            mosquitto_pub(port, &home, &["-t", "cmp/probe", "-m", "p", "-q", "1"]);
            let ready = [&theirs, &ours]
                .iter()
                .all(|s| s.stdout_so_far().starts_with(b"cmp/probe"));
            if ready {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "subscribers not ready"
            );
        }
        publish_live_messages(port, &home, &dir);
        let strip = |o: Output| -> (Option<i32>, Vec<u8>) {
            let kept: Vec<&[u8]> = o
                .stdout
                .split_inclusive(|b| *b == b'\n')
                .filter(|l| !l.starts_with(b"cmp/probe "))
                .collect();
            (o.status.code(), kept.concat())
        };
        let theirs = strip(theirs.wait(CHILD_TIMEOUT));
        let ours = strip(ours.wait(CHILD_TIMEOUT));
        assert_eq!(
            String::from_utf8_lossy(&ours.1),
            String::from_utf8_lossy(&theirs.1),
            "{}",
            peer.name()
        );
        assert_eq!(ours, theirs, "{}", peer.name());
        mosquitto_pub(port, &home, &["-t", "cmp/0", "-n", "-r", "-q", "1"]);
        mosquitto_pub(port, &home, &["-t", "cmp/kept", "-n", "-r", "-q", "1"]);
    }
}
