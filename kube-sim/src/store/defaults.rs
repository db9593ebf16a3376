//! The defaults the API server fills into objects on create and update.

use serde_json::{json, Map, Value};

use super::strategy::default_strategy;
use super::{meta_mut, Store};
use crate::json::{obj_mut, str_at};
use crate::resources::ResourceDef;

impl Store {
    /// Fills in what the API server defaults for `def` (given the stored `old` on an update,
    /// whose allocated cluster IP a Service keeps).
    pub(super) fn apply_defaults(
        &mut self,
        def: &ResourceDef,
        obj: &mut Value,
        old: Option<&Value>,
    ) {
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
            "secrets" => super::secrets::defaults(obj),
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
