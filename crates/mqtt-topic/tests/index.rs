//! The subscription index and the retained tree against the topic rules of MQTT 3.1.1 and 5.0
//! section 4.7 (and 4.8.2 for shared subscriptions), through their public API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};

use mqtt_topic::{
    Delivery, Publisher, QoS, RetainedTree, ShareRng, ShareStrategy, SubscriptionData,
    SubscriptionId, SubscriptionIndex, SubscriptionOptions, TopicFilter, TopicName,
};

fn filter(text: &str) -> TopicFilter {
    TopicFilter::try_from(text).unwrap()
}

fn topic(text: &str) -> TopicName {
    TopicName::try_from(text).unwrap()
}

fn anyone() -> Publisher<'static, u32> {
    Publisher {
        session: None,
        client_id: "publisher",
    }
}

fn deliveries(index: &SubscriptionIndex<u32>, t: &str) -> Vec<Delivery<u32>> {
    let mut out = Vec::new();
    index.matches(&topic(t), anyone(), &mut out);
    out
}

fn sessions(index: &SubscriptionIndex<u32>, t: &str) -> Vec<u32> {
    let mut s: Vec<u32> = deliveries(index, t).iter().map(|d| d.session).collect();
    s.sort_unstable();
    s
}

/// One session per filter, numbered in order; then each topic is checked against the sessions
/// whose filters must match it.
fn check_table(filters: &[&str], cases: &[(&str, &[u32])]) {
    let mut index = SubscriptionIndex::new();
    for (i, f) in filters.iter().enumerate() {
        index.insert(
            i as u32,
            &filter(f),
            SubscriptionData::new(QoS::AtLeastOnce),
        );
    }
    for (t, expected) in cases {
        assert_eq!(&sessions(&index, t), expected, "topic {t:?}");
    }
}

/// MQTT 3.1.1 / 5.0 section 4.7.1.2: `#` matches the parent and any number of child levels.
#[test]
fn section_4_7_1_2_multi_level_wildcard() {
    check_table(
        &["sport/tennis/player1/#", "sport/#", "#", "sport/tennis/#"],
        &[
            ("sport/tennis/player1", &[0, 1, 2, 3]),
            ("sport/tennis/player1/ranking", &[0, 1, 2, 3]),
            ("sport/tennis/player1/score/wimbledon", &[0, 1, 2, 3]),
            ("sport", &[1, 2]),
            ("sport/tennis", &[1, 2, 3]),
            ("sports", &[2]),
            ("/", &[2]),
        ],
    );
}

/// Section 4.7.1.3: `+` matches exactly one level, including an empty one.
#[test]
fn section_4_7_1_3_single_level_wildcard() {
    check_table(
        &["sport/tennis/+", "sport/+", "+", "+/+", "/+", "+/tennis/#"],
        &[
            ("sport/tennis/player1", &[0, 5]),
            ("sport/tennis/player1/ranking", &[5]),
            ("sport", &[2]),
            ("sport/", &[1, 3]),
            ("finance", &[2]),
            ("/finance", &[3, 4]),
            ("sport/tennis", &[1, 3, 5]),
        ],
    );
}

/// MQTT-4.7.2-1: filters starting with a wildcard do not match topics starting with `$`.
#[test]
fn mqtt_4_7_2_1_dollar_topics_are_not_matched_by_leading_wildcards() {
    check_table(
        &[
            "#",
            "+/monitor/Clients",
            "$SYS/#",
            "$SYS/monitor/+",
            "a/#",
            "a/+",
        ],
        &[
            ("$SYS/monitor/Clients", &[2, 3]),
            ("$SYS", &[2]),
            ("a/$b", &[0, 4, 5]),
            ("x/monitor/Clients", &[0, 1]),
        ],
    );
}

/// MQTT-4.7.3-4 and section 4.7.3: levels are compared exactly; empty levels count.
#[test]
fn mqtt_4_7_3_4_no_normalisation() {
    check_table(
        &["a//b", "a/b", "ACCOUNTS", "a/+/b", "/finance"],
        &[
            ("a//b", &[0, 3]),
            ("a/b", &[1]),
            ("Accounts", &[]),
            ("ACCOUNTS", &[2]),
            ("finance", &[]),
            ("/finance", &[4]),
        ],
    );
}

/// MQTT-3.8.4-3 (3.1.1) / one subscription per filter per session: a second SUBSCRIBE to the
/// same filter replaces the subscription.
#[test]
fn mqtt_3_8_4_3_resubscribing_replaces() {
    let mut index = SubscriptionIndex::new();
    let f = filter("a/+");
    assert_eq!(
        index.insert(1, &f, SubscriptionData::new(QoS::AtMostOnce)),
        None
    );
    assert_eq!(
        index.insert(1, &f, SubscriptionData::new(QoS::ExactlyOnce)),
        Some(SubscriptionData::new(QoS::AtMostOnce))
    );
    assert_eq!(index.len(), 1);
    assert_eq!(
        index.get(&1, &f),
        Some(SubscriptionData::new(QoS::ExactlyOnce))
    );
    let d = deliveries(&index, "a/b");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].qos, QoS::ExactlyOnce);
}

/// MQTT-3.3.5-1 (3.1.1) / 5.0 section 3.3.4: overlapping subscriptions of one session give one
/// delivery at the highest QoS, with every subscription identifier.
#[test]
fn mqtt_3_3_5_1_overlapping_subscriptions_merge() {
    let mut index = SubscriptionIndex::new();
    let with_id = |qos, id| SubscriptionData {
        options: SubscriptionOptions::new(qos),
        identifier: SubscriptionId::new(id),
    };
    index.insert(7, &filter("a/+"), with_id(QoS::AtMostOnce, 1));
    index.insert(7, &filter("a/#"), with_id(QoS::ExactlyOnce, 2));
    index.insert(7, &filter("a/b"), SubscriptionData::new(QoS::AtLeastOnce));
    index.insert(8, &filter("a/b"), with_id(QoS::AtMostOnce, 3));
    let d = deliveries(&index, "a/b");
    assert_eq!(d.len(), 2);
    let seven = d.iter().find(|d| d.session == 7).unwrap();
    assert_eq!(seven.qos, QoS::ExactlyOnce);
    let mut ids: Vec<u32> = seven.identifiers.iter().map(|i| i.get()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    let eight = d.iter().find(|d| d.session == 8).unwrap();
    assert_eq!(
        eight
            .identifiers
            .iter()
            .map(|i| i.get())
            .collect::<Vec<_>>(),
        [3]
    );
}

/// MQTT-3.8.3-3 (5.0): No Local subscriptions do not receive their own session's messages;
/// another matching subscription of the same session still does.
#[test]
fn mqtt_3_8_3_3_no_local() {
    let mut index = SubscriptionIndex::new();
    let mut no_local = SubscriptionData::new(QoS::AtLeastOnce);
    no_local.options.no_local = true;
    index.insert(1, &filter("a/b"), no_local);
    index.insert(2, &filter("a/b"), no_local);
    let own = Publisher {
        session: Some(1),
        client_id: "one",
    };
    let mut out = Vec::new();
    index.matches(&topic("a/b"), own, &mut out);
    assert_eq!(out.iter().map(|d| d.session).collect::<Vec<_>>(), [2]);
    index.insert(1, &filter("a/#"), SubscriptionData::new(QoS::AtMostOnce));
    out.clear();
    index.matches(&topic("a/b"), own, &mut out);
    let mut got: Vec<(u32, QoS)> = out.iter().map(|d| (d.session, d.qos)).collect();
    got.sort_unstable();
    assert_eq!(got, [(1, QoS::AtMostOnce), (2, QoS::AtLeastOnce)]);
}

#[test]
fn remove_and_remove_session_free_everything() {
    let mut index = SubscriptionIndex::new();
    let filters = [
        "a/b/c",
        "a/+/c",
        "a/#",
        "#",
        "+",
        "$share/g/a/b",
        "$share/g/#",
        "x//y",
    ];
    for s in 0..3u32 {
        for f in filters {
            index.insert(s, &filter(f), SubscriptionData::new(QoS::AtLeastOnce));
        }
    }
    assert_eq!(index.len(), 24);
    assert_eq!(index.session_len(&1), 8);
    assert_eq!(
        index.remove(&1, &filter("a/+/c")),
        Some(SubscriptionData::new(QoS::AtLeastOnce))
    );
    assert_eq!(index.remove(&1, &filter("a/+/c")), None);
    assert_eq!(index.remove(&1, &filter("nope")), None);
    assert_eq!(index.remove_session(&1), 7);
    assert_eq!(index.remove_session(&1), 0);
    assert_eq!(index.len(), 16);
    let d = deliveries(&index, "a/b/c");
    let mut plain: Vec<u32> = d
        .iter()
        .filter(|d| d.shared.is_none())
        .map(|d| d.session)
        .collect();
    plain.sort_unstable();
    assert_eq!(plain, [0, 2]);
    let shared: Vec<u32> = d
        .iter()
        .filter(|d| d.shared.is_some())
        .map(|d| d.session)
        .collect();
    assert!(shared.len() == 1 && shared[0] != 1, "{shared:?}");
    for f in filters {
        index.remove(&0, &filter(f));
    }
    index.remove_session(&2);
    assert!(index.is_empty());
    let stats = index.stats();
    assert_eq!(
        (
            stats.nodes,
            stats.edges,
            stats.levels,
            stats.groups,
            stats.sessions
        ),
        (1, 0, 0, 0, 0)
    );
}

fn shared_members(index: &SubscriptionIndex<u32>, t: &str, rounds: usize) -> Vec<u32> {
    (0..rounds)
        .map(|_| {
            let d = deliveries(index, t);
            assert_eq!(d.len(), 1, "one delivery per group: {d:?}");
            assert!(d[0].shared.is_some());
            d[0].session
        })
        .collect()
}

/// MQTT 5.0 section 4.8.2: a shared group delivers each message to one member; round robin
/// takes them in turn and skips unavailable members while there are available ones.
#[test]
fn section_4_8_2_shared_group_round_robin() {
    let mut index = SubscriptionIndex::new();
    let f = filter("$share/workers/jobs/+");
    for s in [10, 11, 12] {
        index.insert(s, &f, SubscriptionData::new(QoS::AtLeastOnce));
    }
    let mut picked = shared_members(&index, "jobs/1", 6);
    assert_eq!(picked[..3], picked[3..]);
    picked.truncate(3);
    picked.sort_unstable();
    assert_eq!(picked, [10, 11, 12]);

    index.set_available(11, false);
    let picked = shared_members(&index, "jobs/1", 6);
    assert!(picked.iter().all(|&s| s != 11), "{picked:?}");
    assert!(picked.contains(&10) && picked.contains(&12));

    // With no member available, the message still goes to one of them (to be queued).
    index.set_available(10, false);
    index.set_available(12, false);
    assert_eq!(shared_members(&index, "jobs/1", 3).len(), 3);
    index.set_available(12, true);
    assert_eq!(shared_members(&index, "jobs/1", 3), [12, 12, 12]);

    // Other topics and the plain filter are unaffected.
    assert!(deliveries(&index, "jobs").is_empty());
    assert!(deliveries(&index, "other/1").is_empty());
}

/// A shared delivery is separate from the member's own non-shared delivery, and two groups on
/// one filter each deliver once.
#[test]
fn shared_deliveries_are_not_merged() {
    let mut index = SubscriptionIndex::new();
    index.insert(
        1,
        &filter("$share/a/t"),
        SubscriptionData::new(QoS::AtLeastOnce),
    );
    index.insert(
        1,
        &filter("$share/b/t"),
        SubscriptionData::new(QoS::AtMostOnce),
    );
    index.insert(1, &filter("t"), SubscriptionData::new(QoS::ExactlyOnce));
    let d = deliveries(&index, "t");
    assert_eq!(d.len(), 3);
    assert_eq!(d.iter().filter(|d| d.shared.is_none()).count(), 1);
    let mut shared: Vec<&str> = d
        .iter()
        .filter_map(|d| d.shared.as_ref())
        .map(|f| f.as_str())
        .collect();
    shared.sort_unstable();
    assert_eq!(shared, ["$share/a/t", "$share/b/t"]);
}

#[derive(Debug)]
struct Counter(AtomicU64);

impl ShareRng for Counter {
    fn next_u64(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// The random strategy draws from the injected source; the hash strategy keeps one publisher
/// on one member.
#[test]
fn shared_group_random_and_hash_strategies() {
    let f = filter("$share/g/t");
    let mut random = SubscriptionIndex::new()
        .with_strategy(ShareStrategy::Random)
        .with_rng(Box::new(Counter(AtomicU64::new(0))));
    for s in [1, 2, 3] {
        random.insert(s, &f, SubscriptionData::new(QoS::AtMostOnce));
    }
    let picked = shared_members(&random, "t", 6);
    assert_eq!(picked[..3], picked[3..]);
    assert_ne!(picked[0], picked[1]);

    let mut hashed = SubscriptionIndex::new().with_strategy(ShareStrategy::HashClientId);
    for s in 0..16 {
        hashed.insert(s, &f, SubscriptionData::new(QoS::AtMostOnce));
    }
    let pick = |client_id: &str| {
        let mut out = Vec::new();
        hashed.matches(
            &topic("t"),
            Publisher {
                session: None,
                client_id,
            },
            &mut out,
        );
        out[0].session
    };
    assert_eq!(pick("sensor-1"), pick("sensor-1"));
    let spread: std::collections::BTreeSet<u32> = (0..64).map(|i| pick(&format!("c{i}"))).collect();
    assert!(spread.len() > 4, "hashing spreads publishers: {spread:?}");
}

/// A subscription as deep as the longest topic, and a topic to match it, must not exhaust the
/// stack (the walk defers deep subtrees to the heap).
#[test]
fn very_deep_filters_and_topics_are_matched_without_deep_recursion() {
    let depth = 20_000;
    let plus = vec!["+"; depth].join("/");
    let name = vec!["a"; depth].join("/");
    let mut index = SubscriptionIndex::new();
    index.insert(1, &filter(&plus), SubscriptionData::new(QoS::AtMostOnce));
    index.insert(2, &filter(&name), SubscriptionData::new(QoS::AtMostOnce));
    index.insert(
        3,
        &filter(&format!("{name}/#")),
        SubscriptionData::new(QoS::AtMostOnce),
    );
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || sessions(&index, &name))
        .unwrap();
    assert_eq!(handle.join().unwrap(), [1, 2, 3]);
}

/// The retained tree finds exactly the stored topics a filter matches.
#[test]
fn retained_lookup_by_filter() {
    let mut tree = RetainedTree::new();
    for (i, t) in [
        "sport",
        "sport/tennis",
        "sport/tennis/player1",
        "sport/golf",
        "$SYS/load",
        "/x",
        "a//b",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(tree.insert(topic(t), i), None);
    }
    assert_eq!(tree.insert(topic("sport"), 100), Some(0));
    fn found(tree: &RetainedTree<usize>, f: &str) -> Vec<String> {
        let mut v = Vec::new();
        tree.for_each_match(&filter(f), |t, _| v.push(t.to_string()));
        v.sort();
        v
    }
    let found_in = |tree: &RetainedTree<usize>, f: &str| found(tree, f);
    let found = |f: &str| found_in(&tree, f);
    assert_eq!(
        found("sport/#"),
        [
            "sport",
            "sport/golf",
            "sport/tennis",
            "sport/tennis/player1"
        ]
    );
    assert_eq!(found("sport/+"), ["sport/golf", "sport/tennis"]);
    assert_eq!(
        found("#"),
        [
            "/x",
            "a//b",
            "sport",
            "sport/golf",
            "sport/tennis",
            "sport/tennis/player1"
        ]
    );
    assert_eq!(found("+/+"), ["/x", "sport/golf", "sport/tennis"]);
    assert_eq!(found("$SYS/#"), ["$SYS/load"]);
    assert_eq!(found("a/+/b"), ["a//b"]);
    assert_eq!(found("$share/g/sport/+"), ["sport/golf", "sport/tennis"]);
    assert_eq!(tree.get(&topic("sport")), Some(&100));
    assert_eq!(tree.remove(&topic("sport/tennis")), Some(1));
    assert_eq!(
        found_in(&tree, "sport/#"),
        ["sport", "sport/golf", "sport/tennis/player1"]
    );
    tree.retain(|t, _| t.as_str().starts_with("sport"));
    assert_eq!(
        found_in(&tree, "#"),
        ["sport", "sport/golf", "sport/tennis/player1"]
    );
    assert_eq!(tree.len(), 3);
}

/// Availability belongs to sessions with subscriptions: removing all of a session's
/// subscriptions forgets it (the broker marks a session again when its client goes away), so a
/// session that resubscribes is available; marking a session without subscriptions leaves no
/// trace in the index (a churn of client ids cannot grow it).
#[test]
fn availability_is_forgotten_with_the_subscriptions() {
    let mut index = SubscriptionIndex::new();
    let f = filter("$share/g/t");
    index.insert(1, &f, SubscriptionData::new(QoS::AtMostOnce));
    index.insert(2, &f, SubscriptionData::new(QoS::AtMostOnce));
    index.set_available(2, false);
    assert_eq!(shared_members(&index, "t", 3), [1, 1, 1]);
    index.remove_session(&2);
    index.insert(2, &f, SubscriptionData::new(QoS::AtMostOnce));
    let mut picked = shared_members(&index, "t", 4);
    picked.sort_unstable();
    assert_eq!(picked, [1, 1, 2, 2]);
    for s in 100..200 {
        index.set_available(s, false);
    }
    assert_eq!(index.stats().sessions, 2);
}

/// A session with hundreds of subscriptions (its positions then live in a map) and a node with
/// hundreds of shared groups, built and torn down in a scrambled order, always agree with the
/// naive oracle and end empty.
#[test]
fn large_sessions_and_many_groups_agree_with_the_oracle() {
    use mqtt_topic::naive::NaiveIndex;
    let mut index = SubscriptionIndex::new();
    let mut oracle = NaiveIndex::new();
    let mut filters = Vec::new();
    for i in 0..300 {
        filters.push(filter(&format!("big/{}/+", i % 150)));
        filters.push(filter(&format!("$share/g{i}/big/#")));
    }
    filters.push(filter("big/#"));
    let data = |i: usize| SubscriptionData::new(QoS::from_u8((i % 3) as u8).unwrap());
    for (i, f) in filters.iter().enumerate() {
        let session = if i % 5 == 0 { 2 } else { 1 };
        assert_eq!(
            index.insert(session, f, data(i)),
            oracle.insert(session, f, data(i))
        );
    }
    let check = |index: &SubscriptionIndex<u32>, oracle: &NaiveIndex<u32>| {
        for t in ["big/7/x", "big/149/y", "big", "other"] {
            let mut out = Vec::new();
            index.matches(&topic(t), anyone(), &mut out);
            oracle.matches(&topic(t), None).check(&out).unwrap();
        }
    };
    check(&index, &oracle);
    // Remove in a scrambled order, checking as we go.
    let mut order: Vec<usize> = (0..filters.len()).collect();
    order.sort_by_key(|&i| (i * 7919) % filters.len());
    for (step, i) in order.into_iter().enumerate() {
        let session = if i % 5 == 0 { 2 } else { 1 };
        assert_eq!(
            index.remove(&session, &filters[i]),
            oracle.remove(&session, &filters[i])
        );
        if step % 50 == 0 {
            check(&index, &oracle);
        }
    }
    assert!(index.is_empty());
    let stats = index.stats();
    assert_eq!(
        (stats.nodes, stats.groups, stats.sessions, stats.levels),
        (1, 0, 0, 0)
    );
}
