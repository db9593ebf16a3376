//! Measurement 2: the load of 1 with the embedded simulator (`--cluster
//! simulated`), so the process manager rolls every deployment out while commands
//! keep coming; one long run, its first and last 10 seconds compared.

use super::api::Api;
use super::load::deploy_load;
use super::server::{Cluster, Shiplog, ADMIN_TOKEN};
use super::stats::ratio;
use super::table::{num, times, Met, Row};
use super::Ctx;
use std::sync::Arc;
use std::time::Duration;

/// Runs measurement 2 on a shiplog of its own.
pub async fn measure(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let plan = &ctx.plan;
    let server = Shiplog::start(
        &ctx.shiplog,
        &ctx.pg,
        &ctx.scratch,
        "simulated",
        Cluster::Simulated,
    )
    .await?;
    let result = async {
        let admin = Api::new(ctx.http.clone(), &server.api, ADMIN_TOKEN);
        let api = admin.pipeline_token("bench-pipeline").await?;
        let usecases = Arc::new(api.register_many("sim", plan.usecases).await?);
        deploy_load(&api, usecases, plan.clients, Duration::ZERO, plan.soak).await
    }
    .await;
    server.stop().await?;
    let load = result?;
    if load.errors > 0 {
        ctx.note(format!(
            "2: {} of {} commands failed, first: {}",
            load.errors,
            load.errors + load.ok,
            load.first_error.clone().unwrap_or_default()
        ));
    }
    let secs = load.per_second.len();
    let window = 10.min(secs / 3).max(1);
    let first = load.rate_between(0, window);
    let last = load.rate_between(secs - window, secs);
    let rate = load.rate();
    eprintln!(
        "  2: {} cmd/s over {} s; first {window} s {} cmd/s, last {window} s {} cmd/s; per second: {:?}",
        num(rate),
        secs,
        num(first),
        num(last),
        load.per_second
    );
    let base = ctx.figures().deploy_rate;
    let vs_one = base.and_then(|b| ratio(rate, b));
    let drift = ratio(last, first);
    Ok(vec![
        Row {
            id: "2".into(),
            what: format!(
                "deploy commands/s, {} clients, --cluster simulated, {} s",
                plan.clients, secs
            ),
            value: format!(
                "{} cmd/s (p99 {} ms)",
                num(rate),
                num(load.latencies.pct(0.99).unwrap_or(f64::NAN))
            ),
            baseline: base.map_or_else(
                || "not measured (run 1)".to_owned(),
                |b| format!("{} cmd/s (1, --cluster none)", num(b)),
            ),
            ratio: times(vs_one),
            target: ">= 0.5x".into(),
            met: vs_one.map_or_else(
                || Met::NotMeasured("1 not run".into()),
                |r| Met::from(r >= 0.5),
            ),
        },
        Row {
            id: "2".into(),
            what: format!("commands/s, last {window} s vs first {window} s (simulated)"),
            value: format!("{} cmd/s", num(last)),
            baseline: format!("{} cmd/s (first {window} s)", num(first)),
            ratio: times(drift),
            target: "within 10%".into(),
            met: Met::from(drift.is_some_and(|d| (d - 1.0).abs() <= 0.10)),
        },
    ])
}
