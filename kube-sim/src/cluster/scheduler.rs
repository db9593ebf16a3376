//! The scheduler: one task that runs the controllers' timed actions (pod start-up,
//! heartbeats, progress deadlines, reconciles) in time order, with one timer and no polling.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Shared;
use crate::controllers::Action;

/// An action due at `at`; `seq` keeps actions due at the same instant in the order they came.
struct Timed {
    at: Instant,
    seq: u64,
    action: Action,
}

impl PartialEq for Timed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timed {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Runs timed actions (pod start-up, heartbeats, deadlines, reconciles) in time order until
/// shutdown: one task, one timer, no polling.
pub(crate) async fn run_scheduler(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<(Instant, Action)>,
) {
    let mut queue: BinaryHeap<Reverse<Timed>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let next = queue.peek().map(|Reverse(t)| t.at);
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            received = rx.recv() => match received {
                Some((at, action)) => {
                    seq += 1;
                    queue.push(Reverse(Timed { at, seq, action }));
                }
                None => return,
            },
            _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let now = Instant::now();
                while queue.peek().is_some_and(|Reverse(t)| t.at <= now) {
                    if let Some(Reverse(timed)) = queue.pop() {
                        shared.with(|store, controllers| controllers.run_action(store, timed.action));
                    }
                }
            }
        }
    }
}
