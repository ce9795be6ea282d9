//! The packet model: one enum over the fifteen control packets, shared by every protocol
//! version, and the dispatch from a frame to the parser of its type (and back to bytes).

mod ack;
mod connack;
mod connect;
mod disconnect;
mod publish;
mod subscribe;
mod unsubscribe;

pub use ack::{PubAck, PubComp, PubRec, PubRel};
pub use connack::ConnAck;
pub(crate) use connect::peek_version;
pub use connect::{Connect, Will};
pub use disconnect::{Auth, Disconnect};
pub use publish::{DeliveryProperties, Envelope, Publish};
pub use subscribe::{SubAck, Subscribe, Subscription};
pub use unsubscribe::{UnsubAck, Unsubscribe};

pub(crate) use publish::Publish as PublishPacket;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::decode::Cx;
use crate::{Error, PacketType, ProtocolVersion, varint};

/// An MQTT control packet of any protocol version.
///
/// Fields that only MQTT 5.0 has (reason codes on acknowledgements, properties) hold their
/// defaults when decoded from 3.x and are left out when encoding for 3.x. The large and rare
/// CONNECT, CONNACK, DISCONNECT and AUTH are boxed so that the enum stays small for PUBLISH;
/// `Packet::from(packet)` builds any variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT.
    Connect(Box<Connect>),
    /// CONNACK.
    ConnAck(Box<ConnAck>),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK.
    PubAck(PubAck),
    /// PUBREC.
    PubRec(PubRec),
    /// PUBREL.
    PubRel(PubRel),
    /// PUBCOMP.
    PubComp(PubComp),
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK.
    SubAck(SubAck),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK.
    UnsubAck(UnsubAck),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect(Box<Disconnect>),
    /// AUTH (5.0 only).
    Auth(Box<Auth>),
}

/// `Packet::from(x)` for every packet struct, boxing the ones the enum keeps boxed.
macro_rules! impl_from {
    ($($variant:ident),*; boxed $($boxed:ident),*) => {
        $(
            impl From<$variant> for Packet {
                fn from(packet: $variant) -> Self {
                    Self::$variant(packet)
                }
            }
        )*
        $(
            impl From<$boxed> for Packet {
                fn from(packet: $boxed) -> Self {
                    Self::$boxed(Box::new(packet))
                }
            }
        )*
    };
}

impl_from!(Publish, PubAck, PubRec, PubRel, PubComp, Subscribe, SubAck, Unsubscribe, UnsubAck;
    boxed Connect, ConnAck, Disconnect, Auth);

impl Packet {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::ConnAck(_) => PacketType::ConnAck,
            Self::Publish(_) => PacketType::Publish,
            Self::PubAck(_) => PacketType::PubAck,
            Self::PubRec(_) => PacketType::PubRec,
            Self::PubRel(_) => PacketType::PubRel,
            Self::PubComp(_) => PacketType::PubComp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::SubAck(_) => PacketType::SubAck,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::UnsubAck(_) => PacketType::UnsubAck,
            Self::PingReq => PacketType::PingReq,
            Self::PingResp => PacketType::PingResp,
            Self::Disconnect(_) => PacketType::Disconnect,
            Self::Auth(_) => PacketType::Auth,
        }
    }

    /// The Remaining Length this packet has in `version`, after checking it can be written
    /// there. CONNECT always uses its own version.
    #[inline]
    fn body_len(&self, version: ProtocolVersion) -> Result<usize, Error> {
        match self {
            Self::Connect(p) => p.body_len(),
            Self::ConnAck(p) => p.body_len(version),
            Self::Publish(p) => p.body_len(p.envelope(), version),
            Self::PubAck(p) => p.body_len(version),
            Self::PubRec(p) => p.body_len(version),
            Self::PubRel(p) => p.body_len(version),
            Self::PubComp(p) => p.body_len(version),
            Self::Subscribe(p) => p.body_len(version),
            Self::SubAck(p) => p.body_len(version),
            Self::Unsubscribe(p) => p.body_len(version),
            Self::UnsubAck(p) => p.body_len(version),
            Self::PingReq | Self::PingResp => Ok(0),
            Self::Disconnect(p) => p.body_len(version),
            Self::Auth(p) => p.body_len(version),
        }
    }

    #[inline]
    fn put_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        match self {
            Self::Connect(p) => p.put_body(buf),
            Self::ConnAck(p) => p.put_body(version, buf),
            // Packet::encode hands PUBLISH to Publish::encode before getting here.
            Self::Publish(_) => {}
            Self::PubAck(p) => p.put_body(version, buf),
            Self::PubRec(p) => p.put_body(version, buf),
            Self::PubRel(p) => p.put_body(version, buf),
            Self::PubComp(p) => p.put_body(version, buf),
            Self::Subscribe(p) => p.put_body(version, buf),
            Self::SubAck(p) => p.put_body(version, buf),
            Self::Unsubscribe(p) => p.put_body(version, buf),
            Self::UnsubAck(p) => p.put_body(version, buf),
            Self::PingReq | Self::PingResp => {}
            Self::Disconnect(p) => p.put_body(version, buf),
            Self::Auth(p) => p.put_body(buf),
        }
    }

    /// The first byte of every packet but PUBLISH, whose flags vary (see `Publish::encode`).
    fn first_byte(&self) -> u8 {
        let packet_type = self.packet_type();
        ((packet_type as u8) << 4) | packet_type.required_flags()
    }

    /// The exact number of bytes [`Packet::encode`] writes for this packet in `version`.
    ///
    /// # Errors
    /// As [`Packet::encode`], except that no size limit applies.
    pub fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, Error> {
        let body = self.body_len(version)?;
        Ok(1 + varint::len_usize(body) + body)
    }

    /// Appends the packet, as `version` has it, to `buf`, and returns how many bytes it took.
    ///
    /// Nothing is written when it fails: [`Error::PacketTooLarge`] when the packet would exceed
    /// `max_packet_size` (or the protocol's limit of 268,435,455 bytes of Remaining Length),
    /// [`Error::FieldTooLong`] for Binary Data over 65,535 bytes, [`Error::NotInVersion`] for
    /// AUTH before 5.0, and the decoding error our own decoder would report for a packet that
    /// breaks the standard (DUP on QoS 0, a SUBSCRIBE without filters, a reason code the packet
    /// type does not allow, ...).
    pub fn encode(
        &self,
        version: ProtocolVersion,
        max_packet_size: u32,
        buf: &mut BytesMut,
    ) -> Result<usize, Error> {
        if let Self::Publish(publish) = self {
            return publish.encode(version, max_packet_size, buf);
        }
        let body = self.body_len(version)?;
        write_frame(self.first_byte(), body, 0, max_packet_size, buf, |buf| {
            self.put_body(version, buf)
        })
    }
}

/// Writes a fixed header and a body of `body` bytes (written by `put_body`, except for its last
/// `unwritten` bytes, which the caller sends itself), after checking the size against
/// `max_packet_size` and the protocol's limit; returns the size of the whole packet.
#[inline]
pub(crate) fn write_frame(
    first_byte: u8,
    body: usize,
    unwritten: usize,
    max_packet_size: u32,
    buf: &mut BytesMut,
    put_body: impl FnOnce(&mut BytesMut),
) -> Result<usize, Error> {
    let size = 1 + varint::len_usize(body) + body;
    let remaining = match u32::try_from(body) {
        Ok(remaining) if remaining <= varint::MAX && size as u64 <= u64::from(max_packet_size) => {
            remaining
        }
        _ => {
            return Err(Error::PacketTooLarge {
                size: size as u64,
                max: max_packet_size,
            });
        }
    };
    buf.reserve(size - unwritten);
    let start = buf.len();
    buf.put_u8(first_byte);
    varint::put(buf, remaining);
    put_body(buf);
    debug_assert_eq!(
        buf.len() - start + unwritten,
        size,
        "encoded_len disagrees with encode"
    );
    Ok(size)
}

/// The fixed header of a frame: the first byte and the Remaining Length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// Packet type (high four bits) and flags (low four bits).
    pub first_byte: u8,
    /// The number of bytes after the fixed header.
    pub remaining_length: u32,
    /// The size of the fixed header itself: 2 to 5 bytes.
    pub header_len: usize,
}

impl FixedHeader {
    /// Reads the fixed header from the front of `bytes`: `Ok(None)` until it is complete.
    ///
    /// # Errors
    /// [`Error::VarIntTooLong`] if the Remaining Length runs past four bytes.
    pub fn parse(bytes: &[u8]) -> Result<Option<Self>, Error> {
        let Some((&first_byte, rest)) = bytes.split_first() else {
            return Ok(None);
        };
        Ok(varint::read(rest)?.map(|len| Self {
            first_byte,
            remaining_length: len.value,
            header_len: 1 + len.len,
        }))
    }

    /// The size of the whole packet.
    pub fn frame_len(&self) -> u64 {
        self.header_len as u64 + u64::from(self.remaining_length)
    }

    /// The low four bits of the first byte.
    pub fn flags(&self) -> u8 {
        self.first_byte & 0x0F
    }

    /// Whether the Remaining Length uses more bytes than needed (allowed before 5.0 only).
    fn is_minimal(&self) -> bool {
        self.header_len - 1 == varint::len(self.remaining_length)
    }

    /// Checks the packet type and flags against `version` (`None` before CONNECT), so a bad
    /// first byte is refused before the rest of the packet is buffered.
    pub fn check(&self, version: Option<ProtocolVersion>) -> Result<PacketType, Error> {
        let bits = self.first_byte >> 4;
        let packet =
            PacketType::from_bits(bits, version).ok_or(Error::InvalidPacketType { bits })?;
        let flags = self.flags();
        if version.is_none() && packet != PacketType::Connect {
            return Err(Error::FirstPacketNotConnect { packet });
        }
        if packet == PacketType::Publish {
            PublishPacket::check_flags(flags)?;
            return Ok(packet);
        }
        let required = packet.required_flags();
        // MQTT 3.1 sent PUBREL, SUBSCRIBE and UNSUBSCRIBE as QoS 1 messages, with DUP set on
        // retries: tolerate that one bit there.
        let tolerated =
            version == Some(ProtocolVersion::V3_1) && required != 0 && flags == required | 0x08;
        if flags != required && !tolerated {
            return Err(Error::InvalidFlags { packet, flags });
        }
        Ok(packet)
    }
}

/// Parses a complete frame whose header has passed [`FixedHeader::check`]. `version` is `None`
/// only for a CONNECT, which brings its own.
#[inline]
pub(crate) fn decode_frame(
    mut frame: Bytes,
    header: FixedHeader,
    packet_type: PacketType,
    version: Option<ProtocolVersion>,
) -> Result<Packet, Error> {
    let body = frame.get(header.header_len..).unwrap_or_default();
    let cx = Cx::new(&frame, packet_type, version.unwrap_or(ProtocolVersion::V5));
    if cx.version.is_v5() && version.is_some() && !header.is_minimal() {
        return Err(Error::NonMinimalVarInt);
    }
    let packet = match packet_type {
        PacketType::Connect => cx
            .finish(Connect::parse(body, &cx))
            .map(|p| Packet::Connect(Box::new(p))),
        PacketType::ConnAck => cx
            .finish(ConnAck::parse(body, &cx))
            .map(|p| Packet::ConnAck(Box::new(p))),
        PacketType::Publish => {
            let (payload_len, mut publish) =
                cx.finish_with_rest(Publish::parse(body, &cx, header.flags()))?;
            // The payload is the end of the frame: keep the frame itself, advanced past the
            // header, rather than sharing a slice of it.
            frame.advance(frame.len() - payload_len);
            publish.payload = frame;
            return Ok(Packet::Publish(publish));
        }
        PacketType::PubAck => cx.finish(PubAck::parse(body, &cx)).map(Packet::PubAck),
        PacketType::PubRec => cx.finish(PubRec::parse(body, &cx)).map(Packet::PubRec),
        PacketType::PubRel => cx.finish(PubRel::parse(body, &cx)).map(Packet::PubRel),
        PacketType::PubComp => cx.finish(PubComp::parse(body, &cx)).map(Packet::PubComp),
        PacketType::Subscribe => cx
            .finish(Subscribe::parse(body, &cx))
            .map(Packet::Subscribe),
        PacketType::SubAck => cx.finish(SubAck::parse(body, &cx)).map(Packet::SubAck),
        PacketType::Unsubscribe => cx
            .finish(Unsubscribe::parse(body, &cx))
            .map(Packet::Unsubscribe),
        PacketType::UnsubAck => cx.finish(UnsubAck::parse(body, &cx)).map(Packet::UnsubAck),
        PacketType::PingReq => cx.finish(cx.end(body)).map(|()| Packet::PingReq),
        PacketType::PingResp => cx.finish(cx.end(body)).map(|()| Packet::PingResp),
        PacketType::Disconnect => cx
            .finish(Disconnect::parse(body, &cx))
            .map(|p| Packet::Disconnect(Box::new(p))),
        PacketType::Auth => cx
            .finish(Auth::parse(body, &cx))
            .map(|p| Packet::Auth(Box::new(p))),
    }?;
    if let Packet::Connect(connect) = &packet
        && connect.protocol.is_v5()
        && !header.is_minimal()
    {
        return Err(Error::NonMinimalVarInt);
    }
    Ok(packet)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every decoded packet is moved a few times on its way out of the decoder: the enum is
    /// kept small (the rare, large packets are boxed, PUBLISH properties are out of line).
    #[test]
    fn packet_stays_small() {
        assert!(size_of::<Publish>() <= 80, "{}", size_of::<Publish>());
        assert!(size_of::<Packet>() <= 96, "{}", size_of::<Packet>());
    }
}
