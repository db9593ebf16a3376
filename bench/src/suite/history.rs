//! Measurement 4: a deploy command on a usecase with a long history (10 000
//! deployments, filled through the API one after the other) against the same
//! command on a fresh usecase, and time travel (`GET /api/usecases/{id}?at=`) on the
//! long one.

use super::api::Api;
use super::server::{Cluster, Shiplog, ADMIN_TOKEN};
use super::stats::{ratio, Latencies};
use super::table::{num, times, Met, Row};
use super::Ctx;
use std::time::Instant;
use uuid::Uuid;

/// Timed samples of each kind.
const SAMPLES: usize = 25;

/// Runs measurement 4 on a shiplog of its own.
pub async fn measure(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let server = Shiplog::start(
        &ctx.shiplog,
        &ctx.pg,
        &ctx.scratch,
        "history",
        Cluster::None,
    )
    .await?;
    let result = run(ctx, &server).await;
    server.stop().await?;
    result
}

async fn run(ctx: &Ctx, server: &Shiplog) -> anyhow::Result<Vec<Row>> {
    let n = ctx.plan.long;
    let admin = Api::new(ctx.http.clone(), &server.api, ADMIN_TOKEN);
    let api = admin.pipeline_token("bench-pipeline").await?;
    let long = api.register("long-history").await?;
    // One client: the commands go to one aggregate, where concurrent ones would only conflict.
    let started = Instant::now();
    let mut last_mark = Instant::now();
    let step = (n / 10).max(1);
    let mut marks = Vec::new();
    for i in 0..n {
        api.deploy(long, i as u64).await?;
        if (i + 1) % step == 0 {
            let ms = last_mark.elapsed().as_secs_f64() * 1000.0 / step as f64;
            marks.push(ms);
            eprintln!(
                "  4: filled {} of {n} deployments ({:.0} s; the last {step} at {ms:.1} ms each)",
                i + 1,
                started.elapsed().as_secs_f64()
            );
            last_mark = Instant::now();
        }
    }
    ctx.note(format!(
        "4: filling {n} deployments through the API took {:.0} s; ms per command by tenth: {}",
        started.elapsed().as_secs_f64(),
        marks
            .iter()
            .map(|m| format!("{m:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let samples = if ctx.plan.quick { 10 } else { SAMPLES };
    let mut long_ms = Vec::new();
    let mut fresh_ms = Vec::new();
    for i in 0..samples {
        // Alternating, so both sides see the same moments of a noisy machine.
        let fresh = api.register(&format!("fresh-{i}")).await?;
        long_ms.push(timed_deploy(&api, long, (n + i) as u64).await?);
        fresh_ms.push(timed_deploy(&api, fresh, 0).await?);
    }
    let fresh = api.register("fresh-at").await?;
    api.deploy(fresh, 0).await?;
    // After both exist: the instant shows each with its history so far.
    let at = chrono::Utc::now();
    let mut at_long = Vec::new();
    let mut at_fresh = Vec::new();
    for _ in 0..samples {
        at_long.push(timed_at(&api, long, at).await?);
        at_fresh.push(timed_at(&api, fresh, at).await?);
    }
    let (long_ms, fresh_ms) = (Latencies::new(long_ms), Latencies::new(fresh_ms));
    let (at_long, at_fresh) = (Latencies::new(at_long), Latencies::new(at_fresh));
    let p50 = |l: &Latencies| l.pct(0.5).unwrap_or(f64::NAN);
    let p95 = |l: &Latencies| l.pct(0.95).unwrap_or(f64::NAN);
    let r = ratio(p50(&long_ms), p50(&fresh_ms));
    Ok(vec![
        Row {
            id: "4".into(),
            what: format!("deploy command on a usecase with {n} deployments vs a fresh one (median of {samples})"),
            value: format!("{} ms (p95 {})", num(p50(&long_ms)), num(p95(&long_ms))),
            baseline: format!("{} ms fresh (p95 {})", num(p50(&fresh_ms)), num(p95(&fresh_ms))),
            ratio: times(r),
            target: "<= 1.5x".into(),
            met: Met::from(r.is_some_and(|r| r <= 1.5)),
        },
        Row {
            id: "4".into(),
            what: format!("GET /api/usecases/{{id}}?at= on the usecase with {n} deployments (median of {samples})"),
            value: format!("{} ms (p95 {})", num(p50(&at_long)), num(p95(&at_long))),
            baseline: format!("{} ms fresh", num(p50(&at_fresh))),
            ratio: times(ratio(p50(&at_long), p50(&at_fresh))),
            target: "< 20 ms".into(),
            met: Met::from(p50(&at_long) < 20.0),
        },
    ])
}

async fn timed_deploy(api: &Api, usecase: Uuid, n: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    api.deploy(usecase, n).await?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

async fn timed_at(
    api: &Api,
    usecase: Uuid,
    at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    api.usecase_at(usecase, at).await?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}
