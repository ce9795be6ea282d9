//! [`ConnectOptions`]: everything about how to connect, with defaults an MQTT user expects.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use mqtt_codec::{ConnectProperties, MqttString, ProtocolVersion, QoS, WillProperties};

use crate::Error;
use crate::tls::TlsOptions;

/// The default port of `mqtt://`.
pub const DEFAULT_PORT: u16 = 1883;
/// The default port of `mqtts://`.
pub const DEFAULT_TLS_PORT: u16 = 8883;

/// How to connect, and how the client behaves once connected.
///
/// ```
/// use std::time::Duration;
/// use mqtt_client::{ConnectOptions, QoS};
///
/// let options = ConnectOptions::from_url("mqtt://user:secret@localhost:1883?client_id=sensor-7")?
///     .clean_session(false)
///     .keep_alive(Duration::from_secs(30))
///     .will("sensors/7/status", "offline", QoS::AtLeastOnce, true);
/// assert_eq!(options.id(), "sensor-7");
/// # Ok::<(), mqtt_client::Error>(())
/// ```
#[derive(Clone)]
pub struct ConnectOptions {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: Option<TlsOptions>,
    pub(crate) client_id: String,
    pub(crate) clean_session: bool,
    pub(crate) keep_alive: Duration,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Bytes>,
    pub(crate) will: Option<LastWill>,
    pub(crate) protocol: ProtocolVersion,
    pub(crate) reconnect: Option<Backoff>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) flush_timeout: Duration,
    pub(crate) queue_capacity: usize,
    pub(crate) event_capacity: usize,
    pub(crate) max_inflight: u16,
    pub(crate) max_packet_size: u32,
    pub(crate) properties: ConnectProperties,
    /// (5.0) SCRAM-SHA-256 user name and password.
    pub(crate) scram: Option<(String, String)>,
}

/// The will: published by the server when the connection ends without DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Where it is published.
    pub topic: String,
    /// What is published.
    pub payload: Bytes,
    /// Its QoS.
    pub qos: QoS,
    /// Whether it is retained.
    pub retain: bool,
    /// (5.0) Its properties: will delay, message expiry, content type, response topic,
    /// correlation data, user properties.
    pub properties: WillProperties,
}

/// Automatic reconnect: the delay before attempt `n` (from 1) is drawn at random between half
/// and all of `min(max, initial × 2^(n-1))`, so that clients cut off together do not come back
/// together. The attempt count starts over once a connection is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first attempt.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Attempts before giving up; `None` tries for ever.
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// The longest delay before attempt `attempt` (from 1): `min(max, initial × 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The delay before attempt `attempt`, given a uniform random number in `[0, 1)`.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(random.clamp(0.0, 1.0))
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("client_id", &self.client_id)
            .field("clean_session", &self.clean_session)
            .field("keep_alive", &self.keep_alive)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("will", &self.will)
            .field("protocol", &self.protocol)
            .field("reconnect", &self.reconnect)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("queue_capacity", &self.queue_capacity)
            .field("max_inflight", &self.max_inflight)
            .field("scram_user", &self.scram.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

impl ConnectOptions {
    /// Plain TCP to `host:port` with the defaults: an empty client id (the server assigns one;
    /// required non-empty for 3.1 and persistent sessions, so one is generated there), clean
    /// session, keep alive 60 s, MQTT 5.0, reconnect with the default [`Backoff`], connect
    /// timeout 30 s, request timeout 60 s, flush timeout 10 s, 1,000 queued requests, 1,000
    /// undelivered events, 100 messages in flight, packets up to 256 MiB.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            tls: None,
            client_id: String::new(),
            clean_session: true,
            keep_alive: Duration::from_secs(60),
            username: None,
            password: None,
            will: None,
            protocol: ProtocolVersion::V5,
            reconnect: Some(Backoff::default()),
            connect_timeout: Duration::from_secs(30),
            request_timeout: Some(Duration::from_secs(60)),
            flush_timeout: Duration::from_secs(10),
            queue_capacity: 1000,
            event_capacity: 1000,
            max_inflight: 100,
            max_packet_size: mqtt_codec::PROTOCOL_MAX_PACKET_SIZE,
            properties: ConnectProperties::default(),
            scram: None,
        }
    }

    /// Options from a URL: `mqtt://[user[:password]@]host[:port][?client_id=…]` (port 1883)
    /// or `mqtts://…` (TLS with the system's roots, port 8883); `tcp://` and `ssl://` are
    /// accepted as synonyms. User and password are percent-decoded; an IPv6 host goes in
    /// brackets.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] naming `url` for anything else.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidOption {
            option: "url",
            reason: format!("{reason} in {url:?}"),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" | "tls" => true,
            _ => return Err(bad("unknown scheme (use mqtt:// or mqtts://)")),
        };
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains('/') {
            return Err(bad("a path"));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let default_port = if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT };
        let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
            let (host, after) = inner.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("invalid port"))?,
                None if after.is_empty() => default_port,
                None => return Err(bad("junk after the host")),
            };
            (host.to_owned(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad("invalid port"))?),
                None => (hostport.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let mut options = Self::new(host, port);
        if tls {
            options = options.tls(TlsOptions::new());
        }
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            let user = percent_decode(user).ok_or_else(|| bad("bad percent-encoding"))?;
            let password = password
                .map(|p| percent_decode(p).ok_or_else(|| bad("bad percent-encoding")))
                .transpose()?;
            options = options.credentials(user, password);
        }
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some(("client_id", id)) => {
                    let id = percent_decode(id).ok_or_else(|| bad("bad percent-encoding"))?;
                    options = options.client_id(id);
                }
                Some(("keep_alive", secs)) => {
                    let secs: u16 = secs.parse().map_err(|_| bad("invalid keep_alive"))?;
                    options = options.keep_alive(Duration::from_secs(secs.into()));
                }
                Some(("clean_session", v)) => {
                    let v: bool = v.parse().map_err(|_| bad("invalid clean_session"))?;
                    options = options.clean_session(v);
                }
                _ => return Err(bad("unknown query parameter")),
            }
        }
        Ok(options)
    }

    /// The host to connect to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client identifier (empty: the server assigns one).
    pub fn id(&self) -> &str {
        &self.client_id
    }

    /// Sets the client identifier.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// Connects over TLS with these options.
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Clean session (3.x) / clean start (5.0): `false` asks the server to keep the session
    /// (subscriptions and unacknowledged messages) while the client is away.
    pub fn clean_session(mut self, clean: bool) -> Self {
        self.clean_session = clean;
        self
    }

    /// The keep alive; zero turns it off. Sent in whole seconds (at most 65,535).
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// User name and optional password.
    pub fn credentials(
        mut self,
        username: impl Into<String>,
        password: Option<impl Into<Bytes>>,
    ) -> Self {
        self.username = Some(username.into());
        self.password = password.map(Into::into);
        self
    }

    /// The will message.
    pub fn will(
        mut self,
        topic: impl Into<String>,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Self {
        self.will = Some(LastWill {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain,
            properties: WillProperties::default(),
        });
        self
    }

    /// (5.0) The will's properties (set the will first); for example its Will Delay Interval,
    /// after which the server publishes it if the client has not come back.
    pub fn will_properties(mut self, properties: WillProperties) -> Self {
        if let Some(will) = &mut self.will {
            will.properties = properties;
        }
        self
    }

    /// (5.0) Every CONNECT property at once. The typed setters below change one each;
    /// [`ConnectOptions::max_packet_size`] sets Maximum Packet Size.
    pub fn connect_properties(mut self, properties: ConnectProperties) -> Self {
        self.properties = properties;
        self
    }

    /// (5.0) The CONNECT properties as they are set.
    pub fn properties(&self) -> &ConnectProperties {
        &self.properties
    }

    /// (5.0) How long the server keeps the session after the connection closes, in seconds
    /// (`u32::MAX`: for ever). Without it, a persistent session (`clean_session(false)`) is
    /// kept for ever, as in 3.1.1, and a clean one ends with the connection.
    pub fn session_expiry_interval(mut self, secs: u32) -> Self {
        self.properties.session_expiry_interval = Some(secs);
        self
    }

    /// (5.0) How many QoS 1 and 2 messages the server may have unacknowledged towards this
    /// client (its Receive Maximum; 0 leaves it unset, meaning 65,535).
    pub fn receive_maximum(mut self, max: u16) -> Self {
        self.properties.receive_maximum = std::num::NonZeroU16::new(max);
        self
    }

    /// (5.0) The highest Topic Alias the server may use on messages to this client; the client
    /// resolves them, so [`Message::topic`](crate::Message::topic) is always the topic name.
    pub fn topic_alias_maximum(mut self, max: u16) -> Self {
        self.properties.topic_alias_maximum = (max > 0).then_some(max);
        self
    }

    /// (5.0) Asks the server for Response Information in CONNACK (a topic prefix for
    /// responses), read from [`Event::Connected`](crate::Event::Connected).
    pub fn request_response_information(mut self, request: bool) -> Self {
        self.properties.request_response_information = Some(request);
        self
    }

    /// (5.0) Whether the server may send reason strings and user properties on failures
    /// (default: yes).
    pub fn request_problem_information(mut self, request: bool) -> Self {
        self.properties.request_problem_information = Some(request);
        self
    }

    /// (5.0) Adds a user property to CONNECT (names may repeat; the order is kept).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] when the name or value is not a valid MQTT string.
    pub fn user_property(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, Error> {
        let bad = |e: mqtt_codec::TopicError| Error::InvalidOption {
            option: "user_property",
            reason: e.to_string(),
        };
        let name = MqttString::try_from(name.into()).map_err(bad)?;
        let value = MqttString::try_from(value.into()).map_err(bad)?;
        self.properties.user_properties.push((name, value));
        Ok(self)
    }

    /// (5.0) Enhanced authentication with SCRAM-SHA-256 (RFC 7677): the password never
    /// crosses the network, and the server has to prove it knows the credentials too (the
    /// connection fails with [`ConnectionError::Protocol`](crate::ConnectionError::Protocol)
    /// otherwise). Replaces [`ConnectOptions::credentials`] on the wire.
    pub fn scram_sha256(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.scram = Some((user.into(), password.into()));
        self
    }

    /// The protocol version: 3.1, 3.1.1 or 5.0 (the default).
    pub fn protocol(mut self, version: ProtocolVersion) -> Self {
        self.protocol = version;
        self
    }

    /// Automatic reconnect with this backoff, or `None` to stay disconnected (requests then
    /// fail with [`Error::Disconnected`] when the connection goes).
    pub fn reconnect(mut self, backoff: Option<Backoff>) -> Self {
        self.reconnect = backoff;
        self
    }

    /// How long the TCP connect, TLS handshake and CONNACK may take together.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long `publish`, `subscribe` and `unsubscribe` wait for their answer; `None` waits
    /// for as long as it takes (across reconnects).
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long [`Client::disconnect`](crate::Client::disconnect) waits for outstanding
    /// messages to be acknowledged before it sends DISCONNECT anyway.
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Requests that may wait for the connection or the in-flight window; beyond it
    /// [`Client::try_publish`](crate::Client::try_publish) reports [`Error::QueueFull`] and
    /// the other calls wait.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Events (messages among them) not yet taken from [`Events`](crate::Events); when full,
    /// the client stops reading from the server until there is room.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// QoS 1 and 2 messages sent and not yet acknowledged (for 5.0, also at most the server's
    /// Receive Maximum).
    pub fn max_inflight(mut self, max: u16) -> Self {
        self.max_inflight = max.max(1);
        self
    }

    /// The largest packet accepted from the server; a larger one closes the connection.
    pub fn max_packet_size(mut self, max: u32) -> Self {
        self.max_packet_size = max;
        self
    }

    /// Checks what cannot be checked while building.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |option, reason: &str| {
            Err(Error::InvalidOption {
                option,
                reason: reason.to_owned(),
            })
        };
        if self.host.is_empty() {
            return bad("host", "empty");
        }
        if self.keep_alive.as_secs() > u64::from(u16::MAX) {
            return bad("keep_alive", "more than 65,535 seconds");
        }
        if self.client_id.len() > usize::from(u16::MAX) {
            return bad("client_id", "longer than 65,535 bytes");
        }
        if self.client_id.is_empty() && !self.clean_session {
            // [MQTT-3.1.3-7]: a zero-length identifier requires a clean session.
            return bad("client_id", "must not be empty with a persistent session");
        }
        if self.scram.is_some() && !self.protocol.is_v5() {
            return bad("scram_sha256", "enhanced authentication needs MQTT 5.0");
        }
        if self.password.is_some() && self.username.is_none() && !self.protocol.is_v5() {
            // [MQTT-3.1.2-22]
            return bad("password", "needs a user name before MQTT 5.0");
        }
        Ok(())
    }
}

/// Decodes `%XX` escapes; `None` for a malformed escape or invalid UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let o = ConnectOptions::from_url("mqtt://broker.example").unwrap();
        assert_eq!(
            (o.host(), o.port(), o.tls.is_some()),
            ("broker.example", 1883, false)
        );
        let o = ConnectOptions::from_url("mqtts://u%40x:p%3Aw@h:1234/?client_id=a%2Fb").unwrap();
        assert_eq!((o.host(), o.port(), o.tls.is_some()), ("h", 1234, true));
        assert_eq!(o.username.as_deref(), Some("u@x"));
        assert_eq!(o.password.as_deref(), Some(&b"p:w"[..]));
        assert_eq!(o.id(), "a/b");
        let o = ConnectOptions::from_url("mqtts://[::1]").unwrap();
        assert_eq!((o.host(), o.port()), ("::1", 8883));
        let o =
            ConnectOptions::from_url("tcp://[::1]:99?keep_alive=5&clean_session=false").unwrap();
        assert_eq!(
            (o.port(), o.keep_alive, o.clean_session),
            (99, Duration::from_secs(5), false)
        );
        for bad in [
            "localhost",
            "http://h",
            "mqtt://",
            "mqtt://h:x",
            "mqtt://h/path",
            "mqtt://[::1",
            "mqtt://h?what=1",
            "mqtt://%zz@h",
        ] {
            assert!(ConnectOptions::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let o = ConnectOptions::new("h", 1).credentials("u", Some("hunter2"));
        assert!(!format!("{o:?}").contains("hunter2"));
    }

    #[test]
    fn mqtt_3_1_3_7_empty_id_needs_a_clean_session() {
        assert!(ConnectOptions::new("h", 1).validate().is_ok());
        assert!(
            ConnectOptions::new("h", 1)
                .clean_session(false)
                .validate()
                .is_err()
        );
        let o = ConnectOptions::new("h", 1)
            .client_id("x")
            .clean_session(false);
        assert!(o.validate().is_ok());
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: None,
        };
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(400));
        assert_eq!(b.ceiling(5), Duration::from_secs(1));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(1));
        assert_eq!(b.delay(3, 0.0), Duration::from_millis(200));
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(300));
        assert!(b.delay(3, 0.999) < Duration::from_millis(400));
    }
}
