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
    /// The cluster was made by a major version whose binaries are not installed.
    #[error(
        "the private database was created by PostgreSQL {major}, whose server binaries are not \
         installed (found: {found:?}); install them (Debian: apt-get install postgresql-{major}) or \
         upgrade the cluster with pg_upgrade"
    )]
    WrongMajor {
        /// The cluster's major version.
        major: u32,
        /// The majors found.
        found: Vec<u32>,
    },
    /// Another shiplog uses the data directory (one data directory, one shiplog).
    #[error(
        "the data directory {path} is in use by another shiplog{}; one data directory serves one \
         shiplog (give another --data-dir, or --database-url to share a database)",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    InUse {
        /// The directory.
        path: PathBuf,
        /// The holder's pid, as it wrote it.
        holder: Option<u32>,
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
    /// The data directory's lock, held as long as this database runs.
    _lock: fs::File,
}

/// The unprivileged account the cluster runs as when shiplog runs as root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl PrivateDatabase {
    /// Starts (creating it on first use) the cluster under `options.data_dir` and waits
    /// until it accepts connections on its socket. Call it from a thread that lives as
    /// long as the database should (the main thread): the postmaster is told to stop when
    /// the thread that started it ends.
    pub fn start(options: &PrivateDbOptions) -> Result<Self, PrivateDbError> {
        let run_as = run_as()?;
        let data_dir = absolute(&options.data_dir)?;
        let cluster = data_dir.join("postgres");
        let socket_dir = data_dir.join("run");
        let log = data_dir.join("postgres.log");
        for dir in [&data_dir, &socket_dir] {
            create_dir(dir)?;
        }
        let lock = lock_data_dir(&data_dir)?;
        let bin = find_binaries(&cluster)?;
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
            _lock: lock,
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
            // The pid file and socket of an earlier postmaster killed outright stay behind:
            // only this postmaster's own file, saying ready, counts.
            let own = self.child.as_ref().map(Child::id);
            let ready = fs::read_to_string(&pid_file)
                .map(|text| {
                    let mut lines = text.lines();
                    lines.next().and_then(|l| l.trim().parse::<u32>().ok()) == own
                        && lines.nth(6).is_some_and(|l| l.trim() == "ready")
                })
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

/// The directory holding `initdb` and `postgres` to run `cluster` with: for an existing
/// cluster the binaries of its own major version (a newer major cannot open its files),
/// else the newest found; PATH first among equals, then the usual places.
fn find_binaries(cluster: &Path) -> Result<PathBuf, PrivateDbError> {
    let candidates = binary_candidates();
    if candidates.is_empty() {
        return Err(PrivateDbError::NoBinaries);
    }
    let wanted = fs::read_to_string(cluster.join("PG_VERSION"))
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok());
    match wanted {
        Some(major) => candidates
            .iter()
            .find(|(version, _)| *version == Some(major))
            .map(|(_, dir)| dir.clone())
            .ok_or(PrivateDbError::WrongMajor {
                major,
                found: candidates.iter().filter_map(|(v, _)| *v).collect(),
            }),
        None => {
            let newest = candidates.iter().map(|(v, _)| *v).max().flatten();
            Ok(candidates
                .iter()
                .find(|(v, _)| *v == newest)
                .map_or_else(|| candidates[0].1.clone(), |(_, dir)| dir.clone()))
        }
    }
}

/// Every directory with both server binaries, with its major version (from
/// `postgres --version`), PATH's first.
fn binary_candidates() -> Vec<(Option<u32>, PathBuf)> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .filter(|d| has_both(d))
                .collect()
        })
        .unwrap_or_default();
    for root in BINARY_DIRS {
        let root = Path::new(root);
        if has_both(root) {
            dirs.push(root.to_path_buf());
            continue;
        }
        let Some(parent) = root.parent() else {
            continue;
        };
        for base in [root, parent] {
            let Ok(entries) = fs::read_dir(base) else {
                continue;
            };
            dirs.extend(
                entries
                    .flatten()
                    .map(|e| e.path().join("bin"))
                    .filter(|d| has_both(d)),
            );
        }
    }
    let mut seen = Vec::new();
    dirs.retain(|d| {
        let key = fs::canonicalize(d).unwrap_or_else(|_| d.clone());
        let new = !seen.contains(&key);
        seen.push(key);
        new
    });
    dirs.into_iter().map(|d| (major_of(&d), d)).collect()
}

/// The major version of the server in `dir` ("postgres (PostgreSQL) 15.19" -> 15).
fn major_of(dir: &Path) -> Option<u32> {
    let output = Command::new(dir.join("postgres"))
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .last()?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
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

/// Shuts down a postmaster an earlier run of this data directory left (the caller
/// holds the directory's lock, so no running shiplog owns it): its pid file names a
/// live process whose working directory is this cluster, as a postmaster's is. A pid
/// reused by anything else is left alone.
fn stop_orphan(cluster: &Path) {
    let Ok(text) = fs::read_to_string(cluster.join("postmaster.pid")) else {
        return;
    };
    let Some(pid) = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<u32>().ok())
    else {
        return;
    };
    let cwd = fs::read_link(format!("/proc/{pid}/cwd")).ok();
    let own_cluster = fs::canonicalize(cluster).ok();
    if cwd.is_none() || cwd != own_cluster {
        return; // gone (a stale file PostgreSQL handles itself), or the pid was reused
    }
    signal(pid, libc::SIGINT);
    let started = Instant::now();
    while started.elapsed() < STOP_LIMIT && Path::new(&format!("/proc/{pid}/cwd")).exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Takes the data directory's lock (`<data-dir>/lock`, holding the holder's pid), or
/// says who holds it.
fn lock_data_dir(data_dir: &Path) -> Result<fs::File, PrivateDbError> {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;
    let path = data_dir.join("lock");
    let failed = |source: io::Error| PrivateDbError::DataDir {
        path: path.clone(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(failed)?;
    // SAFETY: flock on a descriptor this function owns; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(PrivateDbError::InUse {
            path: data_dir.to_path_buf(),
            holder: holder.trim().parse().ok(),
        });
    }
    file.set_len(0).map_err(failed)?;
    file.rewind().map_err(failed)?;
    writeln!(file, "{}", std::process::id()).map_err(failed)?;
    Ok(file)
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
