//! Message output of `mqtt sub`: the bytes `mosquitto_sub` 2.0.11 prints for a received message,
//! reproduced byte for byte.
//!
//! Three styles exist, as in `mosquitto_sub`: the payload alone (the default), `topic payload`
//! (`-v`), and a format string (`-F`, which wins over `-v`). `-N` drops the end of line and
//! `--pretty` pretty-prints the JSON of `%j` and `%J`. A [`Printer`] holds the chosen style;
//! [`Printer::write`] appends one message's output to a caller's buffer.
//!
//! The format string language, as `mosquitto_sub` implements it:
//!
//! * `%` specifiers, with an optional `-` (left align), an optional `0` (zero padding), a field
//!   width and a `.precision`: `%%`, `%t` topic, `%p` payload, `%x`/`%X` payload in hex, `%l`
//!   payload length, `%q` QoS, `%r` retain flag, `%m` message id, `%I` ISO 8601 local time, `%U`
//!   Unix time with nanoseconds, `%j` JSON (payload as a string), `%J` JSON (payload as JSON),
//!   and the MQTT 5 properties `%A` topic alias, `%C` content type, `%D` correlation data, `%E`
//!   message expiry interval, `%F` payload format indicator, `%P` user properties, `%R` response
//!   topic and `%S` subscription identifier;
//! * `@` followed by a `strftime` conversion character (`@Y`, `@H`, ... in the C locale), `@N`
//!   for nanoseconds and `@@` for a literal `@`;
//! * `\` escapes: `\\`, `\0`, `\a`, `\e`, `\n`, `\r`, `\t`, `\v`.
//!
//! `mosquitto_sub`'s quirks are kept on purpose, because scripts depend on its exact output: a
//! field width *truncates* `%p` (and halves what `%x` shows), `%-p` without a width pads with as
//! many spaces as the payload is long, strings stop at a NUL byte (`%t`, `%j`'s payload, user
//! properties), `%J` re-prints the payload through cJSON (numbers as `%1.15g`, or `%1.17g` when
//! that does not read back; escapes decoded), JSON time stamps read
//! `2020-05-06T21:48:00.123456Z+0100`, and so on. The unit tests name each.
//!
//! One difference is deliberate: `mosquitto_sub` reads the clock anew for each `%I`, `%U`, `%j`
//! and `%J` of a line (and once for all its `@` specifiers), so two time stamps of one line can
//! differ by microseconds; here every specifier shows the one `now` the caller passes.
//!
//! This module does no I/O and never panics on its input: it does not print, does not choose
//! which messages to print (`-R`, `-T`, `--random-filter`) and does not read the clock; the
//! caller passes the time of reception in, which keeps the tests deterministic.

use std::fmt;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// A received message, borrowed: everything any output style can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageView<'a> {
    /// The topic name.
    pub topic: &'a str,
    /// The payload bytes.
    pub payload: &'a [u8],
    /// The QoS the message was delivered with (0, 1 or 2).
    pub qos: u8,
    /// The retain flag as delivered.
    pub retain: bool,
    /// The packet identifier of a QoS 1 or 2 delivery; `None` for QoS 0 (`%m` prints 0 then).
    pub mid: Option<u16>,
    /// The MQTT 5 properties of the PUBLISH; `None` for MQTT 3.1 and 3.1.1.
    pub properties: Option<&'a V5Props>,
}

impl<'a> MessageView<'a> {
    /// A QoS 0, not retained message without properties.
    pub fn new(topic: &'a str, payload: &'a [u8]) -> Self {
        Self {
            topic,
            payload,
            qos: 0,
            retain: false,
            mid: None,
            properties: None,
        }
    }
}

/// The kind of one MQTT 5 PUBLISH property, to record the order properties arrived in
/// ([`V5Props::order`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PropKind {
    /// Payload Format Indicator (0x01).
    PayloadFormatIndicator,
    /// Message Expiry Interval (0x02).
    MessageExpiryInterval,
    /// Content Type (0x03).
    ContentType,
    /// Response Topic (0x08).
    ResponseTopic,
    /// Correlation Data (0x09).
    CorrelationData,
    /// Subscription Identifier (0x0B).
    SubscriptionIdentifier,
    /// Topic Alias (0x23).
    TopicAlias,
    /// User Property (0x26).
    UserProperty,
}

/// The order used for properties that [`V5Props::order`] does not place: the order in which a
/// Mosquitto broker forwards a message whose publisher wrote its properties in identifier order
/// (subscription identifiers first, the message expiry interval, recomputed, last).
const DEFAULT_ORDER: [PropKind; 8] = [
    PropKind::SubscriptionIdentifier,
    PropKind::PayloadFormatIndicator,
    PropKind::ContentType,
    PropKind::ResponseTopic,
    PropKind::CorrelationData,
    PropKind::TopicAlias,
    PropKind::UserProperty,
    PropKind::MessageExpiryInterval,
];

/// The MQTT 5 properties of a received PUBLISH that `mosquitto_sub` can print.
///
/// Build it with `V5Props::default()` and set the fields. `%j` and `%J` list the properties in
/// the order they arrived in; give that order in [`order`](Self::order) when it is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct V5Props {
    /// Payload Format Indicator (`%F`).
    pub payload_format_indicator: Option<u8>,
    /// Message Expiry Interval in seconds (`%E`).
    pub message_expiry_interval: Option<u32>,
    /// Content Type (`%C`).
    pub content_type: Option<String>,
    /// Response Topic (`%R`).
    pub response_topic: Option<String>,
    /// Correlation Data (`%D`).
    pub correlation_data: Option<Vec<u8>>,
    /// Subscription Identifiers, in order (`%S` prints the first).
    pub subscription_identifiers: Vec<u32>,
    /// Topic Alias (`%A`).
    pub topic_alias: Option<u16>,
    /// User Properties as (name, value), in order (`%P`).
    pub user_properties: Vec<(String, String)>,
    /// The order the properties arrived in, one entry per property (a kind repeats for each
    /// subscription identifier or user property). Only the JSON of `%j` and `%J` depends on it.
    /// Properties it does not list follow in the order of a Mosquitto broker: subscription
    /// identifiers, payload format indicator, content type, response topic, correlation data,
    /// topic alias, user properties, message expiry interval.
    pub order: Vec<PropKind>,
}

impl V5Props {
    /// Whether no property is set (`mosquitto_sub` then sees no property list at all).
    pub fn is_empty(&self) -> bool {
        self.payload_format_indicator.is_none()
            && self.message_expiry_interval.is_none()
            && self.content_type.is_none()
            && self.response_topic.is_none()
            && self.correlation_data.is_none()
            && self.subscription_identifiers.is_empty()
            && self.topic_alias.is_none()
            && self.user_properties.is_empty()
    }

    /// The properties in arrival order: [`order`](Self::order) first, then the rest.
    fn sequence(&self) -> Vec<Prop<'_>> {
        let mut cursor = PropCursor::default();
        let mut sequence = Vec::new();
        for &kind in &self.order {
            sequence.extend(cursor.next(self, kind));
        }
        for kind in DEFAULT_ORDER {
            while let Some(prop) = cursor.next(self, kind) {
                sequence.push(prop);
            }
        }
        sequence
    }
}

/// One property, borrowed from a [`V5Props`].
#[derive(Debug, Clone, Copy)]
enum Prop<'a> {
    PayloadFormat(u8),
    Expiry(u32),
    ContentType(&'a str),
    ResponseTopic(&'a str),
    Correlation(&'a [u8]),
    SubscriptionId(u32),
    /// A topic alias; its value is never printed (see `json::properties`).
    TopicAlias,
    User(&'a str, &'a str),
}

/// Walks the fields of a [`V5Props`], handing out each property once.
#[derive(Debug, Default)]
struct PropCursor {
    payload_format: bool,
    expiry: bool,
    content_type: bool,
    response_topic: bool,
    correlation: bool,
    topic_alias: bool,
    subscription_ids: usize,
    users: usize,
}

impl PropCursor {
    /// The next property of this kind not handed out yet.
    fn next<'a>(&mut self, props: &'a V5Props, kind: PropKind) -> Option<Prop<'a>> {
        /// Hands out an optional field once.
        fn once<T>(taken: &mut bool, value: Option<T>) -> Option<T> {
            if std::mem::replace(taken, true) {
                None
            } else {
                value
            }
        }
        match kind {
            PropKind::PayloadFormatIndicator => {
                once(&mut self.payload_format, props.payload_format_indicator)
                    .map(Prop::PayloadFormat)
            }
            PropKind::MessageExpiryInterval => {
                once(&mut self.expiry, props.message_expiry_interval).map(Prop::Expiry)
            }
            PropKind::ContentType => {
                once(&mut self.content_type, props.content_type.as_deref()).map(Prop::ContentType)
            }
            PropKind::ResponseTopic => {
                once(&mut self.response_topic, props.response_topic.as_deref())
                    .map(Prop::ResponseTopic)
            }
            PropKind::CorrelationData => {
                once(&mut self.correlation, props.correlation_data.as_deref())
                    .map(Prop::Correlation)
            }
            PropKind::TopicAlias => {
                once(&mut self.topic_alias, props.topic_alias).map(|_| Prop::TopicAlias)
            }
            PropKind::SubscriptionIdentifier => {
                let id = props.subscription_identifiers.get(self.subscription_ids)?;
                self.subscription_ids += 1;
                Some(Prop::SubscriptionId(*id))
            }
            PropKind::UserProperty => {
                let (name, value) = props.user_properties.get(self.users)?;
                self.users += 1;
                Some(Prop::User(name, value))
            }
        }
    }
}

/// How messages are printed: `mosquitto_sub`'s default, `-v` or `-F`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Style {
    /// The payload alone; a message with an empty payload prints nothing at all.
    Plain,
    /// `-v`: `topic payload`; an empty payload prints `topic (null)` (nothing with `-N`).
    Verbose,
    /// `-F format`.
    Format(Format),
}

/// Prints received messages in one [`Style`], with or without an end of line (`-N`).
#[derive(Debug, Clone)]
pub struct Printer {
    style: Style,
    eol: bool,
}

impl Printer {
    /// A printer of this style that ends each message with `\n`.
    pub fn new(style: Style) -> Self {
        Self { style, eol: true }
    }

    /// The printer `mosquitto_sub` uses for these options: `-F format` (which wins over `-v`),
    /// `-v`, `--pretty` and `-N` (`eol == false`).
    pub fn from_options(
        format: Option<&str>,
        verbose: bool,
        pretty: bool,
        eol: bool,
    ) -> Result<Self, FormatError> {
        let style = match format {
            Some(spec) => Style::Format(Format::parse(spec)?.with_pretty(pretty)),
            None if verbose => Style::Verbose,
            None => Style::Plain,
        };
        Ok(Self { style, eol })
    }

    /// The same printer with (`true`) or without (`false`, `-N`) the end of line.
    #[must_use]
    pub fn with_eol(mut self, eol: bool) -> Self {
        self.eol = eol;
        self
    }

    /// The style.
    pub fn style(&self) -> &Style {
        &self.style
    }

    /// Appends the output for `msg`, received at `now`, to `out`.
    ///
    /// An error means a `%J` met a payload that is not JSON: `out` then holds the rest of the
    /// line all the same, as `mosquitto_sub` prints it, and the caller reports the error.
    pub fn write(
        &self,
        msg: &MessageView<'_>,
        now: SystemTime,
        out: &mut Vec<u8>,
    ) -> Result<(), InvalidJsonPayload> {
        match &self.style {
            Style::Format(format) => {
                let result = format.write(msg, now, out);
                if self.eol {
                    out.push(b'\n');
                }
                result
            }
            Style::Verbose => {
                if msg.payload.is_empty() {
                    if self.eol {
                        out.extend_from_slice(c_str(msg.topic.as_bytes()));
                        out.extend_from_slice(b" (null)\n");
                    }
                } else {
                    out.extend_from_slice(c_str(msg.topic.as_bytes()));
                    out.push(b' ');
                    out.extend_from_slice(msg.payload);
                    if self.eol {
                        out.push(b'\n');
                    }
                }
                Ok(())
            }
            Style::Plain => {
                if !msg.payload.is_empty() {
                    out.extend_from_slice(msg.payload);
                    if self.eol {
                        out.push(b'\n');
                    }
                }
                Ok(())
            }
        }
    }
}

/// A `-F` format string rejected the way `mosquitto_sub` rejects it. `Display` gives
/// `mosquitto_sub`'s message without its `Error: ` prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// A `%` or `@` (with its flags, width or precision) ends the string.
    IncompleteSpecifier {
        /// Byte offset of the `%` or `@`.
        offset: usize,
    },
    /// A `%` is followed by a character that is no specifier.
    InvalidSpecifier {
        /// Byte offset of the character.
        offset: usize,
        /// The character.
        found: char,
    },
    /// A `\` ends the string.
    IncompleteEscape {
        /// Byte offset of the `\`.
        offset: usize,
    },
    /// A `\` is followed by a character that is no escape.
    InvalidEscape {
        /// Byte offset of the character.
        offset: usize,
        /// The character.
        found: char,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IncompleteSpecifier { .. } => f.write_str("Incomplete format specifier."),
            Self::InvalidSpecifier { found, .. } => {
                write!(f, "Invalid format specifier '{found}'.")
            }
            Self::IncompleteEscape { .. } => f.write_str("Incomplete escape specifier."),
            Self::InvalidEscape { found, .. } => write!(f, "Invalid escape specifier '{found}'."),
        }
    }
}

impl std::error::Error for FormatError {}

/// A `%J` met a payload that is not valid JSON; its expansion was left empty. `Display` gives
/// `mosquitto_sub`'s message without its `Error: ` prefix, which it prints once per `%J`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidJsonPayload {
    /// The topic of the message.
    pub topic: String,
    /// How many `%J` of the format string failed.
    pub occurrences: usize,
}

impl fmt::Display for InvalidJsonPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topic = String::from_utf8_lossy(c_str(self.topic.as_bytes()));
        write!(f, "Message payload is not valid JSON on topic {topic}.")
    }
}

impl std::error::Error for InvalidJsonPayload {}

/// A parsed `-F` format string, ready to print any number of messages.
#[derive(Debug, Clone)]
pub struct Format {
    items: Vec<Item>,
    pretty: bool,
    time_zone: TimeZone,
}

/// One piece of a format string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// Bytes printed as they are (text, escapes, `@@`).
    Literal(Vec<u8>),
    /// A `%` specifier.
    Field(Field),
    /// `@c` other than `@@` and `@N`: `strftime("%c")`.
    Strftime(u8),
    /// `@N`: nanoseconds, nine digits.
    Nanos,
}

/// A `%` specifier with its flags, as `mosquitto_sub` parses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    /// The specifier character.
    conversion: u8,
    /// The `-` flag.
    left: bool,
    /// The `0` flag.
    zero: bool,
    /// The field width, 0 when none (C `int` arithmetic: a huge width wraps).
    width: i32,
    /// The precision, -1 when none.
    precision: i32,
}

impl Field {
    /// The padding character of the numeric and blank fields.
    fn pad(&self) -> u8 {
        if self.zero { b'0' } else { b' ' }
    }
}

/// The specifiers `mosquitto_sub` accepts after `%`.
const SPECIFIERS: &[u8] = b"%ACDEFIlmPpqRSrtjJUxX";

/// The escapes `mosquitto_sub` accepts after `\`, and what they print.
fn escape(c: u8) -> Option<u8> {
    match c {
        b'\\' => Some(b'\\'),
        b'0' => Some(0),
        b'a' => Some(0x07),
        b'e' => Some(0x1b),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'v' => Some(0x0b),
        _ => None,
    }
}

/// The byte at `i`, or 0 past the end, as C sees its NUL-terminated string.
fn at(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).copied().unwrap_or(0)
}

/// The character starting at byte `offset` of `spec` (a character boundary), for error messages.
fn char_at(spec: &str, offset: usize) -> char {
    spec.get(offset..)
        .and_then(|rest| rest.chars().next())
        .unwrap_or('\0')
}

/// `mosquitto_sub`'s validation of a format string (`check_format`), done before anything runs.
fn check(spec: &str) -> Result<(), FormatError> {
    let s = spec.as_bytes();
    let len = s.len();
    let mut i = 0;
    while i < len {
        match at(s, i) {
            b'%' => {
                let start = i;
                let incomplete = FormatError::IncompleteSpecifier { offset: start };
                if i == len - 1 {
                    return Err(incomplete);
                }
                if matches!(at(s, i + 1), b'0' | b'-') {
                    i += 1;
                    if i == len - 1 {
                        return Err(incomplete);
                    }
                }
                while at(s, i + 1).is_ascii_digit() {
                    i += 1;
                    if i == len - 1 {
                        return Err(incomplete);
                    }
                }
                if at(s, i + 1) == b'.' {
                    i += 1;
                    if i == len - 1 {
                        return Err(incomplete);
                    }
                    while at(s, i + 1).is_ascii_digit() {
                        i += 1;
                        if i == len - 1 {
                            return Err(incomplete);
                        }
                    }
                }
                if !SPECIFIERS.contains(&at(s, i + 1)) {
                    return Err(FormatError::InvalidSpecifier {
                        offset: i + 1,
                        found: char_at(spec, i + 1),
                    });
                }
                i += 1;
            }
            b'@' => {
                if i == len - 1 {
                    return Err(FormatError::IncompleteSpecifier { offset: i });
                }
                i += 1;
            }
            b'\\' => {
                if i == len - 1 {
                    return Err(FormatError::IncompleteEscape { offset: i });
                }
                if escape(at(s, i + 1)).is_none() {
                    return Err(FormatError::InvalidEscape {
                        offset: i + 1,
                        found: char_at(spec, i + 1),
                    });
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Appends a literal byte, merging it into a preceding literal.
fn push_literal(items: &mut Vec<Item>, byte: u8) {
    if let Some(Item::Literal(bytes)) = items.last_mut() {
        bytes.push(byte);
    } else {
        items.push(Item::Literal(vec![byte]));
    }
}

/// Splits a checked format string into items the way `mosquitto_sub`'s printing loop walks it.
fn split(s: &[u8]) -> Vec<Item> {
    let len = s.len();
    let mut items = Vec::new();
    let mut i = 0;
    while i < len {
        match at(s, i) {
            b'%' => {
                if i < len - 1 {
                    i += 1;
                    let mut field = Field {
                        conversion: 0,
                        left: false,
                        zero: false,
                        width: 0,
                        precision: -1,
                    };
                    if at(s, i) == b'-' {
                        field.left = true;
                        if i < len - 1 {
                            i += 1;
                        }
                    }
                    if at(s, i) == b'0' {
                        field.zero = true;
                        if i < len - 1 {
                            i += 1;
                        }
                    }
                    while i < len - 1 && at(s, i).is_ascii_digit() {
                        field.width = field
                            .width
                            .wrapping_mul(10)
                            .wrapping_add(i32::from(at(s, i) - b'0'));
                        i += 1;
                    }
                    if at(s, i) == b'.' && i < len - 1 {
                        i += 1;
                        field.precision = 0;
                        while i < len - 1 && at(s, i).is_ascii_digit() {
                            field.precision = field
                                .precision
                                .wrapping_mul(10)
                                .wrapping_add(i32::from(at(s, i) - b'0'));
                            i += 1;
                        }
                    }
                    if i < len {
                        field.conversion = at(s, i);
                        items.push(Item::Field(field));
                    }
                }
            }
            b'@' => {
                if i < len - 1 {
                    i += 1;
                    match at(s, i) {
                        b'@' => push_literal(&mut items, b'@'),
                        b'N' => items.push(Item::Nanos),
                        c => items.push(Item::Strftime(c)),
                    }
                }
            }
            b'\\' => {
                if i < len - 1 {
                    i += 1;
                    if let Some(byte) = escape(at(s, i)) {
                        push_literal(&mut items, byte);
                    }
                }
            }
            c => push_literal(&mut items, c),
        }
        i += 1;
    }
    items
}

impl Format {
    /// Parses a `-F` format string, rejecting what `mosquitto_sub` rejects. Times print in the
    /// system time zone (`TZ`, else `/etc/localtime`), JSON unformatted.
    pub fn parse(spec: &str) -> Result<Self, FormatError> {
        check(spec)?;
        Ok(Self {
            items: split(spec.as_bytes()),
            pretty: false,
            time_zone: TimeZone::system(),
        })
    }

    /// The same format with `%j` and `%J` pretty-printed (`--pretty`) or not.
    #[must_use]
    pub fn with_pretty(mut self, pretty: bool) -> Self {
        self.pretty = pretty;
        self
    }

    /// The same format printing local times (`%I`, `@` specifiers, JSON `tst`) in `time_zone`.
    #[must_use]
    pub fn with_time_zone(mut self, time_zone: TimeZone) -> Self {
        self.time_zone = time_zone;
        self
    }

    /// Appends the expansion of the format for `msg`, received at `now`, to `out`, without the
    /// end of line (see [`Printer`]).
    ///
    /// An error means a `%J` met a payload that is not JSON: its expansion is empty and the rest
    /// is in `out` all the same, as `mosquitto_sub` prints it.
    pub fn write(
        &self,
        msg: &MessageView<'_>,
        now: SystemTime,
        out: &mut Vec<u8>,
    ) -> Result<(), InvalidJsonPayload> {
        let mut clock = Clock {
            now,
            time_zone: &self.time_zone,
            local: None,
        };
        let mut failures = 0;
        for item in &self.items {
            match item {
                Item::Literal(bytes) => out.extend_from_slice(bytes),
                Item::Field(field) => {
                    if !self.field(field, msg, &mut clock, out) {
                        failures += 1;
                    }
                }
                Item::Strftime(c) => strftime(&[b'%', *c], clock.local(), out),
                Item::Nanos => put(out, format_args!("{:09}", clock.local().nanos)),
            }
        }
        if failures == 0 {
            Ok(())
        } else {
            Err(InvalidJsonPayload {
                topic: msg.topic.to_owned(),
                occurrences: failures,
            })
        }
    }

    /// Prints one `%` specifier; `false` if it is a `%J` whose payload is not JSON.
    fn field(
        &self,
        field: &Field,
        msg: &MessageView<'_>,
        clock: &mut Clock<'_>,
        out: &mut Vec<u8>,
    ) -> bool {
        let props = msg.properties;
        match field.conversion {
            b'%' => out.push(b'%'),
            b'A' => match props.and_then(|p| p.topic_alias) {
                Some(alias) => print_int(out, i64::from(alias), field),
                None => blank(out, field.pad(), field.width),
            },
            b'C' => match props.and_then(|p| p.content_type.as_deref()) {
                Some(value) => print_str(out, value.as_bytes(), field),
                None => blank(out, b' ', field.width),
            },
            b'D' => {
                if let Some(data) = props.and_then(|p| p.correlation_data.as_deref()) {
                    out.extend_from_slice(data);
                }
            }
            // mosquitto casts the unsigned 32-bit interval to a C int: above 2^31 it is negative.
            b'E' => match props.and_then(|p| p.message_expiry_interval) {
                Some(seconds) => print_int(out, i64::from(seconds as i32), field),
                None => blank(out, field.pad(), field.width),
            },
            b'F' => match props.and_then(|p| p.payload_format_indicator) {
                Some(indicator) => print_int(out, i64::from(indicator), field),
                None => blank(out, field.pad(), field.width),
            },
            b'I' => {
                let mut stamp = Vec::new();
                strftime(b"%FT%T%z", clock.local(), &mut stamp);
                print_str(out, &stamp, field);
            }
            // A string payload always prints.
            b'j' => {
                json::message(msg, clock.local(), true, self.pretty, out);
            }
            b'J' => return json::message(msg, clock.local(), false, self.pretty, out),
            b'l' => print_int(
                out,
                i64::try_from(msg.payload.len()).unwrap_or(i64::MAX),
                field,
            ),
            b'm' => print_int(out, i64::from(msg.mid.unwrap_or(0)), field),
            b'P' => {
                if let Some(props) = props {
                    for (k, (name, value)) in props.user_properties.iter().enumerate() {
                        if k > 0 {
                            out.push(b' ');
                        }
                        out.extend_from_slice(c_str(name.as_bytes()));
                        out.push(b':');
                        out.extend_from_slice(c_str(value.as_bytes()));
                    }
                }
            }
            b'p' => write_payload(out, msg.payload, Hex::No, field),
            b'q' => out.push(msg.qos.wrapping_add(b'0')),
            b'R' => {
                if let Some(topic) = props.and_then(|p| p.response_topic.as_deref()) {
                    print_str(out, topic.as_bytes(), field);
                }
            }
            b'r' => out.push(if msg.retain { b'1' } else { b'0' }),
            // A subscription identifier is at most 268,435,455: the C int cast never wraps.
            b'S' => match props.and_then(|p| p.subscription_identifiers.first()) {
                Some(&id) => print_int(out, i64::from(id), field),
                None => blank(out, field.pad(), field.width),
            },
            b't' => print_str(out, msg.topic.as_bytes(), field),
            b'U' => {
                let local = clock.local();
                put(out, format_args!("{}.{:09}", local.seconds, local.nanos));
            }
            b'x' => write_payload(out, msg.payload, Hex::Lower, field),
            b'X' => write_payload(out, msg.payload, Hex::Upper, field),
            _ => {}
        }
        true
    }
}

/// Formats into `out`; writing into a `Vec` cannot fail.
fn put(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    let _ = out.write_fmt(args);
}

/// The bytes before the first NUL: what C string functions see.
fn c_str(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => bytes.get(..end).unwrap_or(bytes),
        None => bytes,
    }
}

/// `count` copies of `byte`; nothing for a negative count.
fn repeat(out: &mut Vec<u8>, byte: u8, count: i64) {
    if let Ok(count) = usize::try_from(count) {
        out.resize(out.len() + count, byte);
    }
}

/// `mosquitto_sub`'s `formatted_print_blank`: `width` pad characters for an absent property.
fn blank(out: &mut Vec<u8>, pad: u8, width: i32) {
    repeat(out, pad, i64::from(width));
}

/// C `printf("%d")` with the `-` and `0` flags and a `*` width (a negative width left-aligns).
fn c_int(out: &mut Vec<u8>, value: i64, left: bool, zero: bool, width: i32) {
    let left = left || width < 0;
    let width = i64::from(width).abs();
    let digits = value.unsigned_abs().to_string();
    let sign: &[u8] = if value < 0 { b"-" } else { b"" };
    let len = i64::try_from(digits.len() + sign.len()).unwrap_or(i64::MAX);
    let pad = width - len;
    if left {
        out.extend_from_slice(sign);
        out.extend_from_slice(digits.as_bytes());
        repeat(out, b' ', pad);
    } else if zero {
        out.extend_from_slice(sign);
        repeat(out, b'0', pad);
        out.extend_from_slice(digits.as_bytes());
    } else {
        repeat(out, b' ', pad);
        out.extend_from_slice(sign);
        out.extend_from_slice(digits.as_bytes());
    }
}

/// `mosquitto_sub`'s `formatted_print_int`.
fn print_int(out: &mut Vec<u8>, value: i64, field: &Field) {
    if field.width == 0 {
        put(out, format_args!("{value}"));
    } else if field.left {
        c_int(out, value, true, false, field.width);
    } else {
        c_int(out, value, false, field.zero, field.width);
    }
}

/// `mosquitto_sub`'s `formatted_print_str`: C `printf("%-*.*s")`, where a precision below 0
/// means none and a negative width left-aligns.
fn print_str(out: &mut Vec<u8>, value: &[u8], field: &Field) {
    let value = c_str(value);
    let value = match usize::try_from(field.precision) {
        Ok(precision) => value.get(..precision).unwrap_or(value),
        Err(_) => value,
    };
    let left = field.left || field.width < 0;
    let pad = i64::from(field.width).abs() - i64::try_from(value.len()).unwrap_or(i64::MAX);
    if !left {
        repeat(out, b' ', pad);
    }
    out.extend_from_slice(value);
    if left {
        repeat(out, b' ', pad);
    }
}

/// How `write_payload` shows the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hex {
    No,
    Lower,
    Upper,
}

/// `mosquitto_sub`'s `write_payload`, quirks included: a width truncates the payload to that
/// many bytes (hex: to half of that), and left alignment pads with `printf("%*s", padlen, "")`,
/// which for a negative `padlen` (no width) prints as many spaces as the payload is long.
fn write_payload(out: &mut Vec<u8>, payload: &[u8], hex: Hex, field: &Field) {
    let width = i64::from(field.width);
    let mut len = i64::try_from(payload.len()).unwrap_or(i64::MAX);
    let padlen = if width > 0 {
        len = len.min(width);
        if hex == Hex::No {
            width - len
        } else {
            len /= 2;
            width - len * 2
        }
    } else {
        width - len
    };
    if !field.left {
        repeat(out, field.pad(), padlen);
    }
    let shown = payload
        .get(..usize::try_from(len).unwrap_or(0))
        .unwrap_or(payload);
    match hex {
        Hex::No => out.extend_from_slice(shown),
        Hex::Lower => shown.iter().for_each(|b| put(out, format_args!("{b:02x}"))),
        Hex::Upper => shown.iter().for_each(|b| put(out, format_args!("{b:02X}"))),
    }
    if field.left {
        repeat(out, b' ', padlen.abs());
    }
}

/// The time of reception, converted to local time on first use.
struct Clock<'z> {
    now: SystemTime,
    time_zone: &'z TimeZone,
    local: Option<LocalTime>,
}

impl Clock<'_> {
    /// The local time, computed once.
    fn local(&mut self) -> &LocalTime {
        self.local
            .get_or_insert_with(|| LocalTime::new(self.now, self.time_zone))
    }
}

/// A broken-down local time, as C's `struct tm` plus the nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LocalTime {
    /// Seconds since the Unix epoch (`%s`).
    seconds: i64,
    /// Nanoseconds within the second.
    nanos: u32,
    year: i64,
    /// 1 to 12.
    month: i64,
    /// 1 to 31.
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    /// 0 (Sunday) to 6.
    weekday: i64,
    /// 0 to 365.
    yearday: i64,
    /// Seconds east of UTC.
    offset: i64,
    /// The time zone abbreviation (`%Z`).
    abbreviation: String,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400;
    (if month <= 2 { year + 1 } else { year }, month, day)
}

impl LocalTime {
    /// `now` in `time_zone`, as `localtime` gives it.
    fn new(now: SystemTime, time_zone: &TimeZone) -> Self {
        let (seconds, nanos) = match now.duration_since(UNIX_EPOCH) {
            Ok(after) => (
                i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                after.subsec_nanos(),
            ),
            Err(before) => {
                let before = before.duration();
                let whole = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
                match before.subsec_nanos() {
                    0 => (-whole, 0),
                    nanos => (-whole - 1, 1_000_000_000 - nanos),
                }
            }
        };
        // Past the years -9999 to 9999 that jiff handles, the offset of the nearest instant
        // it handles applies: the time zone's first or last rule, as in glibc.
        let clamped = seconds.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
        let (offset, abbreviation) = match Timestamp::from_second(clamped) {
            Ok(timestamp) => {
                let info = time_zone.to_offset_info(timestamp);
                (
                    i64::from(info.offset().seconds()),
                    info.abbreviation().to_owned(),
                )
            }
            Err(_) => (0, "UTC".to_owned()),
        };
        let local = seconds.saturating_add(offset);
        let days = local.div_euclid(86_400);
        let second_of_day = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Self {
            seconds,
            nanos,
            year,
            month,
            day,
            hour: second_of_day / 3600,
            minute: second_of_day / 60 % 60,
            second: second_of_day % 60,
            weekday: (days + 4).rem_euclid(7),
            yearday: days - days_from_civil(year, 1, 1),
            offset,
            abbreviation,
        }
    }
}

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Whether `year` is a Gregorian leap year.
fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// glibc's `iso_week_days`: the day of the year relative to the start of its ISO week-based year.
fn iso_week_days(yearday: i64, weekday: i64) -> i64 {
    const BIG_ENOUGH_MULTIPLE_OF_7: i64 = (366 / 7 + 2) * 7;
    yearday - (yearday - weekday + 4 + BIG_ENOUGH_MULTIPLE_OF_7) % 7 + 4 - 1
}

/// The ISO 8601 week-based year and the days into it (week = days / 7 + 1), as glibc computes them.
fn iso_week(t: &LocalTime) -> (i64, i64) {
    let mut year = t.year;
    let mut days = iso_week_days(t.yearday, t.weekday);
    if days < 0 {
        year -= 1;
        days = iso_week_days(t.yearday + 365 + i64::from(is_leap(year)), t.weekday);
    } else {
        let next = iso_week_days(t.yearday - (365 + i64::from(is_leap(year))), t.weekday);
        if next >= 0 {
            year += 1;
            days = next;
        }
    }
    (year, days)
}

/// The first three bytes of a name.
fn abbreviated(name: &str) -> &str {
    name.get(..3).unwrap_or(name)
}

/// glibc `strftime` in the C locale, for the conversions `mosquitto_sub` can ask for.
fn strftime(format: &[u8], t: &LocalTime, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < format.len() {
        let c = at(format, i);
        if c != b'%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        conversion(at(format, i), t, out);
        i += 1;
    }
}

/// One `strftime` conversion (the character after `%`; 0 when the format ends there).
fn conversion(c: u8, t: &LocalTime, out: &mut Vec<u8>) {
    let weekday = WEEKDAYS
        .get(usize::try_from(t.weekday).unwrap_or(0))
        .copied()
        .unwrap_or("");
    let month = MONTHS
        .get(usize::try_from(t.month - 1).unwrap_or(0))
        .copied()
        .unwrap_or("");
    let hour12 = if t.hour % 12 == 0 { 12 } else { t.hour % 12 };
    match c {
        b'a' => out.extend_from_slice(abbreviated(weekday).as_bytes()),
        b'A' => out.extend_from_slice(weekday.as_bytes()),
        b'b' | b'h' => out.extend_from_slice(abbreviated(month).as_bytes()),
        b'B' => out.extend_from_slice(month.as_bytes()),
        b'c' => strftime(b"%a %b %e %H:%M:%S %Y", t, out),
        b'C' => put(out, format_args!("{}", t.year.div_euclid(100))),
        b'd' => put(out, format_args!("{:02}", t.day)),
        b'D' => strftime(b"%m/%d/%y", t, out),
        b'e' => put(out, format_args!("{:2}", t.day)),
        b'F' => strftime(b"%Y-%m-%d", t, out),
        b'g' => put(out, format_args!("{:02}", iso_week(t).0.rem_euclid(100))),
        b'G' => put(out, format_args!("{}", iso_week(t).0)),
        b'H' => put(out, format_args!("{:02}", t.hour)),
        b'I' => put(out, format_args!("{hour12:02}")),
        b'j' => put(out, format_args!("{:03}", t.yearday + 1)),
        b'k' => put(out, format_args!("{:2}", t.hour)),
        b'l' => put(out, format_args!("{hour12:2}")),
        b'm' => put(out, format_args!("{:02}", t.month)),
        b'M' => put(out, format_args!("{:02}", t.minute)),
        b'n' => out.push(b'\n'),
        b'p' => out.extend_from_slice(if t.hour < 12 { b"AM" } else { b"PM" }),
        b'P' => out.extend_from_slice(if t.hour < 12 { b"am" } else { b"pm" }),
        b'r' => strftime(b"%I:%M:%S %p", t, out),
        b'R' => strftime(b"%H:%M", t, out),
        b's' => put(out, format_args!("{}", t.seconds)),
        b'S' => put(out, format_args!("{:02}", t.second)),
        b't' => out.push(b'\t'),
        b'T' => strftime(b"%H:%M:%S", t, out),
        b'u' => put(out, format_args!("{}", (t.weekday + 6) % 7 + 1)),
        b'U' => put(out, format_args!("{:02}", (t.yearday - t.weekday + 7) / 7)),
        b'V' => put(out, format_args!("{:02}", iso_week(t).1 / 7 + 1)),
        b'w' => put(out, format_args!("{}", t.weekday)),
        b'W' => put(
            out,
            format_args!("{:02}", (t.yearday - (t.weekday + 6) % 7 + 7) / 7),
        ),
        b'x' => strftime(b"%m/%d/%y", t, out),
        b'X' => strftime(b"%H:%M:%S", t, out),
        b'y' => put(out, format_args!("{:02}", t.year.rem_euclid(100))),
        b'Y' => put(out, format_args!("{}", t.year)),
        b'z' => {
            let minutes = t.offset.abs() / 60;
            let sign = if t.offset < 0 { '-' } else { '+' };
            put(
                out,
                format_args!("{sign}{:02}{:02}", minutes / 60, minutes % 60),
            );
        }
        b'Z' => out.extend_from_slice(t.abbreviation.as_bytes()),
        b'%' => out.push(b'%'),
        // The format ends after `%`: glibc prints the `%`.
        0 => out.push(b'%'),
        // A width with nothing to apply it to: glibc prints the bad conversion, padded.
        b'3'..=b'9' => {
            repeat(out, b' ', i64::from(c - b'2'));
            out.extend_from_slice(&[b'%', c]);
        }
        // Anything else, flags and modifiers included, is printed as it is.
        _ => out.extend_from_slice(&[b'%', c]),
    }
}

/// The JSON of `%j` and `%J`, as cJSON 1.7.15 parses and prints it.
mod json {
    use super::{LocalTime, MessageView, Prop, c_str, put, strftime};

    /// The deepest nesting cJSON parses.
    const NESTING_LIMIT: usize = 1000;

    /// A cJSON value. Strings are bytes, printed up to their first NUL as cJSON's C strings are.
    #[derive(Debug, Clone, PartialEq)]
    pub(super) enum Json {
        Null,
        False,
        True,
        Number(f64),
        String(Vec<u8>),
        Array(Vec<Json>),
        Object(Vec<(Vec<u8>, Json)>),
    }

    /// `mosquitto_sub`'s `json_print`: appends the JSON object for `msg` to `out`. With
    /// `escaped` (`%j`) the payload is a string, without (`%J`) it must be JSON: `false` (and
    /// nothing appended) if it is not.
    pub(super) fn message(
        msg: &MessageView<'_>,
        time: &LocalTime,
        escaped: bool,
        pretty: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        let payload = if msg.payload.is_empty() {
            Json::Null
        } else if escaped {
            Json::String(msg.payload.to_vec())
        } else {
            match parse(msg.payload) {
                Some(value) => value,
                None => return false,
            }
        };
        let mut root = vec![
            (b"tst".to_vec(), Json::String(timestamp(time))),
            (
                b"topic".to_vec(),
                Json::String(msg.topic.as_bytes().to_vec()),
            ),
            (b"qos".to_vec(), Json::Number(f64::from(msg.qos))),
            (
                b"retain".to_vec(),
                Json::Number(f64::from(u8::from(msg.retain))),
            ),
            (
                b"payloadlen".to_vec(),
                Json::Number(msg.payload.len() as f64),
            ),
        ];
        if msg.qos > 0 {
            root.push((
                b"mid".to_vec(),
                Json::Number(f64::from(msg.mid.unwrap_or(0))),
            ));
        }
        if let Some(props) = msg.properties.filter(|p| !p.is_empty()) {
            root.push((b"properties".to_vec(), properties(&props.sequence())));
        }
        root.push((b"payload".to_vec(), payload));
        print(&Json::Object(root), pretty, out);
        true
    }

    /// The `tst` value: `strftime("%Y-%m-%dT%H:%M:%S.000000Z%z")` with the microseconds
    /// written over bytes 20 to 25, as `mosquitto_sub` does it.
    fn timestamp(time: &LocalTime) -> Vec<u8> {
        let mut stamp = Vec::new();
        strftime(b"%Y-%m-%dT%H:%M:%S.000000Z%z", time, &mut stamp);
        let mut micros = Vec::new();
        put(&mut micros, format_args!("{:06}", time.nanos / 1000));
        for (k, digit) in micros.into_iter().enumerate() {
            if let Some(slot) = stamp.get_mut(20 + k) {
                *slot = digit;
            }
        }
        if let Some(slot) = stamp.get_mut(26) {
            *slot = b'Z';
        }
        stamp
    }

    /// `mosquitto_sub`'s `json_print_properties`, quirks included: user properties gather in one
    /// object where the first of them stands, and a topic alias prints the last correlation
    /// data length read (0 if none), because mosquitto reads it with the wrong identifier.
    fn properties(sequence: &[Prop<'_>]) -> Json {
        let mut members: Vec<(Vec<u8>, Json)> = Vec::new();
        let mut users: Option<usize> = None;
        let mut last_u16 = 0u16;
        for prop in sequence {
            let (key, value): (&[u8], Json) = match *prop {
                Prop::PayloadFormat(v) => (b"payload-format-indicator", Json::Number(v.into())),
                Prop::Expiry(v) => (b"message-expiry-interval", Json::Number(v.into())),
                Prop::ContentType(v) => (b"content-type", Json::String(v.as_bytes().to_vec())),
                Prop::ResponseTopic(v) => (b"response-topic", Json::String(v.as_bytes().to_vec())),
                Prop::Correlation(v) => {
                    last_u16 = u16::try_from(v.len()).unwrap_or(u16::MAX);
                    (b"correlation-data", Json::String(v.to_vec()))
                }
                Prop::SubscriptionId(v) => (b"subscription-identifier", Json::Number(v.into())),
                Prop::TopicAlias => (b"topic-alias", Json::Number(last_u16.into())),
                Prop::User(name, value) => {
                    let index = *users.get_or_insert_with(|| {
                        members.push((b"user-properties".to_vec(), Json::Object(Vec::new())));
                        members.len() - 1
                    });
                    if let Some((_, Json::Object(pairs))) = members.get_mut(index) {
                        pairs.push((
                            c_str(name.as_bytes()).to_vec(),
                            Json::String(value.as_bytes().to_vec()),
                        ));
                    }
                    continue;
                }
            };
            members.push((key.to_vec(), value));
        }
        Json::Object(members)
    }

    /// `cJSON_ParseWithOpts(payload, &end, true)` followed by `mosquitto_sub`'s check that the
    /// parse ended at the end of the payload (so a NUL byte anywhere makes it invalid).
    pub(super) fn parse(payload: &[u8]) -> Option<Json> {
        if payload.contains(&0) {
            return None;
        }
        let mut buffer = payload.to_vec();
        buffer.push(0);
        let mut parser = Parser {
            buffer: &buffer,
            offset: 0,
            depth: 0,
        };
        if parser.can_access(4) && buffer.starts_with(b"\xEF\xBB\xBF") {
            parser.offset += 3;
        }
        parser.skip_whitespace();
        let value = parser.value()?;
        parser.skip_whitespace();
        if parser.offset >= buffer.len() || parser.at(0) != 0 || parser.offset != payload.len() {
            return None;
        }
        Some(value)
    }

    /// cJSON's parse buffer: the content including its NUL terminator, and a position in it.
    struct Parser<'b> {
        buffer: &'b [u8],
        offset: usize,
        depth: usize,
    }

    impl Parser<'_> {
        fn can_access(&self, index: usize) -> bool {
            self.offset + index < self.buffer.len()
        }

        fn can_read(&self, size: usize) -> bool {
            self.offset + size <= self.buffer.len()
        }

        fn at(&self, index: usize) -> u8 {
            self.buffer.get(self.offset + index).copied().unwrap_or(0)
        }

        fn rest_starts_with(&self, word: &[u8]) -> bool {
            self.buffer
                .get(self.offset..)
                .is_some_and(|rest| rest.starts_with(word))
        }

        /// `buffer_skip_whitespace`: every byte up to 32 (the terminator too) is whitespace,
        /// but the position stays on the terminator.
        fn skip_whitespace(&mut self) {
            if !self.can_access(0) {
                return;
            }
            while self.can_access(0) && self.at(0) <= 32 {
                self.offset += 1;
            }
            if self.offset == self.buffer.len() {
                self.offset -= 1;
            }
        }

        fn value(&mut self) -> Option<Json> {
            if self.can_read(4) && self.rest_starts_with(b"null") {
                self.offset += 4;
                return Some(Json::Null);
            }
            if self.can_read(5) && self.rest_starts_with(b"false") {
                self.offset += 5;
                return Some(Json::False);
            }
            if self.can_read(4) && self.rest_starts_with(b"true") {
                self.offset += 4;
                return Some(Json::True);
            }
            if !self.can_access(0) {
                return None;
            }
            match self.at(0) {
                b'"' => self.string().map(Json::String),
                b'-' | b'0'..=b'9' => self.number(),
                b'[' => self.array(),
                b'{' => self.object(),
                _ => None,
            }
        }

        /// `parse_number`: the bytes that may belong to a number, read with `strtod` (Debian's
        /// cJSON 1.7.15 copies them all, not only the first 63 as upstream 1.7.15 does).
        fn number(&mut self) -> Option<Json> {
            let mut text = Vec::new();
            while self.can_access(text.len()) {
                let c = self.at(text.len());
                if !matches!(c, b'0'..=b'9' | b'+' | b'-' | b'e' | b'E' | b'.') {
                    break;
                }
                text.push(c);
            }
            let (consumed, value) = strtod(&text)?;
            self.offset += consumed;
            Some(Json::Number(value))
        }

        /// `parse_string`, escapes decoded as cJSON decodes them.
        fn string(&mut self) -> Option<Vec<u8>> {
            let buffer = self.buffer;
            let byte = |i: usize| buffer.get(i).copied().unwrap_or(0);
            if self.at(0) != b'"' {
                return None;
            }
            let start = self.offset + 1;
            let mut end = start;
            while end < buffer.len() && byte(end) != b'"' {
                if byte(end) == b'\\' {
                    if end + 1 >= buffer.len() {
                        return None;
                    }
                    end += 1;
                }
                end += 1;
            }
            if end >= buffer.len() || byte(end) != b'"' {
                return None;
            }
            let mut text = Vec::with_capacity(end - start);
            let mut p = start;
            while p < end {
                if byte(p) != b'\\' {
                    text.push(byte(p));
                    p += 1;
                    continue;
                }
                let mut sequence = 2;
                match byte(p + 1) {
                    b'b' => text.push(0x08),
                    b'f' => text.push(0x0c),
                    b'n' => text.push(b'\n'),
                    b'r' => text.push(b'\r'),
                    b't' => text.push(b'\t'),
                    c @ (b'"' | b'\\' | b'/') => text.push(c),
                    b'u' => sequence = utf16_literal(buffer, p, end, &mut text)?,
                    _ => return None,
                }
                p += sequence;
            }
            self.offset = end + 1;
            Some(text)
        }

        fn array(&mut self) -> Option<Json> {
            if self.depth >= NESTING_LIMIT {
                return None;
            }
            self.depth += 1;
            if self.at(0) != b'[' {
                return None;
            }
            self.offset += 1;
            self.skip_whitespace();
            let mut items = Vec::new();
            if !(self.can_access(0) && self.at(0) == b']') {
                if !self.can_access(0) {
                    return None;
                }
                self.offset -= 1;
                loop {
                    self.offset += 1;
                    self.skip_whitespace();
                    items.push(self.value()?);
                    self.skip_whitespace();
                    if !(self.can_access(0) && self.at(0) == b',') {
                        break;
                    }
                }
                if !self.can_access(0) || self.at(0) != b']' {
                    return None;
                }
            }
            self.depth -= 1;
            self.offset += 1;
            Some(Json::Array(items))
        }

        fn object(&mut self) -> Option<Json> {
            if self.depth >= NESTING_LIMIT {
                return None;
            }
            self.depth += 1;
            if !self.can_access(0) || self.at(0) != b'{' {
                return None;
            }
            self.offset += 1;
            self.skip_whitespace();
            let mut members = Vec::new();
            if !(self.can_access(0) && self.at(0) == b'}') {
                if !self.can_access(0) {
                    return None;
                }
                self.offset -= 1;
                loop {
                    self.offset += 1;
                    self.skip_whitespace();
                    let key = self.string()?;
                    self.skip_whitespace();
                    if !self.can_access(0) || self.at(0) != b':' {
                        return None;
                    }
                    self.offset += 1;
                    self.skip_whitespace();
                    members.push((key, self.value()?));
                    self.skip_whitespace();
                    if !(self.can_access(0) && self.at(0) == b',') {
                        break;
                    }
                }
                if !self.can_access(0) || self.at(0) != b'}' {
                    return None;
                }
            }
            self.depth -= 1;
            self.offset += 1;
            Some(Json::Object(members))
        }
    }

    /// cJSON's `parse_hex4`: four hex digits, or 0 if any is not one.
    fn hex4(digits: &[u8]) -> u32 {
        let mut value = 0;
        for &c in digits.get(..4).unwrap_or(&[]) {
            let nibble = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return 0,
            };
            value = value << 4 | u32::from(nibble);
        }
        value
    }

    /// cJSON's `utf16_literal_to_utf8` for the `\u` escape at `p` (string content ends at
    /// `end`): appends the UTF-8 and returns the escape's length, 6 or 12.
    fn utf16_literal(buffer: &[u8], p: usize, end: usize, text: &mut Vec<u8>) -> Option<usize> {
        let digits = |at: usize| buffer.get(at..).map_or(0, hex4);
        if end < p + 6 {
            return None;
        }
        let first = digits(p + 2);
        if (0xDC00..=0xDFFF).contains(&first) {
            return None;
        }
        let (code_point, length) = if (0xD800..=0xDBFF).contains(&first) {
            if end < p + 12 || buffer.get(p + 6..p + 8) != Some(b"\\u".as_slice()) {
                return None;
            }
            let second = digits(p + 8);
            if !(0xDC00..=0xDFFF).contains(&second) {
                return None;
            }
            (0x10000 + (((first & 0x3FF) << 10) | (second & 0x3FF)), 12)
        } else {
            (first, 6)
        };
        // Every code point here is below 0x110000; a NUL (from `\u0000` or bad hex digits)
        // ends the C string.
        let mut utf8 = [0; 4];
        let encoded =
            char::from_u32(code_point).map_or(&[][..], |c| c.encode_utf8(&mut utf8).as_bytes());
        text.extend_from_slice(encoded);
        Some(length)
    }

    /// glibc `strtod` on text made of `[0-9+-eE.]`: the length of the longest prefix that is
    /// a decimal number, and its value (correctly rounded; infinite when it overflows).
    pub(super) fn strtod(text: &[u8]) -> Option<(usize, f64)> {
        let byte = |i: usize| text.get(i).copied().unwrap_or(0);
        let mut i = 0;
        let negative = byte(0) == b'-';
        if matches!(byte(0), b'+' | b'-') {
            i += 1;
        }
        let int_start = i;
        while byte(i).is_ascii_digit() {
            i += 1;
        }
        let int_digits = text.get(int_start..i).unwrap_or(&[]);
        let mut frac_digits: &[u8] = &[];
        if byte(i) == b'.' {
            let frac_start = i + 1;
            let mut j = frac_start;
            while byte(j).is_ascii_digit() {
                j += 1;
            }
            frac_digits = text.get(frac_start..j).unwrap_or(&[]);
            if !int_digits.is_empty() || !frac_digits.is_empty() {
                i = j;
            }
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return None;
        }
        let mut exponent: &[u8] = b"0";
        if matches!(byte(i), b'e' | b'E') {
            let mut k = i + 1;
            if matches!(byte(k), b'+' | b'-') {
                k += 1;
            }
            let digits_start = k;
            while byte(k).is_ascii_digit() {
                k += 1;
            }
            if k > digits_start {
                exponent = text.get(i + 1..k).unwrap_or(b"0");
                i = k;
            }
        }
        let mut canonical = Vec::with_capacity(text.len() + 4);
        if negative {
            canonical.push(b'-');
        }
        canonical.extend_from_slice(if int_digits.is_empty() {
            b"0"
        } else {
            int_digits
        });
        canonical.push(b'.');
        canonical.extend_from_slice(if frac_digits.is_empty() {
            b"0"
        } else {
            frac_digits
        });
        canonical.push(b'e');
        canonical.extend_from_slice(exponent);
        let value = std::str::from_utf8(&canonical).ok()?.parse::<f64>().ok()?;
        Some((i, value))
    }

    /// C `printf("%1.<precision>g")`.
    pub(super) fn format_g(value: f64, precision: usize) -> String {
        if value == 0.0 {
            return if value.is_sign_negative() {
                "-0".to_owned()
            } else {
                "0".to_owned()
            };
        }
        let scientific = format!("{:.*e}", precision.saturating_sub(1), value);
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
        let exponent: i64 = exponent.parse().unwrap_or(0);
        let (sign, mantissa) = match mantissa.strip_prefix('-') {
            Some(rest) => ("-", rest),
            None => ("", mantissa),
        };
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let precision = i64::try_from(precision).unwrap_or(i64::MAX);
        if exponent < -4 || exponent >= precision {
            let (first, rest) = digits.split_at(1.min(digits.len()));
            let rest = rest.trim_end_matches('0');
            let point = if rest.is_empty() { "" } else { "." };
            let exponent_sign = if exponent < 0 { '-' } else { '+' };
            format!(
                "{sign}{first}{point}{rest}e{exponent_sign}{:02}",
                exponent.abs()
            )
        } else if exponent >= 0 {
            let split = usize::try_from(exponent + 1).unwrap_or(0).min(digits.len());
            let (whole, fraction) = digits.split_at(split);
            let fraction = fraction.trim_end_matches('0');
            let point = if fraction.is_empty() { "" } else { "." };
            format!("{sign}{whole}{point}{fraction}")
        } else {
            let zeros = "0".repeat(usize::try_from(-exponent - 1).unwrap_or(0));
            format!("{sign}0.{zeros}{}", digits.trim_end_matches('0'))
        }
    }

    /// cJSON's `print_number`: 15 significant digits if they read back as the same number
    /// (within a relative `f64::EPSILON`), else 17; `null` for infinities and NaN.
    pub(super) fn number(value: f64, out: &mut Vec<u8>) {
        if !value.is_finite() {
            out.extend_from_slice(b"null");
            return;
        }
        let short = format_g(value, 15);
        let same = short.parse::<f64>().is_ok_and(|back| {
            let scale = if back.abs() > value.abs() {
                back.abs()
            } else {
                value.abs()
            };
            (back - value).abs() <= scale * f64::EPSILON
        });
        let text = if same { short } else { format_g(value, 17) };
        out.extend_from_slice(text.as_bytes());
    }

    /// cJSON's `print_string_ptr`.
    fn string(text: &[u8], out: &mut Vec<u8>) {
        out.push(b'"');
        for &c in c_str(text) {
            match c {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0..=31 => put(out, format_args!("\\u{c:04x}")),
                _ => out.push(c),
            }
        }
        out.push(b'"');
    }

    /// `cJSON_Print` (`pretty`) or `cJSON_PrintUnformatted`.
    pub(super) fn print(value: &Json, pretty: bool, out: &mut Vec<u8>) {
        let mut depth = 0;
        print_value(value, pretty, &mut depth, out);
    }

    fn print_value(value: &Json, pretty: bool, depth: &mut usize, out: &mut Vec<u8>) {
        match value {
            Json::Null => out.extend_from_slice(b"null"),
            Json::False => out.extend_from_slice(b"false"),
            Json::True => out.extend_from_slice(b"true"),
            Json::Number(n) => number(*n, out),
            Json::String(text) => string(text, out),
            Json::Array(items) => {
                out.push(b'[');
                *depth += 1;
                for (k, item) in items.iter().enumerate() {
                    if k > 0 {
                        out.extend_from_slice(if pretty { b", " } else { b"," });
                    }
                    print_value(item, pretty, depth, out);
                }
                out.push(b']');
                *depth -= 1;
            }
            Json::Object(members) => {
                out.push(b'{');
                *depth += 1;
                if pretty {
                    out.push(b'\n');
                }
                for (k, (key, member)) in members.iter().enumerate() {
                    if pretty {
                        out.resize(out.len() + *depth, b'\t');
                    }
                    string(key, out);
                    out.extend_from_slice(if pretty { b":\t" } else { b":" });
                    print_value(member, pretty, depth, out);
                    if k + 1 < members.len() {
                        out.push(b',');
                    }
                    if pretty {
                        out.push(b'\n');
                    }
                }
                if pretty {
                    out.resize(out.len() + *depth - 1, b'\t');
                }
                out.push(b'}');
                *depth -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::json::{Json, format_g, number, parse, print};
    use super::*;

    /// 2023-11-14T22:13:20.123456789Z, a Tuesday.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789)
    }

    fn utc(spec: &str) -> Format {
        Format::parse(spec).unwrap().with_time_zone(TimeZone::UTC)
    }

    fn render(format: &Format, msg: &MessageView<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        format.write(msg, now(), &mut out).unwrap();
        out
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle)
    }

    /// Shows bytes readably in assertion messages.
    fn show(bytes: &[u8]) -> String {
        bytes.escape_ascii().to_string()
    }

    #[test]
    fn rejects_what_mosquitto_rejects() {
        use FormatError::*;
        let cases = [
            ("%", IncompleteSpecifier { offset: 0 }),
            ("a%", IncompleteSpecifier { offset: 1 }),
            ("%-", IncompleteSpecifier { offset: 0 }),
            ("%0", IncompleteSpecifier { offset: 0 }),
            ("%5", IncompleteSpecifier { offset: 0 }),
            ("%-05", IncompleteSpecifier { offset: 0 }),
            ("%.", IncompleteSpecifier { offset: 0 }),
            ("%.5", IncompleteSpecifier { offset: 0 }),
            ("x%5.2", IncompleteSpecifier { offset: 1 }),
            (
                "%z",
                InvalidSpecifier {
                    offset: 1,
                    found: 'z',
                },
            ),
            (
                "%t%s",
                InvalidSpecifier {
                    offset: 3,
                    found: 's',
                },
            ),
            (
                "%-0-p",
                InvalidSpecifier {
                    offset: 3,
                    found: '-',
                },
            ),
            (
                "%0-5p",
                InvalidSpecifier {
                    offset: 2,
                    found: '-',
                },
            ),
            (
                "%--p",
                InvalidSpecifier {
                    offset: 2,
                    found: '-',
                },
            ),
            (
                "%é",
                InvalidSpecifier {
                    offset: 1,
                    found: 'é',
                },
            ),
            (
                "%5.3 ",
                InvalidSpecifier {
                    offset: 4,
                    found: ' ',
                },
            ),
            ("@", IncompleteSpecifier { offset: 0 }),
            ("%p@", IncompleteSpecifier { offset: 2 }),
            ("\\", IncompleteEscape { offset: 0 }),
            ("%t\\", IncompleteEscape { offset: 2 }),
            (
                "\\q",
                InvalidEscape {
                    offset: 1,
                    found: 'q',
                },
            ),
            (
                "\\x41",
                InvalidEscape {
                    offset: 1,
                    found: 'x',
                },
            ),
            // The first problem wins.
            (
                "\\q%z",
                InvalidEscape {
                    offset: 1,
                    found: 'q',
                },
            ),
        ];
        for (spec, expected) in cases {
            assert_eq!(Format::parse(spec).unwrap_err(), expected, "{spec:?}");
        }
    }

    #[test]
    fn accepts_what_mosquitto_accepts() {
        for spec in [
            "",
            "plain text",
            "%-05p",
            "%00p",
            "%-0p",
            "%.p",
            "%0.2t",
            "%5%",
            "\\0x",
            "@é",
            "@@",
            "@%",
            "@\\",
            "%%%%",
            "%ACDEFIjJlmPpqRrStUxX",
            "100%%",
        ] {
            assert!(Format::parse(spec).is_ok(), "{spec:?}");
        }
    }

    #[test]
    fn error_messages_are_mosquittos() {
        let message = |spec: &str| Format::parse(spec).unwrap_err().to_string();
        assert_eq!(message("%"), "Incomplete format specifier.");
        assert_eq!(message("%k"), "Invalid format specifier 'k'.");
        assert_eq!(message("\\"), "Incomplete escape specifier.");
        assert_eq!(message("\\k"), "Invalid escape specifier 'k'.");
        let error = InvalidJsonPayload {
            topic: "a/b".to_owned(),
            occurrences: 1,
        };
        assert_eq!(
            error.to_string(),
            "Message payload is not valid JSON on topic a/b."
        );
    }

    /// Expected outputs recorded from `mosquitto_sub` 2.0.11 for `hello world` on `x/20496`.
    #[test]
    fn fields_flags_and_widths() {
        let msg = MessageView::new("x/20496", b"hello world");
        let cases: &[(&str, &[u8])] = &[
            ("%t %p", b"x/20496 hello world"),
            // A width truncates the payload; the precision is ignored.
            ("%5p|", b"hello|"),
            ("%-5p|", b"hello|"),
            ("%15p|", b"    hello world|"),
            ("%-15p|", b"hello world    |"),
            ("%015p|", b"0000hello world|"),
            ("%-015p|", b"hello world    |"),
            ("%.3p|", b"hello world|"),
            // Left alignment without a width pads as many spaces as the payload is long.
            ("%-p|", b"hello world           |"),
            ("%-x|", b"68656c6c6f20776f726c64           |"),
            // Hex with a width shows half as many bytes as the (truncated) width.
            ("%x", b"68656c6c6f20776f726c64"),
            ("%X", b"68656C6C6F20776F726C64"),
            ("%4x|", b"6865|"),
            ("%5x|", b" 6865|"),
            ("%10x|", b"68656c6c6f|"),
            ("%-10x|", b"68656c6c6f|"),
            ("%15x|", b"     68656c6c6f|"),
            ("%-15x|", b"68656c6c6f     |"),
            ("%015x|", b"0000068656c6c6f|"),
            // Strings: width and precision as printf("%-*.*s").
            ("%.3t|", b"x/2|"),
            ("%.t|", b"|"),
            ("%-10t|", b"x/20496   |"),
            ("%10t|", b"   x/20496|"),
            ("%010t|", b"   x/20496|"),
            ("%5.2t|", b"   x/|"),
            ("%-5.2t|", b"x/   |"),
            ("%3t|", b"x/20496|"),
            // Numbers: printf("%d"), "%-*d", "%0*d", "%*d".
            ("%l", b"11"),
            ("%05l", b"00011"),
            ("%-5l|", b"11   |"),
            ("%-05l|", b"11   |"),
            ("%5l|", b"   11|"),
            ("%1l|", b"11|"),
            ("%5m|", b"    0|"),
            ("%.3l|", b"11|"),
            // QoS and retain ignore every flag.
            ("%5q|%5r|%-05q", b"0|0|0"),
            ("%%|%5%|%-%", b"%|%|%"),
            // Absent properties print width pad characters (always spaces for %C).
            (
                "%5A|%5C|%5E|%5F|%5S|%5R|%5D|%5P|",
                b"     |     |     |     |     ||||",
            ),
            (
                "%05A|%05C|%05E|%05F|%05S|%05R|",
                b"00000|     |00000|00000|00000||",
            ),
            ("%-5A|%A|%C|%E", b"     |||"),
        ];
        let mut failures = Vec::new();
        for (spec, expected) in cases {
            let got = render(&utc(spec), &msg);
            if got != *expected {
                failures.push(format!(
                    "{spec:?}: got {:?}, want {:?}",
                    show(&got),
                    show(expected)
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn qos_mid_and_retain() {
        let msg = MessageView {
            qos: 2,
            retain: true,
            mid: Some(7),
            ..MessageView::new("t", b"")
        };
        assert_eq!(
            render(&utc("%q %r %m %03m %-3m| %l %p|"), &msg),
            b"2 1 7 007 7  | 0 |"
        );
        let msg = MessageView {
            qos: 1,
            mid: Some(65535),
            ..MessageView::new("t", b"x")
        };
        assert_eq!(render(&utc("%q%r%m"), &msg), b"1065535");
    }

    #[test]
    fn escapes_and_literals() {
        let msg = MessageView::new("t", b"p");
        let got = render(&utc("\\\\\\0\\a\\e\\n\\r\\t\\v|@@|a%%b|é"), &msg);
        assert_eq!(got, b"\\\0\x07\x1b\n\r\t\x0b|@|a%b|\xc3\xa9");
    }

    #[test]
    fn c_strings_stop_at_nul() {
        let props = V5Props {
            user_properties: vec![("k\0x".to_owned(), "v\0y".to_owned())],
            content_type: Some("c\0t".to_owned()),
            ..V5Props::default()
        };
        let msg = MessageView {
            properties: Some(&props),
            ..MessageView::new("a\0b", b"p\0q")
        };
        assert_eq!(
            render(&utc("%t|%p|%P|%C|%5t|"), &msg),
            b"a|p\0q|k:v|c|    a|"
        );
        let verbose = Printer::new(Style::Verbose);
        let mut out = Vec::new();
        verbose.write(&msg, now(), &mut out).unwrap();
        assert_eq!(out, b"a p\0q\n");
    }

    #[test]
    fn v5_property_fields() {
        let mut props = V5Props {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(100),
            content_type: Some("text/x".to_owned()),
            response_topic: Some("rt/1".to_owned()),
            correlation_data: Some(b"c\0d".to_vec()),
            subscription_identifiers: vec![7, 9],
            topic_alias: Some(3),
            user_properties: vec![
                ("k1".to_owned(), "v1".to_owned()),
                ("k1".to_owned(), "v2".to_owned()),
                ("k2".to_owned(), "v 3".to_owned()),
            ],
            ..V5Props::default()
        };
        let msg = MessageView {
            properties: Some(&props),
            ..MessageView::new("t", b"x")
        };
        let cases: &[(&str, &[u8])] = &[
            (
                "%A|%C|%D|%E|%F|%P|%R|%S",
                b"3|text/x|c\0d|100|1|k1:v1 k1:v2 k2:v 3|rt/1|7",
            ),
            (
                "%4A|%-4E|%04F|%8C|%-8R|%.2C|%4S|%5D|%5P",
                b"   3|100 |0001|  text/x|rt/1    |te|   7|c\0d|k1:v1 k1:v2 k2:v 3",
            ),
        ];
        for (spec, expected) in cases {
            assert_eq!(show(&render(&utc(spec), &msg)), show(expected), "{spec:?}");
        }
        // mosquitto casts the expiry interval to a C int.
        props.message_expiry_interval = Some(u32::MAX);
        let msg = MessageView {
            properties: Some(&props),
            ..MessageView::new("t", b"x")
        };
        assert_eq!(render(&utc("%E|%5E"), &msg), b"-1|   -1");
    }

    /// glibc `strftime` output in the C locale, recorded for each `@` conversion, in this order.
    const CONVERSIONS: &str = "aAbBcCdDeFgGhHIjklmMnpPrRsStTuUVwWxXyYzZ%EO39+_";

    #[test]
    fn strftime_conversions_match_glibc() {
        let utc = TimeZone::UTC;
        let eastern = TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        let india = TimeZone::posix("<+0530>-5:30").unwrap();
        let newfoundland = TimeZone::posix("<-0330>3:30").unwrap();
        let cases: &[(i64, &TimeZone, &str)] = &[
            (
                1700000000,
                &utc,
                "Tue|Tuesday|Nov|November|Tue Nov 14 22:13:20 2023|20|14|11/14/23|14|2023-11-14|23|2023|Nov|22|10|318|22|10|11|13|\n|PM|pm|10:13:20 PM|22:13|1700000000|20|\t|22:13:20|2|46|46|2|46|11/14/23|22:13:20|23|2023|+0000|UTC|%|%E|%O| %3|       %9|%+|%_",
            ),
            (
                0,
                &utc,
                "Thu|Thursday|Jan|January|Thu Jan  1 00:00:00 1970|19|01|01/01/70| 1|1970-01-01|70|1970|Jan|00|12|001| 0|12|01|00|\n|AM|am|12:00:00 AM|00:00|0|00|\t|00:00:00|4|00|01|4|00|01/01/70|00:00:00|70|1970|+0000|UTC|%|%E|%O| %3|       %9|%+|%_",
            ),
            (
                -1,
                &utc,
                "Wed|Wednesday|Dec|December|Wed Dec 31 23:59:59 1969|19|31|12/31/69|31|1969-12-31|70|1970|Dec|23|11|365|23|11|12|59|\n|PM|pm|11:59:59 PM|23:59|-1|59|\t|23:59:59|3|52|01|3|52|12/31/69|23:59:59|69|1969|+0000|UTC|%|%E|%O| %3|       %9|%+|%_",
            ),
            (
                951782400,
                &utc,
                "Tue|Tuesday|Feb|February|Tue Feb 29 00:00:00 2000|20|29|02/29/00|29|2000-02-29|00|2000|Feb|00|12|060| 0|12|02|00|\n|AM|am|12:00:00 AM|00:00|951782400|00|\t|00:00:00|2|09|09|2|09|02/29/00|00:00:00|00|2000|+0000|UTC|%|%E|%O| %3|       %9|%+|%_",
            ),
            (
                1700000000,
                &eastern,
                "Tue|Tuesday|Nov|November|Tue Nov 14 17:13:20 2023|20|14|11/14/23|14|2023-11-14|23|2023|Nov|17|05|318|17| 5|11|13|\n|PM|pm|05:13:20 PM|17:13|1700000000|20|\t|17:13:20|2|46|46|2|46|11/14/23|17:13:20|23|2023|-0500|EST|%|%E|%O| %3|       %9|%+|%_",
            ),
            (
                1690000000,
                &eastern,
                "Sat|Saturday|Jul|July|Sat Jul 22 00:26:40 2023|20|22|07/22/23|22|2023-07-22|23|2023|Jul|00|12|203| 0|12|07|26|\n|AM|am|12:26:40 AM|00:26|1690000000|40|\t|00:26:40|6|29|29|6|29|07/22/23|00:26:40|23|2023|-0400|EDT|%|%E|%O| %3|       %9|%+|%_",
            ),
            (
                1704067199,
                &eastern,
                "Sun|Sunday|Dec|December|Sun Dec 31 18:59:59 2023|20|31|12/31/23|31|2023-12-31|23|2023|Dec|18|06|365|18| 6|12|59|\n|PM|pm|06:59:59 PM|18:59|1704067199|59|\t|18:59:59|7|53|52|0|52|12/31/23|18:59:59|23|2023|-0500|EST|%|%E|%O| %3|       %9|%+|%_",
            ),
            (
                1700000000,
                &india,
                "Wed|Wednesday|Nov|November|Wed Nov 15 03:43:20 2023|20|15|11/15/23|15|2023-11-15|23|2023|Nov|03|03|319| 3| 3|11|43|\n|AM|am|03:43:20 AM|03:43|1700000000|20|\t|03:43:20|3|46|46|3|46|11/15/23|03:43:20|23|2023|+0530|+0530|%|%E|%O| %3|       %9|%+|%_",
            ),
            (
                1700000000,
                &newfoundland,
                "Tue|Tuesday|Nov|November|Tue Nov 14 18:43:20 2023|20|14|11/14/23|14|2023-11-14|23|2023|Nov|18|06|318|18| 6|11|43|\n|PM|pm|06:43:20 PM|18:43|1700000000|20|\t|18:43:20|2|46|46|2|46|11/14/23|18:43:20|23|2023|-0330|-0330|%|%E|%O| %3|       %9|%+|%_",
            ),
        ];
        let spec: Vec<String> = CONVERSIONS.chars().map(|c| format!("@{c}")).collect();
        let spec = spec.join("|");
        for (seconds, zone, expected) in cases {
            let format = Format::parse(&spec)
                .unwrap()
                .with_time_zone((*zone).clone());
            let at = UNIX_EPOCH.checked_add(Duration::from_secs(seconds.unsigned_abs()));
            let at = if *seconds < 0 {
                UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
            } else {
                at.unwrap()
            };
            let mut out = Vec::new();
            format
                .write(&MessageView::new("t", b""), at, &mut out)
                .unwrap();
            assert_eq!(
                show(&out),
                show(expected.as_bytes()),
                "{seconds} in {zone:?}"
            );
        }
    }

    #[test]
    fn iso_unix_and_nanosecond_times() {
        let msg = MessageView::new("t", b"");
        let eastern = TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        let format = |spec: &str| Format::parse(spec).unwrap().with_time_zone(eastern.clone());
        assert_eq!(render(&format("%I"), &msg), b"2023-11-14T17:13:20-0500");
        assert_eq!(
            render(&format("%30I|"), &msg),
            b"      2023-11-14T17:13:20-0500|"
        );
        assert_eq!(render(&format("%-10.4I|"), &msg), b"2023      |");
        assert_eq!(render(&format("%U"), &msg), b"1700000000.123456789");
        assert_eq!(render(&format("%5U"), &msg), b"1700000000.123456789");
        assert_eq!(render(&format("@s.@N"), &msg), b"1700000000.123456789");
        // Before the epoch the seconds round down and the nanoseconds count up from there.
        let before = UNIX_EPOCH - Duration::new(1, 250_000_000);
        let mut out = Vec::new();
        utc("%U|@N|%I").write(&msg, before, &mut out).unwrap();
        assert_eq!(out, b"-2.750000000|750000000|1969-12-31T23:59:58+0000");
    }

    /// `(payload, %j payload, %J payload, %J --pretty payload)`, recorded from libcjson 1.7.15
    /// (Debian 12) building the object as `mosquitto_sub` does.
    #[allow(clippy::type_complexity)]
    const JSON_CASES: &[(&[u8], &[u8], Option<&[u8]>, Option<&[u8]>)] = &[
        (b"{\"a\": [1, 2.50, 1e2, -0, \"x\\u00e9\\/\"], \"b\": {}, \"c\": [], \"d\": null, \"e\": true}", b"\"{\\\"a\\\": [1, 2.50, 1e2, -0, \\\"x\\\\u00e9\\\\/\\\"], \\\"b\\\": {}, \\\"c\\\": [], \\\"d\\\": null, \\\"e\\\": true}\"", Some(b"{\"a\":[1,2.5,100,-0,\"x\xc3\xa9/\"],\"b\":{},\"c\":[],\"d\":null,\"e\":true}"), Some(b"{\n\t\t\"a\":\t[1, 2.5, 100, -0, \"x\xc3\xa9/\"],\n\t\t\"b\":\t{\n\t\t},\n\t\t\"c\":\t[],\n\t\t\"d\":\tnull,\n\t\t\"e\":\ttrue\n\t}")),
        (b"  12  ", b"\"  12  \"", Some(b"12"), Some(b"12")),
        (b"0.1", b"\"0.1\"", Some(b"0.1"), Some(b"0.1")),
        (b"1e400", b"\"1e400\"", Some(b"null"), Some(b"null")),
        (b"123456789012345678", b"\"123456789012345678\"", Some(b"1.2345678901234568e+17"), Some(b"1.2345678901234568e+17")),
        (b"1E-7", b"\"1E-7\"", Some(b"1e-07"), Some(b"1e-07")),
        (b"\"a\\u0000b\"", b"\"\\\"a\\\\u0000b\\\"\"", Some(b"\"a\""), Some(b"\"a\"")),
        (b"\"\\ud83d\\ude00\"", b"\"\\\"\\\\ud83d\\\\ude00\\\"\"", Some(b"\"\xf0\x9f\x98\x80\""), Some(b"\"\xf0\x9f\x98\x80\"")),
        (b"\"\\uZZZZ!\"", b"\"\\\"\\\\uZZZZ!\\\"\"", Some(b"\"\""), Some(b"\"\"")),
        (b"\xef\xbb\xbf[]", b"\"\xef\xbb\xbf[]\"", Some(b"[]"), Some(b"[]")),
        (b"\x01{\"k\":\"v\"}\x1f", b"\"\\u0001{\\\"k\\\":\\\"v\\\"}\\u001f\"", Some(b"{\"k\":\"v\"}"), Some(b"{\n\t\t\"k\":\t\"v\"\n\t}")),
        (b"{\"a\":1,\"a\":2}", b"\"{\\\"a\\\":1,\\\"a\\\":2}\"", Some(b"{\"a\":1,\"a\":2}"), Some(b"{\n\t\t\"a\":\t1,\n\t\t\"a\":\t2\n\t}")),
        (b"[1,2,]", b"\"[1,2,]\"", None, None),
        (b"{}\x00", b"\"{}\"", None, None),
        (b"tru", b"\"tru\"", None, None),
        (b"[[{\"x\":[{}]}]]", b"\"[[{\\\"x\\\":[{}]}]]\"", Some(b"[[{\"x\":[{}]}]]"), Some(b"[[{\n\t\t\t\t\"x\":\t[{\n\t\t\t\t\t}]\n\t\t\t}]]")),
        (b"\"\\ud83d\"", b"\"\\\"\\\\ud83d\\\"\"", None, None),
        (b"\xff", b"\"\xff\"", None, None),
        (b"-", b"\"-\"", None, None),
        (b"1.", b"\"1.\"", Some(b"1"), Some(b"1")),
        (b"-.5", b"\"-.5\"", Some(b"-0.5"), Some(b"-0.5")),
        (b"a\x00b\xffc", b"\"a\"", None, None),
        (b"h\xc3\xa9 \"q\" \\ \t\n\x01\x7f\x08\x0c\r", b"\"h\xc3\xa9 \\\"q\\\" \\\\ \\t\\n\\u0001\x7f\\b\\f\\r\"", None, None),
    ];

    #[test]
    fn json_payloads_match_cjson() {
        let head = b"{\"tst\":\"2023-11-14T22:13:20.123456Z+0000\",\"topic\":\"t\",\"qos\":0,\"retain\":0,";
        let pretty_head = b"{\n\t\"tst\":\t\"2023-11-14T22:13:20.123456Z+0000\",\n\t\"topic\":\t\"t\",\n\t\"qos\":\t0,\n\t\"retain\":\t0,\n";
        for (payload, escaped, parsed, pretty) in JSON_CASES {
            let msg = MessageView::new("t", payload);
            let len = payload.len();
            let mut want = head.to_vec();
            want.extend_from_slice(format!("\"payloadlen\":{len},\"payload\":").as_bytes());
            want.extend_from_slice(escaped);
            want.push(b'}');
            assert_eq!(
                show(&render(&utc("%j"), &msg)),
                show(&want),
                "%j of {}",
                show(payload)
            );

            let mut out = Vec::new();
            let result = utc("%J").write(&msg, now(), &mut out);
            match parsed {
                Some(parsed) => {
                    result.unwrap();
                    let mut want = head.to_vec();
                    want.extend_from_slice(format!("\"payloadlen\":{len},\"payload\":").as_bytes());
                    want.extend_from_slice(parsed);
                    want.push(b'}');
                    assert_eq!(show(&out), show(&want), "%J of {}", show(payload));
                }
                None => {
                    assert_eq!(result.unwrap_err().occurrences, 1);
                    assert!(out.is_empty(), "%J of {}", show(payload));
                }
            }

            let mut out = Vec::new();
            let result = utc("%J").with_pretty(true).write(&msg, now(), &mut out);
            if let Some(pretty) = pretty {
                result.unwrap();
                let mut want = pretty_head.to_vec();
                want.extend_from_slice(
                    format!("\t\"payloadlen\":\t{len},\n\t\"payload\":\t").as_bytes(),
                );
                want.extend_from_slice(pretty);
                want.extend_from_slice(b"\n}");
                assert_eq!(show(&out), show(&want), "%J --pretty of {}", show(payload));
            } else {
                assert!(result.is_err());
            }
        }
    }

    #[test]
    fn json_envelope() {
        let msg = MessageView {
            qos: 1,
            retain: true,
            mid: Some(42),
            ..MessageView::new("a/\"b\"", b"")
        };
        assert_eq!(
            show(&render(&utc("%j"), &msg)),
            show(b"{\"tst\":\"2023-11-14T22:13:20.123456Z+0000\",\"topic\":\"a/\\\"b\\\"\",\"qos\":1,\"retain\":1,\"payloadlen\":0,\"mid\":42,\"payload\":null}")
        );
        assert_eq!(render(&utc("%J"), &msg), render(&utc("%j"), &msg));
        assert_eq!(
            show(&render(&utc("%j").with_pretty(true), &msg)),
            show(b"{\n\t\"tst\":\t\"2023-11-14T22:13:20.123456Z+0000\",\n\t\"topic\":\t\"a/\\\"b\\\"\",\n\t\"qos\":\t1,\n\t\"retain\":\t1,\n\t\"payloadlen\":\t0,\n\t\"mid\":\t42,\n\t\"payload\":\tnull\n}")
        );
        // The time stamp is local time with "Z" and the offset after the microseconds.
        let eastern = TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        let json = render(&Format::parse("%j").unwrap().with_time_zone(eastern), &msg);
        assert!(json.starts_with(b"{\"tst\":\"2023-11-14T17:13:20.123456Z-0500\","));
    }

    #[test]
    fn json_properties_in_arrival_order() {
        // Recorded from mosquitto_sub -V 5 for a message published with, in this order, user
        // property k1=v1, response topic, correlation data, content type, message expiry,
        // payload format indicator, user properties k1=v2 and k2=v 3 (the broker moves the
        // message expiry interval last).
        let mut props = V5Props {
            user_properties: vec![
                ("k1".to_owned(), "v1".to_owned()),
                ("k1".to_owned(), "v2".to_owned()),
                ("k2".to_owned(), "v 3".to_owned()),
            ],
            response_topic: Some("rt/1".to_owned()),
            correlation_data: Some(b"c d".to_vec()),
            content_type: Some("text/x".to_owned()),
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(100),
            ..V5Props::default()
        };
        props.order = vec![
            PropKind::UserProperty,
            PropKind::ResponseTopic,
            PropKind::CorrelationData,
            PropKind::ContentType,
            PropKind::PayloadFormatIndicator,
            PropKind::UserProperty,
            PropKind::UserProperty,
            PropKind::MessageExpiryInterval,
        ];
        let msg = MessageView {
            properties: Some(&props),
            ..MessageView::new("x/4212", b"hello world")
        };
        assert_eq!(
            show(&render(&utc("%j"), &msg)),
            show(b"{\"tst\":\"2023-11-14T22:13:20.123456Z+0000\",\"topic\":\"x/4212\",\"qos\":0,\"retain\":0,\"payloadlen\":11,\"properties\":{\"user-properties\":{\"k1\":\"v1\",\"k1\":\"v2\",\"k2\":\"v 3\"},\"response-topic\":\"rt/1\",\"correlation-data\":\"c d\",\"content-type\":\"text/x\",\"payload-format-indicator\":1,\"message-expiry-interval\":100},\"payload\":\"hello world\"}")
        );

        // Without an order, a Mosquitto broker's order for identifier-ordered publishers.
        let mut props = V5Props {
            subscription_identifiers: vec![7],
            user_properties: vec![("k1".to_owned(), "v1".to_owned())],
            payload_format_indicator: Some(1),
            ..V5Props::default()
        };
        let msg = MessageView {
            properties: Some(&props),
            ..MessageView::new("t", b"{}")
        };
        let json = render(&utc("%J").with_pretty(true), &msg);
        let want = b"\t\"payloadlen\":\t2,\n\t\"properties\":\t{\n\t\t\"subscription-identifier\":\t7,\n\t\t\"payload-format-indicator\":\t1,\n\t\t\"user-properties\":\t{\n\t\t\t\"k1\":\t\"v1\"\n\t\t}\n\t},\n\t\"payload\":\t{\n\t}\n}";
        assert!(json.ends_with(want), "{}", show(&json));

        // An order that lists only some properties places those first.
        props.order = vec![PropKind::UserProperty];
        let msg = MessageView {
            properties: Some(&props),
            ..MessageView::new("t", b"{}")
        };
        let json = render(&utc("%j"), &msg);
        let want = b"\"properties\":{\"user-properties\":{\"k1\":\"v1\"},\"subscription-identifier\":7,\"payload-format-indicator\":1}";
        assert!(contains(&json, want), "{}", show(&json));
    }

    #[test]
    fn json_property_quirks() {
        // mosquitto reads the topic alias with the wrong identifier and prints whatever its
        // 16-bit variable held: 0, or the length of correlation data read before.
        let mut props = V5Props {
            topic_alias: Some(5),
            ..V5Props::default()
        };
        let msg = MessageView {
            properties: Some(&props),
            ..MessageView::new("t", b"")
        };
        let json = render(&utc("%j"), &msg);
        assert!(contains(&json, b"{\"topic-alias\":0},"), "{}", show(&json));
        props.correlation_data = Some(b"ab\0cd".to_vec());
        props.order = vec![PropKind::CorrelationData, PropKind::TopicAlias];
        let msg = MessageView {
            properties: Some(&props),
            ..MessageView::new("t", b"")
        };
        let json = render(&utc("%j"), &msg);
        let want = b"{\"correlation-data\":\"ab\",\"topic-alias\":5}";
        assert!(contains(&json, want), "{}", show(&json));
        // An empty property set is no property set.
        let empty = V5Props::default();
        let msg = MessageView {
            properties: Some(&empty),
            ..MessageView::new("t", b"")
        };
        assert!(!contains(&render(&utc("%j"), &msg), b"properties"));
    }

    #[test]
    fn invalid_json_leaves_the_rest_of_the_line() {
        let printer = Printer::from_options(Some("<%J|%t|%J>"), false, false, true).unwrap();
        let mut out = Vec::new();
        let error = printer.write(&MessageView::new("a/b", b"not json"), now(), &mut out);
        assert_eq!(out, b"<|a/b|>\n");
        let error = error.unwrap_err();
        assert_eq!(error.occurrences, 2);
        assert_eq!(error.topic, "a/b");
    }

    #[test]
    fn plain_verbose_and_eol() {
        let hello = MessageView::new("a/b", b"hello");
        let empty = MessageView::new("a/b", b"");
        let binary = MessageView::new("a/b", b"a\0b\xffc");
        let cases: &[(Printer, &MessageView<'_>, &[u8])] = &[
            (Printer::new(Style::Plain), &hello, b"hello\n"),
            (Printer::new(Style::Plain), &empty, b""),
            (Printer::new(Style::Plain), &binary, b"a\0b\xffc\n"),
            (Printer::new(Style::Plain).with_eol(false), &hello, b"hello"),
            (Printer::new(Style::Plain).with_eol(false), &empty, b""),
            (Printer::new(Style::Verbose), &hello, b"a/b hello\n"),
            (Printer::new(Style::Verbose), &empty, b"a/b (null)\n"),
            (Printer::new(Style::Verbose), &binary, b"a/b a\0b\xffc\n"),
            (
                Printer::new(Style::Verbose).with_eol(false),
                &hello,
                b"a/b hello",
            ),
            (Printer::new(Style::Verbose).with_eol(false), &empty, b""),
            (Printer::new(Style::Format(utc("%t=%p"))), &empty, b"a/b=\n"),
            (
                Printer::new(Style::Format(utc("%t=%p"))).with_eol(false),
                &hello,
                b"a/b=hello",
            ),
        ];
        for (printer, msg, expected) in cases {
            let mut out = Vec::new();
            printer.write(msg, now(), &mut out).unwrap();
            assert_eq!(show(&out), show(expected), "{printer:?}");
        }
    }

    #[test]
    fn options_choose_the_style() {
        let printer =
            |format, verbose| Printer::from_options(format, verbose, false, true).unwrap();
        assert!(matches!(printer(None, false).style(), Style::Plain));
        assert!(matches!(printer(None, true).style(), Style::Verbose));
        assert!(matches!(
            printer(Some("%p"), true).style(),
            Style::Format(_)
        ));
        assert!(Printer::from_options(Some("%"), false, false, true).is_err());
        let pretty = Printer::from_options(Some("%j"), false, true, false).unwrap();
        let mut out = Vec::new();
        pretty
            .write(&MessageView::new("t", b"x"), now(), &mut out)
            .unwrap();
        assert!(out.starts_with(b"{\n\t\"tst\":\t\"") && out.ends_with(b"\"x\"\n}"));
    }

    #[test]
    fn numbers_print_as_cjson_prints_them() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.33333333333333331"),
            (100.0, "100"),
            (1e15, "1e+15"),
            (123456789012345.0, "123456789012345"),
            (1234567890123456.0, "1234567890123456"),
            (1e20, "1e+20"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e300, "1.5e+300"),
            (5e-324, "4.94065645841247e-324"),
            (f64::MAX, "1.79769313486232e+308"),
            (f64::INFINITY, "null"),
            (f64::NAN, "null"),
            (4294967295.0, "4294967295"),
        ];
        for (value, expected) in cases {
            let mut out = Vec::new();
            number(*value, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), *expected, "{value:e}");
        }
        assert_eq!(format_g(1234567890123455.0, 15), "1.23456789012346e+15");
        assert_eq!(format_g(0.5, 1), "0.5");
        assert_eq!(format_g(9.9999, 2), "10");
    }

    #[test]
    fn nesting_limit_is_cjsons() {
        let nested = |depth: usize| {
            let mut text = "[".repeat(depth);
            text.push_str(&"]".repeat(depth));
            text.into_bytes()
        };
        assert!(parse(&nested(1000)).is_some());
        assert!(parse(&nested(1001)).is_none());
        let mut out = Vec::new();
        print(&parse(&nested(3)).unwrap(), true, &mut out);
        assert_eq!(out, b"[[[]]]");
        assert_eq!(parse(b" \x1f\"x\" "), Some(Json::String(b"x".to_vec())));
        assert_eq!(parse(b"\xef\xbb\xbf"), None);
        assert_eq!(parse(b""), None);
    }
}
