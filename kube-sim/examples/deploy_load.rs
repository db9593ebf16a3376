//! A deploy load as shiplog drives the simulator, to see whether its cost per operation stays
//! flat as the simulated cluster ages:
//! `cargo run --release -p kube-sim --example deploy_load -- 21000 1000`
//! (total Deployments, then the window size the report averages over).
//!
//! One operation is what shiplog's `apply` and `await_rollout` do for one deployment: a
//! server-side apply of a one-replica Deployment (pods labelled `shiplog.io/deployment=<id>`)
//! into one namespace, then kube-rs `watcher`s on that Deployment (field selector
//! `metadata.name=<name>`) and on its pods (label selector) until the Deployment is rolled
//! out. Pods become Ready at once (`ready_delay` 0); nothing is deleted, so the store grows by
//! one Deployment, one pod and their events per operation.
//!
//! It prints operations/s for every window of operations and for every 10 s of wall time.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::{self, watcher};
use kube::Client;
use kube_sim::{KubeSim, SimConfig};
use serde_json::json;

/// The namespace every Deployment goes to, as shiplog uses one.
const NS: &str = "shiplog";
/// The pod label shiplog selects a deployment's pods by.
const DEPLOYMENT_LABEL: &str = "shiplog.io/deployment";
/// How long one rollout may take before the load gives up (a hang, not a slow simulator).
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(60);

/// The Deployment shiplog would apply for deployment number `i`.
fn manifest(i: usize) -> serde_json::Value {
    let id = format!("00000000-0000-4000-8000-{i:012}");
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": format!("d-{i}"),
            "namespace": NS,
            "labels": { "app.kubernetes.io/managed-by": "shiplog", DEPLOYMENT_LABEL: id },
        },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { DEPLOYMENT_LABEL: id } },
            "template": {
                "metadata": { "labels": { "app.kubernetes.io/managed-by": "shiplog", DEPLOYMENT_LABEL: id } },
                "spec": { "containers": [{
                    "name": "app",
                    "image": "registry.example.com/app:1.0",
                    "ports": [{ "containerPort": 8080 }],
                }] },
            },
        },
    })
}

/// Whether a Deployment's status shows every replica of its current generation available.
fn rolled_out(d: &Deployment) -> bool {
    let (Some(spec), Some(status)) = (&d.spec, &d.status) else {
        return false;
    };
    let desired = spec.replicas.unwrap_or(1);
    status.observed_generation == d.metadata.generation
        && status.updated_replicas.unwrap_or(0) == desired
        && status.available_replicas.unwrap_or(0) == desired
        && status.replicas.unwrap_or(0) == desired
}

/// One operation: apply Deployment `i`, then watch it and its pods until it is rolled out.
async fn deploy(client: &Client, i: usize) -> Result<(), String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let name = format!("d-{i}");
    let object = manifest(i);
    deployments
        .patch(
            &name,
            &PatchParams::apply("shiplog").force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|e| format!("apply {name}: {e}"))?;
    let id = object["metadata"]["labels"][DEPLOYMENT_LABEL]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let deployment_events = watcher(
        deployments,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .map_ok(|e| match e {
        watcher::Event::Apply(d) | watcher::Event::InitApply(d) => rolled_out(&d),
        _ => false,
    });
    let pod_events = watcher(
        pods,
        watcher::Config::default().labels(&format!("{DEPLOYMENT_LABEL}={id}")),
    )
    .map_ok(|_| false);
    let mut seen = futures::stream::select(deployment_events.boxed(), pod_events.boxed());
    let wait = async {
        while let Some(done) = seen.next().await {
            if done.map_err(|e| format!("watch {name}: {e}"))? {
                return Ok(());
            }
        }
        Err(format!("the watches of {name} ended"))
    };
    tokio::time::timeout(ROLLOUT_TIMEOUT, wait)
        .await
        .map_err(|_| format!("{name} was not rolled out within {ROLLOUT_TIMEOUT:?}"))?
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut number = |default: usize| -> Result<usize, String> {
        args.next().map_or(Ok(default), |a| {
            a.parse().map_err(|e| format!("{a:?}: {e}"))
        })
    };
    let total = number(21_000)?;
    let window = number(1_000)?.max(1);
    let config = SimConfig {
        ready_delay: Duration::ZERO,
        ..SimConfig::default()
    };
    let sim = KubeSim::start(config)
        .await
        .map_err(|e| format!("starting the simulator: {e}"))?;
    let url = sim.url().parse().map_err(|e| format!("{e}"))?;
    let client = Client::try_from(kube::Config::new(url)).map_err(|e| format!("{e}"))?;

    let start = Instant::now();
    let mut window_start = start;
    let mut tick_start = start;
    let mut tick_ops = 0usize;
    for i in 0..total {
        deploy(&client, i).await?;
        tick_ops += 1;
        let now = Instant::now();
        if now.duration_since(tick_start) >= Duration::from_secs(10) {
            let secs = now.duration_since(tick_start).as_secs_f64();
            println!(
                "t={:>5.0}s  {:>7.1} ops/s over the last {secs:.1} s",
                now.duration_since(start).as_secs_f64(),
                tick_ops as f64 / secs
            );
            tick_start = now;
            tick_ops = 0;
        }
        if (i + 1) % window == 0 {
            let secs = now.duration_since(window_start).as_secs_f64();
            println!(
                "ops {:>6}-{:<6} {:>7.1} ops/s",
                i + 2 - window,
                i + 1,
                window as f64 / secs
            );
            window_start = now;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{total} ops in {secs:.1} s: {:.1} ops/s",
        total as f64 / secs
    );
    sim.shutdown().await;
    Ok(())
}
