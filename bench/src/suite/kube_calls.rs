//! Measurement 5: how many Kubernetes API requests the process manager makes for
//! one deployment, on a usecase with 1 and with 1 000 finished deployments.
//!
//! shiplog runs with `--cluster kube` against the simulator started in this
//! process, through the simulator's recording proxy: every request on the wire
//! is counted, by method, watches apart (a watch is one long request).

use super::api::Api;
use super::server::{Cluster, Shiplog, ADMIN_TOKEN};
use super::stats::ratio;
use super::table::{times, Met, Row};
use super::Ctx;
use anyhow::Context;
use kube_sim::{KubeSim, RecordingProxy, SimConfig};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The requests the proxy saw since the last call, counted by method, watches apart.
fn take_counts(proxy: &RecordingProxy) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for request in proxy.take() {
        let kind = if request.is_watch() {
            "WATCH".to_owned()
        } else {
            request.method
        };
        *counts.entry(kind).or_default() += 1;
    }
    counts
}

/// Runs measurement 5 with a simulator and a shiplog of its own.
pub async fn measure(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let sim = KubeSim::start(SimConfig {
        ready_delay: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await
    .context("starting the simulator")?;
    let proxy = RecordingProxy::start(&sim.url())
        .await
        .context("starting the counting proxy")?;
    let kubeconfig = ctx.scratch.join("kube-calls.kubeconfig");
    std::fs::write(&kubeconfig, kubeconfig_yaml(&proxy.url()))?;
    let server = Shiplog::start(
        &ctx.shiplog,
        &ctx.pg,
        &ctx.scratch,
        "kubecalls",
        Cluster::Kube(kubeconfig),
    )
    .await;
    let result = match server {
        Ok(server) => {
            let result = run(ctx, &server, &proxy).await;
            let stopped = server.stop().await;
            result.and_then(|rows| stopped.map(|()| rows))
        }
        Err(e) => Err(e),
    };
    drop(proxy);
    sim.shutdown().await;
    result
}

async fn run(ctx: &Ctx, server: &Shiplog, proxy: &RecordingProxy) -> anyhow::Result<Vec<Row>> {
    let admin = Api::new(ctx.http.clone(), &server.api, ADMIN_TOKEN);
    let api = admin.pipeline_token("bench-pipeline").await?;
    let n = ctx.plan.finished.max(2);
    let one = count_one_deploy(&api, proxy, 1).await?;
    let many = count_one_deploy(&api, proxy, n).await?;
    let show = |c: &BTreeMap<String, u64>| {
        c.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    ctx.note(format!(
        "5: requests for one deploy at 1 finished: {}; at {n} finished: {}",
        show(&one),
        show(&many)
    ));
    let (a, b) = (total(&one), total(&many));
    let r = ratio(b as f64, a as f64);
    let watches = |c: &BTreeMap<String, u64>| c.get("WATCH").copied().unwrap_or(0);
    Ok(vec![
        Row {
            id: "5".into(),
            what: "Kubernetes API requests for one deploy (request -> deployed, then quiet; median of 5), 1 finished deployment".into(),
            value: format!("{a} requests (+{} watches)", watches(&one)),
            baseline: "-".into(),
            ratio: "-".into(),
            target: "-".into(),
            met: Met::Info,
        },
        Row {
            id: "5".into(),
            what: format!("the same on a usecase with {n} finished deployments"),
            value: format!("{b} requests (+{} watches)", watches(&many)),
            baseline: format!("{a} requests (1 finished)"),
            ratio: times(r),
            target: "no growth with history (<= 1.25x: rollout polls vary; per reconcile exactly equal in tests/process_manager_reconcile)".into(),
            met: Met::from(r.is_some_and(|r| r <= 1.25)),
        },
    ])
}

/// Gives a new usecase `finished` finished deployments and one deployed (deploys sent
/// one after the other without waiting, so most are superseded while pending, then
/// one more waited for), lets the process manager go quiet, then counts the requests
/// of one more deploy until it is deployed and quiet again.
async fn count_one_deploy(
    api: &Api,
    proxy: &RecordingProxy,
    finished: usize,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let usecase = api.register(&format!("calls-{finished}")).await?;
    let mut last = Uuid::nil();
    for i in 0..finished {
        last = api.deploy(usecase, i as u64).await?;
    }
    let limit = Duration::from_secs(300);
    api.wait_deployed(usecase, last, limit).await?;
    let one_more = api.deploy(usecase, finished as u64).await?;
    api.wait_deployed(usecase, one_more, limit).await?;
    // How many reconciles a rollout takes depends on timing (events coalesce, the
    // rollout is polled until ready): the median of a few deploys evens that out.
    let mut samples = Vec::with_capacity(MEASURED);
    for i in 0..MEASURED {
        settle(proxy).await;
        proxy.take();
        let measured = api.deploy(usecase, (finished + 1 + i) as u64).await?;
        api.wait_deployed(usecase, measured, limit).await?;
        settle(proxy).await;
        samples.push(take_counts(proxy));
    }
    samples.sort_by_key(total);
    Ok(samples.swap_remove(MEASURED / 2))
}

/// Deploys counted on each usecase; the median is reported.
const MEASURED: usize = 5;

/// Requests other than watches.
fn total(counts: &BTreeMap<String, u64>) -> u64 {
    counts
        .iter()
        .filter(|(k, _)| k.as_str() != "WATCH")
        .map(|(_, v)| *v)
        .sum()
}

/// Waits until no request came for a second (at most 20 s).
async fn settle(proxy: &RecordingProxy) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while proxy.idle_for() < Duration::from_secs(1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn kubeconfig_yaml(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster:
    server: {server}
users:
- name: bench
  user: {{}}
contexts:
- name: bench
  context:
    cluster: bench
    user: bench
    namespace: bench
current-context: bench
preferences: {{}}
"
    )
}
