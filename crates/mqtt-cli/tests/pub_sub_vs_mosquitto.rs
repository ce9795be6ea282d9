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
use support::{CHILD_TIMEOUT, Mosquitto, Peer, Spawned, TempDir, describe, peers, run_bounded};

const MQTT: &str = env!("CARGO_BIN_EXE_mqtt");

/// Our tool with a clean environment: no `MQTT_*` variables and no configuration file, but
/// told to speak MQTT 3.1.1 by default as Mosquitto's tools do (ours default to 5.0; `-V` on
/// a command line still wins).
fn ours(tool: &str, home: &TempDir) -> Command {
    let mut c = ours_as_shipped(tool, home);
    c.env("MQTT_PROTOCOL_VERSION", "mqttv311");
    c
}

/// Our tool with a clean environment and its own defaults.
fn ours_as_shipped(tool: &str, home: &TempDir) -> Command {
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
fn compare_failure<S: AsRef<std::ffi::OsStr>>(
    tool: &str,
    port: u16,
    args: &[S],
) -> (Output, Output) {
    let home = TempDir::new("cli-home");
    let program = match tool {
        "pub" => "mosquitto_pub",
        "rr" => "mosquitto_rr",
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

/// A broker that refuses the connection of a client with id [`REFUSED_ID`]: Mosquitto without
/// anonymous access (not authorised: 5, or 135 under MQTT 5.0), ours with a short limit on
/// client ids (identifier rejected: 2, or 133).
fn refusing(peer: &Peer) -> Peer {
    match peer {
        Peer::Ours(_) => Peer::Ours(OurBroker::start_with(mqtt_broker::config::Config {
            max_client_id_len: 8,
            ..mqtt_broker::config::Config::default()
        })),
        Peer::Mosquitto(_) => Peer::Mosquitto(
            Mosquitto::builder()
                .config_line("allow_anonymous false")
                .start(),
        ),
    }
}

/// A client id [`refusing`] brokers refuse.
const REFUSED_ID: &str = "refused-client-id";

#[test]
fn exit_statuses_match_mosquitto() {
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for peer in peers() {
        let refusing = refusing(&peer);
        let p = peer.port();
        let r = refusing.port();
        let port = p.to_string();
        let cases: &[(&str, u16, &[&str], &str)] = &[
            ("pub", p, &["-t", "t", "-m", "x"], "success"),
            (
                "pub",
                free,
                &[
                    "-t", "a", "-t", "t", "-m", "x", "-q", "2", "-q", "1", "-p", &port,
                ],
                "repeated options: the last one counts",
            ),
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
                r,
                &["-t", "t", "-m", "x", "-i", REFUSED_ID],
                "refused",
            ),
            (
                "pub",
                r,
                &["-t", "t", "-m", "x", "-i", REFUSED_ID, "-V", "mqttv5"],
                "refused, MQTT 5.0",
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
            ("sub", r, &["-t", "t", "-i", REFUSED_ID], "refused"),
            (
                "sub",
                r,
                &["-t", "t", "-i", REFUSED_ID, "-V", "5"],
                "refused, MQTT 5.0",
            ),
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
                "{} {tool} {what}\nmosquitto: {}\nours: {}",
                peer.name(),
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
            assert_eq!(
                first(&ours),
                first(&theirs),
                "{} {tool} {what}: first line of stderr",
                peer.name()
            );
        }
    }
}

/// Bad command lines: the same exit status and the same stderr, byte for byte (but for the
/// tool's name in the pointer to `--help`).
#[test]
fn option_errors_match_mosquitto_byte_for_byte() {
    let broker = Mosquitto::start();
    let p = broker.port();
    let url = format!("MQTT://127.0.0.1:{p}/t");
    let m: &[&str] = &["-t", "t", "-m", "x"];
    let with = |extra: &[&str]| -> Vec<String> {
        m.iter().chain(extra).map(|s| (*s).to_owned()).collect()
    };
    let owned = |args: &[&str]| -> Vec<String> { args.iter().map(|s| (*s).to_owned()).collect() };
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("pub", with(&["-q", "3"])),
        ("pub", with(&["-q", "-1"])),
        ("pub", with(&["-k", "3"])),
        ("pub", with(&["-V", "4"])),
        ("pub", with(&["-p", "70000"])),
        ("pub", with(&["-i", "a", "-I", "b"])),
        ("pub", with(&["-I", "b", "-i", "a"])),
        ("pub", with(&["--will-qos", "3"])),
        ("pub", with(&["--will-payload", "p"])),
        ("pub", with(&["--will-retain"])),
        ("pub", with(&["--will-qos", "1"])),
        ("pub", with(&["-P", "secret"])),
        ("pub", with(&["-i", ""])),
        ("pub", with(&["-i", "", "--quiet"])),
        ("pub", with(&["-c"])),
        ("pub", with(&["--cert", "c.pem"])),
        ("pub", with(&["--key", "k.pem"])),
        ("pub", with(&["--cafile", "/nonexistent/ca.pem"])),
        ("pub", with(&["--cafile", "/nonexistent/ca.pem", "--quiet"])),
        ("pub", owned(&["-m", "x", "-L", "http://127.0.0.1/t"])),
        ("pub", owned(&["-m", "x", "-L", "mqtt://127.0.0.1"])),
        ("pub", owned(&["-m", "x", "-L", &url])),
        ("pub", with(&["-n"])),
        ("pub", with(&["-m", "y"])),
        ("pub", owned(&["-t", "t"])),
        ("pub", owned(&["-t", "t", "--quiet"])),
        ("pub", owned(&["-t", "a/#", "-m", "x"])),
        ("pub", with(&["--repeat", "0"])),
        ("pub", with(&["--repeat-delay", "-1"])),
        ("pub", with(&["-M", "0"])),
        ("pub", owned(&["-t", "t", "-f", "/nonexistent/file"])),
        ("pub", with(&["-zz"])),
        ("pub", with(&["--zz=1"])),
        ("pub", with(&["z"])),
        ("pub", with(&["-q", "3", "--quiet"])),
        ("pub", with(&["-D", "foo", "bar", "baz"])),
        ("pub", with(&["-D", "connect", "bar", "baz"])),
        ("pub", with(&["-D", "publish", "user-property", "a"])),
        (
            "pub",
            with(&["-D", "publish", "subscription-identifier", "3"]),
        ),
        (
            "pub",
            with(&["-V", "5", "-D", "connect", "receive-maximum", "0"]),
        ),
        (
            "pub",
            with(&["-V", "311", "-D", "connect", "session-expiry-interval", "9"]),
        ),
        ("pub", with(&["-V", "311", "-x", "9"])),
        ("pub", with(&["-x", "abc"])),
        ("pub", with(&["-x", "-2"])),
        ("pub", with(&["-x", "4294967296"])),
        (
            "sub",
            owned(&["-t", "t", "-D", "subscribe", "content-type", "x"]),
        ),
        ("pub", with(&["-D", "auth", "user-property", "a", "b"])),
        ("pub", with(&["-D", "will", "topic-alias", "1"])),
        (
            "pub",
            with(&["-V", "5", "-D", "publish", "topic-alias", "0"]),
        ),
        ("sub", owned(&[])),
        ("sub", owned(&["-t", "a/#/b"])),
        ("sub", owned(&["-t", "t", "-T", "a/#/b"])),
        ("sub", owned(&["-t", "t", "-U", "a/#/b"])),
        ("sub", owned(&["-t", "t", "-C", "abc"])),
        ("sub", owned(&["-t", "t", "-W", "-5"])),
        ("sub", owned(&["-t", "t", "-W", "18446744073709551615"])),
        ("sub", owned(&["-t", "t", "-F", "%Q"])),
        ("sub", owned(&["-t", "t", "-R", "--retained-only"])),
        (
            "sub",
            owned(&["-t", "t", "-R", "--retained-only", "--quiet"]),
        ),
        ("sub", owned(&["-t", "t", "-zz"])),
        ("sub", owned(&["-t", "t", "-i", "a", "-I", "b"])),
        (
            "sub",
            owned(&["-t", "t", "--cafile", "/nonexistent/ca.pem"]),
        ),
        ("sub", owned(&["-t", "t", "-L", "mqtt://127.0.0.1"])),
        ("rr", owned(&["-t", "t", "-m", "x"])),
        ("rr", owned(&["-t", "t", "-e", "r"])),
        ("rr", owned(&["-e", "r", "-m", "x"])),
        (
            "rr",
            owned(&[
                "-t",
                "t",
                "-e",
                "r",
                "-m",
                "x",
                "-D",
                "publish",
                "response-topic",
                "z",
            ]),
        ),
    ];
    for (tool, args) in &cases {
        let (theirs, ours) = compare_failure(tool, p, args);
        let stderr = String::from_utf8_lossy(&ours.stderr).replace(
            &format!("'mqtt {tool} --help'"),
            &format!("'mosquitto_{tool} --help'"),
        );
        assert_eq!(
            (ours.status.code(), stderr.as_str()),
            (
                theirs.status.code(),
                String::from_utf8_lossy(&theirs.stderr).as_ref()
            ),
            "{tool} {args:?}"
        );
    }
}

/// Subscribers on `sig/#`, ready once the retained probe is printed, each with a will.
fn subscriber_with_will(command: &mut Command, port: u16, will: &str, extra: &[&str]) -> Spawned {
    Spawned::new(
        command
            .args(port_args(port))
            .args([
                "-t",
                "sig/#",
                "--will-topic",
                will,
                "--will-payload",
                "died",
            ])
            .args(extra),
    )
}

/// `-W`, SIGINT and SIGTERM end `mqtt sub` as they end `mosquitto_sub`: the same exit status
/// (27, 0, 0), and a clean disconnect, so the broker does not publish the will.
#[test]
fn sub_disconnects_cleanly_on_timeout_and_signals() {
    for peer in peers() {
        let port = peer.port();
        let home = TempDir::new("cli-home");
        let watcher = Spawned::new(
            theirs("mosquitto_sub", &home)
                .args(port_args(port))
                .args(["-t", "will/#", "-v", "-W", "6"]),
        );
        mosquitto_pub(port, &home, &["-t", "will/ready", "-m", "r", "-r"]);
        watcher.wait_for_stdout(Duration::from_secs(10), |o| !o.is_empty());
        mosquitto_pub(port, &home, &["-t", "will/ready", "-n", "-r"]);
        mosquitto_pub(port, &home, &["-t", "sig/probe", "-m", "p", "-r"]);
        let mut statuses = Vec::new();
        for ending in ["-W", "INT", "TERM"] {
            let mut pair = Vec::new();
            for (name, mut command) in [
                ("theirs", theirs("mosquitto_sub", &home)),
                ("ours", ours("sub", &home)),
            ] {
                let will = format!("will/{name}/{ending}");
                let extra: &[&str] = if ending == "-W" { &["-W", "1"] } else { &[] };
                pair.push(subscriber_with_will(&mut command, port, &will, extra));
            }
            for sub in &pair {
                sub.wait_for_stdout(Duration::from_secs(10), |o| !o.is_empty());
            }
            if ending != "-W" {
                for sub in &pair {
                    let status = Command::new("kill")
                        .args([&format!("-{ending}"), &sub.id().to_string()])
                        .status()
                        .unwrap();
                    assert!(status.success());
                }
            }
            let codes: Vec<_> = pair
                .into_iter()
                .map(|s| s.wait(CHILD_TIMEOUT).status.code())
                .collect();
            statuses.push((ending, codes));
        }
        mosquitto_pub(port, &home, &["-t", "sig/probe", "-n", "-r"]);
        for (ending, codes) in &statuses {
            assert_eq!(codes[1], codes[0], "{} {ending}: exit status", peer.name());
        }
        assert_eq!(statuses[0].1[1], Some(27), "{}", peer.name());
        let out = watcher.wait(CHILD_TIMEOUT);
        let wills: Vec<_> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("will/ready"))
            .map(String::from)
            .collect();
        assert!(
            wills.is_empty(),
            "{}: wills published: {wills:?}",
            peer.name()
        );
    }
}

/// A broker that refuses subscriptions: ours, with at most 2 topic levels in a filter.
/// `mosquitto_sub` reports only a refusal of every filter, then disconnects with status 0.
#[test]
fn refused_subscriptions_are_reported_as_mosquitto_sub_does() {
    let broker = OurBroker::start_with(mqtt_broker::config::Config {
        max_topic_levels: 2,
        ..mqtt_broker::config::Config::default()
    });
    let port = broker.port();
    let cases: &[&[&str]] = &[
        &["-t", "a/b/c", "-W", "3"],
        &["-t", "a/b/c", "-t", "x/y/z", "-W", "3", "-V", "5"],
        &["-t", "a/b/c", "-E"],
        &["-t", "a/b/c", "-W", "3", "--quiet"],
        // One filter granted: nothing said, and -W ends it.
        &["-t", "a/b/c", "-t", "a/b", "-W", "1"],
    ];
    for args in cases {
        let (theirs, ours) = compare_failure("sub", port, args);
        assert_eq!(
            (ours.status.code(), String::from_utf8_lossy(&ours.stderr)),
            (
                theirs.status.code(),
                String::from_utf8_lossy(&theirs.stderr)
            ),
            "{args:?}\nmosquitto: {}\nours: {}",
            describe(&theirs),
            describe(&ours)
        );
    }
}

/// Under MQTT 5.0 the properties of a message reach `-F`: `%j` has its `"properties"`, and
/// `%C`, `%R`, `%D`, `%F` and `%P` print them.
#[test]
fn sub_prints_v5_properties_as_mosquitto_sub_does() {
    for peer in peers() {
        let port = peer.port();
        let home = TempDir::new("cli-home");
        let args: Vec<String> = port_args(port)
            .into_iter()
            .chain(
                [
                    "-V",
                    "5",
                    "-t",
                    "v5/#",
                    "-q",
                    "1",
                    "-C",
                    "4",
                    "-W",
                    "10",
                    "-F",
                    "%t|%C|%R|%D|%F|%P|%j",
                ]
                .map(String::from),
            )
            .collect();
        // Retained before they subscribe: printing it tells they have subscribed.
        mosquitto_pub(port, &home, &["-t", "v5/0", "-m", "ready", "-r", "-q", "1"]);
        let theirs = Spawned::new(theirs("mosquitto_sub", &home).args(&args));
        let ours = Spawned::new(ours("sub", &home).args(&args));
        for sub in [&theirs, &ours] {
            sub.wait_for_stdout(Duration::from_secs(10), |out| !out.is_empty());
        }
        // Properties in identifier order: the order both brokers forward them in, and the one
        // `mqtt sub` prints them in (the client does not tell the order they arrived in).
        let v5 = ["-V", "5", "-q", "1"];
        let publish = |args: &[&str]| {
            let all: Vec<&str> = v5.iter().chain(args).copied().collect();
            mosquitto_pub(port, &home, &all);
        };
        publish(&[
            "-t",
            "v5/all",
            "-m",
            r#"{"a":1}"#,
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
            "-D",
            "publish",
            "response-topic",
            "v5/reply",
            "-D",
            "publish",
            "correlation-data",
            "corr",
            "-D",
            "publish",
            "user-property",
            "k1",
            "v1",
            "-D",
            "publish",
            "user-property",
            "k2",
            "v2",
        ]);
        publish(&[
            "-t",
            "v5/type",
            "-m",
            "x",
            "-D",
            "publish",
            "content-type",
            "text/plain",
        ]);
        publish(&["-t", "v5/none", "-m", "plain"]);
        let strip_time = |o: Output| -> (Option<i32>, String) {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let mut kept = String::new();
            for line in text.lines() {
                // "tst" differs between the two subscribers: drop it.
                let line = match (line.find(r#""tst":""#), line.find(r#","topic""#)) {
                    (Some(a), Some(b)) if a < b => format!("{}{}", &line[..a], &line[b + 1..]),
                    _ => line.to_owned(),
                };
                kept.push_str(&line);
                kept.push('\n');
            }
            (o.status.code(), kept)
        };
        let theirs = strip_time(theirs.wait(CHILD_TIMEOUT));
        let ours = strip_time(ours.wait(CHILD_TIMEOUT));
        mosquitto_pub(port, &home, &["-t", "v5/0", "-n", "-r", "-q", "1"]);
        assert_eq!(ours, theirs, "{}", peer.name());
        assert!(theirs.1.contains(r#""properties":{"#), "{}", theirs.1);
    }
}

/// `-d` writes a plain log when stderr is not a terminal: no colour escapes.
#[test]
fn debug_log_has_no_escapes_in_a_pipe() {
    let broker = OurBroker::start();
    let home = TempDir::new("cli-home");
    let out = run_bounded(
        ours("pub", &home)
            .args(port_args(broker.port()))
            .args(["-t", "t", "-m", "x", "-d"]),
        CHILD_TIMEOUT,
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!out.stderr.is_empty(), "{}", describe(&out));
    assert!(!out.stderr.contains(&0x1b), "{}", describe(&out));
}

/// `--repeat-delay` too long for a clock, and `-W` past the range of Mosquitto's `int`, are
/// refused with a message, never a panic.
#[test]
fn huge_numbers_are_refused_not_a_panic() {
    let home = TempDir::new("cli-home");
    let out = run_bounded(
        ours("pub", &home).args([
            "-t",
            "t",
            "-m",
            "x",
            "--repeat",
            "2",
            "--repeat-delay",
            "1e30",
        ]),
        CHILD_TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("Error: Invalid --repeat-delay argument"),
        "{}",
        describe(&out)
    );
    let out = run_bounded(
        ours("sub", &home).args(["-t", "t", "-W", "18446744073709551615"]),
        CHILD_TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("Error: Invalid timeout \"-1\"."),
        "{}",
        describe(&out)
    );
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
    // Without the CA the server cannot be verified: both tools fail with a TLS error.
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
    // mosquitto_pub's status here depends on timing: 8 (MOSQ_ERR_TLS) when the handshake
    // fails inside its connect call, 1 when it fails later in its network loop (seen under
    // load). Ours fails the handshake before connecting, always: 8.
    assert!(
        matches!(theirs.status.code(), Some(1 | 8)),
        "{}",
        describe(&theirs)
    );
    assert_eq!(ours_out.status.code(), Some(8), "{}", describe(&ours_out));
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

/// `-D publish ...` sends the same properties as `mosquitto_pub -D`: a `mosquitto_sub -V 5`
/// prints the same line for the message of each, on both brokers. Ours speaks MQTT 5.0
/// without `-V`; Mosquitto's needs `-V 5`.
#[test]
fn pub_property_option_sends_what_mosquitto_pub_sends() {
    for peer in peers() {
        let port = peer.port();
        let home = TempDir::new("cli-home");
        let sub_args: Vec<String> = port_args(port)
            .into_iter()
            .chain(
                [
                    "-V",
                    "5",
                    "-t",
                    "d/#",
                    "-q",
                    "1",
                    "-C",
                    "3",
                    "-W",
                    "10",
                    "-F",
                    "%t|%C|%R|%D|%F|%P|%p",
                ]
                .map(String::from),
            )
            .collect();
        mosquitto_pub(port, &home, &["-t", "d/0", "-m", "ready", "-r", "-q", "1"]);
        let sub = Spawned::new(theirs("mosquitto_sub", &home).args(&sub_args));
        sub.wait_for_stdout(Duration::from_secs(10), |out| !out.is_empty());
        let props = [
            "-q",
            "1",
            "-m",
            "body",
            "-D",
            "publish",
            "content-type",
            "text/plain",
            "-D",
            "publish",
            "response-topic",
            "d/reply",
            "-D",
            "publish",
            "correlation-data",
            "c1",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
            "-D",
            "publish",
            "user-property",
            "k",
            "v1",
            "-D",
            "publish",
            "user-property",
            "k",
            "v2",
        ];
        let theirs_args: Vec<&str> = ["-V", "5", "-t", "d/theirs"]
            .iter()
            .chain(&props)
            .copied()
            .collect();
        mosquitto_pub(port, &home, &theirs_args);
        let out = run_bounded(
            ours_as_shipped("pub", &home)
                .args(port_args(port))
                .args(["-t", "d/ours"])
                .args(props),
            CHILD_TIMEOUT,
        );
        assert!(out.status.success(), "{}", describe(&out));
        let out = sub.wait(CHILD_TIMEOUT);
        mosquitto_pub(port, &home, &["-t", "d/0", "-n", "-r", "-q", "1"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{}: {text}", peer.name());
        let theirs_line = lines[1].strip_prefix("d/theirs").unwrap_or(lines[1]);
        let ours_line = lines[2].strip_prefix("d/ours").unwrap_or(lines[2]);
        assert_eq!(ours_line, theirs_line, "{}: {text}", peer.name());
        assert!(
            ours_line.contains("text/plain|d/reply|c1|1|k:v1 k:v2|body"),
            "{text}"
        );
    }
}

/// A responder for `rr`: answers every request on `rr/req` on its Response Topic, with the
/// same Correlation Data and the payload prefixed by `re: `. Runs until dropped.
struct Responder {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Responder {
    fn start(port: u16) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let options = mqtt_client::ConnectOptions::new("127.0.0.1", port);
                let (client, mut events) = mqtt_client::Client::connect(options).await.unwrap();
                client
                    .subscribe([("rr/req", mqtt_client::QoS::AtLeastOnce)])
                    .await
                    .unwrap();
                ready_tx.send(()).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        event = events.recv() => match event {
                            Some(mqtt_client::Event::Message(m)) => {
                                let Some(reply_to) = m.properties().response_topic.clone() else {
                                    continue;
                                };
                                let mut payload = b"re: ".to_vec();
                                payload.extend_from_slice(m.payload());
                                let properties = mqtt_client::PublishProperties {
                                    correlation_data: m.properties().correlation_data.clone(),
                                    ..mqtt_client::PublishProperties::default()
                                };
                                let answer = mqtt_client::OutgoingMessage::with_topic(reply_to, payload)
                                    .properties(properties);
                                let _ = client.send(answer).await;
                            }
                            Some(_) => {}
                            None => break,
                        }
                    }
                }
                let _ = client.disconnect().await;
            });
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `mqtt rr` does what `mosquitto_rr` does: the request carries the response topic (MQTT 5),
/// the first response is printed (`-v`: with its topic), exit status 0; without an answer,
/// "Timed out" and status 27 after `-W`. Ours speaks 5.0 by default, like `mosquitto_rr`.
#[test]
fn rr_matches_mosquitto_rr() {
    for peer in peers() {
        let port = peer.port();
        let home = TempDir::new("cli-home");
        let responder = Responder::start(port);
        let run = |mut command: Command, response: &str| {
            run_bounded(
                command.args(port_args(port)).args([
                    "-t", "rr/req", "-e", response, "-m", "hello", "-v", "-W", "10",
                ]),
                CHILD_TIMEOUT,
            )
        };
        let their_out = run(theirs("mosquitto_rr", &home), "rr/resp/x");
        let our_out = run(ours_as_shipped("rr", &home), "rr/resp/x");
        assert_eq!(
            (
                our_out.status.code(),
                String::from_utf8_lossy(&our_out.stdout)
            ),
            (
                their_out.status.code(),
                String::from_utf8_lossy(&their_out.stdout)
            ),
            "{}\nmosquitto: {}\nours: {}",
            peer.name(),
            describe(&their_out),
            describe(&our_out)
        );
        assert_eq!(
            String::from_utf8_lossy(&our_out.stdout),
            "rr/resp/x re: hello\n"
        );
        drop(responder);

        let silent = |mut command: Command| {
            run_bounded(
                command.args(port_args(port)).args([
                    "-t",
                    "rr/nobody",
                    "-e",
                    "rr/none",
                    "-m",
                    "x",
                    "-W",
                    "1",
                ]),
                CHILD_TIMEOUT,
            )
        };
        let their_out = silent(theirs("mosquitto_rr", &home));
        let our_out = silent(ours_as_shipped("rr", &home));
        assert_eq!(our_out.status.code(), Some(27), "{}", describe(&our_out));
        assert_eq!(our_out.status.code(), their_out.status.code());
        assert_eq!(
            String::from_utf8_lossy(&our_out.stderr),
            String::from_utf8_lossy(&their_out.stderr)
        );
    }
}
