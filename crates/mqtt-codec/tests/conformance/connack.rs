//! CONNACK (MQTT 3.1 section 3.2, MQTT 3.1.1 section 3.2, MQTT 5.0 section 3.2).

use mqtt_codec::{ConnAck, Error, Packet, PacketType, ReasonCode};

use crate::helpers::{V3, V5, V31, V311, decode_err, decode_ok, wire};

fn connack(packet: Packet) -> ConnAck {
    match packet {
        Packet::ConnAck(connack) => *connack,
        other => panic!("not a CONNACK: {other:?}"),
    }
}

/// The 3.x return codes 0 to 5 and the reason each stands for (MQTT 3.1.1 Table 3.1).
const V3_RETURN_CODES: [(u8, ReasonCode); 6] = [
    (0, ReasonCode::Success),
    (1, ReasonCode::UnsupportedProtocolVersion),
    (2, ReasonCode::ClientIdentifierNotValid),
    (3, ReasonCode::ServerUnavailable),
    (4, ReasonCode::BadUserNameOrPassword),
    (5, ReasonCode::NotAuthorized),
];

/// MQTT 3.1 section 3.2: the first byte of the 3.1 CONNACK variable header is unused (there is
/// no session present flag), so any value is ignored; return codes 0 to 5 decode.
#[test]
fn v31_connack_first_byte_is_ignored() {
    for first in [0x00, 0x01, 0xFF] {
        let bytes = wire![
            0x20, 0x02,  // CONNACK, remaining length 2
            first, // reserved (unused) byte
            0x00,  // return code 0: accepted
        ];
        assert_eq!(
            connack(decode_ok(V31, &bytes)),
            ConnAck::new(ReasonCode::Success)
        );
    }
    for (code, reason) in V3_RETURN_CODES {
        let bytes = wire![0x20, 0x02, 0x00, code]; // CONNACK with return code `code`
        assert_eq!(connack(decode_ok(V31, &bytes)).reason_code, reason);
    }
}

/// MQTT 3.1.1 section 3.2.2.3 (Table 3.1): return codes 0 to 5.
#[test]
fn v311_3_2_2_3_connack_return_codes_0_to_5_decode() {
    for (code, reason) in V3_RETURN_CODES {
        let bytes = wire![
            0x20, 0x02, // CONNACK, remaining length 2
            0x00, // acknowledge flags: no session present
            code, // return code
        ];
        assert_eq!(connack(decode_ok(V311, &bytes)), ConnAck::new(reason));
    }
}

/// MQTT-3.2.2-2 (3.1.1): session present decodes when set with return code 0.
#[test]
fn mqtt_3_2_2_2_v311_session_present_decodes() {
    let bytes = wire![0x20, 0x02, 0x01, 0x00]; // CONNACK, session present, accepted
    let expected = ConnAck {
        session_present: true,
        ..ConnAck::new(ReasonCode::Success)
    };
    assert_eq!(connack(decode_ok(V311, &bytes)), expected);
}

/// MQTT 3.1.1 section 3.2.2.3 (3.1, 3.1.1): return codes 6 to 255 are reserved (3.1.1 gives this
/// rule no statement identifier).
#[test]
fn v311_3_2_2_3_connack_return_code_6_and_above_are_reserved() {
    for version in V3 {
        for code in [6, 0x80, 0x87, 0xFF] {
            let bytes = wire![0x20, 0x02, 0x00, code]; // CONNACK with reserved return code
            decode_err(
                version,
                &bytes,
                |e| matches!(e, Error::InvalidReasonCode { packet: PacketType::ConnAck, code: c } if *c == code),
                None,
                0x81,
            );
        }
    }
}

/// MQTT-3.2.2-4 (3.1.1): a CONNACK with a non-zero return code has session present 0.
#[test]
fn mqtt_3_2_2_4_v311_session_present_with_refusal_is_rejected() {
    for code in 1..=5 {
        let bytes = wire![0x20, 0x02, 0x01, code]; // session present, refused
        decode_err(
            V311,
            &bytes,
            |e| matches!(e, Error::SessionPresentOnFailure),
            Some("MQTT-3.2.2-4"),
            0x82,
        );
    }
}

/// MQTT-3.2.2-6 (5.0): a CONNACK with a non-zero reason code has session present 0.
#[test]
fn mqtt_3_2_2_6_v5_session_present_with_failure_is_rejected() {
    for code in [0x80, 0x87, 0x9F] {
        let bytes = wire![
            0x20, 0x03, // CONNACK, remaining length 3
            0x01, // session present
            code, // a failure reason code
            0x00, // property length 0
        ];
        decode_err(
            V5,
            &bytes,
            |e| matches!(e, Error::SessionPresentOnFailure),
            Some("MQTT-3.2.2-6"),
            0x82,
        );
    }
}

/// MQTT-3.2.2-1 (5.0): bits 7-1 of the Connect Acknowledge Flags are reserved and 0.
#[test]
fn mqtt_3_2_2_1_v5_connack_reserved_flags_must_be_zero() {
    for flags in [0x02, 0x03, 0x80, 0xFE] {
        let bytes = wire![
            0x20, 0x03,  // CONNACK, remaining length 3
            flags, // acknowledge flags with reserved bits set
            0x00,  // Success
            0x00,  // property length 0
        ];
        decode_err(
            V5,
            &bytes,
            |e| matches!(e, Error::ConnAckReservedFlags { flags: f } if *f == flags),
            Some("MQTT-3.2.2-1"),
            0x81,
        );
    }
}

/// MQTT 3.1.1 section 3.2.2.1 (no statement identifier): bits 7-1 of the Connect Acknowledge
/// Flags are reserved and must be 0.
#[test]
fn v311_3_2_2_1_connack_reserved_flags_must_be_zero() {
    for flags in [0x02, 0x80, 0xFF] {
        let bytes = wire![0x20, 0x02, flags, 0x00]; // CONNACK, reserved flag bits set
        decode_err(
            V311,
            &bytes,
            |e| matches!(e, Error::ConnAckReservedFlags { .. }),
            None,
            0x81,
        );
    }
}

/// MQTT-3.2.2-8 (5.0): every Connect Reason Code of Table 3-1 decodes.
#[test]
fn mqtt_3_2_2_8_v5_connack_reason_codes_of_table_3_1_decode() {
    let allowed = [
        0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95,
        0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
    ];
    for code in allowed {
        let bytes = wire![
            0x20, 0x03, // CONNACK, remaining length 3
            0x00, // no session present
            code, // reason code
            0x00, // property length 0
        ];
        let decoded = connack(decode_ok(V5, &bytes));
        assert_eq!(decoded.reason_code.get(), code);
        assert!(!decoded.session_present);
    }
}

/// MQTT-3.2.2-8 (5.0): a reason code not in Table 3-1 (including undefined ones) is refused.
#[test]
fn mqtt_3_2_2_8_v5_connack_reason_code_not_in_table_is_rejected() {
    for code in [
        0x01, 0x02, 0x03, 0x04, 0x10, 0x18, 0x8B, 0x8F, 0x91, 0x92, 0xA2, 0xFF,
    ] {
        let bytes = wire![0x20, 0x03, 0x00, code, 0x00]; // CONNACK with reason code `code`
        decode_err(
            V5,
            &bytes,
            |e| matches!(e, Error::InvalidReasonCode { packet: PacketType::ConnAck, code: c } if *c == code),
            Some("MQTT-3.2.2-8"),
            0x81,
        );
    }
}
