//! PUBLISH (3.3).

use bytes::{BufMut, Bytes, BytesMut};
use mqtt_topic::TopicName;

use std::num::NonZeroU16;

use crate::decode::{Cx, PResult, fail};
use crate::properties::{Field, PropertyId, put_str};
use crate::{
    Error, ProtocolVersion, PublishProperties, QoS, QosPid, SubscriptionId, varint as vbi,
};

/// An application message on its way from a client to the server or from the server to a
/// subscriber.
///
/// The topic and the payload are slices of the received frame: decoding copies neither, and a
/// clone shares them.
///
/// The MQTT 5.0 properties sit behind [`Publish::properties`] and [`Publish::properties_mut`]:
/// they are stored out of line and only when there are some, which keeps the struct (and
/// [`Packet`](crate::Packet)) small on the hot path where most messages carry none.
#[derive(Clone)]
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
    /// (5.0) PUBLISH properties; `None` when there are none.
    properties: Option<Box<PublishProperties>>,
}

/// What [`Publish::properties`] returns for a message without properties.
static NO_PROPERTIES: PublishProperties = PublishProperties::EMPTY;

impl PartialEq for Publish {
    fn eq(&self, other: &Self) -> bool {
        self.dup == other.dup
            && self.qos == other.qos
            && self.retain == other.retain
            && self.topic == other.topic
            && self.payload == other.payload
            && self.properties() == other.properties()
    }
}

impl Eq for Publish {}

impl std::fmt::Debug for Publish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publish")
            .field("dup", &self.dup)
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .field("topic", &self.topic)
            .field("payload_len", &self.payload.len())
            .field("properties", self.properties())
            .finish()
    }
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
            properties: None,
        }
    }

    /// (5.0) The PUBLISH properties (all unset when there are none).
    pub fn properties(&self) -> &PublishProperties {
        self.properties.as_deref().unwrap_or(&NO_PROPERTIES)
    }

    /// (5.0) The PUBLISH properties, to change them.
    pub fn properties_mut(&mut self) -> &mut PublishProperties {
        self.properties.get_or_insert_with(Default::default)
    }

    /// (5.0) Replaces the PUBLISH properties.
    pub fn set_properties(&mut self, properties: PublishProperties) {
        self.properties = if properties.is_empty() {
            None
        } else {
            Some(Box::new(properties))
        };
    }

    /// (5.0) This message with these properties.
    pub fn with_properties(mut self, properties: PublishProperties) -> Self {
        self.set_properties(properties);
        self
    }

    /// The header fields that change from one delivery to the next.
    pub fn envelope(&self) -> Envelope {
        Envelope {
            qos: self.qos,
            dup: self.dup,
            retain: self.retain,
        }
    }

    /// Appends this PUBLISH to `buf`, as [`Packet::encode`](crate::Packet::encode) does (it
    /// calls this).
    ///
    /// # Errors
    /// As [`Packet::encode`](crate::Packet::encode).
    #[inline]
    pub fn encode(
        &self,
        version: ProtocolVersion,
        max_packet_size: u32,
        buf: &mut BytesMut,
    ) -> Result<usize, Error> {
        self.encode_as(self.envelope(), version, max_packet_size, buf)
    }

    /// Appends this message as delivered to one subscriber: with the QoS, packet identifier,
    /// DUP and RETAIN of `envelope` instead of its own. The broker's fan-out encodes one shared
    /// message this way for every subscriber, without copying or cloning it.
    ///
    /// # Errors
    /// As [`Packet::encode`](crate::Packet::encode).
    #[inline]
    pub fn encode_as(
        &self,
        envelope: Envelope,
        version: ProtocolVersion,
        max_packet_size: u32,
        buf: &mut BytesMut,
    ) -> Result<usize, Error> {
        let body = self.body_len(envelope, version)?;
        super::write_frame(
            envelope.first_byte(),
            body,
            0,
            max_packet_size,
            buf,
            |buf| {
                self.put_head(envelope, version, buf);
                buf.put_slice(&self.payload);
            },
        )
    }

    /// As [`Publish::encode_as`], without the payload; returns the size of the whole packet:
    /// the caller sends [`Publish::payload`] right after, for example in a vectored write, so a
    /// large payload fanned out to many subscribers is never copied.
    ///
    /// # Errors
    /// As [`Publish::encode`]; nothing is written then.
    pub fn encode_head(
        &self,
        envelope: Envelope,
        version: ProtocolVersion,
        max_packet_size: u32,
        buf: &mut BytesMut,
    ) -> Result<usize, Error> {
        let body = self.body_len(envelope, version)?;
        let payload = self.payload.len();
        super::write_frame(
            envelope.first_byte(),
            body,
            payload,
            max_packet_size,
            buf,
            |buf| self.put_head(envelope, version, buf),
        )
    }

    /// (5.0) Appends this message as delivered to one subscriber, as [`Publish::encode_as`],
    /// with the properties that belong to the delivery instead of the message's own: the
    /// server's Topic Alias (and the topic name left out when the alias is already known to the
    /// client), the remaining Message Expiry Interval and the Subscription Identifiers. Every
    /// other property is sent as received, user properties in order. Before 5.0, `delivery`
    /// is ignored.
    ///
    /// # Errors
    /// As [`Publish::encode`].
    pub fn encode_delivery(
        &self,
        envelope: Envelope,
        delivery: &DeliveryProperties,
        version: ProtocolVersion,
        max_packet_size: u32,
        buf: &mut BytesMut,
    ) -> Result<usize, Error> {
        if !version.is_v5() {
            return self.encode_as(envelope, version, max_packet_size, buf);
        }
        let (body, properties) = self.delivery_body_len(envelope, delivery)?;
        super::write_frame(
            envelope.first_byte(),
            body,
            0,
            max_packet_size,
            buf,
            |buf| {
                if delivery.omit_topic {
                    buf.put_u16(0);
                } else {
                    put_str(buf, self.topic.as_mqtt_str());
                }
                if let Some(id) = envelope.qos.packet_id() {
                    buf.put_u16(id.get());
                }
                self.put_delivery_properties(delivery, properties, buf);
                buf.put_slice(&self.payload);
            },
        )
    }

    /// (5.0) The size of the whole packet [`Publish::encode_delivery`] would write, to check it
    /// against a client's Maximum Packet Size before committing to send it.
    ///
    /// # Errors
    /// As [`Publish::encode`].
    pub fn delivery_len(
        &self,
        envelope: Envelope,
        delivery: &DeliveryProperties,
        version: ProtocolVersion,
    ) -> Result<usize, Error> {
        let body = if version.is_v5() {
            self.delivery_body_len(envelope, delivery)?.0
        } else {
            self.body_len(envelope, version)?
        };
        Ok(1usize
            .saturating_add(vbi::len_usize(body))
            .saturating_add(body))
    }

    /// The body length and the property length of a 5.0 delivery.
    fn delivery_body_len(
        &self,
        envelope: Envelope,
        delivery: &DeliveryProperties,
    ) -> Result<(usize, usize), Error> {
        if envelope.dup && envelope.qos == QosPid::AtMostOnce {
            return Err(Error::DupOnQoS0);
        }
        if self.topic.is_empty() && delivery.topic_alias.is_none() {
            return Err(Error::InvalidTopicName {
                field: "topic name",
                source: mqtt_topic::Error::Empty,
            });
        }
        let p = self.properties();
        p.check()?;
        let own = Field::len(&p.message_expiry_interval)
            + Field::len(&p.topic_alias)
            + Field::len(&p.subscription_identifiers);
        let ids = delivery
            .subscription_identifiers
            .iter()
            .fold(0usize, |len, id| len.saturating_add(1 + vbi::len(id.get())));
        let properties = p
            .content_len()
            .saturating_sub(own)
            .saturating_add(Field::len(&delivery.message_expiry_interval))
            .saturating_add(Field::len(&delivery.topic_alias))
            .saturating_add(ids);
        let topic = if delivery.omit_topic {
            0
        } else {
            self.topic.len()
        };
        let mut len = (2 + topic)
            .saturating_add(self.payload.len())
            .saturating_add(properties)
            .saturating_add(vbi::len_usize(properties));
        if envelope.qos.packet_id().is_some() {
            len = len.saturating_add(2);
        }
        Ok((len, properties))
    }

    /// Writes the property section of a 5.0 delivery (length first).
    fn put_delivery_properties(
        &self,
        delivery: &DeliveryProperties,
        len: usize,
        buf: &mut BytesMut,
    ) {
        let p = self.properties();
        vbi::put(buf, u32::try_from(len).unwrap_or(vbi::MAX));
        Field::put(
            &p.payload_format_indicator,
            PropertyId::PayloadFormatIndicator,
            buf,
        );
        Field::put(
            &delivery.message_expiry_interval,
            PropertyId::MessageExpiryInterval,
            buf,
        );
        Field::put(&delivery.topic_alias, PropertyId::TopicAlias, buf);
        Field::put(&p.response_topic, PropertyId::ResponseTopic, buf);
        Field::put(&p.correlation_data, PropertyId::CorrelationData, buf);
        Field::put(&p.user_properties, PropertyId::UserProperty, buf);
        for id in &delivery.subscription_identifiers {
            buf.put_u8(PropertyId::SubscriptionIdentifier as u8);
            vbi::put(buf, id.get());
        }
        Field::put(&p.content_type, PropertyId::ContentType, buf);
    }

    /// Checks the fixed-header flags, which arrive before the body: QoS 3 [MQTT-3.3.1-4] and DUP
    /// on QoS 0 [MQTT-3.3.1-2] are refused as soon as the first byte is seen.
    #[inline]
    pub(crate) fn check_flags(flags: u8) -> Result<QoS, Error> {
        let qos = QoS::from_u8((flags >> flag::QOS_SHIFT) & 0x03).ok_or(Error::InvalidQoS {
            packet: crate::PacketType::Publish,
        })?;
        if qos == QoS::AtMostOnce && flags & flag::DUP != 0 {
            return Err(Error::DupOnQoS0);
        }
        Ok(qos)
    }

    /// Parses everything but the payload, which is the input left over: the caller takes it
    /// from the frame itself so that no reference count is touched for it.
    #[inline]
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
            let (payload, properties) = PublishProperties::parse(input, cx)?;
            let properties = (!properties.is_empty()).then(|| Box::new(properties));
            (payload, properties)
        } else {
            (input, None)
        };
        // A zero-length topic name is only allowed in 5.0, standing for a Topic Alias.
        let has_alias = properties.as_ref().is_some_and(|p| p.topic_alias.is_some());
        let topic = if topic.is_empty() && has_alias {
            TopicName::empty()
        } else {
            match TopicName::from_bytes(topic) {
                Ok(topic) => topic,
                Err(source) => return fail(Error::topic_name("topic name", source)),
            }
        };
        Ok((
            payload,
            Self {
                dup: flags & flag::DUP != 0,
                qos,
                retain: flags & flag::RETAIN != 0,
                topic,
                payload: Bytes::new(),
                properties,
            },
        ))
    }

    #[inline]
    pub(crate) fn body_len(
        &self,
        envelope: Envelope,
        version: ProtocolVersion,
    ) -> Result<usize, Error> {
        if envelope.dup && envelope.qos == QosPid::AtMostOnce {
            return Err(Error::DupOnQoS0);
        }
        let properties = self.properties();
        if self.topic.is_empty() && !(version.is_v5() && properties.topic_alias.is_some()) {
            return Err(Error::InvalidTopicName {
                field: "topic name",
                source: mqtt_topic::Error::Empty,
            });
        }
        // Saturating: on 32-bit targets a shared payload plus properties could exceed `usize`;
        // such a packet is refused as too large by the caller, never wrapped.
        let mut len = (2 + self.topic.len()).saturating_add(self.payload.len());
        if envelope.qos.packet_id().is_some() {
            len = len.saturating_add(2);
        }
        if version.is_v5() {
            properties.check()?;
            len = len.saturating_add(properties.wire_len());
        }
        Ok(len)
    }

    /// Writes the variable header: everything after the fixed header but the payload.
    #[inline]
    fn put_head(&self, envelope: Envelope, version: ProtocolVersion, buf: &mut BytesMut) {
        put_str(buf, self.topic.as_mqtt_str());
        if let Some(id) = envelope.qos.packet_id() {
            buf.put_u16(id.get());
        }
        if version.is_v5() {
            self.properties().put(buf);
        }
    }
}

/// (5.0) The properties of a PUBLISH that belong to one delivery rather than to the message:
/// see [`Publish::encode_delivery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryProperties {
    /// The Topic Alias the server uses for this topic on this connection.
    pub topic_alias: Option<NonZeroU16>,
    /// Whether the topic name is left out: the client already knows the alias.
    pub omit_topic: bool,
    /// What remains of the message's lifetime, in seconds.
    pub message_expiry_interval: Option<u32>,
    /// The identifiers of the client's subscriptions that matched.
    pub subscription_identifiers: Vec<SubscriptionId>,
}

/// The fields of a PUBLISH that belong to one delivery rather than to the message: QoS with
/// packet identifier, DUP and RETAIN. See [`Publish::encode_as`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    /// The QoS, with the packet identifier for QoS 1 and 2.
    pub qos: QosPid,
    /// Whether this is a re-delivery (never on QoS 0 [MQTT-3.3.1-2]).
    pub dup: bool,
    /// The RETAIN flag as sent.
    pub retain: bool,
}

impl Envelope {
    fn first_byte(self) -> u8 {
        let mut flags = (self.qos.qos() as u8) << flag::QOS_SHIFT;
        if self.dup {
            flags |= flag::DUP;
        }
        if self.retain {
            flags |= flag::RETAIN;
        }
        ((crate::PacketType::Publish as u8) << 4) | flags
    }
}
