//! A PostgreSQL of shiplog's own, for when no database URL is given: a cluster under
//! the data directory, started from the server binaries on the machine, listening only
//! on a Unix socket in that directory, stopped when shiplog stops. A newcomer runs
//! `shiplog serve` and has a ledger that survives restarts without setting anything up.
//!
//! The postmaster is a child of shiplog that receives SIGINT (PostgreSQL's fast
//! shutdown) when shiplog's main thread ends, however it ends, SIGKILL included; a
//! postmaster left behind by an older run is shut down before a new one starts.
//! PostgreSQL refuses to run as root: under root the cluster belongs to, and runs as,
//! the unprivileged `postgres` system user (or `nobody` where there is none).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The database and role the private cluster holds shiplog's ledger in.
const DATABASE: &str = "shiplog";

/// How long a starting cluster may take to accept connections (crash recovery included).
const START_LIMIT: Duration = Duration::from_secs(60);

/// How long a fast shutdown may take before the postmaster is killed.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// Where the server binaries are looked for after `PATH`: the usual distribution
/// layouts, newest major version first.
const BINARY_DIRS: &[&str] = &[
    "/usr/lib/postgresql",  // Debian, Ubuntu: /usr/lib/postgresql/<major>/bin
    "/usr/pgsql",           // RHEL, Fedora (PGDG): /usr/pgsql-<major>/bin
    "/opt/homebrew/opt",    // macOS (Apple silicon): postgresql@<major>/bin
    "/usr/local/opt",       // macOS (Intel)
    "/usr/local/pgsql/bin", // built from source
];

/// Why the private database could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PrivateDbError {
    /// No `initdb`/`postgres` on PATH or in the usual places.
    #[error(
        "no PostgreSQL server binaries (initdb, postgres) found on PATH or under /usr/lib/postgresql: \
         install them (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install \
         postgresql-server; macOS: brew install postgresql) or give --database-url"
    )]
    NoBinaries,
    /// The data directory cannot be created or used.
    #[error("the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// `initdb` or `postgres` could not be run or failed.
    #[error("{what} failed: {detail} (see {log})")]
    Server {
        /// Which step.
        what: &'static str,
        /// What went wrong.
        detail: String,
        /// The log with PostgreSQL's own words.
        log: PathBuf,
    },
    /// Running as root with no unprivileged user to run PostgreSQL as.
    #[error("shiplog runs as root and PostgreSQL refuses to; no user `postgres` or `nobody` exists to run it as")]
    NoUnprivilegedUser,
}

/// The options of the private database.
#[derive(Debug, Clone)]
pub struct PrivateDbOptions {
    /// shiplog's data directory; the cluster lives in `<data_dir>/postgres`.
    pub data_dir: PathBuf,
}

/// The user-specific default data directory: `$XDG_DATA_HOME/shiplog`, else
/// `~/.local/share/shiplog`; for root `/var/lib/shiplog`.
pub fn default_data_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/shiplog");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("shiplog");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/shiplog"),
        None => PathBuf::from(".shiplog"),
    }
}

/// A running private PostgreSQL; shut down (fast) when dropped.
#[derive(Debug)]
pub struct PrivateDatabase {
    child: Option<Child>,
    url: String,
    cluster: PathBuf,
    log: PathBuf,
}

/// The unprivileged account the cluster runs as when shiplog runs as root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl PrivateDatabase {
    /// Starts (creating it on first use) the cluster under `options.data_dir` and waits
    /// until it accepts connections on its socket.
    pub fn start(options: &PrivateDbOptions) -> Result<Self, PrivateDbError> {
        let bin = find_binaries().ok_or(PrivateDbError::NoBinaries)?;
        let run_as = run_as()?;
        let data_dir = absolute(&options.data_dir)?;
        let cluster = data_dir.join("postgres");
        let socket_dir = data_dir.join("run");
        let log = data_dir.join("postgres.log");
        for dir in [&data_dir, &socket_dir] {
            create_dir(dir)?;
        }
        if let Some(user) = run_as {
            give_to(&data_dir, user)?;
            give_to(&socket_dir, user)?;
        }
        if !cluster.join("PG_VERSION").exists() {
            init_cluster(&bin, &cluster, &log, run_as)?;
        }
        stop_orphan(&cluster);
        let child = spawn_postmaster(&bin, &cluster, &socket_dir, &log, run_as)?;
        let url = format!(
            "postgres:///{DATABASE}?host={}&user={DATABASE}",
            socket_dir.display()
        );
        let mut db = Self {
            child: Some(child),
            url,
            cluster,
            log,
        };
        db.await_socket(&socket_dir)?;
        Ok(db)
    }

    /// The URL shiplog connects with (a Unix socket; no TCP port is opened).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the cluster's files are.
    pub fn cluster_dir(&self) -> &Path {
        &self.cluster
    }

    /// Waits until the postmaster has written its socket and is ready (its pid file's
    /// status line says so), or fails with its log's last words.
    fn await_socket(&mut self, socket_dir: &Path) -> Result<(), PrivateDbError> {
        let started = Instant::now();
        let pid_file = self.cluster.join("postmaster.pid");
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(
                        self.failure("starting PostgreSQL", format!("it exited with {status}"))
                    );
                }
            }
            let ready = fs::read_to_string(&pid_file)
                .map(|text| text.lines().nth(7).is_some_and(|l| l.trim() == "ready"))
                .unwrap_or(false);
            if ready && socket_dir.join(".s.PGSQL.5432").exists() {
                return Ok(());
            }
            if started.elapsed() > START_LIMIT {
                return Err(self.failure(
                    "starting PostgreSQL",
                    format!("not ready after {START_LIMIT:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn failure(&self, what: &'static str, detail: String) -> PrivateDbError {
        PrivateDbError::Server {
            what,
            detail: format!("{detail}; {}", last_lines(&self.log)),
            log: self.log.clone(),
        }
    }

    /// Shuts the cluster down (fast: open sessions are ended, nothing committed is lost)
    /// and waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(child.id(), libc::SIGINT);
        let started = Instant::now();
        while started.elapsed() < STOP_LIMIT {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for PrivateDatabase {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The directory holding `initdb` and `postgres`: PATH first, then the usual places
/// (the newest major version there).
fn find_binaries() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|d| has_both(d)) {
            return Some(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    for root in BINARY_DIRS {
        let root = Path::new(root);
        if has_both(root) {
            found.push((0, root.to_path_buf()));
            continue;
        }
        let Some(parent) = root.parent() else {
            continue;
        };
        let prefix = root
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        for base in [root, parent] {
            let Ok(entries) = fs::read_dir(base) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let version = name
                    .trim_start_matches(prefix)
                    .trim_start_matches(['-', '@'])
                    .trim_start_matches("postgresql")
                    .trim_start_matches(['-', '@'])
                    .split('.')
                    .next()
                    .and_then(|v| v.parse::<u32>().ok());
                let dir = entry.path().join("bin");
                if let Some(version) = version.filter(|_| has_both(&dir)) {
                    found.push((version, dir));
                }
            }
        }
    }
    found.sort();
    found.pop().map(|(_, dir)| dir)
}

/// Who the cluster runs as: shiplog's own user, or under root an unprivileged one.
fn run_as() -> Result<Option<RunAs>, PrivateDbError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Some(user) = lookup_user(name) {
            return Ok(Some(user));
        }
    }
    Err(PrivateDbError::NoUnprivilegedUser)
}

fn lookup_user(name: &str) -> Option<RunAs> {
    let name = CString::new(name).ok()?;
    // SAFETY: `name` is a valid C string; getpwnam returns null or a pointer to a static
    // record that is read at once, before any other call could overwrite it.
    let record = unsafe { libc::getpwnam(name.as_ptr()) };
    if record.is_null() {
        return None;
    }
    // SAFETY: non-null, so it points to a valid passwd record (see above).
    let (uid, gid) = unsafe { ((*record).pw_uid, (*record).pw_gid) };
    (uid != 0).then_some(RunAs { uid, gid })
}

fn absolute(path: &Path) -> Result<PathBuf, PrivateDbError> {
    std::path::absolute(path).map_err(|source| PrivateDbError::DataDir {
        path: path.to_path_buf(),
        source,
    })
}

fn create_dir(dir: &Path) -> Result<(), PrivateDbError> {
    let made = fs::create_dir_all(dir)
        .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(0o700)));
    made.map_err(|source| PrivateDbError::DataDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// Hands a directory to the user PostgreSQL runs as (under root).
fn give_to(dir: &Path, user: RunAs) -> Result<(), PrivateDbError> {
    std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid)).map_err(|source| {
        PrivateDbError::DataDir {
            path: dir.to_path_buf(),
            source,
        }
    })
}

/// A command that runs as `user` when given, with PostgreSQL's output in `log`.
fn command(program: PathBuf, log: &Path, user: Option<RunAs>) -> Result<Command, PrivateDbError> {
    let open = || {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| PrivateDbError::DataDir {
                path: log.to_path_buf(),
                source,
            })
    };
    let mut command = Command::new(program);
    command
        .stdin(Stdio::null())
        .stdout(open()?)
        .stderr(open()?)
        // Locale-independent messages and a predictable environment.
        .env("LC_ALL", "C")
        .env_remove("PGDATA");
    if let Some(user) = user {
        command.uid(user.uid).gid(user.gid);
        // Its home may not be readable by that user; the data directory is.
        if let Some(dir) = log.parent() {
            command.current_dir(dir);
        }
    }
    Ok(command)
}

fn init_cluster(
    bin: &Path,
    cluster: &Path,
    log: &Path,
    user: Option<RunAs>,
) -> Result<(), PrivateDbError> {
    let status = command(bin.join("initdb"), log, user)?
        .arg("-D")
        .arg(cluster)
        .args(["-U", DATABASE, "--auth=trust", "-E", "UTF8", "--locale=C"])
        .status()
        .map_err(|e| PrivateDbError::Server {
            what: "initdb",
            detail: e.to_string(),
            log: log.to_path_buf(),
        })?;
    if !status.success() {
        return Err(PrivateDbError::Server {
            what: "initdb",
            detail: format!("it exited with {status}; {}", last_lines(log)),
            log: log.to_path_buf(),
        });
    }
    Ok(())
}

/// Starts the postmaster as a child that gets SIGINT (fast shutdown) when this thread
/// ends: a shiplog killed outright leaves no database behind.
fn spawn_postmaster(
    bin: &Path,
    cluster: &Path,
    socket_dir: &Path,
    log: &Path,
    user: Option<RunAs>,
) -> Result<Child, PrivateDbError> {
    let mut command = command(bin.join("postgres"), log, user)?;
    command
        .arg("-D")
        .arg(cluster)
        .arg("-k")
        .arg(socket_dir)
        .args([
            "-c",
            "listen_addresses=",
            "-c",
            "unix_socket_permissions=0700",
        ]);
    // SAFETY: prctl is async-signal-safe, which is all a pre_exec closure may call. It
    // runs after the uid change (which would clear the setting), just before exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().map_err(|e| PrivateDbError::Server {
        what: "starting PostgreSQL",
        detail: e.to_string(),
        log: log.to_path_buf(),
    })
}

/// Shuts down a postmaster an earlier run left (its pid file names a live process of
/// that cluster), so that the new one can start.
fn stop_orphan(cluster: &Path) {
    let Ok(text) = fs::read_to_string(cluster.join("postmaster.pid")) else {
        return;
    };
    let Some(pid) = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
    else {
        return;
    };
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !String::from_utf8_lossy(&cmdline).contains("postgres") {
        return; // gone (a stale file PostgreSQL handles itself), or the pid was reused
    }
    signal(pid as u32, libc::SIGINT);
    let started = Instant::now();
    while started.elapsed() < STOP_LIMIT && Path::new(&format!("/proc/{pid}")).exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions; a failure (no such process)
        // is harmless here.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// The end of the log, for an error message.
fn last_lines(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    if lines.is_empty() {
        return "PostgreSQL wrote nothing".to_owned();
    }
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}
