//! The framer: turns a byte stream into packets, one complete frame at a time.

use bytes::BytesMut;

use crate::packet::{FixedHeader, decode_frame};
use crate::{Error, Packet, ProtocolVersion};

/// Gives `buf` room for exactly `capacity` bytes. `BytesMut::reserve` may double an allocation
/// (amortised growth), which would let a peer make us hold twice the maximum packet size; the
/// partial frame (less than `capacity` bytes) is copied once instead.
fn grow_exactly(buf: &mut BytesMut, capacity: usize) {
    let mut grown = BytesMut::with_capacity(capacity);
    grown.extend_from_slice(buf);
    *buf = grown;
}

/// The largest packet the protocol can express: a 5-byte fixed header and 268,435,455 bytes.
pub const PROTOCOL_MAX_PACKET_SIZE: u32 = 268_435_460;

/// Decodes packets from a byte stream.
///
/// Feed it the bytes read from the connection in a [`BytesMut`]; each call to
/// [`Decoder::decode`] takes one complete packet off the front, or returns `Ok(None)` when the
/// buffer does not hold one yet ("need more bytes" is never an error). The fixed header is
/// checked as soon as it is complete: a packet larger than the maximum packet size, an invalid
/// packet type or invalid flags are refused before the rest is buffered, and when the buffer
/// must grow for a frame it grows to exactly that frame's size, never beyond the maximum packet
/// size.
///
/// The body is parsed from the complete frame, which is split off the buffer without copying:
/// topic names, payloads and other byte fields of the packet are slices of it.
///
/// After an error the stream cannot be resynchronised; close the connection.
///
/// ```
/// use bytes::BytesMut;
/// use mqtt_codec::{Decoder, Packet, ProtocolVersion};
///
/// let mut decoder = Decoder::new(ProtocolVersion::V3_1_1);
/// let mut buf = BytesMut::from(&[0xC0, 0x00, 0xD0][..]); // PINGREQ, then half a PINGRESP
/// assert_eq!(decoder.decode(&mut buf)?, Some(Packet::PingReq));
/// assert_eq!(decoder.decode(&mut buf)?, None);
/// buf.extend_from_slice(&[0x00]);
/// assert_eq!(decoder.decode(&mut buf)?, Some(Packet::PingResp));
/// # Ok::<(), mqtt_codec::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
}

impl Decoder {
    /// A decoder for a connection whose protocol version is known (a client's, or a server's
    /// after CONNECT), limited to the protocol's maximum packet size.
    pub fn new(version: ProtocolVersion) -> Self {
        Self {
            version: Some(version),
            max_packet_size: PROTOCOL_MAX_PACKET_SIZE,
        }
    }

    /// A decoder for the server side of a new connection: it accepts only CONNECT
    /// [MQTT-3.1.0-1], then speaks the version the CONNECT chose.
    pub fn server() -> Self {
        Self {
            version: None,
            max_packet_size: PROTOCOL_MAX_PACKET_SIZE,
        }
    }

    /// Sets the largest packet accepted, fixed header included. Larger packets fail with
    /// [`Error::PacketTooLarge`] as soon as their fixed header is read.
    pub fn with_max_packet_size(mut self, max_packet_size: u32) -> Self {
        self.max_packet_size = max_packet_size;
        self
    }

    /// The largest packet accepted.
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Changes the largest packet accepted.
    pub fn set_max_packet_size(&mut self, max_packet_size: u32) {
        self.max_packet_size = max_packet_size;
    }

    /// The version in use; `None` while a server decoder waits for CONNECT.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Sets the version in use.
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = Some(version);
    }

    /// Takes the next complete packet off the front of `buf`.
    ///
    /// # Errors
    /// Any violation of the standard in the bytes; see [`Error`].
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, Error> {
        let Some(header) = FixedHeader::parse(buf)? else {
            return Ok(None);
        };
        let packet_type = header.check(self.version)?;
        let frame_len = header.frame_len();
        if frame_len > u64::from(self.max_packet_size) {
            return Err(Error::PacketTooLarge {
                size: frame_len,
                max: self.max_packet_size,
            });
        }
        // At most PROTOCOL_MAX_PACKET_SIZE here, so the conversion cannot fail on any target
        // this crate supports (usize of 32 bits or more).
        let frame_len = usize::try_from(frame_len).map_err(|_| Error::PacketTooLarge {
            size: frame_len,
            max: self.max_packet_size,
        })?;
        if buf.len() < frame_len {
            if buf.capacity() < frame_len {
                grow_exactly(buf, frame_len);
            }
            return Ok(None);
        }
        let frame = buf.split_to(frame_len).freeze();
        let packet = decode_frame(frame, header, packet_type, self.version)?;
        if let (None, Packet::Connect(connect)) = (self.version, &packet) {
            self.version = Some(connect.protocol);
        }
        Ok(Some(packet))
    }
}
