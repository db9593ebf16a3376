//! Read models fed by durable subscriptions over the global event order.
//!
//! Each projection keeps a checkpoint in `subscription_checkpoints`, written in
//! the same transaction as its rows, so a crash never loses or repeats an
//! update. Several shiplog processes may run the same projections: a
//! transaction-scoped advisory lock per projection lets one apply a batch at a
//! time, and the others then start from the checkpoint it committed.
//!
//! A batch is applied set-based: its events are decoded, the rows they touch are
//! loaded (one query per table), the whole batch is folded in memory by the
//! read-side fold that time travel uses too (`shiplog_application::read_models`),
//! and only each row's final state is written back, with at most a delete, an
//! update and an insert per table. The statements per batch do not grow with
//! its size.

mod deployment_view;
mod log;
#[cfg(test)]
mod per_event;
mod revision_view;
mod team_view;
#[cfg(test)]
mod tests;
mod usecase_view;

pub use deployment_view::DeploymentViewProjection;
pub use revision_view::RevisionViewProjection;
pub use team_view::TeamViewProjection;
pub use usecase_view::UsecaseViewProjection;

use crate::event_log::{CursorColumns, Wakeup};
use async_trait::async_trait;
use log::{FactRef, LoggedEvent};
use shiplog_application::read_models::{FoldError, Needs, ReadModels, Views};
use shiplog_application::Cursor;
use sqlx::{FromRow, PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tracing::{debug, instrument, warn};

/// How long read-your-writes waits for the projections before answering anyway.
const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows per write statement: bounds the size of one message to the database.
const ROWS_PER_STATEMENT: usize = 20_000;

/// Why a stored event could not be projected.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A stored payload does not match any known event shape.
    #[error("event at {cursor} ({event_type}) does not deserialize: {source}")]
    Payload {
        /// Where it is in the log.
        cursor: Cursor,
        /// Its stored type.
        event_type: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// The aggregate id of a stored event is not a UUID.
    #[error("event at {0} has an aggregate id that is not a UUID")]
    AggregateId(Cursor),
    /// The read models cannot take the event (a key that has a row already, a
    /// time PostgreSQL cannot store): they stop at it, as its SQL would have.
    #[error(transparent)]
    Fold(#[from] FoldError),
}

/// One read model: its name (the checkpoint key), its tables, and how its rows
/// are loaded and written around the fold.
#[async_trait]
trait Projection: Send + Sync {
    /// The checkpoint name; never change it once deployed.
    fn name(&self) -> &'static str;
    /// The tables it owns, emptied by a rebuild.
    fn tables(&self) -> &'static [&'static str];
    /// Which part of the fold it is.
    fn view(&self) -> Views;
    /// Loads the rows of its tables that `missing` names into `models`.
    async fn load(
        &self,
        conn: &mut PgConnection,
        missing: &Needs,
        models: &mut ReadModels,
    ) -> Result<(), ProjectionError>;
    /// Writes what changed in its tables since the last write.
    async fn write(&self, conn: &mut PgConnection, models: &ReadModels) -> Result<(), sqlx::Error>;
}

/// `rows` in slices of at most [`ROWS_PER_STATEMENT`].
fn chunks<'a, R>(rows: &'a [&'a R]) -> std::slice::Chunks<'a, &'a R> {
    rows.chunks(ROWS_PER_STATEMENT)
}

/// How much the projector takes on at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectorLimits {
    /// Events per transaction of the live projector: the latency of one round
    /// against the statements it shares out.
    pub batch: usize,
    /// Events per page a rebuild reads.
    pub rebuild_page: usize,
    /// Rows a rebuild holds in memory before it writes them and forgets them:
    /// bounds its memory on a large read model.
    pub rebuild_rows: usize,
}

impl Default for ProjectorLimits {
    fn default() -> Self {
        Self {
            batch: 1_000,
            rebuild_page: 20_000,
            rebuild_rows: 1_000_000,
        }
    }
}

impl ProjectorLimits {
    /// Pages of `events` events for both the live projector and a rebuild (tests
    /// use small ones to put page boundaries in the middle of a usecase's events).
    pub fn pages_of(events: usize) -> Self {
        Self {
            batch: events.max(1),
            rebuild_page: events.max(1),
            ..Self::default()
        }
    }
}

/// Runs the projections: follows the log, wakes on NOTIFY, and tells waiters how far it got.
pub struct Projector {
    pool: PgPool,
    projections: Vec<Box<dyn Projection>>,
    limits: ProjectorLimits,
    progress: watch::Sender<Cursor>,
    kick: Notify,
}

impl Projector {
    /// The projector for shiplog's read models (`usecase_view`, `deployment_view`,
    /// `revision_view`, `team_view`).
    pub fn new(pool: PgPool) -> Arc<Self> {
        Self::with_limits(pool, ProjectorLimits::default())
    }

    /// As [`Projector::new`], taking on at most `limits` at once.
    pub fn with_limits(pool: PgPool, limits: ProjectorLimits) -> Arc<Self> {
        let projections: Vec<Box<dyn Projection>> = vec![
            Box::new(UsecaseViewProjection),
            Box::new(DeploymentViewProjection),
            Box::new(RevisionViewProjection),
            Box::new(TeamViewProjection),
        ];
        Arc::new(Self {
            pool,
            projections,
            limits,
            progress: watch::Sender::new(Cursor::START),
            kick: Notify::new(),
        })
    }

    /// Follows the log until the task is dropped. NOTIFY only wakes it up; each
    /// round re-reads from the checkpoints, and a periodic round covers a missed
    /// notification or an event that became visible when an older transaction ended.
    pub async fn run(self: Arc<Self>) {
        let mut wakeup = Wakeup::connect(&self.pool).await;
        loop {
            if let Err(e) = self.catch_up().await {
                warn!(error = %e, "projection round failed; retrying");
            }
            tokio::select! {
                _ = wakeup.wait(Duration::from_millis(250)) => {}
                _ = self.kick.notified() => {}
            }
        }
    }

    /// Applies every visible event to every projection, then publishes how far all got.
    pub async fn catch_up(&self) -> Result<(), ProjectionError> {
        loop {
            let (reached, applied) = self.step().await?;
            self.progress.send_if_modified(|current| {
                let advanced = reached > *current;
                if advanced {
                    *current = reached;
                }
                advanced
            });
            if applied < self.limits.batch {
                return Ok(());
            }
        }
    }

    fn names(&self) -> Vec<String> {
        self.projections
            .iter()
            .map(|p| p.name().to_owned())
            .collect()
    }

    /// One batch in one transaction for all projections, so that the read models
    /// always agree with each other (a usecase and its deployments are never seen
    /// at different points of the log). Each projection still keeps its own
    /// checkpoint and only takes events past it. Returns the lowest checkpoint
    /// afterwards and how many events were read.
    #[instrument(skip(self))]
    async fn step(&self) -> Result<(Cursor, usize), ProjectionError> {
        let mut tx = self.pool.begin().await?;
        crate::db::derived_writes(&mut tx).await?;
        let names = self.names();
        lock(&mut tx, &names).await?;
        let checkpoints = read_checkpoints(&mut tx, &names).await?;
        let lowest = checkpoints.iter().copied().min().unwrap_or(Cursor::START);
        let events = log::read_page(&mut tx, lowest, self.limits.batch).await?;
        let Some(last) = events.last().map(|e| e.cursor) else {
            return Ok((lowest, 0));
        };
        let views = |cursor: Cursor| {
            let mut views = NO_VIEWS;
            for (projection, checkpoint) in self.projections.iter().zip(&checkpoints) {
                if cursor > *checkpoint {
                    views = union(views, projection.view());
                }
            }
            views
        };
        let mut models = ReadModels::partial();
        self.fold(&mut tx, &mut models, &events, views).await?;
        self.write(&mut tx, &models).await?;
        // Never move a checkpoint backwards: that would apply events twice.
        let reached: Vec<Cursor> = checkpoints.iter().map(|c| last.max(*c)).collect();
        write_checkpoints(&mut tx, &names, &reached).await?;
        tx.commit().await?;
        debug!(applied = events.len(), %last, "projected");
        Ok((last, events.len()))
    }

    /// Loads what `events` need and `models` do not hold yet, then folds them in.
    async fn fold(
        &self,
        conn: &mut PgConnection,
        models: &mut ReadModels,
        events: &[LoggedEvent],
        views: impl Fn(Cursor) -> Views,
    ) -> Result<(), ProjectionError> {
        let mut needs = Needs::default();
        for event in events {
            match event.fact() {
                FactRef::Usecase(fact) => needs.add(&fact, views(event.cursor)),
                FactRef::Team(fact) => needs.add_team(&fact, views(event.cursor)),
                FactRef::Ignored => {}
            }
        }
        let missing = models.missing(&needs);
        if !missing.is_empty() {
            for projection in &self.projections {
                projection.load(conn, &missing, models).await?;
            }
        }
        for event in events {
            match event.fact() {
                FactRef::Usecase(fact) => models.apply(&fact, views(event.cursor))?,
                FactRef::Team(fact) => models.apply_team(&fact, views(event.cursor))?,
                FactRef::Ignored => {}
            }
        }
        Ok(())
    }

    /// Writes every change of `models`, table by table.
    async fn write(&self, conn: &mut PgConnection, models: &ReadModels) -> Result<(), sqlx::Error> {
        for projection in &self.projections {
            projection.write(conn, models).await?;
        }
        Ok(())
    }

    /// Waits until every projection has applied the event at `cursor` (read-your-writes),
    /// at most a few seconds: the write is durable either way.
    pub async fn wait_for(&self, cursor: Cursor) {
        let mut progress = self.progress.subscribe();
        let wait = async {
            loop {
                if *progress.borrow_and_update() >= cursor {
                    return;
                }
                self.kick.notify_one();
                // Re-kick now and then: the event may only become visible once an
                // older transaction elsewhere has ended.
                let _ = tokio::time::timeout(Duration::from_millis(50), progress.changed()).await;
            }
        };
        if tokio::time::timeout(READ_YOUR_WRITES_TIMEOUT, wait)
            .await
            .is_err()
        {
            warn!(%cursor, "read models lag behind a write; answering anyway");
        }
    }

    /// Replays the whole log into every read model in one transaction: readers
    /// see the old rows until the new ones are complete. The log is read in large
    /// pages and folded in memory from empty tables while the old rows stay
    /// readable; then the tables are truncated (readers wait from here to the
    /// commit) and the new rows written once, in a few statements per table. A
    /// read model of more than `rebuild_rows` rows is written in parts as the
    /// fold grows, the held rows forgotten and loaded again when later events
    /// need them. Returns the number of events replayed.
    #[instrument(skip(self))]
    pub async fn rebuild(&self) -> Result<u64, ProjectionError> {
        let mut tx = self.pool.begin().await?;
        crate::db::derived_writes(&mut tx).await?;
        let names = self.names();
        lock(&mut tx, &names).await?;
        let mut models = ReadModels::empty();
        let mut truncated = false;
        let mut cursor = Cursor::START;
        let mut replayed = 0u64;
        loop {
            let events = log::read_page(&mut tx, cursor, self.limits.rebuild_page).await?;
            let Some(last) = events.last().map(|e| e.cursor) else {
                break;
            };
            self.fold(&mut tx, &mut models, &events, |_| Views::ALL)
                .await?;
            replayed += events.len() as u64;
            cursor = last;
            if models.len() > self.limits.rebuild_rows {
                self.truncate_once(&mut tx, &mut truncated).await?;
                self.write(&mut tx, &models).await?;
                models.written();
                models.forget();
            }
        }
        self.truncate_once(&mut tx, &mut truncated).await?;
        self.write(&mut tx, &models).await?;
        write_checkpoints(&mut tx, &names, &vec![cursor; names.len()]).await?;
        tx.commit().await?;
        Ok(replayed)
    }

    /// Empties every read model, the first time only. Truncated tables take the new
    /// rows without checking them against the old ones and leave no dead rows
    /// behind; readers wait for the commit from here on.
    async fn truncate_once(
        &self,
        conn: &mut PgConnection,
        truncated: &mut bool,
    ) -> Result<(), sqlx::Error> {
        if *truncated {
            return Ok(());
        }
        let tables: Vec<&str> = self
            .projections
            .iter()
            .flat_map(|p| p.tables().iter().copied())
            .collect();
        sqlx::query(&format!("TRUNCATE {}", tables.join(", ")))
            .execute(conn)
            .await?;
        *truncated = true;
        Ok(())
    }
}

/// No read model at all.
const NO_VIEWS: Views = Views {
    usecases: false,
    deployments: false,
    revisions: false,
    teams: false,
};

/// The read models of `a` and those of `b`.
fn union(a: Views, b: Views) -> Views {
    Views {
        usecases: a.usecases || b.usecases,
        deployments: a.deployments || b.deployments,
        revisions: a.revisions || b.revisions,
        teams: a.teams || b.teams,
    }
}

/// Takes the projections' advisory locks, in the order given (every projector
/// takes them in the same order, so two never wait on each other).
async fn lock(conn: &mut PgConnection, names: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext('shiplog.subscription'), hashtext(n))
           FROM UNNEST($1::text[]) WITH ORDINALITY AS t(n, i) ORDER BY i",
    )
    .bind(names)
    .execute(conn)
    .await?;
    Ok(())
}

/// The checkpoints of `names`, in that order (the start of the log for one never written).
async fn read_checkpoints(
    conn: &mut PgConnection,
    names: &[String],
) -> Result<Vec<Cursor>, ProjectionError> {
    /// A row of `subscription_checkpoints`.
    #[derive(FromRow)]
    struct Checkpoint {
        name: String,
        #[sqlx(flatten)]
        at: CursorColumns,
    }
    let rows: Vec<Checkpoint> = sqlx::query_as(
        "SELECT name, transaction_id::text AS txid, position FROM subscription_checkpoints
          WHERE name = ANY($1)",
    )
    .bind(names)
    .fetch_all(conn)
    .await?;
    let mut cursors = vec![Cursor::START; names.len()];
    for row in &rows {
        if let Some(i) = names.iter().position(|n| *n == row.name) {
            cursors[i] = row.at.cursor()?;
        }
    }
    Ok(cursors)
}

/// Sets the checkpoints of `names` to `cursors`, in one statement.
async fn write_checkpoints(
    conn: &mut PgConnection,
    names: &[String],
    cursors: &[Cursor],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO subscription_checkpoints (name, transaction_id, position, updated_at)
         SELECT n, t::xid8, p, now() FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS c(n, t, p)
         ON CONFLICT (name) DO UPDATE
           SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position, updated_at = now()",
    )
    .bind(names)
    .bind(
        cursors
            .iter()
            .map(|c| c.transaction_id.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(cursors.iter().map(|c| c.position).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// The checkpoint of the subscription `name` (the start of the log if it has none).
pub(crate) async fn read_checkpoint(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Cursor, ProjectionError> {
    let names = [name.to_owned()];
    let cursors = read_checkpoints(conn, &names).await?;
    Ok(cursors.first().copied().unwrap_or(Cursor::START))
}

/// Sets the checkpoint of the subscription `name`.
pub(crate) async fn write_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    cursor: Cursor,
) -> Result<(), sqlx::Error> {
    write_checkpoints(conn, &[name.to_owned()], &[cursor]).await
}
