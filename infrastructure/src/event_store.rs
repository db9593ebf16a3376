//! Appending a command's events to the ledger, deciding it on an aggregate this
//! process keeps in memory.
//!
//! cqrs-es's framework loads an aggregate by replaying every one of its events
//! for every command, so a usecase with thousands of events costs thousands of
//! rows per command (and its snapshot stores are broken in 0.5, see
//! ../shared/stack-notes.md). Here each aggregate stays folded in a bounded cache,
//! behind a lock of its own: a command reads only the events appended since (by
//! another process, or none), decides on the current state without changing it,
//! and appends its events in one `INSERT … RETURNING` that gives the cursor too.
//! The cached state changes only after the insert committed, so a failed command
//! leaves nothing behind; a concurrent writer's events (a primary-key conflict on
//! `(aggregate_type, aggregate_id, sequence)`) are read and the command decided
//! again. The table and its rows are exactly postgres-es's.

use crate::db::app_error;
use crate::event_log::{cursor_from, CursorColumns};
use cqrs_es::{Aggregate, DomainEvent, EventEnvelope, Query};
use lru::LruCache;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shiplog_application::{AppError, CommandContext, Cursor};
use shiplog_domain::{DomainError, Team, Token, Usecase};
use sqlx::{FromRow, PgConnection, PgPool, Postgres, QueryBuilder};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use tracing::{instrument, warn};

/// How many aggregates one process keeps folded; the least recently used go first.
pub const CACHED_AGGREGATES: usize = 4096;
/// How often a command is decided again after another writer appended first.
const MAX_ATTEMPTS: usize = 8;

/// An aggregate that decides a command without changing itself: what the store needs.
pub trait Decide: Aggregate<Error = DomainError> + Clone + Default
where
    Self::Event: Serialize + DeserializeOwned,
{
    /// The events `command` produces, or why it is refused.
    fn decide_command(&self, command: Self::Command) -> Result<Vec<Self::Event>, DomainError>;
}

impl Decide for Usecase {
    fn decide_command(&self, command: Self::Command) -> Result<Vec<Self::Event>, DomainError> {
        self.decide(command)
    }
}

impl Decide for Team {
    fn decide_command(&self, command: Self::Command) -> Result<Vec<Self::Event>, DomainError> {
        self.decide(command)
    }
}

impl Decide for Token {
    fn decide_command(&self, command: Self::Command) -> Result<Vec<Self::Event>, DomainError> {
        self.decide(command)
    }
}

/// Rows a command writes beside its events, in their transaction: both commit or
/// neither (a token's lookup row and its `TokenCreated`, say). Its own refusals
/// (a unique constraint) fail the command as the events' would.
#[async_trait::async_trait]
pub trait Companion<E: Sync>: Send + Sync {
    /// Writes what `events`, about to be committed, need beside them.
    async fn write(&self, conn: &mut PgConnection, events: &[E]) -> Result<(), sqlx::Error>;
}

/// One aggregate as this process has folded it.
struct Entry<A> {
    /// The state after `version` events.
    aggregate: A,
    /// How many events are folded into it (the last sequence).
    version: i64,
    /// The cursor of its newest event, once known.
    last: Option<Cursor>,
}

impl<A: Default> Entry<A> {
    fn new() -> Self {
        Self {
            aggregate: A::default(),
            version: 0,
            last: None,
        }
    }
}

/// An event appended to an aggregate's stream, as a command catches up on it.
#[derive(FromRow)]
struct Appended {
    sequence: i64,
    payload: serde_json::Value,
    #[sqlx(flatten)]
    at: CursorColumns,
}

/// What a committed command produced.
pub struct Committed<A: Aggregate> {
    /// Its events, in order (empty when the command changed nothing).
    pub events: Vec<A::Event>,
    /// The cursor of the aggregate's newest event (the command's last, or the one before).
    pub cursor: Option<Cursor>,
}

/// Why a command could not be appended: the aggregate refused it, another
/// writer kept winning, or the database failed (its own refusals included).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The aggregate refused the command.
    #[error(transparent)]
    Refused(#[from] DomainError),
    /// The insert broke a constraint other than the stream's own sequence (a
    /// trigger's refusal, a taken name): the caller knows what it means.
    #[error("{0}")]
    Database(sqlx::Error),
    /// Other writers appended to the same aggregate every time.
    #[error("too busy")]
    Busy,
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::Database(err)
    }
}

/// The events of aggregates of type `A`, with the cache of their folded states.
pub struct CachedEventStore<A: Aggregate> {
    pool: PgPool,
    cache: Mutex<LruCache<String, Arc<tokio::sync::Mutex<Entry<A>>>>>,
    queries: Vec<Box<dyn Query<A>>>,
}

impl<A> CachedEventStore<A>
where
    A: Decide,
    A::Event: Serialize + DeserializeOwned,
{
    /// A store over the events table of `pool`; `queries` are told of every commit
    /// (as cqrs-es dispatches them).
    pub fn new(pool: PgPool, queries: Vec<Box<dyn Query<A>>>) -> Self {
        let capacity = NonZeroUsize::new(CACHED_AGGREGATES).unwrap_or(NonZeroUsize::MIN);
        Self {
            pool,
            cache: Mutex::new(LruCache::new(capacity)),
            queries,
        }
    }

    /// The cache entry of `id`, created empty when this process has none.
    fn entry(&self, id: &str) -> Arc<tokio::sync::Mutex<Entry<A>>> {
        // A poisoned map only means another thread panicked mid-insert: its contents are intact.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get_or_insert(id.to_owned(), || {
                Arc::new(tokio::sync::Mutex::new(Entry::new()))
            })
            .clone()
    }

    /// Folds the events appended to `id` after what `entry` holds.
    async fn catch_up(&self, id: &str, entry: &mut Entry<A>) -> Result<(), sqlx::Error> {
        let rows: Vec<Appended> = sqlx::query_as(
            "SELECT sequence, payload, transaction_id::text AS txid, position FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
              ORDER BY sequence",
        )
        .bind(A::TYPE)
        .bind(id)
        .bind(entry.version)
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let event: A::Event = serde_json::from_value(row.payload)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            entry.aggregate.apply(event);
            entry.version = row.sequence;
            entry.last = Some(row.at.cursor()?);
        }
        Ok(())
    }

    /// The aggregate `id` as the ledger has it now (a default one when it has no event).
    pub async fn load(&self, id: &str) -> Result<A, AppError> {
        let entry = self.entry(id);
        let mut entry = entry.lock().await;
        self.catch_up(id, &mut entry).await.map_err(app_error)?;
        Ok(entry.aggregate.clone())
    }

    /// Decides `command` on `id` and appends its events with `ctx` as metadata.
    pub async fn execute(
        &self,
        id: &str,
        command: A::Command,
        ctx: &CommandContext,
    ) -> Result<Committed<A>, StoreError>
    where
        A::Command: Clone,
    {
        self.execute_with(id, command, ctx, None).await
    }

    /// As [`CachedEventStore::execute`], with `companion` writing its rows in the
    /// events' transaction.
    #[instrument(skip(self, command, ctx, companion), fields(aggregate = A::TYPE, request_id = %ctx.request_id))]
    pub async fn execute_with(
        &self,
        id: &str,
        command: A::Command,
        ctx: &CommandContext,
        companion: Option<&dyn Companion<A::Event>>,
    ) -> Result<Committed<A>, StoreError>
    where
        A::Command: Clone,
        A::Event: Sync,
    {
        let entry = self.entry(id);
        let mut entry = entry.lock().await;
        let metadata = metadata(ctx);
        for attempt in 1..=MAX_ATTEMPTS {
            self.catch_up(id, &mut entry).await?;
            let events = entry.aggregate.decide_command(command.clone())?;
            if events.is_empty() {
                return Ok(Committed {
                    events,
                    cursor: entry.last,
                });
            }
            match self
                .append(id, entry.version, &events, &metadata, companion)
                .await
            {
                Ok(cursor) => {
                    let first = entry.version + 1;
                    for event in events.iter().cloned() {
                        entry.aggregate.apply(event);
                    }
                    entry.version += events.len() as i64;
                    entry.last = Some(cursor);
                    self.dispatch(id, first, &events, &metadata).await;
                    return Ok(Committed {
                        events,
                        cursor: Some(cursor),
                    });
                }
                // Another writer appended first: read its events and decide again.
                Err(sqlx::Error::Database(e)) if e.constraint() == Some("events_pkey") => {
                    warn!(
                        attempt,
                        id, "another writer appended to this stream first; deciding again"
                    );
                }
                Err(e) => return Err(StoreError::Database(e)),
            }
        }
        Err(StoreError::Busy)
    }

    /// Inserts the events after `version` in one statement (in one transaction with
    /// what `companion` writes); returns the cursor of the last.
    async fn append(
        &self,
        id: &str,
        version: i64,
        events: &[A::Event],
        metadata: &serde_json::Value,
        companion: Option<&dyn Companion<A::Event>>,
    ) -> Result<Cursor, sqlx::Error>
    where
        A::Event: Sync,
    {
        let mut insert: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) ",
        );
        let mut rows = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let payload =
                serde_json::to_value(event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            rows.push((
                version + 1 + i as i64,
                event.event_type(),
                event.event_version(),
                payload,
            ));
        }
        insert.push_values(rows, |mut row, (sequence, kind, event_version, payload)| {
            row.push_bind(A::TYPE)
                .push_bind(id)
                .push_bind(sequence)
                .push_bind(kind)
                .push_bind(event_version)
                .push_bind(payload)
                .push_unseparated("::json")
                .push_bind(metadata.clone())
                .push_unseparated("::json");
        });
        insert.push(" RETURNING transaction_id::text AS txid, position");
        let returned = match companion {
            None => insert.build().fetch_all(&self.pool).await?,
            Some(companion) => {
                let mut tx = self.pool.begin().await?;
                let returned = insert.build().fetch_all(&mut *tx).await?;
                companion.write(&mut tx, events).await?;
                tx.commit().await?;
                returned
            }
        };
        let last = returned.last().ok_or_else(|| {
            sqlx::Error::Protocol("the insert of a command's events returned no row".to_owned())
        })?;
        cursor_from(last)
    }

    /// Tells the queries of the committed events, as cqrs-es does after a commit.
    async fn dispatch(
        &self,
        id: &str,
        first: i64,
        events: &[A::Event],
        metadata: &serde_json::Value,
    ) {
        if self.queries.is_empty() {
            return;
        }
        let metadata: HashMap<String, String> = metadata
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect();
        let envelopes: Vec<EventEnvelope<A>> = events
            .iter()
            .enumerate()
            .map(|(i, event)| EventEnvelope {
                aggregate_id: id.to_owned(),
                sequence: usize::try_from(first + i as i64).unwrap_or_default(),
                payload: event.clone(),
                metadata: metadata.clone(),
            })
            .collect();
        for query in &self.queries {
            query.dispatch(id, &envelopes).await;
        }
    }
}

/// Who and why, recorded with every event of a command.
fn metadata(ctx: &CommandContext) -> serde_json::Value {
    let mut metadata = serde_json::json!({
        "actor": ctx.actor,
        "request_id": ctx.request_id,
    });
    if let Some(causation) = ctx.causation {
        metadata["causation"] = serde_json::Value::String(causation.to_string());
    }
    if let Some(reason) = &ctx.reason {
        metadata["reason"] = serde_json::Value::String(reason.clone());
    }
    metadata
}
