//! Field ownership ("managedFields"), so that server-side apply removes what its manager stops
//! applying, as kube-apiserver does.
//!
//! Every write through the API records, in the object's `metadata.managedFields`, which
//! manager owns which fields (Kubernetes' `FieldsV1` notation, `f:` keys only):
//!
//! - an apply by manager M makes M's `Apply` entry exactly the fields of the applied
//!   configuration;
//! - a create, replace, merge patch or scale by M adds to M's `Update` entry the fields it
//!   added or changed (defaults the server filled in included, as in Kubernetes);
//! - whatever a write adds, changes or removes is taken from every other entry (an apply
//!   always wins: there are no conflicts, `force` is moot).
//!
//! Before an apply by M is stored, the fields M's previous apply set, the new configuration
//! leaves out and no other entry owns are removed ([`prune`]), deepest first; a map goes only
//! once nothing is left in it. A path is a chain of map keys: a list is one atomic field, as
//! the simulator replaces lists whole on apply. Status writes and the controllers' own writes
//! record nothing.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::resources::ResourceDef;

mod entries;

use entries::{read, render, Entries, Operation, Owned};

/// A field: the chain of map keys that leads to it from the object's root.
type Path = Vec<String>;

/// A set of fields, parents before their children.
type Fields = BTreeSet<Path>;

/// Who writes an object, and how, so that the fields it sets become its own.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Writer<'a> {
    /// A server-side apply of `applied` by `manager`: it owns exactly the applied fields.
    Apply {
        /// The `fieldManager` of the apply.
        manager: &'a str,
        /// The applied configuration, as sent.
        applied: &'a Value,
    },
    /// A create, replace, merge patch or scale by `manager`: it owns what it added or changed.
    Update {
        /// The `fieldManager`, User-Agent or `unknown` (see [`manager_name`]).
        manager: &'a str,
    },
}

/// Metadata the server sets, which no manager owns (Kubernetes strips the same paths).
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "managedFields",
];

/// The manager of a write: the `fieldManager` parameter, else the User-Agent up to its first
/// `/` (kubectl's `kubectl-client-side-apply/v1.32...`), else `unknown`.
pub(crate) fn manager_name(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    let from_agent = user_agent
        .and_then(|ua| ua.split('/').next())
        .map(|m| m.chars().filter(|c| !c.is_control()).take(128).collect());
    field_manager
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .or(from_agent)
        .filter(|m: &String| !m.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Removes from `merged` (the live object `old` with `applied` merged in) the fields
/// `manager`'s previous apply set that `applied` leaves out and no other entry owns.
///
/// Deepest fields go first; a map goes only once it is empty, so what another manager set
/// inside it (or what nobody owns, like a default) keeps it. Without a previous apply by
/// `manager` nothing is removed.
pub(crate) fn prune(
    def: &ResourceDef,
    old: &Value,
    merged: &mut Value,
    applied: &Value,
    manager: &str,
) {
    let mut entries = read(old);
    let Some(last) = entries.remove(&(manager.to_string(), Operation::Apply)) else {
        return;
    };
    let now = fields_of(def, applied);
    let others: Fields = entries.into_values().flat_map(|o| o.fields).collect();
    let mut dropped: Vec<&Path> = last
        .fields
        .iter()
        .filter(|p| !now.contains(*p) && !others.contains(*p))
        .collect();
    // Children before their parents, so a map emptied by the removals goes too.
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for path in dropped {
        remove_if_unused(merged, path);
    }
}

/// Writes into `new`'s `metadata.managedFields` who owns what once `writer` has turned `old`
/// (`None` for a create) into `new`.
///
/// The writer's entry gets the current time. When `new` equals `old` apart from
/// `managedFields` and only timestamps would change, the old entries are kept as they were,
/// so a write that changes nothing stays a no-op (no new resourceVersion), as in Kubernetes.
pub(crate) fn record(def: &ResourceDef, old: Option<&Value>, new: &mut Value, writer: Writer<'_>) {
    let before = old.map(read).unwrap_or_default();
    let change = diff(def, old, new);
    let (key, fields) = match writer {
        Writer::Apply { manager, applied } => (
            (manager.to_string(), Operation::Apply),
            fields_of(def, applied),
        ),
        Writer::Update { manager } => {
            let key = (manager.to_string(), Operation::Update);
            let mut fields = before
                .get(&key)
                .map(|o| o.fields.clone())
                .unwrap_or_default();
            fields.retain(|p| !change.removed.contains(p));
            fields.extend(change.changed.iter().cloned());
            (key, fields)
        }
    };
    // What this write added, changed or removed is no longer anyone else's.
    let mut after: Entries = before
        .iter()
        .filter(|(k, _)| **k != key)
        .map(|(k, o)| {
            let fields = o
                .fields
                .iter()
                .filter(|p| !change.changed.contains(*p) && !change.removed.contains(*p))
                .cloned()
                .collect();
            let owned = Owned {
                time: o.time.clone(),
                fields,
            };
            (k.clone(), owned)
        })
        .collect();
    let time = super::now_time();
    after.insert(key, Owned { time, fields });
    after.retain(|_, o| !o.fields.is_empty());

    let unchanged = old.is_some_and(|old| same_but_managed_fields(old, new))
        && after.len() == before.len()
        && after
            .iter()
            .all(|(k, o)| before.get(k).is_some_and(|b| b.fields == o.fields));
    let meta = crate::json::obj_mut(new, "metadata");
    let kept = old
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .cloned();
    match (unchanged, kept) {
        (true, Some(kept)) => {
            meta.insert("managedFields".into(), kept);
        }
        (true, None) => {
            meta.remove("managedFields");
        }
        (false, _) if after.is_empty() => {
            meta.remove("managedFields");
        }
        (false, _) => {
            meta.insert("managedFields".into(), render(def, &after));
        }
    }
}

/// Whether two objects are equal apart from `metadata.managedFields`.
fn same_but_managed_fields(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter().all(|k| match (a.get(k), b.get(k)) {
        (Some(Value::Object(ma)), Some(Value::Object(mb))) if k == "metadata" => {
            let mut ma = ma.clone();
            let mut mb = mb.clone();
            ma.remove("managedFields");
            mb.remove("managedFields");
            ma == mb
        }
        (x, y) => x == y,
    })
}

/// Whether nobody owns the field at `path`: the server's metadata, `apiVersion` and `kind`,
/// and `status` where it is a subresource (main-resource writes keep the server's status).
fn ignored(def: &ResourceDef, path: &[String]) -> bool {
    match path {
        [top] if matches!(top.as_str(), "apiVersion" | "kind" | "metadata") => true,
        [meta, field, ..] if meta == "metadata" => SERVER_METADATA.contains(&field.as_str()),
        [status, ..] if status == "status" => def.status_subresource,
        _ => false,
    }
}

/// Every field of `v` a manager can own: each map key, recursively (lists and scalars are
/// leaves, `null`s are absent).
fn fields_of(def: &ResourceDef, v: &Value) -> Fields {
    let mut out = Fields::new();
    collect(v, &mut Vec::new(), &mut out);
    out.retain(|p| !ignored(def, p));
    out
}

/// Adds the path of every non-null value under `v` (itself excluded) to `out`.
fn collect(v: &Value, path: &mut Path, out: &mut Fields) {
    let Value::Object(map) = v else { return };
    for (k, child) in map.iter().filter(|(_, c)| !c.is_null()) {
        path.push(k.clone());
        out.insert(path.clone());
        collect(child, path, out);
        path.pop();
    }
}

/// What a write did to an object's fields.
#[derive(Debug, Default)]
struct Change {
    /// Fields added or given another value.
    changed: Fields,
    /// Fields that are gone.
    removed: Fields,
}

/// The fields a write added, changed and removed between `old` (`None`: nothing) and `new`.
fn diff(def: &ResourceDef, old: Option<&Value>, new: &Value) -> Change {
    let empty = Map::new();
    let old = old.and_then(Value::as_object).unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let mut change = Change::default();
    compare(old, new, &mut Vec::new(), &mut change);
    change.changed.retain(|p| !ignored(def, p));
    change.removed.retain(|p| !ignored(def, p));
    change
}

/// Walks two maps side by side, noting in `change` what differs below `path`.
fn compare(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    path: &mut Path,
    change: &mut Change,
) {
    fn present<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
        m.get(k).filter(|v| !v.is_null())
    }
    for (k, now) in new.iter().filter(|(_, v)| !v.is_null()) {
        path.push(k.clone());
        match (present(old, k), now) {
            (None, _) => {
                change.changed.insert(path.clone());
                collect(now, path, &mut change.changed);
            }
            (Some(Value::Object(was)), Value::Object(now)) => compare(was, now, path, change),
            (Some(was), _) if was != now => {
                change.changed.insert(path.clone());
                collect(was, path, &mut change.removed);
                collect(now, path, &mut change.changed);
            }
            (Some(_), _) => {}
        }
        path.pop();
    }
    for (k, was) in old.iter().filter(|(_, v)| !v.is_null()) {
        if present(new, k).is_none() {
            path.push(k.clone());
            change.removed.insert(path.clone());
            collect(was, path, &mut change.removed);
            path.pop();
        }
    }
}

/// Removes the value at `path` unless it is a map with something left in it.
fn remove_if_unused(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut map = obj.as_object_mut();
    for key in parents {
        map = map
            .and_then(|m| m.get_mut(key))
            .and_then(Value::as_object_mut);
    }
    let Some(map) = map else { return };
    let in_use = map
        .get(last)
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty());
    if !in_use {
        map.remove(last);
    }
}

#[cfg(test)]
mod tests;
