//! Measurement 5: how many Kubernetes API requests the process manager makes for
//! one deployment, on a usecase with 1 and with 1 000 finished deployments.
//!
//! shiplog runs with `--cluster kube` against the simulator started in this
//! process, through a counting proxy of the harness's own: every request on the
//! wire is counted, by method, watches apart (a watch is one long request).

use super::api::Api;
use super::server::{Cluster, Shiplog, ADMIN_TOKEN};
use super::stats::ratio;
use super::table::{times, Met, Row};
use super::Ctx;
use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Router;
use kube_sim::{KubeSim, SimConfig};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The requests seen since the last `take`, and when the last one came.
struct Counter {
    upstream: String,
    http: reqwest::Client,
    seen: Mutex<(BTreeMap<String, u64>, Instant)>,
}

impl Counter {
    fn record(&self, kind: String) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        *seen.0.entry(kind).or_default() += 1;
        seen.1 = Instant::now();
    }

    /// The counts so far, emptied.
    fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut self.seen.lock().unwrap_or_else(|p| p.into_inner()).0)
    }

    fn idle_for(&self) -> Duration {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .elapsed()
    }
}

/// Forwards one request to the simulator, bodies streamed both ways (watches and
/// log follows stay open), and counts it.
async fn forward(State(counter): State<Arc<Counter>>, request: Request) -> Response {
    let watch = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let kind = if watch {
        "WATCH".to_owned()
    } else {
        request.method().as_str().to_owned()
    };
    counter.record(kind);
    let url = format!(
        "{}{}",
        counter.upstream,
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let mut upstream = counter.http.request(request.method().clone(), url);
    for (name, value) in request.headers() {
        if name != header::HOST {
            upstream = upstream.header(name, value);
        }
    }
    let body = reqwest::Body::wrap_stream(request.into_body().into_data_stream());
    match upstream.body(body).send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if name != header::TRANSFER_ENCODING && name != header::CONNECTION {
                    response = response.header(name, value);
                }
            }
            response
                .body(Body::from_stream(answer.bytes_stream()))
                .unwrap_or_else(|_| Response::new(Body::empty()))
        }
        Err(e) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::from(e.to_string()))
            .unwrap_or_else(|_| Response::new(Body::empty())),
    }
}

/// Runs measurement 5 with a simulator and a shiplog of its own.
pub async fn measure(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let sim = KubeSim::start(SimConfig {
        ready_delay: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await
    .context("starting the simulator")?;
    let counter = Arc::new(Counter {
        upstream: sim.url().trim_end_matches('/').to_owned(),
        http: reqwest::Client::builder().build()?,
        seen: Mutex::new((BTreeMap::new(), Instant::now())),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().fallback(forward).with_state(counter.clone());
    let proxy = tokio::spawn(async move { axum::serve(listener, app).await });
    let kubeconfig = ctx.scratch.join("kube-calls.kubeconfig");
    std::fs::write(&kubeconfig, kubeconfig_yaml(&format!("http://{addr}")))?;
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
            let result = run(ctx, &server, &counter).await;
            let stopped = server.stop().await;
            result.and_then(|rows| stopped.map(|()| rows))
        }
        Err(e) => Err(e),
    };
    proxy.abort();
    sim.shutdown().await;
    result
}

async fn run(ctx: &Ctx, server: &Shiplog, counter: &Counter) -> anyhow::Result<Vec<Row>> {
    let admin = Api::new(ctx.http.clone(), &server.api, ADMIN_TOKEN);
    let api = admin.pipeline_token("bench-pipeline").await?;
    let n = ctx.plan.finished.max(2);
    let one = count_one_deploy(&api, counter, 1).await?;
    let many = count_one_deploy(&api, counter, n).await?;
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
    counter: &Counter,
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
        settle(counter).await;
        counter.take();
        let measured = api.deploy(usecase, (finished + 1 + i) as u64).await?;
        api.wait_deployed(usecase, measured, limit).await?;
        settle(counter).await;
        samples.push(counter.take());
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
async fn settle(counter: &Counter) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while counter.idle_for() < Duration::from_secs(1) && Instant::now() < deadline {
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
