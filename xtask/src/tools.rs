//! Running external tools, and making sure the ones CI needs are installed.
//!
//! CI runs as root on a clean clone, so anything the project needs beyond the stable toolchain
//! is checked (and, where that only writes to `~/.cargo`, installed) here rather than assumed.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The stable `cargo` that runs this program (`$CARGO`), or the one on `PATH`.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `cargo +nightly` through the rustup proxy on `PATH`.
///
/// `RUSTUP_TOOLCHAIN` is removed: the rustup proxy that started `cargo xtask` sets it to the
/// stable toolchain, and it must not leak into the nightly build.
pub(crate) fn nightly_cargo() -> Command {
    let mut command = Command::new("cargo");
    command.arg("+nightly").env_remove("RUSTUP_TOOLCHAIN");
    command
}

/// The command line, for messages.
pub(crate) fn display(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `command` with inherited output and fails unless it exits successfully.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    let line = display(command);
    println!("$ {line}");
    let status = command
        .status()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `command` and returns its standard output if it exits successfully, `None` otherwise
/// (including when the program does not exist).
pub(crate) fn output(command: &mut Command) -> Option<String> {
    let output = command.stderr(Stdio::null()).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Makes sure the fuzz step can run: a nightly toolchain (reported with the command to install
/// it, since that needs the rustup servers) and cargo-fuzz (installed from crates.io into
/// `~/.cargo/bin` if missing).
pub(crate) fn ensure_tools() -> Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))
        .context("`rustup toolchain list` failed: is rustup installed?")?;
    if !toolchains.lines().any(|line| line.starts_with("nightly")) {
        bail!(
            "no nightly toolchain (needed by cargo-fuzz); install it with:\n    \
             rustup toolchain install nightly --profile minimal"
        );
    }
    if let Some(version) = output(nightly_cargo().args(["fuzz", "--version"])) {
        println!("found {}", version.trim());
        return Ok(());
    }
    println!("cargo-fuzz is missing; installing it");
    run(cargo().args(["install", "cargo-fuzz", "--locked"]))
        .context("installing cargo-fuzz failed")?;
    output(nightly_cargo().args(["fuzz", "--version"]))
        .context("`cargo +nightly fuzz --version` still fails after installing cargo-fuzz")?;
    Ok(())
}
