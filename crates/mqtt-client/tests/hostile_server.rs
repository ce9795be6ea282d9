//! The client against a scripted fake server that misbehaves: whatever the server sends, the
//! client never panics or hangs; it drops the connection with a typed reason and (when
//! configured) reconnects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use mqtt_client::{Client, ConnectOptions, ConnectionError, Error, Event, Events, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(20);

/// CONNACK accepted, no session (3.1.1).
const CONNACK_OK: &[u8] = &[0x20, 0x02, 0x00, 0x00];

/// A fake server: accepts connections one after the other and runs `script` on each with the
/// connection number (from 0).
async fn fake_server<F, Fut>(script: F) -> u16
where
    F: Fn(usize, TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(script(n, stream));
            n += 1;
        }
    });
    port
}

/// Reads the client's CONNECT (anything up to the first pause) and answers `answer`.
async fn handshake(stream: &mut TcpStream, answer: &[u8]) {
    let mut buf = [0u8; 1024];
    let _ = stream.read(&mut buf).await.unwrap();
    stream.write_all(answer).await.unwrap();
}

/// The scripted server speaks MQTT 3.1.1.
fn options(port: u16) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", port)
        .protocol(mqtt_client::ProtocolVersion::V3_1_1)
        .connect_timeout(Duration::from_secs(2))
        .reconnect(None)
}

async fn disconnected(events: &mut Events) -> ConnectionError {
    loop {
        match tokio::time::timeout(LIMIT, events.recv()).await {
            Ok(Some(Event::Disconnected { reason })) => return reason,
            Ok(Some(_)) => {}
            Ok(None) => panic!("stream ended without Disconnected"),
            Err(_) => panic!("no Disconnected in time"),
        }
    }
}

/// After CONNACK, the server sends `bytes`; the client must close with a protocol error.
async fn closes_on(bytes: &'static [u8]) -> ConnectionError {
    let port = fake_server(move |_, mut s| async move {
        handshake(&mut s, CONNACK_OK).await;
        let _ = s.write_all(bytes).await;
        // Hold the connection open: the client must be the one to close it.
        let mut sink = [0u8; 256];
        while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    let (_c, mut events) = Client::connect(options(port)).await.unwrap();
    disconnected(&mut events).await
}

#[tokio::test]
async fn malformed_packets_close_the_connection() {
    let cases: &[(&str, &[u8])] = &[
        ("reserved packet type 0", &[0x00, 0x00]),
        ("reserved packet type 15 in 3.1.1", &[0xF0, 0x00]),
        ("PUBACK with wrong flags", &[0x41, 0x02, 0x00, 0x01]),
        (
            "PUBLISH with QoS 3",
            &[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01],
        ),
        (
            "PUBLISH with a wildcard topic",
            &[0x30, 0x03, 0x00, 0x01, b'#'],
        ),
        (
            "PUBLISH topic not UTF-8",
            &[0x30, 0x04, 0x00, 0x02, 0xC3, 0x28],
        ),
        (
            "PUBLISH QoS 1 with packet id 0",
            &[0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00],
        ),
        (
            "remaining length of five bytes",
            &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        ),
        (
            "SUBACK with an invalid code",
            &[0x90, 0x03, 0x00, 0x01, 0x03],
        ),
        ("a second CONNACK", CONNACK_OK),
        (
            "a CONNECT",
            &[
                0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00,
            ],
        ),
        ("a PINGREQ", &[0xC0, 0x00]),
        (
            "a SUBSCRIBE",
            &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00],
        ),
    ];
    for (what, bytes) in cases {
        let reason = tokio::time::timeout(LIMIT, closes_on(bytes))
            .await
            .unwrap_or_else(|_| panic!("{what}: hung"));
        assert!(
            matches!(reason, ConnectionError::Protocol(_)),
            "{what}: {reason:?}"
        );
    }
}

#[tokio::test]
async fn a_packet_over_the_size_limit_is_refused_before_it_is_buffered() {
    let port = fake_server(|_, mut s| async move {
        handshake(&mut s, CONNACK_OK).await;
        // A PUBLISH announcing 200 MB, then silence.
        let _ = s.write_all(&[0x30, 0x80, 0x80, 0x80, 0x60]).await;
        let mut sink = [0u8; 256];
        while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    let o = options(port).max_packet_size(1024 * 1024);
    let (_c, mut events) = Client::connect(o).await.unwrap();
    let reason = disconnected(&mut events).await;
    assert!(matches!(reason, ConnectionError::Protocol(_)), "{reason:?}");
}

#[tokio::test]
async fn mqtt_3_2_0_1_anything_but_connack_first_fails_the_connect() {
    let port = fake_server(|_, mut s| async move {
        handshake(&mut s, &[0xD0, 0x00]).await; // PINGRESP
    })
    .await;
    let err = Client::connect(options(port)).await.unwrap_err();
    assert!(
        matches!(err, Error::Connection(ConnectionError::Protocol(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let port = fake_server(|_, mut s| async move {
        let mut sink = [0u8; 256];
        while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    let o = options(port).connect_timeout(Duration::from_millis(300));
    let err = Client::connect(o).await.unwrap_err();
    assert!(
        matches!(err, Error::Connection(ConnectionError::ConnectTimeout)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_server_that_closes_mid_connack_fails_the_connect() {
    let port = fake_server(|_, mut s| async move {
        handshake(&mut s, &[0x20, 0x02, 0x00]).await;
    })
    .await;
    let err = Client::connect(options(port)).await.unwrap_err();
    assert!(
        matches!(err, Error::Connection(ConnectionError::Closed)),
        "{err:?}"
    );
}

#[tokio::test]
async fn mqtt_3_1_2_24_no_pingresp_drops_the_connection() {
    let port = fake_server(|_, mut s| async move {
        handshake(&mut s, CONNACK_OK).await;
        // Reads PINGREQs and never answers them.
        let mut sink = [0u8; 256];
        while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    let o = options(port).keep_alive(Duration::from_secs(1));
    let (_c, mut events) = Client::connect(o).await.unwrap();
    let reason = disconnected(&mut events).await;
    assert!(matches!(reason, ConnectionError::PingTimeout), "{reason:?}");
}

#[tokio::test]
async fn garbage_then_a_good_server_reconnects() {
    // The first connection gets garbage, the second behaves and echoes a SUBACK.
    let port = fake_server(|n, mut s| async move {
        handshake(&mut s, CONNACK_OK).await;
        if n == 0 {
            let _ = s.write_all(&[0xFF; 64]).await;
            let mut sink = [0u8; 256];
            while matches!(s.read(&mut sink).await, Ok(k) if k > 0) {}
            return;
        }
        // Answer one SUBSCRIBE (packet id in bytes 2-3) with a SUBACK granting QoS 1.
        let mut buf = [0u8; 256];
        let k = s.read(&mut buf).await.unwrap();
        assert!(
            k >= 4 && buf[0] == 0x82,
            "expected SUBSCRIBE: {:?}",
            &buf[..k]
        );
        s.write_all(&[0x90, 0x03, buf[2], buf[3], 0x01])
            .await
            .unwrap();
        let mut sink = [0u8; 256];
        while matches!(s.read(&mut sink).await, Ok(k) if k > 0) {}
    })
    .await;
    let o = options(port).reconnect(Some(mqtt_client::Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
        max_attempts: Some(5),
    }));
    let (c, mut events) = Client::connect(o).await.unwrap();
    let reason = disconnected(&mut events).await;
    assert!(matches!(reason, ConnectionError::Protocol(_)), "{reason:?}");
    let granted = tokio::time::timeout(LIMIT, c.subscribe([("a", QoS::AtLeastOnce)]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(granted, [Ok(QoS::AtLeastOnce)]);
}

#[tokio::test]
async fn unsolicited_acknowledgements_are_ignored() {
    let port = fake_server(|_, mut s| async move {
        handshake(&mut s, CONNACK_OK).await;
        // PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK for identifiers never used, then a message.
        let _ = s
            .write_all(&[
                0x40, 0x02, 0x12, 0x34, 0x50, 0x02, 0x12, 0x35, 0x70, 0x02, 0x12, 0x36, 0x90, 0x03,
                0x12, 0x37, 0x00, 0xB0, 0x02, 0x12, 0x38, 0x30, 0x04, 0x00, 0x01, b't', b'!',
            ])
            .await;
        let mut sink = [0u8; 256];
        while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    let (_c, mut events) = Client::connect(options(port)).await.unwrap();
    loop {
        match tokio::time::timeout(LIMIT, events.recv()).await.unwrap() {
            Some(Event::Message(m)) => {
                assert_eq!(m.topic().as_str(), "t");
                break;
            }
            Some(Event::Disconnected { reason }) => panic!("{reason:?}"),
            Some(_) => {}
            None => panic!("ended"),
        }
    }
}
