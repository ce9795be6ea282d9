//! Loading the [`Config`] from its layers: defaults < TOML file < `MQTT_*` environment variables <
//! command-line flags, then [`Config::validate`].
//!
//! Every key is checked as soon as a layer sets it, so an error names the key *and* where the bad
//! value came from (`file.toml:3`, `environment variable MQTT_PORT`, `flag --set`). The layers are
//! merged as TOML tables and deserialized once at the end, so a key means the same thing in every
//! layer.
//!
//! This module reads the file it is given and the environment through the function it is given;
//! it does not parse the command line (the binary does, and hands over [`Flags`]).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::config::Config;

/// Every configuration key, in the order of [`Config`]'s fields, with the comment written above it
/// in the generated default file. A test checks that this list matches the fields exactly.
const KEYS: &[(&str, &str)] = &[
    (
        "bind",
        "Address to listen on. The default, 127.0.0.1, accepts connections from this machine only;\n\
         use 0.0.0.0 (or ::) to listen on every interface.",
    ),
    ("port", "TCP port to listen on."),
    (
        "max_connections",
        "Most simultaneous client connections; further connections are closed at once.",
    ),
    (
        "max_packet_size",
        "Largest packet accepted from a client, in bytes, fixed header included (at least 64).",
    ),
    (
        "connect_timeout_secs",
        "Seconds a new connection has to send CONNECT before it is closed.",
    ),
    (
        "max_keepalive_secs",
        "Largest keep alive accepted, in seconds. MQTT 3.x clients asking for more (or for 0,\n\
         \"no limit\") are refused with \"identifier rejected\", as Mosquitto does; MQTT 5\n\
         clients are told to use this value instead (Server Keep Alive).",
    ),
    (
        "max_client_id_len",
        "Longest client identifier accepted, in bytes (MQTT 3.1 caps it at 23 regardless).",
    ),
    (
        "max_inflight",
        "Unacknowledged QoS 1 and 2 messages in flight to one client; the rest wait in its queue.",
    ),
    (
        "max_queued_messages",
        "Messages queued for one session, online (behind the in-flight window) or offline.",
    ),
    (
        "max_queued_bytes",
        "Bytes of payload queued for one session.",
    ),
    (
        "queue_qos0_offline",
        "Whether QoS 0 messages are queued for offline persistent sessions.",
    ),
    (
        "max_incoming_qos2",
        "QoS 2 messages received from one client and not yet released (PUBREL); more is a\n\
         protocol violation that closes the connection.",
    ),
    ("max_topic_levels", "Most levels in a topic name or filter."),
    (
        "max_subscriptions_per_session",
        "Most subscriptions one session may hold; further subscriptions are refused (0x80).",
    ),
    (
        "sys_interval_secs",
        "Seconds between $SYS/broker/... updates; 0 turns them off.",
    ),
    ("retain_available", "Whether retained messages are stored."),
    (
        "worker_threads",
        "Runtime worker threads (at most 1024); 0 starts one per CPU core.",
    ),
    (
        "max_qos",
        "Highest QoS accepted and granted (0, 1 or 2). MQTT 5 clients are told in CONNACK; a\n\
         PUBLISH above it is refused (DISCONNECT 0x9B); subscriptions are granted at most this.",
    ),
    (
        "max_topic_alias",
        "MQTT 5: most topic aliases in each direction: those a client may use, and those the\n\
         broker uses towards a client that allows them; 0 turns aliases off.",
    ),
    (
        "validate_utf8_payload",
        "MQTT 5: whether payloads marked as UTF-8 are checked (refused with 0x99 if not).",
    ),
    (
        "wildcard_subscription_available",
        "Whether subscriptions with + or # are accepted (refused with 0xA2 otherwise).",
    ),
    (
        "subscription_identifier_available",
        "MQTT 5: whether subscription identifiers are accepted (DISCONNECT 0xA1 otherwise).",
    ),
    (
        "shared_subscription_available",
        "Whether $share/{group}/{filter} subscriptions are accepted (0x9E otherwise).",
    ),
    (
        "max_session_expiry_secs",
        "Longest session expiry granted, in seconds (MQTT 5 clients are told in CONNACK; MQTT 3\n\
         persistent sessions expire after it). 4294967295: no limit.",
    ),
    (
        "response_information",
        "MQTT 5: when not empty, a client asking for Response Information gets this prefix\n\
         followed by its client identifier.",
    ),
    (
        "server_reference",
        "MQTT 5: when not empty, every connection is refused and redirected to this server\n\
         (CONNACK 0x9C \"use another server\", or 0x9D with server_moved).",
    ),
    (
        "server_moved",
        "MQTT 5: whether the redirection to server_reference is permanent (0x9D).",
    ),
    (
        "scram_users_file",
        "MQTT 5: when not empty, a file of SCRAM-SHA-256 credentials, one\n\
         user:SCRAM-SHA-256$... line each (mqtt-broker scram-credential USER writes one):\n\
         enhanced authentication with the method SCRAM-SHA-256 is offered.",
    ),
    (
        "persistence",
        "Whether persistent sessions, their queued and in-flight messages and the retained\n\
         messages are kept on disk in data_dir, and survive a restart or a crash (kill -9).",
    ),
    (
        "data_dir",
        "The data directory of the durable store (created with mode 0700 if missing; relative\n\
         to the working directory). One broker at a time: it is locked while in use.",
    ),
    (
        "sync",
        "When the store syncs to disk, and so when acknowledgements go out:\n\
         \"always\": each write is synced at once, and a PUBACK/PUBREC waits for its sync;\n\
         \"batch\": writes are gathered for sync_batch_ms, then synced together, and a\n\
         PUBACK/PUBREC still waits for its batch (nothing acknowledged is lost);\n\
         \"never\": no sync and no waiting: a crash may lose what the last few milliseconds\n\
         brought, a power loss what the operating system had not written.",
    ),
    (
        "sync_batch_ms",
        "With sync = \"batch\": milliseconds writes are gathered before one sync (1 to 1000).",
    ),
    (
        "listener",
        "Listeners, each a [[listener]] table (empty: one plain MQTT listener on bind:port).\n\
         Keys of a listener: port; bind (absent: every interface); protocol (\"mqtt\" or\n\
         \"websockets\"); path (WebSocket path, default \"/mqtt\"); certfile and keyfile (PEM:\n\
         TLS); cafile (PEM CA certificates for client certificates); require_certificate;\n\
         use_identity_as_username (the client certificate's Common Name is the user name);\n\
         max_connections (this listener's own limit). For example:\n\
         [[listener]]\n\
         port = 8883\n\
         certfile = \"server.crt\"\n\
         keyfile = \"server.key\"\n\
         SIGHUP reloads the certificates and keys (a file that fails keeps the old ones).",
    ),
];

/// The prefix of the environment variables: `MQTT_PORT` sets `port`.
pub const ENV_PREFIX: &str = "MQTT_";

/// The command-line flags that change the configuration (the top layer). The binary parses the
/// command line; this is what it hands over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `-p/--port PORT`: sets `port`.
    pub port: Option<u16>,
    /// `--bind ADDR`: sets `bind`.
    pub bind: Option<IpAddr>,
    /// `--set KEY=VALUE`, in command-line order (a later one wins). The value is read like an
    /// environment variable's. `--port` and `--bind` win over `--set port=…` and `--set bind=…`.
    pub set: Vec<String>,
    /// `--persistence`: sets `persistence` to true.
    pub persistence: bool,
    /// `--data-dir DIR`: sets `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `--sync always|batch|never`: sets `sync`.
    pub sync: Option<String>,
}

/// Where a configuration value came from; used to say where an error is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The configuration file, and the line of the key if known.
    File {
        /// The file as given on the command line.
        path: PathBuf,
        /// 1-based line number.
        line: Option<usize>,
    },
    /// An environment variable.
    Env {
        /// Its name, e.g. `MQTT_PORT`.
        var: String,
    },
    /// A command-line flag.
    Flag {
        /// Its long name, e.g. `--set`.
        flag: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File {
                path,
                line: Some(line),
            } => write!(f, "{}:{line}", path.display()),
            Self::File { path, line: None } => write!(f, "{}", path.display()),
            Self::Env { var } => write!(f, "environment variable {var}"),
            Self::Flag { flag } => write!(f, "flag {flag}"),
        }
    }
}

/// Why the configuration could not be loaded. The message says where (file and line, variable or
/// flag) and, whenever a key is involved, names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The file as given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML.
    #[error("{origin}: invalid TOML: {message}")]
    Syntax {
        /// The file, with the line of the error if known.
        origin: Origin,
        /// What the TOML parser said.
        message: String,
    },
    /// A key is unknown, has a value of the wrong type, or a value out of range.
    #[error("{origin}: invalid configuration key `{key}`: {message}")]
    Key {
        /// Where the value was set.
        origin: Origin,
        /// The key (its TOML name).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A `--set` argument is not of the form `KEY=VALUE`.
    #[error("flag {flag}: expected KEY=VALUE, got `{value}`")]
    Flag {
        /// The flag, e.g. `--set`.
        flag: String,
        /// The argument as given.
        value: String,
    },
}

impl LoadError {
    /// The configuration key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Key { key, .. } => Some(key),
            Self::Read { .. } | Self::Syntax { .. } | Self::Flag { .. } => None,
        }
    }
}

/// Reads an environment variable of this process, for [`load`]. A value that is not valid
/// Unicode is passed on lossily, so that it is reported as a bad value rather than ignored.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// Loads the configuration: defaults, then the TOML `file` if given, then every `MQTT_<KEY>`
/// variable that `env` returns, then `flags`; and validates the result.
///
/// `env` looks a variable up by name; pass [`process_env`] for the real environment.
///
/// # Errors
/// A [`LoadError`] for an unreadable or malformed file, an unknown key, a value of the wrong
/// type, or a value [`Config::validate`] refuses; it names the key and where it was set.
pub fn load(
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &Flags,
) -> Result<Config, LoadError> {
    let text = match file {
        Some(path) => Some(
            std::fs::read_to_string(path).map_err(|source| LoadError::Read {
                path: path.to_owned(),
                source,
            })?,
        ),
        None => None,
    };
    let file = match (file, &text) {
        (Some(path), Some(text)) => Some((path, text.as_str())),
        _ => None,
    };
    load_layers(file, env, flags)
}

/// The documented default configuration file: every key with its default value and a comment
/// saying what it means. It parses back to [`Config::default`].
pub fn generate_default() -> String {
    let defaults = default_table();
    let mut out = String::from(
        "# mqtt-broker configuration file (generated by `mqtt-broker generate-config`).\n\
         #\n\
         # Every key is optional: a missing key keeps the default value shown here.\n\
         # A key can also be set with an environment variable MQTT_<KEY> (e.g. MQTT_PORT=1884)\n\
         # or with the flag --set KEY=VALUE (-p/--port and --bind for the listener).\n\
         # Flags win over the environment, which wins over this file.\n",
    );
    for (key, comment) in KEYS {
        let Some(value) = defaults.get(*key) else {
            continue;
        };
        out.push('\n');
        for line in comment.lines() {
            out.push_str("# ");
            out.push_str(line.trim());
            out.push('\n');
        }
        out.push_str(&format!("{key} = {value}\n"));
    }
    out
}

/// The effective configuration as a TOML document, one key per line in field order.
pub fn print_config(config: &Config) -> String {
    toml::to_string(config).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
}

/// The default configuration as a TOML table: the set of known keys and the type of each.
fn default_table() -> Table {
    // Serializing a `Config` cannot fail (every field is a plain scalar); a test checks that the
    // table has every key.
    Table::try_from(Config::default()).unwrap_or_default()
}

/// The values set by the layers so far, each with where it was set.
#[derive(Default)]
struct Layers {
    values: Table,
    origins: Vec<(String, Origin)>,
}

impl Layers {
    /// Checks `value` for `key` on its own and records it, replacing a lower layer's value.
    fn set(
        &mut self,
        defaults: &Table,
        key: &str,
        value: Value,
        origin: Origin,
    ) -> Result<(), LoadError> {
        if !defaults.contains_key(key) {
            let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
            return Err(LoadError::Key {
                origin,
                key: key.to_owned(),
                message: format!("unknown key (known keys: {})", known.join(", ")),
            });
        }
        let mut single = Table::new();
        single.insert(key.to_owned(), value.clone());
        if let Err(e) = single.try_into::<Config>() {
            return Err(LoadError::Key {
                origin,
                key: key.to_owned(),
                message: e.message().trim_end().to_owned(),
            });
        }
        self.values.insert(key.to_owned(), value);
        self.origins.retain(|(k, _)| k != key);
        self.origins.push((key.to_owned(), origin));
        Ok(())
    }

    /// Where `key` was last set.
    fn origin(&self, key: &str) -> Origin {
        self.origins
            .iter()
            .find(|(k, _)| k == key)
            .map_or(Origin::Default, |(_, o)| o.clone())
    }
}

/// [`load`] with the file already read: `file` is its path (for messages) and text.
fn load_layers(
    file: Option<(&Path, &str)>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &Flags,
) -> Result<Config, LoadError> {
    let defaults = default_table();
    let mut layers = Layers::default();

    if let Some((path, text)) = file {
        for (key, value, line) in parse_file(path, text)? {
            let origin = Origin::File {
                path: path.to_owned(),
                line: Some(line),
            };
            layers.set(&defaults, &key, value, origin)?;
        }
    }

    for (key, _) in KEYS {
        let var = format!("{ENV_PREFIX}{}", key.to_ascii_uppercase());
        if let Some(raw) = env(&var) {
            let value = parse_value(&defaults, key, &raw);
            layers.set(&defaults, key, value, Origin::Env { var })?;
        }
    }

    let set_flag = || Origin::Flag {
        flag: "--set".into(),
    };
    for arg in &flags.set {
        let Some((key, raw)) = arg.split_once('=') else {
            return Err(LoadError::Flag {
                flag: "--set".into(),
                value: arg.clone(),
            });
        };
        let key = key.trim();
        let value = parse_value(&defaults, key, raw);
        layers.set(&defaults, key, value, set_flag())?;
    }
    if let Some(port) = flags.port {
        let origin = Origin::Flag {
            flag: "--port".into(),
        };
        layers.set(&defaults, "port", Value::Integer(i64::from(port)), origin)?;
    }
    if let Some(bind) = flags.bind {
        let origin = Origin::Flag {
            flag: "--bind".into(),
        };
        layers.set(&defaults, "bind", Value::String(bind.to_string()), origin)?;
    }
    if flags.persistence {
        let origin = Origin::Flag {
            flag: "--persistence".into(),
        };
        layers.set(&defaults, "persistence", Value::Boolean(true), origin)?;
    }
    if let Some(dir) = &flags.data_dir {
        let origin = Origin::Flag {
            flag: "--data-dir".into(),
        };
        let dir = Value::String(dir.to_string_lossy().into_owned());
        layers.set(&defaults, "data_dir", dir, origin)?;
    }
    if let Some(sync) = &flags.sync {
        let origin = Origin::Flag {
            flag: "--sync".into(),
        };
        layers.set(&defaults, "sync", Value::String(sync.clone()), origin)?;
    }

    // Every value was checked on its own and the fields are independent, so this succeeds;
    // should it not, the error still names a key.
    let config: Config = layers
        .values
        .clone()
        .try_into()
        .map_err(|e| LoadError::Key {
            origin: Origin::Default,
            key: "(all)".into(),
            message: e.message().trim_end().to_owned(),
        })?;
    config.validate().map_err(|e| LoadError::Key {
        origin: layers.origin(&e.key),
        key: e.key,
        message: e.message,
    })?;
    Ok(config)
}

/// Parses the file into its top-level keys, values and 1-based lines, in document order.
fn parse_file(path: &Path, text: &str) -> Result<Vec<(String, Value, usize)>, LoadError> {
    let syntax = |e: toml::de::Error| LoadError::Syntax {
        origin: Origin::File {
            path: path.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)),
        },
        message: e.message().trim_end().to_owned(),
    };
    let document = toml::de::DeTable::parse(text).map_err(syntax)?;
    let mut entries = Vec::new();
    for (key, value) in document.into_inner() {
        let start = key.span().start;
        let value = {
            use serde::Deserialize as _;
            use serde::de::IntoDeserializer as _;
            Value::deserialize(value.into_deserializer()).map_err(syntax)?
        };
        entries.push((start, key.into_inner().into_owned(), value));
    }
    entries.sort_by_key(|(start, _, _)| *start);
    Ok(entries
        .into_iter()
        .map(|(start, key, value)| (key, value, line_of(text, start)))
        .collect())
}

/// The 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    let before = text.get(..at).unwrap_or(text);
    before.bytes().filter(|b| *b == b'\n').count() + 1
}

/// Reads an environment or `--set` value for `key`: as a string if the key's default is one
/// (so `MQTT_BIND=::1` is an address), else as a TOML value if it is one (`1884`, `true`),
/// else as a string (so the type error quotes it).
fn parse_value(defaults: &Table, key: &str, raw: &str) -> Value {
    if matches!(defaults.get(key), Some(Value::String(_))) {
        return Value::String(raw.to_owned());
    }
    raw.trim()
        .parse::<Value>()
        .unwrap_or_else(|_| Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn from_file(text: &str) -> Result<Config, LoadError> {
        load_layers(
            Some((Path::new("broker.toml"), text)),
            &no_env,
            &Flags::default(),
        )
    }

    #[test]
    fn nothing_set_is_the_default() {
        let config = load_layers(None, &no_env, &Flags::default()).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn layers_apply_in_order_file_env_flags() {
        let file = "port = 1000\nmax_inflight = 5\nmax_topic_levels = 7\nbind = \"0.0.0.0\"\n";
        let env = env_of(&[
            ("MQTT_PORT", "2000"),
            ("MQTT_MAX_INFLIGHT", "6"),
            ("MQTT_QUEUE_QOS0_OFFLINE", "true"),
            ("MQTT_BIND", "::1"),
        ]);
        let flags = Flags {
            port: Some(3000),
            bind: None,
            set: vec!["max_inflight=9".into(), "retain_available=false".into()],
            ..Flags::default()
        };
        let config = load_layers(Some((Path::new("f.toml"), file)), &env, &flags).unwrap();
        assert_eq!(config.port, 3000, "flag beats env beats file");
        assert_eq!(config.max_inflight, 9, "--set beats env");
        assert_eq!(
            config.bind,
            "::1".parse::<IpAddr>().unwrap(),
            "env beats file"
        );
        assert_eq!(config.max_topic_levels, 7, "file beats default");
        assert!(config.queue_qos0_offline);
        assert!(!config.retain_available);
        assert_eq!(config.max_connections, Config::default().max_connections);
    }

    #[test]
    fn port_and_bind_flags_beat_set() {
        let flags = Flags {
            port: Some(1999),
            bind: Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            set: vec!["port=1".into(), "bind=10.0.0.1".into()],
            ..Flags::default()
        };
        let config = load_layers(None, &no_env, &flags).unwrap();
        assert_eq!(config.port, 1999);
        assert_eq!(config.bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn unknown_file_key_is_named_with_its_line() {
        let err = from_file("port = 1884\n\nmax_inflite = 3\n").unwrap_err();
        assert_eq!(err.key(), Some("max_inflite"));
        let msg = err.to_string();
        assert!(
            msg.starts_with("broker.toml:3: invalid configuration key `max_inflite`: unknown key"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_table_is_named() {
        let err = from_file("[listener]\nport = 1\n").unwrap_err();
        assert_eq!(err.key(), Some("listener"));
        assert!(err.to_string().starts_with("broker.toml:1:"), "{err}");
    }

    #[test]
    fn wrong_type_in_file_is_named_with_its_line() {
        let err = from_file("port = 1884\nmax_inflight = \"x\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "broker.toml:2: invalid configuration key `max_inflight`: \
             invalid type: string \"x\", expected u16"
        );
    }

    #[test]
    fn out_of_range_and_bad_address_in_file_are_named() {
        let err = from_file("port = 70000\n").unwrap_err();
        assert_eq!(err.key(), Some("port"));
        let err = from_file("bind = \"localhost:1883\"\n").unwrap_err();
        assert_eq!(err.key(), Some("bind"));
    }

    #[test]
    fn first_error_in_document_order_is_reported() {
        // `zzz` sorts last but comes first in the file.
        let err = from_file("zzz = 1\nbind = 3\n").unwrap_err();
        assert_eq!(err.key(), Some("zzz"));
    }

    #[test]
    fn syntax_error_gives_file_and_line() {
        let err = from_file("port = 1884\nmax_inflight = = 3\n").unwrap_err();
        assert!(matches!(err, LoadError::Syntax { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("broker.toml:2: invalid TOML"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_key_is_a_syntax_error() {
        let err = from_file("port = 1\nport = 2\n").unwrap_err();
        assert!(matches!(err, LoadError::Syntax { .. }), "{err:?}");
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let err =
            load_layers(None, &env_of(&[("MQTT_PORT", "abc")]), &Flags::default()).unwrap_err();
        assert_eq!(err.key(), Some("port"));
        assert_eq!(
            err.to_string(),
            "environment variable MQTT_PORT: invalid configuration key `port`: \
             invalid type: string \"abc\", expected u16"
        );
        let err = load_layers(
            None,
            &env_of(&[("MQTT_RETAIN_AVAILABLE", "yes")]),
            &Flags::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("MQTT_RETAIN_AVAILABLE"), "{err}");
    }

    #[test]
    fn env_values_keep_their_meaning() {
        let env = env_of(&[("MQTT_BIND", "0.0.0.0"), ("MQTT_MAX_QUEUED_BYTES", "4096")]);
        let config = load_layers(None, &env, &Flags::default()).unwrap();
        assert_eq!(config.bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(config.max_queued_bytes, 4096);
    }

    #[test]
    fn bad_set_flags_are_named() {
        let flags = |arg: &str| Flags {
            set: vec![arg.into()],
            ..Flags::default()
        };
        let err = load_layers(None, &no_env, &flags("max_inflight")).unwrap_err();
        assert!(matches!(err, LoadError::Flag { .. }), "{err:?}");
        let err = load_layers(None, &no_env, &flags("nope=1")).unwrap_err();
        assert_eq!(err.key(), Some("nope"));
        assert!(err.to_string().starts_with("flag --set: "), "{err}");
        let err = load_layers(None, &no_env, &flags("max_inflight=x")).unwrap_err();
        assert_eq!(err.key(), Some("max_inflight"));
    }

    #[test]
    fn validation_error_names_the_key_and_where_it_was_set() {
        let err = from_file("\nmax_inflight = 0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "broker.toml:2: invalid configuration key `max_inflight`: must be at least 1"
        );
        let env = env_of(&[("MQTT_MAX_PACKET_SIZE", "10")]);
        let err = load_layers(None, &env, &Flags::default()).unwrap_err();
        assert_eq!(err.key(), Some("max_packet_size"));
        assert!(
            err.to_string()
                .starts_with("environment variable MQTT_MAX_PACKET_SIZE")
        );
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let path = std::env::temp_dir().join("mqtt-broker-load-test-does-not-exist.toml");
        let err = load(Some(&path), &no_env, &Flags::default()).unwrap_err();
        assert!(matches!(err, LoadError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("does-not-exist"), "{err}");
    }

    #[test]
    fn keys_list_matches_config_fields() {
        let fields: Vec<String> = default_table().keys().cloned().collect();
        let mut listed: Vec<String> = KEYS.iter().map(|(k, _)| (*k).to_owned()).collect();
        listed.sort();
        assert_eq!(listed, fields);
        // And in field order, as `print_config` writes them.
        let printed = print_config(&Config::default());
        let printed: Vec<&str> = printed
            .lines()
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
            .collect();
        let ordered: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        assert_eq!(printed, ordered);
    }

    #[test]
    fn generated_default_round_trips_and_documents_every_key() {
        let text = generate_default();
        let parsed: Config = toml::from_str(&text).unwrap();
        assert_eq!(parsed, Config::default());
        assert_eq!(from_file(&text).unwrap(), Config::default());
        for (key, _) in KEYS {
            let at = text
                .lines()
                .position(|l| l.starts_with(&format!("{key} = ")))
                .unwrap_or_else(|| panic!("{key} missing"));
            let above = text.lines().nth(at - 1).unwrap();
            assert!(above.starts_with("# "), "{key} has no comment");
        }
    }

    #[test]
    fn printed_config_round_trips() {
        let config = Config {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 8883,
            max_inflight: 3,
            queue_qos0_offline: true,
            sys_interval_secs: 0,
            ..Config::default()
        };
        let text = print_config(&config);
        assert!(text.contains("port = 8883\n"), "{text}");
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), config);
        assert_eq!(from_file(&text).unwrap(), config);
    }
}
