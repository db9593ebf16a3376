//! The object store: every object as JSON, one global resourceVersion counter, a bounded
//! history of recent changes per type for watches ([`history`]), and the generic API verbs
//! ([`verbs`]) with the defaulting ([`defaults`]), validation ([`validate`]) and field
//! ownership ([`managed_fields`]) real Kubernetes applies, including what it does for
//! particular kinds: Secrets' encoding ([`secrets`]) and Deployment strategies ([`strategy`]).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::json::{obj_mut, str_at};
use crate::resources::{ResourceDef, DEPLOYMENTS, NAMESPACES, PODS};
use crate::selector::{FieldSelector, LabelSelector};

mod defaults;
mod history;
mod index;
mod managed_fields;
pub(crate) mod secrets;
pub(crate) mod strategy;
mod validate;
mod verbs;

pub(crate) use history::{Expired, History};
use index::{Key, Objects};
pub(crate) use managed_fields::{manager_name, Writer};
pub(crate) use verbs::Patch;

/// What happened to an object, as a watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One entry of the change history, in resourceVersion order.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub rv: u64,
    pub def: &'static ResourceDef,
    pub kind: ChangeType,
    /// The object after the change (for DELETED: the last state, with the deletion's version).
    pub object: Arc<Value>,
    /// The object before a MODIFIED change, so filtered watches can turn it into ADDED/DELETED.
    pub old: Option<Arc<Value>>,
}

/// Whoever acts on the store's writes: the controllers. The store tells it of a new object
/// before storing it and of every change once committed, and never acts itself, so that the
/// API machinery knows nothing of the kubelet or the deployment controller.
pub(crate) trait Observer {
    /// A new object of `def` (server fields set, defaulted and validated) is about to be
    /// stored: the last moment to fill in what the node sets on admission.
    fn admit(&mut self, _def: &ResourceDef, _obj: &mut Value) {}

    /// `change` has just been committed. The observer may write to `store` in turn; it is
    /// told of those writes too, at once, so every reaction keeps the order of the writes.
    fn changed(&mut self, _store: &mut Store, _change: &Change) {}
}

/// Nobody acting on the writes (the namespaces a new store starts with, unit tests).
impl Observer for () {}

/// One object of one type, as a request names it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ObjectRef<'a> {
    /// Its type.
    pub def: &'static ResourceDef,
    /// Its namespace (ignored for a cluster-scoped type).
    pub ns: &'a str,
    /// Its name.
    pub name: &'a str,
}

/// The API machinery's state of one simulated cluster: the objects and their history.
pub(crate) struct Store {
    /// The resourceVersion of the last change.
    pub rv: u64,
    /// The objects of each resource type (by plural), indexed.
    objects: HashMap<&'static str, Objects>,
    /// Recent changes, for watches to resume from.
    pub history: History,
    /// The next Service cluster IP to hand out.
    next_cluster_ip: u32,
}

/// An RFC 3339 timestamp with seconds precision, as Kubernetes `Time` is written.
pub(crate) fn now_time() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn key_of(def: &ResourceDef, ns: &str, name: &str) -> Key {
    if def.namespaced {
        (ns.to_string(), name.to_string())
    } else {
        (String::new(), name.to_string())
    }
}

/// The `(namespace, name)` of an object as stored.
pub(crate) fn object_key(obj: &Value) -> (String, String) {
    (
        str_at(obj, "/metadata/namespace").to_string(),
        str_at(obj, "/metadata/name").to_string(),
    )
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    obj_mut(obj, "metadata")
}

/// Whether an object lives in the request's scope.
fn in_scope(obj: &Value, ns: Option<&str>) -> bool {
    ns.is_none_or(|ns| str_at(obj, "/metadata/namespace") == ns)
}

impl Store {
    /// A store with the namespaces every cluster has, keeping `watch_history` changes per type.
    pub fn new(watch_history: usize) -> Self {
        let mut store = Store {
            history: History::new(watch_history),
            rv: 0,
            objects: HashMap::new(),
            next_cluster_ip: 1,
        };
        for ns in ["default", "kube-system", "kube-public"] {
            store.ensure_namespace(ns, &mut ());
        }
        store
    }

    /// The object `def`/`ns`/`name`, if it exists (`ns` is ignored for cluster-scoped types).
    pub fn get(&self, def: &ResourceDef, ns: &str, name: &str) -> Option<Arc<Value>> {
        let ns = if def.namespaced { ns } else { "" };
        self.objects
            .get(def.plural)
            .and_then(|m| m.get(ns, name))
            .cloned()
    }

    /// Objects of one type, in one namespace or all, sorted by namespace and name.
    pub fn list(&self, def: &ResourceDef, ns: Option<&str>) -> Vec<Arc<Value>> {
        self.objects
            .get(def.plural)
            .map(|m| m.list(ns.filter(|_| def.namespaced)))
            .unwrap_or_default()
    }

    /// Objects of one type, in one namespace or all, that both selectors match, sorted by
    /// namespace and name; through the indexes, so only candidates are read.
    pub fn select(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Arc<Value>> {
        self.objects
            .get(def.plural)
            .map(|m| m.select(ns.filter(|_| def.namespaced), labels, fields))
            .unwrap_or_default()
    }

    /// Records a change: stamps a fresh resourceVersion, updates the map, appends to history,
    /// then tells `observer`.
    fn commit(
        &mut self,
        def: &'static ResourceDef,
        mut obj: Value,
        kind: ChangeType,
        observer: &mut dyn Observer,
    ) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let (ns, name) = object_key(&obj);
        let key = key_of(def, &ns, &name);
        let obj = Arc::new(obj);
        let map = self.objects.entry(def.plural).or_default();
        let old = match kind {
            ChangeType::Deleted => map.remove(&key),
            _ => map.insert(key, obj.clone()),
        };
        let change = Change {
            rv,
            def,
            kind,
            object: obj.clone(),
            old: if kind == ChangeType::Modified {
                old
            } else {
                None
            },
        };
        self.history.record(change.clone());
        observer.changed(self, &change);
        obj
    }

    /// Stores a changed version of an existing object (no validation, no generation logic):
    /// how the controllers write status.
    pub fn put(
        &mut self,
        def: &'static ResourceDef,
        obj: Value,
        observer: &mut dyn Observer,
    ) -> Arc<Value> {
        self.commit(def, obj, ChangeType::Modified, observer)
    }

    /// Creates the Namespace object the first time a namespace is used.
    pub fn ensure_namespace(&mut self, ns: &str, observer: &mut dyn Observer) {
        if ns.is_empty() || self.get(&NAMESPACES, "", ns).is_some() {
            return;
        }
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": ns,
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": now_time(),
                "labels": { "kubernetes.io/metadata.name": ns },
            },
            "spec": { "finalizers": ["kubernetes"] },
            "status": { "phase": "Active" },
        });
        self.commit(&NAMESPACES, obj, ChangeType::Added, observer);
    }

    /// Stores a new object (server fields filled in; no validation): how the API creates
    /// objects once they are valid, and how the controllers create pods and events.
    pub fn insert_new(
        &mut self,
        def: &'static ResourceDef,
        mut obj: Value,
        observer: &mut dyn Observer,
    ) -> Arc<Value> {
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), json!(def.api_version()));
            map.insert("kind".into(), json!(def.kind));
        }
        let meta = meta_mut(&mut obj);
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now_time()));
        meta.insert("generation".into(), json!(1));
        let ns = str_at(&obj, "/metadata/namespace").to_string();
        if def.namespaced {
            self.ensure_namespace(&ns, observer);
        }
        observer.admit(def, &mut obj);
        self.commit(def, obj, ChangeType::Added, observer)
    }

    /// Removes an object (DELETED event) and cascades as the garbage collector would: a
    /// Deployment's pods, a Namespace's objects.
    pub fn remove(
        &mut self,
        def: &'static ResourceDef,
        ns: &str,
        name: &str,
        cascade: bool,
        observer: &mut dyn Observer,
    ) -> Option<Arc<Value>> {
        let old = self.get(def, ns, name)?;
        let deleted = self.commit(def, (*old).clone(), ChangeType::Deleted, observer);
        let uid = str_at(&deleted, "/metadata/uid").to_string();
        if def.plural == DEPLOYMENTS.plural && cascade {
            for pod in self.owned_pods(ns, &uid) {
                let (pns, pname) = object_key(&pod);
                self.remove(&PODS, &pns, &pname, true, observer);
            }
        } else if def.plural == NAMESPACES.plural && cascade {
            // Deployments first, so their pods go with them rather than being recreated.
            for d in std::iter::once(&DEPLOYMENTS).chain(
                crate::resources::ALL
                    .iter()
                    .copied()
                    .filter(|d| d.namespaced && d.plural != DEPLOYMENTS.plural),
            ) {
                for obj in self.list(d, Some(name)) {
                    let (ons, oname) = object_key(&obj);
                    self.remove(d, &ons, &oname, true, observer);
                }
            }
        }
        Some(deleted)
    }

    /// Objects of one type in `ns` that refer to `uid` as an owner or, for Events, as the
    /// involved object (the caller checks which), sorted by name.
    pub fn referring(&self, def: &ResourceDef, ns: &str, uid: &str) -> Vec<Arc<Value>> {
        self.objects
            .get(def.plural)
            .map(|m| m.referring(Some(ns).filter(|_| def.namespaced), uid))
            .unwrap_or_default()
    }

    /// Pods whose ownerReferences name the given owner uid.
    pub fn owned_pods(&self, ns: &str, owner_uid: &str) -> Vec<Arc<Value>> {
        self.referring(&PODS, ns, owner_uid)
            .into_iter()
            .filter(|p| {
                p.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| str_at(r, "/uid") == owner_uid))
            })
            .collect()
    }

    /// The next free Service cluster IP.
    fn allocate_cluster_ip(&mut self) -> String {
        let n = self.next_cluster_ip;
        self.next_cluster_ip = self.next_cluster_ip.wrapping_add(1);
        format!("10.96.{}.{}", (n / 250) % 256, n % 250 + 2)
    }
}
