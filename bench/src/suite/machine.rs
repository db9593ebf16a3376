//! What the run ran on, read at the run: cores, memory, CPU, kernel, PostgreSQL,
//! the commit, and the load average (a noisy machine shows there).

use sqlx::{Connection, PgConnection};
use std::path::Path;

/// The machine and the code of a run.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Cores available to this process (what `nproc` says).
    pub nproc: usize,
    /// Total memory in GiB.
    pub mem_gib: f64,
    /// The CPU's model name.
    pub cpu: String,
    /// The kernel release.
    pub kernel: String,
    /// PostgreSQL's `server_version`.
    pub postgres: String,
    /// The commit, and whether the work tree had uncommitted changes.
    pub git: String,
    /// `/proc/loadavg`'s 1, 5 and 15-minute figures.
    pub loadavg: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Machine {
    /// Reads everything; what cannot be read is "unknown".
    pub async fn read(pg: &str, workspace: &Path) -> Self {
        let meminfo = read("/proc/meminfo");
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let postgres = match PgConnection::connect(&format!("{pg}/postgres")).await {
            Ok(mut conn) => sqlx::query_scalar::<_, String>("SHOW server_version")
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| format!("unknown ({e})")),
            Err(e) => format!("unreachable ({e})"),
        };
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .current_dir(workspace)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        };
        let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
        let dirty =
            git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        Self {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            mem_gib: mem_kib / 1024.0 / 1024.0,
            cpu,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            postgres,
            git: if dirty {
                format!("{commit} plus uncommitted changes in the work tree")
            } else {
                commit
            },
            loadavg: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// One line for the terminal.
    pub fn describe(&self) -> String {
        format!(
            "machine: nproc {}, {:.1} GiB memory, {}, Linux {}, PostgreSQL {}; code: {}",
            self.nproc, self.mem_gib, self.cpu, self.kernel, self.postgres, self.git
        )
    }

    /// A Markdown list.
    pub fn markdown(&self) -> String {
        format!(
            "- `nproc`: {}\n- Memory: {:.1} GiB\n- CPU: {}\n- Kernel: Linux {}\n- PostgreSQL: {}\n- Code: {}\n",
            self.nproc, self.mem_gib, self.cpu, self.kernel, self.postgres, self.git
        )
    }
}
