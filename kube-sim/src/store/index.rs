//! The stored objects of one resource type, by namespace and name, with the indexes that let
//! a request touch only the objects it asks about: a label index (for label selectors, as
//! shiplog selects a deployment's pods by `shiplog.io/deployment=<id>`), and an index of the
//! uids an object refers to (its `ownerReferences`, an Event's `involvedObject`), so the
//! controllers find a Deployment's pods and a pod's events without scanning the namespace.
//!
//! Every selection is answered in `(namespace, name)` order, as lists are served.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::selector::{FieldSelector, LabelSelector};

/// `(namespace, name)` of a stored object; the namespace is empty for cluster-scoped types.
pub(crate) type Key = (String, String);

/// The objects of one resource type and their indexes, kept in step on every insert and
/// remove.
#[derive(Debug, Default)]
pub(crate) struct Objects {
    /// Namespace, then name: a namespace's objects without touching the others.
    by_ns: BTreeMap<String, BTreeMap<String, Arc<Value>>>,
    /// `(label key, label value)` to the objects carrying that label.
    labels: HashMap<(String, String), BTreeSet<Key>>,
    /// A uid to the objects referring to it (owner references, an Event's involved object).
    refs: HashMap<String, BTreeSet<Key>>,
}

/// The string-valued labels of an object (validation keeps other values out of the store).
fn labels_of(obj: &Value) -> impl Iterator<Item = (&String, &str)> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k, v)))
}

/// The uids an object refers to: its owners, and the object an Event is about.
fn refs_of(obj: &Value) -> Vec<&str> {
    let owners = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str));
    let involved = obj.pointer("/involvedObject/uid").and_then(Value::as_str);
    owners
        .chain(involved)
        .filter(|uid| !uid.is_empty())
        .collect()
}

/// The keys of `set` in namespace `ns` (all of them for `None`).
fn in_ns<'a>(
    set: &'a BTreeSet<Key>,
    ns: Option<&'a str>,
) -> Box<dyn Iterator<Item = &'a Key> + 'a> {
    match ns {
        None => Box::new(set.iter()),
        Some(ns) => Box::new(
            set.range((ns.to_string(), String::new())..)
                .take_while(move |(n, _)| n == ns),
        ),
    }
}

impl Objects {
    /// The object `name` in namespace `ns` ("" for cluster-scoped types).
    pub fn get(&self, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.by_ns.get(ns).and_then(|m| m.get(name))
    }

    /// Every object in `ns`, or in all namespaces for `None`.
    pub fn list(&self, ns: Option<&str>) -> Vec<Arc<Value>> {
        match ns {
            Some(ns) => self
                .by_ns
                .get(ns)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default(),
            None => self
                .by_ns
                .values()
                .flat_map(|m| m.values().cloned())
                .collect(),
        }
    }

    /// The objects in `ns` (all namespaces for `None`) that both selectors match, reading
    /// only the candidates an index gives when one applies: a `metadata.name=` field selector
    /// is a direct lookup, a label `=`/`in` requirement reads that label's objects (the
    /// smallest such set), anything else reads the namespace.
    pub fn select(
        &self,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Arc<Value>> {
        let keep = |o: &&Arc<Value>| labels.matches(o) && fields.matches(o);
        if let Some(name) = fields.name() {
            let namespaces: Vec<&str> = match ns {
                Some(ns) => vec![ns],
                None => self.by_ns.keys().map(String::as_str).collect(),
            };
            return namespaces
                .into_iter()
                .filter_map(|ns| self.get(ns, name))
                .filter(keep)
                .cloned()
                .collect();
        }
        match self.label_candidates(ns, labels) {
            Some(keys) => keys
                .iter()
                .filter_map(|(kns, name)| self.get(kns, name))
                .filter(keep)
                .cloned()
                .collect(),
            None => self.list(ns).into_iter().filter(|o| keep(&o)).collect(),
        }
    }

    /// The keys of the objects in `ns` that carry one of the values a label requirement
    /// allows, for the requirement with the fewest; `None` when no requirement can use the
    /// index (only `!=`, `notin`, existence tests, or no requirement at all).
    fn label_candidates(&self, ns: Option<&str>, labels: &LabelSelector) -> Option<BTreeSet<Key>> {
        let empty = BTreeSet::new();
        labels
            .required_values()
            .into_iter()
            .map(|(key, values)| {
                let sets: Vec<&BTreeSet<Key>> = values
                    .iter()
                    .map(|v| {
                        self.labels
                            .get(&(key.to_string(), (*v).to_string()))
                            .unwrap_or(&empty)
                    })
                    .collect();
                let size: usize = sets.iter().map(|s| s.len()).sum();
                (size, sets)
            })
            .min_by_key(|(size, _)| *size)
            .map(|(_, sets)| {
                sets.into_iter()
                    .flat_map(|set| in_ns(set, ns).cloned())
                    .collect()
            })
    }

    /// The objects in `ns` that refer to `uid` (as an owner or an Event's involved object);
    /// the caller checks which way.
    pub fn referring(&self, ns: Option<&str>, uid: &str) -> Vec<Arc<Value>> {
        let Some(keys) = self.refs.get(uid) else {
            return Vec::new();
        };
        in_ns(keys, ns)
            .filter_map(|(kns, name)| self.get(kns, name))
            .cloned()
            .collect()
    }

    /// Stores `obj` under `key`, returning what it replaces.
    pub fn insert(&mut self, key: Key, obj: Arc<Value>) -> Option<Arc<Value>> {
        let old = self.remove(&key);
        for (k, v) in labels_of(&obj) {
            self.labels
                .entry((k.clone(), v.to_string()))
                .or_default()
                .insert(key.clone());
        }
        for uid in refs_of(&obj) {
            self.refs
                .entry(uid.to_string())
                .or_default()
                .insert(key.clone());
        }
        self.by_ns.entry(key.0).or_default().insert(key.1, obj);
        old
    }

    /// Removes the object under `key`, returning it.
    pub fn remove(&mut self, key: &Key) -> Option<Arc<Value>> {
        let (ns, name) = key;
        let names = self.by_ns.get_mut(ns)?;
        let old = names.remove(name)?;
        if names.is_empty() {
            self.by_ns.remove(ns);
        }
        for (k, v) in labels_of(&old) {
            let label = (k.clone(), v.to_string());
            if let Some(set) = self.labels.get_mut(&label) {
                set.remove(key);
                if set.is_empty() {
                    self.labels.remove(&label);
                }
            }
        }
        for uid in refs_of(&old) {
            if let Some(set) = self.refs.get_mut(uid) {
                set.remove(key);
                if set.is_empty() {
                    self.refs.remove(uid);
                }
            }
        }
        Some(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::str_at;
    use serde_json::json;

    fn pod(ns: &str, name: &str, labels: Value, owner: &str) -> (Key, Arc<Value>) {
        let obj = json!({ "metadata": {
            "namespace": ns, "name": name, "labels": labels,
            "ownerReferences": [{ "kind": "Deployment", "uid": owner }],
        } });
        ((ns.into(), name.into()), Arc::new(obj))
    }

    fn names(objects: &[Arc<Value>]) -> Vec<String> {
        objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    str_at(o, "/metadata/namespace"),
                    str_at(o, "/metadata/name")
                )
            })
            .collect()
    }

    fn store() -> Objects {
        let mut objects = Objects::default();
        for (ns, name, app, owner) in [
            ("a", "web-1", "web", "u1"),
            ("a", "web-2", "web", "u1"),
            ("a", "db-1", "db", "u2"),
            ("b", "web-1", "web", "u3"),
        ] {
            let (key, obj) = pod(ns, name, json!({ "app": app }), owner);
            objects.insert(key, obj);
        }
        objects
    }

    #[test]
    fn selections_agree_with_a_scan_in_key_order() {
        let objects = store();
        let cases = [
            (
                None,
                "",
                "",
                vec!["a/db-1", "a/web-1", "a/web-2", "b/web-1"],
            ),
            (Some("a"), "app=web", "", vec!["a/web-1", "a/web-2"]),
            (None, "app=web", "", vec!["a/web-1", "a/web-2", "b/web-1"]),
            (None, "app in (db,web),app!=web", "", vec!["a/db-1"]),
            (Some("a"), "app!=web", "", vec!["a/db-1"]),
            (None, "", "metadata.name=web-1", vec!["a/web-1", "b/web-1"]),
            (Some("b"), "app=web", "metadata.name=web-1", vec!["b/web-1"]),
            (Some("b"), "app=db", "metadata.name=web-1", vec![]),
            (Some("c"), "app=web", "", vec![]),
            (None, "app=cache", "", vec![]),
        ];
        for (ns, labels, fields, want) in cases {
            let l = LabelSelector::parse(labels).unwrap_or_default();
            let f = FieldSelector::parse(fields).unwrap_or_default();
            let got = names(&objects.select(ns, &l, &f));
            assert_eq!(got, want, "ns {ns:?}, labels {labels:?}, fields {fields:?}");
        }
    }

    #[test]
    fn indexes_follow_changes_and_removals() {
        let mut objects = store();
        let (key, relabelled) = pod("a", "web-1", json!({ "app": "db" }), "u9");
        objects.insert(key.clone(), relabelled);
        let web = LabelSelector::parse("app=web").unwrap_or_default();
        let none = FieldSelector::default();
        assert_eq!(
            names(&objects.select(Some("a"), &web, &none)),
            vec!["a/web-2"]
        );
        assert_eq!(names(&objects.referring(Some("a"), "u1")), vec!["a/web-2"]);
        assert_eq!(names(&objects.referring(None, "u9")), vec!["a/web-1"]);
        objects.remove(&key);
        assert!(objects.referring(None, "u9").is_empty());
        assert!(objects.labels.values().all(|s| !s.contains(&key)));
        objects.remove(&("a".into(), "web-2".into()));
        objects.remove(&("a".into(), "db-1".into()));
        assert!(
            !objects.by_ns.contains_key("a"),
            "an emptied namespace goes"
        );
    }
}
