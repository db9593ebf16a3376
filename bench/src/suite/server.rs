//! The systems under test as a user runs them: the release `shiplog` binary on a
//! database of its own and random ports, and scratch databases for the baselines.
//! Everything started here is stopped and dropped by its `stop`/`drop_db`.

use anyhow::{bail, Context};
use sqlx::{Connection, PgConnection};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// The bootstrap admin token every shiplog started here gets.
pub const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

/// A scratch database on the benchmark's PostgreSQL server.
#[derive(Debug, Clone)]
pub struct Database {
    /// The server URL without a database (`postgres://postgres@127.0.0.1:5432`).
    pub server: String,
    /// The database's name.
    pub name: String,
}

impl Database {
    /// A fresh name `shiplog_bench_<label>_<random>`; the database itself is created
    /// by whoever first connects (shiplog creates its own) or by `create`.
    pub fn named(server: &str, label: &str) -> Self {
        let short = Uuid::new_v4().simple().to_string();
        Self {
            server: server.trim_end_matches('/').to_owned(),
            name: format!("shiplog_bench_{label}_{}", &short[..8]),
        }
    }

    /// The URL of this database.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    /// Creates the (empty) database.
    pub async fn create(&self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&format!("{}/postgres", self.server))
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", self.server))?;
        sqlx::query(&format!("CREATE DATABASE \"{}\"", self.name))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating database {}", self.name))?;
        Ok(())
    }

    /// Drops the database, ending any session still on it.
    pub async fn drop_db(&self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&format!("{}/postgres", self.server))
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", self.server))?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await
        .with_context(|| format!("dropping database {}", self.name))?;
        Ok(())
    }
}

/// Where shiplog sends its deployments.
#[derive(Debug, Clone)]
pub enum Cluster {
    /// `--cluster none`: API only, no process manager.
    None,
    /// `--cluster simulated`: the embedded Kubernetes simulator.
    Simulated,
    /// `--cluster kube` with this kubeconfig.
    Kube(PathBuf),
}

/// A running `shiplog serve`.
pub struct Shiplog {
    child: Child,
    /// `http://127.0.0.1:PORT` of its API.
    pub api: String,
    /// Its database, dropped by `stop`.
    pub db: Database,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Shiplog {
    /// Starts `binary serve` on a new database `shiplog_bench_<label>_*` and waits until
    /// `/readyz` answers 200 (the database migrated, the listeners bound).
    pub async fn start(
        binary: &Path,
        pg_server: &str,
        logs: &Path,
        label: &str,
        cluster: Cluster,
    ) -> anyhow::Result<Self> {
        let db = Database::named(pg_server, label);
        let port = free_port()?;
        let listen = SocketAddr::from(([127, 0, 0, 1], port));
        let log = logs.join(format!("{}.log", db.name));
        let file = std::fs::File::create(&log)
            .with_context(|| format!("creating the log file {}", log.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--proxy-listen")
            .arg("127.0.0.1:0")
            .arg("--namespace")
            .arg("bench")
            .env("DATABASE_URL", db.url())
            .env("SHIPLOG_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        match &cluster {
            Cluster::None => {
                command.args(["--cluster", "none"]);
            }
            Cluster::Simulated => {
                command.args(["--cluster", "simulated", "--ingress-listen", "127.0.0.1:0"]);
            }
            Cluster::Kube(kubeconfig) => {
                // The simulator behind the kubeconfig pulls no image, and a registry
                // lookup per deployment is not what the benchmarks measure.
                command
                    .args(["--cluster", "kube", "--resolve-digests", "never"])
                    .env("KUBECONFIG", kubeconfig);
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = Self {
            child,
            api: format!("http://{listen}"),
            db,
            log,
        };
        if let Err(e) = server.wait_ready().await {
            let log = server.log.clone();
            let _ = server.stop().await;
            return Err(e.context(format!("shiplog did not start; see {}", log.display())));
        }
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = shiplog_client::Client::new(&self.api, None)?;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("shiplog exited at start with {status}");
            }
            let probe = client.request(reqwest::Method::GET, "/readyz");
            if client.send(probe).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("shiplog was not ready after 90 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops shiplog (SIGTERM, then SIGKILL after 10 s) and drops its database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            // std offers only SIGKILL; a graceful stop lets it close its connections.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .is_err()
            {
                let _ = self.child.kill().await;
            }
        }
        self.db.drop_db().await
    }
}
