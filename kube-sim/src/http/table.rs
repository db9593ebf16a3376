//! The `meta.k8s.io/v1` Table kubectl asks for (`kubectl get`): columns and cells per
//! resource type, and Kubernetes' short ages.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::partial;
use crate::json::str_at;
use crate::resources::ResourceDef;

/// Longest `ADDRESS` cell of an Ingress before kubectl shortens it (`loadBalancerWidth`).
const ADDRESS_WIDTH: usize = 16;
/// Most hosts an Ingress's `HOSTS` cell lists before "+ N more...".
const MAX_HOSTS_SHOWN: usize = 3;

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

/// The columns kubectl shows for a type, with their types, and one object's cells.
type Row = (Vec<(&'static str, &'static str)>, Vec<Value>);

/// The `kubectl get` columns and one object's cells, per type (NAME and AGE for the types
/// kubectl has no special printer for here).
fn columns_and_cells(def: &ResourceDef, obj: &Value) -> Row {
    let name = json!(str_at(obj, "/metadata/name"));
    let age = json!(human_age(str_at(obj, "/metadata/creationTimestamp")));
    match def.plural {
        "pods" => pod_row(obj, name, age),
        "deployments" => deployment_row(obj, name, age),
        "services" => service_row(obj, name, age),
        "events" => event_row(obj),
        "secrets" => secret_row(obj, name, age),
        "ingresses" => ingress_row(obj, name, age),
        "namespaces" => (
            vec![("Name", "string"), ("Status", "string"), ("Age", "string")],
            vec![name, json!(str_at(obj, "/status/phase")), age],
        ),
        _ => (vec![("Name", "string"), ("Age", "string")], vec![name, age]),
    }
}

/// NAME, READY, STATUS, RESTARTS, AGE of a pod.
fn pod_row(obj: &Value, name: Value, age: Value) -> Row {
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

/// NAME, READY, UP-TO-DATE, AVAILABLE, AGE of a Deployment.
fn deployment_row(obj: &Value, name: Value, age: Value) -> Row {
    (
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
    )
}

/// NAME, TYPE, CLUSTER-IP, EXTERNAL-IP, PORT(S), AGE of a Service.
fn service_row(obj: &Value, name: Value, age: Value) -> Row {
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

/// LAST SEEN, TYPE, REASON, OBJECT, MESSAGE of an Event.
fn event_row(obj: &Value) -> Row {
    (
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
    )
}

/// The `kubectl get secrets` columns (NAME, TYPE, DATA, AGE) and one Secret's cells.
fn secret_row(obj: &Value, name: Value, age: Value) -> Row {
    let count = obj
        .get("data")
        .and_then(Value::as_object)
        .map_or(0, Map::len);
    (
        vec![
            ("Name", "string"),
            ("Type", "string"),
            ("Data", "string"),
            ("Age", "string"),
        ],
        vec![name, json!(str_at(obj, "/type")), json!(count), age],
    )
}

/// The `kubectl get ingress` columns (NAME, CLASS, HOSTS, ADDRESS, PORTS, AGE) and one
/// Ingress's cells, as kubectl's `printIngress` writes them.
fn ingress_row(obj: &Value, name: Value, age: Value) -> Row {
    let class = obj
        .pointer("/spec/ingressClassName")
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let rules = obj
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    // kubectl's `formatHosts`, quirks included: "+ N more..." counts rules, not hosts.
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        more = more || hosts.len() == MAX_HOSTS_SHOWN;
        let host = str_at(rule, "/host");
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    let mut hosts_cell = if hosts.is_empty() {
        "*".to_string()
    } else {
        hosts.join(",")
    };
    if more {
        hosts_cell.push_str(&format!(" + {} more...", rules.len() - MAX_HOSTS_SHOWN));
    }
    let balancers = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array);
    let addresses: Vec<&str> = balancers
        .into_iter()
        .flatten()
        .flat_map(|b| [str_at(b, "/ip"), str_at(b, "/hostname")])
        .filter(|a| !a.is_empty())
        .collect();
    let mut address = addresses.join(",");
    if address.len() > ADDRESS_WIDTH {
        address.truncate(ADDRESS_WIDTH - 3);
        address.push_str("...");
    }
    let has_tls = obj
        .pointer("/spec/tls")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let ports = if has_tls { "80, 443" } else { "80" };
    (
        vec![
            ("Name", "string"),
            ("Class", "string"),
            ("Hosts", "string"),
            ("Address", "string"),
            ("Ports", "string"),
            ("Age", "string"),
        ],
        vec![
            name,
            json!(class),
            json!(hosts_cell),
            json!(address),
            json!(ports),
            age,
        ],
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ingress_row_is_kubectls() {
        let obj = json!({
            "spec": {
                "ingressClassName": "nginx",
                "rules": [{ "host": "a.localhost" }, { "host": "b.localhost" }, {}, { "host": "d.localhost" }, { "host": "e.localhost" }],
                "tls": [{ "hosts": ["a.localhost"] }],
            },
            "status": { "loadBalancer": { "ingress": [{ "ip": "127.0.0.1" }] } },
        });
        let (_, cells) = ingress_row(&obj, json!("web"), json!("1s"));
        assert_eq!(
            cells,
            [
                json!("web"),
                json!("nginx"),
                json!("a.localhost,b.localhost,d.localhost + 2 more..."),
                json!("127.0.0.1"),
                json!("80, 443"),
                json!("1s")
            ]
        );
        let (_, cells) = ingress_row(&json!({ "spec": {} }), json!("x"), json!("1s"));
        assert_eq!(
            cells[1..5],
            [json!("<none>"), json!("*"), json!(""), json!("80")]
        );
    }
}
