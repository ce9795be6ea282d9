//! Framing: the fixed header (packet type, flags, Remaining Length), Variable Byte Integers,
//! packet identifiers, the maximum packet size, "need more bytes", truncated fields and trailing
//! bytes (MQTT 3.1.1 chapter 2, MQTT 5.0 sections 1.5.5, 2 and 4.13).

use bytes::BytesMut;
use mqtt_codec::{Decoder, Error, Packet, PacketType, ProtocolVersion, PubAck, QoS};

use crate::helpers::{
    Expect, V3, V5, V31, V311, assert_frame_len, decode_err, decode_err_using, decode_ok,
    decode_ok_with, pid, wire,
};

/// A PUBLISH QoS 0 to topic "t" whose Remaining Length is `remaining`, with the hand-written
/// fixed header `header` (type/flags byte and the Remaining Length bytes).
fn publish_of_remaining_length(
    version: ProtocolVersion,
    header: &[u8],
    remaining: usize,
) -> Vec<u8> {
    let mut bytes = wire![
        header, // fixed header
        0x00, 0x01, "t", // topic name "t"
    ];
    let mut fixed = 3;
    if version.is_v5() {
        bytes.push(0x00); // property length 0
        fixed += 1;
    }
    assert!(remaining >= fixed);
    bytes.resize(header.len() + remaining, 0xA5); // payload
    bytes
}

/// MQTT 3.1.1 section 2.2.3 / MQTT 5.0 section 1.5.5 (all versions): the boundary values of the
/// Remaining Length table decode, in one to four bytes.
#[test]
fn v5_1_5_5_remaining_length_boundaries_decode() {
    let table: &[(&[u8], usize)] = &[
        (&[0x30, 0x04], 4),                           // smallest useful PUBLISH
        (&[0x30, 0x7F], 127),                         // largest in one byte
        (&[0x30, 0x80, 0x01], 128),                   // smallest in two bytes
        (&[0x30, 0xFF, 0x7F], 16_383),                // largest in two bytes
        (&[0x30, 0x80, 0x80, 0x01], 16_384),          // smallest in three bytes
        (&[0x30, 0xFF, 0xFF, 0x7F], 2_097_151),       // largest in three bytes
        (&[0x30, 0x80, 0x80, 0x80, 0x01], 2_097_152), // smallest in four bytes
    ];
    for version in ProtocolVersion::ALL {
        for &(header, remaining) in table {
            let bytes = publish_of_remaining_length(version, header, remaining);
            assert_frame_len(&bytes);
            let Packet::Publish(publish) = decode_ok(version, &bytes) else {
                panic!("not a PUBLISH");
            };
            let fixed = if version.is_v5() { 4 } else { 3 };
            assert_eq!(publish.payload.len(), remaining - fixed);
            assert_eq!(publish.topic, "t");
        }
    }
}

/// MQTT 3.1.1 section 2.2.3 / MQTT 5.0 section 1.5.5 (all versions): a Remaining Length that
/// continues past its fourth byte is malformed, and is refused as soon as that is known.
#[test]
fn v5_1_5_5_remaining_length_over_four_bytes_is_malformed() {
    let cases: &[&[u8]] = &[
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], // PUBLISH, five length bytes
        &[0xC0, 0x80, 0x80, 0x80, 0x80, 0x00], // PINGREQ, 0 in five bytes
        &[0xC0, 0x80, 0x80, 0x80, 0x80],       // fourth byte still continues: no need to wait
    ];
    let expect = Expect {
        statement: None,
        check_statement: true,
        reason: 0x81,
    };
    for version in ProtocolVersion::ALL {
        for bytes in cases {
            decode_err_using(
                Decoder::new(version),
                version,
                bytes,
                &|e| matches!(e, Error::VarIntTooLong),
                &expect,
            );
        }
        // Three continuation bytes: the fourth length byte has not arrived yet.
        let mut buf = BytesMut::from(&[0xC0, 0x80, 0x80, 0x80][..]);
        assert!(matches!(Decoder::new(version).decode(&mut buf), Ok(None)));
    }
}

/// MQTT-1.5.5-1 (5.0): the Remaining Length must use the fewest bytes; a longer encoding is a
/// malformed packet.
#[test]
fn mqtt_1_5_5_1_v5_non_minimal_remaining_length_is_malformed() {
    let cases: &[&[u8]] = &[
        &[0xC0, 0x80, 0x00],                         // PINGREQ, 0 in two bytes
        &[0xD0, 0x80, 0x80, 0x00],                   // PINGRESP, 0 in three bytes
        &[0xE0, 0x80, 0x80, 0x80, 0x00],             // DISCONNECT, 0 in four bytes
        &[0x40, 0x82, 0x00, 0x00, 0x01],             // PUBACK, 2 in two bytes; packet id 1
        &[0x30, 0x84, 0x00, 0x00, 0x01, b't', 0x00], // PUBLISH "t", 4 in two bytes
    ];
    for bytes in cases {
        decode_err(
            V5,
            bytes,
            |e| matches!(e, Error::NonMinimalVarInt),
            Some("MQTT-1.5.5-1"),
            0x81,
        );
    }
}

/// MQTT 3.1.1 section 2.2.3 (3.1, 3.1.1): nothing requires the shortest Remaining Length before
/// 5.0, so a longer encoding is accepted there.
#[test]
fn v311_2_2_3_non_minimal_remaining_length_accepted() {
    for version in V3 {
        assert_eq!(decode_ok(version, &[0xC0, 0x80, 0x00]), Packet::PingReq);
        assert_eq!(
            decode_ok(version, &[0xD0, 0x80, 0x80, 0x00]),
            Packet::PingResp
        );
        assert!(matches!(
            decode_ok(version, &[0xE0, 0x80, 0x80, 0x80, 0x00]),
            Packet::Disconnect(_)
        ));
        assert_eq!(
            decode_ok(version, &[0x40, 0x82, 0x00, 0x00, 0x01]),
            Packet::PubAck(PubAck::new(pid(1)))
        );
    }
}

/// MQTT-1.5.5-1 (5.0): the Variable Byte Integers inside a packet (Property Length, property
/// identifiers, Subscription Identifier) must be minimal too.
#[test]
fn mqtt_1_5_5_1_v5_non_minimal_integers_inside_packet_are_malformed() {
    let cases = [
        wire![
            0x30, 0x07, // PUBLISH QoS 0, remaining length 7
            0x00, 0x01, "t", // topic name "t"
            0x80, 0x00, // property length 0 in two bytes
            "hi", // payload
        ],
        wire![
            0x40, 0x05, // PUBACK, remaining length 5
            0x00, 0x01, // packet id 1
            0x00, // reason code Success
            0x80, 0x00, // property length 0 in two bytes
        ],
        wire![
            0x30, 0x07, // PUBLISH QoS 0, remaining length 7
            0x00, 0x01, "t",  // topic name "t"
            0x03, // property length 3
            0x81, 0x00,
            0x01, // property id 1 (Payload Format Indicator) in two bytes, value 1
        ],
        wire![
            0x30, 0x07, // PUBLISH QoS 0, remaining length 7
            0x00, 0x01, "t",  // topic name "t"
            0x03, // property length 3
            0x0B, 0x81, 0x00, // Subscription Identifier 1 in two bytes
        ],
        wire![
            0x82, 0x0A, // SUBSCRIBE, remaining length 10
            0x00, 0x01, // packet id 1
            0x03, // property length 3
            0x0B, 0x81, 0x00, // Subscription Identifier 1 in two bytes
            0x00, 0x01, "a",  // topic filter "a"
            0x00, // options: QoS 0
        ],
    ];
    for bytes in &cases {
        decode_err(
            V5,
            bytes,
            |e| matches!(e, Error::NonMinimalVarInt),
            Some("MQTT-1.5.5-1"),
            0x81,
        );
    }
}

/// MQTT-1.5.5-1 (5.0) on the server side: the CONNECT decides the version, so a non-minimal
/// Remaining Length is refused when the CONNECT is 5.0 and accepted when it is 3.1.1.
#[test]
fn mqtt_1_5_5_1_server_decoder_checks_connect_remaining_length_by_its_version() {
    let v5_connect = wire![
        0x10, 0x8E, 0x00, // CONNECT, remaining length 14 in two bytes
        0x00, 0x04, "MQTT", // protocol name
        0x05,   // protocol level 5
        0x02,   // connect flags: clean start
        0x00, 0x3C, // keep alive 60
        0x00, // property length 0
        0x00, 0x01, "c", // client id "c"
    ];
    decode_err_using(
        Decoder::server(),
        V5,
        &v5_connect,
        &|e| matches!(e, Error::NonMinimalVarInt),
        &Expect {
            statement: Some("MQTT-1.5.5-1"),
            check_statement: true,
            reason: 0x81,
        },
    );
    let v311_connect = wire![
        0x10, 0x8D, 0x00, // CONNECT, remaining length 13 in two bytes
        0x00, 0x04, "MQTT", // protocol name
        0x04,   // protocol level 4
        0x02,   // connect flags: clean session
        0x00, 0x3C, // keep alive 60
        0x00, 0x01, "c", // client id "c"
    ];
    let Packet::Connect(connect) = decode_ok(V311, &v311_connect) else {
        panic!("not a CONNECT");
    };
    assert_eq!(connect.protocol, V311);
}

/// MQTT 5.0 section 4.13 / MQTT 3.1.1 section 4.8 (all versions): "need more bytes" is never an
/// error. A stream of packets fed one byte at a time yields each packet exactly when its last
/// byte arrives, and `Ok(None)` before.
#[test]
fn v5_4_13_need_more_bytes_is_never_an_error() {
    let stream = wire![
        0xC0,
        0x00, // PINGREQ
        0x32,
        0x07,
        0x00,
        0x01,
        "t",
        0x00,
        0x05,
        "hi", // PUBLISH QoS 1 "t", id 5, payload "hi"
        0x40,
        0x02,
        0x00,
        0x05, // PUBACK id 5
        0x82,
        0x06,
        0x00,
        0x06,
        0x00,
        0x01,
        "#",
        0x01, // SUBSCRIBE id 6, "#" QoS 1
        0x30,
        0x80,
        0x01,
        0x00,
        0x01,
        "t",
        [0x5A; 125], // PUBLISH QoS 0, 2-byte length 128
        0xE0,
        0x00, // DISCONNECT
    ];
    let ends = [2, 11, 15, 23, 154, 156];
    for version in V3 {
        let mut decoder = Decoder::new(version);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for (i, &byte) in stream.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            match decoder.decode(&mut buf) {
                Ok(Some(packet)) => got.push((i + 1, packet.packet_type())),
                Ok(None) => {}
                Err(e) => panic!("{version}: error after {} bytes: {e:?}", i + 1),
            }
        }
        assert!(buf.is_empty());
        let types = [
            PacketType::PingReq,
            PacketType::Publish,
            PacketType::PubAck,
            PacketType::Subscribe,
            PacketType::Publish,
            PacketType::Disconnect,
        ];
        let expected: Vec<_> = ends.iter().copied().zip(types).collect();
        assert_eq!(got, expected, "{version}");
    }
}

/// MQTT 5.0 section 3.1.2.11.4 / 4.13 (Packet too large, 0x95): the maximum packet size is
/// enforced from the fixed header alone, before the body arrives, and the buffer is not grown
/// for the refused packet.
#[test]
fn v5_3_1_2_11_4_max_packet_size_enforced_from_fixed_header() {
    // (fixed header only, limit, whole packet size)
    let table: &[(&[u8], u32, u64)] = &[
        (&[0x30, 0x0A], 11, 12),                   // PUBLISH, 10 + 2 > 11
        (&[0x30, 0x80, 0x01], 130, 131),           // PUBLISH, 128 + 3
        (&[0x82, 0x80, 0x80, 0x01], 1024, 16_388), // SUBSCRIBE, 16,384 + 4
        (&[0x30, 0xFF, 0xFF, 0xFF, 0x7F], 1_000_000, 268_435_460), // largest possible
        (&[0xE0, 0x01], 2, 3),                     // DISCONNECT, 1 + 2
    ];
    for version in [V311, V5] {
        for &(header, max, size) in table {
            let mut buf = BytesMut::from(header);
            let capacity = buf.capacity();
            let err = Decoder::new(version)
                .with_max_packet_size(max)
                .decode(&mut buf)
                .expect_err("too large");
            assert!(
                matches!(err, Error::PacketTooLarge { size: s, max: m } if s == size && m == max),
                "{err:?}"
            );
            assert_eq!(err.reason_code().get(), 0x95);
            assert_eq!(err.statement(), None);
            assert_eq!(&buf[..], header, "buffer changed");
            assert_eq!(
                buf.capacity(),
                capacity,
                "buffer grown for a refused packet"
            );
        }
    }
}

/// MQTT 5.0 section 3.1.2.11.4: a packet of exactly the maximum packet size is accepted, one
/// byte more is refused (the size counts the fixed header).
#[test]
fn v5_3_1_2_11_4_max_packet_size_boundary() {
    let publish = wire![
        0x30, 0x05, // PUBLISH QoS 0, remaining length 5: 7 bytes in all
        0x00, 0x01, "t",  // topic name "t"
        "hi", // payload
    ];
    for version in V3 {
        let at_limit = || Decoder::new(version).with_max_packet_size(7);
        assert!(matches!(
            decode_ok_with(at_limit, &publish),
            Packet::Publish(_)
        ));
        let mut buf = BytesMut::from(&publish[..]);
        let err = Decoder::new(version)
            .with_max_packet_size(6)
            .decode(&mut buf)
            .expect_err("7 > 6");
        assert!(matches!(err, Error::PacketTooLarge { size: 7, max: 6 }));
    }
    let mut buf = BytesMut::from(&[0xC0, 0x00][..]);
    assert_eq!(
        Decoder::new(V5)
            .with_max_packet_size(2)
            .decode(&mut buf)
            .expect("fits"),
        Some(Packet::PingReq)
    );
    let mut buf = BytesMut::from(&[0xC0, 0x00][..]);
    assert!(matches!(
        Decoder::new(V5).with_max_packet_size(1).decode(&mut buf),
        Err(Error::PacketTooLarge { size: 2, max: 1 })
    ));
}

/// The decoder's documented limit ("never reserves more buffer space than the maximum packet
/// size"): while a packet that fits is arriving, the buffer is not grown beyond the limit.
#[test]
fn v5_3_1_2_11_4_buffer_not_grown_beyond_max_packet_size() {
    // A 1000-byte PUBLISH: fixed header 3 bytes (remaining length 997 = 0xE5 0x07).
    let packet = wire![
        0x30,
        0xE5,
        0x07, // PUBLISH QoS 0, remaining length 997
        0x00,
        0x01,
        "t",         // topic name "t"
        [0x11; 994], // payload
    ];
    assert_frame_len(&packet);
    for received in [3, 10, 600, 999] {
        let mut buf = BytesMut::from(&packet[..received]);
        let mut decoder = Decoder::new(V311).with_max_packet_size(1000);
        assert!(matches!(decoder.decode(&mut buf), Ok(None)));
        assert!(
            buf.capacity() <= 1000,
            "after {received} bytes the buffer holds {} bytes of capacity (limit 1000)",
            buf.capacity()
        );
        buf.extend_from_slice(&packet[received..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Ok(Some(Packet::Publish(_)))
        ));
    }
}

/// Flags every packet type other than PUBLISH must carry.
fn required_flags(packet: PacketType) -> u8 {
    match packet {
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => 0b0010,
        _ => 0,
    }
}

/// Every type/flags combination other than the required one fails as `InvalidFlags`, naming
/// `statement` for `version` (3.1 tolerates DUP on PUBREL, SUBSCRIBE and UNSUBSCRIBE).
fn check_reserved_flags(version: ProtocolVersion, packet: PacketType, statement: Option<&str>) {
    let required = required_flags(packet);
    for flags in 0..16u8 {
        let tolerated = version == V31 && required != 0 && flags == required | 0x08;
        if flags == required || tolerated {
            continue;
        }
        let first = ((packet as u8) << 4) | flags;
        // The fixed header alone is enough to refuse it: Remaining Length 0, no body.
        decode_err_using(
            Decoder::new(version),
            version,
            &[first, 0x00],
            &|e| matches!(e, Error::InvalidFlags { packet: p, flags: f } if *p == packet && *f == flags),
            &Expect {
                statement,
                check_statement: true,
                reason: 0x81,
            },
        );
    }
}

/// MQTT-2.2.2-1 (3.1.1) / MQTT-2.1.3-1 (5.0), all versions: the reserved flag bits of every
/// packet type other than PUBLISH must have the values of Table 2.2 / 2-2 (0000 for CONNECT,
/// CONNACK, PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK, PINGREQ, PINGRESP).
#[test]
fn mqtt_2_2_2_1_mqtt_2_1_3_1_reserved_flags_must_have_listed_values() {
    let types = [
        PacketType::Connect,
        PacketType::ConnAck,
        PacketType::PubAck,
        PacketType::PubRec,
        PacketType::PubComp,
        PacketType::SubAck,
        PacketType::UnsubAck,
        PacketType::PingReq,
        PacketType::PingResp,
    ];
    for version in ProtocolVersion::ALL {
        let statement = if version.is_v5() {
            "MQTT-2.1.3-1"
        } else {
            "MQTT-2.2.2-1"
        };
        for packet in types {
            check_reserved_flags(version, packet, Some(statement));
        }
    }
}

/// MQTT-3.6.1-1 (3.1.1, 5.0): PUBREL flags must be 0010.
#[test]
fn mqtt_3_6_1_1_pubrel_flags_must_be_0010() {
    for version in ProtocolVersion::ALL {
        check_reserved_flags(version, PacketType::PubRel, Some("MQTT-3.6.1-1"));
    }
}

/// MQTT-3.8.1-1 (3.1.1, 5.0): SUBSCRIBE flags must be 0010.
#[test]
fn mqtt_3_8_1_1_subscribe_flags_must_be_0010() {
    for version in ProtocolVersion::ALL {
        check_reserved_flags(version, PacketType::Subscribe, Some("MQTT-3.8.1-1"));
    }
}

/// MQTT-3.10.1-1 (3.1.1, 5.0): UNSUBSCRIBE flags must be 0010.
#[test]
fn mqtt_3_10_1_1_unsubscribe_flags_must_be_0010() {
    for version in ProtocolVersion::ALL {
        check_reserved_flags(version, PacketType::Unsubscribe, Some("MQTT-3.10.1-1"));
    }
}

/// MQTT-3.14.1-1 (3.1.1, 5.0): DISCONNECT reserved flags must be 0.
#[test]
fn mqtt_3_14_1_1_disconnect_reserved_flags_must_be_zero() {
    for version in ProtocolVersion::ALL {
        check_reserved_flags(version, PacketType::Disconnect, Some("MQTT-3.14.1-1"));
    }
}

/// MQTT-3.15.1-1 (5.0): AUTH reserved flags must be 0.
#[test]
fn mqtt_3_15_1_1_v5_auth_reserved_flags_must_be_zero() {
    check_reserved_flags(V5, PacketType::Auth, Some("MQTT-3.15.1-1"));
}

/// MQTT 3.1 sent PUBREL, SUBSCRIBE and UNSUBSCRIBE as QoS 1 messages, with DUP (0x08) set on
/// retries: flags 1010 are accepted in 3.1.
#[test]
fn v31_pubrel_subscribe_unsubscribe_with_dup_flag_accepted() {
    let pubrel = wire![0x6A, 0x02, 0x00, 0x07]; // PUBREL, DUP + QoS 1, packet id 7
    assert!(matches!(decode_ok(V31, &pubrel), Packet::PubRel(p) if p.packet_id == pid(7)));
    let subscribe = wire![
        0x8A, 0x06, // SUBSCRIBE, DUP + QoS 1, remaining length 6
        0x00, 0x08, // packet id 8
        0x00, 0x01, "a",  // topic filter "a"
        0x01, // requested QoS 1
    ];
    let Packet::Subscribe(sub) = decode_ok(V31, &subscribe) else {
        panic!("not a SUBSCRIBE");
    };
    assert_eq!(sub.packet_id, pid(8));
    assert_eq!(sub.subscriptions[0].filter, "a");
    assert_eq!(sub.subscriptions[0].options.qos, QoS::AtLeastOnce);
    let unsubscribe = wire![
        0xAA, 0x05, // UNSUBSCRIBE, DUP + QoS 1, remaining length 5
        0x00, 0x09, // packet id 9
        0x00, 0x01, "a", // topic filter "a"
    ];
    assert!(
        matches!(decode_ok(V31, &unsubscribe), Packet::Unsubscribe(u) if u.packet_id == pid(9))
    );
}

/// MQTT-3.6.1-1, MQTT-3.8.1-1, MQTT-3.10.1-1 (3.1.1, 5.0): the 3.1 tolerance of DUP on PUBREL,
/// SUBSCRIBE and UNSUBSCRIBE does not carry over to later versions.
#[test]
fn mqtt_3_6_1_1_mqtt_3_8_1_1_mqtt_3_10_1_1_dup_flag_rejected_after_v31() {
    for version in [V311, V5] {
        let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
        let pubrel = wire![0x6A, 0x02, 0x00, 0x07]; // PUBREL with flags 1010
        decode_err(
            version,
            &pubrel,
            |e| {
                matches!(
                    e,
                    Error::InvalidFlags {
                        packet: PacketType::PubRel,
                        flags: 0x0A
                    }
                )
            },
            Some("MQTT-3.6.1-1"),
            0x81,
        );
        let subscribe = wire![
            0x8A,
            0x06 + props.len() as u8, // SUBSCRIBE with flags 1010
            0x00,
            0x08,  // packet id 8
            props, // (5.0) property length 0
            0x00,
            0x01,
            "a",  // topic filter "a"
            0x01, // QoS 1
        ];
        decode_err(
            version,
            &subscribe,
            |e| {
                matches!(
                    e,
                    Error::InvalidFlags {
                        packet: PacketType::Subscribe,
                        flags: 0x0A
                    }
                )
            },
            Some("MQTT-3.8.1-1"),
            0x81,
        );
        let unsubscribe = wire![
            0xAA,
            0x05 + props.len() as u8, // UNSUBSCRIBE with flags 1010
            0x00,
            0x09,  // packet id 9
            props, // (5.0) property length 0
            0x00,
            0x01,
            "a", // topic filter "a"
        ];
        decode_err(
            version,
            &unsubscribe,
            |e| {
                matches!(
                    e,
                    Error::InvalidFlags {
                        packet: PacketType::Unsubscribe,
                        flags: 0x0A
                    }
                )
            },
            Some("MQTT-3.10.1-1"),
            0x81,
        );
    }
}

/// MQTT 3.1.1 section 2.2.1 / MQTT 5.0 section 2.1.2 (all versions): packet type 0 is reserved
/// ("Forbidden"), for client- and server-side decoders alike.
#[test]
fn v5_2_1_2_packet_type_0_is_reserved() {
    let expect = Expect {
        statement: None,
        check_statement: true,
        reason: 0x81,
    };
    for version in ProtocolVersion::ALL {
        for bytes in [&[0x00, 0x00][..], &[0x02, 0x00]] {
            let invalid = |e: &Error| matches!(e, Error::InvalidPacketType { bits: 0 });
            decode_err_using(Decoder::new(version), version, bytes, &invalid, &expect);
            decode_err_using(Decoder::server(), version, bytes, &invalid, &expect);
        }
    }
}

/// MQTT 3.1.1 section 2.2.1 (3.1, 3.1.1): packet type 15 is reserved before 5.0 made it AUTH.
#[test]
fn v311_2_2_1_packet_type_15_is_reserved_before_v5() {
    let expect = Expect {
        statement: None,
        check_statement: true,
        reason: 0x81,
    };
    for version in V3 {
        decode_err_using(
            Decoder::new(version),
            version,
            &[0xF0, 0x00],
            &|e| matches!(e, Error::InvalidPacketType { bits: 15 }),
            &expect,
        );
    }
}

/// MQTT-3.3.1-4 (3.1.1, 5.0; also 3.1): a PUBLISH with both QoS bits set is malformed, refused
/// from the first byte.
#[test]
fn mqtt_3_3_1_4_publish_qos_3_is_malformed() {
    for version in ProtocolVersion::ALL {
        let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
        for first in [0x36, 0x37, 0x3E, 0x3F] {
            let bytes = wire![
                first,
                0x05 + props.len() as u8, // PUBLISH with QoS bits 11
                0x00,
                0x01,
                "t", // topic name "t"
                0x00,
                0x01,  // packet id 1
                props, // (5.0) property length 0
            ];
            let qos3 = |e: &Error| {
                matches!(
                    e,
                    Error::InvalidQoS {
                        packet: PacketType::Publish
                    }
                )
            };
            decode_err(version, &bytes, qos3, Some("MQTT-3.3.1-4"), 0x81);
            // The fixed header alone is enough.
            decode_err_using(
                Decoder::new(version),
                version,
                &bytes[..2],
                &qos3,
                &Expect {
                    statement: Some("MQTT-3.3.1-4"),
                    check_statement: true,
                    reason: 0x81,
                },
            );
        }
    }
}

/// MQTT-3.3.1-2 (3.1.1, 5.0; also 3.1): DUP must be 0 on a QoS 0 PUBLISH.
#[test]
fn mqtt_3_3_1_2_dup_must_be_zero_on_qos_0() {
    for version in ProtocolVersion::ALL {
        let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
        for first in [0x38, 0x39] {
            let bytes = wire![
                first,
                0x03 + props.len() as u8, // PUBLISH, DUP set, QoS 0 (retain in 0x39)
                0x00,
                0x01,
                "t",   // topic name "t"
                props, // (5.0) property length 0
            ];
            decode_err(
                version,
                &bytes,
                |e| matches!(e, Error::DupOnQoS0),
                Some("MQTT-3.3.1-2"),
                0x81,
            );
        }
    }
}

/// MQTT-2.3.1-1 (3.1.1) / MQTT-2.2.1-3 (5.0): SUBSCRIBE, UNSUBSCRIBE and QoS 1/2 PUBLISH carry a
/// non-zero packet identifier, and so do the acknowledgements that echo one (MQTT-2.3.1-6/-7,
/// MQTT-2.2.1-5/-6).
#[test]
fn mqtt_2_3_1_1_mqtt_2_2_1_3_packet_identifier_must_be_non_zero() {
    let v3_cases: Vec<(PacketType, Vec<u8>)> = vec![
        (
            PacketType::Publish,
            wire![0x32, 0x05, 0x00, 0x01, "t", 0x00, 0x00],
        ), // QoS 1, id 0
        (
            PacketType::Publish,
            wire![0x34, 0x05, 0x00, 0x01, "t", 0x00, 0x00],
        ), // QoS 2, id 0
        (PacketType::PubAck, wire![0x40, 0x02, 0x00, 0x00]),
        (PacketType::PubRec, wire![0x50, 0x02, 0x00, 0x00]),
        (PacketType::PubRel, wire![0x62, 0x02, 0x00, 0x00]),
        (PacketType::PubComp, wire![0x70, 0x02, 0x00, 0x00]),
        // SUBSCRIBE id 0, filter "a" QoS 0
        (
            PacketType::Subscribe,
            wire![0x82, 0x06, 0x00, 0x00, 0x00, 0x01, "a", 0x00],
        ),
        (PacketType::SubAck, wire![0x90, 0x03, 0x00, 0x00, 0x00]), // id 0, granted QoS 0
        // UNSUBSCRIBE id 0, filter "a"
        (
            PacketType::Unsubscribe,
            wire![0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, "a"],
        ),
        (PacketType::UnsubAck, wire![0xB0, 0x02, 0x00, 0x00]),
    ];
    let v5_cases: Vec<(PacketType, Vec<u8>)> = vec![
        // QoS 1, id 0, property length 0
        (
            PacketType::Publish,
            wire![0x32, 0x06, 0x00, 0x01, "t", 0x00, 0x00, 0x00],
        ),
        (
            PacketType::Publish,
            wire![0x34, 0x06, 0x00, 0x01, "t", 0x00, 0x00, 0x00],
        ),
        (PacketType::PubAck, wire![0x40, 0x02, 0x00, 0x00]),
        (PacketType::PubRec, wire![0x50, 0x03, 0x00, 0x00, 0x10]),
        (PacketType::PubRel, wire![0x62, 0x02, 0x00, 0x00]),
        (
            PacketType::PubComp,
            wire![0x70, 0x04, 0x00, 0x00, 0x00, 0x00],
        ),
        // SUBSCRIBE id 0, property length 0, filter "a" QoS 0
        (
            PacketType::Subscribe,
            wire![0x82, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, "a", 0x00],
        ),
        (
            PacketType::SubAck,
            wire![0x90, 0x04, 0x00, 0x00, 0x00, 0x00],
        ),
        (
            PacketType::Unsubscribe,
            wire![0xA2, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, "a"],
        ),
        (
            PacketType::UnsubAck,
            wire![0xB0, 0x04, 0x00, 0x00, 0x00, 0x00],
        ),
    ];
    for version in V3 {
        for (packet, bytes) in &v3_cases {
            decode_err(
                version,
                bytes,
                |e| matches!(e, Error::ZeroPacketId { packet: p } if p == packet),
                Some("MQTT-2.3.1-1"),
                0x82,
            );
        }
    }
    for (packet, bytes) in &v5_cases {
        decode_err(
            V5,
            bytes,
            |e| matches!(e, Error::ZeroPacketId { packet: p } if p == packet),
            Some("MQTT-2.2.1-3"),
            0x82,
        );
    }
}

/// MQTT 5.0 section 4.13.1 / MQTT 3.1.1 section 1.5 (all versions): a length or field that runs
/// past the end of the packet is a malformed packet (not "need more bytes": the frame is whole).
#[test]
fn v5_4_13_1_field_past_end_of_packet_is_malformed() {
    let v3_cases: Vec<(PacketType, Vec<u8>)> = vec![
        // PUBLISH: topic length 5, one byte there.
        (PacketType::Publish, wire![0x30, 0x03, 0x00, 0x05, "t"]),
        // PUBLISH QoS 1 without its packet identifier.
        (PacketType::Publish, wire![0x32, 0x03, 0x00, 0x01, "t"]),
        // SUBSCRIBE: filter "a" without its options byte.
        (
            PacketType::Subscribe,
            wire![0x82, 0x05, 0x00, 0x01, 0x00, 0x01, "a"],
        ),
        // UNSUBSCRIBE: filter length 2, one byte there.
        (
            PacketType::Unsubscribe,
            wire![0xA2, 0x05, 0x00, 0x01, 0x00, 0x02, "a"],
        ),
        // PUBACK with one byte of packet identifier.
        (PacketType::PubAck, wire![0x40, 0x01, 0x00]),
        // CONNACK with only the flags byte.
        (PacketType::ConnAck, wire![0x20, 0x01, 0x00]),
        // CONNECT: user name flag set, user name missing.
        (
            PacketType::Connect,
            wire![
                0x10, 0x0D, // CONNECT, remaining length 13
                0x00, 0x04, "MQTT", // protocol name
                0x04,   // level 4
                0x82,   // flags: user name, clean session
                0x00, 0x3C, // keep alive 60
                0x00, 0x01, "c", // client id "c"; no user name follows
            ],
        ),
    ];
    for (packet, bytes) in &v3_cases {
        for version in V3 {
            decode_err(
                version,
                bytes,
                |e| matches!(e, Error::Truncated { packet: p } if p == packet),
                None,
                0x81,
            );
        }
    }
    let v5_cases: Vec<(PacketType, Vec<u8>)> = vec![
        // PUBLISH: property length 5, two bytes of properties there.
        (
            PacketType::Publish,
            wire![0x30, 0x06, 0x00, 0x01, "t", 0x05, 0x01, 0x01],
        ),
        // PUBLISH: property length missing altogether.
        (PacketType::Publish, wire![0x30, 0x03, 0x00, 0x01, "t"]),
        // PUBACK: property length 2, nothing after it.
        (
            PacketType::PubAck,
            wire![0x40, 0x04, 0x00, 0x01, 0x00, 0x02],
        ),
        // CONNACK without its property length.
        (PacketType::ConnAck, wire![0x20, 0x02, 0x00, 0x00]),
        // DISCONNECT: property length 3; Reason String length 10 inside.
        (
            PacketType::Disconnect,
            wire![0xE0, 0x05, 0x00, 0x03, 0x1F, 0x00, 0x0A],
        ),
    ];
    for (packet, bytes) in &v5_cases {
        decode_err(
            V5,
            bytes,
            |e| matches!(e, Error::Truncated { packet: p } if p == packet),
            None,
            0x81,
        );
    }
}

/// MQTT 5.0 section 4.13.1 / MQTT 3.1.1 section 4.8 (all versions): bytes left after the last
/// field of a packet make it malformed, for every kind of packet whose end is fixed.
#[test]
fn v5_4_13_1_trailing_bytes_after_last_field_are_malformed() {
    let v31_connect = wire![
        0x10, 0x10, // CONNECT, remaining length 16
        0x00, 0x06, "MQIsdp", // protocol name
        0x03,     // level 3
        0x02,     // flags: clean session
        0x00, 0x3C, // keep alive 60
        0x00, 0x01, "c",  // client id "c"
        0x00, // one byte too many
    ];
    let v311_connect = wire![
        0x10, 0x0E, // CONNECT, remaining length 14
        0x00, 0x04, "MQTT", // protocol name
        0x04,   // level 4
        0x02,   // flags: clean session
        0x00, 0x3C, // keep alive 60
        0x00, 0x01, "c",  // client id "c"
        0x00, // one byte too many
    ];
    let v3_cases: Vec<(PacketType, Vec<u8>)> = vec![
        (PacketType::ConnAck, wire![0x20, 0x03, 0x00, 0x00, 0x00]), // flags, code, extra
        (PacketType::PubAck, wire![0x40, 0x03, 0x00, 0x01, 0x00]),  // id 1, extra
        (PacketType::PubRec, wire![0x50, 0x03, 0x00, 0x01, 0x00]),
        (PacketType::PubRel, wire![0x62, 0x03, 0x00, 0x01, 0x00]),
        (PacketType::PubComp, wire![0x70, 0x03, 0x00, 0x01, 0x00]),
        (PacketType::UnsubAck, wire![0xB0, 0x03, 0x00, 0x01, 0x00]),
        (PacketType::PingReq, wire![0xC0, 0x01, 0x00]),
        (PacketType::PingResp, wire![0xD0, 0x01, 0x00]),
        (PacketType::Disconnect, wire![0xE0, 0x01, 0x00]),
    ];
    let trailing = |packet: PacketType| move |e: &Error| matches!(e, Error::TrailingBytes { packet: p, count: 1 } if *p == packet);
    decode_err(V31, &v31_connect, trailing(PacketType::Connect), None, 0x81);
    decode_err(
        V311,
        &v311_connect,
        trailing(PacketType::Connect),
        None,
        0x81,
    );
    for version in V3 {
        for (packet, bytes) in &v3_cases {
            decode_err(version, bytes, trailing(*packet), None, 0x81);
        }
    }
    let v5_connect = wire![
        0x10, 0x0F, // CONNECT, remaining length 15
        0x00, 0x04, "MQTT", // protocol name
        0x05,   // level 5
        0x02,   // flags: clean start
        0x00, 0x3C, // keep alive 60
        0x00, // property length 0
        0x00, 0x01, "c",  // client id "c"
        0x00, // one byte too many
    ];
    let v5_cases: Vec<(PacketType, Vec<u8>)> = vec![
        (PacketType::Connect, v5_connect),
        // flags, reason code, property length 0, extra
        (
            PacketType::ConnAck,
            wire![0x20, 0x04, 0x00, 0x00, 0x00, 0x00],
        ),
        // id 1, reason code, property length 0, extra
        (
            PacketType::PubAck,
            wire![0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00],
        ),
        (
            PacketType::PubRec,
            wire![0x50, 0x05, 0x00, 0x01, 0x10, 0x00, 0x00],
        ),
        (
            PacketType::PubRel,
            wire![0x62, 0x05, 0x00, 0x01, 0x92, 0x00, 0x00],
        ),
        (
            PacketType::PubComp,
            wire![0x70, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00],
        ),
        (PacketType::PingReq, wire![0xC0, 0x01, 0x00]),
        (PacketType::PingResp, wire![0xD0, 0x01, 0x00]),
        // reason code, property length 0, extra
        (PacketType::Disconnect, wire![0xE0, 0x03, 0x00, 0x00, 0x00]),
        (PacketType::Auth, wire![0xF0, 0x03, 0x18, 0x00, 0x00]),
    ];
    for (packet, bytes) in &v5_cases {
        decode_err(V5, bytes, trailing(*packet), None, 0x81);
    }
}
