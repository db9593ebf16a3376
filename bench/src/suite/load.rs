//! Closed-loop deploy load: `clients` tokio tasks, each sending
//! `POST /api/usecases/{id}/deployments` to a random usecase as soon as its last
//! answer arrived, over one pooled client. Counted are the answers that arrive
//! inside the measured window (after a warm-up), so every figure is per second of
//! window, never stretched by requests still in flight at the end.

use super::api::{deploy_body, Api};
use super::stats::Latencies;
use anyhow::bail;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// What one load run measured inside its window.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Commands answered 202 inside the window.
    pub ok: u64,
    /// Other answers (and transport errors) inside the window.
    pub errors: u64,
    /// The first of those, for the report.
    pub first_error: Option<String>,
    /// The window's length in seconds.
    pub seconds: f64,
    /// Latencies of the 202s, in milliseconds.
    pub latencies: Latencies,
    /// 202s per second of window, second by second.
    pub per_second: Vec<u64>,
}

impl LoadResult {
    /// Commands per second over the window.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds
    }

    /// Mean commands per second over whole seconds `from..to` of the window.
    pub fn rate_between(&self, from: usize, to: usize) -> f64 {
        let slice =
            &self.per_second[from.min(self.per_second.len())..to.min(self.per_second.len())];
        if slice.is_empty() {
            return 0.0;
        }
        slice.iter().sum::<u64>() as f64 / slice.len() as f64
    }
}

/// A small xorshift generator: enough to spread clients over usecases.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct Sample {
    done: Instant,
    latency_ms: f64,
    error: Option<String>,
}

/// Runs `clients` deploy clients over `usecases` for `warmup + duration` and measures the window.
pub async fn deploy_load(
    api: &Api,
    usecases: Arc<Vec<Uuid>>,
    clients: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    if usecases.is_empty() {
        bail!("no usecases to deploy to");
    }
    let started = Instant::now();
    let end = started + warmup + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let api = api.clone();
        let usecases = usecases.clone();
        tasks.spawn(async move {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((client as u64 + 1) << 20));
            let mut samples = Vec::new();
            let mut n = (client as u64) << 32;
            while Instant::now() < end {
                let usecase = usecases[(rng.next() % usecases.len() as u64) as usize];
                n += 1;
                let body = deploy_body(n);
                let sent = Instant::now();
                let answer = api.client.deploy(usecase, &body).await;
                let error = answer.err().map(|e| e.to_string());
                let done = Instant::now();
                samples.push(Sample {
                    done,
                    latency_ms: (done - sent).as_secs_f64() * 1000.0,
                    error,
                });
            }
            samples
        });
    }
    let window_start = started + warmup;
    let mut ok = 0;
    let mut errors = 0;
    let mut first_error = None;
    let mut latencies = Vec::new();
    let seconds = duration.as_secs_f64();
    let mut per_second = vec![0u64; seconds.ceil() as usize];
    while let Some(samples) = tasks.join_next().await {
        for sample in samples? {
            if sample.done < window_start || sample.done > end {
                continue;
            }
            match sample.error {
                None => {
                    ok += 1;
                    latencies.push(sample.latency_ms);
                    let second = (sample.done - window_start).as_secs() as usize;
                    if let Some(bucket) = per_second.get_mut(second) {
                        *bucket += 1;
                    }
                }
                Some(e) => {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    if ok == 0 {
        bail!(
            "no deploy command succeeded in the window: {}",
            first_error.unwrap_or_else(|| "no answer at all".to_owned())
        );
    }
    Ok(LoadResult {
        ok,
        errors,
        first_error,
        seconds,
        latencies: Latencies::new(latencies),
        per_second,
    })
}
