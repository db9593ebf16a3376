//! Reading the event log in its global order, which never skips an event.

use shiplog_application::Cursor;
pub use shiplog_application::RecordedEvent;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, Row};

/// The columns a cursor is stored in: `txid` (selected as `transaction_id::text`,
/// as sqlx has no xid8 codec) and `position`. `#[sqlx(flatten)]` it into a row.
#[derive(FromRow)]
pub(crate) struct CursorColumns {
    txid: String,
    position: i64,
}

impl CursorColumns {
    /// The cursor they hold; a decode error when `txid` is not a number.
    pub(crate) fn cursor(&self) -> Result<Cursor, sqlx::Error> {
        let transaction_id = self
            .txid
            .parse::<u64>()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(Cursor {
            transaction_id,
            position: self.position,
        })
    }
}

/// Reads a cursor from a row with the columns of [`CursorColumns`].
pub(crate) fn cursor_from(row: &PgRow) -> Result<Cursor, sqlx::Error> {
    CursorColumns::from_row(row)?.cursor()
}

/// The channel the events table notifies on insert (migration 0001's trigger).
pub const EVENTS_CHANNEL: &str = "shiplog_events";

/// The columns `recorded_from` reads, for a `SELECT` on `events`.
pub(crate) const EVENT_COLUMNS: &str =
    "transaction_id::text AS txid, position, aggregate_type, aggregate_id, sequence, event_type,
    event_version, payload, metadata, recorded_at";

/// Reads one event from a row selected with `EVENT_COLUMNS`.
pub(crate) fn recorded_from(row: &PgRow) -> Result<RecordedEvent, sqlx::Error> {
    Ok(RecordedEvent {
        cursor: cursor_from(row)?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

/// The rule that makes the global order safe to follow: an event is visible once
/// its transaction is older than every transaction still running, so nothing can
/// later commit before it. A `WHERE` condition on `events.transaction_id`.
pub(crate) const VISIBLE: &str = "transaction_id < pg_snapshot_xmin(pg_current_snapshot())";

/// Reads the events table in the global order.
pub struct EventLog;

impl EventLog {
    /// Up to `limit` events after `after`, in global order, that no reader can ever
    /// see out of order: only events of transactions older than every transaction
    /// still running (`pg_snapshot_xmin`) are returned, so a transaction that
    /// commits late is read later, never skipped.
    pub async fn read_after(
        conn: &mut PgConnection,
        after: Cursor,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS}
               FROM events
              WHERE (transaction_id, position) > ($1::text::xid8, $2)
                AND {VISIBLE}
              ORDER BY transaction_id, position
              LIMIT $3"
        ))
        .bind(after.transaction_id.to_string())
        .bind(after.position)
        .bind(limit)
        .fetch_all(conn)
        .await?;
        rows.iter().map(recorded_from).collect()
    }

    /// The cursor of the newest event of one aggregate, once committed.
    pub async fn last_of(
        conn: &mut PgConnection,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<Cursor>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT transaction_id::text AS txid, position FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2
              ORDER BY sequence DESC LIMIT 1",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_optional(conn)
        .await?;
        row.as_ref().map(cursor_from).transpose()
    }
}

/// Wakes a subscriber when events are appended (LISTEN/NOTIFY), or after a
/// timeout. Only a hint: subscribers always re-read from their checkpoint, so a
/// lost notification costs at most one timeout.
pub struct Wakeup {
    listener: Option<sqlx::postgres::PgListener>,
}

impl Wakeup {
    /// Listens on the events channel; without a listener it falls back to polling.
    pub async fn connect(pool: &sqlx::PgPool) -> Self {
        Self::on(pool, EVENTS_CHANNEL).await
    }

    /// Listens on `channel`; without a listener it falls back to polling.
    pub async fn on(pool: &sqlx::PgPool, channel: &str) -> Self {
        let listener = match sqlx::postgres::PgListener::connect_with(pool).await {
            Ok(mut l) => match l.listen(channel).await {
                Ok(()) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, %channel, "cannot LISTEN; polling instead");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, %channel, "cannot LISTEN; polling instead");
                None
            }
        };
        Self { listener }
    }

    /// Returns on the next notification or after `max`.
    pub async fn wait(&mut self, max: std::time::Duration) {
        let notified = async {
            match self.listener.as_mut() {
                // recv() reconnects by itself after a lost connection.
                Some(l) => {
                    if l.recv().await.is_err() {
                        tokio::time::sleep(max).await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        let _ = tokio::time::timeout(max, notified).await;
    }
}
