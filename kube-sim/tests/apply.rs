//! Server-side apply with field ownership, through the real kube 5 client: a field a manager
//! stops applying is removed when that manager owned it alone, and stays when another
//! manager's apply or a merge patch owns it too. So shiplog's switch from RollingUpdate to
//! `{"type": "Recreate"}` is accepted, and the Deployment then rolls out as Recreate.

mod common;

use std::collections::BTreeMap;

use common::{apply, deployment, rolled_out, start, within};
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::wait::await_condition;
use serde_json::{json, Value};

const NS: &str = "apps";

/// shiplog's rolling strategy: one extra pod at a time, none missing.
fn rolling() -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(1)),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    }
}

/// shiplog's Recreate strategy: the type alone, no `rollingUpdate`.
fn recreate() -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    }
}

/// The Deployment `web` as shiplog applies it, with `strategy` and extra metadata labels.
fn web(
    image: &str,
    replicas: i32,
    strategy: DeploymentStrategy,
    labels: &[(&str, &str)],
) -> Deployment {
    let mut dep = deployment("web", image, replicas);
    if let Some(spec) = dep.spec.as_mut() {
        spec.strategy = Some(strategy);
    }
    let all = dep.metadata.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in labels {
        all.insert((*k).to_string(), (*v).to_string());
    }
    dep
}

/// An apply of `body` by `manager`, forced, as shiplog and kubectl send it.
async fn apply_as(api: &Api<Deployment>, manager: &str, body: &Value) -> Deployment {
    api.patch(
        "web",
        &PatchParams::apply(manager).force(),
        &Patch::Apply(body),
    )
    .await
    .unwrap_or_else(|e| panic!("apply by {manager}: {e}"))
}

/// The entry of `manager`'s `operation` in an object's managedFields.
fn entry<'a>(
    entries: Option<&'a Vec<ManagedFieldsEntry>>,
    manager: &str,
    operation: &str,
) -> Option<&'a ManagedFieldsEntry> {
    entries?.iter().find(|e| {
        e.manager.as_deref() == Some(manager) && e.operation.as_deref() == Some(operation)
    })
}

/// The `FieldsV1` of an entry, as JSON.
fn fields_v1(entry: Option<&ManagedFieldsEntry>) -> Value {
    entry
        .and_then(|e| e.fields_v1.as_ref())
        .map(|f| f.0.clone())
        .unwrap_or(Value::Null)
}

/// Whether a pod counts as serving (its Ready condition is True).
fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The image of a pod's first container, which tells old pods from new ones.
fn image_of(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.as_deref())
        .unwrap_or("")
}

#[tokio::test]
async fn switching_to_recreate_drops_the_rolling_update_shiplog_applied() {
    let (_sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client, NS);
    let image = "registry.example.com/web:1.0";
    apply(&deployments, &web(image, 2, rolling(), &[])).await;

    // The same manifest with `{"type": "Recreate"}` alone: no 422 for a left-over rollingUpdate.
    let switched = apply(&deployments, &web(image, 2, recreate(), &[])).await;
    assert_eq!(switched.spec.and_then(|s| s.strategy), Some(recreate()));
    let stored = deployments
        .get("web")
        .await
        .unwrap_or_else(|e| panic!("get: {e}"));
    assert_eq!(
        stored.spec.and_then(|s| s.strategy),
        Some(recreate()),
        "the stored strategy has no rollingUpdate"
    );

    // The ownership is readable as on a real cluster: shiplog's apply owns the type only now.
    let fields = fields_v1(entry(
        stored.metadata.managed_fields.as_ref(),
        "shiplog",
        "Apply",
    ));
    assert_eq!(
        fields.pointer("/f:spec/f:strategy"),
        Some(&json!({ ".": {}, "f:type": {} })),
        "{fields}"
    );

    // And back: the rollingUpdate is applied again.
    let back = apply(&deployments, &web(image, 2, rolling(), &[])).await;
    assert_eq!(back.spec.and_then(|s| s.strategy), Some(rolling()));
}

#[tokio::test]
async fn a_defaulted_rolling_update_is_nobodys_and_stays_as_on_a_real_cluster() {
    let (_sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client, NS);
    let image = "registry.example.com/web:1.0";
    apply(&deployments, &deployment("web", image, 1)).await;

    let err = deployments
        .patch(
            "web",
            &PatchParams::apply("shiplog").force(),
            &Patch::Apply(&web(image, 1, recreate(), &[])),
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("Recreate over a defaulted rollingUpdate was accepted"));
    match err {
        kube::Error::Api(status) => assert_eq!(status.code, 422, "{status:?}"),
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn a_label_goes_with_its_only_manager_and_stays_while_another_manager_applies_it() {
    let (_sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client, NS);
    let image = "registry.example.com/web:1.0";
    apply(
        &deployments,
        &web(image, 1, rolling(), &[("only-shiplog", "x"), ("both", "y")]),
    )
    .await;
    let by_other = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "web", "labels": { "only-other": "z", "both": "y" } },
    });
    apply_as(&deployments, "other", &by_other).await;

    // shiplog's next apply names none of the three.
    let after = apply(&deployments, &web(image, 1, rolling(), &[])).await;
    let labels = after.metadata.labels.unwrap_or_default();
    // (label, kept, why)
    let cases = [
        (
            "only-shiplog",
            false,
            "shiplog applied it alone and dropped it",
        ),
        ("both", true, "the other manager still applies it"),
        ("only-other", true, "shiplog never applied it"),
        ("app", true, "shiplog still applies it"),
    ];
    for (label, kept, why) in cases {
        assert_eq!(
            labels.contains_key(label),
            kept,
            "{label}: {why}; labels {labels:?}"
        );
    }

    // The other manager drops `both` too: now nobody applies it, so it goes.
    let by_other = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "web", "labels": { "only-other": "z" } },
    });
    let after = apply_as(&deployments, "other", &by_other).await;
    let labels = after.metadata.labels.unwrap_or_default();
    assert!(!labels.contains_key("both"), "{labels:?}");
    assert!(labels.contains_key("app"), "{labels:?}");
}

#[tokio::test]
async fn a_field_set_by_a_merge_patch_survives_an_apply_that_does_not_name_it() {
    let (_sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client, NS);
    let image = "registry.example.com/web:1.0";
    apply(&deployments, &web(image, 1, rolling(), &[("tier", "back")])).await;

    // A merge patch adds a label and takes over one shiplog applied; a client without a field
    // manager restarts the pods as `kubectl rollout restart` does.
    let patch = json!({ "metadata": { "labels": { "extra": "yes", "tier": "front" } } });
    let by_kubectl = PatchParams {
        field_manager: Some("kubectl-patch".into()),
        ..PatchParams::default()
    };
    deployments
        .patch("web", &by_kubectl, &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("merge patch: {e}"));
    let restart = json!({ "spec": { "template": { "metadata": {
        "annotations": { "kubectl.kubernetes.io/restartedAt": "now" }
    } } } });
    let restarted = deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&restart))
        .await
        .unwrap_or_else(|e| panic!("restart: {e}"));
    let entries = restarted.metadata.managed_fields.as_ref();
    assert_eq!(
        fields_v1(entry(entries, "kubectl-patch", "Update")).pointer("/f:metadata/f:labels/f:tier"),
        Some(&json!({})),
        "the patch owns the label it changed"
    );
    assert!(
        entry(entries, "unknown", "Update").is_some(),
        "a write without a field manager is `unknown`'s: {entries:?}"
    );

    // shiplog applies its manifest without them: they stay.
    let after = apply(&deployments, &web(image, 1, rolling(), &[])).await;
    let labels = after.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("extra").map(String::as_str),
        Some("yes"),
        "{labels:?}"
    );
    assert_eq!(
        labels.get("tier").map(String::as_str),
        Some("front"),
        "{labels:?}"
    );
    let annotations = after
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    assert!(
        annotations.contains_key("kubectl.kubernetes.io/restartedAt"),
        "{annotations:?}"
    );
}

#[tokio::test]
async fn a_deployment_switched_to_recreate_rolls_out_as_recreate() {
    let (_sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let old_image = "registry.example.com/web:1.0";
    let new_image = "registry.example.com/web:2.0";
    apply(&deployments, &web(old_image, 2, rolling(), &[])).await;
    within(
        5,
        "the first rollout",
        await_condition(deployments.clone(), "web", rolled_out),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let before = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap_or_else(|e| panic!("listing pods: {e}"));
    let rv = before.metadata.resource_version.unwrap_or_default();

    apply(&deployments, &web(new_image, 2, recreate(), &[])).await;

    // Every state of web's pods until two Ready pods of the new image are all that is left.
    let mut live: BTreeMap<String, Pod> = before
        .items
        .into_iter()
        .map(|p| (p.metadata.name.clone().unwrap_or_default(), p))
        .collect();
    let params = WatchParams::default().labels("app=web").timeout(30);
    let mut stream = Box::pin(
        pods.watch(&params, &rv)
            .await
            .unwrap_or_else(|e| panic!("watch from {rv}: {e}")),
    );
    let mut fewest_ready = usize::MAX;
    let mut change = 0;
    loop {
        let event = within(10, "the next pod change", stream.try_next())
            .await
            .unwrap_or_else(|e| panic!("watch: {e}"))
            .unwrap_or_else(|| panic!("the watch ended after {change} changes"));
        match event {
            WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                live.insert(p.metadata.name.clone().unwrap_or_default(), p);
            }
            WatchEvent::Deleted(p) => {
                live.remove(p.metadata.name.as_deref().unwrap_or_default());
            }
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("watch error: {e:?}"),
        }
        change += 1;
        let of = |image: &str| live.values().filter(|p| image_of(p) == image).count();
        assert!(
            of(old_image) == 0 || of(new_image) == 0,
            "old and new pods side by side at change {change}"
        );
        let ready = live.values().filter(|p| is_ready(p)).count();
        fewest_ready = fewest_ready.min(ready);
        if live.len() == 2 && of(new_image) == 2 && ready == 2 {
            break;
        }
    }
    assert_eq!(fewest_ready, 0, "Recreate has a moment without Ready pods");
    within(
        5,
        "the Recreate rollout",
        await_condition(deployments.clone(), "web", rolled_out),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn status_writes_leave_the_ownership_alone() {
    let (_sim, client) = start().await;
    let services: Api<Service> = Api::namespaced(client, NS);
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": "web" },
        "spec": { "selector": { "app": "web" }, "ports": [{ "port": 80 }] },
    });
    let applied = services
        .patch(
            "web",
            &PatchParams::apply("shiplog").force(),
            &Patch::Apply(&service),
        )
        .await
        .unwrap_or_else(|e| panic!("apply: {e}"));
    let status = json!({ "status": { "loadBalancer": { "ingress": [{ "ip": "10.0.0.1" }] } } });
    let by_controller = PatchParams {
        field_manager: Some("lb-controller".into()),
        ..PatchParams::default()
    };
    let patched = services
        .patch_status("web", &by_controller, &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("status patch: {e}"));
    assert_eq!(
        patched.metadata.managed_fields, applied.metadata.managed_fields,
        "a status write owns nothing"
    );
    assert_eq!(
        fields_v1(entry(
            applied.metadata.managed_fields.as_ref(),
            "shiplog",
            "Apply"
        ))
        .pointer("/f:spec/f:ports"),
        Some(&json!({})),
        "a list is one field"
    );
}
