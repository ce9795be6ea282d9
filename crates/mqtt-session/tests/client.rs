//! The client session machine, driven deterministically: requests and packets in, packets and
//! events out, time as a parameter. Tests are named after the normative statements they check
//! (MQTT 3.1.1 numbering unless said otherwise). The last test wires the client machine to the
//! server machine over a link that drops connections at random points.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_codec::{
    ConnAck, Packet, PacketId, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS,
    QosPid, ReasonCode, SubAck, SubscribeProperties, Subscription, SubscriptionOptions, UnsubAck,
    UnsubscribeProperties,
};
use mqtt_session::client::{ClientClose, ClientEvent, ClientLimits, ClientSession};
use mqtt_session::{Action, Attach, Limits, Outgoing, Session};
use mqtt_topic::{MqttString, TopicFilter, TopicName};
use proptest::prelude::*;

fn pid(id: u16) -> PacketId {
    PacketId::new(id).unwrap()
}

fn msg(payload: &str) -> Publish {
    Publish::new(
        TopicName::try_from("t").unwrap(),
        Bytes::copy_from_slice(payload.as_bytes()),
    )
}

fn sub(filter: &str, qos: QoS) -> Subscription {
    Subscription {
        filter: TopicFilter::try_from(filter).unwrap(),
        options: SubscriptionOptions::new(qos),
    }
}

fn client(max_inflight: u16) -> ClientSession<u32> {
    ClientSession::new(
        ProtocolVersion::V3_1_1,
        Some(Duration::from_secs(10)),
        ClientLimits {
            max_inflight,
            ..ClientLimits::default()
        },
    )
}

/// The packets to write, compactly: `PUBLISH 1 dup q1 "a"`, `PUBREL 1`, …
fn out(c: &mut ClientSession<u32>) -> Vec<String> {
    let mut v = Vec::new();
    while let Some(p) = c.poll_transmit() {
        v.push(match p {
            Packet::Publish(p) => format!(
                "PUBLISH {}{} q{} {:?}",
                p.qos.packet_id().map_or(0, PacketId::get),
                if p.dup { " dup" } else { "" },
                p.qos.qos() as u8,
                String::from_utf8_lossy(&p.payload)
            ),
            Packet::PubAck(a) => format!("PUBACK {}", a.packet_id.get()),
            Packet::PubRec(a) => format!("PUBREC {}", a.packet_id.get()),
            Packet::PubRel(a) => format!("PUBREL {}", a.packet_id.get()),
            Packet::PubComp(a) => format!("PUBCOMP {}", a.packet_id.get()),
            Packet::Subscribe(s) => format!(
                "SUBSCRIBE {} {}",
                s.packet_id.get(),
                s.subscriptions
                    .iter()
                    .map(|s| s.filter.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Packet::Unsubscribe(u) => format!(
                "UNSUBSCRIBE {} {}",
                u.packet_id.get(),
                u.filters
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Packet::PingReq => "PINGREQ".into(),
            other => format!("{other:?}"),
        });
    }
    v
}

/// The events, compactly: `published 7 ok`, `message "x"`, …
fn events(c: &mut ClientSession<u32>) -> Vec<String> {
    let mut v = Vec::new();
    while let Some(e) = c.poll_event() {
        v.push(match e {
            ClientEvent::Message(p) => format!("message {:?}", String::from_utf8_lossy(&p.payload)),
            ClientEvent::Published { token, result } => match result {
                Ok(()) => format!("published {token} ok"),
                Err(code) => format!("published {token} {code:?}"),
            },
            ClientEvent::Subscribed { token, codes } => format!("subscribed {token} {codes:?}"),
            ClientEvent::Unsubscribed { token, codes } => {
                format!("unsubscribed {token} {codes:?}")
            }
            ClientEvent::ResubscribeFailed { filter, code } => {
                format!("resubscribe failed {filter} {code:?}")
            }
            ClientEvent::Auth(a) => format!("auth {:?}", a.reason_code),
        });
    }
    v
}

fn incoming(qos: QosPid, payload: &str) -> Packet {
    let mut p = msg(payload);
    p.qos = qos;
    Packet::Publish(p)
}

#[test]
fn qos0_goes_out_at_once_and_completes_when_handed_over() {
    let now = Instant::now();
    let mut c = client(10);
    c.connected(false, now);
    c.publish(msg("a"), QoS::AtMostOnce, 1);
    assert_eq!(out(&mut c), ["PUBLISH 0 q0 \"a\""]);
    assert_eq!(events(&mut c), ["published 1 ok"]);
}

#[test]
fn mqtt_4_3_2_qos1_completes_on_puback() {
    let now = Instant::now();
    let mut c = client(10);
    c.connected(false, now);
    c.publish(msg("a"), QoS::AtLeastOnce, 1);
    assert_eq!(out(&mut c), ["PUBLISH 1 q1 \"a\""]);
    assert!(events(&mut c).is_empty());
    // An acknowledgement for an identifier not in flight changes nothing.
    c.handle_packet(Packet::PubAck(PubAck::new(pid(9))), now)
        .unwrap();
    assert!(events(&mut c).is_empty());
    c.handle_packet(Packet::PubAck(PubAck::new(pid(1))), now)
        .unwrap();
    assert_eq!(events(&mut c), ["published 1 ok"]);
    assert!(c.is_idle());
}

#[test]
fn mqtt_4_3_3_qos2_releases_on_pubrec_and_completes_on_pubcomp() {
    let now = Instant::now();
    let mut c = client(10);
    c.connected(false, now);
    c.publish(msg("a"), QoS::ExactlyOnce, 1);
    assert_eq!(out(&mut c), ["PUBLISH 1 q2 \"a\""]);
    // PUBCOMP before PUBREC is stale: ignored.
    c.handle_packet(Packet::PubComp(PubComp::new(pid(1))), now)
        .unwrap();
    assert!(events(&mut c).is_empty());
    c.handle_packet(Packet::PubRec(PubRec::new(pid(1))), now)
        .unwrap();
    assert_eq!(out(&mut c), ["PUBREL 1"]);
    // A repeated PUBREC is answered with PUBREL again.
    c.handle_packet(Packet::PubRec(PubRec::new(pid(1))), now)
        .unwrap();
    assert_eq!(out(&mut c), ["PUBREL 1"]);
    c.handle_packet(Packet::PubComp(PubComp::new(pid(1))), now)
        .unwrap();
    assert_eq!(events(&mut c), ["published 1 ok"]);
    assert!(c.is_idle());
}

#[test]
fn v5_refusal_codes_fail_the_publish() {
    let now = Instant::now();
    let mut c: ClientSession<u32> =
        ClientSession::new(ProtocolVersion::V5, None, ClientLimits::default());
    c.connected(false, now);
    c.publish(msg("a"), QoS::AtLeastOnce, 1);
    c.publish(msg("b"), QoS::ExactlyOnce, 2);
    out(&mut c);
    let mut ack = PubAck::new(pid(1));
    ack.reason_code = ReasonCode::NotAuthorized;
    c.handle_packet(Packet::PubAck(ack), now).unwrap();
    let mut rec = PubRec::new(pid(2));
    rec.reason_code = ReasonCode::QuotaExceeded;
    c.handle_packet(Packet::PubRec(rec), now).unwrap();
    // A refused QoS 2 message ends at PUBREC: no PUBREL.
    assert!(out(&mut c).is_empty());
    assert_eq!(
        events(&mut c),
        ["published 1 NotAuthorized", "published 2 QuotaExceeded"]
    );
}

#[test]
fn the_inflight_window_holds_back_and_releases_in_order() {
    let now = Instant::now();
    let mut c = client(2);
    c.connected(false, now);
    for (i, p) in ["a", "b", "c", "d"].iter().enumerate() {
        c.publish(msg(p), QoS::AtLeastOnce, i as u32);
    }
    assert_eq!(out(&mut c), ["PUBLISH 1 q1 \"a\"", "PUBLISH 2 q1 \"b\""]);
    assert_eq!(c.pending(), 2);
    // Acknowledged out of order: each acknowledgement lets the next one go.
    c.handle_packet(Packet::PubAck(PubAck::new(pid(2))), now)
        .unwrap();
    assert_eq!(out(&mut c), ["PUBLISH 3 q1 \"c\""]);
    c.handle_packet(Packet::PubAck(PubAck::new(pid(1))), now)
        .unwrap();
    assert_eq!(out(&mut c), ["PUBLISH 4 q1 \"d\""]);
    assert_eq!(events(&mut c), ["published 1 ok", "published 0 ok"]);
}

#[test]
fn qos0_behind_a_full_window_keeps_its_place() {
    let now = Instant::now();
    let mut c = client(1);
    c.connected(false, now);
    c.publish(msg("a"), QoS::AtLeastOnce, 1);
    c.publish(msg("b"), QoS::AtLeastOnce, 2);
    c.publish(msg("c"), QoS::AtMostOnce, 3);
    assert_eq!(out(&mut c), ["PUBLISH 1 q1 \"a\""]);
    c.handle_packet(Packet::PubAck(PubAck::new(pid(1))), now)
        .unwrap();
    // QoS 0 needs no room in the window, but waits for the messages asked for before it.
    assert_eq!(out(&mut c), ["PUBLISH 2 q1 \"b\"", "PUBLISH 0 q0 \"c\""]);
}

#[test]
fn requests_made_offline_wait_for_the_connection() {
    let now = Instant::now();
    let mut c = client(10);
    c.publish(msg("a"), QoS::AtMostOnce, 1);
    c.publish(msg("b"), QoS::AtLeastOnce, 2);
    c.subscribe(
        vec![sub("x/#", QoS::AtLeastOnce)],
        SubscribeProperties::default(),
        3,
    );
    assert!(out(&mut c).is_empty());
    assert!(events(&mut c).is_empty());
    c.connected(false, now);
    assert_eq!(
        out(&mut c),
        [
            "SUBSCRIBE 1 x/#",
            "PUBLISH 0 q0 \"a\"",
            "PUBLISH 2 q1 \"b\""
        ]
    );
}

#[test]
fn mqtt_4_4_0_1_resumed_session_resends_in_order_with_dup() {
    let now = Instant::now();
    let mut c = client(10);
    c.connected(false, now);
    c.publish(msg("a"), QoS::AtLeastOnce, 1);
    c.publish(msg("b"), QoS::ExactlyOnce, 2);
    c.publish(msg("c"), QoS::ExactlyOnce, 3);
    out(&mut c);
    c.handle_packet(Packet::PubRec(PubRec::new(pid(2))), now)
        .unwrap();
    assert_eq!(out(&mut c), ["PUBREL 2"]);
    c.disconnected();
    c.publish(msg("d"), QoS::AtLeastOnce, 4);
    c.connected(true, now);
    // [MQTT-3.3.1-1] DUP on re-delivery; PUBREL for the message already received; original
    // identifiers and order; then the new message.
    assert_eq!(
        out(&mut c),
        [
            "PUBLISH 1 dup q1 \"a\"",
            "PUBREL 2",
            "PUBLISH 3 dup q2 \"c\"",
            "PUBLISH 4 q1 \"d\""
        ]
    );
    for id in [1, 4] {
        c.handle_packet(Packet::PubAck(PubAck::new(pid(id))), now)
            .unwrap();
    }
    c.handle_packet(Packet::PubComp(PubComp::new(pid(2))), now)
        .unwrap();
    c.handle_packet(Packet::PubRec(PubRec::new(pid(3))), now)
        .unwrap();
    c.handle_packet(Packet::PubComp(PubComp::new(pid(3))), now)
        .unwrap();
    assert_eq!(
        events(&mut c),
        [
            "published 1 ok",
            "published 4 ok",
            "published 2 ok",
            "published 3 ok"
        ]
    );
}

#[test]
fn a_lost_session_is_rebuilt_subscriptions_first() {
    let now = Instant::now();
    let mut c = client(10);
    c.connected(false, now);
    c.subscribe(
        vec![sub("a/+", QoS::AtLeastOnce), sub("b/#", QoS::ExactlyOnce)],
        SubscribeProperties::default(),
        10,
    );
    assert_eq!(out(&mut c), ["SUBSCRIBE 1 a/+,b/#"]);
    c.handle_packet(
        Packet::SubAck(SubAck::new(
            pid(1),
            vec![ReasonCode::GrantedQoS1, ReasonCode::GrantedQoS2],
        )),
        now,
    )
    .unwrap();
    assert_eq!(events(&mut c), ["subscribed 10 [GrantedQoS1, GrantedQoS2]"]);
    c.publish(msg("q1"), QoS::AtLeastOnce, 1);
    c.publish(msg("q2-open"), QoS::ExactlyOnce, 2);
    c.publish(msg("q2-taken"), QoS::ExactlyOnce, 3);
    out(&mut c);
    c.handle_packet(Packet::PubRec(PubRec::new(pid(4))), now)
        .unwrap();
    out(&mut c);
    // A QoS 2 message received from the server and not yet released.
    c.handle_packet(incoming(QosPid::ExactlyOnce(pid(7)), "in"), now)
        .unwrap();
    assert_eq!(events(&mut c), ["message \"in\""]);
    out(&mut c);
    c.disconnected();
    c.connected(false, now);
    let sent = out(&mut c);
    // Fresh identifiers: the server has forgotten the old ones.
    assert_eq!(sent[0], "SUBSCRIBE 5 a/+,b/#");
    // The message the server had taken (PUBREC) is complete; the others start over, in order,
    // as new messages.
    assert_eq!(
        &sent[1..],
        ["PUBLISH 6 q1 \"q1\"", "PUBLISH 7 q2 \"q2-open\""]
    );
    assert_eq!(events(&mut c), ["published 3 ok"]);
    // The receipt of QoS 2 id 7 is forgotten: a message with that id is a new one.
    c.handle_packet(incoming(QosPid::ExactlyOnce(pid(7)), "again"), now)
        .unwrap();
    assert_eq!(events(&mut c), ["message \"again\""]);
    // A refused re-subscription is reported and forgotten.
    c.handle_packet(
        Packet::SubAck(SubAck::new(
            pid(5),
            vec![ReasonCode::GrantedQoS1, ReasonCode::UnspecifiedError],
        )),
        now,
    )
    .unwrap();
    assert_eq!(events(&mut c), ["resubscribe failed b/# UnspecifiedError"]);
    let kept: Vec<String> = c.subscriptions().map(|(f, _)| f.to_string()).collect();
    assert_eq!(kept, ["a/+"]);
}

#[test]
fn an_open_unsubscribe_comes_after_the_resubscription() {
    let now = Instant::now();
    let mut c = client(10);
    c.connected(false, now);
    c.subscribe(
        vec![sub("a", QoS::AtMostOnce)],
        SubscribeProperties::default(),
        1,
    );
    out(&mut c);
    c.handle_packet(
        Packet::SubAck(SubAck::new(pid(1), vec![ReasonCode::Success])),
        now,
    )
    .unwrap();
    c.unsubscribe(
        vec![TopicFilter::try_from("a").unwrap()],
        UnsubscribeProperties::default(),
        2,
    );
    assert_eq!(out(&mut c), ["UNSUBSCRIBE 2 a"]);
    c.disconnected();
    c.connected(false, now);
    assert_eq!(out(&mut c), ["SUBSCRIBE 3 a", "UNSUBSCRIBE 4 a"]);
    // The server answers in order; the re-subscription's own SUBACK reports nothing.
    c.handle_packet(
        Packet::SubAck(SubAck::new(pid(3), vec![ReasonCode::Success])),
        now,
    )
    .unwrap();
    c.handle_packet(Packet::UnsubAck(UnsubAck::new(pid(4), Vec::new())), now)
        .unwrap();
    let ev = events(&mut c);
    assert_eq!(ev, ["subscribed 1 [Success]", "unsubscribed 2 [Success]"]);
    assert_eq!(c.subscriptions().count(), 0);
}

#[test]
fn mqtt_3_9_3_1_suback_must_answer_every_filter() {
    let now = Instant::now();
    let mut c = client(10);
    c.connected(false, now);
    c.subscribe(
        vec![sub("a", QoS::AtMostOnce), sub("b", QoS::AtMostOnce)],
        SubscribeProperties::default(),
        1,
    );
    out(&mut c);
    let err = c
        .handle_packet(
            Packet::SubAck(SubAck::new(pid(1), vec![ReasonCode::Success])),
            now,
        )
        .unwrap_err();
    assert!(matches!(err, ClientClose::Violation { .. }));
}

#[test]
fn mqtt_4_3_2_incoming_qos1_is_acknowledged() {
    let now = Instant::now();
    let mut c = client(10);
    c.connected(true, now);
    c.handle_packet(incoming(QosPid::AtLeastOnce(pid(5)), "x"), now)
        .unwrap();
    assert_eq!(out(&mut c), ["PUBACK 5"]);
    assert_eq!(events(&mut c), ["message \"x\""]);
}

#[test]
fn mqtt_4_3_3_incoming_qos2_is_delivered_once() {
    let now = Instant::now();
    let mut c = client(10);
    c.connected(true, now);
    c.handle_packet(incoming(QosPid::ExactlyOnce(pid(5)), "x"), now)
        .unwrap();
    // The server did not see the PUBREC and sends the message again with DUP.
    let mut again = msg("x");
    again.qos = QosPid::ExactlyOnce(pid(5));
    again.dup = true;
    c.handle_packet(Packet::Publish(again), now).unwrap();
    assert_eq!(out(&mut c), ["PUBREC 5", "PUBREC 5"]);
    assert_eq!(events(&mut c), ["message \"x\""]);
    // The receipt survives a reconnect that resumes the session.
    c.disconnected();
    c.connected(true, now);
    c.handle_packet(incoming(QosPid::ExactlyOnce(pid(5)), "x"), now)
        .unwrap();
    assert!(events(&mut c).is_empty());
    c.handle_packet(Packet::PubRel(PubRel::new(pid(5))), now)
        .unwrap();
    assert_eq!(out(&mut c), ["PUBREC 5", "PUBCOMP 5"]);
    // Released: the identifier is free for a new message.
    c.handle_packet(incoming(QosPid::ExactlyOnce(pid(5)), "y"), now)
        .unwrap();
    assert_eq!(events(&mut c), ["message \"y\""]);
}

#[test]
fn mqtt_3_1_2_23_keep_alive_pings_and_gives_up_without_an_answer() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut c = client(10);
    c.connected(false, t0);
    assert_eq!(c.poll_timeout(), Some(t0 + s(10)));
    // Writing restarts the period.
    c.sent(t0 + s(4));
    assert_eq!(c.poll_timeout(), Some(t0 + s(14)));
    c.handle_timeout(t0 + s(14)).unwrap();
    assert_eq!(out(&mut c), ["PINGREQ"]);
    c.handle_packet(Packet::PingResp, t0 + s(15)).unwrap();
    c.sent(t0 + s(14));
    c.handle_timeout(t0 + s(24)).unwrap();
    assert_eq!(out(&mut c), ["PINGREQ"]);
    // No PINGRESP within a keep alive period: close.
    assert_eq!(c.handle_timeout(t0 + s(34)), Err(ClientClose::PingTimeout));
}

#[test]
fn no_keep_alive_no_timer() {
    let mut c: ClientSession<u32> =
        ClientSession::new(ProtocolVersion::V3_1_1, None, ClientLimits::default());
    c.connected(false, Instant::now());
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn mqtt_3_2_0_1_a_second_connack_is_a_violation() {
    let now = Instant::now();
    let mut c = client(10);
    c.connected(false, now);
    let err = c
        .handle_packet(Packet::from(ConnAck::new(ReasonCode::Success)), now)
        .unwrap_err();
    assert!(matches!(err, ClientClose::Violation { .. }));
    let err = c.handle_packet(Packet::PingReq, now).unwrap_err();
    assert!(matches!(err, ClientClose::Violation { .. }));
}

#[test]
fn mqtt_2_3_1_2_packet_ids_in_use_are_skipped_across_wrap() {
    let now = Instant::now();
    let mut c = client(u16::MAX);
    c.connected(false, now);
    c.publish(msg("held"), QoS::AtLeastOnce, 0);
    assert_eq!(out(&mut c), ["PUBLISH 1 q1 \"held\""]);
    // Go round the whole identifier space while id 1 stays in flight.
    for i in 1..u16::MAX {
        c.publish(msg("x"), QoS::AtLeastOnce, u32::from(i));
        let sent = out(&mut c);
        let id = match c.inflight() {
            2 => sent[0].split(' ').nth(1).unwrap().parse::<u16>().unwrap(),
            n => panic!("{n} in flight"),
        };
        assert_ne!(id, 1);
        c.handle_packet(Packet::PubAck(PubAck::new(pid(id))), now)
            .unwrap();
    }
    c.publish(msg("x"), QoS::AtLeastOnce, 99);
    assert_eq!(out(&mut c), ["PUBLISH 2 q1 \"x\""]);
}

#[test]
fn abandon_returns_every_open_token() {
    let now = Instant::now();
    let mut c = client(1);
    c.connected(false, now);
    c.publish(msg("a"), QoS::AtLeastOnce, 1);
    c.publish(msg("b"), QoS::AtLeastOnce, 2);
    c.subscribe(
        vec![sub("a", QoS::AtMostOnce)],
        SubscribeProperties::default(),
        3,
    );
    c.unsubscribe(
        vec![TopicFilter::try_from("a").unwrap()],
        UnsubscribeProperties::default(),
        4,
    );
    c.publish(msg("c"), QoS::AtMostOnce, 5);
    let mut tokens = c.abandon();
    tokens.sort_unstable();
    assert_eq!(tokens, [1, 2, 3, 4, 5]);
    assert!(c.is_idle());
}

/// One step of the lossy-link model.
#[derive(Debug, Clone)]
enum Step {
    /// The client asks to publish at this QoS (0, 1 or 2).
    Publish(u8),
    /// Up to this many packets travel from client to server.
    ToServer(u8),
    /// Up to this many packets travel from server to client.
    ToClient(u8),
    /// The connection drops: whatever is in transit is lost.
    Drop,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..3).prop_map(Step::Publish),
        3 => (1u8..6).prop_map(Step::ToServer),
        3 => (1u8..6).prop_map(Step::ToClient),
        1 => Just(Step::Drop),
    ]
}

/// The server side of the model: our own server session machine for the publisher, and a
/// count of what it routed.
struct Server {
    session: Session,
    routed: HashMap<Bytes, usize>,
}

impl Server {
    fn handle(&mut self, packet: Packet, now: Instant) -> Vec<Packet> {
        if let Ok(Some(Action::Route(p))) = self.session.handle_packet(packet, now) {
            *self.routed.entry(p.payload.clone()).or_default() += 1;
        }
        self.session
            .take_outbox()
            .into_iter()
            .map(|o| match o {
                Outgoing::Packet(p) => p,
                Outgoing::Publish { .. } => unreachable!("nothing is delivered to the publisher"),
            })
            .collect()
    }
}

proptest! {
    /// Through any pattern of dropped connections, with the server keeping the session: every
    /// request completes at most once; every message whose publish completed was routed;
    /// QoS 1 messages are routed at least once and QoS 2 messages exactly once when complete
    /// (and never twice at any point) [MQTT-4.3.2, MQTT-4.3.3, MQTT-4.4.0-1].
    #[test]
    fn exactly_once_through_a_lossy_link(steps in prop::collection::vec(step(), 1..200)) {
        let now = Instant::now();
        let mut c: ClientSession<u32> = ClientSession::new(
            ProtocolVersion::V3_1_1,
            None,
            ClientLimits { max_inflight: 3, ..ClientLimits::default() },
        );
        let mut server = Server {
            session: Session::new(MqttString::try_from("m").unwrap(), true, Limits::default()),
            routed: HashMap::new(),
        };
        let attach = Attach::new(ProtocolVersion::V3_1_1, 0, None);
        server.session.attach(attach.clone(), now);
        c.connected(true, now);
        let mut to_server: Vec<Packet> = Vec::new();
        let mut to_client: Vec<Packet> = Vec::new();
        let mut qos_of: HashMap<u32, u8> = HashMap::new();
        let mut done: HashMap<u32, usize> = HashMap::new();
        let mut next = 0u32;
        let mut connected = true;
        // A quiet tail long enough for everything to finish, however much is queued: a QoS 2
        // message takes two round trips, and the window lets 3 through at a time.
        let publishes = steps.iter().filter(|s| matches!(s, Step::Publish(_))).count();
        let tail = 2 * (2 * publishes + 20);
        for step in steps.into_iter().chain([Step::ToServer(255), Step::ToClient(255)].into_iter().cycle().take(tail)) {
            match step {
                Step::Publish(q) => {
                    let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][usize::from(q)];
                    c.publish(msg(&next.to_string()), qos, next);
                    qos_of.insert(next, q);
                    next += 1;
                }
                Step::ToServer(n) if connected => {
                    while let Some(p) = c.poll_transmit() { to_server.push(p); }
                    let n = usize::from(n).min(to_server.len());
                    for p in to_server.drain(..n).collect::<Vec<_>>() {
                        to_client.extend(server.handle(p, now));
                    }
                }
                Step::ToClient(n) if connected => {
                    let n = usize::from(n).min(to_client.len());
                    for p in to_client.drain(..n).collect::<Vec<_>>() {
                        c.handle_packet(p, now).unwrap();
                    }
                }
                Step::Drop | Step::ToServer(_) | Step::ToClient(_) => {
                    // Dropped, or reconnecting after a drop.
                    if connected {
                        connected = false;
                        to_server.clear();
                        to_client.clear();
                        c.disconnected();
                        let _ = server.session.detach(false);
                    } else {
                        connected = true;
                        server.session.attach(attach.clone(), now);
                        to_client.extend(server.session.take_outbox().into_iter().map(|o| match o {
                            Outgoing::Packet(p) => p,
                            Outgoing::Publish { .. } => unreachable!(),
                        }));
                        c.connected(true, now);
                    }
                }
            }
            while let Some(e) = c.poll_event() {
                if let ClientEvent::Published { token, result } = e {
                    prop_assert!(result.is_ok());
                    *done.entry(token).or_default() += 1;
                }
            }
            for (payload, count) in &server.routed {
                let token: u32 = std::str::from_utf8(payload).unwrap().parse().unwrap();
                if qos_of[&token] == 2 {
                    prop_assert!(*count <= 1, "QoS 2 message {} routed {} times", token, count);
                }
            }
        }
        // The quiet tail lets everything finish.
        prop_assert_eq!(done.len(), next as usize, "requests left open");
        for (token, count) in &done {
            prop_assert_eq!(*count, 1, "request {} completed {} times", token, count);
            let routed = server.routed.get(&Bytes::from(token.to_string())).copied().unwrap_or(0);
            if qos_of[token] > 0 {
                prop_assert!(routed >= 1, "completed message {} never routed", token);
            }
        }
    }
}

/// MQTT-3.3.2-10 / MQTT-3.3.2-11 / MQTT-3.3.2-7: the client resolves the server's topic aliases
/// up to its Topic Alias Maximum (events carry the topic name), refuses one above it or one
/// used before it was set, and forgets them with the connection.
#[test]
fn v5_mqtt_3_3_2_10_server_topic_aliases_are_resolved() {
    let now = Instant::now();
    let mut c: ClientSession<u32> = ClientSession::new(
        ProtocolVersion::V5,
        None,
        ClientLimits {
            topic_alias_maximum: 2,
            ..ClientLimits::default()
        },
    );
    c.connected(false, now);
    let aliased = |topic: &str, alias: u16| {
        let mut p = Publish::new(
            if topic.is_empty() {
                TopicName::empty()
            } else {
                TopicName::try_from(topic).unwrap()
            },
            Bytes::from_static(b"m"),
        );
        p.properties_mut().topic_alias = std::num::NonZeroU16::new(alias);
        Packet::Publish(p)
    };
    c.handle_packet(aliased("a/b", 2), now).unwrap();
    c.handle_packet(aliased("", 2), now).unwrap();
    let mut topics = Vec::new();
    while let Some(e) = c.poll_event() {
        if let ClientEvent::Message(m) = e {
            topics.push(m.topic.to_string());
        }
    }
    assert_eq!(topics, ["a/b", "a/b"]);
    assert!(
        c.handle_packet(aliased("x", 3), now).is_err(),
        "alias above the maximum"
    );
    c.disconnected();
    c.connected(false, now);
    assert!(
        c.handle_packet(aliased("", 2), now).is_err(),
        "an alias of the previous connection"
    );
}
