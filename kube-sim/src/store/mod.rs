//! The object store: every object as JSON, one global resourceVersion counter, a bounded
//! history of recent changes per type for watches ([`history`]), and the generic API verbs
//! ([`verbs`]) with the defaulting ([`defaults`]), validation ([`validate`]) and field
//! ownership ([`managed_fields`]) real Kubernetes applies, including what it does for
//! particular kinds: Secrets' encoding ([`secrets`]) and Deployment strategies ([`strategy`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::config::SimConfig;
use crate::controller::{Action, Rollout};
use crate::echo::EchoOp;
use crate::ingress::routes::IngressRoutes;
use crate::json::{obj_mut, str_at};
use crate::kubelet::{PodLogs, StartedContainers};
use crate::resources::{ResourceDef, DEPLOYMENTS, INGRESSES, NAMESPACES, PODS};
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

/// How long the echo app of a deleted Deployment keeps answering before it stops.
pub(crate) const ECHO_DRAIN: Duration = Duration::from_millis(500);

/// All state of one simulated cluster.
pub(crate) struct Store {
    pub config: SimConfig,
    pub rv: u64,
    /// The objects of each resource type (by plural), indexed.
    objects: HashMap<&'static str, Objects>,
    /// Recent changes, for watches to resume from.
    pub history: History,
    pub logs: HashMap<String, PodLogs>,
    /// The containers the kubelet started, by pod uid (what their processes were given).
    pub started: HashMap<String, StartedContainers>,
    pub log_version: u64,
    pub rollouts: HashMap<String, Rollout>,
    /// Timed actions to hand to the scheduler once the lock is released.
    pub pending: Vec<(Duration, Action)>,
    /// Echo apps to start or stop once the lock is released.
    pub echo_ops: Vec<EchoOp>,
    next_pod_ip: u32,
    next_cluster_ip: u32,
    pub event_seq: u64,
    /// Every Ingress rule by host, kept current on every Ingress change, for the ingress
    /// controller to route a request without scanning the Ingresses.
    pub ingress_routes: IngressRoutes,
    /// The address the ingress controller serves on, when it runs (for Ingress statuses).
    pub ingress_address: Option<String>,
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
    pub fn new(config: SimConfig) -> Self {
        let mut store = Store {
            history: History::new(config.watch_history),
            config,
            rv: 0,
            objects: HashMap::new(),
            logs: HashMap::new(),
            started: HashMap::new(),
            log_version: 0,
            rollouts: HashMap::new(),
            pending: Vec::new(),
            echo_ops: Vec::new(),
            next_pod_ip: 2,
            next_cluster_ip: 1,
            event_seq: 0,
            ingress_routes: IngressRoutes::default(),
            ingress_address: None,
        };
        for ns in ["default", "kube-system", "kube-public"] {
            store.ensure_namespace(ns);
        }
        store
    }

    pub fn schedule(&mut self, delay: Duration, action: Action) {
        self.pending.push((delay, action));
    }

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

    /// Records a change: stamps a fresh resourceVersion, updates the map, appends to history.
    fn commit(
        &mut self,
        def: &'static ResourceDef,
        mut obj: Value,
        kind: ChangeType,
    ) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let (ns, name) = object_key(&obj);
        let key = key_of(def, &ns, &name);
        let obj = Arc::new(obj);
        if def.plural == INGRESSES.plural {
            let current = (kind != ChangeType::Deleted).then_some(&*obj);
            self.ingress_routes.update(key.clone(), current);
        }
        let map = self.objects.entry(def.plural).or_default();
        let old = match kind {
            ChangeType::Deleted => map.remove(&key),
            _ => map.insert(key, obj.clone()),
        };
        self.history.record(Change {
            rv,
            def,
            kind,
            object: obj.clone(),
            old: if kind == ChangeType::Modified {
                old
            } else {
                None
            },
        });
        obj
    }

    /// Stores a changed version of an existing object (no validation, no generation logic).
    pub fn put(&mut self, def: &'static ResourceDef, obj: Value) -> Arc<Value> {
        self.commit(def, obj, ChangeType::Modified)
    }

    /// Creates the Namespace object the first time a namespace is used.
    pub fn ensure_namespace(&mut self, ns: &str) {
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
        self.commit(&NAMESPACES, obj, ChangeType::Added);
    }

    /// Stores a new object (server fields filled in) and runs the controllers' reactions.
    pub fn insert_new(&mut self, def: &'static ResourceDef, mut obj: Value) -> Arc<Value> {
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
            self.ensure_namespace(&ns);
        }
        if def.plural == PODS.plural {
            self.kubelet_admit(&mut obj);
        }
        let stored = self.commit(def, obj, ChangeType::Added);
        self.after_create(def, &stored);
        stored
    }

    fn after_create(&mut self, def: &'static ResourceDef, obj: &Arc<Value>) {
        let (ns, name) = object_key(obj);
        if def.plural == DEPLOYMENTS.plural {
            self.schedule(Duration::ZERO, Action::Reconcile { ns, name });
        } else if def.plural == PODS.plural {
            self.kubelet_started(obj);
        } else if def.plural == INGRESSES.plural && self.ingress_address.is_some() {
            self.schedule(Duration::ZERO, Action::IngressStatus { ns, name });
        }
    }

    /// Removes an object (DELETED event) and cascades as the garbage collector would.
    pub fn remove(
        &mut self,
        def: &'static ResourceDef,
        ns: &str,
        name: &str,
        cascade: bool,
    ) -> Option<Arc<Value>> {
        let old = self.get(def, ns, name)?;
        let deleted = self.commit(def, (*old).clone(), ChangeType::Deleted);
        let uid = str_at(&deleted, "/metadata/uid").to_string();
        if def.plural == PODS.plural {
            self.kubelet_stopped(&deleted);
        } else if def.plural == DEPLOYMENTS.plural {
            self.rollouts.remove(&uid);
            // Its app drains first, as a terminating pod's container finishes what it was
            // sent: a request routed just before the delete is still answered.
            self.schedule(ECHO_DRAIN, Action::StopEcho { uid: uid.clone() });
            if cascade {
                for pod in self.owned_pods(ns, &uid) {
                    let (pns, pname) = object_key(&pod);
                    self.remove(&PODS, &pns, &pname, true);
                }
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
                    self.remove(d, &ons, &oname, true);
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

    pub fn allocate_pod_ip(&mut self) -> String {
        let n = self.next_pod_ip;
        self.next_pod_ip = self.next_pod_ip.wrapping_add(1);
        format!("10.244.{}.{}", (n / 250) % 256, n % 250 + 2)
    }

    fn allocate_cluster_ip(&mut self) -> String {
        let n = self.next_cluster_ip;
        self.next_cluster_ip = self.next_cluster_ip.wrapping_add(1);
        format!("10.96.{}.{}", (n / 250) % 256, n % 250 + 2)
    }
}
