//! Read models fed by durable subscriptions over the global event order.
//!
//! Each projection keeps a checkpoint in `subscription_checkpoints`, written in
//! the same transaction as its rows, so a crash never loses or repeats an
//! update. Several shiplog processes may run the same projections: a
//! transaction-scoped advisory lock per projection lets one apply a batch at a
//! time, and the others then start from the checkpoint it committed.

mod deployment_view;
mod revision_view;
mod team_view;
mod usecase_view;

pub use deployment_view::DeploymentViewProjection;
pub use revision_view::RevisionViewProjection;
pub use team_view::TeamViewProjection;
pub use usecase_view::UsecaseViewProjection;

use crate::event_log::{cursor_from, EventLog, RecordedEvent, Wakeup};
use async_trait::async_trait;
use cqrs_es::Aggregate;
use shiplog_application::Cursor;
use shiplog_domain::{Team, TeamEvent, UsecaseEvent};
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tracing::{debug, instrument, warn};
use uuid::Uuid;

/// How many events one projection transaction applies at most.
const BATCH: i64 = 500;
/// The channel the events table notifies on insert.
pub const EVENTS_CHANNEL: &str = "shiplog_events";
/// How long read-your-writes waits for the projections before answering anyway.
const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(5);

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
}

/// An event decoded for projections: the typed payload plus where and by whom.
pub struct ProjectedEvent<'a> {
    /// The raw stored event.
    pub raw: &'a RecordedEvent,
    /// The usecase it belongs to.
    pub usecase_id: Uuid,
    /// The typed event.
    pub event: UsecaseEvent,
}

/// A stored event decoded as what it is about: a usecase or a team.
// One lives at a time, for one event of a batch: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Decoded<'a> {
    /// A usecase's event, for the usecase projections.
    Usecase(ProjectedEvent<'a>),
    /// A team's event, for the team projection.
    Team(Uuid, TeamEvent),
}

impl<'a> Decoded<'a> {
    fn decode(raw: &'a RecordedEvent) -> Result<Self, ProjectionError> {
        if raw.aggregate_type != Team::TYPE {
            return ProjectedEvent::decode(raw).map(Self::Usecase);
        }
        Ok(Self::Team(aggregate_uuid(raw)?, payload(raw)?))
    }

    /// Applies it to `projection`: a usecase event to every projection, a team event
    /// to those that keep teams.
    async fn apply_to(
        &self,
        projection: &dyn Projection,
        conn: &mut PgConnection,
        raw: &RecordedEvent,
    ) -> Result<(), sqlx::Error> {
        match self {
            Self::Usecase(event) => projection.apply(conn, event).await,
            Self::Team(team_id, event) => projection.apply_team(conn, raw, *team_id, event).await,
        }
    }
}

/// The typed payload of a stored event.
fn payload<T: serde::de::DeserializeOwned>(raw: &RecordedEvent) -> Result<T, ProjectionError> {
    serde_json::from_value(raw.payload.clone()).map_err(|source| ProjectionError::Payload {
        cursor: raw.cursor,
        event_type: raw.event_type.clone(),
        source,
    })
}

/// The aggregate id of a stored event, which must be a UUID.
fn aggregate_uuid(raw: &RecordedEvent) -> Result<Uuid, ProjectionError> {
    raw.aggregate_id
        .parse()
        .map_err(|_| ProjectionError::AggregateId(raw.cursor))
}

impl<'a> ProjectedEvent<'a> {
    fn decode(raw: &'a RecordedEvent) -> Result<Self, ProjectionError> {
        Ok(Self {
            event: payload(raw)?,
            usecase_id: aggregate_uuid(raw)?,
            raw,
        })
    }
}

/// One read model: its name (the checkpoint key), its tables, and how an event changes them.
#[async_trait]
pub trait Projection: Send + Sync {
    /// The checkpoint name; never change it once deployed.
    fn name(&self) -> &'static str;
    /// The tables it owns, emptied by a rebuild.
    fn tables(&self) -> &'static [&'static str];
    /// Applies one usecase event inside the subscription's transaction.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &ProjectedEvent<'_>,
    ) -> Result<(), sqlx::Error>;
    /// Applies one team event; projections of usecases ignore them.
    async fn apply_team(
        &self,
        _conn: &mut PgConnection,
        _raw: &RecordedEvent,
        _team_id: Uuid,
        _event: &TeamEvent,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

/// Runs the projections: follows the log, wakes on NOTIFY, and tells waiters how far it got.
pub struct Projector {
    pool: PgPool,
    projections: Vec<Arc<dyn Projection>>,
    progress: watch::Sender<Cursor>,
    kick: Notify,
}

impl Projector {
    /// The projector for shiplog's read models (`usecase_view`, `deployment_view`,
    /// `revision_view`, `team_view`).
    pub fn new(pool: PgPool) -> Arc<Self> {
        let projections: Vec<Arc<dyn Projection>> = vec![
            Arc::new(UsecaseViewProjection),
            Arc::new(DeploymentViewProjection),
            Arc::new(RevisionViewProjection),
            Arc::new(TeamViewProjection),
        ];
        Arc::new(Self {
            pool,
            projections,
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
            if applied < BATCH as usize {
                return Ok(());
            }
        }
    }

    /// One batch in one transaction for all projections, so that the read models
    /// always agree with each other (a usecase and its deployments are never seen
    /// at different points of the log). Each projection still keeps its own
    /// checkpoint and only applies events past it. Returns the lowest checkpoint
    /// afterwards and how many events were read.
    #[instrument(skip(self))]
    async fn step(&self) -> Result<(Cursor, usize), ProjectionError> {
        let mut tx = self.pool.begin().await?;
        let mut checkpoints = Vec::with_capacity(self.projections.len());
        for projection in &self.projections {
            lock(&mut tx, projection.name()).await?;
            checkpoints.push(read_checkpoint(&mut tx, projection.name()).await?);
        }
        let lowest = checkpoints.iter().copied().min().unwrap_or(Cursor::START);
        let events = EventLog::read_after(&mut tx, lowest, BATCH).await?;
        let Some(last) = events.last().map(|e| e.cursor) else {
            return Ok((lowest, 0));
        };
        for raw in &events {
            let event = Decoded::decode(raw)?;
            for (projection, checkpoint) in self.projections.iter().zip(&checkpoints) {
                if raw.cursor > *checkpoint {
                    event.apply_to(projection.as_ref(), &mut tx, raw).await?;
                }
            }
        }
        for (projection, checkpoint) in self.projections.iter().zip(&checkpoints) {
            // Never move a checkpoint backwards: that would apply events twice.
            write_checkpoint(&mut tx, projection.name(), last.max(*checkpoint)).await?;
        }
        tx.commit().await?;
        debug!(applied = events.len(), %last, "projected");
        Ok((last, events.len()))
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

    /// Empties every read model and replays the whole log into it in one
    /// transaction: readers see the old rows until the new ones are complete.
    /// Returns the number of events replayed.
    #[instrument(skip(self))]
    pub async fn rebuild(&self) -> Result<u64, ProjectionError> {
        let mut tx = self.pool.begin().await?;
        for projection in &self.projections {
            lock(&mut tx, projection.name()).await?;
            for table in projection.tables() {
                sqlx::query(&format!("TRUNCATE {table}"))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let mut cursor = Cursor::START;
        let mut replayed = 0u64;
        loop {
            let events = EventLog::read_after(&mut tx, cursor, BATCH).await?;
            let Some(last) = events.last().map(|e| e.cursor) else {
                break;
            };
            for raw in &events {
                let event = Decoded::decode(raw)?;
                for projection in &self.projections {
                    event.apply_to(projection.as_ref(), &mut tx, raw).await?;
                }
            }
            replayed += events.len() as u64;
            cursor = last;
        }
        for projection in &self.projections {
            write_checkpoint(&mut tx, projection.name(), cursor).await?;
        }
        tx.commit().await?;
        Ok(replayed)
    }
}

async fn lock(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('shiplog.subscription'), hashtext($1))")
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn read_checkpoint(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Cursor, ProjectionError> {
    let row = sqlx::query("SELECT transaction_id::text AS txid, position FROM subscription_checkpoints WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?;
    let Some(row) = row else {
        return Ok(Cursor::START);
    };
    Ok(cursor_from(&row)?)
}

pub(crate) async fn write_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    cursor: Cursor,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO subscription_checkpoints (name, transaction_id, position, updated_at)
         VALUES ($1, $2::text::xid8, $3, now())
         ON CONFLICT (name) DO UPDATE
           SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position, updated_at = now()",
    )
    .bind(name)
    .bind(cursor.transaction_id.to_string())
    .bind(cursor.position)
    .execute(conn)
    .await?;
    Ok(())
}
