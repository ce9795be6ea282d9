//! The `mqtt` command: `mqtt pub`, `mqtt sub` (drop-in replacements for `mosquitto_pub` and
//! `mosquitto_sub`) and `mqtt bench`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mqtt_cli::connection::FileDefaults;
use mqtt_cli::publish::{self, PubArgs};
use mqtt_cli::request::{self, RrArgs};
use mqtt_cli::subscribe::{self, SubArgs};

/// MQTT from the command line.
#[derive(Parser, Debug)]
#[command(name = "mqtt", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Publish a message and exit (mosquitto_pub's options).
    Pub(PubArgs),
    /// Subscribe and print messages (mosquitto_sub's options).
    Sub(SubArgs),
    /// Publish a request and print the response (mosquitto_rr's options).
    Rr(RrArgs),
    /// Load generator: connections, publishers and subscribers, with latency percentiles and
    /// a check that no QoS 1/2 message is lost or doubled.
    Bench(mqtt_cli::bench::BenchArgs),
}

/// Logs go to stderr: with `-d`, the client's debug log; otherwise only what `RUST_LOG` asks
/// for (nothing by default, so stderr carries exactly Mosquitto's messages).
fn init_tracing(debug: bool) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(filter) => filter,
        Err(_) if debug => "mqtt_client=debug,mqtt_cli=debug".to_owned(),
        Err(_) => "off".to_owned(),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // Colours only for a terminal: a log captured in a file or a pipe stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// For an unknown option of `pub` or `sub`: the tool and the whole argument, as
/// `mosquitto_pub` and `mosquitto_sub` name it (`-zz`, not the `-z` the parser stopped at).
fn unknown_option(error: &clap::Error) -> Option<(String, String)> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let tool = args
        .first()
        .filter(|t| matches!(t.as_str(), "pub" | "sub"))?;
    let Some(ContextValue::String(invalid)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let argument = args
        .iter()
        .skip(1)
        .find(|a| {
            *a == invalid
                || (invalid.starts_with("--") && a.starts_with(&format!("{invalid}=")))
                || (!invalid.starts_with("--")
                    && invalid.len() == 2
                    && a.starts_with('-')
                    && !a.starts_with("--")
                    && invalid.get(1..).is_some_and(|c| a[1..].contains(c)))
        })
        .unwrap_or(invalid);
    Some((tool.clone(), argument.clone()))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if let Some((tool, option)) = unknown_option(&e) {
                // As Mosquitto's clients report it.
                let mut err = std::io::stderr().lock();
                let _ = std::io::Write::write_fmt(
                    &mut err,
                    format_args!(
                        "Error: Unknown option '{option}'.\n\nUse 'mqtt {tool} --help' to see usage.\n"
                    ),
                );
                return ExitCode::from(1);
            }
            let _ = e.print();
            // Help and version are not errors; a bad command line exits 1, as Mosquitto's
            // clients do.
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(1),
            };
        }
    };
    let defaults = match FileDefaults::load() {
        Ok(d) => d,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = std::io::Write::write_fmt(&mut err, format_args!("Error: {e}\n"));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = std::io::Write::write_fmt(&mut err, format_args!("Error: {e}\n"));
            return ExitCode::from(1);
        }
    };
    match cli.command {
        Command::Pub(args) => {
            init_tracing(args.connection.debug);
            runtime.block_on(publish::run(args, &defaults))
        }
        Command::Sub(args) => {
            init_tracing(args.connection.debug);
            runtime.block_on(subscribe::run(args, &defaults))
        }
        Command::Rr(args) => {
            init_tracing(args.connection.debug);
            runtime.block_on(request::run(args, &defaults))
        }
        Command::Bench(args) => {
            init_tracing(false);
            match runtime.block_on(mqtt_cli::bench::run(args)) {
                Ok(code) => code,
                Err(e) => {
                    let mut err = std::io::stderr().lock();
                    let _ = std::io::Write::write_fmt(&mut err, format_args!("Error: {e:#}\n"));
                    ExitCode::from(1)
                }
            }
        }
    }
}
