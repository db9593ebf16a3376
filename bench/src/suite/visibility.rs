//! Measurement 6: how long after its commit a deployment is visible in
//! `GET /api/usecases/{id}/deployments/{d}` and delivered on the usecase's event
//! stream, while the load of 1 runs.
//!
//! A probe usecase outside the load gets one deploy command at a time. The commit
//! is seen by polling the events table every millisecond on a connection of the
//! harness's own (a row is visible to another session exactly from its commit);
//! the deployment id read there is then polled over HTTP until it answers 200, and
//! the stream, open all along, is read as its bytes arrive.

use super::api::Api;
use super::load::deploy_load;
use super::server::{Cluster, Shiplog, ADMIN_TOKEN};
use super::stats::Latencies;
use super::table::{num, Met, Row};
use super::Ctx;
use anyhow::{bail, Context};
use shiplog_client::sse::SseParser;
use sqlx::{Connection, PgConnection};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use uuid::Uuid;

/// How long one probe may wait for each of its three moments.
const PROBE_LIMIT: Duration = Duration::from_secs(10);

/// One message of the event stream and when its bytes arrived.
struct Message {
    at: Instant,
    event: String,
    data: String,
}

/// Runs measurement 6 on a shiplog of its own.
pub async fn measure(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let server = Shiplog::start(
        &ctx.shiplog,
        &ctx.pg,
        &ctx.scratch,
        "visibility",
        Cluster::None,
    )
    .await?;
    let result = run(ctx, &server).await;
    server.stop().await?;
    let (visible, delivered, rate, probes) = result?;
    let p = |l: &Latencies, q: f64| l.pct(q).unwrap_or(f64::NAN);
    let row = |what: &str, l: &Latencies| Row {
        id: "6".into(),
        what: format!(
            "{what}, p99 under the load of 1 ({probes} probes, load {} cmd/s)",
            num(rate)
        ),
        value: format!("{} ms (p50 {})", num(p(l, 0.99)), num(p(l, 0.5))),
        baseline: "-".into(),
        ratio: "-".into(),
        target: "< 50 ms".into(),
        met: Met::from(p(l, 0.99) < 50.0),
    };
    Ok(vec![
        row(
            "commit -> visible in GET /api/usecases/{id}/deployments/{d}",
            &visible,
        ),
        row(
            "commit -> delivered on SSE /api/usecases/{id}/events/stream",
            &delivered,
        ),
    ])
}

async fn run(ctx: &Ctx, server: &Shiplog) -> anyhow::Result<(Latencies, Latencies, f64, usize)> {
    let plan = &ctx.plan;
    let admin = Api::new(ctx.http.clone(), &server.api, ADMIN_TOKEN);
    let api = admin.pipeline_token("bench-pipeline").await?;
    let usecases = Arc::new(api.register_many("vis", plan.usecases).await?);
    let probe = api.register("probe").await?;
    let mut stream = subscribe(&api, probe).await?;
    let mut db = PgConnection::connect(&server.db.url()).await?;
    let load = tokio::spawn({
        let api = api.clone();
        let (clients, warmup, duration) = (plan.clients, plan.warmup, plan.duration);
        async move { deploy_load(&api, usecases, clients, warmup, duration).await }
    });
    tokio::time::sleep(plan.warmup).await;
    let mut visible = Vec::new();
    let mut delivered = Vec::new();
    let mut n = 0;
    while !load.is_finished() {
        n += 1;
        let (v, d) = probe_once(&api, &mut db, &mut stream, probe, n).await?;
        visible.push(v);
        delivered.push(d);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let load = load.await.context("the load task")??;
    db.close().await?;
    let probes = visible.len();
    Ok((
        Latencies::new(visible),
        Latencies::new(delivered),
        load.rate(),
        probes,
    ))
}

/// Opens the probe usecase's event stream; its messages arrive on the receiver.
async fn subscribe(api: &Api, usecase: Uuid) -> anyhow::Result<mpsc::UnboundedReceiver<Message>> {
    let client = &api.client;
    let request = client
        .request(
            reqwest::Method::GET,
            &format!("/api/usecases/{usecase}/events/stream"),
        )
        .header("accept", "text/event-stream")
        .timeout(Duration::from_secs(24 * 3600));
    let mut response = client
        .send(request)
        .await
        .context("opening the event stream")?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut parser = SseParser::default();
        while let Ok(Some(chunk)) = response.chunk().await {
            let at = Instant::now();
            for message in parser.feed(&chunk) {
                let message = Message {
                    at,
                    event: message.event.unwrap_or_default(),
                    data: message.data,
                };
                if tx.send(message).is_err() {
                    return;
                }
            }
        }
    });
    Ok(rx)
}

/// One deploy command on the probe usecase: (commit -> visible, commit -> delivered) in ms.
async fn probe_once(
    api: &Api,
    db: &mut PgConnection,
    stream: &mut mpsc::UnboundedReceiver<Message>,
    probe: Uuid,
    n: u64,
) -> anyhow::Result<(f64, f64)> {
    let aggregate = probe.to_string();
    let seen: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(sequence), 0) FROM events WHERE aggregate_type = 'Usecase' AND aggregate_id = $1",
    )
    .bind(&aggregate)
    .fetch_one(&mut *db)
    .await?;
    // Messages of earlier probes are of no interest any more.
    while stream.try_recv().is_ok() {}
    let sent = Instant::now();
    let command = tokio::spawn({
        let api = api.clone();
        async move { api.deploy(probe, n).await }
    });
    let (committed, deployment) = loop {
        let row: Option<String> = sqlx::query_scalar(
            "SELECT payload::text FROM events WHERE aggregate_type = 'Usecase' AND aggregate_id = $1 AND sequence > $2 AND event_type = 'DeploymentRequested' LIMIT 1",
        )
        .bind(&aggregate)
        .bind(seen)
        .fetch_optional(&mut *db)
        .await?;
        if let Some(payload) = row {
            let at = Instant::now();
            let payload: serde_json::Value = serde_json::from_str(&payload)?;
            let id = payload["DeploymentRequested"]["deploymentId"]
                .as_str()
                .with_context(|| format!("no deploymentId in {payload}"))?
                .parse::<Uuid>()?;
            break (at, id);
        }
        if sent.elapsed() > PROBE_LIMIT {
            bail!("the probe's deploy command did not commit within {PROBE_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let visible = loop {
        if api.deployment_visible(probe, deployment).await? {
            break Instant::now();
        }
        if committed.elapsed() > PROBE_LIMIT {
            bail!("deployment {deployment} still not readable {PROBE_LIMIT:?} after the commit");
        }
    };
    let delivered = loop {
        let message = tokio::time::timeout(PROBE_LIMIT, stream.recv())
            .await
            .context("no event on the stream within the limit")?
            .context("the event stream ended")?;
        if message.event == "DeploymentRequested" && message.data.contains(&deployment.to_string())
        {
            break message.at;
        }
    };
    let answered = command.await.context("the probe's command task")??;
    if answered != deployment {
        bail!("the probe's command answered {answered}, the store holds {deployment}");
    }
    let ms = |t: Instant| t.saturating_duration_since(committed).as_secs_f64() * 1000.0;
    Ok((ms(visible), ms(delivered)))
}
