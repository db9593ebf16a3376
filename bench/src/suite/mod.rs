//! `shiplog-bench all`: every measurement of the performance issue in one run,
//! each against its baseline measured in the same run, printed as one table.
//!
//! shiplog is the release binary next to this one (`target/release/shiplog`, built
//! first when run through cargo), started per measurement on a database of its own
//! and random ports; the load is generated in-process (reqwest, tokio tasks). The
//! sibling binaries `rebuild` and `sse` are run as subprocesses when they exist and
//! their JSON lines folded into the table.

mod api;
mod external;
mod history;
mod kube_calls;
mod load;
mod machine;
mod peer;
mod pgbench;
mod server;
mod simulated;
mod stats;
mod table;
mod throughput;
mod visibility;

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use table::{Met, Row};

/// Options of `all`; sizes left unset follow `--quick` or the full run.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A short run (a few minutes) to check that the harness works; its figures are rough.
    #[arg(long)]
    quick: bool,
    /// PostgreSQL server; every measurement creates and drops databases `shiplog_bench_*` on it.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    server: String,
    /// Seconds of each measured load run in 1 and 6 (default 20; quick 4).
    #[arg(long)]
    duration: Option<u64>,
    /// Runs of each side in 1 and 3, alternating, reported as medians (default 3; quick 2).
    #[arg(long)]
    rounds: Option<usize>,
    /// Concurrent clients of the load (and writer processes of 3).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Usecases the load spreads over.
    #[arg(long, default_value_t = 200)]
    usecases: usize,
    /// Seconds of the simulated-cluster run of 2 (default 60; quick 20).
    #[arg(long)]
    soak: Option<u64>,
    /// Deployments of the long usecase of 4 (default 10000; quick 300).
    #[arg(long)]
    long: Option<usize>,
    /// Finished deployments of the usecase of 5 (default 1000; quick 30).
    #[arg(long)]
    finished: Option<usize>,
    /// Only these measurements, comma-separated (1,2,3,4,5,6,7,8); default all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,
    /// The shiplog binary (default: `shiplog` next to this binary, built first under cargo).
    #[arg(long)]
    shiplog: Option<PathBuf>,
    /// Do not run `cargo build` for shiplog and the sibling benchmark binaries.
    #[arg(long)]
    no_build: bool,
    /// Also write the machine, the commands and the table as Markdown to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

/// The sizes of this run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `--quick`.
    pub quick: bool,
    /// Measured window of each load run.
    pub duration: Duration,
    /// Load before the window starts.
    pub warmup: Duration,
    /// Runs per side where the median is reported.
    pub rounds: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Usecases under load.
    pub usecases: usize,
    /// Length of the simulated run.
    pub soak: Duration,
    /// Deployments of the long usecase.
    pub long: usize,
    /// Finished deployments for the Kubernetes-call count.
    pub finished: usize,
}

impl Plan {
    fn from(args: &Args) -> Self {
        let q = args.quick;
        Self {
            quick: q,
            duration: Duration::from_secs(args.duration.unwrap_or(if q { 4 } else { 20 })),
            warmup: Duration::from_secs(if q { 1 } else { 3 }),
            rounds: args.rounds.unwrap_or(if q { 2 } else { 3 }).max(1),
            clients: args.clients.max(1),
            usecases: args.usecases.max(1),
            soak: Duration::from_secs(args.soak.unwrap_or(if q { 20 } else { 60 }).max(4)),
            long: args.long.unwrap_or(if q { 300 } else { 10_000 }),
            finished: args.finished.unwrap_or(if q { 30 } else { 1000 }),
        }
    }
}

/// Figures one measurement hands to another.
#[derive(Debug, Default)]
pub struct Figures {
    /// Measurement 1's deploy commands per second.
    pub deploy_rate: Option<f64>,
}

/// What every measurement needs.
pub struct Ctx {
    /// The sizes.
    pub plan: Plan,
    /// The shiplog release binary.
    pub shiplog: PathBuf,
    /// The directory of this binary (the target's `release/`).
    pub bin_dir: PathBuf,
    /// The cargo target directory (`bin_dir`'s parent).
    pub target_dir: PathBuf,
    /// Logs and scratch files of this run.
    pub scratch: PathBuf,
    /// The PostgreSQL server URL.
    pub pg: String,
    /// The pooled HTTP client.
    pub http: reqwest::Client,
    /// The sibling binaries this run failed to build (their rows say so).
    pub unbuilt: Vec<String>,
    figures: Mutex<Figures>,
    notes: Mutex<Vec<String>>,
}

impl Ctx {
    /// Adds a line to the notes printed under the table.
    pub fn note(&self, line: String) {
        eprintln!("  note: {line}");
        self.notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }

    /// The figures shared between measurements.
    pub fn figures(&self) -> MutexGuard<'_, Figures> {
        self.figures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the selected measurements and prints the table (and writes it with `--markdown`).
pub async fn main(args: Args) -> anyhow::Result<()> {
    let plan = Plan::from(&args);
    let exe = std::env::current_exe().context("locating this binary")?;
    let bin_dir = exe
        .parent()
        .context("this binary has no directory")?
        .to_path_buf();
    let target_dir = bin_dir
        .parent()
        .context("this binary is not in a cargo target directory")?
        .to_path_buf();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the bench crate has no workspace")?
        .to_path_buf();
    let unbuilt = if args.no_build || args.shiplog.is_some() {
        Vec::new()
    } else {
        build(&workspace, &target_dir)?
    };
    let shiplog = args
        .shiplog
        .clone()
        .unwrap_or_else(|| bin_dir.join("shiplog"));
    if !shiplog.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --release --bin shiplog` (same CARGO_TARGET_DIR)",
            shiplog.display()
        );
    }
    let run_id = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let scratch = target_dir.join("bench-suite").join(&run_id);
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let ctx = Ctx {
        plan,
        shiplog,
        bin_dir,
        target_dir,
        scratch,
        pg: args.server.trim_end_matches('/').to_owned(),
        http: api::http_client()?,
        unbuilt,
        figures: Mutex::new(Figures::default()),
        notes: Mutex::new(Vec::new()),
    };
    let before = machine::Machine::read(&ctx.pg, &workspace).await;
    eprintln!("{}", before.describe());
    eprintln!("plan: {:?}\nlogs: {}", ctx.plan, ctx.scratch.display());
    let want = |n: u8| args.only.is_empty() || args.only.contains(&n);
    let started = Instant::now();
    let mut rows = Vec::new();
    // 1 first: 2 and 3 are judged against its figure.
    if want(1) {
        rows.extend(step(&ctx, "1", "deploy throughput", throughput::measure(&ctx)).await);
    }
    if want(2) {
        rows.extend(step(&ctx, "2", "simulated cluster", simulated::measure(&ctx)).await);
    }
    if want(3) {
        rows.extend(step(&ctx, "3", "eventsourcing peer", peer::measure(&ctx)).await);
    }
    if want(4) {
        rows.extend(step(&ctx, "4", "long history", history::measure(&ctx)).await);
    }
    if want(5) {
        rows.extend(step(&ctx, "5", "Kubernetes calls", kube_calls::measure(&ctx)).await);
    }
    if want(6) {
        rows.extend(step(&ctx, "6", "commit to visible", visibility::measure(&ctx)).await);
    }
    if want(7) {
        rows.extend(external::rebuild(&ctx).await);
    }
    if want(8) {
        rows.extend(external::sse(&ctx).await);
    }
    let after = machine::Machine::read(&ctx.pg, &workspace).await;
    let took = started.elapsed();
    let notes = ctx.notes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    println!();
    println!("{}", before.describe());
    println!(
        "load average before / after: {} / {}; the run took {:.0} s{}",
        before.loadavg,
        after.loadavg,
        took.as_secs_f64(),
        if ctx.plan.quick {
            " (--quick: rough figures)"
        } else {
            ""
        }
    );
    println!();
    print!("{}", table::text(&rows));
    for note in &notes {
        println!("note: {note}");
    }
    if let Some(path) = &args.markdown {
        let mut md = String::new();
        md.push_str(&before.markdown());
        md.push_str(&format!(
            "- Load average before / after: {} / {}; the run took {:.0} s{}\n\n",
            before.loadavg,
            after.loadavg,
            took.as_secs_f64(),
            if ctx.plan.quick { " (--quick)" } else { "" }
        ));
        md.push_str(&table::markdown(&rows));
        if !notes.is_empty() {
            md.push('\n');
            for note in &notes {
                md.push_str(&format!("- {note}\n"));
            }
        }
        std::fs::write(path, md).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs one measurement; a failure becomes a row saying so, and the run goes on.
async fn step(
    ctx: &Ctx,
    id: &str,
    name: &str,
    measurement: impl std::future::Future<Output = anyhow::Result<Vec<Row>>>,
) -> Vec<Row> {
    eprintln!("== {id}: {name}");
    let started = Instant::now();
    let rows = match measurement.await {
        Ok(rows) => rows,
        Err(e) => {
            let why = format!("{e:#}");
            ctx.note(format!("{id}: {name} failed: {why}"));
            vec![Row {
                id: id.to_owned(),
                what: name.to_owned(),
                value: "failed (see notes)".to_owned(),
                baseline: "-".to_owned(),
                ratio: "-".to_owned(),
                target: "-".to_owned(),
                met: Met::No,
            }]
        }
    };
    eprintln!("   {id} took {:.0} s", started.elapsed().as_secs_f64());
    rows
}

/// Builds the shiplog binary, then each sibling benchmark binary whose source
/// exists, into `target_dir` with the cargo that runs this one. Only the former must
/// succeed: the names of the siblings that did not build (still being written) are
/// returned.
fn build(workspace: &Path, target_dir: &Path) -> anyhow::Result<Vec<String>> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        // Not started by cargo: use the binaries as they are.
        return Ok(Vec::new());
    };
    let run = |args: &[&str]| {
        eprintln!("cargo {}", args.join(" "));
        std::process::Command::new(&cargo)
            .args(args)
            .current_dir(workspace)
            .env("CARGO_TARGET_DIR", target_dir)
            .status()
    };
    let status = run(&[
        "build",
        "--release",
        "-p",
        "shiplog-api",
        "--bin",
        "shiplog",
    ])
    .context("running cargo build")?;
    if !status.success() {
        bail!("building shiplog failed ({status})");
    }
    let mut unbuilt = Vec::new();
    for name in external::SIBLINGS {
        let source = workspace.join(format!("bench/src/bin/{name}.rs"));
        if !source.is_file() {
            continue;
        }
        match run(&["build", "--release", "-p", "shiplog-bench", "--bin", name]) {
            Ok(status) if status.success() => {}
            _ => {
                eprintln!("warning: the {name} binary did not build; its rows say so");
                unbuilt.push((*name).to_owned());
            }
        }
    }
    Ok(unbuilt)
}
