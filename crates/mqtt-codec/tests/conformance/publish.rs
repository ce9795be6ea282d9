//! PUBLISH and its acknowledgements PUBACK, PUBREC, PUBREL, PUBCOMP (MQTT 3.1.1 sections 3.3 to
//! 3.7, MQTT 5.0 sections 3.3 to 3.7).

use mqtt_codec::{
    AckProperties, Error, Packet, PacketType, PubAck, PubComp, PubRec, PubRel, Publish,
    PublishProperties, QosPid, ReasonCode,
};
use mqtt_topic::TopicName;

use crate::helpers::{
    V3, V5, V311, b, decode_err, decode_err_any_statement, decode_ok, pid, publish_with, s, topic,
    up, wire,
};

fn publish(packet: Packet) -> Publish {
    match packet {
        Packet::Publish(publish) => publish,
        other => panic!("not a PUBLISH: {other:?}"),
    }
}

/// MQTT 3.1.1 section 3.3 (3.1, 3.1.1): QoS 0, 1 and 2 PUBLISH with DUP and RETAIN decode; the
/// payload is whatever follows the variable header, possibly nothing.
#[test]
fn v311_3_3_publish_decodes() {
    let qos0 = wire![
        0x30, 0x0A, // PUBLISH, QoS 0, remaining length 10
        0x00, 0x03, "a/b",   // topic name
        "hello", // payload
    ];
    let qos1_retain = wire![
        0x33, 0x0C, // PUBLISH, QoS 1, RETAIN, remaining length 12
        0x00, 0x03, "a/b", // topic name
        0x00, 0x0A,    // packet id 10
        "hello", // payload
    ];
    let qos2_dup = wire![
        0x3C, 0x0C, // PUBLISH, DUP, QoS 2, remaining length 12
        0x00, 0x03, "a/b", // topic name
        0xFF, 0xFF,    // packet id 65535
        "hello", // payload
    ];
    let empty_payload = wire![
        0x31, 0x05, // PUBLISH, QoS 0, RETAIN, remaining length 5
        0x00, 0x03, "a/b", // topic name; no payload
    ];
    let slash = wire![
        0x30, 0x03, // PUBLISH, QoS 0, remaining length 3
        0x00, 0x01, "/", // topic name "/" (two empty levels)
    ];
    for version in V3 {
        assert_eq!(
            publish(decode_ok(version, &qos0)),
            Publish::new(topic("a/b"), "hello")
        );
        let expected = publish_with(
            topic("a/b"),
            "hello",
            QosPid::AtLeastOnce(pid(10)),
            false,
            true,
        );
        assert_eq!(publish(decode_ok(version, &qos1_retain)), expected);
        let expected = publish_with(
            topic("a/b"),
            "hello",
            QosPid::ExactlyOnce(pid(65535)),
            true,
            false,
        );
        assert_eq!(publish(decode_ok(version, &qos2_dup)), expected);
        let expected = publish_with(topic("a/b"), "", QosPid::AtMostOnce, false, true);
        assert_eq!(publish(decode_ok(version, &empty_payload)), expected);
        assert_eq!(
            publish(decode_ok(version, &slash)),
            Publish::new(topic("/"), "")
        );
    }
}

/// MQTT 5.0 section 3.3: PUBLISH with property length 0 (MQTT-2.2.2-1) decodes.
#[test]
fn v5_3_3_publish_decodes() {
    let qos0 = wire![
        0x30, 0x0B, // PUBLISH, QoS 0, remaining length 11
        0x00, 0x03, "a/b",   // topic name
        0x00,    // property length 0
        "hello", // payload
    ];
    assert_eq!(
        publish(decode_ok(V5, &qos0)),
        Publish::new(topic("a/b"), "hello")
    );
    let qos2_retain = wire![
        0x35, 0x0D, // PUBLISH, QoS 2, RETAIN, remaining length 13
        0x00, 0x03, "a/b", // topic name
        0x00, 0x07,    // packet id 7
        0x00,    // property length 0
        "hello", // payload
    ];
    let expected = publish_with(
        topic("a/b"),
        "hello",
        QosPid::ExactlyOnce(pid(7)),
        false,
        true,
    );
    assert_eq!(publish(decode_ok(V5, &qos2_retain)), expected);
}

/// MQTT-3.3.2-2 (3.1.1, 5.0; also 3.1): the topic name of a PUBLISH has no wildcard characters
/// (a Malformed Packet, 0x81: 0x90 is for correctly formed names the server refuses).
#[test]
fn mqtt_3_3_2_2_wildcard_in_topic_name_is_rejected() {
    for name in ["a/+", "+", "#", "a/#", "a+b", "sport/tennis#"] {
        let len = name.len() as u8;
        let v3 = wire![0x30, 2 + len, 0x00, len, name]; // PUBLISH QoS 0, topic `name`
        let v5 = wire![0x30, 3 + len, 0x00, len, name, 0x00]; // ... property length 0
        let wildcard = |e: &Error| {
            matches!(
                e,
                Error::InvalidTopicName {
                    field: "topic name",
                    source: mqtt_topic::Error::WildcardInTopicName { .. }
                }
            )
        };
        for version in V3 {
            decode_err(version, &v3, wildcard, Some("MQTT-3.3.2-2"), 0x81);
        }
        decode_err(V5, &v5, wildcard, Some("MQTT-3.3.2-2"), 0x81);
    }
}

/// MQTT-4.7.3-1 (3.1.1; also 3.1): a topic name is at least one character long.
#[test]
fn mqtt_4_7_3_1_v311_empty_topic_name_is_rejected() {
    let bytes = wire![
        0x30, 0x04, // PUBLISH QoS 0, remaining length 4
        0x00, 0x00, // topic name ""
        "hi", // payload
    ];
    for version in V3 {
        decode_err(
            version,
            &bytes,
            |e| {
                matches!(
                    e,
                    Error::InvalidTopicName {
                        source: mqtt_topic::Error::Empty,
                        ..
                    }
                )
            },
            Some("MQTT-4.7.3-1"),
            0x82,
        );
    }
}

/// MQTT 5.0 section 3.3.2.3.4 (and MQTT-4.7.3-1): a zero-length topic name without a Topic
/// Alias is a protocol error.
#[test]
fn v5_3_3_2_3_4_empty_topic_name_without_topic_alias_is_protocol_error() {
    let cases = [
        wire![
            0x30, 0x03, // PUBLISH QoS 0, remaining length 3
            0x00, 0x00, // topic name ""
            0x00, // property length 0
        ],
        wire![
            0x30, 0x05, // PUBLISH QoS 0, remaining length 5
            0x00, 0x00, // topic name ""
            0x02, 0x01, 0x01, // properties: Payload Format Indicator 1 (no alias)
        ],
    ];
    for bytes in &cases {
        decode_err(
            V5,
            bytes,
            |e| {
                matches!(
                    e,
                    Error::InvalidTopicName {
                        source: mqtt_topic::Error::Empty,
                        ..
                    }
                )
            },
            Some("MQTT-4.7.3-1"),
            0x82,
        );
    }
}

/// MQTT 5.0 section 3.3.2.3.4: a zero-length topic name with a Topic Alias is accepted (the
/// alias stands for the topic); it decodes as the empty `TopicName`.
#[test]
fn v5_3_3_2_3_4_empty_topic_name_with_topic_alias_is_accepted() {
    let bytes = wire![
        0x32, 0x0A, // PUBLISH QoS 1, remaining length 10
        0x00, 0x00, // topic name ""
        0x00, 0x01, // packet id 1
        0x03, // property length 3
        0x23, 0x00, 0x05, // Topic Alias 5
        "hi", // payload
    ];
    let decoded = publish(decode_ok(V5, &bytes));
    assert_eq!(decoded.topic, TopicName::empty());
    assert!(decoded.topic.is_empty());
    assert_eq!(decoded.qos, QosPid::AtLeastOnce(pid(1)));
    assert_eq!(decoded.properties().topic_alias.map(|a| a.get()), Some(5));
    assert_eq!(decoded.payload, b(b"hi"));
}

/// MQTT-3.3.2-14 (5.0): the Response Topic (of a PUBLISH or a will) is a topic name, so it has
/// no wildcard characters.
#[test]
fn mqtt_3_3_2_14_v5_response_topic_with_wildcard_is_rejected() {
    let in_publish = wire![
        0x30, 0x0A, // PUBLISH QoS 0, remaining length 10
        0x00, 0x01, "t",  // topic name "t"
        0x06, // property length 6
        0x08, 0x00, 0x03, "a/#", // Response Topic "a/#"
    ];
    let in_will = wire![
        0x10, 0x1A, // CONNECT, remaining length 26
        0x00, 0x04, "MQTT", // protocol name
        0x05,   // level 5
        0x06,   // flags: will, clean start
        0x00, 0x3C, // keep alive 60
        0x00, // property length 0
        0x00, 0x01, "c",  // client id "c"
        0x06, // will property length 6
        0x08, 0x00, 0x03, "r/+", // Response Topic "r/+"
        0x00, 0x01, "w", // will topic "w"
        0x00, 0x00, // will payload: empty
    ];
    for bytes in [&in_publish, &in_will] {
        decode_err(
            V5,
            bytes,
            |e| {
                matches!(
                    e,
                    Error::InvalidTopicName {
                        field: "Response Topic",
                        source: mqtt_topic::Error::WildcardInTopicName { .. }
                    }
                )
            },
            Some("MQTT-3.3.2-14"),
            0x81,
        );
    }
}

/// MQTT 3.1.1 sections 3.4 to 3.7 (3.1, 3.1.1): the four acknowledgements are a packet
/// identifier and nothing else.
#[test]
fn v311_3_4_to_3_7_pub_acks_decode() {
    for version in V3 {
        assert_eq!(
            decode_ok(version, &[0x40, 0x02, 0x00, 0x01]),
            Packet::PubAck(PubAck::new(pid(1)))
        );
        assert_eq!(
            decode_ok(version, &[0x50, 0x02, 0x01, 0x00]),
            Packet::PubRec(PubRec::new(pid(256)))
        );
        assert_eq!(
            decode_ok(version, &[0x62, 0x02, 0x12, 0x34]),
            Packet::PubRel(PubRel::new(pid(0x1234)))
        );
        assert_eq!(
            decode_ok(version, &[0x70, 0x02, 0xFF, 0xFF]),
            Packet::PubComp(PubComp::new(pid(65535)))
        );
    }
}

/// The same acknowledgement, as a `Packet`, for each type.
fn ack(first: u8, id: u16, reason_code: ReasonCode, properties: AckProperties) -> Packet {
    let packet_id = pid(id);
    match first {
        0x40 => Packet::PubAck(PubAck {
            packet_id,
            reason_code,
            properties,
        }),
        0x50 => Packet::PubRec(PubRec {
            packet_id,
            reason_code,
            properties,
        }),
        0x62 => Packet::PubRel(PubRel {
            packet_id,
            reason_code,
            properties,
        }),
        0x70 => Packet::PubComp(PubComp {
            packet_id,
            reason_code,
            properties,
        }),
        _ => unreachable!(),
    }
}

/// MQTT 5.0 sections 3.4.2.1 / 3.4.2.2.1 (and 3.5 to 3.7): PUBACK, PUBREC, PUBREL and PUBCOMP
/// may leave out the reason code (Remaining Length 2: Success) and the property length
/// (Remaining Length 3: no properties).
#[test]
fn v5_3_4_2_1_pub_ack_short_forms_decode() {
    // (first byte, a non-Success reason code the type allows)
    for (first, code) in [(0x40, 0x10), (0x50, 0x10), (0x62, 0x92), (0x70, 0x92)] {
        let reason = ReasonCode::from_u8(code).expect("defined");
        let none = AckProperties::default();
        // Remaining Length 2: packet id only, reason Success.
        let rl2 = wire![first, 0x02, 0x00, 0x01];
        assert_eq!(
            decode_ok(V5, &rl2),
            ack(first, 1, ReasonCode::Success, none.clone())
        );
        // Remaining Length 3: packet id and reason code, no property length.
        let rl3 = wire![first, 0x03, 0x00, 0x02, code];
        assert_eq!(decode_ok(V5, &rl3), ack(first, 2, reason, none.clone()));
        // Remaining Length 4: property length 0 written out.
        let rl4 = wire![first, 0x04, 0x00, 0x03, 0x00, 0x00];
        assert_eq!(
            decode_ok(V5, &rl4),
            ack(first, 3, ReasonCode::Success, none.clone())
        );
        // With properties: Reason String and a User Property.
        let full = wire![
            first, 0x11, // remaining length 17
            0x00, 0x04, // packet id 4
            code, // reason code
            0x0D, // property length 13
            0x1F, 0x00, 0x03, "bad", // Reason String "bad"
            0x26, 0x00, 0x01, "k", 0x00, 0x01, "v", // User Property k=v
        ];
        let properties = AckProperties {
            reason_string: Some(s("bad")),
            user_properties: vec![up("k", "v")],
        };
        assert_eq!(decode_ok(V5, &full), ack(first, 4, reason, properties));
    }
}

/// MQTT-3.4.2-1, MQTT-3.5.2-1, MQTT-3.6.2-1, MQTT-3.7.2-1 (5.0): every reason code of Tables 3-4
/// to 3-7 decodes in its packet.
#[test]
fn mqtt_3_4_2_1_to_3_7_2_1_v5_pub_ack_reason_codes_of_their_tables_decode() {
    let puback_pubrec: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
    let pubrel_pubcomp: &[u8] = &[0x00, 0x92];
    for (first, codes) in [
        (0x40, puback_pubrec),
        (0x50, puback_pubrec),
        (0x62, pubrel_pubcomp),
        (0x70, pubrel_pubcomp),
    ] {
        for &code in codes {
            let bytes = wire![first, 0x03, 0x00, 0x01, code]; // id 1, reason code `code`
            let reason = ReasonCode::from_u8(code).expect("defined");
            assert_eq!(
                decode_ok(V5, &bytes),
                ack(first, 1, reason, AckProperties::default())
            );
        }
    }
}

/// MQTT-3.6.2-1 (5.0): a PUBREL carries only 0x00 or 0x92.
#[test]
fn mqtt_3_6_2_1_v5_pubrel_reason_code_not_allowed_is_rejected() {
    for code in [0x91, 0x10, 0x80, 0x03, 0x01] {
        let bytes = wire![0x62, 0x03, 0x00, 0x01, code]; // PUBREL id 1, reason code `code`
        decode_err(
            V5,
            &bytes,
            |e| matches!(e, Error::InvalidReasonCode { packet: PacketType::PubRel, code: c } if *c == code),
            Some("MQTT-3.6.2-1"),
            0x81,
        );
    }
}

/// PUBACK, PUBREC and PUBCOMP reason codes outside their tables (and undefined ones).
fn bad_ack_codes() -> Vec<(PacketType, u8, &'static str)> {
    vec![
        (PacketType::PubAck, 0x92, "MQTT-3.4.2-1"),
        (PacketType::PubAck, 0x11, "MQTT-3.4.2-1"),
        (PacketType::PubAck, 0x03, "MQTT-3.4.2-1"),
        (PacketType::PubRec, 0x81, "MQTT-3.5.2-1"),
        (PacketType::PubRec, 0x92, "MQTT-3.5.2-1"),
        (PacketType::PubComp, 0x10, "MQTT-3.7.2-1"),
        (PacketType::PubComp, 0x80, "MQTT-3.7.2-1"),
    ]
}

/// MQTT-3.4.2-1, MQTT-3.5.2-1, MQTT-3.7.2-1 (5.0): PUBACK, PUBREC and PUBCOMP carry only the
/// reason codes of their tables.
#[test]
fn mqtt_3_4_2_1_mqtt_3_5_2_1_mqtt_3_7_2_1_v5_ack_reason_code_not_allowed_is_rejected() {
    for (packet, code, _) in bad_ack_codes() {
        let bytes = wire![(packet as u8) << 4, 0x03, 0x00, 0x01, code]; // id 1, reason `code`
        decode_err_any_statement(
            V5,
            &bytes,
            |e| matches!(e, Error::InvalidReasonCode { packet: p, code: c } if *p == packet && *c == code),
            0x81,
        );
    }
}

/// MQTT-3.4.2-1, MQTT-3.5.2-1, MQTT-3.7.2-1 (5.0): the error names the statement, as it does for
/// PUBREL (MQTT-3.6.2-1).
#[test]
fn mqtt_3_4_2_1_mqtt_3_5_2_1_mqtt_3_7_2_1_v5_ack_reason_code_error_names_its_statement() {
    for (packet, code, statement) in bad_ack_codes() {
        let bytes = wire![(packet as u8) << 4, 0x03, 0x00, 0x01, code]; // id 1, reason `code`
        decode_err(
            V5,
            &bytes,
            |e| matches!(e, Error::InvalidReasonCode { packet: p, code: c } if *p == packet && *c == code),
            Some(statement),
            0x81,
        );
    }
}

/// MQTT 3.1.1 (3.1.1): a 3.1.1 PUBLISH carries no properties: what a 5.0 decoder would read as
/// a property length is payload.
#[test]
fn v311_3_3_3_publish_has_no_properties() {
    let bytes = wire![
        0x30, 0x06, // PUBLISH QoS 0, remaining length 6
        0x00, 0x01, "t", // topic name "t"
        0x02, 0x01, 0x01, // payload (looks like PFI 1 to a 5.0 reader)
    ];
    let decoded = publish(decode_ok(V311, &bytes));
    assert_eq!(decoded.payload, b(&[0x02, 0x01, 0x01]));
    assert_eq!(decoded.properties(), &PublishProperties::default());
    let v5 = publish(decode_ok(V5, &bytes));
    assert!(v5.payload.is_empty());
    assert_eq!(
        v5.properties().payload_format_indicator,
        Some(mqtt_codec::PayloadFormat::Utf8)
    );
}
