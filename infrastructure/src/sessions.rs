//! Console sessions in Postgres (`console_sessions`), by the hash of their id.

use crate::db::app_error;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shiplog_application::{AppError, SessionBasis, SessionPrincipal, SessionStore, StoredSession};
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
        basis: &SessionBasis,
        expires_at: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let (token_hash, principal) = match basis {
            SessionBasis::Token(hash) => (Some(hash.as_slice()), None),
            SessionBasis::Identity(principal) => (None, Some(sqlx::types::Json(principal))),
        };
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, token_hash, principal, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id_hash)
        .bind(token_hash)
        .bind(principal)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(app_error)?;
        Ok(())
    }

    async fn find(&self, id_hash: &[u8]) -> Result<Option<StoredSession>, AppError> {
        type Row = (
            Option<Vec<u8>>,
            Option<sqlx::types::Json<SessionPrincipal>>,
            DateTime<Utc>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT token_hash, principal, expires_at FROM console_sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(app_error)?;
        // The table's check keeps exactly one of the two; a row with neither opens nothing.
        Ok(row.and_then(|(token_hash, principal, expires_at)| {
            let basis = match (token_hash, principal) {
                (Some(hash), _) => SessionBasis::Token(hash),
                (None, Some(principal)) => SessionBasis::Identity(principal.0),
                (None, None) => return None,
            };
            Some(StoredSession { basis, expires_at })
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
