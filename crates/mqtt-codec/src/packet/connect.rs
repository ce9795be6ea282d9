//! CONNECT (3.1) and the will it may carry.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use mqtt_topic::{MqttString, TopicName};

use crate::decode::{Cx, PResult, fail, length_prefixed, u8, u16};
use crate::properties::{check_binary, put_binary, put_str};
use crate::{ConnectProperties, Error, ProtocolVersion, QoS, Secret, WillProperties};

/// A client's request to connect: the first packet on every connection [MQTT-3.1.0-1].
///
/// The protocol version is a field of the packet, because CONNECT is where it is chosen: it is
/// decoded before the version is known, and encoded in its own version whatever the encoder is
/// told. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Connect {
    /// The protocol version the client speaks.
    pub protocol: ProtocolVersion,
    /// Clean Session (3.x) / Clean Start (5.0).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 turns the mechanism off.
    pub keep_alive: u16,
    /// The client identifier; may be empty (the server then assigns one, or refuses).
    pub client_id: MqttString,
    /// The will message, if any.
    pub will: Option<Will>,
    /// The user name, if any.
    pub username: Option<MqttString>,
    /// The password, if any (3.x: only together with a user name).
    pub password: Option<Secret>,
    /// (5.0) CONNECT properties.
    pub properties: ConnectProperties,
}

/// The will message of a CONNECT: published by the server when the connection ends without a
/// normal DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Where it is published.
    pub topic: TopicName,
    /// What is published (Binary Data: at most 65,535 bytes).
    pub payload: Bytes,
    /// Its QoS.
    pub qos: QoS,
    /// Whether it is retained.
    pub retain: bool,
    /// (5.0) Will properties.
    pub properties: WillProperties,
}

impl Connect {
    /// A CONNECT with clean start, a 60 s keep alive and nothing else.
    pub fn new(protocol: ProtocolVersion, client_id: MqttString) -> Self {
        Self {
            protocol,
            clean_start: true,
            keep_alive: 60,
            client_id,
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }
    }
}

impl Will {
    /// A will with QoS 0, not retained, without properties.
    pub fn new(topic: TopicName, payload: Bytes) -> Self {
        Self {
            topic,
            payload,
            qos: QoS::AtMostOnce,
            retain: false,
            properties: WillProperties::default(),
        }
    }
}

impl fmt::Debug for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connect")
            .field("protocol", &self.protocol)
            .field("clean_start", &self.clean_start)
            .field("keep_alive", &self.keep_alive)
            .field("client_id", &self.client_id)
            .field("will", &self.will)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("properties", &self.properties)
            .finish()
    }
}

mod flag {
    pub(super) const RESERVED: u8 = 0x01;
    pub(super) const CLEAN_START: u8 = 0x02;
    pub(super) const WILL: u8 = 0x04;
    pub(super) const WILL_QOS_SHIFT: u8 = 3;
    pub(super) const WILL_RETAIN: u8 = 0x20;
    pub(super) const PASSWORD: u8 = 0x40;
    pub(super) const USERNAME: u8 = 0x80;
}

/// The version a CONNECT body announces, if its protocol name and level are valid.
pub(crate) fn peek_version(body: &[u8]) -> Option<ProtocolVersion> {
    parse_version(body).ok().map(|(_, version)| version)
}

/// Reads the protocol name and level, which decide everything else.
fn parse_version(input: &[u8]) -> PResult<'_, ProtocolVersion> {
    let (input, name) = length_prefixed(input)?;
    let (input, level) = u8(input)?;
    let version = match (name, level) {
        (b"MQIsdp", 3) => ProtocolVersion::V3_1,
        (b"MQTT", 4) => ProtocolVersion::V3_1_1,
        (b"MQTT", 5) => ProtocolVersion::V5,
        (b"MQTT" | b"MQIsdp", level) => return fail(Error::UnsupportedProtocolVersion { level }),
        _ => return fail(Error::InvalidProtocolName),
    };
    Ok((input, version))
}

impl Connect {
    /// Parses the body, whose first fields decide the version.
    pub(crate) fn parse<'a>(input: &'a [u8], cx: &Cx<'_>) -> PResult<'a, Self> {
        let (input, protocol) = parse_version(input)?;
        let (input, flags) = u8(input)?;
        if flags & flag::RESERVED != 0 {
            return fail(Error::ConnectReservedFlag);
        }
        let has_will = flags & flag::WILL != 0;
        let will_qos = QoS::from_u8((flags >> flag::WILL_QOS_SHIFT) & 0x03);
        let will_retain = flags & flag::WILL_RETAIN != 0;
        let has_password = flags & flag::PASSWORD != 0;
        let has_username = flags & flag::USERNAME != 0;
        if !has_will && will_qos != Some(QoS::AtMostOnce) {
            return fail(Error::WillQoSWithoutWill);
        }
        let Some(will_qos) = will_qos else {
            return fail(Error::InvalidWillQoS);
        };
        if !has_will && will_retain {
            return fail(Error::WillRetainWithoutWill);
        }
        if has_password && !has_username && !protocol.is_v5() {
            return fail(Error::PasswordWithoutUsername);
        }
        let (input, keep_alive) = u16(input)?;
        let (input, properties) = if protocol.is_v5() {
            ConnectProperties::parse(input, cx)?
        } else {
            (input, ConnectProperties::default())
        };
        if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
            return fail(Error::AuthDataWithoutMethod);
        }
        let (mut input, client_id) = cx.string(input, "client identifier")?;
        let mut will = None;
        if has_will {
            let (rest, will_properties) = if protocol.is_v5() {
                WillProperties::parse(input, cx)?
            } else {
                (input, WillProperties::default())
            };
            let (rest, topic) = cx.string(rest, "will topic")?;
            let topic = match TopicName::try_from(topic) {
                Ok(topic) => topic,
                Err(source) => {
                    return fail(Error::InvalidTopicName {
                        field: "will topic",
                        source,
                    });
                }
            };
            let (rest, payload) = cx.binary(rest)?;
            will = Some(Will {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties: will_properties,
            });
            input = rest;
        }
        let mut username = None;
        if has_username {
            let (rest, name) = cx.string(input, "user name")?;
            username = Some(name);
            input = rest;
        }
        let mut password = None;
        if has_password {
            let (rest, secret) = cx.binary(input)?;
            password = Some(Secret::from(secret));
            input = rest;
        }
        let (input, ()) = cx.end(input)?;
        Ok((
            input,
            Self {
                protocol,
                clean_start: flags & flag::CLEAN_START != 0,
                keep_alive,
                client_id,
                will,
                username,
                password,
                properties,
            },
        ))
    }

    pub(crate) fn body_len(&self) -> Result<usize, Error> {
        let v5 = self.protocol.is_v5();
        if self.password.is_some() && self.username.is_none() && !v5 {
            return Err(Error::PasswordWithoutUsername);
        }
        if v5 {
            self.properties.check()?;
            if self.properties.authentication_data.is_some()
                && self.properties.authentication_method.is_none()
            {
                return Err(Error::AuthDataWithoutMethod);
            }
        }
        let mut len = 2 + self.protocol.protocol_name().len() + 1 + 1 + 2;
        if v5 {
            len += self.properties.wire_len();
        }
        len += 2 + self.client_id.len();
        if let Some(will) = &self.will {
            if will.topic.is_empty() {
                return Err(Error::InvalidTopicName {
                    field: "will topic",
                    source: mqtt_topic::Error::Empty,
                });
            }
            check_binary(&will.payload, "will payload")?;
            if v5 {
                will.properties.check()?;
                len += will.properties.wire_len();
            }
            len += 2 + will.topic.len() + 2 + will.payload.len();
        }
        if let Some(username) = &self.username {
            len += 2 + username.len();
        }
        if let Some(password) = &self.password {
            check_binary(password.expose(), "password")?;
            len += 2 + password.expose().len();
        }
        Ok(len)
    }

    pub(crate) fn put_body(&self, buf: &mut BytesMut) {
        let v5 = self.protocol.is_v5();
        put_binary(buf, self.protocol.protocol_name().as_bytes());
        buf.put_u8(self.protocol.level());
        let mut flags = 0;
        if self.clean_start {
            flags |= flag::CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= flag::WILL | ((will.qos as u8) << flag::WILL_QOS_SHIFT);
            if will.retain {
                flags |= flag::WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= flag::USERNAME;
        }
        if self.password.is_some() {
            flags |= flag::PASSWORD;
        }
        buf.put_u8(flags);
        buf.put_u16(self.keep_alive);
        if v5 {
            self.properties.put(buf);
        }
        put_str(buf, &self.client_id);
        if let Some(will) = &self.will {
            if v5 {
                will.properties.put(buf);
            }
            put_str(buf, will.topic.as_mqtt_str());
            put_binary(buf, &will.payload);
        }
        if let Some(username) = &self.username {
            put_str(buf, username);
        }
        if let Some(password) = &self.password {
            put_binary(buf, password.expose());
        }
    }
}
