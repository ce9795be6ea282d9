//! MQTT 5.0 in the broker core, driven directly on a virtual clock: each test is one behaviour
//! named after the normative statement it checks (5.0 numbering; `v5_` in every name, since
//! the same identifier can mean something else in 3.1.1).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_broker::config::Config;
use mqtt_broker::core::{Broker, Connected, Flow};
use mqtt_codec::{
    Connect, Disconnect, Packet, PacketId, PayloadFormat, ProtocolVersion, PubRel, Publish, QoS,
    QosPid, ReasonCode, RetainHandling, Subscribe, Subscription, SubscriptionId,
    SubscriptionOptions, Will,
};
use mqtt_session::{Close, Outgoing};
use mqtt_topic::{MqttString, TopicFilter, TopicName};

const V5: ProtocolVersion = ProtocolVersion::V5;

fn broker_with(config: Config) -> (Broker, Instant) {
    let t0 = Instant::now();
    (Broker::new(config, t0), t0)
}

fn broker() -> (Broker, Instant) {
    broker_with(Config::default())
}

fn connect_packet(id: &str, clean: bool) -> Connect {
    let mut c = Connect::new(V5, MqttString::try_from(id).unwrap());
    c.clean_start = clean;
    c
}

fn connect_at(b: &Broker, c: &Connect, now: Instant) -> Connected {
    b.connect(c, now).unwrap()
}

fn topic(t: &str) -> TopicName {
    TopicName::try_from(t).unwrap()
}

fn publish(t: &str, payload: &'static [u8], qos: QoS, id: u16) -> Publish {
    let mut p = Publish::new(topic(t), Bytes::from_static(payload));
    p.qos = QosPid::new(qos, PacketId::new(id)).unwrap();
    p
}

fn send(b: &Broker, c: &Connected, packet: impl Into<Packet>, now: Instant) -> Result<Flow, Close> {
    b.handle_packet(&c.handle, c.generation, packet.into(), now)
}

/// Subscribes; returns the payloads of the retained messages that came with the SUBACK.
fn subscribe(
    b: &Broker,
    c: &Connected,
    filter: &str,
    options: SubscriptionOptions,
    now: Instant,
) -> Vec<String> {
    subscribe_full(b, c, filter, options, None, now)
        .1
        .into_iter()
        .map(|(_, p, _)| p)
        .collect()
}

/// Subscribes; returns the SUBACK's codes.
fn subscribe_with(
    b: &Broker,
    c: &Connected,
    filter: &str,
    options: SubscriptionOptions,
    id: Option<u32>,
    now: Instant,
) -> Vec<ReasonCode> {
    subscribe_full(b, c, filter, options, id, now).0
}

type Sent = (String, String, mqtt_codec::DeliveryProperties);

/// Subscribes; returns the SUBACK's codes and the messages that came with it.
fn subscribe_full(
    b: &Broker,
    c: &Connected,
    filter: &str,
    options: SubscriptionOptions,
    id: Option<u32>,
    now: Instant,
) -> (Vec<ReasonCode>, Vec<Sent>) {
    let mut s = Subscribe::new(
        PacketId::new(1).unwrap(),
        TopicFilter::try_from(filter).unwrap(),
        options.qos,
    );
    s.subscriptions = vec![Subscription {
        filter: TopicFilter::try_from(filter).unwrap(),
        options,
    }];
    s.properties.subscription_identifier = id.and_then(SubscriptionId::new);
    send(b, c, s, now).unwrap();
    let out = outbox(c);
    let codes = out
        .iter()
        .find_map(|o| match o {
            Outgoing::Packet(Packet::SubAck(ack)) => Some(ack.reason_codes.clone()),
            _ => None,
        })
        .expect("a SUBACK");
    (codes, publishes(out))
}

fn options(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions::new(qos)
}

fn outbox(c: &Connected) -> Vec<Outgoing> {
    c.handle.lock().session.take_outbox()
}

/// The PUBLISH packets in the outbox as (topic as sent, payload, delivery properties).
fn deliveries(c: &Connected) -> Vec<Sent> {
    publishes(outbox(c))
}

fn publishes(out: Vec<Outgoing>) -> Vec<Sent> {
    out.into_iter()
        .filter_map(|o| match o {
            Outgoing::Publish {
                publish,
                properties,
                ..
            } => Some((
                if properties.omit_topic {
                    String::new()
                } else {
                    publish.topic.to_string()
                },
                String::from_utf8_lossy(&publish.payload).into_owned(),
                properties,
            )),
            _ => None,
        })
        .collect()
}

fn payloads(c: &Connected) -> Vec<String> {
    deliveries(c).into_iter().map(|(_, p, _)| p).collect()
}

fn session_expiry(c: &mut Connect, secs: u32) {
    c.properties.session_expiry_interval = Some(secs);
}

fn violation_reason(r: Result<Flow, Close>) -> ReasonCode {
    match r {
        Err(Close::Violation { reason, .. }) => reason,
        other => panic!("expected a violation, got {other:?}"),
    }
}

/// MQTT-3.2.2-16: an empty client identifier gets one, told in CONNACK's Assigned Client
/// Identifier, unique among sessions.
#[test]
fn v5_mqtt_3_2_2_16_assigned_client_identifier_is_in_connack() {
    let (b, t0) = broker();
    let a = connect_at(&b, &connect_packet("", true), t0);
    let c = connect_at(&b, &connect_packet("", true), t0);
    let id_a = a.properties.assigned_client_identifier.clone().unwrap();
    let id_c = c.properties.assigned_client_identifier.clone().unwrap();
    assert_ne!(id_a, id_c);
    assert_eq!(a.handle.client_id(), &id_a);
    let named = connect_at(&b, &connect_packet("named", true), t0);
    assert_eq!(named.properties.assigned_client_identifier, None);
}

/// MQTT-3.2.2-21 / MQTT-3.1.2-22: with a maximum keep alive below the client's (or the client's
/// 0), a 5.0 client is accepted and told the Server Keep Alive, which the server enforces.
#[test]
fn v5_mqtt_3_2_2_21_server_keep_alive_replaces_the_clients() {
    let (b, t0) = broker_with(Config {
        max_keepalive_secs: 60,
        ..Config::default()
    });
    let mut c = connect_packet("ka", true);
    c.keep_alive = 0;
    let connected = connect_at(&b, &c, t0);
    assert_eq!(connected.properties.server_keep_alive, Some(60));
    let deadline = connected.handle.lock().session.deadline();
    assert_eq!(deadline, Some(t0 + Duration::from_secs(90)));
    c.keep_alive = 30;
    c.client_id = MqttString::try_from("ka2").unwrap();
    assert_eq!(connect_at(&b, &c, t0).properties.server_keep_alive, None);
}

/// MQTT-3.1.2-23: a session with a Session Expiry Interval outlives its connection for that
/// long and no longer; a client coming back within it resumes it.
#[test]
fn v5_mqtt_3_1_2_23_session_expires_after_its_interval() {
    let (b, t0) = broker();
    let mut c = connect_packet("exp", false);
    session_expiry(&mut c, 10);
    let first = connect_at(&b, &c, t0);
    subscribe(&b, &first, "t/#", options(QoS::AtLeastOnce), t0);
    b.disconnect(&first.handle, first.generation, true, t0);
    b.expire(t0 + Duration::from_secs(9));
    assert!(b.session("exp").is_some(), "expired early");
    let back = connect_at(&b, &c, t0 + Duration::from_secs(9));
    assert!(back.session_present);
    b.disconnect(
        &back.handle,
        back.generation,
        true,
        t0 + Duration::from_secs(9),
    );
    b.expire(t0 + Duration::from_secs(18));
    assert!(
        b.session("exp").is_some(),
        "the old timer ended the resumed session"
    );
    b.expire(t0 + Duration::from_secs(19));
    assert!(
        b.session("exp").is_none(),
        "the session outlived its interval"
    );
    assert_eq!(b.subscription_count(), 0);
    let fresh = connect_at(&b, &c, t0 + Duration::from_secs(20));
    assert!(!fresh.session_present);
}

/// A client asking for more than `max_session_expiry_secs` is told the maximum in CONNACK.
#[test]
fn v5_session_expiry_is_capped_by_the_configuration() {
    let (b, t0) = broker_with(Config {
        max_session_expiry_secs: 100,
        ..Config::default()
    });
    let mut c = connect_packet("cap", false);
    session_expiry(&mut c, 1000);
    let connected = connect_at(&b, &c, t0);
    assert_eq!(connected.properties.session_expiry_interval, Some(100));
    assert_eq!(connected.handle.lock().session.expiry_interval(), 100);
}

/// A DISCONNECT may change the session expiry, but a session that had none cannot be given one
/// at the end (a protocol error, section 3.14.2.2.2); setting 0 ends the session at once.
#[test]
fn v5_disconnect_changes_the_session_expiry_but_not_from_zero() {
    let (b, t0) = broker();
    let zero = connect_at(&b, &connect_packet("zero", true), t0);
    let mut d = Disconnect::new(ReasonCode::Success);
    d.properties.session_expiry_interval = Some(60);
    assert_eq!(
        violation_reason(send(&b, &zero, d, t0)),
        ReasonCode::ProtocolError
    );

    let mut c = connect_packet("kept", false);
    session_expiry(&mut c, 60);
    let kept = connect_at(&b, &c, t0);
    let mut d = Disconnect::new(ReasonCode::Success);
    d.properties.session_expiry_interval = Some(0);
    assert_eq!(
        send(&b, &kept, d, t0).unwrap(),
        Flow::Disconnect {
            publish_will: false
        }
    );
    b.disconnect(&kept.handle, kept.generation, true, t0);
    assert!(b.session("kept").is_none());
}

fn will_connect(id: &str, delay: u32, expiry: u32) -> Connect {
    let mut c = connect_packet(id, false);
    session_expiry(&mut c, expiry);
    let mut will = Will::new(topic("wills"), Bytes::from(format!("{id} is gone")));
    will.properties.will_delay_interval = Some(delay);
    c.will = Some(will);
    c
}

/// MQTT-3.1.3-9 / MQTT-3.1.2-8: a will with a Will Delay Interval is published when the delay
/// runs out, or when the session ends if that comes first, and not at all if the client comes
/// back within the delay.
#[test]
fn v5_mqtt_3_1_3_9_will_delay() {
    let (b, t0) = broker();
    let watcher = connect_at(&b, &connect_packet("watcher", true), t0);
    subscribe(&b, &watcher, "wills", options(QoS::AtLeastOnce), t0);
    let _ = outbox(&watcher);

    // Back within the delay: no will.
    let c = will_connect("back", 5, 100);
    let first = connect_at(&b, &c, t0);
    b.disconnect(&first.handle, first.generation, false, t0);
    b.expire(t0 + Duration::from_secs(4));
    let again = connect_at(&b, &c, t0 + Duration::from_secs(4));
    b.expire(t0 + Duration::from_secs(10));
    assert!(
        payloads(&watcher).is_empty(),
        "the will of a client that came back"
    );

    // Not back: published after the delay, not before.
    b.disconnect(
        &again.handle,
        again.generation,
        false,
        t0 + Duration::from_secs(10),
    );
    b.expire(t0 + Duration::from_millis(14_900));
    assert!(payloads(&watcher).is_empty(), "published before the delay");
    b.expire(t0 + Duration::from_secs(15));
    assert_eq!(payloads(&watcher), ["back is gone"]);

    // The session ends before the delay: published then.
    let c = will_connect("short", 60, 3);
    let s = connect_at(&b, &c, t0);
    b.disconnect(&s.handle, s.generation, false, t0);
    b.expire(t0 + Duration::from_secs(3));
    assert_eq!(payloads(&watcher), ["short is gone"]);
    assert!(b.session("short").is_none());

    // A takeover that resumes the session within the delay: no will either.
    let c = will_connect("taken", 5, 100);
    let old = connect_at(&b, &c, t0);
    let _new = connect_at(&b, &c, t0 + Duration::from_secs(1));
    assert_ne!(old.generation, _new.generation);
    b.expire(t0 + Duration::from_secs(60));
    assert!(
        payloads(&watcher).is_empty(),
        "will of a session taken over and resumed"
    );
}

/// DISCONNECT with reason 0x04 asks for the will to be published (section 3.14.2.1).
#[test]
fn v5_disconnect_with_will_message_publishes_the_will() {
    let (b, t0) = broker();
    let c = connect_at(&b, &connect_packet("polite", true), t0);
    let flow = send(
        &b,
        &c,
        Disconnect::new(ReasonCode::DisconnectWithWillMessage),
        t0,
    );
    assert_eq!(flow.unwrap(), Flow::Disconnect { publish_will: true });
}

/// MQTT-3.3.4-9 / MQTT-3.3.4-10: never more unacknowledged QoS 1 and 2 messages to a client
/// than its Receive Maximum; other packets are not held back.
#[test]
fn v5_mqtt_3_3_4_9_receive_maximum_limits_the_messages_in_flight() {
    let (b, t0) = broker();
    let mut c = connect_packet("slow", true);
    c.properties.receive_maximum = NonZeroU16::new(2);
    let slow = connect_at(&b, &c, t0);
    subscribe(&b, &slow, "t", options(QoS::AtLeastOnce), t0);
    let publisher = connect_at(&b, &connect_packet("pub", true), t0);
    for i in 0..5u16 {
        send(
            &b,
            &publisher,
            publish("t", b"m", QoS::AtLeastOnce, i + 1),
            t0,
        )
        .unwrap();
    }
    assert_eq!(payloads(&slow).len(), 2);
    // A PINGREQ is still answered with the window full.
    send(&b, &slow, Packet::PingReq, t0).unwrap();
    assert!(matches!(
        outbox(&slow).as_slice(),
        [Outgoing::Packet(Packet::PingResp)]
    ));
    assert_eq!(slow.handle.lock().session.inflight(), 2);
    assert_eq!(slow.handle.lock().session.queued(), 3);
}

/// MQTT-3.1.2-24 / MQTT-3.1.2-25: a message larger than the client's Maximum Packet Size is not
/// sent (and counted); the next one that fits is.
#[test]
fn v5_mqtt_3_1_2_25_messages_above_the_maximum_packet_size_are_skipped() {
    let (b, t0) = broker();
    let mut c = connect_packet("small", true);
    c.properties.maximum_packet_size = NonZeroU32::new(100);
    let small = connect_at(&b, &c, t0);
    subscribe(&b, &small, "t", options(QoS::AtLeastOnce), t0);
    let publisher = connect_at(&b, &connect_packet("pub", true), t0);
    static BIG: [u8; 200] = [b'x'; 200];
    send(&b, &publisher, publish("t", &BIG, QoS::AtLeastOnce, 1), t0).unwrap();
    send(
        &b,
        &publisher,
        publish("t", b"fits", QoS::AtLeastOnce, 2),
        t0,
    )
    .unwrap();
    assert_eq!(payloads(&small), ["fits"]);
    assert_eq!(
        small.handle.lock().session.inflight(),
        1,
        "the big one is not in flight"
    );
    assert_eq!(
        b.stats
            .publish_too_large
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// MQTT-3.1.2-26, MQTT-3.1.2-27, MQTT-3.3.2-11: the server assigns topic aliases up to the
/// client's Topic Alias Maximum (none when it is absent), sends the topic name once with a new
/// alias and then the alias alone, and reassigns aliases once all are taken.
#[test]
fn v5_mqtt_3_3_2_11_server_topic_aliases() {
    let (b, t0) = broker();
    let mut c = connect_packet("aliased", true);
    c.properties.topic_alias_maximum = Some(2);
    let aliased = connect_at(&b, &c, t0);
    let plain = connect_at(&b, &connect_packet("plain", true), t0);
    subscribe(&b, &aliased, "t/#", options(QoS::AtMostOnce), t0);
    subscribe(&b, &plain, "t/#", options(QoS::AtMostOnce), t0);
    let publisher = connect_at(&b, &connect_packet("pub", true), t0);
    for t in ["t/a", "t/a", "t/b", "t/c", "t/b", "t/a"] {
        send(&b, &publisher, publish(t, b"m", QoS::AtMostOnce, 1), t0).unwrap();
    }
    let sent: Vec<(String, Option<u16>)> = deliveries(&aliased)
        .into_iter()
        .map(|(t, _, p)| (t, p.topic_alias.map(NonZeroU16::get)))
        .collect();
    let expected: Vec<(String, Option<u16>)> = [
        ("t/a", Some(1)),
        ("", Some(1)),
        ("t/b", Some(2)),
        ("t/c", Some(1)), // all taken: alias 1 now stands for t/c
        ("", Some(2)),
        ("t/a", Some(2)), // and 2 for t/a
    ]
    .into_iter()
    .map(|(t, a)| (t.to_string(), a))
    .collect();
    assert_eq!(sent, expected);
    assert!(
        deliveries(&plain)
            .iter()
            .all(|(t, _, p)| !t.is_empty() && p.topic_alias.is_none())
    );
}

/// MQTT-3.3.2-9 / MQTT-3.3.2-12: a client's alias up to our Topic Alias Maximum is accepted and
/// resolved (subscribers get the topic, not the alias); above it is DISCONNECT 0x94; an alias
/// used before being set is a protocol error. MQTT-3.3.2-7: aliases do not outlive the
/// connection.
#[test]
fn v5_mqtt_3_3_2_9_client_topic_aliases() {
    let (b, t0) = broker_with(Config {
        max_topic_alias: 3,
        ..Config::default()
    });
    let c = connect_at(&b, &connect_packet("a", true), t0);
    assert_eq!(c.properties.topic_alias_maximum, Some(3));
    let sub = connect_at(&b, &connect_packet("sub", true), t0);
    subscribe(&b, &sub, "#", options(QoS::AtMostOnce), t0);
    let mut first = publish("room/1", b"set", QoS::AtMostOnce, 1);
    first.properties_mut().topic_alias = NonZeroU16::new(3);
    send(&b, &c, first, t0).unwrap();
    let mut second = Publish::new(TopicName::empty(), Bytes::from_static(b"used"));
    second.properties_mut().topic_alias = NonZeroU16::new(3);
    send(&b, &c, second.clone(), t0).unwrap();
    let got = deliveries(&sub);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|(t, _, _)| t == "room/1"));
    let routed = b.retained_count(); // nothing retained, just touching the broker
    assert_eq!(routed, 0);

    let mut above = publish("room/2", b"x", QoS::AtMostOnce, 1);
    above.properties_mut().topic_alias = NonZeroU16::new(4);
    assert_eq!(
        violation_reason(send(&b, &c, above, t0)),
        ReasonCode::TopicAliasInvalid
    );

    // A new connection starts without aliases.
    let again = connect_at(&b, &connect_packet("a", true), t0);
    assert_eq!(
        violation_reason(send(&b, &again, second, t0)),
        ReasonCode::ProtocolError
    );
}

/// MQTT-3.3.2-5 / MQTT-3.3.2-6: a message whose expiry interval passed before its delivery
/// started is dropped; one delivered later carries what remains of its interval.
#[test]
fn v5_mqtt_3_3_2_5_expired_messages_are_not_delivered() {
    let (b, t0) = broker();
    let mut c = connect_packet("offline", false);
    session_expiry(&mut c, 1000);
    let sub = connect_at(&b, &c, t0);
    subscribe(&b, &sub, "t", options(QoS::AtLeastOnce), t0);
    b.disconnect(&sub.handle, sub.generation, true, t0);
    let publisher = connect_at(&b, &connect_packet("pub", true), t0);
    let mut short = publish("t", b"short", QoS::AtLeastOnce, 1);
    short.properties_mut().message_expiry_interval = Some(5);
    let mut long = publish("t", b"long", QoS::AtLeastOnce, 2);
    long.properties_mut().message_expiry_interval = Some(100);
    send(&b, &publisher, short, t0).unwrap();
    send(&b, &publisher, long, t0).unwrap();
    let back = connect_at(&b, &c, t0 + Duration::from_secs(30));
    let got = deliveries(&back);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, "long");
    assert_eq!(got[0].2.message_expiry_interval, Some(70));
}

/// MQTT-3.3.4-3 / MQTT-3.3.4-4: one copy for overlapping subscriptions, with every matching
/// subscription identifier; a retained message sent on subscribe carries the identifier too.
#[test]
fn v5_mqtt_3_3_4_4_subscription_identifiers_on_delivery() {
    let (b, t0) = broker();
    let sub = connect_at(&b, &connect_packet("sub", true), t0);
    subscribe_with(&b, &sub, "a/+", options(QoS::AtMostOnce), Some(7), t0);
    subscribe_with(&b, &sub, "a/#", options(QoS::AtMostOnce), Some(9), t0);
    subscribe_with(&b, &sub, "a/b", options(QoS::AtMostOnce), None, t0);
    let publisher = connect_at(&b, &connect_packet("pub", true), t0);
    let mut retained = publish("r/x", b"kept", QoS::AtMostOnce, 1);
    retained.retain = true;
    send(&b, &publisher, retained, t0).unwrap();
    send(
        &b,
        &publisher,
        publish("a/b", b"both", QoS::AtMostOnce, 1),
        t0,
    )
    .unwrap();
    let got = deliveries(&sub);
    assert_eq!(got.len(), 1);
    let mut ids: Vec<u32> = got[0]
        .2
        .subscription_identifiers
        .iter()
        .map(|i| i.get())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [7, 9]);
    let (_, got) = subscribe_full(&b, &sub, "r/#", options(QoS::AtMostOnce), Some(11), t0);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].2.subscription_identifiers,
        [SubscriptionId::new(11).unwrap()]
    );
}

/// MQTT-3.8.3-3: No Local subscriptions do not get their own session's messages.
#[test]
fn v5_mqtt_3_8_3_3_no_local() {
    let (b, t0) = broker();
    let me = connect_at(&b, &connect_packet("me", true), t0);
    let mut o = options(QoS::AtMostOnce);
    o.no_local = true;
    subscribe(&b, &me, "t", o, t0);
    let other = connect_at(&b, &connect_packet("other", true), t0);
    send(&b, &me, publish("t", b"mine", QoS::AtMostOnce, 1), t0).unwrap();
    send(&b, &other, publish("t", b"theirs", QoS::AtMostOnce, 1), t0).unwrap();
    assert_eq!(payloads(&me), ["theirs"]);
}

/// MQTT-3.3.1-9, MQTT-3.3.1-10, MQTT-3.3.1-11: Retain Handling 0 sends retained messages on
/// every subscribe, 1 only when the subscription is new, 2 never. MQTT-3.3.1-12: without Retain
/// As Published a live message arrives with RETAIN 0; with it, as published.
#[test]
fn v5_mqtt_3_3_1_9_to_12_retain_handling_and_retain_as_published() {
    let (b, t0) = broker();
    let publisher = connect_at(&b, &connect_packet("pub", true), t0);
    let mut kept = publish("r", b"kept", QoS::AtMostOnce, 1);
    kept.retain = true;
    send(&b, &publisher, kept.clone(), t0).unwrap();
    let sub = connect_at(&b, &connect_packet("sub", true), t0);
    let with = |handling| {
        let mut o = options(QoS::AtMostOnce);
        o.retain_handling = handling;
        o
    };
    let got = subscribe(&b, &sub, "r", with(RetainHandling::DoNotSend), t0);
    assert!(got.is_empty(), "handling 2 sent a retained message");
    b.unsubscribe(
        &sub.handle,
        &mqtt_codec::Unsubscribe::new(
            PacketId::new(2).unwrap(),
            TopicFilter::try_from("r").unwrap(),
        ),
    );
    let _ = outbox(&sub);
    let got = subscribe(
        &b,
        &sub,
        "r",
        with(RetainHandling::SendAtSubscribeIfNew),
        t0,
    );
    assert_eq!(got, ["kept"], "handling 1, new subscription");
    let got = subscribe(
        &b,
        &sub,
        "r",
        with(RetainHandling::SendAtSubscribeIfNew),
        t0,
    );
    assert!(got.is_empty(), "handling 1, existing subscription");
    let got = subscribe(&b, &sub, "r", with(RetainHandling::SendAtSubscribe), t0);
    assert_eq!(got, ["kept"], "handling 0");

    let flags = |c: &Connected| -> Vec<bool> {
        outbox(c)
            .into_iter()
            .filter_map(|o| match o {
                Outgoing::Publish { envelope, .. } => Some(envelope.retain),
                _ => None,
            })
            .collect()
    };
    send(&b, &publisher, kept.clone(), t0).unwrap();
    assert_eq!(
        flags(&sub),
        [false],
        "RETAIN kept without Retain As Published"
    );
    let mut o = options(QoS::AtMostOnce);
    o.retain_as_published = true;
    o.retain_handling = RetainHandling::DoNotSend;
    subscribe(&b, &sub, "r", o, t0);
    send(&b, &publisher, kept, t0).unwrap();
    assert_eq!(
        flags(&sub),
        [true],
        "RETAIN cleared with Retain As Published"
    );
}

/// MQTT-3.2.2-11 / MQTT-3.2.2-12: with `max_qos = 1`, CONNACK says so, subscriptions are
/// granted at most QoS 1, a QoS 2 PUBLISH is DISCONNECT 0x9B and a QoS 2 will is refused.
#[test]
fn v5_mqtt_3_2_2_11_maximum_qos() {
    let (b, t0) = broker_with(Config {
        max_qos: 1,
        ..Config::default()
    });
    let c = connect_at(&b, &connect_packet("c", true), t0);
    assert_eq!(c.properties.maximum_qos, Some(QoS::AtLeastOnce));
    let codes = subscribe_with(&b, &c, "t", options(QoS::ExactlyOnce), None, t0);
    assert_eq!(codes, [ReasonCode::GrantedQoS1]);
    assert_eq!(
        violation_reason(send(&b, &c, publish("t", b"x", QoS::ExactlyOnce, 1), t0)),
        ReasonCode::QoSNotSupported
    );
    let mut w = connect_packet("w", true);
    let mut will = Will::new(topic("w"), Bytes::from_static(b"x"));
    will.qos = QoS::ExactlyOnce;
    w.will = Some(will);
    assert_eq!(b.connect(&w, t0).unwrap_err(), ReasonCode::QoSNotSupported);
}

/// A payload marked UTF-8 (Payload Format Indicator 1) that is not is refused with 0x99 and
/// not routed (section 3.3.2.3.2).
#[test]
fn v5_payload_format_invalid_is_refused() {
    let (b, t0) = broker();
    let c = connect_at(&b, &connect_packet("c", true), t0);
    let sub = connect_at(&b, &connect_packet("sub", true), t0);
    subscribe(&b, &sub, "t", options(QoS::AtLeastOnce), t0);
    let mut bad = publish("t", b"\xff\xfe", QoS::AtLeastOnce, 1);
    bad.properties_mut().payload_format_indicator = Some(PayloadFormat::Utf8);
    send(&b, &c, bad, t0).unwrap();
    let acks: Vec<ReasonCode> = outbox(&c)
        .into_iter()
        .filter_map(|o| match o {
            Outgoing::Packet(Packet::PubAck(a)) => Some(a.reason_code),
            _ => None,
        })
        .collect();
    assert_eq!(acks, [ReasonCode::PayloadFormatInvalid]);
    assert!(payloads(&sub).is_empty());
}

/// A PUBREL for a packet identifier the server does not know is answered with PUBCOMP 0x92.
#[test]
fn v5_pubrel_for_an_unknown_identifier_gets_0x92() {
    let (b, t0) = broker();
    let c = connect_at(&b, &connect_packet("c", true), t0);
    send(&b, &c, PubRel::new(PacketId::new(77).unwrap()), t0).unwrap();
    let comps: Vec<ReasonCode> = outbox(&c)
        .into_iter()
        .filter_map(|o| match o {
            Outgoing::Packet(Packet::PubComp(p)) => Some(p.reason_code),
            _ => None,
        })
        .collect();
    assert_eq!(comps, [ReasonCode::PacketIdentifierNotFound]);
}

/// Capabilities turned off are announced in CONNACK and enforced: wildcards (SUBACK 0xA2),
/// shared subscriptions (0x9E), subscription identifiers (DISCONNECT 0xA1), retained messages
/// (DISCONNECT 0x9A, will refused).
#[test]
fn v5_capabilities_turned_off_are_announced_and_enforced() {
    let (b, t0) = broker_with(Config {
        wildcard_subscription_available: false,
        shared_subscription_available: false,
        subscription_identifier_available: false,
        retain_available: false,
        ..Config::default()
    });
    let c = connect_at(&b, &connect_packet("c", true), t0);
    let p = &c.properties;
    assert_eq!(p.wildcard_subscription_available, Some(false));
    assert_eq!(p.shared_subscription_available, Some(false));
    assert_eq!(p.subscription_identifiers_available, Some(false));
    assert_eq!(p.retain_available, Some(false));
    let o = options(QoS::AtMostOnce);
    assert_eq!(
        subscribe_with(&b, &c, "a/+", o, None, t0),
        [ReasonCode::WildcardSubscriptionsNotSupported]
    );
    assert_eq!(
        subscribe_with(&b, &c, "$share/g/a", o, None, t0),
        [ReasonCode::SharedSubscriptionsNotSupported]
    );
    assert_eq!(
        subscribe_with(&b, &c, "a", o, None, t0),
        [ReasonCode::Success]
    );
    let mut retained = publish("a", b"x", QoS::AtMostOnce, 1);
    retained.retain = true;
    assert_eq!(
        violation_reason(send(&b, &c, retained, t0)),
        ReasonCode::RetainNotSupported
    );
    let mut s = Subscribe::new(
        PacketId::new(1).unwrap(),
        TopicFilter::try_from("b").unwrap(),
        QoS::AtMostOnce,
    );
    s.properties.subscription_identifier = SubscriptionId::new(1);
    assert_eq!(
        violation_reason(send(&b, &c, s, t0)),
        ReasonCode::SubscriptionIdentifiersNotSupported
    );
    let mut w = connect_packet("w", true);
    let mut will = Will::new(topic("w"), Bytes::from_static(b"x"));
    will.retain = true;
    w.will = Some(will);
    assert_eq!(
        b.connect(&w, t0).unwrap_err(),
        ReasonCode::RetainNotSupported
    );
}

/// CONNACK states the server's limits: Receive Maximum, Maximum Packet Size, Topic Alias
/// Maximum (section 3.2.2.3); Response Information when asked for and configured.
#[test]
fn v5_connack_states_the_limits_and_response_information() {
    let (b, t0) = broker_with(Config {
        max_incoming_qos2: 50,
        max_packet_size: 4096,
        response_information: "replies/".into(),
        ..Config::default()
    });
    let mut c = connect_packet("rr", true);
    let p = connect_at(&b, &c, t0).properties;
    assert_eq!(p.receive_maximum, NonZeroU16::new(50));
    assert_eq!(p.maximum_packet_size, NonZeroU32::new(4096));
    assert_eq!(p.topic_alias_maximum, Some(10));
    assert_eq!(p.response_information, None, "not asked for");
    c.properties.request_response_information = Some(true);
    let p = connect_at(&b, &c, t0).properties;
    assert_eq!(p.response_information.unwrap(), "replies/rr");
}

/// Section 4.11: with `server_reference` set, connections are refused with 0x9C (or 0x9D with
/// `server_moved`); section 4.12: an unknown authentication method gets 0x8C.
#[test]
fn v5_redirection_and_unknown_authentication_methods_are_refused() {
    let (b, t0) = broker_with(Config {
        server_reference: "other.example:1883".into(),
        ..Config::default()
    });
    assert_eq!(
        b.connect(&connect_packet("c", true), t0).unwrap_err(),
        ReasonCode::UseAnotherServer
    );
    let (b, t0) = broker_with(Config {
        server_reference: "other.example:1883".into(),
        server_moved: true,
        ..Config::default()
    });
    assert_eq!(
        b.connect(&connect_packet("c", true), t0).unwrap_err(),
        ReasonCode::ServerMoved
    );
    let (b, t0) = broker();
    let mut c = connect_packet("c", true);
    c.properties.authentication_method = MqttString::try_from("SCRAM-SHA-1").ok();
    assert_eq!(
        b.connect(&c, t0).unwrap_err(),
        ReasonCode::BadAuthenticationMethod
    );
}

/// MQTT-3.3.2-17 / MQTT-3.3.2-18 / MQTT-3.3.2-15 / MQTT-3.3.2-16: user properties (in order),
/// response topic and correlation data reach the subscriber unchanged.
#[test]
fn v5_mqtt_3_3_2_17_properties_are_forwarded_unchanged() {
    let (b, t0) = broker();
    let sub = connect_at(&b, &connect_packet("sub", true), t0);
    subscribe(&b, &sub, "req", options(QoS::AtMostOnce), t0);
    let c = connect_at(&b, &connect_packet("c", true), t0);
    let mut p = publish("req", b"ping", QoS::AtMostOnce, 1);
    let s = |t: &str| MqttString::try_from(t).unwrap();
    let users = vec![(s("k"), s("1")), (s("j"), s("2")), (s("k"), s("3"))];
    p.properties_mut().user_properties = users.clone();
    p.properties_mut().response_topic = Some(topic("resp/c"));
    p.properties_mut().correlation_data = Some(Bytes::from_static(b"\x00corr"));
    send(&b, &c, p, t0).unwrap();
    let got = outbox(&sub);
    let [Outgoing::Publish { publish, .. }] = got.as_slice() else {
        panic!("one PUBLISH expected: {got:?}");
    };
    let props = publish.properties();
    assert_eq!(props.user_properties, users);
    assert_eq!(props.response_topic.as_ref().unwrap().as_str(), "resp/c");
    assert_eq!(props.correlation_data.as_deref(), Some(&b"\x00corr"[..]));
    let _ = Arc::clone(publish);
}

/// MQTT-3.3.4-9 / MQTT-4.4.0-1: after a reconnect, the messages in flight are sent again in
/// order but no more at once than the new connection's Receive Maximum; the rest follow as
/// acknowledgements free the window, before anything queued.
#[test]
fn v5_mqtt_3_3_4_9_resending_after_a_reconnect_keeps_to_the_receive_maximum() {
    let (b, t0) = broker();
    let mut c = connect_packet("r", false);
    session_expiry(&mut c, 100);
    let first = connect_at(&b, &c, t0);
    subscribe(&b, &first, "t", options(QoS::AtLeastOnce), t0);
    let publisher = connect_at(&b, &connect_packet("pub", true), t0);
    for (i, p) in [b"1", b"2", b"3"].into_iter().enumerate() {
        send(
            &b,
            &publisher,
            publish("t", p, QoS::AtLeastOnce, i as u16 + 1),
            t0,
        )
        .unwrap();
    }
    assert_eq!(payloads(&first), ["1", "2", "3"]);
    b.disconnect(&first.handle, first.generation, false, t0);
    send(&b, &publisher, publish("t", b"4", QoS::AtLeastOnce, 9), t0).unwrap();
    c.properties.receive_maximum = NonZeroU16::new(1);
    let back = connect_at(&b, &c, t0);
    let resent = |c: &Connected| -> Vec<(String, bool, u16)> {
        outbox(c)
            .into_iter()
            .filter_map(|o| match o {
                Outgoing::Publish {
                    publish, envelope, ..
                } => Some((
                    String::from_utf8_lossy(&publish.payload).into_owned(),
                    envelope.dup,
                    envelope.qos.packet_id().map_or(0, PacketId::get),
                )),
                _ => None,
            })
            .collect()
    };
    let got = resent(&back);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].0.as_str(), got[0].1), ("1", true));
    let mut expected = vec![("2", true), ("3", true), ("4", false)].into_iter();
    let mut id = got[0].2;
    for _ in 0..3 {
        send(
            &b,
            &back,
            mqtt_codec::PubAck::new(PacketId::new(id).unwrap()),
            t0,
        )
        .unwrap();
        let got = resent(&back);
        assert_eq!(got.len(), 1, "{got:?}");
        let (payload, dup) = expected.next().unwrap();
        assert_eq!((got[0].0.as_str(), got[0].1), (payload, dup));
        id = got[0].2;
    }
}

/// MQTT-3.1.2-25: a message in flight that no longer fits the Maximum Packet Size of the new
/// connection is dropped as if delivered, not sent and not kept in flight.
#[test]
fn v5_mqtt_3_1_2_25_a_resent_message_too_large_for_the_new_connection_is_dropped() {
    let (b, t0) = broker();
    let mut c = connect_packet("shrinks", false);
    session_expiry(&mut c, 100);
    let first = connect_at(&b, &c, t0);
    subscribe(&b, &first, "t", options(QoS::AtLeastOnce), t0);
    let publisher = connect_at(&b, &connect_packet("pub", true), t0);
    static BIG: [u8; 300] = [b'x'; 300];
    send(&b, &publisher, publish("t", &BIG, QoS::AtLeastOnce, 1), t0).unwrap();
    send(
        &b,
        &publisher,
        publish("t", b"small", QoS::AtLeastOnce, 2),
        t0,
    )
    .unwrap();
    assert_eq!(payloads(&first).len(), 2);
    b.disconnect(&first.handle, first.generation, false, t0);
    c.properties.maximum_packet_size = NonZeroU32::new(100);
    c.properties.topic_alias_maximum = Some(5);
    let back = connect_at(&b, &c, t0);
    let got = deliveries(&back);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, "small");
    assert_eq!(got[0].0, "t", "the first use of an alias carries the topic");
    assert_eq!(back.handle.lock().session.inflight(), 1);
}

/// Section 3.14.2.2.2: a DISCONNECT's Session Expiry Interval is capped like CONNECT's, and
/// "from zero" means what CONNECT asked for, not what the cap made of it.
#[test]
fn v5_disconnect_session_expiry_is_capped_and_judged_against_the_connect() {
    let (b, t0) = broker_with(Config {
        max_session_expiry_secs: 100,
        ..Config::default()
    });
    let mut c = connect_packet("capped", false);
    session_expiry(&mut c, 10);
    let s = connect_at(&b, &c, t0);
    let mut d = Disconnect::new(ReasonCode::Success);
    d.properties.session_expiry_interval = Some(u32::MAX);
    send(&b, &s, d, t0).unwrap();
    assert_eq!(s.handle.lock().session.expiry_interval(), 100);
    b.disconnect(&s.handle, s.generation, true, t0);
    b.expire(t0 + Duration::from_secs(101));
    assert!(
        b.session("capped").is_none(),
        "the session outlived the cap"
    );

    let (b, t0) = broker_with(Config {
        max_session_expiry_secs: 0,
        ..Config::default()
    });
    session_expiry(&mut c, 100);
    let s = connect_at(&b, &c, t0);
    let mut d = Disconnect::new(ReasonCode::Success);
    d.properties.session_expiry_interval = Some(100);
    assert!(
        send(&b, &s, d, t0).is_ok(),
        "the CONNECT asked for an expiry"
    );
}

/// MQTT-3.1.2-10 / MQTT-3.14.4-3: only DISCONNECT 0x00 discards the will; any other reason
/// (an error the client reports, 0x04) leaves it to be published.
#[test]
fn v5_mqtt_3_14_4_3_only_a_normal_disconnection_discards_the_will() {
    let (b, t0) = broker();
    let c = connect_at(&b, &connect_packet("c", true), t0);
    for (reason, publish_will) in [
        (ReasonCode::Success, false),
        (ReasonCode::UnspecifiedError, true),
        (ReasonCode::DisconnectWithWillMessage, true),
    ] {
        assert_eq!(
            send(&b, &c, Disconnect::new(reason), t0).unwrap(),
            Flow::Disconnect { publish_will },
            "{reason:?}"
        );
    }
}

/// The timers of detached sessions do not pile up: reconnecting again and again leaves one
/// live timer per session.
#[test]
fn v5_reconnect_cycles_keep_the_timers_bounded() {
    let (b, t0) = broker();
    let mut c = will_connect("cycles", 1_000, 1_000_000);
    session_expiry(&mut c, 1_000_000);
    let mut now = t0;
    for _ in 0..3000 {
        let s = connect_at(&b, &c, now);
        b.disconnect(&s.handle, s.generation, false, now);
        now += Duration::from_millis(1);
    }
    let handle = b.session("cycles").unwrap();
    // The registry, this test, and at most a handful of timer entries.
    assert!(
        Arc::strong_count(&handle) < 10,
        "{} references: timers pile up",
        Arc::strong_count(&handle)
    );
}

/// MQTT-3.1.2-8: a will whose delay has run out is published even if the client reconnects
/// before the broker's timer got to it.
#[test]
fn v5_mqtt_3_1_2_8_a_will_due_before_the_reconnect_is_published() {
    let (b, t0) = broker();
    let watcher = connect_at(&b, &connect_packet("watcher", true), t0);
    subscribe(&b, &watcher, "wills", options(QoS::AtLeastOnce), t0);
    let c = will_connect("late", 5, 100);
    let s = connect_at(&b, &c, t0);
    b.disconnect(&s.handle, s.generation, false, t0);
    let _back = connect_at(&b, &c, t0 + Duration::from_millis(5_150));
    assert_eq!(payloads(&watcher), ["late is gone"]);
}

/// MQTT-3.3.2-11: the server uses no more topic aliases than it accepts itself
/// (`max_topic_alias`), whatever the client allows.
#[test]
fn v5_mqtt_3_3_2_11_server_aliases_are_capped_by_the_server() {
    let (b, t0) = broker_with(Config {
        max_topic_alias: 1,
        ..Config::default()
    });
    let mut c = connect_packet("aliased", true);
    c.properties.topic_alias_maximum = Some(100);
    let aliased = connect_at(&b, &c, t0);
    subscribe(&b, &aliased, "t/#", options(QoS::AtMostOnce), t0);
    let publisher = connect_at(&b, &connect_packet("pub", true), t0);
    for t in ["t/a", "t/b", "t/c"] {
        send(&b, &publisher, publish(t, b"m", QoS::AtMostOnce, 1), t0).unwrap();
    }
    let aliases: Vec<Option<u16>> = deliveries(&aliased)
        .into_iter()
        .map(|(_, _, p)| p.topic_alias.map(NonZeroU16::get))
        .collect();
    assert_eq!(aliases, [Some(1), Some(1), Some(1)]);
}

/// MQTT 5.0 section 4.8.2: a message a shared subscription chose for a member whose session
/// ends before it acknowledged it goes to another member of the group; one it acknowledged does
/// not. (For 3.1.1 clients too: shared subscriptions are not version-bound here.)
#[test]
fn v5_shared_subscription_messages_of_a_leaving_member_go_to_another() {
    let (b, t0) = broker();
    let a = connect_at(&b, &connect_packet("a", true), t0);
    let other = connect_at(&b, &connect_packet("b", true), t0);
    for member in [&a, &other] {
        subscribe(&b, member, "$share/g/jobs", options(QoS::AtLeastOnce), t0);
    }
    let publisher = connect_at(&b, &connect_packet("pub", true), t0);
    for i in 0..6u16 {
        let payload: &'static [u8] = [b"0", b"1", b"2", b"3", b"4", b"5"][usize::from(i)];
        send(
            &b,
            &publisher,
            publish("jobs", payload, QoS::AtLeastOnce, i + 1),
            t0,
        )
        .unwrap();
    }
    let got_a = outbox(&a);
    let ids_a: Vec<u16> = got_a
        .iter()
        .filter_map(|o| match o {
            Outgoing::Publish { envelope, .. } => envelope.qos.packet_id().map(PacketId::get),
            _ => None,
        })
        .collect();
    let mut received_b = payloads(&other);
    assert_eq!(
        ids_a.len() + received_b.len(),
        6,
        "each message to one member"
    );
    assert!(!ids_a.is_empty(), "round robin gave a nothing");
    // `a` acknowledges its first message only, then its session ends.
    send(
        &b,
        &a,
        mqtt_codec::PubAck::new(PacketId::new(ids_a[0]).unwrap()),
        t0,
    )
    .unwrap();
    b.disconnect(&a.handle, a.generation, false, t0);
    received_b.extend(payloads(&other));
    assert_eq!(
        received_b.len(),
        6 - 1,
        "the unacknowledged ones went to b: {received_b:?}"
    );
    let mut all = received_b.clone();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 5, "no message twice: {received_b:?}");
}

/// PUBACK and PUBREC say 0x10 "no matching subscribers" when a message reached nobody
/// (section 3.4.2.1), 0x00 otherwise.
#[test]
fn v5_acknowledgements_say_when_nobody_subscribed() {
    let (b, t0) = broker();
    let c = connect_at(&b, &connect_packet("c", true), t0);
    let acks = |c: &Connected| -> Vec<(&'static str, ReasonCode)> {
        outbox(c)
            .into_iter()
            .filter_map(|o| match o {
                Outgoing::Packet(Packet::PubAck(a)) => Some(("PUBACK", a.reason_code)),
                Outgoing::Packet(Packet::PubRec(r)) => Some(("PUBREC", r.reason_code)),
                _ => None,
            })
            .collect()
    };
    send(&b, &c, publish("nobody", b"x", QoS::AtLeastOnce, 1), t0).unwrap();
    send(&b, &c, publish("nobody", b"x", QoS::ExactlyOnce, 2), t0).unwrap();
    assert_eq!(
        acks(&c),
        [
            ("PUBACK", ReasonCode::NoMatchingSubscribers),
            ("PUBREC", ReasonCode::NoMatchingSubscribers)
        ]
    );
    let sub = connect_at(&b, &connect_packet("sub", true), t0);
    subscribe(&b, &sub, "somebody", options(QoS::AtMostOnce), t0);
    send(&b, &c, publish("somebody", b"x", QoS::AtLeastOnce, 3), t0).unwrap();
    assert_eq!(acks(&c), [("PUBACK", ReasonCode::Success)]);
}
