//! `ownlog`: the minimal append-only log we would write ourselves.
//!
//! Files in the directory: `log` (appended to) and, after a compaction, `snapshot` (the live
//! state as the same kind of records). Both are sequences of frames
//! `[u32 LE payload length][u32 LE crc32(payload)][payload]`. A payload is one operation
//! (tag byte + fields) or a commit marker (tag 0). A group commit is encoded into a userspace
//! buffer, written with one `write_all` and made durable with one `File::sync_data()`.
//!
//! Recovery reads `snapshot` then `log` sequentially, verifies every CRC and applies the
//! operations of each group only once its commit marker has been read, so a torn tail (a
//! partial last group, a short frame, a bad CRC) loses at most the last group, which was never
//! acknowledged. The torn tail is cut off (`set_len`) so that later appends follow good data.
//!
//! Compaction: when the log has grown past a threshold, the in-memory state is written to
//! `snapshot.tmp`, synced, renamed over `snapshot`, the directory synced, and the log
//! truncated. Replaying an old log over a newer snapshot (a crash between rename and truncate)
//! gives the same state, because for each key the last operation in the log wins.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::store::{Candidate, Op, Result, State, Store};

const TAG_COMMIT: u8 = 0;
const TAG_PUT_MSG: u8 = 1;
const TAG_DEL_MSG: u8 = 2;
const TAG_PUT_ENTRY: u8 = 3;
const TAG_DEL_ENTRY: u8 = 4;
const TAG_PUT_RETAINED: u8 = 5;
const TAG_PUT_SESSION: u8 = 6;

pub struct OwnLog {
    /// Compact the log once it exceeds this many bytes (0: never).
    pub compact_bytes: u64,
}

impl Candidate for OwnLog {
    fn name(&self) -> &'static str {
        "ownlog"
    }

    fn open(&self, dir: &Path) -> Result<Box<dyn Store>> {
        Ok(Box::new(OwnLogStore::open(dir, self.compact_bytes)?))
    }

    fn has_snapshot(&self) -> bool {
        true
    }
}

pub struct OwnLogStore {
    dir: PathBuf,
    log: File,
    log_len: u64,
    buf: Vec<u8>,
    state: State,
    compact_bytes: u64,
    /// `load` hands the state out; the store must not be written to after that.
    loaded: bool,
}

fn frame(buf: &mut [u8], payload_start: usize) {
    // The 8 header bytes were reserved at payload_start - 8.
    let payload = &buf[payload_start..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    buf[payload_start - 8..payload_start - 4].copy_from_slice(&len.to_le_bytes());
    buf[payload_start - 4..payload_start].copy_from_slice(&crc.to_le_bytes());
}

fn put_bytes16(buf: &mut Vec<u8>, b: &[u8]) {
    buf.extend_from_slice(&(b.len() as u16).to_le_bytes());
    buf.extend_from_slice(b);
}

fn encode_op(buf: &mut Vec<u8>, op: &Op) {
    buf.extend_from_slice(&[0u8; 8]);
    let start = buf.len();
    match op {
        Op::PutMsg { id, body } => {
            buf.push(TAG_PUT_MSG);
            buf.extend_from_slice(&id.to_le_bytes());
            buf.extend_from_slice(body);
        }
        Op::DelMsg { id } => {
            buf.push(TAG_DEL_MSG);
            buf.extend_from_slice(&id.to_le_bytes());
        }
        Op::PutEntry {
            session,
            entry,
            value,
        } => {
            buf.push(TAG_PUT_ENTRY);
            buf.extend_from_slice(&session.to_le_bytes());
            buf.extend_from_slice(&entry.to_le_bytes());
            buf.extend_from_slice(value);
        }
        Op::DelEntry { session, entry } => {
            buf.push(TAG_DEL_ENTRY);
            buf.extend_from_slice(&session.to_le_bytes());
            buf.extend_from_slice(&entry.to_le_bytes());
        }
        Op::PutRetained { topic, payload } => {
            buf.push(TAG_PUT_RETAINED);
            put_bytes16(buf, topic.as_bytes());
            buf.extend_from_slice(payload);
        }
        Op::PutSession { client_id, value } => {
            buf.push(TAG_PUT_SESSION);
            put_bytes16(buf, client_id.as_bytes());
            buf.extend_from_slice(value);
        }
    }
    frame(buf, start);
}

fn encode_commit(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&[0u8; 8]);
    let start = buf.len();
    buf.push(TAG_COMMIT);
    frame(buf, start);
}

fn u64_at(p: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(p.get(at..at + 8)?.try_into().ok()?))
}

fn str16(p: &[u8]) -> Option<(String, &[u8])> {
    let n = u16::from_le_bytes(p.get(..2)?.try_into().ok()?) as usize;
    let s = std::str::from_utf8(p.get(2..2 + n)?).ok()?.to_owned();
    Some((s, &p[2 + n..]))
}

/// Decodes one payload; `None` for a commit marker or a malformed payload (`Err`).
fn decode_op(p: &[u8]) -> std::result::Result<Option<Op>, ()> {
    let (&tag, rest) = p.split_first().ok_or(())?;
    let op = match tag {
        TAG_COMMIT => return Ok(None),
        TAG_PUT_MSG => Op::PutMsg {
            id: u64_at(rest, 0).ok_or(())?,
            body: rest[8..].to_vec(),
        },
        TAG_DEL_MSG => Op::DelMsg {
            id: u64_at(rest, 0).ok_or(())?,
        },
        TAG_PUT_ENTRY => Op::PutEntry {
            session: u64_at(rest, 0).ok_or(())?,
            entry: u64_at(rest, 8).ok_or(())?,
            value: rest[16..].to_vec(),
        },
        TAG_DEL_ENTRY => Op::DelEntry {
            session: u64_at(rest, 0).ok_or(())?,
            entry: u64_at(rest, 8).ok_or(())?,
        },
        TAG_PUT_RETAINED => {
            let (topic, payload) = str16(rest).ok_or(())?;
            Op::PutRetained {
                topic,
                payload: payload.to_vec(),
            }
        }
        TAG_PUT_SESSION => {
            let (client_id, value) = str16(rest).ok_or(())?;
            Op::PutSession {
                client_id,
                value: value.to_vec(),
            }
        }
        _ => return Err(()),
    };
    Ok(Some(op))
}

/// Replays a file into `state`. Returns the length of the good prefix (up to and including the
/// last complete commit group) and the file's total length.
fn replay(path: &Path, state: &mut State) -> Result<(u64, u64)> {
    let mut data = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut data)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e.into()),
    }
    let mut pos = 0usize;
    let mut good = 0usize;
    let mut pending: Vec<Op> = Vec::new();
    while data.len() - pos >= 8 {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap());
        let Some(payload) = data.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if len == 0 || crc32fast::hash(payload) != crc {
            break;
        }
        match decode_op(payload) {
            Ok(Some(op)) => pending.push(op),
            Ok(None) => {
                for op in pending.drain(..) {
                    state.apply(op);
                }
                good = pos + 8 + len;
            }
            Err(()) => break,
        }
        pos += 8 + len;
    }
    Ok((good as u64, data.len() as u64))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl OwnLogStore {
    pub fn open(dir: &Path, compact_bytes: u64) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let mut state = State::default();
        let (snap_good, snap_len) = replay(&dir.join("snapshot"), &mut state)?;
        if snap_good != snap_len {
            // A snapshot is renamed into place only after it was synced: it is never torn.
            return Err(format!("corrupt snapshot ({snap_good} of {snap_len} bytes valid)").into());
        }
        let log_path = dir.join("log");
        let (good, len) = replay(&log_path, &mut state)?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        if good != len {
            eprintln!("ownlog: discarding a torn tail of {} bytes", len - good);
            log.set_len(good)?;
            log.sync_all()?;
        }
        if len == 0 {
            sync_dir(dir)?; // the new log file's directory entry
        }
        Ok(Self {
            dir: dir.to_owned(),
            log,
            log_len: good,
            buf: Vec::with_capacity(1 << 20),
            state,
            compact_bytes,
            loaded: false,
        })
    }

    fn compact(&mut self) -> Result<()> {
        let tmp = self.dir.join("snapshot.tmp");
        {
            let mut f = File::create(&tmp)?;
            let mut buf = Vec::with_capacity(1 << 20);
            let s = &self.state;
            // Encoding borrows the values; the ops are built on the fly, one at a time.
            let mut flush = |buf: &mut Vec<u8>, force: bool| -> Result<()> {
                if force || buf.len() >= 1 << 20 {
                    f.write_all(buf)?;
                    buf.clear();
                }
                Ok(())
            };
            for (id, body) in &s.messages {
                encode_op(
                    &mut buf,
                    &Op::PutMsg {
                        id: *id,
                        body: body.clone(),
                    },
                );
                flush(&mut buf, false)?;
            }
            for ((session, entry), value) in &s.entries {
                encode_op(
                    &mut buf,
                    &Op::PutEntry {
                        session: *session,
                        entry: *entry,
                        value: value.clone(),
                    },
                );
                flush(&mut buf, false)?;
            }
            for (topic, payload) in &s.retained {
                encode_op(
                    &mut buf,
                    &Op::PutRetained {
                        topic: topic.clone(),
                        payload: payload.clone(),
                    },
                );
                flush(&mut buf, false)?;
            }
            for (client_id, value) in &s.sessions {
                encode_op(
                    &mut buf,
                    &Op::PutSession {
                        client_id: client_id.clone(),
                        value: value.clone(),
                    },
                );
                flush(&mut buf, false)?;
            }
            encode_commit(&mut buf);
            flush(&mut buf, true)?;
            f.sync_data()?;
        }
        fs::rename(&tmp, self.dir.join("snapshot"))?;
        sync_dir(&self.dir)?;
        self.log.set_len(0)?;
        self.log.sync_all()?;
        self.log_len = 0;
        Ok(())
    }
}

impl Store for OwnLogStore {
    fn commit(&mut self, ops: &[Op]) -> Result<()> {
        if self.loaded {
            return Err("ownlog: commit after load".into());
        }
        self.buf.clear();
        for op in ops {
            encode_op(&mut self.buf, op);
        }
        encode_commit(&mut self.buf);
        self.log.write_all(&self.buf)?;
        self.log.sync_data()?;
        self.log_len += self.buf.len() as u64;
        // The state is kept only so that the log can be compacted (a broker would compact from
        // its own in-memory state instead).
        for op in ops {
            self.state.apply(op.clone());
        }
        if self.compact_bytes > 0 && self.log_len > self.compact_bytes {
            self.compact()?;
        }
        Ok(())
    }

    fn load(&mut self) -> Result<State> {
        // Recovery already rebuilt the state in `open`.
        self.loaded = true;
        Ok(std::mem::take(&mut self.state))
    }

    fn snapshot(&mut self) -> Result<()> {
        self.compact()
    }
}
