//! The subscribers: plain TCP and a minimal HTTP/1.1 reader per stream, so that ten
//! thousand clients stay cheap, each logging what it read and when.

use crate::TOKEN;
use anyhow::{bail, Context};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// What one subscriber received: each event's cursor and when it was read.
#[derive(Default)]
pub(crate) struct Log {
    pub(crate) events: Vec<(u128, i64)>,
    pub(crate) overflow: bool,
    pub(crate) error: Option<String>,
    pub(crate) ended: bool,
}

/// One open stream, read by a task of its own until aborted.
pub(crate) struct Subscriber {
    pub(crate) log: Arc<Mutex<Log>>,
    pub(crate) task: JoinHandle<()>,
}

pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Decodes `Transfer-Encoding: chunked` incrementally.
#[derive(Default)]
pub(crate) struct Chunked {
    pub(crate) state: ChunkState,
    pub(crate) line: Vec<u8>,
}

#[derive(Default)]
pub(crate) enum ChunkState {
    #[default]
    Size,
    Data(usize),
    DataEnd,
    Done,
}

impl Chunked {
    /// Appends the payload in `input` to `out`.
    pub(crate) fn decode(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> anyhow::Result<()> {
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
pub(crate) async fn subscribe(
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

pub(crate) async fn read_stream(
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
pub(crate) async fn connect(
    addr: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Subscriber>> {
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

pub(crate) fn disconnect(subscribers: Vec<Subscriber>) -> Vec<Arc<Mutex<Log>>> {
    subscribers
        .into_iter()
        .map(|s| {
            s.task.abort();
            s.log
        })
        .collect()
}
