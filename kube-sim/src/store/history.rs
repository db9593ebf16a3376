//! The watch history: the most recent changes of each resource type, as many as
//! [`SimConfig::watch_history`](crate::SimConfig::watch_history) says, as kube-apiserver's watch
//! cache keeps a window of recent events per resource. A watch resumes from any resourceVersion
//! the window still covers; older ones are expired (410 Gone, and the client re-lists), so
//! memory stays bounded however long the cluster runs.

use std::collections::{vec_deque, HashMap, VecDeque};

use super::Change;
use crate::resources::ResourceDef;

/// The retained changes of one resource type and how far back they reach.
#[derive(Debug, Default)]
struct TypeHistory {
    /// In resourceVersion order.
    changes: VecDeque<Change>,
    /// The resourceVersion of the newest change dropped (0 while none was): a watch from
    /// this version or later misses nothing.
    dropped_through: u64,
}

/// Recent changes by resource type (plural), each type bounded on its own so that a busy type
/// (Events) does not push a quiet one's changes out.
#[derive(Debug)]
pub(crate) struct History {
    by_type: HashMap<&'static str, TypeHistory>,
    capacity: usize,
}

/// A watch asked for changes the history no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expired {
    /// The resourceVersion asked for.
    pub requested: u64,
    /// The oldest resourceVersion a watch of this type can start from now.
    pub oldest: u64,
}

impl Expired {
    /// kube-apiserver's message for it, word for word.
    pub fn message(&self) -> String {
        format!(
            "too old resource version: {} ({})",
            self.requested, self.oldest
        )
    }
}

impl History {
    /// An empty history keeping `capacity` changes per resource type (at least one).
    pub fn new(capacity: usize) -> Self {
        History {
            by_type: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Appends a change (its resourceVersion is the newest), dropping its type's oldest one
    /// when the type is at capacity.
    pub fn record(&mut self, change: Change) {
        let history = self.by_type.entry(change.def.plural).or_default();
        history.changes.push_back(change);
        while history.changes.len() > self.capacity {
            if let Some(dropped) = history.changes.pop_front() {
                history.dropped_through = dropped.rv;
            }
        }
    }

    /// The changes of `def` after resourceVersion `rv`, oldest first: a binary search, then
    /// only those changes. Expired when a change after `rv` has been dropped.
    pub fn since(
        &self,
        def: &ResourceDef,
        rv: u64,
    ) -> Result<vec_deque::Iter<'_, Change>, Expired> {
        // A type never changed has nothing to miss.
        static NONE: VecDeque<Change> = VecDeque::new();
        let Some(history) = self.by_type.get(def.plural) else {
            return Ok(NONE.iter());
        };
        if rv < history.dropped_through {
            return Err(Expired {
                requested: rv,
                oldest: history.dropped_through,
            });
        }
        let start = history.changes.partition_point(|c| c.rv <= rv);
        Ok(history.changes.range(start..))
    }

    /// How many changes are held, over all types.
    pub fn len(&self) -> usize {
        self.by_type.values().map(|h| h.changes.len()).sum()
    }
}
