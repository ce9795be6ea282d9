//! `mqtt sub`: subscribe and print what arrives, as `mosquitto_sub` does.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Args;
use mqtt_client::{
    Client, Event, OutgoingMessage, ProtocolVersion, PublishProperties, QoS, Subscription,
    SubscriptionOptions,
};

use crate::properties::CliProperties;
use mqtt_client::{TopicFilter, TopicName};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::connection::{ConnectionArgs, FileDefaults, Layout, UsageError, atoi, connect_failure};
use crate::format::{MessageView, Printer, V5Props};
use crate::publish::{eprint_unless, usage_failure_for};

/// The exit status of a `-W` timeout, as `mosquitto_sub`'s.
pub const TIMEOUT_EXIT: u8 = 27;

/// How long a subscriber ended by `-W`, SIGINT or SIGTERM waits at most to disconnect cleanly
/// (DISCONNECT sent, so the broker discards the will).
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// How long a subscriber that is done waits at most for the retained messages it cleared
/// (`--remove-retained`) to be acknowledged, and to disconnect.
pub const FLUSH_WAIT: Duration = Duration::from_secs(10);

/// `mqtt sub` options: `mosquitto_sub`'s. As there, `-t`, `-T` and `-U` may be repeated
/// (each adds a filter) and any other option given twice takes its last value.
#[derive(Args, Debug, Clone, Default)]
#[command(disable_help_flag = true, args_override_self = true)]
pub struct SubArgs {
    /// Topic filter to subscribe to; may be repeated.
    #[arg(short = 't', long = "topic", allow_hyphen_values = true)]
    pub topics: Vec<String>,
    /// Topic filter whose messages are not printed; may be repeated.
    #[arg(short = 'T', long = "filter-out", allow_hyphen_values = true)]
    pub filter_out: Vec<String>,
    /// Topic filter to unsubscribe from (after connecting); may be repeated.
    #[arg(short = 'U', long = "unsubscribe", allow_hyphen_values = true)]
    pub unsubscribe: Vec<String>,
    /// Exit after this many messages.
    #[arg(short = 'C', long = "count", allow_hyphen_values = true)]
    pub count: Option<String>,
    /// How messages are printed, and `-W`.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Exit once the subscriptions are acknowledged.
    #[arg(short = 'E')]
    pub exit_after_subscribe: bool,
    /// Only handle retained messages; exit at the first message that is not retained.
    #[arg(long = "retained-only")]
    pub retained_only: bool,
    /// Clear every retained message received (publish an empty retained message to it).
    #[arg(long = "remove-retained")]
    pub remove_retained: bool,
    /// Connection options.
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// The options `sub` and `rr` share: how messages are printed, and the timeout.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Exit with status 27 after this many seconds.
    #[arg(short = 'W', long = "timeout", allow_hyphen_values = true)]
    pub timeout: Option<String>,
    /// Print `topic payload`.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Output format (see `mqtt sub --help` and docs/cli.md).
    #[arg(short = 'F', allow_hyphen_values = true)]
    pub format: Option<String>,
    /// No end of line after each message.
    #[arg(short = 'N')]
    pub no_eol: bool,
    /// Pretty-print JSON output (`-F %j`, `%J`).
    #[arg(long = "pretty")]
    pub pretty: bool,
    /// Do not print retained ("stale") messages.
    #[arg(short = 'R')]
    pub no_retained: bool,
}

/// What ended the subscription.
enum End {
    /// `-C`, `-E`, `--retained-only`, every subscription refused, or stdout closed.
    Done,
    /// `-W`.
    TimedOut,
    /// SIGINT or SIGTERM.
    Stopped,
    /// The connection is gone.
    Lost(String),
}

/// A count or timeout as `mosquitto_sub` reads it (C's `atoi`, at least 1).
fn positive(text: &str, what: &str) -> Result<u32, UsageError> {
    let value = atoi(text);
    match u32::try_from(value) {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(UsageError::spaced(format!("Invalid {what} \"{value}\"."))),
    }
}

/// The options checked, before connecting.
struct Plan {
    filters: Vec<(String, QoS)>,
    filter_out: Vec<TopicFilter>,
    printer: Printer,
    count: Option<u32>,
    timeout: Option<Duration>,
}

impl SubArgs {
    fn plan(&self, url_topic: Option<String>, qos: QoS) -> Result<Plan, UsageError> {
        let count = self
            .count
            .as_deref()
            .map(|c| positive(c, "message count"))
            .transpose()?;
        let timeout = self
            .output
            .timeout
            .as_deref()
            .map(|t| positive(t, "timeout"))
            .transpose()?
            .map(|secs| Duration::from_secs(secs.into()));
        let mut topics = self.topics.clone();
        topics.extend(url_topic);
        if topics.is_empty() {
            return Err(UsageError::new("You must specify a topic to subscribe to."));
        }
        let mut filters = Vec::new();
        for topic in &topics {
            if TopicFilter::try_from(topic.as_str()).is_err() {
                return Err(UsageError::new(format!(
                    "Invalid subscription topic '{topic}', are all '+' and '#' wildcards correct?"
                )));
            }
            filters.push((topic.clone(), qos));
        }
        let mut filter_out = Vec::new();
        for topic in &self.filter_out {
            match TopicFilter::try_from(topic.as_str()) {
                Ok(f) => filter_out.push(f),
                Err(_) => {
                    return Err(UsageError::new(format!(
                        "Invalid filter topic '{topic}', are all '+' and '#' wildcards correct?"
                    )));
                }
            }
        }
        for topic in &self.unsubscribe {
            if TopicFilter::try_from(topic.as_str()).is_err() {
                return Err(UsageError::new(format!(
                    "Invalid unsubscribe topic '{topic}', are all '+' and '#' wildcards correct?"
                )));
            }
        }
        let printer = Printer::from_options(
            self.output.format.as_deref(),
            self.output.verbose,
            self.output.pretty,
            !self.output.no_eol,
        )
        .map_err(|e| UsageError::new(e.to_string()))?;
        if self.output.no_retained && self.retained_only {
            return Err(UsageError::with_layout(
                "Combining '-R' and '--retained-only' makes no sense.",
                Layout::BlankFirst,
            ));
        }
        Ok(Plan {
            filters,
            filter_out,
            printer,
            count,
            timeout,
        })
    }
}

/// Runs `mqtt sub`.
pub async fn run(args: SubArgs, file: &FileDefaults) -> ExitCode {
    run_as("sub", args, file, None).await
}

/// A message `mqtt rr` publishes once its subscription to the response topic is made.
pub(crate) type Request =
    Box<dyn Fn(&crate::connection::Resolved) -> OutgoingMessage + Send + Sync>;

/// Runs a subscriber for `tool` (usage errors name it); with a `request`, the message is
/// published once the subscriptions are acknowledged (`mqtt rr`).
pub(crate) async fn run_as(
    tool: &str,
    args: SubArgs,
    file: &FileDefaults,
    request: Option<Request>,
) -> ExitCode {
    let started = Instant::now();
    // From now on SIGINT and SIGTERM end the subscriber cleanly instead of killing it.
    let mut stop = Stop::new();
    let quiet = args.connection.quiet;
    let resolved = match args.connection.resolve(file) {
        Ok(r) => r,
        Err(e) => return usage_failure_for(tool, &e, quiet),
    };
    let plan = match args.plan(resolved.url_topic.clone(), resolved.qos) {
        Ok(p) => p,
        Err(e) => return usage_failure_for(tool, &e, quiet),
    };
    if let Err(e) = args.connection.check_tls_files(file) {
        return usage_failure_for(tool, &e, quiet);
    }
    let request = request.map(|make| make(&resolved));
    // A deadline past what the clock can hold is no deadline.
    let deadline = plan.timeout.and_then(|limit| started.checked_add(limit));

    let options = resolved.options.clone().request_timeout(None);
    let (client, mut events) = tokio::select! {
        connected = Client::connect(options) => match connected {
            Ok(c) => c,
            Err(e) => {
                let (lines, code) = connect_failure(&e, resolved.version);
                for line in lines {
                    eprint_unless(quiet, &line);
                }
                return ExitCode::from(code);
            }
        },
        () = until(deadline) => {
            eprint_unless(quiet, "Timed out");
            return ExitCode::from(TIMEOUT_EXIT);
        }
        () = stop.recv() => return ExitCode::SUCCESS,
    };
    let receiver = Receiver {
        args: &args,
        plan: &plan,
        v5: resolved.version == ProtocolVersion::V5,
        properties: &resolved.properties,
        request,
    };
    let farewell = resolved.properties.farewell();
    let mut clears = JoinSet::new();
    let end = tokio::select! {
        end = receiver.run(&client, &mut events, &mut clears) => end,
        () = until(deadline) => End::TimedOut,
        () = stop.recv() => End::Stopped,
    };
    match end {
        End::Done => {
            close(&client, &mut clears, FLUSH_WAIT, &farewell).await;
            ExitCode::SUCCESS
        }
        End::TimedOut => {
            eprint_unless(quiet, "Timed out");
            // mosquitto_rr gives up on its request with "disconnect with will message".
            let mut farewell = farewell;
            if tool == "rr" {
                farewell.reason_code = mqtt_client::ReasonCode::DisconnectWithWillMessage;
            }
            close(&client, &mut clears, CLOSE_WAIT, &farewell).await;
            ExitCode::from(TIMEOUT_EXIT)
        }
        End::Stopped => {
            close(&client, &mut clears, CLOSE_WAIT, &farewell).await;
            ExitCode::SUCCESS
        }
        End::Lost(why) => {
            eprint_unless(quiet, &format!("Error: {why}"));
            ExitCode::from(1)
        }
    }
}

/// Waits (at most `limit`) for the retained messages being cleared, then disconnects, which
/// also waits for what is still in flight and sends DISCONNECT.
async fn close(
    client: &Client,
    clears: &mut JoinSet<()>,
    limit: Duration,
    farewell: &mqtt_client::Disconnect,
) {
    let closing = async {
        while clears.join_next().await.is_some() {}
        let _ = client.disconnect_with(farewell.clone()).await;
    };
    let _ = tokio::time::timeout(limit, closing).await;
}

/// Sleeps until the deadline; forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// SIGINT and SIGTERM, which end `mqtt sub` as they end `mosquitto_sub`: a clean disconnect
/// and exit status 0.
struct Stop {
    #[cfg(unix)]
    signals: Vec<tokio::signal::unix::Signal>,
}

impl Stop {
    /// Installs the handlers (within the runtime). A handler that cannot be installed leaves
    /// that signal's default action.
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = [SignalKind::interrupt(), SignalKind::terminate()]
                .into_iter()
                .filter_map(|kind| signal(kind).ok())
                .collect();
            Self { signals }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Waits for one of the signals.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            let waits = self.signals.iter_mut().map(|s| Box::pin(s.recv()));
            let waits: Vec<_> = waits.collect();
            if waits.is_empty() {
                return std::future::pending().await;
            }
            // A signal stream that ends (it does not, while the runtime runs) stops nothing.
            if futures_select(waits).await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The first of several futures to finish.
#[cfg(unix)]
async fn futures_select<F: std::future::Future + Unpin>(mut futures: Vec<F>) -> F::Output {
    std::future::poll_fn(|cx| {
        for f in &mut futures {
            if let std::task::Poll::Ready(out) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(out);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// The MQTT 5 properties of a received message, as [`crate::format`] prints them.
fn v5_props(properties: &PublishProperties) -> V5Props {
    V5Props {
        payload_format_indicator: properties.payload_format_indicator.map(|f| f as u8),
        message_expiry_interval: properties.message_expiry_interval,
        content_type: properties
            .content_type
            .as_ref()
            .map(|c| c.as_str().to_owned()),
        response_topic: properties
            .response_topic
            .as_ref()
            .map(|t| t.as_str().to_owned()),
        correlation_data: properties.correlation_data.as_ref().map(|d| d.to_vec()),
        subscription_identifiers: properties
            .subscription_identifiers
            .iter()
            .map(|id| id.get())
            .collect(),
        topic_alias: properties.topic_alias.map(|a| a.get()),
        user_properties: properties
            .user_properties
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.as_str().to_owned()))
            .collect(),
        // The client does not keep the order the properties arrived in: the printer then
        // uses the order a Mosquitto broker forwards them in.
        order: Vec::new(),
    }
}

/// Subscribes (all filters in one SUBSCRIBE), then unsubscribes `-U` filters. Returns whether
/// the broker refused every filter.
async fn subscribe(
    client: &Client,
    filters: &[(String, QoS)],
    unsubscribe: &[String],
    properties: &CliProperties,
) -> Result<bool, String> {
    let subscriptions = filters
        .iter()
        .map(|(f, q)| {
            Ok(Subscription {
                filter: TopicFilter::try_from(f.as_str())?.copied(),
                options: SubscriptionOptions::new(*q),
            })
        })
        .collect::<Result<Vec<_>, mqtt_codec::TopicError>>()
        .map_err(|e| e.to_string())?;
    let codes = client
        .subscribe_with(subscriptions, properties.subscribe.clone())
        .await
        .map_err(|e| e.to_string())?;
    if !unsubscribe.is_empty() {
        client
            .unsubscribe_with(unsubscribe.iter(), properties.unsubscribe.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(!codes.is_empty() && codes.iter().all(|c| c.is_error()))
}

/// What the message loop needs.
struct Receiver<'a> {
    args: &'a SubArgs,
    plan: &'a Plan,
    /// Whether the connection is MQTT 5.0 (then messages carry properties).
    v5: bool,
    /// The `-D` properties.
    properties: &'a CliProperties,
    /// (`mqtt rr`) The request to publish once subscribed.
    request: Option<OutgoingMessage>,
}

impl Receiver<'_> {
    /// Prints messages until the count, `-E`, `--retained-only`, a refusal of every
    /// subscription or the connection ends it. Retained messages cleared by
    /// `--remove-retained` are sent from tasks in `clears`, so that a full request queue never
    /// drops one nor stalls the loop.
    async fn run(
        &self,
        client: &Client,
        events: &mut mqtt_client::Events,
        clears: &mut JoinSet<()>,
    ) -> End {
        let args = self.args;
        let quiet = args.connection.quiet;
        let subscribed = subscribe(
            client,
            &self.plan.filters,
            &args.unsubscribe,
            self.properties,
        );
        tokio::pin!(subscribed);
        let mut subscribing = true;
        let mut printed: u64 = 0;
        let mut out = Vec::new();
        let mut stdout = std::io::stdout();
        loop {
            tokio::select! {
                result = &mut subscribed, if subscribing => {
                    subscribing = false;
                    match result {
                        Err(why) => return End::Lost(why),
                        Ok(true) => {
                            eprint_unless(quiet, "All subscription requests were denied.");
                            return End::Done;
                        }
                        Ok(false) if args.exit_after_subscribe => return End::Done,
                        Ok(false) => {
                            if let Some(request) = self.request.clone() {
                                // Subscribed to the response topic: now ask.
                                if let Err(e) = client.send(request).await {
                                    return End::Lost(e.to_string());
                                }
                            }
                        }
                    }
                }
                event = events.recv() => match event {
                    Some(Event::Message(m)) => {
                        if args.retained_only && !m.retain() {
                            return End::Done;
                        }
                        if args.remove_retained && m.retain() && !m.payload().is_empty() {
                            // Finished clears leave the set, so it holds only those in flight.
                            while clears.try_join_next().is_some() {}
                            clears.spawn(clear(client.clone(), m.topic().clone()));
                        }
                        if args.output.no_retained && m.retain() {
                            continue;
                        }
                        if self.plan.filter_out.iter().any(|f| f.matches(m.topic())) {
                            continue;
                        }
                        let props = self.v5.then(|| v5_props(m.properties()));
                        let view = MessageView {
                            topic: m.topic().as_str(),
                            payload: m.payload(),
                            qos: m.qos() as u8,
                            retain: m.retain(),
                            mid: m.packet_id(),
                            properties: props.as_ref(),
                        };
                        out.clear();
                        let json_error = self.plan.printer.write(&view, SystemTime::now(), &mut out);
                        if stdout.write_all(&out).and_then(|()| stdout.flush()).is_err() {
                            // stdout is gone (a closed pipe): nothing more to do.
                            return End::Done;
                        }
                        if let Err(e) = json_error {
                            // Mosquitto reports each %J that met a payload that is not JSON.
                            for _ in 0..e.occurrences.max(1) {
                                eprint_unless(quiet, &format!("Error: {e}"));
                            }
                        }
                        printed += 1;
                        if self.plan.count.is_some_and(|c| printed >= u64::from(c)) {
                            return End::Done;
                        }
                    }
                    Some(Event::Disconnected { reason }) => {
                        if args.connection.debug {
                            eprint_unless(false, &format!("Connection lost: {reason}"));
                        }
                    }
                    Some(_) => {}
                    None => return End::Lost("The connection was lost.".into()),
                }
            }
        }
    }
}

/// Clears a retained message: an empty retained message at QoS 1, acknowledged.
async fn clear(client: Client, topic: TopicName) {
    let message = OutgoingMessage::with_topic(topic, bytes::Bytes::new())
        .qos(QoS::AtLeastOnce)
        .retain(true);
    if let Ok(ack) = client.send(message).await {
        let _ = ack.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: SubArgs,
    }

    fn parse(args: &[&str]) -> SubArgs {
        Cli::try_parse_from(std::iter::once("sub").chain(args.iter().copied()))
            .unwrap()
            .args
    }

    fn plan_error(args: &[&str]) -> UsageError {
        match parse(args).plan(None, QoS::AtMostOnce) {
            Ok(_) => panic!("{args:?} accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn filters_add_up_and_other_options_take_the_last_value() {
        let args = parse(&[
            "-t", "a", "-t", "b", "-T", "c", "-T", "d", "-U", "e", "-U", "f", "-C", "1", "-C", "2",
            "-q", "1", "-q", "2",
        ]);
        assert_eq!(args.topics, ["a", "b"]);
        assert_eq!(args.filter_out, ["c", "d"]);
        assert_eq!(args.unsubscribe, ["e", "f"]);
        assert_eq!(args.count.as_deref(), Some("2"));
        assert_eq!(args.connection.qos.as_deref(), Some("2"));
    }

    #[test]
    fn counts_and_timeouts_are_read_as_mosquitto_sub_reads_them() {
        let e = plan_error(&["-t", "t", "-W", "18446744073709551615"]);
        assert_eq!(e.message, "Invalid timeout \"-1\".");
        assert_eq!(e.layout, Layout::SpacedPointer);
        assert_eq!(
            plan_error(&["-t", "t", "-W", "-5"]).message,
            "Invalid timeout \"-5\"."
        );
        assert_eq!(
            plan_error(&["-t", "t", "-C", "abc"]).message,
            "Invalid message count \"0\"."
        );
        // The largest timeout Mosquitto takes is accepted and does not overflow the clock.
        let plan = parse(&["-t", "t", "-W", "2147483647"])
            .plan(None, QoS::AtMostOnce)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.timeout, Some(Duration::from_secs(2_147_483_647)));
        assert!(
            Instant::now()
                .checked_add(Duration::from_secs(2_147_483_647))
                .is_some()
        );
    }

    #[test]
    fn no_retained_with_retained_only_is_refused() {
        let e = plan_error(&["-t", "t", "-R", "--retained-only"]);
        assert_eq!(
            e.message,
            "Combining '-R' and '--retained-only' makes no sense."
        );
        assert_eq!(e.layout, Layout::BlankFirst);
    }

    #[test]
    fn v5_properties_reach_the_printer() {
        let properties = PublishProperties {
            content_type: Some("text/plain".try_into().unwrap()),
            user_properties: vec![("k".try_into().unwrap(), "v".try_into().unwrap())],
            message_expiry_interval: Some(60),
            ..PublishProperties::default()
        };
        let props = v5_props(&properties);
        assert_eq!(props.content_type.as_deref(), Some("text/plain"));
        assert_eq!(props.user_properties, [("k".to_owned(), "v".to_owned())]);
        assert_eq!(props.message_expiry_interval, Some(60));
        assert!(props.response_topic.is_none());
    }
}
