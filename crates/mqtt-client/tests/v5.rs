//! MQTT 5.0 through the client library, against our broker and Mosquitto: typed properties
//! both ways, request/response, session expiry, will properties, DISCONNECT with a reason, and
//! the server's topic aliases resolved. Tests are named after the normative statement (5.0
//! numbering) they lean on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use mqtt_client::{
    Client, ConnectOptions, Disconnect, Event, OutgoingMessage, PublishProperties, QoS, ReasonCode,
    SubscribeProperties, Subscription, SubscriptionId, SubscriptionOptions, TopicFilter, TopicName,
    WillProperties,
};
use mqtt_codec::MqttString;
use support::{Peer, bounded, next_message, peers};

fn options(peer: &Peer) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", peer.port())
        .connect_timeout(Duration::from_secs(10))
        .request_timeout(Some(Duration::from_secs(30)))
}

fn s(text: &str) -> MqttString {
    MqttString::try_from(text).unwrap()
}

/// MQTT-3.2.2-16: a client with an empty identifier learns the one the server assigned from
/// the CONNACK properties on `Event::Connected`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_mqtt_3_2_2_16_assigned_client_identifier_reaches_the_application() {
    bounded(async {
        for peer in peers() {
            let (c, mut events) = Client::connect(options(&peer)).await.unwrap();
            match events.recv().await {
                Some(Event::Connected { properties, .. }) => {
                    let id = properties.assigned_client_identifier.clone();
                    assert!(
                        id.is_some_and(|id| !id.is_empty()),
                        "{}: no assigned identifier in {properties:?}",
                        peer.name()
                    );
                }
                other => panic!("{}: {other:?}", peer.name()),
            }
            c.disconnect().await.unwrap();
        }
    })
    .await;
}

/// MQTT-3.3.2-15 to MQTT-3.3.2-18: request/response with typed properties: the responder
/// reads the response topic, correlation data, content type and user properties (in order),
/// and answers; the requester matches the answer by its correlation data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_mqtt_3_3_2_15_request_response_with_typed_properties() {
    bounded(async {
        for peer in peers() {
            let name = peer.name();
            let (responder, mut requests) = Client::connect(options(&peer)).await.unwrap();
            responder
                .subscribe([("svc/echo", QoS::AtLeastOnce)])
                .await
                .unwrap();
            let (requester, mut responses) = Client::connect(options(&peer)).await.unwrap();
            requester
                .subscribe([("svc/replies/1", QoS::AtLeastOnce)])
                .await
                .unwrap();
            let users = vec![(s("a"), s("1")), (s("b"), s("2")), (s("a"), s("3"))];
            let properties = PublishProperties {
                response_topic: Some(TopicName::try_from("svc/replies/1").unwrap()),
                correlation_data: Some(Bytes::from_static(b"req-7")),
                content_type: Some(s("text/plain")),
                user_properties: users.clone(),
                ..PublishProperties::default()
            };
            let request = OutgoingMessage::new("svc/echo", "ping")
                .unwrap()
                .qos(QoS::AtLeastOnce)
                .properties(properties);
            requester.send(request).await.unwrap().await.unwrap();

            let got = next_message(&mut requests).await;
            let p = got.properties();
            assert_eq!(p.user_properties, users, "{name}");
            assert_eq!(
                p.content_type.as_ref().map(MqttString::as_str),
                Some("text/plain")
            );
            let reply_to = p.response_topic.clone().expect("a response topic");
            let answer = OutgoingMessage::with_topic(reply_to, "pong")
                .qos(QoS::AtLeastOnce)
                .properties(PublishProperties {
                    correlation_data: p.correlation_data.clone(),
                    ..PublishProperties::default()
                });
            responder.send(answer).await.unwrap().await.unwrap();

            let reply = next_message(&mut responses).await;
            assert_eq!(reply.payload(), &Bytes::from_static(b"pong"), "{name}");
            assert_eq!(
                reply.properties().correlation_data.as_deref(),
                Some(&b"req-7"[..]),
                "{name}"
            );
            requester.disconnect().await.unwrap();
            responder.disconnect().await.unwrap();
        }
    })
    .await;
}

/// MQTT-3.3.4-4: a subscription made with an identifier gets it back on its messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_mqtt_3_3_4_4_subscription_identifiers_come_back() {
    bounded(async {
        for peer in peers() {
            let (c, mut events) = Client::connect(options(&peer)).await.unwrap();
            let properties = SubscribeProperties {
                subscription_identifier: SubscriptionId::new(42),
                ..SubscribeProperties::default()
            };
            let granted = c
                .subscribe_with(
                    vec![Subscription {
                        filter: TopicFilter::try_from("ids/#").unwrap(),
                        options: SubscriptionOptions::new(QoS::AtLeastOnce),
                    }],
                    properties,
                )
                .await
                .unwrap();
            assert_eq!(granted, [ReasonCode::GrantedQoS1]);
            c.publish("ids/x", "m", QoS::AtLeastOnce, false)
                .await
                .unwrap();
            let m = next_message(&mut events).await;
            assert_eq!(
                m.properties().subscription_identifiers,
                [SubscriptionId::new(42).unwrap()],
                "{}",
                peer.name()
            );
            c.disconnect().await.unwrap();
        }
    })
    .await;
}

/// MQTT-3.1.2-23: a session with a short Session Expiry Interval is gone when the client comes
/// back after it; a DISCONNECT may extend it (from a non-zero CONNECT value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_mqtt_3_1_2_23_session_expiry_through_the_client() {
    bounded(async {
        for peer in peers() {
            let name = peer.name();
            let id = format!("expiring-{}", std::process::id());
            let opts = || {
                options(&peer)
                    .client_id(id.clone())
                    .clean_session(false)
                    .session_expiry_interval(1)
            };
            let (c, _e) = Client::connect(opts()).await.unwrap();
            c.subscribe([("exp/x", QoS::AtLeastOnce)]).await.unwrap();
            c.disconnect().await.unwrap();
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let (c, mut events) = Client::connect(opts()).await.unwrap();
            assert!(
                matches!(
                    events.recv().await,
                    Some(Event::Connected {
                        session_present: false,
                        ..
                    })
                ),
                "{name}: the session outlived its expiry"
            );
            // Extended to an hour on the way out: still there after 1.5 s.
            let mut bye = Disconnect::new(ReasonCode::NORMAL_DISCONNECTION);
            bye.properties.session_expiry_interval = Some(3600);
            c.subscribe([("exp/x", QoS::AtLeastOnce)]).await.unwrap();
            c.disconnect_with(bye).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let (c, mut events) = Client::connect(opts()).await.unwrap();
            assert!(
                matches!(
                    events.recv().await,
                    Some(Event::Connected {
                        session_present: true,
                        ..
                    })
                ),
                "{name}: DISCONNECT did not extend the session"
            );
            let mut end = Disconnect::new(ReasonCode::NORMAL_DISCONNECTION);
            end.properties.session_expiry_interval = Some(0);
            c.disconnect_with(end).await.unwrap();
        }
    })
    .await;
}

/// Section 3.14.2.1: DISCONNECT 0x04 asks the server to publish the will; the will's
/// properties (here a user property and a content type) travel with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_disconnect_with_will_message_publishes_the_will_with_its_properties() {
    bounded(async {
        for peer in peers() {
            let name = peer.name();
            let (watcher, mut events) = Client::connect(options(&peer)).await.unwrap();
            watcher
                .subscribe([("wills/+", QoS::AtLeastOnce)])
                .await
                .unwrap();
            let will = WillProperties {
                content_type: Some(s("text/plain")),
                user_properties: vec![(s("why"), s("asked"))],
                ..WillProperties::default()
            };
            let leaving = options(&peer)
                .will("wills/leaving", "bye", QoS::AtLeastOnce, false)
                .will_properties(will);
            let (c, _e) = Client::connect(leaving).await.unwrap();
            c.disconnect_with(Disconnect::new(ReasonCode::DisconnectWithWillMessage))
                .await
                .unwrap();
            let m = next_message(&mut events).await;
            assert_eq!(m.payload(), &Bytes::from_static(b"bye"), "{name}");
            assert_eq!(
                m.properties().user_properties,
                [(s("why"), s("asked"))],
                "{name}"
            );
            assert_eq!(
                m.properties().content_type.as_ref().map(MqttString::as_str),
                Some("text/plain"),
                "{name}"
            );
            watcher.disconnect().await.unwrap();
        }
    })
    .await;
}

/// MQTT-3.3.2-10 / MQTT-3.1.2-26: a client that allows topic aliases gets messages whose
/// topic the server may send as an alias only; the application always sees the topic name.
/// Our broker does use aliases (checked through its core tests); Mosquitto does not, and the
/// client works the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_mqtt_3_3_2_10_server_topic_aliases_are_resolved() {
    bounded(async {
        for peer in peers() {
            let name = peer.name();
            let (sub, mut events) = Client::connect(options(&peer).topic_alias_maximum(2))
                .await
                .unwrap();
            sub.subscribe([("alias/#", QoS::AtLeastOnce)])
                .await
                .unwrap();
            let (publisher, _e) = Client::connect(options(&peer)).await.unwrap();
            let topics = [
                "alias/a", "alias/a", "alias/b", "alias/c", "alias/a", "alias/b",
            ];
            for t in topics {
                publisher
                    .publish(t, t, QoS::AtLeastOnce, false)
                    .await
                    .unwrap();
            }
            for t in topics {
                let m = next_message(&mut events).await;
                assert_eq!(m.topic().as_str(), t, "{name}");
                assert_eq!(m.payload(), &Bytes::from(t), "{name}");
            }
            publisher.disconnect().await.unwrap();
            sub.disconnect().await.unwrap();
        }
    })
    .await;
}

/// MQTT-4.12.0-2 / MQTT-4.12.0-3 / MQTT-4.12.0-5: SCRAM-SHA-256 enhanced authentication against
/// our broker: the right password connects (and the server proves itself in CONNACK) and can
/// re-authenticate (MQTT-4.12.1-1), a wrong one is refused with 0x87; a broker that does not offer the method (ours without users,
/// Mosquitto without an authentication plugin) refuses with 0x8C (MQTT-4.12.0-1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_mqtt_4_12_0_2_scram_sha_256_enhanced_authentication() {
    bounded(async {
        let dir = support::TempDir::new("scram");
        let line = mqtt_broker::auth::ScramMethod::credential_line("alice", "wonderland").unwrap();
        let users = dir.write("scram_users", format!("{line}\n"));
        let broker = support::ours::OurBroker::start_with(mqtt_broker::config::Config {
            scram_users_file: users.to_string_lossy().into_owned(),
            ..mqtt_broker::config::Config::default()
        });
        let opts = || {
            ConnectOptions::new("127.0.0.1", broker.port())
                .connect_timeout(Duration::from_secs(10))
                .reconnect(None)
        };
        let (c, mut events) = Client::connect(opts().scram_sha256("alice", "wonderland"))
            .await
            .unwrap();
        match events.recv().await {
            Some(Event::Connected { properties, .. }) => assert_eq!(
                properties
                    .authentication_method
                    .as_ref()
                    .map(MqttString::as_str),
                Some("SCRAM-SHA-256")
            ),
            other => panic!("{other:?}"),
        }
        c.publish("scram/ok", "in", QoS::AtLeastOnce, false)
            .await
            .unwrap();
        // [MQTT-4.12.1-1] Re-authentication on the live connection, twice; the connection
        // carries on.
        c.reauthenticate().await.unwrap();
        c.reauthenticate().await.unwrap();
        c.publish("scram/ok", "still in", QoS::AtLeastOnce, false)
            .await
            .unwrap();
        c.disconnect().await.unwrap();
        // Without SCRAM credentials there is nothing to re-authenticate with.
        let (plain, _e) = Client::connect(options(&support::Peer::Ours(
            support::ours::OurBroker::start(),
        )))
        .await
        .unwrap();
        assert!(matches!(
            plain.reauthenticate().await,
            Err(mqtt_client::Error::InvalidOption { .. })
        ));
        plain.disconnect().await.unwrap();

        // While SCRAM is configured, a client without it does not get in.
        match Client::connect(opts()).await {
            Err(mqtt_client::Error::Refused(code)) => assert_eq!(code, ReasonCode::NotAuthorized),
            other => panic!("plain CONNECT: {other:?}"),
        }
        // SCRAM needs MQTT 5.0: refused before anything is sent.
        let v3 = opts()
            .protocol(mqtt_client::ProtocolVersion::V3_1_1)
            .scram_sha256("alice", "wonderland");
        assert!(matches!(
            Client::connect(v3).await,
            Err(mqtt_client::Error::InvalidOption { .. })
        ));
        for (user, password) in [("alice", "looking-glass"), ("bob", "wonderland")] {
            match Client::connect(opts().scram_sha256(user, password)).await {
                Err(mqtt_client::Error::Refused(code)) => {
                    assert_eq!(code, ReasonCode::NotAuthorized, "{user}/{password}");
                }
                other => panic!("{user}/{password}: {other:?}"),
            }
        }
        for peer in peers() {
            match Client::connect(options(&peer).reconnect(None).scram_sha256("alice", "x")).await {
                Err(mqtt_client::Error::Refused(code)) => {
                    assert_eq!(code, ReasonCode::BadAuthenticationMethod, "{}", peer.name());
                }
                other => panic!("{}: {other:?}", peer.name()),
            }
        }
    })
    .await;
}
