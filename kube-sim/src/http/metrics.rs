//! `metrics.k8s.io/v1beta1`, as metrics-server serves it (`kubectl top`, autoscalers): pod and
//! node usage, made up but stable, computed from the store on every request.
//!
//! Only Running and Ready pods have metrics (metrics-server has none before the first scrape).
//! A pod's usage is derived from its uid and container names, so it is the same on every read.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use super::{json_response, ApiResult, Params};
use crate::cluster::Shared;
use crate::controllers::{pod_ready, NODE_NAME};
use crate::json::str_at;
use crate::resources::PODS;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::now_time;

pub(crate) use crate::resources::{METRICS_GROUP as GROUP, METRICS_VERSION as VERSION};

const API_VERSION: &str = "metrics.k8s.io/v1beta1";
/// The window metrics-server reports usage over.
const WINDOW: &str = "30s";

/// `GET /apis/metrics.k8s.io/v1beta1`.
pub(crate) fn resource_list() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": API_VERSION,
        "resources": [
            { "name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"] },
            { "name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"] },
        ],
    })
}

/// Serves the paths below `/apis/metrics.k8s.io/v1beta1`.
pub(crate) fn route(shared: &Shared, rest: &[&str], method: &Method, q: &Params) -> ApiResult {
    if *method != Method::GET || q.flag("watch") || rest.first() == Some(&"watch") {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    match rest {
        ["pods"] => list_pods(shared, None, q),
        ["namespaces", ns, "pods"] => list_pods(shared, Some(ns), q),
        ["namespaces", ns, "pods", name] => {
            let item = pod_metrics_in(shared, Some(ns))
                .into_iter()
                .find(|m| str_at(m, "/metadata/name") == *name)
                .ok_or_else(|| not_found("podmetrics", &format!("{ns}/{name}")))?;
            Ok(json_response(StatusCode::OK, &item))
        }
        ["nodes"] => {
            let doc = list_doc("NodeMetricsList", vec![node_metrics(shared)]);
            Ok(json_response(StatusCode::OK, &doc))
        }
        ["nodes", name] if *name == NODE_NAME => {
            Ok(json_response(StatusCode::OK, &node_metrics(shared)))
        }
        ["nodes", name] => Err(not_found("nodemetrics", name)),
        _ => Err(ApiError::no_route()),
    }
}

/// metrics-server's NotFound (it names pods `namespace/name`).
fn not_found(resource: &str, name: &str) -> ApiError {
    ApiError {
        code: 404,
        reason: "NotFound",
        message: format!("{resource}.{GROUP} \"{name}\" not found"),
        details: Some(json!({ "name": name, "group": GROUP, "kind": resource })),
    }
}

fn list_doc(kind: &str, items: Vec<Value>) -> Value {
    json!({ "kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items })
}

fn list_pods(shared: &Shared, ns: Option<&str>, q: &Params) -> ApiResult {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let items: Vec<Value> = pod_metrics_in(shared, ns)
        .into_iter()
        .filter(|m| labels.matches(m) && fields.matches(m))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &list_doc("PodMetricsList", items),
    ))
}

/// PodMetrics of every Running and Ready pod, in one namespace or all.
fn pod_metrics_in(shared: &Shared, ns: Option<&str>) -> Vec<Value> {
    let pods = shared.read(|s| s.list(&PODS, ns));
    let now = now_time();
    pods.iter()
        .filter(|p| str_at(p, "/status/phase") == "Running" && pod_ready(p))
        .map(|p| {
            let uid = str_at(p, "/metadata/uid");
            let containers: Vec<Value> = p
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    let name = str_at(c, "/name");
                    let (nanocores, kibibytes) = usage(uid, name);
                    json!({
                        "name": name,
                        "usage": { "cpu": format!("{nanocores}n"), "memory": format!("{kibibytes}Ki") },
                    })
                })
                .collect();
            json!({
                "kind": "PodMetrics",
                "apiVersion": API_VERSION,
                "metadata": {
                    "name": str_at(p, "/metadata/name"),
                    "namespace": str_at(p, "/metadata/namespace"),
                    "labels": p.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                    // metrics-server stamps the time of the answer, not the pod's creation.
                    "creationTimestamp": now,
                },
                "timestamp": now,
                "window": WINDOW,
                "containers": containers,
            })
        })
        .collect()
}

/// The one node: a base load plus the usage of every pod on it.
fn node_metrics(shared: &Shared) -> Value {
    let (mut nanocores, mut kibibytes) = (150_000_000u64, 600 * 1024u64);
    for pod in pod_metrics_in(shared, None) {
        for c in pod
            .get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let number = |path: &str, unit: &str| {
                str_at(c, path)
                    .strip_suffix(unit)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            nanocores += number("/usage/cpu", "n");
            kibibytes += number("/usage/memory", "Ki");
        }
    }
    let now = now_time();
    json!({
        "kind": "NodeMetrics",
        "apiVersion": API_VERSION,
        "metadata": {
            "name": NODE_NAME,
            "labels": { "kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux" },
            "creationTimestamp": now,
        },
        "timestamp": now,
        "window": WINDOW,
        "usage": { "cpu": format!("{nanocores}n"), "memory": format!("{kibibytes}Ki") },
    })
}

/// A container's CPU (1m..=250m, in nanocores) and memory (8..=512 MiB, in KiB), stable for
/// a given pod uid and container name.
fn usage(pod_uid: &str, container: &str) -> (u64, u64) {
    // FNV-1a: a fixed hash, unlike std's, whose seed may change between releases.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pod_uid.bytes().chain([b'/']).chain(container.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let nanocores = 1_000_000 + h % 249_000_001;
    let kibibytes = 8 * 1024 + (h >> 32) % (504 * 1024 + 1);
    (nanocores, kibibytes)
}

#[cfg(test)]
mod tests {
    use super::usage;

    #[test]
    fn usage_is_stable_and_in_range() {
        for uid in ["a", "0b6f1c2e-5d0c-4b8e-9a57-3d7c2d1f0e11", ""] {
            let (cpu, mem) = usage(uid, "app");
            assert_eq!((cpu, mem), usage(uid, "app"), "{uid}");
            assert!((1_000_000..=250_000_000).contains(&cpu), "{uid}: {cpu}");
            assert!((8 * 1024..=512 * 1024).contains(&mem), "{uid}: {mem}");
        }
        assert_ne!(usage("a", "app"), usage("b", "app"));
    }
}
