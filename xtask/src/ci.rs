//! `cargo xtask ci`: every check CI makes, in order, stopping at the first failure.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::fuzz;
use crate::tools::{self, cargo};

/// Seconds each fuzz target runs in CI unless `XTASK_FUZZ_SECONDS` says otherwise.
const DEFAULT_FUZZ_SECONDS: u64 = 20;

/// Runs the checks and prints each step's wall time, then a summary.
pub(crate) fn run(root: &Path) -> Result<()> {
    let fuzz_seconds = match std::env::var("XTASK_FUZZ_SECONDS") {
        Ok(value) => value
            .parse()
            .ok()
            .filter(|&s: &u64| s > 0)
            .with_context(|| format!("XTASK_FUZZ_SECONDS=`{value}` is not a positive number"))?,
        Err(_) => DEFAULT_FUZZ_SECONDS,
    };
    let mut report = Report::default();
    let result = steps(root, fuzz_seconds, &mut report);
    report.print();
    result
}

/// The steps, in order.
fn steps(root: &Path, fuzz_seconds: u64, report: &mut Report) -> Result<()> {
    let cargo_in_root = || {
        let mut command = cargo();
        command.current_dir(root);
        command
    };
    // First, so that a missing nightly fails the run at once rather than after the tests.
    report.step("fuzz prerequisites", tools::ensure_tools)?;
    // Also before the long steps: the interoperability tests of `test` run these peers.
    report.step("peers", ensure_peers)?;
    report.step("fmt", || {
        tools::run(cargo_in_root().args(["fmt", "--all", "--check"]))
    })?;
    report.step("clippy", || {
        tools::run(cargo_in_root().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    report.step("test", || {
        tools::run(cargo_in_root().args(["test", "--workspace", "--locked"]))
    })?;
    report.step("doc", || {
        tools::run(
            cargo_in_root()
                .args(["doc", "--workspace", "--no-deps", "--locked"])
                .env("RUSTDOCFLAGS", "-D warnings"),
        )
    })?;
    let mut targets = Vec::new();
    report.step("fuzz build", || {
        fuzz::build(root)?;
        targets = fuzz::targets(root)?;
        Ok(())
    })?;
    for target in targets {
        report.step(&format!("fuzz {target} ({fuzz_seconds} s)"), || {
            fuzz::run(root, &target, fuzz_seconds)
        })?;
    }
    report.step("bench build", || {
        tools::run(cargo_in_root().args(["bench", "--workspace", "--no-run", "--locked"]))
    })?;
    Ok(())
}

/// Installs (as root) or names the programs the interoperability tests in
/// `crates/mqtt-broker/tests/` run: the Mosquitto broker and clients (`stdbuf` lets the tests
/// read `mosquitto_sub` output line by line), and Python 3 with paho-mqtt 2.x.
fn ensure_peers() -> Result<()> {
    tools::ensure_debian_packages(&[
        ("mosquitto", "/usr/sbin/mosquitto"),
        ("mosquitto-clients", "mosquitto_pub"),
        ("coreutils", "stdbuf"),
        ("python3", "python3"),
    ])?;
    tools::ensure_pip_packages(&[("paho-mqtt>=2,<3", "paho")])
}

/// The steps run so far: name, wall time, success.
#[derive(Default)]
struct Report {
    /// One entry per step, in the order run.
    steps: Vec<(String, Duration, bool)>,
    /// When the first step started.
    start: Option<Instant>,
}

impl Report {
    /// Runs one step, timing it; a failure names the step.
    fn step(&mut self, name: &str, action: impl FnOnce() -> Result<()>) -> Result<()> {
        println!("\n==> {name}");
        let start = Instant::now();
        self.start.get_or_insert(start);
        let result = action();
        let elapsed = start.elapsed();
        self.steps.push((name.to_owned(), elapsed, result.is_ok()));
        match &result {
            Ok(()) => println!("==> {name}: ok in {:.1} s", elapsed.as_secs_f64()),
            Err(_) => println!("==> {name}: FAILED after {:.1} s", elapsed.as_secs_f64()),
        }
        result.with_context(|| format!("ci step `{name}` failed"))
    }

    /// Prints the table of steps and the total time.
    fn print(&self) {
        println!("\nci summary:");
        for (name, elapsed, ok) in &self.steps {
            let status = if *ok { "ok" } else { "FAILED" };
            println!("  {status:<7}{:>8.1} s  {name}", elapsed.as_secs_f64());
        }
        let total = self.start.map(|s| s.elapsed()).unwrap_or_default();
        println!("  total  {:>8.1} s", total.as_secs_f64());
    }
}
