//! The ledger for readers: filtered pages of the global order, a usecase's
//! events up to an instant, live following (catch-up from the log, then the
//! process's shared live feed), and the hash chain's verification and export.

mod history;

use crate::audit;
use crate::db::app_error;
use crate::event_log::{cursor_from, recorded_from, EVENT_COLUMNS, VISIBLE};
use crate::live_feed::LiveFeed;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::StreamExt;
use shiplog_application::{
    AppError, ChainReport, Cursor, EventFilter, FeedItem, Ledger, RecordedEvent, SealedEvent,
};
use sqlx::{PgPool, Postgres, QueryBuilder};
use std::sync::Arc;
use uuid::Uuid;

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
pub(crate) async fn page(
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
pub(crate) async fn tail(pool: &PgPool) -> Result<Cursor, sqlx::Error> {
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
        self.feed.follow(after, filter).await
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
