//! `rebuild`: how fast the read models are rebuilt from the log, and how fast the
//! live projector catches up with a backlog. Fills a database of its own with a
//! realistic ledger of N events (usecases of 20 real events each, payloads
//! serialised from `shiplog_domain` types, as `bench/fill-ledger.py` writes them),
//! then times `Projector::rebuild` and `Projector::catch_up` over the whole log, and
//! checks that both give the same rows. Numbers, not assertions (except that one).
//!
//! Each measurement is printed twice: a readable line, and one line of JSON
//! (`{"measure":"rebuild","events":…,"events_per_s":…}`) for tables built by scripts.
//!
//! `cargo run --release -p shiplog-bench --bin rebuild -- --events 200000`

use anyhow::{bail, Context};
use chrono::{DateTime, TimeZone, Utc};
use clap::Parser;
use serde_json::json;
use shiplog_domain::{DeploymentConfig, ImageRef, UsecaseEvent, UsecaseName};
use shiplog_infrastructure::db::connect_and_migrate;
use shiplog_infrastructure::Projector;
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::BTreeMap;
use std::time::Instant;
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// How many events the ledger holds.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// How many usecases are in flight at once: their events are interleaved
    /// round-robin, so each usecase's 20 events spread over 20 × this many
    /// positions of the log (1: each usecase's events are contiguous).
    #[arg(long, default_value_t = 100)]
    spread: usize,
    /// How many times each measurement is taken.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// PostgreSQL server (the database `shiplog_bench_rebuild_<events>_<spread>` is created on it).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    server: String,
    /// Keep the database afterwards (a second run reuses it and skips the fill).
    #[arg(long)]
    keep: bool,
}

/// Events per usecase in the generated ledger.
const PER_USECASE: usize = 20;
/// The read models the projector keeps, and the order their rows are compared in.
const VIEWS: [(&str, &str); 4] = [
    ("usecase_view", "id"),
    ("deployment_view", "id"),
    ("revision_view", "usecase_id, revision"),
    ("team_view", "id"),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let name = format!("shiplog_bench_rebuild_{}_{}", args.events, args.spread);
    let url = format!("{}/{}", args.server, name);
    let pool = connect_and_migrate(&url).await.context("bench database")?;
    let result = run(&args, &pool).await;
    pool.close().await;
    if !args.keep {
        let mut conn = PgConnection::connect(&format!("{}/postgres", args.server)).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
    }
    result
}

async fn run(args: &Args, pool: &PgPool) -> anyhow::Result<()> {
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    if have == 0 {
        let started = Instant::now();
        fill(pool, args.events, args.spread.max(1)).await?;
        println!("fill: {} events in {:.1?}", args.events, started.elapsed());
        sqlx::query("VACUUM ANALYZE events").execute(pool).await?;
    } else if have != args.events as i64 {
        bail!(
            "the bench database holds {have} events, not {}; drop it or pass --events {have}",
            args.events
        );
    }
    let projector = Projector::new(pool.clone());
    for _ in 0..args.rounds {
        let started = Instant::now();
        let replayed = projector.rebuild().await.context("rebuild")?;
        report("rebuild", replayed, started.elapsed().as_secs_f64(), args);
        let rebuilt = digest(pool).await?;

        // The live projector from an empty read model: every event is a backlog.
        for (view, _) in VIEWS {
            sqlx::query(&format!("TRUNCATE {view}"))
                .execute(pool)
                .await?;
        }
        sqlx::query("DELETE FROM subscription_checkpoints WHERE name = ANY($1)")
            .bind(VIEWS.map(|(view, _)| view.to_owned()).to_vec())
            .execute(pool)
            .await?;
        let started = Instant::now();
        projector.catch_up().await.context("catch up")?;
        report(
            "catch_up",
            args.events as u64,
            started.elapsed().as_secs_f64(),
            args,
        );
        if digest(pool).await? != rebuilt {
            bail!("the live projector and the rebuild disagree on the read models");
        }
    }
    Ok(())
}

/// Prints one measurement as a readable line and as a line of JSON.
fn report(measure: &str, events: u64, seconds: f64, args: &Args) {
    let per_s = events as f64 / seconds;
    println!("{measure}: {events} events in {seconds:.2} s ({per_s:.0} events/s)");
    println!(
        "{}",
        json!({
            "measure": measure,
            "events": events,
            "spread": args.spread,
            "seconds": seconds,
            "events_per_s": per_s.round(),
        })
    );
}

/// One hash per read model over all its rows, to tell two builds of it apart.
async fn digest(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::with_capacity(VIEWS.len());
    for (view, order) in VIEWS {
        let hash: String = sqlx::query_scalar(&format!(
            "SELECT md5(coalesce(string_agg(to_jsonb(v)::text, E'\\n' ORDER BY {order}), '')) FROM {view} v"
        ))
        .fetch_one(pool)
        .await?;
        out.push(hash);
    }
    Ok(out)
}

/// Writes `n` events with COPY, in transactions of at most 50 000 events: usecases
/// of 20 events each (registration, four deploys with a config change, two
/// supersessions, a restart that succeeds and one that fails, a failed deploy),
/// `spread` usecases at a time with their events interleaved.
async fn fill(pool: &PgPool, n: usize, spread: usize) -> anyhow::Result<()> {
    let usecases = n.div_ceil(PER_USECASE);
    let mut rows = Vec::with_capacity(n);
    for group in (0..usecases).step_by(spread) {
        let members: Vec<Vec<String>> = (group..(group + spread).min(usecases))
            .map(usecase_rows)
            .collect::<anyhow::Result<_>>()?;
        for k in 0..PER_USECASE {
            for member in &members {
                rows.push(member[k].clone());
            }
        }
    }
    rows.truncate(n);
    let mut conn = pool.acquire().await?;
    for chunk in rows.chunks(50_000) {
        let mut copy = conn
            .copy_in_raw(
                "COPY events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) FROM STDIN",
            )
            .await?;
        copy.send(chunk.concat().into_bytes()).await?;
        copy.finish().await.context("filling the ledger")?;
    }
    Ok(())
}

/// A deterministic UUID for the `k`th id of kind `kind` of usecase `u`.
fn id(kind: u128, u: usize, k: u128) -> Uuid {
    Uuid::from_u128((kind << 120) | ((u as u128) << 8) | k)
}

fn config(tag: &str) -> anyhow::Result<DeploymentConfig> {
    let image = ImageRef::new("r.example.com", "team/app", tag)?;
    let env = BTreeMap::from([
        ("MODE".to_owned(), "prod".to_owned()),
        ("LEVEL".to_owned(), tag.to_owned()),
    ]);
    Ok(DeploymentConfig::new(
        image,
        None,
        Some(8080),
        env,
        Some(1),
        None,
    )?)
}

/// The 20 events of usecase `u` as COPY rows (text format, tab-separated).
fn usecase_rows(u: usize) -> anyhow::Result<Vec<String>> {
    let at: DateTime<Utc> = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .context("bench time")?;
    let uid = id(1, u, 0);
    let d: Vec<Uuid> = (0..4).map(|k| id(2, u, k)).collect();
    let r: Vec<Uuid> = (0..2).map(|k| id(3, u, k)).collect();
    use UsecaseEvent as E;
    let requested = |k: usize, tag: &str| -> anyhow::Result<UsecaseEvent> {
        Ok(E::DeploymentRequested {
            deployment_id: d[k],
            config: config(tag)?,
            at,
        })
    };
    let started = |k: usize| E::DeploymentStarted {
        deployment_id: d[k],
        at,
        digest: None,
    };
    let succeeded = |k: usize| E::DeploymentSucceeded {
        deployment_id: d[k],
        at,
    };
    let superseded = |k: usize, by: usize| E::DeploymentSuperseded {
        deployment_id: d[k],
        superseded_by: d[by],
        at,
    };
    let events = [
        E::UsecaseRegistered {
            usecase_id: uid,
            name: UsecaseName::parse(&format!("bench-{u}"))?,
            description: String::new(),
            at,
            template: None,
            visibility: None,
            owner: None,
            team: None,
        },
        requested(0, "1.0.0")?,
        started(0),
        succeeded(0),
        requested(1, "1.0.1")?,
        E::ConfigChangeRequested {
            deployment_id: d[1],
            based_on: d[0],
            env: BTreeMap::from([
                ("MODE".to_owned(), "prod".to_owned()),
                ("LEVEL".to_owned(), "1.0.1".to_owned()),
            ]),
            secret_env: Default::default(),
            secret_refs: Vec::new(),
            at,
        },
        started(1),
        succeeded(1),
        superseded(0, 1),
        E::RestartRequested {
            restart_id: r[0],
            deployment_id: d[1],
            at,
        },
        E::RestartSucceeded {
            restart_id: r[0],
            deployment_id: d[1],
            at,
        },
        requested(2, "1.1.0")?,
        started(2),
        succeeded(2),
        superseded(1, 2),
        E::RestartRequested {
            restart_id: r[1],
            deployment_id: d[2],
            at,
        },
        E::RestartFailed {
            restart_id: r[1],
            deployment_id: d[2],
            message: "crashed".to_owned(),
            at,
        },
        requested(3, "1.2.0-broken")?,
        started(3),
        E::DeploymentFailed {
            deployment_id: d[3],
            message: "the image cannot be pulled".to_owned(),
            at,
        },
    ];
    events
        .iter()
        .zip(1..)
        .map(|(event, seq)| {
            let actor = if seq % 3 == 0 {
                "process-manager".to_owned()
            } else {
                format!("actor-{}", u % 50)
            };
            let metadata = json!({"actor": actor, "request_id": format!("r-{u}-{seq}")});
            Ok(format!(
                "Usecase\t{uid}\t{seq}\t{}\t1.0\t{}\t{}\n",
                event.type_name(),
                copy_text(&serde_json::to_string(event)?),
                copy_text(&metadata.to_string()),
            ))
        })
        .collect()
}

/// Escapes a value for COPY's text format.
fn copy_text(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}
