//! Field ownership, write by write: what each kind of write owns, and what an apply removes.

use super::*;
use crate::resources::DEPLOYMENTS;
use serde_json::json;

fn path(p: &str) -> Path {
    p.split('.').map(String::from).collect()
}

fn fields(paths: &[&str]) -> Fields {
    paths.iter().map(|p| path(p)).collect()
}

/// A Deployment stored after `writes` (each a writer's name, Apply or not, and its body).
fn after(writes: &[(&str, bool, Value)]) -> Value {
    let mut live: Option<Value> = None;
    for (manager, apply, body) in writes {
        let mut new = live.clone().unwrap_or_else(|| json!({}));
        if *apply {
            crate::json::apply_merge(&mut new, body);
            if let Some(old) = &live {
                prune(&DEPLOYMENTS, old, &mut new, body, manager);
            }
            let writer = Writer::Apply {
                manager,
                applied: body,
            };
            record(&DEPLOYMENTS, live.as_ref(), &mut new, writer);
        } else {
            crate::json::merge_patch(&mut new, body);
            record(
                &DEPLOYMENTS,
                live.as_ref(),
                &mut new,
                Writer::Update { manager },
            );
        }
        live = Some(new);
    }
    live.unwrap_or_default()
}

#[test]
fn fields_are_map_keys_with_lists_atomic_and_server_metadata_left_out() {
    let obj = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "web", "labels": { "a": "1" }, "resourceVersion": "3" },
        "spec": { "ports": [{ "port": 80 }], "gone": null },
        "status": { "replicas": 1 },
    });
    assert_eq!(
        fields_of(&DEPLOYMENTS, &obj),
        fields(&["metadata.labels", "metadata.labels.a", "spec", "spec.ports"])
    );
}

#[test]
fn an_apply_removes_what_its_manager_stopped_applying_and_nobody_else_owns() {
    let strategy = |s: Value| json!({ "spec": { "strategy": s } });
    // (description, writes, the strategy stored at the end)
    let cases = [
        (
            "rollingUpdate dropped by its only owner goes, with its emptied map",
            vec![
                (
                    "shiplog",
                    true,
                    strategy(
                        json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1 } }),
                    ),
                ),
                ("shiplog", true, strategy(json!({ "type": "Recreate" }))),
            ],
            json!({ "type": "Recreate" }),
        ),
        (
            "a field another manager applied too stays",
            vec![
                (
                    "a",
                    true,
                    strategy(
                        json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1 } }),
                    ),
                ),
                (
                    "b",
                    true,
                    strategy(json!({ "rollingUpdate": { "maxSurge": 1 } })),
                ),
                ("a", true, strategy(json!({ "type": "RollingUpdate" }))),
            ],
            json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1 } }),
        ),
        (
            "a field a merge patch changed is the patcher's and stays",
            vec![
                (
                    "a",
                    true,
                    strategy(
                        json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1 } }),
                    ),
                ),
                (
                    "kubectl",
                    false,
                    strategy(json!({ "rollingUpdate": { "maxSurge": 2 } })),
                ),
                ("a", true, strategy(json!({ "type": "RollingUpdate" }))),
            ],
            json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 2 } }),
        ),
        (
            "a field nobody owns (a default) keeps its map",
            vec![
                (
                    "a",
                    true,
                    strategy(json!({ "rollingUpdate": { "maxSurge": 1 } })),
                ),
                (
                    "controller",
                    false,
                    strategy(json!({ "rollingUpdate": { "maxUnavailable": 0 } })),
                ),
                ("a", true, strategy(json!({ "type": "Recreate" }))),
            ],
            json!({ "type": "Recreate", "rollingUpdate": { "maxUnavailable": 0 } }),
        ),
    ];
    for (what, writes, want) in cases {
        let live = after(&writes);
        assert_eq!(live.pointer("/spec/strategy"), Some(&want), "{what}");
    }
}

#[test]
fn entries_name_each_manager_and_what_it_owns() {
    let live = after(&[
        (
            "a",
            true,
            json!({ "metadata": { "labels": { "x": "1", "y": "1" } } }),
        ),
        (
            "kubectl",
            false,
            json!({ "metadata": { "labels": { "y": "2" } } }),
        ),
    ]);
    let entries = read(&live);
    let owned = |m: &str, op| entries.get(&(m.to_string(), op)).map(|o| o.fields.clone());
    assert_eq!(
        owned("a", Operation::Apply),
        Some(fields(&["metadata.labels", "metadata.labels.x"]))
    );
    assert_eq!(
        owned("kubectl", Operation::Update),
        Some(fields(&["metadata.labels.y"]))
    );
    let list = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array);
    let first = list.and_then(|l| l.first()).cloned().unwrap_or_default();
    assert_eq!(
        (
            first["manager"].as_str(),
            first["operation"].as_str(),
            first["fieldsType"].as_str()
        ),
        (Some("a"), Some("Apply"), Some("FieldsV1"))
    );
}

#[test]
fn a_write_that_changes_nothing_keeps_the_entries_as_they_were() {
    let body = json!({ "metadata": { "labels": { "x": "1" } } });
    let once = after(&[("a", true, body.clone())]);
    let mut again = once.clone();
    crate::json::apply_merge(&mut again, &body);
    prune(&DEPLOYMENTS, &once, &mut again, &body, "a");
    let writer = Writer::Apply {
        manager: "a",
        applied: &body,
    };
    record(&DEPLOYMENTS, Some(&once), &mut again, writer);
    assert_eq!(again, once);
}

#[test]
fn the_manager_is_the_parameter_else_the_user_agent_else_unknown() {
    // (field manager, User-Agent, manager)
    let cases = [
        (Some("shiplog"), Some("kubectl/v1.32.4"), "shiplog"),
        (
            None,
            Some("kubectl-client-side-apply/v1.32.4 (linux/amd64)"),
            "kubectl-client-side-apply",
        ),
        (Some(""), None, "unknown"),
        (None, Some(""), "unknown"),
    ];
    for (param, agent, want) in cases {
        assert_eq!(manager_name(param, agent), want, "{param:?} {agent:?}");
    }
}
