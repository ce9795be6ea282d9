//! `sled` 0.34 candidate (unmaintained since 2021; 1.0 is an unfinished alpha): four trees; a
//! group commit is one multi-tree transaction followed by `db.flush()`.
//!
//! On Linux `db.flush()` ends in `sync_file_range(WAIT_BEFORE|WRITE|WAIT_AFTER)`, not in an
//! fsync (strace: 0.01 fsync and 2.6 sync_file_range per commit). sync_file_range neither
//! flushes the device's write cache nor commits file metadata, so it is not durable across a
//! power loss. To hold sled to the same rule as the others, the commit then calls
//! `sync_data()` (fdatasync) on sled's data file `db`, opened by us: fdatasync applies to the
//! inode, whichever descriptor it is called on.

use std::fs::File;
use std::path::Path;

use sled::transaction::{ConflictableTransactionResult, Transactional};
use sled::{Db, Tree};

use crate::store::{
    Candidate, Op, Result, State, Store, decode_entry_key, decode_msg_key, entry_key, msg_key,
};

pub struct Sled;

impl Candidate for Sled {
    fn name(&self) -> &'static str {
        "sled"
    }

    fn open(&self, dir: &Path) -> Result<Box<dyn Store>> {
        let db = sled::Config::new().path(dir).open()?;
        let messages = db.open_tree("messages")?;
        let entries = db.open_tree("entries")?;
        let retained = db.open_tree("retained")?;
        let sessions = db.open_tree("sessions")?;
        let file = File::open(dir.join("db"))?;
        Ok(Box::new(SledStore {
            db,
            messages,
            entries,
            retained,
            sessions,
            file,
        }))
    }
}

struct SledStore {
    db: Db,
    messages: Tree,
    entries: Tree,
    retained: Tree,
    sessions: Tree,
    /// sled's data file, for the fdatasync that `db.flush()` leaves out.
    file: File,
}

impl Store for SledStore {
    fn commit(&mut self, ops: &[Op]) -> Result<()> {
        (
            &self.messages,
            &self.entries,
            &self.retained,
            &self.sessions,
        )
            .transaction(
                |(messages, entries, retained, sessions)| -> ConflictableTransactionResult<(), ()> {
                    for op in ops {
                        match op {
                            Op::PutMsg { id, body } => {
                                messages.insert(&msg_key(*id), body.as_slice())?;
                            }
                            Op::DelMsg { id } => {
                                messages.remove(&msg_key(*id))?;
                            }
                            Op::PutEntry {
                                session,
                                entry,
                                value,
                            } => {
                                entries.insert(&entry_key(*session, *entry), value.as_slice())?;
                            }
                            Op::DelEntry { session, entry } => {
                                entries.remove(&entry_key(*session, *entry))?;
                            }
                            Op::PutRetained { topic, payload } => {
                                retained.insert(topic.as_bytes(), payload.as_slice())?;
                            }
                            Op::PutSession { client_id, value } => {
                                sessions.insert(client_id.as_bytes(), value.as_slice())?;
                            }
                        }
                    }
                    Ok(())
                },
            )
            .map_err(|e| format!("sled transaction: {e:?}"))?;
        self.db.flush()?;
        self.file.sync_data()?;
        Ok(())
    }

    fn load(&mut self) -> Result<State> {
        let mut state = State::default();
        for item in self.messages.iter() {
            let (k, v) = item?;
            state.messages.insert(decode_msg_key(&k)?, v.to_vec());
        }
        for item in self.entries.iter() {
            let (k, v) = item?;
            state.entries.insert(decode_entry_key(&k)?, v.to_vec());
        }
        for item in self.retained.iter() {
            let (k, v) = item?;
            state
                .retained
                .insert(String::from_utf8(k.to_vec())?, v.to_vec());
        }
        for item in self.sessions.iter() {
            let (k, v) = item?;
            state
                .sessions
                .insert(String::from_utf8(k.to_vec())?, v.to_vec());
        }
        Ok(state)
    }
}
