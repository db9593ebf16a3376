//! The ledger for readers: filtered pages of the global order, a usecase's
//! events up to an instant, live following (one reader of the log per process,
//! fanned out to every subscriber), and the hash chain's verification and export.

mod history;

use crate::audit;
use crate::db::app_error;
use crate::event_log::{cursor_from, recorded_from, Wakeup, EVENT_COLUMNS, VISIBLE};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::StreamExt;
use shiplog_application::{
    AppError, ChainReport, Cursor, EventFilter, FeedItem, Ledger, RecordedEvent, SealedEvent,
};
use sqlx::{PgPool, Postgres, QueryBuilder};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tracing::{debug, warn};
use uuid::Uuid;

/// How many events a follower's catch-up reads per query, and the live reader per round.
const PAGE: u32 = 500;
/// How many sealed events the export reads per query.
const EXPORT_PAGE: i64 = 1000;

/// The Postgres ledger and this process's live feed.
pub struct PgLedger {
    pool: PgPool,
    feed: Arc<LiveFeed>,
}

impl PgLedger {
    /// Reads from `pool`; live events come from `feed` (run `LiveFeed::run` once per process).
    pub fn new(pool: PgPool, feed: Arc<LiveFeed>) -> Self {
        Self { pool, feed }
    }
}

/// Where in the global order events recorded at or after `from` can first appear.
/// `recorded_at` is not monotonic in the global order (transactions commit out of
/// order), but the chain's `ledger_time` (the latest `recorded_at` so far) is: the
/// first sealed event whose `ledger_time` reaches `from` is a safe lower bound, and
/// when none does, every match lies after the chain's head. `None`: no bound known.
async fn time_floor(pool: &PgPool, from: DateTime<Utc>) -> Result<Option<Floor>, sqlx::Error> {
    let first = sqlx::query(
        "SELECT transaction_id::text AS txid, position FROM event_chain
          WHERE ledger_time >= $1 ORDER BY ledger_time, chain_index LIMIT 1",
    )
    .bind(from)
    .fetch_optional(pool)
    .await?;
    if let Some(row) = first {
        return Ok(Some(Floor::From(cursor_from(&row)?)));
    }
    let head = sqlx::query(
        "SELECT transaction_id::text AS txid, position FROM event_chain ORDER BY chain_index DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(head
        .as_ref()
        .map(cursor_from)
        .transpose()?
        .map(Floor::After))
}

/// A lower bound on the cursors a time filter can match.
#[derive(Debug, Clone, Copy)]
enum Floor {
    /// At or after this cursor.
    From(Cursor),
    /// Strictly after this cursor.
    After(Cursor),
}

/// Builds the filtered query of the global order. Only the predicates in use are
/// part of the statement, so each combination is planned on its own index.
fn filtered_query(
    filter: &EventFilter,
    after: Cursor,
    floor: Option<Floor>,
    limit: u32,
) -> QueryBuilder<'static, Postgres> {
    let mut query = QueryBuilder::new(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE (transaction_id, position) > ("
    ));
    query
        .push_bind(after.transaction_id.to_string())
        .push("::text::xid8, ")
        .push_bind(after.position)
        .push(format!(") AND {VISIBLE}"));
    if let Some(floor) = floor {
        let (op, cursor) = match floor {
            Floor::From(c) => (">=", c),
            Floor::After(c) => (">", c),
        };
        query
            .push(format!(" AND (transaction_id, position) {op} ("))
            .push_bind(cursor.transaction_id.to_string())
            .push("::text::xid8, ")
            .push_bind(cursor.position)
            .push(")");
    }
    if let Some(id) = filter.usecase {
        query.push(" AND aggregate_id = ").push_bind(id.to_string());
    }
    if !filter.types.is_empty() {
        query
            .push(" AND event_type = ANY(")
            .push_bind(filter.types.clone())
            .push(")");
    }
    if let Some(actor) = &filter.actor {
        query
            .push(" AND metadata ->> 'actor' = ")
            .push_bind(actor.clone());
    }
    if let Some(from) = filter.from {
        query.push(" AND recorded_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND recorded_at < ").push_bind(to);
    }
    query
        .push(" ORDER BY transaction_id, position LIMIT ")
        .push_bind(i64::from(limit));
    query
}

/// Reads one page of the filtered global order.
async fn page(
    pool: &PgPool,
    filter: &EventFilter,
    after: Cursor,
    limit: u32,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let floor = match filter.from {
        Some(from) => time_floor(pool, from).await?,
        None => None,
    };
    let rows = filtered_query(filter, after, floor, limit)
        .build()
        .fetch_all(pool)
        .await?;
    rows.iter().map(recorded_from).collect()
}

/// The newest event every reader can see: where a follower that starts "now" begins.
async fn tail(pool: &PgPool) -> Result<Cursor, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT transaction_id::text AS txid, position FROM events
          WHERE {VISIBLE}
          ORDER BY transaction_id DESC, position DESC LIMIT 1"
    ))
    .fetch_optional(pool)
    .await?;
    Ok(row
        .as_ref()
        .map(cursor_from)
        .transpose()?
        .unwrap_or(Cursor::START))
}

/// Reads the log once per process and hands each new event to every follower.
/// The channel is bounded: a follower that falls `capacity` events behind is cut
/// off (it resumes from its last cursor), so no follower makes the process buffer
/// without bound.
pub struct LiveFeed {
    pool: PgPool,
    sender: broadcast::Sender<Arc<RecordedEvent>>,
    /// True once `run` fixed where it starts: a follower must not fix its own start
    /// before that, or events between the two would be neither replayed nor sent.
    ready: watch::Sender<bool>,
}

/// How long a new follower waits for the feed to start before it is told to retry.
const FEED_START: Duration = Duration::from_secs(10);

impl LiveFeed {
    /// A feed over `pool` that keeps at most `capacity` events for slow followers.
    pub fn new(pool: PgPool, capacity: usize) -> Arc<Self> {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Arc::new(Self {
            pool,
            sender,
            ready: watch::Sender::new(false),
        })
    }

    /// Returns once `run` knows where it starts (at once, after the first time).
    async fn started(&self) -> Result<(), AppError> {
        let mut ready = self.ready.subscribe();
        let started = tokio::time::timeout(FEED_START, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok());
        if started {
            return Ok(());
        }
        Err(AppError::Unavailable(
            "the live event feed has not started yet (is the database reachable?); retry"
                .to_owned(),
        ))
    }

    /// How many followers are connected now.
    pub fn followers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Follows the log until the task is dropped, woken by NOTIFY (so events written
    /// through another process on the same database arrive too) or a short poll.
    pub async fn run(self: Arc<Self>) {
        let mut wakeup = Wakeup::connect(&self.pool).await;
        let mut position = None;
        loop {
            match self.round(position).await {
                Ok(reached) => {
                    position = Some(reached);
                    self.ready.send_replace(true);
                }
                Err(e) => warn!(error = %e, "live feed could not read the log; retrying"),
            }
            wakeup.wait(Duration::from_millis(250)).await;
        }
    }

    /// Sends every event after `position` that is visible now; returns how far it got.
    async fn round(&self, position: Option<Cursor>) -> Result<Cursor, sqlx::Error> {
        let Some(mut position) = position else {
            return tail(&self.pool).await;
        };
        // Nobody listens: skip ahead without reading payloads. The tail is read
        // before the count is checked: a follower that subscribes after the check
        // catches up from the log past that tail by itself, so nothing is skipped.
        let tail = tail(&self.pool).await?;
        if self.sender.receiver_count() == 0 {
            return Ok(tail.max(position));
        }
        loop {
            let events = page(&self.pool, &EventFilter::default(), position, PAGE).await?;
            let Some(last) = events.last().map(|e| e.cursor) else {
                return Ok(position);
            };
            for event in events.iter() {
                // An error only means that nobody listens right now.
                let _ = self.sender.send(Arc::new(event.clone()));
            }
            debug!(sent = events.len(), %last, "live feed");
            position = last;
            if events.len() < PAGE as usize {
                return Ok(position);
            }
        }
    }
}

/// Retries a read of the catch-up with a growing pause: a follower outlives a
/// database restart instead of failing (its keep-alives go on meanwhile).
async fn pause(attempt: &mut u32) {
    let millis = 250u64.saturating_mul(1 << (*attempt).min(5));
    *attempt += 1;
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

#[async_trait]
impl Ledger for PgLedger {
    async fn events(
        &self,
        filter: &EventFilter,
        after: Cursor,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, AppError> {
        page(&self.pool, filter, after, limit)
            .await
            .map_err(app_error)
    }

    async fn usecase_exists(&self, usecase_id: Uuid) -> Result<bool, AppError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE aggregate_id = $1)")
            .bind(usecase_id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(app_error)
    }

    async fn follow(
        &self,
        after: Option<Cursor>,
        filter: EventFilter,
    ) -> Result<BoxStream<'static, FeedItem>, AppError> {
        let pool = self.pool.clone();
        // The feed sends everything after its own start; ours must not lie before it.
        self.feed.started().await?;
        // Subscribe and fix the starting point now, before the caller answers: every
        // event committed after the answer's headers is then part of the stream.
        let mut live = self.feed.sender.subscribe();
        let (mut last, announce) = match after {
            Some(cursor) => (cursor, false),
            None => (tail(&pool).await.map_err(app_error)?, true),
        };
        Ok(async_stream::stream! {
            if announce {
                yield FeedItem::Start { at: last };
            }
            let mut attempt = 0;
            // Catch up page by page. Each page re-subscribes first, so the live channel
            // only holds what arrived during the last page, not the whole replay.
            loop {
                live = live.resubscribe();
                let events = match page(&pool, &filter, last, PAGE).await {
                    Ok(events) => events,
                    Err(e) => {
                        warn!(error = %e, "follower cannot read the log; retrying");
                        pause(&mut attempt).await;
                        continue;
                    }
                };
                attempt = 0;
                let full = events.len() == PAGE as usize;
                for event in events {
                    last = event.cursor;
                    yield FeedItem::Event(Arc::new(event));
                }
                if !full {
                    break;
                }
            }
            // Live: anything at or before `last` was already sent by the catch-up.
            loop {
                match live.recv().await {
                    Ok(event) => {
                        if event.cursor > last && filter.matches(&event) {
                            last = event.cursor;
                            yield FeedItem::Event(event);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        yield FeedItem::Overflow { last };
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
        .boxed())
    }

    async fn verify(&self) -> Result<ChainReport, AppError> {
        audit::verify(&self.pool).await.map_err(audit_error)
    }

    fn export(&self) -> BoxStream<'static, Result<SealedEvent, AppError>> {
        let pool = self.pool.clone();
        async_stream::stream! {
            let mut after = 0;
            loop {
                match audit::export_page(&pool, after, EXPORT_PAGE).await {
                    Ok(page) => {
                        let Some(last) = page.last().map(|e| e.chain_index) else {
                            break;
                        };
                        let full = page.len() as i64 == EXPORT_PAGE;
                        for sealed in page {
                            yield Ok(sealed);
                        }
                        after = last;
                        if !full {
                            break;
                        }
                    }
                    Err(e) => {
                        yield Err(audit_error(e));
                        break;
                    }
                }
            }
        }
        .boxed()
    }
}

/// Maps the audit module's errors onto the application's.
fn audit_error(e: audit::AuditError) -> AppError {
    match e {
        audit::AuditError::Database(e) => app_error(e),
        other => AppError::Internal(other.to_string()),
    }
}
