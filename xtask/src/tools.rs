//! Running external tools, and making sure the ones CI needs are installed.
//!
//! CI runs as root on a clean clone, so anything the project needs beyond the stable toolchain
//! is checked (and, where that only writes to `~/.cargo`, installed) here rather than assumed.
//! The peers of the interoperability tests (Debian and pip packages) are installed when running
//! as root, and otherwise reported with the command that installs them.

use std::cmp::Ordering;
use std::ffi::OsStr;
use std::path::Path;
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

/// Whether this process runs as root (`id -u` prints 0).
fn running_as_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0")
}

/// Whether `program` can be run: an existing file if it is a path, else an executable file in
/// a directory of `PATH`.
fn program_exists(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;

    let executable = |path: &Path| {
        path.metadata()
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(program))))
}

/// Makes sure the Debian packages are installed, each judged by a program it provides (a path
/// such as `/usr/sbin/mosquitto`, or a name looked up in `PATH`): `(package, program)` pairs.
///
/// Missing packages are installed with `apt-get update` and `apt-get install -y` when running as
/// root; otherwise this fails with the command to run.
pub(crate) fn ensure_debian_packages(packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, program)| !program_exists(program))
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        let names: Vec<&str> = packages.iter().map(|(package, _)| *package).collect();
        println!("found Debian packages: {}", names.join(", "));
        return Ok(());
    }
    let list = missing.join(" ");
    if !running_as_root() {
        bail!(
            "missing Debian packages: {list}; install them with:\n    \
             sudo apt-get update && sudo apt-get install -y {list}"
        );
    }
    println!("missing Debian packages: {list}; installing them");
    run(Command::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .context("`apt-get update` failed")?;
    run(Command::new("apt-get")
        .args(["install", "-y"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("installing the Debian packages {list} failed"))?;
    let still: Vec<&str> = packages
        .iter()
        .filter(|(_, program)| !program_exists(program))
        .map(|(_, program)| *program)
        .collect();
    if !still.is_empty() {
        bail!(
            "after installing {list}, still missing: {}",
            still.join(", ")
        );
    }
    Ok(())
}

/// Makes sure the Python packages are installed for `python3`: `(requirement, import name)`
/// pairs, where a requirement is a distribution name with optional version clauses
/// (`paho-mqtt>=2,<3`). A package counts as installed if its module imports and its installed
/// version satisfies the clauses.
///
/// Missing (or wrong-version) packages are installed with `python3 -m pip install` when running
/// as root; otherwise this fails with the command to run.
pub(crate) fn ensure_pip_packages(packages: &[(&str, &str)]) -> Result<()> {
    let requirements = packages
        .iter()
        .map(|(spec, module)| Ok((PipRequirement::parse(spec)?, *module)))
        .collect::<Result<Vec<_>>>()?;
    let problems = |requirements: &[(PipRequirement, &str)]| -> Vec<(String, String)> {
        requirements
            .iter()
            .filter_map(|(requirement, module)| {
                requirement
                    .problem(module)
                    .map(|problem| (requirement.spec.clone(), problem))
            })
            .collect()
    };
    let missing = problems(&requirements);
    if missing.is_empty() {
        for (requirement, _) in &requirements {
            println!("found Python package {}", requirement.spec);
        }
        return Ok(());
    }
    for (spec, problem) in &missing {
        println!("Python package {spec}: {problem}");
    }
    let specs: Vec<&str> = missing.iter().map(|(spec, _)| spec.as_str()).collect();
    let quoted: Vec<String> = specs.iter().map(|spec| format!("'{spec}'")).collect();
    if !running_as_root() {
        bail!(
            "missing Python packages; install them with:\n    python3 -m pip install {}",
            quoted.join(" ")
        );
    }
    run(Command::new("python3")
        .args(["-m", "pip", "install"])
        .args(&specs))
    .with_context(|| {
        format!(
            "installing the Python packages {} failed (for a Python that is \"externally \
             managed\", PEP 668, install them in a virtual environment or add \
             --break-system-packages)",
            quoted.join(" ")
        )
    })?;
    let still = problems(&requirements);
    if let Some((spec, problem)) = still.first() {
        bail!("after installing, Python package {spec}: {problem}");
    }
    Ok(())
}

/// A pip requirement as [`ensure_pip_packages`] understands it: a distribution name and version
/// clauses such as `>=2,<3` (numeric release versions only).
#[derive(Debug, PartialEq, Eq)]
struct PipRequirement {
    /// The requirement as written, for messages and for `pip install`.
    spec: String,
    /// The distribution name, e.g. `paho-mqtt`.
    name: String,
    /// The version clauses; all must hold.
    clauses: Vec<(Comparison, Vec<u64>)>,
}

/// A version comparison operator of a requirement clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// `>=`
    AtLeast,
    /// `>`
    Above,
    /// `<=`
    AtMost,
    /// `<`
    Below,
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
}

impl Comparison {
    /// Whether a version comparing to the clause's version as `ordering` satisfies the clause.
    fn accepts(self, ordering: Ordering) -> bool {
        match self {
            Self::AtLeast => ordering.is_ge(),
            Self::Above => ordering.is_gt(),
            Self::AtMost => ordering.is_le(),
            Self::Below => ordering.is_lt(),
            Self::Equal => ordering.is_eq(),
            Self::NotEqual => ordering.is_ne(),
        }
    }
}

impl PipRequirement {
    /// Parses `name` or `name<op><version>[,<op><version>...]`.
    fn parse(spec: &str) -> Result<Self> {
        let spec = spec.trim();
        let split = spec.find(['<', '>', '=', '!']).unwrap_or(spec.len());
        let (name, rest) = spec.split_at(split);
        let name = name.trim();
        if name.is_empty() {
            bail!("pip requirement `{spec}` has no package name");
        }
        let mut clauses = Vec::new();
        for clause in rest.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let (comparison, version) = [
                (">=", Comparison::AtLeast),
                ("<=", Comparison::AtMost),
                ("==", Comparison::Equal),
                ("!=", Comparison::NotEqual),
                (">", Comparison::Above),
                ("<", Comparison::Below),
            ]
            .iter()
            .find_map(|(op, comparison)| {
                clause
                    .strip_prefix(op)
                    .map(|version| (*comparison, version.trim()))
            })
            .with_context(|| format!("pip requirement `{spec}`: cannot read clause `{clause}`"))?;
            let version = parse_version(version).with_context(|| {
                format!("pip requirement `{spec}`: `{version}` is not a numeric version")
            })?;
            clauses.push((comparison, version));
        }
        Ok(Self {
            spec: spec.to_owned(),
            name: name.to_owned(),
            clauses,
        })
    }

    /// Whether `version` (as pip reports it, e.g. `2.2.0` or `2.0.0rc1`) satisfies every clause.
    fn accepts(&self, version: &str) -> bool {
        let Some(version) = parse_version(version) else {
            return false;
        };
        self.clauses
            .iter()
            .all(|(comparison, bound)| comparison.accepts(compare_versions(&version, bound)))
    }

    /// Why the requirement is not met by `python3` (`module` does not import, or the installed
    /// version does not satisfy it), or `None` if it is.
    fn problem(&self, module: &str) -> Option<String> {
        const PROBE: &str = "import importlib, importlib.metadata, sys\n\
                             importlib.import_module(sys.argv[1])\n\
                             print(importlib.metadata.version(sys.argv[2]))";
        let Some(version) = output(Command::new("python3").args(["-c", PROBE, module, &self.name]))
        else {
            return Some(format!(
                "`import {module}` fails in python3 (or python3 is missing)"
            ));
        };
        let version = version.trim();
        (!self.accepts(version)).then(|| format!("version {version} is installed"))
    }
}

/// The numeric release parts of a version: `2.0.0rc1` is `[2, 0, 0]` (the digits leading each
/// dot-separated part; parsing stops at a part without any).
fn parse_version(version: &str) -> Option<Vec<u64>> {
    let mut parts = Vec::new();
    for part in version.split('.') {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        let Ok(number) = digits.parse() else {
            break;
        };
        parts.push(number);
        if digits.len() != part.len() {
            break;
        }
    }
    (!parts.is_empty()).then_some(parts)
}

/// Compares release versions part by part, missing parts counting as 0 (`2` equals `2.0.0`).
fn compare_versions(left: &[u64], right: &[u64]) -> Ordering {
    let len = left.len().max(right.len());
    (0..len)
        .map(|i| {
            let l = left.get(i).copied().unwrap_or(0);
            let r = right.get(i).copied().unwrap_or(0);
            l.cmp(&r)
        })
        .find(|ordering| ordering.is_ne())
        .unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::{Comparison, PipRequirement, compare_versions, parse_version, program_exists};
    use std::cmp::Ordering;

    #[test]
    fn parses_pip_requirements() {
        let requirement = PipRequirement::parse("paho-mqtt>=2,<3").unwrap();
        assert_eq!(requirement.name, "paho-mqtt");
        assert_eq!(
            requirement.clauses,
            [(Comparison::AtLeast, vec![2]), (Comparison::Below, vec![3])]
        );
        let bare = PipRequirement::parse("paho-mqtt").unwrap();
        assert_eq!(bare.name, "paho-mqtt");
        assert!(bare.clauses.is_empty());
        assert!(PipRequirement::parse(">=2").is_err());
        assert!(PipRequirement::parse("x~=2").is_err());
        assert!(PipRequirement::parse("x>=two").is_err());
    }

    #[test]
    fn checks_versions_against_requirements() {
        let paho = PipRequirement::parse("paho-mqtt>=2,<3").unwrap();
        for good in ["2", "2.0", "2.2.0", "2.1.0rc1"] {
            assert!(paho.accepts(good), "{good}");
        }
        for bad in ["1.6.1", "3.0.0", "3", "", "dev"] {
            assert!(!paho.accepts(bad), "{bad}");
        }
        let pinned = PipRequirement::parse("x==1.2, !=1.2.1").unwrap();
        assert!(pinned.accepts("1.2.0"));
        assert!(!pinned.accepts("1.2.1"));
    }

    #[test]
    fn compares_release_versions() {
        assert_eq!(parse_version("2.0.0rc1"), Some(vec![2, 0, 0]));
        assert_eq!(parse_version("10.4"), Some(vec![10, 4]));
        assert_eq!(parse_version("x"), None);
        assert_eq!(compare_versions(&[2], &[2, 0, 0]), Ordering::Equal);
        assert_eq!(compare_versions(&[2, 10], &[2, 9]), Ordering::Greater);
        assert_eq!(compare_versions(&[1, 6, 1], &[2]), Ordering::Less);
    }

    #[test]
    fn finds_programs_by_path_and_name() {
        assert!(program_exists("sh"));
        assert!(program_exists("/bin/sh"));
        assert!(!program_exists("/no/such/program"));
        assert!(!program_exists("no-such-program-xtask"));
    }
}
