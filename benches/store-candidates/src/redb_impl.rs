// `redb` candidate. This file is `include!`d once per redb version (see main.rs), inside a
// module where `redb` names that version of the crate and `NAME` the candidate's name.
//
// One file `data.redb`; one write transaction per group commit with `Durability::Immediate`;
// four typed tables.

use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::store::{Candidate, Op, Result, State, Store};

const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
const ENTRIES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("entries");
const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");

pub struct Redb;

impl Candidate for Redb {
    fn name(&self) -> &'static str {
        NAME
    }

    fn open(&self, dir: &Path) -> Result<Box<dyn Store>> {
        std::fs::create_dir_all(dir)?;
        let db = Database::create(dir.join("data.redb"))?;
        // Create the tables once so that readers find them.
        let mut tx = db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        tx.open_table(MESSAGES)?;
        tx.open_table(ENTRIES)?;
        tx.open_table(RETAINED)?;
        tx.open_table(SESSIONS)?;
        tx.commit()?;
        Ok(Box::new(RedbStore { db }))
    }
}

struct RedbStore {
    db: Database,
}

impl Store for RedbStore {
    fn commit(&mut self, ops: &[Op]) -> Result<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        {
            let mut messages = tx.open_table(MESSAGES)?;
            let mut entries = tx.open_table(ENTRIES)?;
            let mut retained = tx.open_table(RETAINED)?;
            let mut sessions = tx.open_table(SESSIONS)?;
            for op in ops {
                match op {
                    Op::PutMsg { id, body } => {
                        messages.insert(*id, body.as_slice())?;
                    }
                    Op::DelMsg { id } => {
                        messages.remove(*id)?;
                    }
                    Op::PutEntry { session, entry, value } => {
                        entries.insert((*session, *entry), value.as_slice())?;
                    }
                    Op::DelEntry { session, entry } => {
                        entries.remove((*session, *entry))?;
                    }
                    Op::PutRetained { topic, payload } => {
                        retained.insert(topic.as_str(), payload.as_slice())?;
                    }
                    Op::PutSession { client_id, value } => {
                        sessions.insert(client_id.as_str(), value.as_slice())?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn load(&mut self) -> Result<State> {
        let tx = self.db.begin_read()?;
        let mut state = State::default();
        for item in tx.open_table(MESSAGES)?.iter()? {
            let (k, v) = item?;
            state.messages.insert(k.value(), v.value().to_vec());
        }
        for item in tx.open_table(ENTRIES)?.iter()? {
            let (k, v) = item?;
            state.entries.insert(k.value(), v.value().to_vec());
        }
        for item in tx.open_table(RETAINED)?.iter()? {
            let (k, v) = item?;
            state.retained.insert(k.value().to_owned(), v.value().to_vec());
        }
        for item in tx.open_table(SESSIONS)?.iter()? {
            let (k, v) = item?;
            state.sessions.insert(k.value().to_owned(), v.value().to_vec());
        }
        Ok(state)
    }
}
