//! Console sessions in Postgres (`console_sessions`), by the hash of their id.

use crate::db::app_error;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shiplog_application::{AppError, SessionStore, StoredSession};
use sqlx::PgPool;

/// The `console_sessions` table.
pub struct PgSessionStore {
    pool: PgPool,
}

impl PgSessionStore {
    /// A store on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl SessionStore for PgSessionStore {
    async fn create(
        &self,
        id_hash: &[u8],
        token_hash: &[u8],
        expires_at: DateTime<Utc>,
    ) -> Result<(), AppError> {
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, token_hash, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(id_hash)
        .bind(token_hash)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(app_error)?;
        Ok(())
    }

    async fn find(&self, id_hash: &[u8]) -> Result<Option<StoredSession>, AppError> {
        let row: Option<(Vec<u8>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT token_hash, expires_at FROM console_sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(app_error)?;
        Ok(row.map(|(token_hash, expires_at)| StoredSession {
            token_hash,
            expires_at,
        }))
    }

    async fn delete(&self, id_hash: &[u8]) -> Result<(), AppError> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(app_error)?;
        Ok(())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, AppError> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(app_error)?;
        Ok(done.rows_affected())
    }
}
