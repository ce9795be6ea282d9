//! Entry points for the cargo-fuzz targets in `fuzz/` (compiled only under `cfg(fuzzing)`).

// A failed assertion is how a fuzz target reports a finding.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use crate::naive::NaiveIndex;
use crate::{
    Publisher, QoS, ShareStrategy, SubscriptionData, SubscriptionId, SubscriptionIndex,
    SubscriptionOptions, TopicFilter, TopicName,
};

const LEVELS: [&str; 6] = ["a", "b", "", "$c", "dd", "e"];

/// Reads the fuzzer's bytes as a little program of index operations.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn levels(&mut self, wildcards: bool) -> Option<Vec<&'static str>> {
        let depth = usize::from(self.byte()? % 5) + 1;
        (0..depth)
            .map(|_| {
                let b = self.byte()?;
                Some(if wildcards && b % 7 == 6 {
                    "+"
                } else {
                    LEVELS[usize::from(b) % LEVELS.len()]
                })
            })
            .collect()
    }

    fn topic(&mut self) -> Option<TopicName> {
        let t = self.levels(false)?.join("/");
        TopicName::try_from(if t.is_empty() { "/".into() } else { t }).ok()
    }

    fn filter(&mut self) -> Option<TopicFilter> {
        let flags = self.byte()?;
        let mut levels = self.levels(true)?;
        if flags & 1 != 0 {
            levels.push("#");
        }
        let f = levels.join("/");
        let f = if f.is_empty() { "/".to_string() } else { f };
        let f = match flags >> 1 & 3 {
            1 => format!("$share/g1/{f}"),
            2 => format!("$share/g2/{f}"),
            _ => f,
        };
        TopicFilter::try_from(f).ok()
    }

    fn data(&mut self) -> Option<SubscriptionData> {
        let b = self.byte()?;
        let mut options = SubscriptionOptions::new(QoS::from_u8(b % 3)?);
        options.no_local = b & 0x04 != 0;
        options.retain_as_published = b & 0x08 != 0;
        Some(SubscriptionData {
            options,
            identifier: SubscriptionId::new(u32::from(b >> 4)),
        })
    }
}

/// Runs the operations the bytes describe on the index and on the naive oracle, comparing
/// every answer.
pub fn index_vs_oracle(data: &[u8]) {
    let mut r = Reader(data);
    let strategy = match r.byte().unwrap_or(0) % 3 {
        0 => ShareStrategy::RoundRobin,
        1 => ShareStrategy::Random,
        _ => ShareStrategy::HashClientId,
    };
    let mut index = SubscriptionIndex::<u8>::new().with_strategy(strategy);
    let mut oracle = NaiveIndex::<u8>::new();
    let mut out = Vec::new();
    while let Some(op) = r.byte() {
        let session = op >> 3;
        match op % 6 {
            0 | 1 => {
                let (Some(f), Some(d)) = (r.filter(), r.data()) else {
                    break;
                };
                assert_eq!(index.insert(session, &f, d), oracle.insert(session, &f, d));
            }
            2 => {
                let Some(f) = r.filter() else { break };
                assert_eq!(index.remove(&session, &f), oracle.remove(&session, &f));
            }
            3 => assert_eq!(
                index.remove_session(&session),
                oracle.remove_session(&session)
            ),
            4 => {
                let available = op & 0x80 == 0;
                index.set_available(session, available);
                oracle.set_available(session, available);
            }
            _ => {
                let Some(topic) = r.topic() else { break };
                let publisher = (session % 2 == 0).then_some(session);
                out.clear();
                let client_id = [session];
                let client_id = std::str::from_utf8(&client_id).unwrap_or("");
                index.matches(
                    &topic,
                    Publisher {
                        session: publisher,
                        client_id,
                    },
                    &mut out,
                );
                if let Err(e) = oracle.matches(&topic, publisher).check(&out) {
                    panic!("{topic}: {e}");
                }
            }
        }
        assert_eq!(index.len(), oracle.len());
    }
}
