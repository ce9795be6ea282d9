//! The `mqtt-broker` binary: reads the configuration (defaults < TOML file < `MQTT_*`
//! environment < flags), installs the tracing subscriber and runs the broker until SIGINT or
//! SIGTERM; SIGHUP reloads the listeners' TLS certificates and keys.
//!
//! Exit status: 0 after a clean shutdown (or `generate-config` / `--print-config`), 1 if the
//! broker fails, 2 for a usage or configuration error.

// A binary: writing to stdout and stderr is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal as _, Write as _};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mqtt_broker::load::{self, Flags};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// Exit status for a usage or configuration error (as clap uses for its own).
const EXIT_CONFIG: u8 = 2;

/// An MQTT 3.1, 3.1.1 and 5.0 broker.
///
/// Configuration layers, lowest first: built-in defaults, the TOML file (-c), environment
/// variables MQTT_<KEY> (e.g. MQTT_PORT=1884), then flags. `mqtt-broker generate-config` prints
/// every key with its default and meaning.
#[derive(Debug, Parser)]
#[command(name = "mqtt-broker", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// TOML configuration file.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,

    /// TCP port to listen on (the key `port`).
    #[arg(short = 'p', long, value_name = "PORT")]
    port: Option<u16>,

    /// Address to listen on (the key `bind`), e.g. 0.0.0.0 for every interface.
    #[arg(long, value_name = "ADDR")]
    bind: Option<IpAddr>,

    /// Set any configuration key, e.g. --set max_inflight=50 (repeatable; beats the file and
    /// the environment, but not -p/--bind).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,

    /// Keep persistent sessions, their messages and the retained messages on disk (the key
    /// `persistence`).
    #[arg(long)]
    persistence: bool,

    /// The data directory of the durable store (the key `data_dir`; default `mqtt-data`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// When the store syncs, and acknowledgements wait for it: always, batch (the default)
    /// or never (the key `sync`).
    #[arg(long, value_name = "POLICY")]
    sync: Option<String>,

    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the documented default configuration file to stdout and exit.
    GenerateConfig,
    /// Print a `scram_users_file` line for USER, with the password read from stdin (one line).
    ScramCredential {
        /// The user name.
        user: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();

    match &cli.command {
        Some(Command::GenerateConfig) => return write_stdout(&load::generate_default()),
        Some(Command::ScramCredential { user }) => {
            let mut password = String::new();
            if std::io::stdin().read_line(&mut password).is_err() {
                eprintln!("mqtt-broker: cannot read the password from stdin");
                return ExitCode::from(1);
            }
            let password = password.trim_end_matches(['\n', '\r']);
            return match mqtt_broker::auth::ScramMethod::credential_line(user, password) {
                Ok(line) => write_stdout(&format!("{line}\n")),
                Err(e) => {
                    eprintln!("mqtt-broker: {e}");
                    ExitCode::from(1)
                }
            };
        }
        None => {}
    }

    let flags = Flags {
        port: cli.port,
        bind: cli.bind,
        set: cli.set,
        persistence: cli.persistence,
        data_dir: cli.data_dir,
        sync: cli.sync,
    };
    let config = match load::load(cli.config.as_deref(), &load::process_env, &flags) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mqtt-broker: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };

    if cli.print_config {
        return write_stdout(&load::print_config(&config));
    }

    init_tracing();

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.worker_threads > 0 {
        builder.worker_threads(config.worker_threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mqtt-broker: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // Signal handlers need the runtime, so they are installed here, before the broker starts.
        let shutdown = shutdown_signal()
            .map_err(|e| anyhow::anyhow!("cannot install the SIGINT/SIGTERM handlers: {e}"))?;
        let reload = std::sync::Arc::new(tokio::sync::Notify::new());
        let mut hangup = signal(SignalKind::hangup())
            .map_err(|e| anyhow::anyhow!("cannot install the SIGHUP handler: {e}"))?;
        let notify = std::sync::Arc::clone(&reload);
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP received, reloading");
                notify.notify_one();
            }
        });
        mqtt_broker::run_with_reload(config, shutdown, reload).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("broker failed: {e:#}");
            eprintln!("mqtt-broker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `text` to stdout; a closed pipe (`mqtt-broker generate-config | head`) is not an error.
fn write_stdout(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqtt-broker: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`). An invalid `RUST_LOG` is reported
/// and replaced by `info` rather than silently ignored.
fn init_tracing() {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .unwrap_or_else(|e| {
                eprintln!(
                    "mqtt-broker: ignoring invalid RUST_LOG `{directives}` ({e}); using `info`"
                );
                EnvFilter::new("info")
            }),
        _ => EnvFilter::new("info"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// A future that completes on the first SIGINT or SIGTERM. Must be called inside the runtime.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
    })
}
