//! The broker's transports, end to end against peers nobody here wrote: MQTT over TLS with the
//! Mosquitto command-line clients (server certificates, client certificates, the certificate's
//! Common Name as user name, TLS 1.2 and 1.3), MQTT over WebSocket and WebSocket over TLS with
//! paho (`paho/websockets.py`), the WebSocket rules of section 6 checked frame by frame with a
//! WebSocket client library, several listeners sharing one broker, a listener's own connection
//! limit, and certificates reloaded on SIGHUP.
//!
//! Every broker listens on loopback ports only; certificates are generated per test (rcgen) in
//! the broker's private directory. Subscribers wait for their SUBACK before anything is
//! published (no sleeping), and every process runs under a timeout.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod support;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use support::{Background, Broker, describe, run_python, run_with_timeout};

/// How long a short-lived client may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long to wait for a subscriber's SUBACK, a broker's log line, a subscriber's end.
const WAIT: Duration = Duration::from_secs(20);

/// `mosquitto_sub -F`: one line per message.
const FORMAT: &str = "MSG|%t|%p";

// ---------------------------------------------------------------------------------------------
// Certificates

/// A certificate authority of one test: its certificate in `<dir>/<name>-ca.pem`, and the
/// certificates it signs beside it.
struct Ca {
    name: String,
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM files.
struct Leaf {
    cert: PathBuf,
    key: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        fs::write(dir.join(format!("{name}-ca.pem")), cert.pem()).expect("write the CA");
        Self {
            name: name.to_owned(),
            dir: dir.to_owned(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate's file.
    fn pem(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// A certificate signed by this CA, written to `<stem>.pem` and `<stem>.key`: for the
    /// server (valid for 127.0.0.1 and localhost) or for a client, with this Common Name
    /// (none: a subject without one).
    fn sign(&self, stem: &str, server: bool, common_name: Option<&str>) -> Leaf {
        let names = if server {
            vec!["127.0.0.1".to_owned(), "localhost".to_owned()]
        } else {
            Vec::new()
        };
        let mut params = CertificateParams::new(names).expect("leaf parameters");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "mqtt transports test");
        if let Some(cn) = common_name {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let leaf = Leaf {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}.key")),
        };
        fs::write(&leaf.cert, cert.pem()).expect("write the certificate");
        fs::write(&leaf.key, key.serialize_pem()).expect("write the key");
        leaf
    }
}

/// `[[listener]]` tables: `extra` holds each listener's lines beyond its port and address.
fn listeners(ports: &[u16], extra: &[&str]) -> String {
    let mut config = String::new();
    for (port, lines) in ports.iter().zip(extra) {
        let _ = writeln!(
            config,
            "[[listener]]\nport = {port}\nbind = \"127.0.0.1\"\n{lines}\n"
        );
    }
    config
}

/// A listener's TLS lines for the server certificate `leaf`.
fn tls_lines(leaf: &Leaf) -> String {
    format!(
        "certfile = \"{}\"\nkeyfile = \"{}\"",
        leaf.cert.display(),
        leaf.key.display()
    )
}

// ---------------------------------------------------------------------------------------------
// Clients

/// A Mosquitto client aimed at `port`, with TLS arguments when given.
fn client(program: &str, port: u16, tls: &[&str]) -> Command {
    let mut command = Command::new("stdbuf");
    command
        .args(["-oL", program, "-h", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(tls);
    command
}

/// TLS arguments of a client that trusts `ca`.
fn trusting(ca: &Path) -> Vec<String> {
    vec!["--cafile".into(), ca.display().to_string()]
}

/// TLS arguments of a client that trusts `dir/main-ca.pem` and presents the certificate
/// `dir/<stem>.pem` with its key.
fn certified(dir: &Path, stem: &str) -> Vec<String> {
    let mut args = trusting(&dir.join("main-ca.pem"));
    for (option, extension) in [("--cert", "pem"), ("--key", "key")] {
        args.push(option.into());
        args.push(
            dir.join(format!("{stem}.{extension}"))
                .display()
                .to_string(),
        );
    }
    args
}

/// `mosquitto_pub` of `payload` on `topic` at QoS 1 to `port`, run to completion.
fn publish(port: u16, tls: &[String], topic: &str, payload: &str) -> Output {
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    run_with_timeout(
        client("mosquitto_pub", port, &tls).args(["-d", "-q", "1", "-t", topic, "-m", payload]),
        CLIENT_TIMEOUT,
    )
}

/// [`publish`] that must succeed.
fn published(port: u16, tls: &[String], topic: &str, payload: &str) {
    let output = publish(port, tls, topic, payload);
    assert!(
        output.status.success(),
        "mosquitto_pub to port {port} failed\n{}",
        describe(&output)
    );
}

/// [`publish`] that must fail to connect.
fn refused(port: u16, tls: &[String], topic: &str, what: &str) -> String {
    let output = publish(port, tls, topic, "must not arrive");
    assert!(
        !output.status.success(),
        "{what}: mosquitto_pub succeeded\n{}",
        describe(&output)
    );
    let text = describe(&output);
    assert!(
        !text.contains("received PUBACK"),
        "{what}: a PUBACK came back\n{text}"
    );
    text
}

/// A `mosquitto_sub` to `port` that has its SUBACK and ends after `count` messages.
fn subscribed(port: u16, tls: &[String], topic: &str, count: usize) -> Background {
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let mut sub = Background::spawn(
        client("mosquitto_sub", port, &tls)
            .args(["-d", "-q", "1", "-F", FORMAT, "-W", "30", "-t", topic, "-C"])
            .arg(count.to_string()),
    );
    sub.wait_for_line("its SUBACK", WAIT, |line| line.contains("received SUBACK"));
    sub
}

/// The payloads a finished subscriber printed.
fn received(sub: &mut Background) -> Vec<String> {
    let (status, lines) = sub.wait(Duration::from_secs(40));
    assert!(
        status.success(),
        "mosquitto_sub failed\n{}",
        sub.transcript()
    );
    lines
        .iter()
        .filter_map(|line| line.strip_prefix("MSG|"))
        .map(|rest| rest.split_once('|').map_or("", |(_, p)| p).to_owned())
        .collect()
}

/// Waits until the broker's log has a line containing every one of `needles`; returns it.
fn wait_for_log(broker: &Broker, needles: &[&str]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(line) = broker
            .log()
            .lines()
            .find(|line| needles.iter().all(|n| line.contains(n)))
        {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no broker log line with {needles:?} within {WAIT:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGHUP to the broker (with the shell's `kill` built-in: no procps needed).
fn hang_up(broker: &Broker) {
    let status = Command::new("sh")
        .args(["-c", "kill -HUP \"$0\"", &broker.pid().to_string()])
        .status()
        .expect("run sh");
    assert!(status.success(), "kill -HUP failed");
}

// ---------------------------------------------------------------------------------------------
// TLS

/// One broker, two listeners: plain MQTT and MQTT over TLS (section 4.2 of MQTT 3.1.1: TLS is
/// one of the network connections MQTT runs over). A subscriber on TLS 1.3 receives what is
/// published over TLS 1.2 and over plain TCP.
#[test]
fn tls_listener_serves_mosquitto_clients_beside_plain_tcp() {
    let broker = Broker::start_listeners(2, |ports, dir| {
        let ca = Ca::new(dir, "main");
        let server = ca.sign("server", true, None);
        listeners(ports, &["", &tls_lines(&server)])
    });
    let [plain, tls] = [broker.ports()[0], broker.ports()[1]];
    let ca = broker.dir().join("main-ca.pem");
    let mut tls13 = trusting(&ca);
    tls13.extend(["--tls-version".into(), "tlsv1.3".into()]);
    let mut tls12 = trusting(&ca);
    tls12.extend(["--tls-version".into(), "tlsv1.2".into()]);

    let mut sub = subscribed(tls, &tls13, "tls/a", 2);
    published(tls, &tls12, "tls/a", "over-tls12");
    published(plain, &[], "tls/a", "over-tcp");
    assert_eq!(received(&mut sub), ["over-tls12", "over-tcp"]);
    wait_for_log(&broker, &["listening", "mqtts"]);
}

/// A client that does not trust the server's certificate (another CA) cannot connect, and
/// the broker carries on serving the others.
#[test]
fn tls_client_with_another_ca_is_refused() {
    let broker = Broker::start_listeners(1, |ports, dir| {
        let ca = Ca::new(dir, "main");
        Ca::new(dir, "other");
        listeners(ports, &[&tls_lines(&ca.sign("server", true, None))])
    });
    let port = broker.port();
    let other = trusting(&broker.dir().join("other-ca.pem"));
    let good = trusting(&broker.dir().join("main-ca.pem"));
    let mut sub = subscribed(port, &good, "tls/b", 1);
    refused(port, &other, "tls/b", "untrusted server certificate");
    // Plain MQTT on a TLS listener is no MQTT at all.
    refused(port, &[], "tls/b", "plain MQTT on the TLS listener");
    published(port, &good, "tls/b", "after");
    assert_eq!(received(&mut sub), ["after"]);
}

/// `require_certificate`: a client without a certificate, or with one the listener's CA did not
/// sign, is refused in the handshake; one with a certificate the CA signed gets in.
#[test]
fn tls_require_certificate_admits_only_clients_the_ca_signed() {
    let broker = Broker::start_listeners(2, |ports, dir| {
        let ca = Ca::new(dir, "main");
        let server = ca.sign("server", true, None);
        ca.sign("client", false, Some("sensor-1"));
        Ca::new(dir, "other").sign("stranger", false, Some("sensor-2"));
        let tls = format!(
            "{}\ncafile = \"{}\"\nrequire_certificate = true",
            tls_lines(&server),
            ca.pem().display()
        );
        listeners(ports, &["", &tls])
    });
    let [plain, tls] = [broker.ports()[0], broker.ports()[1]];
    let dir = broker.dir();
    let base = trusting(&dir.join("main-ca.pem"));
    let with = |stem: &str| certified(dir, stem);
    let mut sub = subscribed(plain, &[], "tls/c", 1);
    refused(tls, &base, "tls/c", "no client certificate");
    refused(
        tls,
        &with("stranger"),
        "tls/c",
        "a certificate of another CA",
    );
    published(tls, &with("client"), "tls/c", "certified");
    assert_eq!(received(&mut sub), ["certified"]);
}

/// `use_identity_as_username`: the Common Name of the client's certificate is the session's
/// user name, whatever the CONNECT says; a certificate without a Common Name is refused with
/// CONNACK "not authorized" (3.1.1 return code 5).
#[test]
fn tls_identity_is_the_user_name() {
    let broker = Broker::start_listeners(1, |ports, dir| {
        let ca = Ca::new(dir, "main");
        let server = ca.sign("server", true, None);
        ca.sign("named", false, Some("sensor-7"));
        ca.sign("nameless", false, None);
        let tls = format!(
            "{}\ncafile = \"{}\"\nrequire_certificate = true\nuse_identity_as_username = true",
            tls_lines(&server),
            ca.pem().display()
        );
        listeners(ports, &[&tls])
    });
    let port = broker.port();
    let dir = broker.dir();
    let with = |stem: &str| {
        let mut args = certified(dir, stem);
        args.extend([
            "-i".into(),
            format!("id-{stem}"),
            "-u".into(),
            "mallory".into(),
            "-P".into(),
            "secret".into(),
        ]);
        args
    };
    published(port, &with("named"), "tls/d", "x");
    let line = wait_for_log(&broker, &["client connected", "id-named"]);
    assert!(line.contains("sensor-7"), "{line}");
    assert!(!line.contains("mallory"), "{line}");
    let output = refused(port, &with("nameless"), "tls/d", "no Common Name");
    assert!(output.contains("not authorised"), "{output}");
}

/// SIGHUP reloads a TLS listener's certificate and key: connections made before keep working,
/// new ones get the new certificate. Files that do not load leave the certificate in use and
/// say so in the log.
#[test]
fn tls_certificates_reload_on_sighup() {
    let broker = Broker::start_listeners(1, |ports, dir| {
        let server = Ca::new(dir, "old").sign("server", true, None);
        listeners(ports, &[&tls_lines(&server)])
    });
    let port = broker.port();
    let dir = broker.dir().to_owned();
    let old = trusting(&dir.join("old-ca.pem"));
    let new = trusting(&dir.join("new-ca.pem"));
    let mut before = subscribed(port, &old, "tls/e", 2);

    // The new certificate is written where the old one was.
    Ca::new(&dir, "new").sign("server", true, None);
    hang_up(&broker);
    wait_for_log(&broker, &["TLS certificate and key reloaded"]);
    refused(port, &old, "tls/e", "old CA after the reload");
    published(port, &new, "tls/e", "reloaded");

    fs::write(dir.join("server.pem"), "not a certificate").expect("spoil the certificate");
    hang_up(&broker);
    wait_for_log(&broker, &["TLS files not reloaded"]);
    published(port, &new, "tls/e", "kept");
    assert_eq!(received(&mut before), ["reloaded", "kept"]);
}

// ---------------------------------------------------------------------------------------------
// WebSocket

/// MQTT over WebSocket and over secure WebSocket with paho, 3.1.1 and 5.0, beside plain TCP
/// (`paho/websockets.py`: [MQTT-6.0.0-2], [MQTT-6.0.0-3], [MQTT-6.0.0-4], and a wrong path
/// refused).
#[test]
fn mqtt_6_0_0_websocket_and_secure_websocket_with_paho() {
    let broker = Broker::start_listeners(3, |ports, dir| {
        let server = Ca::new(dir, "main").sign("server", true, None);
        let wss = format!(
            "protocol = \"websockets\"\npath = \"/secure\"\n{}",
            tls_lines(&server)
        );
        listeners(ports, &["", "protocol = \"websockets\"", &wss])
    });
    let ports: Vec<String> = broker.ports().iter().map(u16::to_string).collect();
    let ca = broker.dir().join("main-ca.pem").display().to_string();
    for args in [
        vec!["127.0.0.1", &ports[1], "/mqtt", &ports[0]],
        vec!["127.0.0.1", &ports[2], "/secure", &ports[0], &ca],
    ] {
        let output = run_python("websockets.py", &args, Duration::from_secs(90));
        assert!(
            output.status.success(),
            "websockets.py {args:?} failed\n{}\n---- broker log ----\n{}",
            describe(&output),
            broker.log()
        );
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
}

/// The rules of section 6 frame by frame, with a WebSocket client library: the server answers
/// the `mqtt` subprotocol [MQTT-6.0.0-4]; a packet split across binary frames, and two packets
/// in one frame, are read as the byte stream they make [MQTT-6.0.0-2]; a text frame closes the
/// connection [MQTT-6.0.0-1]; another path gets HTTP 404.
#[test]
fn mqtt_6_0_0_websocket_frames() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};

    let broker = Broker::start_listeners(1, |ports, _| {
        listeners(ports, &["protocol = \"websockets\""])
    });
    let port = broker.port();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let open = |path: &'static str| async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            let mut request = format!("ws://127.0.0.1:{port}{path}")
                .into_client_request()
                .expect("request");
            request.headers_mut().insert(
                "sec-websocket-protocol",
                "mqtt".parse().expect("header value"),
            );
            tokio_tungstenite::client_async(request, tcp).await
        };

        let (mut ws, response) = within("handshake", open("/mqtt")).await.expect("upgrade");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some("mqtt"),
            "[MQTT-6.0.0-4]"
        );
        // CONNECT (3.1.1, clean session, keep alive 60, client id "ws") split in two frames.
        let connect: &[u8] = b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02ws";
        let (head, tail) = connect.split_at(5);
        ws.send(Message::binary(head.to_vec())).await.expect("send");
        ws.send(Message::binary(tail.to_vec())).await.expect("send");
        let connack = within("CONNACK", ws.next()).await;
        assert!(
            matches!(&connack, Some(Ok(Message::Binary(b))) if b.as_ref() == b"\x20\x02\x00\x00"),
            "{connack:?}"
        );
        // Two PINGREQs in one frame: two PINGRESPs.
        ws.send(Message::binary(b"\xc0\x00\xc0\x00".to_vec()))
            .await
            .expect("send");
        let mut answered = Vec::new();
        while answered.len() < 4 {
            match within("PINGRESP", ws.next()).await {
                Some(Ok(Message::Binary(b))) => answered.extend_from_slice(&b),
                other => panic!("expected PINGRESPs, got {other:?}"),
            }
        }
        assert_eq!(answered, b"\xd0\x00\xd0\x00");
        // A text frame: the connection closes.
        ws.send(Message::text("\u{10}")).await.expect("send");
        loop {
            match within("close after a text frame", ws.next()).await {
                None | Some(Err(_) | Ok(Message::Close(_))) => break,
                Some(Ok(Message::Binary(b))) => panic!("answered a text frame with {b:?}"),
                Some(Ok(_)) => {}
            }
        }

        match within("handshake on another path", open("/other")).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 404);
            }
            other => panic!("another path: {:?}", other.map(|(_, r)| r.status())),
        }
    });
}

/// `f`'s output, which must come within [`WAIT`].
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {WAIT:?}"))
}

// ---------------------------------------------------------------------------------------------
// Listeners

/// A listener's own `max_connections`: beyond it, new connections on that listener are closed
/// while the other listener and the connections already in carry on.
#[test]
fn listener_connection_limit_is_its_own() {
    let broker =
        Broker::start_listeners(2, |ports, _| listeners(ports, &["", "max_connections = 1"]));
    let [open, limited] = [broker.ports()[0], broker.ports()[1]];
    let mut sub = subscribed(limited, &[], "limit/a", 1);
    refused(
        limited,
        &[],
        "limit/a",
        "a second connection on a listener of one",
    );
    wait_for_log(&broker, &["connection limit reached"]);
    published(open, &[], "limit/a", "through the other listener");
    assert_eq!(received(&mut sub), ["through the other listener"]);
}
