//! PINGREQ, PINGRESP, DISCONNECT and AUTH (MQTT 3.1.1 sections 3.12 to 3.14, MQTT 5.0 sections
//! 3.12 to 3.15).

use mqtt_codec::{
    Auth, AuthProperties, Disconnect, DisconnectProperties, Error, Packet, PacketType,
    ProtocolVersion, ReasonCode, Secret,
};

use bytes::BytesMut;

use crate::helpers::{V3, V5, decode_err, decode_ok, s, up, wire};

/// MQTT 3.1.1 sections 3.12, 3.13 / MQTT 5.0 sections 3.12, 3.13 (all versions): PINGREQ and
/// PINGRESP are a fixed header with Remaining Length 0.
#[test]
fn v5_3_12_pingreq_and_pingresp_decode() {
    for version in ProtocolVersion::ALL {
        assert_eq!(decode_ok(version, &[0xC0, 0x00]), Packet::PingReq);
        assert_eq!(decode_ok(version, &[0xD0, 0x00]), Packet::PingResp);
    }
}

/// MQTT 3.1.1 section 3.14 (3.1, 3.1.1): DISCONNECT has no variable header or payload.
#[test]
fn v311_3_14_disconnect_decodes() {
    for version in V3 {
        assert_eq!(
            decode_ok(version, &[0xE0, 0x00]),
            Packet::from(Disconnect::new(ReasonCode::Success))
        );
    }
}

/// MQTT 5.0 sections 3.14.2.1 and 3.14.2.2.1: DISCONNECT may leave out the reason code
/// (Remaining Length 0: normal disconnection) and the property length (Remaining Length 1).
#[test]
fn v5_3_14_2_disconnect_short_forms_decode() {
    let normal = Packet::from(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION));
    assert_eq!(decode_ok(V5, &[0xE0, 0x00]), normal);
    assert_eq!(decode_ok(V5, &[0xE0, 0x01, 0x00]), normal); // reason code 0, no properties
    assert_eq!(decode_ok(V5, &[0xE0, 0x02, 0x00, 0x00]), normal); // ... property length 0
    assert_eq!(
        decode_ok(V5, &[0xE0, 0x01, 0x04]), // Disconnect with Will Message
        Packet::from(Disconnect::new(ReasonCode::DisconnectWithWillMessage))
    );
    assert_eq!(
        decode_ok(V5, &[0xE0, 0x02, 0x8E, 0x00]), // Session taken over, property length 0
        Packet::from(Disconnect::new(ReasonCode::SessionTakenOver))
    );
}

/// MQTT 5.0 section 3.14.2.2: every DISCONNECT property.
#[test]
fn v5_3_14_2_2_every_disconnect_property_decodes() {
    let bytes = wire![
        0xE0, 0x18, // DISCONNECT, remaining length 24
        0x9C, // Use another server
        0x16, // property length 22
        0x11, 0x00, 0x00, 0x00, 0x00, // Session Expiry Interval 0
        0x1F, 0x00, 0x02, "by", // Reason String "by"
        0x26, 0x00, 0x01, "k", 0x00, 0x01, "v", // User Property k=v
        0x1C, 0x00, 0x02, "s2", // Server Reference "s2"
    ];
    let expected = Disconnect {
        reason_code: ReasonCode::UseAnotherServer,
        properties: DisconnectProperties {
            session_expiry_interval: Some(0),
            reason_string: Some(s("by")),
            user_properties: vec![up("k", "v")],
            server_reference: Some(s("s2")),
        },
    };
    assert_eq!(decode_ok(V5, &bytes), Packet::from(expected));
}

/// MQTT-3.14.2-1 (5.0): every reason code of Table 3-10 decodes (and 0x8C, listed for
/// DISCONNECT in Table 2-6, is tolerated).
#[test]
fn mqtt_3_14_2_1_v5_disconnect_reason_codes_of_table_3_10_decode() {
    let table = [
        0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
        0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2, 0x8C,
    ];
    for code in table {
        let bytes = wire![0xE0, 0x01, code]; // DISCONNECT with reason code `code`
        let Packet::Disconnect(disconnect) = decode_ok(V5, &bytes) else {
            panic!("not a DISCONNECT");
        };
        assert_eq!(disconnect.reason_code.get(), code);
    }
}

/// MQTT-3.14.2-1 (5.0): DISCONNECT carries only the reason codes of Table 3-10.
#[test]
fn mqtt_3_14_2_1_v5_disconnect_reason_code_not_allowed_is_rejected() {
    for code in [
        0x01, 0x02, 0x03, 0x10, 0x11, 0x18, 0x19, 0x84, 0x85, 0x86, 0x88, 0x8A, 0x91, 0x92, 0xFF,
    ] {
        let bytes = wire![0xE0, 0x01, code]; // DISCONNECT with reason code `code`
        decode_err(
            V5,
            &bytes,
            |e| matches!(e, Error::InvalidReasonCode { packet: PacketType::Disconnect, code: c } if *c == code),
            Some("MQTT-3.14.2-1"),
            0x81,
        );
    }
}

/// MQTT 5.0 section 3.15.2.1: an AUTH with Remaining Length 0 is Success without properties.
#[test]
fn v5_3_15_2_1_auth_with_remaining_length_0_is_success() {
    assert_eq!(
        decode_ok(V5, &[0xF0, 0x00]),
        Packet::from(Auth::new(ReasonCode::Success))
    );
}

/// MQTT 5.0 section 3.15.2.2.2: "It is a Protocol Error to omit the Authentication Method"
/// from an AUTH that is not the Remaining Length 0 short form.
#[test]
fn v5_3_15_2_2_2_auth_without_method_is_protocol_error() {
    for bytes in [
        &[0xF0, 0x02, 0x19, 0x00][..], // Re-authenticate, no properties
        &[0xF0, 0x05, 0x18, 0x03, 0x16, 0x00, 0x00][..], // data, but no method
    ] {
        decode_err(
            V5,
            bytes,
            |e| matches!(e, Error::AuthWithoutMethod),
            None,
            0x82,
        );
    }
    let mut buf = BytesMut::new();
    assert!(matches!(
        Packet::from(Auth::new(ReasonCode::ReAuthenticate)).encode(V5, 1024, &mut buf),
        Err(Error::AuthWithoutMethod)
    ));
    assert!(buf.is_empty());
}

/// MQTT 5.0 section 3.15.2.2: every AUTH property.
#[test]
fn v5_3_15_2_2_every_auth_property_decodes() {
    let bytes = wire![
        0xF0, 0x1A, // AUTH, remaining length 26
        0x18, // Continue authentication
        0x18, // property length 24
        0x15, 0x00, 0x05, "SCRAM", // Authentication Method "SCRAM"
        0x16, 0x00, 0x02, 0x0A, 0x0B, // Authentication Data [0A 0B]
        0x1F, 0x00, 0x01, "c", // Reason String "c"
        0x26, 0x00, 0x01, "k", 0x00, 0x01, "v", // User Property k=v
    ];
    let expected = Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: AuthProperties {
            authentication_method: Some(s("SCRAM")),
            authentication_data: Some(Secret::from(&[0x0A, 0x0B][..])),
            reason_string: Some(s("c")),
            user_properties: vec![up("k", "v")],
        },
    };
    assert_eq!(decode_ok(V5, &bytes), Packet::from(expected));
}

/// MQTT-3.15.2-1 (5.0): AUTH carries only 0x00, 0x18 or 0x19.
#[test]
fn mqtt_3_15_2_1_v5_auth_reason_code_not_allowed_is_rejected() {
    for code in [0x01, 0x03, 0x04, 0x10, 0x80, 0x87, 0x8C] {
        let bytes = wire![0xF0, 0x02, code, 0x00]; // AUTH, reason `code`, property length 0
        decode_err(
            V5,
            &bytes,
            |e| matches!(e, Error::InvalidReasonCode { packet: PacketType::Auth, code: c } if *c == code),
            Some("MQTT-3.15.2-1"),
            0x81,
        );
    }
}

/// MQTT 5.0 section 3.15.2.2.1: unlike PUBACK (3.4.2.2.1) and DISCONNECT (3.14.2.2.1), AUTH has
/// no rule letting the Property Length go on its own: it is omitted only together with the
/// reason code (Remaining Length 0). An AUTH of Remaining Length 1 lacks a field.
#[test]
fn v5_3_15_2_2_1_auth_reason_code_without_property_length_is_malformed() {
    let bytes = wire![0xF0, 0x01, 0x18]; // AUTH, Continue authentication, no property length
    decode_err(
        V5,
        &bytes,
        |e| {
            matches!(
                e,
                Error::Truncated {
                    packet: PacketType::Auth
                }
            )
        },
        None,
        0x81,
    );
}
