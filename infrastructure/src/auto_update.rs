//! The auto-update watcher's storage and its runner: each usecase's last check in
//! `auto_update_checks` (operational state, outside the ledger), registry
//! notifications that make checks due at once (a NOTIFY wakes the leader), and one
//! watcher per database, like the process manager.

use crate::event_log::Wakeup;
use crate::leader::{self, hold};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shiplog_application::auto_update::{
    CheckOutcome, CheckRecord, CheckStore, DueCheck, PushedImage, Watcher,
};
use shiplog_application::AppError;
use shiplog_domain::CheckTrigger;
use sqlx::{PgPool, Row};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};
use uuid::Uuid;

/// The channel a registry notification wakes the watcher on.
pub const CHECKS_CHANNEL: &str = "shiplog_auto_update";
/// How often a standby tries to become the watcher.
const STANDBY_RETRY: Duration = Duration::from_secs(1);
/// The longest the leader waits between looks at what is due (a notification wakes it sooner).
const POLL: Duration = Duration::from_secs(5);
/// Rounds between two prunes of the checks of usecases that are gone.
const PRUNE_EVERY: u32 = 100;

/// `auto_update_checks` on PostgreSQL.
#[derive(Clone)]
pub struct PgCheckStore {
    pool: PgPool,
}

impl PgCheckStore {
    /// The store over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl PgCheckStore {
    /// Forgets the checks of usecases that are gone (deleted, or no longer projected);
    /// returns how many. The runner calls it now and then: checks are not history.
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM auto_update_checks c
              WHERE NOT EXISTS (SELECT 1 FROM usecase_view u WHERE u.id = c.usecase_id)",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

/// A database failure as the application reports it (503 to clients).
fn unavailable(e: sqlx::Error) -> AppError {
    AppError::Unavailable(e.to_string())
}

#[async_trait]
impl CheckStore for PgCheckStore {
    async fn due(
        &self,
        now: DateTime<Utc>,
        interval: Duration,
        limit: i64,
    ) -> Result<Vec<DueCheck>, AppError> {
        let interval_secs = interval.as_secs_f64();
        let rows = sqlx::query(
            "SELECT u.id,
                    c.requested_at IS NOT NULL
                        AND (c.checked_at IS NULL OR c.requested_at > c.checked_at) AS notified
               FROM usecase_view u
               LEFT JOIN auto_update_checks c ON c.usecase_id = u.id
              WHERE u.auto_update_enabled AND u.auto_update_pause IS NULL
                AND NOT u.deletion_requested
                AND (c.usecase_id IS NULL OR c.checked_at IS NULL
                     OR ((c.not_before IS NULL OR c.not_before <= $1)
                         AND (c.checked_at <= $1 - make_interval(secs => $2)
                              OR c.requested_at > c.checked_at
                              OR c.outcome = 'waiting')))
              ORDER BY c.checked_at NULLS FIRST
              LIMIT $3",
        )
        .bind(now)
        .bind(interval_secs)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let notified: Option<bool> = row.try_get("notified")?;
                Ok(DueCheck {
                    usecase_id: row.try_get("id")?,
                    trigger: if notified.unwrap_or(false) {
                        CheckTrigger::Webhook
                    } else {
                        CheckTrigger::Interval
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(unavailable)
    }

    async fn record(&self, usecase_id: Uuid, check: &CheckRecord) -> Result<(), AppError> {
        sqlx::query(
            "INSERT INTO auto_update_checks
                (usecase_id, check_id, checked_at, trigger, tag, digest, outcome, message, not_before)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (usecase_id) DO UPDATE
                SET check_id = $2, checked_at = $3, trigger = $4, tag = $5, digest = $6,
                    outcome = $7, message = $8, not_before = $9",
        )
        .bind(usecase_id)
        .bind(check.check_id)
        .bind(check.checked_at)
        .bind(check.trigger.as_str())
        .bind(&check.tag)
        .bind(&check.digest)
        .bind(check.outcome.as_str())
        .bind(&check.message)
        .bind(check.not_before)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn last(&self, usecase_id: Uuid) -> Result<Option<CheckRecord>, AppError> {
        let row = sqlx::query(
            "SELECT check_id, checked_at, trigger, tag, digest, outcome, message, not_before
               FROM auto_update_checks WHERE usecase_id = $1",
        )
        .bind(usecase_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let decode = || -> Result<Option<CheckRecord>, sqlx::Error> {
            // Asked for by a notification, not checked yet.
            let Some(check_id) = row.try_get::<Option<Uuid>, _>("check_id")? else {
                return Ok(None);
            };
            let trigger: String = row.try_get("trigger")?;
            let outcome: String = row.try_get("outcome")?;
            Ok(Some(CheckRecord {
                check_id,
                checked_at: row.try_get("checked_at")?,
                trigger: if trigger == "webhook" {
                    CheckTrigger::Webhook
                } else {
                    CheckTrigger::Interval
                },
                tag: row.try_get("tag")?,
                digest: row.try_get("digest")?,
                outcome: CheckOutcome::parse(&outcome).ok_or_else(|| {
                    sqlx::Error::Decode(format!("check outcome {outcome:?}").into())
                })?,
                message: row.try_get("message")?,
                not_before: row.try_get("not_before")?,
            }))
        };
        decode().map_err(|e| AppError::Internal(e.to_string()))
    }

    async fn request(
        &self,
        pushed: &PushedImage,
        at: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, AppError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // The usecases following the pushed repository: its serving image's registry
        // (when the notification names one) and repository; under the digest policy
        // its tag too, since only that tag's pushes matter.
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT u.id
               FROM usecase_view u
               JOIN deployment_view d
                 ON d.usecase_id = u.id AND d.status = 'deployed' AND NOT d.undeploy_requested
              WHERE u.auto_update_enabled AND u.auto_update_pause IS NULL
                AND d.config->'image'->>'repository' = $1
                AND ($2::text IS NULL OR d.config->'image'->>'registry' = $2)
                AND (u.auto_update_policy = 'semver' OR $3::text IS NULL
                     OR d.config->'image'->>'tag' = $3)",
        )
        .bind(&pushed.repository)
        .bind(&pushed.registry)
        .bind(&pushed.tag)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        if ids.is_empty() {
            return Ok(ids);
        }
        // A usecase never checked gets a row with no check that makes it due at once.
        sqlx::query(
            "INSERT INTO auto_update_checks (usecase_id, requested_at)
             SELECT id, $2 FROM UNNEST($1::uuid[]) AS id
             ON CONFLICT (usecase_id) DO UPDATE SET requested_at = $2",
        )
        .bind(&ids)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHECKS_CHANNEL)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(ids)
    }
}

/// Keeps one watcher running per database, whichever process holds its lock.
pub struct AutoUpdateRunner {
    pool: PgPool,
    watcher: Arc<Watcher>,
}

impl AutoUpdateRunner {
    /// A runner of `watcher` over the usecases in `pool`.
    pub fn new(pool: PgPool, watcher: Arc<Watcher>) -> Arc<Self> {
        Arc::new(Self { pool, watcher })
    }

    /// Waits to lead, checks what is due until the lock is lost, and starts over.
    /// Runs until the task is dropped (a check cut off is simply due again).
    pub async fn run(self: Arc<Self>) {
        loop {
            match leader::try_lead(&self.pool, "shiplog.auto_update").await {
                Ok(Some(lock)) => {
                    info!(
                        interval_secs = self.watcher.settings().interval.as_secs(),
                        "auto-update watcher: this process leads"
                    );
                    tokio::select! {
                        _ = self.lead() => {}
                        _ = hold(lock) => warn!("auto-update watcher: lost the leader lock; standing by"),
                    }
                }
                Ok(None) => {}
                Err(e) => warn!(error = %e, "auto-update watcher: cannot reach the database"),
            }
            tokio::time::sleep(STANDBY_RETRY).await;
        }
    }

    async fn lead(&self) {
        let mut wakeup = Wakeup::on(&self.pool, CHECKS_CHANNEL).await;
        let poll = self.watcher.settings().interval.min(POLL);
        let store = PgCheckStore::new(self.pool.clone());
        let mut round: u32 = 0;
        loop {
            if let Err(e) = self.watcher.round().await {
                warn!(error = %e, "auto-update watcher: a round failed; retrying");
            }
            if round.is_multiple_of(PRUNE_EVERY) {
                match store.prune().await {
                    Ok(0) => {}
                    Ok(n) => info!(
                        checks = n,
                        "auto-update watcher: forgot the checks of deleted usecases"
                    ),
                    Err(e) => warn!(error = %e, "auto-update watcher: pruning checks failed"),
                }
            }
            round = round.wrapping_add(1);
            wakeup.wait(poll).await;
        }
    }
}
