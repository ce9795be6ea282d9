//! The records of the durable store, and how they are framed on disk.
//!
//! A store file is a 16-byte header (magic, format version, kind) followed by records, each
//! framed as `[u32 length][u32 CRC-32 of the body][body]` (little endian). A body starts with
//! its type byte; integers are LEB128 varints, byte strings a varint length and the bytes, and
//! messages (and wills) are MQTT 5.0 PUBLISH packets written and read by our codec, so every
//! property travels unchanged. The last field of a body may take the rest of it.
//!
//! Sessions are named by a store-assigned number (`sid`) bound to the client identifier by an
//! [`Record::Open`]; messages by a number (`mid`) bound to the body by a
//! [`Record::Message`], written once however many sessions queue it.

use bytes::{BufMut, Bytes, BytesMut};
use mqtt_codec::{
    Decoder, Envelope, PROTOCOL_MAX_PACKET_SIZE, Packet, PacketId, ProtocolVersion, Publish,
    PublishProperties, QoS, QosPid, RetainHandling, SubscriptionId, SubscriptionOptions,
    TopicFilter, TopicName, Will, WillProperties,
};
use mqtt_topic::SubscriptionData;

/// The first bytes of every store file.
pub(crate) const MAGIC: &[u8; 8] = b"MQTTSTOR";
/// The format version written and read.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// The size of a file's header.
pub(crate) const HEADER_LEN: u64 = 16;
/// The size of a record's frame header (length and checksum).
pub(crate) const FRAME_LEN: usize = 8;

/// What a store file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum FileKind {
    /// The changes after a snapshot, in order.
    Log = 0,
    /// The whole state at the start of the log of the same number.
    Snapshot = 1,
}

/// The header of a store file of this kind.
pub(crate) fn header(kind: FileKind) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    let (magic, rest) = h.split_at_mut(8);
    magic.copy_from_slice(MAGIC);
    let (version, kind_bytes) = rest.split_at_mut(4);
    version.copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    kind_bytes.copy_from_slice(&(kind as u32).to_le_bytes());
    h
}

/// Whether `bytes` start with a valid header of this kind.
pub(crate) fn header_ok(bytes: &[u8], kind: FileKind) -> bool {
    bytes.get(..HEADER_LEN as usize) == Some(&header(kind)[..])
}

/// A record that does not decode: the end of the valid part of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Corrupt;

mod kind {
    pub(super) const MESSAGE: u8 = 1;
    pub(super) const OPEN: u8 = 2;
    pub(super) const EXPIRY: u8 = 3;
    pub(super) const ENDED: u8 = 4;
    pub(super) const CLEARED: u8 = 5;
    pub(super) const SUBSCRIBED: u8 = 6;
    pub(super) const UNSUBSCRIBED: u8 = 7;
    pub(super) const QUEUED: u8 = 8;
    pub(super) const SENT: u8 = 9;
    pub(super) const RECEIVED: u8 = 10;
    pub(super) const REMOVED: u8 = 11;
    pub(super) const INCOMING_QOS2: u8 = 12;
    pub(super) const INCOMING_RELEASED: u8 = 13;
    pub(super) const ATTACHED: u8 = 14;
    pub(super) const DETACHED: u8 = 15;
    pub(super) const DELAYED_WILL: u8 = 16;
    pub(super) const WILL_DONE: u8 = 17;
    pub(super) const RETAINED: u8 = 18;
    pub(super) const UNRETAINED: u8 = 19;
    pub(super) const END: u8 = 20;
    pub(super) const GROUP_COMMIT: u8 = 21;
}

/// A queued message's place in a session (the message itself is a [`Record::Message`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueuedRecord {
    pub(crate) sid: u64,
    pub(crate) entry: u64,
    pub(crate) mid: u64,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    /// Wall-clock milliseconds since the Unix epoch.
    pub(crate) expires: Option<u64>,
    pub(crate) identifiers: Vec<SubscriptionId>,
    pub(crate) shared: Option<TopicFilter>,
    /// The routing of a client's QoS 2 message this copy belongs to (0: none): it counts
    /// only once that routing's [`Record::IncomingQos2`] commits it.
    pub(crate) group: u64,
}

/// One record, decoded. Packets (messages, wills) stay encoded: they are decoded only when
/// needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// A message body: `size` is topic plus payload length, as a session's queue counts it.
    Message {
        mid: u64,
        size: u64,
        packet: Bytes,
    },
    Open {
        sid: u64,
        client_id: String,
    },
    Expiry {
        sid: u64,
        secs: u32,
    },
    Ended {
        sid: u64,
    },
    Cleared {
        sid: u64,
    },
    Subscribed {
        sid: u64,
        filter: TopicFilter,
        data: SubscriptionData,
    },
    Unsubscribed {
        sid: u64,
        filter: TopicFilter,
    },
    Queued(QueuedRecord),
    Sent {
        sid: u64,
        entry: u64,
        id: PacketId,
    },
    Received {
        sid: u64,
        entry: u64,
    },
    Removed {
        sid: u64,
        entry: u64,
    },
    /// A client's QoS 2 packet identifier awaiting PUBREL; with a group, it also commits the
    /// copies the routing of its message made.
    IncomingQos2 {
        sid: u64,
        id: PacketId,
        group: u64,
    },
    IncomingReleased {
        sid: u64,
        id: PacketId,
    },
    /// A connection attached, with its will (an empty packet: none), published if the broker
    /// stops before the connection ends.
    Attached {
        sid: u64,
        will_delay: u32,
        will: Bytes,
    },
    Detached {
        sid: u64,
        at: u64,
    },
    /// A will as a PUBLISH (its properties mapped), with its delay.
    DelayedWill {
        sid: u64,
        at: u64,
        delay: u32,
        packet: Bytes,
    },
    WillDone {
        sid: u64,
    },
    /// A retained message stored; with a group (a client's QoS 2 message), only once the group
    /// commits.
    Retained {
        expires: Option<u64>,
        group: u64,
        packet: Bytes,
    },
    Unretained {
        group: u64,
        topic: TopicName,
    },
    /// Commits a routing group whose client's session no longer awaits the packet identifier
    /// (it was discarded meanwhile).
    GroupCommit {
        group: u64,
    },
    /// The end of a complete snapshot, with the number of records before it.
    End {
        records: u64,
    },
}

/// Appends a framed record whose body `body` writes; returns the frame's length.
pub(crate) fn frame(buf: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) -> usize {
    let start = buf.len();
    buf.put_bytes(0, FRAME_LEN);
    body(buf);
    let len = buf.len() - start - FRAME_LEN;
    let crc = buf.get(start + FRAME_LEN..).map_or(0, crc32fast::hash);
    if let Some(head) = buf.get_mut(start..start + FRAME_LEN) {
        let (l, c) = head.split_at_mut(4);
        l.copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
        c.copy_from_slice(&crc.to_le_bytes());
    }
    buf.len() - start
}

/// Splits a frame's header: the body's length and checksum.
pub(crate) fn frame_header(bytes: &[u8; FRAME_LEN]) -> (u32, u32) {
    let [a, b, c, d, e, f, g, h] = *bytes;
    (
        u32::from_le_bytes([a, b, c, d]),
        u32::from_le_bytes([e, f, g, h]),
    )
}

/// Whether a body matches its checksum. (Under the fuzzer every body does, so that it reaches
/// the decoding of records instead of stopping at their checksums.)
pub(crate) fn check(body: &[u8], crc: u32) -> bool {
    cfg!(fuzzing) || crc32fast::hash(body) == crc
}

fn put_varint(buf: &mut BytesMut, mut v: u64) {
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            buf.put_u8(byte);
            return;
        }
        buf.put_u8(byte | 0x80);
    }
}

fn put_opt(buf: &mut BytesMut, v: Option<u64>) {
    put_varint(buf, v.map_or(0, |v| v.saturating_add(1)));
}

/// The options byte of a subscription, as in an MQTT 5.0 SUBSCRIBE.
fn options_byte(o: SubscriptionOptions) -> u8 {
    (o.qos as u8)
        | (u8::from(o.no_local) << 2)
        | (u8::from(o.retain_as_published) << 3)
        | ((o.retain_handling as u8) << 4)
}

fn options_from(byte: u8) -> Result<SubscriptionOptions, Corrupt> {
    let mut o = SubscriptionOptions::new(QoS::from_u8(byte & 0x03).ok_or(Corrupt)?);
    o.no_local = byte & 0x04 != 0;
    o.retain_as_published = byte & 0x08 != 0;
    o.retain_handling = RetainHandling::from_u8((byte >> 4) & 0x03).ok_or(Corrupt)?;
    Ok(o)
}

/// The packet of a message: a PUBLISH at its own QoS (packet identifier 1, no DUP), as MQTT 5.0.
pub(crate) fn put_publish(buf: &mut BytesMut, publish: &Publish) {
    put_publish_at(buf, publish, publish.qos.qos());
}

/// The packet of a message, at this QoS.
pub(crate) fn put_publish_at(buf: &mut BytesMut, publish: &Publish, qos: QoS) {
    let qos = match qos {
        QoS::AtMostOnce => QosPid::AtMostOnce,
        QoS::AtLeastOnce => QosPid::AtLeastOnce(PacketId::from(std::num::NonZeroU16::MIN)),
        QoS::ExactlyOnce => QosPid::ExactlyOnce(PacketId::from(std::num::NonZeroU16::MIN)),
    };
    let envelope = Envelope {
        qos,
        dup: false,
        retain: publish.retain,
    };
    // A message the broker routed was decoded by the same codec: it encodes. A message too
    // large for the protocol cannot exist; the record then holds an empty packet, which
    // decodes as nothing (the message is dropped on load, never mistaken for another).
    let _ = publish.encode_as(envelope, ProtocolVersion::V5, PROTOCOL_MAX_PACKET_SIZE, buf);
}

/// Decodes a message's packet.
pub(crate) fn decode_publish(packet: &[u8]) -> Option<Publish> {
    let mut buf = BytesMut::from(packet);
    let mut decoder =
        Decoder::new(ProtocolVersion::V5).with_max_packet_size(PROTOCOL_MAX_PACKET_SIZE);
    match decoder.decode(&mut buf) {
        Ok(Some(Packet::Publish(p))) if buf.is_empty() => Some(p),
        _ => None,
    }
}

/// A will as the PUBLISH it becomes (its delay is kept apart).
pub(crate) fn will_publish(will: &Will) -> Publish {
    let mut publish = Publish::new(will.topic.clone(), will.payload.clone());
    publish.retain = will.retain;
    publish.qos = match will.qos {
        QoS::AtMostOnce => QosPid::AtMostOnce,
        QoS::AtLeastOnce => QosPid::AtLeastOnce(PacketId::from(std::num::NonZeroU16::MIN)),
        QoS::ExactlyOnce => QosPid::ExactlyOnce(PacketId::from(std::num::NonZeroU16::MIN)),
    };
    let w = &will.properties;
    publish.set_properties(PublishProperties {
        payload_format_indicator: w.payload_format_indicator,
        message_expiry_interval: w.message_expiry_interval,
        content_type: w.content_type.clone(),
        response_topic: w.response_topic.clone(),
        correlation_data: w.correlation_data.clone(),
        user_properties: w.user_properties.clone(),
        ..PublishProperties::default()
    });
    publish
}

/// The will a stored PUBLISH and delay stand for.
pub(crate) fn will_from(publish: Publish, delay: u32) -> Will {
    let p = publish.properties().clone();
    Will {
        topic: publish.topic,
        payload: publish.payload,
        qos: publish.qos.qos(),
        retain: publish.retain,
        properties: WillProperties {
            will_delay_interval: (delay > 0).then_some(delay),
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            user_properties: p.user_properties,
        },
    }
}

/// Writes the body of a message record.
pub(crate) fn put_message(buf: &mut BytesMut, mid: u64, publish: &Publish) {
    buf.put_u8(kind::MESSAGE);
    put_varint(buf, mid);
    put_varint(buf, (publish.topic.len() + publish.payload.len()) as u64);
    put_publish(buf, publish);
}

/// Writes the body of a retained-message record.
pub(crate) fn put_retained(
    buf: &mut BytesMut,
    publish: &Publish,
    qos: QoS,
    expires: Option<u64>,
    group: u64,
) {
    buf.put_u8(kind::RETAINED);
    put_opt(buf, expires);
    put_varint(buf, group);
    put_publish_at(buf, publish, qos);
}

impl Record {
    /// Writes the record's body.
    pub(crate) fn put(&self, buf: &mut BytesMut) {
        let sid_only = |buf: &mut BytesMut, k: u8, sid: u64| {
            buf.put_u8(k);
            put_varint(buf, sid);
        };
        let entry = |buf: &mut BytesMut, k: u8, sid: u64, entry: u64| {
            buf.put_u8(k);
            put_varint(buf, sid);
            put_varint(buf, entry);
        };
        match self {
            Self::Message { mid, size, packet } => {
                buf.put_u8(kind::MESSAGE);
                put_varint(buf, *mid);
                put_varint(buf, *size);
                buf.put_slice(packet);
            }
            Self::Open { sid, client_id } => {
                sid_only(buf, kind::OPEN, *sid);
                buf.put_slice(client_id.as_bytes());
            }
            Self::Expiry { sid, secs } => {
                sid_only(buf, kind::EXPIRY, *sid);
                put_varint(buf, u64::from(*secs));
            }
            Self::Ended { sid } => sid_only(buf, kind::ENDED, *sid),
            Self::Cleared { sid } => sid_only(buf, kind::CLEARED, *sid),
            Self::Subscribed { sid, filter, data } => {
                sid_only(buf, kind::SUBSCRIBED, *sid);
                buf.put_u8(options_byte(data.options));
                put_varint(buf, data.identifier.map_or(0, |i| u64::from(i.get())));
                buf.put_slice(filter.as_str().as_bytes());
            }
            Self::Unsubscribed { sid, filter } => {
                sid_only(buf, kind::UNSUBSCRIBED, *sid);
                buf.put_slice(filter.as_str().as_bytes());
            }
            Self::Queued(q) => {
                entry(buf, kind::QUEUED, q.sid, q.entry);
                put_varint(buf, q.mid);
                buf.put_u8((q.qos as u8) | (u8::from(q.retain) << 2));
                put_opt(buf, q.expires);
                put_varint(buf, q.group);
                put_varint(buf, q.identifiers.len() as u64);
                for i in &q.identifiers {
                    put_varint(buf, u64::from(i.get()));
                }
                buf.put_slice(q.shared.as_ref().map_or(&[][..], |f| f.as_str().as_bytes()));
            }
            Self::Sent { sid, entry: e, id } => {
                entry(buf, kind::SENT, *sid, *e);
                put_varint(buf, u64::from(id.get()));
            }
            Self::Received { sid, entry: e } => entry(buf, kind::RECEIVED, *sid, *e),
            Self::Removed { sid, entry: e } => entry(buf, kind::REMOVED, *sid, *e),
            Self::IncomingQos2 { sid, id, group } => {
                sid_only(buf, kind::INCOMING_QOS2, *sid);
                put_varint(buf, u64::from(id.get()));
                put_varint(buf, *group);
            }
            Self::IncomingReleased { sid, id } => {
                sid_only(buf, kind::INCOMING_RELEASED, *sid);
                put_varint(buf, u64::from(id.get()));
            }
            Self::Attached {
                sid,
                will_delay,
                will,
            } => {
                sid_only(buf, kind::ATTACHED, *sid);
                put_varint(buf, u64::from(*will_delay));
                buf.put_slice(will);
            }
            Self::Detached { sid, at } => {
                sid_only(buf, kind::DETACHED, *sid);
                put_varint(buf, *at);
            }
            Self::DelayedWill {
                sid,
                at,
                delay,
                packet,
            } => {
                sid_only(buf, kind::DELAYED_WILL, *sid);
                put_varint(buf, *at);
                put_varint(buf, u64::from(*delay));
                buf.put_slice(packet);
            }
            Self::WillDone { sid } => sid_only(buf, kind::WILL_DONE, *sid),
            Self::Retained {
                expires,
                group,
                packet,
            } => {
                buf.put_u8(kind::RETAINED);
                put_opt(buf, *expires);
                put_varint(buf, *group);
                buf.put_slice(packet);
            }
            Self::Unretained { group, topic } => {
                buf.put_u8(kind::UNRETAINED);
                put_varint(buf, *group);
                buf.put_slice(topic.as_str().as_bytes());
            }
            Self::GroupCommit { group } => {
                buf.put_u8(kind::GROUP_COMMIT);
                put_varint(buf, *group);
            }
            Self::End { records } => {
                buf.put_u8(kind::END);
                put_varint(buf, *records);
            }
        }
    }

    /// Whether the packets the record carries (a message, a will, a retained message) decode:
    /// a record whose checksum matches but whose packet does not is damage all the same (and
    /// the valid prefix ends before it), so that nothing loaded refers to a message that cannot
    /// be read back.
    pub(crate) fn packets_decode(&self) -> bool {
        match self {
            Self::Message { packet, .. }
            | Self::DelayedWill { packet, .. }
            | Self::Retained { packet, .. } => decode_publish(packet).is_some(),
            Self::Attached { will, .. } => will.is_empty() || decode_publish(will).is_some(),
            _ => true,
        }
    }

    /// Decodes a record's body (its checksum already checked). `body` is a buffer of its own:
    /// the packets and strings of the record are slices of it.
    pub(crate) fn decode(body: Bytes) -> Result<Self, Corrupt> {
        let mut r = Reader { buf: body };
        let k = r.u8()?;
        let record = match k {
            kind::MESSAGE => Self::Message {
                mid: r.varint()?,
                size: r.varint()?,
                packet: r.rest(),
            },
            kind::OPEN => Self::Open {
                sid: r.varint()?,
                client_id: String::from_utf8(r.rest().to_vec()).map_err(|_| Corrupt)?,
            },
            kind::EXPIRY => Self::Expiry {
                sid: r.varint()?,
                secs: r.u32()?,
            },
            kind::ENDED => Self::Ended { sid: r.varint()? },
            kind::CLEARED => Self::Cleared { sid: r.varint()? },
            kind::SUBSCRIBED => {
                let sid = r.varint()?;
                let options = options_from(r.u8()?)?;
                let identifier = match r.u32()? {
                    0 => None,
                    v => Some(SubscriptionId::new(v).ok_or(Corrupt)?),
                };
                let filter = filter(r.rest())?;
                Self::Subscribed {
                    sid,
                    filter,
                    data: SubscriptionData {
                        options,
                        identifier,
                    },
                }
            }
            kind::UNSUBSCRIBED => Self::Unsubscribed {
                sid: r.varint()?,
                filter: filter(r.rest())?,
            },
            kind::QUEUED => {
                let sid = r.varint()?;
                let entry = r.varint()?;
                let mid = r.varint()?;
                let flags = r.u8()?;
                let qos = QoS::from_u8(flags & 0x03).ok_or(Corrupt)?;
                let retain = flags & 0x04 != 0;
                let expires = r.opt()?;
                let group = r.varint()?;
                let n = r.varint()?;
                let mut identifiers = Vec::new();
                for _ in 0..n {
                    identifiers.push(SubscriptionId::new(r.u32()?).ok_or(Corrupt)?);
                }
                let rest = r.rest();
                let shared = if rest.is_empty() {
                    None
                } else {
                    Some(filter(rest)?)
                };
                Self::Queued(QueuedRecord {
                    sid,
                    entry,
                    mid,
                    qos,
                    retain,
                    expires,
                    identifiers,
                    shared,
                    group,
                })
            }
            kind::SENT => Self::Sent {
                sid: r.varint()?,
                entry: r.varint()?,
                id: r.packet_id()?,
            },
            kind::RECEIVED => Self::Received {
                sid: r.varint()?,
                entry: r.varint()?,
            },
            kind::REMOVED => Self::Removed {
                sid: r.varint()?,
                entry: r.varint()?,
            },
            kind::INCOMING_QOS2 => Self::IncomingQos2 {
                sid: r.varint()?,
                id: r.packet_id()?,
                group: r.varint()?,
            },
            kind::INCOMING_RELEASED => Self::IncomingReleased {
                sid: r.varint()?,
                id: r.packet_id()?,
            },
            kind::ATTACHED => Self::Attached {
                sid: r.varint()?,
                will_delay: r.u32()?,
                will: r.rest(),
            },
            kind::DETACHED => Self::Detached {
                sid: r.varint()?,
                at: r.varint()?,
            },
            kind::DELAYED_WILL => Self::DelayedWill {
                sid: r.varint()?,
                at: r.varint()?,
                delay: r.u32()?,
                packet: r.rest(),
            },
            kind::WILL_DONE => Self::WillDone { sid: r.varint()? },
            kind::RETAINED => Self::Retained {
                expires: r.opt()?,
                group: r.varint()?,
                packet: r.rest(),
            },
            kind::UNRETAINED => Self::Unretained {
                group: r.varint()?,
                topic: TopicName::from_bytes(r.rest()).map_err(|_| Corrupt)?,
            },
            kind::GROUP_COMMIT => Self::GroupCommit { group: r.varint()? },
            kind::END => Self::End {
                records: r.varint()?,
            },
            _ => return Err(Corrupt),
        };
        if r.buf.is_empty() {
            Ok(record)
        } else {
            Err(Corrupt)
        }
    }
}

/// A stored filter: read as MQTT 3.x reads filters, which gives back exactly the filter stored
/// (a valid `$share/{group}/{filter}` is shared either way; a 3.x filter that only looks like
/// one stays plain).
fn filter(bytes: Bytes) -> Result<TopicFilter, Corrupt> {
    TopicFilter::from_bytes_v3(bytes).map_err(|_| Corrupt)
}

/// Reads the fields of a body.
struct Reader {
    buf: Bytes,
}

impl Reader {
    fn u8(&mut self) -> Result<u8, Corrupt> {
        let (&first, _) = self.buf.split_first().ok_or(Corrupt)?;
        let _ = self.buf.split_to(1);
        Ok(first)
    }

    fn varint(&mut self) -> Result<u64, Corrupt> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Corrupt)
    }

    fn u32(&mut self) -> Result<u32, Corrupt> {
        u32::try_from(self.varint()?).map_err(|_| Corrupt)
    }

    fn opt(&mut self) -> Result<Option<u64>, Corrupt> {
        Ok(self.varint()?.checked_sub(1))
    }

    fn packet_id(&mut self) -> Result<PacketId, Corrupt> {
        let v = u16::try_from(self.varint()?).map_err(|_| Corrupt)?;
        PacketId::new(v).ok_or(Corrupt)
    }

    fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(record: Record) {
        let mut buf = BytesMut::new();
        let n = frame(&mut buf, |b| record.put(b));
        assert_eq!(n, buf.len());
        let head: [u8; FRAME_LEN] = buf[..FRAME_LEN].try_into().unwrap();
        let (len, crc) = frame_header(&head);
        let body = buf.split_off(FRAME_LEN).freeze();
        assert_eq!(len as usize, body.len());
        assert!(check(&body, crc));
        assert_eq!(Record::decode(body).unwrap(), record);
    }

    #[test]
    fn every_record_kind_round_trips() {
        let filter = TopicFilter::from_static("$share/g/a/+/b").unwrap();
        let mut publish = Publish::new(TopicName::from_static("a/b").unwrap(), "payload");
        publish.retain = true;
        let mut packet = BytesMut::new();
        put_publish(&mut packet, &publish);
        let packet = packet.freeze();
        let id = PacketId::new(65535).unwrap();
        for r in [
            Record::Message {
                mid: 1 << 40,
                size: 10,
                packet: packet.clone(),
            },
            Record::Open {
                sid: 7,
                client_id: "clïent".into(),
            },
            Record::Expiry {
                sid: 7,
                secs: u32::MAX,
            },
            Record::Ended { sid: 7 },
            Record::Cleared { sid: 7 },
            Record::Subscribed {
                sid: 7,
                filter: filter.clone(),
                data: SubscriptionData {
                    options: options_from(0x2E).unwrap(),
                    identifier: SubscriptionId::new(268_435_455),
                },
            },
            Record::Unsubscribed {
                sid: 7,
                filter: TopicFilter::from_static("#").unwrap(),
            },
            Record::Queued(QueuedRecord {
                sid: 7,
                entry: 9,
                mid: 3,
                qos: QoS::ExactlyOnce,
                retain: true,
                expires: Some(0),
                identifiers: vec![
                    SubscriptionId::new(1).unwrap(),
                    SubscriptionId::new(2).unwrap(),
                ],
                shared: Some(filter.clone()),
                group: 5,
            }),
            Record::Queued(QueuedRecord {
                sid: 7,
                entry: 10,
                mid: 3,
                qos: QoS::AtMostOnce,
                retain: false,
                expires: None,
                identifiers: vec![],
                shared: None,
                group: 0,
            }),
            Record::Sent {
                sid: 7,
                entry: 9,
                id,
            },
            Record::Received { sid: 7, entry: 9 },
            Record::Removed { sid: 7, entry: 9 },
            Record::IncomingQos2 {
                sid: 7,
                id,
                group: 5,
            },
            Record::IncomingReleased { sid: 7, id },
            Record::Attached {
                sid: 7,
                will_delay: 3,
                will: packet.clone(),
            },
            Record::Attached {
                sid: 7,
                will_delay: 0,
                will: Bytes::new(),
            },
            Record::Detached {
                sid: 7,
                at: 1_700_000_000_000,
            },
            Record::DelayedWill {
                sid: 7,
                at: 5,
                delay: 30,
                packet: packet.clone(),
            },
            Record::WillDone { sid: 7 },
            Record::Retained {
                expires: Some(99),
                group: 3,
                packet,
            },
            Record::Unretained {
                group: 0,
                topic: TopicName::from_static("a/b").unwrap(),
            },
            Record::GroupCommit { group: 3 },
            Record::End { records: 12 },
        ] {
            roundtrip(r);
        }
    }

    #[test]
    fn a_bad_type_or_trailing_bytes_are_corrupt() {
        assert_eq!(Record::decode(Bytes::from_static(&[99])), Err(Corrupt));
        assert_eq!(Record::decode(Bytes::from_static(&[4, 1, 0])), Err(Corrupt));
        assert_eq!(Record::decode(Bytes::new()), Err(Corrupt));
        // A varint that never ends.
        assert_eq!(
            Record::decode(Bytes::from_static(&[4, 0xFF, 0xFF])),
            Err(Corrupt)
        );
    }

    #[test]
    fn messages_and_wills_keep_their_properties() {
        let mut publish = Publish::new(TopicName::from_static("t").unwrap(), "x");
        publish.qos = QosPid::ExactlyOnce(PacketId::new(9).unwrap());
        publish.dup = true;
        publish.properties_mut().content_type = Some("text/plain".try_into().unwrap());
        let mut buf = BytesMut::new();
        put_publish(&mut buf, &publish);
        let back = decode_publish(&buf).unwrap();
        assert_eq!(back.properties(), publish.properties());
        assert_eq!(back.qos.qos(), QoS::ExactlyOnce);
        assert!(!back.dup);

        let will = Will {
            topic: TopicName::from_static("w").unwrap(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties {
                will_delay_interval: Some(5),
                message_expiry_interval: Some(60),
                ..WillProperties::default()
            },
        };
        let mut buf = BytesMut::new();
        put_publish(&mut buf, &will_publish(&will));
        let back = will_from(decode_publish(&buf).unwrap(), 5);
        assert_eq!(back, will);
    }
}
