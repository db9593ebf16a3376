//! The shiplog server under test, as a child process, and the open-file limit ten
//! thousand streams need.

use crate::{Args, TOKEN};
use anyhow::{bail, Context};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Ten thousand streams need twenty thousand sockets between the two processes:
/// lift the soft limit on open files to the hard one (the server inherits it).
pub(crate) fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    eprintln!("open files: {}", limit.rlim_cur);
}

/// The shiplog server under test, a child process; killed when dropped.
pub(crate) struct ShiplogProcess {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) addr: String,
}

impl Drop for ShiplogProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ShiplogProcess {
    pub(crate) fn start(args: &Args, database_url: &str) -> anyhow::Result<Self> {
        let binary = match &args.shiplog {
            Some(path) => path.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("the directory of this program")?
                .join("shiplog"),
        };
        if !binary.exists() {
            bail!(
                "{} not found: build it first (cargo build --release -p shiplog-api --bin shiplog) or pass --shiplog",
                binary.display()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut command = Command::new(&binary);
        command
            .arg("serve")
            .args(["--cluster", "none", "--listen", &addr])
            .args(["--proxy-listen", "127.0.0.1:0"])
            .args(["--database-url", database_url])
            .args(["--admin-token", TOKEN])
            // Every subscriber speaks with the one admin token.
            .args(["--max-streams-per-token", "1000000"])
            .args(&args.server_args)
            .env("SHIPLOG_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for pair in &args.server_env {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--server-env {pair}: expected KEY=VALUE"))?;
            command.env(key, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        eprintln!("server: {} (pid {})", binary.display(), child.id());
        Ok(Self {
            child,
            base: format!("http://{addr}"),
            addr,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory, in KiB.
    pub(crate) fn rss_kb(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("VmRSS")
    }

    /// User plus system CPU time of every thread so far, in seconds.
    pub(crate) fn cpu_s(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // The command name (field 2) may hold spaces: count fields after its ')'.
        let rest = stat.rsplit_once(')').context("stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = fields.get(11).context("utime")?.parse::<f64>()?
            + fields.get(12).context("stime")?.parse::<f64>()?;
        // SAFETY: sysconf reads a constant of the system.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok(ticks / per_second)
    }

    /// Waits until the server's `shiplog_sse_subscribers` gauge reads `n`.
    pub(crate) async fn await_subscribers(
        &self,
        client: &reqwest::Client,
        n: usize,
        limit: Duration,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let text = client
                .get(format!("{}/metrics", self.base))
                .send()
                .await?
                .text()
                .await?;
            let now = text
                .lines()
                .find_map(|l| l.strip_prefix("shiplog_sse_subscribers "))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if now == Some(n) {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                bail!("the server still counts {now:?} subscribers, not {n}, after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
