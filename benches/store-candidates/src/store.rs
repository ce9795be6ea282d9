//! What every candidate implements: durable group commits of typed operations, and a full
//! read-back of the state into in-memory maps (what the broker does at start-up).

use std::collections::HashMap;
use std::path::Path;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

/// One operation of a group commit. Keys are typed as the broker would use them; each store
/// encodes them its own way (`messages`: u64, `entries`: (session u64, entry u64),
/// `retained`: topic string, `sessions`: client id string).
#[derive(Clone, Debug)]
pub enum Op {
    PutMsg {
        id: u64,
        body: Vec<u8>,
    },
    DelMsg {
        id: u64,
    },
    PutEntry {
        session: u64,
        entry: u64,
        value: Vec<u8>,
    },
    DelEntry {
        session: u64,
        entry: u64,
    },
    PutRetained {
        topic: String,
        payload: Vec<u8>,
    },
    PutSession {
        client_id: String,
        value: Vec<u8>,
    },
}

impl Op {
    /// Key + value bytes of the operation (what a perfect store would have to write once).
    pub fn logical_bytes(&self) -> u64 {
        (match self {
            Op::PutMsg { body, .. } => 8 + body.len(),
            Op::DelMsg { .. } => 8,
            Op::PutEntry { value, .. } => 16 + value.len(),
            Op::DelEntry { .. } => 16,
            Op::PutRetained { topic, payload } => topic.len() + payload.len(),
            Op::PutSession { client_id, value } => client_id.len() + value.len(),
        }) as u64
    }
}

/// The whole persistent state, as the broker holds it in memory.
#[derive(Default, Debug)]
pub struct State {
    pub messages: HashMap<u64, Vec<u8>>,
    pub entries: HashMap<(u64, u64), Vec<u8>>,
    pub retained: HashMap<String, Vec<u8>>,
    pub sessions: HashMap<String, Vec<u8>>,
}

impl State {
    pub fn apply(&mut self, op: Op) {
        match op {
            Op::PutMsg { id, body } => {
                self.messages.insert(id, body);
            }
            Op::DelMsg { id } => {
                self.messages.remove(&id);
            }
            Op::PutEntry {
                session,
                entry,
                value,
            } => {
                self.entries.insert((session, entry), value);
            }
            Op::DelEntry { session, entry } => {
                self.entries.remove(&(session, entry));
            }
            Op::PutRetained { topic, payload } => {
                self.retained.insert(topic, payload);
            }
            Op::PutSession { client_id, value } => {
                self.sessions.insert(client_id, value);
            }
        }
    }

    pub fn counts(&self) -> [usize; 4] {
        [
            self.messages.len(),
            self.entries.len(),
            self.retained.len(),
            self.sessions.len(),
        ]
    }
}

/// An open store.
pub trait Store {
    /// Applies `ops` atomically and returns only once they are durable (fsync'd).
    fn commit(&mut self, ops: &[Op]) -> Result<()>;
    /// Reads the full state back into memory.
    fn load(&mut self) -> Result<State>;
    /// Optional: rewrite the state compactly (ownlog snapshot). Default: nothing to do.
    fn snapshot(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A candidate: knows how to open (create or reopen) a store in a directory.
pub trait Candidate {
    fn name(&self) -> &'static str;
    fn open(&self, dir: &Path) -> Result<Box<dyn Store>>;
    /// Whether `snapshot()` does something (for the restart variant).
    fn has_snapshot(&self) -> bool {
        false
    }
}

/// Big-endian key encodings for the byte-keyed stores (fjall, sled), so that the key order is
/// the numeric order.
pub fn msg_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

pub fn entry_key(session: u64, entry: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&session.to_be_bytes());
    k[8..].copy_from_slice(&entry.to_be_bytes());
    k
}

pub fn decode_msg_key(k: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(
        k.try_into().map_err(|_| "bad message key")?,
    ))
}

pub fn decode_entry_key(k: &[u8]) -> Result<(u64, u64)> {
    if k.len() != 16 {
        return Err("bad entry key".into());
    }
    Ok((
        u64::from_be_bytes(k[..8].try_into().unwrap()),
        u64::from_be_bytes(k[8..].try_into().unwrap()),
    ))
}
