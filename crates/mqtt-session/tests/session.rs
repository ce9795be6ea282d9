//! The server session machine, driven deterministically: packets in, outbox and actions out,
//! time as a parameter. Tests are named after the normative statements they check (MQTT 3.1.1
//! numbering unless said otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_codec::{
    Connect, Disconnect, Packet, PacketId, ProtocolVersion, PubAck, PubComp, PubRec, PubRel,
    Publish, QoS, QosPid, ReasonCode, Will,
};
use mqtt_session::{Action, Attach, Close, Delivery, Limits, Outgoing, Session};
use mqtt_topic::{MqttString, TopicName};

fn pid(id: u16) -> PacketId {
    PacketId::new(id).unwrap()
}

fn topic(t: &str) -> TopicName {
    TopicName::try_from(t).unwrap()
}

fn session(persistent: bool, limits: Limits) -> Session {
    Session::new(MqttString::try_from("client").unwrap(), persistent, limits)
}

fn attach(s: &mut Session, keep_alive: u16, now: Instant) {
    s.attach(
        Attach::new(
            ProtocolVersion::V3_1_1,
            keep_alive,
            Some(Will::new(topic("will/t"), Bytes::from_static(b"gone"))),
        ),
        now,
    );
}

fn publish(t: &str, qos: QosPid, payload: &'static [u8]) -> Publish {
    let mut p = Publish::new(topic(t), Bytes::from_static(payload));
    p.qos = qos;
    p
}

fn delivery(payload: &'static [u8], qos: QoS) -> Delivery {
    Delivery::new(
        Arc::new(Publish::new(topic("t"), Bytes::from_static(payload))),
        qos,
        false,
    )
}

/// The outbox as (kind, packet id, payload, dup) for compact assertions.
fn drain(s: &mut Session) -> Vec<String> {
    s.take_outbox()
        .into_iter()
        .map(|o| match o {
            Outgoing::Publish {
                publish, envelope, ..
            } => format!(
                "PUBLISH {} q{} {}{}",
                String::from_utf8_lossy(&publish.payload),
                envelope.qos.qos() as u8,
                envelope.qos.packet_id().map_or(0, PacketId::get),
                if envelope.dup { " dup" } else { "" }
            ),
            Outgoing::Packet(Packet::PubAck(a)) => format!("PUBACK {}", a.packet_id),
            Outgoing::Packet(Packet::PubRec(a)) => format!("PUBREC {}", a.packet_id),
            Outgoing::Packet(Packet::PubRel(a)) => format!("PUBREL {}", a.packet_id),
            Outgoing::Packet(Packet::PubComp(a)) => format!("PUBCOMP {}", a.packet_id),
            Outgoing::Packet(p) => format!("{:?}", p.packet_type()),
        })
        .collect()
}

fn routed(action: Option<Action>) -> Option<Bytes> {
    match action {
        Some(Action::Route(p)) => Some(p.payload.clone()),
        _ => None,
    }
}

/// MQTT-3.3.4-1 / MQTT-4.3.2-2: a QoS 1 PUBLISH is acknowledged with PUBACK and routed.
#[test]
fn mqtt_4_3_2_2_qos1_publish_is_acknowledged_and_routed() {
    let now = Instant::now();
    let mut s = session(false, Limits::default());
    attach(&mut s, 0, now);
    let a = s
        .handle_packet(
            Packet::Publish(publish("a", QosPid::AtLeastOnce(pid(7)), b"x")),
            now,
        )
        .unwrap();
    assert_eq!(routed(a).unwrap(), "x");
    assert_eq!(drain(&mut s), ["PUBACK 7"]);
}

/// MQTT-4.3.3-2: a QoS 2 message is routed once; until PUBREL, a repeat of its packet id is only
/// acknowledged again with PUBREC. After PUBCOMP the id is free for a new message.
#[test]
fn mqtt_4_3_3_2_qos2_publish_is_routed_exactly_once() {
    let now = Instant::now();
    let mut s = session(false, Limits::default());
    attach(&mut s, 0, now);
    let first = publish("a", QosPid::ExactlyOnce(pid(3)), b"once");
    assert!(
        routed(
            s.handle_packet(Packet::Publish(first.clone()), now)
                .unwrap()
        )
        .is_some()
    );
    let mut again = first.clone();
    again.dup = true;
    assert!(routed(s.handle_packet(Packet::Publish(again), now).unwrap()).is_none());
    assert_eq!(drain(&mut s), ["PUBREC 3", "PUBREC 3"]);
    s.handle_packet(Packet::PubRel(PubRel::new(pid(3))), now)
        .unwrap();
    assert_eq!(drain(&mut s), ["PUBCOMP 3"]);
    assert!(routed(s.handle_packet(Packet::Publish(first), now).unwrap()).is_some());
}

/// A client that leaves QoS 2 messages unreleased is bounded.
#[test]
fn unreleased_qos2_messages_are_bounded() {
    let now = Instant::now();
    let mut s = session(
        false,
        Limits {
            max_incoming_qos2: 2,
            ..Limits::default()
        },
    );
    attach(&mut s, 0, now);
    for id in 1..=2 {
        s.handle_packet(
            Packet::Publish(publish("a", QosPid::ExactlyOnce(pid(id)), b"")),
            now,
        )
        .unwrap();
    }
    let err = s
        .handle_packet(
            Packet::Publish(publish("a", QosPid::ExactlyOnce(pid(3)), b"")),
            now,
        )
        .unwrap_err();
    assert!(matches!(
        err,
        Close::Violation {
            reason: ReasonCode::ReceiveMaximumExceeded,
            ..
        }
    ));
}

/// MQTT-4.3.2-1, MQTT-4.3.3-1: messages to the client get unused packet ids; the in-flight
/// window holds at most `max_inflight` and the rest wait, in order; acknowledgements move the
/// queue.
#[test]
fn mqtt_4_3_2_1_inflight_window_and_queue_keep_order() {
    let now = Instant::now();
    let mut s = session(
        false,
        Limits {
            max_inflight: 2,
            ..Limits::default()
        },
    );
    attach(&mut s, 0, now);
    assert!(s.deliver(delivery(b"m1", QoS::AtLeastOnce), now));
    assert!(s.deliver(delivery(b"m2", QoS::ExactlyOnce), now));
    assert!(!s.deliver(delivery(b"m3", QoS::AtLeastOnce), now));
    // QoS 0 waits behind the queue too, so order is kept.
    assert!(!s.deliver(delivery(b"m4", QoS::AtMostOnce), now));
    assert_eq!(drain(&mut s), ["PUBLISH m1 q1 1", "PUBLISH m2 q2 2"]);
    assert_eq!((s.inflight(), s.queued()), (2, 2));

    s.handle_packet(Packet::PubAck(PubAck::new(pid(1))), now)
        .unwrap();
    assert_eq!(drain(&mut s), ["PUBLISH m3 q1 3", "PUBLISH m4 q0 0"]);
    // QoS 2 towards the client: PUBREC is answered with PUBREL, PUBCOMP ends it.
    s.handle_packet(Packet::PubRec(PubRec::new(pid(2))), now)
        .unwrap();
    assert_eq!(drain(&mut s), ["PUBREL 2"]);
    s.handle_packet(Packet::PubComp(PubComp::new(pid(2))), now)
        .unwrap();
    s.handle_packet(Packet::PubAck(PubAck::new(pid(3))), now)
        .unwrap();
    assert_eq!((s.inflight(), s.queued()), (0, 0));
    // An acknowledgement of something not in flight changes nothing.
    s.handle_packet(Packet::PubAck(PubAck::new(pid(9))), now)
        .unwrap();
    assert!(drain(&mut s).is_empty());
}

/// MQTT-3.1.2-5 and MQTT-4.4.0-1: a persistent session keeps QoS 1 and 2 messages while its
/// client is away, and on reconnect re-sends the unacknowledged ones with DUP and their
/// original packet ids (PUBREL for those already received), in order, before the queued ones.
#[test]
fn mqtt_4_4_0_1_persistent_session_resends_and_queues_while_offline() {
    let now = Instant::now();
    let mut s = session(true, Limits::default());
    attach(&mut s, 0, now);
    s.deliver(delivery(b"a", QoS::AtLeastOnce), now);
    s.deliver(delivery(b"b", QoS::ExactlyOnce), now);
    s.deliver(delivery(b"c", QoS::ExactlyOnce), now);
    drain(&mut s);
    s.handle_packet(Packet::PubRec(PubRec::new(pid(3))), now)
        .unwrap();
    drain(&mut s);
    assert!(s.detach(false).is_some());

    // Offline: QoS 1/2 queued, QoS 0 dropped (queue_qos0_offline is off).
    assert!(!s.deliver(delivery(b"d", QoS::AtLeastOnce), now));
    assert!(!s.deliver(delivery(b"zero", QoS::AtMostOnce), now));
    assert_eq!(s.queued(), 1);
    assert_eq!(s.stats().dropped_offline, 1);

    attach(&mut s, 0, now);
    assert_eq!(
        drain(&mut s),
        [
            "PUBLISH a q1 1 dup",
            "PUBLISH b q2 2 dup",
            "PUBREL 3",
            "PUBLISH d q1 4"
        ]
    );
}

/// Offline QoS 0 can be queued when configured; a non-persistent session queues nothing.
#[test]
fn offline_qos0_queueing_is_configurable_and_clean_sessions_queue_nothing() {
    let mut s = session(
        true,
        Limits {
            queue_qos0_offline: true,
            ..Limits::default()
        },
    );
    s.deliver(delivery(b"zero", QoS::AtMostOnce), Instant::now());
    assert_eq!(s.queued(), 1);
    let mut clean = session(false, Limits::default());
    clean.deliver(delivery(b"one", QoS::AtLeastOnce), Instant::now());
    assert_eq!(clean.queued(), 0);
}

/// The queue is bounded by messages and by bytes; overflow is dropped and counted.
#[test]
fn queue_is_bounded_by_count_and_bytes() {
    let mut s = session(
        true,
        Limits {
            max_queued_messages: 2,
            max_queued_bytes: 1000,
            ..Limits::default()
        },
    );
    for _ in 0..3 {
        s.deliver(delivery(b"x", QoS::AtLeastOnce), Instant::now());
    }
    assert_eq!((s.queued(), s.stats().dropped_queue_full), (2, 1));
    let mut bytes = session(
        true,
        Limits {
            max_queued_bytes: 5,
            ..Limits::default()
        },
    );
    bytes.deliver(delivery(b"abc", QoS::AtLeastOnce), Instant::now()); // 3 bytes of payload + 1 of topic
    bytes.deliver(delivery(b"abc", QoS::AtLeastOnce), Instant::now());
    assert_eq!((bytes.queued(), bytes.stats().dropped_queue_full), (1, 1));
}

/// MQTT-3.1.2-24: with a non-zero keep alive, the connection closes after one and a half times
/// it without any packet; every packet restarts the clock; keep alive 0 never times out.
#[test]
fn mqtt_3_1_2_24_keep_alive_is_one_and_a_half_periods() {
    let start = Instant::now();
    let mut s = session(false, Limits::default());
    attach(&mut s, 10, start);
    assert_eq!(s.deadline(), Some(start + Duration::from_secs(15)));
    assert_eq!(
        s.handle_timeout(start + Duration::from_millis(14_999)),
        Ok(())
    );
    s.handle_packet(Packet::PingReq, start + Duration::from_secs(14))
        .unwrap();
    assert_eq!(drain(&mut s), ["PingResp"]);
    assert_eq!(s.handle_timeout(start + Duration::from_secs(28)), Ok(()));
    assert_eq!(
        s.handle_timeout(start + Duration::from_secs(29)),
        Err(Close::KeepAliveTimeout)
    );

    let mut none = session(false, Limits::default());
    attach(&mut none, 0, start);
    assert_eq!(none.deadline(), None);
    assert_eq!(
        none.handle_timeout(start + Duration::from_secs(1_000_000)),
        Ok(())
    );
}

/// MQTT-3.1.0-2: a second CONNECT is a protocol violation; so is a packet only a server sends.
#[test]
fn mqtt_3_1_0_2_second_connect_closes() {
    let now = Instant::now();
    let mut s = session(false, Limits::default());
    attach(&mut s, 0, now);
    let connect = Connect::new(ProtocolVersion::V3_1_1, MqttString::try_from("x").unwrap());
    let err = s.handle_packet(Packet::from(connect), now).unwrap_err();
    assert!(matches!(
        err,
        Close::Violation {
            statement: Some("MQTT-3.1.0-2"),
            ..
        }
    ));
    assert!(s.handle_packet(Packet::PingResp, now).is_err());
}

/// MQTT-3.1.2-8, MQTT-3.1.2-10, MQTT-3.14.4-3: the will is handed over when the connection
/// ends without DISCONNECT, and discarded after DISCONNECT.
#[test]
fn mqtt_3_1_2_8_will_on_abnormal_close_only() {
    let now = Instant::now();
    let mut s = session(false, Limits::default());
    attach(&mut s, 0, now);
    assert_eq!(s.detach(false).unwrap().topic, "will/t");
    attach(&mut s, 0, now);
    assert!(matches!(
        s.handle_packet(Packet::from(Disconnect::new(ReasonCode::Success)), now)
            .unwrap(),
        Some(Action::Disconnect {
            publish_will: false
        })
    ));
    assert!(s.detach(true).is_none());
}

/// MQTT-2.3.1-2 / MQTT-2.3.1-4: packet ids in flight are never reused, including across the
/// wrap from 65,535 to 1.
#[test]
fn mqtt_2_3_1_2_packet_ids_in_flight_are_unique_across_wraparound() {
    let now = Instant::now();
    let mut s = session(
        false,
        Limits {
            max_inflight: 3,
            ..Limits::default()
        },
    );
    attach(&mut s, 0, now);
    // Keep id 1 in flight while 65,534 others come and go.
    s.deliver(delivery(b"held", QoS::AtLeastOnce), now);
    for id in 2..=u16::MAX {
        s.deliver(delivery(b"x", QoS::AtLeastOnce), now);
        s.handle_packet(Packet::PubAck(PubAck::new(pid(id))), now)
            .unwrap();
    }
    drain(&mut s);
    s.deliver(delivery(b"next", QoS::AtLeastOnce), now);
    assert_eq!(drain(&mut s), ["PUBLISH next q1 2"]);
}

/// Clean Session 1 (MQTT-3.1.2-6): clearing drops everything and hands back the subscriptions.
#[test]
fn mqtt_3_1_2_6_clear_discards_state() {
    let mut s = session(true, Limits::default());
    let f = mqtt_topic::TopicFilter::try_from("a/#").unwrap();
    s.add_subscription(&f, mqtt_topic::SubscriptionData::new(QoS::AtLeastOnce));
    s.deliver(delivery(b"x", QoS::AtLeastOnce), Instant::now());
    assert_eq!(s.clear(), vec![f]);
    assert_eq!((s.queued(), s.subscription_count()), (0, 0));
}
