//! `mosquitto_sub` 2.0.11 against [`mqtt_cli::format`]: the same messages, received by
//! `mosquitto_sub` from a Mosquitto broker on a free loopback port, must print the same bytes
//! (stdout, and the `%J` errors on stderr) in every output style.
//!
//! Retained messages give every subscriber the same known message; a few cases need a live
//! message (an empty payload, a retain flag of 0) and publish it until the subscriber has it.
//! Time-dependent output is checked by reading the time back from what `mosquitto_sub` printed
//! and printing with that time. Every child process is bounded in time and killed and reaped
//! when dropped, also when a test panics.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use jiff::tz::{Offset, TimeZone};
use mqtt_cli::format::{MessageView, Printer, PropKind, Style, V5Props};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const MOSQUITTO_SUB: &str = "mosquitto_sub";
const MOSQUITTO_PUB: &str = "mosquitto_pub";

/// The time zone of every `mosquitto_sub`, as a POSIX `TZ` string (no tzdata needed).
const TZ: &str = "EST5EDT,M3.2.0,M11.1.0";

/// How long any child process may run before it is killed and the test fails.
const CHILD_LIMIT: Duration = Duration::from_secs(20);

/// How long the broker has to accept connections.
const STARTUP_LIMIT: Duration = Duration::from_secs(10);

/// A child process killed and reaped when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Collects a pipe's bytes on a thread, so a chatty child never blocks on a full pipe.
fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// What a finished child printed.
struct Finished {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Waits for a child started with piped stdout and stderr, killing it after [`CHILD_LIMIT`].
fn finish(mut guard: Guard, what: &str) -> Finished {
    let stdout = drain(guard.0.stdout.take());
    let stderr = drain(guard.0.stderr.take());
    let deadline = Instant::now() + CHILD_LIMIT;
    let status = loop {
        if let Some(status) = guard.0.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            drop(guard);
            let out = stdout.join().unwrap_or_default();
            let err = stderr.join().unwrap_or_default();
            panic!(
                "{what} ran longer than {CHILD_LIMIT:?}; stdout {:?}, stderr {:?}",
                out.escape_ascii().to_string(),
                err.escape_ascii().to_string()
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    Finished {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Starts a command with piped output, guarded.
fn spawn(command: &mut Command) -> Guard {
    Guard(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}")),
    )
}

/// A Mosquitto broker on `127.0.0.1:port`, killed on drop, with its private directory.
struct Broker {
    process: Guard,
    port: u16,
    dir: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A private scratch directory under the system temp directory.
fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mqtt-cli-format-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch directory");
    dir
}

impl Broker {
    /// Starts Mosquitto on a free port (another one if that port was taken meanwhile).
    fn start() -> Self {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(broker) => return broker,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("mosquitto did not start:\n{}", failures.join("\n"));
    }

    fn try_start() -> Result<Self, String> {
        let port = {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind port 0");
            listener.local_addr().expect("local address").port()
        };
        let dir = scratch_dir();
        let config = dir.join("mosquitto.conf");
        fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
        )
        .expect("write mosquitto.conf");
        let log = fs::File::create(dir.join("mosquitto.log")).expect("create log");
        let process = Guard(
            Command::new(MOSQUITTO)
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {MOSQUITTO}: {e}")),
        );
        let mut broker = Self { process, port, dir };
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(broker);
            }
            let exited = broker.process.0.try_wait().expect("try_wait").is_some();
            if exited || Instant::now() > deadline {
                let log = fs::read_to_string(broker.dir.join("mosquitto.log")).unwrap_or_default();
                return Err(format!("port {port}: {log}"));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// `mosquitto_pub` with these arguments, which must succeed.
    fn publish(&self, args: &[&str], payload: &[u8]) {
        let file = self.dir.join("payload");
        fs::write(&file, payload).expect("write payload");
        let mut command = Command::new(MOSQUITTO_PUB);
        command
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args);
        if payload.is_empty() {
            command.arg("-n");
        } else {
            command.arg("-f").arg(&file);
        }
        let done = finish(spawn(&mut command), "mosquitto_pub");
        assert!(
            done.status.success(),
            "mosquitto_pub {args:?}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    }

    /// A `mosquitto_sub` taking one message on `topic`, started (not waited for).
    fn subscriber(&self, topic: &str, args: &[&str]) -> Guard {
        let mut command = Command::new(MOSQUITTO_SUB);
        command
            .env("TZ", TZ)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", topic])
            .args(["-C", "1", "-W", "10"])
            .args(args);
        spawn(&mut command)
    }

    /// What `mosquitto_sub` prints for the retained message on `topic`.
    fn receive_retained(&self, topic: &str, args: &[&str]) -> Finished {
        let done = finish(self.subscriber(topic, args), "mosquitto_sub");
        assert!(
            done.status.success(),
            "mosquitto_sub {topic} {args:?}: {:?}",
            String::from_utf8_lossy(&done.stderr)
        );
        done
    }

    /// What `mosquitto_sub` prints for a live message: it is published (not retained) again
    /// and again until the subscriber, which takes one message, has it and exits.
    fn receive_live(
        &self,
        topic: &str,
        args: &[&str],
        publish: &[&str],
        payload: &[u8],
    ) -> Finished {
        let mut subscriber = self.subscriber(topic, args);
        let deadline = Instant::now() + CHILD_LIMIT;
        while subscriber.0.try_wait().expect("try_wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "no live message reached mosquitto_sub"
            );
            let mut publish_args = vec!["-t", topic];
            publish_args.extend_from_slice(publish);
            self.publish(&publish_args, payload);
            thread::sleep(Duration::from_millis(20));
        }
        let done = finish(subscriber, "mosquitto_sub");
        assert!(done.status.success(), "mosquitto_sub {topic} {args:?}");
        done
    }
}

/// A test message: how it is published and what the subscriber sees.
struct Message {
    topic: &'static str,
    payload: Vec<u8>,
    /// `mosquitto_pub` arguments besides the topic, the payload and `-r`.
    publish: Vec<&'static str>,
    /// `mosquitto_sub` arguments besides the topic and the output options.
    subscribe: Vec<&'static str>,
    qos: u8,
    retain: bool,
    mid: Option<u16>,
    properties: Option<V5Props>,
}

impl Message {
    fn retained(topic: &'static str, payload: &[u8]) -> Self {
        Self {
            topic,
            payload: payload.to_vec(),
            publish: Vec::new(),
            subscribe: Vec::new(),
            qos: 0,
            retain: true,
            mid: None,
            properties: None,
        }
    }

    fn view(&self) -> MessageView<'_> {
        MessageView {
            topic: self.topic,
            payload: &self.payload,
            qos: self.qos,
            retain: self.retain,
            mid: self.mid,
            properties: self.properties.as_ref(),
        }
    }
}

/// Parses a JSON `tst` value (`2020-05-06T21:48:00.123456Z+0100`) back into an instant.
fn parse_tst(tst: &str) -> SystemTime {
    let number = |range: std::ops::Range<usize>| -> i32 {
        tst.get(range)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("tst {tst:?}"))
    };
    let sign = if tst.get(27..28) == Some("-") { -1 } else { 1 };
    let offset = sign * (number(28..30) * 3600 + number(30..32) * 60);
    let offset = Offset::from_seconds(offset).expect("offset");
    let datetime = jiff::civil::date(number(0..4) as i16, number(5..7) as i8, number(8..10) as i8)
        .at(
            number(11..13) as i8,
            number(14..16) as i8,
            number(17..19) as i8,
            number(20..26) * 1000,
        );
    let timestamp = offset.to_timestamp(datetime).expect("timestamp");
    let seconds = u64::try_from(timestamp.as_second()).expect("after 1970");
    let nanos = u32::try_from(timestamp.subsec_nanosecond()).expect("nanoseconds");
    SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos)
}

/// The instant of the first `"tst"` in a JSON output, if any.
fn tst_of(output: &[u8]) -> Option<SystemTime> {
    let text = String::from_utf8_lossy(output);
    let start = text.find("\"tst\":")? + "\"tst\":".len();
    let rest = text
        .get(start..)?
        .trim_start_matches('\t')
        .strip_prefix('"')?;
    Some(parse_tst(rest.get(..32)?))
}

/// Masks every JSON `tst` value after the first: `mosquitto_sub` reads the clock again for each
/// `%j` or `%J` of a line, where we print the one time we are given.
fn mask_later_tst(output: &[u8]) -> Vec<u8> {
    let mut masked = Vec::with_capacity(output.len());
    let mut rest = output;
    let mut seen = 0;
    while let Some(at) = rest.windows(6).position(|w| w == b"\"tst\":") {
        let (head, tail) = rest.split_at(at + 6);
        masked.extend_from_slice(head);
        let quote = tail
            .iter()
            .position(|&b| b == b'"')
            .map_or(tail.len(), |q| q + 1);
        let (lead, value) = tail.split_at(quote);
        masked.extend_from_slice(lead);
        seen += 1;
        if seen > 1 && value.len() >= 32 {
            masked.extend_from_slice(b"<masked>");
            rest = &value[32..];
        } else {
            rest = value;
        }
    }
    masked.extend_from_slice(rest);
    masked
}

/// The instant `@s.@N` printed at the start of an output.
fn seconds_of(output: &[u8]) -> SystemTime {
    let text = String::from_utf8_lossy(output);
    let stamp = text.split('|').next().expect("a field");
    let (seconds, nanos) = stamp.split_once('.').expect("seconds.nanoseconds");
    let seconds: u64 = seconds.parse().expect("seconds");
    let nanos: u32 = nanos.parse().expect("nanoseconds");
    SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos)
}

/// Splits `mosquitto_sub` output arguments into our printer's options.
fn printer(args: &[&str]) -> Printer {
    let mut format = None;
    let (mut verbose, mut pretty, mut eol) = (false, false, true);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match *arg {
            "-F" => format = args.next().copied(),
            "-v" => verbose = true,
            "--pretty" => pretty = true,
            "-N" => eol = false,
            other => panic!("not an output option: {other}"),
        }
    }
    let printer = Printer::from_options(format, verbose, pretty, eol).expect("valid format");
    match printer.style() {
        Style::Format(format) => {
            let zone = TimeZone::posix(TZ).expect("POSIX TZ");
            Printer::new(Style::Format(format.clone().with_time_zone(zone))).with_eol(eol)
        }
        _ => printer,
    }
}

/// Compares what `mosquitto_sub` printed with what we print for the same message.
fn compare(failures: &mut Vec<String>, message: &Message, args: &[&str], theirs: &Finished) {
    let now = tst_of(&theirs.stdout).unwrap_or_else(SystemTime::now);
    let mut ours = Vec::new();
    let ours_err = match printer(args).write(&message.view(), now, &mut ours) {
        Ok(()) => String::new(),
        Err(e) => format!("Error: {e}\n").repeat(e.occurrences),
    };
    let theirs_err = String::from_utf8_lossy(&theirs.stderr);
    if mask_later_tst(&ours) != mask_later_tst(&theirs.stdout) || ours_err != theirs_err {
        failures.push(format!(
            "{} with {args:?}:\n  mosquitto_sub: {:?} {theirs_err:?}\n  ours:          {:?} {ours_err:?}",
            message.topic,
            theirs.stdout.escape_ascii().to_string(),
            ours.escape_ascii().to_string(),
        ));
    }
}

/// Output options checked against every retained message.
const OUTPUTS: &[&[&str]] = &[
    &[],
    &["-v"],
    &["-N"],
    &["-v", "-N"],
    &["-F", "%t|%p|%l|%q|%r|%m"],
    &["-F", "%x|%X"],
    &["-F", "%5p|%-5p|%-p|%15p|%-15p|%015p|%.3p"],
    &["-F", "%4x|%5x|%10x|%-10x|%15x|%-x|%015X"],
    &["-F", "%.3t|%-12t|%12t|%5.2t|%-5.2t|%.t|%010t"],
    &["-F", "%05l|%-5l|%5l|%-05l|%5m|%05m|%-3q|%5r|%%|%5%"],
    &["-F", "\\\\|\\a|\\e|\\r|\\t|\\v|\\0|\\n|@@|plain é"],
    &["-F", "%5A|%5C|%5E|%5F|%5S|%5R|%D|%P|%05A|%05C|%-5S|"],
    &["-F", "%j"],
    &["-F", "%J"],
    &["-F", "%j", "--pretty"],
    &["-F", "%J", "--pretty"],
    &["-F", "<%J|%t|%J>", "-N"],
];

#[test]
fn format_output_matches_mosquitto_sub() {
    let broker = Broker::start();
    let long: Vec<u8> = (0..1500u32)
        .map(|i| b"0123456789abcdefghij"[(i % 20) as usize])
        .collect();
    let json = br#"{"a": [1, 2.50, 1e2, -0, "x\u00e9\/", 123456789012345678], "b": {}, "c": [[]], "n": null, "t": true}"#;
    let mut messages = vec![
        Message::retained("fmt/text", b"hello world"),
        Message::retained("fmt/utf8", "héllo wörld ✓ \"quoted\" \\ back".as_bytes()),
        Message::retained("fmt/binary", b"a\0b\xffc\x01\x7f\n\t\x1b end"),
        Message::retained("fmt/json", json),
        Message::retained("fmt/json-scalar", b"  -0.5e-3 \n"),
        Message::retained("fmt/long", &long),
        Message::retained("fmt/ab", b"ab"),
    ];
    let mut qos1 = Message::retained("fmt/qos1", br#"{"q":1}"#);
    qos1.publish = vec!["-q", "1"];
    qos1.subscribe = vec!["-q", "1"];
    (qos1.qos, qos1.mid) = (1, Some(1));
    let mut qos2 = Message::retained("fmt/qos2", b"qos two");
    qos2.publish = vec!["-q", "2"];
    qos2.subscribe = vec!["-q", "2"];
    (qos2.qos, qos2.mid) = (2, Some(1));
    messages.extend([qos1, qos2]);

    // MQTT 5 properties, in the order mosquitto_pub writes them (its arguments' order); the
    // broker puts the subscription identifier first.
    let mut v5 = Message::retained("fmt/v5", br#"[{"k": "v"}, 1.5]"#);
    v5.publish = vec![
        "-V",
        "5",
        "-D",
        "publish",
        "content-type",
        "text/plain",
        "-D",
        "publish",
        "user-property",
        "k1",
        "v1",
        "-D",
        "publish",
        "response-topic",
        "resp/1",
        "-D",
        "publish",
        "user-property",
        "k2",
        "v 2",
        "-D",
        "publish",
        "correlation-data",
        "corr",
        "-D",
        "publish",
        "payload-format-indicator",
        "1",
    ];
    v5.subscribe = vec![
        "-V",
        "5",
        "-D",
        "subscribe",
        "subscription-identifier",
        "42",
    ];
    let mut props = V5Props::default();
    props.subscription_identifiers = vec![42];
    props.content_type = Some("text/plain".to_owned());
    props.user_properties = vec![
        ("k1".to_owned(), "v1".to_owned()),
        ("k2".to_owned(), "v 2".to_owned()),
    ];
    props.response_topic = Some("resp/1".to_owned());
    props.correlation_data = Some(b"corr".to_vec());
    props.payload_format_indicator = Some(1);
    props.order = vec![
        PropKind::SubscriptionIdentifier,
        PropKind::ContentType,
        PropKind::UserProperty,
        PropKind::ResponseTopic,
        PropKind::UserProperty,
        PropKind::CorrelationData,
        PropKind::PayloadFormatIndicator,
    ];
    v5.properties = Some(props);
    messages.push(v5);

    for message in &messages {
        let mut args = vec!["-r", "-t", message.topic];
        args.extend_from_slice(&message.publish);
        broker.publish(&args, &message.payload);
    }

    // Every (message, output) pair, a few subscribers at a time.
    let jobs: Vec<(&Message, &[&str])> = messages
        .iter()
        .flat_map(|m| OUTPUTS.iter().map(move |o| (m, *o)))
        .collect();
    let next = AtomicUsize::new(0);
    let mut failures: Vec<String> = thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut failures = Vec::new();
                    while let Some((message, output)) =
                        jobs.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        let mut args = message.subscribe.clone();
                        args.extend_from_slice(output);
                        let theirs = broker.receive_retained(message.topic, &args);
                        compare(&mut failures, message, output, &theirs);
                    }
                    failures
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });

    // Live messages: an empty payload (a retained one would delete the retained message) and
    // a retain flag of 0.
    let mut empty = Message::retained("fmt/live-empty", b"");
    empty.retain = false;
    let mut live = Message::retained("fmt/live", b"live text");
    live.retain = false;
    for message in [&empty, &live] {
        for output in [
            &[][..],
            &["-v"],
            &["-N"],
            &["-v", "-N"],
            &["-F", "%t|%p|%l|%r|%x|%-p|%5p|%j"],
        ] {
            let theirs = broker.receive_live(message.topic, output, &[], &message.payload);
            compare(&mut failures, message, output, &theirs);
        }
    }

    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The `@` conversions, `%I` and `%U` in the subscriber's time zone: the time is read back
/// from the `@s.@N` (or `%U`) that starts each line.
#[test]
fn time_output_matches_mosquitto_sub() {
    let broker = Broker::start();
    let message = Message::retained("fmt/time", b"t");
    broker.publish(&["-r", "-t", message.topic], &message.payload);
    let formats = [
        "@s.@N|@Y-@m-@dT@H:@M:@S @z @Z|@c|@a @A @b @B @h|@j @U @W @V @G @g @u @w",
        "@s.@N|@e @k @l @I @p @P|@D @F @T @r @R @x @X @y @C|@n@t@%|@E@O@3@9@+@_@q@é@\\",
        "%U|%I|%30I|%-27.10I|%.4I",
    ];
    let mut failures = Vec::new();
    for format in formats {
        let theirs = broker.receive_retained(message.topic, &["-F", format]);
        let now = seconds_of(&theirs.stdout);
        let mut ours = Vec::new();
        printer(&["-F", format])
            .write(&message.view(), now, &mut ours)
            .expect("no %J");
        if ours != theirs.stdout {
            failures.push(format!(
                "{format:?}:\n  mosquitto_sub: {:?}\n  ours:          {:?}",
                theirs.stdout.escape_ascii().to_string(),
                ours.escape_ascii().to_string()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `mosquitto_sub` rejects the format strings we reject, with the same message.
#[test]
fn format_errors_match_mosquitto_sub() {
    let broker = Broker::start();
    let mut failures = Vec::new();
    for format in [
        "%", "a%5", "%-0-p", "%k", "@", "x\\", "\\q", "%.", "%-05p|@@",
    ] {
        let mut command = Command::new(MOSQUITTO_SUB);
        command.args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-t",
            "x",
            "-E",
            "-F",
            format,
        ]);
        let theirs = finish(spawn(&mut command), "mosquitto_sub");
        let first_line = theirs
            .stderr
            .split(|&b| b == b'\n')
            .next()
            .unwrap_or_default();
        let (accepted, ours) = match Printer::from_options(Some(format), false, false, true) {
            Ok(_) => (true, String::new()),
            Err(e) => (false, format!("Error: {e}")),
        };
        let agree = if accepted {
            theirs.status.success()
        } else {
            !theirs.status.success() && String::from_utf8_lossy(first_line) == ours
        };
        if !agree {
            failures.push(format!(
                "{format:?}: mosquitto_sub {:?}, ours {ours:?}",
                theirs.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
