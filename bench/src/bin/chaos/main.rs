//! `chaos`: crash runs at scale. Runs seeded deployment flows (deploy, config change,
//! restart, rollback, broken images, undeploy, delete; PhariaOS and platform API) across
//! usecases while SIGKILLing the `shiplog` process at random moments and starting it again;
//! in the second half of the run two processes share the database and one of them is
//! killed at a time. The Kubernetes simulator runs in this process, so the cluster outlives
//! every kill. Once the last kill is over and the survivors settle, it checks:
//!
//! - every acknowledged command (a 2xx its client got) is in the ledger, under its request
//!   id and with the id its answer gave; no answer was a 5xx; no process died by itself;
//! - nothing is pending, deploying, being undeployed, restarting or being deleted;
//! - at most one deployment per usecase is deployed, and no outcome (started, succeeded,
//!   failed, superseded, undeployed; a restart's) is recorded twice;
//! - the hash chain verifies over every event;
//! - the read models the API serves agree with the ledger, and equal a rebuild of them;
//! - the simulator holds exactly the objects the ledger says are deployed (Deployments,
//!   Secrets, Services, Ingresses, ServiceMonitors): none missing, no orphan.
//!
//! Prints a summary and exits 1 listing every violation.
//!
//! ```sh
//! scripts/chaos --seed 17 --flows 24 --kill-every 1   # what CI runs
//! scripts/chaos --seed 1 --flows 300                  # the full run
//! ```

mod checks;
mod fleet;
mod flows;

use anyhow::{bail, Context};
use clap::Parser;
use fleet::{Fleet, Launch, ADMIN_TOKEN, NAMESPACE};
use flows::{Driver, Journal, Plan};
use kube_sim::{KubeSim, SimConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;
use shiplog_client::Client;
use sqlx::{Connection, PgConnection};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    about = "Crash runs: seeded deployment flows while shiplog is SIGKILLed, then the invariants"
)]
struct Args {
    /// The seed of the flows and of the kills: the same seed plans the same run.
    #[arg(long, default_value_t = 17)]
    seed: u64,
    /// How many flows (one usecase's life each).
    #[arg(long, default_value_t = 24)]
    flows: usize,
    /// How many flows run at once.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Seconds after which no new flow or command starts; the checks run all the same.
    #[arg(long, default_value_t = 600)]
    time_limit: u64,
    /// Processes sharing the database in the second half of the run (1: one throughout).
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// Mean seconds between two kills (each pause is drawn from 0.3 to 1.7 times it).
    #[arg(long, default_value_t = 2.0)]
    kill_every: f64,
    /// Seconds the survivors may take to settle after the last kill.
    #[arg(long, default_value_t = 90)]
    settle: u64,
    /// PostgreSQL server; a database `shiplog_chaos_<seed>_<random>` is created and dropped.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    server: String,
    /// The shiplog binary (default: `shiplog` beside this program).
    #[arg(long)]
    shiplog: Option<PathBuf>,
    /// Where the processes' logs go (default: a new directory under the temp dir).
    #[arg(long)]
    logs: Option<PathBuf>,
    /// Keep the database and the logs after a run without violations.
    #[arg(long)]
    keep: bool,
}

/// The survivors' state once settled, as the checks read it.
struct Settled {
    events: Vec<shiplog_client::wire::ledger::EventRecord>,
    usecases: std::collections::BTreeMap<uuid::Uuid, shiplog_domain::Usecase>,
    /// `None` when the ledger could not be read at all.
    report: Option<shiplog_client::wire::ledger::VerifyReport>,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let binary = match &args.shiplog {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the directory of this program")?
            .join("shiplog"),
    };
    if !binary.is_file() {
        bail!(
            "{} not found: build it (cargo build -p shiplog-api --bin shiplog) or pass --shiplog",
            binary.display()
        );
    }
    let logs = fleet::log_dir(args.logs.as_deref(), args.seed)?;
    let short = uuid::Uuid::new_v4().simple().to_string();
    let db_name = format!("shiplog_chaos_{}_{}", args.seed, &short[..8]);
    let server = args.server.trim_end_matches('/').to_owned();
    let database_url = format!("{server}/{db_name}");
    eprintln!(
        "chaos: seed {}, {} flows, logs in {}",
        args.seed,
        args.flows,
        logs.display()
    );

    // Quick rollouts, quick failures: a broken image fails on its pod's ImagePullBackOff.
    let sim = KubeSim::start(SimConfig {
        ready_delay: Duration::from_millis(200),
        progress_deadline: Duration::from_secs(10),
        ..SimConfig::default()
    })
    .await
    .context("starting the simulator")?;
    let kubeconfig = logs.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    let fleet = Fleet::new(
        Launch {
            binary,
            database_url: database_url.clone(),
            kubeconfig,
            logs: logs.clone(),
        },
        args.replicas,
    )?;

    let started = Instant::now();
    let outcome = run(&args, &fleet, &sim, &database_url).await;
    fleet.stop().await;
    let (violations, summary) = match outcome {
        Ok(result) => result,
        Err(e) => (vec![format!("the run itself failed: {e:#}")], Vec::new()),
    };
    let took = started.elapsed();
    sim.shutdown().await;

    println!();
    println!("chaos run, seed {}", args.seed);
    for (what, value) in &summary {
        println!("  {what:<28} {value}");
    }
    println!("  {:<28} {:.1} s", "duration", took.as_secs_f64());
    println!("  {:<28} {}", "violations", violations.len());
    let mut figures: serde_json::Map<String, serde_json::Value> = summary
        .iter()
        .map(|(k, v)| (k.replace(' ', "_"), json!(v)))
        .collect();
    figures.insert("measure".into(), json!("chaos"));
    figures.insert("seed".into(), json!(args.seed));
    figures.insert("seconds".into(), json!(took.as_secs_f64()));
    figures.insert("violations".into(), json!(violations.len()));
    println!("{}", serde_json::Value::Object(figures));
    if !violations.is_empty() {
        eprintln!();
        eprintln!(
            "VIOLATIONS ({}), logs kept in {}:",
            violations.len(),
            logs.display()
        );
        for v in &violations {
            eprintln!("  - {v}");
        }
        eprintln!("database kept: {database_url}");
        return Ok(ExitCode::FAILURE);
    }
    if !args.keep {
        drop_database(&server, &db_name).await?;
        let _ = std::fs::remove_dir_all(&logs);
    }
    Ok(ExitCode::SUCCESS)
}

/// The flows under kills, the settling, and the checks: the violations and the figures.
async fn run(
    args: &Args,
    fleet: &Arc<Fleet>,
    sim: &KubeSim,
    database_url: &str,
) -> anyhow::Result<(Vec<String>, Vec<(String, String)>)> {
    let began = Instant::now();
    fleet
        .activate(1)
        .await
        .context("the first shiplog process")?;
    let driver = Arc::new(Driver {
        fleet: fleet.clone(),
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()?,
        journal: Journal::default(),
        seed: args.seed,
        deadline: Instant::now() + Duration::from_secs(args.time_limit),
    });

    // The killer runs from the first flow to the last.
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (fleet, stop) = (fleet.clone(), stop.clone());
        let rng = StdRng::seed_from_u64(args.seed.wrapping_add(1));
        let every = Duration::from_secs_f64(args.kill_every.max(0.1));
        tokio::spawn(async move { fleet.killer(rng, every, &stop).await })
    };
    let next = Arc::new(AtomicUsize::new(0));
    let replica_part = if args.replicas > 1 {
        args.flows / 2
    } else {
        usize::MAX
    };
    let mut clients = Vec::new();
    for _ in 0..args.clients.max(1) {
        let (driver, next) = (driver.clone(), next.clone());
        let (seed, flows, replicas) = (args.seed, args.flows, args.replicas);
        clients.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= flows || Instant::now() > driver.deadline {
                    return Ok::<_, anyhow::Error>(());
                }
                if index == replica_part {
                    eprintln!(
                        "chaos: flow {index}: {replicas} processes share the database from now on"
                    );
                    driver.fleet.activate(replicas).await?;
                }
                driver.run(&Plan::of(seed, index)).await;
            }
        }));
    }
    let mut violations = Vec::new();
    for client in clients {
        if let Err(e) = client.await? {
            violations.push(format!("a client stopped: {e:#}"));
        }
    }
    stop.store(true, Ordering::SeqCst);
    killer.await?;
    let flows_done = driver.journal.finished.load(Ordering::SeqCst);
    eprintln!(
        "chaos: flows done after {:.0?}; the last kill is over, settling",
        began.elapsed()
    );

    fleet.restore().await.context("starting the survivors")?;
    let api = Client::new(&fleet.urls().await[0], Some(ADMIN_TOKEN))?;
    let settled = settle(&api, Duration::from_secs(args.settle)).await;
    let settled = match settled {
        Ok(settled) => settled,
        Err((settled, busy)) => {
            violations.extend(busy.into_iter().map(|b| format!("not settled: {b}")));
            settled
        }
    };
    let sent = driver
        .journal
        .sent
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let tally = checks::acknowledged(&sent, &settled.events, &mut violations);
    checks::lifecycle(&settled.events, &settled.usecases, &mut violations);
    match &settled.report {
        Some(report) => checks::chain(report, settled.events.len(), &mut violations),
        None => violations.push("the hash chain could not be verified".to_owned()),
    }
    // The projector follows the ledger a moment behind.
    let deadline = Instant::now() + Duration::from_secs(15);
    let differences = loop {
        let differences = checks::read_model_differences(&api, &settled.usecases).await?;
        if differences.is_empty() || Instant::now() > deadline {
            break differences;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    violations.extend(differences.into_iter().map(|d| format!("read models: {d}")));

    // The cluster follows the ledger: clean-ups run after the outcomes that call for them.
    let expected = checks::expected(&settled.usecases);
    let deadline = Instant::now() + Duration::from_secs(30);
    let differences = loop {
        let differences = checks::cluster_differences(sim, NAMESPACE, &expected);
        if differences.is_empty() || Instant::now() > deadline {
            break differences;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    violations.extend(differences.into_iter().map(|d| format!("cluster: {d}")));
    let objects: usize = checks::KINDS
        .iter()
        .map(|k| sim.objects(k, Some(NAMESPACE)).len())
        .sum();

    let stats = fleet.stats().await;
    violations.extend(stats.crashes.iter().cloned());
    fleet.stop().await;
    let pool = sqlx::PgPool::connect(database_url).await?;
    let replayed = checks::rebuild(&pool, &mut violations).await?;
    pool.close().await;

    let deployments: usize = settled.usecases.values().map(|u| u.deployments.len()).sum();
    let deployed = settled
        .usecases
        .values()
        .filter(|u| u.deployed().is_some() && !u.deleted)
        .count();
    let deleted = settled.usecases.values().filter(|u| u.deleted).count();
    let slow = driver
        .journal
        .slow
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .len();
    let summary = vec![
        (
            "flows".to_owned(),
            format!("{flows_done} of {} finished", args.flows),
        ),
        ("clients".to_owned(), args.clients.to_string()),
        (
            "kills".to_owned(),
            format!(
                "{} (per process {:?})",
                stats.kills.iter().sum::<usize>(),
                stats.kills
            ),
        ),
        ("leader takeovers".to_owned(), stats.leads.to_string()),
        ("commands sent".to_owned(), tally.sent.to_string()),
        ("acknowledged".to_owned(), tally.acked.to_string()),
        (
            "refused (4xx)".to_owned(),
            format!(
                "{} {:?}",
                tally.refused.values().sum::<usize>(),
                tally.refused
            ),
        ),
        (
            "unanswered".to_owned(),
            format!(
                "{} ({} of them recorded)",
                tally.unanswered, tally.unanswered_recorded
            ),
        ),
        ("events".to_owned(), settled.events.len().to_string()),
        ("rebuild replayed".to_owned(), replayed.to_string()),
        ("usecases".to_owned(), settled.usecases.len().to_string()),
        ("deployments".to_owned(), deployments.to_string()),
        ("deployed at the end".to_owned(), deployed.to_string()),
        ("deleted at the end".to_owned(), deleted.to_string()),
        ("cluster objects".to_owned(), objects.to_string()),
        ("slow waits".to_owned(), slow.to_string()),
    ];
    Ok((violations, summary))
}

/// Waits until nothing is in flight and every event is sealed; the state then, or the
/// state at the deadline with what was still busy.
async fn settle(api: &Client, budget: Duration) -> Result<Settled, (Settled, Vec<String>)> {
    let deadline = Instant::now() + budget;
    loop {
        let read = async {
            let events = checks::ledger(api).await?;
            let usecases = checks::fold(&events)?;
            let report = api.verify().await?;
            anyhow::Ok(Settled {
                events,
                usecases,
                report: Some(report),
            })
        };
        match read.await {
            Ok(settled) => {
                let mut busy = checks::unsettled(&settled.usecases);
                if let Some(report) = settled.report.as_ref().filter(|r| r.unsealed > 0) {
                    busy.push(format!("{} events not sealed", report.unsealed));
                }
                if busy.is_empty() {
                    return Ok(settled);
                }
                if Instant::now() > deadline {
                    return Err((settled, busy));
                }
            }
            Err(e) if Instant::now() > deadline => {
                return Err((
                    Settled {
                        events: Vec::new(),
                        usecases: Default::default(),
                        report: None,
                    },
                    vec![format!("the ledger could not be read: {e:#}")],
                ))
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Drops the run's database, ending any session still on it.
async fn drop_database(server: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(&format!("{server}/postgres")).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}
