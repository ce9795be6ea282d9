//! Runs the built `mqtt-broker` binary: exit statuses and messages of the configuration paths
//! (none of these tests starts the broker).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use mqtt_broker::config::Config;

/// The binary with no `MQTT_*` variable inherited from the test's environment.
fn broker() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mqtt-broker"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MQTT_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run mqtt-broker");
    (
        status.code().expect("exited, not killed"),
        String::from_utf8(stdout).expect("utf-8 stdout"),
        String::from_utf8(stderr).expect("utf-8 stderr"),
    )
}

/// A file under the temp directory with a name no other test (or test run) uses; removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "mqtt-broker-cli-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).expect("write temp file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn generate_config_prints_the_defaults() {
    let (code, out, err) = run(broker().arg("generate-config"));
    assert_eq!(code, 0, "{err}");
    let parsed: Config = toml::from_str(&out).expect("generated file parses");
    assert_eq!(parsed, Config::default());
}

#[test]
fn generated_file_loads_back() {
    let (_, generated, _) = run(broker().arg("generate-config"));
    let file = TempFile::new(&generated);
    let (code, out, err) = run(broker().arg("-c").arg(&file.0).arg("--print-config"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(toml::from_str::<Config>(&out).unwrap(), Config::default());
}

#[test]
fn print_config_shows_flags() {
    let (code, out, err) = run(broker().args(["--print-config", "-p", "1999"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l == "port = 1999"), "{out}");
}

#[test]
fn print_config_layers_file_env_and_flags() {
    let file = TempFile::new("port = 1000\nmax_inflight = 5\nmax_topic_levels = 7\n");
    let (code, out, err) = run(broker()
        .arg("--config")
        .arg(&file.0)
        .env("MQTT_PORT", "2000")
        .env("MQTT_MAX_INFLIGHT", "6")
        .args(["--port", "3000", "--print-config"]));
    assert_eq!(code, 0, "{err}");
    let config: Config = toml::from_str(&out).unwrap();
    assert_eq!(
        (config.port, config.max_inflight, config.max_topic_levels),
        (3000, 6, 7)
    );
}

#[test]
fn bad_config_file_exits_2_naming_the_key() {
    let file = TempFile::new("port = 1884\nmax_inflight = \"x\"\n");
    let (code, out, err) = run(broker().arg("-c").arg(&file.0).arg("--print-config"));
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.starts_with("mqtt-broker: "), "{err}");
    assert!(err.contains("`max_inflight`"), "{err}");
    assert!(err.contains(":2:"), "line number: {err}");
}

#[test]
fn unknown_key_in_file_exits_2_naming_the_key() {
    let file = TempFile::new("max_inflite = 3\n");
    let (code, _, err) = run(broker().arg("-c").arg(&file.0));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`max_inflite`"), "{err}");
}

#[test]
fn bad_env_value_exits_2_naming_the_variable() {
    let (code, _, err) = run(broker().env("MQTT_PORT", "abc").arg("--print-config"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("MQTT_PORT"), "{err}");
}

#[test]
fn invalid_value_exits_2_naming_the_key() {
    let (code, _, err) = run(broker().args(["--set", "max_inflight=0"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`max_inflight`"), "{err}");
}

#[test]
fn missing_config_file_exits_2() {
    let path = std::env::temp_dir().join(format!(
        "mqtt-broker-cli-{}-missing.toml",
        std::process::id()
    ));
    let (code, _, err) = run(broker().arg("-c").arg(&path));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, _) = run(broker().args(["-p", "abc"]));
    assert_eq!(code, 2);
    let (code, _, _) = run(broker().arg("--no-such-flag"));
    assert_eq!(code, 2);
}

#[test]
fn persistence_flags_set_their_keys() {
    let (code, out, err) = run(broker().args([
        "--persistence",
        "--data-dir",
        "/tmp/somewhere",
        "--sync",
        "always",
        "--print-config",
    ]));
    assert_eq!(code, 0, "{err}");
    let config: Config = toml::from_str(&out).expect("valid TOML");
    assert!(config.persistence);
    assert_eq!(config.data_dir, "/tmp/somewhere");
    assert_eq!(config.sync, mqtt_session::store::SyncPolicy::Always);
    // Without the flags: off, batch, the default directory.
    let (_, out, _) = run(broker().arg("--print-config"));
    let config: Config = toml::from_str(&out).expect("valid TOML");
    assert!(!config.persistence);
    assert_eq!(config.sync, mqtt_session::store::SyncPolicy::Batch);
}

#[test]
fn an_unknown_sync_policy_exits_2_naming_the_key() {
    let (code, _, err) = run(broker().args(["--sync", "sometimes"]));
    assert_eq!(code, 2);
    assert!(
        err.contains("`sync`") && err.contains("always, batch or never"),
        "{err}"
    );
}

#[test]
fn a_data_directory_in_use_exits_1_saying_so() {
    let dir = std::env::temp_dir().join(format!("mqtt-broker-cli-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Holding the store open as a broker would.
    let (store, _) = mqtt_session::store::DurableStore::open(
        &dir,
        mqtt_session::store::StoreOptions::default(),
        std::time::Instant::now(),
        std::time::SystemTime::now(),
    )
    .unwrap();
    let (code, _, err) = run(broker()
        .args(["-p", "0", "--persistence", "--data-dir"])
        .arg(&dir));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("in use by another process"), "{err}");
}

#[test]
fn listeners_round_trip_through_print_config() {
    let file = TempFile::new(
        "[[listener]]\nport = 1883\n\n[[listener]]\nport = 8080\nbind = \"127.0.0.1\"\n\
         protocol = \"websockets\"\npath = \"/ws\"\nmax_connections = 10\n",
    );
    let (code, out, err) = run(broker().arg("-c").arg(&file.0).arg("--print-config"));
    assert_eq!(code, 0, "{err}");
    let config: Config = toml::from_str(&out).expect("printed file parses");
    assert_eq!(config.listener.len(), 2, "{out}");
    let ws = &config.listener[1];
    assert_eq!(
        (ws.port, ws.path.as_str(), ws.max_connections, ws.scheme()),
        (8080, "/ws", Some(10), "ws")
    );
}

#[test]
fn a_listener_key_error_exits_2_naming_the_listener() {
    let file = TempFile::new("[[listener]]\nport = 8883\ncertfile = \"server.pem\"\n");
    let (code, _, err) = run(broker().arg("-c").arg(&file.0));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("listener[0].keyfile"), "{err}");
    let file = TempFile::new("[[listener]]\nport = 8883\nprotocl = \"mqtt\"\n");
    let (code, _, err) = run(broker().arg("-c").arg(&file.0));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("protocl"), "{err}");
}

#[test]
fn an_unreadable_certificate_exits_1_naming_the_file() {
    let missing =
        std::env::temp_dir().join(format!("mqtt-broker-cli-{}-none.pem", std::process::id()));
    let file = TempFile::new(&format!(
        "[[listener]]\nport = 0\nbind = \"127.0.0.1\"\ncertfile = \"{0}\"\nkeyfile = \"{0}\"\n",
        missing.display()
    ));
    let (code, _, err) = run(broker().arg("-c").arg(&file.0));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
}
