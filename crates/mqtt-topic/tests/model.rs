//! Model tests: random sequences of operations on the subscription index and on the retained
//! tree, each checked step by step against the naive oracle (a plain list scanned in full with
//! a level-by-level comparison). The alphabet is small on purpose, so that filters overlap,
//! wildcards and `$` levels collide, and shared groups fill and empty.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mqtt_topic::naive::NaiveIndex;
use mqtt_topic::{
    Publisher, QoS, RetainHandling, RetainedTree, ShareStrategy, SubscriptionData, SubscriptionId,
    SubscriptionIndex, SubscriptionOptions, TopicFilter, TopicName, filter_matches,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn level() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "", "$c", "cc"])
}

fn topic_name() -> impl Strategy<Value = TopicName> {
    vec(level(), 1..5).prop_map(|levels| {
        let t = levels.join("/");
        TopicName::try_from(if t.is_empty() { "/".to_string() } else { t }).unwrap()
    })
}

fn topic_filter() -> impl Strategy<Value = TopicFilter> {
    let level = prop_oneof![4 => level(), 2 => Just("+")];
    (
        vec(level, 1..5),
        any::<bool>(),
        prop::option::weighted(0.25, prop::sample::select(vec!["g1", "g2"])),
    )
        .prop_map(|(levels, hash, share)| {
            let mut levels: Vec<&str> = levels;
            if hash {
                levels.push("#");
            }
            let f = levels.join("/");
            let f = if f.is_empty() { "/".to_string() } else { f };
            match share {
                Some(g) => format!("$share/{g}/{f}"),
                None => f,
            }
        })
        .prop_map(|f| TopicFilter::try_from(f).unwrap())
}

fn data() -> impl Strategy<Value = SubscriptionData> {
    (
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        prop::option::of(1u32..5),
    )
        .prop_map(|(qos, no_local, rap, id)| SubscriptionData {
            options: SubscriptionOptions {
                qos: QoS::from_u8(qos).unwrap(),
                no_local,
                retain_as_published: rap,
                retain_handling: RetainHandling::SendAtSubscribe,
            },
            identifier: id.and_then(SubscriptionId::new),
        })
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, TopicFilter, SubscriptionData),
    Remove(u8, TopicFilter),
    RemoveSession(u8),
    SetAvailable(u8, bool),
    Match(TopicName, Option<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    let session = 0u8..6;
    prop_oneof![
        6 => (session.clone(), topic_filter(), data()).prop_map(|(s, f, d)| Op::Insert(s, f, d)),
        2 => (session.clone(), topic_filter()).prop_map(|(s, f)| Op::Remove(s, f)),
        1 => session.clone().prop_map(Op::RemoveSession),
        1 => (session.clone(), any::<bool>()).prop_map(|(s, a)| Op::SetAvailable(s, a)),
        5 => (topic_name(), prop::option::of(session)).prop_map(|(t, p)| Op::Match(t, p)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The index and the oracle agree after every operation of a random sequence, for every
    /// shared-group strategy.
    #[test]
    fn index_agrees_with_the_naive_oracle(
        ops in vec(op(), 1..80),
        strategy in prop::sample::select(vec![
            ShareStrategy::RoundRobin,
            ShareStrategy::Random,
            ShareStrategy::HashClientId,
        ]),
    ) {
        let mut index: SubscriptionIndex<u8> = SubscriptionIndex::new().with_strategy(strategy);
        let mut oracle: NaiveIndex<u8> = NaiveIndex::new();
        let mut out = Vec::new();
        for op in ops {
            match op {
                Op::Insert(s, f, d) => prop_assert_eq!(index.insert(s, &f, d), oracle.insert(s, &f, d)),
                Op::Remove(s, f) => prop_assert_eq!(index.remove(&s, &f), oracle.remove(&s, &f)),
                Op::RemoveSession(s) => prop_assert_eq!(index.remove_session(&s), oracle.remove_session(&s)),
                Op::SetAvailable(s, a) => {
                    index.set_available(s, a);
                    oracle.set_available(s, a);
                }
                Op::Match(t, publisher) => {
                    out.clear();
                    let client_id = format!("client-{publisher:?}");
                    index.matches(&t, Publisher { session: publisher, client_id: &client_id }, &mut out);
                    let checked = oracle.matches(&t, publisher).check(&out);
                    prop_assert!(checked.is_ok(), "{}: {}", t, checked.unwrap_err());
                }
            }
            prop_assert_eq!(index.len(), oracle.len());
        }
        // Emptying the index frees every node, level and group.
        for s in 0..6 {
            index.remove_session(&s);
        }
        let stats = index.stats();
        prop_assert_eq!((stats.subscriptions, stats.nodes, stats.edges, stats.levels, stats.groups), (0, 1, 0, 0, 0));
    }

    /// The retained tree finds, for any filter, exactly the stored topics the filter matches,
    /// through inserts, removals and `retain` sweeps.
    #[test]
    fn retained_tree_agrees_with_a_scan(
        ops in vec((0u8..8, topic_name(), any::<u16>()), 1..60),
        filters in vec(topic_filter(), 1..10),
    ) {
        let mut tree = RetainedTree::new();
        let mut model: Vec<(TopicName, u16)> = Vec::new();
        for (kind, topic, value) in ops {
            if kind == 0 {
                // Keep the values with the same parity as `value`.
                let parity = value % 2;
                tree.retain(|_, v| *v % 2 == parity);
                model.retain(|(_, v)| *v % 2 == parity);
            } else if kind < 5 {
                let old = model.iter().position(|(t, _)| *t == topic).map(|i| model.remove(i).1);
                model.push((topic.clone(), value));
                prop_assert_eq!(tree.insert(topic, value), old);
            } else {
                let old = model.iter().position(|(t, _)| *t == topic).map(|i| model.remove(i).1);
                prop_assert_eq!(tree.remove(&topic), old);
            }
            prop_assert_eq!(tree.len(), model.len());
        }
        for filter in filters {
            let mut got = Vec::new();
            tree.for_each_match(&filter, |t, v| got.push((t.to_string(), *v)));
            got.sort();
            let mut want: Vec<(String, u16)> = model
                .iter()
                .filter(|(t, _)| filter_matches(filter.filter(), t.as_str()))
                .map(|(t, v)| (t.to_string(), *v))
                .collect();
            want.sort();
            prop_assert_eq!(got, want, "filter {}", filter);
        }
    }
}
