//! The `metadata.managedFields` list: its entries (one per manager and operation) read from an
//! object and written back, with each entry's fields in Kubernetes' `FieldsV1` notation.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{Fields, Path};
use crate::resources::ResourceDef;

/// The two kinds of entry one manager can have, as `operation` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Operation {
    /// Server-side apply: the entry is the last applied configuration's fields.
    Apply,
    /// Any other write: the entry collects the fields the manager added or changed.
    Update,
}

impl Operation {
    /// The `operation` value of a `managedFields` entry.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry without its key: when it was last written and what it owns.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Owned {
    /// When the entry's manager last wrote (RFC 3339, seconds).
    pub(super) time: String,
    /// The fields it owns.
    pub(super) fields: Fields,
}

/// An object's entries by manager and operation (one entry each, as in Kubernetes).
pub(super) type Entries = BTreeMap<(String, Operation), Owned>;

/// The entries of an object's `metadata.managedFields` (entries of another operation, which
/// this module never writes, are skipped).
pub(super) fn read(obj: &Value) -> Entries {
    let mut entries = Entries::new();
    let list = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array);
    for entry in list.into_iter().flatten() {
        let operation = match entry.get("operation").and_then(Value::as_str) {
            Some("Apply") => Operation::Apply,
            Some("Update") => Operation::Update,
            _ => continue,
        };
        let Some(manager) = entry.get("manager").and_then(Value::as_str) else {
            continue;
        };
        let mut fields = Fields::new();
        if let Some(v1) = entry.get("fieldsV1") {
            parse_fields_v1(v1, &mut Vec::new(), &mut fields);
        }
        let time = entry.get("time").and_then(Value::as_str).unwrap_or("");
        let owned = entries
            .entry((manager.to_string(), operation))
            .or_insert_with(|| Owned {
                time: time.to_string(),
                fields: Fields::new(),
            });
        owned.fields.extend(fields);
    }
    entries
}

/// Reads `FieldsV1` (`{"f:spec": {"f:replicas": {}}}`): an empty node or one with a `.` key
/// is owned itself; keys other than `f:` ones (list items) are skipped, as lists are atomic.
fn parse_fields_v1(node: &Value, path: &mut Path, out: &mut Fields) {
    let Value::Object(map) = node else { return };
    if !path.is_empty() && (map.is_empty() || map.contains_key(".")) {
        out.insert(path.clone());
    }
    for (k, child) in map {
        if let Some(name) = k.strip_prefix("f:") {
            path.push(name.to_string());
            parse_fields_v1(child, path, out);
            path.pop();
        }
    }
}

/// Writes a set of fields as `FieldsV1`: an owned map with owned fields inside gets `.`.
fn fields_v1(fields: &Fields) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut node = &mut root;
        for key in path {
            node = crate::json::child_map(node, &format!("f:{key}"));
        }
    }
    for path in fields {
        let mut node = Some(&mut root);
        for key in path {
            node = node
                .and_then(|n| n.get_mut(&format!("f:{key}")))
                .and_then(Value::as_object_mut);
        }
        if let Some(node) = node.filter(|n| !n.is_empty()) {
            node.insert(".".into(), json!({}));
        }
    }
    Value::Object(root)
}

/// The `managedFields` list, ordered as kube-apiserver orders it (operation, time, manager).
pub(super) fn render(def: &ResourceDef, entries: &Entries) -> Value {
    let mut list: Vec<(&(String, Operation), &Owned)> = entries.iter().collect();
    list.sort_by(|((m1, o1), a), ((m2, o2), b)| (o1, &a.time, m1).cmp(&(o2, &b.time, m2)));
    let api_version = def.api_version();
    Value::Array(
        list.into_iter()
            .map(|((manager, operation), owned)| {
                json!({
                    "manager": manager,
                    "operation": operation.as_str(),
                    "apiVersion": api_version,
                    "time": owned.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": fields_v1(&owned.fields),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_v1_reads_back_what_it_writes() {
        let owned: Fields = [
            "metadata.labels",
            "metadata.labels.a",
            "spec.replicas",
            "spec.x",
        ]
        .iter()
        .map(|p| p.split('.').map(String::from).collect())
        .collect();
        let v1 = fields_v1(&owned);
        assert_eq!(
            v1,
            json!({
                "f:metadata": { "f:labels": { ".": {}, "f:a": {} } },
                "f:spec": { "f:replicas": {}, "f:x": {} },
            })
        );
        let mut read = Fields::new();
        parse_fields_v1(&v1, &mut Vec::new(), &mut read);
        assert_eq!(read, owned);
    }
}
