//! The index lookups time travel folds from (`HistoryIndex`): each reads a few
//! rows of one usecase through an index of its own (migration
//! `0010_time_travel.sql`), so `?at=` costs the same however long the history.

use super::PgLedger;
use crate::db::app_error;
use crate::event_log::{recorded_from, EVENT_COLUMNS};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shiplog_application::{AppError, HistoryIndex, RecordedEvent};
use sqlx::postgres::PgRow;
use uuid::Uuid;

/// Decodes rows selected with `EVENT_COLUMNS`.
fn recorded(rows: &[PgRow]) -> Result<Vec<RecordedEvent>, AppError> {
    rows.iter()
        .map(recorded_from)
        .collect::<Result<_, _>>()
        .map_err(app_error)
}

#[async_trait]
impl HistoryIndex for PgLedger {
    async fn sequence_at(
        &self,
        usecase_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<i64>, AppError> {
        sqlx::query_scalar(
            "SELECT sequence FROM events
              WHERE aggregate_id = $1 AND recorded_at <= $2
              ORDER BY recorded_at DESC, sequence DESC LIMIT 1",
        )
        .bind(usecase_id.to_string())
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(app_error)
    }

    async fn latest_of_types(
        &self,
        usecase_id: Uuid,
        upto: i64,
        types: &[&str],
    ) -> Result<Vec<RecordedEvent>, AppError> {
        // The event at `upto` and the latest of each type, by sequence; one appears
        // twice when it is both, hence DISTINCT ON.
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT ON (sequence) * FROM (
                 SELECT {EVENT_COLUMNS} FROM events
                  WHERE aggregate_id = $1 AND sequence = $2
                 UNION ALL
                 SELECT latest.* FROM unnest($3::text[]) AS wanted(event_type)
                  CROSS JOIN LATERAL (
                      SELECT {EVENT_COLUMNS} FROM events
                       WHERE aggregate_id = $1 AND event_type = wanted.event_type
                         AND sequence <= $2
                       ORDER BY sequence DESC LIMIT 1) AS latest
             ) AS chosen
             ORDER BY sequence"
        ))
        .bind(usecase_id.to_string())
        .bind(upto)
        .bind(types)
        .fetch_all(&self.pool)
        .await
        .map_err(app_error)?;
        recorded(&rows)
    }

    async fn requests_before(
        &self,
        usecase_id: Uuid,
        before: i64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, AppError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
              WHERE aggregate_id = $1 AND event_type = 'DeploymentRequested' AND sequence < $2
              ORDER BY sequence DESC LIMIT $3"
        ))
        .bind(usecase_id.to_string())
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(app_error)?;
        recorded(&rows)
    }

    async fn requests_up_to(&self, usecase_id: Uuid, upto: i64) -> Result<i64, AppError> {
        sqlx::query_scalar(
            "SELECT count(*) FROM events
              WHERE aggregate_id = $1 AND event_type = 'DeploymentRequested' AND sequence <= $2",
        )
        .bind(usecase_id.to_string())
        .bind(upto)
        .fetch_one(&self.pool)
        .await
        .map_err(app_error)
    }

    async fn deployment_events(
        &self,
        usecase_id: Uuid,
        deployment_id: Uuid,
        upto: i64,
    ) -> Result<Vec<RecordedEvent>, AppError> {
        // The expression is the index's: an event's payload is `{"<its type>": {...}}`.
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
              WHERE aggregate_id = $1
                AND ((payload -> event_type) ->> 'deploymentId') = $2
                AND sequence <= $3
              ORDER BY sequence"
        ))
        .bind(usecase_id.to_string())
        .bind(deployment_id.to_string())
        .bind(upto)
        .fetch_all(&self.pool)
        .await
        .map_err(app_error)?;
        recorded(&rows)
    }
}
