//! Benchmark of the persistence candidates on the broker's workload. See README.md.

mod ownlog;
mod store;

#[cfg(feature = "redb3")]
mod redb3_store {
    use ::redb3 as redb;
    const NAME: &str = "redb3";
    include!("redb_impl.rs");
}

#[cfg(feature = "redb5")]
mod redb5_store {
    use ::redb5 as redb;
    const NAME: &str = "redb5";
    include!("redb_impl.rs");
}

#[cfg(feature = "fjall")]
mod fjall_impl;
#[cfg(feature = "sled")]
mod sled_impl;

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use store::{Candidate, Op, Result, State};

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Clone, Debug)]
struct Opts {
    candidates: Vec<String>,
    workloads: Vec<String>,
    runs: usize,
    dir: PathBuf,
    device: String,
    messages: u64,
    batch: u64,
    sessions: u64,
    fanout_a2: u64,
    ack_lag: usize,
    topic_len: usize,
    payload_len: usize,
    retained: u64,
    b_sessions: u64,
    b_commit: u64,
    torn_commits: u64,
    torn_per_commit: u64,
    ownlog_compact_mib: u64,
    cold: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            candidates: all_candidate_names()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            workloads: ["a", "a2", "b", "torn"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            runs: 3,
            dir: PathBuf::from("/tmp/store-candidates"),
            device: "vda".into(),
            messages: 200_000,
            batch: 64,
            sessions: 10,
            fanout_a2: 10,
            ack_lag: 2,
            topic_len: 45,
            payload_len: 64,
            retained: 1_000_000,
            b_sessions: 100_000,
            b_commit: 10_000,
            torn_commits: 100,
            torn_per_commit: 100,
            ownlog_compact_mib: 32,
            cold: true,
        }
    }
}

const USAGE: &str = "\
store-candidates [options]
  --candidates LIST     comma-separated, from: ownlog,redb3,redb5,fjall,sled (default: all built)
  --workloads LIST      comma-separated, from: a,a2,b,torn (default: all)
  --runs N              repetitions of each measurement; the median is reported (3)
  --dir PATH            data directory, removed before each run (/tmp/store-candidates)
  --device NAME         block device for written-bytes counting, /sys/block/NAME/stat (vda)
  --messages N          workload A/A2: messages (200000)
  --batch N             workload A/A2: messages per group commit (64)
  --sessions N          workload A/A2: persistent subscriber sessions (10)
  --fanout-a2 N         workload A2: sessions each message is queued for (10)
  --ack-lag N           workload A/A2: commits between enqueue and acknowledgement (2)
  --topic-len N         workload A/A2: topic bytes in a message body (45)
  --payload-len N       payload bytes of a message body / retained message (64)
  --retained N          workload B: retained messages (1000000)
  --b-sessions N        workload B: persistent sessions (100000)
  --b-commit N          workload B: records per commit while populating (10000)
  --torn-commits N      torn-write test: commits written before the damage (100)
  --torn-per-commit N   torn-write test: retained messages per commit (100)
  --ownlog-compact-mib N  ownlog: compact (snapshot + truncate) when the log exceeds N MiB; 0 = never (32)
  --no-cold             workload B: skip the cold-cache restart (needs root for drop_caches)
";

fn all_candidate_names() -> Vec<&'static str> {
    let mut v = vec!["ownlog"];
    #[cfg(feature = "redb3")]
    v.push("redb3");
    #[cfg(feature = "redb5")]
    v.push("redb5");
    #[cfg(feature = "fjall")]
    v.push("fjall");
    #[cfg(feature = "sled")]
    v.push("sled");
    v
}

fn parse_opts() -> std::result::Result<Opts, String> {
    parse_opts_from(std::env::args().skip(1).collect())
}

fn parse_opts_from(args: Vec<String>) -> std::result::Result<Opts, String> {
    let mut o = Opts::default();
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        if a == "--help" || a == "-h" {
            print!("{USAGE}");
            std::process::exit(0);
        }
        if a == "--no-cold" {
            o.cold = false;
            continue;
        }
        let v = args.next().ok_or_else(|| format!("{a} needs a value"))?;
        let num = || {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|e| format!("{a} {v}: {e}"))
        };
        match a.as_str() {
            "--candidates" => o.candidates = v.split(',').map(str::to_owned).collect(),
            "--workloads" => o.workloads = v.split(',').map(str::to_owned).collect(),
            "--runs" => o.runs = num()?.max(1) as usize,
            "--dir" => o.dir = PathBuf::from(&v),
            "--device" => o.device = v.clone(),
            "--messages" => o.messages = num()?,
            "--batch" => o.batch = num()?.max(1),
            "--sessions" => o.sessions = num()?.max(1),
            "--fanout-a2" => o.fanout_a2 = num()?.max(1),
            "--ack-lag" => o.ack_lag = num()?.max(1) as usize,
            "--topic-len" => o.topic_len = num()? as usize,
            "--payload-len" => o.payload_len = num()? as usize,
            "--retained" => o.retained = num()?,
            "--b-sessions" => o.b_sessions = num()?,
            "--b-commit" => o.b_commit = num()?.max(1),
            "--torn-commits" => o.torn_commits = num()?.max(2),
            "--torn-per-commit" => o.torn_per_commit = num()?.max(1),
            "--ownlog-compact-mib" => o.ownlog_compact_mib = num()?,
            _ => return Err(format!("unknown option {a}\n{USAGE}")),
        }
    }
    let known = all_candidate_names();
    for c in &o.candidates {
        if !known.contains(&c.as_str()) {
            return Err(format!(
                "candidate {c} unknown or not built (built: {known:?})"
            ));
        }
    }
    Ok(o)
}

fn make_candidate(name: &str, o: &Opts) -> Box<dyn Candidate> {
    match name {
        "ownlog" => Box::new(ownlog::OwnLog {
            compact_bytes: o.ownlog_compact_mib << 20,
        }),
        #[cfg(feature = "redb3")]
        "redb3" => Box::new(redb3_store::Redb),
        #[cfg(feature = "redb5")]
        "redb5" => Box::new(redb5_store::Redb),
        #[cfg(feature = "fjall")]
        "fjall" => Box::new(fjall_impl::Fjall),
        #[cfg(feature = "sled")]
        "sled" => Box::new(sled_impl::Sled),
        _ => unreachable!("checked in parse_opts"),
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring helpers

fn sync_fs() {
    let _ = std::process::Command::new("sync").status();
}

/// Drops the page cache (root only). Returns whether it worked.
fn drop_caches() -> bool {
    sync_fs();
    fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// (apparent size, allocated size) of every file under `dir`.
fn dir_size(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                apparent += m.len();
                allocated += m.blocks() * 512;
            }
        }
    }
    (apparent, allocated)
}

fn list_files(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((
                    e.path(),
                    m.len(),
                    m.modified().unwrap_or(std::time::UNIX_EPOCH),
                ));
            }
        }
    }
    out
}

/// Bytes passed to write-like syscalls by this process (`wchar` of /proc/self/io).
fn proc_wchar() -> Option<u64> {
    let s = fs::read_to_string("/proc/self/io").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("wchar: ")?.trim().parse().ok())
}

/// Bytes written to the block device since boot (sectors written × 512); includes the file
/// system's own journal and metadata writes.
fn device_written(dev: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/sys/block/{dev}/stat")).ok()?;
    let sectors: u64 = s.split_whitespace().nth(6)?.parse().ok()?;
    Some(sectors * 512)
}

/// CPU seconds used on the machine by other processes since `since`: busy time of all CPUs
/// (/proc/stat) minus this process's own user+system time. Another build or test running on
/// the 2 cores would disturb the figures; this makes such a disturbance visible.
fn cpu_busy_and_self() -> (f64, f64) {
    let hz = 100.0; // USER_HZ
    let busy = fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let l = s.lines().next()?.to_owned();
            let v: Vec<f64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal ...
            Some(v.iter().take(8).sum::<f64>() - v.get(3)? - v.get(4)? - v.get(7).unwrap_or(&0.0))
        })
        .unwrap_or(f64::NAN);
    let own = fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // fields 14..17 of stat (utime, stime, cutime, cstime: the `sync` children count
            // as ours) are 11..14 after the name
            let mut t = 0.0;
            for i in 11..15 {
                t += f.get(i)?.parse::<f64>().ok()?;
            }
            Some(t)
        })
        .unwrap_or(f64::NAN);
    (busy / hz, own / hz)
}

struct Foreign((f64, f64));

impl Foreign {
    fn start() -> Self {
        Foreign(cpu_busy_and_self())
    }
    fn secs(&self) -> f64 {
        let (b, o) = cpu_busy_and_self();
        ((b - self.0.0) - (o - self.0.1)).max(0.0)
    }
}

/// Waits (up to 5 minutes) until other processes use less than 10% of a core over a second.
fn wait_for_quiet() {
    let t0 = Instant::now();
    loop {
        let f = Foreign::start();
        std::thread::sleep(std::time::Duration::from_secs(1));
        let busy = f.secs();
        if busy.is_nan() || busy < 0.1 || t0.elapsed().as_secs() > 300 {
            return;
        }
        eprintln!("  (machine busy: {busy:.2} CPU s/s used by other processes; waiting)");
        std::thread::sleep(std::time::Duration::from_secs(4));
    }
}

/// A run is repeated when other processes used more CPU than this during it.
fn disturbed(foreign_cpu: f64, secs: f64) -> bool {
    foreign_cpu > 0.5 + 0.1 * secs
}

struct Counters {
    wchar: Option<u64>,
    dev: Option<u64>,
}

impl Counters {
    fn now(o: &Opts) -> Self {
        Counters {
            wchar: proc_wchar(),
            dev: device_written(&o.device),
        }
    }
    fn since(&self, o: &Opts) -> (f64, f64) {
        let now = Counters::now(o);
        let d = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => (b - a) as f64,
            _ => f64::NAN,
        };
        (d(self.wchar, now.wchar), d(self.dev, now.dev))
    }
}

fn fresh_dir(o: &Opts) -> Result<PathBuf> {
    let d = o.dir.clone();
    if d.exists() {
        fs::remove_dir_all(&d)?;
    }
    fs::create_dir_all(&d)?;
    Ok(d)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

const MIB: f64 = 1024.0 * 1024.0;

fn fmt(x: f64, decimals: usize) -> String {
    if x.is_nan() {
        "n/a".into()
    } else {
        format!("{x:.decimals$}")
    }
}

fn fmt_int(x: f64) -> String {
    if x.is_nan() {
        return "n/a".into();
    }
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Workload A / A2: QoS 1 messages to persistent sessions

struct ARun {
    secs: f64,
    commits: u64,
    lat_ns: Vec<u64>,
    dir_apparent: u64,
    dir_alloc: u64,
    wchar: f64,
    dev: f64,
    logical: u64,
    foreign_cpu: f64,
}

fn message_body(o: &Opts, id: u64) -> Vec<u8> {
    let prefix = "bench/qos1/";
    let width = o.topic_len.saturating_sub(prefix.len());
    let mut topic = format!("{prefix}{id:0>width$}");
    topic.truncate(o.topic_len);
    let mut b = Vec::with_capacity(8 + o.topic_len + o.payload_len);
    b.push(1); // qos
    b.push(0); // flags
    b.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    b.extend_from_slice(&(o.payload_len as u32).to_le_bytes());
    b.extend_from_slice(topic.as_bytes());
    b.extend(random_bytes(id, o.payload_len));
    b
}

/// Deterministic incompressible bytes (splitmix64 seeded by `seed`), so that compression
/// (fjall has lz4 on by default) does not flatter a store with synthetic, repetitive payloads.
fn random_bytes(seed: u64, n: usize) -> impl Iterator<Item = u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..n.div_ceil(8))
        .flat_map(move |_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)).to_le_bytes()
        })
        .take(n)
}

fn entry_value(msg_id: u64, sent: bool, packet_id: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&msg_id.to_le_bytes());
    v.push(1); // qos
    v.push(sent as u8); // state: 0 queued, 1 sent
    v.extend_from_slice(&packet_id.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes()); // message expiry (none)
    v
}

struct Queued {
    msg_id: u64,
    /// (session, entry id, packet id)
    entries: Vec<(u64, u64, u16)>,
}

fn run_a(c: &dyn Candidate, o: &Opts, fanout: u64) -> Result<ARun> {
    let dir = fresh_dir(o)?;
    sync_fs();
    let before = Counters::now(o);
    let foreign = Foreign::start();
    let mut store = c.open(&dir)?;
    let mut next_entry = vec![0u64; o.sessions as usize];
    let mut next_pid = vec![0u16; o.sessions as usize];
    let mut groups: VecDeque<Vec<Queued>> = VecDeque::new();
    let mut lat_ns = Vec::new();
    let mut logical = 0u64;
    let mut next_msg = 0u64;
    let mut ops: Vec<Op> = Vec::new();
    let t0 = Instant::now();
    let mut commits = 0u64;
    loop {
        ops.clear();
        // New messages of this commit: body once, one queue entry per target session.
        let mut group = Vec::new();
        let end = (next_msg + o.batch).min(o.messages);
        for id in next_msg..end {
            ops.push(Op::PutMsg {
                id,
                body: message_body(o, id),
            });
            let mut entries = Vec::with_capacity(fanout as usize);
            for j in 0..fanout {
                let s = (id * fanout + j) % o.sessions;
                let e = next_entry[s as usize];
                next_entry[s as usize] += 1;
                ops.push(Op::PutEntry {
                    session: s,
                    entry: e,
                    value: entry_value(id, false, 0),
                });
                entries.push((s, e, 0));
            }
            group.push(Queued {
                msg_id: id,
                entries,
            });
        }
        next_msg = end;
        groups.push_back(group);
        // Entries of the previous commit were sent: packet id assigned.
        if o.ack_lag > 1 && groups.len() >= 2 {
            let prev = groups.len() - 2;
            for q in &mut groups[prev] {
                for (s, e, pid) in &mut q.entries {
                    let p = &mut next_pid[*s as usize];
                    *p = if *p == u16::MAX { 1 } else { *p + 1 };
                    *pid = *p;
                    ops.push(Op::PutEntry {
                        session: *s,
                        entry: *e,
                        value: entry_value(q.msg_id, true, *pid),
                    });
                }
            }
        }
        // Entries of ack_lag commits ago were acknowledged: delete them and the message.
        if groups.len() > o.ack_lag {
            for q in groups.pop_front().unwrap() {
                for (s, e, _) in &q.entries {
                    ops.push(Op::DelEntry {
                        session: *s,
                        entry: *e,
                    });
                }
                ops.push(Op::DelMsg { id: q.msg_id });
            }
        }
        if ops.is_empty() {
            break;
        }
        logical += ops.iter().map(Op::logical_bytes).sum::<u64>();
        let t = Instant::now();
        store.commit(&ops)?;
        lat_ns.push(t.elapsed().as_nanos() as u64);
        commits += 1;
        if next_msg >= o.messages && groups.iter().all(|g| g.is_empty()) {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    drop(store);
    let foreign_cpu = foreign.secs();
    sync_fs();
    let (wchar, dev) = before.since(o);
    let (dir_apparent, dir_alloc) = dir_size(&dir);
    // Honesty check: every message was acknowledged, so the reopened state must be empty.
    let mut store = c.open(&dir)?;
    let st = store.load()?;
    if st.counts() != [0, 0, 0, 0] {
        return Err(format!(
            "{}: state after workload A not empty: {:?}",
            c.name(),
            st.counts()
        )
        .into());
    }
    drop(store);
    lat_ns.sort_unstable();
    Ok(ARun {
        secs,
        commits,
        lat_ns,
        dir_apparent,
        dir_alloc,
        wchar,
        dev,
        logical,
        foreign_cpu,
    })
}

/// Like workload A but stops before the acknowledgements of the last commits, closes the store
/// and checks that the reopened state holds exactly the unacknowledged messages and entries.
fn check_a_partial(c: &dyn Candidate, o: &Opts) -> Result<()> {
    let mut p = o.clone();
    p.messages = 64 * 20;
    let dir = fresh_dir(&p)?;
    let mut store = c.open(&dir)?;
    let mut expect = State::default();
    let mut pending: VecDeque<Vec<(u64, u64)>> = VecDeque::new();
    for k in 0..20u64 {
        let mut ops = Vec::new();
        let mut g = Vec::new();
        for id in k * 64..(k + 1) * 64 {
            ops.push(Op::PutMsg {
                id,
                body: message_body(&p, id),
            });
            ops.push(Op::PutEntry {
                session: id % 10,
                entry: id,
                value: entry_value(id, false, 0),
            });
            g.push((id % 10, id));
        }
        pending.push_back(g);
        if pending.len() > 2 {
            for (s, id) in pending.pop_front().unwrap() {
                ops.push(Op::DelEntry {
                    session: s,
                    entry: id,
                });
                ops.push(Op::DelMsg { id });
            }
        }
        for op in &ops {
            expect.apply(op.clone());
        }
        store.commit(&ops)?;
    }
    drop(store);
    let got = c.open(&dir)?.load()?;
    if got.counts() != expect.counts()
        || got.messages != expect.messages
        || got.entries != expect.entries
    {
        return Err(format!(
            "{}: reopened state differs: {:?} vs {:?}",
            c.name(),
            got.counts(),
            expect.counts()
        )
        .into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Workload B: restart with many retained messages and sessions

struct BRun {
    populate_secs: f64,
    populate_dev: f64,
    dir_apparent: u64,
    dir_alloc: u64,
    cold_open: f64,
    cold_total: f64,
    warm_open: f64,
    warm_total: f64,
    /// ownlog only: the same after a compaction into one snapshot file.
    snap: Option<(u64, f64, f64)>,
    foreign_cpu: f64,
}

fn retained_payload(o: &Opts, i: u64) -> Vec<u8> {
    random_bytes(i ^ (1 << 63), o.payload_len).collect()
}

/// The floor of any restart: building the same `HashMap`s from data already in memory
/// (one allocation per key and per value, as every store's load does).
fn in_memory_floor(o: &Opts) -> f64 {
    let retained: Vec<(String, Vec<u8>)> = (0..o.retained)
        .map(|k| (format!("bench/retained/{k}"), retained_payload(o, k)))
        .collect();
    let sessions: Vec<(String, Vec<u8>)> = (0..o.b_sessions)
        .map(|s| (format!("client-{s}"), session_value(s)))
        .collect();
    let t0 = Instant::now();
    let mut st = State::default();
    for (k, v) in &retained {
        st.retained.insert(k.clone(), v.clone());
    }
    for (k, v) in &sessions {
        st.sessions.insert(k.clone(), v.clone());
    }
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(
        st.counts(),
        [0, 0, o.retained as usize, o.b_sessions as usize]
    );
    secs
}

fn session_value(i: u64) -> Vec<u8> {
    let filter = format!("sensors/{i}/#");
    let mut v = Vec::new();
    v.extend_from_slice(&(filter.len() as u16).to_le_bytes());
    v.extend_from_slice(filter.as_bytes());
    v.push(1); // subscription qos
    v.extend_from_slice(&3600u32.to_le_bytes()); // session expiry interval
    v
}

fn populate_b(c: &dyn Candidate, o: &Opts, dir: &Path) -> Result<Box<dyn store::Store>> {
    let mut store = c.open(dir)?;
    let total = o.retained + o.b_sessions;
    let mut i = 0u64;
    let mut ops = Vec::with_capacity(o.b_commit as usize);
    while i < total {
        ops.clear();
        let end = (i + o.b_commit).min(total);
        for k in i..end {
            if k < o.retained {
                ops.push(Op::PutRetained {
                    topic: format!("bench/retained/{k}"),
                    payload: retained_payload(o, k),
                });
            } else {
                let s = k - o.retained;
                ops.push(Op::PutSession {
                    client_id: format!("client-{s}"),
                    value: session_value(s),
                });
            }
        }
        store.commit(&ops)?;
        i = end;
    }
    Ok(store)
}

/// Opens the store and loads everything; returns (open secs, open+load secs) after checking
/// the counts and a sample of values.
fn restart(c: &dyn Candidate, o: &Opts, dir: &Path) -> Result<(f64, f64)> {
    let t0 = Instant::now();
    let mut store = c.open(dir)?;
    let t_open = t0.elapsed().as_secs_f64();
    let st = store.load()?;
    let t_total = t0.elapsed().as_secs_f64();
    drop(store);
    let want = [0, 0, o.retained as usize, o.b_sessions as usize];
    if st.counts() != want {
        return Err(format!(
            "{}: restart loaded {:?}, expected {:?}",
            c.name(),
            st.counts(),
            want
        )
        .into());
    }
    for k in [0, o.retained / 2, o.retained.saturating_sub(1)] {
        if o.retained > 0
            && st.retained.get(&format!("bench/retained/{k}")) != Some(&retained_payload(o, k))
        {
            return Err(format!("{}: retained message {k} wrong after restart", c.name()).into());
        }
    }
    for s in [0, o.b_sessions.saturating_sub(1)] {
        if o.b_sessions > 0 && st.sessions.get(&format!("client-{s}")) != Some(&session_value(s)) {
            return Err(format!("{}: session {s} wrong after restart", c.name()).into());
        }
    }
    drop(st);
    Ok((t_open, t_total))
}

fn cold_restart(c: &dyn Candidate, o: &Opts, dir: &Path) -> Result<(f64, f64)> {
    if !o.cold || !drop_caches() {
        return Ok((f64::NAN, f64::NAN));
    }
    restart(c, o, dir)
}

fn run_b(c: &dyn Candidate, o: &Opts) -> Result<BRun> {
    let dir = fresh_dir(o)?;
    sync_fs();
    let before = Counters::now(o);
    let foreign = Foreign::start();
    let t0 = Instant::now();
    let store = populate_b(c, o, &dir)?;
    let populate_secs = t0.elapsed().as_secs_f64();
    drop(store);
    sync_fs();
    let (_, populate_dev) = before.since(o);
    let (dir_apparent, dir_alloc) = dir_size(&dir);
    let (cold_open, cold_total) = cold_restart(c, o, &dir)?;
    let (warm_open, warm_total) = restart(c, o, &dir)?;
    let snap = if c.has_snapshot() {
        let mut store = c.open(&dir)?;
        store.snapshot()?;
        drop(store);
        sync_fs();
        let (size, _) = dir_size(&dir);
        let (_, cold) = cold_restart(c, o, &dir)?;
        let (_, warm) = restart(c, o, &dir)?;
        Some((size, cold, warm))
    } else {
        None
    };
    let foreign_cpu = foreign.secs();
    Ok(BRun {
        populate_secs,
        populate_dev,
        dir_apparent,
        dir_alloc,
        cold_open,
        cold_total,
        warm_open,
        warm_total,
        snap,
        foreign_cpu,
    })
}

// ---------------------------------------------------------------------------------------------
// Torn-write test: damage the end of the most recently written file, reopen

fn run_torn(c: &dyn Candidate, o: &Opts, damage: &str) -> Result<String> {
    let dir = fresh_dir(o)?;
    let mut store = c.open(&dir)?;
    for k in 0..o.torn_commits {
        let ops: Vec<Op> = (0..o.torn_per_commit)
            .map(|j| {
                let i = k * o.torn_per_commit + j;
                Op::PutRetained {
                    topic: format!("bench/retained/{i}"),
                    payload: retained_payload(o, i),
                }
            })
            .collect();
        store.commit(&ops)?;
    }
    drop(store);
    let files = list_files(&dir);
    let Some((path, len, _)) = files
        .iter()
        .max_by_key(|(p, len, t)| (*t, *len, p.clone()))
        .cloned()
    else {
        return Ok("no file".into());
    };
    let rel = path
        .strip_prefix(&dir)
        .unwrap_or(&path)
        .display()
        .to_string();
    // Damage the end of the written data: files that are preallocated (fjall's journal) end in
    // zeros, so the last write ends after the last non-zero byte. In a preallocated file the
    // lost bytes are zeroed; otherwise the file is cut short.
    let mut data = fs::read(&path)?;
    let mut data_end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let preallocated = data.len() - data_end >= 4096;
    if !preallocated {
        data_end = data.len();
    }
    match damage {
        "cut7" | "cut4103" => {
            let cut = if damage == "cut7" { 7 } else { 4103 };
            let from = data_end.saturating_sub(cut);
            if preallocated {
                data[from..data_end].fill(0);
            } else {
                data.truncate(from);
            }
        }
        "flip" => {
            // Invert the last 16 written bytes (garbage where the last write landed).
            for b in &mut data[data_end.saturating_sub(16)..data_end] {
                *b ^= 0xff;
            }
        }
        _ => unreachable!(),
    }
    fs::write(&path, &data)?;
    let rel = if preallocated {
        format!("{rel}, data ends at {data_end}")
    } else {
        rel
    };
    let committed = o.torn_commits * o.torn_per_commit;
    let outcome = match count_prefix(c, o, &dir) {
        Err(e) => e,
        Ok((n, intact)) => format!(
            "opens; {n} of {committed} records{}",
            if intact { "" } else { ", NOT a clean prefix" }
        ),
    };
    Ok(format!("`{rel}` ({len} B): {outcome}"))
}

/// Counts the retained records after a reopen and checks that they are the first `n` written.
fn count_prefix(
    c: &dyn Candidate,
    o: &Opts,
    dir: &Path,
) -> std::result::Result<(u64, bool), String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let reopened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.open(dir).and_then(|mut s| s.load())
    }));
    std::panic::set_hook(hook);
    match reopened {
        Err(_) => Err("open PANICS".into()),
        Ok(Err(e)) => {
            let mut msg = e.to_string().replace('\n', " ").replace('|', "/");
            msg.truncate(120);
            Err(format!("open/load fails: {msg}"))
        }
        Ok(Ok(st)) => {
            let n = st.retained.len() as u64;
            let intact = (0..n).all(|i| {
                st.retained.get(&format!("bench/retained/{i}")) == Some(&retained_payload(o, i))
            });
            Ok((n, intact))
        }
    }
}

/// Child process of the kill test: commits batches of retained messages forever, printing the
/// number of each commit once it has returned (is durable).
fn child_writer(name: &str, o: &Opts) -> Result<()> {
    use std::io::Write;
    let c = make_candidate(name, o);
    let mut store = c.open(&o.dir)?;
    let mut out = std::io::stdout().lock();
    for k in 0u64.. {
        let ops: Vec<Op> = (0..o.torn_per_commit)
            .map(|j| {
                let i = k * o.torn_per_commit + j;
                Op::PutRetained {
                    topic: format!("bench/retained/{i}"),
                    payload: retained_payload(o, i),
                }
            })
            .collect();
        store.commit(&ops)?;
        writeln!(out, "{k}")?;
        out.flush()?;
    }
    Ok(())
}

/// Kills (SIGKILL) a child that is committing, then reopens: the state must hold every
/// acknowledged commit, at most one more, and whole commits only.
fn run_kill(c: &dyn Candidate, o: &Opts) -> Result<String> {
    use std::io::BufRead;
    let dir = fresh_dir(o)?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["--dir", &dir.display().to_string()])
        .args(["--torn-per-commit", &o.torn_per_commit.to_string()])
        .args(["--payload-len", &o.payload_len.to_string()])
        .args(["--child-writer", c.name()])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().unwrap();
    let last = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(-1));
    let last2 = last.clone();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(k) = line.trim().parse::<i64>() {
                last2.store(k, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let t0 = Instant::now();
    while last.load(std::sync::atomic::Ordering::SeqCst) < 0 && t0.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(700));
    child.kill()?; // SIGKILL
    child.wait()?;
    reader.join().ok();
    let acked = (last.load(std::sync::atomic::Ordering::SeqCst) + 1) as u64 * o.torn_per_commit;
    Ok(match count_prefix(c, o, &dir) {
        Err(e) => format!("{e} (acknowledged {acked})"),
        Ok((n, intact)) => {
            let ok = intact
                && n % o.torn_per_commit == 0
                && n >= acked
                && n <= acked + o.torn_per_commit;
            format!(
                "{} {n} records, {acked} acknowledged{}",
                if ok { "ok:" } else { "WRONG:" },
                if intact { "" } else { ", not a clean prefix" }
            )
        }
    })
}

/// Runs `f` `o.runs` times for each candidate, in rounds: each round runs every candidate once,
/// in an order that rotates from round to round, so that a slow drift of the machine (the
/// virtual disk's latency varies over minutes) is spread over all candidates. Before each run
/// the machine must be quiet; a run disturbed by other processes is repeated (at most 5 times
/// per candidate).
#[allow(clippy::type_complexity)]
fn measure<R>(
    o: &Opts,
    label: &str,
    names: &[String],
    f: impl Fn(&dyn Candidate) -> Result<R>,
    secs: impl Fn(&R) -> f64,
    foreign: impl Fn(&R) -> f64,
    describe: impl Fn(&R) -> String,
) -> Vec<(String, std::result::Result<Vec<R>, String>)> {
    let n = names.len();
    let mut out: Vec<(String, std::result::Result<Vec<R>, String>)> = names
        .iter()
        .map(|nm| (nm.clone(), Ok(Vec::new())))
        .collect();
    let mut retries = vec![0; n];
    for round in 0..o.runs {
        for k in 0..n {
            let i = (k + round) % n;
            let name = &names[i];
            let c = make_candidate(name, o);
            loop {
                if out[i].1.is_err() {
                    break;
                }
                wait_for_quiet();
                match f(c.as_ref()) {
                    Ok(r) if retries[i] < 5 && disturbed(foreign(&r), secs(&r)) => {
                        retries[i] += 1;
                        eprintln!(
                            "[{label} {name} round {}] discarded: other processes used {:.2} CPU s",
                            round + 1,
                            foreign(&r)
                        );
                    }
                    Ok(r) => {
                        eprintln!(
                            "[{label} {name} round {}] {} other-cpu {:.2}s",
                            round + 1,
                            describe(&r),
                            foreign(&r)
                        );
                        if let Ok(v) = &mut out[i].1 {
                            v.push(r);
                        }
                        break;
                    }
                    Err(e) => {
                        eprintln!("[{label} {name} round {}] error: {e}", round + 1);
                        out[i].1 = Err(e.to_string());
                        break;
                    }
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------

fn main() {
    // Hidden mode used by the kill test.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child-writer") {
        let name = args.get(i + 1).cloned().unwrap_or_default();
        let rest: Vec<String> = args[1..i]
            .iter()
            .chain(args[i + 2..].iter())
            .cloned()
            .collect();
        let o = parse_opts_from(rest).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        });
        if let Err(e) = child_writer(&name, &o) {
            eprintln!("child error: {e}");
            std::process::exit(1);
        }
        return;
    }
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&o) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(o: &Opts) -> Result<()> {
    println!("# store-candidates");
    println!();
    println!("options: {o:?}");
    println!();
    let want = |w: &str| o.workloads.iter().any(|x| x == w);
    for (w, fanout) in [("a", 1u64), ("a2", o.fanout_a2)] {
        if !want(w) {
            continue;
        }
        println!(
            "## Workload {} — {} messages, {} per commit, {} sessions, fan-out {}, ack lag {} commits (median of {})",
            w.to_uppercase(),
            o.messages,
            o.batch,
            o.sessions,
            fanout,
            o.ack_lag,
            o.runs
        );
        println!();
        println!(
            "| candidate | msg/s | commits/s | commit p50 ms | commit p99 ms | commit max ms | dir at end MiB (allocated) | write() MiB | device written MiB | device bytes / logical bytes | other processes' CPU s (max of runs) |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut checked = Vec::new();
        for name in &o.candidates {
            match check_a_partial(make_candidate(name, o).as_ref(), o) {
                Ok(()) => checked.push(name.clone()),
                Err(e) => println!("| {name} | check failed: {e} |"),
            }
        }
        let results = measure(
            o,
            w,
            &checked,
            |c| run_a(c, o, fanout),
            |a| a.secs,
            |a| a.foreign_cpu,
            |a| {
                format!(
                    "{:.2}s {} commits p50 {:.3}ms p99 {:.3}ms dir {} B dev {:.0} B",
                    a.secs,
                    a.commits,
                    percentile(&a.lat_ns, 0.5) / 1e6,
                    percentile(&a.lat_ns, 0.99) / 1e6,
                    a.dir_apparent,
                    a.dev
                )
            },
        );
        for (name, runs) in results {
            let runs = match runs {
                Ok(r) => r,
                Err(e) => {
                    println!("| {name} | error: {e} |");
                    continue;
                }
            };
            let m = |f: &dyn Fn(&ARun) -> f64| median(runs.iter().map(f).collect());
            println!(
                "| {name} | {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} |",
                fmt_int(m(&|a| o.messages as f64 / a.secs)),
                fmt_int(m(&|a| a.commits as f64 / a.secs)),
                fmt(m(&|a| percentile(&a.lat_ns, 0.5) / 1e6), 3),
                fmt(m(&|a| percentile(&a.lat_ns, 0.99) / 1e6), 3),
                fmt(m(&|a| *a.lat_ns.last().unwrap_or(&0) as f64 / 1e6), 1),
                fmt(m(&|a| a.dir_apparent as f64 / MIB), 2),
                fmt(m(&|a| a.dir_alloc as f64 / MIB), 2),
                fmt(m(&|a| a.wchar / MIB), 1),
                fmt(m(&|a| a.dev / MIB), 1),
                fmt(m(&|a| a.dev / a.logical as f64), 1),
                fmt(runs.iter().map(|a| a.foreign_cpu).fold(0.0, f64::max), 2),
            );
        }
        println!();
    }
    if want("b") {
        println!(
            "## Workload B — restart: {} retained messages + {} sessions, populated in commits of {} (median of {})",
            o.retained, o.b_sessions, o.b_commit, o.runs
        );
        println!();
        println!(
            "| candidate | populate s | populate device MiB | dir MiB (allocated) | cold open s | cold open+load s | warm open s | warm open+load s | other processes' CPU s (max of runs) |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut snap_rows = Vec::new();
        let results = measure(
            o,
            "b",
            &o.candidates,
            |c| run_b(c, o),
            |b| b.populate_secs + b.warm_total * 3.0,
            |b| b.foreign_cpu,
            |b| {
                format!(
                    "populate {:.2}s dir {} B cold {:.3}s warm {:.3}s",
                    b.populate_secs, b.dir_apparent, b.cold_total, b.warm_total
                )
            },
        );
        for (name, runs) in results {
            let runs = match runs {
                Ok(r) => r,
                Err(e) => {
                    println!("| {name} | error: {e} |");
                    continue;
                }
            };
            let m = |f: &dyn Fn(&BRun) -> f64| median(runs.iter().map(f).collect());
            println!(
                "| {name} | {} | {} | {} ({}) | {} | {} | {} | {} | {} |",
                fmt(m(&|b| b.populate_secs), 2),
                fmt(m(&|b| b.populate_dev / MIB), 1),
                fmt(m(&|b| b.dir_apparent as f64 / MIB), 1),
                fmt(m(&|b| b.dir_alloc as f64 / MIB), 1),
                fmt(m(&|b| b.cold_open), 3),
                fmt(m(&|b| b.cold_total), 3),
                fmt(m(&|b| b.warm_open), 3),
                fmt(m(&|b| b.warm_total), 3),
                fmt(runs.iter().map(|b| b.foreign_cpu).fold(0.0, f64::max), 2),
            );
            if runs[0].snap.is_some() {
                snap_rows.push(format!(
                    "| {name} (after snapshot) | {} | {} | {} |",
                    fmt(m(&|b| b.snap.unwrap().0 as f64 / MIB), 1),
                    fmt(m(&|b| b.snap.unwrap().1), 3),
                    fmt(m(&|b| b.snap.unwrap().2), 3),
                ));
            }
        }
        let floor = median((0..o.runs).map(|_| in_memory_floor(o)).collect());
        println!(
            "| (floor: build the same HashMaps from memory) | | | | | | | {} | |",
            fmt(floor, 3)
        );
        println!();
        if !snap_rows.is_empty() {
            println!("| variant | dir MiB | cold open+load s | warm open+load s |");
            println!("|---|---:|---:|---:|");
            for r in snap_rows {
                println!("{r}");
            }
            println!();
        }
    }
    if want("torn") {
        println!(
            "## Torn tail — {} commits of {} retained messages, then the most recently modified file is damaged",
            o.torn_commits, o.torn_per_commit
        );
        println!();
        println!(
            "| candidate | cut last 7 bytes | cut last 4103 bytes | invert last 16 bytes | SIGKILL while committing |"
        );
        println!("|---|---|---|---|---|");
        for name in &o.candidates {
            let c = make_candidate(name, o);
            let mut cells = Vec::new();
            for damage in ["cut7", "cut4103", "flip"] {
                cells.push(match run_torn(c.as_ref(), o, damage) {
                    Ok(s) => s,
                    Err(e) => format!("test error: {e}"),
                });
            }
            cells.push(match run_kill(c.as_ref(), o) {
                Ok(s) => s,
                Err(e) => format!("test error: {e}"),
            });
            println!("| {name} | {} |", cells.join(" | "));
        }
        println!();
    }
    if o.dir.exists() {
        fs::remove_dir_all(&o.dir)?;
    }
    Ok(())
}
