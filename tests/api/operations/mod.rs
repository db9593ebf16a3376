//! Operating deployed usecases against Postgres and the Kubernetes simulator, one
//! file per feature: the applications proxy, restart, config and rollback, logs,
//! Kubernetes events and usage. What they share (a simulator, a deployed usecase,
//! requests through the proxy, the ledger's events) is here.

mod cluster_insight;
mod config;
mod logs;
mod proxy;
mod restart;

use crate::cluster::sim_with;
use crate::helpers::{uuid, TestApp, ADMIN_TOKEN, NAMESPACE};
use kube_sim::KubeSim;
use serde_json::{json, Value};
use shiplog_testkit::eventually_within;
use std::time::Duration;
use uuid::Uuid;

async fn sim(metrics_api: bool) -> KubeSim {
    sim_with(Duration::from_millis(100), metrics_api).await
}

/// Registers a usecase and deploys `tag` with `env`, waiting until it is deployed.
async fn deployed(app: &TestApp, name: &str, tag: &str, env: Value) -> (Uuid, Uuid) {
    let usecase = app.create_usecase(name).await;
    let d = deploy(app, usecase, tag, env).await;
    (usecase, d)
}

async fn deploy(app: &TestApp, usecase: Uuid, tag: &str, env: Value) -> Uuid {
    let body = json!({"config": {
        "image": {"registry": "registry.example.com", "repository": "team/app", "tag": tag},
        "env": env,
    }});
    let (status, accepted) = app
        .post(&format!("/api/usecases/{usecase}/deployments"), body)
        .await;
    assert_eq!(status, 202, "{accepted}");
    let d = uuid(&accepted["id"]);
    app.wait_for_status(usecase, d, "deployed").await;
    d
}

/// A request through the applications proxy with the admin token.
fn through_proxy(app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, format!("{}{path}", app.proxy_base))
        .bearer_auth(ADMIN_TOKEN)
}

/// Waits until the usecase's ledger holds an event of `event_type`; returns its payload.
async fn event_of(app: &TestApp, usecase: Uuid, event_type: &str) -> Value {
    let path = format!("/api/usecases/{usecase}/history?limit=200");
    eventually_within(
        &format!("a {event_type} event of usecase {usecase}"),
        Duration::from_secs(15),
        || async {
            let pages = app.get_pages(&path).await;
            let found = pages
                .iter()
                .flat_map(|p| p["items"].as_array().cloned().unwrap_or_default())
                .find(|e| e["type"] == event_type);
            found.ok_or_else(|| event_types(&pages))
        },
    )
    .await
}

fn event_types(pages: &[Value]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p["items"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["type"].as_str().map(str::to_owned))
        .collect()
}

fn pod_names(sim: &KubeSim, deployment: Uuid) -> Vec<String> {
    let mut names: Vec<String> = sim
        .objects("pods", Some(NAMESPACE))
        .iter()
        .filter(|p| p["metadata"]["labels"]["shiplog.io/deployment"] == deployment.to_string())
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}
