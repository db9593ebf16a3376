//! Kubernetes events and usage come from the cluster; without metrics, or
//! without a cluster at all, the answer is a clear 503.

use super::{deployed, sim};
use crate::cluster::app_on;
use crate::helpers::{TestApp, ADMIN_TOKEN};
use serde_json::{json, Value};

#[tokio::test]
async fn kubernetes_events_and_usage_come_from_the_cluster() {
    let sim = sim(true).await;
    let app = app_on(&sim).await;
    let (usecase, d1) = deployed(&app, "observed", "1.0.0", json!({})).await;

    let (status, events) = app
        .get(&format!("/api/usecases/{usecase}/kube-events"))
        .await;
    assert_eq!(status, 200, "{events}");
    let items = events["items"].as_array().cloned().unwrap_or_default();
    let has = |kind: &str, reason: &str| {
        items
            .iter()
            .any(|e| e["objectKind"] == kind && e["reason"] == reason)
    };
    assert!(has("Deployment", "ScalingReplicaSet"), "{events}");
    assert!(has("Pod", "Pulled") && has("Pod", "Started"), "{events}");
    assert!(items.iter().all(|e| e["objectName"]
        .as_str()
        .is_some_and(|n| n.starts_with(&format!("sl-{}", d1.simple())))));

    let (status, usage) = app.get(&format!("/api/usecases/{usecase}/metrics")).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["deploymentId"], d1.to_string());
    let pods = usage["pods"].as_array().cloned().unwrap_or_default();
    assert_eq!(pods.len(), 1, "{usage}");
    assert!(
        pods[0]["cpuCores"].as_f64().is_some_and(|c| c > 0.0),
        "{usage}"
    );
    assert!(
        pods[0]["memoryBytes"]
            .as_u64()
            .is_some_and(|m| m >= 8 * 1024 * 1024),
        "{usage}"
    );
    assert_eq!(usage["memoryBytes"], pods[0]["memoryBytes"]);
}

#[tokio::test]
async fn a_cluster_without_metrics_or_no_cluster_at_all_is_a_clear_503() {
    let sim = sim(false).await;
    let app = app_on(&sim).await;
    let (usecase, _) = deployed(&app, "unmetered", "1.0.0", json!({})).await;
    let response = app
        .client
        .get(app.url(&format!("/api/usecases/{usecase}/metrics")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let problem: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("metrics.k8s.io")),
        "{problem}"
    );

    // --cluster none: the ledger commands work, the cluster reads say why they cannot.
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("offline").await;
    // The ledger side needs no cluster: nothing deployed is a conflict, not an outage.
    let (status, problem) = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/usecases/{usecase}/config"),
            Some(ADMIN_TOKEN),
            Some(json!({"env": {}})),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    let (status, _) = app.get(&format!("/api/usecases/{usecase}/config")).await;
    assert_eq!(
        status, 409,
        "nothing deployed, so no config of what is deployed"
    );
    let (status, problem) = app
        .get(&format!("/api/usecases/{usecase}/kube-events"))
        .await;
    assert_eq!(status, 503, "{problem}");
    assert!(problem["detail"]
        .as_str()
        .is_some_and(|d| d.contains("--cluster none")));
}
