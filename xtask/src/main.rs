//! Project automation, run as `cargo xtask <command>` (an alias in `.cargo/config.toml`).
//!
//! - `ci`: everything CI checks, in order, stopping at the first failure (`.ci/run` calls it).
//! - `fuzz <target> [seconds]`: one fuzz target from the committed seed corpus.
//! - `fuzz-seeds`: regenerates that seed corpus from packets built with the codec.
//! - `bench`: our broker, Mosquitto and rumqttd side by side, driven by `mqtt bench`; the
//!   results go to `docs/benchmarks.md`.
//! - `bench-persistence`: our broker's QoS 1 throughput with persistence off and with each
//!   sync policy, and its restart time on a large store; also into `docs/benchmarks.md`.
//!
//! It only orchestrates other tools (`cargo`, `rustup`, `cargo fuzz`, and `apt-get` and `pip` for
//! the interoperability tests' peers: Mosquitto, its clients, paho-mqtt); the repository rules
//! that can be checked as ordinary tests live in `tidy.rs` and run with `cargo test`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod bench_store;
mod ci;
mod fuzz;
mod seeds;
#[cfg(test)]
mod tidy;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

/// How to call the program, printed for `help` and for a bad command line.
const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci                       fmt, clippy, tests, docs, a bounded run of every fuzz target, benches
                           (fuzz seconds per target: XTASK_FUZZ_SECONDS, default 20); installs
                           the interop test peers if missing (mosquitto, mosquitto-clients,
                           paho-mqtt 2.x) when run as root
  fuzz <target> [seconds]  run one fuzz target from the seed corpus (default 60 s)
  fuzz-seeds               regenerate fuzz/corpus/<target>/seed-* deterministically
  bench [options]          end to end: our broker, Mosquitto and rumqttd side by side (release
                           builds, loopback, `mqtt bench`); writes docs/benchmarks.md (e2e
                           section) and docs/benchmarks-e2e.svg. Options: --rounds N (3),
                           --seconds S per run (5), --only a,b (scenario names), --no-write
  bench-persistence [options]
                           our broker's QoS 1 throughput with persistence off, never, batch,
                           always, and its restart time with a large store (populate_store);
                           writes docs/benchmarks.md (persistence section). Options: --rounds
                           N (3), --seconds S (5), --retained N (1000000), --sessions N
                           (100000), --no-write
  help                     this text";

/// A parsed command line.
#[derive(Debug, PartialEq)]
enum Command {
    /// `ci`.
    Ci,
    /// `fuzz <target> [seconds]`.
    Fuzz {
        /// The fuzz target's name.
        target: String,
        /// How long to run it.
        seconds: u64,
    },
    /// `fuzz-seeds`.
    FuzzSeeds,
    /// `bench [options]`.
    Bench(bench::Options),
    /// `bench-persistence [options]`.
    BenchPersistence(bench_store::Options),
    /// `help`, `-h`, `--help`.
    Help,
}

impl Command {
    /// Parses the arguments after the program name.
    fn parse(args: &[String]) -> Result<Self, String> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["ci"] => Ok(Self::Ci),
            ["fuzz-seeds"] => Ok(Self::FuzzSeeds),
            ["bench", rest @ ..] => bench::Options::parse(rest).map(Self::Bench),
            ["bench-persistence", rest @ ..] => {
                bench_store::Options::parse(rest).map(Self::BenchPersistence)
            }
            [] | ["help" | "-h" | "--help"] => Ok(Self::Help),
            ["fuzz", target] => Ok(Self::Fuzz {
                target: (*target).to_owned(),
                seconds: fuzz::DEFAULT_SECONDS,
            }),
            ["fuzz", target, seconds] => {
                Ok(Self::Fuzz {
                    target: (*target).to_owned(),
                    seconds: seconds.parse().ok().filter(|&s| s > 0).ok_or_else(|| {
                        format!("`{seconds}` is not a positive number of seconds")
                    })?,
                })
            }
            _ => Err(format!("unknown command line: `{}`", args.join(" "))),
        }
    }
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or(manifest_dir.clone(), PathBuf::from)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match Command::parse(&args) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let root = workspace_root();
    let result = match command {
        Command::Ci => ci::run(&root),
        Command::Fuzz { target, seconds } => fuzz::run_one(&root, &target, seconds),
        Command::FuzzSeeds => seeds::write_all(&root),
        Command::Bench(options) => bench::run(&root, &options),
        Command::BenchPersistence(options) => bench_store::run(&root, &options),
        Command::Help => {
            println!("{USAGE}");
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Command;

    fn parse(line: &str) -> Result<Command, String> {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        Command::parse(&args)
    }

    #[test]
    fn parses_the_commands() {
        assert_eq!(parse("ci"), Ok(Command::Ci));
        assert_eq!(parse("fuzz-seeds"), Ok(Command::FuzzSeeds));
        assert_eq!(parse(""), Ok(Command::Help));
        assert_eq!(parse("--help"), Ok(Command::Help));
        assert_eq!(
            parse("fuzz roundtrip"),
            Ok(Command::Fuzz {
                target: "roundtrip".into(),
                seconds: 60
            })
        );
        assert_eq!(
            parse("fuzz decode_any 5"),
            Ok(Command::Fuzz {
                target: "decode_any".into(),
                seconds: 5
            })
        );
        assert!(parse("fuzz decode_any five").is_err());
        assert!(parse("fuzz decode_any 0").is_err());
        assert!(parse("fuzz").is_err());
        assert!(parse("ci extra").is_err());
        assert!(matches!(parse("bench --rounds 1"), Ok(Command::Bench(o)) if o.rounds == 1));
        assert!(parse("bench --rounds").is_err());
        assert!(matches!(
            parse("bench-persistence --rounds 1 --retained 10"),
            Ok(Command::BenchPersistence(o)) if o.rounds == 1 && o.retained == 10
        ));
        assert!(parse("bench-persistence --sessions 0").is_err());
    }
}
