//! `mqtt pub`: publish one message (or each line of stdin) and exit, as `mosquitto_pub` does.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use mqtt_client::{Ack, Client, OutgoingMessage, TopicName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::connection::{ConnectionArgs, FileDefaults, UsageError, connect_failure};

/// `mqtt pub` options: `mosquitto_pub`'s.
#[derive(Args, Debug, Clone, Default)]
#[command(disable_help_flag = true)]
pub struct PubArgs {
    /// Topic to publish to.
    #[arg(short = 't', long = "topic")]
    pub topic: Option<String>,
    /// Message payload.
    #[arg(short = 'm', long = "message")]
    pub message: Option<String>,
    /// Send the contents of a file as the message.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Read stdin, sending each line as a message.
    #[arg(short = 'l', long = "stdin-line")]
    pub stdin_line: bool,
    /// Send a null (zero length) message.
    #[arg(short = 'n', long = "null-message")]
    pub null_message: bool,
    /// Read stdin, sending the whole input as one message.
    #[arg(short = 's', long = "stdin-file")]
    pub stdin_file: bool,
    /// Retain the message.
    #[arg(short = 'r', long = "retain")]
    pub retain: bool,
    /// Publish the message N times.
    #[arg(long = "repeat")]
    pub repeat: Option<String>,
    /// Seconds between repeated publishes.
    #[arg(long = "repeat-delay")]
    pub repeat_delay: Option<String>,
    /// Maximum QoS 1/2 messages in flight.
    #[arg(short = 'M')]
    pub max_inflight: Option<String>,
    /// Connection options.
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Where the payload comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Message(Bytes),
    File(PathBuf),
    Lines,
    Null,
    Stdin,
}

/// The checked request.
#[derive(Debug)]
struct Plan {
    topic: TopicName,
    source: Source,
    repeat: u32,
    repeat_delay: Duration,
}

impl PubArgs {
    fn plan(&self, url_topic: Option<String>) -> Result<Plan, UsageError> {
        let sources = [
            self.message.is_some(),
            self.file.is_some(),
            self.stdin_line,
            self.null_message,
            self.stdin_file,
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(UsageError(
                "Only one type of message can be sent at once.".into(),
            ));
        }
        let topic = self.topic.clone().or(url_topic);
        let source = if let Some(m) = &self.message {
            Source::Message(Bytes::from(m.clone()))
        } else if let Some(f) = &self.file {
            Source::File(f.clone())
        } else if self.stdin_line {
            Source::Lines
        } else if self.null_message {
            Source::Null
        } else if self.stdin_file {
            Source::Stdin
        } else {
            return Err(UsageError(
                "Both topic and message must be supplied.".into(),
            ));
        };
        let Some(topic) = topic else {
            return Err(UsageError(
                "Both topic and message must be supplied.".into(),
            ));
        };
        let topic = TopicName::try_from(topic.as_str()).map_err(|_| {
            UsageError(format!(
                "Invalid publish topic '{topic}', does it contain '+' or '#'?"
            ))
        })?;
        let repeat = match &self.repeat {
            Some(text) => match text.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(UsageError(format!("Invalid repeat count \"{text}\"."))),
            },
            None => 1,
        };
        let repeat_delay = match &self.repeat_delay {
            Some(text) => match text.parse::<f64>() {
                Ok(s) if s >= 0.0 && s.is_finite() => Duration::from_secs_f64(s),
                _ => return Err(UsageError(format!("Invalid repeat delay \"{text}\"."))),
            },
            None => Duration::ZERO,
        };
        Ok(Plan {
            topic,
            source,
            repeat,
            repeat_delay,
        })
    }
}

/// Runs `mqtt pub`.
pub async fn run(args: PubArgs, file: &FileDefaults) -> ExitCode {
    let resolved = match args.connection.resolve(file) {
        Ok(r) => r,
        Err(e) => return usage_failure(&e, args.connection.quiet),
    };
    let quiet = resolved.quiet;
    let plan = match args.plan(resolved.url_topic.clone()) {
        Ok(p) => p,
        Err(e) => return usage_failure(&e, quiet),
    };
    let mut options = resolved.options.reconnect(None).request_timeout(None);
    if let Some(text) = &args.max_inflight {
        match text.parse::<u16>() {
            Ok(n) if n >= 1 => options = options.max_inflight(n),
            _ => {
                return usage_failure(
                    &UsageError(format!("Invalid max inflight \"{text}\".")),
                    quiet,
                );
            }
        }
    }
    // A file is read before connecting, so that a missing file costs no connection.
    let file_payload = match &plan.source {
        Source::File(path) => match std::fs::read(path) {
            Ok(bytes) => Some(Bytes::from(bytes)),
            Err(_) => {
                eprint_unless(
                    quiet,
                    &format!("Error: Unable to open file \"{}\".", path.display()),
                );
                return ExitCode::from(1);
            }
        },
        _ => None,
    };
    let (client, _events) = match Client::connect(options).await {
        Ok(c) => c,
        Err(e) => {
            let (lines, code) = connect_failure(&e);
            for line in lines {
                eprint_unless(quiet, &line);
            }
            if matches!(e, mqtt_client::Error::Refused(_)) {
                eprint_unless(quiet, "Error: The connection was refused.");
            }
            return ExitCode::from(code);
        }
    };
    let qos = resolved.qos;
    let message = |payload: Bytes| {
        OutgoingMessage::with_topic(plan.topic.clone(), payload)
            .qos(qos)
            .retain(args.retain)
    };
    let result = match plan.source {
        Source::Lines => publish_lines(&client, &message).await,
        source => {
            let payload = match source {
                Source::Message(m) => m,
                Source::Null => Bytes::new(),
                Source::File(_) => file_payload.unwrap_or_default(),
                Source::Stdin => {
                    let mut all = Vec::new();
                    if let Err(e) = tokio::io::stdin().read_to_end(&mut all).await {
                        eprint_unless(
                            quiet,
                            &format!("Error: {}", crate::connection::strerror(&e)),
                        );
                        return ExitCode::from(1);
                    }
                    Bytes::from(all)
                }
                Source::Lines => Bytes::new(),
            };
            publish_repeated(&client, message(payload), plan.repeat, plan.repeat_delay).await
        }
    };
    let disconnected = client.disconnect().await;
    match (result, disconnected) {
        (Ok(()), Ok(())) => ExitCode::SUCCESS,
        (Err(e), _) | (Ok(()), Err(e)) => {
            eprint_unless(quiet, &format!("Error: {e}"));
            ExitCode::from(1)
        }
    }
}

/// Publishes one message `repeat` times, waiting `delay` between them.
async fn publish_repeated(
    client: &Client,
    message: OutgoingMessage,
    repeat: u32,
    delay: Duration,
) -> Result<(), mqtt_client::Error> {
    let mut acks: Vec<Ack> = Vec::new();
    for i in 0..repeat {
        if i > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        acks.push(client.send(message.clone()).await?);
    }
    for ack in acks {
        ack.await?;
    }
    Ok(())
}

/// Publishes each line of stdin (without its end of line) as a message; empty lines too.
async fn publish_lines(
    client: &Client,
    message: &impl Fn(Bytes) -> OutgoingMessage,
) -> Result<(), mqtt_client::Error> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let mut acks = std::collections::VecDeque::new();
    loop {
        line.clear();
        let n = stdin
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| mqtt_client::Error::Connection(e.into()))?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        acks.push_back(client.send(message(Bytes::copy_from_slice(&line))).await?);
        // Keep the bookkeeping bounded on endless input: settle acknowledged messages.
        while acks.len() > 1000 {
            if let Some(ack) = acks.pop_front() {
                ack.await?;
            }
        }
    }
    for ack in acks {
        ack.await?;
    }
    Ok(())
}

/// Reports a usage error as `mosquitto_pub` does.
pub(crate) fn usage_failure(error: &UsageError, quiet: bool) -> ExitCode {
    usage_failure_for("pub", error, quiet)
}

/// Reports a usage error of `mqtt <tool>`.
pub(crate) fn usage_failure_for(tool: &str, error: &UsageError, quiet: bool) -> ExitCode {
    eprint_unless(
        quiet,
        &format!("Error: {error}\n\nUse 'mqtt {tool} --help' to see usage."),
    );
    ExitCode::from(1)
}

/// Writes a line to stderr unless `--quiet`.
pub(crate) fn eprint_unless(quiet: bool, line: &str) {
    if !quiet {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }
}
