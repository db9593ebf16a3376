//! Measurement 3: the Python `eventsourcing` library (versions pinned in
//! `bench/peers/requirements.txt`) on the same PostgreSQL, `clients` writer
//! processes, against measurement 1's deploy rate.

use super::server::Database;
use super::stats::{median, ratio};
use super::table::{num, times, Met, Row};
use super::Ctx;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use tokio::process::Command;

const TARGET: &str = "shiplog >= 3x";

/// Runs measurement 3: a venv on first use, then `rounds` runs on fresh databases.
pub async fn measure(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let plan = &ctx.plan;
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers");
    let python = match venv(&ctx.target_dir.join("bench-venv"), &peers).await {
        Ok(python) => python,
        Err(e) => {
            let why = format!("{e:#}");
            ctx.note(format!("3: {why}"));
            return Ok(vec![Row::not_measured(
                "3",
                "eventsourcing (Python) peer",
                TARGET,
                &why,
            )]);
        }
    };
    let url = reqwest::Url::parse(&ctx.pg).context("the --server URL")?;
    let mut rates = Vec::new();
    let mut version = String::new();
    for round in 0..plan.rounds {
        let db = Database::named(&ctx.pg, "eventsourcing");
        db.create().await?;
        let output = Command::new(&python)
            .arg(peers.join("eventsourcing_bench.py"))
            .arg("--writers")
            .arg(plan.clients.to_string())
            .arg("--aggregates")
            .arg(plan.usecases.to_string())
            .arg("--seconds")
            .arg(plan.duration.as_secs().to_string())
            .arg("--warmup")
            .arg(plan.warmup.as_secs().to_string())
            .env("PERSISTENCE_MODULE", "eventsourcing.postgres")
            .env("POSTGRES_DBNAME", &db.name)
            .env("POSTGRES_HOST", url.host_str().unwrap_or("127.0.0.1"))
            .env("POSTGRES_PORT", url.port().unwrap_or(5432).to_string())
            .env("POSTGRES_USER", url.username())
            .env("POSTGRES_PASSWORD", url.password().unwrap_or(""))
            // One connection per writer process, which is single-threaded.
            .env("POSTGRES_POOL_SIZE", "1")
            .output()
            .await;
        db.drop_db().await?;
        let output = output.context("running eventsourcing_bench.py")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            bail!(
                "eventsourcing_bench.py failed ({}): {}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            );
        }
        let line = stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["measure"] == "eventsourcing")
            .with_context(|| format!("no result line from eventsourcing_bench.py: {stdout}"))?;
        let rate = line["commands_per_s"]
            .as_f64()
            .with_context(|| format!("no commands_per_s in {line}"))?;
        version = line["version"].as_str().unwrap_or("?").to_owned();
        eprintln!(
            "  3: round {round}: eventsourcing {version}: {} cmd/s ({} conflicts)",
            num(rate),
            line["conflicts"]
        );
        rates.push(rate);
    }
    let peer = median(&rates).context("no eventsourcing run")?;
    let shiplog = ctx.figures().deploy_rate;
    let r = shiplog.and_then(|s| ratio(s, peer));
    Ok(vec![Row {
        id: "3".into(),
        what: format!(
            "shiplog (1) vs Python eventsourcing {version}, {} writer processes, load + append one event (median of {})",
            plan.clients, plan.rounds
        ),
        value: shiplog.map_or_else(
            || "not measured (run 1)".to_owned(),
            |s| format!("{} cmd/s", num(s)),
        ),
        baseline: format!("{} cmd/s", num(peer)),
        ratio: times(r),
        target: TARGET.into(),
        met: r.map_or_else(|| Met::NotMeasured("1 not run".into()), |r| Met::from(r >= 3.0)),
    }])
}

/// The venv's python, creating the venv and installing the pinned requirements when
/// it is missing or its requirements changed.
async fn venv(dir: &Path, peers: &Path) -> anyhow::Result<PathBuf> {
    let requirements = peers.join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let python = dir.join("bin").join("python");
    let marker = dir.join(".requirements.txt");
    if python.is_file() && std::fs::read_to_string(&marker).ok().as_deref() == Some(&wanted) {
        return Ok(python);
    }
    eprintln!(
        "  3: creating {} (python3 -m venv, pip install -r {})",
        dir.display(),
        requirements.display()
    );
    let created = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(dir)
        .status()
        .await;
    if !matches!(created, Ok(s) if s.success()) {
        bail!("cannot create a venv: install python3 (3.11 or newer) and python3-venv");
    }
    let installed = Command::new(dir.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements)
        .status()
        .await
        .context("running pip")?;
    if !installed.success() {
        bail!(
            "pip could not install {} ({installed})",
            requirements.display()
        );
    }
    std::fs::write(&marker, wanted)?;
    Ok(python)
}
