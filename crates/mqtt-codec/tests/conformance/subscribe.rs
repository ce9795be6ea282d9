//! SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK (MQTT 3.1.1 sections 3.8 to 3.11, MQTT 5.0 sections
//! 3.8 to 3.11) and the topic filter rules (MQTT 3.1.1 section 4.7, MQTT 5.0 sections 4.7, 4.8.2).

use mqtt_codec::{
    AckProperties, Error, Packet, PacketType, ProtocolVersion, QoS, ReasonCode, RetainHandling,
    SubAck, Subscribe, SubscribeProperties, Subscription, SubscriptionId, SubscriptionOptions,
    UnsubAck, Unsubscribe, UnsubscribeProperties,
};

use crate::helpers::{
    V3, V5, V311, decode_err, decode_err_any_statement, decode_ok, filter, pid, s, up, wire,
};

fn subscribe(packet: Packet) -> Subscribe {
    match packet {
        Packet::Subscribe(subscribe) => subscribe,
        other => panic!("not a SUBSCRIBE: {other:?}"),
    }
}

/// A SUBSCRIBE (packet id 1) of one `filter_text` with options byte `options`.
fn subscribe_one(version: ProtocolVersion, filter_text: &str, options: u8) -> Vec<u8> {
    let len = filter_text.len() as u8;
    if version.is_v5() {
        wire![
            0x82,
            0x06 + len, // SUBSCRIBE, remaining length
            0x00,
            0x01, // packet id 1
            0x00, // property length 0
            0x00,
            len,
            filter_text, // topic filter
            options,     // subscription options
        ]
    } else {
        wire![
            0x82,
            0x05 + len, // SUBSCRIBE, remaining length
            0x00,
            0x01, // packet id 1
            0x00,
            len,
            filter_text, // topic filter
            options,     // requested QoS
        ]
    }
}

/// An UNSUBSCRIBE (packet id 1) of one `filter_text`.
fn unsubscribe_one(version: ProtocolVersion, filter_text: &str) -> Vec<u8> {
    let len = filter_text.len() as u8;
    if version.is_v5() {
        wire![
            0xA2,
            0x05 + len, // UNSUBSCRIBE, remaining length
            0x00,
            0x01, // packet id 1
            0x00, // property length 0
            0x00,
            len,
            filter_text, // topic filter
        ]
    } else {
        wire![
            0xA2,
            0x04 + len, // UNSUBSCRIBE, remaining length
            0x00,
            0x01, // packet id 1
            0x00,
            len,
            filter_text, // topic filter
        ]
    }
}

/// MQTT 3.1.1 section 3.8 (3.1, 3.1.1): a SUBSCRIBE with several filter / requested QoS pairs.
#[test]
fn v311_3_8_subscribe_decodes() {
    let bytes = wire![
        0x82, 0x12, // SUBSCRIBE, remaining length 18
        0x00, 0x0A, // packet id 10
        0x00, 0x03, "a/b", 0x00, // "a/b", QoS 0
        0x00, 0x03, "c/#", 0x01, // "c/#", QoS 1
        0x00, 0x01, "+", 0x02, // "+", QoS 2
    ];
    let expected = Subscribe {
        packet_id: pid(10),
        subscriptions: vec![
            Subscription {
                filter: filter("a/b"),
                options: SubscriptionOptions::new(QoS::AtMostOnce),
            },
            Subscription {
                filter: filter("c/#"),
                options: SubscriptionOptions::new(QoS::AtLeastOnce),
            },
            Subscription {
                filter: filter("+"),
                options: SubscriptionOptions::new(QoS::ExactlyOnce),
            },
        ],
        properties: SubscribeProperties::default(),
    };
    for version in V3 {
        assert_eq!(subscribe(decode_ok(version, &bytes)), expected);
    }
}

/// MQTT 5.0 sections 3.8.2 and 3.8.3.1: SUBSCRIBE properties and every subscription option
/// (maximum QoS, No Local, Retain As Published, Retain Handling), with a shared subscription.
#[test]
fn v5_3_8_subscribe_with_options_and_properties_decodes() {
    let bytes = wire![
        0x82,
        0x25, // SUBSCRIBE, remaining length 37
        0x00,
        0x0B, // packet id 11
        0x09, // property length 9
        0x0B,
        0x05, // Subscription Identifier 5
        0x26,
        0x00,
        0x01,
        "k",
        0x00,
        0x01,
        "v", // User Property k=v
        0x00,
        0x03,
        "a/b", // "a/b"
        0x2E,  // retain handling 2, RAP, no local, QoS 2
        0x00,
        0x0C,
        "$share/g/c/+", // shared subscription, share name "g"
        0x11,           // retain handling 1, QoS 1
        0x00,
        0x01,
        "d",  // "d"
        0x00, // all options 0
    ];
    let expected = Subscribe {
        packet_id: pid(11),
        subscriptions: vec![
            Subscription {
                filter: filter("a/b"),
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            },
            Subscription {
                filter: filter("$share/g/c/+"),
                options: SubscriptionOptions {
                    retain_handling: RetainHandling::SendAtSubscribeIfNew,
                    ..SubscriptionOptions::new(QoS::AtLeastOnce)
                },
            },
            Subscription {
                filter: filter("d"),
                options: SubscriptionOptions::new(QoS::AtMostOnce),
            },
        ],
        properties: SubscribeProperties {
            subscription_identifier: SubscriptionId::new(5),
            user_properties: vec![up("k", "v")],
        },
    };
    let decoded = subscribe(decode_ok(V5, &bytes));
    assert_eq!(decoded, expected);
    let shared = &decoded.subscriptions[1].filter;
    assert!(shared.is_shared());
    assert_eq!(shared.share_name(), Some("g"));
    assert_eq!(shared.filter(), "c/+");
}

/// MQTT-3.9.3-2 (3.1.1; also 3.1): SUBACK return codes 0x00, 0x01, 0x02 and 0x80 decode.
#[test]
fn mqtt_3_9_3_2_v311_suback_return_codes_decode() {
    let bytes = wire![
        0x90, 0x06, // SUBACK, remaining length 6
        0x00, 0x0A, // packet id 10
        0x00, 0x01, 0x02, 0x80, // granted QoS 0, 1, 2, failure
    ];
    let expected = SubAck::new(
        pid(10),
        vec![
            ReasonCode::Success,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::UnspecifiedError,
        ],
    );
    for version in V3 {
        assert_eq!(decode_ok(version, &bytes), Packet::SubAck(expected.clone()));
    }
}

/// MQTT-3.9.3-2 (5.0): every Subscribe Reason Code of Table 3-8 decodes; SUBACK properties too.
#[test]
fn mqtt_3_9_3_2_v5_suback_reason_codes_decode() {
    let bytes = wire![
        0x90, 0x1A, // SUBACK, remaining length 26
        0x00, 0x0B, // packet id 11
        0x0B, // property length 11
        0x1F, 0x00, 0x01, "r", // Reason String "r"
        0x26, 0x00, 0x01, "k", 0x00, 0x01, "v", // User Property k=v
        0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2, // Table 3-8
    ];
    let codes = [
        0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
    ];
    let expected = SubAck {
        packet_id: pid(11),
        reason_codes: codes
            .iter()
            .map(|&c| ReasonCode::from_u8(c).expect("defined"))
            .collect(),
        properties: AckProperties {
            reason_string: Some(s("r")),
            user_properties: vec![up("k", "v")],
        },
    };
    assert_eq!(decode_ok(V5, &bytes), Packet::SubAck(expected));
}

/// MQTT-3.9.3-2 (3.1.1; also 3.1): return codes other than 0x00, 0x01, 0x02 and 0x80 are
/// reserved.
#[test]
fn mqtt_3_9_3_2_v311_suback_reserved_return_code_is_rejected() {
    for version in V3 {
        for code in [0x03, 0x10, 0x81, 0xFF] {
            let bytes = wire![0x90, 0x03, 0x00, 0x01, code]; // SUBACK id 1, one code
            decode_err(
                version,
                &bytes,
                |e| matches!(e, Error::InvalidReasonCode { packet: PacketType::SubAck, code: c } if *c == code),
                Some("MQTT-3.9.3-2"),
                0x81,
            );
        }
    }
}

/// MQTT-3.9.3-2 (5.0): only the Subscribe Reason Codes of Table 3-8.
#[test]
fn mqtt_3_9_3_2_v5_suback_reason_code_not_allowed_is_rejected() {
    for code in [0x03, 0x10, 0x11, 0x81, 0x92] {
        let bytes = wire![
            0x90, 0x05, // SUBACK, remaining length 5
            0x00, 0x01, // packet id 1
            0x00, // property length 0
            0x00, code, // a valid code, then the one under test
        ];
        decode_err(
            V5,
            &bytes,
            |e| matches!(e, Error::InvalidReasonCode { packet: PacketType::SubAck, code: c } if *c == code),
            Some("MQTT-3.9.3-2"),
            0x81,
        );
    }
}

/// MQTT 3.1.1 section 3.10 (3.1, 3.1.1) and MQTT 5.0 section 3.10: UNSUBSCRIBE decodes.
#[test]
fn v5_3_10_unsubscribe_decodes() {
    let v3 = wire![
        0xA2, 0x0A, // UNSUBSCRIBE, remaining length 10
        0x00, 0x0C, // packet id 12
        0x00, 0x03, "a/b", // "a/b"
        0x00, 0x01, "#", // "#"
    ];
    let expected = Unsubscribe {
        packet_id: pid(12),
        filters: vec![filter("a/b"), filter("#")],
        properties: UnsubscribeProperties::default(),
    };
    for version in V3 {
        assert_eq!(
            decode_ok(version, &v3),
            Packet::Unsubscribe(expected.clone())
        );
    }
    let v5 = wire![
        0xA2, 0x0F, // UNSUBSCRIBE, remaining length 15
        0x00, 0x0C, // packet id 12
        0x07, // property length 7
        0x26, 0x00, 0x01, "k", 0x00, 0x01, "v", // User Property k=v
        0x00, 0x03, "a/+", // "a/+"
    ];
    let expected = Unsubscribe {
        packet_id: pid(12),
        filters: vec![filter("a/+")],
        properties: UnsubscribeProperties {
            user_properties: vec![up("k", "v")],
        },
    };
    assert_eq!(decode_ok(V5, &v5), Packet::Unsubscribe(expected));
}

/// MQTT 3.1.1 section 3.11 (packet id only) and MQTT-3.11.3-2 (5.0, Table 3-9): UNSUBACK.
#[test]
fn mqtt_3_11_3_2_unsuback_decodes() {
    for version in V3 {
        let bytes = wire![0xB0, 0x02, 0x00, 0x0C]; // UNSUBACK, packet id 12
        assert_eq!(
            decode_ok(version, &bytes),
            Packet::UnsubAck(UnsubAck::new(pid(12), vec![]))
        );
    }
    let bytes = wire![
        0xB0, 0x0E, // UNSUBACK, remaining length 14
        0x00, 0x0C, // packet id 12
        0x04, // property length 4
        0x1F, 0x00, 0x01, "x", // Reason String "x"
        0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91, // Table 3-9
    ];
    let codes = [0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
    let expected = UnsubAck {
        packet_id: pid(12),
        reason_codes: codes
            .iter()
            .map(|&c| ReasonCode::from_u8(c).expect("defined"))
            .collect(),
        properties: AckProperties {
            reason_string: Some(s("x")),
            user_properties: vec![],
        },
    };
    assert_eq!(decode_ok(V5, &bytes), Packet::UnsubAck(expected));
}

/// MQTT-3.11.3-2 (5.0): only the Unsubscribe Reason Codes of Table 3-9.
#[test]
fn mqtt_3_11_3_2_v5_unsuback_reason_code_not_allowed_is_rejected() {
    for code in [0x01, 0x02, 0x10, 0x92, 0x03, 0x97] {
        let bytes = wire![0xB0, 0x04, 0x00, 0x01, 0x00, code]; // id 1, no properties, one code
        decode_err(
            V5,
            &bytes,
            |e| matches!(e, Error::InvalidReasonCode { packet: PacketType::UnsubAck, code: c } if *c == code),
            Some("MQTT-3.11.3-2"),
            0x81,
        );
    }
}

/// MQTT-3.8.3-3 (3.1.1; also 3.1): a SUBSCRIBE has at least one filter / QoS pair.
#[test]
fn mqtt_3_8_3_3_v311_subscribe_without_filters_is_rejected() {
    for version in V3 {
        let bytes = wire![0x82, 0x02, 0x00, 0x01]; // SUBSCRIBE, packet id 1, no payload
        decode_err(
            version,
            &bytes,
            |e| {
                matches!(
                    e,
                    Error::NoTopicFilters {
                        packet: PacketType::Subscribe
                    }
                )
            },
            Some("MQTT-3.8.3-3"),
            0x82,
        );
    }
}

/// MQTT-3.8.3-2 (5.0): a SUBSCRIBE without payload is a protocol error.
#[test]
fn mqtt_3_8_3_2_v5_subscribe_without_filters_is_protocol_error() {
    let cases = [
        wire![0x82, 0x03, 0x00, 0x01, 0x00], // packet id 1, property length 0, no payload
        wire![0x82, 0x05, 0x00, 0x01, 0x02, 0x0B, 0x01], // ... Subscription Identifier 1 only
    ];
    for bytes in &cases {
        decode_err(
            V5,
            bytes,
            |e| {
                matches!(
                    e,
                    Error::NoTopicFilters {
                        packet: PacketType::Subscribe
                    }
                )
            },
            Some("MQTT-3.8.3-2"),
            0x82,
        );
    }
}

/// MQTT-3.10.3-2 (3.1.1, 5.0; also 3.1): an UNSUBSCRIBE has at least one filter.
#[test]
fn mqtt_3_10_3_2_unsubscribe_without_filters_is_rejected() {
    let v3 = wire![0xA2, 0x02, 0x00, 0x01]; // UNSUBSCRIBE, packet id 1, no payload
    let v5 = wire![0xA2, 0x03, 0x00, 0x01, 0x00]; // ... property length 0
    let none = |e: &Error| {
        matches!(
            e,
            Error::NoTopicFilters {
                packet: PacketType::Unsubscribe
            }
        )
    };
    for version in V3 {
        decode_err(version, &v3, none, Some("MQTT-3.10.3-2"), 0x82);
    }
    decode_err(V5, &v5, none, Some("MQTT-3.10.3-2"), 0x82);
}

/// MQTT-3-8.3-4 (3.1.1, printed so in the standard; intended MQTT-3.8.3-4; also 3.1): the upper
/// six bits of the requested QoS byte are reserved; set, the SUBSCRIBE is malformed.
#[test]
fn mqtt_3_8_3_4_v311_reserved_subscription_option_bits_are_malformed() {
    for version in V3 {
        for options in [0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFC, 0x05] {
            let bytes = subscribe_one(version, "a", options);
            decode_err(
                version,
                &bytes,
                |e| matches!(e, Error::ReservedSubscriptionOptions { options: o } if *o == options),
                Some("MQTT-3-8.3-4"),
                0x81,
            );
        }
    }
}

/// MQTT-3-8.3-4 (3.1.1, printed so in the standard; also 3.1): a requested QoS that is not 0,
/// 1 or 2 makes the SUBSCRIBE malformed.
#[test]
fn mqtt_3_8_3_4_v311_subscribe_qos_3_is_malformed() {
    for version in V3 {
        let bytes = subscribe_one(version, "a", 0x03);
        decode_err(
            version,
            &bytes,
            |e| {
                matches!(
                    e,
                    Error::InvalidQoS {
                        packet: PacketType::Subscribe
                    }
                )
            },
            Some("MQTT-3-8.3-4"),
            // `reason_code()` is the 5.0 code for the same fault (a Protocol Error there,
            // section 3.8.3.1); 3.x has no reason codes and just closes the connection.
            0x82,
        );
    }
}

/// MQTT-3.8.3-5 (5.0): bits 6 and 7 of the subscription options are reserved; set, the
/// SUBSCRIBE is malformed.
#[test]
fn mqtt_3_8_3_5_v5_reserved_subscription_option_bits_are_malformed() {
    for options in [0x40, 0x80, 0xC0, 0x41] {
        let bytes = subscribe_one(V5, "a", options);
        decode_err(
            V5,
            &bytes,
            |e| matches!(e, Error::ReservedSubscriptionOptions { options: o } if *o == options),
            Some("MQTT-3.8.3-5"),
            0x81,
        );
    }
}

/// MQTT 5.0 section 3.8.3.1: maximum QoS 3 in the subscription options is refused.
#[test]
fn v5_3_8_3_1_subscribe_maximum_qos_3_is_rejected() {
    let bytes = subscribe_one(V5, "a", 0x03);
    let err = mqtt_codec::Decoder::new(V5)
        .decode(&mut bytes::BytesMut::from(&bytes[..]))
        .expect_err("QoS 3");
    assert!(
        matches!(
            err,
            Error::InvalidQoS {
                packet: PacketType::Subscribe
            }
        ),
        "{err:?}"
    );
}

/// MQTT 5.0 section 3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3"
/// (0x82, not 0x81).
#[test]
fn v5_3_8_3_1_subscribe_maximum_qos_3_is_protocol_error() {
    let bytes = subscribe_one(V5, "a", 0x03);
    decode_err(
        V5,
        &bytes,
        |e| {
            matches!(
                e,
                Error::InvalidQoS {
                    packet: PacketType::Subscribe
                }
            )
        },
        None,
        0x82,
    );
}

/// MQTT 5.0 section 3.8.3.1: Retain Handling 3 is a protocol error.
#[test]
fn v5_3_8_3_1_retain_handling_3_is_protocol_error() {
    for options in [0x30, 0x31, 0x3E] {
        let bytes = subscribe_one(V5, "a", options);
        decode_err(
            V5,
            &bytes,
            |e| matches!(e, Error::InvalidRetainHandling),
            None,
            0x82,
        );
    }
}

/// MQTT-3.8.3-4 (5.0): No Local on a shared subscription is a protocol error.
#[test]
fn mqtt_3_8_3_4_v5_no_local_on_shared_subscription_is_protocol_error() {
    for options in [0x04, 0x05, 0x2E] {
        let bytes = subscribe_one(V5, "$share/g/a", options);
        decode_err(
            V5,
            &bytes,
            |e| matches!(e, Error::NoLocalOnSharedSubscription),
            Some("MQTT-3.8.3-4"),
            0x82,
        );
    }
}

/// Filters breaking the wildcard rules, with the wildcard at fault.
const INVALID_FILTERS: [(&str, char); 9] = [
    ("a/#/b", '#'),
    ("#/a", '#'),
    ("a#", '#'),
    ("a/b#", '#'),
    ("sport/tennis#", '#'),
    ("a+", '+'),
    ("a/+b", '+'),
    ("+a/b", '+'),
    ("sport+", '+'),
];

/// MQTT-4.7.1-2 / MQTT-4.7.1-3 (3.1.1; also 3.1) and MQTT-4.7.1-1 / MQTT-4.7.1-2 (5.0): `#` is
/// alone or after `/`, and last; `+` takes a whole level. Invalid filters in SUBSCRIBE and
/// UNSUBSCRIBE are refused (a Malformed Packet, 0x81: 0x8F is for correctly formed filters the server refuses).
#[test]
fn mqtt_4_7_1_2_mqtt_4_7_1_3_invalid_wildcards_in_topic_filters_are_rejected() {
    for version in ProtocolVersion::ALL {
        for (text, wildcard) in INVALID_FILTERS {
            let statement = match (version.is_v5(), wildcard) {
                (false, '#') => "MQTT-4.7.1-2",
                (false, _) => "MQTT-4.7.1-3",
                (true, '#') => "MQTT-4.7.1-1",
                (true, _) => "MQTT-4.7.1-2",
            };
            let invalid = |e: &Error| {
                matches!(
                    e,
                    Error::InvalidTopicFilter { source: mqtt_topic::Error::InvalidWildcard { wildcard: w, .. } }
                        if *w == wildcard
                )
            };
            decode_err(
                version,
                &subscribe_one(version, text, 0x00),
                invalid,
                Some(statement),
                0x81,
            );
            decode_err(
                version,
                &unsubscribe_one(version, text),
                invalid,
                Some(statement),
                0x81,
            );
        }
    }
}

/// MQTT-4.7.3-1 (3.1.1, 5.0; also 3.1): a topic filter is at least one character long.
#[test]
fn mqtt_4_7_3_1_empty_topic_filter_is_rejected() {
    for version in ProtocolVersion::ALL {
        let empty = |e: &Error| {
            matches!(
                e,
                Error::InvalidTopicFilter {
                    source: mqtt_topic::Error::Empty
                }
            )
        };
        decode_err(
            version,
            &subscribe_one(version, "", 0x00),
            empty,
            Some("MQTT-4.7.3-1"),
            0x81,
        );
        decode_err(
            version,
            &unsubscribe_one(version, ""),
            empty,
            Some("MQTT-4.7.3-1"),
            0x81,
        );
    }
}

/// MQTT-4.7.1-2, MQTT-4.7.1-3 (3.1.1) / MQTT-4.7.1-1, MQTT-4.7.1-2 (5.0): the valid uses of the
/// wildcards, and topics starting with `$` or with empty levels, are accepted.
#[test]
fn mqtt_4_7_1_2_mqtt_4_7_1_3_valid_topic_filters_are_accepted() {
    for version in ProtocolVersion::ALL {
        for text in [
            "#",
            "+",
            "+/+",
            "/+",
            "a//b",
            "sport/+/player1",
            "sport/tennis/#",
            "+/tennis/#",
            "$SYS/#",
            "/",
        ] {
            let Packet::Subscribe(sub) = decode_ok(version, &subscribe_one(version, text, 0x01))
            else {
                panic!("not a SUBSCRIBE");
            };
            assert_eq!(sub.subscriptions[0].filter, text);
            let Packet::Unsubscribe(unsub) = decode_ok(version, &unsubscribe_one(version, text))
            else {
                panic!("not an UNSUBSCRIBE");
            };
            assert_eq!(unsub.filters[0], text);
        }
    }
}

/// Share-name errors of MQTT 5.0 section 4.8.2, with the statement each breaks.
fn share_name_errors() -> [(&'static str, &'static str); 5] {
    [
        ("$share//a", "MQTT-4.8.2-1"),   // empty share name
        ("$share/a+/x", "MQTT-4.8.2-2"), // '+' in the share name
        ("$share/a#/x", "MQTT-4.8.2-2"), // '#' in the share name
        ("$share/g", "MQTT-4.8.2-2"),    // no '/' and filter after the share name
        ("$share/", "MQTT-4.8.2-1"),     // nothing at all
    ]
}

/// MQTT-4.8.2-1, MQTT-4.8.2-2 (5.0): a shared subscription is `$share/{ShareName}/{filter}`
/// with a non-empty share name free of `/`, `+` and `#`, and a non-empty valid filter; anything
/// else is refused (0x81).
#[test]
fn mqtt_4_8_2_1_mqtt_4_8_2_2_v5_invalid_shared_subscriptions_are_rejected() {
    for (text, _) in share_name_errors() {
        let share_name = |e: &Error| {
            matches!(
                e,
                Error::InvalidTopicFilter {
                    source: mqtt_topic::Error::InvalidShareName | mqtt_topic::Error::EmptyShareName
                }
            )
        };
        decode_err_any_statement(V5, &subscribe_one(V5, text, 0x00), share_name, 0x81);
        decode_err_any_statement(V5, &unsubscribe_one(V5, text), share_name, 0x81);
    }
    let empty_filter = |e: &Error| {
        matches!(
            e,
            Error::InvalidTopicFilter {
                source: mqtt_topic::Error::EmptySharedFilter
            }
        )
    };
    decode_err(
        V5,
        &subscribe_one(V5, "$share/g/", 0x00),
        empty_filter,
        Some("MQTT-4.7.3-1"),
        0x81,
    );
    let wildcard = |e: &Error| {
        matches!(
            e,
            Error::InvalidTopicFilter {
                source: mqtt_topic::Error::InvalidWildcard { .. }
            }
        )
    };
    decode_err(
        V5,
        &subscribe_one(V5, "$share/g/a#", 0x00),
        wildcard,
        Some("MQTT-4.7.1-1"),
        0x81,
    );
}

/// MQTT-4.8.2-1, MQTT-4.8.2-2 (5.0): the share-name errors name their statements.
#[test]
fn mqtt_4_8_2_1_mqtt_4_8_2_2_v5_share_name_errors_name_their_statements() {
    for (text, statement) in share_name_errors() {
        decode_err(
            V5,
            &subscribe_one(V5, text, 0x00),
            |e| matches!(e, Error::InvalidTopicFilter { .. }),
            Some(statement),
            0x81,
        );
    }
}

/// Deliberate (docs/adr/0001-codec-packet-model.md): 3.1.1 has no shared subscriptions, but
/// like the brokers our users come from we let 3.1.1 clients join shared groups with a valid
/// `$share/{ShareName}/{filter}`. Anything else starting with `$share/` stays what 3.1.1 says
/// it is, a plain filter (MQTT-4.7.1-2, MQTT-4.7.1-3, MQTT-4.7.3-1 are all it must meet).
#[test]
fn adr_0001_v311_share_prefix_is_shared_only_when_well_formed() {
    for text in [
        "$share//a",
        "$share/g",
        "$share/",
        "$share/#",
        "$share/+/x",
        "$share/g/",
    ] {
        let Packet::Subscribe(sub) = decode_ok(V311, &subscribe_one(V311, text, 0x00)) else {
            panic!("not a SUBSCRIBE");
        };
        let filter = &sub.subscriptions[0].filter;
        assert_eq!(filter.as_str(), text);
        assert!(!filter.is_shared(), "{text} is a plain filter in 3.1.1");
        assert!(matches!(
            decode_ok(V311, &unsubscribe_one(V311, text)),
            Packet::Unsubscribe(_)
        ));
    }
    // Invalid as a plain filter too: refused.
    decode_err(
        V311,
        &subscribe_one(V311, "$share/a+/x", 0x00),
        |e| matches!(e, Error::InvalidTopicFilter { .. }),
        Some("MQTT-4.7.1-3"),
        0x81,
    );
    // A valid shared subscription decodes as one.
    let Packet::Subscribe(sub) = decode_ok(V311, &subscribe_one(V311, "$share/g/a/+", 0x01)) else {
        panic!("not a SUBSCRIBE");
    };
    assert_eq!(sub.subscriptions[0].filter.share_name(), Some("g"));
}

/// MQTT-3.9.3-2, MQTT-3.11.3-2 (5.0): SUBACK and UNSUBACK carry one reason code per filter of
/// the request, which has at least one, so an acknowledgement without codes is a Protocol
/// Error; 3.x SUBACK likewise (3.x UNSUBACK has no payload).
#[test]
fn mqtt_3_9_3_2_mqtt_3_11_3_2_acknowledgement_without_reason_codes_is_refused() {
    for version in [V311, V5] {
        let suback = if version.is_v5() {
            wire![0x90, 0x03, 0x00, 0x01, 0x00] // packet id 1, property length 0
        } else {
            wire![0x90, 0x02, 0x00, 0x01] // packet id 1
        };
        decode_err_any_statement(
            version,
            &suback,
            |e| {
                matches!(
                    e,
                    Error::NoReasonCodes {
                        packet: PacketType::SubAck
                    }
                )
            },
            0x82,
        );
    }
    decode_err(
        V5,
        &wire![0xB0, 0x03, 0x00, 0x01, 0x00],
        |e| {
            matches!(
                e,
                Error::NoReasonCodes {
                    packet: PacketType::UnsubAck
                }
            )
        },
        Some("MQTT-3.11.3-2"),
        0x82,
    );
    let mut buf = bytes::BytesMut::new();
    let empty = Packet::SubAck(SubAck::new(pid(1), Vec::new()));
    assert!(matches!(
        empty.encode(ProtocolVersion::V3_1_1, 1024, &mut buf),
        Err(Error::NoReasonCodes { .. })
    ));
    // A code SUBACK does not have is refused in 3.x too, rather than quietly sent as 0x80.
    let wrong = Packet::SubAck(SubAck::new(pid(1), vec![ReasonCode::NoMatchingSubscribers]));
    assert!(matches!(
        wrong.encode(ProtocolVersion::V3_1_1, 1024, &mut buf),
        Err(Error::InvalidReasonCode { .. })
    ));
    assert!(buf.is_empty());
}
