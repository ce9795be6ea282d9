//! What every benchmark payload starts with, and the bookkeeping of which messages arrived.
//!
//! The header is 24 bytes, big-endian: the magic `MQB\x01`, the run id (random per run, so
//! that messages of another run on the same topics are told apart), the publisher's index,
//! the message's sequence number (from 0 per publisher) and the wall-clock time it was made
//! (microseconds since the Unix epoch, so that `mqtt bench sub` in another process can
//! measure latency). Zero bytes pad it to the requested size.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

/// The length of the header, and so the smallest payload.
pub(crate) const HEADER_LEN: usize = 24;

const MAGIC: [u8; 4] = *b"MQB\x01";

/// How much buffer to allocate at a time: payloads are split off it, so most messages cost no
/// allocation of their own.
const CHUNK: usize = 64 * 1024;

/// The header of a benchmark payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The run that sent it.
    pub(crate) run: u32,
    /// The publisher's index (from 0).
    pub(crate) publisher: u32,
    /// The message's number (from 0 per publisher).
    pub(crate) seq: u32,
    /// When it was made, in microseconds since the Unix epoch.
    pub(crate) sent_us: u64,
}

/// The wall clock in microseconds since the Unix epoch.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Makes payloads of one size out of a shared buffer.
#[derive(Debug)]
pub(crate) struct PayloadMaker {
    buf: BytesMut,
    size: usize,
}

impl PayloadMaker {
    /// Payloads of `size` bytes (at least [`HEADER_LEN`]).
    pub(crate) fn new(size: usize) -> Self {
        let size = size.max(HEADER_LEN);
        Self {
            buf: BytesMut::with_capacity(CHUNK.max(size)),
            size,
        }
    }

    /// A payload with this header.
    pub(crate) fn make(&mut self, header: Header) -> Bytes {
        self.buf.reserve(self.size);
        self.buf.put_slice(&MAGIC);
        self.buf.put_u32(header.run);
        self.buf.put_u32(header.publisher);
        self.buf.put_u32(header.seq);
        self.buf.put_u64(header.sent_us);
        self.buf.put_bytes(0, self.size - HEADER_LEN);
        self.buf.split().freeze()
    }
}

/// The header of `payload`, if it has one.
pub(crate) fn parse(payload: &[u8]) -> Option<Header> {
    let header = payload.get(..HEADER_LEN)?;
    let (magic, rest) = header.split_at(4);
    if magic != MAGIC {
        return None;
    }
    let u32_at = |i: usize| {
        rest.get(i..i + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    };
    let sent_us = rest
        .get(12..20)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)?;
    Some(Header {
        run: u32_at(0)?,
        publisher: u32_at(4)?,
        seq: u32_at(8)?,
        sent_us,
    })
}

/// Which sequence numbers of one publisher arrived.
#[derive(Debug, Default, Clone)]
struct Seen {
    bits: Vec<u64>,
    distinct: u64,
    duplicates: u64,
}

/// How far (in 64-message words) a sequence number may jump past the highest seen: 16M
/// messages, 2 MiB of bitmap. A publisher's numbers arrive nearly in order; a larger jump is
/// not from this run's publisher (a forged or corrupted header), and growing the bitmap for it
/// could take 512 MiB.
const MAX_JUMP_WORDS: usize = 1 << 18;

impl Seen {
    /// Records `seq`; `false` when it is beyond any plausible jump (not recorded).
    fn record(&mut self, seq: u32) -> bool {
        let word = (seq / 64) as usize;
        let bit = 1u64 << (seq % 64);
        if self.bits.len() <= word {
            if word - self.bits.len() > MAX_JUMP_WORDS {
                return false;
            }
            self.bits.resize(word + 1, 0);
        }
        if let Some(w) = self.bits.get_mut(word) {
            if *w & bit == 0 {
                *w |= bit;
                self.distinct += 1;
            } else {
                self.duplicates += 1;
            }
        }
        true
    }

    /// Distinct sequence numbers below `sent` (those above cannot have been sent).
    fn distinct_below(&self, sent: u64) -> u64 {
        if self.distinct == 0 {
            return 0;
        }
        let full_words = usize::try_from(sent / 64).unwrap_or(usize::MAX);
        let mut count: u64 = self
            .bits
            .iter()
            .take(full_words)
            .map(|w| u64::from(w.count_ones()))
            .sum();
        let rest = sent % 64;
        if rest > 0
            && let Some(w) = self.bits.get(full_words)
        {
            count += u64::from((w & ((1u64 << rest) - 1)).count_ones());
        }
        count
    }
}

/// The messages one subscriber received from the publishers it expects: publishers
/// `first..first + seen.len()`.
#[derive(Debug, Clone)]
pub(crate) struct Tracker {
    first: u32,
    seen: Vec<Seen>,
    /// Distinct messages from the expected publishers.
    distinct: u64,
    /// Messages of this run from publishers it does not expect.
    pub(crate) unexpected: u64,
}

/// What a [`Tracker`] concluded once the publishers said how much they sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// Messages that should have arrived.
    pub(crate) expected: u64,
    /// Of those, how many did not.
    pub(crate) lost: u64,
    /// Messages that arrived more than once (each extra copy counts).
    pub(crate) duplicates: u64,
}

impl Tracker {
    /// Expects the publishers `first..first + count`.
    pub(crate) fn new(first: u32, count: u32) -> Self {
        Self {
            first,
            seen: vec![Seen::default(); count as usize],
            distinct: 0,
            unexpected: 0,
        }
    }

    /// Records the arrival of `seq` from `publisher`; `false` when it is not one this tracker
    /// expects (another publisher, or an implausible sequence number).
    pub(crate) fn record(&mut self, publisher: u32, seq: u32) -> bool {
        let slot = publisher
            .checked_sub(self.first)
            .and_then(|i| self.seen.get_mut(i as usize));
        match slot {
            Some(seen) => {
                let before = seen.distinct;
                if seen.record(seq) {
                    self.distinct += seen.distinct - before;
                    return true;
                }
                self.unexpected += 1;
            }
            None => self.unexpected += 1,
        }
        false
    }

    /// How many messages it expects, given what each publisher sent (indexed by publisher).
    pub(crate) fn expected(&self, sent: &[u64]) -> u64 {
        self.range(sent).map(|(_, sent)| sent).sum()
    }

    /// Distinct messages received from the expected publishers.
    pub(crate) fn distinct(&self) -> u64 {
        self.distinct
    }

    /// The verdict, given what each publisher sent (indexed by publisher).
    pub(crate) fn delivery(&self, sent: &[u64]) -> Delivery {
        let mut delivery = Delivery::default();
        for (seen, sent) in self.range(sent) {
            delivery.expected += sent;
            delivery.lost += sent - seen.distinct_below(sent).min(sent);
            delivery.duplicates += seen.duplicates;
        }
        delivery
    }

    fn range<'a>(&'a self, sent: &'a [u64]) -> impl Iterator<Item = (&'a Seen, u64)> + 'a {
        self.seen.iter().enumerate().map(move |(i, seen)| {
            let sent = sent
                .get(self.first as usize + i)
                .copied()
                .unwrap_or_default();
            (seen, sent)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_padding() {
        let mut maker = PayloadMaker::new(32);
        let header = Header {
            run: 7,
            publisher: 3,
            seq: 99,
            sent_us: 1_700_000_000_000_000,
        };
        let payload = maker.make(header);
        assert_eq!(payload.len(), 32);
        assert_eq!(parse(&payload), Some(header));
        let second = maker.make(Header { seq: 100, ..header });
        assert_eq!(parse(&second).map(|h| h.seq), Some(100));
        // The first payload is untouched by the second.
        assert_eq!(parse(&payload), Some(header));
        // Too small a size is raised to the header.
        assert_eq!(PayloadMaker::new(1).make(header).len(), HEADER_LEN);
        assert_eq!(parse(b"hello"), None);
        assert_eq!(parse(&[0u8; 40]), None);
    }

    #[test]
    fn tracker_counts_losses_and_duplicates() {
        let mut t = Tracker::new(0, 2);
        for seq in [0, 1, 2, 2, 4] {
            t.record(0, seq);
        }
        for seq in 0..70 {
            t.record(1, seq);
        }
        t.record(5, 0);
        assert_eq!(t.unexpected, 1);
        assert_eq!(t.distinct(), 74);
        assert_eq!(t.expected(&[5, 70]), 75);
        assert_eq!(
            t.delivery(&[5, 70]),
            Delivery {
                expected: 75,
                lost: 1,
                duplicates: 1
            }
        );
        // Numbers at or above what was sent do not hide a loss.
        assert_eq!(t.delivery(&[3, 65]).lost, 0);
        assert_eq!(t.delivery(&[6, 70]).lost, 2);
    }

    #[test]
    fn tracker_for_one_publisher() {
        let mut t = Tracker::new(4, 1);
        t.record(4, 0);
        t.record(3, 0);
        assert_eq!(t.unexpected, 1);
        assert_eq!(t.delivery(&[9, 9, 9, 9, 2]).lost, 1);
    }

    #[test]
    fn an_implausible_sequence_number_is_not_recorded() {
        let mut t = Tracker::new(0, 1);
        t.record(0, 5);
        // A header claiming message 4 billion would need a 512 MiB bitmap.
        t.record(0, u32::MAX);
        assert_eq!((t.distinct(), t.unexpected), (1, 1));
        // A large but plausible gap (messages dropped at QoS 0) is fine.
        t.record(0, 1_000_000);
        assert_eq!((t.distinct(), t.unexpected), (2, 1));
    }
}
