//! The options `mqtt pub` and `mqtt sub` share with `mosquitto_pub` and `mosquitto_sub`
//! (same letters, same meanings, same checks and messages), the defaults layered under them
//! (`~/.config/mqtt/config.toml` < `MQTT_*` environment < flags), and the mapping to the
//! client library's [`ConnectOptions`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};
use mqtt_client::{ConnectOptions, ProtocolVersion, QoS, TlsOptions};
use serde::Deserialize;

/// A mistake in the command line, reported as `mosquitto_pub`/`mosquitto_sub` do (`Error: …`
/// then a pointer to `--help`, exit status 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// Connection options common to `pub` and `sub`.
#[derive(Args, Debug, Clone, Default)]
pub struct ConnectionArgs {
    /// MQTT host to connect to [default: localhost].
    #[arg(short = 'h', long = "host", env = "MQTT_HOST")]
    pub host: Option<String>,
    /// Network port [default: 1883, or 8883 with TLS].
    #[arg(short = 'p', long = "port", env = "MQTT_PORT")]
    pub port: Option<String>,
    /// User, password, host, port and topic as one URL:
    /// `mqtt(s)://[username[:password]@]host[:port]/topic`.
    #[arg(short = 'L', long = "url")]
    pub url: Option<String>,
    /// Client id [default: assigned by the broker].
    #[arg(short = 'i', long = "id")]
    pub id: Option<String>,
    /// Client id prefix; the process id is appended.
    #[arg(short = 'I', long = "id-prefix", env = "MQTT_ID_PREFIX")]
    pub id_prefix: Option<String>,
    /// User name.
    #[arg(short = 'u', long = "username", env = "MQTT_USERNAME")]
    pub username: Option<String>,
    /// Password.
    #[arg(
        short = 'P',
        long = "pw",
        env = "MQTT_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Keep alive in seconds (5 to 65535) [default: 60].
    #[arg(short = 'k', long = "keepalive", env = "MQTT_KEEPALIVE")]
    pub keepalive: Option<String>,
    /// Disable clean session: the broker keeps the session (needs -i).
    #[arg(short = 'c', long = "disable-clean-session")]
    pub disable_clean_session: bool,
    /// Protocol version: mqttv31, mqttv311 or mqttv5 (also 31, 311, 5) [default: mqttv311].
    #[arg(short = 'V', long = "protocol-version", env = "MQTT_PROTOCOL_VERSION")]
    pub protocol_version: Option<String>,
    /// QoS (0, 1 or 2) [default: 0].
    #[arg(short = 'q', long = "qos", env = "MQTT_QOS")]
    pub qos: Option<String>,
    /// Will topic.
    #[arg(long = "will-topic")]
    pub will_topic: Option<String>,
    /// Will payload [default: empty].
    #[arg(long = "will-payload")]
    pub will_payload: Option<String>,
    /// Will QoS.
    #[arg(long = "will-qos")]
    pub will_qos: Option<String>,
    /// Retain the will.
    #[arg(long = "will-retain")]
    pub will_retain: bool,
    /// File of trusted CA certificates (PEM); turns TLS on.
    #[arg(long = "cafile", env = "MQTT_CAFILE")]
    pub cafile: Option<PathBuf>,
    /// Directory of trusted CA certificates (PEM); turns TLS on.
    #[arg(long = "capath", env = "MQTT_CAPATH")]
    pub capath: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long = "cert", env = "MQTT_CERT")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long = "key", env = "MQTT_KEY")]
    pub key: Option<PathBuf>,
    /// Do not check that the server certificate's name matches the host.
    #[arg(long = "insecure")]
    pub insecure: bool,
    /// Trust the operating system's CA certificates; turns TLS on.
    #[arg(long = "tls-use-os-certs")]
    pub tls_use_os_certs: bool,
    /// TLS ALPN protocol.
    #[arg(long = "tls-alpn")]
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
    /// The QoS of `-q`.
    pub qos: QoS,
    /// The topic given in a `-L` URL.
    pub url_topic: Option<String>,
    /// `--quiet`.
    pub quiet: bool,
    /// `-d`.
    pub debug: bool,
}

/// Parses a QoS the way Mosquitto's clients do.
pub fn parse_qos(text: &str, what: &str) -> Result<QoS, UsageError> {
    match text.trim().parse::<i64>() {
        Ok(0) => Ok(QoS::AtMostOnce),
        Ok(1) => Ok(QoS::AtLeastOnce),
        Ok(2) => Ok(QoS::ExactlyOnce),
        _ => Err(usage(format!("Invalid {what} given: {text}"))),
    }
}

fn parse_version(text: &str) -> Result<ProtocolVersion, UsageError> {
    match text {
        "mqttv31" | "31" => Ok(ProtocolVersion::V3_1),
        "mqttv311" | "311" => Ok(ProtocolVersion::V3_1_1),
        "mqttv5" | "5" => Ok(ProtocolVersion::V5),
        _ => Err(usage("Invalid protocol version argument given.")),
    }
}

impl ConnectionArgs {
    /// Checks the options and builds the client's, with `file` under them. `tool` names the
    /// command in messages (`pub`, `sub`).
    ///
    /// # Errors
    /// Mosquitto's message for the first invalid option.
    pub fn resolve(&self, file: &FileDefaults) -> Result<Resolved, UsageError> {
        let mut url_topic = None;
        let mut url_options = None;
        if let Some(url) = &self.url {
            let (options, topic) = parse_url(url)?;
            url_options = Some(options);
            url_topic = topic;
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
                    Some(text) => match text.parse::<u32>() {
                        Ok(p) if (1..=65535).contains(&p) => p as u16,
                        _ => return Err(usage(format!("Invalid port given: {text}"))),
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
            None => ProtocolVersion::V3_1_1,
        };
        options = options.protocol(version);

        let keepalive = match &self.keepalive {
            Some(text) => match text.parse::<u32>() {
                Ok(k) if (5..=65535).contains(&k) => k as u16,
                _ => {
                    return Err(usage(
                        "Invalid keepalive given, it must be between 5 and 65535 inclusive.",
                    ));
                }
            },
            None => file.keepalive.unwrap_or(60),
        };
        options = options.keep_alive(Duration::from_secs(keepalive.into()));

        let qos = match (&self.qos, file.qos) {
            (Some(text), _) => parse_qos(text, "QoS")?,
            (None, Some(q)) => parse_qos(&q.to_string(), "QoS")?,
            (None, None) => QoS::AtMostOnce,
        };

        if let Some(id) = &self.id {
            if id.is_empty() || id.len() > 65535 {
                return Err(usage("Invalid id."));
            }
            options = options.client_id(id.clone());
        } else if let Some(prefix) = self.id_prefix.as_ref().or(file.id_prefix.as_ref()) {
            options = options.client_id(format!("{prefix}{}", std::process::id()));
        }
        if self.disable_clean_session {
            if self.id.is_none() {
                return Err(usage(
                    "You must provide a client id if you are using the -c option.",
                ));
            }
            options = options.clean_session(false);
        }

        let username = self.username.clone().or_else(|| file.username.clone());
        let password = self.password.clone().or_else(|| file.password.clone());
        match (username, password) {
            (Some(user), password) => options = options.credentials(user, password),
            (None, Some(_)) if self.url.is_none() => {
                return Err(usage(
                    "You must provide a username if you provide a password.",
                ));
            }
            _ => {}
        }

        if let Some(topic) = &self.will_topic {
            let will_qos = match &self.will_qos {
                Some(text) => parse_qos(text, "will QoS")?,
                None => QoS::AtMostOnce,
            };
            if mqtt_client::TopicName::try_from(topic.as_str()).is_err() {
                return Err(usage(format!(
                    "Invalid will topic '{topic}', does it contain '+' or '#'?"
                )));
            }
            options = options.will(
                topic.clone(),
                self.will_payload.clone().unwrap_or_default(),
                will_qos,
                self.will_retain,
            );
        } else if self.will_payload.is_some() || self.will_qos.is_some() || self.will_retain {
            return Err(usage(
                "Will payload, QoS or retain given, but no will topic given.",
            ));
        }

        if tls_wanted || self.cert.is_some() || self.key.is_some() {
            options = options.tls(self.tls(file)?);
        }
        Ok(Resolved {
            options,
            qos,
            url_topic,
            quiet: self.quiet,
            debug: self.debug,
        })
    }

    fn tls(&self, file: &FileDefaults) -> Result<TlsOptions, UsageError> {
        let mut tls = TlsOptions::new();
        if let Some(ca) = self.cafile.as_ref().or(file.cafile.as_ref()) {
            tls = tls.ca_file(ca.clone());
        }
        if let Some(dir) = self.capath.as_ref().or(file.capath.as_ref()) {
            tls = tls.ca_path(dir.clone());
        }
        let cert = self.cert.as_ref().or(file.cert.as_ref());
        let key = self.key.as_ref().or(file.key.as_ref());
        match (cert, key) {
            (Some(cert), Some(key)) => tls = tls.client_auth(cert.clone(), key.clone()),
            (Some(_), None) => {
                return Err(usage(
                    "If the --cert argument is given, --key must also be given.",
                ));
            }
            (None, Some(_)) => {
                return Err(usage(
                    "If the --key argument is given, --cert must also be given.",
                ));
            }
            (None, None) => {}
        }
        if self.insecure || file.insecure == Some(true) {
            tls = tls.insecure_skip_hostname(true);
        }
        if let Some(alpn) = &self.tls_alpn {
            tls = tls.alpn([alpn.as_bytes().to_vec()]);
        }
        Ok(tls)
    }
}

/// Splits `mqtt(s)://[user[:password]@]host[:port]/topic` into the client's options and the
/// topic.
fn parse_url(url: &str) -> Result<(ConnectOptions, Option<String>), UsageError> {
    let invalid = || usage("Unsupported URL scheme.");
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    if !matches!(scheme, "mqtt" | "mqtts") {
        return Err(invalid());
    }
    let (authority, topic) = match rest.split_once('/') {
        Some((a, t)) if !t.is_empty() => (a, Some(t.to_owned())),
        Some((a, _)) => (a, None),
        None => (rest, None),
    };
    let options = ConnectOptions::from_url(&format!("{scheme}://{authority}"))
        .map_err(|e| usage(e.to_string()))?;
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

/// The message Mosquitto's clients print for a refused connection, without the trailing
/// period.
pub fn refusal_text(code: mqtt_client::ReasonCode) -> String {
    use mqtt_client::ReasonCode as R;
    match code {
        R::UnsupportedProtocolVersion => "Connection Refused: unacceptable protocol version".into(),
        R::ClientIdentifierNotValid => "Connection Refused: identifier rejected".into(),
        R::ServerUnavailable => "Connection Refused: broker unavailable".into(),
        R::BadUserNameOrPassword => "Connection Refused: bad user name or password".into(),
        R::NotAuthorized => "Connection Refused: not authorised".into(),
        other => format!("Connection Refused: {other:?}"),
    }
}

/// How a failed connection is reported: the lines for stderr and the exit status.
pub fn connect_failure(error: &mqtt_client::Error) -> (Vec<String>, u8) {
    use mqtt_client::{ConnectionError, Error};
    match error {
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
        let err = |args: &[&str]| resolve(args).unwrap_err().0;
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
        assert!(err(&["--cert", "c.pem"]).contains("--key must also be given"));
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
            resolve(&["-L", "http://x/t"]).unwrap_err().0,
            "Unsupported URL scheme."
        );
    }
}
