//! Shared helpers for the kube-sim tests: a fast simulator, a real kube client, manifests.

// A test's unwrap is its assertion (clippy.toml allows it only inside #[test] functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use kube_sim::{KubeSim, SimConfig};
use serde_json::json;

/// Timings short enough for tests, long enough to observe the states in between.
pub fn fast_config() -> SimConfig {
    SimConfig {
        ready_delay: Duration::from_millis(100),
        progress_deadline: Duration::from_millis(800),
        log_interval: Duration::from_millis(100),
        metrics_api: true,
        ingress_listen: None,
        ..SimConfig::default()
    }
}

/// A simulator and a kube client talking to it over plain HTTP.
pub async fn start() -> (KubeSim, Client) {
    start_with(fast_config()).await
}

pub async fn start_with(config: SimConfig) -> (KubeSim, Client) {
    let sim = KubeSim::start(config).await.expect("sim starts");
    let client = client_for(&sim);
    (sim, client)
}

pub fn client_for(sim: &KubeSim) -> Client {
    let config = kube::Config::new(sim.url().parse().expect("sim url is a URI"));
    Client::try_from(config).expect("client builds")
}

/// Bounds a wait that should finish (`secs`, stretched by the test kit's time
/// scale on a slow machine); panics with `what` if it does not.
pub async fn within<F: Future>(secs: u64, what: &str, f: F) -> F::Output {
    let budget = shiplog_testkit::scaled(Duration::from_secs(secs));
    tokio::time::timeout(budget, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {budget:?} waiting for {what}"))
}

/// A Deployment manifest as shiplog would apply it.
pub fn deployment(name: &str, image: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": { "app": name, "managed-by": "shiplog" } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{
                    "name": "app",
                    "image": image,
                    "ports": [{ "containerPort": 8080 }]
                }] }
            }
        }
    }))
    .expect("deployment manifest")
}

pub async fn apply(api: &Api<Deployment>, dep: &Deployment) -> Deployment {
    let name = dep.metadata.name.clone().expect("named");
    api.patch(
        &name,
        &PatchParams::apply("shiplog").force(),
        &Patch::Apply(dep),
    )
    .await
    .expect("apply")
}

/// The rollout condition shiplog needs: status observed for the current generation and every
/// desired replica updated and available.
pub fn rolled_out(dep: Option<&Deployment>) -> bool {
    let Some(dep) = dep else { return false };
    let (Some(spec), Some(status)) = (&dep.spec, &dep.status) else {
        return false;
    };
    let desired = spec.replicas.unwrap_or(1);
    status.observed_generation == dep.metadata.generation
        && status.updated_replicas.unwrap_or(0) == desired
        && status.available_replicas.unwrap_or(0) == desired
        && status.replicas.unwrap_or(0) == desired
}

/// The Progressing condition's reason, if any.
pub fn progressing_reason(dep: Option<&Deployment>) -> Option<String> {
    dep?.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Progressing")
        .and_then(|c| c.reason.clone())
}
