//! Hostile input over raw TCP: a client that sends hand-written bytes breaking MQTT 3.1.1 (or
//! wasting the broker's resources) is disconnected within a bounded time, while a well-behaved
//! client connected before the attack keeps exchanging messages without losing any, and the
//! broker neither dies nor panics.
//!
//! Every test starts its own broker (`support::Broker`), so that a panic in the log is pinned on
//! the attack that caused it; starting one takes a few milliseconds. Each test then:
//!
//! 1. connects a *good client* (a minimal MQTT 3.1.1 client written here, reading with
//!    `mqtt_codec`), subscribes it to `t/<test>/#` at QoS 1, and round-trips a QoS 1 message;
//! 2. runs the attack on another connection and checks that the broker closes it (read returns
//!    0 or the connection is reset) in time. Before CONNECT nothing may come back, except the
//!    CONNACK 0x01 that answers an unsupported protocol level [MQTT-3.1.2-2]. After CONNECT the
//!    attacker carries a will on `t/<test>/will`, which a protocol-error close must publish
//!    (MQTT 3.1.1 section 3.1.2.5), so the good client must receive it;
//! 3. round-trips another message on the good client, checks that every message it published
//!    came back exactly once and in order, that a new client can still connect, that the broker
//!    process is alive and that its log has no "panicked".
//!
//! All I/O has timeouts and every wait has a deadline: no test can hang. The suite targets our
//! broker (it sets keys Mosquitto has no equivalent for, such as `max_topic_levels`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The harness prints the broker's log to stderr when a test fails.
#[allow(clippy::print_stderr)]
mod support;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt_codec::{Decoder, Packet, ProtocolVersion, QosPid, ReasonCode};
use support::Broker;

/// Timeout of every single read or write of the test's own clients.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the broker may take to close a connection that broke the protocol: "at once", with
/// room for a loaded machine, and well below the connect timeout (10 s by default).
const AT_ONCE: Duration = Duration::from_secs(2);

/// How long the good client may wait for one of its messages (or a will) to come back.
const DELIVERY: Duration = Duration::from_secs(5);

/// The configuration every test broker runs with.
const BASE_ARGS: [&str; 4] = [
    "--set",
    "max_packet_size=65536",
    "--set",
    "max_topic_levels=4",
];

/// The maximum packet size configured by [`BASE_ARGS`].
const MAX_PACKET_SIZE: usize = 65_536;

// ---------------------------------------------------------------------------------------------
// Encoding by hand
// ---------------------------------------------------------------------------------------------

/// A Variable Byte Integer (Remaining Length).
fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return out;
        }
    }
}

/// A two-byte length followed by the bytes (UTF-8 string or binary data).
fn lp(bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).expect("field under 64 KiB");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A whole packet: the first byte, the Remaining Length of `body`, then `body`.
fn frame(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}

/// A CONNECT body: protocol name, level, flags, keep alive, then `payload` as it is.
fn connect_body(name: &[u8], level: u8, flags: u8, keep_alive: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = lp(name);
    body.push(level);
    body.push(flags);
    body.extend_from_slice(&keep_alive.to_be_bytes());
    body.extend_from_slice(payload);
    body
}

/// A valid MQTT 3.1.1 CONNECT, clean session, with an optional QoS 0 will (topic, message).
fn connect_packet(client_id: &str, keep_alive: u16, will: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut flags = 0x02;
    let mut payload = lp(client_id.as_bytes());
    if let Some((topic, message)) = will {
        flags |= 0x04;
        payload.extend(lp(topic.as_bytes()));
        payload.extend(lp(message));
    }
    frame(0x10, &connect_body(b"MQTT", 4, flags, keep_alive, &payload))
}

/// A PUBLISH with the given first byte (type and flags), topic bytes, packet identifier (for
/// QoS 1 and 2) and payload.
fn publish_packet(first_byte: u8, topic: &[u8], packet_id: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let mut body = lp(topic);
    if let Some(id) = packet_id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    frame(first_byte, &body)
}

/// A SUBSCRIBE with the given first byte, packet identifier and (filter, options byte) pairs.
fn subscribe_packet(first_byte: u8, packet_id: u16, filters: &[(&[u8], u8)]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    for (filter, options) in filters {
        body.extend(lp(filter));
        body.push(*options);
    }
    frame(first_byte, &body)
}

/// An UNSUBSCRIBE with the given first byte, packet identifier and filters.
fn unsubscribe_packet(first_byte: u8, packet_id: u16, filters: &[&[u8]]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    for filter in filters {
        body.extend(lp(filter));
    }
    frame(first_byte, &body)
}

/// `a` followed by `b`.
fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = a.to_vec();
    out.extend_from_slice(b);
    out
}

// ---------------------------------------------------------------------------------------------
// Raw connections
// ---------------------------------------------------------------------------------------------

/// A TCP connection to the broker with read and write timeouts.
fn open(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to the broker");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Writes everything; a failure is ignored, since the broker may already have closed the
/// connection (what matters is checked by [`expect_closed`]).
fn send_ignoring_errors(stream: &mut TcpStream, bytes: &[u8]) {
    let _ = stream.write_all(bytes);
    let _ = stream.flush();
}

/// Whether a read error means the peer closed the connection.
fn is_closed_error(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// Reads until the broker closes the connection (end of stream or reset) or `within` passes:
/// `Ok` with what it sent if it closed, `Err` with what it sent if the connection is still open.
fn wait_closed(stream: &mut TcpStream, within: Duration) -> Result<Vec<u8>, Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(got);
        }
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if is_closed_error(e.kind()) => return Ok(got),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => panic!("reading from the broker failed: {e}"),
        }
    }
}

/// Reads until the broker closes the connection (end of stream or reset) and returns what it
/// sent before; fails the test if the connection is still open after `within`.
fn expect_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    wait_closed(stream, within).unwrap_or_else(|got| {
        panic!(
            "the broker did not close the connection within {within:?} \
             (it sent {} bytes: {:02x?})",
            got.len(),
            &got[..got.len().min(64)]
        )
    })
}

/// As [`expect_closed`], and the broker must have sent nothing (no CONNACK).
fn expect_closed_silently(stream: &mut TcpStream, within: Duration) {
    let got = expect_closed(stream, within);
    assert!(
        got.is_empty(),
        "the broker answered before closing ({got:02x?}); expected no CONNACK"
    );
}

/// Reads exactly `n` bytes (or fails the test).
fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    stream
        .read_exact(&mut out)
        .unwrap_or_else(|e| panic!("expected {n} bytes from the broker: {e}"));
    out
}

/// The CONNACK accepting a clean session.
const CONNACK_ACCEPTED: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

/// The CONNACK refusing an unacceptable protocol version [MQTT-3.1.2-2].
const CONNACK_UNSUPPORTED: [u8; 4] = [0x20, 0x02, 0x00, 0x01];

// ---------------------------------------------------------------------------------------------
// The broker process
// ---------------------------------------------------------------------------------------------

/// The broker's process id. The harness does not expose it, so it is looked up in `/proc`: the
/// process whose command line is our binary with `-p <port>`. `None` when not found (another
/// broker under test, or no `/proc`).
fn broker_pid(broker: &Broker) -> Option<u32> {
    let exe = env!("CARGO_BIN_EXE_mqtt-broker").as_bytes();
    let port = broker.port().to_string();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.first() == Some(&exe)
            && args
                .windows(2)
                .any(|w| w[0] == b"-p" && w[1] == port.as_bytes())
        {
            return Some(pid);
        }
    }
    None
}

/// A line of `/proc/<pid>/status`, without its label.
fn proc_status(pid: u32, label: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .map(|rest| rest.trim().to_string())
}

/// The resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let value = proc_status(pid, "VmRSS:").expect("VmRSS in /proc/<pid>/status");
    value
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmRSS in kB")
}

// ---------------------------------------------------------------------------------------------
// The well-behaved client
// ---------------------------------------------------------------------------------------------

/// A minimal MQTT 3.1.1 client: publishes at QoS 1 on its topic, subscribed to its test's
/// topics at QoS 1, acknowledging what it receives.
struct GoodClient {
    stream: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
    /// Where it publishes.
    topic: String,
    next_id: u16,
    /// Payloads published on `topic`, in order.
    sent: Vec<Vec<u8>>,
    /// Payloads received on `topic`, in order.
    received: Vec<Vec<u8>>,
    /// Messages received on other topics (wills), not yet claimed.
    others: Vec<(String, Vec<u8>)>,
    /// Packet identifiers whose PUBACK arrived.
    acked: Vec<u16>,
}

impl GoodClient {
    /// Connects (clean session, keep alive 60 s) and subscribes to `filter` at QoS 1.
    fn connect(addr: SocketAddr, client_id: &str, filter: &str, topic: &str) -> Self {
        let mut stream = open(addr);
        stream
            .write_all(&connect_packet(client_id, 60, None))
            .unwrap();
        assert_eq!(
            read_exact(&mut stream, 4),
            CONNACK_ACCEPTED,
            "good client: CONNACK"
        );
        let mut client = Self {
            stream,
            decoder: Decoder::new(ProtocolVersion::V3_1_1),
            buf: BytesMut::new(),
            topic: topic.to_string(),
            next_id: 0,
            sent: Vec::new(),
            received: Vec::new(),
            others: Vec::new(),
            acked: Vec::new(),
        };
        let id = client.next_id();
        client
            .stream
            .write_all(&subscribe_packet(0x82, id, &[(filter.as_bytes(), 1)]))
            .unwrap();
        let deadline = Instant::now() + DELIVERY;
        match client.next_packet(deadline) {
            Packet::SubAck(ack) => {
                assert_eq!(ack.packet_id.get(), id, "good client: SUBACK identifier");
                assert_eq!(
                    ack.reason_codes,
                    [ReasonCode::GrantedQoS1],
                    "good client: SUBACK"
                );
            }
            other => panic!("good client: expected SUBACK, got {other:?}"),
        }
        client
    }

    fn next_id(&mut self) -> u16 {
        self.next_id = self.next_id % u16::MAX + 1;
        self.next_id
    }

    /// The next packet from the broker; fails the test at `deadline` or if the broker closes
    /// the connection.
    fn next_packet(&mut self, deadline: Instant) -> Packet {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(packet) = self
                .decoder
                .decode(&mut self.buf)
                .expect("good client: the broker sent a malformed packet")
            {
                return packet;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "good client: nothing from the broker in time"
            );
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("good client: the broker closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => panic!("good client: read failed: {e}"),
            }
        }
    }

    /// Reads one packet and files it: acknowledges and records PUBLISH, records PUBACK.
    fn pump(&mut self, deadline: Instant) {
        match self.next_packet(deadline) {
            Packet::Publish(publish) => {
                if let QosPid::AtLeastOnce(id) | QosPid::ExactlyOnce(id) = publish.qos {
                    assert!(
                        matches!(publish.qos, QosPid::AtLeastOnce(_)),
                        "good client: QoS 2 delivery on a QoS 1 subscription"
                    );
                    let [hi, lo] = id.get().to_be_bytes();
                    self.stream.write_all(&[0x40, 0x02, hi, lo]).unwrap();
                }
                let payload = publish.payload.to_vec();
                if publish.topic.as_str() == self.topic {
                    self.received.push(payload);
                } else {
                    self.others
                        .push((publish.topic.as_str().to_string(), payload));
                }
            }
            Packet::PubAck(ack) => self.acked.push(ack.packet_id.get()),
            other => panic!("good client: unexpected {other:?}"),
        }
    }

    /// Publishes `payload` at QoS 1 on its topic and waits for the PUBACK and for the message
    /// to come back through its subscription, checking that nothing was lost on the way.
    fn round_trip(&mut self, payload: &[u8]) {
        let id = self.next_id();
        self.stream
            .write_all(&publish_packet(
                0x32,
                self.topic.as_bytes(),
                Some(id),
                payload,
            ))
            .unwrap();
        self.sent.push(payload.to_vec());
        let deadline = Instant::now() + DELIVERY;
        while !(self.acked.contains(&id) && self.received.len() >= self.sent.len()) {
            self.pump(deadline);
        }
        self.acked.retain(|&a| a != id);
        self.check_nothing_lost();
    }

    /// Every message published came back once, in order.
    fn check_nothing_lost(&self) {
        assert_eq!(
            self.received, self.sent,
            "good client: the messages received on {} are not those published",
            self.topic
        );
    }

    /// Waits for a message on `topic` with `payload` (a will).
    fn expect_message(&mut self, topic: &str, payload: &[u8], within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(i) = self
                .others
                .iter()
                .position(|(t, p)| t == topic && p == payload)
            {
                self.others.remove(i);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "good client: no message on {topic} within {within:?} (the will of a \
                 connection closed for a protocol error must be published, MQTT 3.1.1 §3.1.2.5)"
            );
            self.pump(deadline);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------------------------

/// A broker, its process id when found, and a good client connected to it.
struct Fixture {
    name: &'static str,
    broker: Broker,
    pid: Option<u32>,
    good: GoodClient,
}

impl Fixture {
    /// A broker with [`BASE_ARGS`] and a good client that has already round-tripped a message.
    fn start(name: &'static str) -> Self {
        Self::start_with(name, &[])
    }

    /// As [`Fixture::start`], with extra broker arguments.
    fn start_with(name: &'static str, extra: &[&str]) -> Self {
        let args: Vec<&str> = BASE_ARGS.iter().chain(extra).copied().collect();
        let broker = Broker::start_with(&args);
        let pid = broker_pid(&broker);
        let mut good = GoodClient::connect(
            broker.addr(),
            &format!("good-{name}"),
            &format!("t/{name}/#"),
            &format!("t/{name}/good"),
        );
        good.round_trip(b"before the attack");
        Self {
            name,
            broker,
            pid,
            good,
        }
    }

    fn will_topic(&self) -> String {
        format!("t/{}/will", self.name)
    }

    fn will_message(&self) -> Vec<u8> {
        format!("will of {}", self.name).into_bytes()
    }

    /// A raw TCP connection, nothing sent yet.
    fn raw(&self) -> TcpStream {
        open(self.broker.addr())
    }

    /// A connection that sent a valid CONNECT (with a will) and got CONNACK.
    fn connected_attacker(&self, keep_alive: u16) -> TcpStream {
        let mut stream = self.raw();
        let will_topic = self.will_topic();
        let will_message = self.will_message();
        stream
            .write_all(&connect_packet(
                &format!("bad-{}", self.name),
                keep_alive,
                Some((&will_topic, &will_message)),
            ))
            .unwrap();
        assert_eq!(
            read_exact(&mut stream, 4),
            CONNACK_ACCEPTED,
            "attacker: CONNACK"
        );
        stream
    }

    /// The attacker's will must reach the good client.
    fn expect_will(&mut self) {
        self.expect_will_within(DELIVERY);
    }

    /// The attacker's will must reach the good client within `within`.
    fn expect_will_within(&mut self, within: Duration) {
        let (topic, message) = (self.will_topic(), self.will_message());
        self.good.expect_message(&topic, &message, within);
    }

    /// The checks every test ends with: the good client still works and lost nothing, a new
    /// client can connect, the process is alive and never panicked.
    fn finish(mut self) {
        self.good.round_trip(b"after the attack");
        self.good.check_nothing_lost();

        let mut fresh = open(self.broker.addr());
        fresh
            .write_all(&connect_packet(&format!("fresh-{}", self.name), 60, None))
            .unwrap();
        assert_eq!(
            read_exact(&mut fresh, 4),
            CONNACK_ACCEPTED,
            "a new client must still be able to connect"
        );
        fresh.write_all(&[0xE0, 0x00]).unwrap();
        let _ = expect_closed(&mut fresh, AT_ONCE);

        if let Some(pid) = self.pid {
            let state = proc_status(pid, "State:");
            assert!(
                state.as_deref().is_some_and(|s| !s.starts_with('Z')),
                "the broker process {pid} is gone (state {state:?})"
            );
        }
        let log = self.broker.log();
        assert!(!log.contains("panicked"), "the broker panicked:\n{log}");
    }
}

/// Sends `bytes` on a fresh connection before any CONNECT: the broker must close it at once
/// without a CONNACK [MQTT-3.1.0-1, MQTT-3.1.4-1].
fn refused_before_connack(name: &'static str, bytes: &[u8]) {
    let fixture = Fixture::start(name);
    let mut bad = fixture.raw();
    send_ignoring_errors(&mut bad, bytes);
    expect_closed_silently(&mut bad, AT_ONCE);
    fixture.finish();
}

/// Sends a CONNECT with this protocol name and level: the broker must answer CONNACK 0x01 and
/// close [MQTT-3.1.2-2].
fn refused_with_unsupported_version(name: &'static str, protocol: &[u8], level: u8) {
    let fixture = Fixture::start(name);
    let mut bad = fixture.raw();
    let payload = lp(b"bad-version");
    send_ignoring_errors(
        &mut bad,
        &frame(0x10, &connect_body(protocol, level, 0x02, 60, &payload)),
    );
    let got = expect_closed(&mut bad, AT_ONCE);
    assert_eq!(
        got, CONNACK_UNSUPPORTED,
        "expected CONNACK 0x01 (unacceptable protocol version) then close"
    );
    fixture.finish();
}

/// Connects an attacker (with a will), sends `bytes`: the broker must close the connection at
/// once and publish the will.
fn violation_after_connect(name: &'static str, bytes: &[u8]) {
    violation_after_connect_with(name, &[], bytes);
}

/// As [`violation_after_connect`], with extra broker arguments.
fn violation_after_connect_with(name: &'static str, extra: &[&str], bytes: &[u8]) {
    let mut fixture = Fixture::start_with(name, extra);
    let mut bad = fixture.connected_attacker(60);
    send_ignoring_errors(&mut bad, bytes);
    let _ = expect_closed(&mut bad, AT_ONCE);
    fixture.expect_will();
    fixture.finish();
}

// ---------------------------------------------------------------------------------------------
// Before CONNECT
// ---------------------------------------------------------------------------------------------

#[test]
fn mqtt_3_1_0_1_publish_before_connect_is_disconnected() {
    refused_before_connack(
        "pub_before_connect",
        &publish_packet(0x30, b"t/x", None, b"hello"),
    );
}

#[test]
fn mqtt_3_1_0_1_subscribe_before_connect_is_disconnected() {
    refused_before_connack(
        "sub_before_connect",
        &subscribe_packet(0x82, 1, &[(b"#", 0)]),
    );
}

#[test]
fn mqtt_3_1_0_1_pingreq_before_connect_is_disconnected() {
    refused_before_connack("ping_before_connect", &[0xC0, 0x00]);
}

#[test]
fn mqtt_3_1_0_1_http_request_before_connect_is_disconnected() {
    refused_before_connack(
        "http_before_connect",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n",
    );
}

#[test]
fn mqtt_3_1_0_1_binary_garbage_before_connect_is_disconnected() {
    refused_before_connack("garbage_before_connect", &[0xFF; 64]);
}

#[test]
fn connect_timeout_closes_a_silent_connection_without_connack() {
    let fixture = Fixture::start_with("connect_timeout", &["--set", "connect_timeout_secs=1"]);
    let mut bad = fixture.raw();
    let start = Instant::now();
    expect_closed_silently(&mut bad, Duration::from_secs(3));
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(800),
        "closed after {elapsed:?}, before the 1 s connect timeout"
    );
    fixture.finish();
}

#[test]
fn connect_header_announcing_60000_bytes_then_silence_is_closed_by_connect_timeout() {
    // 60,000 bytes is within max_packet_size: nothing is wrong yet, the connect timeout ends it.
    let fixture = Fixture::start_with("connect_60k_silence", &["--set", "connect_timeout_secs=1"]);
    let mut bad = fixture.raw();
    let mut bytes = cat(&[0x10], &varint(60_000));
    bytes.extend(lp(b"MQTT"));
    send_ignoring_errors(&mut bad, &bytes);
    let start = Instant::now();
    expect_closed_silently(&mut bad, Duration::from_secs(3));
    assert!(start.elapsed() >= Duration::from_millis(800));
    fixture.finish();
}

#[test]
fn packet_too_large_connect_announcing_256_mb_is_disconnected_at_once() {
    // Remaining Length 268,435,455 > max_packet_size 65,536: refused from the fixed header.
    refused_before_connack("connect_256mb", &[0x10, 0xFF, 0xFF, 0xFF, 0x7F]);
}

#[test]
fn mqtt_4_8_0_1_remaining_length_of_5_bytes_before_connect_is_disconnected() {
    refused_before_connack(
        "connect_varint_5_bytes",
        &[0x10, 0x80, 0x80, 0x80, 0x80, 0x01],
    );
}

// ---------------------------------------------------------------------------------------------
// Invalid CONNECT
// ---------------------------------------------------------------------------------------------

#[test]
fn mqtt_3_1_2_1_bad_protocol_name_is_disconnected_without_connack() {
    let payload = lp(b"bad-name");
    refused_before_connack(
        "bad_protocol_name",
        &frame(0x10, &connect_body(b"MQTX", 4, 0x02, 60, &payload)),
    );
}

#[test]
fn mqtt_3_1_2_2_unsupported_level_6_gets_connack_0x01_then_close() {
    refused_with_unsupported_version("level_6", b"MQTT", 6);
}

#[test]
fn mqtt_3_1_2_2_unsupported_level_2_gets_connack_0x01_then_close() {
    refused_with_unsupported_version("level_2", b"MQTT", 2);
}

#[test]
fn mqtt_3_1_2_2_mqisdp_with_level_2_gets_connack_0x01_then_close() {
    refused_with_unsupported_version("mqisdp_level_2", b"MQIsdp", 2);
}

#[test]
fn mqtt_3_1_2_2_mqisdp_with_level_4_gets_connack_0x01_then_close() {
    refused_with_unsupported_version("mqisdp_level_4", b"MQIsdp", 4);
}

#[test]
fn mqtt_3_1_2_3_reserved_connect_flag_is_disconnected_without_connack() {
    let payload = lp(b"reserved-flag");
    refused_before_connack(
        "connect_reserved_flag",
        &frame(0x10, &connect_body(b"MQTT", 4, 0x03, 60, &payload)),
    );
}

#[test]
fn mqtt_3_1_2_14_will_qos_3_is_disconnected_without_connack() {
    let payload = [lp(b"will-qos-3"), lp(b"w/t"), lp(b"bye")].concat();
    refused_before_connack(
        "will_qos_3",
        &frame(0x10, &connect_body(b"MQTT", 4, 0x1E, 60, &payload)),
    );
}

#[test]
fn mqtt_3_1_2_13_will_qos_without_will_flag_is_disconnected_without_connack() {
    let payload = lp(b"will-qos-no-will");
    refused_before_connack(
        "will_qos_without_will",
        &frame(0x10, &connect_body(b"MQTT", 4, 0x0A, 60, &payload)),
    );
}

#[test]
fn mqtt_3_1_2_15_will_retain_without_will_flag_is_disconnected_without_connack() {
    let payload = lp(b"will-retain-no-will");
    refused_before_connack(
        "will_retain_without_will",
        &frame(0x10, &connect_body(b"MQTT", 4, 0x22, 60, &payload)),
    );
}

#[test]
fn mqtt_3_1_2_22_password_without_user_name_is_disconnected_without_connack() {
    let payload = [lp(b"password-only"), lp(b"secret")].concat();
    refused_before_connack(
        "password_without_user",
        &frame(0x10, &connect_body(b"MQTT", 4, 0x42, 60, &payload)),
    );
}

#[test]
fn mqtt_1_5_3_1_client_id_with_invalid_utf8_is_disconnected_without_connack() {
    let payload = lp(&[b'a', 0xC3, 0x28, b'b']);
    refused_before_connack(
        "client_id_invalid_utf8",
        &frame(0x10, &connect_body(b"MQTT", 4, 0x02, 60, &payload)),
    );
}

#[test]
fn mqtt_1_5_3_2_client_id_with_u0000_is_disconnected_without_connack() {
    let payload = lp(b"ab\0cd");
    refused_before_connack(
        "client_id_nul",
        &frame(0x10, &connect_body(b"MQTT", 4, 0x02, 60, &payload)),
    );
}

#[test]
fn mqtt_3_1_4_1_truncated_connect_is_disconnected_without_connack() {
    // A complete frame whose client identifier claims 20 bytes and has 3.
    let payload = cat(&20u16.to_be_bytes(), b"abc");
    refused_before_connack(
        "connect_truncated",
        &frame(0x10, &connect_body(b"MQTT", 4, 0x02, 60, &payload)),
    );
}

#[test]
fn mqtt_3_1_4_1_connect_without_payload_is_disconnected_without_connack() {
    // Variable header only: the client identifier is missing.
    refused_before_connack(
        "connect_no_payload",
        &frame(0x10, &connect_body(b"MQTT", 4, 0x02, 60, &[])),
    );
}

#[test]
fn mqtt_3_1_4_1_connect_with_trailing_bytes_is_disconnected_without_connack() {
    let payload = cat(&lp(b"trailing"), &[0x00, 0x00, 0x42]);
    refused_before_connack(
        "connect_trailing_bytes",
        &frame(0x10, &connect_body(b"MQTT", 4, 0x02, 60, &payload)),
    );
}

#[test]
fn mqtt_3_3_2_2_wildcard_in_will_topic_is_disconnected_without_connack() {
    let payload = [lp(b"will-wildcard"), lp(b"w/+"), lp(b"bye")].concat();
    refused_before_connack(
        "will_topic_wildcard",
        &frame(0x10, &connect_body(b"MQTT", 4, 0x06, 60, &payload)),
    );
}

#[test]
fn mqtt_1_5_3_1_user_name_with_invalid_utf8_is_disconnected_without_connack() {
    let payload = [lp(b"bad-user"), lp(&[0xFF, 0xFE])].concat();
    refused_before_connack(
        "user_name_invalid_utf8",
        &frame(0x10, &connect_body(b"MQTT", 4, 0x82, 60, &payload)),
    );
}

#[test]
fn mqtt_3_1_3_9_client_id_over_max_client_id_len_gets_connack_0x02_then_close() {
    // Well-formed but refused: CONNACK 0x02 (identifier rejected), then close.
    let fixture = Fixture::start_with("client_id_too_long", &["--set", "max_client_id_len=32"]);
    let mut bad = fixture.raw();
    send_ignoring_errors(&mut bad, &connect_packet(&"x".repeat(33), 60, None));
    let got = expect_closed(&mut bad, AT_ONCE);
    assert_eq!(
        got,
        [0x20, 0x02, 0x00, 0x02],
        "expected CONNACK 0x02 (identifier rejected) then close"
    );
    fixture.finish();
}

// ---------------------------------------------------------------------------------------------
// After CONNECT: packets a client must not send
// ---------------------------------------------------------------------------------------------

#[test]
fn mqtt_3_1_0_2_second_connect_is_disconnected() {
    violation_after_connect(
        "second_connect",
        &connect_packet("second-connect", 60, None),
    );
}

#[test]
fn mqtt_4_8_0_1_client_sent_connack_is_disconnected() {
    violation_after_connect("client_connack", &CONNACK_ACCEPTED);
}

#[test]
fn mqtt_4_8_0_1_client_sent_suback_is_disconnected() {
    violation_after_connect("client_suback", &[0x90, 0x03, 0x00, 0x01, 0x00]);
}

#[test]
fn mqtt_4_8_0_1_client_sent_unsuback_is_disconnected() {
    violation_after_connect("client_unsuback", &[0xB0, 0x02, 0x00, 0x01]);
}

#[test]
fn mqtt_4_8_0_1_client_sent_pingresp_is_disconnected() {
    violation_after_connect("client_pingresp", &[0xD0, 0x00]);
}

#[test]
fn mqtt_4_8_0_1_reserved_packet_type_0_is_disconnected() {
    violation_after_connect("packet_type_0", &[0x00, 0x00]);
}

#[test]
fn mqtt_4_8_0_1_packet_type_15_auth_does_not_exist_in_3_1_1_and_is_disconnected() {
    violation_after_connect("packet_type_15", &[0xF0, 0x00]);
}

// ---------------------------------------------------------------------------------------------
// After CONNECT: fixed header
// ---------------------------------------------------------------------------------------------

#[test]
fn mqtt_2_2_2_2_pubrel_with_reserved_flags_0000_is_disconnected() {
    violation_after_connect("pubrel_flags", &[0x60, 0x02, 0x00, 0x01]);
}

#[test]
fn mqtt_2_2_2_2_subscribe_with_reserved_flags_0000_is_disconnected() {
    violation_after_connect(
        "subscribe_flags",
        &subscribe_packet(0x80, 1, &[(b"t/x", 0)]),
    );
}

#[test]
fn mqtt_2_2_2_2_unsubscribe_with_reserved_flags_0000_is_disconnected() {
    violation_after_connect("unsubscribe_flags", &unsubscribe_packet(0xA0, 1, &[b"t/x"]));
}

#[test]
fn mqtt_2_2_2_2_pingreq_with_reserved_flags_0001_is_disconnected() {
    violation_after_connect("pingreq_flags", &[0xC1, 0x00]);
}

#[test]
fn mqtt_2_2_2_2_disconnect_with_reserved_flags_0010_is_disconnected_and_publishes_the_will() {
    // Not a valid DISCONNECT, so the will is not discarded [MQTT-3.14.4-3 does not apply].
    violation_after_connect("disconnect_flags", &[0xE2, 0x00]);
}

#[test]
fn mqtt_4_8_0_1_remaining_length_of_5_bytes_is_disconnected() {
    violation_after_connect(
        "varint_5_bytes",
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00],
    );
}

#[test]
fn mqtt_4_8_0_1_pingreq_with_trailing_bytes_is_disconnected() {
    violation_after_connect("pingreq_trailing", &[0xC0, 0x01, 0x00]);
}

#[test]
fn mqtt_4_8_0_1_disconnect_with_trailing_bytes_is_disconnected_and_publishes_the_will() {
    violation_after_connect("disconnect_trailing", &[0xE0, 0x01, 0x00]);
}

#[test]
fn mqtt_4_8_0_1_puback_with_trailing_bytes_is_disconnected() {
    violation_after_connect("puback_trailing", &[0x40, 0x03, 0x00, 0x01, 0x00]);
}

// ---------------------------------------------------------------------------------------------
// After CONNECT: PUBLISH
// ---------------------------------------------------------------------------------------------

#[test]
fn mqtt_3_3_1_4_publish_qos_3_is_disconnected() {
    violation_after_connect(
        "publish_qos_3",
        &publish_packet(0x36, b"t/x", Some(1), b"qos 3"),
    );
}

#[test]
fn mqtt_3_3_1_2_dup_on_qos_0_publish_is_disconnected() {
    violation_after_connect(
        "publish_dup_qos_0",
        &publish_packet(0x38, b"t/x", None, b"dup"),
    );
}

#[test]
fn mqtt_2_3_1_1_publish_qos_1_with_packet_id_0_is_disconnected() {
    violation_after_connect(
        "publish_pid_0",
        &publish_packet(0x32, b"t/x", Some(0), b"pid 0"),
    );
}

#[test]
fn mqtt_2_3_1_1_publish_qos_2_with_packet_id_0_is_disconnected() {
    violation_after_connect(
        "publish_qos2_pid_0",
        &publish_packet(0x34, b"t/x", Some(0), b"pid 0"),
    );
}

#[test]
fn mqtt_3_3_2_2_plus_wildcard_in_topic_name_is_disconnected() {
    violation_after_connect(
        "publish_plus_topic",
        &publish_packet(0x30, b"t/+/x", None, b"wild"),
    );
}

#[test]
fn mqtt_3_3_2_2_hash_wildcard_in_topic_name_is_disconnected() {
    violation_after_connect(
        "publish_hash_topic",
        &publish_packet(0x30, b"t/#", None, b"wild"),
    );
}

#[test]
fn mqtt_4_7_3_1_empty_topic_name_is_disconnected() {
    violation_after_connect(
        "publish_empty_topic",
        &publish_packet(0x30, b"", None, b"empty"),
    );
}

#[test]
fn mqtt_1_5_3_1_invalid_utf8_in_topic_name_is_disconnected() {
    violation_after_connect(
        "publish_invalid_utf8",
        &publish_packet(0x30, &[b't', b'/', 0xC3, 0x28], None, b"utf8"),
    );
}

#[test]
fn mqtt_1_5_3_1_utf16_surrogate_in_topic_name_is_disconnected() {
    // U+D800 encoded as UTF-8 (ED A0 80) is not well-formed UTF-8.
    violation_after_connect(
        "publish_surrogate",
        &publish_packet(0x30, &[b't', b'/', 0xED, 0xA0, 0x80], None, b"utf8"),
    );
}

#[test]
fn mqtt_1_5_3_2_u0000_in_topic_name_is_disconnected() {
    violation_after_connect(
        "publish_nul_topic",
        &publish_packet(0x30, b"t/a\0b", None, b"nul"),
    );
}

#[test]
fn topic_name_deeper_than_max_topic_levels_is_disconnected() {
    // max_topic_levels = 4; five levels.
    violation_after_connect(
        "publish_too_deep",
        &publish_packet(0x30, b"a/b/c/d/e", None, b"deep"),
    );
}

#[test]
fn mqtt_4_8_0_1_publish_truncated_inside_the_topic_is_disconnected() {
    // A complete frame of 3 bytes whose topic claims 10.
    violation_after_connect("publish_truncated", &[0x30, 0x03, 0x00, 0x0A, b't']);
}

// ---------------------------------------------------------------------------------------------
// After CONNECT: SUBSCRIBE and UNSUBSCRIBE
// ---------------------------------------------------------------------------------------------

#[test]
fn mqtt_3_8_3_3_subscribe_without_filters_is_disconnected() {
    violation_after_connect("subscribe_no_filters", &[0x82, 0x02, 0x00, 0x01]);
}

#[test]
fn mqtt_3_8_3_4_subscribe_with_reserved_option_bits_is_disconnected() {
    // 0x04 is No Local in 5.0, a reserved bit in 3.1.1.
    violation_after_connect(
        "subscribe_reserved_bits",
        &subscribe_packet(0x82, 1, &[(b"t/x", 0x04)]),
    );
}

#[test]
fn mqtt_3_8_3_4_subscribe_with_qos_3_is_disconnected() {
    violation_after_connect(
        "subscribe_qos_3",
        &subscribe_packet(0x82, 1, &[(b"t/x", 0x03)]),
    );
}

#[test]
fn mqtt_2_3_1_1_subscribe_with_packet_id_0_is_disconnected() {
    violation_after_connect(
        "subscribe_pid_0",
        &subscribe_packet(0x82, 0, &[(b"t/x", 0)]),
    );
}

#[test]
fn mqtt_4_7_1_2_filter_with_hash_not_last_is_disconnected() {
    violation_after_connect(
        "subscribe_hash_middle",
        &subscribe_packet(0x82, 1, &[(b"a/#/b", 0)]),
    );
}

#[test]
fn mqtt_4_7_1_3_filter_with_plus_inside_a_level_is_disconnected() {
    violation_after_connect(
        "subscribe_plus_in_level",
        &subscribe_packet(0x82, 1, &[(b"a/b+/c", 0)]),
    );
}

#[test]
fn mqtt_4_7_3_1_empty_topic_filter_is_disconnected() {
    violation_after_connect(
        "subscribe_empty_filter",
        &subscribe_packet(0x82, 1, &[(b"", 0)]),
    );
}

#[test]
fn mqtt_4_7_1_2_unsubscribe_filter_with_hash_not_last_is_disconnected() {
    violation_after_connect(
        "unsubscribe_hash_middle",
        &unsubscribe_packet(0xA2, 1, &[b"a/#/b"]),
    );
}

#[test]
fn mqtt_3_10_3_2_unsubscribe_without_filters_is_disconnected() {
    violation_after_connect("unsubscribe_no_filters", &[0xA2, 0x02, 0x00, 0x01]);
}

#[test]
fn mqtt_2_3_1_1_unsubscribe_with_packet_id_0_is_disconnected() {
    violation_after_connect("unsubscribe_pid_0", &unsubscribe_packet(0xA2, 0, &[b"t/x"]));
}

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

#[test]
fn packet_too_large_publish_announcing_256_mb_is_disconnected_at_once() {
    // Remaining Length 268,435,455, then silence: refused from the fixed header alone.
    violation_after_connect("publish_256mb", &[0x30, 0xFF, 0xFF, 0xFF, 0x7F]);
}

#[test]
fn packet_too_large_publish_over_max_packet_size_is_disconnected() {
    // A complete, valid PUBLISH of max_packet_size + 1 bytes.
    let header_len = 1 + varint(MAX_PACKET_SIZE).len();
    let payload = vec![b'x'; MAX_PACKET_SIZE + 1 - header_len - 5];
    let packet = publish_packet(0x30, b"t/x", None, &payload);
    assert_eq!(packet.len(), MAX_PACKET_SIZE + 1);
    violation_after_connect("publish_oversize", &packet);
}

#[test]
fn mqtt_3_1_2_24_half_a_publish_then_silence_is_closed_by_keep_alive() {
    // Keep alive 2 s: the broker must close after 3 s without a complete packet. The partial
    // PUBLISH (60,000 bytes announced, within max_packet_size) must not count as activity.
    let mut fixture = Fixture::start("half_publish");
    let mut bad = fixture.connected_attacker(2);
    let start = Instant::now();
    let mut bytes = cat(&[0x30], &varint(60_000));
    bytes.extend(lp(b"t/x"));
    bytes.extend(vec![b'p'; 1000]);
    send_ignoring_errors(&mut bad, &bytes);
    let _ = expect_closed(&mut bad, Duration::from_secs(6));
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2500),
        "closed after {elapsed:?}, before one and a half keep alive periods (3 s)"
    );
    fixture.expect_will();
    fixture.finish();
}

#[test]
fn partial_packets_on_200_connections_do_not_balloon_memory() {
    const CONNECTIONS: usize = 200;
    const ANNOUNCED: usize = 60_000;
    let fixture = Fixture::start("memory_200_partial");
    // The harness does not expose the broker's pid; it is looked up in /proc (`broker_pid`).
    // Without it only the memory measurement is skipped, not the rest of the test.
    let before = fixture.pid.map(rss_kib);
    let mut partial = cat(&[0x30], &varint(ANNOUNCED));
    partial.extend(lp(b"t/x"));
    partial.extend(vec![b'p'; 100]);
    let mut attackers = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let mut bad = fixture.raw();
        bad.write_all(&connect_packet(&format!("partial-{i}"), 2, None))
            .unwrap();
        assert_eq!(read_exact(&mut bad, 4), CONNACK_ACCEPTED);
        send_ignoring_errors(&mut bad, &partial);
        attackers.push(bad);
    }
    let last_connected = Instant::now();
    // Let the broker read what was sent.
    thread::sleep(Duration::from_millis(300));
    match (fixture.pid, before) {
        (Some(pid), Some(before)) => {
            let after = rss_kib(pid);
            let growth = after.saturating_sub(before);
            let announced_kib = (CONNECTIONS * ANNOUNCED / 1024) as u64;
            assert!(
                growth < 6 * 1024,
                "RSS grew by {growth} KiB ({before} -> {after} KiB) for {CONNECTIONS} partial \
                 packets announcing {ANNOUNCED} bytes each ({announced_kib} KiB announced)"
            );
        }
        _ => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("broker pid not found in /proc: memory growth not measured");
            }
        }
    }
    // Keep alive 2 s: every one of them is closed 3 s after its CONNECT.
    let deadline = last_connected + Duration::from_secs(6);
    for bad in &mut attackers {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = expect_closed(bad, left.max(Duration::from_millis(1)));
    }
    fixture.finish();
}

/// 100 connections send a valid CONNECT, then garbage, all at once, while the good client keeps
/// exchanging messages: every one of them must be closed, and the good client lose nothing.
/// `pipelined`: the garbage goes in the same write as the CONNECT (as a client that does not
/// wait for CONNACK sends it); otherwise it follows the CONNACK.
fn garbage_burst(name: &'static str, pipelined: bool) {
    const CONNECTIONS: usize = 100;
    let Fixture {
        name,
        broker,
        pid,
        good,
    } = Fixture::start(name);
    let stop = Arc::new(AtomicBool::new(false));
    // The good client keeps exchanging messages during the whole burst.
    let exchanger = {
        let stop = Arc::clone(&stop);
        let mut good = good;
        thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) || n < 5 {
                good.round_trip(format!("during the burst {n}").as_bytes());
                n += 1;
            }
            (good, n)
        })
    };
    // Garbage that cannot be the start of a valid packet: a reserved packet type (0 or 15)
    // first, then pseudo-random bytes.
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    let mut garbage = |i: usize| {
        let mut bytes = vec![if i.is_multiple_of(2) { 0x00 } else { 0xF0 } | (i % 16) as u8];
        for _ in 0..64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.push(seed as u8);
        }
        bytes
    };
    let mut attackers = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let mut bytes = connect_packet(&format!("burst-{i}"), 60, None);
        if pipelined {
            bytes.extend(garbage(i));
        }
        let mut bad = open(broker.addr());
        send_ignoring_errors(&mut bad, &bytes);
        attackers.push(bad);
    }
    if !pipelined {
        for (i, bad) in attackers.iter_mut().enumerate() {
            assert_eq!(read_exact(bad, 4), CONNACK_ACCEPTED, "burst-{i}: CONNACK");
            send_ignoring_errors(bad, &garbage(i));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut still_open = Vec::new();
    for (i, bad) in attackers.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        match wait_closed(bad, left.max(Duration::from_millis(1))) {
            // A CONNACK (the CONNECT was valid) and nothing else may come back.
            Ok(got) => assert!(
                got.is_empty() || got == CONNACK_ACCEPTED,
                "burst-{i}: unexpected answer to garbage: {got:02x?}"
            ),
            Err(_) => still_open.push(i),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (good, exchanged) = exchanger.join().expect("the good client's thread");
    assert!(
        still_open.is_empty(),
        "{} of {CONNECTIONS} connections that sent garbage were still open after 5 s: {:?}",
        still_open.len(),
        still_open
    );
    assert!(exchanged >= 5);
    Fixture {
        name,
        broker,
        pid,
        good,
    }
    .finish();
}

#[test]
fn garbage_from_100_connections_after_connack_does_not_disturb_a_good_client() {
    garbage_burst("burst_100_after_connack", false);
}

#[test]
fn garbage_from_100_connections_pipelined_with_connect_does_not_disturb_a_good_client() {
    garbage_burst("burst_100_pipelined", true);
}

#[test]
fn mqtt_4_8_0_1_malformed_packet_in_the_same_write_as_connect_is_disconnected() {
    let mut fixture = Fixture::start("pipelined_garbage");
    let mut bad = fixture.raw();
    let will_topic = fixture.will_topic();
    let will_message = fixture.will_message();
    let mut bytes = connect_packet(
        "bad-pipelined_garbage",
        60,
        Some((&will_topic, &will_message)),
    );
    // A reserved packet type right behind the CONNECT, in the same segment.
    bytes.extend_from_slice(&[0x00, 0x00]);
    send_ignoring_errors(&mut bad, &bytes);
    let got = expect_closed(&mut bad, AT_ONCE);
    assert_eq!(got, CONNACK_ACCEPTED, "expected CONNACK, then close");
    fixture.expect_will();
    fixture.finish();
}

#[test]
fn mqtt_3_1_2_24_drip_feeding_a_packet_does_not_extend_keep_alive() {
    // Keep alive 2 s; one byte of a PUBLISH announcing 60,000 every 400 ms: bytes are not
    // packets, so the connection must still close 3 s after the CONNECT.
    let mut fixture = Fixture::start("drip_feed");
    let mut bad = fixture.connected_attacker(2);
    let start = Instant::now();
    send_ignoring_errors(&mut bad, &cat(&[0x30], &varint(60_000)));
    let closed = loop {
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "a connection drip-feeding one byte every 400 ms was still open after 6 s \
             (keep alive 2 s)"
        );
        send_ignoring_errors(&mut bad, b"p");
        if let Ok(got) = wait_closed(&mut bad, Duration::from_millis(400)) {
            break got;
        }
    };
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2500),
        "closed after {elapsed:?}, before one and a half keep alive periods (3 s)"
    );
    assert!(closed.is_empty(), "unexpected answer: {closed:02x?}");
    fixture.expect_will();
    fixture.finish();
}

#[test]
fn mqtt_3_1_2_24_subscriber_that_never_reads_is_closed_by_keep_alive() {
    // A client with keep alive 1 s subscribes to the good client's topic, then neither reads nor
    // sends anything: the broker's writes to it fill the socket buffers. It must still be
    // closed 1.5 s after its last packet [MQTT-3.1.2-24] (seen through its will, since reading
    // from it would unblock the broker), and the good client must not notice.
    let mut fixture = Fixture::start("never_reads");
    let mut bad = fixture.connected_attacker(1);
    let filter = format!("t/{}/#", fixture.name);
    send_ignoring_errors(
        &mut bad,
        &subscribe_packet(0x82, 1, &[(filter.as_bytes(), 0)]),
    );
    let subscribed = Instant::now();
    // 300 messages of 60,000 bytes: 18 MB, far more than the loopback socket buffers hold.
    let payload = vec![b'z'; 60_000];
    for i in 0..300u32 {
        let mut message = payload.clone();
        message[..4].copy_from_slice(&i.to_be_bytes());
        fixture.good.round_trip(&message);
    }
    let left = (subscribed + Duration::from_secs(4)).saturating_duration_since(Instant::now());
    fixture.expect_will_within(left.max(Duration::from_secs(1)));
    drop(bad);
    fixture.finish();
}

#[test]
fn qos_2_messages_never_released_beyond_max_incoming_qos2_are_disconnected() {
    // max_incoming_qos2 = 10: the 11th QoS 2 PUBLISH awaiting PUBREL closes the connection.
    let bytes: Vec<u8> = (1..=11u16)
        .flat_map(|id| publish_packet(0x34, b"t/x", Some(id), b"never released"))
        .collect();
    violation_after_connect_with("qos2_flood", &["--set", "max_incoming_qos2=10"], &bytes);
}

// ---------------------------------------------------------------------------------------------
// Keep alive
// ---------------------------------------------------------------------------------------------

#[test]
fn mqtt_3_1_2_24_keep_alive_1_then_silence_is_closed_within_1_5_to_3_s() {
    let mut fixture = Fixture::start("keep_alive_1");
    let mut bad = fixture.connected_attacker(1);
    let start = Instant::now();
    let _ = expect_closed(&mut bad, Duration::from_secs(3));
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1300),
        "closed after {elapsed:?}, before one and a half keep alive periods (1.5 s)"
    );
    fixture.expect_will();
    fixture.finish();
}

// ---------------------------------------------------------------------------------------------
// MQTT 5.0: the server says why it closes (section 4.13)
// ---------------------------------------------------------------------------------------------

/// A valid MQTT 5.0 CONNECT, clean start, no properties, with a QoS 0 will (topic, message).
fn connect_packet_v5(client_id: &str, keep_alive: u16, will: (&str, &[u8])) -> Vec<u8> {
    let mut payload = lp(client_id.as_bytes());
    payload.push(0); // will properties: none
    payload.extend(lp(will.0.as_bytes()));
    payload.extend(lp(will.1));
    let mut body = connect_body(b"MQTT", 5, 0x02 | 0x04, keep_alive, &[0]);
    body.extend(payload);
    frame(0x10, &body)
}

/// A 5.0 attacker sends `bytes` after CONNECT (nothing: it waits for its keep alive to run
/// out): the broker answers with DISCONNECT `reason` and a reason string, closes the connection,
/// publishes the will, and the good client loses nothing.
fn v5_violation(name: &'static str, extra: &[&str], keep_alive: u16, bytes: &[u8], reason: u8) {
    let mut fixture = Fixture::start_with(name, extra);
    let mut bad = fixture.raw();
    let will_topic = fixture.will_topic();
    let will_message = fixture.will_message();
    bad.write_all(&connect_packet_v5(
        &format!("bad-{name}"),
        keep_alive,
        (&will_topic, &will_message),
    ))
    .unwrap();
    send_ignoring_errors(&mut bad, bytes);
    let mut got = BytesMut::from(&expect_closed(&mut bad, Duration::from_secs(5))[..]);
    let mut decoder = Decoder::new(ProtocolVersion::V5);
    let connack = decoder.decode(&mut got).unwrap();
    assert!(
        matches!(connack, Some(Packet::ConnAck(ref c)) if c.reason_code == ReasonCode::Success),
        "expected CONNACK, got {connack:?}"
    );
    match decoder.decode(&mut got).unwrap() {
        Some(Packet::Disconnect(d)) => {
            assert_eq!(d.reason_code.get(), reason, "{d:?}");
            // The reason string says what went wrong.
            assert!(
                d.properties
                    .reason_string
                    .as_ref()
                    .is_some_and(|r| !r.is_empty()),
                "no reason string: {d:?}"
            );
        }
        other => panic!("expected DISCONNECT {reason:#x} before the close, got {other:?}"),
    }
    fixture.expect_will();
    fixture.finish();
}

/// A reserved QoS 3 [MQTT-3.3.1-4]: DISCONNECT 0x81 (malformed packet).
#[test]
fn v5_mqtt_3_3_1_4_qos_3_gets_disconnect_0x81() {
    v5_violation(
        "v5_qos3",
        &[],
        60,
        &publish_packet(0x36, b"t", Some(1), b"\0x"),
        0x81,
    );
}

/// A second CONNECT [MQTT-3.1.0-2]: DISCONNECT 0x82 (protocol error).
#[test]
fn v5_mqtt_3_1_0_2_second_connect_gets_disconnect_0x82() {
    let again = connect_packet_v5("again", 60, ("w", b"w"));
    v5_violation("v5_second_connect", &[], 60, &again, 0x82);
}

/// Silence beyond one and a half keep alive periods [MQTT-3.1.2-22]: DISCONNECT 0x8D.
#[test]
fn v5_mqtt_3_1_2_22_keep_alive_timeout_gets_disconnect_0x8d() {
    v5_violation("v5_keep_alive", &[], 1, &[], 0x8D);
}

/// A packet larger than the server's Maximum Packet Size [MQTT-3.2.2-15]: DISCONNECT 0x95.
#[test]
fn v5_mqtt_3_2_2_15_packet_too_large_gets_disconnect_0x95() {
    let big = publish_packet(0x30, b"t", None, &[0; 400]);
    v5_violation(
        "v5_too_large",
        &["--set", "max_packet_size=256"],
        60,
        &big,
        0x95,
    );
}

/// More QoS 2 messages awaiting PUBREL than the Receive Maximum the server announced
/// [MQTT-3.3.4-7]: DISCONNECT 0x93.
#[test]
fn v5_mqtt_3_3_4_7_receive_maximum_exceeded_gets_disconnect_0x93() {
    let bytes: Vec<u8> = (1..=3u16)
        .flat_map(|id| publish_packet(0x34, b"t", Some(id), b"\0held"))
        .collect();
    v5_violation(
        "v5_receive_max",
        &["--set", "max_incoming_qos2=2"],
        60,
        &bytes,
        0x93,
    );
}

/// A Topic Alias above the server's Topic Alias Maximum [MQTT-3.3.2-9]: DISCONNECT 0x94.
#[test]
fn v5_mqtt_3_3_2_9_topic_alias_above_the_maximum_gets_disconnect_0x94() {
    // Topic "t", properties: Topic Alias (0x23) = 11, one above the default maximum of 10.
    let mut body = lp(b"t");
    body.extend_from_slice(&[3, 0x23, 0, 11]);
    body.extend_from_slice(b"x");
    v5_violation("v5_alias", &[], 60, &frame(0x30, &body), 0x94);
}

/// A 5.0 PUBLISH to topic `t` with these raw properties.
fn v5_publish_with_properties(properties: &[u8]) -> Vec<u8> {
    let mut body = lp(b"t");
    body.extend(varint(properties.len()));
    body.extend_from_slice(properties);
    body.extend_from_slice(b"x");
    frame(0x30, &body)
}

/// A property given twice where only one is allowed is a protocol error (5.0 section 2.2.2.2):
/// DISCONNECT 0x82.
#[test]
fn v5_duplicated_property_gets_disconnect_0x82() {
    // Payload Format Indicator twice.
    let bytes = v5_publish_with_properties(&[0x01, 0x00, 0x01, 0x00]);
    v5_violation("v5_duplicate_property", &[], 60, &bytes, 0x82);
}

/// A property the packet may not carry (Session Expiry Interval in PUBLISH) is malformed:
/// DISCONNECT 0x81.
#[test]
fn v5_disallowed_property_gets_disconnect_0x81() {
    let bytes = v5_publish_with_properties(&[0x11, 0, 0, 0, 1]);
    v5_violation("v5_disallowed_property", &[], 60, &bytes, 0x81);
}

/// Topic Alias 0 is never valid [MQTT-3.3.2-8]: DISCONNECT 0x94.
#[test]
fn v5_mqtt_3_3_2_8_topic_alias_0_gets_disconnect_0x94() {
    let bytes = v5_publish_with_properties(&[0x23, 0, 0]);
    v5_violation("v5_alias_0", &[], 60, &bytes, 0x94);
}

/// Subscription Identifier 0 is a protocol error (5.0 section 3.8.2.1.2): DISCONNECT 0x82.
#[test]
fn v5_subscription_identifier_0_gets_disconnect_0x82() {
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend_from_slice(&[2, 0x0B, 0x00]); // properties: Subscription Identifier 0
    body.extend(lp(b"t"));
    body.push(0x00);
    v5_violation("v5_sub_id_0", &[], 60, &frame(0x82, &body), 0x82);
}

/// 5,000 user properties in one CONNECT are legal and accepted; nothing of them is kept: after a
/// warm-up round of fifty such clients, four more rounds do not grow the broker's memory (the
/// allocator may keep what a round freed), and a well-behaved client carries on.
#[test]
fn v5_five_thousand_user_properties_in_connect_stay_bounded() {
    const CLIENTS: usize = 50;
    let fixture = Fixture::start("v5_user_properties");
    let mut properties = Vec::new();
    for i in 0..5000u32 {
        properties.push(0x26);
        properties.extend(lp(format!("k{i}").as_bytes()));
        properties.extend(lp(b"v"));
    }
    let round = |tag: &str| {
        let mut sockets = Vec::new();
        for n in 0..CLIENTS {
            let mut variable = lp(b"MQTT");
            variable.extend_from_slice(&[5, 0x02, 0, 60]);
            variable.extend(varint(properties.len()));
            variable.extend_from_slice(&properties);
            variable.extend(lp(format!("props-{tag}-{n}").as_bytes()));
            let mut s = fixture.raw();
            s.write_all(&frame(0x10, &variable)).unwrap();
            let mut decoder = Decoder::new(ProtocolVersion::V5);
            let mut got = BytesMut::new();
            let mut chunk = [0u8; 256];
            let connack = loop {
                if let Some(p) = decoder.decode(&mut got).unwrap() {
                    break p;
                }
                let n = s.read(&mut chunk).unwrap();
                assert!(n > 0, "closed instead of CONNACK");
                got.extend_from_slice(&chunk[..n]);
            };
            assert!(
                matches!(connack, Packet::ConnAck(ref c) if c.reason_code == ReasonCode::Success),
                "{connack:?}"
            );
            sockets.push(s);
        }
        thread::sleep(Duration::from_millis(200));
        sockets
    };
    drop(round("warm-up"));
    let before = fixture.pid.map(rss_kib);
    for r in 0..4 {
        drop(round(&r.to_string()));
    }
    if let (Some(pid), Some(before)) = (fixture.pid, before) {
        let growth = rss_kib(pid).saturating_sub(before);
        // Kept, four rounds of decoded user properties would be about 64 MB, of raw CONNECTs
        // 7 MB; the allocator's own slack stays well under that.
        assert!(
            growth < 6 * 1024,
            "RSS grew by {growth} KiB over four rounds"
        );
    }
    fixture.finish();
}
