//! The driver task: owns the connection and the [`ClientSession`], turns requests into packets
//! and packets into events, and reconnects.
//!
//! One task per client. While connected it waits on everything at once (socket readable,
//! socket writable with bytes to write, a request, room for an event, the keep alive timer), so
//! a slow application, a slow server and the keep alive never block one another:
//!
//! - reads stop while the event queue is full (backpressure to the server, nothing dropped);
//! - requests are taken only while fewer than `queue_capacity` publishes wait in the session;
//! - bytes are written as they are produced, many packets per write.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use mqtt_codec::{
    Connect, Decoder, Disconnect, MqttString, Packet, ProtocolVersion, Publish, QoS, ReasonCode,
    Secret, SubscribeProperties, Subscription, TopicFilter, TopicName, UnsubscribeProperties, Will,
};
use mqtt_session::client::{ClientClose, ClientEvent, ClientLimits, ClientSession};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{debug, info, warn};

use crate::client::{Event, Message, Shared};
use crate::error::ConnectionError;
use crate::{ConnectOptions, Error, tls};

/// How much to read at a time when no frame is under way.
const READ_CHUNK: usize = 8 * 1024;

/// A request from a [`Client`](crate::Client) handle.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        publish: Publish,
        qos: QoS,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Subscribe {
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
        reply: oneshot::Sender<Result<Vec<ReasonCode>, Error>>,
    },
    Unsubscribe {
        filters: Vec<TopicFilter>,
        properties: UnsubscribeProperties,
        reply: oneshot::Sender<Result<Vec<ReasonCode>, Error>>,
    },
    /// (5.0) Re-authenticate with SCRAM-SHA-256 on the live connection.
    Reauthenticate {
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Answered with the number of requests abandoned unfinished.
    Disconnect {
        reply: oneshot::Sender<usize>,
        /// (5.0) The DISCONNECT to send: its reason and properties.
        packet: Disconnect,
    },
}

/// The session machine's token: how to answer the request when it completes.
#[derive(Debug)]
enum Token {
    Publish(oneshot::Sender<Result<(), Error>>),
    Subscribe(oneshot::Sender<Result<Vec<ReasonCode>, Error>>),
    Unsubscribe(oneshot::Sender<Result<Vec<ReasonCode>, Error>>),
}

impl Token {
    fn fail(self, error: fn() -> Error) {
        // The requester may have stopped waiting: nothing to do then.
        let _ = match self {
            Self::Publish(tx) => tx.send(Err(error())).map_err(drop),
            Self::Subscribe(tx) | Self::Unsubscribe(tx) => tx.send(Err(error())).map_err(drop),
        };
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A connection the server accepted, with what was read past the CONNACK.
struct Link {
    stream: Box<dyn Io>,
    buf: BytesMut,
    decoder: Decoder,
    session_present: bool,
    properties: mqtt_codec::ConnAckProperties,
}

/// What woke the driver up.
enum Step {
    /// A write (`true`: bytes went out) or a flush (`false`) finished.
    Wrote(std::io::Result<bool>),
    /// A read finished.
    Read(std::io::Result<usize>),
    /// A request arrived (`None`: every handle is gone).
    Command(Option<Command>),
    /// There is room for an event (or `Events` is gone).
    Permit(Result<mpsc::OwnedPermit<Event>, mpsc::error::SendError<()>>),
    /// The session's timer expired.
    Timer,
    /// Time to look again (the flush deadline of a disconnect).
    Tick,
}

/// How a connection's service ended.
enum End {
    /// The connection failed; reconnect if configured.
    Lost(ConnectionError),
    /// The driver must stop (graceful disconnect done, or nobody is listening any more).
    Stop(ConnectionError),
}

struct Driver {
    options: ConnectOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
    session: ClientSession<Token>,
    commands: mpsc::Receiver<Command>,
    /// `false` once every [`Client`](crate::Client) is gone.
    commands_open: bool,
    events: mpsc::Sender<Event>,
    /// Events waiting for room in `events`; `None` once [`Events`](crate::Events) is gone.
    pending_events: Option<VecDeque<Event>>,
    shared: Arc<Shared>,
    first: Option<oneshot::Sender<Result<(), ConnectionError>>>,
    /// A graceful disconnect under way: who to tell, and when to stop waiting for acks.
    disconnect: Option<(Vec<oneshot::Sender<usize>>, Instant)>,
    /// The DISCONNECT the client asked to end with.
    farewell: Disconnect,
    /// A reason to drop the connection found outside the packet handling (a failed
    /// re-authentication, an AUTH out of turn): the serve loop ends the connection with it.
    fatal: Option<ConnectionError>,
    /// (5.0) A re-authentication under way, and who waits for it.
    reauth: Option<(
        mqtt_session::scram::ScramClient,
        oneshot::Sender<Result<(), Error>>,
    )>,
    rng: u64,
}

/// Starts the driver task.
pub(crate) fn spawn(
    options: ConnectOptions,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    shared: Arc<Shared>,
    first: Option<oneshot::Sender<Result<(), ConnectionError>>>,
) -> Result<(), Error> {
    let tls = match &options.tls {
        Some(tls_options) => Some(
            tls::client_config(tls_options)
                .map_err(|e| Error::Connection(ConnectionError::from(e)))?,
        ),
        None => None,
    };
    let keep_alive = Some(options.keep_alive).filter(|k| !k.is_zero());
    let session = ClientSession::new(
        options.protocol,
        keep_alive,
        ClientLimits {
            max_inflight: options.max_inflight,
            topic_alias_maximum: if options.protocol.is_v5() {
                options.properties.topic_alias_maximum.unwrap_or(0)
            } else {
                0
            },
            ..ClientLimits::default()
        },
    );
    let rng = seed();
    let driver = Driver {
        options,
        tls,
        session,
        commands,
        commands_open: true,
        events,
        pending_events: Some(VecDeque::new()),
        shared,
        first,
        disconnect: None,
        farewell: Disconnect::new(ReasonCode::NORMAL_DISCONNECTION),
        reauth: None,
        fatal: None,
        rng,
    };
    let handle = tokio::runtime::Handle::try_current().map_err(|_| Error::InvalidOption {
        option: "runtime",
        reason: "the client must be started within a tokio runtime".into(),
    })?;
    handle.spawn(driver.run());
    Ok(())
}

/// A random seed without a dependency: the standard library's per-process random hash keys.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    hasher.finish() | 1
}

impl Driver {
    /// A uniform number in `[0, 1)` (xorshift64*).
    fn random(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    async fn run(mut self) {
        let client_id = self.client_id();
        let span =
            tracing::info_span!("mqtt_client", client_id = %client_id, host = %self.options.host);
        let _ = &span;
        let mut attempt: u32 = 0;
        loop {
            let cause = match self.open(&client_id).await {
                Ok(link) => {
                    attempt = 0;
                    info!(session_present = link.session_present, "connected");
                    if let Some(first) = self.first.take() {
                        let _ = first.send(Ok(()));
                    }
                    self.shared.connected.store(true, Ordering::Relaxed);
                    self.emit(Event::Connected {
                        session_present: link.session_present,
                        properties: Box::new(link.properties.clone()),
                    });
                    let end = self.serve(link).await;
                    self.shared.connected.store(false, Ordering::Relaxed);
                    self.session.disconnected();
                    if let Some((_, reply)) = self.reauth.take() {
                        let _ = reply.send(Err(Error::Disconnected));
                    }
                    match end {
                        End::Stop(reason) => {
                            info!(%reason, "disconnected");
                            self.emit(Event::Disconnected { reason });
                            break;
                        }
                        End::Lost(reason) => {
                            warn!(%reason, "connection lost");
                            self.emit(Event::Disconnected {
                                reason: reason.clone(),
                            });
                            reason
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %e, "connection attempt failed");
                    if let Some(first) = self.first.take() {
                        let _ = first.send(Err(e));
                        break;
                    }
                    e
                }
            };
            if !self.someone_listens() || self.disconnect_done() {
                break;
            }
            let Some(backoff) = self.options.reconnect else {
                break;
            };
            attempt = attempt.saturating_add(1);
            if backoff.max_attempts.is_some_and(|max| attempt > max) {
                warn!(attempts = attempt - 1, "giving up reconnecting");
                break;
            }
            let delay = backoff.delay(attempt, self.random());
            debug!(attempt, ?delay, "reconnecting");
            self.emit(Event::Reconnecting {
                attempt,
                delay,
                cause,
            });
            if !self.pause(delay).await {
                break;
            }
        }
        self.finish().await;
    }

    /// The identifier to connect with: the configured one, or (3.1 needs one) a random one.
    fn client_id(&mut self) -> String {
        if self.options.client_id.is_empty() && self.options.protocol == ProtocolVersion::V3_1 {
            let n = (self.random() * 1e12) as u64;
            format!("mqtt-rs-{n:012}")
        } else {
            self.options.client_id.clone()
        }
    }

    /// Whether anyone still uses the client: a handle, or the event stream.
    fn someone_listens(&self) -> bool {
        self.commands_open || self.pending_events.is_some()
    }

    /// Fails what is left, delivers the last events and stops.
    async fn finish(mut self) {
        // Answers that arrived with the last packets complete their requests first: only
        // what is really unfinished is abandoned (and counted as such).
        self.collect();
        let closed = if self.options.reconnect.is_none() && self.disconnect.is_none() {
            || Error::Disconnected
        } else {
            || Error::Closed
        };
        let mut abandoned = 0;
        for token in self.session.abandon() {
            token.fail(closed);
            abandoned += 1;
        }
        self.commands.close();
        let mut replies = self
            .disconnect
            .take()
            .map(|(replies, _)| replies)
            .unwrap_or_default();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Publish { reply, .. } => Token::Publish(reply).fail(closed),
                Command::Subscribe { reply, .. } => Token::Subscribe(reply).fail(closed),
                Command::Unsubscribe { reply, .. } => Token::Unsubscribe(reply).fail(closed),
                Command::Reauthenticate { reply } => {
                    let _ = reply.send(Err(closed()));
                    continue;
                }
                Command::Disconnect { reply, .. } => {
                    replies.push(reply);
                    continue;
                }
            }
            abandoned += 1;
        }
        for reply in replies {
            let _ = reply.send(abandoned);
        }
        if let Some(first) = self.first.take() {
            let _ = first.send(Err(ConnectionError::Requested));
        }
        if let Some(pending) = self.pending_events.take() {
            for event in pending {
                if self.events.send(event).await.is_err() {
                    break;
                }
            }
        }
    }

    fn emit(&mut self, event: Event) {
        if let Some(pending) = &mut self.pending_events {
            pending.push_back(event);
        }
    }

    /// Connects, handshakes and waits for an accepting CONNACK, within the connect timeout.
    async fn open(&mut self, client_id: &str) -> Result<Link, ConnectionError> {
        let mut limit = self.options.connect_timeout;
        // A pending disconnect bounds the attempt: it must not outlast the flush timeout.
        if let Some((_, flush_end)) = &self.disconnect {
            limit = limit.min(flush_end.saturating_duration_since(Instant::now()));
        }
        match timeout(limit, self.open_inner(client_id)).await {
            Ok(result) => result,
            Err(_) => Err(ConnectionError::ConnectTimeout),
        }
    }

    async fn open_inner(&mut self, client_id: &str) -> Result<Link, ConnectionError> {
        let host = self.options.host.as_str();
        let tcp = TcpStream::connect((host, self.options.port)).await?;
        tcp.set_nodelay(true)?;
        let mut stream: Box<dyn Io> = match &self.tls {
            Some(config) => {
                let name = self
                    .options
                    .tls
                    .as_ref()
                    .and_then(|t| t.server_name_override());
                Box::new(tls::connect(tcp, host, Arc::clone(config), name).await?)
            }
            None => Box::new(tcp),
        };
        let (connect, mut scram) = self.connect_packet(client_id)?;
        let version = self.options.protocol;
        write_packet(&mut stream, version, Packet::from(connect)).await?;

        let mut decoder = Decoder::new(version).with_max_packet_size(self.options.max_packet_size);
        let mut buf = BytesMut::new();
        let connack = loop {
            let packet = loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(packet)) => break packet,
                    Ok(None) => {}
                    Err(e) => return Err(ConnectionError::Protocol(e.to_string())),
                }
                if buf.capacity() == buf.len() {
                    buf.reserve(READ_CHUNK);
                }
                if stream.read_buf(&mut buf).await? == 0 {
                    return Err(ConnectionError::Closed);
                }
            };
            match (packet, scram.as_mut()) {
                (Packet::ConnAck(connack), _) => break connack,
                // 5.0 enhanced authentication: the server's challenge [MQTT-4.12.0-2].
                (Packet::Auth(auth), Some(client))
                    if auth.reason_code == ReasonCode::ContinueAuthentication
                        && auth
                            .properties
                            .authentication_method
                            .as_ref()
                            .is_some_and(|m| m.as_str() == mqtt_session::scram::METHOD) =>
                {
                    let challenge = auth_text(auth.properties.authentication_data.as_ref())?;
                    let answer = client
                        .server_first(&challenge)
                        .map_err(|e| ConnectionError::Protocol(format!("SCRAM: {e}")))?;
                    let reply = scram_auth(ReasonCode::ContinueAuthentication, answer);
                    write_packet(&mut stream, version, reply).await?;
                }
                (packet, _) => {
                    // [MQTT-3.2.0-1] The first packet from the server must be CONNACK (or,
                    // with enhanced authentication, AUTH).
                    return Err(ConnectionError::Protocol(format!(
                        "{:?} before CONNACK",
                        packet.packet_type()
                    )));
                }
            }
        };
        if connack.reason_code != ReasonCode::Success {
            return Err(ConnectionError::Refused(connack.reason_code));
        }
        if let Some(client) = scram.take() {
            // The server proves it knows the credentials, in the same method [MQTT-4.12.0-5].
            if connack
                .properties
                .authentication_method
                .as_ref()
                .is_none_or(|m| m.as_str() != mqtt_session::scram::METHOD)
            {
                return Err(ConnectionError::Protocol(
                    "CONNACK without the SCRAM-SHA-256 method".into(),
                ));
            }
            let last = auth_text(connack.properties.authentication_data.as_ref())?;
            client
                .server_final(&last)
                .map_err(|e| ConnectionError::Protocol(format!("SCRAM: {e}")))?;
        }
        let properties = &connack.properties;
        let mut max_inflight = self.options.max_inflight;
        if let Some(receive_maximum) = properties.receive_maximum {
            max_inflight = max_inflight.min(receive_maximum.get());
        }
        self.session.set_max_inflight(max_inflight);
        if let Some(server_keep_alive) = properties.server_keep_alive {
            self.session
                .set_keep_alive(Some(Duration::from_secs(server_keep_alive.into())));
        }
        let max_packet = properties
            .maximum_packet_size
            .map_or(mqtt_codec::PROTOCOL_MAX_PACKET_SIZE, |m| m.get());
        self.shared
            .max_packet_size
            .store(max_packet, Ordering::Relaxed);
        Ok(Link {
            stream,
            buf,
            decoder,
            session_present: connack.session_present,
            properties: connack.properties,
        })
    }

    fn connect_packet(
        &self,
        client_id: &str,
    ) -> Result<(Connect, Option<mqtt_session::scram::ScramClient>), ConnectionError> {
        let o = &self.options;
        let bad = |what: &str, e: mqtt_codec::TopicError| {
            ConnectionError::Protocol(format!("invalid {what}: {e}"))
        };
        let mut connect = Connect::new(
            o.protocol,
            MqttString::try_from(client_id).map_err(|e| bad("client id", e))?,
        );
        connect.clean_start = o.clean_session;
        connect.keep_alive = u16::try_from(o.keep_alive.as_secs()).unwrap_or(u16::MAX);
        connect.username = o
            .username
            .as_deref()
            .map(MqttString::try_from)
            .transpose()
            .map_err(|e| bad("user name", e))?;
        // With SCRAM the password never goes on the wire.
        connect.password = if o.scram.is_some() {
            None
        } else {
            o.password.clone().map(Secret::new)
        };
        if let Some(will) = &o.will {
            let topic =
                TopicName::try_from(will.topic.as_str()).map_err(|e| bad("will topic", e))?;
            let mut w = Will::new(topic, will.payload.clone());
            w.qos = will.qos;
            w.retain = will.retain;
            if o.protocol.is_v5() {
                w.properties = will.properties.clone();
            }
            connect.will = Some(w);
        }
        if o.protocol.is_v5() {
            let mut p = o.properties.clone();
            // A persistent session lasts until the client ends it, as in 3.1.1, unless the
            // application chose an interval.
            if !o.clean_session && p.session_expiry_interval.is_none() {
                p.session_expiry_interval = Some(u32::MAX);
            }
            if p.maximum_packet_size.is_none()
                && o.max_packet_size < mqtt_codec::PROTOCOL_MAX_PACKET_SIZE
            {
                p.maximum_packet_size = std::num::NonZeroU32::new(o.max_packet_size);
            }
            connect.properties = p;
        }
        let mut scram = None;
        if let Some((user, password)) = &o.scram
            && o.protocol.is_v5()
        {
            let (client, first) =
                mqtt_session::scram::ScramClient::start(user, password, &scram_nonce()?);
            connect.properties.authentication_method =
                MqttString::try_from(mqtt_session::scram::METHOD).ok();
            connect.properties.authentication_data = Some(Secret::new(first.into_bytes()));
            scram = Some(client);
        }
        Ok((connect, scram))
    }

    /// Whether a requested disconnect has nothing left to wait for: everything flushed, or
    /// its deadline passed. While it has, the driver keeps reconnecting (with reconnect on) to
    /// deliver what the application handed it before asking to disconnect.
    fn disconnect_done(&self) -> bool {
        self.disconnect
            .as_ref()
            .is_some_and(|(_, deadline)| self.session.is_idle() || Instant::now() >= *deadline)
    }

    /// Waits `delay` before the next attempt, still taking requests (they wait in the
    /// session) and delivering events. `false` when the driver must stop instead (nobody
    /// listens, or a disconnect was asked for and there is nothing left to flush in time).
    async fn pause(&mut self, delay: Duration) -> bool {
        let backoff_end = Instant::now() + delay;
        loop {
            self.collect();
            if !self.someone_listens() || self.disconnect_done() {
                return false;
            }
            // A disconnect stops the wait at its deadline.
            let deadline = match &self.disconnect {
                Some((_, flush_end)) => backoff_end.min(*flush_end),
                None => backoff_end,
            };
            let can_take = self.commands_open
                && self.disconnect.is_none()
                && self.session.pending() < self.options.queue_capacity;
            let has_events = self.pending_events.as_ref().is_some_and(|p| !p.is_empty());
            let events = self.events.clone();
            let step = tokio::select! {
                () = sleep_until(deadline) => return !self.disconnect_done(),
                command = self.commands.recv(), if can_take => Step::Command(command),
                permit = events.reserve_owned(), if has_events => Step::Permit(permit),
            };
            match step {
                Step::Command(command) => self.command(command),
                Step::Permit(permit) => self.deliver(permit),
                _ => {}
            }
        }
    }

    /// Takes a request (or notes that every handle is gone).
    fn command(&mut self, command: Option<Command>) {
        let Some(command) = command else {
            self.commands_open = false;
            return;
        };
        match command {
            Command::Reauthenticate { reply } => self.reauthenticate(reply),
            Command::Publish {
                publish,
                qos,
                reply,
            } => self.session.publish(publish, qos, Token::Publish(reply)),
            Command::Subscribe {
                subscriptions,
                properties,
                reply,
            } => self
                .session
                .subscribe(subscriptions, properties, Token::Subscribe(reply)),
            Command::Unsubscribe {
                filters,
                properties,
                reply,
            } => self
                .session
                .unsubscribe(filters, properties, Token::Unsubscribe(reply)),
            Command::Disconnect { reply, packet } => match &mut self.disconnect {
                // A second disconnect waits for the first.
                Some((replies, _)) => replies.push(reply),
                None => {
                    let deadline = Instant::now() + self.options.flush_timeout;
                    self.disconnect = Some((vec![reply], deadline));
                    self.farewell = packet;
                }
            },
        }
    }

    /// Hands one waiting event to the application.
    fn deliver(&mut self, permit: Result<mpsc::OwnedPermit<Event>, mpsc::error::SendError<()>>) {
        match permit {
            Ok(permit) => {
                if let Some(event) = self.pending_events.as_mut().and_then(VecDeque::pop_front) {
                    permit.send(event);
                }
            }
            // The application dropped `Events`: nobody reads messages any more.
            Err(_) => self.pending_events = None,
        }
    }

    /// (5.0) Starts a SCRAM-SHA-256 re-authentication: AUTH 0x19 with a fresh client-first
    /// message (MQTT-4.12.1-1).
    fn reauthenticate(&mut self, reply: oneshot::Sender<Result<(), Error>>) {
        let refuse = |reason: &str| Error::InvalidOption {
            option: "scram_sha256",
            reason: reason.to_owned(),
        };
        let Some((user, password)) = self.options.scram.clone() else {
            let _ = reply.send(Err(refuse(
                "re-authentication needs SCRAM-SHA-256 credentials",
            )));
            return;
        };
        if !self.session.version().is_v5() {
            let _ = reply.send(Err(refuse("re-authentication needs MQTT 5.0")));
            return;
        }
        if self.reauth.is_some() {
            let _ = reply.send(Err(refuse("a re-authentication is already under way")));
            return;
        }
        if !self.session.is_connected() {
            let _ = reply.send(Err(Error::Disconnected));
            return;
        }
        let nonce = match scram_nonce() {
            Ok(n) => n,
            Err(e) => {
                let _ = reply.send(Err(Error::Connection(e)));
                return;
            }
        };
        let (client, first) = mqtt_session::scram::ScramClient::start(&user, &password, &nonce);
        self.session
            .send_auth(scram_auth_body(ReasonCode::ReAuthenticate, first));
        self.reauth = Some((client, reply));
    }

    /// (5.0) The server's AUTH during a re-authentication: the challenge (answered with the
    /// proof) or the success (whose proof of the server is checked).
    fn auth_from_server(&mut self, auth: &mqtt_codec::Auth) {
        let Some((mut client, reply)) = self.reauth.take() else {
            // [MQTT-4.12.0-7] An AUTH out of turn is a protocol error: the connection goes.
            self.fatal = Some(ConnectionError::Protocol(
                "AUTH from the server with no authentication under way".into(),
            ));
            return;
        };
        let method_ok = auth
            .properties
            .authentication_method
            .as_ref()
            .is_some_and(|m| m.as_str() == mqtt_session::scram::METHOD);
        let outcome = if method_ok {
            auth_text(auth.properties.authentication_data.as_ref()).and_then(|text| {
                match auth.reason_code {
                    ReasonCode::ContinueAuthentication => client
                        .server_first(&text)
                        .map(Some)
                        .map_err(|e| ConnectionError::Protocol(format!("SCRAM: {e}"))),
                    ReasonCode::Success => client
                        .server_final(&text)
                        .map(|()| None)
                        .map_err(|e| ConnectionError::Protocol(format!("SCRAM: {e}"))),
                    other => Err(ConnectionError::Protocol(format!("AUTH {other:?}"))),
                }
            })
        } else {
            // [MQTT-4.12.0-5] Every AUTH carries the method of the exchange.
            Err(ConnectionError::Protocol("AUTH with another method".into()))
        };
        match outcome {
            Ok(Some(last)) => {
                self.session
                    .send_auth(scram_auth_body(ReasonCode::ContinueAuthentication, last));
                self.reauth = Some((client, reply));
            }
            Ok(None) => {
                let _ = reply.send(Ok(()));
            }
            Err(e) => {
                // [MQTT-4.12.1-2] A failed re-authentication ends the connection.
                let _ = reply.send(Err(Error::Connection(e.clone())));
                self.fatal = Some(e);
            }
        }
    }

    /// Answers completed requests and queues the session's events.
    fn collect(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                ClientEvent::Message(publish) => self.emit(Event::Message(Message::new(publish))),
                ClientEvent::Published { token, result } => {
                    if let Token::Publish(tx) = token {
                        let _ = tx.send(result.map_err(Error::Rejected));
                    }
                }
                ClientEvent::Subscribed { token, codes }
                | ClientEvent::Unsubscribed { token, codes } => match token {
                    Token::Subscribe(tx) | Token::Unsubscribe(tx) => {
                        let _ = tx.send(Ok(codes));
                    }
                    Token::Publish(_) => {}
                },
                ClientEvent::Auth(auth) => self.auth_from_server(&auth),
                ClientEvent::ResubscribeFailed { filter, code } => {
                    warn!(%filter, ?code, "re-subscription refused");
                    self.emit(Event::SubscriptionLost { filter, code });
                }
            }
        }
    }

    /// Encodes what the session wants sent.
    fn encode(&mut self, out: &mut BytesMut) {
        let version = self.session.version();
        let limit = self.shared.max_packet_size.load(Ordering::Relaxed);
        while let Some(packet) = self.session.poll_transmit() {
            if let Err(e) = packet.encode(version, limit, out) {
                // Requests are checked before they are queued; this is a bug, not the peer's.
                warn!(error = %e, "a packet could not be encoded and was dropped");
            }
        }
    }

    /// Serves one accepted connection until it ends.
    async fn serve(&mut self, link: Link) -> End {
        let Link {
            stream,
            mut buf,
            mut decoder,
            session_present,
            ..
        } = link;
        let (mut reader, mut writer) = tokio::io::split(stream);
        self.session
            .connected(session_present, Instant::now().into_std());
        let mut out = BytesMut::new();
        let mut needs_flush = false;
        // Packets that arrived with the CONNACK.
        if let Err(end) = self.decode_all(&mut decoder, &mut buf) {
            return end;
        }
        loop {
            self.collect();
            if let Some(e) = self.fatal.take() {
                return End::Lost(e);
            }
            self.encode(&mut out);
            if let Some((_, deadline)) = &self.disconnect {
                // Everything answered and written, or out of time: what is still being
                // written gets a bounded last chance in `goodbye`.
                if (self.session.is_idle() && out.is_empty()) || Instant::now() >= *deadline {
                    return self.goodbye(writer, out).await;
                }
            } else if !self.someone_listens() {
                // Nobody can make requests or read events: leave gracefully.
                self.disconnect = Some((Vec::new(), Instant::now() + self.options.flush_timeout));
                continue;
            }
            let can_read = self
                .pending_events
                .as_ref()
                .is_none_or(|p| p.len() < self.options.event_capacity);
            let can_take = self.commands_open
                && self.disconnect.is_none()
                && self.session.pending() < self.options.queue_capacity;
            let has_events = self.pending_events.as_ref().is_some_and(|p| !p.is_empty());
            let timer = self.session.poll_timeout().map(Instant::from_std);
            let flush_deadline = self.disconnect.as_ref().map(|(_, d)| *d);
            if buf.capacity() == buf.len() {
                buf.reserve(READ_CHUNK);
            }
            let events = self.events.clone();
            let step = tokio::select! {
                written = async {
                    if out.is_empty() {
                        writer.flush().await.map(|()| false)
                    } else {
                        writer.write_buf(&mut out).await.map(|n| n > 0)
                    }
                }, if !out.is_empty() || needs_flush => Step::Wrote(written),
                read = reader.read_buf(&mut buf), if can_read => Step::Read(read),
                command = self.commands.recv(), if can_take => Step::Command(command),
                permit = events.reserve_owned(), if has_events => Step::Permit(permit),
                () = sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => Step::Timer,
                () = sleep_until(flush_deadline.unwrap_or_else(Instant::now)), if flush_deadline.is_some() => Step::Tick,
            };
            match step {
                Step::Wrote(Ok(true)) => {
                    self.session.sent(Instant::now().into_std());
                    needs_flush = true;
                }
                // The flush is done (or a write wrote nothing: the socket is closed).
                Step::Wrote(Ok(false)) if out.is_empty() => needs_flush = false,
                Step::Wrote(Ok(false)) => return End::Lost(ConnectionError::Closed),
                Step::Wrote(Err(e)) | Step::Read(Err(e)) => return End::Lost(e.into()),
                Step::Read(Ok(0)) => return End::Lost(ConnectionError::Closed),
                Step::Read(Ok(_)) => {
                    if let Err(end) = self.decode_all(&mut decoder, &mut buf) {
                        return end;
                    }
                }
                Step::Command(command) => self.command(command),
                Step::Permit(permit) => self.deliver(permit),
                Step::Timer => {
                    if let Err(close) = self.session.handle_timeout(Instant::now().into_std()) {
                        return End::Lost(closed(close));
                    }
                }
                Step::Tick => {}
            }
        }
    }

    /// Handles every complete packet in the buffer.
    fn decode_all(&mut self, decoder: &mut Decoder, buf: &mut BytesMut) -> Result<(), End> {
        loop {
            match decoder.decode(buf) {
                Ok(Some(packet)) => {
                    if let Err(close) = self
                        .session
                        .handle_packet(packet, Instant::now().into_std())
                    {
                        warn!(?close, "closing the connection");
                        return Err(End::Lost(closed(close)));
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    warn!(error = %e, "malformed packet from the server");
                    return Err(End::Lost(ConnectionError::Protocol(e.to_string())));
                }
            }
        }
    }

    /// Sends DISCONNECT and closes the connection.
    /// Writes what is left of `out` (a packet may be half written) and DISCONNECT, within a
    /// bound, and ends the connection.
    async fn goodbye<W: AsyncWrite + Unpin>(&mut self, mut writer: W, mut out: BytesMut) -> End {
        let disconnect = Packet::from(self.farewell.clone());
        if disconnect
            .encode(
                self.session.version(),
                mqtt_codec::PROTOCOL_MAX_PACKET_SIZE,
                &mut out,
            )
            .is_ok()
        {
            let write = async {
                writer.write_all(&out).await?;
                writer.flush().await?;
                writer.shutdown().await
            };
            if let Err(e) = timeout(Duration::from_secs(5), write)
                .await
                .unwrap_or(Ok(()))
            {
                debug!(error = %e, "error while saying goodbye");
            }
        }
        End::Stop(ConnectionError::Requested)
    }
}

fn closed(close: ClientClose) -> ConnectionError {
    match close {
        ClientClose::PingTimeout => ConnectionError::PingTimeout,
        ClientClose::ServerDisconnect(code) => ConnectionError::ServerDisconnect(code),
        ClientClose::Violation { statement, detail } => {
            ConnectionError::Protocol(match statement {
                Some(s) => format!("{detail} [{s}]"),
                None => detail.to_owned(),
            })
        }
    }
}

/// Encodes and writes one packet during the connection handshake.
async fn write_packet(
    stream: &mut Box<dyn Io>,
    version: ProtocolVersion,
    packet: Packet,
) -> Result<(), ConnectionError> {
    let mut out = BytesMut::new();
    packet
        .encode(version, mqtt_codec::PROTOCOL_MAX_PACKET_SIZE, &mut out)
        .map_err(|e| {
            ConnectionError::Protocol(format!("cannot encode {:?}: {e}", packet.packet_type()))
        })?;
    stream.write_all(&out).await?;
    stream.flush().await?;
    Ok(())
}

/// A SCRAM message carried as Authentication Data.
fn auth_text(data: Option<&Secret>) -> Result<String, ConnectionError> {
    data.and_then(|d| std::str::from_utf8(d.expose()).ok())
        .map(str::to_owned)
        .ok_or_else(|| ConnectionError::Protocol("SCRAM: missing authentication data".into()))
}

/// An AUTH packet of the SCRAM-SHA-256 exchange.
fn scram_auth(reason: ReasonCode, data: String) -> Packet {
    Packet::from(scram_auth_body(reason, data))
}

/// The AUTH of the SCRAM-SHA-256 exchange with this reason and data.
fn scram_auth_body(reason: ReasonCode, data: String) -> mqtt_codec::Auth {
    let mut auth = mqtt_codec::Auth::new(reason);
    auth.properties.authentication_method = MqttString::try_from(mqtt_session::scram::METHOD).ok();
    auth.properties.authentication_data = Some(Secret::new(data.into_bytes()));
    auth
}

/// A fresh client nonce: 18 random bytes, Base64.
fn scram_nonce() -> Result<String, ConnectionError> {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 18];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ConnectionError::Protocol("no random source for the SCRAM nonce".into()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}
