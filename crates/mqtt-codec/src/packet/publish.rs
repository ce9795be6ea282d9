//! PUBLISH (3.3).

use bytes::{BufMut, Bytes, BytesMut};
use mqtt_topic::TopicName;

use crate::decode::{Cx, PResult, fail};
use crate::properties::put_str;
use crate::{Error, ProtocolVersion, PublishProperties, QoS, QosPid};

/// An application message on its way from a client to the server or from the server to a
/// subscriber.
///
/// The topic and the payload are slices of the received frame: decoding copies neither, and a
/// clone shares them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Whether this is a re-delivery (never on QoS 0 [MQTT-3.3.1-2]).
    pub dup: bool,
    /// The QoS with its packet identifier.
    pub qos: QosPid,
    /// Whether the message is (to be) retained.
    pub retain: bool,
    /// The topic name; empty only in an MQTT 5.0 PUBLISH that carries a Topic Alias.
    pub topic: TopicName,
    /// The application message.
    pub payload: Bytes,
    /// (5.0) PUBLISH properties.
    pub properties: PublishProperties,
}

mod flag {
    pub(super) const DUP: u8 = 0x08;
    pub(super) const QOS_SHIFT: u8 = 1;
    pub(super) const RETAIN: u8 = 0x01;
}

impl Publish {
    /// A QoS 0 message, not retained, without properties.
    pub fn new(topic: TopicName, payload: impl Into<Bytes>) -> Self {
        Self {
            dup: false,
            qos: QosPid::AtMostOnce,
            retain: false,
            topic,
            payload: payload.into(),
            properties: PublishProperties::default(),
        }
    }

    /// Checks the fixed-header flags, which arrive before the body: QoS 3 [MQTT-3.3.1-4] and DUP
    /// on QoS 0 [MQTT-3.3.1-2] are refused as soon as the first byte is seen.
    pub(crate) fn check_flags(flags: u8) -> Result<QoS, Error> {
        let qos = QoS::from_u8((flags >> flag::QOS_SHIFT) & 0x03).ok_or(Error::InvalidQoS {
            packet: crate::PacketType::Publish,
        })?;
        if qos == QoS::AtMostOnce && flags & flag::DUP != 0 {
            return Err(Error::DupOnQoS0);
        }
        Ok(qos)
    }

    pub(crate) fn parse<'a>(input: &'a [u8], cx: &Cx<'_>, flags: u8) -> PResult<'a, Self> {
        let qos = match Self::check_flags(flags) {
            Ok(qos) => qos,
            Err(e) => return fail(e),
        };
        let (input, topic) = cx.binary(input)?;
        let (input, qos) = match qos {
            QoS::AtMostOnce => (input, QosPid::AtMostOnce),
            QoS::AtLeastOnce => {
                let (input, id) = cx.packet_id(input)?;
                (input, QosPid::AtLeastOnce(id))
            }
            QoS::ExactlyOnce => {
                let (input, id) = cx.packet_id(input)?;
                (input, QosPid::ExactlyOnce(id))
            }
        };
        let (payload, properties) = if cx.version.is_v5() {
            PublishProperties::parse(input, cx)?
        } else {
            (input, PublishProperties::default())
        };
        // A zero-length topic name is only allowed in 5.0, standing for a Topic Alias.
        let topic = if topic.is_empty() && properties.topic_alias.is_some() {
            TopicName::empty()
        } else {
            match TopicName::from_bytes(topic) {
                Ok(topic) => topic,
                Err(source) => return fail(Error::topic_name("topic name", source)),
            }
        };
        Ok((
            &[],
            Self {
                dup: flags & flag::DUP != 0,
                qos,
                retain: flags & flag::RETAIN != 0,
                topic,
                payload: cx.share(payload),
                properties,
            },
        ))
    }

    pub(crate) fn flags(&self) -> u8 {
        let mut flags = (self.qos.qos() as u8) << flag::QOS_SHIFT;
        if self.dup {
            flags |= flag::DUP;
        }
        if self.retain {
            flags |= flag::RETAIN;
        }
        flags
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, Error> {
        if self.dup && self.qos == QosPid::AtMostOnce {
            return Err(Error::DupOnQoS0);
        }
        if self.topic.is_empty() && !(version.is_v5() && self.properties.topic_alias.is_some()) {
            return Err(Error::InvalidTopicName {
                field: "topic name",
                source: mqtt_topic::Error::Empty,
            });
        }
        let mut len = 2 + self.topic.len() + self.payload.len();
        if self.qos.packet_id().is_some() {
            len += 2;
        }
        if version.is_v5() {
            self.properties.check()?;
            len += self.properties.wire_len();
        }
        Ok(len)
    }

    pub(crate) fn put_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        put_str(buf, self.topic.as_mqtt_str());
        if let Some(id) = self.qos.packet_id() {
            buf.put_u16(id.get());
        }
        if version.is_v5() {
            self.properties.put(buf);
        }
        buf.put_slice(&self.payload);
    }
}
