//! One client connection: read bytes, decode packets, feed them to the session machine, carry out
//! what it asks of the broker, and write what it has to say. The task ends when the client
//! leaves, breaks the protocol, times out, is taken over, or the server shuts down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt_codec::{
    Auth, ConnAck, Decoder, Disconnect, Error as CodecError, MqttString, PROTOCOL_MAX_PACKET_SIZE,
    Packet, PacketType, ProtocolVersion, ReasonCode, Secret,
};
use mqtt_session::{Close, Outgoing};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

use crate::auth::{AuthConversation, AuthStep};
use crate::core::{Authenticated, Broker, Connected, Flow, SessionHandle};
use crate::server::Peer;
use crate::transport::{ListenerRuntime, Reader, Transport, Upgraded, Writer};

/// How long one write may take: a client that stops reading is disconnected, rather than
/// holding its writer (and connection) forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a closing connection's writer gets to write what is left.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the writer of a connection closed for a violation gets to send the DISCONNECT
/// that says why (5.0): a client that does not read does not delay its will.
const FAREWELL_TIMEOUT: Duration = Duration::from_millis(200);

/// Logs a peer's violation, rate limited so that a flood of bad clients cannot flood the log.
fn warn_violation(peer: Peer, client_id: &str, what: &dyn std::fmt::Display) {
    if crate::core::WARNINGS.allow() {
        tracing::warn!(%peer, client_id, "closing connection: {what}");
    }
}

/// Why the main loop ended.
enum End {
    /// DISCONNECT received: no will, unless the client asked for it (5.0 reason 0x04).
    Graceful {
        /// Whether the will is published all the same.
        publish_will: bool,
    },
    /// Anything else: the will is published. With a reason, a 5.0 client is told it in a
    /// DISCONNECT first (a protocol violation, a keep alive timeout).
    Abnormal(Option<Farewell>),
    /// The server is shutting down: the session is kept, no will.
    Shutdown,
    /// Another connection took the session over; the broker already dealt with it.
    TakenOver,
}

/// Why the server closes a 5.0 connection: the DISCONNECT's reason code and reason string.
struct Farewell {
    reason: ReasonCode,
    text: String,
}

/// Serves one connection accepted on `listener`: its TLS handshake and WebSocket upgrade
/// (within the connect timeout), then the MQTT connection.
pub(crate) async fn accept(
    stream: TcpStream,
    peer: Peer,
    listener: Arc<ListenerRuntime>,
    broker: Arc<Broker>,
    stop: watch::Receiver<bool>,
) {
    let upgrade = tokio::time::timeout(
        broker.config().connect_timeout(),
        Box::pin(listener.upgrade(stream)),
    );
    let upgraded = match upgrade.await {
        Ok(Ok(upgraded)) => upgraded,
        Ok(Err(e)) => {
            tracing::debug!(%peer, listener = listener.config.scheme(), error = %e,
                "connection not established");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, listener = listener.config.scheme(),
                "no TLS handshake or WebSocket upgrade within the connect timeout");
            return;
        }
    };
    run(upgraded, peer, broker, stop).await;
}

/// Serves one connection.
pub(crate) async fn run(
    upgraded: Upgraded,
    peer: Peer,
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
) {
    // Boxed: the handshake's state (the CONNECT, an authentication exchange, the CONNACK) is
    // large and short-lived; inline, every idle connection would keep room for it.
    let Some(accepted) = Box::pin(handshake(upgraded, peer, &broker, &mut stop)).await else {
        return;
    };
    let Accepted {
        link,
        reader,
        writer,
        incoming,
    } = accepted;
    let handle = Arc::clone(&link.handle);
    let generation = link.generation;
    // Boxed too: the connection's long-lived state, allocated to its exact size.
    let end = Box::pin(serve(link, peer, reader, writer, incoming, stop)).await;
    let (graceful, reason) = match end {
        End::Graceful {
            publish_will: false,
        } => (true, "disconnected"),
        End::Graceful { publish_will: true } => (false, "disconnected with will"),
        End::Abnormal(_) => (false, "connection lost"),
        End::Shutdown => (true, "server shutting down"),
        End::TakenOver => {
            tracing::info!(%peer, client_id = %handle.client_id(), "session taken over");
            return;
        }
    };
    broker.disconnect(&handle, generation, graceful, Instant::now());
    tracing::info!(%peer, client_id = %handle.client_id(), reason, "client disconnected");
}

/// A connection past CONNACK: what serving it needs.
struct Accepted {
    link: Link,
    reader: Reader,
    writer: Writer,
    incoming: Incoming,
}

/// CONNECT, enhanced authentication, the session, CONNACK; `None` when the connection ends
/// there (refused, gone, or the CONNACK could not be written).
async fn handshake(
    upgraded: Upgraded,
    peer: Peer,
    broker: &Arc<Broker>,
    stop: &mut watch::Receiver<bool>,
) -> Option<Accepted> {
    let Upgraded {
        transport,
        identity,
    } = upgraded;
    if let Transport::Tcp(stream) = &transport {
        let _ = stream.set_nodelay(true);
    }
    let (mut reader, mut writer) = transport.split();
    let config = broker.config();
    let mut decoder = Decoder::server().with_max_packet_size(config.max_packet_size);
    let mut buf = BytesMut::new();

    // CONNECT first, within the connect timeout [MQTT-3.1.0-1].
    let first = tokio::select! {
        r = tokio::time::timeout(
            config.connect_timeout(),
            read_packet(&mut reader, &mut decoder, &mut buf, broker),
        ) => r,
        _ = stop.changed() => return None,
    };
    let mut connect = match first {
        Ok(Ok(Some(Packet::Connect(connect)))) => connect,
        Ok(Ok(Some(_))) => return None, // the decoder only yields CONNECT first
        Ok(Ok(None)) => return None,    // gone before saying anything
        Err(_) => {
            tracing::debug!(%peer, "no CONNECT within the connect timeout");
            return None;
        }
        Ok(Err(ReadError::Codec(CodecError::UnsupportedProtocolVersion { level }))) => {
            // CONNACK 0x01 "unacceptable protocol version", then close [MQTT-3.1.2-2].
            warn_violation(peer, "", &format!("unsupported protocol level {level}"));
            let refusal = Packet::from(ConnAck::new(ReasonCode::UnsupportedProtocolVersion));
            let _ = write_packets(&mut writer, broker, ProtocolVersion::V3_1_1, [refusal]).await;
            return None;
        }
        Ok(Err(e)) => {
            // An invalid CONNECT closes the connection without CONNACK [MQTT-3.1.4-1]; a 5.0
            // client whose CONNECT was readable enough to tell its version gets a CONNACK with
            // the reason (5.0 section 4.13.1).
            warn_violation(peer, "", &e);
            if let (ReadError::Codec(e), Some(version)) = (&e, decoder.version())
                && version.is_v5()
            {
                let refusal = Packet::from(ConnAck::new(e.reason_code()));
                let _ = write_packets(&mut writer, broker, version, [refusal]).await;
            }
            return None;
        }
    };
    let version = connect.protocol;
    // `use_identity_as_username`: the client certificate's Common Name is the user name, the
    // CONNECT's user name and password are not used; a certificate without one is refused.
    if let Some(identity) = identity {
        match identity.and_then(|cn| MqttString::try_from(cn.as_str()).ok()) {
            Some(name) => {
                connect.username = Some(name);
                connect.password = None;
            }
            None => {
                tracing::info!(%peer, "connection refused: the client certificate has no usable Common Name");
                let refusal = Packet::from(ConnAck::new(ReasonCode::NotAuthorized));
                let _ = write_packets(&mut writer, broker, version, [refusal]).await;
                return None;
            }
        }
    }
    // 5.0 enhanced authentication: the exchange runs before the session is touched.
    let mut authenticated = None;
    if version.is_v5()
        && let Some(method) = connect.properties.authentication_method.clone()
    {
        // Boxed: only connections that authenticate pay for the exchange's state.
        let exchange = Box::pin(authenticate(
            &mut reader,
            &mut writer,
            &mut decoder,
            &mut buf,
            broker,
            &connect,
            method.as_str(),
        ));
        let result = tokio::select! {
            r = tokio::time::timeout(config.connect_timeout(), exchange) => r,
            _ = stop.changed() => return None,
        };
        // Out of time: not authorized.
        match result.unwrap_or(Err(ReasonCode::NotAuthorized)) {
            Ok(a) => authenticated = Some(a),
            // The client left during the exchange: nothing to answer.
            Err(ReasonCode::NORMAL_DISCONNECTION) => return None,
            Err(reason) => {
                tracing::info!(%peer, client_id = %connect.client_id, %reason, method = %method,
                    "enhanced authentication failed");
                let refusal = Packet::from(ConnAck::new(reason));
                let _ = write_packets(&mut writer, broker, version, [refusal]).await;
                return None;
            }
        }
    }
    let reauth = authenticated.as_ref().map(|a| {
        Box::new(ReAuth {
            method: a.method.clone(),
            user: a.user.clone(),
            conversation: None,
            deadline: None,
            limit: config.connect_timeout(),
        })
    });
    let connected = match broker.connect_authenticated(
        &connect,
        Instant::now(),
        authenticated.as_ref(),
    ) {
        Ok(connected) => connected,
        Err(reason) => {
            tracing::info!(%peer, client_id = %connect.client_id, %reason, "connection refused");
            // A refused CONNECT gets its CONNACK, then the connection closes [MQTT-3.2.2-5].
            let mut refusal = ConnAck::new(reason);
            if matches!(
                reason,
                ReasonCode::UseAnotherServer | ReasonCode::ServerMoved
            ) {
                refusal.properties.server_reference =
                    MqttString::try_from(config.server_reference.as_str()).ok();
            }
            let _ = write_packets(&mut writer, broker, version, [Packet::from(refusal)]).await;
            return None;
        }
    };
    let Connected {
        handle,
        generation,
        waker,
        session_present,
        properties,
        max_packet_size,
        need,
        ..
    } = connected;
    tracing::info!(
        %peer,
        client_id = %handle.client_id(),
        %version,
        clean = connect.clean_start,
        keep_alive = connect.keep_alive,
        username = connect.username.as_ref().map_or("", |u| u.as_str()),
        session_present,
        "client connected"
    );
    // The CONNECT's fields are slices of the frame it arrived in: dropping it lets that
    // buffer go, instead of keeping it for the life of the connection.
    drop(connect);
    // What CONNACK says of the session (present, or discarded) is durable first.
    broker.wait_durable(need).await;
    let mut connack = ConnAck::new(ReasonCode::Success);
    connack.session_present = session_present;
    connack.properties = properties;
    if write_packets(&mut writer, broker, version, [Packet::from(connack)])
        .await
        .is_err()
    {
        broker.disconnect(&handle, generation, false, Instant::now());
        tracing::info!(%peer, client_id = %handle.client_id(), "client disconnected before CONNACK");
        return None;
    }
    Some(Accepted {
        link: Link {
            handle,
            generation,
            waker,
            broker: Arc::clone(broker),
            version,
            max_packet_size,
        },
        reader,
        writer,
        incoming: Incoming {
            decoder,
            buf,
            reauth,
        },
    })
}

/// What a connection's reader and writer share.
#[derive(Clone)]
struct Link {
    handle: Arc<SessionHandle>,
    generation: u64,
    waker: Arc<Notify>,
    broker: Arc<Broker>,
    version: ProtocolVersion,
    /// The client's Maximum Packet Size.
    max_packet_size: u32,
}

/// How the writer ended.
enum WriterEnd {
    /// Told to finish, after writing what was left.
    Finished,
    /// Another connection took the session over.
    TakenOver,
    /// The write failed or timed out (the client is gone, or not reading).
    Failed,
}

/// The connected part of a connection's life. The reader (this task) decodes and handles the
/// client's packets and keeps the keep alive; a writer task writes whatever the session has to
/// say. A client that stops reading therefore blocks only its writer: its keep alive is still
/// enforced and its will still published.
async fn serve(
    link: Link,
    peer: Peer,
    mut reader: Reader,
    writer: Writer,
    mut incoming: Incoming,
    mut stop: watch::Receiver<bool>,
) -> End {
    let closing = Arc::new(AtomicBool::new(false));
    let mut writer_task = tokio::spawn(write_loop(link.clone(), writer, Arc::clone(&closing)));
    // Packets that arrived with CONNECT are handled at once, before waiting for more.
    let mut end = handle_buffered(&link, peer, &mut incoming);
    while end.is_none() {
        // One timer for the keep alive and a re-authentication under way: every branch's
        // future lives in this task's state, which every idle connection keeps.
        let keep_alive = link.handle.lock().session.deadline();
        let reauth_deadline = incoming.reauth.as_ref().and_then(|r| r.deadline);
        let deadline = match (keep_alive, reauth_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = deadline.map(|d| tokio::time::sleep_until(d.into()));
        end = tokio::select! {
            biased;
            _ = stop.changed() => Some(End::Shutdown),
            written = &mut writer_task => Some(match written {
                Ok(WriterEnd::TakenOver) => End::TakenOver,
                _ => End::Abnormal(None),
            }),
            read = reader.read_some(&mut incoming.buf) => match read {
                Ok(0) | Err(_) => Some(End::Abnormal(None)),
                Ok(n) => {
                    link.broker.stats.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
                    handle_buffered(&link, peer, &mut incoming)
                }
            },
            () = async { if let Some(s) = sleep { s.await } }, if deadline.is_some() => {
                let now = Instant::now();
                if reauth_deadline.is_some_and(|at| now >= at) {
                    // [MQTT-4.12.1-2] A re-authentication that does not finish in time fails.
                    return_farewell(ReasonCode::NotAuthorized, "re-authentication not completed in time")
                } else {
                let expired = link.handle.lock().session.handle_timeout(now);
                expired.err().map(|close| {
                    log_close(peer, link.handle.client_id(), &close);
                    End::Abnormal(Some(farewell(&close)))
                })
                }
            }
        };
    }
    let end = end.unwrap_or(End::Abnormal(None));
    // A 5.0 client is told why the server closes: the reason of a violation or keep alive
    // timeout, or "server shutting down" (5.0 section 4.13).
    // The reason string says what happened; a DISCONNECT may carry one even to a client that
    // asked for no problem information [MQTT-3.1.2-29].
    let goodbye = match &end {
        End::Abnormal(Some(f)) => Some((f.reason, Some(f.text.as_str()))),
        End::Shutdown => Some((ReasonCode::ServerShuttingDown, None)),
        _ => None,
    };
    if let Some((reason, text)) = goodbye.filter(|_| link.version.is_v5()) {
        let mut slot = link.handle.lock();
        if slot.owner == link.generation {
            if reason != ReasonCode::ServerShuttingDown {
                // Nothing else goes out after a violation: unsent messages stay in flight
                // or queued for a persistent session, as for a lost connection.
                let _ = slot.session.take_outbox();
            }
            let mut disconnect = Disconnect::new(reason);
            disconnect.properties.reason_string = text
                .and_then(|t| MqttString::try_from(t.chars().take(200).collect::<String>()).ok());
            slot.session.send(Packet::from(disconnect));
        }
    }
    let finish = match end {
        // A connection that failed gets nothing more written: its writer may be stuck on a
        // client that does not read. A 5.0 client gets its DISCONNECT if the writer can send
        // it at once.
        // The writer of a 5.0 connection taken over says so (0x8E) before it stops.
        End::Abnormal(Some(_)) | End::TakenOver if link.version.is_v5() => Some(FAREWELL_TIMEOUT),
        End::Abnormal(_) | End::TakenOver => None,
        // Otherwise the writer writes what is left (a shutdown flushes the queues), within a
        // bound.
        End::Graceful { .. } | End::Shutdown => Some(FINISH_TIMEOUT),
    };
    match finish {
        None => writer_task.abort(),
        Some(bound) => {
            closing.store(true, Ordering::Release);
            link.waker.notify_one();
            if tokio::time::timeout(bound, &mut writer_task).await.is_err() {
                writer_task.abort();
            }
        }
    }
    end
}

/// Handles every complete packet in the buffer; `Some` when the connection must end.
fn handle_buffered(link: &Link, peer: Peer, incoming: &mut Incoming) -> Option<End> {
    loop {
        let packet = match incoming.decoder.decode(&mut incoming.buf) {
            Ok(Some(packet)) => packet,
            Ok(None) => return None,
            Err(e) => {
                warn_violation(peer, link.handle.client_id(), &e);
                // A reason a DISCONNECT cannot carry (0x84 for a second CONNECT of another
                // version) is a protocol error there [MQTT-3.14.2-1].
                let mut reason = e.reason_code();
                if !ReasonCode::allowed_in(PacketType::Disconnect).contains(&reason) {
                    reason = ReasonCode::ProtocolError;
                }
                return Some(End::Abnormal(Some(Farewell {
                    reason,
                    text: e.to_string(),
                })));
            }
        };
        match link
            .broker
            .handle_packet(&link.handle, link.generation, packet, Instant::now())
        {
            Ok(Flow::Continue) => {}
            Ok(Flow::TakenOver) => return Some(End::TakenOver),
            Ok(Flow::Disconnect { publish_will }) => return Some(End::Graceful { publish_will }),
            Ok(Flow::Auth(auth)) => {
                if let Err(f) = reauthenticate(link, incoming.reauth.as_deref_mut(), *auth) {
                    warn_violation(peer, link.handle.client_id(), &f.text);
                    return Some(End::Abnormal(Some(f)));
                }
            }
            Err(close) => {
                log_close(peer, link.handle.client_id(), &close);
                return Some(End::Abnormal(Some(farewell(&close))));
            }
        }
    }
}

/// What the reading side of a connected connection keeps: the decoder, the read buffer, and
/// the state of enhanced authentication.
struct Incoming {
    decoder: Decoder,
    buf: BytesMut,
    /// Only for a connection that authenticated with a method (boxed: the rest need none).
    reauth: Option<Box<ReAuth>>,
}

/// (5.0) The enhanced authentication of a connection: the method it authenticated with, and a
/// re-authentication under way.
struct ReAuth {
    method: String,
    /// Who authenticated: a re-authentication must be the same user.
    user: String,
    conversation: Option<Box<dyn AuthConversation>>,
    /// When a re-authentication under way must be done (the connect timeout after it
    /// started): a client cannot leave one half finished for ever.
    deadline: Option<Instant>,
    limit: Duration,
}

/// Authentication Data as bytes (empty when absent).
fn auth_data(data: Option<&Secret>) -> bytes::Bytes {
    data.map(|d| d.expose().clone()).unwrap_or_default()
}

/// An AUTH packet with this reason, method and data.
fn auth_packet(reason: ReasonCode, method: &str, data: Option<bytes::Bytes>) -> Packet {
    let mut auth = Auth::new(reason);
    auth.properties.authentication_method = MqttString::try_from(method).ok();
    auth.properties.authentication_data = data.map(Secret::new);
    Packet::from(auth)
}

/// Runs the enhanced authentication exchange of a CONNECT (5.0 section 4.12): AUTH 0x18 both
/// ways until the method says yes or no.
///
/// # Errors
/// The CONNACK reason to refuse the connection with.
async fn authenticate(
    reader: &mut Reader,
    writer: &mut Writer,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    broker: &Broker,
    connect: &mqtt_codec::Connect,
    method: &str,
) -> Result<Authenticated, ReasonCode> {
    let Some(auth_method) = broker.auth_method(method) else {
        return Err(ReasonCode::BadAuthenticationMethod);
    };
    let data = auth_data(connect.properties.authentication_data.as_ref());
    let mut step = auth_method.start(&data);
    loop {
        match step {
            AuthStep::Success { user, data } => {
                return Ok(Authenticated {
                    method: method.to_owned(),
                    user,
                    data,
                });
            }
            AuthStep::Failure(reason) => return Err(reason),
            AuthStep::Continue(data, conversation) => {
                let challenge = auth_packet(ReasonCode::ContinueAuthentication, method, Some(data));
                write_packets(writer, broker, ProtocolVersion::V5, [challenge])
                    .await
                    .map_err(|_| ReasonCode::UnspecifiedError)?;
                let answer = read_packet(reader, decoder, buf, broker)
                    .await
                    .map_err(|_| ReasonCode::MalformedPacket)?;
                let auth = match answer {
                    Some(Packet::Auth(auth)) => auth,
                    // The client may give up with DISCONNECT [MQTT-3.1.2-30], or just go.
                    Some(Packet::Disconnect(_)) | None => {
                        return Err(ReasonCode::NORMAL_DISCONNECTION);
                    }
                    // The client's answer to a challenge is AUTH 0x18 [MQTT-4.12.0-3].
                    Some(_) => return Err(ReasonCode::ProtocolError),
                };
                let same_method = auth
                    .properties
                    .authentication_method
                    .as_ref()
                    .is_some_and(|m| m.as_str() == method);
                if auth.reason_code != ReasonCode::ContinueAuthentication || !same_method {
                    return Err(ReasonCode::ProtocolError);
                }
                let data = auth_data(auth.properties.authentication_data.as_ref());
                step = conversation.step(&data);
            }
        }
    }
}

/// (5.0) Handles an AUTH from a connected client: a re-authentication (0x19) starts an exchange
/// with the method the connection authenticated with, 0x18 continues it; the answers go out
/// through the session's outbox (AUTH 0x18, then AUTH 0x00 on success).
///
/// # Errors
/// The DISCONNECT that ends the connection [MQTT-4.12.1-2]: a protocol error for an AUTH out
/// of turn or with another method [MQTT-4.12.1-1], or the method's refusal.
fn reauthenticate(link: &Link, reauth: Option<&mut ReAuth>, auth: Auth) -> Result<(), Farewell> {
    let protocol_error = |text: &str| Farewell {
        reason: ReasonCode::ProtocolError,
        text: text.to_owned(),
    };
    let Some(reauth) = reauth else {
        return Err(protocol_error(
            "AUTH on a connection without enhanced authentication [MQTT-4.12.0-7]",
        ));
    };
    let method = reauth.method.clone();
    if auth
        .properties
        .authentication_method
        .as_ref()
        .is_none_or(|m| m.as_str() != method)
    {
        return Err(protocol_error(
            "AUTH with another authentication method [MQTT-4.12.1-1]",
        ));
    }
    let data = auth_data(auth.properties.authentication_data.as_ref());
    let step = match (auth.reason_code, reauth.conversation.take()) {
        (ReasonCode::ReAuthenticate, None) => match link.broker.auth_method(&method) {
            Some(m) => m.start(&data),
            None => AuthStep::Failure(ReasonCode::NotAuthorized),
        },
        (ReasonCode::ContinueAuthentication, Some(conversation)) => conversation.step(&data),
        _ => return Err(protocol_error("AUTH out of turn")),
    };
    let reply = match step {
        AuthStep::Continue(data, conversation) => {
            reauth.conversation = Some(conversation);
            if reauth.deadline.is_none() {
                reauth.deadline = Some(Instant::now() + reauth.limit);
            }
            auth_packet(ReasonCode::ContinueAuthentication, &method, Some(data))
        }
        AuthStep::Success { user, .. } if reauth.user != user => {
            return Err(Farewell {
                reason: ReasonCode::NotAuthorized,
                text: "re-authentication as another user".to_owned(),
            });
        }
        AuthStep::Success { data, .. } => {
            reauth.deadline = None;
            auth_packet(ReasonCode::Success, &method, data)
        }
        AuthStep::Failure(reason) => {
            return Err(Farewell {
                reason,
                text: "re-authentication failed".to_owned(),
            });
        }
    };
    let mut slot = link.handle.lock();
    if slot.owner == link.generation {
        slot.session.send(reply);
        slot.wake();
    }
    Ok(())
}

/// Writes whatever the session has to say, whenever it is woken, until told to finish (after a
/// last flush), taken over, or the write fails.
async fn write_loop(link: Link, mut writer: Writer, closing: Arc<AtomicBool>) -> WriterEnd {
    loop {
        if link.handle.lock().owner != link.generation {
            // 5.0: the old connection is told before it is closed [MQTT-3.1.4-3].
            if link.version.is_v5() {
                let farewell = Packet::from(Disconnect::new(ReasonCode::SessionTakenOver));
                let _ = tokio::time::timeout(
                    FINISH_TIMEOUT,
                    // Boxed: a cold path that would otherwise grow every writer's future.
                    Box::pin(write_packets(
                        &mut writer,
                        &link.broker,
                        link.version,
                        [farewell],
                    )),
                )
                .await;
            }
            return WriterEnd::TakenOver;
        }
        let said_goodbye = match flush(&link, &mut writer).await {
            Ok(last) => last,
            Err(_) => return WriterEnd::Failed,
        };
        if said_goodbye || closing.load(Ordering::Acquire) {
            let _ = writer.shutdown().await;
            return WriterEnd::Finished;
        }
        link.waker.notified().await;
    }
}

/// An abnormal end with this DISCONNECT reason and text.
fn return_farewell(reason: ReasonCode, text: &str) -> Option<End> {
    Some(End::Abnormal(Some(Farewell {
        reason,
        text: text.to_owned(),
    })))
}

/// The 5.0 reason code and reason string a DISCONNECT gives for closing.
fn farewell(close: &Close) -> Farewell {
    match close {
        Close::KeepAliveTimeout => Farewell {
            reason: ReasonCode::KeepAliveTimeout,
            text: "keep alive timeout".into(),
        },
        Close::Violation {
            reason,
            detail,
            statement,
        } => Farewell {
            reason: *reason,
            text: match statement {
                Some(s) => format!("{detail} [{s}]"),
                None => (*detail).to_owned(),
            },
        },
    }
}

fn log_close(peer: Peer, client_id: &str, close: &Close) {
    match close {
        Close::KeepAliveTimeout => {
            tracing::info!(%peer, client_id, "keep alive expired: closing connection");
        }
        Close::Violation {
            statement, detail, ..
        } => warn_violation(
            peer,
            client_id,
            &format!("{detail} [{}]", statement.unwrap_or("-")),
        ),
    }
}

enum ReadError {
    Codec(CodecError),
    Io,
}

/// Reads until one whole packet is decoded; `None` at end of stream.
async fn read_packet(
    reader: &mut Reader,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    broker: &Broker,
) -> Result<Option<Packet>, ReadError> {
    loop {
        if let Some(packet) = decoder.decode(buf).map_err(ReadError::Codec)? {
            broker
                .stats
                .messages_received
                .fetch_add(1, Ordering::Relaxed);
            return Ok(Some(packet));
        }
        match reader.read_some(buf).await {
            Ok(0) => return Ok(None),
            Ok(n) => {
                broker
                    .stats
                    .bytes_received
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(_) => return Err(ReadError::Io),
        }
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Codec(e) => write!(f, "{e}"),
            Self::Io => f.write_str("read failed"),
        }
    }
}

/// Writes what the session has to say, encoded in one buffer and one write. Returns whether
/// it wrote the server's DISCONNECT: nothing may follow it [MQTT-3.14.4-1], so what came
/// after it in the outbox is dropped and the writer stops.
///
/// With a durable store, the outbox waits until the records it depends on are durable (its
/// packet identifiers, subscriptions, the stored copies of what it acknowledges): nothing goes
/// out that a crash could make the broker forget. While a message the client published is
/// being routed, its acknowledgement stays in the outbox: the writer is woken when it is done.
async fn flush(link: &Link, writer: &mut Writer) -> std::io::Result<bool> {
    let (outbox, need) = {
        let mut slot = link.handle.lock();
        if slot.owner != link.generation || slot.holds > 0 {
            return Ok(false);
        }
        slot.commit();
        (slot.session.take_outbox(), slot.need)
    };
    if outbox.is_empty() {
        return Ok(false);
    }
    link.broker.wait_durable(need).await;
    let mut last = false;
    let mut out = BytesMut::new();
    let mut packets = 0u64;
    let mut publishes = 0u64;
    for item in outbox {
        let written = match item {
            Outgoing::Packet(p) => {
                last = matches!(p, Packet::Disconnect(_));
                p.encode(link.version, link.max_packet_size, &mut out)
            }
            Outgoing::Publish {
                publish,
                envelope,
                properties,
            } => {
                publishes += 1;
                publish.encode_delivery(
                    envelope,
                    &properties,
                    link.version,
                    link.max_packet_size,
                    &mut out,
                )
            }
        };
        match written {
            Ok(_) => packets += 1,
            Err(e) => {
                tracing::warn!(client_id = %link.handle.client_id(), error = %e, "packet not sent");
            }
        }
        if last {
            break;
        }
    }
    write_all(writer, &out).await?;
    let s = &link.broker.stats;
    s.bytes_sent.fetch_add(out.len() as u64, Ordering::Relaxed);
    s.messages_sent.fetch_add(packets, Ordering::Relaxed);
    s.publish_sent.fetch_add(publishes, Ordering::Relaxed);
    Ok(last)
}

/// Encodes and writes packets directly (CONNACK, before or without a session).
async fn write_packets(
    writer: &mut Writer,
    broker: &Broker,
    version: ProtocolVersion,
    packets: impl IntoIterator<Item = Packet>,
) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    for p in packets {
        if p.encode(version, PROTOCOL_MAX_PACKET_SIZE, &mut out)
            .is_ok()
        {
            broker.stats.messages_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
    write_all(writer, &out).await?;
    broker
        .stats
        .bytes_sent
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    // Give the peer a moment to read before the socket closes behind the write.
    let _ = tokio::time::timeout(Duration::from_millis(100), writer.flush()).await;
    Ok(())
}

/// Writes everything (and flushes what a TLS or WebSocket layer buffers), within
/// [`WRITE_TIMEOUT`].
async fn write_all(writer: &mut Writer, bytes: &[u8]) -> std::io::Result<()> {
    let written = async {
        writer.write_all(bytes).await?;
        writer.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, written).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "client not reading",
        )),
    }
}
