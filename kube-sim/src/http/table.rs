//! The `meta.k8s.io/v1` Table kubectl asks for (`kubectl get`): columns and cells per
//! resource type, and Kubernetes' short ages.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::partial;
use crate::json::str_at;
use crate::resources::ResourceDef;

fn human_age(timestamp: &str) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(timestamp) else {
        return "<unknown>".into();
    };
    let secs = (Utc::now() - t.with_timezone(&Utc)).num_seconds().max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        if secs % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", secs % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else {
        format!("{d}d")
    }
}

fn int_at(obj: &Value, path: &str) -> i64 {
    obj.pointer(path).and_then(Value::as_i64).unwrap_or(0)
}

fn pod_status_text(pod: &Value) -> String {
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    let waiting = statuses.and_then(|cs| {
        cs.iter()
            .map(|c| str_at(c, "/state/waiting/reason"))
            .find(|r| !r.is_empty())
    });
    match waiting {
        Some(reason) => reason.to_string(),
        None => str_at(pod, "/status/phase").to_string(),
    }
}

fn columns_and_cells(
    def: &ResourceDef,
    obj: &Value,
) -> (Vec<(&'static str, &'static str)>, Vec<Value>) {
    let name = json!(str_at(obj, "/metadata/name"));
    let age = json!(human_age(str_at(obj, "/metadata/creationTimestamp")));
    match def.plural {
        "pods" => {
            let statuses = obj
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array);
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses.map_or(0, |cs| {
                cs.iter()
                    .filter(|c| c.get("ready") == Some(&json!(true)))
                    .count()
            });
            let restarts: i64 =
                statuses.map_or(0, |cs| cs.iter().map(|c| int_at(c, "/restartCount")).sum());
            (
                vec![
                    ("Name", "string"),
                    ("Ready", "string"),
                    ("Status", "string"),
                    ("Restarts", "string"),
                    ("Age", "string"),
                ],
                vec![
                    name,
                    json!(format!("{ready}/{total}")),
                    json!(pod_status_text(obj)),
                    json!(restarts.to_string()),
                    age,
                ],
            )
        }
        "deployments" => (
            vec![
                ("Name", "string"),
                ("Ready", "string"),
                ("Up-to-date", "integer"),
                ("Available", "integer"),
                ("Age", "string"),
            ],
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int_at(obj, "/status/readyReplicas"),
                    int_at(obj, "/spec/replicas")
                )),
                json!(int_at(obj, "/status/updatedReplicas")),
                json!(int_at(obj, "/status/availableReplicas")),
                age,
            ],
        ),
        "services" => {
            let ports: Vec<String> = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| format!("{}/{}", int_at(p, "/port"), str_at(p, "/protocol")))
                        .collect()
                })
                .unwrap_or_default();
            let ports = if ports.is_empty() {
                "<none>".to_string()
            } else {
                ports.join(",")
            };
            (
                vec![
                    ("Name", "string"),
                    ("Type", "string"),
                    ("Cluster-IP", "string"),
                    ("External-IP", "string"),
                    ("Port(s)", "string"),
                    ("Age", "string"),
                ],
                vec![
                    name,
                    json!(str_at(obj, "/spec/type")),
                    json!(str_at(obj, "/spec/clusterIP")),
                    json!("<none>"),
                    json!(ports),
                    age,
                ],
            )
        }
        "events" => (
            vec![
                ("Last Seen", "string"),
                ("Type", "string"),
                ("Reason", "string"),
                ("Object", "string"),
                ("Message", "string"),
            ],
            vec![
                json!(human_age(str_at(obj, "/lastTimestamp"))),
                json!(str_at(obj, "/type")),
                json!(str_at(obj, "/reason")),
                json!(format!(
                    "{}/{}",
                    str_at(obj, "/involvedObject/kind").to_lowercase(),
                    str_at(obj, "/involvedObject/name")
                )),
                json!(str_at(obj, "/message")),
            ],
        ),
        "secrets" => crate::secrets::table_row(obj, name, age),
        "ingresses" => crate::ingress::table_row(obj, name, age),
        "namespaces" => (
            vec![("Name", "string"), ("Status", "string"), ("Age", "string")],
            vec![name, json!(str_at(obj, "/status/phase")), age],
        ),
        _ => (vec![("Name", "string"), ("Age", "string")], vec![name, age]),
    }
}

/// A `meta.k8s.io/v1` Table, what `kubectl get` prints.
pub(super) fn table(def: &ResourceDef, objects: &[Arc<Value>], rv: u64, include: &str) -> Value {
    let (columns, _) = columns_and_cells(def, &json!({}));
    let column_defs: Vec<Value> = columns
        .iter()
        .map(|(name, kind)| {
            json!({
                "name": name,
                "type": kind,
                "format": if *name == "Name" { "name" } else { "" },
                "description": "",
                "priority": 0,
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let (_, cells) = columns_and_cells(def, o);
            let mut row = json!({ "cells": cells });
            let object = match include {
                "None" => None,
                "Object" => Some((**o).clone()),
                _ => Some(partial(o)),
            };
            if let (Some(object), Some(map)) = (object, row.as_object_mut()) {
                map.insert("object".into(), object);
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": { "resourceVersion": rv.to_string() },
        "columnDefinitions": column_defs,
        "rows": rows,
    })
}
