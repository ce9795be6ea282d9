//! [`Client`], the handle the application holds, and [`Events`], what it receives.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use mqtt_codec::{
    ConnAckProperties, Disconnect, Publish, PublishProperties, QoS, QosPid, ReasonCode,
    SubscribeProperties, Subscription, SubscriptionOptions, TopicFilter, TopicName,
    UnsubscribeProperties,
};
use tokio::sync::{mpsc, oneshot};

use crate::driver::{self, Command};
use crate::error::ConnectionError;
use crate::{ConnectOptions, Error};

/// What [`Client::subscribe`] returns per filter: the QoS granted, or the server's refusal.
pub type Granted = Result<QoS, ReasonCode>;

/// A handle on a connection to an MQTT server. Cheap to clone, `Send + Sync`: every clone
/// talks to the same background driver task, which owns the connection, reconnects when it
/// drops and answers the server's packets (acknowledgements, keep alive) without the
/// application's help.
///
/// The driver runs until [`Client::disconnect`], until automatic reconnect gives up (or is
/// off and the connection drops), or until every `Client` and the [`Events`] are dropped.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::Sender<Command>,
    request_timeout: Option<Duration>,
    shared: Arc<Shared>,
}

/// State the driver publishes for the handles.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The largest packet the server accepts (5.0 Maximum Packet Size; the protocol's limit
    /// otherwise).
    pub(crate) max_packet_size: AtomicU32,
    /// Whether a connection is up.
    pub(crate) connected: AtomicBool,
}

impl Client {
    /// Connects, and returns once the server has accepted the connection: the handle and the
    /// stream of events (whose first event is [`Event::Connected`]). Must be called within a
    /// tokio runtime; the driver is a task on it.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for options that cannot work, [`Error::Refused`] with the
    /// CONNACK code, [`Error::Connection`] when the server cannot be reached. This first
    /// attempt is not retried; later connection losses are, as configured.
    pub async fn connect(options: ConnectOptions) -> Result<(Client, Events), Error> {
        let (first_tx, first_rx) = oneshot::channel();
        let (client, events) = Self::spawn(options, Some(first_tx))?;
        match first_rx.await {
            Ok(Ok(())) => Ok((client, events)),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(Error::Closed),
        }
    }

    /// Starts the driver without waiting for the first connection, which is retried like any
    /// other (with reconnect off, a failed first attempt ends the client). Must be called
    /// within a tokio runtime. Requests made before the connection is up wait for it.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for options that cannot work.
    pub fn start(options: ConnectOptions) -> Result<(Client, Events), Error> {
        Self::spawn(options, None)
    }

    fn spawn(
        options: ConnectOptions,
        first: Option<oneshot::Sender<Result<(), ConnectionError>>>,
    ) -> Result<(Client, Events), Error> {
        options.validate()?;
        let (commands_tx, commands_rx) = mpsc::channel(options.queue_capacity);
        let (events_tx, events_rx) = mpsc::channel(options.event_capacity);
        let shared = Arc::new(Shared {
            max_packet_size: AtomicU32::new(mqtt_codec::PROTOCOL_MAX_PACKET_SIZE),
            connected: AtomicBool::new(false),
        });
        let request_timeout = options.request_timeout;
        driver::spawn(options, commands_rx, events_tx, Arc::clone(&shared), first)?;
        let client = Client {
            inner: Arc::new(Inner {
                commands: commands_tx,
                request_timeout,
                shared,
            }),
        };
        Ok((client, Events { rx: events_rx }))
    }

    /// Whether a connection to the server is up right now.
    pub fn is_connected(&self) -> bool {
        self.inner.shared.connected.load(Ordering::Relaxed)
    }

    /// Whether the driver has stopped: every request now fails with [`Error::Closed`].
    pub fn is_closed(&self) -> bool {
        self.inner.commands.is_closed()
    }

    /// Publishes a message and waits until the server has it: for QoS 0 until it is handed to
    /// the connection, for QoS 1 until PUBACK, for QoS 2 until PUBCOMP. Across reconnects the
    /// message keeps its place; a QoS 2 message is never delivered twice.
    ///
    /// # Errors
    /// [`Error::Topic`] for an invalid topic name, [`Error::PacketTooLarge`],
    /// [`Error::Rejected`] when a 5.0 server refuses the message, [`Error::Timeout`] after the
    /// request timeout (the message stays queued and may still be delivered),
    /// [`Error::Disconnected`] when the connection dropped without reconnect,
    /// [`Error::Closed`] when the client is closed.
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<(), Error> {
        let message = OutgoingMessage::new(topic, payload)?
            .qos(qos)
            .retain(retain);
        let ack = self.send(message).await?;
        self.timed(ack, "the publish to be acknowledged").await
    }

    /// Queues a message, waiting only for room in the queue, and returns an [`Ack`] that
    /// resolves as [`Client::publish`] does. Use it to keep many messages in flight from one
    /// task.
    ///
    /// # Errors
    /// As [`Client::publish`], for what can be known before the message is queued.
    pub async fn send(&self, message: OutgoingMessage) -> Result<Ack, Error> {
        let (command, ack) = self.publish_command(message)?;
        self.inner
            .commands
            .send(command)
            .await
            .map_err(|_| Error::Closed)?;
        Ok(ack)
    }

    /// Queues a message if there is room, without waiting.
    ///
    /// # Errors
    /// [`Error::QueueFull`] when the queue is full; otherwise as [`Client::send`].
    pub fn try_publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<Ack, Error> {
        let message = OutgoingMessage::new(topic, payload)?
            .qos(qos)
            .retain(retain);
        self.try_send(message)
    }

    /// [`Client::try_publish`] for a prepared message.
    ///
    /// # Errors
    /// As [`Client::try_publish`].
    pub fn try_send(&self, message: OutgoingMessage) -> Result<Ack, Error> {
        let (command, ack) = self.publish_command(message)?;
        self.inner.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::QueueFull,
            mpsc::error::TrySendError::Closed(_) => Error::Closed,
        })?;
        Ok(ack)
    }

    fn publish_command(&self, message: OutgoingMessage) -> Result<(Command, Ack), Error> {
        let publish = message.publish;
        // Fixed header (at most 5 bytes), topic length, packet identifier.
        let size = publish.topic.len() + publish.payload.len() + 9;
        let limit = self.inner.shared.max_packet_size.load(Ordering::Relaxed);
        if size > limit as usize {
            return Err(Error::PacketTooLarge { size, limit });
        }
        let (tx, rx) = oneshot::channel();
        let command = Command::Publish {
            publish,
            qos: message.qos,
            reply: tx,
        };
        Ok((command, Ack { rx }))
    }

    /// Subscribes to filters, each at a maximum QoS, and returns what the server granted per
    /// filter, in order. Subscriptions are made again automatically when a reconnect finds the
    /// server without the session.
    ///
    /// # Errors
    /// [`Error::Topic`] for an invalid filter, [`Error::InvalidOption`] for an empty list,
    /// and the connection errors of [`Client::publish`].
    pub async fn subscribe<I, S>(&self, filters: I) -> Result<Vec<Granted>, Error>
    where
        I: IntoIterator<Item = (S, QoS)>,
        S: AsRef<str>,
    {
        let subscriptions = filters
            .into_iter()
            .map(|(filter, qos)| {
                Ok(Subscription {
                    filter: TopicFilter::try_from(filter.as_ref())?.copied(),
                    options: SubscriptionOptions::new(qos),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let codes = self
            .subscribe_with(subscriptions, SubscribeProperties::default())
            .await?;
        Ok(codes
            .into_iter()
            .map(|code| match code {
                ReasonCode::Success => Ok(QoS::AtMostOnce),
                ReasonCode::GrantedQoS1 => Ok(QoS::AtLeastOnce),
                ReasonCode::GrantedQoS2 => Ok(QoS::ExactlyOnce),
                other => Err(other),
            })
            .collect())
    }

    /// Subscribes with full subscription options and (5.0) properties; returns the SUBACK's
    /// reason codes.
    ///
    /// # Errors
    /// As [`Client::subscribe`].
    pub async fn subscribe_with(
        &self,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
    ) -> Result<Vec<ReasonCode>, Error> {
        if subscriptions.is_empty() {
            // [MQTT-3.8.3-3]
            return Err(Error::InvalidOption {
                option: "filters",
                reason: "a SUBSCRIBE needs at least one filter".into(),
            });
        }
        let (tx, rx) = oneshot::channel();
        self.command(Command::Subscribe {
            subscriptions,
            properties,
            reply: tx,
        })
        .await?;
        self.timed(Reply { rx }, "SUBACK").await
    }

    /// Removes subscriptions; returns the UNSUBACK's codes (3.x: all `Success`).
    ///
    /// # Errors
    /// [`Error::Topic`] for an invalid filter, [`Error::InvalidOption`] for an empty list,
    /// and the connection errors of [`Client::publish`].
    pub async fn unsubscribe<I, S>(&self, filters: I) -> Result<Vec<ReasonCode>, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.unsubscribe_with(filters, UnsubscribeProperties::default())
            .await
    }

    /// (5.0) As [`Client::unsubscribe`], with UNSUBSCRIBE properties (user properties).
    ///
    /// # Errors
    /// As [`Client::unsubscribe`].
    pub async fn unsubscribe_with<I, S>(
        &self,
        filters: I,
        properties: UnsubscribeProperties,
    ) -> Result<Vec<ReasonCode>, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let filters = filters
            .into_iter()
            .map(|f| Ok(TopicFilter::try_from(f.as_ref())?.copied()))
            .collect::<Result<Vec<_>, Error>>()?;
        if filters.is_empty() {
            // [MQTT-3.10.3-2]
            return Err(Error::InvalidOption {
                option: "filters",
                reason: "an UNSUBSCRIBE needs at least one filter".into(),
            });
        }
        let (tx, rx) = oneshot::channel();
        self.command(Command::Unsubscribe {
            filters,
            properties,
            reply: tx,
        })
        .await?;
        self.timed(Reply { rx }, "UNSUBACK").await
    }

    /// Disconnects gracefully: waits (up to the flush timeout) until every queued and
    /// in-flight request is answered, then sends DISCONNECT (so the server discards the will)
    /// and closes the connection. If the connection is down meanwhile, the client keeps
    /// reconnecting (when reconnect is on) until everything is flushed or the flush timeout
    /// passes. The driver then stops; requests still open fail with [`Error::Closed`].
    ///
    /// # Errors
    /// [`Error::Unflushed`] with the number of requests abandoned when the flush timeout
    /// passed first; [`Error::Closed`] if the client was already closed.
    pub async fn disconnect(&self) -> Result<(), Error> {
        self.disconnect_with(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION))
            .await
    }

    /// (5.0) Re-authenticates on the live connection with SCRAM-SHA-256 (the credentials of
    /// [`ConnectOptions::scram_sha256`]): AUTH 0x19, the server's challenge, the proof, and the
    /// server's own proof in AUTH 0x00 (MQTT 5.0 section 4.12.1). Other requests go on
    /// meanwhile.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] without SCRAM credentials or MQTT 5.0, or with a
    /// re-authentication already under way; [`Error::Disconnected`] when the connection is down
    /// or goes (a server that refuses closes it: DISCONNECT 0x87); [`Error::Connection`] when the
    /// server's proof does not verify; [`Error::Timeout`] after the request timeout.
    pub async fn reauthenticate(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Reauthenticate { reply: tx }).await?;
        let reply = async {
            match rx.await {
                Ok(result) => result,
                Err(_) => Err(Error::Closed),
            }
        };
        match self.inner.request_timeout {
            Some(limit) => tokio::time::timeout(limit, reply)
                .await
                .unwrap_or(Err(Error::Timeout("the re-authentication"))),
            None => reply.await,
        }
    }

    /// (5.0) As [`Client::disconnect`], with this DISCONNECT: reason 0x04 ("disconnect with
    /// will message") asks the server to publish the will all the same; a Session Expiry
    /// Interval property changes how long the server keeps the session (not from 0 to more).
    /// Before 5.0 the reason and properties are not sent.
    ///
    /// # Errors
    /// As [`Client::disconnect`].
    pub async fn disconnect_with(&self, packet: Disconnect) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Disconnect { reply: tx, packet })
            .await?;
        match rx.await {
            Ok(0) => Ok(()),
            Ok(abandoned) => Err(Error::Unflushed(abandoned)),
            Err(_) => Err(Error::Closed),
        }
    }

    async fn command(&self, command: Command) -> Result<(), Error> {
        self.inner
            .commands
            .send(command)
            .await
            .map_err(|_| Error::Closed)
    }

    async fn timed<F, T>(&self, future: F, what: &'static str) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>>,
    {
        match self.inner.request_timeout {
            Some(limit) => tokio::time::timeout(limit, future)
                .await
                .map_err(|_| Error::Timeout(what))?,
            None => future.await,
        }
    }
}

/// A message to publish, for [`Client::send`] and [`Client::try_send`].
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    publish: Publish,
    qos: QoS,
}

impl OutgoingMessage {
    /// A QoS 0 message, not retained.
    ///
    /// # Errors
    /// [`Error::Topic`] for an invalid topic name (empty, or with wildcards).
    pub fn new(topic: &str, payload: impl Into<Bytes>) -> Result<Self, Error> {
        let topic = TopicName::try_from(topic)?.copied();
        Ok(Self::with_topic(topic, payload))
    }

    /// A QoS 0 message, not retained, to an already validated topic (cheap to clone: use it
    /// to publish many messages to one topic).
    pub fn with_topic(topic: TopicName, payload: impl Into<Bytes>) -> Self {
        Self {
            publish: Publish::new(topic, payload),
            qos: QoS::AtMostOnce,
        }
    }

    /// Sets the QoS.
    pub fn qos(mut self, qos: QoS) -> Self {
        self.qos = qos;
        self
    }

    /// Sets the RETAIN flag.
    pub fn retain(mut self, retain: bool) -> Self {
        self.publish.retain = retain;
        self
    }

    /// (5.0) Sets the PUBLISH properties.
    pub fn properties(mut self, properties: PublishProperties) -> Self {
        self.publish.set_properties(properties);
        self
    }
}

/// Resolves when a queued message has been acknowledged, as [`Client::publish`] describes.
/// Dropping it does not cancel the message.
#[derive(Debug)]
#[must_use = "an Ack does nothing unless awaited; drop it to not wait"]
pub struct Ack {
    rx: oneshot::Receiver<Result<(), Error>>,
}

impl Future for Ack {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

/// The answer to a subscribe or unsubscribe request.
struct Reply<T> {
    rx: oneshot::Receiver<Result<T, Error>>,
}

impl<T> Future for Reply<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

/// A message from the server.
///
/// Topic and payload are slices of the received packet: nothing was copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    publish: Publish,
}

impl Message {
    pub(crate) fn new(publish: Publish) -> Self {
        Self { publish }
    }

    /// The topic it was published to.
    pub fn topic(&self) -> &TopicName {
        &self.publish.topic
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        &self.publish.payload
    }

    /// The QoS it was delivered at.
    pub fn qos(&self) -> QoS {
        self.publish.qos.qos()
    }

    /// Whether it is a retained message (sent because of a new subscription).
    pub fn retain(&self) -> bool {
        self.publish.retain
    }

    /// Whether the server marked it as a possible re-delivery.
    pub fn dup(&self) -> bool {
        self.publish.dup
    }

    /// The packet identifier it came with (QoS 1 and 2).
    pub fn packet_id(&self) -> Option<u16> {
        match self.publish.qos {
            QosPid::AtMostOnce => None,
            QosPid::AtLeastOnce(id) | QosPid::ExactlyOnce(id) => Some(id.get()),
        }
    }

    /// (5.0) Its properties.
    pub fn properties(&self) -> &PublishProperties {
        self.publish.properties()
    }

    /// The PUBLISH packet it came in.
    pub fn into_publish(self) -> Publish {
        self.publish
    }
}

/// What happens on the connection, in order.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The server accepted a connection.
    Connected {
        /// Whether the server still had the session (subscriptions and messages in flight).
        session_present: bool,
        /// (5.0) The CONNACK properties: the server's limits (Receive Maximum, Maximum QoS,
        /// Maximum Packet Size, Topic Alias Maximum, ...), an Assigned Client Identifier,
        /// Server Keep Alive, Response Information. Empty for 3.x.
        properties: Box<ConnAckProperties>,
    },
    /// A message arrived.
    Message(Message),
    /// The connection that was up went down.
    Disconnected {
        /// Why.
        reason: ConnectionError,
    },
    /// The client will try to connect again after `delay`.
    Reconnecting {
        /// The attempt about to be made, from 1.
        attempt: u32,
        /// The wait before it.
        delay: Duration,
        /// Why the previous connection or attempt failed.
        cause: ConnectionError,
    },
    /// A subscription re-made after the server lost the session was refused.
    SubscriptionLost {
        /// The filter.
        filter: TopicFilter,
        /// The server's code.
        code: ReasonCode,
    },
}

/// The events of one client, in order: a [`futures_core::Stream`], or call [`Events::recv`].
/// Ends (`None`) when the driver stops.
///
/// Events wait in a bounded queue ([`ConnectOptions::event_capacity`]); when it is full the
/// client stops reading from the server, which slows the server down rather than losing
/// messages. Dropping `Events` discards further messages but keeps the client working.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event; `None` once the driver has stopped.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

impl futures_core::Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}
