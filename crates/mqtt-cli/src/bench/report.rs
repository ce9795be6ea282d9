//! The [`Summary`] of a run, and how it is printed for people.

use std::io::{self, Write};

use serde::Serialize;

use super::stats::Latency;
use super::{Kind, Plan, protocol_name};

/// What a benchmark did: `mqtt bench --json` prints it as one JSON object.
///
/// Rates are messages per second over the publishing phase (from the moment every client is
/// connected); latencies are in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The scenario: `conn`, `pub`, `sub`, `fanin`, `fanout`, `pairs` or `latency`.
    pub scenario: &'static str,
    /// The broker, as `host:port`.
    pub broker: String,
    /// The MQTT version: `mqttv31`, `mqttv311` or `mqttv5`.
    pub protocol: &'static str,
    /// The QoS asked for.
    pub qos: u8,
    /// The payload size.
    pub payload_bytes: usize,
    /// Publishing clients.
    pub publishers: usize,
    /// Subscribing clients.
    pub subscribers: usize,
    /// How the connections went.
    pub connections: ConnectionSummary,
    /// From starting to connect to CONNACK (for subscribers, not including the SUBSCRIBE).
    pub connect_latency: Option<Latency>,
    /// Seconds from the first connection started to the last one settled (connected or
    /// failed).
    pub connect_secs: f64,
    /// Connections established per second over `connect_secs`.
    pub connect_rate: f64,
    /// Seconds from the start of the run (every client connected) to the last publisher
    /// stopping (`conn`: the holding time; `sub`: the receiving time).
    pub elapsed_secs: f64,
    /// Messages handed to the client library.
    pub sent: u64,
    /// Messages acknowledged by the broker (PUBACK at QoS 1, PUBCOMP at QoS 2; at QoS 0,
    /// written to the connection).
    pub acked: u64,
    /// Publishes that failed or were not acknowledged in time.
    pub publish_errors: u64,
    /// `sent` per second of `elapsed_secs`.
    pub send_rate: f64,
    /// From handing a message to the client to its acknowledgement.
    pub ack_latency: Option<Latency>,
    /// Messages received by all subscribers.
    pub received: u64,
    /// `received` per second, from the start of the run to the last message received.
    pub receive_rate: f64,
    /// End to end, from the publisher making the message to a subscriber receiving it (wall
    /// clocks: across processes, only as good as their agreement).
    pub latency: Option<Latency>,
    /// The delivery check of `fanin`, `fanout`, `pairs` and `latency`.
    pub delivery: Option<DeliverySummary>,
    /// Why the run failed; empty when it did not.
    pub failures: Vec<String>,
    /// Whether the run succeeded: every connection up, every publish acknowledged, no QoS 1/2
    /// message lost, no QoS 2 message doubled.
    pub ok: bool,
}

/// Connection counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConnectionSummary {
    /// Connections started.
    pub attempted: u64,
    /// Connections accepted (subscribers: and subscribed).
    pub connected: u64,
    /// Connections that failed (refused, unreachable, timed out, subscription refused).
    pub failed: u64,
    /// Connections lost during the run (`conn`, and subscribers).
    pub dropped: u64,
}

/// What the subscribers received of what the publishers sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeliverySummary {
    /// The QoS the messages travelled at: the lower of the publish QoS and the QoS the
    /// broker granted. Losses fail the run from 1, duplicates at 2.
    pub qos: u8,
    /// Messages that should have arrived (each subscriber counts for itself).
    pub expected: u64,
    /// Of those, messages that never arrived.
    pub lost: u64,
    /// Extra copies received (allowed at QoS 0 and 1).
    pub duplicates: u64,
    /// Messages of this run from publishers a subscriber should not have heard.
    pub unexpected: u64,
    /// Messages from elsewhere (another run, another client) on the same topics.
    pub foreign: u64,
}

impl Summary {
    /// An empty summary of `plan`.
    pub(super) fn new(plan: &Plan, publishers: usize, subscribers: usize) -> Self {
        Self {
            scenario: plan.kind.name(),
            broker: plan.broker.clone(),
            protocol: protocol_name(plan.protocol),
            qos: plan.qos as u8,
            payload_bytes: plan.size,
            publishers,
            subscribers,
            connections: ConnectionSummary::default(),
            connect_latency: None,
            connect_secs: 0.0,
            connect_rate: 0.0,
            elapsed_secs: 0.0,
            sent: 0,
            acked: 0,
            publish_errors: 0,
            send_rate: 0.0,
            ack_latency: None,
            received: 0,
            receive_rate: 0.0,
            latency: None,
            delivery: None,
            failures: Vec::new(),
            ok: true,
        }
    }

    fn kind(&self) -> Option<Kind> {
        [
            Kind::Conn,
            Kind::Pub,
            Kind::Sub,
            Kind::Fanin,
            Kind::Fanout,
            Kind::Pairs,
            Kind::Latency,
        ]
        .into_iter()
        .find(|k| k.name() == self.scenario)
    }
}

/// `1 thing`, `2 things`.
fn plural(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// A latency in microseconds, readably.
fn micros(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

fn latency_line(l: &Latency) -> String {
    format!(
        "p50 {}  p99 {}  p99.9 {}  max {}  ({})",
        micros(l.p50_us),
        micros(l.p99_us),
        micros(l.p999_us),
        micros(l.max_us),
        plural(l.count, "sample")
    )
}

/// Writes the summary for people:
///
/// ```text
/// mqtt bench pairs: 10 publishers, 10 subscribers, QoS 1, 32-byte payloads, mqttv311 at 127.0.0.1:1883
/// connections   20 connected, 0 failed, 0 dropped
/// connect       p50 412 µs  p99 1.20 ms  p99.9 1.20 ms  max 1.20 ms  (20 samples)
/// …
/// ```
pub(super) fn write_human(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    let kind = s.kind();
    let mut who = Vec::new();
    if s.publishers > 0 {
        who.push(plural(s.publishers as u64, "publisher"));
    }
    if s.subscribers > 0 {
        who.push(plural(s.subscribers as u64, "subscriber"));
    }
    if kind == Some(Kind::Conn) {
        who.push(plural(s.connections.attempted, "connection"));
    } else {
        who.push(format!("QoS {}", s.qos));
        if s.publishers > 0 {
            who.push(format!("{}-byte payloads", s.payload_bytes));
        }
    }
    writeln!(
        out,
        "mqtt bench {}: {}, {} at {}",
        s.scenario,
        who.join(", "),
        s.protocol,
        s.broker
    )?;
    let c = &s.connections;
    writeln!(
        out,
        "connections   {} connected, {} failed, {} dropped",
        c.connected, c.failed, c.dropped
    )?;
    if let Some(l) = &s.connect_latency {
        writeln!(out, "connect       {}", latency_line(l))?;
    }
    if c.connected > 0 {
        writeln!(
            out,
            "connect rate  {} connections/s ({:.2} s for all)",
            s.connect_rate, s.connect_secs
        )?;
    }
    if kind == Some(Kind::Conn) {
        writeln!(out, "held          {:.2} s", s.elapsed_secs)?;
    }
    if s.publishers > 0 {
        writeln!(
            out,
            "published     {} sent, {} acknowledged, {} errors in {:.2} s: {} msg/s",
            s.sent, s.acked, s.publish_errors, s.elapsed_secs, s.send_rate
        )?;
        if let Some(l) = &s.ack_latency {
            writeln!(out, "ack latency   {}", latency_line(l))?;
        }
    }
    if s.subscribers > 0 {
        writeln!(
            out,
            "received      {}: {} msg/s",
            s.received, s.receive_rate
        )?;
        if let Some(l) = &s.latency {
            writeln!(out, "latency       {}", latency_line(l))?;
        }
    }
    if let Some(d) = &s.delivery {
        let mut line = format!(
            "delivery      QoS {}: {} expected, {} lost, {} duplicates",
            d.qos, d.expected, d.lost, d.duplicates
        );
        if d.unexpected > 0 {
            line.push_str(&format!(", {} unexpected", d.unexpected));
        }
        if d.foreign > 0 {
            line.push_str(&format!(", {} from elsewhere", d.foreign));
        }
        let allowed = match d.qos {
            0 if d.lost > 0 || d.duplicates > 0 => " (allowed at QoS 0)",
            1 if d.duplicates > 0 && d.lost == 0 => " (duplicates allowed at QoS 1)",
            _ => "",
        };
        writeln!(out, "{line}{allowed}")?;
    }
    if s.ok {
        writeln!(out, "result        ok")?;
    } else {
        writeln!(out, "result        FAILED")?;
        for f in &s.failures {
            writeln!(out, "  - {f}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(us: u64) -> Latency {
        Latency {
            count: 1,
            min_us: us,
            mean_us: us as f64,
            p50_us: us,
            p90_us: us,
            p99_us: us,
            p999_us: us,
            max_us: us,
        }
    }

    fn summary() -> Summary {
        Summary {
            scenario: "pairs",
            broker: "127.0.0.1:1883".into(),
            protocol: "mqttv311",
            qos: 1,
            payload_bytes: 32,
            publishers: 1,
            subscribers: 1,
            connections: ConnectionSummary {
                attempted: 2,
                connected: 2,
                failed: 0,
                dropped: 0,
            },
            connect_latency: Some(latency(412)),
            connect_secs: 0.01,
            connect_rate: 900.0,
            elapsed_secs: 2.0,
            sent: 10,
            acked: 10,
            publish_errors: 0,
            send_rate: 5.0,
            ack_latency: Some(latency(1_500)),
            received: 11,
            receive_rate: 5.0,
            latency: Some(latency(2_500_000)),
            delivery: Some(DeliverySummary {
                qos: 1,
                expected: 10,
                lost: 0,
                duplicates: 1,
                unexpected: 0,
                foreign: 0,
            }),
            failures: Vec::new(),
            ok: true,
        }
    }

    fn render(s: &Summary) -> String {
        let mut out = Vec::new();
        write_human(&mut out, s).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn human_summary() {
        let text = render(&summary());
        assert_eq!(
            text.lines().next(),
            Some(
                "mqtt bench pairs: 1 publisher, 1 subscriber, QoS 1, 32-byte payloads, \
                 mqttv311 at 127.0.0.1:1883"
            )
        );
        assert!(text.contains("connect       p50 412 µs"), "{text}");
        assert!(
            text.contains("connect rate  900 connections/s (0.01 s for all)"),
            "{text}"
        );
        assert!(text.contains("ack latency   p50 1.50 ms"), "{text}");
        assert!(text.contains("latency       p50 2.50 s"), "{text}");
        assert!(
            text.contains("1 duplicates (duplicates allowed at QoS 1)"),
            "{text}"
        );
        assert!(text.ends_with("result        ok\n"), "{text}");

        let mut failed = summary();
        failed.ok = false;
        failed.failures = vec!["3 of 10 messages lost at QoS 1".into()];
        let text = render(&failed);
        assert!(
            text.ends_with("result        FAILED\n  - 3 of 10 messages lost at QoS 1\n"),
            "{text}"
        );
    }

    #[test]
    fn json_summary() {
        let json = serde_json::to_value(summary()).unwrap();
        assert_eq!(json["delivery"]["duplicates"], 1);
        assert_eq!(json["latency"]["p999_us"], 2_500_000);
        assert_eq!(json["ok"], true);
    }
}
