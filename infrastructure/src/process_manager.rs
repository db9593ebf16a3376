//! Runs the process manager: one leader per database (an advisory lock held on
//! a dedicated connection), a durable subscription over the global order with
//! its own checkpoint, a start-up sweep, and one reconcile loop per usecase.

use crate::event_log::{EventLog, Wakeup};
use crate::leader::{self, hold};
use crate::projections::{read_checkpoint, write_checkpoint, ProjectionError};
use crate::retry;
use cqrs_es::Aggregate;
use futures::FutureExt;
use shiplog_application::{Cursor, ProcessManager};
use shiplog_domain::Usecase;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, instrument, warn};
use uuid::Uuid;

/// The checkpoint name of the process manager's subscription.
pub const CHECKPOINT: &str = "process_manager";
const BATCH: i64 = 200;
/// How often a standby tries to become the leader.
const STANDBY_RETRY: Duration = Duration::from_millis(500);

/// Keeps one process manager running per database, whichever process holds the lock.
pub struct ProcessManagerRunner {
    pool: PgPool,
    pm: Arc<ProcessManager>,
}

impl ProcessManagerRunner {
    /// A runner for `pm` over the events in `pool`.
    pub fn new(pool: PgPool, pm: Arc<ProcessManager>) -> Arc<Self> {
        Arc::new(Self { pool, pm })
    }

    /// Waits to become the leader, leads until the lock connection is lost, and
    /// starts over. Runs until the task is dropped; dropping it stops every
    /// reconcile (each is safe to cut off at any point).
    pub async fn run(self: Arc<Self>) {
        loop {
            match self.acquire().await {
                Ok(Some(lock)) => {
                    info!("process manager: this process leads");
                    tokio::select! {
                        _ = self.lead() => {}
                        _ = hold(lock) => warn!("process manager: lost the leader lock; standing by"),
                    }
                }
                Ok(None) => {}
                Err(e) => warn!(error = %e, "process manager: cannot reach the database"),
            }
            tokio::time::sleep(STANDBY_RETRY).await;
        }
    }

    /// A dedicated connection holding the leader lock, or `None` when another process holds it.
    async fn acquire(&self) -> Result<Option<PgConnection>, sqlx::Error> {
        leader::try_lead(&self.pool, "shiplog.process_manager").await
    }

    /// Sweeps, then follows the log, scheduling a reconcile of each event's usecase.
    async fn lead(&self) {
        let mut workers: HashMap<Uuid, watch::Sender<Cursor>> = HashMap::new();
        let mut tasks = JoinSet::new();
        let mut wakeup = Wakeup::connect(&self.pool).await;
        let mut swept = false;
        loop {
            if !swept {
                match self.sweep().await {
                    Ok((cursor, usecases)) => {
                        info!(
                            usecases = usecases.len(),
                            "process manager: reconciling everything not at rest"
                        );
                        for id in usecases {
                            schedule(&self.pm, &mut workers, &mut tasks, id, cursor);
                        }
                        swept = true;
                    }
                    Err(e) => warn!(error = %e, "process manager: start-up sweep failed; retrying"),
                }
            }
            if swept {
                match self.step(&mut workers, &mut tasks).await {
                    Ok(read) if read as i64 == BATCH => continue,
                    Ok(_) => {}
                    Err(e) => {
                        warn!(error = %e, "process manager: reading the log failed; retrying")
                    }
                }
            }
            // A worker ends when its usecase is at rest; one that was sent a newer
            // event while it was ending starts again, so no event is left unhandled.
            while let Some(Some(joined)) = tasks.join_next().now_or_never() {
                match joined {
                    Ok((usecase_id, handled)) => {
                        // A sender still open belongs to a worker started since; leave it.
                        let Some(tx) = workers.get(&usecase_id).filter(|tx| tx.is_closed()) else {
                            continue;
                        };
                        let latest = *tx.borrow();
                        workers.remove(&usecase_id);
                        if latest > handled {
                            schedule(&self.pm, &mut workers, &mut tasks, usecase_id, latest);
                        }
                    }
                    Err(e) => warn!(error = %e, "process manager: a reconcile loop ended"),
                }
            }
            wakeup.wait(Duration::from_millis(500)).await;
        }
    }

    /// Every usecase that may need the cluster changed: deployments not at rest
    /// in the read model, usecases whose deletion is not finished (a reconcile still
    /// has to record it, though nothing of theirs may be in flight any more), and
    /// every usecase that owns objects in the cluster.
    async fn sweep(&self) -> Result<(Cursor, Vec<Uuid>), String> {
        let mut conn = self.pool.acquire().await.map_err(|e| e.to_string())?;
        let cursor = read_checkpoint(&mut conn, CHECKPOINT)
            .await
            .map_err(|e| e.to_string())?;
        // The sweep trusts the read models only once they have seen everything this
        // subscription has: an event past them but before our checkpoint would
        // otherwise be neither swept nor read again.
        for view in ["deployment_view", "usecase_view"] {
            let seen = read_checkpoint(&mut conn, view)
                .await
                .map_err(|e| e.to_string())?;
            if seen < cursor {
                return Err(format!(
                    "{view} ({seen}) is behind the process manager ({cursor}); waiting for it"
                ));
            }
        }
        let mut usecases: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT usecase_id FROM deployment_view
              WHERE status IN ('pending', 'deploying', 'deployed') OR undeploy_requested
             UNION
             SELECT id FROM usecase_view WHERE deletion_requested",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
        let owned = self
            .pm
            .cluster()
            .managed()
            .await
            .map_err(|e| e.to_string())?;
        usecases.extend(owned);
        usecases.sort();
        usecases.dedup();
        Ok((cursor, usecases))
    }

    /// One batch of the subscription: schedule each event's usecase, then move the checkpoint.
    #[instrument(skip_all)]
    async fn step(
        &self,
        workers: &mut HashMap<Uuid, watch::Sender<Cursor>>,
        tasks: &mut JoinSet<(Uuid, Cursor)>,
    ) -> Result<usize, ProjectionError> {
        let mut tx = self.pool.begin().await?;
        crate::db::derived_writes(&mut tx).await?;
        let checkpoint = read_checkpoint(&mut tx, CHECKPOINT).await?;
        let events = EventLog::read_after(&mut tx, checkpoint, BATCH).await?;
        let Some(last) = events.last().map(|e| e.cursor) else {
            return Ok(0);
        };
        // Only usecases have anything in the cluster; teams' events need no reconcile.
        for event in events.iter().filter(|e| e.aggregate_type == Usecase::TYPE) {
            if let Ok(id) = event.aggregate_id.parse::<Uuid>() {
                schedule(&self.pm, workers, tasks, id, event.cursor);
            }
        }
        // Scheduled is enough: a crash before the reconciles finish is covered by the start-up sweep.
        write_checkpoint(&mut tx, CHECKPOINT, last).await?;
        tx.commit().await?;
        Ok(events.len())
    }
}

/// Wakes (or starts) the usecase's reconcile loop with the newest causing cursor.
fn schedule(
    pm: &Arc<ProcessManager>,
    workers: &mut HashMap<Uuid, watch::Sender<Cursor>>,
    tasks: &mut JoinSet<(Uuid, Cursor)>,
    usecase_id: Uuid,
    cause: Cursor,
) {
    // A loop that ended (at rest, or by panicking) is started afresh.
    if let Some(tx) = workers.get(&usecase_id).filter(|tx| !tx.is_closed()) {
        tx.send_replace(cause);
        return;
    }
    let (tx, rx) = watch::channel(cause);
    workers.insert(usecase_id, tx);
    tasks.spawn(reconcile_loop(pm.clone(), usecase_id, rx));
}

/// The first pause after a failed reconcile; it doubles on each failure in a row.
const RETRY_MIN: Duration = Duration::from_millis(500);
/// The longest pause between two reconciles of a usecase that keeps failing.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Reconciles one usecase whenever it changes. A change during a reconcile
/// cancels it and starts over on the new state (every step is idempotent);
/// a failure is retried with back-off. Ends once the usecase is at rest and no
/// change is waiting, returning the last cause it handled.
async fn reconcile_loop(
    pm: Arc<ProcessManager>,
    usecase_id: Uuid,
    mut changes: watch::Receiver<Cursor>,
) -> (Uuid, Cursor) {
    let mut delays = retry::backoff(RETRY_MIN, RETRY_MAX);
    loop {
        let cause = *changes.borrow_and_update();
        let result = tokio::select! {
            r = pm.reconcile(usecase_id, cause) => Some(r),
            _ = changes.changed() => None,
        };
        match result {
            None => continue,
            Some(Ok(settled)) => {
                delays = retry::backoff(RETRY_MIN, RETRY_MAX);
                if settled && !changes.has_changed().unwrap_or(false) {
                    return (usecase_id, cause);
                }
                if changes.changed().await.is_err() {
                    return (usecase_id, cause);
                }
            }
            Some(Err(e)) => {
                let delay = delays.next().unwrap_or(RETRY_MAX);
                warn!(%usecase_id, error = %e, retry_in = ?delay, "reconcile failed");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = changes.changed() => {}
                }
            }
        }
    }
}
