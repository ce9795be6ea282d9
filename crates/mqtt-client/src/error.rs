//! The client's one error type.

use std::fmt;
use std::io;
use std::sync::Arc;

use mqtt_codec::ReasonCode;

use crate::tls::TlsError;

/// What can go wrong using the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option was invalid; nothing was attempted.
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// Why.
        reason: String,
    },
    /// A topic name or filter was invalid.
    #[error("invalid topic: {0}")]
    Topic(#[from] mqtt_codec::TopicError),
    /// A message does not fit in a packet the server accepts.
    #[error("packet too large: {size} bytes, the limit is {limit}")]
    PacketTooLarge {
        /// The packet's size.
        size: usize,
        /// The limit.
        limit: u32,
    },
    /// The connection could not be made or was lost.
    #[error("connection failed: {0}")]
    Connection(ConnectionError),
    /// The server refused the connection with this CONNACK code (3.x return codes map to their
    /// 5.0 equivalents).
    #[error("connection refused: {}", refusal(*.0))]
    Refused(ReasonCode),
    /// The server refused a request (a PUBACK, PUBREC, SUBACK or UNSUBACK failure code).
    #[error("refused by the server: {0:?}")]
    Rejected(ReasonCode),
    /// The request was not answered in time. It is still in the session and may complete
    /// later: for a publish, the message may still be delivered.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The request's queue is full ([`Client::try_publish`](crate::Client::try_publish)).
    #[error("the request queue is full")]
    QueueFull,
    /// The connection went down and automatic reconnect is off: the request was abandoned.
    #[error("disconnected before the request completed")]
    Disconnected,
    /// The client was closed ([`Client::disconnect`](crate::Client::disconnect), or the
    /// driver stopped).
    #[error("the client is closed")]
    Closed,
    /// [`Client::disconnect`](crate::Client::disconnect) gave up waiting (the flush timeout
    /// passed) with this many requests unfinished; each of them failed with [`Error::Closed`].
    #[error("disconnected with {0} requests unfinished")]
    Unflushed(usize),
}

/// Why a connection failed or ended; shared between the error of a request and the event
/// stream, so it is cheap to clone.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectionError {
    /// A socket error.
    Io(Arc<io::Error>),
    /// A TLS setup or handshake error.
    Tls(Arc<TlsError>),
    /// No CONNACK within the connect timeout.
    ConnectTimeout,
    /// The server refused the connection with this code.
    Refused(ReasonCode),
    /// The server closed the connection.
    Closed,
    /// (5.0) The server sent DISCONNECT with this reason.
    ServerDisconnect(ReasonCode),
    /// The server broke the protocol.
    Protocol(String),
    /// The server did not answer PINGREQ in time.
    PingTimeout,
    /// The client asked to disconnect.
    Requested,
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Tls(e) => write!(f, "TLS: {e}"),
            Self::ConnectTimeout => f.write_str("no CONNACK in time"),
            Self::Refused(code) => write!(f, "refused: {}", refusal(*code)),
            Self::Closed => f.write_str("closed by the server"),
            Self::ServerDisconnect(code) => write!(f, "server sent DISCONNECT ({code:?})"),
            Self::Protocol(what) => write!(f, "protocol violation by the server: {what}"),
            Self::PingTimeout => f.write_str("no PINGRESP in time"),
            Self::Requested => f.write_str("disconnected by the client"),
        }
    }
}

impl From<io::Error> for ConnectionError {
    fn from(e: io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}

impl From<TlsError> for ConnectionError {
    fn from(e: TlsError) -> Self {
        Self::Tls(Arc::new(e))
    }
}

impl From<ConnectionError> for Error {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::Refused(code) => Self::Refused(code),
            other => Self::Connection(other),
        }
    }
}

/// The words Mosquitto's clients print for a refused connection.
fn refusal(code: ReasonCode) -> String {
    match code {
        ReasonCode::UnsupportedProtocolVersion => "unacceptable protocol version".into(),
        ReasonCode::ClientIdentifierNotValid => "identifier rejected".into(),
        ReasonCode::ServerUnavailable => "broker unavailable".into(),
        ReasonCode::BadUserNameOrPassword => "bad user name or password".into(),
        ReasonCode::NotAuthorized => "not authorised".into(),
        other => format!("{other:?}"),
    }
}

/// The 3.1.1 CONNACK return code of a refusal (1 to 5), as Mosquitto's clients use for their
/// exit status; other codes (5.0 only) are returned as they are.
pub fn connack_return_code(code: ReasonCode) -> u8 {
    match code {
        ReasonCode::UnsupportedProtocolVersion => 1,
        ReasonCode::ClientIdentifierNotValid => 2,
        ReasonCode::ServerUnavailable => 3,
        ReasonCode::BadUserNameOrPassword => 4,
        ReasonCode::NotAuthorized => 5,
        other => other.get(),
    }
}
