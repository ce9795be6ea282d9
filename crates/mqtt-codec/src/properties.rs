//! MQTT 5.0 properties (section 2.2.2): the identifiers, one typed struct per packet that has
//! properties, and the generic machinery that parses, sizes and writes them.
//!
//! Each struct is declared once with the `properties!` macro, which lists its fields and the
//! identifier of each; parsing, duplicate detection, "not allowed in this packet" and encoding
//! all come from that one list. The field's type decides the wire format and the allowed values
//! (a `NonZeroU16` Receive Maximum rejects 0, a `bool` rejects anything but 0 and 1, ...). An
//! `Option` field may appear once [MQTT-2.2.2-2 style "It is a Protocol Error to include ... more
//! than once"]; a `Vec` field may repeat (User Property, and the Subscription Identifiers of a
//! PUBLISH). User properties keep their order.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{BufMut, Bytes, BytesMut};
use mqtt_topic::{MqttString, TopicName};

use crate::decode::{Cx, PResult, fail, take, u8, u16, u32, varint};
use crate::{Error, PayloadFormat, QoS, Secret, SubscriptionId, varint as vbi};

macro_rules! property_ids {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, )*) => {
        /// A property identifier (MQTT 5.0 section 2.2.2.2).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum PropertyId {
            $( $(#[$doc])* $name = $value, )*
        }

        impl PropertyId {
            /// Every property identifier, in ascending order.
            pub const ALL: &'static [PropertyId] = &[$(Self::$name,)*];

            /// The identifier with this value, if the standard defines one.
            pub const fn from_u32(value: u32) -> Option<Self> {
                match value {
                    $( $value => Some(Self::$name), )*
                    _ => None,
                }
            }
        }
    };
}

property_ids! {
    /// 0x01 Payload Format Indicator (byte): PUBLISH, will.
    PayloadFormatIndicator = 0x01,
    /// 0x02 Message Expiry Interval (four byte integer): PUBLISH, will.
    MessageExpiryInterval = 0x02,
    /// 0x03 Content Type (string): PUBLISH, will.
    ContentType = 0x03,
    /// 0x08 Response Topic (string): PUBLISH, will.
    ResponseTopic = 0x08,
    /// 0x09 Correlation Data (binary): PUBLISH, will.
    CorrelationData = 0x09,
    /// 0x0B Subscription Identifier (variable byte integer): PUBLISH, SUBSCRIBE.
    SubscriptionIdentifier = 0x0B,
    /// 0x11 Session Expiry Interval (four byte integer): CONNECT, CONNACK, DISCONNECT.
    SessionExpiryInterval = 0x11,
    /// 0x12 Assigned Client Identifier (string): CONNACK.
    AssignedClientIdentifier = 0x12,
    /// 0x13 Server Keep Alive (two byte integer): CONNACK.
    ServerKeepAlive = 0x13,
    /// 0x15 Authentication Method (string): CONNECT, CONNACK, AUTH.
    AuthenticationMethod = 0x15,
    /// 0x16 Authentication Data (binary): CONNECT, CONNACK, AUTH.
    AuthenticationData = 0x16,
    /// 0x17 Request Problem Information (byte): CONNECT.
    RequestProblemInformation = 0x17,
    /// 0x18 Will Delay Interval (four byte integer): will.
    WillDelayInterval = 0x18,
    /// 0x19 Request Response Information (byte): CONNECT.
    RequestResponseInformation = 0x19,
    /// 0x1A Response Information (string): CONNACK.
    ResponseInformation = 0x1A,
    /// 0x1C Server Reference (string): CONNACK, DISCONNECT.
    ServerReference = 0x1C,
    /// 0x1F Reason String (string): CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK,
    /// DISCONNECT, AUTH.
    ReasonString = 0x1F,
    /// 0x21 Receive Maximum (two byte integer): CONNECT, CONNACK.
    ReceiveMaximum = 0x21,
    /// 0x22 Topic Alias Maximum (two byte integer): CONNECT, CONNACK.
    TopicAliasMaximum = 0x22,
    /// 0x23 Topic Alias (two byte integer): PUBLISH.
    TopicAlias = 0x23,
    /// 0x24 Maximum QoS (byte): CONNACK.
    MaximumQoS = 0x24,
    /// 0x25 Retain Available (byte): CONNACK.
    RetainAvailable = 0x25,
    /// 0x26 User Property (string pair): every packet with properties, and the will.
    UserProperty = 0x26,
    /// 0x27 Maximum Packet Size (four byte integer): CONNECT, CONNACK.
    MaximumPacketSize = 0x27,
    /// 0x28 Wildcard Subscription Available (byte): CONNACK.
    WildcardSubscriptionAvailable = 0x28,
    /// 0x29 Subscription Identifier Available (byte): CONNACK.
    SubscriptionIdentifierAvailable = 0x29,
    /// 0x2A Shared Subscription Available (byte): CONNACK.
    SharedSubscriptionAvailable = 0x2A,
}

/// A User Property: a name and a value, both strings. The same name may appear more than once.
pub type UserProperty = (MqttString, MqttString);

/// A property value type: how it is parsed, sized and written, and which values are invalid.
pub(crate) trait Value: Sized {
    fn parse<'a>(input: &'a [u8], cx: &Cx<'_>, id: PropertyId) -> PResult<'a, Self>;
    fn len(&self) -> usize;
    fn put(&self, buf: &mut BytesMut);
    /// Limits the type cannot express (the 65,535-byte limit of Binary Data).
    fn check(&self, _id: PropertyId) -> Result<(), Error> {
        Ok(())
    }
}

fn invalid<'a, T>(id: PropertyId) -> PResult<'a, T> {
    fail(Error::InvalidPropertyValue { id })
}

/// Integers taken as they are (`$nonzero` absent), or for which 0 is a Protocol Error
/// (Receive Maximum, Topic Alias, Maximum Packet Size).
macro_rules! integer_value {
    ($ty:ty, $parse:ident, $put:ident, $len:literal) => {
        impl Value for $ty {
            fn parse<'a>(input: &'a [u8], _: &Cx<'_>, _: PropertyId) -> PResult<'a, Self> {
                $parse(input)
            }
            fn len(&self) -> usize {
                $len
            }
            fn put(&self, buf: &mut BytesMut) {
                buf.$put(*self);
            }
        }
    };
    ($ty:ty, nonzero $parse:ident, $put:ident, $len:literal) => {
        impl Value for $ty {
            fn parse<'a>(input: &'a [u8], _: &Cx<'_>, id: PropertyId) -> PResult<'a, Self> {
                let (input, v) = $parse(input)?;
                match <$ty>::new(v) {
                    Some(v) => Ok((input, v)),
                    None => invalid(id),
                }
            }
            fn len(&self) -> usize {
                $len
            }
            fn put(&self, buf: &mut BytesMut) {
                buf.$put(self.get());
            }
        }
    };
}

integer_value!(u16, u16, put_u16, 2);
integer_value!(u32, u32, put_u32, 4);
integer_value!(NonZeroU16, nonzero u16, put_u16, 2);
integer_value!(NonZeroU32, nonzero u32, put_u32, 4);

/// Byte properties with a closed set of values; any other byte is a Protocol Error.
macro_rules! byte_value {
    ($ty:ty { $($byte:literal => $value:expr),+ $(,)? }) => {
        impl Value for $ty {
            fn parse<'a>(input: &'a [u8], _: &Cx<'_>, id: PropertyId) -> PResult<'a, Self> {
                match u8(input)? {
                    $( (input, $byte) => Ok((input, $value)), )+
                    _ => invalid(id),
                }
            }
            fn len(&self) -> usize {
                1
            }
            fn put(&self, buf: &mut BytesMut) {
                let byte = match self {
                    $( v if *v == $value => $byte, )+
                    _ => 0xFF,
                };
                buf.put_u8(byte);
            }
            fn check(&self, id: PropertyId) -> Result<(), Error> {
                if [$($value),+].contains(self) {
                    Ok(())
                } else {
                    Err(Error::InvalidPropertyValue { id })
                }
            }
        }
    };
}

// The flags (Retain Available, Request Problem Information, ...).
byte_value!(bool { 0 => false, 1 => true });
// Maximum QoS: 2 is expressed by leaving the property out.
byte_value!(QoS { 0 => QoS::AtMostOnce, 1 => QoS::AtLeastOnce });
byte_value!(PayloadFormat { 0 => PayloadFormat::Unspecified, 1 => PayloadFormat::Utf8 });

/// Subscription Identifier: a Variable Byte Integer; 0 is a Protocol Error.
impl Value for SubscriptionId {
    fn parse<'a>(input: &'a [u8], _: &Cx<'_>, id: PropertyId) -> PResult<'a, Self> {
        let (input, v) = varint(input)?;
        match SubscriptionId::new(v) {
            Some(v) => Ok((input, v)),
            None => invalid(id),
        }
    }
    fn len(&self) -> usize {
        vbi::len(self.get())
    }
    fn put(&self, buf: &mut BytesMut) {
        vbi::put(buf, self.get());
    }
}

impl Value for MqttString {
    fn parse<'a>(input: &'a [u8], cx: &Cx<'_>, id: PropertyId) -> PResult<'a, Self> {
        cx.string(input, id.name())
    }
    fn len(&self) -> usize {
        2 + self.as_str().len()
    }
    fn put(&self, buf: &mut BytesMut) {
        put_str(buf, self);
    }
}

/// Response Topic: a topic name, so no wildcards [MQTT-3.3.2-14].
impl Value for TopicName {
    fn parse<'a>(input: &'a [u8], cx: &Cx<'_>, id: PropertyId) -> PResult<'a, Self> {
        let (input, text) = cx.string(input, id.name())?;
        match TopicName::try_from(text) {
            Ok(name) => Ok((input, name)),
            Err(source) => fail(Error::InvalidTopicName {
                field: id.name(),
                source,
            }),
        }
    }
    fn len(&self) -> usize {
        2 + self.as_str().len()
    }
    fn put(&self, buf: &mut BytesMut) {
        put_str(buf, self.as_mqtt_str());
    }
    fn check(&self, id: PropertyId) -> Result<(), Error> {
        if self.is_empty() {
            return Err(Error::InvalidTopicName {
                field: id.name(),
                source: mqtt_topic::Error::Empty,
            });
        }
        Ok(())
    }
}

/// Correlation Data.
impl Value for Bytes {
    fn parse<'a>(input: &'a [u8], cx: &Cx<'_>, _: PropertyId) -> PResult<'a, Self> {
        cx.binary(input)
    }
    fn len(&self) -> usize {
        2 + Bytes::len(self)
    }
    fn put(&self, buf: &mut BytesMut) {
        put_binary(buf, self);
    }
    fn check(&self, id: PropertyId) -> Result<(), Error> {
        check_binary(self, id.name())
    }
}

/// Authentication Data.
impl Value for Secret {
    fn parse<'a>(input: &'a [u8], cx: &Cx<'_>, _: PropertyId) -> PResult<'a, Self> {
        let (input, data) = cx.binary(input)?;
        Ok((input, Secret::from(data)))
    }
    fn len(&self) -> usize {
        2 + self.expose().len()
    }
    fn put(&self, buf: &mut BytesMut) {
        put_binary(buf, self.expose());
    }
    fn check(&self, id: PropertyId) -> Result<(), Error> {
        check_binary(self.expose(), id.name())
    }
}

impl Value for UserProperty {
    fn parse<'a>(input: &'a [u8], cx: &Cx<'_>, _: PropertyId) -> PResult<'a, Self> {
        let (input, name) = cx.string(input, "user property name")?;
        let (input, value) = cx.string(input, "user property value")?;
        Ok((input, (name, value)))
    }
    fn len(&self) -> usize {
        4 + self.0.as_str().len() + self.1.as_str().len()
    }
    fn put(&self, buf: &mut BytesMut) {
        put_str(buf, &self.0);
        put_str(buf, &self.1);
    }
}

/// A struct field holding a property: `Option` (at most once) or `Vec` (repeatable).
pub(crate) trait Field {
    /// The field with nothing in it.
    const EMPTY: Self;
    fn read<'a>(&mut self, input: &'a [u8], cx: &Cx<'_>, id: PropertyId) -> PResult<'a, ()>;
    /// Wire length including the identifier byte of each occurrence.
    fn len(&self) -> usize;
    fn put(&self, id: PropertyId, buf: &mut BytesMut);
    fn check(&self, id: PropertyId) -> Result<(), Error>;
    fn is_unset(&self) -> bool;
}

impl<T: Value> Field for Option<T> {
    const EMPTY: Self = None;
    fn read<'a>(&mut self, input: &'a [u8], cx: &Cx<'_>, id: PropertyId) -> PResult<'a, ()> {
        if self.is_some() {
            return fail(Error::DuplicateProperty { id });
        }
        let (input, value) = T::parse(input, cx, id)?;
        *self = Some(value);
        Ok((input, ()))
    }
    fn len(&self) -> usize {
        self.as_ref().map_or(0, |v| 1 + v.len())
    }
    fn put(&self, id: PropertyId, buf: &mut BytesMut) {
        if let Some(v) = self {
            buf.put_u8(id as u8);
            v.put(buf);
        }
    }
    fn check(&self, id: PropertyId) -> Result<(), Error> {
        self.as_ref().map_or(Ok(()), |v| v.check(id))
    }
    fn is_unset(&self) -> bool {
        self.is_none()
    }
}

impl<T: Value> Field for Vec<T> {
    const EMPTY: Self = Vec::new();
    fn read<'a>(&mut self, input: &'a [u8], cx: &Cx<'_>, id: PropertyId) -> PResult<'a, ()> {
        let (input, value) = T::parse(input, cx, id)?;
        self.push(value);
        Ok((input, ()))
    }
    fn len(&self) -> usize {
        // Saturating: cloned `Bytes` can describe more than `usize` bytes on 32-bit targets;
        // an absurd length is refused as too large, never wrapped.
        self.iter()
            .fold(0, |len: usize, v| len.saturating_add(1 + v.len()))
    }
    fn put(&self, id: PropertyId, buf: &mut BytesMut) {
        for v in self {
            buf.put_u8(id as u8);
            v.put(buf);
        }
    }
    fn check(&self, id: PropertyId) -> Result<(), Error> {
        self.iter().try_for_each(|v| v.check(id))
    }
    fn is_unset(&self) -> bool {
        self.is_empty()
    }
}

/// Writes a string with its two-byte length; an [`MqttString`] is never longer than 65,535.
#[inline]
pub(crate) fn put_str(buf: &mut BytesMut, s: &MqttString) {
    put_binary(buf, s.as_bytes());
}

/// Writes Binary Data with its two-byte length; the caller has checked the length.
#[inline]
pub(crate) fn put_binary(buf: &mut BytesMut, data: &[u8]) {
    buf.put_u16(u16::try_from(data.len()).unwrap_or(u16::MAX));
    buf.put_slice(data);
}

/// Binary Data is at most 65,535 bytes.
pub(crate) fn check_binary(data: &[u8], field: &'static str) -> Result<(), Error> {
    if data.len() > usize::from(u16::MAX) {
        return Err(Error::FieldTooLong {
            field,
            len: data.len(),
        });
    }
    Ok(())
}

macro_rules! properties {
    (
        $(#[$meta:meta])*
        $name:ident in $context:literal {
            $( $(#[$fmeta:meta])* $field:ident: $ty:ty = $id:ident, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $name {
            /// No property set (the same as `Default::default()`, usable in `const` context).
            pub const EMPTY: Self = Self { $( $field: <$ty as Field>::EMPTY, )* };

            /// Whether no property is set.
            pub fn is_empty(&self) -> bool {
                true $( && Field::is_unset(&self.$field) )*
            }

            /// Parses the Property Length and the properties it covers.
            pub(crate) fn parse<'a>(input: &'a [u8], cx: &Cx<'_>) -> PResult<'a, Self> {
                let (input, len) = varint(input)?;
                let (rest, mut props) = take(len as usize)(input)?;
                let mut this = Self::default();
                while !props.is_empty() {
                    let (after_id, raw) = varint(props)?;
                    props = match PropertyId::from_u32(raw) {
                        $( Some(id @ PropertyId::$id) => this.$field.read(after_id, cx, id)?.0, )*
                        Some(id) => {
                            return fail(Error::PropertyNotAllowed { id, context: $context })
                        }
                        None => return fail(Error::UnknownProperty { id: raw }),
                    };
                }
                Ok((rest, this))
            }

            /// Checks the limits the field types cannot express.
            pub(crate) fn check(&self) -> Result<(), Error> {
                $( Field::check(&self.$field, PropertyId::$id)?; )*
                Ok(())
            }

            /// The length of the properties, without the Property Length.
            pub(crate) fn content_len(&self) -> usize {
                0usize $( .saturating_add(Field::len(&self.$field)) )*
            }

            /// The wire length: Property Length plus the properties.
            pub(crate) fn wire_len(&self) -> usize {
                let len = self.content_len();
                len.saturating_add(vbi::len_usize(len))
            }

            /// Writes the Property Length and the properties.
            pub(crate) fn put(&self, buf: &mut BytesMut) {
                vbi::put(buf, u32::try_from(self.content_len()).unwrap_or(vbi::MAX));
                $( Field::put(&self.$field, PropertyId::$id, buf); )*
            }
        }
    };
}

properties! {
    /// Properties of CONNECT (MQTT 5.0 section 3.1.2.11).
    ConnectProperties in "CONNECT" {
        /// Seconds the session outlives the connection; absent means 0, `u32::MAX` never ends.
        session_expiry_interval: Option<u32> = SessionExpiryInterval,
        /// How many QoS 1 and 2 publications the client accepts at once; absent means 65,535.
        receive_maximum: Option<NonZeroU16> = ReceiveMaximum,
        /// The largest packet the client accepts; absent means no limit beyond the protocol's.
        maximum_packet_size: Option<NonZeroU32> = MaximumPacketSize,
        /// The highest topic alias the client accepts from the server; absent means 0 (none).
        topic_alias_maximum: Option<u16> = TopicAliasMaximum,
        /// Whether the client wants Response Information in CONNACK.
        request_response_information: Option<bool> = RequestResponseInformation,
        /// Whether reason strings and user properties may be sent on failures (default true).
        request_problem_information: Option<bool> = RequestProblemInformation,
        /// Extended authentication method.
        authentication_method: Option<MqttString> = AuthenticationMethod,
        /// Extended authentication data; only with a method.
        authentication_data: Option<Secret> = AuthenticationData,
        /// User properties, in order.
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

properties! {
    /// Will properties, in the CONNECT payload (MQTT 5.0 section 3.1.3.2).
    WillProperties in "will properties" {
        /// Seconds to wait after the connection closes before publishing the will.
        will_delay_interval: Option<u32> = WillDelayInterval,
        /// Whether the will payload is UTF-8 text.
        payload_format_indicator: Option<PayloadFormat> = PayloadFormatIndicator,
        /// Lifetime of the will message in seconds.
        message_expiry_interval: Option<u32> = MessageExpiryInterval,
        /// Content type of the will payload.
        content_type: Option<MqttString> = ContentType,
        /// Topic for a response to the will message.
        response_topic: Option<TopicName> = ResponseTopic,
        /// Correlation data for a response.
        correlation_data: Option<Bytes> = CorrelationData,
        /// User properties, in order.
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

properties! {
    /// Properties of CONNACK (MQTT 5.0 section 3.2.2.3).
    ConnAckProperties in "CONNACK" {
        /// The session expiry the server uses, when it differs from the client's request.
        session_expiry_interval: Option<u32> = SessionExpiryInterval,
        /// How many QoS 1 and 2 publications the server accepts at once; absent means 65,535.
        receive_maximum: Option<NonZeroU16> = ReceiveMaximum,
        /// The highest QoS the server supports (0 or 1); absent means 2.
        maximum_qos: Option<QoS> = MaximumQoS,
        /// Whether the server supports retained messages (default true).
        retain_available: Option<bool> = RetainAvailable,
        /// The largest packet the server accepts.
        maximum_packet_size: Option<NonZeroU32> = MaximumPacketSize,
        /// The client identifier the server assigned to an empty one.
        assigned_client_identifier: Option<MqttString> = AssignedClientIdentifier,
        /// The highest topic alias the server accepts; absent means 0.
        topic_alias_maximum: Option<u16> = TopicAliasMaximum,
        /// Human-readable diagnostics.
        reason_string: Option<MqttString> = ReasonString,
        /// User properties, in order.
        user_properties: Vec<UserProperty> = UserProperty,
        /// Whether wildcard subscriptions are supported (default true).
        wildcard_subscription_available: Option<bool> = WildcardSubscriptionAvailable,
        /// Whether subscription identifiers are supported (default true).
        subscription_identifiers_available: Option<bool> = SubscriptionIdentifierAvailable,
        /// Whether shared subscriptions are supported (default true).
        shared_subscription_available: Option<bool> = SharedSubscriptionAvailable,
        /// The keep alive the client must use instead of its own.
        server_keep_alive: Option<u16> = ServerKeepAlive,
        /// Basis for response topics, when the client requested it.
        response_information: Option<MqttString> = ResponseInformation,
        /// Another server the client should use.
        server_reference: Option<MqttString> = ServerReference,
        /// Extended authentication method.
        authentication_method: Option<MqttString> = AuthenticationMethod,
        /// Extended authentication data.
        authentication_data: Option<Secret> = AuthenticationData,
    }
}

properties! {
    /// Properties of PUBLISH (MQTT 5.0 section 3.3.2.3).
    PublishProperties in "PUBLISH" {
        /// Whether the payload is UTF-8 text.
        payload_format_indicator: Option<PayloadFormat> = PayloadFormatIndicator,
        /// Lifetime of the message in seconds.
        message_expiry_interval: Option<u32> = MessageExpiryInterval,
        /// A topic alias standing for (or being set to) the topic name.
        topic_alias: Option<NonZeroU16> = TopicAlias,
        /// Topic for a response.
        response_topic: Option<TopicName> = ResponseTopic,
        /// Correlation data for a response.
        correlation_data: Option<Bytes> = CorrelationData,
        /// User properties, in order.
        user_properties: Vec<UserProperty> = UserProperty,
        /// The identifiers of the matching subscriptions (server to client only).
        subscription_identifiers: Vec<SubscriptionId> = SubscriptionIdentifier,
        /// Content type of the payload.
        content_type: Option<MqttString> = ContentType,
    }
}

properties! {
    /// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK (MQTT 5.0 sections
    /// 3.4.2.2 to 3.11.2.1): a reason string and user properties.
    AckProperties in "acknowledgement" {
        /// Human-readable diagnostics.
        reason_string: Option<MqttString> = ReasonString,
        /// User properties, in order.
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

properties! {
    /// Properties of SUBSCRIBE (MQTT 5.0 section 3.8.2.1).
    SubscribeProperties in "SUBSCRIBE" {
        /// The identifier to attach to messages delivered for these subscriptions.
        subscription_identifier: Option<SubscriptionId> = SubscriptionIdentifier,
        /// User properties, in order.
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

properties! {
    /// Properties of UNSUBSCRIBE (MQTT 5.0 section 3.10.2.1).
    UnsubscribeProperties in "UNSUBSCRIBE" {
        /// User properties, in order.
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

properties! {
    /// Properties of DISCONNECT (MQTT 5.0 section 3.14.2.2).
    DisconnectProperties in "DISCONNECT" {
        /// New session expiry (client to server only).
        session_expiry_interval: Option<u32> = SessionExpiryInterval,
        /// Human-readable diagnostics.
        reason_string: Option<MqttString> = ReasonString,
        /// User properties, in order.
        user_properties: Vec<UserProperty> = UserProperty,
        /// Another server the client should use.
        server_reference: Option<MqttString> = ServerReference,
    }
}

properties! {
    /// Properties of AUTH (MQTT 5.0 section 3.15.2.2).
    AuthProperties in "AUTH" {
        /// Extended authentication method.
        authentication_method: Option<MqttString> = AuthenticationMethod,
        /// Extended authentication data.
        authentication_data: Option<Secret> = AuthenticationData,
        /// Human-readable diagnostics.
        reason_string: Option<MqttString> = ReasonString,
        /// User properties, in order.
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

impl PropertyId {
    /// The name the standard uses.
    pub const fn name(self) -> &'static str {
        match self {
            Self::PayloadFormatIndicator => "Payload Format Indicator",
            Self::MessageExpiryInterval => "Message Expiry Interval",
            Self::ContentType => "Content Type",
            Self::ResponseTopic => "Response Topic",
            Self::CorrelationData => "Correlation Data",
            Self::SubscriptionIdentifier => "Subscription Identifier",
            Self::SessionExpiryInterval => "Session Expiry Interval",
            Self::AssignedClientIdentifier => "Assigned Client Identifier",
            Self::ServerKeepAlive => "Server Keep Alive",
            Self::AuthenticationMethod => "Authentication Method",
            Self::AuthenticationData => "Authentication Data",
            Self::RequestProblemInformation => "Request Problem Information",
            Self::WillDelayInterval => "Will Delay Interval",
            Self::RequestResponseInformation => "Request Response Information",
            Self::ResponseInformation => "Response Information",
            Self::ServerReference => "Server Reference",
            Self::ReasonString => "Reason String",
            Self::ReceiveMaximum => "Receive Maximum",
            Self::TopicAliasMaximum => "Topic Alias Maximum",
            Self::TopicAlias => "Topic Alias",
            Self::MaximumQoS => "Maximum QoS",
            Self::RetainAvailable => "Retain Available",
            Self::UserProperty => "User Property",
            Self::MaximumPacketSize => "Maximum Packet Size",
            Self::WildcardSubscriptionAvailable => "Wildcard Subscription Available",
            Self::SubscriptionIdentifierAvailable => "Subscription Identifier Available",
            Self::SharedSubscriptionAvailable => "Shared Subscription Available",
        }
    }
}
