//! The shiplog processes under test: one or more `shiplog serve` sharing one database and
//! the simulated cluster, each on a fixed port so that clients keep their base URL across
//! restarts, and the killer that SIGKILLs one of them at random moments and starts it again.

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::Rng;
use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

/// The bootstrap admin token of every process of the run.
pub const ADMIN_TOKEN: &str = "chaos-admin-token-0123456789";
/// The namespace every process puts its objects in.
pub const NAMESPACE: &str = "chaos";
/// What the process manager's leader logs once each time it takes the lead.
const LEADS: &str = "process manager: this process leads";

/// How the processes are started.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The `shiplog` binary.
    pub binary: PathBuf,
    /// The database all of them share.
    pub database_url: String,
    /// The simulator's kubeconfig.
    pub kubeconfig: PathBuf,
    /// Where each process's log goes (`replica-<n>.log`, appended across restarts).
    pub logs: PathBuf,
}

/// One process slot: a fixed port, the running child if any, and what happened to it.
struct Slot {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
    kills: usize,
}

/// Counts of what the killer did, for the summary.
#[derive(Debug, Default, Clone)]
pub struct KillStats {
    /// SIGKILLs sent, per slot.
    pub kills: Vec<usize>,
    /// Processes that ended without being killed (a crash: a violation).
    pub crashes: Vec<String>,
    /// How often a process took the lead of the process manager, over all logs.
    pub leads: usize,
}

/// The processes of the run.
pub struct Fleet {
    launch: Launch,
    slots: Mutex<Vec<Slot>>,
    /// How many slots are in use: 1 until the replica part of the run starts.
    active: AtomicUsize,
    crashes: std::sync::Mutex<Vec<String>>,
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Fleet {
    /// `slots` process slots (ports chosen now); none is started yet.
    pub fn new(launch: Launch, slots: usize) -> anyhow::Result<Arc<Self>> {
        let slots = (0..slots.max(1))
            .map(|n| {
                Ok(Slot {
                    port: free_port()?,
                    child: None,
                    log: launch.logs.join(format!("replica-{n}.log")),
                    kills: 0,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Arc::new(Self {
            launch,
            slots: Mutex::new(slots),
            active: AtomicUsize::new(0),
            crashes: std::sync::Mutex::new(Vec::new()),
        }))
    }

    /// The API base URLs of the slots in use.
    pub async fn urls(&self) -> Vec<String> {
        let active = self.active.load(Ordering::SeqCst).max(1);
        self.slots
            .lock()
            .await
            .iter()
            .take(active)
            .map(|s| format!("http://127.0.0.1:{}", s.port))
            .collect()
    }

    /// Puts `n` slots in use, starting those not running, and waits until each answers
    /// `/readyz`.
    pub async fn activate(&self, n: usize) -> anyhow::Result<()> {
        let mut slots = self.slots.lock().await;
        let n = n.clamp(1, slots.len());
        for (k, slot) in slots.iter_mut().enumerate().take(n) {
            if slot.child.is_none() {
                slot.child =
                    Some(spawn(&self.launch, slot).with_context(|| format!("replica {k}"))?);
            }
        }
        self.active.store(n, Ordering::SeqCst);
        let ports: Vec<u16> = slots.iter().take(n).map(|s| s.port).collect();
        drop(slots);
        for port in ports {
            wait_ready(port).await?;
        }
        Ok(())
    }

    /// Starts every slot in use that is not running (after the last kill) and waits
    /// until all answer `/readyz`.
    pub async fn restore(&self) -> anyhow::Result<()> {
        self.reap().await;
        self.activate(self.active.load(Ordering::SeqCst)).await
    }

    /// Records a process that ended without being killed, and forgets its child.
    async fn reap(&self) {
        let mut slots = self.slots.lock().await;
        for (k, slot) in slots.iter_mut().enumerate() {
            let Some(child) = slot.child.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                self.crashes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!(
                        "replica {k} exited by itself ({status}); see {}",
                        slot.log.display()
                    ));
                slot.child = None;
            }
        }
    }

    /// SIGKILLs the process of slot `k` (if it runs) and waits for it to be gone.
    async fn kill(&self, k: usize) {
        let mut slots = self.slots.lock().await;
        if let Some(slot) = slots.get_mut(k) {
            if let Some(mut child) = slot.child.take() {
                // tokio's kill is SIGKILL: no chance to close anything gracefully.
                let _ = child.kill().await;
                slot.kills += 1;
            }
        }
    }

    /// Starts slot `k` again if it is not running; does not wait for it to be ready (a
    /// kill during start-up is one more kill point).
    async fn start(&self, k: usize) -> anyhow::Result<()> {
        let mut slots = self.slots.lock().await;
        if let Some(slot) = slots.get_mut(k) {
            if slot.child.is_none() {
                slot.child = Some(spawn(&self.launch, slot)?);
            }
        }
        Ok(())
    }

    /// Kills one process in use at a random moment (a pause of 0.3 to 1.7 times `every`),
    /// keeps it down for up to half a second, starts it again, until `stop` is set.
    pub async fn killer(&self, mut rng: StdRng, every: Duration, stop: &AtomicBool) {
        let pause = |rng: &mut StdRng| every.mul_f64(rng.gen_range(0.3..1.7));
        loop {
            let wait = pause(&mut rng);
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.reap().await;
            let active = self.active.load(Ordering::SeqCst).max(1);
            // A process that ended by itself (reaped above) is started again too.
            for k in 0..active {
                if let Err(e) = self.start(k).await {
                    self.crashes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("replica {k} could not be started again: {e:#}"));
                }
            }
            let victim = rng.gen_range(0..active);
            self.kill(victim).await;
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..500))).await;
            if let Err(e) = self.start(victim).await {
                self.crashes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!(
                        "replica {victim} could not be started again: {e:#}"
                    ));
            }
        }
    }

    /// What the killer did, and what the processes' logs say about leading.
    pub async fn stats(&self) -> KillStats {
        self.reap().await;
        let slots = self.slots.lock().await;
        KillStats {
            kills: slots.iter().map(|s| s.kills).collect(),
            crashes: self
                .crashes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            leads: slots
                .iter()
                .map(|s| {
                    std::fs::read_to_string(&s.log)
                        .unwrap_or_default()
                        .matches(LEADS)
                        .count()
                })
                .sum(),
        }
    }

    /// Stops every process gracefully (SIGTERM, then SIGKILL after 10 s).
    pub async fn stop(&self) {
        let mut slots = self.slots.lock().await;
        for slot in slots.iter_mut() {
            if let Some(mut child) = slot.child.take() {
                terminate(&mut child).await;
            }
        }
    }
}

/// Starts `shiplog serve` for `slot`, its output appended to the slot's log.
fn spawn(launch: &Launch, slot: &Slot) -> anyhow::Result<Child> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&slot.log)
        .with_context(|| format!("opening {}", slot.log.display()))?;
    let child = Command::new(&launch.binary)
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{}", slot.port)])
        .args(["--proxy-listen", "127.0.0.1:0"])
        // The simulator outside the process keeps the cluster's state across kills.
        .args(["--cluster", "kube", "--resolve-digests", "never"])
        .args(["--namespace", NAMESPACE])
        .args(["--rollout-timeout", "60"])
        .args(["--database-url", &launch.database_url])
        .env("SHIPLOG_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("KUBECONFIG", &launch.kubeconfig)
        .env("SHIPLOG_LOG", "info,sqlx=warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", launch.binary.display()))?;
    Ok(child)
}

/// Waits until the process on `port` answers `/readyz` 200 (at most 60 s).
async fn wait_ready(port: u16) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = http.get(&url).timeout(Duration::from_secs(2)).send().await {
            if response.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("shiplog on port {port} was not ready after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM (std offers only SIGKILL), then SIGKILL if it is still there after 10 s.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

/// The directory for this run's logs, created.
pub fn log_dir(given: Option<&Path>, seed: u64) -> anyhow::Result<PathBuf> {
    let dir = match given {
        Some(dir) => dir.to_path_buf(),
        None => std::env::temp_dir().join(format!(
            "shiplog-chaos-{seed}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S")
        )),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
