//! Graceful shutdown of the real binary: on SIGTERM (and SIGINT) the broker stops accepting,
//! writes what it has for its clients, closes their connections and exits with status 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start() -> (Child, u16) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_mqtt-broker"))
        .args(["-p", &port.to_string()])
        .env_remove("MQTT_PORT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

/// A minimal MQTT 3.1.1 client: CONNECT (keep alive 0), read CONNACK.
fn connected(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&[
        0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x01, b'c',
    ])
    .unwrap();
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
    s
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("broker still running {within:?} after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_closes_connections_and_exits_cleanly() {
    for name in ["TERM", "INT"] {
        let (mut child, port) = start();
        let mut client = connected(port);
        signal(&child, name);
        // The connection is closed by the broker: end of stream, not a timeout.
        let mut rest = Vec::new();
        let read = client.read_to_end(&mut rest);
        assert!(
            read.is_ok() || read.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset)
        );
        let status = wait_exit(&mut child, Duration::from_secs(8));
        assert!(status.success(), "SIG{name}: exit status {status}");
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "still accepting"
        );
    }
}

/// A 5.0 client is told why its connection closes on shutdown: DISCONNECT 0x8B "server
/// shutting down", the last packet before the end of the stream (5.0 section 4.13).
#[test]
fn v5_clients_get_disconnect_0x8b_on_shutdown() {
    let (mut child, port) = start();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // CONNECT 5.0: clean start, keep alive 0, no properties, client id "v".
    s.write_all(&[
        0x10, 0x0E, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        b'v',
    ])
    .unwrap();
    let mut connack = [0u8; 2];
    s.read_exact(&mut connack).unwrap();
    assert_eq!(connack[0], 0x20, "CONNACK");
    let mut rest = vec![0u8; usize::from(connack[1])];
    s.read_exact(&mut rest).unwrap();
    assert_eq!(rest[1], 0x00, "CONNACK reason");
    signal(&child, "TERM");
    let mut tail = Vec::new();
    let _ = s.read_to_end(&mut tail);
    assert!(tail.len() >= 3, "nothing before the close: {tail:02x?}");
    assert_eq!(tail[0], 0xE0, "the last packet is DISCONNECT: {tail:02x?}");
    assert_eq!(tail[2], 0x8B, "reason: server shutting down: {tail:02x?}");
    assert!(wait_exit(&mut child, Duration::from_secs(8)).success());
}
