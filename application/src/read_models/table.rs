//! One table of a read model in memory: the rows that are known, and what changed
//! since the table was last written.

use std::collections::HashMap;
use std::hash::Hash;

/// A key's row as far as the fold knows it, and how it stands against the database.
#[derive(Debug, Clone)]
struct Slot<R> {
    /// The row now; `None`: there is none.
    row: Option<R>,
    /// The database holds a row under this key (as of the last load or write).
    stored: bool,
    /// The stored row was deleted and a new one took its key: written as a delete and an insert.
    replaced: bool,
    /// Changed since the last write.
    dirty: bool,
}

/// The rows of one table that the fold knows, by key.
///
/// A *complete* table knows every row there is (it started empty, as in a rebuild
/// or time travel), so a key it has never seen has no row. A partial table knows
/// only the keys that were loaded into it or written through it; asking it about
/// another key is a bug in the caller, reported as `None` from [`Table::knows`].
#[derive(Debug, Clone)]
pub struct Table<K, R> {
    slots: HashMap<K, Slot<R>>,
    complete: bool,
}

/// What changed in a table since it was last written: apply `deleted`, then
/// `updated`, then `inserted`, and the database holds the rows the fold holds.
#[derive(Debug)]
pub struct Changes<'a, K, R> {
    /// Keys whose stored row is gone (deleted, or replaced by a row in `inserted`).
    pub deleted: Vec<K>,
    /// Stored rows that changed in place.
    pub updated: Vec<&'a R>,
    /// Rows the database does not hold yet (new, or replacing a deleted one).
    pub inserted: Vec<&'a R>,
}

impl<'a, K, R> Changes<'a, K, R> {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.deleted.is_empty() && self.updated.is_empty() && self.inserted.is_empty()
    }
}

impl<K: Hash + Eq + Copy, R> Table<K, R> {
    /// An empty table: complete (no rows at all), or partial (nothing known yet).
    pub fn new(complete: bool) -> Self {
        Self {
            slots: HashMap::new(),
            complete,
        }
    }

    /// Whether the fold knows if `key` has a row.
    pub fn knows(&self, key: &K) -> bool {
        self.complete || self.slots.contains_key(key)
    }

    /// Records what the database holds under `key` (`None`: nothing), unless the fold
    /// knows better already: a row in memory is newer than the stored one.
    pub fn load(&mut self, key: K, row: Option<R>) {
        self.slots.entry(key).or_insert(Slot {
            stored: row.is_some(),
            row,
            replaced: false,
            dirty: false,
        });
    }

    /// As [`Table::load`], for a stored row that is gone in memory already (its
    /// usecase was deleted since the last write).
    pub fn load_gone(&mut self, key: K) {
        self.slots.entry(key).or_insert(Slot {
            row: None,
            stored: true,
            replaced: false,
            dirty: true,
        });
    }

    /// The row under `key`, if any (unknown keys have none).
    pub fn get(&self, key: &K) -> Option<&R> {
        self.slots.get(key).and_then(|s| s.row.as_ref())
    }

    /// The row under `key` to change, if any; it is written back at the next write.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut R> {
        let slot = self.slots.get_mut(key)?;
        let row = slot.row.as_mut()?;
        slot.dirty = true;
        Some(row)
    }

    /// Adds a row under `key`; `false` (and nothing changes) if there is one already.
    pub(crate) fn insert(&mut self, key: K, row: R) -> bool {
        let slot = self.slots.entry(key).or_insert(Slot {
            row: None,
            stored: false,
            replaced: false,
            dirty: false,
        });
        if slot.row.is_some() {
            return false;
        }
        slot.replaced = slot.stored;
        slot.row = Some(row);
        slot.dirty = true;
        true
    }

    /// Deletes the row under `key`, if any.
    pub(crate) fn remove(&mut self, key: &K) {
        if let Some(slot) = self.slots.get_mut(key) {
            if slot.row.take().is_some() {
                slot.dirty = true;
                slot.replaced = false;
            }
        }
    }

    /// Every row the fold holds (for a complete table: every row of the table).
    pub fn rows(&self) -> impl Iterator<Item = &R> {
        self.slots.values().filter_map(|s| s.row.as_ref())
    }

    /// How many keys the fold holds, rows or known absences.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the fold holds no key at all.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// What to write so that the database holds what the fold holds.
    pub fn changes(&self) -> Changes<'_, K, R> {
        let mut changes = Changes {
            deleted: Vec::new(),
            updated: Vec::new(),
            inserted: Vec::new(),
        };
        for (key, slot) in self.slots.iter().filter(|(_, s)| s.dirty) {
            match (&slot.row, slot.stored) {
                (None, true) => changes.deleted.push(*key),
                (None, false) => {}
                (Some(row), true) if !slot.replaced => changes.updated.push(row),
                (Some(row), stored) => {
                    if stored {
                        changes.deleted.push(*key);
                    }
                    changes.inserted.push(row);
                }
            }
        }
        changes
    }

    /// The changes were written: the database now holds what the fold holds.
    pub(crate) fn written(&mut self) {
        for slot in self.slots.values_mut().filter(|s| s.dirty) {
            slot.stored = slot.row.is_some();
            slot.replaced = false;
            slot.dirty = false;
        }
    }

    /// Forgets every row (after they were written): the table becomes partial.
    pub(crate) fn forget(&mut self) {
        self.slots.clear();
        self.complete = false;
    }

    /// Whether it knows every row there is.
    pub fn is_complete(&self) -> bool {
        self.complete
    }
}
