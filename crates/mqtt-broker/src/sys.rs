//! The `$SYS/broker/...` topics, with Mosquitto's names, so that tools written for Mosquitto
//! read them unchanged.

use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::core::Broker;

/// The broker's version string, as `$SYS/broker/version` shows it.
pub const VERSION: &str = concat!("mqtt-broker ", env!("CARGO_PKG_VERSION"));

/// The topics and their current values.
pub fn values(broker: &Broker, now: Instant) -> Vec<(&'static str, String)> {
    let s = &broker.stats;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed).to_string();
    let connected = s.connected.load(Ordering::Relaxed);
    let total = broker.session_count();
    let mut values = vec![
        ("$SYS/broker/version", VERSION.to_string()),
        (
            "$SYS/broker/uptime",
            format!(
                "{} seconds",
                now.saturating_duration_since(broker.started()).as_secs()
            ),
        ),
        ("$SYS/broker/clients/connected", connected.to_string()),
        ("$SYS/broker/clients/active", connected.to_string()),
        (
            "$SYS/broker/clients/disconnected",
            total.saturating_sub(connected).to_string(),
        ),
        ("$SYS/broker/clients/total", total.to_string()),
        (
            "$SYS/broker/clients/maximum",
            s.max_connected.load(Ordering::Relaxed).to_string(),
        ),
        ("$SYS/broker/messages/received", get(&s.messages_received)),
        ("$SYS/broker/messages/sent", get(&s.messages_sent)),
        ("$SYS/broker/bytes/received", get(&s.bytes_received)),
        ("$SYS/broker/bytes/sent", get(&s.bytes_sent)),
        (
            "$SYS/broker/publish/messages/received",
            get(&s.publish_received),
        ),
        ("$SYS/broker/publish/messages/sent", get(&s.publish_sent)),
        (
            "$SYS/broker/publish/messages/dropped",
            get(&s.publish_dropped),
        ),
        (
            "$SYS/broker/subscriptions/count",
            broker.subscription_count().to_string(),
        ),
        (
            "$SYS/broker/retained messages/count",
            broker.retained_count().to_string(),
        ),
    ];
    if let Some(rss) = resident_bytes() {
        values.push(("$SYS/broker/heap/current", rss.to_string()));
    }
    values
}

/// The process's resident memory in bytes, where the system tells it (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
