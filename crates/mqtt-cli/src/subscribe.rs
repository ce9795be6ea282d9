//! `mqtt sub`: subscribe and print what arrives, as `mosquitto_sub` does.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Args;
use mqtt_client::{Client, Event, QoS, TopicFilter};

use crate::connection::{ConnectionArgs, FileDefaults, UsageError, connect_failure};
use crate::format::{MessageView, Printer};
use crate::publish::{eprint_unless, usage_failure_for};

/// The exit status of a `-W` timeout, as `mosquitto_sub`'s.
pub const TIMEOUT_EXIT: u8 = 27;

/// `mqtt sub` options: `mosquitto_sub`'s.
#[derive(Args, Debug, Clone, Default)]
#[command(disable_help_flag = true)]
pub struct SubArgs {
    /// Topic filter to subscribe to; may be repeated.
    #[arg(short = 't', long = "topic")]
    pub topics: Vec<String>,
    /// Topic filter whose messages are not printed; may be repeated.
    #[arg(short = 'T', long = "filter-out")]
    pub filter_out: Vec<String>,
    /// Topic filter to unsubscribe from (after connecting); may be repeated.
    #[arg(short = 'U', long = "unsubscribe")]
    pub unsubscribe: Vec<String>,
    /// Exit after this many messages.
    #[arg(short = 'C', long = "count")]
    pub count: Option<String>,
    /// Exit with status 27 after this many seconds.
    #[arg(short = 'W', long = "timeout")]
    pub timeout: Option<String>,
    /// Print `topic payload`.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Output format (see `mqtt sub --help` and docs/cli.md).
    #[arg(short = 'F')]
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

/// What ended the subscription loop.
enum End {
    Done,
    Lost(String),
}

fn usage_failure(error: &UsageError, quiet: bool) -> ExitCode {
    usage_failure_for("sub", error, quiet)
}

fn positive(text: &str, what: &str) -> Result<u64, UsageError> {
    match text.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(UsageError(format!("Invalid {what} \"{text}\"."))),
    }
}

/// Runs `mqtt sub`.
pub async fn run(args: SubArgs, file: &FileDefaults) -> ExitCode {
    let started = tokio::time::Instant::now();
    let quiet = args.connection.quiet;
    let resolved = match args.connection.resolve(file) {
        Ok(r) => r,
        Err(e) => return usage_failure(&e, quiet),
    };
    let count = match args.count.as_deref().map(|c| positive(c, "message count")) {
        Some(Err(e)) => return usage_failure(&e, quiet),
        Some(Ok(n)) => Some(n),
        None => None,
    };
    let timeout = match args.timeout.as_deref().map(|t| positive(t, "timeout")) {
        Some(Err(e)) => return usage_failure(&e, quiet),
        Some(Ok(n)) => Some(Duration::from_secs(n)),
        None => None,
    };
    let mut topics = args.topics.clone();
    topics.extend(resolved.url_topic.clone());
    if topics.is_empty() {
        return usage_failure(
            &UsageError("You must specify a topic to subscribe to.".into()),
            quiet,
        );
    }
    let mut filters = Vec::new();
    for topic in &topics {
        match TopicFilter::try_from(topic.as_str()) {
            Ok(_) => filters.push((topic.clone(), resolved.qos)),
            Err(_) => {
                return usage_failure(
                    &UsageError(format!(
                        "Invalid subscription topic '{topic}', are all '+' and '#' wildcards correct?"
                    )),
                    quiet,
                );
            }
        }
    }
    let mut filter_out = Vec::new();
    for topic in &args.filter_out {
        match TopicFilter::try_from(topic.as_str()) {
            Ok(f) => filter_out.push(f),
            Err(_) => {
                return usage_failure(
                    &UsageError(format!(
                        "Invalid filter topic '{topic}', are all '+' and '#' wildcards correct?"
                    )),
                    quiet,
                );
            }
        }
    }
    for topic in &args.unsubscribe {
        if TopicFilter::try_from(topic.as_str()).is_err() {
            return usage_failure(
                &UsageError(format!(
                    "Invalid unsubscribe topic '{topic}', are all '+' and '#' wildcards correct?"
                )),
                quiet,
            );
        }
    }
    let printer = match Printer::from_options(
        args.format.as_deref(),
        args.verbose,
        args.pretty,
        !args.no_eol,
    ) {
        Ok(p) => p,
        Err(e) => return usage_failure(&UsageError(e.to_string()), quiet),
    };

    let work = async {
        let options = resolved.options.clone().request_timeout(None);
        let (client, mut events) = match Client::connect(options).await {
            Ok(c) => c,
            Err(e) => {
                let (lines, code) = connect_failure(&e);
                for line in lines {
                    eprint_unless(quiet, &line);
                }
                return Err(ExitCode::from(code));
            }
        };
        let subscribed = subscribe(&client, &filters, &args.unsubscribe, quiet);
        let end = receive(
            &client,
            &mut events,
            subscribed,
            &args,
            &printer,
            &filter_out,
            count,
        )
        .await;
        Ok((client, end))
    };
    let outcome = match timeout {
        Some(limit) => match tokio::time::timeout_at(started + limit, work).await {
            Ok(outcome) => outcome,
            Err(_) => {
                eprint_unless(quiet, "Timed out");
                return ExitCode::from(TIMEOUT_EXIT);
            }
        },
        None => work.await,
    };
    let (client, end) = match outcome {
        Ok(ok) => ok,
        Err(code) => return code,
    };
    match end {
        End::Done => {
            let _ = client.disconnect().await;
            ExitCode::SUCCESS
        }
        End::Lost(why) => {
            eprint_unless(quiet, &format!("Error: {why}"));
            ExitCode::from(1)
        }
    }
}

/// Subscribes (all filters in one SUBSCRIBE), then unsubscribes `-U` filters.
async fn subscribe(
    client: &Client,
    filters: &[(String, QoS)],
    unsubscribe: &[String],
    quiet: bool,
) -> Result<(), String> {
    let granted = client
        .subscribe(filters.iter().map(|(f, q)| (f.as_str(), *q)))
        .await
        .map_err(|e| e.to_string())?;
    for ((filter, _), g) in filters.iter().zip(&granted) {
        if g.is_err() {
            eprint_unless(
                quiet,
                &format!("Subscription to {filter} was refused by the broker."),
            );
        }
    }
    if !unsubscribe.is_empty() {
        client
            .unsubscribe(unsubscribe.iter())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Prints messages until the count, `-E`, `--retained-only` or the connection ends it.
async fn receive(
    client: &Client,
    events: &mut mqtt_client::Events,
    subscribed: impl std::future::Future<Output = Result<(), String>>,
    args: &SubArgs,
    printer: &Printer,
    filter_out: &[TopicFilter],
    count: Option<u64>,
) -> End {
    tokio::pin!(subscribed);
    let mut subscribing = true;
    let mut printed: u64 = 0;
    let mut out = Vec::new();
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            result = &mut subscribed, if subscribing => {
                subscribing = false;
                if let Err(why) = result {
                    return End::Lost(why);
                }
                if args.exit_after_subscribe {
                    return End::Done;
                }
            }
            event = events.recv() => match event {
                Some(Event::Message(m)) => {
                    if args.retained_only && !m.retain() {
                        return End::Done;
                    }
                    if args.remove_retained && m.retain() && !m.payload().is_empty() {
                        let _ = client
                            .try_publish(m.topic().as_str(), bytes::Bytes::new(), QoS::AtLeastOnce, true);
                    }
                    if args.no_retained && m.retain() {
                        continue;
                    }
                    if filter_out.iter().any(|f| f.matches(m.topic())) {
                        continue;
                    }
                    let view = MessageView {
                        topic: m.topic().as_str(),
                        payload: m.payload(),
                        qos: m.qos() as u8,
                        retain: m.retain(),
                        mid: m.packet_id(),
                        properties: None,
                    };
                    out.clear();
                    let json_error = printer.write(&view, SystemTime::now(), &mut out);
                    if stdout.write_all(&out).and_then(|()| stdout.flush()).is_err() {
                        // stdout is gone (a closed pipe): nothing more to do.
                        return End::Done;
                    }
                    if let Err(e) = json_error {
                        // Mosquitto reports each %J that met a payload that is not JSON.
                        for _ in 0..e.occurrences.max(1) {
                            eprint_unless(args.connection.quiet, &format!("Error: {e}"));
                        }
                    }
                    printed += 1;
                    if count.is_some_and(|c| printed >= c) {
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
