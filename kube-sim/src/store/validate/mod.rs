//! The validation the API server does before it stores an object (422 Invalid with causes):
//! names, labels and annotations of every object, and each kind's spec (containers and
//! their environment ([`env`](mod@env)), Deployment strategies, Secrets, Ingresses
//! ([`ingress`]), Services).

mod env;
mod ingress;

use serde_json::{json, Value};

use super::strategy::validate_strategy;
use crate::json::{
    check_dns1035_label, check_dns1123_label, check_dns1123_subdomain, check_label_value,
    check_qualified_name, str_at, string_map,
};
use crate::resources::ResourceDef;
use crate::status::ApiError;

/// The simulator's own cap on a deployment's replicas (a real cluster takes any int32).
const MAX_REPLICAS: i64 = 1000;

/// Validation the API server would do, reported as 422 Invalid with field causes.
pub(super) fn validate(
    def: &ResourceDef,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
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
        "secrets" => super::secrets::validate(obj, old, &mut causes),
        "ingresses" => ingress::validate(obj, &mut causes),
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
        env::validate(c, &format!("{field}.containers[{i}]"), causes);
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
