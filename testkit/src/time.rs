//! Waiting in tests: one budget per wait, all stretched by one factor.
//!
//! A test that waits for something asynchronous (a projection, a rollout, a
//! server coming up) names what it waits for and polls with [`eventually`]
//! rather than a loop and a deadline of its own. Every budget is multiplied by
//! `SHIPLOG_TEST_TIME_SCALE` (default 1; e.g. `3` on a loaded CI machine), so
//! one setting makes the whole suite patient, and a failure always says what
//! was awaited, for how long, and what was seen last.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The budget of [`eventually`]: long for anything a healthy test waits for,
/// short enough that a hang fails the test well before the suite's own timeout.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(10);

/// The first pause between two checks; pauses double up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between two checks.
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// The factor every test budget is multiplied by: `SHIPLOG_TEST_TIME_SCALE`, a
/// positive number, 1 when unset or unreadable.
pub fn time_scale() -> f64 {
    std::env::var("SHIPLOG_TEST_TIME_SCALE")
        .ok()
        .and_then(|raw| raw.trim().parse::<f64>().ok())
        .filter(|scale| scale.is_finite() && *scale > 0.0)
        .unwrap_or(1.0)
}

/// `budget` on this machine: multiplied by [`time_scale`]. For the timeouts a
/// test sets itself (a stream read, a child process) so that they stretch with
/// the rest.
pub fn scaled(budget: Duration) -> Duration {
    budget.mul_f64(time_scale())
}

/// Checks `check` until it returns `Ok`, and returns that value; waits at most
/// [`DEFAULT_BUDGET`] (scaled). See [`eventually_within`].
pub async fn eventually<T, O, F, Fut>(what: &str, check: F) -> T
where
    O: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, O>>,
{
    eventually_within(what, DEFAULT_BUDGET, check).await
}

/// Checks `check` until it returns `Ok(value)`, and returns the value. `Err(seen)`
/// means "not yet": it is checked again after a short pause (10 ms, doubling
/// up to 200 ms). When `budget` (scaled by [`time_scale`]) runs out, or one
/// check does not return within it, the test fails with `what` and the last
/// `seen`.
pub async fn eventually_within<T, O, F, Fut>(what: &str, budget: Duration, mut check: F) -> T
where
    O: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, O>>,
{
    let budget = scaled(budget);
    let deadline = Instant::now() + budget;
    let mut pause = FIRST_PAUSE;
    let mut last: Option<O> = None;
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(value)) => return value,
            Ok(Err(seen)) => last = Some(seen),
            Err(_) => panic!(
                "{what}: not within {budget:?} (time scale {}): a check was still running; \
                 last seen before it: {last:?}",
                time_scale()
            ),
        }
        let now = Instant::now();
        if now >= deadline {
            panic!(
                "{what}: not within {budget:?} (time scale {}); last seen: {last:?}",
                time_scale()
            );
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        let value = eventually("the third call", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n >= 3 {
                Ok(n)
            } else {
                Err(n)
            }
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn fails_with_what_was_awaited_and_the_last_observation() {
        let waited = tokio::spawn(eventually_within(
            "the impossible",
            Duration::from_millis(50),
            || async { Err::<(), _>("still false") },
        ))
        .await;
        let panic = waited.err().map(tokio::task::JoinError::into_panic);
        let message = panic
            .as_ref()
            .and_then(|p| p.downcast_ref::<String>())
            .cloned()
            .unwrap_or_default();
        assert!(
            message.starts_with("the impossible: not within"),
            "{message}"
        );
        assert!(
            message.ends_with("last seen: Some(\"still false\")"),
            "{message}"
        );
    }

    #[tokio::test]
    #[should_panic(expected = "a check was still running")]
    async fn a_check_that_hangs_fails_at_the_deadline() {
        eventually_within("a hanging check", Duration::from_millis(50), || async {
            std::future::pending::<Result<(), ()>>().await
        })
        .await;
    }
}
