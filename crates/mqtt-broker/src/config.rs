//! The broker's configuration: typed, with safe defaults (no "0 means unlimited"), validated
//! before use. Loading it from a TOML file, `MQTT_*` environment variables and command-line
//! flags lives in `load.rs`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use mqtt_session::store::SyncPolicy;
use serde::{Deserialize, Serialize};

/// The most runtime worker threads `worker_threads` may ask for.
pub const MAX_WORKER_THREADS: usize = 1024;

/// Everything the broker can be told. Every field has a default (see [`Config::default`]), so an
/// empty file is a valid configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1`: without a configuration the broker is only
    /// reachable from this machine, as Mosquitto 2 does.
    pub bind: IpAddr,
    /// TCP port. Default 1883.
    pub port: u16,
    /// Most simultaneous client connections; further connections are closed at once.
    pub max_connections: usize,
    /// Largest packet accepted from a client, in bytes (fixed header included).
    pub max_packet_size: u32,
    /// Seconds a new connection has to send CONNECT.
    pub connect_timeout_secs: u64,
    /// Largest keep alive accepted, in seconds; MQTT 3.x clients asking for more (or for 0,
    /// which means "no limit") are refused with "identifier rejected", as Mosquitto does, and
    /// MQTT 5.0 clients are told to use it (Server Keep Alive).
    pub max_keepalive_secs: u16,
    /// Longest client identifier accepted, in bytes (MQTT 3.1 caps it at 23 regardless).
    pub max_client_id_len: usize,
    /// Unacknowledged QoS 1 and 2 messages in flight to one client; the rest wait in its queue.
    pub max_inflight: u16,
    /// Messages queued for one session (online behind the in-flight window, or offline).
    pub max_queued_messages: usize,
    /// Bytes of payload queued for one session.
    pub max_queued_bytes: usize,
    /// Whether QoS 0 messages are queued for offline persistent sessions.
    pub queue_qos0_offline: bool,
    /// QoS 2 messages received from one client and not yet released (PUBREL); more is a
    /// protocol violation that closes the connection.
    pub max_incoming_qos2: usize,
    /// Most levels in a topic name or filter.
    pub max_topic_levels: usize,
    /// Most subscriptions one session may hold; more are refused (0x80).
    pub max_subscriptions_per_session: usize,
    /// Seconds between `$SYS/broker/...` updates; 0 turns them off.
    pub sys_interval_secs: u64,
    /// Whether retained messages are stored.
    pub retain_available: bool,
    /// Runtime worker threads (at most [`MAX_WORKER_THREADS`]); 0 (the default) starts one per
    /// CPU core.
    pub worker_threads: usize,
    /// Highest QoS accepted and granted (0, 1 or 2). 5.0 clients are told in CONNACK; a
    /// PUBLISH above it is refused (DISCONNECT 0x9B), subscriptions are granted at most this.
    pub max_qos: u8,
    /// (5.0) Topic aliases in each direction: the highest a client may use (the Topic Alias
    /// Maximum in CONNACK), and the most the broker assigns towards a client that allows
    /// them; 0: none.
    pub max_topic_alias: u16,
    /// (5.0) Whether payloads marked as UTF-8 are checked (0x99 when they are not).
    pub validate_utf8_payload: bool,
    /// Whether subscriptions with `+` or `#` are accepted (refused with 0xA2 otherwise).
    pub wildcard_subscription_available: bool,
    /// (5.0) Whether subscription identifiers are accepted (a SUBSCRIBE with one is a
    /// protocol error, DISCONNECT 0xA1, otherwise).
    pub subscription_identifier_available: bool,
    /// Whether `$share/{group}/{filter}` subscriptions are accepted (0x9E otherwise).
    pub shared_subscription_available: bool,
    /// Longest session expiry granted, in seconds; a 5.0 client asking for more is told this
    /// value in CONNACK, and a 3.x persistent session expires after it. 4294967295: no limit.
    pub max_session_expiry_secs: u32,
    /// (5.0) When not empty, a client that asks for Response Information gets this prefix
    /// followed by its client identifier, a topic it may use for responses.
    pub response_information: String,
    /// (5.0) When not empty, every connection is refused and redirected to this server
    /// (CONNACK 0x9C "use another server", or 0x9D with `server_moved`).
    pub server_reference: String,
    /// (5.0) Whether the redirection to `server_reference` is permanent (0x9D).
    pub server_moved: bool,
    /// (5.0) When not empty, the file of SCRAM-SHA-256 credentials (`user:SCRAM-SHA-256$...`
    /// lines, written by `mqtt-broker scram-credential USER`): enhanced authentication with
    /// the method `SCRAM-SHA-256` is offered.
    pub scram_users_file: String,
    /// Whether persistent sessions, their messages and the retained messages are kept on disk
    /// (in `data_dir`) and survive a restart, a crash included.
    pub persistence: bool,
    /// The data directory of the durable store (created if missing; relative paths are from
    /// the working directory).
    pub data_dir: String,
    /// When the store syncs to disk, and so when acknowledgements go out: `always`, `batch`
    /// (group commit every `sync_batch_ms`) or `never` (see docs/broker.md for each one's
    /// loss window).
    #[serde(with = "sync_policy")]
    pub sync: SyncPolicy,
    /// With `sync = "batch"`: milliseconds records are gathered before one sync.
    pub sync_batch_ms: u64,
    /// The listeners (`[[listener]]` tables in the file). None (the default): one plain MQTT
    /// listener on `bind`:`port`.
    pub listener: Vec<ListenerConfig>,
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    /// MQTT over TCP (or TLS).
    #[default]
    Mqtt,
    /// MQTT over WebSocket (or WebSocket over TLS), with the `mqtt` subprotocol.
    Websockets,
}

/// One listener: a port, an address, a transport and its limits. Keys are Mosquitto's where
/// Mosquitto has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerConfig {
    /// TCP port.
    pub port: u16,
    /// Address to listen on; absent: every interface (as Mosquitto's `listener PORT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<IpAddr>,
    /// `mqtt` or `websockets`.
    pub protocol: ListenerProtocol,
    /// With `websockets`: the HTTP path of the WebSocket (others get 404).
    pub path: String,
    /// The server's certificate chain (PEM): TLS when set, with `keyfile`.
    pub certfile: String,
    /// The server's private key (PEM).
    pub keyfile: String,
    /// CA certificates (PEM) that client certificates must chain to.
    pub cafile: String,
    /// Whether clients must present a certificate signed by `cafile`.
    pub require_certificate: bool,
    /// Whether the Common Name of the client's certificate is its user name (replacing the
    /// CONNECT's); needs `require_certificate`.
    pub use_identity_as_username: bool,
    /// Most simultaneous connections on this listener; absent: only `max_connections`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            port: 1883,
            bind: None,
            protocol: ListenerProtocol::Mqtt,
            path: "/mqtt".into(),
            certfile: String::new(),
            keyfile: String::new(),
            cafile: String::new(),
            require_certificate: false,
            use_identity_as_username: false,
            max_connections: None,
        }
    }
}

impl ListenerConfig {
    /// The address to listen on.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(
            self.bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            self.port,
        )
    }

    /// Whether the listener speaks TLS.
    pub fn tls(&self) -> bool {
        !self.certfile.is_empty()
    }

    /// What a log line calls it: `mqtt`, `mqtts`, `ws` or `wss`.
    pub fn scheme(&self) -> &'static str {
        match (self.protocol, self.tls()) {
            (ListenerProtocol::Mqtt, false) => "mqtt",
            (ListenerProtocol::Mqtt, true) => "mqtts",
            (ListenerProtocol::Websockets, false) => "ws",
            (ListenerProtocol::Websockets, true) => "wss",
        }
    }

    /// Checks the combinations of keys; the error names the key (`listener[N].key`).
    fn validate(&self, n: usize) -> Result<(), ConfigError> {
        let err = |key: &str, message: &str| {
            Err(ConfigError {
                key: format!("listener[{n}].{key}"),
                message: message.into(),
            })
        };
        if self.certfile.is_empty() != self.keyfile.is_empty() {
            return err(
                if self.certfile.is_empty() {
                    "certfile"
                } else {
                    "keyfile"
                },
                "certfile and keyfile go together (TLS needs both)",
            );
        }
        if !self.tls() && (!self.cafile.is_empty() || self.require_certificate) {
            return err(
                if self.require_certificate {
                    "require_certificate"
                } else {
                    "cafile"
                },
                "needs TLS: set certfile and keyfile",
            );
        }
        if self.require_certificate && self.cafile.is_empty() {
            return err(
                "cafile",
                "require_certificate needs the CA certificates that client certificates chain to",
            );
        }
        if self.use_identity_as_username && !self.require_certificate {
            return err(
                "use_identity_as_username",
                "needs require_certificate = true",
            );
        }
        if self.protocol == ListenerProtocol::Websockets && !self.path.starts_with('/') {
            return err("path", "must start with /");
        }
        if self.max_connections == Some(0) {
            return err("max_connections", "must be at least 1");
        }
        Ok(())
    }
}

/// `sync` as its name in TOML.
mod sync_policy {
    use mqtt_session::store::SyncPolicy;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(p: &SyncPolicy, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&p.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SyncPolicy, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 1883,
            max_connections: 10_000,
            max_packet_size: 1024 * 1024,
            connect_timeout_secs: 10,
            max_keepalive_secs: 65_535,
            max_client_id_len: 256,
            max_inflight: 20,
            max_queued_messages: 1000,
            max_queued_bytes: 64 * 1024 * 1024,
            queue_qos0_offline: false,
            max_incoming_qos2: 1000,
            max_topic_levels: 128,
            max_subscriptions_per_session: 10_000,
            sys_interval_secs: 10,
            retain_available: true,
            worker_threads: 0,
            max_qos: 2,
            max_topic_alias: 10,
            validate_utf8_payload: true,
            wildcard_subscription_available: true,
            subscription_identifier_available: true,
            shared_subscription_available: true,
            max_session_expiry_secs: u32::MAX,
            response_information: String::new(),
            server_reference: String::new(),
            server_moved: false,
            scram_users_file: String::new(),
            persistence: false,
            data_dir: "mqtt-data".into(),
            sync: SyncPolicy::Batch,
            sync_batch_ms: 2,
            listener: Vec::new(),
        }
    }
}

impl Config {
    /// The address of the default listener (used when no `[[listener]]` is configured).
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// The listeners to open: the configured ones, or the default plain MQTT listener on
    /// `bind`:`port`.
    pub fn listeners(&self) -> Vec<ListenerConfig> {
        if self.listener.is_empty() {
            vec![ListenerConfig {
                port: self.port,
                bind: Some(self.bind),
                ..ListenerConfig::default()
            }]
        } else {
            self.listener.clone()
        }
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// The highest QoS accepted and granted.
    pub fn max_qos(&self) -> mqtt_codec::QoS {
        mqtt_codec::QoS::from_u8(self.max_qos.min(2)).unwrap_or(mqtt_codec::QoS::ExactlyOnce)
    }

    /// The `$SYS` interval, if `$SYS` updates are on.
    pub fn sys_interval(&self) -> Option<Duration> {
        (self.sys_interval_secs > 0).then(|| Duration::from_secs(self.sys_interval_secs))
    }

    /// Checks the values that have a meaningful range; the error names the key.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_connections", self.max_connections),
            ("max_client_id_len", self.max_client_id_len),
            ("max_inflight", usize::from(self.max_inflight)),
            ("max_queued_messages", self.max_queued_messages),
            ("max_queued_bytes", self.max_queued_bytes),
            ("max_incoming_qos2", self.max_incoming_qos2),
            ("max_topic_levels", self.max_topic_levels),
            (
                "max_subscriptions_per_session",
                self.max_subscriptions_per_session,
            ),
            (
                "connect_timeout_secs",
                usize::try_from(self.connect_timeout_secs).unwrap_or(usize::MAX),
            ),
            ("max_keepalive_secs", usize::from(self.max_keepalive_secs)),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError {
                    key: key.into(),
                    message: "must be at least 1".into(),
                });
            }
        }
        if self.sync_batch_ms == 0 || self.sync_batch_ms > 1000 {
            return Err(ConfigError {
                key: "sync_batch_ms".into(),
                message: "must be between 1 and 1000".into(),
            });
        }
        if self.persistence && self.data_dir.trim().is_empty() {
            return Err(ConfigError {
                key: "data_dir".into(),
                message: "must name a directory when persistence is on".into(),
            });
        }
        for (n, l) in self.listener.iter().enumerate() {
            l.validate(n)?;
        }
        if self.worker_threads > MAX_WORKER_THREADS {
            return Err(ConfigError {
                key: "worker_threads".into(),
                message: format!("must be at most {MAX_WORKER_THREADS} (0: one per core)"),
            });
        }
        if self.max_qos > 2 {
            return Err(ConfigError {
                key: "max_qos".into(),
                message: "must be 0, 1 or 2".into(),
            });
        }
        if self.max_packet_size < 64 || self.max_packet_size > mqtt_codec::PROTOCOL_MAX_PACKET_SIZE
        {
            return Err(ConfigError {
                key: "max_packet_size".into(),
                message: format!(
                    "must be between 64 and {} bytes",
                    mqtt_codec::PROTOCOL_MAX_PACKET_SIZE
                ),
            });
        }
        Ok(())
    }
}

/// An invalid configuration value, with the key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration key `{key}`: {message}")]
pub struct ConfigError {
    /// The key (for a file: its TOML name; for a flag: the flag).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_listen_on_loopback() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.listen_addr().to_string(), "127.0.0.1:1883");
    }

    #[test]
    fn zero_limits_are_refused_by_name() {
        let c = Config {
            max_inflight: 0,
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "max_inflight");
    }

    #[test]
    fn worker_threads_are_capped() {
        let c = Config {
            worker_threads: MAX_WORKER_THREADS + 1,
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "worker_threads");
        let c = Config {
            worker_threads: 2,
            ..Config::default()
        };
        assert!(c.validate().is_ok());
    }
}
