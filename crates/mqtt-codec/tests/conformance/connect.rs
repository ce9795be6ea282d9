//! CONNECT (MQTT 3.1 section 3.1, MQTT 3.1.1 section 3.1, MQTT 5.0 section 3.1), and the
//! server-side decoder that waits for it.

use mqtt_codec::{
    Connect, ConnectProperties, Decoder, Error, Packet, PacketType, ProtocolVersion, PubAck,
    PubRel, QoS, ReasonCode, Secret, Will,
};

use crate::helpers::{
    Expect, V3, V5, V31, V311, b, decode_err, decode_err_any_statement, decode_err_using,
    decode_ok, pid, s, topic, wire,
};

fn connect(packet: Packet) -> Connect {
    match packet {
        Packet::Connect(connect) => *connect,
        other => panic!("not a CONNECT: {other:?}"),
    }
}

/// MQTT 3.1 section 3.1: a 3.1 CONNECT has protocol name `MQIsdp` and level 3; all its fields
/// decode (will, user name, password).
#[test]
fn v31_connect_mqisdp_level_3_decodes() {
    let bytes = wire![
        0x10, 0x26, // CONNECT, remaining length 38
        0x00, 0x06, "MQIsdp", // protocol name
        0x03,     // protocol level 3
        0xCE,     // flags: user name, password, will QoS 1, will, clean session
        0x00, 0x0A, // keep alive 10
        0x00, 0x03, "cid", // client id
        0x00, 0x03, "w/t", // will topic
        0x00, 0x02, "by", // will message
        0x00, 0x04, "user", // user name
        0x00, 0x04, "pass", // password
    ];
    let expected = Connect {
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
    };
    assert_eq!(connect(decode_ok(V31, &bytes)), expected);
    // A client-side decoder of another version still reads the CONNECT in its own version.
    assert_eq!(connect(decode_ok(V311, &bytes)), expected);
}

/// MQTT 3.1.1 section 3.1: the smallest CONNECT, and one with an empty client identifier
/// (MQTT-3.1.3-6 lets the server assign one; the codec accepts it).
#[test]
fn v311_connect_minimal_decodes() {
    let bytes = wire![
        0x10, 0x0D, // CONNECT, remaining length 13
        0x00, 0x04, "MQTT", // protocol name
        0x04,   // protocol level 4
        0x02,   // flags: clean session
        0x00, 0x3C, // keep alive 60
        0x00, 0x01, "c", // client id "c"
    ];
    assert_eq!(connect(decode_ok(V311, &bytes)), Connect::new(V311, s("c")));
    let empty_id = wire![
        0x10, 0x0C, // CONNECT, remaining length 12
        0x00, 0x04, "MQTT", // protocol name
        0x04,   // protocol level 4
        0x02,   // flags: clean session (required with an empty id, MQTT-3.1.3-7)
        0x00, 0x00, // keep alive 0
        0x00, 0x00, // client id ""
    ];
    let expected = Connect {
        keep_alive: 0,
        ..Connect::new(V311, s(""))
    };
    assert_eq!(connect(decode_ok(V311, &empty_id)), expected);
}

/// MQTT 3.1.1 section 3.1.3 (MQTT-3.1.3-1): the payload fields in order client id, will topic,
/// will message, user name, password; will QoS 2 and will retain decode.
#[test]
fn v311_connect_with_will_user_name_and_password_decodes() {
    let bytes = wire![
        0x10, 0x1F, // CONNECT, remaining length 31
        0x00, 0x04, "MQTT", // protocol name
        0x04,   // protocol level 4
        0xF4,   // flags: user name, password, will retain, will QoS 2, will
        0x01, 0x2C, // keep alive 300
        0x00, 0x02, "id", // client id
        0x00, 0x03, "a/b", // will topic
        0x00, 0x03, 0x01, 0x02, 0x03, // will message (binary)
        0x00, 0x01, "u", // user name
        0x00, 0x02, 0xFF, 0x00, // password (binary, not UTF-8)
    ];
    let expected = Connect {
        protocol: V311,
        clean_start: false,
        keep_alive: 300,
        client_id: s("id"),
        will: Some(Will {
            qos: QoS::ExactlyOnce,
            retain: true,
            ..Will::new(topic("a/b"), b(&[1, 2, 3]))
        }),
        username: Some(s("u")),
        password: Some(Secret::from(&[0xFF, 0x00][..])),
        properties: ConnectProperties::default(),
    };
    assert_eq!(connect(decode_ok(V311, &bytes)), expected);
}

/// MQTT 5.0 section 3.1: the smallest CONNECT (property length 0, MQTT-2.2.2-1) and one with an
/// empty will (property length 0, zero-length payload).
#[test]
fn v5_connect_minimal_decodes() {
    let bytes = wire![
        0x10, 0x0E, // CONNECT, remaining length 14
        0x00, 0x04, "MQTT", // protocol name
        0x05,   // protocol level 5
        0x02,   // flags: clean start
        0x00, 0x3C, // keep alive 60
        0x00, // property length 0
        0x00, 0x01, "c", // client id "c"
    ];
    assert_eq!(connect(decode_ok(V5, &bytes)), Connect::new(V5, s("c")));
    let with_will = wire![
        0x10, 0x14, // CONNECT, remaining length 20
        0x00, 0x04, "MQTT", // protocol name
        0x05,   // protocol level 5
        0x06,   // flags: will (QoS 0, not retained), clean start
        0x00, 0x3C, // keep alive 60
        0x00, // property length 0
        0x00, 0x01, "c",  // client id "c"
        0x00, // will property length 0
        0x00, 0x01, "w", // will topic "w"
        0x00, 0x00, // will payload: empty
    ];
    let expected = Connect {
        will: Some(Will::new(topic("w"), b(b""))),
        ..Connect::new(V5, s("c"))
    };
    assert_eq!(connect(decode_ok(V5, &with_will)), expected);
}

/// A CONNECT whose flags byte is `flags`, with nothing after the client id: version `version`
/// (level and, for 5.0, a property length 0).
fn connect_with_flags(version: ProtocolVersion, flags: u8) -> Vec<u8> {
    match version {
        ProtocolVersion::V3_1 => wire![
            0x10, 0x0F, // CONNECT, remaining length 15
            0x00, 0x06, "MQIsdp", // protocol name
            0x03,     // level 3
            flags,    // connect flags under test
            0x00, 0x3C, // keep alive 60
            0x00, 0x01, "c", // client id "c"
        ],
        ProtocolVersion::V3_1_1 => wire![
            0x10, 0x0D, // CONNECT, remaining length 13
            0x00, 0x04, "MQTT", // protocol name
            0x04,   // level 4
            flags,  // connect flags under test
            0x00, 0x3C, // keep alive 60
            0x00, 0x01, "c", // client id "c"
        ],
        ProtocolVersion::V5 => wire![
            0x10, 0x0E, // CONNECT, remaining length 14
            0x00, 0x04, "MQTT", // protocol name
            0x05,   // level 5
            flags,  // connect flags under test
            0x00, 0x3C, // keep alive 60
            0x00, // property length 0
            0x00, 0x01, "c", // client id "c"
        ],
    }
}

/// MQTT-3.1.2-3 (3.1.1, 5.0; also 3.1): the reserved connect flag (bit 0) must be 0; otherwise
/// the packet is malformed.
#[test]
fn mqtt_3_1_2_3_connect_reserved_flag_must_be_zero() {
    for version in ProtocolVersion::ALL {
        for flags in [0x01, 0x03] {
            let bytes = connect_with_flags(version, flags);
            decode_err(
                version,
                &bytes,
                |e| matches!(e, Error::ConnectReservedFlag),
                Some("MQTT-3.1.2-3"),
                0x81,
            );
        }
    }
}

/// A CONNECT with a will (topic "w", payload "p") and the given flags.
fn connect_with_will_flags(version: ProtocolVersion, flags: u8) -> Vec<u8> {
    if version.is_v5() {
        wire![
            0x10, 0x15, // CONNECT, remaining length 21
            0x00, 0x04, "MQTT", // protocol name
            0x05,   // level 5
            flags,  // connect flags under test
            0x00, 0x3C, // keep alive 60
            0x00, // property length 0
            0x00, 0x01, "c",  // client id "c"
            0x00, // will property length 0
            0x00, 0x01, "w", // will topic "w"
            0x00, 0x01, "p", // will payload "p"
        ]
    } else {
        wire![
            0x10, 0x13, // CONNECT, remaining length 19
            0x00, 0x04, "MQTT", // protocol name
            0x04,   // level 4
            flags,  // connect flags under test
            0x00, 0x3C, // keep alive 60
            0x00, 0x01, "c", // client id "c"
            0x00, 0x01, "w", // will topic "w"
            0x00, 0x01, "p", // will message "p"
        ]
    }
}

/// MQTT-3.1.2-14 (3.1.1): with the will flag set, will QoS 3 is not allowed.
#[test]
fn mqtt_3_1_2_14_v311_will_qos_3_is_malformed() {
    for flags in [0x1E, 0x3E] {
        // will, QoS bits 11, clean session (and will retain in 0x3E)
        let bytes = connect_with_will_flags(V311, flags);
        decode_err(
            V311,
            &bytes,
            |e| matches!(e, Error::InvalidWillQoS),
            Some("MQTT-3.1.2-14"),
            0x81,
        );
    }
}

/// MQTT-3.1.2-12 (5.0): with the will flag set, will QoS 3 is a malformed packet.
#[test]
fn mqtt_3_1_2_12_v5_will_qos_3_is_malformed() {
    let bytes = connect_with_will_flags(V5, 0x1E); // will, QoS bits 11, clean start
    decode_err(
        V5,
        &bytes,
        |e| matches!(e, Error::InvalidWillQoS),
        Some("MQTT-3.1.2-12"),
        0x81,
    );
}

/// MQTT-3.1.2-13 (3.1.1): with the will flag 0, will QoS must be 0.
#[test]
fn mqtt_3_1_2_13_v311_will_qos_without_will_flag_is_rejected() {
    for flags in [0x0A, 0x12] {
        // will flag 0, will QoS 1 / 2, clean session
        let bytes = connect_with_flags(V311, flags);
        decode_err(
            V311,
            &bytes,
            |e| matches!(e, Error::WillQoSWithoutWill),
            Some("MQTT-3.1.2-13"),
            0x81,
        );
    }
}

/// MQTT-3.1.2-11 (5.0): with the will flag 0, will QoS must be 0.
#[test]
fn mqtt_3_1_2_11_v5_will_qos_without_will_flag_is_rejected() {
    for flags in [0x0A, 0x12] {
        let bytes = connect_with_flags(V5, flags);
        decode_err(
            V5,
            &bytes,
            |e| matches!(e, Error::WillQoSWithoutWill),
            Some("MQTT-3.1.2-11"),
            0x81,
        );
    }
}

/// MQTT-3.1.2-15 (3.1.1) / MQTT-3.1.2-13 (5.0): with the will flag 0, will retain must be 0.
#[test]
fn mqtt_3_1_2_15_v311_mqtt_3_1_2_13_v5_will_retain_without_will_flag_is_rejected() {
    for version in ProtocolVersion::ALL {
        let bytes = connect_with_flags(version, 0x22); // will retain, will flag 0, clean
        decode_err_any_statement(
            version,
            &bytes,
            |e| matches!(e, Error::WillRetainWithoutWill),
            0x81,
        );
    }
}

/// MQTT-3.1.2-15 (3.1.1) / MQTT-3.1.2-13 (5.0): the error for "will retain without will" names
/// the will-retain statement, not the will-QoS one.
#[test]
fn mqtt_3_1_2_15_v311_mqtt_3_1_2_13_v5_will_retain_without_will_flag_names_its_statement() {
    let bytes = connect_with_flags(V311, 0x22); // will retain, will flag 0, clean session
    decode_err(
        V311,
        &bytes,
        |e| matches!(e, Error::WillRetainWithoutWill),
        Some("MQTT-3.1.2-15"),
        0x81,
    );
    let bytes = connect_with_flags(V5, 0x22); // will retain, will flag 0, clean start
    decode_err(
        V5,
        &bytes,
        |e| matches!(e, Error::WillRetainWithoutWill),
        Some("MQTT-3.1.2-13"),
        0x81,
    );
}

/// MQTT-3.1.2-22 (3.1.1): if the user name flag is 0, the password flag must be 0.
#[test]
fn mqtt_3_1_2_22_v311_password_without_user_name_is_rejected() {
    let bytes = wire![
        0x10, 0x10, // CONNECT, remaining length 16
        0x00, 0x04, "MQTT", // protocol name
        0x04,   // level 4
        0x42,   // flags: password, clean session (no user name)
        0x00, 0x3C, // keep alive 60
        0x00, 0x01, "c", // client id "c"
        0x00, 0x01, "p", // password "p"
    ];
    decode_err(
        V311,
        &bytes,
        |e| matches!(e, Error::PasswordWithoutUsername),
        Some("MQTT-3.1.2-22"),
        0x81,
    );
}

/// MQTT-3.1.2-18/-19 (5.0): 5.0 allows a password without a user name.
#[test]
fn mqtt_3_1_2_19_v5_password_without_user_name_is_accepted() {
    let bytes = wire![
        0x10, 0x11, // CONNECT, remaining length 17
        0x00, 0x04, "MQTT", // protocol name
        0x05,   // level 5
        0x42,   // flags: password, clean start (no user name)
        0x00, 0x3C, // keep alive 60
        0x00, // property length 0
        0x00, 0x01, "c", // client id "c"
        0x00, 0x01, "p", // password "p"
    ];
    let expected = Connect {
        password: Some(Secret::from(&b"p"[..])),
        ..Connect::new(V5, s("c"))
    };
    assert_eq!(connect(decode_ok(V5, &bytes)), expected);
}

/// MQTT-3.1.2-1 (3.1.1, 5.0): a protocol name other than `MQTT` (or 3.1's `MQIsdp`) is refused;
/// answered with 0x84 (Unsupported Protocol Version) where an answer is sent.
#[test]
fn mqtt_3_1_2_1_unknown_protocol_name_is_refused() {
    let cases = [
        wire![
            0x10, 0x0D, 0x00, 0x04, "MQTX", 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, "c"
        ],
        wire![
            0x10, 0x0D, 0x00, 0x04, "mqtt", 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, "c"
        ],
        wire![
            0x10, 0x0B, 0x00, 0x02, "MQ", 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, "c"
        ],
        wire![
            0x10, 0x09, 0x00, 0x00, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, "c"
        ], // empty name
        wire![
            0x10, 0x0F, 0x00, 0x06, "MQIsdP", 0x03, 0x02, 0x00, 0x3C, 0x00, 0x01, "c"
        ],
    ];
    for version in [V311, V5] {
        for bytes in &cases {
            decode_err(
                version,
                bytes,
                |e| matches!(e, Error::InvalidProtocolName),
                Some("MQTT-3.1.2-1"),
                0x84,
            );
        }
    }
}

/// MQTT-3.1.2-2 (3.1.1, 5.0): a protocol level the server does not support (or one that does not
/// go with the protocol name) is refused with 0x84 / return code 1.
#[test]
fn mqtt_3_1_2_2_unsupported_protocol_level_is_refused() {
    let cases: Vec<(u8, Vec<u8>)> = vec![
        (
            6,
            wire![
                0x10, 0x0D, 0x00, 0x04, "MQTT", 0x06, 0x02, 0x00, 0x3C, 0x00, 0x01, "c"
            ],
        ),
        (
            3,
            wire![
                0x10, 0x0D, 0x00, 0x04, "MQTT", 0x03, 0x02, 0x00, 0x3C, 0x00, 0x01, "c"
            ],
        ),
        (
            0,
            wire![
                0x10, 0x0D, 0x00, 0x04, "MQTT", 0x00, 0x02, 0x00, 0x3C, 0x00, 0x01, "c"
            ],
        ),
        (
            0x84,
            wire![
                0x10, 0x0D, 0x00, 0x04, "MQTT", 0x84, 0x02, 0x00, 0x3C, 0x00, 0x01, "c"
            ],
        ),
        (
            4,
            wire![
                0x10, 0x0F, 0x00, 0x06, "MQIsdp", 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, "c"
            ],
        ),
        (
            5,
            wire![
                0x10, 0x10, 0x00, 0x06, "MQIsdp", 0x05, 0x02, 0x00, 0x3C, 0x00, 0x00, 0x01, "c"
            ],
        ),
    ];
    for version in [V311, V5] {
        for (level, bytes) in &cases {
            let err = decode_err(
                version,
                bytes,
                |e| matches!(e, Error::UnsupportedProtocolVersion { level: l } if l == level),
                Some("MQTT-3.1.2-2"),
                0x84,
            );
            // The 3.1.1 answer: CONNACK return code 0x01, unacceptable protocol version.
            assert_eq!(err.reason_code().to_v3_connack(), 0x01);
        }
    }
}

/// MQTT-3.1.0-1 (3.1.1, 5.0): on a new connection the server accepts only CONNECT first; any
/// other packet type is refused from its fixed header.
#[test]
fn mqtt_3_1_0_1_first_packet_must_be_connect() {
    let cases: Vec<(PacketType, Vec<u8>)> = vec![
        (PacketType::ConnAck, wire![0x20, 0x02, 0x00, 0x00]),
        (PacketType::Publish, wire![0x30, 0x03, 0x00, 0x01, "t"]),
        (PacketType::PubAck, wire![0x40, 0x02, 0x00, 0x01]),
        (PacketType::PubRel, wire![0x62, 0x02, 0x00, 0x01]),
        (
            PacketType::Subscribe,
            wire![0x82, 0x06, 0x00, 0x01, 0x00, 0x01, "a", 0x00],
        ),
        (PacketType::PingReq, wire![0xC0, 0x00]),
        (PacketType::Disconnect, wire![0xE0, 0x00]),
        (PacketType::Auth, wire![0xF0, 0x00]),
    ];
    for version in [V311, V5] {
        for (packet, bytes) in &cases {
            let err = decode_err_using(
                Decoder::server(),
                version,
                bytes,
                &|e| matches!(e, Error::FirstPacketNotConnect { packet: p } if p == packet),
                &Expect {
                    statement: Some("MQTT-3.1.0-1"),
                    check_statement: true,
                    reason: 0x82,
                },
            );
            // The fixed header alone is enough.
            let mut buf = bytes::BytesMut::from(&bytes[..2]);
            let early = Decoder::server().decode(&mut buf);
            assert!(
                matches!(early, Err(Error::FirstPacketNotConnect { .. })),
                "{err:?} / {early:?}"
            );
        }
    }
}

/// MQTT-3.1.0-1 and section 3.1.2.2 (all versions): after the CONNECT, the server-side decoder
/// speaks the version the CONNECT chose.
#[test]
fn mqtt_3_1_0_1_server_decoder_switches_to_the_connect_version() {
    let v31_connect = connect_with_flags(V31, 0x02);
    let v311_connect = connect_with_flags(V311, 0x02);
    let v5_connect = connect_with_flags(V5, 0x02);

    let mut decoder = Decoder::server();
    assert_eq!(decoder.version(), None);
    let mut buf = bytes::BytesMut::from(&v31_connect[..]);
    buf.extend_from_slice(&[0x6A, 0x02, 0x00, 0x01]); // PUBREL with 3.1's DUP flag
    assert!(matches!(
        decoder.decode(&mut buf),
        Ok(Some(Packet::Connect(_)))
    ));
    assert_eq!(decoder.version(), Some(V31));
    assert_eq!(
        decoder.decode(&mut buf).expect("3.1 PUBREL"),
        Some(Packet::PubRel(PubRel::new(pid(1))))
    );

    let mut decoder = Decoder::server();
    let mut buf = bytes::BytesMut::from(&v311_connect[..]);
    buf.extend_from_slice(&[0x40, 0x02, 0x00, 0x01]); // PUBACK id 1
    buf.extend_from_slice(&[0xC0, 0x80, 0x00]); // PINGREQ, non-minimal length (fine in 3.1.1)
    buf.extend_from_slice(&[0xF0, 0x00]); // AUTH: no such packet in 3.1.1
    assert!(matches!(
        decoder.decode(&mut buf),
        Ok(Some(Packet::Connect(_)))
    ));
    assert_eq!(decoder.version(), Some(V311));
    assert_eq!(
        decoder.decode(&mut buf).expect("PUBACK"),
        Some(Packet::PubAck(PubAck::new(pid(1))))
    );
    assert_eq!(
        decoder.decode(&mut buf).expect("PINGREQ"),
        Some(Packet::PingReq)
    );
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(Error::InvalidPacketType { bits: 15 })
    ));

    let mut decoder = Decoder::server();
    let mut buf = bytes::BytesMut::from(&v5_connect[..]);
    buf.extend_from_slice(&[0x40, 0x03, 0x00, 0x01, 0x10]); // PUBACK id 1, reason 0x10
    buf.extend_from_slice(&[0xF0, 0x00]); // AUTH, Success
    buf.extend_from_slice(&[0xC0, 0x80, 0x00]); // PINGREQ, non-minimal length: malformed in 5.0
    assert!(matches!(
        decoder.decode(&mut buf),
        Ok(Some(Packet::Connect(_)))
    ));
    assert_eq!(decoder.version(), Some(V5));
    let expected = PubAck {
        reason_code: ReasonCode::NoMatchingSubscribers,
        ..PubAck::new(pid(1))
    };
    assert_eq!(
        decoder.decode(&mut buf).expect("PUBACK"),
        Some(Packet::PubAck(expected))
    );
    assert!(matches!(
        decoder.decode(&mut buf),
        Ok(Some(Packet::Auth(_)))
    ));
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(Error::NonMinimalVarInt)
    ));
}

/// MQTT 5.0 section 3.1.2.11.10: Authentication Data without an Authentication Method is a
/// protocol error.
#[test]
fn v5_3_1_2_11_10_auth_data_without_auth_method_is_protocol_error() {
    let bytes = wire![
        0x10, 0x12, // CONNECT, remaining length 18
        0x00, 0x04, "MQTT", // protocol name
        0x05,   // level 5
        0x02,   // flags: clean start
        0x00, 0x3C, // keep alive 60
        0x04, // property length 4
        0x16, 0x00, 0x01, 0xAA, // Authentication Data [AA], no Authentication Method
        0x00, 0x01, "c", // client id "c"
    ];
    decode_err(
        V5,
        &bytes,
        |e| matches!(e, Error::AuthDataWithoutMethod),
        None,
        0x82,
    );
}

/// MQTT-3.3.2-2 / MQTT-4.7.1-1 (3.1.1, 5.0; also 3.1): the will topic is a topic name, so it
/// has no wildcards (a Malformed Packet, 0x81: 0x90 is for correctly formed names the server refuses).
#[test]
fn mqtt_3_3_2_2_will_topic_with_wildcard_is_rejected() {
    for will_topic in ["a/+", "#", "a/#", "+"] {
        let len = will_topic.len() as u8;
        let v311 = wire![
            0x10,
            0x11 + len, // CONNECT, remaining length 17 + topic
            0x00,
            0x04,
            "MQTT", // protocol name
            0x04,   // level 4
            0x06,   // flags: will, clean session
            0x00,
            0x3C, // keep alive 60
            0x00,
            0x01,
            "c", // client id "c"
            0x00,
            len,
            will_topic, // will topic
            0x00,
            0x00, // will message: empty
        ];
        let v5 = wire![
            0x10,
            0x13 + len, // CONNECT, remaining length 19 + topic
            0x00,
            0x04,
            "MQTT", // protocol name
            0x05,   // level 5
            0x06,   // flags: will, clean start
            0x00,
            0x3C, // keep alive 60
            0x00, // property length 0
            0x00,
            0x01,
            "c",  // client id "c"
            0x00, // will property length 0
            0x00,
            len,
            will_topic, // will topic
            0x00,
            0x00, // will payload: empty
        ];
        let wildcard = |e: &Error| {
            matches!(
                e,
                Error::InvalidTopicName {
                    source: mqtt_topic::Error::WildcardInTopicName { .. },
                    ..
                }
            )
        };
        decode_err(V311, &v311, wildcard, Some("MQTT-4.7.1-1"), 0x81);
        decode_err(V5, &v5, wildcard, Some("MQTT-4.7.0-1"), 0x81);
    }
}

/// MQTT-4.7.3-1 (3.1.1, 5.0): the will topic is at least one character long.
#[test]
fn mqtt_4_7_3_1_empty_will_topic_is_rejected() {
    let v311 = wire![
        0x10, 0x11, // CONNECT, remaining length 17
        0x00, 0x04, "MQTT", // protocol name
        0x04,   // level 4
        0x06,   // flags: will, clean session
        0x00, 0x3C, // keep alive 60
        0x00, 0x01, "c", // client id "c"
        0x00, 0x00, // will topic ""
        0x00, 0x00, // will message: empty
    ];
    let v5 = wire![
        0x10, 0x13, // CONNECT, remaining length 19
        0x00, 0x04, "MQTT", // protocol name
        0x05,   // level 5
        0x06,   // flags: will, clean start
        0x00, 0x3C, // keep alive 60
        0x00, // property length 0
        0x00, 0x01, "c",  // client id "c"
        0x00, // will property length 0
        0x00, 0x00, // will topic ""
        0x00, 0x00, // will payload: empty
    ];
    let empty = |e: &Error| {
        matches!(
            e,
            Error::InvalidTopicName {
                source: mqtt_topic::Error::Empty,
                ..
            }
        )
    };
    decode_err(V311, &v311, empty, Some("MQTT-4.7.3-1"), 0x82);
    decode_err(V5, &v5, empty, Some("MQTT-4.7.3-1"), 0x82);
}

/// MQTT-3.1.2-9 (3.1.1, 5.0): with the will flag set, the will topic and message must be there.
#[test]
fn mqtt_3_1_2_9_will_flag_without_will_fields_is_malformed() {
    for version in V3 {
        let bytes = connect_with_flags(version, 0x06); // will, clean; nothing after client id
        decode_err(
            version,
            &bytes,
            |e| {
                matches!(
                    e,
                    Error::Truncated {
                        packet: PacketType::Connect
                    }
                )
            },
            None,
            0x81,
        );
    }
    let bytes = connect_with_flags(V5, 0x06);
    decode_err(
        V5,
        &bytes,
        |e| {
            matches!(
                e,
                Error::Truncated {
                    packet: PacketType::Connect
                }
            )
        },
        None,
        0x81,
    );
}

/// MQTT-3.1.2-13 (3.1.1) / MQTT-3.1.2-11 (5.0): will QoS bits set without the will flag break
/// the "will flag 0 means will QoS 0" rule first, even when the bits say QoS 3.
#[test]
fn mqtt_3_1_2_13_will_qos_3_without_will_flag_names_the_will_flag_rule() {
    for (version, statement) in [(V311, "MQTT-3.1.2-13"), (V5, "MQTT-3.1.2-11")] {
        let bytes = connect_with_flags(version, 0x1A); // will QoS 3, will flag 0, clean
        decode_err(
            version,
            &bytes,
            |e| matches!(e, Error::WillQoSWithoutWill),
            Some(statement),
            0x81,
        );
    }
}

/// MQTT-3.1.4-1 (5.0): a server refuses an invalid CONNECT, and may say why with a CONNACK;
/// that CONNACK must be in the client's version, so a server decoder adopts the version of a
/// CONNECT that fails to decode past its protocol name and level.
#[test]
fn mqtt_3_1_4_1_failed_connect_still_sets_the_version() {
    // MQTT 5.0 CONNECT with Receive Maximum 0 (a Protocol Error).
    let bytes = wire![
        0x10, 0x10, // CONNECT, remaining length 16
        0x00, 0x04, "MQTT", 0x05, // protocol name, level 5
        0x02, 0x00, 0x3C, // clean start, keep alive 60
        0x03, 0x21, 0x00, 0x00, // property length 3: Receive Maximum 0
        0x00, 0x01, "c", // client id "c"
    ];
    let mut decoder = Decoder::server();
    let mut buf = bytes::BytesMut::from(&bytes[..]);
    let err = decoder.decode(&mut buf).unwrap_err();
    assert!(matches!(err, Error::InvalidPropertyValue { .. }), "{err:?}");
    assert_eq!(decoder.version(), Some(ProtocolVersion::V5));
    // An unknown level leaves it unset: the answer is a 3.1.1 CONNACK 0x01.
    let mut decoder = Decoder::server();
    let mut buf = bytes::BytesMut::from(&wire![0x10, 0x07, 0x00, 0x04, "MQTT", 0x06][..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(Error::UnsupportedProtocolVersion { level: 6 })
    ));
    assert_eq!(decoder.version(), None);
}
