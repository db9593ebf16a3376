//! The raw-PostgreSQL baseline: `pgbench` running single-row INSERT transactions
//! into shiplog's own `events` table (migrated, triggers and indexes included),
//! with the payload and metadata of a real `DeploymentRequested` that shiplog wrote
//! in the same run.

use super::server::Database;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// What one pgbench run measured.
#[derive(Debug, Clone, Copy)]
pub struct Pgbench {
    /// Transactions per second (without the initial connection time).
    pub tps: f64,
    /// Mean latency of a transaction in milliseconds.
    pub latency_ms: f64,
}

/// The one INSERT of the script: one event row, its own transaction.
const SCRIPT: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
VALUES ('Usecase', gen_random_uuid()::text, 1, 'DeploymentRequested', '1.0', :payload, :metadata);\n";

/// Finds `pgbench`, installing Debian's `postgresql-contrib` with apt when running as
/// root; the error is one line saying what to install.
pub async fn ensure_installed() -> Result<PathBuf, String> {
    if let Some(path) = which("pgbench") {
        return Ok(path);
    }
    let hint = "pgbench is missing: install it (Debian: apt-get install postgresql-contrib)";
    let root = Command::new("id")
        .arg("-u")
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root || which("apt-get").is_none() {
        return Err(hint.to_owned());
    }
    eprintln!("pgbench is missing; installing postgresql-contrib with apt-get");
    for update_first in [false, true] {
        if update_first {
            let _ = Command::new("apt-get").arg("update").status().await;
        }
        let installed = Command::new("apt-get")
            .args([
                "install",
                "-y",
                "--no-install-recommends",
                "postgresql-contrib",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .await
            .map(|s| s.success())
            .unwrap_or(false);
        if installed {
            if let Some(path) = which("pgbench") {
                return Ok(path);
            }
        }
    }
    Err(hint.to_owned())
}

/// `name` on the PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// A fresh database with shiplog's schema (its migrations, run in-process).
pub async fn prepare(server: &str) -> anyhow::Result<Database> {
    let db = Database::named(server, "pgbench");
    let pool = shiplog_infrastructure::db::connect_and_migrate(&db.url())
        .await
        .context("creating and migrating the pgbench database")?;
    pool.close().await;
    Ok(db)
}

/// Runs the INSERT script with `clients` connections for `seconds`.
pub async fn run(
    pgbench: &Path,
    db: &Database,
    scratch: &Path,
    clients: usize,
    seconds: u64,
    payload: &str,
    metadata: &str,
) -> anyhow::Result<Pgbench> {
    let script = scratch.join("raw_insert.sql");
    std::fs::write(&script, SCRIPT).context("writing the pgbench script")?;
    // Prepared statements, as sqlx uses; the JSON values are bound as parameters
    // (never spliced into the SQL, where pgbench would read `:name` in them as variables).
    let output = Command::new(pgbench)
        .args(["-n", "-M", "prepared"])
        .arg("-c")
        .arg(clients.to_string())
        .arg("-j")
        .arg(clients.min(2).to_string())
        .arg("-T")
        .arg(seconds.to_string())
        .arg("-f")
        .arg(&script)
        .arg("-D")
        .arg(format!("payload={payload}"))
        .arg("-D")
        .arg(format!("metadata={metadata}"))
        .arg(db.url())
        .output()
        .await
        .context("running pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let field = |prefix: &str| -> anyhow::Result<f64> {
        stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no {prefix:?} in pgbench's output: {stdout}"))
    };
    Ok(Pgbench {
        tps: field("tps = ")?,
        latency_ms: field("latency average = ")?,
    })
}
