//! What is measured of the subscribers' logs and the write path.

use crate::api::Api;
use crate::subscribers::Log;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `q` quantile of sorted values.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Writes `writes` deployments, `concurrency` at a time (one usecase each); returns
/// each POST's latency in ms and how many were answered other than 202.
pub(crate) async fn write_path(
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
pub(crate) async fn await_delivery(logs: &[Arc<Mutex<Log>>], expected: usize, limit: Duration) {
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
pub(crate) fn check(
    logs: &[Arc<Mutex<Log>>],
    expected: &[(u128, i64)],
) -> (usize, Vec<f64>, Option<String>) {
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
