//! [`DurableStore`]: the embedded durable store, an append-only log with a checksum per
//! record, group commit, snapshots and compaction (the decision and its measurements are in
//! `docs/adr/0002-persistence.md`).
//!
//! # Files
//!
//! In the data directory: `log-N` files hold records in the order they happened; `snapshot-N`
//! holds the whole state at the start of `log-N`, ending with an end record. Loading reads the
//! newest complete snapshot and the logs from its number on. `LOCK` is held (an advisory lock)
//! while a store is open, so two brokers never share a directory. Every file is created with
//! mode 0600 and the directory with 0700; a snapshot is written to `snapshot-N.tmp`, synced,
//! renamed, and the directory synced, before the files it replaces are deleted.
//!
//! # Threads
//!
//! Records are appended to an in-memory buffer under the store's lock by whoever records them
//! (a connection's task). The *sync thread* writes the buffer to the current log and syncs it
//! as the [`SyncPolicy`] says, then advances [`SessionStore::durable`]. When the logs since the
//! last snapshot outgrow it, the sync thread starts a new log and hands a copy of the state to
//! the *compaction thread*, which writes the snapshot and deletes what it replaces.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use mqtt_codec::{Publish, TopicName};

use super::record::{
    self, FRAME_LEN, FileKind, HEADER_LEN, QueuedRecord, Record, decode_publish, frame,
    frame_header,
};
use super::state::{FileId, Location, State};
use super::{Recovered, RecoveryReport, SessionStore, StoredRetained};
use crate::session::{Change, Delivery, DeliveryExtras, Spilled, StoredInflight, StoredSession};
use mqtt_topic::MqttString;

/// When an acknowledgement may go out: how the store syncs what it writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SyncPolicy {
    /// Every write is synced (fdatasync) at once; an acknowledgement waits for the sync of its
    /// record. Records that arrive during a sync share the next one.
    Always,
    /// Group commit: writes are gathered for [`StoreOptions::batch_interval`], then written and
    /// synced together; an acknowledgement still waits for its batch's sync. Nothing
    /// acknowledged is lost; acknowledgements take up to the interval longer.
    #[default]
    Batch,
    /// Writes are handed to the operating system without syncing, and acknowledgements do not
    /// wait for them: a crash of the broker may lose the last few milliseconds, a crash of
    /// the machine what the operating system had not written yet.
    Never,
}

impl std::str::FromStr for SyncPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(Self::Always),
            "batch" => Ok(Self::Batch),
            "never" => Ok(Self::Never),
            other => Err(format!(
                "unknown sync policy `{other}` (always, batch or never)"
            )),
        }
    }
}

impl std::fmt::Display for SyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Always => "always",
            Self::Batch => "batch",
            Self::Never => "never",
        })
    }
}

/// How a [`DurableStore`] works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// When writes are synced.
    pub sync: SyncPolicy,
    /// With [`SyncPolicy::Batch`], how long writes are gathered before a sync.
    pub batch_interval: Duration,
    /// A snapshot is written once the logs since the last one hold this many bytes (or more
    /// than the last snapshot, whichever is larger).
    pub compact_after: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            sync: SyncPolicy::Batch,
            batch_interval: Duration::from_millis(2),
            compact_after: 64 * 1024 * 1024,
        }
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file or the directory could not be created, read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the directory's lock.
    #[error("{path} is in use by another process (its LOCK file is locked)")]
    Locked {
        /// The directory.
        path: PathBuf,
    },
}

/// The two clocks at one moment: the store keeps wall-clock times on disk (an `Instant` means
/// nothing to the next process) and the broker works with `Instant`s.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    instant: Instant,
    wall_ms: u64,
}

impl Anchor {
    fn new(instant: Instant, wall: SystemTime) -> Self {
        let wall_ms = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self { instant, wall_ms }
    }

    /// Milliseconds since the Unix epoch at `instant`.
    fn wall(&self, instant: Instant) -> u64 {
        match instant.checked_duration_since(self.instant) {
            Some(after) => self.wall_ms.saturating_add(millis(after)),
            None => self
                .wall_ms
                .saturating_sub(millis(self.instant.duration_since(instant))),
        }
    }

    /// The instant of a wall-clock time (times before this process started are its start).
    fn instant(&self, wall_ms: u64) -> Instant {
        if wall_ms >= self.wall_ms {
            self.instant + Duration::from_millis(wall_ms - self.wall_ms)
        } else {
            self.instant
                .checked_sub(Duration::from_millis(self.wall_ms - wall_ms))
                .unwrap_or(self.instant)
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What the store's lock protects.
struct Inner {
    state: State,
    /// Records appended and not yet taken by the sync thread.
    pending: BytesMut,
    /// Records appended so far (the sequence number of the last one).
    appended: u64,
    /// The log new records go to, and its length counting what is pending.
    segment: u64,
    segment_len: u64,
    /// How far the files go: the log the sync thread last wrote, its length on disk, and the
    /// sequence number written.
    written_segment: u64,
    written_len: u64,
    written_lsn: u64,
    /// Open files, for reading messages back.
    files: HashMap<FileId, Arc<File>>,
    /// Messages whose records are not written yet, in the order appended: (log, end of the
    /// record, message). Their bodies stay in memory until then.
    unwritten: std::collections::VecDeque<(u64, u64, u64)>,
    /// The next routing group.
    next_group: u64,
    /// Log bytes since the last snapshot, and that snapshot's size.
    since_snapshot: u64,
    snapshot_len: u64,
    compacting: bool,
    /// A snapshot is wanted now ([`DurableStore::compact_now`]).
    force: bool,
    stop: bool,
}

type Callback = Box<dyn Fn(u64) + Send + Sync>;

thread_local! {
    /// The routing group records appended on this thread belong to (0: none): see
    /// [`SessionStore::begin_group`].
    static GROUP: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The largest record a file may hold: a message of the protocol's maximum size and its
/// framing. A longer length field is damage (and is never allocated).
const MAX_RECORD: u64 = mqtt_codec::PROTOCOL_MAX_PACKET_SIZE as u64 + 4096;

/// Bytes waiting to be written beyond which recording waits for the disk: a stalled disk
/// slows the broker down instead of filling its memory.
const MAX_PENDING: usize = 256 * 1024 * 1024;

/// The compaction thread, and how to give it a snapshot to write.
type Compactor = (mpsc::Sender<(u64, State)>, JoinHandle<()>);

struct Shared {
    dir: PathBuf,
    options: StoreOptions,
    anchor: Anchor,
    inner: Mutex<Inner>,
    /// Wakes the sync thread: records are pending, or the store stops.
    work: Condvar,
    /// Wakes those waiting for a write or a sync.
    progress: Condvar,
    durable: AtomicU64,
    callback: RwLock<Option<Callback>>,
    /// Held for the store's life: the directory's advisory lock.
    _lock: File,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Nudges the sync thread and waits, at most `limit`, while `waiting` holds (or until the
    /// store stops).
    fn wait_while<'a>(
        &'a self,
        mut g: MutexGuard<'a, Inner>,
        limit: Duration,
        waiting: impl Fn(&Inner) -> bool,
    ) -> MutexGuard<'a, Inner> {
        // No deadline for a limit beyond what an instant can hold.
        let deadline = Instant::now().checked_add(limit);
        while waiting(&g) && !g.stop && deadline.is_none_or(|d| Instant::now() < d) {
            self.work.notify_one();
            g = self
                .progress
                .wait_timeout(g, Duration::from_millis(20))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        g
    }
}

/// The embedded durable store (see the module documentation).
pub struct DurableStore {
    shared: Arc<Shared>,
    sync_thread: Mutex<Option<JoinHandle<()>>>,
    compactor: Mutex<Option<Compactor>>,
}

impl std::fmt::Debug for DurableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableStore")
            .field("dir", &self.shared.dir)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

fn file_name(kind: FileKind, number: u64) -> String {
    match kind {
        FileKind::Log => format!("log-{number:020}"),
        FileKind::Snapshot => format!("snapshot-{number:020}"),
    }
}

fn parse_name(name: &str) -> Option<FileId> {
    let (kind, number) = if let Some(n) = name.strip_prefix("log-") {
        (FileKind::Log, n)
    } else {
        (FileKind::Snapshot, name.strip_prefix("snapshot-")?)
    };
    if number.len() != 20 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(FileId {
        number: number.parse().ok()?,
        kind,
    })
}

fn create_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A new, empty file of this kind, synced, with its directory entry synced.
fn create_store_file(dir: &Path, kind: FileKind, number: u64) -> std::io::Result<File> {
    let path = dir.join(file_name(kind, number));
    let file = create_file(&path)?;
    let written = file
        .write_all_at(&record::header(kind), 0)
        .and_then(|()| file.sync_all())
        .and_then(|()| sync_dir(dir));
    if let Err(e) = written {
        // Half made: gone, so that the next try can create it again.
        drop(file);
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(file)
}

/// What reading one file found.
struct FileRead {
    /// Bytes of valid records (with the header).
    valid_len: u64,
    /// Whether the file had bytes past them (a torn or damaged tail).
    damaged: bool,
    /// Whether an end record was read (a complete snapshot).
    complete: bool,
    records: u64,
}

/// Reads the records of a file, applying each to `state`, until the end or the first record that
/// does not check out.
fn read_file(path: &Path, id: FileId, state: &mut State) -> std::io::Result<FileRead> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut read = FileRead {
        valid_len: 0,
        damaged: true,
        complete: false,
        records: 0,
    };
    let mut head = [0u8; HEADER_LEN as usize];
    if reader.read_exact(&mut head).is_err() || !record::header_ok(&head, id.kind) {
        return Ok(read);
    }
    let mut offset = HEADER_LEN;
    loop {
        read.valid_len = offset;
        if offset == file_len {
            read.damaged = false;
            return Ok(read);
        }
        let mut frame_head = [0u8; FRAME_LEN];
        if reader.read_exact(&mut frame_head).is_err() {
            return Ok(read);
        }
        let (len, crc) = frame_header(&frame_head);
        let end = offset + FRAME_LEN as u64 + u64::from(len);
        if end > file_len || u64::from(len) > MAX_RECORD {
            return Ok(read);
        }
        let mut body = vec![0u8; len as usize];
        if reader.read_exact(&mut body).is_err() || !record::check(&body, crc) {
            return Ok(read);
        }
        let Ok(rec) = Record::decode(Bytes::from(body)) else {
            return Ok(read);
        };
        if !rec.packets_decode() {
            return Ok(read);
        }
        let loc = Location {
            file: id,
            offset,
            len: u32::try_from(end - offset).unwrap_or(u32::MAX),
        };
        read.records += 1;
        offset = end;
        if let Record::End { .. } = rec {
            read.valid_len = offset;
            read.complete = true;
            read.damaged = offset != file_len;
            return Ok(read);
        }
        state.apply(rec, loc);
    }
}

/// Reads the message record at `loc`.
fn read_message(file: &File, loc: Location) -> Option<Publish> {
    let mut buf = vec![0u8; loc.len as usize];
    file.read_exact_at(&mut buf, loc.offset).ok()?;
    let body = buf.split_off(FRAME_LEN);
    let head: [u8; FRAME_LEN] = buf.try_into().ok()?;
    let (len, crc) = frame_header(&head);
    if len as usize != body.len() || !record::check(&body, crc) {
        return None;
    }
    match Record::decode(Bytes::from(body)) {
        Ok(Record::Message { packet, .. }) => decode_publish(&packet),
        _ => None,
    }
}

/// Reads a whole frame (header and body) at `loc`, checked.
fn read_frame(file: &File, loc: Location) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; loc.len as usize];
    file.read_exact_at(&mut buf, loc.offset).ok()?;
    let head: [u8; FRAME_LEN] = buf.get(..FRAME_LEN)?.try_into().ok()?;
    let (len, crc) = frame_header(&head);
    let body = buf.get(FRAME_LEN..)?;
    (len as usize == body.len() && record::check(body, crc)).then_some(buf)
}

impl DurableStore {
    /// Opens (or creates) the store in `dir` and loads what it holds. `now` and `wall` are the
    /// same moment on the broker's clock and on the wall clock: stored times are wall-clock
    /// times, handed back as `Instant`s.
    ///
    /// A torn or damaged tail is cut off at the last valid record, and everything after it is
    /// set aside (renamed `*.damaged`): the store starts with a valid prefix of what it wrote,
    /// and says so in the [`RecoveryReport`]. Only a directory that cannot be used at all is an
    /// error.
    ///
    /// # Errors
    /// The directory cannot be created or read, a file cannot be written, or another process
    /// holds the directory.
    pub fn open(
        dir: &Path,
        options: StoreOptions,
        now: Instant,
        wall: SystemTime,
    ) -> Result<(Self, Recovered), StoreError> {
        let started = Instant::now();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error("cannot create", dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_error("cannot open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io_error("cannot lock", &lock_path)(e));
            }
        }
        let anchor = Anchor::new(now, wall);
        let mut report = RecoveryReport::default();
        let mut ids = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_error("cannot read", dir))? {
            let entry = entry.map_err(io_error("cannot read", dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("snapshot-") && name.ends_with(".tmp") {
                // A snapshot interrupted before its rename: never part of the state.
                let _ = fs::remove_file(entry.path());
            } else if let Some(id) = parse_name(&name) {
                ids.push(id);
            }
        }
        ids.sort();
        let snapshot = ids
            .iter()
            .filter(|id| id.kind == FileKind::Snapshot)
            .map(|id| id.number)
            .max();
        let mut state = State::default();
        let mut usable = true;
        let mut keep = Vec::new();
        let mut since_snapshot = 0;
        let mut snapshot_len = 0;
        if let Some(n) = snapshot {
            let id = FileId {
                number: n,
                kind: FileKind::Snapshot,
            };
            let path = dir.join(file_name(id.kind, n));
            let read = read_file(&path, id, &mut state).map_err(io_error("cannot read", &path))?;
            report.records += read.records;
            snapshot_len = read.valid_len;
            keep.push(id);
            if !read.complete {
                // A snapshot is renamed into place only once complete: this one was damaged
                // on disk. What it holds up to the damage is the valid prefix.
                usable = false;
                report.damaged.push(format!(
                    "{}: damaged after {} bytes; later logs set aside",
                    path.display(),
                    read.valid_len
                ));
            }
        }
        let first_log = snapshot.unwrap_or(0);
        let mut last = snapshot.unwrap_or(0);
        for id in ids.iter().filter(|id| id.kind == FileKind::Log) {
            let path = dir.join(file_name(id.kind, id.number));
            last = last.max(id.number);
            if id.number < first_log {
                // Replaced by the snapshot; its deletion was interrupted.
                let _ = fs::remove_file(&path);
                continue;
            }
            if !usable {
                set_aside(&path, &mut report);
                continue;
            }
            let read = read_file(&path, *id, &mut state).map_err(io_error("cannot read", &path))?;
            if read.records == 0 && !read.damaged {
                // Nothing in it (a start that recorded nothing).
                let _ = fs::remove_file(&path);
                continue;
            }
            report.records += read.records;
            since_snapshot += read.valid_len;
            keep.push(*id);
            if read.damaged {
                usable = false;
                report.damaged.push(format!(
                    "{}: torn or damaged after {} bytes; cut there",
                    path.display(),
                    read.valid_len
                ));
                if read.valid_len < HEADER_LEN {
                    // Not even a header: a log whose creation was cut short.
                    keep.pop();
                    fs::remove_file(&path).map_err(io_error("cannot remove", &path))?;
                } else {
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io_error("cannot open", &path))?;
                    file.set_len(read.valid_len)
                        .and_then(|()| file.sync_all())
                        .map_err(io_error("cannot truncate", &path))?;
                }
            }
        }
        // Older snapshots were replaced; their deletion was interrupted.
        for id in ids
            .iter()
            .filter(|id| id.kind == FileKind::Snapshot && Some(id.number) != snapshot)
        {
            let _ = fs::remove_file(dir.join(file_name(id.kind, id.number)));
        }
        report.uncommitted = state.drop_uncommitted();
        state.drop_unreferenced();
        // Routing groups are never numbered again: a later commit cannot take an old copy.
        let next_group = state.max_group.saturating_add(1);
        report.inconsistencies = state.inconsistencies;
        let mut files = HashMap::new();
        for id in keep {
            let path = dir.join(file_name(id.kind, id.number));
            let file = File::open(&path).map_err(io_error("cannot open", &path))?;
            files.insert(id, Arc::new(file));
        }
        let segment = last + 1;
        let path = dir.join(file_name(FileKind::Log, segment));
        let file = create_store_file(dir, FileKind::Log, segment)
            .map_err(io_error("cannot create", &path))?;
        files.insert(
            FileId {
                number: segment,
                kind: FileKind::Log,
            },
            Arc::new(file),
        );
        let inner = Inner {
            state,
            pending: BytesMut::new(),
            appended: 0,
            segment,
            segment_len: HEADER_LEN,
            written_segment: segment,
            written_len: HEADER_LEN,
            written_lsn: 0,
            files,
            unwritten: std::collections::VecDeque::new(),
            next_group,
            since_snapshot,
            snapshot_len,
            compacting: false,
            force: false,
            stop: false,
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            options,
            anchor,
            inner: Mutex::new(inner),
            work: Condvar::new(),
            progress: Condvar::new(),
            durable: AtomicU64::new(0),
            callback: RwLock::new(None),
            _lock: lock,
        });
        if !report.damaged.is_empty() || report.uncommitted > 0 {
            // What survived becomes a complete snapshot at once, replacing the damaged files
            // and the copies of uncommitted routings: the next start must not meet the damage
            // (and set aside what came after) again, nor drop entries that reuse the numbers
            // of those copies.
            let state = {
                let mut g = shared.lock();
                g.since_snapshot = 0;
                g.state.clone()
            };
            let snapshot = shared.dir.join(file_name(FileKind::Snapshot, segment));
            compact(&shared, segment, &state)
                .map_err(io_error("cannot write the recovered state to", &snapshot))?;
        }
        let recovered = recover(&shared, &mut report);
        report.elapsed = started.elapsed();
        let store = Self::start(shared);
        Ok((
            store,
            Recovered {
                report,
                ..recovered
            },
        ))
    }

    fn start(shared: Arc<Shared>) -> Self {
        let (tx, rx) = mpsc::channel();
        let sync = {
            let shared = Arc::clone(&shared);
            let tx = tx.clone();
            std::thread::Builder::new()
                .name("mqtt-store-sync".into())
                .spawn(move || sync_loop(&shared, &tx))
                .ok()
        };
        let compactor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("mqtt-store-compact".into())
                .spawn(move || {
                    while let Ok((number, state)) = rx.recv() {
                        // A failure is logged, and the next growth of the logs tries again.
                        let _ = compact(&shared, number, &state);
                    }
                })
                .ok()
        };
        Self {
            shared,
            sync_thread: Mutex::new(sync),
            compactor: Mutex::new(compactor.map(|c| (tx, c))),
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// How the store works.
    pub fn options(&self) -> StoreOptions {
        self.shared.options
    }

    /// Records that named a session, entry or message the store did not have (0 unless the
    /// files were damaged, or a caller recorded changes out of order).
    pub fn inconsistencies(&self) -> u64 {
        self.shared.lock().state.inconsistencies
    }

    /// A copy of the store's state (for tests).
    #[cfg(test)]
    pub(crate) fn state(&self) -> State {
        self.shared.lock().state.clone()
    }

    /// Persistent sessions held.
    pub fn session_count(&self) -> usize {
        self.shared.lock().state.sessions.len()
    }

    /// Messages referenced by queued or in-flight entries.
    pub fn message_count(&self) -> usize {
        self.shared.lock().state.messages.len()
    }

    /// Writes a snapshot now (as the store does by itself when the logs grow), and waits for
    /// it. For tests and tools.
    pub fn compact_now(&self) {
        let mut g = self.shared.lock();
        g.force = true;
        drop(
            self.shared
                .wait_while(g, Duration::from_secs(300), |g| g.force || g.compacting),
        );
    }
}

/// Moves a file that can no longer be part of the state out of the way (kept for inspection).
fn set_aside(path: &Path, report: &mut RecoveryReport) {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".damaged");
    let _ = fs::rename(path, &aside);
    report.damaged.push(format!(
        "{}: after a damaged record; renamed to {}",
        path.display(),
        Path::new(&aside).display()
    ));
}

/// Builds what the broker restores from the loaded state: messages in flight are read back
/// now; queued ones stay on disk.
fn recover(shared: &Shared, report: &mut RecoveryReport) -> Recovered {
    let anchor = shared.anchor;
    let g = shared.lock();
    let mut sessions = Vec::new();
    let summary = |e: &super::state::EntryState| {
        let size = g.state.messages.get(&e.mid)?.size;
        Some(Spilled {
            qos: e.qos,
            size: usize::try_from(size).unwrap_or(usize::MAX),
            expires_at: e.expires.map(|w| anchor.instant(w)),
            shared: e.shared.is_some(),
        })
    };
    for s in g.state.sessions.values() {
        let Ok(client_id) = MqttString::try_from(s.client_id.as_str()) else {
            report.inconsistencies += 1;
            continue;
        };
        let inflight = s
            .inflight
            .iter()
            .filter_map(|&entry| {
                let e = s.entries.get(&entry)?;
                let (id, received) = e.flight?;
                Some(StoredInflight {
                    entry,
                    id,
                    spilled: summary(e)?,
                    received,
                })
            })
            .collect();
        let queue = s
            .entries
            .iter()
            .filter(|(_, e)| e.flight.is_none())
            .filter_map(|(&entry, e)| Some((entry, summary(e)?)))
            .collect();
        let delayed_will = s.will.as_ref().and_then(|w| {
            let publish = decode_publish(&w.packet)?;
            Some((anchor.instant(w.at), record::will_from(publish, w.delay)))
        });
        let connection_will = s.connection_will.as_ref().and_then(|w| {
            let publish = decode_publish(&w.packet)?;
            Some(record::will_from(publish, w.delay))
        });
        sessions.push(StoredSession {
            connection_will,
            client_id,
            expiry_interval: s.expiry,
            subscriptions: s
                .subscriptions
                .iter()
                .map(|(f, d)| (f.clone(), *d))
                .collect(),
            inflight,
            queue,
            incoming_qos2: s.incoming.iter().copied().collect(),
            detached_at: s.detached_at.map(|w| anchor.instant(w)),
            delayed_will,
        });
    }
    let retained = g
        .state
        .retained
        .values()
        .map(|r| StoredRetained {
            publish: Arc::clone(&r.publish),
            qos: r.qos,
            expires_at: r.expires.map(|w| anchor.instant(w)),
        })
        .collect();
    report.sessions = sessions.len();
    Recovered {
        sessions,
        retained,
        report: RecoveryReport::default(),
    }
}

/// The delivery a stored entry stands for.
fn delivery(anchor: &Anchor, publish: Arc<Publish>, e: &super::state::EntryState) -> Delivery {
    Delivery::new(publish, e.qos, e.retain).with_extras(DeliveryExtras {
        expires_at: e.expires.map(|w| anchor.instant(w)),
        identifiers: e.identifiers.clone(),
        shared: e.shared.clone(),
    })
}

/// Appends one record (not a message or a retained message: those have their own writers).
fn push(g: &mut Inner, record: Record) {
    let offset = g.segment_len;
    let n = frame(&mut g.pending, |b| record.put(b));
    let loc = Location {
        file: FileId {
            number: g.segment,
            kind: FileKind::Log,
        },
        offset,
        len: u32::try_from(n).unwrap_or(u32::MAX),
    };
    advance(g, n);
    g.state.apply(record, loc);
}

/// Accounts for `n` bytes appended.
fn advance(g: &mut Inner, n: usize) {
    g.segment_len += n as u64;
    g.since_snapshot += n as u64;
    g.appended += 1;
}

/// The location the next record will have.
fn next_location(g: &Inner, len: usize) -> Location {
    Location {
        file: FileId {
            number: g.segment,
            kind: FileKind::Log,
        },
        offset: g.segment_len,
        len: u32::try_from(len).unwrap_or(u32::MAX),
    }
}

impl Shared {
    /// The message number of a delivery's message, appending its record if it is new.
    fn message(&self, g: &mut Inner, publish: &Arc<Publish>) -> u64 {
        if let Some(&mid) = g.state.by_ptr.get(&super::state::ptr(publish)) {
            return mid;
        }
        let mid = g.state.next_mid.max(1);
        let start = g.pending.len();
        let n = frame(&mut g.pending, |b| record::put_message(b, mid, publish));
        debug_assert_eq!(g.pending.len() - start, n);
        let loc = next_location(g, n);
        advance(g, n);
        g.state.add_live_message(mid, publish, loc);
        g.unwritten
            .push_back((loc.file.number, loc.offset + u64::from(loc.len), mid));
        mid
    }

    fn append_change(&self, g: &mut Inner, client_id: &str, change: Change) {
        let sid = g.state.sids.get(client_id).copied();
        let wall = |i: Instant| self.anchor.wall(i);
        let Some(sid) = sid.or_else(|| match change {
            Change::Expiry(secs) if secs > 0 => {
                let sid = g.state.next_sid.max(1);
                push(
                    g,
                    Record::Open {
                        sid,
                        client_id: client_id.to_owned(),
                    },
                );
                Some(sid)
            }
            // Nothing stored to end.
            Change::Expiry(_) | Change::Ended => None,
            _ => {
                g.state.inconsistencies += 1;
                None
            }
        }) else {
            return;
        };
        let record = match change {
            Change::Expiry(0) | Change::Ended => Record::Ended { sid },
            Change::Expiry(secs) => Record::Expiry { sid, secs },
            Change::Cleared => Record::Cleared { sid },
            Change::Subscribed(filter, data) => Record::Subscribed { sid, filter, data },
            Change::Unsubscribed(filter) => Record::Unsubscribed { sid, filter },
            Change::Queued { entry, delivery } => {
                let mid = self.message(g, &delivery.publish);
                Record::Queued(QueuedRecord {
                    sid,
                    entry,
                    mid,
                    qos: delivery.qos,
                    retain: delivery.retain,
                    expires: delivery.expires_at().map(wall),
                    identifiers: delivery.identifiers().to_vec(),
                    shared: delivery.shared().cloned(),
                    group: GROUP.with(std::cell::Cell::get),
                })
            }
            Change::Sent { entry, id } => Record::Sent { sid, entry, id },
            Change::Received { entry } => Record::Received { sid, entry },
            Change::Removed { entry } => Record::Removed { sid, entry },
            Change::IncomingQos2(id) => Record::IncomingQos2 { sid, id, group: 0 },
            Change::IncomingReleased(id) => Record::IncomingReleased { sid, id },
            Change::Attached { will } => match will {
                Some(will) => {
                    let mut packet = BytesMut::new();
                    record::put_publish(&mut packet, &record::will_publish(&will));
                    Record::Attached {
                        sid,
                        will_delay: will.properties.will_delay_interval.unwrap_or(0),
                        will: packet.freeze(),
                    }
                }
                None => Record::Attached {
                    sid,
                    will_delay: 0,
                    will: Bytes::new(),
                },
            },
            Change::Detached { at } => Record::Detached { sid, at: wall(at) },
            Change::DelayedWill { at, will } => {
                let mut packet = BytesMut::new();
                record::put_publish(&mut packet, &record::will_publish(&will));
                Record::DelayedWill {
                    sid,
                    at: wall(at),
                    delay: will.properties.will_delay_interval.unwrap_or(0),
                    packet: packet.freeze(),
                }
            }
            Change::WillDone => Record::WillDone { sid },
        };
        push(g, record);
    }

    /// Waits while more than [`MAX_PENDING`] bytes wait for the disk.
    fn throttle<'a>(&'a self, g: MutexGuard<'a, Inner>) -> MutexGuard<'a, Inner> {
        self.wait_while(g, Duration::MAX, |g| g.pending.len() > MAX_PENDING)
    }
}

impl SessionStore for DurableStore {
    fn is_durable(&self) -> bool {
        true
    }

    fn record(&self, client_id: &str, changes: Vec<Change>) -> u64 {
        let mut g = self.shared.throttle(self.shared.lock());
        let before = g.appended;
        for change in changes {
            self.shared.append_change(&mut g, client_id, change);
        }
        let lsn = g.appended;
        drop(g);
        if lsn != before {
            self.shared.work.notify_one();
        }
        lsn
    }

    fn retain(&self, topic: &TopicName, message: Option<&StoredRetained>) -> u64 {
        let mut g = self.shared.throttle(self.shared.lock());
        // Inside a routing group, the change counts only with the group's commit.
        let group = GROUP.with(std::cell::Cell::get);
        match message {
            Some(m) => {
                let expires = m.expires_at.map(|i| self.shared.anchor.wall(i));
                let n = frame(&mut g.pending, |b| {
                    record::put_retained(b, &m.publish, m.qos, expires, group);
                });
                advance(&mut g, n);
                g.state
                    .set_retained(Arc::clone(&m.publish), m.qos, expires, group);
            }
            None => push(
                &mut g,
                Record::Unretained {
                    group,
                    topic: topic.clone(),
                },
            ),
        }
        let lsn = g.appended;
        drop(g);
        self.shared.work.notify_one();
        lsn
    }

    fn begin_group(&self) -> u64 {
        let group = {
            let mut g = self.shared.lock();
            let group = g.next_group;
            g.next_group += 1;
            group
        };
        GROUP.with(|c| c.set(group));
        group
    }

    fn commit_group(&self, group: u64, marker: Option<(&str, mqtt_codec::PacketId)>) -> u64 {
        GROUP.with(|c| c.set(0));
        let mut g = self.shared.lock();
        let sid =
            marker.and_then(|(client_id, id)| Some((g.state.sids.get(client_id).copied()?, id)));
        match sid {
            Some((sid, id)) => push(&mut g, Record::IncomingQos2 { sid, id, group }),
            None => push(&mut g, Record::GroupCommit { group }),
        }
        let lsn = g.appended;
        drop(g);
        self.shared.work.notify_one();
        lsn
    }

    fn appended(&self) -> u64 {
        self.shared.lock().appended
    }

    fn durable(&self) -> u64 {
        if self.shared.options.sync == SyncPolicy::Never {
            u64::MAX
        } else {
            self.shared.durable.load(Ordering::Acquire)
        }
    }

    fn on_durable(&self, f: Box<dyn Fn(u64) + Send + Sync>) {
        *self
            .shared
            .callback
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(f);
    }

    fn load_queued(&self, client_id: &str, entries: &[u64]) -> Vec<(u64, Option<Delivery>)> {
        let anchor = self.shared.anchor;
        let g = self.shared.lock();
        let Some(&sid) = g.state.sids.get(client_id) else {
            return entries.iter().map(|&e| (e, None)).collect();
        };
        let mut out = Vec::with_capacity(entries.len());
        // A message not yet written is still in memory; what is not is in a file, read with
        // the handle taken now (a compaction may replace the file meanwhile; the handle keeps
        // it readable).
        let mut to_read = Vec::new();
        for &entry in entries {
            let found = g
                .state
                .sessions
                .get(&sid)
                .and_then(|s| s.entries.get(&entry))
                .and_then(|e| g.state.messages.get(&e.mid).map(|m| (e, m)));
            let Some((e, m)) = found else {
                out.push((entry, None));
                continue;
            };
            match m.live.upgrade() {
                Some(publish) => out.push((entry, Some(delivery(&anchor, publish, e)))),
                None => match g.files.get(&m.loc.file) {
                    Some(file) => {
                        to_read.push((entry, e.clone(), e.mid, Arc::clone(file), m.loc));
                    }
                    None => out.push((entry, None)),
                },
            }
        }
        drop(g);
        if to_read.is_empty() {
            return out;
        }
        let mut bodies: HashMap<u64, Option<Arc<Publish>>> = HashMap::new();
        for (_, _, mid, file, loc) in &to_read {
            bodies
                .entry(*mid)
                .or_insert_with(|| read_message(file, *loc).map(Arc::new));
        }
        let mut g = self.shared.lock();
        for (entry, e, mid, _, _) in to_read {
            match bodies.get(&mid).cloned().flatten() {
                Some(publish) => {
                    g.state.set_live(mid, &publish);
                    out.push((entry, Some(delivery(&anchor, publish, &e))));
                }
                None => out.push((entry, None)),
            }
        }
        out
    }

    fn flush(&self) {
        let g = self.shared.lock();
        let target = g.appended;
        let g = self
            .shared
            .wait_while(g, Duration::from_secs(30), |g| g.written_lsn < target);
        if g.written_lsn < target {
            tracing::error!(
                dir = %self.shared.dir.display(),
                unwritten = target - g.written_lsn,
                "store: records not written within 30 s"
            );
        }
    }
}

impl Drop for DurableStore {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.work.notify_all();
        self.shared.progress.notify_all();
        if let Some(t) = self
            .sync_thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = t.join();
        }
        if let Some((sender, t)) = self
            .compactor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            drop(sender);
            let _ = t.join();
        }
    }
}

/// Starts a new log for the records appended from now on, and returns its number with a copy
/// of the state at this boundary: the snapshot to write.
fn rotate(g: &mut Inner) -> (u64, State) {
    g.force = false;
    g.segment += 1;
    g.segment_len = HEADER_LEN;
    g.since_snapshot = 0;
    g.compacting = true;
    (g.segment, g.state.clone())
}

/// Writes all of `bytes` at the end of `file` (which is `len` long), retrying after an error
/// until it succeeds or the store stops; returns whether it succeeded.
fn write_durably(shared: &Shared, file: &File, len: u64, bytes: &[u8], sync: bool) -> bool {
    let mut failures = 0u32;
    loop {
        let result = file
            .write_all_at(bytes, len)
            .and_then(|()| if sync { file.sync_data() } else { Ok(()) });
        match result {
            Ok(()) => return true,
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::error!(dir = %shared.dir.display(), error = %e, failures,
                        "store: cannot write; acknowledgements wait until it can");
                }
                // Whatever part was written is cut off before the next try.
                let _ = file.set_len(len);
                if shared.lock().stop && failures > 3 {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(100).saturating_mul(failures.min(10)));
            }
        }
    }
}

fn sync_loop(shared: &Shared, compactor: &mpsc::Sender<(u64, State)>) {
    let options = shared.options;
    loop {
        let mut g = shared.lock();
        let wanted = |g: &Inner| g.force && !g.compacting;
        while g.pending.is_empty() && !g.stop && !wanted(&g) {
            g = shared.work.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
        if g.pending.is_empty() && g.stop {
            break;
        }
        // Writes are gathered for the batch interval (with `never` too: fewer, larger
        // writes), except with `always`, which syncs each one at once.
        if options.sync != SyncPolicy::Always && !g.stop {
            drop(g);
            std::thread::sleep(options.batch_interval);
            g = shared.lock();
        }
        let batch = g.pending.split().freeze();
        let lsn = g.appended;
        let segment = g.segment;
        let written_len = if g.written_segment == segment {
            g.written_len
        } else {
            HEADER_LEN
        };
        let file = g
            .files
            .get(&FileId {
                number: segment,
                kind: FileKind::Log,
            })
            .cloned();
        let threshold = options.compact_after.max(g.snapshot_len);
        let snapshot =
            (!g.compacting && (g.force || g.since_snapshot >= threshold)).then(|| rotate(&mut g));
        drop(g);
        let Some(file) = file else {
            tracing::error!("store: the current log is not open; records lost");
            continue;
        };
        if !write_durably(
            shared,
            &file,
            written_len,
            &batch,
            options.sync != SyncPolicy::Never,
        ) {
            tracing::error!(
                records = lsn,
                "store: stopping with records that could not be written"
            );
            break;
        }
        let next = snapshot.as_ref().map(|(number, _)| {
            let path = shared.dir.join(file_name(FileKind::Log, *number));
            loop {
                match create_store_file(&shared.dir, FileKind::Log, *number) {
                    Ok(f) => break Some(f),
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "store: cannot create the next log");
                        if shared.lock().stop {
                            break None;
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            }
        });
        let mut g = shared.lock();
        g.written_segment = segment;
        g.written_len = written_len + batch.len() as u64;
        g.written_lsn = lsn;
        // Messages now in the file no longer need their bodies kept in memory.
        let written_end = g.written_len;
        while let Some(&(log, end, mid)) = g.unwritten.front() {
            if log > segment || (log == segment && end > written_end) {
                break;
            }
            g.unwritten.pop_front();
            g.state.unpin(mid);
        }
        if let (Some((number, _)), Some(Some(f))) = (&snapshot, next) {
            g.files.insert(
                FileId {
                    number: *number,
                    kind: FileKind::Log,
                },
                Arc::new(f),
            );
            g.written_segment = *number;
            g.written_len = HEADER_LEN;
        }
        drop(g);
        shared.durable.store(lsn, Ordering::Release);
        shared.progress.notify_all();
        if let Some(callback) = shared
            .callback
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            callback(lsn);
        }
        if let Some(job) = snapshot {
            let _ = compactor.send(job);
        }
    }
    // A last sync, whatever the policy, for a clean stop.
    let g = shared.lock();
    let file = g
        .files
        .get(&FileId {
            number: g.written_segment,
            kind: FileKind::Log,
        })
        .cloned();
    drop(g);
    if let Some(f) = file {
        let _ = f.sync_all();
    }
}

/// Writes `snapshot-N` from `state` (the state at the start of `log-N`), then deletes the files
/// it replaces. On failure nothing is deleted: the logs stay until a snapshot succeeds.
fn compact(shared: &Shared, number: u64, state: &State) -> std::io::Result<()> {
    let started = Instant::now();
    let result = write_snapshot(shared, number, state);
    let mut g = shared.lock();
    g.compacting = false;
    let (len, moved, file) = match result {
        Ok(written) => written,
        Err(e) => {
            tracing::error!(error = %e, "store: cannot write a snapshot; keeping the logs");
            // The logs before this one are still needed: count them again.
            g.since_snapshot = g.since_snapshot.saturating_add(g.snapshot_len.max(1));
            drop(g);
            shared.progress.notify_all();
            return Err(e);
        }
    };
    let id = FileId {
        number,
        kind: FileKind::Snapshot,
    };
    for (mid, loc) in moved {
        if let Some(m) = g.state.messages.get_mut(&mid)
            && m.loc.file.number < number
        {
            m.loc = loc;
        }
    }
    g.files.insert(id, Arc::new(file));
    let old: Vec<FileId> = g
        .files
        .keys()
        .filter(|f| f.number < number)
        .copied()
        .collect();
    for f in &old {
        g.files.remove(f);
    }
    g.snapshot_len = len;
    drop(g);
    for f in old {
        let _ = fs::remove_file(shared.dir.join(file_name(f.kind, f.number)));
    }
    let _ = sync_dir(&shared.dir);
    tracing::info!(
        snapshot = number,
        bytes = len,
        sessions = state.sessions.len(),
        retained = state.retained.len(),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "store: snapshot written, older files removed"
    );
    shared.progress.notify_all();
    Ok(())
}

/// What writing a snapshot gives: its length, where each message now lies in it, and the
/// file (open, to read messages back).
type Snapshot = (u64, Vec<(u64, Location)>, File);

/// Writes the snapshot file.
fn write_snapshot(shared: &Shared, number: u64, state: &State) -> std::io::Result<Snapshot> {
    let files = shared.lock().files.clone();
    let id = FileId {
        number,
        kind: FileKind::Snapshot,
    };
    let tmp = shared
        .dir
        .join(format!("{}.tmp", file_name(FileKind::Snapshot, number)));
    let _ = fs::remove_file(&tmp);
    let file = create_file(&tmp)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, &file);
    out.write_all(&record::header(FileKind::Snapshot))?;
    let mut offset = HEADER_LEN;
    let mut records = 0u64;
    let mut moved = Vec::with_capacity(state.messages.len());
    let mut buf = BytesMut::new();
    let uncommitted = state.uncommitted();
    let emit = |out: &mut std::io::BufWriter<&File>, buf: &mut BytesMut| -> std::io::Result<u64> {
        out.write_all(buf)?;
        let n = buf.len() as u64;
        buf.clear();
        Ok(n)
    };
    for (&mid, m) in &state.messages {
        let Some(frame_bytes) = files.get(&m.loc.file).and_then(|f| read_frame(f, m.loc)) else {
            // Never dropped for good: the snapshot fails, and the files it would replace stay.
            return Err(std::io::Error::other(format!(
                "the record of message {mid} cannot be read back"
            )));
        };
        out.write_all(&frame_bytes)?;
        moved.push((
            mid,
            Location {
                file: id,
                offset,
                len: m.loc.len,
            },
        ));
        offset += frame_bytes.len() as u64;
        records += 1;
    }
    for (&sid, s) in &state.sessions {
        let mut put = |r: Record, buf: &mut BytesMut| {
            frame(buf, |b| r.put(b));
            records += 1;
        };
        put(
            Record::Open {
                sid,
                client_id: s.client_id.clone(),
            },
            &mut buf,
        );
        put(
            Record::Expiry {
                sid,
                secs: s.expiry,
            },
            &mut buf,
        );
        for (filter, data) in &s.subscriptions {
            put(
                Record::Subscribed {
                    sid,
                    filter: filter.clone(),
                    data: *data,
                },
                &mut buf,
            );
        }
        for (&entry, e) in &s.entries {
            put(
                Record::Queued(QueuedRecord {
                    sid,
                    entry,
                    mid: e.mid,
                    qos: e.qos,
                    retain: e.retain,
                    expires: e.expires,
                    identifiers: e.identifiers.clone(),
                    shared: e.shared.clone(),
                    group: uncommitted.get(&(sid, entry)).copied().unwrap_or(0),
                }),
                &mut buf,
            );
        }
        for &entry in &s.inflight {
            let Some((id, received)) = s.entries.get(&entry).and_then(|e| e.flight) else {
                continue;
            };
            put(Record::Sent { sid, entry, id }, &mut buf);
            if received {
                put(Record::Received { sid, entry }, &mut buf);
            }
        }
        for &id in &s.incoming {
            put(Record::IncomingQos2 { sid, id, group: 0 }, &mut buf);
        }
        match s.detached_at {
            Some(at) => put(Record::Detached { sid, at }, &mut buf),
            None => {
                let (will_delay, will) = s
                    .connection_will
                    .as_ref()
                    .map_or((0, Bytes::new()), |w| (w.delay, w.packet.clone()));
                put(
                    Record::Attached {
                        sid,
                        will_delay,
                        will,
                    },
                    &mut buf,
                );
            }
        }
        if let Some(w) = &s.will {
            put(
                Record::DelayedWill {
                    sid,
                    at: w.at,
                    delay: w.delay,
                    packet: w.packet.clone(),
                },
                &mut buf,
            );
        }
        if buf.len() > 1 << 16 {
            offset += emit(&mut out, &mut buf)?;
        }
    }
    for r in state.retained.values() {
        frame(&mut buf, |b| {
            record::put_retained(b, &r.publish, r.qos, r.expires, 0)
        });
        records += 1;
        if buf.len() > 1 << 16 {
            offset += emit(&mut out, &mut buf)?;
        }
    }
    // The retained changes of routings not committed yet keep their group: they count only
    // if the commit (in the log after this snapshot) comes.
    for (&group, pending) in &state.pending_groups {
        for change in &pending.retained {
            match change {
                super::state::RetainedChange::Set(r) => frame(&mut buf, |b| {
                    record::put_retained(b, &r.publish, r.qos, r.expires, group)
                }),
                super::state::RetainedChange::Clear(topic) => frame(&mut buf, |b| {
                    Record::Unretained {
                        group,
                        topic: topic.clone(),
                    }
                    .put(b)
                }),
            };
            records += 1;
        }
    }
    frame(&mut buf, |b| Record::End { records }.put(b));
    offset += emit(&mut out, &mut buf)?;
    out.flush()?;
    drop(out);
    file.sync_all()?;
    let path = shared.dir.join(file_name(FileKind::Snapshot, number));
    fs::rename(&tmp, &path)?;
    sync_dir(&shared.dir)?;
    Ok((offset, moved, file))
}
