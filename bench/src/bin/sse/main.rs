//! `sse`: what live event streams (`GET /api/events/stream`) cost the server.
//!
//! Runs the `shiplog` binary (`serve --cluster none`) on a database of its own,
//! then for each subscriber count N opens N streams from this process (plain TCP
//! and a minimal HTTP/1.1 reader, so that ten thousand clients stay cheap), and
//! measures from outside the server process:
//!
//! - its resident memory (`VmRSS` of `/proc/<pid>/status`) before, with N
//!   connected, and after they disconnected;
//! - the CPU time it spent while the N connected (`utime + stime` of
//!   `/proc/<pid>/stat`, what `getrusage` would report inside it);
//! - the delivery latency of events written one at a time while N listen: from
//!   the event's `recordedAt` (its writing transaction's start, so the commit is
//!   included) to the moment a subscriber read it, over every subscriber;
//! - the write path (`POST /api/usecases/{id}/deployments`) p50/p99 at the counts
//!   in `--write-at`, and how many answers were not 202;
//! - that every subscriber received every event written while it listened, in order.
//!
//! Prints one JSON object per measurement on its own line (`"measure": "sse"`,
//! `"sse_write"` or `"sse_churn"`), then a table. Numbers, not assertions.
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-sse cargo build --release -p shiplog-api --bin shiplog -p shiplog-bench --bin sse
//! /work/target-sse/release/sse
//! ```

mod api;
mod measure;
mod process;
mod subscribers;

use anyhow::bail;
use api::Api;
use clap::Parser;
use measure::{await_delivery, check, quantile, write_path};
use process::{raise_open_files, ShiplogProcess};
use serde_json::json;
use shiplog_client::Client;
use sqlx::{Connection, PgConnection};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subscribers::{connect, disconnect};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// PostgreSQL server (a database `shiplog_bench_sse_<random>` is created and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    server: String,
    /// The shiplog binary to measure (default: `shiplog` beside this program).
    #[arg(long)]
    shiplog: Option<PathBuf>,
    /// Subscriber counts to measure, in this order.
    #[arg(long, value_delimiter = ',', default_value = "0,100,1000,5000,10000")]
    subscribers: Vec<usize>,
    /// Events written one at a time while each count listens (delivery latency).
    #[arg(long, default_value_t = 50)]
    events: usize,
    /// Pause between two of those events, in milliseconds.
    #[arg(long, default_value_t = 40)]
    pace_ms: u64,
    /// Subscriber counts at which the write path is measured.
    #[arg(long, value_delimiter = ',', default_value = "0,5000")]
    write_at: Vec<usize>,
    /// POSTs of one write-path measurement.
    #[arg(long, default_value_t = 1000)]
    writes: usize,
    /// Write-path POSTs in flight at once (each on a usecase of its own).
    #[arg(long, default_value_t = 8)]
    write_concurrency: usize,
    /// Rounds of connecting and disconnecting 1000 subscribers at the end, to see
    /// whether the memory comes back.
    #[arg(long, default_value_t = 3)]
    churn_rounds: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 100)]
    connect_concurrency: usize,
    /// Extra environment of the server, `KEY=VALUE` (e.g. `MALLOC_ARENA_MAX=2`); repeatable.
    #[arg(long = "server-env")]
    server_env: Vec<String>,
    /// Extra arguments of `shiplog serve` (e.g. `--sse-buffer=8192`); repeatable.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// How long to wait for every subscriber to receive every event.
    #[arg(long, default_value_t = 120)]
    deliver_timeout_s: u64,
}

const TOKEN: &str = "bench-admin-token-0123456789";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    raise_open_files();
    let name = format!("shiplog_bench_sse_{}", Uuid::new_v4().simple());
    let url = format!("{}/{name}", args.server);
    let result = run(&args, &url).await;
    let mut conn = PgConnection::connect(&format!("{}/postgres", args.server)).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    result
}

/// One line of the table printed at the end.
struct Row {
    subscribers: usize,
    rss_before_mb: f64,
    rss_with_mb: f64,
    rss_after_mb: f64,
    per_subscriber_kb: f64,
    connect_cpu_s: f64,
    p50: f64,
    p99: f64,
    complete: String,
}

async fn run(args: &Args, database_url: &str) -> anyhow::Result<()> {
    let server = ShiplogProcess::start(args, database_url)?;
    let client = reqwest::Client::new();
    let api = Arc::new(Api {
        client: Client::with_http(client.clone(), &server.base, Some(TOKEN)),
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        match api.create_usecase("bench-sse").await {
            Ok(id) => break id,
            Err(e) if Instant::now() > deadline => {
                return Err(e.context("the server never came up"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let mut usecases = vec![first.clone()];
    for i in 1..args.write_concurrency.max(1) {
        usecases.push(api.create_usecase(&format!("bench-sse-{i}")).await?);
    }
    // Warm up: the first streams and writes allocate what the process keeps anyway.
    let warm = connect(&server.addr, 100, args.connect_concurrency).await?;
    for i in 0..20 {
        api.deploy(&first, &format!("warm{i}")).await?;
    }
    disconnect(warm);
    server
        .await_subscribers(&client, 0, Duration::from_secs(60))
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut rows = Vec::new();
    let mut writes = Vec::new();
    for &n in &args.subscribers {
        let rss_before = server.rss_kb()?;
        let cpu_before = server.cpu_s()?;
        let connect_started = Instant::now();
        let subscribers = connect(&server.addr, n, args.connect_concurrency).await?;
        let connect_wall = connect_started.elapsed().as_secs_f64();
        server
            .await_subscribers(&client, n, Duration::from_secs(60))
            .await?;
        let connect_cpu = server.cpu_s()? - cpu_before;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_connected = server.rss_kb()?;

        // Delivery: events written one at a time, while N listen.
        let start = api.newest().await?;
        for i in 0..args.events {
            let status = api.deploy(&first, &format!("e{i}")).await?;
            if status != 202 {
                bail!("deploying: {status}");
            }
            tokio::time::sleep(Duration::from_millis(args.pace_ms)).await;
        }
        let logs: Vec<_> = subscribers.iter().map(|s| s.log.clone()).collect();
        let expected = api.events_after(start).await?;
        await_delivery(
            &logs,
            expected.len(),
            Duration::from_secs(args.deliver_timeout_s),
        )
        .await;
        let rss_with = server.rss_kb()?;
        // Checked now: the write path below sends these subscribers more events.
        let (complete, latencies, problem) = check(&logs, &expected);

        // The write path while N listen; they receive these events too.
        if args.write_at.contains(&n) {
            let rss_write_before = server.rss_kb()?;
            let (times, unavailable, other) = write_path(&api, &usecases, args.writes).await?;
            let all = api.events_after(start).await?;
            await_delivery(
                &logs,
                all.len(),
                Duration::from_secs(args.deliver_timeout_s),
            )
            .await;
            let (complete, _, problem) = check(&logs, &all);
            let rss_write_after = server.rss_kb()?;
            let line = json!({
                "measure": "sse_write",
                "subscribers": n,
                "posts": times.len(),
                "post_p50_ms": quantile(&times, 0.5),
                "post_p99_ms": quantile(&times, 0.99),
                "post_max_ms": quantile(&times, 1.0),
                "status_503": unavailable,
                "status_other": other,
                "subscribers_complete": complete,
                "rss_during_kb": rss_write_after.max(rss_write_before),
                "problem": problem,
            });
            println!("{line}");
            writes.push((n, times, unavailable, other, complete));
        }

        let cpu_total = server.cpu_s()? - cpu_before;
        let dropped = disconnect(subscribers);
        let gone = server
            .await_subscribers(&client, 0, Duration::from_secs(120))
            .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_after = server.rss_kb()?;
        drop(dropped);
        let grown = rss_with.max(rss_connected).saturating_sub(rss_before);
        let per_subscriber = if n == 0 { 0.0 } else { grown as f64 / n as f64 };
        let line = json!({
            "measure": "sse",
            "subscribers": n,
            "rss_before_kb": rss_before,
            "rss_connected_kb": rss_connected,
            "rss_with_kb": rss_with,
            "rss_after_kb": rss_after,
            "rss_per_subscriber_kb": per_subscriber,
            "connect_wall_s": connect_wall,
            "connect_cpu_s": connect_cpu,
            "cpu_with_s": cpu_total,
            "events": expected.len(),
            "subscribers_complete": complete,
            "delivery_p50_ms": quantile(&latencies, 0.5),
            "delivery_p99_ms": quantile(&latencies, 0.99),
            "delivery_max_ms": quantile(&latencies, 1.0),
            "disconnect_noticed_s": gone.as_secs_f64(),
            "problem": problem,
        });
        println!("{line}");
        rows.push(Row {
            subscribers: n,
            rss_before_mb: rss_before as f64 / 1024.0,
            rss_with_mb: rss_with.max(rss_connected) as f64 / 1024.0,
            rss_after_mb: rss_after as f64 / 1024.0,
            per_subscriber_kb: per_subscriber,
            connect_cpu_s: connect_cpu,
            p50: quantile(&latencies, 0.5),
            p99: quantile(&latencies, 0.99),
            complete: format!("{complete}/{n}"),
        });
    }

    // Churn: does the memory of departed subscribers come back?
    let mut churn = Vec::new();
    for round in 1..=args.churn_rounds {
        let subscribers = connect(&server.addr, 1000, args.connect_concurrency).await?;
        server
            .await_subscribers(&client, 1000, Duration::from_secs(60))
            .await?;
        let with = server.rss_kb()?;
        disconnect(subscribers);
        server
            .await_subscribers(&client, 0, Duration::from_secs(120))
            .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = server.rss_kb()?;
        println!(
            "{}",
            json!({"measure": "sse_churn", "round": round, "subscribers": 1000, "rss_with_kb": with, "rss_after_kb": after})
        );
        churn.push((round, with, after));
    }

    println!(
        "\n{:>11} {:>10} {:>10} {:>10} {:>9} {:>11} {:>9} {:>9} {:>11}",
        "subscribers",
        "RSS0 MB",
        "RSS MB",
        "after MB",
        "KB/sub",
        "connect s",
        "p50 ms",
        "p99 ms",
        "complete"
    );
    for r in &rows {
        println!(
            "{:>11} {:>10.1} {:>10.1} {:>10.1} {:>9.1} {:>11.3} {:>9.1} {:>9.1} {:>11}",
            r.subscribers,
            r.rss_before_mb,
            r.rss_with_mb,
            r.rss_after_mb,
            r.per_subscriber_kb,
            r.connect_cpu_s,
            r.p50,
            r.p99,
            r.complete
        );
    }
    println!(
        "\n{:>11} {:>6} {:>9} {:>9} {:>9} {:>6} {:>6} {:>11}",
        "write path", "POSTs", "p50 ms", "p99 ms", "max ms", "503", "other", "complete"
    );
    for (n, times, unavailable, other, complete) in &writes {
        println!(
            "{:>11} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>6} {:>6} {:>11}",
            format!("{n} subs"),
            times.len(),
            quantile(times, 0.5),
            quantile(times, 0.99),
            quantile(times, 1.0),
            unavailable,
            other,
            format!("{complete}/{n}")
        );
    }
    if !churn.is_empty() {
        println!("\nchurn of 1000 subscribers (RSS MB with / after):");
        for (round, with, after) in churn {
            println!(
                "  round {round}: {:.1} / {:.1}",
                with as f64 / 1024.0,
                after as f64 / 1024.0
            );
        }
    }
    Ok(())
}
