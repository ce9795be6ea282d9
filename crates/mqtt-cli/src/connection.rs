//! The options `mqtt pub` and `mqtt sub` share with `mosquitto_pub` and `mosquitto_sub`
//! (same letters, same meanings, same checks and messages), the defaults layered under them
//! (`~/.config/mqtt/config.toml` < `MQTT_*` environment < flags), and the mapping to the
//! client library's [`ConnectOptions`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};
use mqtt_client::{ConnectOptions, ProtocolVersion, QoS, TlsOptions};
use serde::Deserialize;

/// How `mosquitto_pub` and `mosquitto_sub` lay out a message about the command line on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `Error: …`, a blank line, then the pointer to `--help`.
    Pointer,
    /// `Error: …`, two blank lines, then the pointer to `--help` (the messages Mosquitto
    /// writes with an end of line of their own).
    SpacedPointer,
    /// `Error: …` alone.
    Bare,
    /// A blank line, then `Error: …`.
    BlankFirst,
    /// `Error: …` alone, and not at all with `--quiet`: the checks Mosquitto makes while
    /// setting up its client rather than while reading the options.
    Setup,
    /// The message as it is (no `Error: `), a blank line, then the pointer to `--help`.
    PlainPointer,
    /// The message as it is, alone.
    Plain,
}

/// A mistake in the command line, reported as `mosquitto_pub`/`mosquitto_sub` do (exit
/// status 1), with the same message and the same layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    /// The message, without the `Error: ` in front of it.
    pub message: String,
    /// How it is laid out.
    pub layout: Layout,
}

impl UsageError {
    /// A message followed by a blank line and the pointer to `--help`.
    pub fn new(message: impl Into<String>) -> Self {
        Self::with_layout(message, Layout::Pointer)
    }

    /// A message followed by two blank lines and the pointer to `--help`.
    pub fn spaced(message: impl Into<String>) -> Self {
        Self::with_layout(message, Layout::SpacedPointer)
    }

    /// A message with this layout.
    pub fn with_layout(message: impl Into<String>, layout: Layout) -> Self {
        Self {
            message: message.into(),
            layout,
        }
    }

    /// The text for stderr from `mqtt <tool>`, or `None` when `--quiet` hides it (only
    /// [`Layout::Setup`] messages: Mosquitto prints usage errors even with `--quiet`).
    pub fn render(&self, tool: &str, quiet: bool) -> Option<String> {
        let message = &self.message;
        let pointer = format!("Use 'mqtt {tool} --help' to see usage.");
        Some(match self.layout {
            Layout::Pointer => format!("Error: {message}\n\n{pointer}\n"),
            Layout::SpacedPointer => format!("Error: {message}\n\n\n{pointer}\n"),
            Layout::Bare => format!("Error: {message}\n"),
            Layout::BlankFirst => format!("\nError: {message}\n"),
            Layout::Setup if quiet => return None,
            Layout::Setup => format!("Error: {message}\n"),
            Layout::PlainPointer => format!("{message}\n\n{pointer}\n"),
            Layout::Plain => format!("{message}\n"),
        })
    }
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UsageError {}

/// C's `atoi`, which Mosquitto's clients use for numeric options: leading white space, an
/// optional sign, then as many digits as there are (`"10x"` is 10, `"abc"` is 0); a value
/// beyond the range of a C `long` saturates, and the result keeps the low 32 bits of it (so
/// `"18446744073709551615"` is -1 and `"4294967296"` is 0).
pub fn atoi(text: &str) -> i32 {
    let text = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let mut value: i64 = 0;
    for digit in digits.bytes().take_while(u8::is_ascii_digit) {
        let digit = i64::from(digit - b'0');
        let next = value.checked_mul(10).and_then(|v| {
            if negative {
                v.checked_sub(digit)
            } else {
                v.checked_add(digit)
            }
        });
        match next {
            Some(next) => value = next,
            None => {
                value = if negative { i64::MIN } else { i64::MAX };
                break;
            }
        }
    }
    // The conversion of a `long` to an `int`: the low 32 bits.
    value as i32
}

/// Connection options common to `pub` and `sub`.
#[derive(Args, Debug, Clone, Default)]
pub struct ConnectionArgs {
    /// MQTT host to connect to [default: localhost].
    #[arg(
        short = 'h',
        long = "host",
        env = "MQTT_HOST",
        allow_hyphen_values = true
    )]
    pub host: Option<String>,
    /// Network port [default: 1883, or 8883 with TLS].
    #[arg(
        short = 'p',
        long = "port",
        env = "MQTT_PORT",
        allow_hyphen_values = true
    )]
    pub port: Option<String>,
    /// User, password, host, port and topic as one URL:
    /// `mqtt(s)://[username[:password]@]host[:port]/topic`.
    #[arg(short = 'L', long = "url", allow_hyphen_values = true)]
    pub url: Option<String>,
    /// Client id [default: assigned by the broker].
    #[arg(short = 'i', long = "id", allow_hyphen_values = true)]
    pub id: Option<String>,
    /// Client id prefix; the process id is appended [env: MQTT_ID_PREFIX].
    #[arg(short = 'I', long = "id-prefix", allow_hyphen_values = true)]
    pub id_prefix: Option<String>,
    /// User name.
    #[arg(
        short = 'u',
        long = "username",
        env = "MQTT_USERNAME",
        allow_hyphen_values = true
    )]
    pub username: Option<String>,
    /// Password.
    #[arg(
        short = 'P',
        long = "pw",
        env = "MQTT_PASSWORD",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub password: Option<String>,
    /// Keep alive in seconds (5 to 65535) [default: 60].
    #[arg(
        short = 'k',
        long = "keepalive",
        env = "MQTT_KEEPALIVE",
        allow_hyphen_values = true
    )]
    pub keepalive: Option<String>,
    /// Disable clean session: the broker keeps the session (needs -i).
    #[arg(short = 'c', long = "disable-clean-session")]
    pub disable_clean_session: bool,
    /// MQTT 5 session expiry interval in seconds (-1, 4294967295 or ∞: never) [default: -1
    /// with -c, 0 without].
    #[arg(
        short = 'x',
        long = "session-expiry-interval",
        allow_hyphen_values = true
    )]
    pub session_expiry: Option<String>,
    /// MQTT 5 property: `-D command identifier value` (`-D command user-property name
    /// value`); commands connect, publish, subscribe, unsubscribe, disconnect, will. May be
    /// repeated.
    #[arg(
        short = 'D',
        long = "property",
        num_args = 3..=4,
        action = ArgAction::Append,
        value_names = ["COMMAND", "IDENTIFIER", "VALUE"]
    )]
    pub property: Vec<String>,
    /// Protocol version: mqttv31, mqttv311 or mqttv5 (also 31, 311, 5) [default: mqttv5].
    #[arg(
        short = 'V',
        long = "protocol-version",
        env = "MQTT_PROTOCOL_VERSION",
        allow_hyphen_values = true
    )]
    pub protocol_version: Option<String>,
    /// QoS (0, 1 or 2) [default: 0].
    #[arg(
        short = 'q',
        long = "qos",
        env = "MQTT_QOS",
        allow_hyphen_values = true
    )]
    pub qos: Option<String>,
    /// Will topic.
    #[arg(long = "will-topic", allow_hyphen_values = true)]
    pub will_topic: Option<String>,
    /// Will payload [default: empty].
    #[arg(long = "will-payload", allow_hyphen_values = true)]
    pub will_payload: Option<String>,
    /// Will QoS.
    #[arg(long = "will-qos", allow_hyphen_values = true)]
    pub will_qos: Option<String>,
    /// Retain the will.
    #[arg(long = "will-retain")]
    pub will_retain: bool,
    /// File of trusted CA certificates (PEM); turns TLS on.
    #[arg(long = "cafile", env = "MQTT_CAFILE", allow_hyphen_values = true)]
    pub cafile: Option<PathBuf>,
    /// Directory of trusted CA certificates (PEM); turns TLS on.
    #[arg(long = "capath", env = "MQTT_CAPATH", allow_hyphen_values = true)]
    pub capath: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long = "cert", env = "MQTT_CERT", allow_hyphen_values = true)]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long = "key", env = "MQTT_KEY", allow_hyphen_values = true)]
    pub key: Option<PathBuf>,
    /// Do not check that the server certificate's name matches the host.
    #[arg(long = "insecure")]
    pub insecure: bool,
    /// Trust the operating system's CA certificates; turns TLS on.
    #[arg(long = "tls-use-os-certs")]
    pub tls_use_os_certs: bool,
    /// TLS ALPN protocol.
    #[arg(long = "tls-alpn", allow_hyphen_values = true)]
    pub tls_alpn: Option<String>,
    /// Debug messages on stderr.
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,
    /// Do not print error messages.
    #[arg(long = "quiet")]
    pub quiet: bool,
    /// Disable Nagle's algorithm (always done; accepted for compatibility).
    #[arg(long = "nodelay")]
    pub nodelay: bool,
    /// Print help.
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// Defaults from the configuration file: the same settings as the long options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileDefaults {
    /// `-h`.
    pub host: Option<String>,
    /// `-p`.
    pub port: Option<u16>,
    /// `-u`.
    pub username: Option<String>,
    /// `-P`.
    pub password: Option<String>,
    /// `-I`.
    pub id_prefix: Option<String>,
    /// `-k`.
    pub keepalive: Option<u16>,
    /// `-V`.
    pub protocol_version: Option<String>,
    /// `-q`.
    pub qos: Option<u8>,
    /// `--cafile`.
    pub cafile: Option<PathBuf>,
    /// `--capath`.
    pub capath: Option<PathBuf>,
    /// `--cert`.
    pub cert: Option<PathBuf>,
    /// `--key`.
    pub key: Option<PathBuf>,
    /// `--insecure`.
    pub insecure: Option<bool>,
    /// `--tls-use-os-certs`.
    pub tls_use_os_certs: Option<bool>,
}

/// A configuration file that cannot be used (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl FileDefaults {
    /// Where the file is: `$MQTT_CONFIG`, else `$XDG_CONFIG_HOME/mqtt/config.toml`, else
    /// `~/.config/mqtt/config.toml`. The second value says whether it was named explicitly
    /// (then it must exist).
    pub fn path() -> Option<(PathBuf, bool)> {
        if let Some(path) = std::env::var_os("MQTT_CONFIG") {
            return Some((PathBuf::from(path), true));
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some((base.join("mqtt").join("config.toml"), false))
    }

    /// Reads the file, if there is one.
    ///
    /// # Errors
    /// A file that cannot be read or parsed; the message names the file and the key.
    pub fn load() -> Result<Self, ConfigError> {
        let Some((path, explicit)) = Self::path() else {
            return Ok(Self::default());
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Self::default());
            }
            Err(e) => return Err(ConfigError(format!("{}: {e}", path.display()))),
        };
        Self::parse(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Parses the file's text.
    ///
    /// # Errors
    /// Invalid TOML, an unknown key or a value of the wrong type (the message names the key).
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }
}

/// What the command line asked for, checked: everything needed to connect.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The client's options.
    pub options: ConnectOptions,
    /// The protocol version of `-V`.
    pub version: ProtocolVersion,
    /// The QoS of `-q`.
    pub qos: QoS,
    /// The topic given in a `-L` URL.
    pub url_topic: Option<String>,
    /// `--quiet`.
    pub quiet: bool,
    /// `-d`.
    pub debug: bool,
    /// The properties of `-D` (the CONNECT and will ones are already in `options`).
    pub properties: crate::properties::CliProperties,
}

/// Parses `-q` the way Mosquitto's clients do (C's `atoi`, then 0 to 2).
///
/// # Errors
/// Mosquitto's message for a QoS outside 0 to 2.
pub fn parse_qos(text: &str) -> Result<QoS, UsageError> {
    qos_from(atoi(text))
        .ok_or_else(|| UsageError::new(format!("Invalid QoS given: {}", atoi(text))))
}

fn parse_will_qos(text: &str) -> Result<QoS, UsageError> {
    qos_from(atoi(text))
        .ok_or_else(|| UsageError::spaced(format!("Invalid will QoS {}.", atoi(text))))
}

fn qos_from(value: i32) -> Option<QoS> {
    match value {
        0 => Some(QoS::AtMostOnce),
        1 => Some(QoS::AtLeastOnce),
        2 => Some(QoS::ExactlyOnce),
        _ => None,
    }
}

fn parse_version(text: &str) -> Result<ProtocolVersion, UsageError> {
    match text {
        "mqttv31" | "31" => Ok(ProtocolVersion::V3_1),
        "mqttv311" | "311" => Ok(ProtocolVersion::V3_1_1),
        "mqttv5" | "5" => Ok(ProtocolVersion::V5),
        _ => Err(UsageError::spaced(
            "Invalid protocol version argument given.",
        )),
    }
}

impl ConnectionArgs {
    /// Checks the options and builds the client's, with `file` under them. The client id
    /// prefix also comes from `MQTT_ID_PREFIX` when `-I` is not given (read here rather than by
    /// the option parser, so that `-i` with the variable set is not taken for `-i` with `-I`).
    /// The TLS files are checked apart, by [`ConnectionArgs::check_tls_files`].
    ///
    /// # Errors
    /// Mosquitto's message for the first invalid option.
    pub fn resolve(&self, file: &FileDefaults) -> Result<Resolved, UsageError> {
        if self.id.is_some() && self.id_prefix.is_some() {
            return Err(UsageError::spaced(
                "-i and -I argument cannot be used together.",
            ));
        }
        let mut url_topic = None;
        let mut url_options = None;
        if let Some(url) = &self.url {
            let (options, topic) = parse_url(url)?;
            url_options = Some(options);
            url_topic = Some(topic);
        }
        let tls_wanted = self.cafile.is_some()
            || self.capath.is_some()
            || self.tls_use_os_certs
            || file.cafile.is_some()
            || file.capath.is_some()
            || file.tls_use_os_certs == Some(true);
        let mut options = match url_options {
            Some(options) => options,
            None => {
                let host = self
                    .host
                    .clone()
                    .or_else(|| file.host.clone())
                    .unwrap_or_else(|| "localhost".to_owned());
                let default_port = if tls_wanted {
                    mqtt_client::DEFAULT_TLS_PORT
                } else {
                    mqtt_client::DEFAULT_PORT
                };
                let port = match &self.port {
                    Some(text) => match u16::try_from(atoi(text)) {
                        Ok(p) if p >= 1 => p,
                        _ => {
                            return Err(UsageError::new(format!(
                                "Invalid port given: {}",
                                atoi(text)
                            )));
                        }
                    },
                    None => file.port.unwrap_or(default_port),
                };
                ConnectOptions::new(host, port)
            }
        };

        let version = match self
            .protocol_version
            .as_deref()
            .or(file.protocol_version.as_deref())
        {
            Some(text) => parse_version(text)?,
            None => ProtocolVersion::V5,
        };
        options = options.protocol(version);
        let mut properties = crate::properties::CliProperties::parse(&self.property)?;
        let session_expiry = self
            .session_expiry
            .as_deref()
            .map(crate::properties::parse_session_expiry)
            .transpose()?;
        // Before 5.0 the properties are not sent, as with Mosquitto's tools.
        if let Some(secs) = session_expiry {
            properties.connect.session_expiry_interval = Some(secs);
        }

        let keepalive = match &self.keepalive {
            Some(text) => match u16::try_from(atoi(text)) {
                Ok(k) if k >= 5 => k,
                _ => {
                    return Err(UsageError::spaced(
                        "Invalid keepalive given, it must be between 5 and 65535 inclusive.",
                    ));
                }
            },
            None => file.keepalive.unwrap_or(60),
        };
        options = options.keep_alive(Duration::from_secs(keepalive.into()));

        let qos = match (&self.qos, file.qos) {
            (Some(text), _) => parse_qos(text)?,
            (None, Some(q)) => parse_qos(&q.to_string())?,
            (None, None) => QoS::AtMostOnce,
        };

        if self.disable_clean_session && self.id.is_none() {
            return Err(UsageError::new(
                "You must provide a client id if you are using the -c option.",
            ));
        }
        // Mosquitto reads the will options one by one (an invalid will QoS is refused even
        // without a will topic), then wants a topic for a payload or retain flag; a will QoS
        // alone is ignored.
        let will_qos = match &self.will_qos {
            Some(text) => parse_will_qos(text)?,
            None => QoS::AtMostOnce,
        };
        if let Some(topic) = &self.will_topic {
            if mqtt_client::TopicName::try_from(topic.as_str()).is_err() {
                return Err(UsageError::new(format!(
                    "Invalid will topic '{topic}', does it contain '+' or '#'?"
                )));
            }
            options = options.will(
                topic.clone(),
                self.will_payload.clone().unwrap_or_default(),
                will_qos,
                self.will_retain,
            );
        } else if self.will_payload.is_some() {
            return Err(UsageError::new(
                "Will payload given, but no will topic given.",
            ));
        } else if self.will_retain {
            return Err(UsageError::new(
                "Will retain given, but no will topic given.",
            ));
        }
        let cert = self.cert.as_ref().or(file.cert.as_ref());
        let key = self.key.as_ref().or(file.key.as_ref());
        if cert.is_some() != key.is_some() {
            return Err(UsageError::new(
                "Both certfile and keyfile must be provided if one of them is set.",
            ));
        }

        // What Mosquitto checks when it sets up its client, after the options.
        if let Some(id) = &self.id {
            if id.is_empty() || id.len() > 65535 {
                return Err(UsageError::with_layout("Invalid id.", Layout::Setup));
            }
            options = options.client_id(id.clone());
        } else if let Some(prefix) = self
            .id_prefix
            .clone()
            .or_else(|| std::env::var("MQTT_ID_PREFIX").ok())
            .or_else(|| file.id_prefix.clone())
        {
            options = options.client_id(format!("{prefix}{}", std::process::id()));
        }
        if self.disable_clean_session {
            options = options.clean_session(false);
        }
        let username = self.username.clone().or_else(|| file.username.clone());
        let password = self.password.clone().or_else(|| file.password.clone());
        match (username, password) {
            (Some(user), password) => options = options.credentials(user, password),
            (None, Some(_)) if self.url.is_none() => {
                return Err(UsageError::with_layout(
                    "Problem setting username and/or password.",
                    Layout::Setup,
                ));
            }
            _ => {}
        }

        if tls_wanted || cert.is_some() {
            options = options.tls(self.tls(file));
        }
        // The connect and will properties of `-D` (kept with what the options set, such as
        // the session expiry of `-c`).
        let mut connect = properties.connect.clone();
        if connect.session_expiry_interval.is_none() && self.disable_clean_session {
            connect.session_expiry_interval = Some(u32::MAX);
        }
        options = options
            .connect_properties(connect)
            .will_properties(properties.will.clone());
        Ok(Resolved {
            options,
            version,
            qos,
            url_topic,
            quiet: self.quiet,
            debug: self.debug,
            properties,
        })
    }

    /// Checks that the CA, certificate and key files can be read, as Mosquitto does before
    /// connecting (a missing directory of `--capath` is a TLS error when connecting).
    ///
    /// # Errors
    /// Mosquitto's message for a file that cannot be opened.
    pub fn check_tls_files(&self, file: &FileDefaults) -> Result<(), UsageError> {
        let files = [
            self.cafile.as_ref().or(file.cafile.as_ref()),
            self.cert.as_ref().or(file.cert.as_ref()),
            self.key.as_ref().or(file.key.as_ref()),
        ];
        for path in files.into_iter().flatten() {
            if std::fs::File::open(path).is_err() {
                return Err(UsageError::with_layout(
                    "Problem setting TLS options: File not found.",
                    Layout::Setup,
                ));
            }
        }
        Ok(())
    }

    fn tls(&self, file: &FileDefaults) -> TlsOptions {
        let mut tls = TlsOptions::new();
        if let Some(ca) = self.cafile.as_ref().or(file.cafile.as_ref()) {
            tls = tls.ca_file(ca.clone());
        }
        if let Some(dir) = self.capath.as_ref().or(file.capath.as_ref()) {
            tls = tls.ca_path(dir.clone());
        }
        let cert = self.cert.as_ref().or(file.cert.as_ref());
        let key = self.key.as_ref().or(file.key.as_ref());
        if let (Some(cert), Some(key)) = (cert, key) {
            tls = tls.client_auth(cert.clone(), key.clone());
        }
        if self.insecure || file.insecure == Some(true) {
            tls = tls.insecure_skip_hostname(true);
        }
        if let Some(alpn) = &self.tls_alpn {
            tls = tls.alpn([alpn.as_bytes().to_vec()]);
        }
        tls
    }
}

/// Splits `mqtt(s)://[user[:password]@]host[:port]/topic` (the scheme in any case) into the
/// client's options and the topic.
fn parse_url(url: &str) -> Result<(ConnectOptions, String), UsageError> {
    let unsupported = || UsageError::spaced("unsupported URL scheme.");
    let (scheme, rest) = url.split_once("://").ok_or_else(unsupported)?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "mqtt" | "mqtts") {
        return Err(unsupported());
    }
    let (authority, topic) = match rest.split_once('/') {
        Some((a, t)) if !t.is_empty() => (a, t.to_owned()),
        _ => {
            return Err(UsageError::new(
                "Invalid URL for -L argument specified - topic missing.",
            ));
        }
    };
    let options = ConnectOptions::from_url(&format!("{scheme}://{authority}"))
        .map_err(|e| UsageError::new(e.to_string()))?;
    Ok((options, topic))
}

/// The error text of an I/O error as `strerror` gives it (without Rust's "(os error N)").
pub fn strerror(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The message Mosquitto's clients print for a connection refused under MQTT 3.1 or 3.1.1,
/// without the trailing period.
pub fn refusal_text(code: mqtt_client::ReasonCode) -> String {
    use mqtt_client::ReasonCode as R;
    match code {
        R::UnsupportedProtocolVersion => "Connection Refused: unacceptable protocol version".into(),
        R::ClientIdentifierNotValid => "Connection Refused: identifier rejected".into(),
        R::ServerUnavailable => "Connection Refused: broker unavailable".into(),
        R::BadUserNameOrPassword => "Connection Refused: bad user name or password".into(),
        R::NotAuthorized => "Connection Refused: not authorised".into(),
        _ => "Connection Refused: unknown reason".into(),
    }
}

/// The text Mosquitto's clients print after `Connection error: ` for a connection refused
/// under MQTT 5.0 (the reason code's name as libmosquitto spells it).
pub fn v5_refusal_text(code: mqtt_client::ReasonCode) -> &'static str {
    use mqtt_client::ReasonCode as R;
    match code {
        R::UnspecifiedError => "Unspecified error",
        R::MalformedPacket => "Malformed Packet",
        R::ProtocolError => "Protocol Error",
        R::ImplementationSpecificError => "Implementation specific error",
        R::UnsupportedProtocolVersion => {
            "Unsupported Protocol Version. Try connecting to an MQTT v5 broker, or use MQTT v3.x mode."
        }
        R::ClientIdentifierNotValid => "Client Identifier not valid",
        R::BadUserNameOrPassword => "Bad User Name or Password",
        R::NotAuthorized => "Not authorized",
        R::ServerUnavailable => "Server unavailable",
        R::ServerBusy => "Server busy",
        R::Banned => "Banned",
        R::ServerShuttingDown => "Server shutting down",
        R::BadAuthenticationMethod => "Bad authentication method",
        R::KeepAliveTimeout => "Keep Alive timeout",
        R::SessionTakenOver => "Session taken over",
        R::TopicFilterInvalid => "Topic Filter invalid",
        R::TopicNameInvalid => "Topic Name invalid",
        R::PacketIdentifierInUse => "Packet Identifier in use",
        R::PacketIdentifierNotFound => "Packet Identifier not found",
        R::ReceiveMaximumExceeded => "Receive Maximum exceeded",
        R::TopicAliasInvalid => "Topic Alias invalid",
        R::PacketTooLarge => "Packet too large",
        R::MessageRateTooHigh => "Message rate too high",
        R::QuotaExceeded => "Quota exceeded",
        R::AdministrativeAction => "Administrative action",
        R::PayloadFormatInvalid => "Payload format invalid",
        R::RetainNotSupported => "Retain not supported",
        R::QoSNotSupported => "QoS not supported",
        R::UseAnotherServer => "Use another server",
        R::ServerMoved => "Server moved",
        R::SharedSubscriptionsNotSupported => "Shared Subscriptions not supported",
        R::ConnectionRateExceeded => "Connection rate exceeded",
        R::MaximumConnectTime => "Maximum connect time",
        R::SubscriptionIdentifiersNotSupported => "Subscription identifiers not supported",
        R::WildcardSubscriptionsNotSupported => "Wildcard Subscriptions not supported",
        _ => "Unknown reason",
    }
}

/// How a failed connection is reported: the lines for stderr and the exit status. A refusal
/// under MQTT 5.0 exits with the reason code itself (e.g. 135 for "Not authorized"); under
/// 3.1 and 3.1.1 with the CONNACK return code (1 to 5).
pub fn connect_failure(error: &mqtt_client::Error, version: ProtocolVersion) -> (Vec<String>, u8) {
    use mqtt_client::{ConnectionError, Error};
    match error {
        Error::Refused(code) if version == ProtocolVersion::V5 => (
            vec![format!("Connection error: {}", v5_refusal_text(*code))],
            code.get(),
        ),
        Error::Refused(code) => (
            vec![format!("Connection error: {}.", refusal_text(*code))],
            mqtt_client::connack_return_code(*code),
        ),
        Error::Connection(ConnectionError::Io(e)) => (vec![format!("Error: {}", strerror(e))], 1),
        // Mosquitto's clients exit with libmosquitto's MOSQ_ERR_TLS (8); the detail (what
        // OpenSSL would say there) comes first.
        Error::Connection(ConnectionError::Tls(e)) => (
            vec![
                format!("TLS error: {e}"),
                "Error: A TLS error occurred.".to_owned(),
            ],
            8,
        ),
        other => (vec![format!("Error: {other}")], 1),
    }
}

/// The line `mosquitto_pub` adds after a refused connection: 3.1 and 3.1.1 refusals with a
/// known return code (1 to 5) are "refused"; anything else, every 5.0 refusal included, is a
/// "protocol error" to libmosquitto.
pub fn pub_refusal_line(code: mqtt_client::ReasonCode, version: ProtocolVersion) -> &'static str {
    if version != ProtocolVersion::V5 && (1..=5).contains(&mqtt_client::connack_return_code(code)) {
        "Error: The connection was refused."
    } else {
        "Error: A network protocol error occurred when communicating with the broker."
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(args: &[&str]) -> Result<Resolved, UsageError> {
        #[derive(clap::Parser)]
        #[command(disable_help_flag = true)]
        struct Cli {
            #[command(flatten)]
            c: ConnectionArgs,
        }
        use clap::Parser as _;
        let cli = Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied())).unwrap();
        cli.c.resolve(&FileDefaults::default())
    }

    #[test]
    fn mosquitto_checks_and_messages() {
        let err = |args: &[&str]| resolve(args).unwrap_err().message;
        assert_eq!(err(&["-q", "3"]), "Invalid QoS given: 3");
        assert_eq!(
            err(&["-k", "3"]),
            "Invalid keepalive given, it must be between 5 and 65535 inclusive."
        );
        assert_eq!(err(&["-p", "70000"]), "Invalid port given: 70000");
        assert_eq!(
            err(&["-V", "mqttv4"]),
            "Invalid protocol version argument given."
        );
        assert_eq!(
            err(&["-c"]),
            "You must provide a client id if you are using the -c option."
        );
        assert_eq!(err(&["-i", ""]), "Invalid id.");
        assert_eq!(
            err(&["--will-topic", "a/#"]),
            "Invalid will topic 'a/#', does it contain '+' or '#'?"
        );
        assert_eq!(
            err(&["--cert", "c.pem"]),
            "Both certfile and keyfile must be provided if one of them is set."
        );
        assert_eq!(
            err(&["-i", "a", "-I", "b"]),
            "-i and -I argument cannot be used together."
        );
        assert_eq!(err(&["--will-qos", "3"]), "Invalid will QoS 3.");
        assert_eq!(
            err(&["--will-payload", "p", "--will-retain"]),
            "Will payload given, but no will topic given."
        );
        assert_eq!(
            err(&["--will-retain"]),
            "Will retain given, but no will topic given."
        );
        assert_eq!(
            err(&["-P", "secret"]),
            "Problem setting username and/or password."
        );
        // Numbers are read as C's atoi reads them, and negative values are values.
        assert_eq!(err(&["-q", "-1"]), "Invalid QoS given: -1");
        assert_eq!(err(&["-q", "5x"]), "Invalid QoS given: 5");
        assert_eq!(err(&["-p", "-1"]), "Invalid port given: -1");
    }

    #[test]
    fn accepted_like_mosquitto() {
        // A will QoS without a will topic is ignored; "abc" is QoS 0, "10x" keep alive 10.
        assert!(resolve(&["--will-qos", "1"]).is_ok());
        let r = resolve(&["-q", "abc", "-k", "10x"]).unwrap();
        assert_eq!(r.qos, QoS::AtMostOnce);
    }

    #[test]
    fn layouts_are_mosquittos() {
        let r = |e: UsageError, quiet| e.render("pub", quiet);
        assert_eq!(
            r(UsageError::new("x"), false).unwrap(),
            "Error: x\n\nUse 'mqtt pub --help' to see usage.\n"
        );
        assert_eq!(
            r(UsageError::spaced("x"), true).unwrap(),
            "Error: x\n\n\nUse 'mqtt pub --help' to see usage.\n"
        );
        assert_eq!(
            r(UsageError::with_layout("x", Layout::BlankFirst), true).unwrap(),
            "\nError: x\n"
        );
        assert_eq!(
            r(UsageError::with_layout("x", Layout::Setup), false).unwrap(),
            "Error: x\n"
        );
        assert_eq!(r(UsageError::with_layout("x", Layout::Setup), true), None);
        let layout = |args: &[&str]| resolve(args).unwrap_err().layout;
        assert_eq!(layout(&["-q", "3"]), Layout::Pointer);
        assert_eq!(layout(&["-k", "3"]), Layout::SpacedPointer);
        assert_eq!(layout(&["-i", ""]), Layout::Setup);
    }

    #[test]
    fn atoi_reads_numbers_as_c_does() {
        assert_eq!(atoi("42"), 42);
        assert_eq!(atoi("  -7"), -7);
        assert_eq!(atoi("+3"), 3);
        assert_eq!(atoi("10x"), 10);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi(""), 0);
        assert_eq!(atoi("2147483647"), i32::MAX);
        assert_eq!(atoi("2147483648"), i32::MIN);
        assert_eq!(atoi("4294967296"), 0);
        assert_eq!(atoi("18446744073709551615"), -1);
        assert_eq!(atoi("-99999999999999999999"), 0);
    }

    #[test]
    fn tls_files_must_exist() {
        let cli = ConnectionArgs {
            cafile: Some("/nonexistent/ca.pem".into()),
            ..ConnectionArgs::default()
        };
        let e = cli.check_tls_files(&FileDefaults::default()).unwrap_err();
        assert_eq!(e.message, "Problem setting TLS options: File not found.");
        assert_eq!(e.layout, Layout::Setup);
        assert!(
            ConnectionArgs::default()
                .check_tls_files(&FileDefaults::default())
                .is_ok()
        );
    }

    #[test]
    fn refusals_under_v5_exit_with_the_reason_code() {
        use mqtt_client::{Error, ReasonCode};
        let (lines, code) = connect_failure(
            &Error::Refused(ReasonCode::NotAuthorized),
            ProtocolVersion::V5,
        );
        assert_eq!(
            (lines, code),
            (vec!["Connection error: Not authorized".to_owned()], 135)
        );
        let (lines, code) = connect_failure(
            &Error::Refused(ReasonCode::NotAuthorized),
            ProtocolVersion::V3_1_1,
        );
        assert_eq!(
            (lines, code),
            (
                vec!["Connection error: Connection Refused: not authorised.".to_owned()],
                5
            )
        );
        assert_eq!(
            v5_refusal_text(ReasonCode::ClientIdentifierNotValid),
            "Client Identifier not valid"
        );
        assert_eq!(
            pub_refusal_line(ReasonCode::NotAuthorized, ProtocolVersion::V5),
            "Error: A network protocol error occurred when communicating with the broker."
        );
        assert_eq!(
            pub_refusal_line(ReasonCode::NotAuthorized, ProtocolVersion::V3_1_1),
            "Error: The connection was refused."
        );
    }

    #[test]
    fn defaults_and_layering() {
        let r = resolve(&[]).unwrap();
        assert_eq!((r.options.host(), r.options.port()), ("localhost", 1883));
        assert_eq!(r.qos, QoS::AtMostOnce);
        let file = FileDefaults::parse(
            "host = \"filehost\"\nport = 1999\nqos = 1\nprotocol-version = \"mqttv5\"\n",
        )
        .unwrap();
        let cli = ConnectionArgs {
            port: Some("2000".into()),
            ..ConnectionArgs::default()
        };
        let r = cli.resolve(&file).unwrap();
        // The flag wins over the file; the file wins over the default.
        assert_eq!((r.options.host(), r.options.port()), ("filehost", 2000));
        assert_eq!(r.qos, QoS::AtLeastOnce);
        let r = resolve(&["--cafile", "/ca.pem"]).unwrap();
        assert_eq!(r.options.port(), 8883);
    }

    #[test]
    fn a_bad_file_names_the_key() {
        let e = FileDefaults::parse("hots = \"x\"").unwrap_err();
        assert!(e.contains("hots"), "{e}");
        let e = FileDefaults::parse("port = \"x\"").unwrap_err();
        assert!(e.contains("port"), "{e}");
    }

    #[test]
    fn urls_carry_the_topic() {
        let r = resolve(&["-L", "mqtt://u:p@example.org:1999/a/b"]).unwrap();
        assert_eq!((r.options.host(), r.options.port()), ("example.org", 1999));
        assert_eq!(r.url_topic.as_deref(), Some("a/b"));
        assert_eq!(
            resolve(&["-L", "http://x/t"]).unwrap_err().message,
            "unsupported URL scheme."
        );
        let r = resolve(&["-L", "MQTT://example.org/t"]).unwrap();
        assert_eq!(r.url_topic.as_deref(), Some("t"));
        for url in ["mqtt://example.org", "mqtt://example.org/"] {
            assert_eq!(
                resolve(&["-L", url]).unwrap_err().message,
                "Invalid URL for -L argument specified - topic missing."
            );
        }
    }
}
