//! `mqtt pub`: publish one message (or each line of stdin) and exit, as `mosquitto_pub` does.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{ArgAction, Args};
use mqtt_client::{Client, OutgoingMessage, TopicName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::connection::{
    ConnectionArgs, FileDefaults, Layout, UsageError, atoi, connect_failure, pub_refusal_line,
};

/// `mqtt pub` options: `mosquitto_pub`'s. As there, an option given twice takes its last
/// value, except the message options: a second one is an error.
#[derive(Args, Debug, Clone, Default)]
#[command(disable_help_flag = true, args_override_self = true)]
pub struct PubArgs {
    /// Topic to publish to.
    #[arg(short = 't', long = "topic", allow_hyphen_values = true)]
    pub topic: Option<String>,
    /// Message payload.
    #[arg(short = 'm', long = "message", action = ArgAction::Append, allow_hyphen_values = true)]
    pub message: Vec<String>,
    /// Send the contents of a file as the message.
    #[arg(short = 'f', long = "file", action = ArgAction::Append, allow_hyphen_values = true)]
    pub file: Vec<PathBuf>,
    /// Read stdin, sending each line as a message.
    #[arg(short = 'l', long = "stdin-line", action = ArgAction::Count)]
    pub stdin_line: u8,
    /// Send a null (zero length) message.
    #[arg(short = 'n', long = "null-message", action = ArgAction::Count)]
    pub null_message: u8,
    /// Read stdin, sending the whole input as one message.
    #[arg(short = 's', long = "stdin-file", action = ArgAction::Count)]
    pub stdin_file: u8,
    /// Retain the message.
    #[arg(short = 'r', long = "retain")]
    pub retain: bool,
    /// Publish the message N times.
    #[arg(long = "repeat", allow_hyphen_values = true)]
    pub repeat: Option<String>,
    /// Seconds between repeated publishes.
    #[arg(long = "repeat-delay", allow_hyphen_values = true)]
    pub repeat_delay: Option<String>,
    /// Maximum QoS 1/2 messages in flight.
    #[arg(short = 'M', allow_hyphen_values = true)]
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
    max_inflight: Option<u16>,
}

/// C's `atof` (which `mosquitto_pub` uses for `--repeat-delay`): the longest prefix that is a
/// number, after leading white space; 0 when there is none.
fn atof(text: &str) -> f64 {
    let text = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let mut end = text.len();
    loop {
        if let Some(prefix) = text.get(..end)
            && let Ok(value) = prefix.parse::<f64>()
        {
            return value;
        }
        if end == 0 {
            return 0.0;
        }
        end -= 1;
    }
}

impl PubArgs {
    fn plan(&self, url_topic: Option<String>) -> Result<Plan, UsageError> {
        let sources = self.message.len()
            + self.file.len()
            + usize::from(self.stdin_line)
            + usize::from(self.null_message)
            + usize::from(self.stdin_file);
        if sources > 1 {
            return Err(UsageError::spaced(
                "Only one type of message can be sent at once.",
            ));
        }
        let repeat = match &self.repeat {
            Some(text) => match u32::try_from(atoi(text)) {
                Ok(n) if n >= 1 => n,
                _ => return Err(UsageError::spaced("--repeat argument must be >0.")),
            },
            None => 1,
        };
        let repeat_delay = match &self.repeat_delay {
            Some(text) => {
                let seconds = atof(text);
                if seconds < 0.0 {
                    return Err(UsageError::spaced("--repeat-delay argument must be >=0.0."));
                }
                // Mosquitto takes any number here; a delay no clock can count (or not a
                // number at all) is refused rather than guessed at.
                Duration::try_from_secs_f64(seconds).map_err(|_| {
                    UsageError::spaced(format!("Invalid --repeat-delay argument \"{text}\"."))
                })?
            }
            None => Duration::ZERO,
        };
        let max_inflight = match &self.max_inflight {
            // Mosquitto takes any positive number; the client's window stops at 65,535.
            Some(text) => match atoi(text) {
                n if n >= 1 => Some(u16::try_from(n).unwrap_or(u16::MAX)),
                _ => {
                    return Err(UsageError::spaced(
                        "Maximum inflight messages must be greater than 0.",
                    ));
                }
            },
            None => None,
        };
        let topic = self.topic.clone().or(url_topic);
        let source = if let Some(m) = self.message.first() {
            Source::Message(Bytes::from(m.clone()))
        } else if let Some(f) = self.file.first() {
            Source::File(f.clone())
        } else if self.stdin_line > 0 {
            Source::Lines
        } else if self.null_message > 0 {
            Source::Null
        } else if self.stdin_file > 0 {
            Source::Stdin
        } else {
            return Err(both_needed());
        };
        let Some(topic) = topic else {
            return Err(both_needed());
        };
        let topic = TopicName::try_from(topic.as_str()).map_err(|_| {
            UsageError::new(format!(
                "Invalid publish topic '{topic}', does it contain '+' or '#'?"
            ))
        })?;
        Ok(Plan {
            topic,
            source,
            repeat,
            repeat_delay,
            max_inflight,
        })
    }
}

fn both_needed() -> UsageError {
    UsageError::with_layout("Both topic and message must be supplied.", Layout::Bare)
}

/// Writes `mqtt pub --help` to stdout.
fn print_help() {
    let help = <PubArgs as Args>::augment_args(clap::Command::new("mqtt pub"))
        .about("Publish a message and exit (mosquitto_pub's options)")
        .render_help();
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{help}");
    let _ = out.flush();
}

/// Runs `mqtt pub`.
pub async fn run(args: PubArgs, file: &FileDefaults) -> ExitCode {
    let quiet = args.connection.quiet;
    let resolved = match args.connection.resolve(file) {
        Ok(r) => r,
        Err(e) => return usage_failure(&e, quiet),
    };
    let plan = match args.plan(resolved.url_topic.clone()) {
        Ok(p) => p,
        Err(e) => {
            let code = usage_failure(&e, quiet);
            if e == both_needed() {
                // mosquitto_pub follows this one with its help, on stdout.
                print_help();
            }
            return code;
        }
    };
    if let Err(e) = args.connection.check_tls_files(file) {
        return usage_failure(&e, quiet);
    }
    let mut options = resolved.options.reconnect(None).request_timeout(None);
    if let Some(n) = plan.max_inflight {
        options = options.max_inflight(n);
    }
    // A file is read before connecting, so that a missing file costs no connection.
    let file_payload = match &plan.source {
        Source::File(path) => match std::fs::read(path) {
            Ok(bytes) => Some(Bytes::from(bytes)),
            Err(_) => {
                let path = path.display();
                eprint_unless(quiet, &format!("Error: Unable to open file \"{path}\"."));
                eprint_unless(quiet, &format!("Error loading input file \"{path}\"."));
                return ExitCode::from(1);
            }
        },
        _ => None,
    };
    let (client, _events) = match Client::connect(options).await {
        Ok(c) => c,
        Err(e) => {
            let (lines, code) = connect_failure(&e, resolved.version);
            for line in lines {
                eprint_unless(quiet, &line);
            }
            if let mqtt_client::Error::Refused(reason) = e {
                eprint_unless(quiet, pub_refusal_line(reason, resolved.version));
            }
            return ExitCode::from(code);
        }
    };
    let qos = resolved.qos;
    let message = |payload: Bytes| {
        OutgoingMessage::with_topic(plan.topic.clone(), payload)
            .qos(qos)
            .retain(args.retain)
            .properties(resolved.properties.publish.clone())
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
    let disconnected = client.disconnect_with(resolved.properties.farewell()).await;
    match (result, disconnected) {
        (Ok(()), Ok(())) => ExitCode::SUCCESS,
        (Err(e), _) | (Ok(()), Err(e)) => {
            eprint_unless(quiet, &format!("Error: {e}"));
            ExitCode::from(1)
        }
    }
}

/// The most publishes waiting for their answer at once (`--repeat`, `-l`): the client's queue
/// holds the rest back.
const MAX_PENDING_ACKS: usize = 1000;

/// Publishes one message `repeat` times, waiting `delay` between them.
async fn publish_repeated(
    client: &Client,
    message: OutgoingMessage,
    repeat: u32,
    delay: Duration,
) -> Result<(), mqtt_client::Error> {
    let mut acks = std::collections::VecDeque::new();
    for i in 0..repeat {
        if i > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        // A bounded number of answers pending, however many repeats.
        if acks.len() >= MAX_PENDING_ACKS
            && let Some(ack) = acks.pop_front()
        {
            ack.await?;
        }
        acks.push_back(client.send(message.clone()).await?);
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
        while acks.len() > MAX_PENDING_ACKS {
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

/// Reports a usage error of `mqtt <tool>` as Mosquitto's clients do: even with `--quiet`,
/// except for the errors Mosquitto finds while setting up its client.
pub(crate) fn usage_failure_for(tool: &str, error: &UsageError, quiet: bool) -> ExitCode {
    if let Some(text) = error.render(tool, quiet) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
    }
    ExitCode::from(1)
}

/// Writes a line to stderr unless `--quiet`.
pub(crate) fn eprint_unless(quiet: bool, line: &str) {
    if !quiet {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: PubArgs,
    }

    fn parse(args: &[&str]) -> PubArgs {
        Cli::try_parse_from(std::iter::once("pub").chain(args.iter().copied()))
            .unwrap()
            .args
    }

    fn plan_error(args: &[&str]) -> UsageError {
        parse(args).plan(None).unwrap_err()
    }

    #[test]
    fn repeated_options_take_the_last_value() {
        let args = parse(&[
            "-t", "a", "-t", "b", "-q", "1", "-q", "2", "-m", "x", "-r", "-r",
        ]);
        assert_eq!(args.topic.as_deref(), Some("b"));
        assert_eq!(args.connection.qos.as_deref(), Some("2"));
        assert!(args.retain);
    }

    #[test]
    fn a_second_message_option_is_refused_as_mosquitto_pub_does() {
        for args in [
            &["-t", "t", "-m", "x", "-m", "y"][..],
            &["-t", "t", "-l", "-l"],
            &["-t", "t", "-n", "-s"],
            &["-t", "t", "-f", "a", "-f", "b"],
        ] {
            let e = plan_error(args);
            assert_eq!(e.message, "Only one type of message can be sent at once.");
            assert_eq!(e.layout, Layout::SpacedPointer);
        }
    }

    #[test]
    fn repeat_and_inflight_checks_match_mosquitto_pub() {
        for bad in ["0", "-1", "abc"] {
            assert_eq!(
                plan_error(&["-t", "t", "-m", "x", "--repeat", bad]).message,
                "--repeat argument must be >0."
            );
            assert_eq!(
                plan_error(&["-t", "t", "-m", "x", "-M", bad]).message,
                "Maximum inflight messages must be greater than 0."
            );
        }
        assert_eq!(
            plan_error(&["-t", "t", "-m", "x", "--repeat-delay", "-1"]).message,
            "--repeat-delay argument must be >=0.0."
        );
        let plan = parse(&["-t", "t", "-m", "x", "--repeat", "2.5", "-M", "70000"])
            .plan(None)
            .unwrap();
        assert_eq!((plan.repeat, plan.max_inflight), (2, Some(u16::MAX)));
        // "abc" is 0 seconds, as atof reads it.
        let plan = parse(&["-t", "t", "-m", "x", "--repeat-delay", "abc"])
            .plan(None)
            .unwrap();
        assert_eq!(plan.repeat_delay, Duration::ZERO);
    }

    #[test]
    fn a_repeat_delay_too_long_for_a_clock_is_refused_not_a_panic() {
        for huge in ["1e30", "inf", "nan"] {
            let e = plan_error(&[
                "-t",
                "t",
                "-m",
                "x",
                "--repeat",
                "2",
                "--repeat-delay",
                huge,
            ]);
            assert_eq!(
                e.message,
                format!("Invalid --repeat-delay argument \"{huge}\".")
            );
        }
        let plan = parse(&["-t", "t", "-m", "x", "--repeat-delay", "0.25s"])
            .plan(None)
            .unwrap();
        assert_eq!(plan.repeat_delay, Duration::from_millis(250));
    }

    #[test]
    fn a_missing_topic_or_message_is_reported_bare() {
        for args in [&["-t", "t"][..], &["-m", "x"]] {
            let e = plan_error(args);
            assert_eq!(e.message, "Both topic and message must be supplied.");
            assert_eq!(e.layout, Layout::Bare);
        }
    }
}
