//! Back-off between retries of work that must go on (a reconcile, a follower's
//! read of the log): exponential, capped, never giving up, with jitter so that
//! many workers failing together (a database restart) do not retry in step.

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::time::Duration;

/// Delays from `min`, doubling up to `max`, each with a random jitter of up to
/// itself; endless. Start a new one after a success.
pub(crate) fn backoff(min: Duration, max: Duration) -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_and_never_end() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        let delays: Vec<Duration> = backoff(min, max).take(50).collect();
        assert_eq!(delays.len(), 50, "it never gives up");
        // Jitter adds up to the delay itself: within [d, 2d), capped at 2 * max.
        assert!(delays[0] >= min && delays[0] < 2 * min, "{:?}", delays[0]);
        assert!(delays.iter().all(|d| *d < 2 * max), "{delays:?}");
        assert!(delays[49] >= max, "reaches the cap: {:?}", delays[49]);
    }
}
