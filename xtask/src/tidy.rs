//! Repository rules, checked as ordinary tests (`cargo test -p xtask`):
//!
//! - the sans-IO crates do not depend on tokio with their default features;
//! - every workspace crate starts with a `//!` crate doc;
//! - no library under `crates/` prints to stdout or stderr outside its tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The crates that must stay free of I/O runtimes, as far as they exist yet.
const SANS_IO: &[&str] = &["mqtt-topic", "mqtt-codec", "mqtt-session"];

/// The printing macros a library must not use.
const PRINT_MACROS: &[&str] = &["println!", "eprintln!", "print!", "eprint!"];

/// The workspace root.
fn root() -> PathBuf {
    crate::workspace_root()
}

/// The directories of the workspace crates: `crates/*` and `xtask`.
fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root().join("crates"))
        .expect("crates/ is readable")
        .map(|entry| entry.expect("crates/ entry").path())
        .filter(|dir| dir.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs.push(root().join("xtask"));
    dirs
}

/// The package names `cargo tree` lists for `package` (normal dependencies only, the package
/// itself included) with `features` enabled.
fn normal_dependencies(package: &str, features: &[&str]) -> Vec<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root())
        .args(["tree", "--locked", "-p", package, "-e", "normal"])
        .args(["--prefix", "none", "--format", "{p}"]);
    if !features.is_empty() {
        command.arg("--features").arg(features.join(","));
    }
    let output = command.output().expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree -p {package} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// The tokio crates among `dependencies`.
fn tokio_crates(dependencies: &[String]) -> Vec<&str> {
    dependencies
        .iter()
        .map(String::as_str)
        .filter(|name| *name == "tokio" || name.starts_with("tokio-"))
        .collect()
}

#[test]
fn sans_io_crates_do_not_depend_on_tokio() {
    let mut checked = 0;
    for &package in SANS_IO {
        if !root()
            .join("crates")
            .join(package)
            .join("Cargo.toml")
            .is_file()
        {
            continue;
        }
        let dependencies = normal_dependencies(package, &[]);
        assert_eq!(
            dependencies.first().map(String::as_str),
            Some(package),
            "cargo tree resolved another package"
        );
        assert_eq!(
            tokio_crates(&dependencies),
            Vec::<&str>::new(),
            "{package} is sans-IO: with its default features it must not depend on tokio \
             (put the dependency behind an optional feature)"
        );
        checked += 1;
    }
    assert!(
        checked >= 2,
        "the sans-IO crates were not found under crates/"
    );
}

#[test]
fn the_tokio_check_can_fail() {
    // The codec's optional `tokio-codec` feature pulls tokio in: the check above would see it.
    let dependencies = normal_dependencies("mqtt-codec", &["tokio-codec"]);
    let tokio = tokio_crates(&dependencies);
    assert!(
        tokio.contains(&"tokio") && tokio.contains(&"tokio-util"),
        "expected tokio and tokio-util, got {dependencies:?}"
    );
}

#[test]
fn every_crate_has_a_crate_doc() {
    let mut missing = Vec::new();
    for dir in crate_dirs() {
        let roots: Vec<PathBuf> = ["src/lib.rs", "src/main.rs"]
            .iter()
            .map(|file| dir.join(file))
            .filter(|file| file.is_file())
            .collect();
        assert!(
            !roots.is_empty(),
            "{} has no src/lib.rs or src/main.rs",
            dir.display()
        );
        for file in roots {
            let text = fs::read_to_string(&file).expect("crate root is readable");
            let first = text.lines().find(|line| !line.trim().is_empty());
            if !first.is_some_and(|line| line.starts_with("//!")) {
                missing.push(file);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "these crate roots do not start with a `//!` crate doc: {missing:#?}"
    );
}

#[test]
fn libraries_do_not_print() {
    let mut found = Vec::new();
    for dir in crate_dirs() {
        let src = dir.join("src");
        if !src.join("lib.rs").is_file() || !dir.starts_with(root().join("crates")) {
            continue;
        }
        for file in rust_files(&src) {
            // A binary of the package may print.
            let relative = file.strip_prefix(&src).expect("under src");
            if relative == Path::new("main.rs") || relative.starts_with("bin") {
                continue;
            }
            let text = fs::read_to_string(&file).expect("source is readable");
            for (number, line) in non_test_lines(&text) {
                if PRINT_MACROS.iter().any(|m| calls_macro(line, m)) {
                    found.push(format!("{}:{number}: {}", file.display(), line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "libraries log with `tracing`, they do not print:\n{}",
        found.join("\n")
    );
}

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).expect("source directory is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// The numbered lines of `text` that are code outside tests: comments are skipped, and so is
/// everything from the first `#[cfg(test)]` on (test modules go at the end of a file).
fn non_test_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line))
        .take_while(|(_, line)| line.trim() != "#[cfg(test)]")
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
}

/// Whether `line` calls `name` (`print!` does not match inside `eprint!` or `println!`).
fn calls_macro(line: &str, name: &str) -> bool {
    line.match_indices(name).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn the_print_scan_finds_prints() {
    let code = "fn f() {\n    eprintln!(\"x\");\n}\n// println!(\"doc\")\n#[cfg(test)]\nmod t { fn g() { println!() } }\n";
    let hits: Vec<usize> = non_test_lines(code)
        .filter(|(_, line)| PRINT_MACROS.iter().any(|m| calls_macro(line, m)))
        .map(|(number, _)| number)
        .collect();
    assert_eq!(hits, [2]);
    assert!(calls_macro("x; print!(\"a\")", "print!"));
    assert!(!calls_macro("sprint!(x)", "print!"));
}
