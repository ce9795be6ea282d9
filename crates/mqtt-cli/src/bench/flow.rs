//! Flow control between the publishers and the subscribers of one run: no subscriber ever has
//! more than `--max-ahead` messages sent to it that it has not received yet.
//!
//! Without it, "as fast as allowed" means as fast as the broker acknowledges, and a broker
//! acknowledges a publish when it has queued it, not when a subscriber has it: publishers then
//! outrun a slow subscriber until its queue at the broker overflows and the broker drops
//! messages (Mosquitto's and our `max_queued_messages`). With it, every broker is measured under
//! the same bounded backlog, and the delivery check measures the broker, not the overflow.
//!
//! Each subscriber publishes, per publisher it hears from, the next sequence number it expects
//! (one past the highest it received: a lost QoS 0 message does not hold the window shut). A
//! subscriber that hears from `n` publishers gives each of them `max_ahead / n` (at least 1), so
//! its total backlog stays within `max_ahead`. A publisher sends while every subscriber that
//! hears from it leaves it room; otherwise it waits for the one that does not.
//!
//! Only the subscriber task writes its slots (plain stores); a publisher reads them. A publisher
//! about to wait raises the subscriber's `waiting` flag after registering with its `Notify`;
//! the subscriber wakes the waiters only when the flag is up, so the hot path costs a load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

/// The flow control of one run.
#[derive(Debug)]
pub(crate) struct Flow {
    subscribers: Vec<SubscriberFlow>,
    /// For each publisher: the subscribers that hear from it, with its slot in each.
    routes: Vec<Vec<Route>>,
}

#[derive(Debug, Clone, Copy)]
struct Route {
    subscriber: usize,
    slot: usize,
}

/// One subscriber's side.
#[derive(Debug)]
struct SubscriberFlow {
    /// The first publisher it hears from.
    first: u32,
    /// Per publisher it hears from: the next sequence number it expects.
    next: Box<[AtomicU64]>,
    /// How far each of its publishers may run ahead of it.
    allowance: u64,
    waiting: AtomicBool,
    notify: Notify,
}

impl Flow {
    /// Flow control for `publishers` publishers and subscribers that each hear from the
    /// publishers `first..first + count`, with at most `max_ahead` messages outstanding per
    /// subscriber.
    pub(crate) fn new(
        max_ahead: u64,
        publishers: usize,
        subscribers: impl IntoIterator<Item = (u32, u32)>,
    ) -> Self {
        let mut routes = vec![Vec::new(); publishers];
        let mut subs = Vec::new();
        for (j, (first, count)) in subscribers.into_iter().enumerate() {
            for slot in 0..count as usize {
                if let Some(r) = routes.get_mut(first as usize + slot) {
                    r.push(Route {
                        subscriber: j,
                        slot,
                    });
                }
            }
            subs.push(SubscriberFlow {
                first,
                next: (0..count).map(|_| AtomicU64::new(0)).collect(),
                allowance: (max_ahead / u64::from(count.max(1))).max(1),
                waiting: AtomicBool::new(false),
                notify: Notify::new(),
            });
        }
        Self {
            subscribers: subs,
            routes,
        }
    }

    /// Subscriber `subscriber` received `seq` from `publisher`.
    pub(crate) fn received(&self, subscriber: usize, publisher: u32, seq: u32) {
        let Some(sub) = self.subscribers.get(subscriber) else {
            return;
        };
        let Some(next) = publisher
            .checked_sub(sub.first)
            .and_then(|slot| sub.next.get(slot as usize))
        else {
            return;
        };
        let value = u64::from(seq) + 1;
        if next.load(Ordering::Relaxed) < value {
            // SeqCst with the publisher's side of `wait`: either it sees this progress, or
            // this sees its flag up (store-then-load on both sides needs a total order).
            next.store(value, Ordering::SeqCst);
            if sub.waiting.load(Ordering::SeqCst) && sub.waiting.swap(false, Ordering::SeqCst) {
                sub.notify.notify_waiters();
            }
        }
    }

    /// How many more messages `publisher`, having sent `sent`, may send now; `Err` with the
    /// subscriber to wait for when none.
    pub(crate) fn credit(&self, publisher: usize, sent: u64) -> Result<u64, usize> {
        let mut credit = u64::MAX;
        for route in self.routes.get(publisher).into_iter().flatten() {
            let Some(sub) = self.subscribers.get(route.subscriber) else {
                continue;
            };
            let received = sub
                .next
                .get(route.slot)
                .map_or(sent, |n| n.load(Ordering::SeqCst));
            let room = (received + sub.allowance).saturating_sub(sent);
            if room == 0 {
                return Err(route.subscriber);
            }
            credit = credit.min(room);
        }
        Ok(credit)
    }

    /// Waits until `subscriber` has received more (returns at once if it already has
    /// received enough for `publisher` to send again).
    pub(crate) async fn wait(&self, subscriber: usize, publisher: usize, sent: u64) {
        let Some(sub) = self.subscribers.get(subscriber) else {
            return;
        };
        let notified = sub.notify.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the flag goes up and before looking again: a wake-up in between
        // is not lost.
        notified.as_mut().enable();
        sub.waiting.store(true, Ordering::SeqCst);
        if !matches!(self.credit(publisher, sent), Err(j) if j == subscriber) {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_publisher_gets_its_share_of_a_subscriber() {
        // Fan-in: 4 publishers into one subscriber with room for 100.
        let flow = Flow::new(100, 4, [(0, 4)]);
        assert_eq!(flow.credit(0, 0), Ok(25));
        assert_eq!(flow.credit(3, 24), Ok(1));
        assert_eq!(flow.credit(3, 25), Err(0));
        // Received up to seq 9 of publisher 3 (a gap is no hole in the window).
        flow.received(0, 3, 9);
        assert_eq!(flow.credit(3, 25), Ok(10));
        assert_eq!(flow.credit(2, 25), Err(0));
    }

    #[test]
    fn a_publisher_waits_for_its_slowest_subscriber() {
        // Fan-out: one publisher, three subscribers.
        let flow = Flow::new(10, 1, [(0, 1), (0, 1), (0, 1)]);
        flow.received(0, 0, 19);
        flow.received(2, 0, 19);
        assert_eq!(flow.credit(0, 10), Err(1));
        flow.received(1, 0, 4);
        assert_eq!(flow.credit(0, 10), Ok(5));
        // Unknown publishers and subscribers are ignored.
        flow.received(7, 0, 1);
        flow.received(0, 9, 1);
        assert_eq!(flow.credit(5, 1_000), Ok(u64::MAX));
    }

    #[tokio::test]
    async fn a_waiting_publisher_is_woken() {
        let flow = Arc::new(Flow::new(2, 1, [(0, 1)]));
        assert_eq!(flow.credit(0, 2), Err(0));
        let waiter = tokio::spawn({
            let flow = Arc::clone(&flow);
            async move { flow.wait(0, 0, 2).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        flow.received(0, 0, 0);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("no panic");
        // Room already: no wait at all.
        tokio::time::timeout(Duration::from_secs(5), flow.wait(0, 0, 2))
            .await
            .expect("returns at once");
    }
}
