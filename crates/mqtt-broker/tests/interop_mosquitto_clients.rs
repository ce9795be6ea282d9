//! Interoperability with the Mosquitto command-line clients (`mosquitto_pub`, `mosquitto_sub`
//! 2.0): each test starts its own broker (ours, or Mosquitto with `MQTT_TEST_BROKER=mosquitto`)
//! and drives it with the clients as a user would.
//!
//! Tests are named after the MQTT 3.1.1 normative statement they check (`mqtt_3_3_1_5_...` for
//! [MQTT-3.3.1-5]), or after the section when the behaviour has no statement of its own.
//!
//! Synchronisation never relies on sleeping: a subscriber runs with `-d`, and the test waits for
//! its "received SUBACK" line before publishing. Subscribers end by themselves (`-C count`,
//! bounded by `-W secs`), and every process runs under a timeout. Where a test checks that
//! something is *not* delivered, it publishes a "fence" message afterwards on a topic the
//! subscriber matches, and checks that the fence is the first (or only) thing that arrives.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Background, Broker, describe, run_with_timeout};

/// How long a short-lived client (`mosquitto_pub`, `mosquitto_sub -E`) may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// `mosquitto_sub -W`: the subscriber gives up after this many seconds without finishing.
const SUB_GIVE_UP_SECS: u32 = 20;

/// How long the test waits for a background subscriber to finish (beyond its own `-W`).
const SUB_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for a subscriber's SUBACK.
const SUBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// `mosquitto_sub -F`: one line per message, `MSG|qos|retain|topic|payload`.
const FORMAT: &str = "MSG|%q|%r|%t|%p";

/// One message as a subscriber printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Msg {
    /// The QoS the message was delivered with.
    qos: u8,
    /// The RETAIN flag it was delivered with.
    retain: bool,
    /// Its topic.
    topic: String,
    /// Its payload (UTF-8 text in these tests).
    payload: String,
}

impl Msg {
    /// Parses a `FORMAT` line, `None` for any other line (debug output).
    fn parse(line: &str) -> Option<Self> {
        let mut parts = line.strip_prefix("MSG|")?.splitn(4, '|');
        let qos = parts.next()?.parse().ok()?;
        let retain = match parts.next()? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        Some(Self {
            qos,
            retain,
            topic: parts.next()?.to_owned(),
            payload: parts.next()?.to_owned(),
        })
    }

    /// The message `payload` on `topic`, delivered at `qos` with RETAIN 0.
    fn live(qos: u8, topic: &str, payload: &str) -> Self {
        Self {
            qos,
            retain: false,
            topic: topic.to_owned(),
            payload: payload.to_owned(),
        }
    }
}

/// A `mosquitto` client command aimed at `broker`.
fn client(program: &str, broker: &Broker) -> Command {
    let mut command = Command::new(program);
    command
        .args(["-h", "127.0.0.1", "-p"])
        .arg(broker.port().to_string());
    command
}

/// Like [`client`], but with line-buffered standard output (`stdbuf -oL`, which then executes
/// the client in its own process): a piped client otherwise holds its lines back until it exits,
/// and the test could not see the SUBACK as it happens.
fn line_buffered_client(program: &str, broker: &Broker) -> Command {
    let mut command = Command::new("stdbuf");
    command
        .args(["-oL", program, "-h", "127.0.0.1", "-p"])
        .arg(broker.port().to_string());
    command
}

/// Runs `mosquitto_pub <args>` with debug output to completion and fails the test unless it
/// succeeds; returns its output (stdout: the debug lines).
fn publish(broker: &Broker, args: &[&str]) -> String {
    let output = run_with_timeout(
        client("mosquitto_pub", broker).arg("-d").args(args),
        CLIENT_TIMEOUT,
    );
    assert!(
        output.status.success(),
        "mosquitto_pub {args:?} failed\n{}",
        describe(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A `mosquitto_sub` running in the background with debug output (`-d`) and one line per
/// message (`-F`).
struct Sub {
    /// The process and its output.
    process: Background,
}

impl Sub {
    /// Starts `mosquitto_sub <args>`; `args` should include `-C count`, so that it ends once it
    /// has what the test expects (it gives up after `SUB_GIVE_UP_SECS` otherwise).
    fn start(broker: &Broker, args: &[&str]) -> Self {
        let process = Background::spawn(
            line_buffered_client("mosquitto_sub", broker)
                .args(["-d", "-F", FORMAT, "-W"])
                .arg(SUB_GIVE_UP_SECS.to_string())
                .args(args),
        );
        Self { process }
    }

    /// Starts `mosquitto_sub <args>` and waits until the broker has acknowledged the
    /// subscription, so that anything published from now on matches it.
    fn subscribed(broker: &Broker, args: &[&str]) -> Self {
        let mut sub = Self::start(broker, args);
        sub.wait_suback();
        sub
    }

    /// Waits for the SUBACK in the debug output.
    fn wait_suback(&mut self) {
        self.process
            .wait_for_line("a SUBACK", SUBACK_TIMEOUT, |line| {
                line.contains("received SUBACK")
            });
    }

    /// Waits for the subscriber to end by itself, checks it succeeded (it got its `-C` messages
    /// in time), and returns the messages and the whole debug output.
    fn finish(mut self) -> (Vec<Msg>, String) {
        let (status, lines) = self.process.wait(SUB_TIMEOUT);
        assert!(
            status.success(),
            "mosquitto_sub did not get its messages ({status})\n{}",
            self.process.transcript()
        );
        let messages = lines.iter().filter_map(|line| Msg::parse(line)).collect();
        (messages, lines.join("\n"))
    }

    /// Kills the subscriber with SIGKILL: its connection ends without a DISCONNECT.
    fn kill(&mut self) {
        self.process.kill();
    }
}

/// Publishes three messages at `pub_qos` to a subscriber at `sub_qos` and checks they arrive
/// with QoS `min(pub_qos, sub_qos)` and that each side ran the acknowledgement flow of its QoS
/// (from the clients' debug output).
fn check_qos_flow(pub_qos: u8, sub_qos: u8) {
    let broker = Broker::start();
    let topic = format!("interop/qos/{pub_qos}-{sub_qos}");
    let delivered = pub_qos.min(sub_qos);
    let sub = Sub::subscribed(
        &broker,
        &["-q", &sub_qos.to_string(), "-t", &topic, "-C", "3"],
    );
    let payloads = ["first", "second", "third"];
    for payload in payloads {
        let debug = publish(
            &broker,
            &["-q", &pub_qos.to_string(), "-t", &topic, "-m", payload],
        );
        let expected: &[&str] = match pub_qos {
            0 => &[],
            1 => &["received PUBACK"],
            _ => &["received PUBREC", "sending PUBREL", "received PUBCOMP"],
        };
        for step in expected {
            assert!(
                debug.contains(step),
                "QoS {pub_qos} publisher: no `{step}` in\n{debug}"
            );
        }
    }
    let (mut messages, debug) = sub.finish();
    if delivered == 0 {
        // QoS 0 messages from three connections: the order between them is not guaranteed.
        messages.sort_by(|a, b| a.payload.cmp(&b.payload));
    }
    let mut expected: Vec<Msg> = payloads
        .iter()
        .map(|payload| Msg::live(delivered, &topic, payload))
        .collect();
    if delivered == 0 {
        expected.sort_by(|a, b| a.payload.cmp(&b.payload));
    }
    assert_eq!(messages, expected, "subscriber output:\n{debug}");
    let subscriber_steps: &[&str] = match delivered {
        0 => &[],
        1 => &["sending PUBACK"],
        _ => &["sending PUBREC", "received PUBREL", "sending PUBCOMP"],
    };
    for step in subscriber_steps {
        assert_eq!(
            debug.matches(step).count(),
            3,
            "QoS {delivered} subscriber: expected `{step}` once per message in\n{debug}"
        );
    }
}

/// [MQTT-4.3.1] QoS 0, at most once: a QoS 0 publish reaches a QoS 0 subscriber, at QoS 0.
#[test]
fn mqtt_4_3_1_qos0_publish_is_delivered_at_qos0() {
    check_qos_flow(0, 0);
}

/// [MQTT-4.3.2-2] The broker acknowledges a QoS 1 publish with PUBACK and delivers it to a
/// QoS 1 subscriber at QoS 1 (which acknowledges it in turn).
#[test]
fn mqtt_4_3_2_2_qos1_publish_is_acknowledged_and_delivered_at_qos1() {
    check_qos_flow(1, 1);
}

/// [MQTT-4.3.3-2] The broker runs the QoS 2 handshake with the publisher (PUBREC, PUBREL,
/// PUBCOMP) and with a QoS 2 subscriber, which gets each message once, at QoS 2.
#[test]
fn mqtt_4_3_3_2_qos2_publish_completes_handshake_and_is_delivered_at_qos2() {
    check_qos_flow(2, 2);
}

/// [MQTT-3.8.4-6] A message is delivered at the minimum of its published QoS and the granted
/// subscription QoS: QoS 2 to a QoS 1 subscription arrives at QoS 1, QoS 1 to a QoS 2 one stays
/// at QoS 1.
#[test]
fn mqtt_3_8_4_6_delivery_qos_is_minimum_of_publish_and_subscription() {
    check_qos_flow(2, 1);
    check_qos_flow(1, 2);
}

/// [MQTT-3.3.1-5] A retained message is stored and delivered to a client that subscribes later,
/// with RETAIN set ([MQTT-3.3.1-8]); a subscriber that was already there gets it with RETAIN
/// cleared ([MQTT-3.3.1-9]).
#[test]
fn mqtt_3_3_1_5_retained_message_is_delivered_to_new_subscriber() {
    let broker = Broker::start();
    let topic = "interop/retained/state";
    let early = Sub::subscribed(&broker, &["-q", "1", "-t", topic, "-C", "1"]);
    publish(&broker, &["-q", "1", "-r", "-t", topic, "-m", "on"]);
    let (messages, debug) = early.finish();
    assert_eq!(
        messages,
        [Msg::live(1, topic, "on")],
        "an existing subscriber gets the message live, RETAIN 0:\n{debug}"
    );

    let late = Sub::start(&broker, &["-q", "1", "-t", topic, "-C", "1"]);
    let (messages, debug) = late.finish();
    assert_eq!(
        messages,
        [Msg {
            retain: true,
            ..Msg::live(1, topic, "on")
        }],
        "a new subscriber gets the retained message, RETAIN 1:\n{debug}"
    );
}

/// [MQTT-3.3.1-10] A retained PUBLISH with an empty payload removes the retained message of
/// its topic (a later subscriber gets nothing retained, [MQTT-3.3.1-11]) and is delivered as
/// normal to existing subscribers.
#[test]
fn mqtt_3_3_1_10_empty_retained_payload_clears_retained_message() {
    let broker = Broker::start();
    let topic = "interop/retained/cleared";
    publish(&broker, &["-q", "1", "-r", "-t", topic, "-m", "stale"]);

    let existing = Sub::subscribed(&broker, &["-q", "1", "-t", topic, "-C", "2"]);
    publish(&broker, &["-q", "1", "-r", "-n", "-t", topic]);
    publish(&broker, &["-q", "1", "-t", topic, "-m", "after-clear"]);
    let (messages, debug) = existing.finish();
    assert_eq!(
        messages,
        [
            Msg {
                retain: true,
                ..Msg::live(1, topic, "stale")
            },
            Msg::live(1, topic, ""),
        ],
        "the subscriber gets the old retained message, then the empty one live:\n{debug}"
    );

    // Nothing retained is left: the first message a new subscriber sees is the fence.
    let late = Sub::subscribed(&broker, &["-q", "1", "-t", topic, "-C", "1"]);
    publish(&broker, &["-q", "1", "-t", topic, "-m", "fence"]);
    let (messages, debug) = late.finish();
    assert_eq!(
        messages,
        [Msg::live(1, topic, "fence")],
        "no retained message may be delivered after it was cleared:\n{debug}"
    );
}

/// [MQTT-3.1.2-8] The will of a client whose connection ends without DISCONNECT (its process is
/// killed with SIGKILL) is published to the will topic.
#[test]
fn mqtt_3_1_2_8_will_is_published_when_client_is_killed() {
    let broker = Broker::start();
    let will_topic = "interop/will/killed";
    let observer = Sub::subscribed(&broker, &["-q", "1", "-t", will_topic, "-C", "1"]);
    let mut victim = Sub::subscribed(
        &broker,
        &[
            "-i",
            "interop-will-victim",
            "-t",
            "interop/will/idle",
            "--will-topic",
            will_topic,
            "--will-payload",
            "victim died",
            "--will-qos",
            "1",
        ],
    );
    victim.kill();
    let (messages, debug) = observer.finish();
    assert_eq!(
        messages,
        [Msg::live(1, will_topic, "victim died")],
        "observer output:\n{debug}"
    );
}

/// [MQTT-3.14.4-3] A client that ends with DISCONNECT has its will discarded: it is never
/// published (the fence published afterwards is the first thing the observer gets).
#[test]
fn mqtt_3_14_4_3_will_is_discarded_on_clean_disconnect() {
    let broker = Broker::start();
    let will_topic = "interop/will/clean";
    let observer = Sub::subscribed(&broker, &["-q", "1", "-t", will_topic, "-C", "1"]);
    // mosquitto_pub connects with the will, publishes, and ends with DISCONNECT.
    publish(
        &broker,
        &[
            "-q",
            "1",
            "-t",
            "interop/will/other",
            "-m",
            "bye",
            "--will-topic",
            will_topic,
            "--will-payload",
            "must not be published",
        ],
    );
    publish(&broker, &["-q", "1", "-t", will_topic, "-m", "fence"]);
    let (messages, debug) = observer.finish();
    assert_eq!(
        messages,
        [Msg::live(1, will_topic, "fence")],
        "observer output:\n{debug}"
    );
}

/// [MQTT-3.1.2-5] A persistent session (clean session 0) keeps its subscription while the
/// client is offline and queues the QoS 1 messages that match it; they are delivered, in order,
/// when the client comes back ([MQTT-3.1.2-4]).
#[test]
fn mqtt_3_1_2_5_offline_qos1_messages_are_delivered_on_reconnect() {
    let broker = Broker::start();
    let topic = "interop/session/queued";
    let id = "interop-persistent";
    // Subscribe with a persistent session and leave as soon as the SUBACK is in (-E).
    let output = run_with_timeout(
        client("mosquitto_sub", &broker).args(["-d", "-c", "-i", id, "-q", "1", "-t", topic, "-E"]),
        CLIENT_TIMEOUT,
    );
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("SUBACK"),
        "the persistent subscription failed\n{}",
        describe(&output)
    );
    for payload in ["offline-1", "offline-2", "offline-3"] {
        publish(&broker, &["-q", "1", "-t", topic, "-m", payload]);
    }
    let back = Sub::start(
        &broker,
        &["-c", "-i", id, "-q", "1", "-t", topic, "-C", "3"],
    );
    let (messages, debug) = back.finish();
    assert_eq!(
        messages,
        [
            Msg::live(1, topic, "offline-1"),
            Msg::live(1, topic, "offline-2"),
            Msg::live(1, topic, "offline-3"),
        ],
        "the reconnected client gets the queued messages in order:\n{debug}"
    );
}

/// MQTT 3.1 (`MQIsdp`, level 3) and MQTT 3.1.1 (`MQTT`, level 4) clients share one broker: each
/// version receives what the other publishes, at QoS 1.
#[test]
fn mqtt_v31_and_v311_clients_exchange_messages() {
    let broker = Broker::start();
    for (sub_version, pub_version) in [("mqttv31", "mqttv311"), ("mqttv311", "mqttv31")] {
        let topic = format!("interop/version/{sub_version}");
        let payload = format!("from {pub_version}");
        let sub = Sub::subscribed(
            &broker,
            &["-V", sub_version, "-q", "1", "-t", &topic, "-C", "1"],
        );
        publish(
            &broker,
            &["-V", pub_version, "-q", "1", "-t", &topic, "-m", &payload],
        );
        let (messages, debug) = sub.finish();
        assert_eq!(
            messages,
            [Msg::live(1, &topic, &payload)],
            "{sub_version} subscriber, {pub_version} publisher:\n{debug}"
        );
    }
}

/// [MQTT 4.7.1.2, 4.7.1.3] `+` matches exactly one level; `#` matches its parent level and any
/// number of levels below. Non-matching topics are published in between: only the matching
/// ones arrive, in order.
#[test]
fn mqtt_4_7_1_wildcards_match_single_and_multiple_levels() {
    let broker = Broker::start();
    let matching = [
        "sport/tennis/score",
        "sport/golf/score",
        "home",
        "home/kitchen",
        "home/kitchen/fridge/temp",
    ];
    let not_matching = [
        "sport/score",
        "sport/tennis/player/score",
        "sport/tennis",
        "homes/kitchen",
        "house",
    ];
    let count = matching.len().to_string();
    let sub = Sub::subscribed(
        &broker,
        &[
            "-q",
            "1",
            "-t",
            "sport/+/score",
            "-t",
            "home/#",
            "-C",
            &count,
        ],
    );
    // Interleave: each matching topic follows a non-matching one, so a wrongly delivered
    // message would take a matching one's place in the first `count` messages.
    let mut expected = Vec::new();
    for (index, topic) in matching.iter().enumerate() {
        if let Some(other) = not_matching.get(index) {
            publish(&broker, &["-q", "1", "-t", other, "-m", "no match"]);
        }
        publish(&broker, &["-q", "1", "-t", topic, "-m", "match"]);
        expected.push(Msg::live(1, topic, "match"));
    }
    let (messages, debug) = sub.finish();
    assert_eq!(messages, expected, "subscriber output:\n{debug}");
}

/// [MQTT-4.7.2-1] Wildcard filters at the start (`#`, `+/...`) do not match topics beginning
/// with `$`: a `#` subscriber gets neither `$SYS` messages nor retained `$` topics, so the first
/// message it sees is the one published on an ordinary topic.
#[test]
fn mqtt_4_7_2_1_wildcards_do_not_match_dollar_topics() {
    let broker = Broker::start();
    let sub = Sub::subscribed(
        &broker,
        &["-q", "1", "-t", "#", "-t", "+/version", "-C", "1"],
    );
    publish(&broker, &["-q", "1", "-t", "interop/plain", "-m", "fence"]);
    let (messages, debug) = sub.finish();
    assert_eq!(
        messages,
        [Msg::live(1, "interop/plain", "fence")],
        "subscriber output:\n{debug}"
    );
}

/// The broker publishes its version on `$SYS/broker/version` as a retained message, so a client
/// subscribing to it gets it at once (as from Mosquitto: "mosquitto version 2.0.11").
#[test]
fn sys_broker_version_is_retained_and_readable() {
    let broker = Broker::start();
    let sub = Sub::start(&broker, &["-t", "$SYS/broker/version", "-C", "1"]);
    let (messages, debug) = sub.finish();
    let [message] = messages.as_slice() else {
        panic!("expected one message:\n{debug}");
    };
    assert_eq!(message.topic, "$SYS/broker/version", "{debug}");
    assert!(message.retain, "the version is retained:\n{debug}");
    assert!(
        !message.payload.trim().is_empty(),
        "the version is not empty:\n{debug}"
    );
    println!("{:?} says: {}", broker.kind(), message.payload);
}
