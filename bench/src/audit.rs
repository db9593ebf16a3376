//! `shiplog-bench [audit]`: fills a database of its own with a ledger of N events and
//! prints how long the audit trail takes to answer at that size: pages of
//! `GET /api/events` under each filter (first page and deep pages), sealing the
//! hash chain, verifying it and exporting it. Numbers, not assertions: run it on
//! a quiet machine and compare runs.
//!
//! `cargo run --release -p shiplog-bench -- --events 1000000`

use anyhow::{bail, Context};
use reqwest::Method;
use shiplog_api::server::{router, ClusterMode, Settings, StreamSettings};
use shiplog_client::wire::ledger::EventPage;
use shiplog_client::Client;
use shiplog_domain::events::EVENT_TYPES;
use shiplog_infrastructure::audit::{verify, ChainSealer};
use shiplog_infrastructure::db::connect_and_migrate;
use shiplog_infrastructure::kube_cluster::KubeSettings;
use sqlx::{Connection, PgConnection, PgPool};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Options of the audit-trail benchmark (also accepted without the `audit` subcommand).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many events the ledger holds.
    #[arg(long, default_value_t = 1_000_000)]
    events: i64,
    /// PostgreSQL server (the database `shiplog_bench_<events>` is created on it).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    server: String,
    /// Requests per measured query.
    #[arg(long, default_value_t = 30)]
    repeat: usize,
    /// Keep the database afterwards (a second run reuses it and skips the fill).
    #[arg(long)]
    keep: bool,
}

const TOKEN: &str = "bench-admin-token-0123456789";
/// Events per usecase in the generated ledger.
const PER_USECASE: i64 = 20;

/// Fills (or reuses) the bench ledger, then times the audit queries, verify and export.
pub async fn main(args: Args) -> anyhow::Result<()> {
    let name = format!("shiplog_bench_{}", args.events);
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
        fill(pool, args.events).await?;
        println!("fill: {} events in {:.1?}", args.events, started.elapsed());
        let started = Instant::now();
        let sealer = ChainSealer::new(pool.clone());
        let mut sealed = 0;
        loop {
            let n = sealer.seal_pending().await?;
            if n == 0 {
                break;
            }
            sealed += n;
        }
        let took = started.elapsed();
        println!(
            "seal: {sealed} events in {took:.1?} ({:.0} events/s)",
            sealed as f64 / took.as_secs_f64()
        );
    } else if have != args.events {
        bail!(
            "the bench database holds {have} events, not {}; drop it or pass --events {have}",
            args.events
        );
    }
    sqlx::query("ANALYZE events").execute(pool).await?;

    let base = serve(pool.clone()).await?;
    // Paths with their query strings as a client would send them: the queries measured
    // are the URLs, so they are built here and sent through the client's transport.
    let client = Client::new(&base, Some(TOKEN))?;
    let middle_cursor = cursor_at(pool, args.events / 2).await?;
    let usecase = uuid_of(pool, args.events / (2 * PER_USECASE)).await?;
    // The fill records one event per second from 2026-01-01.
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")?;
    let at = |second: i64| {
        (start + chrono::Duration::seconds(second))
            .to_rfc3339()
            .replace('+', "%2B")
    };
    let (from, to) = (at(args.events / 2), at(args.events / 2 + 3600));
    let recent = at(args.events * 9 / 10);
    let queries = [
        ("first page, no filter", "/api/events?limit=50".to_owned()),
        (
            "deep page, no filter",
            format!("/api/events?limit=50&after={middle_cursor}"),
        ),
        (
            "one usecase (history)",
            format!("/api/usecases/{usecase}/history"),
        ),
        (
            "one usecase via /api/events",
            format!("/api/events?usecase={usecase}"),
        ),
        (
            "one type",
            "/api/events?types=DeploymentFailed&limit=50".to_owned(),
        ),
        (
            "one type, deep",
            format!("/api/events?types=DeploymentFailed&limit=50&after={middle_cursor}"),
        ),
        ("one actor", "/api/events?actor=actor-7&limit=50".to_owned()),
        (
            "actor + type",
            "/api/events?actor=actor-7&types=DeploymentRequested&limit=50".to_owned(),
        ),
        (
            "time range (an hour, mid-ledger)",
            format!("/api/events?from={from}&to={to}&limit=50"),
        ),
        (
            "time range + type",
            format!("/api/events?from={from}&to={to}&types=DeploymentFailed&limit=50"),
        ),
        (
            "from only (last tenth)",
            format!("/api/events?from={recent}&limit=50"),
        ),
    ];
    println!(
        "\nGET over HTTP, {} events, {} requests each (milliseconds):",
        args.events, args.repeat
    );
    println!(
        "{:<36} {:>8} {:>8} {:>8} {:>6}",
        "query", "median", "p95", "max", "items"
    );
    for (label, path) in queries {
        let mut times = Vec::with_capacity(args.repeat);
        let mut items = 0;
        for _ in 0..args.repeat {
            let started = Instant::now();
            let page: EventPage = client
                .fetch(client.request(Method::GET, &path))
                .await
                .with_context(|| path.clone())?;
            times.push(started.elapsed());
            items = page.items.len();
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<36} {:>8.2} {:>8.2} {:>8.2} {:>6}",
            label,
            ms(times[times.len() / 2]),
            ms(times[times.len() * 95 / 100]),
            ms(times[times.len() - 1]),
            items
        );
    }

    let started = Instant::now();
    let report = verify(pool).await?;
    let took = started.elapsed();
    println!(
        "\nverify: {} events in {took:.1?} ({:.0} events/s), verified {}",
        report.events,
        report.events as f64 / took.as_secs_f64(),
        report.verified
    );
    let started = Instant::now();
    let export = client
        .send(client.request(Method::GET, "/api/audit/export"))
        .await?
        .bytes()
        .await?;
    let took = started.elapsed();
    println!(
        "export: {:.1} MB in {took:.1?} ({:.0} events/s)",
        export.len() as f64 / 1e6,
        args.events as f64 / took.as_secs_f64()
    );
    Ok(())
}

/// Writes `n` events in transactions of 10 000 (aggregate type `BenchUsecase`, so that
/// the name-reservation trigger stays out of it): usecases of 20 events each, nine
/// types, fifty actors plus the process manager, one event per second from 2026-01-01.
async fn fill(pool: &PgPool, n: i64) -> anyhow::Result<()> {
    let chunk = 10_000;
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at)
             SELECT 'BenchUsecase', md5('u' || (s / $3))::uuid::text, s % $3 + 1, ($4::text[])[s % 9 + 1], '1.0',
                    json_build_object(($4::text[])[s % 9 + 1], json_build_object('deploymentId', md5('d' || s)::uuid, 'at', '2026-01-01T00:00:00Z')),
                    json_build_object('actor', CASE WHEN s % 3 = 0 THEN 'process-manager' ELSE 'actor-' || (s % 50) END, 'request_id', md5('r' || s)),
                    '2026-01-01T00:00:00Z'::timestamptz + s * interval '1 second'
               FROM generate_series($1, $2 - 1) AS s",
        )
        .bind(start)
        .bind(end)
        .bind(PER_USECASE)
        .bind(EVENT_TYPES.map(str::to_owned).to_vec())
        .execute(pool)
        .await
        .context("filling the ledger")?;
        start = end;
    }
    Ok(())
}

async fn cursor_at(pool: &PgPool, offset: i64) -> anyhow::Result<String> {
    let (txid, position): (String, i64) = sqlx::query_as(
        "SELECT transaction_id::text, position FROM events ORDER BY transaction_id, position OFFSET $1 LIMIT 1",
    )
    .bind(offset)
    .fetch_one(pool)
    .await?;
    Ok(format!("{:016x}{:016x}", txid.parse::<u64>()?, position))
}

async fn uuid_of(pool: &PgPool, usecase: i64) -> anyhow::Result<String> {
    Ok(
        sqlx::query_scalar("SELECT md5('u' || $1::bigint)::uuid::text")
            .bind(usecase)
            .fetch_one(pool)
            .await?,
    )
}

/// The API's router on a random port, without the background workers (the
/// generated events are not valid for the read models, and nothing here needs them).
async fn serve(pool: PgPool) -> anyhow::Result<String> {
    let settings = Settings {
        listen: "127.0.0.1:0".parse()?,
        database_url: String::new(),
        admin_token: Some(TOKEN.to_owned()),
        cluster: ClusterMode::None,
        kube: KubeSettings {
            namespace: "bench".to_owned(),
            image_pull_secrets: Vec::new(),
            progress_deadline: Duration::from_secs(60),
            ingress: shiplog_application::IngressSettings::default(),
            request_timeout: Duration::from_secs(10),
        },
        rollout_timeout: Duration::from_secs(60),
        streams: StreamSettings::default(),
        cors_origins: Vec::new(),
        proxy_listen: "127.0.0.1:0".parse()?,
        proxy_cors_origins: Vec::new(),
        catalog: shiplog_application::Catalog::builtin(),
        deployments_page: "/deployments".to_owned(),
        ingress_listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        billing: shiplog_application::BillingSettings::default(),
        // Measured as before digests: no registry lookup per deployment.
        resolve_digests: shiplog_api::server::ResolveDigests::Never,
        insecure_registries: Vec::new(),
        auto_update: Default::default(),
        require_reason: false,
        limits: shiplog_api::limits::RequestLimits::default(),
        sim_faults: Default::default(),
        oidc: None,
        console: Default::default(),
        secret_key: shiplog_api::server::SecretKeySource::Generated(None),
    };
    let (app, _background) = router(
        pool,
        &settings,
        CancellationToken::new(),
        None,
        Default::default(),
    )?;
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}"))
}
