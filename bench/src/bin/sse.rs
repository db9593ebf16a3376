//! `sse`: what live event streams (`GET /api/events/stream`) cost the server.
//!
//! Runs the `shiplog` binary (`serve --cluster none`) on a database of its own,
//! then for each subscriber count N opens N streams from this process (plain TCP
//! and a minimal HTTP/1.1 reader, so that ten thousand clients stay cheap), and
//! measures from outside the server process:
//!
//! - its resident memory (`VmRSS` of `/proc/<pid>/status`) before, with N
//!   connected, and after they disconnected;
//! - the CPU time it spent while the N connected (`utime + stime` of
//!   `/proc/<pid>/stat`, what `getrusage` would report inside it);
//! - the delivery latency of events written one at a time while N listen: from
//!   the event's `recordedAt` (its writing transaction's start, so the commit is
//!   included) to the moment a subscriber read it, over every subscriber;
//! - the write path (`POST /api/usecases/{id}/deployments`) p50/p99 at the counts
//!   in `--write-at`, and how many answers were not 202;
//! - that every subscriber received every event written while it listened, in order.
//!
//! Prints one JSON object per measurement on its own line (`"measure": "sse"`,
//! `"sse_write"` or `"sse_churn"`), then a table. Numbers, not assertions.
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-sse cargo build --release -p shiplog-api --bin shiplog -p shiplog-bench --bin sse
//! /work/target-sse/release/sse
//! ```

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::json;
use shiplog_client::wire::ledger::{EventPage, EventsQuery};
use shiplog_client::wire::usecases::{
    CreateDeployment, CreateUsecase, DeploymentConfigBody, ImageBody,
};
use shiplog_client::Client;
use sqlx::{Connection, PgConnection};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// PostgreSQL server (a database `shiplog_bench_sse_<random>` is created and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    server: String,
    /// The shiplog binary to measure (default: `shiplog` beside this program).
    #[arg(long)]
    shiplog: Option<PathBuf>,
    /// Subscriber counts to measure, in this order.
    #[arg(long, value_delimiter = ',', default_value = "0,100,1000,5000,10000")]
    subscribers: Vec<usize>,
    /// Events written one at a time while each count listens (delivery latency).
    #[arg(long, default_value_t = 50)]
    events: usize,
    /// Pause between two of those events, in milliseconds.
    #[arg(long, default_value_t = 40)]
    pace_ms: u64,
    /// Subscriber counts at which the write path is measured.
    #[arg(long, value_delimiter = ',', default_value = "0,5000")]
    write_at: Vec<usize>,
    /// POSTs of one write-path measurement.
    #[arg(long, default_value_t = 1000)]
    writes: usize,
    /// Write-path POSTs in flight at once (each on a usecase of its own).
    #[arg(long, default_value_t = 8)]
    write_concurrency: usize,
    /// Rounds of connecting and disconnecting 1000 subscribers at the end, to see
    /// whether the memory comes back.
    #[arg(long, default_value_t = 3)]
    churn_rounds: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 100)]
    connect_concurrency: usize,
    /// Extra environment of the server, `KEY=VALUE` (e.g. `MALLOC_ARENA_MAX=2`); repeatable.
    #[arg(long = "server-env")]
    server_env: Vec<String>,
    /// Extra arguments of `shiplog serve` (e.g. `--sse-buffer=8192`); repeatable.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// How long to wait for every subscriber to receive every event.
    #[arg(long, default_value_t = 120)]
    deliver_timeout_s: u64,
}

const TOKEN: &str = "bench-admin-token-0123456789";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    raise_open_files();
    let name = format!("shiplog_bench_sse_{}", Uuid::new_v4().simple());
    let url = format!("{}/{name}", args.server);
    let result = run(&args, &url).await;
    let mut conn = PgConnection::connect(&format!("{}/postgres", args.server)).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    result
}

/// Ten thousand streams need twenty thousand sockets between the two processes:
/// lift the soft limit on open files to the hard one (the server inherits it).
fn raise_open_files() {
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
struct ShiplogProcess {
    child: Child,
    base: String,
    addr: String,
}

impl Drop for ShiplogProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ShiplogProcess {
    fn start(args: &Args, database_url: &str) -> anyhow::Result<Self> {
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

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory, in KiB.
    fn rss_kb(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("VmRSS")
    }

    /// User plus system CPU time of every thread so far, in seconds.
    fn cpu_s(&self) -> anyhow::Result<f64> {
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
    async fn await_subscribers(
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

/// What one subscriber received: each event's cursor and when it was read.
#[derive(Default)]
struct Log {
    events: Vec<(u128, i64)>,
    overflow: bool,
    error: Option<String>,
    ended: bool,
}

/// One open stream, read by a task of its own until aborted.
struct Subscriber {
    log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Decodes `Transfer-Encoding: chunked` incrementally.
#[derive(Default)]
struct Chunked {
    state: ChunkState,
    line: Vec<u8>,
}

#[derive(Default)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    DataEnd,
    Done,
}

impl Chunked {
    /// Appends the payload in `input` to `out`.
    fn decode(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> anyhow::Result<()> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size => {
                    let Some(nl) = input.iter().position(|b| *b == b'\n') else {
                        self.line.extend_from_slice(input);
                        return Ok(());
                    };
                    self.line.extend_from_slice(&input[..nl]);
                    input = &input[nl + 1..];
                    let text = std::str::from_utf8(&self.line)?.trim();
                    let hex = text.split(';').next().unwrap_or_default();
                    let size = usize::from_str_radix(hex, 16)
                        .with_context(|| format!("chunk size {text:?}"))?;
                    self.line.clear();
                    self.state = if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    let n = left.min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.state = if n == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - n)
                    };
                }
                ChunkState::DataEnd => {
                    let Some(nl) = input.iter().position(|b| *b == b'\n') else {
                        return Ok(());
                    };
                    input = &input[nl + 1..];
                    self.state = ChunkState::Size;
                }
                ChunkState::Done => return Ok(()),
            }
        }
        Ok(())
    }
}

/// Opens one stream; `ready` is signalled once its opening `id:` message arrived.
async fn subscribe(
    addr: String,
    log: Arc<Mutex<Log>>,
    ready: tokio::sync::oneshot::Sender<anyhow::Result<()>>,
) {
    let mut ready = Some(ready);
    let result = read_stream(&addr, &log, &mut ready).await;
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    log.ended = true;
    if let Err(e) = result {
        log.error = Some(e.to_string());
        if let Some(ready) = ready.take() {
            let _ = ready.send(Err(e));
        }
    } else if let Some(ready) = ready.take() {
        let _ = ready.send(Err(anyhow::anyhow!("the stream ended before it started")));
    }
}

async fn read_stream(
    addr: &str,
    log: &Mutex<Log>,
    ready: &mut Option<tokio::sync::oneshot::Sender<anyhow::Result<()>>>,
) -> anyhow::Result<()> {
    let mut socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let request = format!(
        "GET /api/events/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut head = Vec::new();
    let mut body = Vec::new();
    let mut chunked = None;
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let at = now_micros();
        let input = &buf[..n];
        match chunked.as_mut() {
            None => {
                head.extend_from_slice(input);
                let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
                if !text.starts_with("http/1.1 200") {
                    bail!(
                        "answered {}",
                        text.lines().next().unwrap_or_default().to_owned()
                    );
                }
                if !text.contains("transfer-encoding: chunked") {
                    bail!("not chunked: {text}");
                }
                let mut decoder = Chunked::default();
                decoder.decode(&head[end + 4..], &mut body)?;
                chunked = Some(decoder);
                head = Vec::new();
            }
            Some(decoder) => decoder.decode(input, &mut body)?,
        }
        // Whole messages end with an empty line.
        let mut consumed = 0;
        while let Some(end) = body[consumed..].windows(2).position(|w| w == b"\n\n") {
            let block = &body[consumed..consumed + end];
            consumed += end + 2;
            let mut id = None;
            let mut event = None;
            for line in block.split(|b| *b == b'\n') {
                if let Some(v) = line.strip_prefix(b"id: ") {
                    id = Some(v);
                } else if let Some(v) = line.strip_prefix(b"event: ") {
                    event = Some(v);
                }
            }
            match (id, event) {
                (Some(_), None) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                }
                (_, Some(b"overflow")) => {
                    log.lock().unwrap_or_else(|e| e.into_inner()).overflow = true;
                }
                (Some(id), Some(_)) => {
                    let cursor = u128::from_str_radix(std::str::from_utf8(id)?, 16)?;
                    log.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .events
                        .push((cursor, at));
                }
                _ => {}
            }
        }
        body.drain(..consumed);
    }
}

/// Opens `n` streams, `concurrency` at a time; returns once each has started.
async fn connect(addr: &str, n: usize, concurrency: usize) -> anyhow::Result<Vec<Subscriber>> {
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut pending = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = gate.clone().acquire_owned().await?;
        let log = Arc::new(Mutex::new(Log::default()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(subscribe(addr.to_owned(), log.clone(), tx));
        let waiter = tokio::spawn(async move {
            let started = rx.await;
            drop(permit);
            started
        });
        pending.push((Subscriber { log, task }, waiter));
    }
    let mut subscribers = Vec::with_capacity(n);
    let mut failed = 0;
    let mut first_error = None;
    for (subscriber, waiter) in pending {
        match waiter.await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
            _ => {
                failed += 1;
            }
        }
        subscribers.push(subscriber);
    }
    if failed > 0 {
        bail!("{failed} of {n} streams did not start: {first_error:?}");
    }
    Ok(subscribers)
}

fn disconnect(subscribers: Vec<Subscriber>) -> Vec<Arc<Mutex<Log>>> {
    subscribers
        .into_iter()
        .map(|s| {
            s.task.abort();
            s.log
        })
        .collect()
}

/// Parses a cursor as the API shows it (32 hex digits).
fn cursor(text: &str) -> anyhow::Result<u128> {
    Ok(u128::from_str_radix(text, 16)?)
}

/// The API client of the bench (POSTs and reads), not the subscribers: shiplog's typed
/// client.
struct Api {
    client: Client,
}

impl Api {
    async fn create_usecase(&self, name: &str) -> anyhow::Result<String> {
        let body = CreateUsecase {
            name: name.to_owned(),
            description: Some("bench".to_owned()),
        };
        let created = self
            .client
            .create_usecase(&body, None)
            .await
            .with_context(|| format!("creating {name}"))?;
        Ok(created.id.to_string())
    }

    /// Requests a deployment; the HTTP status it was answered with (0: no answer).
    async fn deploy(&self, usecase: &str, tag: &str) -> anyhow::Result<u16> {
        let usecase: Uuid = usecase.parse()?;
        let body = CreateDeployment {
            config: DeploymentConfigBody {
                image: ImageBody {
                    registry: "registry.example.com".to_owned(),
                    repository: "team/app".to_owned(),
                    tag: tag.to_owned(),
                    digest: None,
                },
                service_monitor: None,
                container_port: None,
                env: None,
                replicas: None,
                resources: None,
            },
        };
        Ok(match self.client.deploy(usecase, &body).await {
            Ok(_) => 202,
            Err(e) => e.status().unwrap_or(0),
        })
    }

    /// The cursor of the newest event.
    async fn newest(&self) -> anyhow::Result<u128> {
        let mut after: Option<String> = None;
        let mut newest = 0;
        loop {
            let page = self.page(after.clone()).await?;
            if let Some(last) = page.items.last() {
                newest = cursor(&last.cursor)?;
            }
            match page.next_cursor {
                Some(next) => after = Some(next),
                None => return Ok(newest),
            }
        }
    }

    /// Every event after `after`: cursor and `recordedAt` in microseconds since the epoch.
    async fn events_after(&self, after: u128) -> anyhow::Result<Vec<(u128, i64)>> {
        let mut after = format!("{after:032x}");
        let mut events = Vec::new();
        loop {
            let page = self.page(Some(after)).await?;
            for item in &page.items {
                let at = chrono::DateTime::parse_from_rfc3339(&item.recorded_at)?;
                events.push((cursor(&item.cursor)?, at.timestamp_micros()));
            }
            match page.next_cursor {
                Some(next) => after = next,
                None => return Ok(events),
            }
        }
    }

    async fn page(&self, after: Option<String>) -> anyhow::Result<EventPage> {
        let query = EventsQuery {
            usecase: None,
            types: None,
            actor: None,
            from: None,
            to: None,
            after,
            limit: Some(200),
        };
        self.client.events(&query).await.context("/api/events")
    }
}

/// The `q` quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Writes `writes` deployments, `concurrency` at a time (one usecase each); returns
/// each POST's latency in ms and how many were answered other than 202.
async fn write_path(
    api: &Arc<Api>,
    usecases: &[String],
    writes: usize,
) -> anyhow::Result<(Vec<f64>, usize, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for usecase in usecases {
        let (api, next, usecase) = (api.clone(), next.clone(), usecase.clone());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            let (mut unavailable, mut other) = (0, 0);
            while next.fetch_add(1, Ordering::SeqCst) < writes {
                let started = Instant::now();
                match api.deploy(&usecase, "w").await {
                    Ok(202) => {}
                    Ok(503) => unavailable += 1,
                    _ => other += 1,
                }
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            (times, unavailable, other)
        }));
    }
    let mut times = Vec::new();
    let (mut unavailable, mut other) = (0, 0);
    for task in tasks {
        let (t, u, o) = task.await?;
        times.extend(t);
        unavailable += u;
        other += o;
    }
    times.sort_by(f64::total_cmp);
    Ok((times, unavailable, other))
}

/// Waits until every subscriber read `expected` events (or the time is up).
async fn await_delivery(logs: &[Arc<Mutex<Log>>], expected: usize, limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        let done = logs.iter().all(|l| {
            let log = l.lock().unwrap_or_else(|e| e.into_inner());
            log.events.len() >= expected || log.ended
        });
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Compares what each subscriber received with `expected` (cursor, recordedAt):
/// (subscribers that got all of them in order, delivery latencies in ms, the first problem).
fn check(logs: &[Arc<Mutex<Log>>], expected: &[(u128, i64)]) -> (usize, Vec<f64>, Option<String>) {
    let recorded: HashMap<u128, i64> = expected.iter().copied().collect();
    let mut complete = 0;
    let mut latencies = Vec::new();
    let mut problem = None;
    for (i, log) in logs.iter().enumerate() {
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        let got: Vec<u128> = log.events.iter().map(|(c, _)| *c).collect();
        let want: Vec<u128> = expected.iter().map(|(c, _)| *c).collect();
        if got == want {
            complete += 1;
        } else if problem.is_none() {
            problem = Some(format!(
                "subscriber {i}: {} of {} events (overflow: {}, error: {:?})",
                got.len(),
                want.len(),
                log.overflow,
                log.error
            ));
        }
        for (cursor, at) in &log.events {
            if let Some(recorded) = recorded.get(cursor) {
                latencies.push((at - recorded) as f64 / 1000.0);
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    (complete, latencies, problem)
}

/// One line of the table printed at the end.
struct Row {
    subscribers: usize,
    rss_before_mb: f64,
    rss_with_mb: f64,
    rss_after_mb: f64,
    per_subscriber_kb: f64,
    connect_cpu_s: f64,
    p50: f64,
    p99: f64,
    complete: String,
}

async fn run(args: &Args, database_url: &str) -> anyhow::Result<()> {
    let server = ShiplogProcess::start(args, database_url)?;
    let client = reqwest::Client::new();
    let api = Arc::new(Api {
        client: Client::with_http(client.clone(), &server.base, Some(TOKEN)),
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        match api.create_usecase("bench-sse").await {
            Ok(id) => break id,
            Err(e) if Instant::now() > deadline => {
                return Err(e.context("the server never came up"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let mut usecases = vec![first.clone()];
    for i in 1..args.write_concurrency.max(1) {
        usecases.push(api.create_usecase(&format!("bench-sse-{i}")).await?);
    }
    // Warm up: the first streams and writes allocate what the process keeps anyway.
    let warm = connect(&server.addr, 100, args.connect_concurrency).await?;
    for i in 0..20 {
        api.deploy(&first, &format!("warm{i}")).await?;
    }
    disconnect(warm);
    server
        .await_subscribers(&client, 0, Duration::from_secs(60))
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut rows = Vec::new();
    let mut writes = Vec::new();
    for &n in &args.subscribers {
        let rss_before = server.rss_kb()?;
        let cpu_before = server.cpu_s()?;
        let connect_started = Instant::now();
        let subscribers = connect(&server.addr, n, args.connect_concurrency).await?;
        let connect_wall = connect_started.elapsed().as_secs_f64();
        server
            .await_subscribers(&client, n, Duration::from_secs(60))
            .await?;
        let connect_cpu = server.cpu_s()? - cpu_before;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_connected = server.rss_kb()?;

        // Delivery: events written one at a time, while N listen.
        let start = api.newest().await?;
        for i in 0..args.events {
            let status = api.deploy(&first, &format!("e{i}")).await?;
            if status != 202 {
                bail!("deploying: {status}");
            }
            tokio::time::sleep(Duration::from_millis(args.pace_ms)).await;
        }
        let logs: Vec<_> = subscribers.iter().map(|s| s.log.clone()).collect();
        let expected = api.events_after(start).await?;
        await_delivery(
            &logs,
            expected.len(),
            Duration::from_secs(args.deliver_timeout_s),
        )
        .await;
        let rss_with = server.rss_kb()?;
        // Checked now: the write path below sends these subscribers more events.
        let (complete, latencies, problem) = check(&logs, &expected);

        // The write path while N listen; they receive these events too.
        if args.write_at.contains(&n) {
            let rss_write_before = server.rss_kb()?;
            let (times, unavailable, other) = write_path(&api, &usecases, args.writes).await?;
            let all = api.events_after(start).await?;
            await_delivery(
                &logs,
                all.len(),
                Duration::from_secs(args.deliver_timeout_s),
            )
            .await;
            let (complete, _, problem) = check(&logs, &all);
            let rss_write_after = server.rss_kb()?;
            let line = json!({
                "measure": "sse_write",
                "subscribers": n,
                "posts": times.len(),
                "post_p50_ms": quantile(&times, 0.5),
                "post_p99_ms": quantile(&times, 0.99),
                "post_max_ms": quantile(&times, 1.0),
                "status_503": unavailable,
                "status_other": other,
                "subscribers_complete": complete,
                "rss_during_kb": rss_write_after.max(rss_write_before),
                "problem": problem,
            });
            println!("{line}");
            writes.push((n, times, unavailable, other, complete));
        }

        let cpu_total = server.cpu_s()? - cpu_before;
        let dropped = disconnect(subscribers);
        let gone = server
            .await_subscribers(&client, 0, Duration::from_secs(120))
            .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_after = server.rss_kb()?;
        drop(dropped);
        let grown = rss_with.max(rss_connected).saturating_sub(rss_before);
        let per_subscriber = if n == 0 { 0.0 } else { grown as f64 / n as f64 };
        let line = json!({
            "measure": "sse",
            "subscribers": n,
            "rss_before_kb": rss_before,
            "rss_connected_kb": rss_connected,
            "rss_with_kb": rss_with,
            "rss_after_kb": rss_after,
            "rss_per_subscriber_kb": per_subscriber,
            "connect_wall_s": connect_wall,
            "connect_cpu_s": connect_cpu,
            "cpu_with_s": cpu_total,
            "events": expected.len(),
            "subscribers_complete": complete,
            "delivery_p50_ms": quantile(&latencies, 0.5),
            "delivery_p99_ms": quantile(&latencies, 0.99),
            "delivery_max_ms": quantile(&latencies, 1.0),
            "disconnect_noticed_s": gone.as_secs_f64(),
            "problem": problem,
        });
        println!("{line}");
        rows.push(Row {
            subscribers: n,
            rss_before_mb: rss_before as f64 / 1024.0,
            rss_with_mb: rss_with.max(rss_connected) as f64 / 1024.0,
            rss_after_mb: rss_after as f64 / 1024.0,
            per_subscriber_kb: per_subscriber,
            connect_cpu_s: connect_cpu,
            p50: quantile(&latencies, 0.5),
            p99: quantile(&latencies, 0.99),
            complete: format!("{complete}/{n}"),
        });
    }

    // Churn: does the memory of departed subscribers come back?
    let mut churn = Vec::new();
    for round in 1..=args.churn_rounds {
        let subscribers = connect(&server.addr, 1000, args.connect_concurrency).await?;
        server
            .await_subscribers(&client, 1000, Duration::from_secs(60))
            .await?;
        let with = server.rss_kb()?;
        disconnect(subscribers);
        server
            .await_subscribers(&client, 0, Duration::from_secs(120))
            .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = server.rss_kb()?;
        println!(
            "{}",
            json!({"measure": "sse_churn", "round": round, "subscribers": 1000, "rss_with_kb": with, "rss_after_kb": after})
        );
        churn.push((round, with, after));
    }

    println!(
        "\n{:>11} {:>10} {:>10} {:>10} {:>9} {:>11} {:>9} {:>9} {:>11}",
        "subscribers",
        "RSS0 MB",
        "RSS MB",
        "after MB",
        "KB/sub",
        "connect s",
        "p50 ms",
        "p99 ms",
        "complete"
    );
    for r in &rows {
        println!(
            "{:>11} {:>10.1} {:>10.1} {:>10.1} {:>9.1} {:>11.3} {:>9.1} {:>9.1} {:>11}",
            r.subscribers,
            r.rss_before_mb,
            r.rss_with_mb,
            r.rss_after_mb,
            r.per_subscriber_kb,
            r.connect_cpu_s,
            r.p50,
            r.p99,
            r.complete
        );
    }
    println!(
        "\n{:>11} {:>6} {:>9} {:>9} {:>9} {:>6} {:>6} {:>11}",
        "write path", "POSTs", "p50 ms", "p99 ms", "max ms", "503", "other", "complete"
    );
    for (n, times, unavailable, other, complete) in &writes {
        println!(
            "{:>11} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>6} {:>6} {:>11}",
            format!("{n} subs"),
            times.len(),
            quantile(times, 0.5),
            quantile(times, 0.99),
            quantile(times, 1.0),
            unavailable,
            other,
            format!("{complete}/{n}")
        );
    }
    if !churn.is_empty() {
        println!("\nchurn of 1000 subscribers (RSS MB with / after):");
        for (round, with, after) in churn {
            println!(
                "  round {round}: {:.1} / {:.1}",
                with as f64 / 1024.0,
                after as f64 / 1024.0
            );
        }
    }
    Ok(())
}
