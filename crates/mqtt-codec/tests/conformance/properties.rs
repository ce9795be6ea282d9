//! MQTT 5.0 properties (section 2.2.2, Table 2-4): every property identifier in a packet that
//! allows it, and the unnumbered rules on where they may appear, how often, and which values
//! they may take.

use std::collections::BTreeSet;
use std::num::{NonZeroU16, NonZeroU32};

use mqtt_codec::{
    ConnAck, ConnAckProperties, Connect, ConnectProperties, Error, Packet, PacketType,
    PayloadFormat, PropertyId, PublishProperties, QoS, QosPid, ReasonCode, Secret, SubscriptionId,
    Will, WillProperties,
};

use crate::helpers::{V5, b, decode_err, decode_ok, pid, publish_with, s, topic, up, wire};

/// The property identifiers the three "every property" vectors below use.
const CONNECT_IDS: [u8; 9] = [0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x15, 0x16, 0x26];
const WILL_IDS: [u8; 7] = [0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26];
const CONNACK_IDS: [u8; 17] = [
    0x11, 0x21, 0x24, 0x25, 0x27, 0x12, 0x22, 0x1F, 0x26, 0x28, 0x29, 0x2A, 0x13, 0x1A, 0x1C, 0x15,
    0x16,
];
const PUBLISH_IDS: [u8; 8] = [0x01, 0x02, 0x23, 0x08, 0x09, 0x26, 0x0B, 0x03];

/// MQTT 5.0 section 2.2.2.2 (Table 2-4): the vectors below use each of the 27 property
/// identifiers at least once.
#[test]
fn v5_2_2_2_vectors_cover_all_27_property_identifiers() {
    let used: BTreeSet<u8> = CONNECT_IDS
        .iter()
        .chain(&WILL_IDS)
        .chain(&CONNACK_IDS)
        .chain(&PUBLISH_IDS)
        .copied()
        .collect();
    let all: BTreeSet<u8> = PropertyId::ALL.iter().map(|&id| id as u8).collect();
    assert_eq!(all.len(), 27);
    assert_eq!(used, all);
}

/// MQTT 5.0 sections 3.1.2.11 and 3.1.3.2: every CONNECT property and every will property.
#[test]
fn v5_3_1_2_11_every_connect_and_will_property_decodes() {
    let bytes = wire![
        0x10, 0x76, // CONNECT, remaining length 118
        0x00, 0x04, "MQTT", // protocol name
        0x05,   // level 5
        0xCE,   // flags: user name, password, will QoS 1, will, clean start
        0x00, 0x1E, // keep alive 30
        0x2F, // property length 47
        0x11, 0x00, 0x00, 0x0E, 0x10, // Session Expiry Interval 3600
        0x21, 0x00, 0x14, // Receive Maximum 20
        0x27, 0x00, 0x00, 0x10, 0x00, // Maximum Packet Size 4096
        0x22, 0x00, 0x0A, // Topic Alias Maximum 10
        0x19, 0x01, // Request Response Information 1
        0x17, 0x00, // Request Problem Information 0
        0x15, 0x00, 0x05, "SCRAM", // Authentication Method "SCRAM"
        0x16, 0x00, 0x02, 0x01, 0x02, // Authentication Data [01 02]
        0x26, 0x00, 0x01, "k", 0x00, 0x01, "1", // User Property k=1
        0x26, 0x00, 0x01, "k", 0x00, 0x01, "2", // User Property k=2 (same name again)
        0x00, 0x03, "cid", // client id
        0x25,  // will property length 37
        0x18, 0x00, 0x00, 0x00, 0x05, // Will Delay Interval 5
        0x01, 0x01, // Payload Format Indicator 1 (UTF-8)
        0x02, 0x00, 0x00, 0x00, 0x3C, // Message Expiry Interval 60
        0x03, 0x00, 0x04, "text", // Content Type "text"
        0x08, 0x00, 0x03, "r/t", // Response Topic "r/t"
        0x09, 0x00, 0x02, 0xCA, 0xFE, // Correlation Data [CA FE]
        0x26, 0x00, 0x01, "w", 0x00, 0x01, "x", // User Property w=x
        0x00, 0x03, "w/t", // will topic
        0x00, 0x02, "hi", // will payload
        0x00, 0x02, "un", // user name
        0x00, 0x02, "pw", // password
    ];
    let expected = Connect {
        protocol: V5,
        clean_start: true,
        keep_alive: 30,
        client_id: s("cid"),
        will: Some(Will {
            topic: topic("w/t"),
            payload: b(b"hi"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties {
                will_delay_interval: Some(5),
                payload_format_indicator: Some(PayloadFormat::Utf8),
                message_expiry_interval: Some(60),
                content_type: Some(s("text")),
                response_topic: Some(topic("r/t")),
                correlation_data: Some(b(&[0xCA, 0xFE])),
                user_properties: vec![up("w", "x")],
            },
        }),
        username: Some(s("un")),
        password: Some(Secret::from(&b"pw"[..])),
        properties: ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: NonZeroU16::new(20),
            maximum_packet_size: NonZeroU32::new(4096),
            topic_alias_maximum: Some(10),
            request_response_information: Some(true),
            request_problem_information: Some(false),
            authentication_method: Some(s("SCRAM")),
            authentication_data: Some(Secret::from(&[0x01, 0x02][..])),
            user_properties: vec![up("k", "1"), up("k", "2")],
        },
    };
    assert_eq!(decode_ok(V5, &bytes), Packet::Connect(Box::new(expected)));
}

/// MQTT 5.0 section 3.2.2.3: every CONNACK property.
#[test]
fn v5_3_2_2_3_every_connack_property_decodes() {
    let bytes = wire![
        0x20, 0x44, // CONNACK, remaining length 68
        0x01, // session present
        0x00, // Success
        0x41, // property length 65
        0x11, 0x00, 0x00, 0x00, 0x78, // Session Expiry Interval 120
        0x21, 0x00, 0x0A, // Receive Maximum 10
        0x24, 0x01, // Maximum QoS 1
        0x25, 0x00, // Retain Available 0
        0x27, 0x00, 0x01, 0x00, 0x00, // Maximum Packet Size 65536
        0x12, 0x00, 0x02, "a1", // Assigned Client Identifier "a1"
        0x22, 0x00, 0x05, // Topic Alias Maximum 5
        0x1F, 0x00, 0x02, "ok", // Reason String "ok"
        0x26, 0x00, 0x01, "a", 0x00, 0x01, "b", // User Property a=b
        0x28, 0x01, // Wildcard Subscription Available 1
        0x29, 0x00, // Subscription Identifier Available 0
        0x2A, 0x01, // Shared Subscription Available 1
        0x13, 0x00, 0x1E, // Server Keep Alive 30
        0x1A, 0x00, 0x02, "ri", // Response Information "ri"
        0x1C, 0x00, 0x02, "sr", // Server Reference "sr"
        0x15, 0x00, 0x02, "am", // Authentication Method "am"
        0x16, 0x00, 0x01, 0x07, // Authentication Data [07]
    ];
    let expected = ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties {
            session_expiry_interval: Some(120),
            receive_maximum: NonZeroU16::new(10),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            maximum_packet_size: NonZeroU32::new(65_536),
            assigned_client_identifier: Some(s("a1")),
            topic_alias_maximum: Some(5),
            reason_string: Some(s("ok")),
            user_properties: vec![up("a", "b")],
            wildcard_subscription_available: Some(true),
            subscription_identifiers_available: Some(false),
            shared_subscription_available: Some(true),
            server_keep_alive: Some(30),
            response_information: Some(s("ri")),
            server_reference: Some(s("sr")),
            authentication_method: Some(s("am")),
            authentication_data: Some(Secret::from(&[0x07][..])),
        },
    };
    assert_eq!(decode_ok(V5, &bytes), Packet::ConnAck(Box::new(expected)));
}

/// MQTT 5.0 section 3.3.2.3: every PUBLISH property; Subscription Identifier repeats
/// (MQTT-3.3.4-4), in order.
#[test]
fn v5_3_3_2_3_every_publish_property_decodes() {
    let bytes = wire![
        0x3B, 0x36, // PUBLISH, DUP, QoS 1, RETAIN, remaining length 54
        0x00, 0x03, "a/b", // topic name
        0x00, 0x0A, // packet id 10
        0x29, // property length 41
        0x01, 0x01, // Payload Format Indicator 1
        0x02, 0x00, 0x00, 0x01, 0x00, // Message Expiry Interval 256
        0x23, 0x00, 0x03, // Topic Alias 3
        0x08, 0x00, 0x03, "r/x", // Response Topic "r/x"
        0x09, 0x00, 0x03, 0x01, 0x02, 0x03, // Correlation Data [01 02 03]
        0x26, 0x00, 0x01, "k", 0x00, 0x01, "v", // User Property k=v
        0x0B, 0x01, // Subscription Identifier 1
        0x0B, 0x80, 0x01, // Subscription Identifier 128
        0x03, 0x00, 0x04, "json",  // Content Type "json"
        "hello", // payload
    ];
    let properties = PublishProperties {
        payload_format_indicator: Some(PayloadFormat::Utf8),
        message_expiry_interval: Some(256),
        topic_alias: NonZeroU16::new(3),
        response_topic: Some(topic("r/x")),
        correlation_data: Some(b(&[1, 2, 3])),
        user_properties: vec![up("k", "v")],
        subscription_identifiers: [1, 128]
            .map(|id| SubscriptionId::new(id).expect("valid"))
            .to_vec(),
        content_type: Some(s("json")),
    };
    let expected = publish_with(
        topic("a/b"),
        "hello",
        QosPid::AtLeastOnce(pid(10)),
        true,
        true,
    )
    .with_properties(properties);
    assert_eq!(decode_ok(V5, &bytes), Packet::Publish(expected));
}

/// MQTT 5.0 section 2.2.2.2: User Property may appear more than once, and the order (including
/// repeated names and identical pairs) is kept (MQTT-3.3.2-18, MQTT-3.1.3-10 depend on it).
#[test]
fn v5_2_2_2_user_properties_repeat_in_order() {
    let bytes = wire![
        0x30, 0x20, // PUBLISH QoS 0, remaining length 32
        0x00, 0x01, "t",  // topic name "t"
        0x1C, // property length 28
        0x26, 0x00, 0x01, "b", 0x00, 0x01, "1", // b=1
        0x26, 0x00, 0x01, "a", 0x00, 0x01, "2", // a=2
        0x26, 0x00, 0x01, "b", 0x00, 0x01, "3", // b=3
        0x26, 0x00, 0x01, "a", 0x00, 0x01, "2", // a=2 again
    ];
    let Packet::Publish(publish) = decode_ok(V5, &bytes) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(
        publish.properties().user_properties,
        vec![up("b", "1"), up("a", "2"), up("b", "3"), up("a", "2")]
    );
}

/// MQTT-3.3.4-4 (5.0): a PUBLISH (server to client) may carry several Subscription
/// Identifiers, up to 268,435,455.
#[test]
fn mqtt_3_3_4_4_v5_several_subscription_identifiers_in_publish() {
    let bytes = wire![
        0x30, 0x0D, // PUBLISH QoS 0, remaining length 13
        0x00, 0x01, "t",  // topic name "t"
        0x09, // property length 9
        0x0B, 0x01, // Subscription Identifier 1
        0x0B, 0xFF, 0xFF, 0xFF, 0x7F, // Subscription Identifier 268,435,455
        0x0B, 0x02, // Subscription Identifier 2
    ];
    let Packet::Publish(publish) = decode_ok(V5, &bytes) else {
        panic!("not a PUBLISH");
    };
    let ids: Vec<u32> = publish
        .properties()
        .subscription_identifiers
        .iter()
        .map(|id| id.get())
        .collect();
    assert_eq!(ids, [1, 268_435_455, 2]);
}

/// MQTT 5.0 section 2.2.2.2: a property in a packet that may not carry it makes the packet
/// malformed.
#[test]
fn v5_2_2_2_property_not_allowed_in_packet_is_malformed() {
    let cases: Vec<(PropertyId, Vec<u8>)> = vec![
        (
            PropertyId::TopicAlias,
            wire![
                0x10, 0x11, // CONNECT, remaining length 17
                0x00, 0x04, "MQTT", 0x05, 0x02, 0x00,
                0x3C, // name, level 5, clean, keep alive
                0x03, 0x23, 0x00, 0x01, // properties: Topic Alias 1
                0x00, 0x01, "c", // client id
            ],
        ),
        (
            PropertyId::MaximumQoS,
            wire![
                0x10, 0x10, // CONNECT, remaining length 16
                0x00, 0x04, "MQTT", 0x05, 0x02, 0x00, 0x3C, 0x02, 0x24,
                0x01, // properties: Maximum QoS 1
                0x00, 0x01, "c",
            ],
        ),
        (
            PropertyId::WillDelayInterval,
            wire![
                0x10, 0x13, // CONNECT, remaining length 19
                0x00, 0x04, "MQTT", 0x05, 0x02, 0x00, 0x3C, 0x05, 0x18, 0x00, 0x00, 0x00,
                0x0A, // CONNECT properties: Will Delay Interval
                0x00, 0x01, "c",
            ],
        ),
        (
            PropertyId::TopicAlias,
            wire![
                0x10, 0x18, // CONNECT, remaining length 24
                0x00, 0x04, "MQTT", 0x05, 0x06, 0x00, 0x3C, // flags: will, clean start
                0x00, // property length 0
                0x00, 0x01, "c", // client id
                0x03, 0x23, 0x00, 0x01, // will properties: Topic Alias 1
                0x00, 0x01, "w", 0x00, 0x01, "p", // will topic, will payload
            ],
        ),
        (
            PropertyId::SessionExpiryInterval,
            wire![
                0x10, 0x1A, // CONNECT, remaining length 26
                0x00, 0x04, "MQTT", 0x05, 0x06, 0x00, 0x3C, 0x00, 0x00, 0x01, "c", 0x05, 0x11,
                0x00, 0x00, 0x00, 0x0A, // will properties: Session Expiry
                0x00, 0x01, "w", 0x00, 0x01, "p",
            ],
        ),
        (
            PropertyId::RequestProblemInformation,
            wire![0x20, 0x05, 0x00, 0x00, 0x02, 0x17, 0x01], // CONNACK: Request Problem Info
        ),
        (
            PropertyId::WillDelayInterval,
            // PUBLISH "t": Will Delay Interval 10
            wire![
                0x30, 0x09, 0x00, 0x01, "t", 0x05, 0x18, 0x00, 0x00, 0x00, 0x0A
            ],
        ),
        (
            PropertyId::ReasonString,
            wire![0x30, 0x08, 0x00, 0x01, "t", 0x04, 0x1F, 0x00, 0x01, "x"], // PUBLISH
        ),
        (
            PropertyId::SessionExpiryInterval,
            // PUBACK id 1, Success, Session Expiry Interval 10
            wire![
                0x40, 0x09, 0x00, 0x01, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x0A
            ],
        ),
        (
            PropertyId::ContentType,
            wire![0x62, 0x08, 0x00, 0x01, 0x00, 0x04, 0x03, 0x00, 0x01, "x"], // PUBREL
        ),
        (
            PropertyId::TopicAlias,
            // SUBSCRIBE id 1, Topic Alias 1, filter "a" QoS 0
            wire![
                0x82, 0x0A, 0x00, 0x01, 0x03, 0x23, 0x00, 0x01, 0x00, 0x01, "a", 0x00
            ],
        ),
        (
            PropertyId::SubscriptionIdentifier,
            wire![0x90, 0x06, 0x00, 0x01, 0x02, 0x0B, 0x01, 0x00], // SUBACK
        ),
        (
            PropertyId::SubscriptionIdentifier,
            // UNSUBSCRIBE id 1, Subscription Identifier 1, filter "a"
            wire![0xA2, 0x08, 0x00, 0x01, 0x02, 0x0B, 0x01, 0x00, 0x01, "a"],
        ),
        (
            PropertyId::AssignedClientIdentifier,
            wire![0xE0, 0x07, 0x00, 0x05, 0x12, 0x00, 0x02, "id"], // DISCONNECT
        ),
        (
            PropertyId::ServerReference,
            wire![0xF0, 0x07, 0x18, 0x05, 0x1C, 0x00, 0x02, "sr"], // AUTH
        ),
    ];
    for (id, bytes) in &cases {
        decode_err(
            V5,
            bytes,
            |e| matches!(e, Error::PropertyNotAllowed { id: i, .. } if i == id),
            None,
            0x81,
        );
    }
}

/// MQTT 5.0 section 2.2.2.2 (and each property's "It is a Protocol Error to include ... more
/// than once"): only User Property, and Subscription Identifier in PUBLISH, may repeat.
#[test]
fn v5_2_2_2_duplicate_property_is_protocol_error() {
    let cases: Vec<(PropertyId, Vec<u8>)> = vec![
        (
            PropertyId::ContentType,
            // PUBLISH "t": Content Type "a", Content Type "b"
            wire![
                0x30, 0x0C, 0x00, 0x01, "t", 0x08, 0x03, 0x00, 0x01, "a", 0x03, 0x00, 0x01, "b"
            ],
        ),
        (
            PropertyId::TopicAlias,
            // PUBLISH "t": Topic Alias 1, Topic Alias 2
            wire![
                0x30, 0x0A, 0x00, 0x01, "t", 0x06, 0x23, 0x00, 0x01, 0x23, 0x00, 0x02
            ],
        ),
        (
            PropertyId::SubscriptionIdentifier,
            // SUBSCRIBE id 1: Subscription Identifier 1, Subscription Identifier 2; "a" QoS 0
            wire![
                0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, "a", 0x00
            ],
        ),
        (
            PropertyId::SessionExpiryInterval,
            wire![
                0x10, 0x18, // CONNECT, remaining length 24
                0x00, 0x04, "MQTT", 0x05, 0x02, 0x00, 0x3C, 0x0A, // property length 10
                0x11, 0x00, 0x00, 0x00, 0x01, // Session Expiry Interval 1
                0x11, 0x00, 0x00, 0x00, 0x02, // Session Expiry Interval 2
                0x00, 0x01, "c",
            ],
        ),
        (
            PropertyId::WillDelayInterval,
            wire![
                0x10, 0x1F, // CONNECT, remaining length 31
                0x00, 0x04, "MQTT", 0x05, 0x06, 0x00, 0x3C, // flags: will, clean start
                0x00, // property length 0
                0x00, 0x01, "c", 0x0A, // will property length 10
                0x18, 0x00, 0x00, 0x00, 0x01, // Will Delay Interval 1
                0x18, 0x00, 0x00, 0x00, 0x02, // Will Delay Interval 2
                0x00, 0x01, "w", 0x00, 0x01, "p",
            ],
        ),
        (
            PropertyId::MaximumQoS,
            wire![0x20, 0x07, 0x00, 0x00, 0x04, 0x24, 0x00, 0x24, 0x01], // CONNACK
        ),
        (
            PropertyId::ReasonString,
            // PUBACK id 1, Success, Reason String "a", Reason String "b"
            wire![
                0x40, 0x0C, 0x00, 0x01, 0x00, 0x08, 0x1F, 0x00, 0x01, "a", 0x1F, 0x00, 0x01, "b"
            ],
        ),
        (
            PropertyId::AuthenticationMethod,
            // AUTH continue: Authentication Method "a", Authentication Method "b"
            wire![
                0xF0, 0x0A, 0x18, 0x08, 0x15, 0x00, 0x01, "a", 0x15, 0x00, 0x01, "b"
            ],
        ),
        (
            PropertyId::ServerReference,
            // DISCONNECT 0x9C: Server Reference "a", Server Reference "b"
            wire![
                0xE0, 0x0A, 0x9C, 0x08, 0x1C, 0x00, 0x01, "a", 0x1C, 0x00, 0x01, "b"
            ],
        ),
    ];
    for (id, bytes) in &cases {
        decode_err(
            V5,
            bytes,
            |e| matches!(e, Error::DuplicateProperty { id: i } if i == id),
            None,
            0x82,
        );
    }
}

/// MQTT 5.0 section 2.2.2.2: an identifier the standard does not define makes the packet
/// malformed.
#[test]
fn v5_2_2_2_unknown_property_identifier_is_malformed() {
    for id in [0x00, 0x04, 0x05, 0x0A, 0x10, 0x14, 0x1B, 0x20, 0x2B, 0x7F] {
        let bytes = wire![0x30, 0x06, 0x00, 0x01, "t", 0x02, id, 0x00]; // PUBLISH "t", property `id`
        decode_err(
            V5,
            &bytes,
            |e| matches!(e, Error::UnknownProperty { id: i } if *i == u32::from(id)),
            None,
            0x81,
        );
    }
    let two_byte_id = wire![0x30, 0x07, 0x00, 0x01, "t", 0x03, 0x80, 0x01, 0x00]; // id 128
    decode_err(
        V5,
        &two_byte_id,
        |e| matches!(e, Error::UnknownProperty { id: 128 }),
        None,
        0x81,
    );
    let in_connack = wire![0x20, 0x05, 0x00, 0x00, 0x02, 0x04, 0x00]; // CONNACK, property 0x04
    decode_err(
        V5,
        &in_connack,
        |e| matches!(e, Error::UnknownProperty { id: 4 }),
        None,
        0x81,
    );
    let in_connect = wire![
        0x10, 0x10, // CONNECT, remaining length 16
        0x00, 0x04, "MQTT", 0x05, 0x02, 0x00, 0x3C, 0x02, 0x7F, 0x00, // property 0x7F
        0x00, 0x01, "c",
    ];
    decode_err(
        V5,
        &in_connect,
        |e| matches!(e, Error::UnknownProperty { id: 0x7F }),
        None,
        0x81,
    );
}

/// MQTT 5.0 sections 2.2.2.1 and 4.13.1: a Property Length past the end of the packet, or a
/// property value past the Property Length, makes the packet malformed.
#[test]
fn v5_2_2_1_property_length_past_end_is_malformed() {
    let cases: Vec<(PacketType, Vec<u8>)> = vec![
        // PUBLISH: property length 16, 2 bytes left in the packet
        (
            PacketType::Publish,
            wire![0x30, 0x06, 0x00, 0x01, "t", 0x10, 0x01, 0x01],
        ),
        // PUBLISH: property length 2 holds half a Message Expiry Interval; the packet goes on
        (
            PacketType::Publish,
            wire![
                0x30, 0x09, 0x00, 0x01, "t", 0x02, 0x02, 0x00, 0x00, 0x00, 0x00
            ],
        ),
        // CONNACK: property length 5, 2 bytes left
        (
            PacketType::ConnAck,
            wire![0x20, 0x05, 0x00, 0x00, 0x05, 0x24, 0x01],
        ),
        // SUBSCRIBE: property length 10, 4 bytes left
        (
            PacketType::Subscribe,
            wire![0x82, 0x07, 0x00, 0x01, 0x0A, 0x00, 0x01, "a", 0x00],
        ),
        // PUBACK: User Property value length 5, 1 byte left
        (
            PacketType::PubAck,
            wire![
                0x40, 0x0B, 0x00, 0x01, 0x00, 0x07, 0x26, 0x00, 0x01, "k", 0x00, 0x05, "v"
            ],
        ),
        // AUTH: Authentication Data length 3, 1 byte left
        (
            PacketType::Auth,
            wire![0xF0, 0x06, 0x18, 0x04, 0x16, 0x00, 0x03, 0x01],
        ),
    ];
    for (packet, bytes) in &cases {
        decode_err(
            V5,
            bytes,
            |e| matches!(e, Error::Truncated { packet: p } if p == packet),
            None,
            0x81,
        );
    }
    // A Subscription Identifier longer than four bytes.
    let five_bytes = wire![
        0x30, 0x09, 0x00, 0x01, "t", 0x05, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF
    ];
    decode_err(
        V5,
        &five_bytes,
        |e| matches!(e, Error::VarIntTooLong),
        None,
        0x81,
    );
}

/// MQTT 5.0 section 2.2.2.2 and the property definitions in 3.1.2.11, 3.1.3.2, 3.2.2.3, 3.3.2.3
/// and 3.8.2.1: values outside a property's range are protocol errors (Receive Maximum 0,
/// Maximum Packet Size 0, Subscription Identifier 0, byte flags other than 0 or 1, Maximum QoS
/// other than 0 or 1).
#[test]
fn v5_2_2_2_property_value_out_of_range_is_protocol_error() {
    let connect = |props: &[u8]| {
        let len = props.len() as u8;
        wire![
            0x10,
            0x0E + len, // CONNECT, remaining length 14 + properties
            0x00,
            0x04,
            "MQTT",
            0x05,
            0x02,
            0x00,
            0x3C, // name, level 5, clean, keep alive
            len,
            props, // properties
            0x00,
            0x01,
            "c", // client id
        ]
    };
    let connack = |props: &[u8]| {
        let len = props.len() as u8;
        wire![0x20, 0x03 + len, 0x00, 0x00, len, props] // CONNACK Success with `props`
    };
    let publish = |props: &[u8]| {
        let len = props.len() as u8;
        wire![0x30, 0x04 + len, 0x00, 0x01, "t", len, props] // PUBLISH "t" with `props`
    };
    let cases: Vec<(PropertyId, Vec<u8>)> = vec![
        (PropertyId::ReceiveMaximum, connect(&[0x21, 0x00, 0x00])),
        (
            PropertyId::MaximumPacketSize,
            connect(&[0x27, 0x00, 0x00, 0x00, 0x00]),
        ),
        (
            PropertyId::RequestProblemInformation,
            connect(&[0x17, 0x02]),
        ),
        (
            PropertyId::RequestResponseInformation,
            connect(&[0x19, 0x02]),
        ),
        (
            PropertyId::PayloadFormatIndicator,
            wire![
                0x10, 0x17, // CONNECT, remaining length 23
                0x00, 0x04, "MQTT", 0x05, 0x06, 0x00, 0x3C, // flags: will, clean start
                0x00, // property length 0
                0x00, 0x01, "c", 0x02, 0x01,
                0x02, // will properties: Payload Format Indicator 2
                0x00, 0x01, "w", 0x00, 0x01, "p",
            ],
        ),
        (PropertyId::ReceiveMaximum, connack(&[0x21, 0x00, 0x00])),
        (
            PropertyId::MaximumPacketSize,
            connack(&[0x27, 0x00, 0x00, 0x00, 0x00]),
        ),
        (PropertyId::MaximumQoS, connack(&[0x24, 0x02])),
        (PropertyId::RetainAvailable, connack(&[0x25, 0x02])),
        (
            PropertyId::WildcardSubscriptionAvailable,
            connack(&[0x28, 0x02]),
        ),
        (
            PropertyId::SubscriptionIdentifierAvailable,
            connack(&[0x29, 0xFF]),
        ),
        (
            PropertyId::SharedSubscriptionAvailable,
            connack(&[0x2A, 0x02]),
        ),
        (PropertyId::PayloadFormatIndicator, publish(&[0x01, 0x02])),
        (PropertyId::SubscriptionIdentifier, publish(&[0x0B, 0x00])),
        (
            PropertyId::SubscriptionIdentifier,
            // SUBSCRIBE id 1, Subscription Identifier 0, "a" QoS 0
            wire![
                0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, "a", 0x00
            ],
        ),
    ];
    for (id, bytes) in &cases {
        decode_err(
            V5,
            bytes,
            |e| matches!(e, Error::InvalidPropertyValue { id: i } if i == id),
            None,
            0x82,
        );
    }
}

/// MQTT-3.3.2-8 and section 3.3.2.3.4 (5.0): a Topic Alias of 0 is not permitted; the receiver
/// answers 0x94 (Topic Alias invalid).
#[test]
fn mqtt_3_3_2_8_v5_topic_alias_0_is_invalid() {
    let bytes = wire![
        0x30, 0x07, // PUBLISH QoS 0, remaining length 7
        0x00, 0x01, "t",  // topic name "t"
        0x03, // property length 3
        0x23, 0x00, 0x00, // Topic Alias 0
    ];
    decode_err(
        V5,
        &bytes,
        |e| {
            matches!(
                e,
                Error::InvalidPropertyValue {
                    id: PropertyId::TopicAlias
                }
            )
        },
        None,
        0x94,
    );
}

/// MQTT 5.0 sections 3.1.2.11 and 3.2.2.3: the edges of the ranges are accepted (Topic Alias
/// Maximum 0 means "no aliases", Maximum QoS 0, Receive Maximum 65,535, Session Expiry
/// 0xFFFFFFFF).
#[test]
fn v5_3_1_2_11_boundary_property_values_are_accepted() {
    let bytes = wire![
        0x10, 0x19, // CONNECT, remaining length 25
        0x00, 0x04, "MQTT", 0x05, 0x02, 0x00, 0x3C, 0x0B, // property length 11
        0x22, 0x00, 0x00, // Topic Alias Maximum 0
        0x21, 0xFF, 0xFF, // Receive Maximum 65535
        0x11, 0xFF, 0xFF, 0xFF, 0xFF, // Session Expiry Interval 0xFFFFFFFF
        0x00, 0x01, "c",
    ];
    let Packet::Connect(connect) = decode_ok(V5, &bytes) else {
        panic!("not a CONNECT");
    };
    assert_eq!(connect.properties.topic_alias_maximum, Some(0));
    assert_eq!(connect.properties.receive_maximum, NonZeroU16::new(65_535));
    assert_eq!(connect.properties.session_expiry_interval, Some(u32::MAX));
    let connack = wire![0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x00]; // CONNACK, Maximum QoS 0
    let Packet::ConnAck(connack) = decode_ok(V5, &connack) else {
        panic!("not a CONNACK");
    };
    assert_eq!(connack.properties.maximum_qos, Some(QoS::AtMostOnce));
}
