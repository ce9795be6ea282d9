//! `-D command identifier value` (`--property`): MQTT 5.0 properties given on the command line,
//! with Mosquitto's command and property names, checks and messages, and `-x` (the session
//! expiry interval).

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use mqtt_client::{
    ConnectProperties, DisconnectProperties, PayloadFormat, PublishProperties, SubscribeProperties,
    SubscriptionId, TopicName, WillProperties,
};
use mqtt_codec::{MqttString, UnsubscribeProperties};

use crate::connection::{Layout, UsageError, atoi};

/// The properties given with `-D`, by the packet they go in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliProperties {
    /// `-D connect ...`.
    pub connect: ConnectProperties,
    /// `-D publish ...`.
    pub publish: PublishProperties,
    /// `-D subscribe ...`.
    pub subscribe: SubscribeProperties,
    /// `-D unsubscribe ...`.
    pub unsubscribe: UnsubscribeProperties,
    /// `-D disconnect ...`.
    pub disconnect: DisconnectProperties,
    /// `-D will ...`.
    pub will: WillProperties,
    /// Whether any `-D` was given.
    pub any: bool,
}

/// The packets `-D` knows, by Mosquitto's names.
const COMMANDS: &[&str] = &[
    "connect",
    "publish",
    "subscribe",
    "unsubscribe",
    "disconnect",
    "auth",
    "will",
];

/// Every property name, as Mosquitto spells them, with the commands that may carry it.
const PROPERTIES: &[(&str, &[&str])] = &[
    ("payload-format-indicator", &["publish", "will"]),
    ("message-expiry-interval", &["publish", "will"]),
    ("content-type", &["publish", "will"]),
    ("response-topic", &["publish", "will"]),
    ("correlation-data", &["publish", "will"]),
    ("subscription-identifier", &["subscribe"]),
    ("session-expiry-interval", &["connect", "disconnect"]),
    ("assigned-client-identifier", &[]),
    ("server-keep-alive", &[]),
    ("authentication-method", &["connect"]),
    ("authentication-data", &["connect"]),
    ("request-problem-information", &["connect"]),
    ("will-delay-interval", &["will"]),
    ("request-response-information", &["connect"]),
    ("response-information", &[]),
    ("server-reference", &[]),
    ("reason-string", &["disconnect"]),
    ("receive-maximum", &["connect"]),
    ("topic-alias-maximum", &["connect"]),
    ("topic-alias", &["publish"]),
    ("maximum-qos", &[]),
    ("retain-available", &[]),
    (
        "user-property",
        &[
            "connect",
            "publish",
            "subscribe",
            "unsubscribe",
            "disconnect",
            "will",
        ],
    ),
    ("maximum-packet-size", &["connect"]),
    ("wildcard-subscription-available", &[]),
    ("subscription-identifier-available", &[]),
    ("shared-subscription-available", &[]),
];

/// The message Mosquitto prints for a property value the packet cannot carry (it finds out
/// when it checks the packet's properties, before connecting).
fn invalid(command: &str) -> UsageError {
    UsageError::with_layout(
        format!(
            "Error in {} properties: A network protocol error occurred when communicating \
             with the broker.",
            command.to_uppercase()
        ),
        Layout::PlainPointer,
    )
}

impl CliProperties {
    /// The DISCONNECT to end with: a normal disconnection with the `-D disconnect` properties.
    pub fn farewell(&self) -> mqtt_client::Disconnect {
        let mut d = mqtt_client::Disconnect::new(mqtt_client::ReasonCode::NORMAL_DISCONNECTION);
        d.properties = self.disconnect.clone();
        d
    }

    /// Reads the values of every `-D` in order: `command identifier value`, or for a user
    /// property `command user-property name value`.
    ///
    /// # Errors
    /// Mosquitto's message for an unknown command or property, a property the command does not
    /// take, too few values, or a value the property cannot have.
    pub fn parse(tokens: &[String]) -> Result<Self, UsageError> {
        let mut this = Self {
            any: !tokens.is_empty(),
            ..Self::default()
        };
        let mut rest = tokens;
        while !rest.is_empty() {
            let len = match rest.get(1).map(String::as_str) {
                Some("user-property") => 4,
                _ => 3,
            };
            let (one, more) = rest.split_at(len.min(rest.len()));
            this.add(one)?;
            rest = more;
        }
        Ok(this)
    }

    fn add(&mut self, args: &[String]) -> Result<(), UsageError> {
        let too_few =
            || UsageError::spaced("--property argument given but not enough arguments specified.");
        let [command, name, rest @ ..] = args else {
            return Err(too_few());
        };
        if !COMMANDS.contains(&command.as_str()) {
            return Err(UsageError::spaced(
                "Invalid command given in --property argument.",
            ));
        }
        let Some((_, allowed)) = PROPERTIES.iter().find(|(n, _)| n == name) else {
            return Err(UsageError::spaced(
                "Invalid property name given in --property argument.",
            ));
        };
        // Mosquitto's tools send no AUTH, and a client never sends a subscription identifier
        // in PUBLISH: "not supported"; the rest the standard does not allow in the packet.
        if command == "auth" || (command == "publish" && name == "subscription-identifier") {
            return Err(UsageError::spaced(format!(
                "{name} property not supported for {command} in --property argument."
            )));
        }
        if !allowed.contains(&command.as_str()) {
            return Err(UsageError::spaced(format!(
                "{name} property not allowed for {command} in --property argument."
            )));
        }
        let (value, second) = match rest {
            [value] => (value.as_str(), None),
            [name_, value] if name == "user-property" => (name_.as_str(), Some(value.as_str())),
            _ => return Err(too_few()),
        };
        if name == "user-property" && second.is_none() {
            return Err(too_few());
        }
        let bad = || invalid(command);
        let string = |text: &str| MqttString::try_from(text).map_err(|_| bad());
        // As libmosquitto: C's `atoi`, cast to the property's width (`-1` is 4294967295).
        let u32_value = |text: &str| -> Result<u32, UsageError> { Ok(c_u32(atoi(text))) };
        let u16_value = |text: &str| -> Result<u16, UsageError> { Ok(c_u16(atoi(text))) };
        let flag = |text: &str| match atoi(text) {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(bad()),
        };
        match (command.as_str(), name.as_str()) {
            (_, "user-property") => {
                let pair = (string(value)?, string(second.unwrap_or_default())?);
                match command.as_str() {
                    "connect" => self.connect.user_properties.push(pair),
                    "publish" => self.publish.user_properties.push(pair),
                    "subscribe" => self.subscribe.user_properties.push(pair),
                    "unsubscribe" => self.unsubscribe.user_properties.push(pair),
                    "disconnect" => self.disconnect.user_properties.push(pair),
                    _ => self.will.user_properties.push(pair),
                }
            }
            ("connect", "session-expiry-interval") => {
                self.connect.session_expiry_interval = Some(u32_value(value)?);
            }
            ("disconnect", "session-expiry-interval") => {
                self.disconnect.session_expiry_interval = Some(u32_value(value)?);
            }
            ("connect", "receive-maximum") => {
                self.connect.receive_maximum =
                    Some(NonZeroU16::new(u16_value(value)?).ok_or_else(bad)?);
            }
            ("connect", "maximum-packet-size") => {
                self.connect.maximum_packet_size =
                    Some(NonZeroU32::new(u32_value(value)?).ok_or_else(bad)?);
            }
            ("connect", "topic-alias-maximum") => {
                self.connect.topic_alias_maximum = Some(u16_value(value)?);
            }
            ("connect", "request-response-information") => {
                self.connect.request_response_information = Some(flag(value)?);
            }
            ("connect", "request-problem-information") => {
                self.connect.request_problem_information = Some(flag(value)?);
            }
            ("connect", "authentication-method") => {
                self.connect.authentication_method = Some(string(value)?);
            }
            ("connect", "authentication-data") => {
                self.connect.authentication_data = Some(mqtt_codec::Secret::new(Bytes::from(
                    value.as_bytes().to_vec(),
                )));
            }
            ("disconnect", "reason-string") => {
                self.disconnect.reason_string = Some(string(value)?);
            }
            ("subscribe", "subscription-identifier") => {
                let id = SubscriptionId::new(c_u32(atoi(value)));
                self.subscribe.subscription_identifier = Some(id.ok_or_else(bad)?);
            }
            ("publish", "topic-alias") => {
                self.publish.topic_alias =
                    Some(NonZeroU16::new(u16_value(value)?).ok_or_else(bad)?);
            }
            ("will", "will-delay-interval") => {
                self.will.will_delay_interval = Some(u32_value(value)?);
            }
            (command, name) => self.add_message_property(command, name, value, bad)?,
        }
        Ok(())
    }

    /// The properties PUBLISH and the will share.
    fn add_message_property(
        &mut self,
        command: &str,
        name: &str,
        value: &str,
        bad: impl Fn() -> UsageError,
    ) -> Result<(), UsageError> {
        let string = |text: &str| MqttString::try_from(text).map_err(|_| bad());
        let (format, expiry, content, response, correlation) = match command {
            "publish" => (
                &mut self.publish.payload_format_indicator,
                &mut self.publish.message_expiry_interval,
                &mut self.publish.content_type,
                &mut self.publish.response_topic,
                &mut self.publish.correlation_data,
            ),
            "will" => (
                &mut self.will.payload_format_indicator,
                &mut self.will.message_expiry_interval,
                &mut self.will.content_type,
                &mut self.will.response_topic,
                &mut self.will.correlation_data,
            ),
            _ => return Ok(()),
        };
        match name {
            "payload-format-indicator" => {
                *format = Some(match atoi(value) {
                    0 => PayloadFormat::Unspecified,
                    1 => PayloadFormat::Utf8,
                    _ => return Err(bad()),
                });
            }
            "message-expiry-interval" => *expiry = Some(c_u32(atoi(value))),
            "content-type" => *content = Some(string(value)?),
            "response-topic" => {
                *response = Some(TopicName::try_from(value).map_err(|_| bad())?);
            }
            "correlation-data" => *correlation = Some(Bytes::from(value.as_bytes().to_vec())),
            _ => {}
        }
        Ok(())
    }
}

/// C's conversion of an `int` to `uint32_t`: the same 32 bits.
fn c_u32(value: i32) -> u32 {
    u32::from_ne_bytes(value.to_ne_bytes())
}

/// C's conversion of an `int` to `uint16_t`: the low 16 bits.
fn c_u16(value: i32) -> u16 {
    let [low, high, ..] = value.to_le_bytes();
    u16::from_le_bytes([low, high])
}

/// `-x`: the session expiry interval, as Mosquitto's clients read it: 0 to 4294967294 seconds,
/// or -1, 4294967295 or `∞` for a session that never expires.
///
/// # Errors
/// Mosquitto's message for a value that is not a number or out of range.
pub fn parse_session_expiry(text: &str) -> Result<u32, UsageError> {
    if text == "∞" {
        return Ok(u32::MAX);
    }
    let value: i64 = text
        .parse()
        .map_err(|_| UsageError::spaced("session-expiry-interval not a number."))?;
    match value {
        -1 => Ok(u32::MAX),
        v => u32::try_from(v)
            .map_err(|_| UsageError::spaced("session-expiry-interval out of range.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&[&str]]) -> Result<CliProperties, String> {
        let tokens: Vec<String> = args
            .iter()
            .flat_map(|a| a.iter().map(|s| (*s).to_owned()))
            .collect();
        CliProperties::parse(&tokens).map_err(|e| e.message)
    }

    #[test]
    fn properties_land_in_their_packet() {
        let p = parse(&[
            &["connect", "session-expiry-interval", "60"],
            &["connect", "user-property", "k", "v"],
            &["publish", "response-topic", "r/t"],
            &["publish", "correlation-data", "abc"],
            &["publish", "user-property", "a", "1"],
            &["publish", "user-property", "a", "2"],
            &["subscribe", "subscription-identifier", "7"],
            &["will", "will-delay-interval", "5"],
            &["disconnect", "session-expiry-interval", "0"],
        ])
        .unwrap();
        assert!(p.any);
        assert_eq!(p.connect.session_expiry_interval, Some(60));
        assert_eq!(p.connect.user_properties.len(), 1);
        assert_eq!(p.publish.response_topic.unwrap().as_str(), "r/t");
        assert_eq!(p.publish.correlation_data.as_deref(), Some(&b"abc"[..]));
        let users: Vec<(&str, &str)> = p
            .publish
            .user_properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(users, [("a", "1"), ("a", "2")]);
        assert_eq!(
            p.subscribe.subscription_identifier.map(SubscriptionId::get),
            Some(7)
        );
        assert_eq!(p.will.will_delay_interval, Some(5));
        assert_eq!(p.disconnect.session_expiry_interval, Some(0));
    }

    #[test]
    fn mistakes_get_mosquittos_messages() {
        assert_eq!(
            parse(&[&["foo", "bar", "baz"]]).unwrap_err(),
            "Invalid command given in --property argument."
        );
        assert_eq!(
            parse(&[&["connect", "bar", "baz"]]).unwrap_err(),
            "Invalid property name given in --property argument."
        );
        assert_eq!(
            parse(&[&["publish", "user-property", "a"]]).unwrap_err(),
            "--property argument given but not enough arguments specified."
        );
        assert_eq!(
            parse(&[&["publish", "subscription-identifier", "3"]]).unwrap_err(),
            "subscription-identifier property not supported for publish in --property argument."
        );
        assert_eq!(
            parse(&[&["connect", "receive-maximum", "0"]]).unwrap_err(),
            "Error in CONNECT properties: A network protocol error occurred when \
             communicating with the broker."
        );
        assert_eq!(
            parse(&[&["publish", "payload-format-indicator", "2"]]).unwrap_err(),
            "Error in PUBLISH properties: A network protocol error occurred when \
             communicating with the broker."
        );
    }

    #[test]
    fn numbers_are_read_as_libmosquitto_reads_them() {
        // atoi, then the property's width: -1 and 4294967295 are the same 32 bits.
        let p = parse(&[
            &["connect", "session-expiry-interval", "4294967295"],
            &["publish", "message-expiry-interval", "-1"],
            &["connect", "topic-alias-maximum", "65546"],
        ])
        .unwrap();
        assert_eq!(p.connect.session_expiry_interval, Some(u32::MAX));
        assert_eq!(p.publish.message_expiry_interval, Some(u32::MAX));
        assert_eq!(p.connect.topic_alias_maximum, Some(10));
    }

    #[test]
    fn session_expiry_reads_like_mosquitto() {
        assert_eq!(parse_session_expiry("10").unwrap(), 10);
        assert_eq!(parse_session_expiry("-1").unwrap(), u32::MAX);
        assert_eq!(parse_session_expiry("∞").unwrap(), u32::MAX);
        assert_eq!(parse_session_expiry("4294967295").unwrap(), u32::MAX);
        assert_eq!(
            parse_session_expiry("abc").unwrap_err().message,
            "session-expiry-interval not a number."
        );
        assert_eq!(
            parse_session_expiry("-2").unwrap_err().message,
            "session-expiry-interval out of range."
        );
        assert_eq!(
            parse_session_expiry("4294967296").unwrap_err().message,
            "session-expiry-interval out of range."
        );
    }
}
