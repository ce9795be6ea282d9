//! The subscription index and the retained tree at scale.
//!
//! - `match/{10k,100k,1M}`: match a 5-level topic against that many subscriptions, a realistic
//!   mix (80% exact, 15% with `+`, 5% ending in `#`, 1% of them shared), at most 10 matches;
//!   `match/naive_10k` is the linear scan on the 10k case.
//! - `insert_remove/1M`: insert then remove one subscription in an index of 1M.
//! - `retained/{100k,1M}/hash`: a `#`-ending filter whose subtree holds 100 topics, in trees of
//!   100k and 1M retained topics: equal times show the lookup touches only the subtree.
//! - Memory per subscription (counting allocator), and matches per second from 1 and 2 threads
//!   with and without a read lock, are printed before the criterion runs.
//!
//! Run: `cargo bench -p mqtt-topic --bench index`

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stderr,
    clippy::print_stdout
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use criterion::{BatchSize, Criterion};
use mqtt_topic::naive::NaiveIndex;
use mqtt_topic::{
    Publisher, QoS, RetainedTree, SharedIndex, SubscriptionData, SubscriptionIndex, TopicFilter,
    TopicName,
};

/// Counts the bytes currently allocated, to measure memory per subscription.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A small deterministic generator (the benchmark must not depend on a seed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Topics of a fleet of devices: `site/building/floor/device/metric`, about four subscriptions a
/// device.
fn exact(r: &mut Lcg, n: u64) -> String {
    format!(
        "site{}/b{}/f{}/dev{}/{}",
        r.next(50),
        r.next(20),
        r.next(10),
        r.next((n / 4).max(10)),
        ["temperature", "humidity", "power", "status"][r.next(4) as usize]
    )
}

/// The subscription mix: 80% exact; 15% with one `+` (for the metric or the floor); 5% ending
/// in `#` below a device; 1% of all of them shared. Sessions hold four subscriptions each.
fn subscriptions(n: usize) -> Vec<(u32, TopicFilter)> {
    let mut r = Lcg(42);
    (0..n)
        .map(|i| {
            let t = exact(&mut r, n as u64);
            let mut levels: Vec<&str> = t.split('/').collect();
            let kind = r.next(100);
            let f = if kind < 80 {
                t.clone()
            } else if kind < 95 {
                let at = if r.next(2) == 0 { 4 } else { 2 };
                levels[at] = "+";
                levels.join("/")
            } else {
                levels.truncate(4);
                format!("{}/#", levels.join("/"))
            };
            let f = if r.next(100) == 0 {
                format!("$share/g{}/{f}", r.next(4))
            } else {
                f
            };
            ((i / 4) as u32, TopicFilter::try_from(f).unwrap().copied())
        })
        .collect()
}

fn build(subs: &[(u32, TopicFilter)]) -> SubscriptionIndex<u32> {
    let mut index = SubscriptionIndex::new();
    for (s, f) in subs {
        index.insert(*s, f, SubscriptionData::new(QoS::AtLeastOnce));
    }
    index
}

/// Topics to match: the exact subscriptions' topics (each matches at least one).
fn probes(subs: &[(u32, TopicFilter)]) -> Vec<TopicName> {
    subs.iter()
        .filter(|(_, f)| !f.has_wildcards() && !f.is_shared())
        .step_by(7)
        .take(1000)
        .map(|(_, f)| TopicName::try_from(f.as_str()).unwrap())
        .collect()
}

const PUBLISHER: Publisher<'static, u32> = Publisher {
    session: None,
    client_id: "bench",
};

fn memory_report(n: usize) {
    let subs = subscriptions(n);
    let text: usize = subs.iter().map(|(_, f)| f.as_str().len()).sum();
    let before = ALLOCATED.load(Ordering::Relaxed);
    let index = build(&subs);
    let used = ALLOCATED.load(Ordering::Relaxed) - before;
    let probes = probes(&subs);
    let mut out = Vec::new();
    let most = probes
        .iter()
        .map(|t| {
            out.clear();
            index.matches(t, PUBLISHER, &mut out);
            out.len()
        })
        .max()
        .unwrap_or(0);
    let stats = index.stats();
    println!(
        "memory {n:>8} subscriptions: {:>6.1} bytes each in the index (filter text {:.1} bytes \
         each, held by the caller); {} nodes, {} levels, {} groups; at most {most} matches",
        used as f64 / n as f64,
        text as f64 / n as f64,
        stats.nodes,
        stats.levels,
        stats.groups,
    );
    drop(index);
}

/// Matches per second from `threads` threads for `seconds`, through `matcher`.
fn throughput(
    threads: usize,
    run: Duration,
    matcher: Arc<dyn Fn(usize) -> usize + Send + Sync>,
) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let matcher = Arc::clone(&matcher);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut done = 0usize;
                let mut i = t * 7919;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        black_box(matcher(i));
                        i += 1;
                    }
                    done += 64;
                }
                done
            })
        })
        .collect();
    std::thread::sleep(run);
    stop.store(true, Ordering::Relaxed);
    let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / run.as_secs_f64()
}

/// The concurrency measurement behind the choice documented in the crate docs.
fn concurrency_report() {
    let subs = subscriptions(100_000);
    let probes = Arc::new(probes(&subs));
    let run = Duration::from_millis(1500);

    let plain = Arc::new(build(&subs));
    let (p, ix) = (Arc::clone(&probes), Arc::clone(&plain));
    let unlocked: Arc<dyn Fn(usize) -> usize + Send + Sync> = Arc::new(move |i| {
        let mut out = Vec::new();
        ix.matches(&p[i % p.len()], PUBLISHER, &mut out);
        out.len()
    });
    let locked_index = Arc::new(RwLock::new(build(&subs)));
    let (p, ix) = (Arc::clone(&probes), Arc::clone(&locked_index));
    let locked: Arc<dyn Fn(usize) -> usize + Send + Sync> = Arc::new(move |i| {
        let mut out = Vec::new();
        ix.read()
            .unwrap()
            .matches(&p[i % p.len()], PUBLISHER, &mut out);
        out.len()
    });
    let sharded_index = Arc::new(SharedIndex::new(build(&subs)));
    let (p, ix) = (Arc::clone(&probes), Arc::clone(&sharded_index));
    let sharded: Arc<dyn Fn(usize) -> usize + Send + Sync> = Arc::new(move |i| {
        let mut out = Vec::new();
        ix.read().matches(&p[i % p.len()], PUBLISHER, &mut out);
        out.len()
    });
    for threads in [1, 2] {
        println!(
            "concurrency 100k subscriptions, {threads} thread(s): {:>10.0} matches/s unlocked, \
             {:>10.0} through RwLock, {:>10.0} through SharedIndex (sharded lock)",
            throughput(threads, run, Arc::clone(&unlocked)),
            throughput(threads, run, Arc::clone(&locked)),
            throughput(threads, run, Arc::clone(&sharded)),
        );
    }
    // One thread matching while another changes subscriptions thousands of times a second.
    let writer_stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let ix = Arc::clone(&sharded_index);
        let stop = Arc::clone(&writer_stop);
        std::thread::spawn(move || {
            let f = TopicFilter::try_from("site1/b1/f1/dev-new/+").unwrap();
            let mut changes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut index = ix.write();
                index.insert(999_999, &f, SubscriptionData::new(QoS::AtMostOnce));
                index.remove(&999_999, &f);
                drop(index);
                changes += 2;
                std::thread::sleep(Duration::from_micros(200));
            }
            changes
        })
    };
    let rate = throughput(1, run, Arc::clone(&sharded));
    writer_stop.store(true, Ordering::Relaxed);
    let changes = writer.join().unwrap();
    println!(
        "concurrency 100k subscriptions, 1 matcher + 1 writer ({:.0} changes/s): {rate:>10.0} matches/s through SharedIndex",
        changes as f64 / run.as_secs_f64()
    );
}

fn bench_match(c: &mut Criterion) {
    let mut group = c.benchmark_group("match");
    for (name, n) in [("10k", 10_000), ("100k", 100_000), ("1M", 1_000_000)] {
        let subs = subscriptions(n);
        let index = build(&subs);
        let probes = probes(&subs);
        let mut out = Vec::new();
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                index.matches(&probes[i % probes.len()], PUBLISHER, &mut out);
                i += 1;
                out.len()
            })
        });
        if n == 10_000 {
            let mut naive = NaiveIndex::new();
            for (s, f) in &subs {
                naive.insert(*s, f, SubscriptionData::new(QoS::AtLeastOnce));
            }
            group.bench_function("naive_10k", |b| {
                b.iter(|| {
                    i += 1;
                    naive
                        .matches(&probes[i % probes.len()], None)
                        .deliveries
                        .len()
                })
            });
        }
    }
    group.finish();
}

fn bench_changes(c: &mut Criterion) {
    let subs = subscriptions(1_000_000);
    let mut index = build(&subs);
    let mut r = Lcg(7);
    c.bench_function("insert_remove/1M", |b| {
        b.iter_batched(
            || {
                let f = TopicFilter::try_from(format!("{}/x", exact(&mut r, 1_000_000))).unwrap();
                (r.next(1_000_000) as u32, f)
            },
            |(s, f)| {
                index.insert(s, &f, SubscriptionData::new(QoS::AtMostOnce));
                index.remove(&s, &f)
            },
            BatchSize::SmallInput,
        )
    });
}

fn bench_retained(c: &mut Criterion) {
    for (name, n) in [("100k", 100_000u64), ("1M", 1_000_000u64)] {
        let mut tree = RetainedTree::new();
        // 100 topics under site0/b0/f0 whatever the size; the rest spread over other sites.
        for d in 0..100 {
            tree.insert(
                TopicName::try_from(format!("site0/b0/f0/dev{d}/power")).unwrap(),
                d,
            );
        }
        let mut r = Lcg(3);
        while (tree.len() as u64) < n {
            let t = format!(
                "site{}/b{}/f{}/dev{}/power",
                1 + r.next(50),
                r.next(20),
                r.next(10),
                r.next(n)
            );
            tree.insert(TopicName::try_from(t).unwrap(), 0);
        }
        let filter = TopicFilter::try_from("site0/b0/f0/#").unwrap();
        let mut found = 0;
        tree.for_each_match(&filter, |_, _| found += 1);
        assert_eq!(found, 100);
        c.bench_function(&format!("retained/{name}/hash"), |b| {
            b.iter(|| {
                let mut found = 0;
                tree.for_each_match(&filter, |_, v| found += v);
                found
            })
        });
    }
}

fn main() {
    for n in [10_000, 100_000, 1_000_000] {
        memory_report(n);
    }
    concurrency_report();
    let mut c = Criterion::default().configure_from_args();
    bench_match(&mut c);
    bench_changes(&mut c);
    bench_retained(&mut c);
    c.final_summary();
}
