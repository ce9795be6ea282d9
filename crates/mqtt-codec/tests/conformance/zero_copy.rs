//! Zero-copy decoding: topic names, payloads, strings and binary data of decoded packets are
//! slices of the buffer the bytes arrived in, not copies (the crate's documented contract).

use bytes::BytesMut;
use mqtt_codec::{Decoder, Packet, ProtocolVersion};

use crate::helpers::{V5, V311, assert_frame_len, wire};

/// The received bytes, copied once into a `BytesMut` as a socket read would leave them, the
/// address of that buffer (taken before decoding), and the decoded packet.
struct Decoded {
    original: Vec<u8>,
    base: usize,
    packet: Packet,
}

fn decode_in_place(version: ProtocolVersion, bytes: Vec<u8>) -> Decoded {
    assert_frame_len(&bytes);
    let mut buf = BytesMut::with_capacity(bytes.len());
    buf.extend_from_slice(&bytes);
    let base = buf.as_ptr() as usize;
    let packet = Decoder::new(version)
        .decode(&mut buf)
        .expect("valid")
        .expect("whole packet");
    Decoded {
        original: bytes,
        base,
        packet,
    }
}

impl Decoded {
    /// Asserts that `field` (non-empty) points into the input buffer, exactly where `expected`
    /// (which occurs once in the input) was received.
    #[track_caller]
    fn assert_shared(&self, what: &str, field: &[u8], expected: &[u8]) {
        assert_eq!(field, expected, "{what}: value");
        let positions: Vec<usize> = self
            .original
            .windows(expected.len())
            .enumerate()
            .filter(|(_, w)| *w == expected)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            positions.len(),
            1,
            "{what}: test vector must hold {expected:?} once"
        );
        let address = field.as_ptr() as usize;
        let range = self.base..self.base + self.original.len();
        assert!(
            range.contains(&address) && address + field.len() <= range.end,
            "{what}: {address:#x} is not inside the input buffer {range:#x?}: copied"
        );
        assert_eq!(
            address,
            self.base + positions[0],
            "{what}: not at its place in the input"
        );
    }
}

/// PUBLISH (3.1.1 and 5.0): topic name, payload and every string or binary property are slices
/// of the input buffer.
#[test]
fn zero_copy_publish_topic_payload_and_properties() {
    let v311 = wire![
        0x32,
        0x12, // PUBLISH QoS 1, remaining length 18
        0x00,
        0x05,
        "sen/1", // topic name
        0x00,
        0x07,        // packet id 7
        "payload!!", // payload
    ];
    let d = decode_in_place(V311, v311);
    let Packet::Publish(p) = &d.packet else {
        panic!("not a PUBLISH")
    };
    d.assert_shared("topic", p.topic.as_bytes(), b"sen/1");
    d.assert_shared("payload", &p.payload, b"payload!!");

    let v5 = wire![
        0x30, 0x2F, // PUBLISH QoS 0, remaining length 47
        0x00, 0x05, "sen/2", // topic name
        0x23,    // property length 35
        0x08, 0x00, 0x04, "resp", // Response Topic
        0x09, 0x00, 0x03, 0xC0, 0xFF, 0xEE, // Correlation Data
        0x03, 0x00, 0x05, "ctype", // Content Type
        0x26, 0x00, 0x04, "name", 0x00, 0x05, "value", // User Property
        "body",  // payload
    ];
    let d = decode_in_place(V5, v5);
    let Packet::Publish(p) = &d.packet else {
        panic!("not a PUBLISH")
    };
    let props = p.properties();
    d.assert_shared("topic", p.topic.as_bytes(), b"sen/2");
    d.assert_shared("payload", &p.payload, b"body");
    d.assert_shared(
        "response topic",
        props.response_topic.as_ref().expect("set").as_bytes(),
        b"resp",
    );
    d.assert_shared(
        "correlation data",
        props.correlation_data.as_ref().expect("set"),
        &[0xC0, 0xFF, 0xEE],
    );
    d.assert_shared(
        "content type",
        props.content_type.as_ref().expect("set").as_bytes(),
        b"ctype",
    );
    d.assert_shared(
        "user property name",
        props.user_properties[0].0.as_bytes(),
        b"name",
    );
    d.assert_shared(
        "user property value",
        props.user_properties[0].1.as_bytes(),
        b"value",
    );
}

/// CONNECT (3.1.1 and 5.0): client id, will topic and payload, user name, password,
/// authentication method and data, will properties are slices of the input buffer.
#[test]
fn zero_copy_connect_fields() {
    let v311 = wire![
        0x10, 0x2E, // CONNECT, remaining length 46
        0x00, 0x04, "MQTT", 0x04, // protocol name, level 4
        0xC6, // flags: user name, password, will, clean session
        0x00, 0x3C, // keep alive 60
        0x00, 0x06, "client", // client id
        0x00, 0x05, "w/top", // will topic
        0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF, // will message
        0x00, 0x05, "alice", // user name
        0x00, 0x06, "secret", // password
    ];
    let d = decode_in_place(V311, v311);
    let Packet::Connect(c) = &d.packet else {
        panic!("not a CONNECT")
    };
    let will = c.will.as_ref().expect("will");
    d.assert_shared("client id", c.client_id.as_bytes(), b"client");
    d.assert_shared("will topic", will.topic.as_bytes(), b"w/top");
    d.assert_shared("will payload", &will.payload, &[0xDE, 0xAD, 0xBE, 0xEF]);
    d.assert_shared(
        "user name",
        c.username.as_ref().expect("set").as_bytes(),
        b"alice",
    );
    d.assert_shared(
        "password",
        c.password.as_ref().expect("set").expose(),
        b"secret",
    );

    let v5 = wire![
        0x10, 0x3C, // CONNECT, remaining length 60
        0x00, 0x04, "MQTT", 0x05, // protocol name, level 5
        0x06, // flags: will, clean start
        0x00, 0x3C, // keep alive 60
        0x12, // property length 18
        0x15, 0x00, 0x05, "SCRAM", // Authentication Method
        0x16, 0x00, 0x07, "nonce:1", // Authentication Data
        0x00, 0x03, "cid", // client id
        0x0F,  // will property length 15
        0x03, 0x00, 0x04, "text", // Content Type
        0x09, 0x00, 0x05, "corr!", // Correlation Data
        0x00, 0x03, "l/w", // will topic
        0x00, 0x03, "bye", // will payload
    ];
    let d = decode_in_place(V5, v5);
    let Packet::Connect(c) = &d.packet else {
        panic!("not a CONNECT")
    };
    let will = c.will.as_ref().expect("will");
    d.assert_shared("client id", c.client_id.as_bytes(), b"cid");
    d.assert_shared(
        "authentication method",
        c.properties
            .authentication_method
            .as_ref()
            .expect("set")
            .as_bytes(),
        b"SCRAM",
    );
    d.assert_shared(
        "authentication data",
        c.properties
            .authentication_data
            .as_ref()
            .expect("set")
            .expose(),
        b"nonce:1",
    );
    d.assert_shared(
        "will content type",
        will.properties
            .content_type
            .as_ref()
            .expect("set")
            .as_bytes(),
        b"text",
    );
    d.assert_shared(
        "will correlation data",
        will.properties.correlation_data.as_ref().expect("set"),
        b"corr!",
    );
    d.assert_shared("will topic", will.topic.as_bytes(), b"l/w");
    d.assert_shared("will payload", &will.payload, b"bye");
}

/// SUBSCRIBE and UNSUBSCRIBE filters, and the reason string of an acknowledgement, are slices
/// of the input buffer.
#[test]
fn zero_copy_filters_and_reason_strings() {
    let subscribe = wire![
        0x82, 0x0B, // SUBSCRIBE, remaining length 11
        0x00, 0x01, // packet id 1
        0x00, // property length 0
        0x00, 0x05, "sub/#", // topic filter
        0x00,    // options
    ];
    let d = decode_in_place(V5, subscribe);
    let Packet::Subscribe(s) = &d.packet else {
        panic!("not a SUBSCRIBE")
    };
    d.assert_shared(
        "subscribe filter",
        s.subscriptions[0].filter.as_bytes(),
        b"sub/#",
    );

    let unsubscribe = wire![
        0xA2, 0x09, // UNSUBSCRIBE, remaining length 9
        0x00, 0x01, // packet id 1
        0x00, 0x05, "uns/+", // topic filter
    ];
    let d = decode_in_place(V311, unsubscribe);
    let Packet::Unsubscribe(u) = &d.packet else {
        panic!("not an UNSUBSCRIBE")
    };
    d.assert_shared("unsubscribe filter", u.filters[0].as_bytes(), b"uns/+");

    let puback = wire![
        0x40, 0x0C, // PUBACK, remaining length 12
        0x00, 0x01, // packet id 1
        0x80, // Unspecified error
        0x08, // property length 8
        0x1F, 0x00, 0x05, "oops!", // Reason String
    ];
    let d = decode_in_place(V5, puback);
    let Packet::PubAck(a) = &d.packet else {
        panic!("not a PUBACK")
    };
    d.assert_shared(
        "reason string",
        a.properties.reason_string.as_ref().expect("set").as_bytes(),
        b"oops!",
    );
}
