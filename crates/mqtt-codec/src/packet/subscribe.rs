//! SUBSCRIBE and SUBACK (3.8, 3.9).

use bytes::{BufMut, BytesMut};
use mqtt_topic::TopicFilter;

use crate::decode::{Cx, PResult, fail, u8};
use crate::properties::put_str;
use crate::{
    AckProperties, Error, PacketId, PacketType, ProtocolVersion, QoS, ReasonCode, RetainHandling,
    SubscribeProperties, SubscriptionOptions,
};

/// A request to add subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Echoed by the SUBACK.
    pub packet_id: PacketId,
    /// At least one filter with its options [MQTT-3.8.3-3 (3.1.1), MQTT-3.8.3-2 (5.0)].
    pub subscriptions: Vec<Subscription>,
    /// (5.0) Subscription identifier and user properties.
    pub properties: SubscribeProperties,
}

/// One topic filter of a SUBSCRIBE and the options that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The filter.
    pub filter: TopicFilter,
    /// The options.
    pub options: SubscriptionOptions,
}

/// The answer to SUBSCRIBE: one reason code per requested filter, in order.
///
/// In 3.x a code is the granted QoS or 0x80 (failure); any failure reason encodes as 0x80 there,
/// and 0x80 decodes as [`ReasonCode::UnspecifiedError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// The SUBSCRIBE's packet identifier.
    pub packet_id: PacketId,
    /// One code per filter.
    pub reason_codes: Vec<ReasonCode>,
    /// (5.0) Reason string and user properties.
    pub properties: AckProperties,
}

mod option {
    pub(super) const QOS: u8 = 0x03;
    pub(super) const NO_LOCAL: u8 = 0x04;
    pub(super) const RETAIN_AS_PUBLISHED: u8 = 0x08;
    pub(super) const RETAIN_HANDLING_SHIFT: u8 = 4;
    /// Bits 2 to 7 before 5.0.
    pub(super) const RESERVED_V3: u8 = 0xFC;
    /// Bits 6 and 7 in 5.0.
    pub(super) const RESERVED_V5: u8 = 0xC0;
}

/// Reads a subscription options byte.
fn parse_options(byte: u8, version: ProtocolVersion) -> Result<SubscriptionOptions, Error> {
    let reserved = if version.is_v5() {
        option::RESERVED_V5
    } else {
        option::RESERVED_V3
    };
    if byte & reserved != 0 {
        return Err(Error::ReservedSubscriptionOptions { options: byte });
    }
    let qos = QoS::from_u8(byte & option::QOS).ok_or(Error::InvalidQoS {
        packet: PacketType::Subscribe,
    })?;
    let retain_handling = RetainHandling::from_u8(byte >> option::RETAIN_HANDLING_SHIFT)
        .ok_or(Error::InvalidRetainHandling)?;
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & option::NO_LOCAL != 0,
        retain_as_published: byte & option::RETAIN_AS_PUBLISHED != 0,
        retain_handling,
    })
}

/// Writes a subscription options byte (only the QoS before 5.0).
fn options_byte(options: SubscriptionOptions, version: ProtocolVersion) -> u8 {
    let mut byte = options.qos as u8;
    if version.is_v5() {
        if options.no_local {
            byte |= option::NO_LOCAL;
        }
        if options.retain_as_published {
            byte |= option::RETAIN_AS_PUBLISHED;
        }
        byte |= (options.retain_handling as u8) << option::RETAIN_HANDLING_SHIFT;
    }
    byte
}

/// Reads one topic filter of a SUBSCRIBE or UNSUBSCRIBE.
pub(crate) fn parse_filter<'a>(input: &'a [u8], cx: &Cx<'_>) -> PResult<'a, TopicFilter> {
    let (input, bytes) = cx.binary(input)?;
    let filter = if cx.version.is_v5() {
        TopicFilter::from_bytes(bytes)
    } else {
        // 3.x gives `$share` no meaning: see `TopicFilter::from_bytes_v3`.
        TopicFilter::from_bytes_v3(bytes)
    };
    match filter {
        Ok(filter) => Ok((input, filter)),
        Err(source) => fail(Error::topic_filter(source)),
    }
}

impl Subscribe {
    /// A SUBSCRIBE of one filter at this QoS.
    pub fn new(packet_id: PacketId, filter: TopicFilter, qos: QoS) -> Self {
        Self {
            packet_id,
            subscriptions: vec![Subscription {
                filter,
                options: SubscriptionOptions::new(qos),
            }],
            properties: SubscribeProperties::default(),
        }
    }

    pub(crate) fn parse<'a>(input: &'a [u8], cx: &Cx<'_>) -> PResult<'a, Self> {
        let (input, packet_id) = cx.packet_id(input)?;
        let (input, properties) = if cx.version.is_v5() {
            SubscribeProperties::parse(input, cx)?
        } else {
            (input, SubscribeProperties::default())
        };
        let (input, subscriptions) = parse_entries(input, cx, 1, |input| {
            let (rest, filter) = parse_filter(input, cx)?;
            let (rest, byte) = u8(rest)?;
            let options = match parse_options(byte, cx.version) {
                Ok(options) => options,
                Err(e) => return fail(e),
            };
            if options.no_local && filter.is_shared() {
                return fail(Error::NoLocalOnSharedSubscription);
            }
            Ok((rest, Subscription { filter, options }))
        })?;
        Ok((
            input,
            Self {
                packet_id,
                subscriptions,
                properties,
            },
        ))
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, Error> {
        check_entries(self.subscriptions.len(), PacketType::Subscribe)?;
        let mut len: usize = 2;
        for s in &self.subscriptions {
            if version.is_v5() && s.options.no_local && s.filter.is_shared() {
                return Err(Error::NoLocalOnSharedSubscription);
            }
            len = len.saturating_add(2 + s.filter.as_str().len() + 1);
        }
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
        for s in &self.subscriptions {
            put_str(buf, s.filter.as_mqtt_str());
            buf.put_u8(options_byte(s.options, version));
        }
    }
}

impl SubAck {
    /// A SUBACK with these codes and no properties.
    pub fn new(packet_id: PacketId, reason_codes: Vec<ReasonCode>) -> Self {
        Self {
            packet_id,
            reason_codes,
            properties: AckProperties::default(),
        }
    }

    pub(crate) fn parse<'a>(input: &'a [u8], cx: &Cx<'_>) -> PResult<'a, Self> {
        let (input, packet_id) = cx.packet_id(input)?;
        let (input, properties) = if cx.version.is_v5() {
            AckProperties::parse(input, cx)?
        } else {
            (input, AckProperties::default())
        };
        let reason_codes = match parse_codes(input, cx, ReasonCode::from_v3_suback) {
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
        codes_len(
            &self.reason_codes,
            &self.properties,
            version,
            PacketType::SubAck,
        )
    }

    pub(crate) fn put_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.put(buf);
            buf.extend(self.reason_codes.iter().map(|c| c.get()));
        } else {
            buf.extend(self.reason_codes.iter().map(|c| c.to_v3_suback()));
        }
    }
}

/// Reads the payload of SUBSCRIBE or UNSUBSCRIBE: entries up to the end of the packet, at least
/// one [MQTT-3.8.3-3 (3.1.1), MQTT-3.8.3-2 (5.0), MQTT-3.10.3-2].
///
/// Each entry is a string followed by `extra` bytes; they are counted first (a cheap hop from
/// length to length) so that the vector is allocated once, at its size.
pub(crate) fn parse_entries<'a, T>(
    mut input: &'a [u8],
    cx: &Cx<'_>,
    extra: usize,
    mut entry: impl FnMut(&'a [u8]) -> PResult<'a, T>,
) -> PResult<'a, Vec<T>> {
    let mut entries = Vec::with_capacity(count_entries(input, extra));
    while !input.is_empty() {
        let (rest, value) = entry(input)?;
        entries.push(value);
        input = rest;
    }
    match check_entries(entries.len(), cx.packet) {
        Ok(()) => Ok((input, entries)),
        Err(e) => fail(e),
    }
}

/// How many "string then `extra` bytes" entries `input` holds (an estimate if it is malformed,
/// never more than one per two bytes).
fn count_entries(mut input: &[u8], extra: usize) -> usize {
    let mut count = 0;
    while let [high, low, rest @ ..] = input {
        count += 1;
        let skip = usize::from(u16::from_be_bytes([*high, *low])) + extra;
        input = rest.get(skip..).unwrap_or_default();
    }
    count
}

/// SUBSCRIBE and UNSUBSCRIBE need at least one topic filter.
pub(crate) fn check_entries(count: usize, packet: PacketType) -> Result<(), Error> {
    if count == 0 {
        return Err(Error::NoTopicFilters { packet });
    }
    Ok(())
}

/// Reads the list of reason codes that ends SUBACK and UNSUBACK (one byte each); `v3` reads a
/// 3.x code.
pub(crate) fn parse_codes(
    input: &[u8],
    cx: &Cx<'_>,
    v3: fn(u8) -> Option<ReasonCode>,
) -> Result<Vec<ReasonCode>, Error> {
    input
        .iter()
        .map(|&code| {
            let reason = if cx.version.is_v5() {
                ReasonCode::from_u8(code).filter(|c| c.is_allowed_in(cx.packet))
            } else {
                v3(code)
            };
            reason.ok_or(Error::InvalidReasonCode {
                packet: cx.packet,
                code,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|codes| {
            check_codes(&codes, cx.packet)?;
            Ok(codes)
        })
}

/// One reason code per filter of the request, which has at least one (MQTT 5.0 sections 3.9.3
/// and 3.11.3), each valid in the packet.
fn check_codes(codes: &[ReasonCode], packet: PacketType) -> Result<(), Error> {
    if codes.is_empty() {
        return Err(Error::NoReasonCodes { packet });
    }
    match codes.iter().find(|c| !c.is_allowed_in(packet)) {
        Some(bad) => Err(Error::InvalidReasonCode {
            packet,
            code: bad.get(),
        }),
        None => Ok(()),
    }
}

/// The Remaining Length of SUBACK or UNSUBACK, checking the codes are valid in `packet`.
pub(crate) fn codes_len(
    codes: &[ReasonCode],
    properties: &AckProperties,
    version: ProtocolVersion,
    packet: PacketType,
) -> Result<usize, Error> {
    check_codes(codes, packet)?;
    if !version.is_v5() {
        return Ok(2 + codes.len());
    }
    properties.check()?;
    Ok(properties.wire_len().saturating_add(2 + codes.len()))
}
