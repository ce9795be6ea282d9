//! Building and running the cargo-fuzz targets in `fuzz/`.
//!
//! A run never touches the committed corpus: the `seed-*` files of `fuzz/corpus/<target>/` are
//! copied to a fresh working directory under `target/`, and libFuzzer grows that copy. Crash
//! inputs land in `fuzz/artifacts/<target>/` (gitignored), where cargo-fuzz puts them.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::tools::{self, nightly_cargo};

/// Seconds a `cargo xtask fuzz <target>` run lasts unless told otherwise.
pub(crate) const DEFAULT_SECONDS: u64 = 60;

/// The cargo-fuzz project.
fn fuzz_dir(root: &Path) -> PathBuf {
    root.join("fuzz")
}

/// The fuzz targets, as `cargo fuzz list` reports them.
pub(crate) fn targets(root: &Path) -> Result<Vec<String>> {
    let list = tools::output(
        nightly_cargo()
            .args(["fuzz", "list"])
            .current_dir(fuzz_dir(root)),
    )
    .context("`cargo +nightly fuzz list` failed")?;
    let targets: Vec<String> = list
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect();
    if targets.is_empty() {
        bail!("`cargo +nightly fuzz list` found no fuzz targets");
    }
    Ok(targets)
}

/// Builds every fuzz target, failing if that changed the committed `fuzz/Cargo.lock` (cargo-fuzz
/// has no `--locked`).
pub(crate) fn build(root: &Path) -> Result<()> {
    let lock = fuzz_dir(root).join("Cargo.lock");
    let before = fs::read(&lock).ok();
    tools::run(
        nightly_cargo()
            .args(["fuzz", "build"])
            .current_dir(fuzz_dir(root)),
    )?;
    if fs::read(&lock).ok() != before {
        bail!(
            "the fuzz build changed fuzz/Cargo.lock (it was missing or out of date); \
             review and commit it"
        );
    }
    Ok(())
}

/// Runs one target for `seconds` on a copy of its seed corpus, and fails with the paths of any
/// crash inputs it wrote.
pub(crate) fn run(root: &Path, target: &str, seconds: u64) -> Result<()> {
    // libFuzzer reads `-max_total_time=0` as "no limit".
    if seconds == 0 {
        bail!("a fuzz run needs at least 1 second");
    }
    let seeds = fuzz_dir(root).join("corpus").join(target);
    let work = root
        .join("target")
        .join("xtask")
        .join("fuzz-corpus")
        .join(target);
    let copied = fresh_copy(&seeds, &work)?;
    println!(
        "fuzzing {target} for {seconds} s from {copied} seeds (working corpus {})",
        work.display()
    );
    let artifacts_dir = fuzz_dir(root).join("artifacts").join(target);
    let before = files_in(&artifacts_dir);
    let result = tools::run(
        nightly_cargo()
            .args(["fuzz", "run", target])
            .arg(&work)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .current_dir(fuzz_dir(root)),
    );
    let new: Vec<PathBuf> = files_in(&artifacts_dir)
        .difference(&before)
        .cloned()
        .collect();
    if result.is_err() || !new.is_empty() {
        for artifact in &new {
            eprintln!(
                "crash input: {}\n  reproduce: cd fuzz && cargo +nightly fuzz run {target} {}",
                artifact.display(),
                artifact.display()
            );
        }
        bail!(
            "fuzz target `{target}` failed ({} new artifacts)",
            new.len()
        );
    }
    Ok(())
}

/// `cargo xtask fuzz <target> [seconds]`.
pub(crate) fn run_one(root: &Path, target: &str, seconds: u64) -> Result<()> {
    tools::ensure_tools()?;
    let known = targets(root)?;
    if !known.iter().any(|t| t == target) {
        bail!(
            "no fuzz target `{target}`; the targets are: {}",
            known.join(", ")
        );
    }
    build(root)?;
    run(root, target, seconds)
}

/// Replaces `work` with a copy of the `seed-*` files in `seeds`; returns how many there were.
fn fresh_copy(seeds: &Path, work: &Path) -> Result<usize> {
    if work.exists() {
        fs::remove_dir_all(work).with_context(|| format!("cannot clear {}", work.display()))?;
    }
    fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
    let mut copied = 0;
    for seed in files_in(seeds) {
        let Some(name) = seed.file_name() else {
            continue;
        };
        if name.to_string_lossy().starts_with("seed-") {
            fs::copy(&seed, work.join(name))
                .with_context(|| format!("cannot copy {}", seed.display()))?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// The files directly in `dir` (none if it does not exist).
fn files_in(dir: &Path) -> BTreeSet<PathBuf> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect()
}
