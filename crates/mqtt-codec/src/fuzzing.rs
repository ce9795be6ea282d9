//! Entry points for the cargo-fuzz targets in `fuzz/` (compiled only under `cfg(fuzzing)`).
//! Each target is a one-line call into here, so the logic is reviewed with the crate.

// A failed assertion is how a fuzz target reports a finding.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;

use crate::{Decoder, Packet, ProtocolVersion};

/// The decoder the first input byte selects: the three versions, or a server awaiting CONNECT.
/// The second byte picks a maximum packet size, so small limits are exercised too.
fn decoder_for(data: &[u8]) -> (Decoder, &[u8]) {
    let (mode, limit, rest) = match data {
        [mode, limit, rest @ ..] => (*mode, *limit, rest),
        _ => (0, 0, &[][..]),
    };
    let decoder = match mode % 4 {
        0 => Decoder::server(),
        1 => Decoder::new(ProtocolVersion::V3_1),
        2 => Decoder::new(ProtocolVersion::V3_1_1),
        _ => Decoder::new(ProtocolVersion::V5),
    };
    let max = if limit == 0 {
        crate::PROTOCOL_MAX_PACKET_SIZE
    } else {
        u32::from(limit) * 64
    };
    (decoder.with_max_packet_size(max), rest)
}

/// Decodes packets from arbitrary bytes until the input is used up or an error; must never
/// panic, and must never ask for more buffer than the limit allows.
pub fn decode_any(data: &[u8]) {
    let (mut decoder, stream) = decoder_for(data);
    let mut buf = BytesMut::from(stream);
    let initial_capacity = buf.capacity();
    while let Ok(Some(_)) = decoder.decode(&mut buf) {}
    let limit = decoder.max_packet_size() as usize;
    assert!(
        buf.capacity() <= initial_capacity.max(limit),
        "decoder grew the buffer to {} for a limit of {limit}",
        buf.capacity()
    );
}

/// Every packet that decodes must encode to a packet that decodes to the same value, and
/// encode to the very same bytes again. The one deliberate exception: DISCONNECT 0x8C is
/// accepted but never sent (docs/adr/0001), so it must be refused by the encoder instead.
pub fn roundtrip(data: &[u8]) {
    let (mut decoder, stream) = decoder_for(data);
    let mut buf = BytesMut::from(stream);
    while let Ok(Some(packet)) = decoder.decode(&mut buf) {
        let version = match (&packet, decoder.version()) {
            (Packet::Connect(c), _) => c.protocol,
            (_, Some(v)) => v,
            (_, None) => return,
        };
        let mut wire = BytesMut::new();
        if let Packet::Disconnect(d) = &packet {
            if d.reason_code == crate::ReasonCode::BadAuthenticationMethod {
                assert!(
                    packet
                        .encode(version, crate::PROTOCOL_MAX_PACKET_SIZE, &mut wire)
                        .is_err()
                );
                continue;
            }
        }
        let len = packet
            .encode(version, crate::PROTOCOL_MAX_PACKET_SIZE, &mut wire)
            .unwrap_or_else(|e| panic!("decoded packet does not encode: {e}: {packet:?}"));
        assert_eq!(len, wire.len());
        assert_eq!(packet.encoded_len(version).ok(), Some(len));
        let first = wire.clone();
        let again = Decoder::new(version)
            .decode(&mut wire)
            .unwrap_or_else(|e| panic!("re-encoded packet does not decode: {e}: {packet:?}"));
        assert_eq!(again.as_ref(), Some(&packet));
        assert!(wire.is_empty());
        let mut second = BytesMut::new();
        let _ = again.map(|p| p.encode(version, crate::PROTOCOL_MAX_PACKET_SIZE, &mut second));
        assert_eq!(first, second, "encoding is not stable");
    }
}
