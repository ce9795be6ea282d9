//! UTF-8 Encoded Strings (MQTT 3.1.1 section 1.5.3, MQTT 5.0 sections 1.5.4 and 1.5.7), in every
//! kind of string field the packets have.

use mqtt_codec::{Error, Packet, ProtocolVersion};

use crate::helpers::{V3, V5, decode_err, decode_ok, wire};

/// A packet carrying `text` (raw bytes, written with their two-byte length) in one string field.
struct Field {
    /// The field name the error reports.
    name: &'static str,
    /// Versions that have the field.
    versions: &'static [ProtocolVersion],
    /// Builds the packet around the string bytes.
    build: fn(ProtocolVersion, &[u8]) -> Vec<u8>,
}

fn n(text: &[u8]) -> u8 {
    u8::try_from(text.len()).expect("short test string")
}

/// Protocol name and level of a CONNECT in `version`: `MQIsdp` 3, or `MQTT` 4 / 5.
fn protocol(version: ProtocolVersion) -> Vec<u8> {
    match version {
        ProtocolVersion::V3_1 => wire![0x00, 0x06, "MQIsdp", 0x03],
        ProtocolVersion::V3_1_1 => wire![0x00, 0x04, "MQTT", 0x04],
        ProtocolVersion::V5 => wire![0x00, 0x04, "MQTT", 0x05],
    }
}

fn client_id(version: ProtocolVersion, text: &[u8]) -> Vec<u8> {
    let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
    let protocol = protocol(version);
    wire![
        0x10,
        (protocol.len() + 5 + props.len()) as u8 + n(text), // CONNECT
        protocol,                                           // protocol name and level
        0x02,
        0x00,
        0x3C,  // flags: clean; keep alive 60
        props, // (5.0) property length 0
        0x00,
        n(text),
        text, // client id under test
    ]
}

fn user_name(version: ProtocolVersion, text: &[u8]) -> Vec<u8> {
    let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
    let protocol = protocol(version);
    wire![
        0x10,
        (protocol.len() + 8 + props.len()) as u8 + n(text), // CONNECT
        protocol,                                           // protocol name and level
        0x82,
        0x00,
        0x3C,  // flags: user name, clean; keep alive 60
        props, // (5.0) property length 0
        0x00,
        0x01,
        "c", // client id "c"
        0x00,
        n(text),
        text, // user name under test
    ]
}

fn will_topic(version: ProtocolVersion, text: &[u8]) -> Vec<u8> {
    let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
    let protocol = protocol(version);
    wire![
        0x10,
        (protocol.len() + 10 + 2 * props.len()) as u8 + n(text), // CONNECT
        protocol,                                                // protocol name and level
        0x06,
        0x00,
        0x3C,  // flags: will, clean; keep alive 60
        props, // (5.0) property length 0
        0x00,
        0x01,
        "c",   // client id "c"
        props, // (5.0) will property length 0
        0x00,
        n(text),
        text, // will topic under test
        0x00,
        0x00, // will message: empty
    ]
}

fn topic_name(version: ProtocolVersion, text: &[u8]) -> Vec<u8> {
    let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
    wire![
        0x30,
        2 + props.len() as u8 + n(text), // PUBLISH QoS 0
        0x00,
        n(text),
        text,  // topic name under test
        props, // (5.0) property length 0
    ]
}

fn subscribe_filter(version: ProtocolVersion, text: &[u8]) -> Vec<u8> {
    let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
    wire![
        0x82,
        5 + props.len() as u8 + n(text), // SUBSCRIBE
        0x00,
        0x01,  // packet id 1
        props, // (5.0) property length 0
        0x00,
        n(text),
        text, // topic filter under test
        0x00, // QoS 0
    ]
}

fn unsubscribe_filter(version: ProtocolVersion, text: &[u8]) -> Vec<u8> {
    let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
    wire![
        0xA2,
        4 + props.len() as u8 + n(text), // UNSUBSCRIBE
        0x00,
        0x01,  // packet id 1
        props, // (5.0) property length 0
        0x00,
        n(text),
        text, // topic filter under test
    ]
}

fn user_property_name(_: ProtocolVersion, text: &[u8]) -> Vec<u8> {
    wire![
        0x30,
        10 + n(text), // PUBLISH QoS 0
        0x00,
        0x01,
        "t",         // topic name "t"
        6 + n(text), // property length
        0x26,
        0x00,
        n(text),
        text,
        0x00,
        0x01,
        "v", // User Property, name under test
    ]
}

fn user_property_value(_: ProtocolVersion, text: &[u8]) -> Vec<u8> {
    wire![
        0x30,
        10 + n(text), // PUBLISH QoS 0
        0x00,
        0x01,
        "t",         // topic name "t"
        6 + n(text), // property length
        0x26,
        0x00,
        0x01,
        "k",
        0x00,
        n(text),
        text, // User Property, value under test
    ]
}

fn reason_string(_: ProtocolVersion, text: &[u8]) -> Vec<u8> {
    wire![
        0x40,
        7 + n(text), // PUBACK
        0x00,
        0x01,        // packet id 1
        0x80,        // Unspecified error
        3 + n(text), // property length
        0x1F,
        0x00,
        n(text),
        text, // Reason String under test
    ]
}

fn content_type(_: ProtocolVersion, text: &[u8]) -> Vec<u8> {
    wire![
        0x30,
        7 + n(text), // PUBLISH QoS 0
        0x00,
        0x01,
        "t",         // topic name "t"
        3 + n(text), // property length
        0x03,
        0x00,
        n(text),
        text, // Content Type under test
    ]
}

fn response_topic(_: ProtocolVersion, text: &[u8]) -> Vec<u8> {
    wire![
        0x30,
        7 + n(text), // PUBLISH QoS 0
        0x00,
        0x01,
        "t",         // topic name "t"
        3 + n(text), // property length
        0x08,
        0x00,
        n(text),
        text, // Response Topic under test
    ]
}

fn authentication_method(_: ProtocolVersion, text: &[u8]) -> Vec<u8> {
    wire![
        0xF0,
        5 + n(text), // AUTH
        0x18,        // Continue authentication
        3 + n(text), // property length
        0x15,
        0x00,
        n(text),
        text, // Authentication Method under test
    ]
}

const ALL: &[ProtocolVersion] = &ProtocolVersion::ALL;
const ONLY_V5: &[ProtocolVersion] = &[V5];

fn fields() -> Vec<Field> {
    vec![
        Field {
            name: "client identifier",
            versions: ALL,
            build: client_id,
        },
        Field {
            name: "user name",
            versions: ALL,
            build: user_name,
        },
        Field {
            name: "will topic",
            versions: ALL,
            build: will_topic,
        },
        Field {
            name: "topic name",
            versions: ALL,
            build: topic_name,
        },
        Field {
            name: "topic filter",
            versions: ALL,
            build: subscribe_filter,
        },
        Field {
            name: "topic filter",
            versions: ALL,
            build: unsubscribe_filter,
        },
        Field {
            name: "user property name",
            versions: ONLY_V5,
            build: user_property_name,
        },
        Field {
            name: "user property value",
            versions: ONLY_V5,
            build: user_property_value,
        },
        Field {
            name: "Reason String",
            versions: ONLY_V5,
            build: reason_string,
        },
        Field {
            name: "Content Type",
            versions: ONLY_V5,
            build: content_type,
        },
        Field {
            name: "Response Topic",
            versions: ONLY_V5,
            build: response_topic,
        },
        Field {
            name: "Authentication Method",
            versions: ONLY_V5,
            build: authentication_method,
        },
    ]
}

/// MQTT-1.5.3-1 (3.1.1; also 3.1) / MQTT-1.5.4-1 and MQTT-1.5.7-1 (5.0): string data is
/// well-formed UTF-8 and does not encode surrogates; otherwise the packet is malformed. Checked
/// in every kind of string field.
#[test]
fn mqtt_1_5_3_1_mqtt_1_5_4_1_ill_formed_utf8_is_malformed() {
    let bad: [&[u8]; 6] = [
        &[0xED, 0xA0, 0x80],       // encoded surrogate U+D800
        &[b'a', 0xED, 0xBF, 0xBF], // encoded surrogate U+DFFF after "a"
        &[0xC0, 0xAF],             // overlong encoding of '/'
        &[0xFF],                   // never valid in UTF-8
        &[0xE2, 0x82],             // truncated three-byte sequence
        &[0x80],                   // lone continuation byte
    ];
    for field in fields() {
        for &version in field.versions {
            let statement = if version.is_v5() {
                "MQTT-1.5.4-1"
            } else {
                "MQTT-1.5.3-1"
            };
            for text in bad {
                let bytes = (field.build)(version, text);
                decode_err(
                    version,
                    &bytes,
                    |e| {
                        matches!(e, Error::InvalidString { field: f, source: mqtt_topic::Error::InvalidUtf8 { .. } }
                            if *f == field.name)
                    },
                    Some(statement),
                    0x81,
                );
            }
        }
    }
}

/// MQTT-1.5.3-2 (3.1.1; also 3.1) / MQTT-1.5.4-2 (5.0): a string never contains U+0000.
#[test]
fn mqtt_1_5_3_2_mqtt_1_5_4_2_null_character_is_malformed() {
    for field in fields() {
        for &version in field.versions {
            let statement = if version.is_v5() {
                "MQTT-1.5.4-2"
            } else {
                "MQTT-1.5.3-2"
            };
            for text in [&b"a\0b"[..], b"\0", b"ab\0"] {
                let bytes = (field.build)(version, text);
                decode_err(
                    version,
                    &bytes,
                    |e| {
                        matches!(e, Error::InvalidString { field: f, source: mqtt_topic::Error::NullCharacter { .. } }
                            if *f == field.name)
                    },
                    Some(statement),
                    0x81,
                );
            }
        }
    }
}

/// MQTT-1.5.3-3 (3.1.1) / MQTT-1.5.4-3 (5.0): EF BB BF is U+FEFF and is kept, never stripped;
/// other well-formed multi-byte characters (U+00FC, U+2A6D4) are accepted as they are.
#[test]
fn mqtt_1_5_3_3_mqtt_1_5_4_3_byte_order_mark_is_kept() {
    let bom_a: &[u8] = &[0xEF, 0xBB, 0xBF, b'a'];
    for version in ProtocolVersion::ALL {
        let Packet::Connect(connect) = decode_ok(version, &client_id(version, bom_a)) else {
            panic!("not a CONNECT");
        };
        assert_eq!(connect.client_id.as_str(), "\u{FEFF}a");
        assert_eq!(connect.client_id.len(), 4);
        let Packet::Connect(connect) = decode_ok(version, &user_name(version, bom_a)) else {
            panic!("not a CONNECT");
        };
        assert_eq!(
            connect.username.expect("user name").as_bytes().as_ref(),
            bom_a
        );
    }
    for version in V3.into_iter().chain([V5]) {
        let Packet::Publish(publish) = decode_ok(version, &topic_name(version, bom_a)) else {
            panic!("not a PUBLISH");
        };
        assert_eq!(publish.topic.as_str(), "\u{FEFF}a");
        let multibyte: &[u8] = &[0xC3, 0xBC, b'/', 0xF0, 0xAA, 0x9B, 0x94]; // "ü/𪛔"
        let Packet::Publish(publish) = decode_ok(version, &topic_name(version, multibyte)) else {
            panic!("not a PUBLISH");
        };
        assert_eq!(publish.topic.as_str(), "\u{FC}/\u{2A6D4}");
        let Packet::Subscribe(subscribe) = decode_ok(version, &subscribe_filter(version, bom_a))
        else {
            panic!("not a SUBSCRIBE");
        };
        assert_eq!(subscribe.subscriptions[0].filter.as_str(), "\u{FEFF}a");
    }
    let Packet::Publish(publish) = decode_ok(V5, &user_property_name(V5, bom_a)) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(
        publish.properties().user_properties[0].0.as_str(),
        "\u{FEFF}a"
    );
}
