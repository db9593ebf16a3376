//! Measurement 1: deploy-command throughput and latency at 16 clients over 200
//! usecases (`--cluster none`), and one client's ms per command, each round
//! followed by pgbench's raw single-row inserts in the same run.

use super::api::Api;
use super::load::deploy_load;
use super::pgbench;
use super::server::{Cluster, Shiplog, ADMIN_TOKEN};
use super::stats::{median, ratio};
use super::table::{num, times, Met, Row};
use super::Ctx;
use anyhow::Context;
use sqlx::{Connection, PgConnection};
use std::sync::Arc;
use std::time::Duration;

/// Runs measurement 1 on a shiplog of its own; records the deploy rate in `ctx` for 2 and 3.
pub async fn measure(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let server = Shiplog::start(
        &ctx.shiplog,
        &ctx.pg,
        &ctx.scratch,
        "throughput",
        Cluster::None,
    )
    .await?;
    let pg = match pgbench::ensure_installed().await {
        Ok(path) => match pgbench::prepare(&ctx.pg).await {
            Ok(db) => Ok((path, db)),
            Err(e) => Err(format!("{e:#}")),
        },
        Err(hint) => Err(hint),
    };
    let result = rounds(ctx, &server, pg.as_ref().ok()).await;
    let stopped = server.stop().await;
    if let Ok((_, db)) = &pg {
        db.drop_db().await?;
    }
    let m = result?;
    stopped?;
    let plan = &ctx.plan;
    let rate = median(&m.rate16).context("no 16-client round")?;
    ctx.figures().deploy_rate = Some(rate);
    let p50 = median(&m.p50).unwrap_or(f64::NAN);
    let p99 = median(&m.p99).unwrap_or(f64::NAN);
    let ms1 = median(&m.ms1).unwrap_or(f64::NAN);
    let runs = format!("median of {}", plan.rounds);
    let (base_rate, base_lat16, base_ms1, missing) = match &pg {
        Ok(_) => (
            median(&m.pg_tps16),
            median(&m.pg_lat16),
            median(&m.pg_ms1),
            None,
        ),
        Err(hint) => (None, None, None, Some(hint.clone())),
    };
    if let Some(hint) = &missing {
        ctx.note(format!("1: no raw-insert baseline: {hint}"));
    }
    let rate_ratio = base_rate.and_then(|b| ratio(rate, b));
    Ok(vec![
        Row {
            id: "1".into(),
            what: format!(
                "deploy commands/s, {} clients, {} usecases, --cluster none ({runs})",
                plan.clients, plan.usecases
            ),
            value: format!("{} cmd/s", num(rate)),
            baseline: base_rate.map_or_else(
                || "not measured".to_owned(),
                |b| format!("{} inserts/s (pgbench, {} clients)", num(b), plan.clients),
            ),
            ratio: times(rate_ratio),
            target: ">= 0.3x".into(),
            met: match rate_ratio {
                Some(r) => Met::from(r >= 0.3),
                None => Met::NotMeasured(missing.unwrap_or_else(|| "no baseline".into())),
            },
        },
        Row {
            id: "1".into(),
            what: format!(
                "deploy latency p50 / p99, {} clients ({runs})",
                plan.clients
            ),
            value: format!("{} / {} ms", num(p50), num(p99)),
            baseline: base_lat16.map_or_else(
                || "-".to_owned(),
                |b| format!("{} ms mean per insert", num(b)),
            ),
            ratio: "-".into(),
            target: "p99 < 50 ms".into(),
            met: Met::from(p99 < 50.0),
        },
        Row {
            id: "1".into(),
            what: format!("ms per deploy command, 1 client ({runs})"),
            value: format!("{} ms", num(ms1)),
            baseline: base_ms1.map_or_else(
                || "-".to_owned(),
                |b| format!("{} ms per insert (pgbench, 1 client)", num(b)),
            ),
            ratio: times(base_ms1.and_then(|b| ratio(ms1, b))),
            target: "-".into(),
            met: Met::Info,
        },
    ])
}

#[derive(Default)]
struct Rounds {
    rate16: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    ms1: Vec<f64>,
    pg_tps16: Vec<f64>,
    pg_lat16: Vec<f64>,
    pg_ms1: Vec<f64>,
}

/// Alternates shiplog and pgbench, round by round, so that both see the same machine.
async fn rounds(
    ctx: &Ctx,
    server: &Shiplog,
    pg: Option<&(std::path::PathBuf, super::server::Database)>,
) -> anyhow::Result<Rounds> {
    let plan = &ctx.plan;
    let admin = Api::new(ctx.http.clone(), &server.api, ADMIN_TOKEN);
    let api = admin.pipeline_token("bench-pipeline").await?;
    let mut m = Rounds::default();
    let mut sample: Option<(String, String)> = None;
    for round in 0..plan.rounds {
        let usecases = Arc::new(
            api.register_many(&format!("r{round}"), plan.usecases)
                .await?,
        );
        let load = deploy_load(
            &api,
            usecases.clone(),
            plan.clients,
            plan.warmup,
            plan.duration,
        )
        .await?;
        if load.errors > 0 {
            ctx.note(format!(
                "1: round {round}: {} of {} commands failed, first: {}",
                load.errors,
                load.errors + load.ok,
                load.first_error.clone().unwrap_or_default()
            ));
        }
        eprintln!(
            "  1: round {round}: shiplog {} cmd/s at {} clients, p50 {:.1} ms, p99 {:.1} ms",
            num(load.rate()),
            plan.clients,
            load.latencies.pct(0.5).unwrap_or(f64::NAN),
            load.latencies.pct(0.99).unwrap_or(f64::NAN)
        );
        m.rate16.push(load.rate());
        m.p50.extend(load.latencies.pct(0.5));
        m.p99.extend(load.latencies.pct(0.99));
        if sample.is_none() {
            sample = Some(deployment_requested(&server.db.url()).await?);
        }
        let (payload, metadata) = sample.clone().context("no DeploymentRequested stored")?;
        if let Some((path, db)) = pg {
            let raw = pgbench::run(
                path,
                db,
                &ctx.scratch,
                plan.clients,
                plan.duration.as_secs(),
                &payload,
                &metadata,
            )
            .await?;
            eprintln!(
                "  1: round {round}: pgbench {} inserts/s at {} clients",
                num(raw.tps),
                plan.clients
            );
            m.pg_tps16.push(raw.tps);
            m.pg_lat16.push(raw.latency_ms);
        }
        let single =
            deploy_load(&api, usecases, 1, Duration::from_secs(1), plan.duration / 2).await?;
        let ms = single.latencies.mean().unwrap_or(f64::NAN);
        m.ms1.push(ms);
        if let Some((path, db)) = pg {
            let raw = pgbench::run(
                path,
                db,
                &ctx.scratch,
                1,
                (plan.duration / 2).as_secs().max(1),
                &payload,
                &metadata,
            )
            .await?;
            eprintln!("  1: round {round}: 1 client: shiplog {ms:.2} ms per command, pgbench {:.2} ms per insert", raw.latency_ms);
            m.pg_ms1.push(raw.latency_ms);
        }
    }
    Ok(m)
}

/// The payload and metadata text of the newest `DeploymentRequested` shiplog stored.
async fn deployment_requested(url: &str) -> anyhow::Result<(String, String)> {
    let mut conn = PgConnection::connect(url).await?;
    let row: (String, String) = sqlx::query_as(
        "SELECT payload::text, metadata::text FROM events WHERE event_type = 'DeploymentRequested' ORDER BY position DESC LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .context("reading a stored DeploymentRequested")?;
    conn.close().await?;
    Ok(row)
}
