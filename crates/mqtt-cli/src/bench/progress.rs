//! The live progress line on stderr: a spinner with the connections and the message rates,
//! redrawn every 250 ms. `indicatif` hides it when stderr is not a terminal.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::stats::{Connections, Counters};

/// How often the line is redrawn.
const PERIOD: Duration = Duration::from_millis(250);

/// The progress line, until [`Progress::finish`].
#[derive(Debug)]
pub(crate) struct Progress {
    bar: ProgressBar,
    ticker: JoinHandle<()>,
}

impl Progress {
    /// Starts the line: `connections` of `expected` clients and the sum of `counters`.
    pub(crate) fn start(
        quiet: bool,
        expected: u64,
        connections: Arc<Connections>,
        counters: Arc<[Arc<Counters>]>,
    ) -> Self {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}") {
            bar.set_style(style);
        }
        let ticker = tokio::spawn(tick(bar.clone(), expected, connections, counters));
        Self { bar, ticker }
    }

    /// Removes the line.
    pub(crate) fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

#[derive(Default, Clone, Copy)]
struct Totals {
    sent: u64,
    acked: u64,
    received: u64,
    errors: u64,
}

impl Totals {
    fn of(counters: &[Arc<Counters>]) -> Self {
        let mut t = Self::default();
        for c in counters {
            t.sent += Counters::get(&c.sent);
            t.acked += Counters::get(&c.acked);
            t.received += Counters::get(&c.received);
            t.errors += Counters::get(&c.errors);
        }
        t
    }
}

async fn tick(
    bar: ProgressBar,
    expected: u64,
    connections: Arc<Connections>,
    counters: Arc<[Arc<Counters>]>,
) {
    let mut interval = tokio::time::interval(PERIOD);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last = (Instant::now(), Totals::default());
    loop {
        interval.tick().await;
        let now = Instant::now();
        let totals = Totals::of(&counters);
        let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
        let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
        let up = Counters::get(&connections.up);
        let failed = Counters::get(&connections.failed);
        let mut message = format!("conns {up}/{expected}");
        if failed > 0 {
            message.push_str(&format!(" ({failed} failed)"));
        }
        if totals.sent > 0 {
            message.push_str(&format!(
                "  sent {} ({:.0}/s)  acked {} ({:.0}/s)",
                totals.sent,
                rate(totals.sent, last.1.sent),
                totals.acked,
                rate(totals.acked, last.1.acked),
            ));
        }
        if totals.received > 0 {
            message.push_str(&format!(
                "  recv {} ({:.0}/s)",
                totals.received,
                rate(totals.received, last.1.received)
            ));
        }
        if totals.errors > 0 {
            message.push_str(&format!("  errors {}", totals.errors));
        }
        bar.set_message(message);
        bar.tick();
        last = (now, totals);
    }
}
