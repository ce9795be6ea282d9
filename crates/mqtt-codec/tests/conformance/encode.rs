//! The encoder against hand-written bytes: exact encodings (including the 5.0 short forms),
//! `encoded_len`, the size limit, fields too long, packets a version does not have, and the
//! 5.0-only fields left out for 3.x.

use std::num::NonZeroU16;

use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Disconnect, DisconnectProperties, Error, PROTOCOL_MAX_PACKET_SIZE, Packet, PacketType,
    ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, PublishProperties, QoS, QosPid,
    ReasonCode, RetainHandling, Secret, SubAck, Subscribe, SubscribeProperties, Subscription,
    SubscriptionId, SubscriptionOptions, TopicName, UnsubAck, Unsubscribe, UnsubscribeProperties,
    Will, WillProperties,
};

use crate::helpers::{
    V3, V5, V31, V311, b, decode_ok, filter, pid, publish_with, s, topic, up, wire,
};

/// Encodes `packet` for `version` into a buffer already holding some bytes, and checks it
/// appends exactly `expected`, returns its length, and agrees with `encoded_len`; then checks
/// the hand-written bytes decode back to the same packet.
#[track_caller]
fn assert_encodes(version: ProtocolVersion, packet: &Packet, expected: &[u8]) {
    let mut buf = BytesMut::from(&[0xAA, 0xBB][..]);
    let written = packet
        .encode(version, PROTOCOL_MAX_PACKET_SIZE, &mut buf)
        .unwrap_or_else(|e| panic!("{version}: encoding {packet:?}: {e:?}"));
    assert_eq!(
        &buf[..2],
        &[0xAA, 0xBB],
        "{version}: bytes before the packet changed"
    );
    assert_eq!(&buf[2..], expected, "{version}: encoding of {packet:?}");
    assert_eq!(written, expected.len(), "{version}: returned length");
    assert_eq!(
        packet.encoded_len(version).expect("encoded_len"),
        written,
        "{version}: encoded_len"
    );
}

/// As [`assert_encodes`], and the hand-written bytes decode to `packet`.
#[track_caller]
fn assert_round_trip(version: ProtocolVersion, packet: &Packet, expected: &[u8]) {
    assert_encodes(version, packet, expected);
    assert_eq!(
        &decode_ok(version, expected),
        packet,
        "{version}: decoding {expected:02X?}"
    );
}

/// Encoding `packet` fails as `expected` says, and the buffer is left exactly as it was.
#[track_caller]
fn assert_encode_fails(
    version: ProtocolVersion,
    packet: &Packet,
    max: u32,
    expected: impl Fn(&Error) -> bool,
) -> Error {
    let mut buf = BytesMut::from(&[0xAA, 0xBB][..]);
    let err = packet
        .encode(version, max, &mut buf)
        .expect_err("must not encode");
    assert!(expected(&err), "{version}: unexpected error {err:?}");
    assert_eq!(&buf[..], &[0xAA, 0xBB], "{version}: something was written");
    err
}

/// MQTT 3.1 / 3.1.1 section 3.1: CONNECT encodes as the standard lays it out.
#[test]
fn v311_3_1_v5_3_1_encode_connect_exact_bytes() {
    let v311 = Packet::Connect(Box::new(Connect::new(V311, s("c"))));
    let v311_bytes = wire![
        0x10, 0x0D, // CONNECT, remaining length 13
        0x00, 0x04, "MQTT", 0x04, // protocol name, level 4
        0x02, // flags: clean session
        0x00, 0x3C, // keep alive 60
        0x00, 0x01, "c", // client id
    ];
    assert_round_trip(V311, &v311, &v311_bytes);

    let v31 = Packet::Connect(Box::new(Connect {
        protocol: V31,
        clean_start: true,
        keep_alive: 10,
        client_id: s("cid"),
        will: Some(Will {
            qos: QoS::AtLeastOnce,
            ..Will::new(topic("w/t"), b(b"by"))
        }),
        username: Some(s("user")),
        password: Some(Secret::from(&b"pass"[..])),
        properties: ConnectProperties::default(),
    }));
    let v31_bytes = wire![
        0x10, 0x26, // CONNECT, remaining length 38
        0x00, 0x06, "MQIsdp", 0x03, // protocol name, level 3
        0xCE, // flags: user name, password, will QoS 1, will, clean session
        0x00, 0x0A, // keep alive 10
        0x00, 0x03, "cid", // client id
        0x00, 0x03, "w/t", // will topic
        0x00, 0x02, "by", // will message
        0x00, 0x04, "user", // user name
        0x00, 0x04, "pass", // password
    ];
    // CONNECT is written in its own version, whatever the encoder is told.
    for version in ProtocolVersion::ALL {
        assert_encodes(version, &v31, &v31_bytes);
    }
    assert_eq!(decode_ok(V31, &v31_bytes), v31);

    let v5 = Packet::Connect(Box::new(Connect {
        properties: ConnectProperties {
            session_expiry_interval: Some(3600),
            ..ConnectProperties::default()
        },
        will: Some(Will {
            retain: true,
            properties: WillProperties {
                user_properties: vec![up("a", "1"), up("a", "0")],
                ..WillProperties::default()
            },
            ..Will::new(topic("w"), b(b""))
        }),
        ..Connect::new(V5, s("c"))
    }));
    let v5_bytes = wire![
        0x10, 0x27, // CONNECT, remaining length 39
        0x00, 0x04, "MQTT", 0x05, // protocol name, level 5
        0x26, // flags: will retain, will (QoS 0), clean start
        0x00, 0x3C, // keep alive 60
        0x05, // property length 5
        0x11, 0x00, 0x00, 0x0E, 0x10, // Session Expiry Interval 3600
        0x00, 0x01, "c",  // client id
        0x0E, // will property length 14
        0x26, 0x00, 0x01, "a", 0x00, 0x01, "1", // User Property a=1
        0x26, 0x00, 0x01, "a", 0x00, 0x01, "0", // User Property a=0, order kept
        0x00, 0x01, "w", // will topic
        0x00, 0x00, // will payload: empty
    ];
    assert_round_trip(V5, &v5, &v5_bytes);
}

/// CONNACK in 3.1.1 and 5.0.
#[test]
fn v311_3_2_v5_3_2_encode_connack_exact_bytes() {
    let present = Packet::ConnAck(Box::new(ConnAck {
        session_present: true,
        ..ConnAck::new(ReasonCode::Success)
    }));
    assert_round_trip(V311, &present, &[0x20, 0x02, 0x01, 0x00]);
    assert_round_trip(V5, &present, &[0x20, 0x03, 0x01, 0x00, 0x00]); // property length 0
    let refused = Packet::ConnAck(Box::new(ConnAck {
        properties: ConnAckProperties {
            reason_string: Some(s("no")),
            ..ConnAckProperties::default()
        },
        ..ConnAck::new(ReasonCode::NotAuthorized)
    }));
    let bytes = wire![
        0x20, 0x08, // CONNACK, remaining length 8
        0x00, 0x87, // no session, Not authorized
        0x05, // property length 5
        0x1F, 0x00, 0x02, "no", // Reason String
    ];
    assert_round_trip(V5, &refused, &bytes);
}

/// PUBLISH in 3.1.1 and 5.0, including a zero-length topic name with a Topic Alias.
#[test]
fn v5_3_3_encode_publish_exact_bytes() {
    let qos1 = Packet::Publish(publish_with(
        topic("a/b"),
        "hello",
        QosPid::AtLeastOnce(pid(10)),
        false,
        true,
    ));
    let bytes = wire![
        0x33, 0x0C, // PUBLISH QoS 1 RETAIN, remaining length 12
        0x00, 0x03, "a/b", // topic name
        0x00, 0x0A,    // packet id 10
        "hello", // payload
    ];
    for version in V3 {
        assert_round_trip(version, &qos1, &bytes);
    }
    let bytes = wire![
        0x33, 0x0D, // PUBLISH QoS 1 RETAIN, remaining length 13
        0x00, 0x03, "a/b", // topic name
        0x00, 0x0A,    // packet id 10
        0x00,    // property length 0
        "hello", // payload
    ];
    assert_round_trip(V5, &qos1, &bytes);

    let aliased = Packet::Publish(Publish::new(TopicName::empty(), "hi").with_properties(
        PublishProperties {
            topic_alias: NonZeroU16::new(7),
            ..PublishProperties::default()
        },
    ));
    let bytes = wire![
        0x30, 0x08, // PUBLISH QoS 0, remaining length 8
        0x00, 0x00, // topic name ""
        0x03, 0x23, 0x00, 0x07, // property length 3: Topic Alias 7
        "hi", // payload
    ];
    assert_round_trip(V5, &aliased, &bytes);
    let dup_qos2 = Packet::Publish(publish_with(
        topic("t"),
        Bytes::new(),
        QosPid::ExactlyOnce(pid(1)),
        true,
        false,
    ));
    assert_round_trip(
        V5,
        &dup_qos2,
        &[0x3C, 0x06, 0x00, 0x01, b't', 0x00, 0x01, 0x00],
    );
}

/// MQTT 5.0 sections 3.4.2.1 to 3.7.2.1: the encoder uses the short forms (Remaining Length 2
/// for Success without properties, 3 for a reason code without properties).
#[test]
fn v5_3_4_2_1_encode_pub_ack_short_forms() {
    let acks = |reason_code: ReasonCode, properties: AckProperties| {
        let packet_id = pid(1);
        [
            Packet::PubAck(PubAck {
                packet_id,
                reason_code,
                properties: properties.clone(),
            }),
            Packet::PubRec(PubRec {
                packet_id,
                reason_code,
                properties: properties.clone(),
            }),
            Packet::PubRel(PubRel {
                packet_id,
                reason_code,
                properties: properties.clone(),
            }),
            Packet::PubComp(PubComp {
                packet_id,
                reason_code,
                properties,
            }),
        ]
    };
    let firsts = [0x40, 0x50, 0x62, 0x70];
    for (packet, first) in acks(ReasonCode::Success, AckProperties::default())
        .iter()
        .zip(firsts)
    {
        assert_round_trip(V5, packet, &[first, 0x02, 0x00, 0x01]); // packet id only
        assert_round_trip(V311, packet, &[first, 0x02, 0x00, 0x01]);
    }
    let with_string = AckProperties {
        reason_string: Some(s("x")),
        ..AckProperties::default()
    };
    for (packet, first) in acks(ReasonCode::Success, with_string).iter().zip(firsts) {
        let bytes = wire![
            first, 0x08, // remaining length 8
            0x00, 0x01, // packet id 1
            0x00, // Success, written because properties follow
            0x04, 0x1F, 0x00, 0x01, "x", // property length 4: Reason String "x"
        ];
        assert_round_trip(V5, packet, &bytes);
    }
    let puback = Packet::PubAck(PubAck {
        reason_code: ReasonCode::NoMatchingSubscribers,
        ..PubAck::new(pid(1))
    });
    assert_round_trip(V5, &puback, &[0x40, 0x03, 0x00, 0x01, 0x10]); // no property length
    let pubrel = Packet::PubRel(PubRel {
        reason_code: ReasonCode::PacketIdentifierNotFound,
        ..PubRel::new(pid(1))
    });
    assert_round_trip(V5, &pubrel, &[0x62, 0x03, 0x00, 0x01, 0x92]);
}

/// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK in 3.1.1 and 5.0.
#[test]
fn v5_3_8_to_3_11_encode_subscribe_and_acks_exact_bytes() {
    let v311_subscribe = Packet::Subscribe(Subscribe::new(pid(1), filter("a/+"), QoS::AtLeastOnce));
    assert_round_trip(
        V311,
        &v311_subscribe,
        &wire![0x82, 0x08, 0x00, 0x01, 0x00, 0x03, "a/+", 0x01],
    );

    let v5_subscribe = Packet::Subscribe(Subscribe {
        packet_id: pid(2),
        subscriptions: vec![Subscription {
            filter: filter("a"),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
            },
        }],
        properties: SubscribeProperties {
            subscription_identifier: SubscriptionId::new(5),
            user_properties: vec![],
        },
    });
    let bytes = wire![
        0x82, 0x09, // SUBSCRIBE, remaining length 9
        0x00, 0x02, // packet id 2
        0x02, 0x0B, 0x05, // property length 2: Subscription Identifier 5
        0x00, 0x01, "a",  // topic filter
        0x2D, // retain handling 2, RAP, no local, QoS 1
    ];
    assert_round_trip(V5, &v5_subscribe, &bytes);

    let suback = Packet::SubAck(SubAck::new(
        pid(1),
        vec![ReasonCode::GrantedQoS1, ReasonCode::UnspecifiedError],
    ));
    assert_round_trip(V311, &suback, &[0x90, 0x04, 0x00, 0x01, 0x01, 0x80]);
    assert_round_trip(V5, &suback, &[0x90, 0x05, 0x00, 0x01, 0x00, 0x01, 0x80]);

    let unsubscribe = Packet::Unsubscribe(Unsubscribe::new(pid(1), filter("#")));
    assert_round_trip(
        V311,
        &unsubscribe,
        &wire![0xA2, 0x05, 0x00, 0x01, 0x00, 0x01, "#"],
    );
    assert_round_trip(
        V5,
        &unsubscribe,
        &wire![0xA2, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, "#"],
    );

    let unsuback = Packet::UnsubAck(UnsubAck::new(
        pid(1),
        vec![ReasonCode::NoSubscriptionExisted],
    ));
    assert_encodes(V311, &unsuback, &[0xB0, 0x02, 0x00, 0x01]); // 3.1.1 has no codes
    assert_round_trip(V5, &unsuback, &[0xB0, 0x04, 0x00, 0x01, 0x00, 0x11]);
}

/// PINGREQ, PINGRESP, DISCONNECT (5.0 short forms: Remaining Length 0 and 1) and AUTH
/// (Remaining Length 0 for Success without properties).
#[test]
fn v5_3_14_2_v5_3_15_2_encode_ping_disconnect_auth_short_forms() {
    for version in ProtocolVersion::ALL {
        assert_round_trip(version, &Packet::PingReq, &[0xC0, 0x00]);
        assert_round_trip(version, &Packet::PingResp, &[0xD0, 0x00]);
        assert_round_trip(
            version,
            &Packet::from(Disconnect::new(ReasonCode::Success)),
            &[0xE0, 0x00],
        );
    }
    let will = Packet::from(Disconnect::new(ReasonCode::DisconnectWithWillMessage));
    assert_round_trip(V5, &will, &[0xE0, 0x01, 0x04]);
    let expiry = Packet::from(Disconnect {
        reason_code: ReasonCode::Success,
        properties: DisconnectProperties {
            session_expiry_interval: Some(60),
            ..DisconnectProperties::default()
        },
    });
    let bytes = wire![
        0xE0, 0x07, // DISCONNECT, remaining length 7
        0x00, // Normal disconnection
        0x05, 0x11, 0x00, 0x00, 0x00, 0x3C, // property length 5: Session Expiry Interval 60
    ];
    assert_round_trip(V5, &expiry, &bytes);

    assert_round_trip(
        V5,
        &Packet::from(Auth::new(ReasonCode::Success)),
        &[0xF0, 0x00],
    );
    let method = Packet::from(Auth {
        reason_code: ReasonCode::ReAuthenticate,
        properties: AuthProperties {
            authentication_method: Some(s("M")),
            ..AuthProperties::default()
        },
    });
    assert_round_trip(
        V5,
        &method,
        &wire![0xF0, 0x06, 0x19, 0x04, 0x15, 0x00, 0x01, "M"],
    );
}

/// Encoding for 3.x leaves out what only 5.0 has: reason codes and properties of the
/// acknowledgements and DISCONNECT, PUBLISH and SUBSCRIBE properties, the 5.0 subscription
/// options, UNSUBACK codes; 5.0 reasons map to the 3.x CONNACK and SUBACK return codes.
#[test]
fn v311_encode_for_v3_drops_v5_only_fields() {
    let with_props = AckProperties {
        reason_string: Some(s("why")),
        user_properties: vec![up("k", "v")],
    };
    let puback = Packet::PubAck(PubAck {
        packet_id: pid(1),
        reason_code: ReasonCode::NoMatchingSubscribers,
        properties: with_props.clone(),
    });
    let disconnect = Packet::from(Disconnect {
        reason_code: ReasonCode::SessionTakenOver,
        properties: DisconnectProperties {
            reason_string: Some(s("bye")),
            ..DisconnectProperties::default()
        },
    });
    let publish = Packet::Publish(Publish::new(topic("a/b"), "hi").with_properties(
        PublishProperties {
            topic_alias: NonZeroU16::new(3),
            user_properties: vec![up("k", "v")],
            ..PublishProperties::default()
        },
    ));
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: pid(1),
        subscriptions: vec![Subscription {
            filter: filter("a"),
            options: SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::SendAtSubscribeIfNew,
            },
        }],
        properties: SubscribeProperties {
            subscription_identifier: SubscriptionId::new(9),
            user_properties: vec![up("k", "v")],
        },
    });
    let unsubscribe = Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(1),
        filters: vec![filter("a")],
        properties: UnsubscribeProperties {
            user_properties: vec![up("k", "v")],
        },
    });
    let unsuback = Packet::UnsubAck(UnsubAck {
        packet_id: pid(1),
        reason_codes: vec![ReasonCode::Success],
        properties: with_props.clone(),
    });
    let suback = Packet::SubAck(SubAck {
        packet_id: pid(1),
        reason_codes: vec![
            ReasonCode::GrantedQoS2,
            ReasonCode::NotAuthorized,
            ReasonCode::QuotaExceeded,
        ],
        properties: with_props,
    });
    let connack = |reason: ReasonCode| {
        Packet::ConnAck(Box::new(ConnAck {
            properties: ConnAckProperties {
                reason_string: Some(s("r")),
                ..ConnAckProperties::default()
            },
            ..ConnAck::new(reason)
        }))
    };
    for version in V3 {
        assert_encodes(version, &puback, &[0x40, 0x02, 0x00, 0x01]);
        assert_encodes(version, &disconnect, &[0xE0, 0x00]);
        assert_encodes(
            version,
            &publish,
            &wire![0x30, 0x07, 0x00, 0x03, "a/b", "hi"],
        );
        assert_encodes(
            version,
            &subscribe,
            &wire![0x82, 0x06, 0x00, 0x01, 0x00, 0x01, "a", 0x02],
        );
        assert_encodes(
            version,
            &unsubscribe,
            &wire![0xA2, 0x05, 0x00, 0x01, 0x00, 0x01, "a"],
        );
        assert_encodes(version, &unsuback, &[0xB0, 0x02, 0x00, 0x01]);
        assert_encodes(
            version,
            &suback,
            &[0x90, 0x05, 0x00, 0x01, 0x02, 0x80, 0x80],
        );
        assert_encodes(
            version,
            &connack(ReasonCode::BadUserNameOrPassword),
            &[0x20, 0x02, 0x00, 0x04],
        );
        assert_encodes(
            version,
            &connack(ReasonCode::Banned),
            &[0x20, 0x02, 0x00, 0x05],
        );
        assert_encodes(
            version,
            &connack(ReasonCode::ServerBusy),
            &[0x20, 0x02, 0x00, 0x03],
        );
        assert_encodes(
            version,
            &connack(ReasonCode::UnsupportedProtocolVersion),
            &[0x20, 0x02, 0x00, 0x01],
        );
    }
    // 3.1 has no session present flag.
    let present = Packet::ConnAck(Box::new(ConnAck {
        session_present: true,
        ..ConnAck::new(ReasonCode::Success)
    }));
    assert_encodes(V31, &present, &[0x20, 0x02, 0x00, 0x00]);
}

/// MQTT 5.0 sections 3.1.2.11.4 / 3.2.2.3.6 (MQTT-3.1.2-24, MQTT-3.2.2-15): a packet larger than
/// the peer's maximum is not sent; encoding fails with `PacketTooLarge` and writes nothing. The
/// size counts the fixed header; exactly the maximum is fine.
#[test]
fn mqtt_3_1_2_24_mqtt_3_2_2_15_encode_over_max_packet_size_fails_writing_nothing() {
    let publish = Packet::Publish(Publish::new(topic("t"), "hi")); // 7 bytes in 3.1.1
    for version in V3 {
        let err = assert_encode_fails(version, &publish, 6, |e| {
            matches!(e, Error::PacketTooLarge { size: 7, max: 6 })
        });
        assert_eq!(err.reason_code(), ReasonCode::PacketTooLarge);
        let mut buf = BytesMut::new();
        assert_eq!(publish.encode(version, 7, &mut buf).expect("fits"), 7);
        let Packet::Publish(inner) = &publish else {
            unreachable!()
        };
        let mut direct = BytesMut::from(&[0x01][..]);
        assert!(matches!(
            inner.encode(version, 6, &mut direct),
            Err(Error::PacketTooLarge { .. })
        ));
        assert_eq!(&direct[..], &[0x01]);
    }
    assert_encode_fails(V5, &publish, 7, |e| {
        matches!(e, Error::PacketTooLarge { size: 8, max: 7 })
    });
    assert_encode_fails(V5, &Packet::PingReq, 1, |e| {
        matches!(e, Error::PacketTooLarge { size: 2, max: 1 })
    });
    let big = Packet::Publish(Publish::new(topic("t"), vec![0u8; 200])); // 2-byte remaining length
    assert_encode_fails(V311, &big, 205, |e| {
        matches!(
            e,
            Error::PacketTooLarge {
                size: 206,
                max: 205
            }
        )
    });
    assert_eq!(big.encoded_len(V311).expect("len"), 206);
}

/// MQTT 3.1.1 section 1.5.3 / MQTT 5.0 section 1.5.6: Binary Data is at most 65,535 bytes; a
/// longer field cannot be encoded (`FieldTooLong`), and nothing is written.
#[test]
fn v5_1_5_6_encode_binary_data_over_65535_bytes_fails_with_field_too_long() {
    let long = Bytes::from(vec![0x5A; 65_536]);
    let max_ok = Bytes::from(vec![0x5A; 65_535]);
    let too_long = |e: &Error| matches!(e, Error::FieldTooLong { len: 65_536, .. });

    let correlation = |data: Bytes| {
        Packet::Publish(
            Publish::new(topic("t"), "").with_properties(PublishProperties {
                correlation_data: Some(data),
                ..PublishProperties::default()
            }),
        )
    };
    assert_encode_fails(V5, &correlation(long.clone()), u32::MAX, too_long);
    assert!(matches!(
        correlation(long.clone()).encoded_len(V5),
        Err(Error::FieldTooLong { .. })
    ));
    let mut buf = BytesMut::new();
    correlation(max_ok.clone())
        .encode(V5, u32::MAX, &mut buf)
        .expect("65,535 bytes fit");

    let will_payload = Packet::Connect(Box::new(Connect {
        will: Some(Will::new(topic("w"), long.clone())),
        ..Connect::new(V311, s("c"))
    }));
    assert_encode_fails(V311, &will_payload, u32::MAX, too_long);
    let password = Packet::Connect(Box::new(Connect {
        username: Some(s("u")),
        password: Some(Secret::new(long.clone())),
        ..Connect::new(V311, s("c"))
    }));
    assert_encode_fails(V311, &password, u32::MAX, too_long);
    let auth_data = Packet::from(Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: AuthProperties {
            authentication_method: Some(s("M")),
            authentication_data: Some(Secret::new(long)),
            ..AuthProperties::default()
        },
    });
    assert_encode_fails(V5, &auth_data, u32::MAX, too_long);
    let err = assert_encode_fails(V5, &auth_data, u32::MAX, too_long);
    assert!(!err.is_peer_violation());
}

/// MQTT 3.1.1 section 2.2.1 (3.1, 3.1.1): AUTH does not exist before 5.0; encoding it fails with
/// `NotInVersion` and writes nothing.
#[test]
fn v311_2_2_1_encode_auth_before_v5_fails_with_not_in_version() {
    let auth = Packet::from(Auth::new(ReasonCode::Success));
    for version in V3 {
        let err = assert_encode_fails(
            version,
            &auth,
            u32::MAX,
            |e| matches!(e, Error::NotInVersion { packet: PacketType::Auth, version: v } if *v == version),
        );
        assert!(!err.is_peer_violation());
        assert!(matches!(
            auth.encoded_len(version),
            Err(Error::NotInVersion { .. })
        ));
    }
}

/// The encoder refuses packets that break the standard, with the error the decoder would give
/// (MQTT-3.3.1-2, MQTT-3.8.3-3 / -2, MQTT-3.10.3-2, MQTT-4.7.3-1, MQTT-3.1.2-22 in 3.1.1,
/// MQTT-3.2.2-4 / -6, MQTT-3.6.2-1, Maximum QoS 2, authentication data without method),
/// writing nothing.
#[test]
fn v5_encoder_refuses_packets_that_break_single_packet_rules() {
    let dup_qos0 = Packet::Publish(publish_with(
        topic("t"),
        "",
        QosPid::AtMostOnce,
        true,
        false,
    ));
    let no_filters = Packet::Subscribe(Subscribe {
        packet_id: pid(1),
        subscriptions: vec![],
        properties: SubscribeProperties::default(),
    });
    let no_unsub_filters = Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(1),
        filters: vec![],
        properties: UnsubscribeProperties::default(),
    });
    let empty_topic = Packet::Publish(Publish::new(TopicName::empty(), "x"));
    let aliased = Packet::Publish(Publish::new(TopicName::empty(), "x").with_properties(
        PublishProperties {
            topic_alias: NonZeroU16::new(1),
            ..PublishProperties::default()
        },
    ));
    let password_only = Packet::Connect(Box::new(Connect {
        password: Some(Secret::from(&b"p"[..])),
        ..Connect::new(V311, s("c"))
    }));
    let present_refused = Packet::ConnAck(Box::new(ConnAck {
        session_present: true,
        ..ConnAck::new(ReasonCode::NotAuthorized)
    }));
    let pubrel_bad = Packet::PubRel(PubRel {
        reason_code: ReasonCode::PacketIdentifierInUse,
        ..PubRel::new(pid(1))
    });
    let max_qos_2 = Packet::ConnAck(Box::new(ConnAck {
        properties: ConnAckProperties {
            maximum_qos: Some(QoS::ExactlyOnce),
            ..ConnAckProperties::default()
        },
        ..ConnAck::new(ReasonCode::Success)
    }));
    for version in ProtocolVersion::ALL {
        assert_encode_fails(version, &dup_qos0, u32::MAX, |e| {
            matches!(e, Error::DupOnQoS0)
        });
        assert_encode_fails(version, &no_filters, u32::MAX, |e| {
            matches!(
                e,
                Error::NoTopicFilters {
                    packet: PacketType::Subscribe
                }
            )
        });
        assert_encode_fails(version, &no_unsub_filters, u32::MAX, |e| {
            matches!(
                e,
                Error::NoTopicFilters {
                    packet: PacketType::Unsubscribe
                }
            )
        });
        assert_encode_fails(version, &empty_topic, u32::MAX, |e| {
            matches!(
                e,
                Error::InvalidTopicName {
                    source: mqtt_topic::Error::Empty,
                    ..
                }
            )
        });
        assert_encode_fails(version, &present_refused, u32::MAX, |e| {
            matches!(e, Error::SessionPresentOnFailure)
        });
    }
    for version in V3 {
        // A Topic Alias cannot stand for the topic before 5.0.
        assert_encode_fails(version, &aliased, u32::MAX, |e| {
            matches!(e, Error::InvalidTopicName { .. })
        });
    }
    assert_encode_fails(V311, &password_only, u32::MAX, |e| {
        matches!(e, Error::PasswordWithoutUsername)
    });
    assert_encode_fails(V5, &pubrel_bad, u32::MAX, |e| {
        matches!(
            e,
            Error::InvalidReasonCode {
                packet: PacketType::PubRel,
                code: 0x91
            }
        )
    });
    assert_encode_fails(V5, &max_qos_2, u32::MAX, |e| {
        matches!(e, Error::InvalidPropertyValue { .. })
    });
    let auth_data_only = Packet::Connect(Box::new(Connect {
        properties: ConnectProperties {
            authentication_data: Some(Secret::from(&b"d"[..])),
            ..ConnectProperties::default()
        },
        ..Connect::new(V5, s("c"))
    }));
    assert_encode_fails(V5, &auth_data_only, u32::MAX, |e| {
        matches!(e, Error::AuthDataWithoutMethod)
    });
    let empty_will_topic = Packet::Connect(Box::new(Connect {
        will: Some(Will::new(TopicName::empty(), b(b"x"))),
        ..Connect::new(V311, s("c"))
    }));
    assert_encode_fails(V311, &empty_will_topic, u32::MAX, |e| {
        matches!(
            e,
            Error::InvalidTopicName {
                source: mqtt_topic::Error::Empty,
                ..
            }
        )
    });
}

/// The encoder only sends what the standard allows, in every version: a reason code CONNACK
/// does not have is refused for 3.x as for 5.0 (not mapped to "server unavailable"), and 0x8C,
/// which we accept in a DISCONNECT (Table 2-6), is never sent in one (Table 3-10).
#[test]
fn encoder_refuses_reason_codes_the_packet_cannot_carry() {
    let mut buf = BytesMut::new();
    let connack = Packet::from(ConnAck::new(ReasonCode::GrantedQoS1));
    for version in ProtocolVersion::ALL {
        assert!(matches!(
            connack.encode(version, 1024, &mut buf),
            Err(Error::InvalidReasonCode {
                packet: PacketType::ConnAck,
                code: 0x01
            })
        ));
    }
    let disconnect = Packet::from(Disconnect::new(ReasonCode::BadAuthenticationMethod));
    assert!(matches!(
        disconnect.encode(ProtocolVersion::V5, 1024, &mut buf),
        Err(Error::InvalidReasonCode { .. })
    ));
    assert!(buf.is_empty());
}
