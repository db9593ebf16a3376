//! The object store: every object as JSON, one global resourceVersion counter, the full change
//! history (so a watch from any old resourceVersion can be served), and the generic API verbs
//! with the defaulting and validation real Kubernetes applies.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::controller::{Action, Rollout};
use crate::echo::EchoOp;
use crate::ingress::routes::IngressRoutes;
use crate::json::{
    check_dns1035_label, check_dns1123_label, check_dns1123_subdomain, check_label_value,
    check_qualified_name, obj_mut, random_suffix, str_at, string_map,
};
use crate::kubelet::{PodLogs, StartedContainers};
use crate::managed_fields::Writer;
use crate::resources::{ResourceDef, DEPLOYMENTS, INGRESSES, NAMESPACES, PODS, SECRETS};
use crate::rollout::{default_strategy, validate_strategy};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::SimConfig;

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

type Key = (String, String);

/// The simulator's own cap on a deployment's replicas (a real cluster takes any int32).
const MAX_REPLICAS: i64 = 1000;

/// How long the echo app of a deleted Deployment keeps answering before it stops.
pub(crate) const ECHO_DRAIN: Duration = Duration::from_millis(500);

/// All state of one simulated cluster.
pub(crate) struct Store {
    pub config: SimConfig,
    pub rv: u64,
    objects: HashMap<&'static str, BTreeMap<Key, Arc<Value>>>,
    pub history: Vec<Change>,
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
            config,
            rv: 0,
            objects: HashMap::new(),
            history: Vec::new(),
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
        self.objects
            .get(def.plural)
            .and_then(|m| m.get(&key_of(def, ns, name)))
            .cloned()
    }

    /// Objects of one type, in one namespace or all, sorted by namespace and name.
    pub fn list(&self, def: &ResourceDef, ns: Option<&str>) -> Vec<Arc<Value>> {
        let Some(map) = self.objects.get(def.plural) else {
            return Vec::new();
        };
        match ns.filter(|_| def.namespaced) {
            Some(ns) => map
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
            None => map.values().cloned().collect(),
        }
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
        self.history.push(Change {
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

    /// Pods whose ownerReferences name the given owner uid.
    pub fn owned_pods(&self, ns: &str, owner_uid: &str) -> Vec<Arc<Value>> {
        self.list(&PODS, Some(ns))
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

    // ---------------------------------------------------------------- API verbs

    /// POST on a collection (or an apply that creates), by `writer`.
    pub fn api_create(
        &mut self,
        def: &'static ResourceDef,
        ns: &str,
        body: Value,
        writer: Writer<'_>,
    ) -> Result<Arc<Value>, ApiError> {
        let mut obj = normalize(def, ns, body)?;
        let meta = meta_mut(&mut obj);
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(field);
        }
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            let generate = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if generate.is_empty() {
                return Err(ApiError::invalid(
                    def,
                    "",
                    vec![(
                        "metadata.name".into(),
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
            loop {
                name = format!("{generate}{}", random_suffix(5));
                if self.get(def, ns, &name).is_none() {
                    break;
                }
            }
            meta.insert("name".into(), json!(name));
        }
        if self.get(def, ns, &name).is_some() {
            return Err(ApiError::already_exists(def, &name));
        }
        if def.status_subresource {
            if let Some(map) = obj.as_object_mut() {
                map.remove("status");
            }
        }
        self.apply_defaults(def, &mut obj, None);
        validate(def, &obj, None)?;
        crate::managed_fields::record(def, None, &mut obj, writer);
        Ok(self.insert_new(def, obj))
    }

    /// PUT on an object (or its status), and the common end of every patch, by `writer` (whom
    /// a status write does not make an owner of anything).
    pub fn api_update(
        &mut self,
        def: &'static ResourceDef,
        ns: &str,
        name: &str,
        body: Value,
        status_only: bool,
        writer: Writer<'_>,
    ) -> Result<Arc<Value>, ApiError> {
        let old = self
            .get(def, ns, name)
            .ok_or_else(|| ApiError::not_found(def, name))?;
        let mut body = normalize(def, ns, body)?;
        let body_name = str_at(&body, "/metadata/name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_rv = str_at(&body, "/metadata/resourceVersion");
        if !body_rv.is_empty() && body_rv != str_at(&old, "/metadata/resourceVersion") {
            return Err(ApiError::conflict(
                def,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let mut new = if status_only {
            let mut new = (*old).clone();
            if let (Some(map), Some(status)) = (new.as_object_mut(), body.get("status")) {
                map.insert("status".into(), status.clone());
            }
            new
        } else {
            let meta = meta_mut(&mut body);
            for field in [
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "managedFields",
                "selfLink",
            ] {
                match old.pointer(&format!("/metadata/{field}")) {
                    Some(v) => meta.insert(field.into(), v.clone()),
                    None => meta.remove(field),
                };
            }
            meta.insert("name".into(), json!(name));
            if def.status_subresource {
                if let Some(map) = body.as_object_mut() {
                    match old.get("status") {
                        Some(s) => map.insert("status".into(), s.clone()),
                        None => map.remove("status"),
                    };
                }
            }
            self.apply_defaults(def, &mut body, Some(&old));
            validate(def, &body, Some(&old))?;
            body
        };
        let old_gen = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let generation = if new.get("spec") != old.get("spec") {
            old_gen + 1
        } else {
            old_gen
        };
        let meta = meta_mut(&mut new);
        meta.insert("generation".into(), json!(generation));
        meta.insert(
            "resourceVersion".into(),
            old.pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null),
        );
        if !status_only {
            crate::managed_fields::record(def, Some(&old), &mut new, writer);
        }
        if new == *old {
            return Ok(old);
        }
        let spec_changed = new.get("spec") != old.get("spec");
        let stored = self.put(def, new);
        if def.plural == DEPLOYMENTS.plural && spec_changed {
            self.schedule(
                Duration::ZERO,
                Action::Reconcile {
                    ns: ns.to_string(),
                    name: name.to_string(),
                },
            );
        }
        if def.plural == INGRESSES.plural && spec_changed && self.ingress_address.is_some() {
            let (ns, name) = (ns.to_string(), name.to_string());
            self.schedule(Duration::ZERO, Action::IngressStatus { ns, name });
        }
        Ok(stored)
    }

    /// PATCH by `manager`: merge patch (and strategic merge treated as merge) or server-side
    /// apply.
    #[allow(clippy::too_many_arguments)]
    pub fn api_patch(
        &mut self,
        def: &'static ResourceDef,
        ns: &str,
        name: &str,
        patch: Value,
        apply: bool,
        status_only: bool,
        manager: &str,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        if !patch.is_object() {
            return Err(ApiError::bad_request(
                "the patch body must be a JSON object",
            ));
        }
        let writer = if apply {
            Writer::Apply {
                manager,
                applied: &patch,
            }
        } else {
            Writer::Update { manager }
        };
        let Some(old) = self.get(def, ns, name) else {
            if apply && !status_only {
                let mut body = patch.clone();
                let body_name = str_at(&body, "/metadata/name").to_string();
                if !body_name.is_empty() && body_name != name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({body_name}) does not match the name on the URL ({name})"
                    )));
                }
                meta_mut(&mut body).insert("name".into(), json!(name));
                return self.api_create(def, ns, body, writer).map(|o| (o, true));
            }
            return Err(ApiError::not_found(def, name));
        };
        if apply {
            // The applied configuration must name its type, as the real server insists.
            if patch.get("apiVersion").is_none() || patch.get("kind").is_none() {
                return Err(ApiError::bad_request(
                    "invalid object type: apiVersion and kind must be set in an apply patch",
                ));
            }
        }
        let mut merged = (*old).clone();
        crate::json::apply_merge(&mut merged, &patch);
        if apply && !status_only {
            crate::managed_fields::prune(def, &old, &mut merged, &patch, manager);
        }
        self.api_update(def, ns, name, merged, status_only, writer)
            .map(|o| (o, false))
    }

    /// DELETE on an object.
    pub fn api_delete(
        &mut self,
        def: &'static ResourceDef,
        ns: &str,
        name: &str,
        options: &Value,
    ) -> Result<Arc<Value>, ApiError> {
        let old = self
            .get(def, ns, name)
            .ok_or_else(|| ApiError::not_found(def, name))?;
        for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            let want = str_at(options, &format!("/preconditions/{field}"));
            let have = str_at(&old, &format!("/metadata/{field}"));
            if !want.is_empty() && want != have {
                return Err(ApiError::conflict(
                    def,
                    name,
                    &format!("Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"),
                ));
            }
        }
        let cascade = str_at(options, "/propagationPolicy") != "Orphan"
            && options.get("orphanDependents") != Some(&json!(true));
        self.remove(def, ns, name, cascade)
            .ok_or_else(|| ApiError::not_found(def, name))
    }

    /// DELETE on a collection.
    pub fn api_delete_collection(
        &mut self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Arc<Value>> {
        let victims: Vec<Arc<Value>> = self
            .list(def, ns)
            .into_iter()
            .filter(|o| in_scope(o, ns) && labels.matches(o) && fields.matches(o))
            .collect();
        victims
            .into_iter()
            .filter_map(|o| {
                let (ons, oname) = object_key(&o);
                self.remove(def, &ons, &oname, true)
            })
            .collect()
    }

    // ---------------------------------------------------------------- defaulting

    fn apply_defaults(&mut self, def: &ResourceDef, obj: &mut Value, old: Option<&Value>) {
        match def.plural {
            "deployments" => {
                let spec = obj_mut(obj, "spec");
                spec.entry("replicas").or_insert(json!(1));
                spec.entry("progressDeadlineSeconds").or_insert(json!(600));
                spec.entry("revisionHistoryLimit").or_insert(json!(10));
                default_strategy(spec);
                if let Some(template) = spec.get_mut("template") {
                    pod_spec_defaults(obj_mut(template, "spec"));
                }
            }
            "pods" => pod_spec_defaults(obj_mut(obj, "spec")),
            "secrets" => crate::secrets::defaults(obj),
            "services" => {
                let old_ip = old.and_then(|o| o.pointer("/spec/clusterIP")).cloned();
                let spec = obj_mut(obj, "spec");
                spec.entry("type").or_insert(json!("ClusterIP"));
                spec.entry("sessionAffinity").or_insert(json!("None"));
                if let Some(Value::Array(ports)) = spec.get_mut("ports") {
                    for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                        port.entry("protocol").or_insert(json!("TCP"));
                        if let Some(p) = port.get("port").cloned() {
                            port.entry("targetPort").or_insert(p);
                        }
                    }
                }
                let has_ip = spec
                    .get("clusterIP")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty());
                if !has_ip {
                    let ip = match old_ip {
                        Some(ip) => ip,
                        None => json!(self.allocate_cluster_ip()),
                    };
                    let spec = obj_mut(obj, "spec");
                    spec.insert("clusterIP".into(), ip.clone());
                    spec.insert("clusterIPs".into(), json!([ip]));
                }
                let spec = obj_mut(obj, "spec");
                spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
                spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
                spec.entry("internalTrafficPolicy")
                    .or_insert(json!("Cluster"));
                if old.is_none() {
                    if let Some(map) = obj.as_object_mut() {
                        map.entry("status").or_insert(json!({ "loadBalancer": {} }));
                    }
                }
            }
            "namespaces" => {
                let name = str_at(obj, "/metadata/name").to_string();
                obj_mut(obj, "spec")
                    .entry("finalizers")
                    .or_insert(json!(["kubernetes"]));
                crate::json::child_map(meta_mut(obj), "labels")
                    .insert("kubernetes.io/metadata.name".into(), json!(name));
                if old.is_none() {
                    if let Some(map) = obj.as_object_mut() {
                        map.insert("status".into(), json!({ "phase": "Active" }));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The defaults the API server fills into a pod spec.
fn pod_spec_defaults(spec: &mut Map<String, Value>) {
    spec.entry("restartPolicy").or_insert(json!("Always"));
    spec.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    spec.entry("schedulerName")
        .or_insert(json!("default-scheduler"));
    spec.entry("securityContext").or_insert(json!({}));
    if let Some(Value::Array(containers)) = spec.get_mut("containers") {
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            let last = image.rsplit('/').next().unwrap_or("");
            let tag = last
                .split('@')
                .next()
                .unwrap_or("")
                .split_once(':')
                .map(|(_, t)| t);
            let policy = if image.contains('@') || tag.is_some_and(|t| t != "latest") {
                "IfNotPresent"
            } else {
                "Always"
            };
            c.entry("imagePullPolicy").or_insert(json!(policy));
            c.entry("terminationMessagePath")
                .or_insert(json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy").or_insert(json!("File"));
            c.entry("resources").or_insert(json!({}));
            if let Some(Value::Array(ports)) = c.get_mut("ports") {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    p.entry("protocol").or_insert(json!("TCP"));
                }
            }
        }
    }
}

/// Checks the type fields and the namespace, and fills them in.
fn normalize(def: &ResourceDef, ns: &str, body: Value) -> Result<Value, ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::bad_request(format!(
            "the body of a {} must be a JSON object",
            def.kind
        )));
    };
    let api_version = def.api_version();
    if let Some(v) = map.get("apiVersion").and_then(Value::as_str) {
        if v != api_version {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    if let Some(k) = map.get("kind").and_then(Value::as_str) {
        if k != def.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
    }
    map.insert("apiVersion".into(), json!(api_version));
    map.insert("kind".into(), json!(def.kind));
    let mut obj = Value::Object(map);
    let meta = meta_mut(&mut obj);
    if def.namespaced {
        let given = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        if !given.is_empty() && given != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta.insert("namespace".into(), json!(ns));
    } else {
        meta.remove("namespace");
    }
    if def.plural == SECRETS.plural {
        crate::secrets::decode_request(&mut obj)?;
    }
    Ok(obj)
}

/// Validation the API server would do, reported as 422 Invalid with field causes.
fn validate(def: &ResourceDef, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = str_at(obj, "/metadata/name");
    let mut causes: Vec<(String, String)> = Vec::new();
    let name_check = match def.plural {
        "services" => check_dns1035_label(name),
        "namespaces" => check_dns1123_label(name),
        _ => check_dns1123_subdomain(name),
    };
    if let Err(e) = name_check {
        causes.push(("metadata.name".into(), e));
    }
    check_labels(
        obj.pointer("/metadata/labels"),
        "metadata.labels",
        &mut causes,
    );
    for (k, _) in string_map(obj.pointer("/metadata/annotations")) {
        if let Err(e) = check_qualified_name(&k) {
            causes.push(("metadata.annotations".into(), e));
        }
    }
    match def.plural {
        "deployments" => validate_deployment(obj, old, &mut causes),
        "pods" => validate_pod_spec(obj.get("spec"), "spec", &mut causes),
        "secrets" => crate::secrets::validate(obj, old, &mut causes),
        "ingresses" => crate::ingress::validate(obj, &mut causes),
        "services" => {
            if let Some(ports) = obj.pointer("/spec/ports").and_then(Value::as_array) {
                for (i, p) in ports.iter().enumerate() {
                    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                    if !(1..=65535).contains(&port) {
                        causes.push((
                            format!("spec.ports[{i}].port"),
                            format!(
                                "Invalid value: {port}: must be between 1 and 65535, inclusive"
                            ),
                        ));
                    }
                }
            }
            if let Some(old) = old {
                let (o, n) = (
                    str_at(old, "/spec/clusterIP"),
                    str_at(obj, "/spec/clusterIP"),
                );
                if !o.is_empty() && o != n {
                    causes.push((
                        "spec.clusterIPs[0]".into(),
                        "Invalid value: field is immutable".into(),
                    ));
                }
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(def, name, causes))
    }
}

fn check_labels(labels: Option<&Value>, field: &str, causes: &mut Vec<(String, String)>) {
    if labels.is_some_and(|l| !l.is_object() && !l.is_null()) {
        causes.push((
            field.into(),
            "Invalid value: must be a map of strings".into(),
        ));
        return;
    }
    for (k, v) in string_map(labels) {
        if let Err(e) = check_qualified_name(&k) {
            causes.push((field.into(), e));
        }
        match v {
            Some(v) => {
                if let Err(e) = check_label_value(&v) {
                    causes.push((field.into(), e));
                }
            }
            None => causes.push((
                format!("{field}.{k}"),
                "Invalid value: label values must be strings".into(),
            )),
        }
    }
}

fn validate_pod_spec(spec: Option<&Value>, field: &str, causes: &mut Vec<(String, String)>) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        causes.push((format!("{field}.containers"), "Required value".into()));
        return;
    };
    let mut seen = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let name = str_at(c, "/name");
        if name.is_empty() {
            causes.push((
                format!("{field}.containers[{i}].name"),
                "Required value".into(),
            ));
        } else if let Err(e) = check_dns1123_label(name) {
            causes.push((format!("{field}.containers[{i}].name"), e));
        } else if seen.contains(&name) {
            causes.push((
                format!("{field}.containers[{i}].name"),
                format!("Duplicate value: {name:?}"),
            ));
        }
        seen.push(name);
        if str_at(c, "/image").trim().is_empty() {
            causes.push((
                format!("{field}.containers[{i}].image"),
                "Required value".into(),
            ));
        }
        crate::pod_env::validate(c, &format!("{field}.containers[{i}]"), causes);
        if let Some(ports) = c.get("ports").and_then(Value::as_array) {
            for (j, p) in ports.iter().enumerate() {
                let port = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    causes.push((
                        format!("{field}.containers[{i}].ports[{j}].containerPort"),
                        format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
                    ));
                }
            }
        }
    }
}

/// Whether `labels` satisfy a `LabelSelector` object (`matchLabels` + `matchExpressions`).
pub(crate) fn selector_matches(selector: &Value, labels: Option<&Value>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let labels_ok = string_map(selector.get("matchLabels"))
        .into_iter()
        .all(|(k, v)| v.is_some() && get(&k) == v.as_deref());
    let exprs_ok = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(|exprs| {
            exprs.iter().all(|e| {
                let key = str_at(e, "/key");
                let values: Vec<&str> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|v| v.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let have = get(key);
                match str_at(e, "/operator") {
                    "In" => have.is_some_and(|h| values.contains(&h)),
                    "NotIn" => !have.is_some_and(|h| values.contains(&h)),
                    "Exists" => have.is_some(),
                    "DoesNotExist" => have.is_none(),
                    _ => false,
                }
            })
        })
        .unwrap_or(true);
    labels_ok && exprs_ok
}

fn validate_deployment(obj: &Value, old: Option<&Value>, causes: &mut Vec<(String, String)>) {
    let Some(spec) = obj.get("spec").filter(|s| s.is_object()) else {
        causes.push(("spec".into(), "Required value".into()));
        return;
    };
    if let Some(r) = spec.get("replicas") {
        match r.as_i64() {
            Some(n) if (0..=MAX_REPLICAS).contains(&n) => {}
            Some(n) if n > MAX_REPLICAS => causes.push((
                "spec.replicas".into(),
                format!("Invalid value: {n}: kube-sim runs at most {MAX_REPLICAS} replicas"),
            )),
            _ => causes.push((
                "spec.replicas".into(),
                format!("Invalid value: {r}: must be greater than or equal to 0"),
            )),
        }
    }
    let selector = spec.get("selector");
    let selector_empty = selector.is_none_or(|s| {
        string_map(s.get("matchLabels")).is_empty()
            && s.get("matchExpressions")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
    });
    if selector_empty {
        causes.push(("spec.selector".into(), "Required value".into()));
    }
    if let Some(selector) = selector {
        check_labels(
            selector.get("matchLabels"),
            "spec.selector.matchLabels",
            causes,
        );
    }
    let template_labels = spec.pointer("/template/metadata/labels");
    check_labels(template_labels, "spec.template.metadata.labels", causes);
    if !selector_empty {
        if let Some(selector) = selector {
            if !selector_matches(selector, template_labels) {
                causes.push((
                    "spec.template.metadata.labels".into(),
                    format!(
                        "Invalid value: {}: `selector` does not match template `labels`",
                        template_labels.cloned().unwrap_or(json!({}))
                    ),
                ));
            }
        }
    }
    validate_pod_spec(spec.pointer("/template/spec"), "spec.template.spec", causes);
    validate_strategy(spec, causes);
    if let Some(old) = old {
        if old.pointer("/spec/selector") != spec.get("selector") {
            causes.push((
                "spec.selector".into(),
                format!(
                    "Invalid value: {}: field is immutable",
                    spec.get("selector").cloned().unwrap_or(Value::Null)
                ),
            ));
        }
    }
}
