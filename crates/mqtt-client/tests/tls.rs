//! TLS against a real Mosquitto broker, and the test harness itself ([`support::Mosquitto`],
//! [`support::Certs`]), checked with the `mosquitto_pub`/`mosquitto_sub` command-line clients
//! and a bare rustls handshake.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use support::{CHILD_TIMEOUT, Certs, Mosquitto, Signal, describe, run_bounded};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `mosquitto_pub` publishing `x` to `t` at `host:port` (exit status 0 on success).
fn mosquitto_pub(host: &str, port: u16) -> Command {
    let mut command = Command::new("mosquitto_pub");
    command
        .args(["-h", host, "-p", &port.to_string()])
        .args(["-t", "t", "-m", "x"]);
    command
}

fn assert_succeeds(command: &mut Command) -> String {
    let output = run_bounded(command, CHILD_TIMEOUT);
    assert!(
        output.status.success(),
        "{command:?} failed\n{}",
        describe(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_fails(command: &mut Command) {
    let output = run_bounded(command, CHILD_TIMEOUT);
    assert!(
        !output.status.success(),
        "{command:?} unexpectedly succeeded\n{}",
        describe(&output)
    );
}

#[test]
fn plain_listener_accepts_mosquitto_pub() {
    let broker = Mosquitto::start();
    assert_succeeds(&mut mosquitto_pub(broker.host(), broker.port()));
    assert!(broker.log().contains("mosquitto version"));
}

#[test]
fn tls_listener_accepts_mosquitto_pub_trusting_the_ca() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    assert_ne!(broker.port(), broker.tls_port());

    assert_succeeds(
        mosquitto_pub("localhost", broker.tls_port())
            .arg("--cafile")
            .arg(certs.ca_file()),
    );
    // The plain listener is still there.
    assert_succeeds(&mut mosquitto_pub(broker.host(), broker.port()));
    // Plain MQTT on the TLS port does not work.
    assert_fails(&mut mosquitto_pub(broker.host(), broker.tls_port()));
    // A different CA is not trusted.
    let strangers = Certs::generate();
    assert_fails(
        mosquitto_pub("localhost", broker.tls_port())
            .arg("--cafile")
            .arg(strangers.ca_file()),
    );
}

#[test]
fn required_client_certificate_is_enforced() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder()
        .tls(&certs)
        .require_certificate(true)
        .start();
    let tls_pub = || {
        let mut command = mosquitto_pub("localhost", broker.tls_port());
        command.arg("--cafile").arg(certs.ca_file());
        command
    };

    assert_fails(&mut tls_pub());
    assert_succeeds(
        tls_pub()
            .arg("--cert")
            .arg(certs.client_cert_file())
            .arg("--key")
            .arg(certs.client_key_file()),
    );
    // A client certificate from another CA is refused.
    let strangers = Certs::generate();
    assert_fails(
        tls_pub()
            .arg("--cert")
            .arg(strangers.client_cert_file())
            .arg("--key")
            .arg(strangers.client_key_file()),
    );
}

#[test]
fn restart_keeps_persistent_sessions_and_ports() {
    let mut broker = Mosquitto::builder()
        .persistence(true)
        .max_inflight_messages(10)
        .max_queued_messages(100)
        .start();
    let (host, port) = (broker.host(), broker.port().to_string());
    let sub = |extra: &[&str]| {
        let mut command = Command::new("mosquitto_sub");
        command
            .args(["-h", host, "-p", &port])
            .args(["-i", "harness-session", "-c", "-q", "1", "-t", "s"])
            .args(extra);
        command
    };

    // Create the session and its subscription, then queue a message for it while offline.
    assert_succeeds(&mut sub(&["-E"]));
    assert_succeeds(
        Command::new("mosquitto_pub")
            .args(["-h", host, "-p", &port, "-q", "1", "-t", "s", "-m", "kept"]),
    );

    broker.stop(Signal::Term);
    assert!(!broker.is_running());
    assert!(std::net::TcpStream::connect(broker.addr()).is_err());

    broker.restart();
    assert_eq!(broker.port().to_string(), port);
    let received = assert_succeeds(&mut sub(&["-C", "1", "-W", "10"]));
    assert_eq!(received.trim_end(), "kept");
    assert!(broker.dir().join("data/mosquitto.db").exists());
}

#[test]
fn killed_broker_can_be_restarted() {
    let mut broker = Mosquitto::start();
    let pid = broker.pid();
    broker.stop(Signal::Kill);
    assert!(!broker.is_running());
    assert_fails(&mut mosquitto_pub(broker.host(), broker.port()));

    broker.restart();
    assert!(broker.is_running());
    assert_ne!(broker.pid(), pid);
    assert_succeeds(&mut mosquitto_pub(broker.host(), broker.port()));
    // Stopping twice is harmless.
    broker.stop(Signal::Term);
    broker.stop(Signal::Term);
}

/// A rustls client configuration like the one `TlsOptions::ca_file` (+ `client_auth`) gives.
fn rustls_config(ca_file: &Path, client_auth: Option<(&Path, &Path)>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots);
    Arc::new(match client_auth {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    })
}

/// Connects with TLS, sends an MQTT 3.1.1 CONNECT and returns the CONNACK bytes.
async fn tls_connack(broker: &Mosquitto, name: &str, config: Arc<ClientConfig>) -> [u8; 4] {
    let exchange = async {
        let tcp = TcpStream::connect(broker.tls_addr()).await?;
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        // CONNECT: MQTT 3.1.1, clean session, keep alive 60 s, empty client id.
        tls.write_all(&[0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 0])
            .await?;
        let mut connack = [0; 4];
        tls.read_exact(&mut connack).await?;
        Ok::<_, std::io::Error>(connack)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("TLS exchange timed out")
        .unwrap_or_else(|e| panic!("TLS exchange with {name}: {e}"))
}

const CONNACK_ACCEPTED: [u8; 4] = [0x20, 2, 0, 0];

#[tokio::test]
async fn rustls_handshake_with_mosquitto_by_name_and_ip() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let config = rustls_config(&certs.ca_file(), None);
    for name in ["localhost", "127.0.0.1"] {
        assert_eq!(
            tls_connack(&broker, name, config.clone()).await,
            CONNACK_ACCEPTED
        );
    }
}

#[tokio::test]
async fn rustls_client_certificate_with_mosquitto() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder()
        .tls(&certs)
        .require_certificate(true)
        .start();
    let config = rustls_config(
        &certs.ca_file(),
        Some((&certs.client_cert_file(), &certs.client_key_file())),
    );
    assert_eq!(
        tls_connack(&broker, "localhost", config).await,
        CONNACK_ACCEPTED
    );
}

// ---------------------------------------------------------------------------------------------
// Our client over TLS

fn tls_options(broker: &Mosquitto, host: &str) -> mqtt_client::ConnectOptions {
    mqtt_client::ConnectOptions::new(host, broker.tls_port())
        .connect_timeout(Duration::from_secs(10))
        .reconnect(None)
}

/// Connects, publishes QoS 1 to itself and waits for the message.
async fn round_trip(options: mqtt_client::ConnectOptions) -> Result<(), mqtt_client::Error> {
    use mqtt_client::{Client, Event, QoS};
    let (client, mut events) = Client::connect(options).await?;
    client.subscribe([("tls/t", QoS::AtLeastOnce)]).await?;
    client
        .publish("tls/t", "secret", QoS::AtLeastOnce, false)
        .await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(Event::Message(m))) => {
                assert_eq!(m.payload().as_ref(), b"secret");
                break;
            }
            Ok(Some(_)) => {}
            other => panic!("no message: {other:?}"),
        }
    }
    client.disconnect().await
}

#[tokio::test]
async fn client_over_tls_trusting_the_test_ca() {
    use mqtt_client::TlsOptions;
    let certs = Certs::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    for host in ["localhost", "127.0.0.1"] {
        let o = tls_options(&broker, host).tls(TlsOptions::new().ca_file(certs.ca_file()));
        round_trip(o)
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
    }
    // The same through an mqtts:// URL (system roots replaced by the CA).
    let url = format!("mqtts://localhost:{}", broker.tls_port());
    let o = mqtt_client::ConnectOptions::from_url(&url)
        .unwrap()
        .reconnect(None)
        .tls(TlsOptions::new().ca_file(certs.ca_file()));
    round_trip(o).await.unwrap();
}

#[tokio::test]
async fn client_over_tls_refuses_what_it_cannot_verify() {
    use mqtt_client::{ConnectionError, Error, TlsOptions};
    let certs = Certs::generate();
    let other = Certs::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    // An unknown CA.
    let o = tls_options(&broker, "localhost").tls(TlsOptions::new().ca_file(other.ca_file()));
    let err = round_trip(o).await.unwrap_err();
    assert!(
        matches!(err, Error::Connection(ConnectionError::Tls(_))),
        "{err:?}"
    );
    // The right CA, the wrong name: refused, unless only the name check is skipped (as
    // mosquitto_pub --insecure does).
    let wrong_name = TlsOptions::new()
        .ca_file(certs.ca_file())
        .server_name("not-the-server.example");
    let err = round_trip(tls_options(&broker, "localhost").tls(wrong_name.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Connection(ConnectionError::Tls(_))),
        "{err:?}"
    );
    round_trip(tls_options(&broker, "localhost").tls(wrong_name.insecure_skip_hostname(true)))
        .await
        .unwrap();
    // Skipping verification altogether accepts even the unknown CA.
    let dangerous = TlsOptions::new().dangerous_skip_verification(true);
    round_trip(tls_options(&broker, "localhost").tls(dangerous))
        .await
        .unwrap();
    // Plain MQTT on the TLS port: the server does not answer a CONNECT in clear text with a
    // CONNACK.
    let err = round_trip(tls_options(&broker, "localhost").connect_timeout(Duration::from_secs(2)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connection(_)), "{err:?}");
}

#[tokio::test]
async fn client_certificate_authentication() {
    use mqtt_client::{Error, TlsOptions};
    let certs = Certs::generate();
    let broker = Mosquitto::builder()
        .tls(&certs)
        .require_certificate(true)
        .start();
    let without = TlsOptions::new().ca_file(certs.ca_file());
    let err = round_trip(tls_options(&broker, "localhost").tls(without))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connection(_)), "{err:?}");
    let with = TlsOptions::new()
        .ca_file(certs.ca_file())
        .client_auth(certs.client_cert_file(), certs.client_key_file());
    round_trip(tls_options(&broker, "localhost").tls(with))
        .await
        .unwrap();
}
