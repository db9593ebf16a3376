//! Gives the memory of departed stream subscribers back to the system.
//!
//! glibc's allocator keeps what a crowd of subscribers freed (their connections,
//! buffers and tasks) in its arenas for reuse, so the process stays at its peak
//! size long after they left. Once the number of followers has fallen by
//! `DEPARTED` or more from its peak, this asks the allocator to return free pages.

use shiplog_infrastructure::LiveFeed;
use std::sync::Arc;
use std::time::Duration;

/// How often the number of followers is looked at.
const LOOK: Duration = Duration::from_secs(1);
/// How many fewer followers than at the peak make a trim worth its cost (it walks
/// every arena, a few milliseconds for hundreds of megabytes).
const DEPARTED: usize = 100;

/// Trims the allocator whenever many followers of `feed` have left; runs until dropped.
pub async fn return_freed(feed: Arc<LiveFeed>) {
    let mut peak = 0;
    let mut look = tokio::time::interval(LOOK);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        look.tick().await;
        // The peak since the last look counts crowds that came and went in between;
        // the one kept here, crowds that leave a few at a time.
        peak = peak.max(feed.take_peak_followers());
        let now = feed.followers();
        if peak.saturating_sub(now) >= DEPARTED {
            peak = now;
            // Off the runtime's threads: it holds the allocator's locks while it works.
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    }
}

/// Returns the allocator's free memory to the system, where the allocator keeps it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes no pointers and is thread-safe (it locks each arena).
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released, "returned freed memory to the system");
}

/// Other allocators return memory by themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
