//! Interned topic levels, shared by the subscription index and the retained-message tree: a
//! level text that recurs across a tree (`temperature`, `status`) is stored once, and an edge of
//! the tree is keyed by two integers.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;

/// An interned level.
pub(crate) type LevelId = u32;

/// "No level": the root, and the `+` child in the subscription index.
pub(crate) const NO_LEVEL: LevelId = u32::MAX;

#[derive(Debug)]
struct Name {
    text: Box<str>,
    /// How many tree edges use this level; freed at zero.
    refs: u32,
}

/// Level texts with reference counts; ids of freed levels are reused.
#[derive(Debug, Default)]
pub(crate) struct Levels {
    table: HashTable<LevelId>,
    names: Vec<Name>,
    free: Vec<LevelId>,
    hasher: DefaultHashBuilder,
}

impl Levels {
    /// The id of `text`, if some edge uses it.
    pub(crate) fn find(&self, text: &str) -> Option<LevelId> {
        let hash = self.hasher.hash_one(text);
        self.table
            .find(hash, |&id| {
                self.names
                    .get(id as usize)
                    .is_some_and(|n| &*n.text == text)
            })
            .copied()
    }

    /// The text of `id`.
    pub(crate) fn text(&self, id: LevelId) -> &str {
        self.names.get(id as usize).map_or("", |n| &n.text)
    }

    /// The id of `text`, taking a reference for a new edge.
    pub(crate) fn acquire(&mut self, text: &str) -> LevelId {
        if let Some(id) = self.find(text) {
            if let Some(n) = self.names.get_mut(id as usize) {
                n.refs += 1;
            }
            return id;
        }
        let name = Name {
            text: text.into(),
            refs: 1,
        };
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.names.get_mut(id as usize) {
                    *slot = name;
                }
                id
            }
            None => {
                self.names.push(name);
                u32::try_from(self.names.len() - 1).unwrap_or(NO_LEVEL)
            }
        };
        let hasher = &self.hasher;
        let names = &self.names;
        self.table
            .insert_unique(hasher.hash_one(text), id, |&other| {
                names
                    .get(other as usize)
                    .map_or(0, |n| hasher.hash_one(&*n.text))
            });
        id
    }

    /// Drops an edge's reference to `id`, freeing the level at zero.
    pub(crate) fn release(&mut self, id: LevelId) {
        let Some(name) = self.names.get_mut(id as usize) else {
            return;
        };
        name.refs = name.refs.saturating_sub(1);
        if name.refs > 0 {
            return;
        }
        let text = std::mem::take(&mut name.text);
        let hash = self.hasher.hash_one(&*text);
        if let Ok(entry) = self.table.find_entry(hash, |&other| other == id) {
            entry.remove();
        }
        self.free.push(id);
    }

    /// How many levels are interned.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

/// The key of the edge from `node` along `level` (with a `u32` value, 12 bytes a map entry).
pub(crate) fn edge_key(node: u32, level: LevelId) -> (u32, LevelId) {
    (node, level)
}
