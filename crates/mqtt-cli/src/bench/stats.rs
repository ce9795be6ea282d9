//! Counters the tasks update for the progress line, and latency histograms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency recorded, in microseconds (one hour); longer ones are recorded as this.
const MAX_US: u64 = 3_600_000_000;

/// A task's running totals. Each task has its own (on its own cache line), writes it with
/// plain stores and the progress line only reads it: no contention on the hot path.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Counters {
    /// Messages handed to the client.
    pub(crate) sent: AtomicU64,
    /// Messages acknowledged (QoS 0: written).
    pub(crate) acked: AtomicU64,
    /// Messages received.
    pub(crate) received: AtomicU64,
    /// Failed publishes and lost connections.
    pub(crate) errors: AtomicU64,
}

impl Counters {
    /// Stores a running total (only the owning task writes).
    pub(crate) fn set(counter: &AtomicU64, value: u64) {
        counter.store(value, Ordering::Relaxed);
    }

    /// Reads a running total.
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Connection totals, shared by every task (each connection touches them once or twice).
#[derive(Debug, Default)]
pub(crate) struct Connections {
    /// Connections accepted (and, for subscribers, subscribed).
    pub(crate) up: AtomicU64,
    /// Connections that failed.
    pub(crate) failed: AtomicU64,
}

/// An empty latency histogram in microseconds, 3 significant digits, that grows as needed
/// (small while latencies are small: many tasks each have one).
pub(crate) fn histogram() -> Histogram<u64> {
    // 3 significant digits is within the supported range: this cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new(3).expect("3 significant digits")
}

/// Records a latency.
pub(crate) fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let us = u64::try_from(latency.as_micros()).unwrap_or(MAX_US);
    record_us(histogram, us);
}

/// Records a latency in microseconds.
pub(crate) fn record_us(histogram: &mut Histogram<u64>, us: u64) {
    // It grows as needed (and the value is bounded), so recording cannot fail.
    let _ = histogram.record(us.clamp(1, MAX_US));
}

/// Adds `from` into `into`.
pub(crate) fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    // Both grow as needed, so adding cannot run out of range.
    let _ = into.add(from);
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// The smallest.
    pub min_us: u64,
    /// The mean.
    pub mean_us: f64,
    /// The median.
    pub p50_us: u64,
    /// The 90th percentile.
    pub p90_us: u64,
    /// The 99th percentile.
    pub p99_us: u64,
    /// The 99.9th percentile.
    pub p999_us: u64,
    /// The largest.
    pub max_us: u64,
}

impl Latency {
    /// The percentiles of a histogram; `None` when it is empty.
    pub(crate) fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        Some(Self {
            count: histogram.len(),
            min_us: histogram.min(),
            mean_us: (histogram.mean() * 10.0).round() / 10.0,
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_microseconds() {
        let mut h = histogram();
        assert_eq!(Latency::of(&h), None);
        for us in 1..=1000 {
            record(&mut h, Duration::from_micros(us));
        }
        let mut other = histogram();
        record_us(&mut other, 50_000_000);
        merge(&mut h, &other);
        let l = Latency::of(&h).unwrap();
        assert_eq!(l.count, 1001);
        assert_eq!(l.min_us, 1);
        assert!((500..=501).contains(&l.p50_us), "{l:?}");
        assert!((990..=1000).contains(&l.p99_us), "{l:?}");
        assert!(l.max_us >= 50_000_000 && l.max_us < 50_100_000, "{l:?}");
        // Zero is recorded as the resolution, one microsecond.
        record(&mut h, Duration::ZERO);
        assert_eq!(Latency::of(&h).unwrap().min_us, 1);
    }
}
