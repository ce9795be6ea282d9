//! The framer: turns a byte stream into packets, one complete frame at a time.

use bytes::BytesMut;

use crate::packet::{FixedHeader, decode_frame, peek_version};
use crate::{Error, Packet, ProtocolVersion};

/// The room a buffer waiting for a frame is given at least (unless the frame is smaller), so
/// that reads stay large.
pub const MIN_READ_BUFFER: usize = 8 * 1024;

/// Makes room in `buf` for more of a frame of `frame_len` bytes, of which `buf.len()` are
/// there. The buffer follows the bytes actually received: it at most doubles what has arrived
/// (with [`MIN_READ_BUFFER`] as the floor) and never exceeds the frame, so a peer that announces
/// a large packet and sends nothing more costs no more than a small read buffer, and a frame
/// that does arrive is never given room beyond its size. (`BytesMut::reserve` could double an
/// allocation past the frame, so the partial frame is copied into an exactly sized one instead;
/// with doubling, that copying adds up to at most the frame's size.)
fn make_room(buf: &mut BytesMut, frame_len: usize) {
    let want = frame_len.min(buf.len().saturating_mul(2).max(MIN_READ_BUFFER));
    // Reuse the allocation the frames were split from when nothing else holds it any more.
    if buf.capacity() >= want || buf.try_reclaim(want - buf.len()) {
        return;
    }
    let mut grown = BytesMut::with_capacity(want);
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
/// packet type or invalid flags are refused before the rest is buffered. While a frame arrives,
/// the buffer grows with the bytes actually received (at most doubling them, never beyond the
/// frame): announcing a large packet reserves nothing.
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

    /// The version in use; `None` while a server decoder waits for CONNECT. After a CONNECT,
    /// valid or not, it is the version that CONNECT announced (if its protocol name and level
    /// were valid), so that the CONNACK answering it can be written in that version.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Sets the version in use.
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = Some(version);
    }

    /// Takes the next complete packet off the front of `buf`.
    ///
    /// When it returns `Ok(None)` with part of a frame buffered, `buf` has spare capacity for
    /// more of that frame, sized as described on [`Decoder`]. With less than a fixed header
    /// buffered it reserves nothing: how much an idle connection holds is the caller's choice.
    ///
    /// # Errors
    /// Any violation of the standard in the bytes; see [`Error`].
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, Error> {
        let Some(header) = FixedHeader::parse(buf)? else {
            // No frame started: how much to read next (and whether an idle connection holds a
            // buffer at all) is the caller's decision.
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
            make_room(buf, frame_len);
            return Ok(None);
        }
        let frame = buf.split_to(frame_len).freeze();
        if self.version.is_none() {
            // A server adopts the CONNECT's version, even when the rest of the CONNECT turns
            // out to be invalid: the CONNACK that refuses it must be in that version.
            self.version = frame.get(header.header_len..).and_then(peek_version);
        }
        decode_frame(frame, header, packet_type, self.version).map(Some)
    }
}
