//! Shared helpers: the `wire!` macro for hand-written byte vectors, the one-line decode checks
//! (`decode_ok`, `decode_err`), and small builders for expected values.

use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    Decoder, Error, MqttString, Packet, PacketId, ProtocolVersion, TopicFilter, TopicName,
    UserProperty,
};

pub(crate) use mqtt_codec::ProtocolVersion::{V3_1 as V31, V3_1_1 as V311, V5};

/// The versions before 5.0.
pub(crate) const V3: [ProtocolVersion; 2] = [V31, V311];

/// One piece of a hand-written wire vector: a byte, ASCII text (the bytes of a string field,
/// without its length prefix, which is always written out by hand), or a run of bytes.
pub(crate) trait Piece {
    /// Appends the piece.
    fn put(&self, out: &mut Vec<u8>);
}

impl Piece for u8 {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }
}

impl Piece for &str {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl Piece for &[u8] {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl<const N: usize> Piece for [u8; N] {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl Piece for Vec<u8> {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

/// A hand-written wire vector: bytes (`0x10`), ASCII text (`"MQTT"`) and byte runs, in order.
macro_rules! wire {
    ($($piece:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut out: Vec<u8> = Vec::new();
        $( $crate::helpers::Piece::put(&$piece, &mut out); )*
        out
    }};
}
pub(crate) use wire;

/// Reads the fixed header of a hand-written vector (independently of the codec) and checks that
/// its Remaining Length matches the bytes that follow, so a miscounted vector fails loudly
/// instead of testing something else.
#[track_caller]
pub(crate) fn assert_frame_len(bytes: &[u8]) {
    let mut value: usize = 0;
    let mut header = 1;
    for (i, &b) in bytes.iter().skip(1).take(4).enumerate() {
        value |= usize::from(b & 0x7F) << (7 * i);
        header += 1;
        if b & 0x80 == 0 {
            assert_eq!(
                header + value,
                bytes.len(),
                "test vector miscounted: Remaining Length {value} but {} bytes follow the header",
                bytes.len() - header
            );
            return;
        }
    }
    panic!("test vector has no complete Remaining Length");
}

fn is_connect(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| b >> 4 == 1)
}

/// Checks that a decoder given any proper prefix of `bytes` answers `Ok(None)` ("need more
/// bytes" is never an error) and leaves the buffer as it was.
#[track_caller]
pub(crate) fn assert_prefixes_need_more(bytes: &[u8], decoder: impl Fn() -> Decoder) {
    let lens: Vec<usize> = if bytes.len() <= 1024 {
        (0..bytes.len()).collect()
    } else {
        let n = bytes.len();
        (0..8).chain([n / 2, n - 2, n - 1]).collect()
    };
    for len in lens {
        let mut buf = BytesMut::from(&bytes[..len]);
        match decoder().decode(&mut buf) {
            Ok(None) => {}
            other => panic!(
                "prefix of {len}/{} bytes: expected Ok(None), got {other:?}",
                bytes.len()
            ),
        }
        assert_eq!(
            &buf[..],
            &bytes[..len],
            "prefix of {len} bytes: buffer changed"
        );
    }
}

/// Decodes `bytes` as exactly one valid packet with a decoder for `version`, and checks on the
/// way that every proper prefix asks for more bytes, that two copies back to back decode as two
/// packets, and (for CONNECT) that a server-side decoder agrees and switches to the CONNECT's
/// version.
#[track_caller]
pub(crate) fn decode_ok(version: ProtocolVersion, bytes: &[u8]) -> Packet {
    decode_ok_with(|| Decoder::new(version), bytes)
}

/// As [`decode_ok`], with a decoder made by `decoder`.
#[track_caller]
pub(crate) fn decode_ok_with(decoder: impl Fn() -> Decoder, bytes: &[u8]) -> Packet {
    assert_prefixes_need_more(bytes, &decoder);
    let mut buf = BytesMut::from(bytes);
    let packet = match decoder().decode(&mut buf) {
        Ok(Some(packet)) => packet,
        other => panic!("expected a packet, got {other:?}"),
    };
    assert!(buf.is_empty(), "{} bytes left after the packet", buf.len());

    if bytes.len() <= 4096 {
        let mut two = BytesMut::from(bytes);
        two.extend_from_slice(bytes);
        let mut d = decoder();
        assert_eq!(
            d.decode(&mut two).expect("first of two").as_ref(),
            Some(&packet)
        );
        assert_eq!(
            d.decode(&mut two).expect("second of two").as_ref(),
            Some(&packet)
        );
        assert!(two.is_empty());
    }

    if let Packet::Connect(connect) = &packet {
        assert_prefixes_need_more(bytes, Decoder::server);
        let mut server = Decoder::server();
        let mut buf = BytesMut::from(bytes);
        let decoded = server
            .decode(&mut buf)
            .expect("server decoder")
            .expect("a packet");
        assert_eq!(decoded, packet, "server decoder disagrees");
        assert_eq!(server.version(), Some(connect.protocol));
    }
    packet
}

/// What a decoding error must look like.
pub(crate) struct Expect<'a> {
    /// `Some(id)`: `err.statement().for_version(v)` is `id`; `None`: the code gives no id.
    /// Not checked when `check_statement` is false.
    pub(crate) statement: Option<&'a str>,
    /// Whether to check the statement.
    pub(crate) check_statement: bool,
    /// The MQTT 5.0 reason code `err.reason_code()` must give.
    pub(crate) reason: u8,
}

/// Decodes `bytes` (a complete frame, checked with [`assert_frame_len`]) with a decoder for
/// `version` and checks the error: its variant (`expected`), the normative statement it names
/// for `version`, and its MQTT 5.0 reason code. A CONNECT is also fed to a server-side decoder,
/// which must fail the same way.
#[track_caller]
pub(crate) fn decode_err(
    version: ProtocolVersion,
    bytes: &[u8],
    expected: impl Fn(&Error) -> bool,
    statement: Option<&str>,
    reason: u8,
) -> Error {
    assert_frame_len(bytes);
    let expect = Expect {
        statement,
        check_statement: true,
        reason,
    };
    decode_err_using(Decoder::new(version), version, bytes, &expected, &expect)
}

/// As [`decode_err`], without checking the statement.
#[track_caller]
pub(crate) fn decode_err_any_statement(
    version: ProtocolVersion,
    bytes: &[u8],
    expected: impl Fn(&Error) -> bool,
    reason: u8,
) -> Error {
    assert_frame_len(bytes);
    let expect = Expect {
        statement: None,
        check_statement: false,
        reason,
    };
    decode_err_using(Decoder::new(version), version, bytes, &expected, &expect)
}

/// The general form: `decoder` decodes `bytes` (not checked for framing) and must fail as
/// `expected` and `expect` say, with statements looked up for `version`.
#[track_caller]
pub(crate) fn decode_err_using(
    mut decoder: Decoder,
    version: ProtocolVersion,
    bytes: &[u8],
    expected: &dyn Fn(&Error) -> bool,
    expect: &Expect<'_>,
) -> Error {
    let mut buf = BytesMut::from(bytes);
    let err = match decoder.decode(&mut buf) {
        Err(err) => err,
        Ok(other) => panic!("{version}: expected an error, got Ok({other:?}) from {bytes:02X?}"),
    };
    assert!(
        expected(&err),
        "{version}: unexpected error {err:?} ({err})"
    );
    if expect.check_statement {
        let got = err.statement().and_then(|s| s.for_version(version));
        assert_eq!(
            got,
            expect.statement,
            "{version}: statement of {err:?} (full: {:?})",
            err.statement()
        );
    }
    assert_eq!(
        err.reason_code().get(),
        expect.reason,
        "{version}: reason code of {err:?} is {}",
        err.reason_code()
    );
    assert!(err.is_peer_violation(), "{err:?} is a peer violation");
    if is_connect(bytes) && decoder.version().is_some() {
        let server_err = Decoder::server()
            .decode(&mut BytesMut::from(bytes))
            .expect_err("server decoder accepted what the client decoder refused");
        assert_eq!(
            format!("{server_err:?}"),
            format!("{err:?}"),
            "server decoder fails differently"
        );
    }
    err
}

/// A packet identifier.
pub(crate) fn pid(id: u16) -> PacketId {
    PacketId::new(id).expect("non-zero packet identifier")
}

/// A string.
pub(crate) fn s(text: &'static str) -> MqttString {
    MqttString::from_static(text).expect("valid string")
}

/// A topic name.
pub(crate) fn topic(text: &'static str) -> TopicName {
    TopicName::from_static(text).expect("valid topic name")
}

/// A topic filter.
pub(crate) fn filter(text: &'static str) -> TopicFilter {
    TopicFilter::from_static(text).expect("valid topic filter")
}

/// A user property.
pub(crate) fn up(name: &'static str, value: &'static str) -> UserProperty {
    (s(name), s(value))
}

/// Static bytes.
pub(crate) fn b(bytes: &'static [u8]) -> Bytes {
    Bytes::from_static(bytes)
}

/// A PUBLISH with these header fields (struct-update syntax is not available: `Publish` has a
/// private field).
pub(crate) fn publish_with(
    topic: mqtt_codec::TopicName,
    payload: impl Into<Bytes>,
    qos: mqtt_codec::QosPid,
    dup: bool,
    retain: bool,
) -> mqtt_codec::Publish {
    let mut publish = mqtt_codec::Publish::new(topic, payload);
    publish.qos = qos;
    publish.dup = dup;
    publish.retain = retain;
    publish
}
