//! `fjall` 2.x candidate (LSM-tree): one keyspace with four partitions; a group commit is one
//! atomic `Batch` followed by `keyspace.persist(PersistMode::SyncData)`.

use std::path::Path;

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

use crate::store::{
    Candidate, Op, Result, State, Store, decode_entry_key, decode_msg_key, entry_key, msg_key,
};

pub struct Fjall;

impl Candidate for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn open(&self, dir: &Path) -> Result<Box<dyn Store>> {
        let keyspace = Config::new(dir).open()?;
        let open = |name: &str| keyspace.open_partition(name, PartitionCreateOptions::default());
        let messages = open("messages")?;
        let entries = open("entries")?;
        let retained = open("retained")?;
        let sessions = open("sessions")?;
        Ok(Box::new(FjallStore {
            keyspace,
            messages,
            entries,
            retained,
            sessions,
        }))
    }
}

struct FjallStore {
    keyspace: Keyspace,
    messages: PartitionHandle,
    entries: PartitionHandle,
    retained: PartitionHandle,
    sessions: PartitionHandle,
}

impl Store for FjallStore {
    fn commit(&mut self, ops: &[Op]) -> Result<()> {
        let mut batch = self.keyspace.batch();
        for op in ops {
            match op {
                Op::PutMsg { id, body } => {
                    batch.insert(&self.messages, msg_key(*id), body.as_slice())
                }
                Op::DelMsg { id } => batch.remove(&self.messages, msg_key(*id)),
                Op::PutEntry {
                    session,
                    entry,
                    value,
                } => batch.insert(&self.entries, entry_key(*session, *entry), value.as_slice()),
                Op::DelEntry { session, entry } => {
                    batch.remove(&self.entries, entry_key(*session, *entry))
                }
                Op::PutRetained { topic, payload } => {
                    batch.insert(&self.retained, topic.as_bytes(), payload.as_slice())
                }
                Op::PutSession { client_id, value } => {
                    batch.insert(&self.sessions, client_id.as_bytes(), value.as_slice())
                }
            }
        }
        batch.commit()?;
        self.keyspace.persist(PersistMode::SyncData)?;
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
