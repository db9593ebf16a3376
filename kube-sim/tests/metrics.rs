//! metrics.k8s.io as metrics-server serves it, read through kube-rs, and its absence when the
//! simulator is configured without it.

mod common;

use common::{apply, deployment, rolled_out, start, start_with, within};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::runtime::wait::await_condition;
use kube_sim::SimConfig;
use serde_json::Value;

fn pod_metrics_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics"),
        "pods",
    )
}

/// `"12345n"` or `"12m"` as nanocores, `"123Ki"` as KiB.
fn quantity(value: &Value, unit: &str) -> u64 {
    value
        .as_str()
        .and_then(|v| v.strip_suffix(unit))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{value} is not a quantity in {unit}"))
}

#[tokio::test]
async fn pod_metrics_are_served_for_ready_pods_and_read_by_kube_rs() {
    let (_sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "apps");
    apply(
        &deployments,
        &deployment("web", "registry.example.com/web:1.0", 2),
    )
    .await;
    apply(
        &deployments,
        &deployment("bad", "registry.example.com/web:1.0-broken", 1),
    )
    .await;
    within(
        5,
        "rollout",
        await_condition(deployments.clone(), "web", |d: Option<&Deployment>| {
            rolled_out(d)
        }),
    )
    .await
    .unwrap_or_else(|e| panic!("watch: {e}"));

    let groups = client
        .list_api_groups()
        .await
        .unwrap_or_else(|e| panic!("groups: {e}"));
    assert!(groups.groups.iter().any(|g| g.name == "metrics.k8s.io"));

    let metrics: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "apps", &pod_metrics_resource());
    let listed = metrics
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap_or_else(|e| panic!("list: {e}"))
        .items;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "apps");
    let mut web_pods: Vec<String> = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap_or_else(|e| panic!("pods: {e}"))
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    web_pods.sort();
    let mut names: Vec<String> = listed
        .iter()
        .filter_map(|m| m.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, web_pods);
    for m in &listed {
        assert_eq!(
            m.types.as_ref().map(|t| t.kind.as_str()),
            Some("PodMetrics")
        );
        assert_eq!(m.metadata.namespace.as_deref(), Some("apps"));
        assert_eq!(m.data["window"], "30s");
        assert!(m.data["timestamp"].is_string());
        let containers = m.data["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0]["name"], "app");
        let cpu = quantity(&containers[0]["usage"]["cpu"], "n");
        let memory = quantity(&containers[0]["usage"]["memory"], "Ki");
        assert!((1_000_000..=250_000_000).contains(&cpu), "{cpu}");
        assert!((8 * 1024..=512 * 1024).contains(&memory), "{memory}");
    }

    // One pod by name: the same, stable usage.
    let one = metrics
        .get(&web_pods[0])
        .await
        .unwrap_or_else(|e| panic!("get: {e}"));
    let listed_one = listed
        .iter()
        .find(|m| m.metadata.name.as_deref() == Some(web_pods[0].as_str()))
        .expect("listed");
    assert_eq!(one.data["containers"], listed_one.data["containers"]);

    // Pods that are not Running and Ready have no metrics.
    let broken = metrics
        .list(&ListParams::default().labels("app=bad"))
        .await
        .unwrap_or_else(|e| panic!("list: {e}"))
        .items;
    assert!(broken.is_empty(), "{broken:?}");
    let bad_pod = pods
        .list(&ListParams::default().labels("app=bad"))
        .await
        .unwrap_or_else(|e| panic!("pods: {e}"))
        .items
        .into_iter()
        .find_map(|p| p.metadata.name)
        .expect("a bad pod");
    match metrics.get(&bad_pod).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404, "{status:?}"),
        other => panic!("expected 404, got {other:?}"),
    }

    // Node metrics: the one node.
    let nodes: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "NodeMetrics"),
            "nodes",
        ),
    );
    let node_list = nodes
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("nodes: {e}"))
        .items;
    assert_eq!(node_list.len(), 1);
    assert!(quantity(&node_list[0].data["usage"]["cpu"], "n") > 0);
}

#[tokio::test]
async fn without_the_metrics_api_its_paths_are_unknown() {
    let (_sim, client) = start_with(SimConfig {
        metrics_api: false,
        ..common::fast_config()
    })
    .await;
    let groups = client
        .list_api_groups()
        .await
        .unwrap_or_else(|e| panic!("groups: {e}"));
    assert!(!groups.groups.iter().any(|g| g.name == "metrics.k8s.io"));
    assert!(groups.groups.iter().any(|g| g.name == "apps"));

    let metrics: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "apps", &pod_metrics_resource());
    match metrics.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 404, "{status:?}");
            assert_eq!(
                status.message,
                "the server could not find the requested resource"
            );
        }
        other => panic!("expected 404, got {other:?}"),
    }
}
