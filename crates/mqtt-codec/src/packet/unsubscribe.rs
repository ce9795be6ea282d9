//! UNSUBSCRIBE and UNSUBACK (3.10, 3.11).

use bytes::{BufMut, BytesMut};
use mqtt_topic::TopicFilter;

use super::subscribe::{check_entries, codes_len, parse_codes, parse_entries, parse_filter};
use crate::decode::{Cx, PResult, fail};
use crate::properties::put_str;
use crate::{
    AckProperties, Error, PacketId, PacketType, ProtocolVersion, ReasonCode, UnsubscribeProperties,
};

/// A request to remove subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Echoed by the UNSUBACK.
    pub packet_id: PacketId,
    /// At least one filter [MQTT-3.10.3-2].
    pub filters: Vec<TopicFilter>,
    /// (5.0) User properties.
    pub properties: UnsubscribeProperties,
}

/// The answer to UNSUBSCRIBE.
///
/// MQTT 3.x UNSUBACK has no payload: `reason_codes` is empty when decoded from 3.x and ignored
/// when encoding for it. In 5.0 there is one code per filter, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// The UNSUBSCRIBE's packet identifier.
    pub packet_id: PacketId,
    /// (5.0) One code per filter.
    pub reason_codes: Vec<ReasonCode>,
    /// (5.0) Reason string and user properties.
    pub properties: AckProperties,
}

impl Unsubscribe {
    /// An UNSUBSCRIBE of one filter.
    pub fn new(packet_id: PacketId, filter: TopicFilter) -> Self {
        Self {
            packet_id,
            filters: vec![filter],
            properties: UnsubscribeProperties::default(),
        }
    }

    pub(crate) fn parse<'a>(input: &'a [u8], cx: &Cx<'_>) -> PResult<'a, Self> {
        let (input, packet_id) = cx.packet_id(input)?;
        let (input, properties) = if cx.version.is_v5() {
            UnsubscribeProperties::parse(input, cx)?
        } else {
            (input, UnsubscribeProperties::default())
        };
        let (input, filters) = parse_entries(input, cx, 0, |input| parse_filter(input, cx))?;
        Ok((
            input,
            Self {
                packet_id,
                filters,
                properties,
            },
        ))
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, Error> {
        check_entries(self.filters.len(), PacketType::Unsubscribe)?;
        let mut len = 2 + self
            .filters
            .iter()
            .fold(0usize, |len, f| len.saturating_add(2 + f.as_str().len()));
        if version.is_v5() {
            self.properties.check()?;
            len = len.saturating_add(self.properties.wire_len());
        }
        Ok(len)
    }

    pub(crate) fn put_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.put(buf);
        }
        for filter in &self.filters {
            put_str(buf, filter.as_mqtt_str());
        }
    }
}

impl UnsubAck {
    /// An UNSUBACK with these codes (5.0) and no properties.
    pub fn new(packet_id: PacketId, reason_codes: Vec<ReasonCode>) -> Self {
        Self {
            packet_id,
            reason_codes,
            properties: AckProperties::default(),
        }
    }

    pub(crate) fn parse<'a>(input: &'a [u8], cx: &Cx<'_>) -> PResult<'a, Self> {
        let (input, packet_id) = cx.packet_id(input)?;
        if !cx.version.is_v5() {
            let (input, ()) = cx.end(input)?;
            return Ok((input, Self::new(packet_id, Vec::new())));
        }
        let (input, properties) = AckProperties::parse(input, cx)?;
        let reason_codes = match parse_codes(input, cx, |_| None) {
            Ok(codes) => codes,
            Err(e) => return fail(e),
        };
        Ok((
            &[],
            Self {
                packet_id,
                reason_codes,
                properties,
            },
        ))
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, Error> {
        if !version.is_v5() {
            return Ok(2);
        }
        codes_len(
            &self.reason_codes,
            &self.properties,
            version,
            PacketType::UnsubAck,
        )
    }

    pub(crate) fn put_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.put(buf);
            buf.extend(self.reason_codes.iter().map(|c| c.get()));
        }
    }
}
