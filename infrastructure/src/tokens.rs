//! API tokens in Postgres, stored as hashes.

use crate::db::app_error;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shiplog_application::{AppError, Conflict, NewToken, Principal, Scope, TokenInfo, TokenStore};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

/// The `api_tokens` table.
pub struct PgTokenStore {
    pool: PgPool,
}

impl PgTokenStore {
    /// A store on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn scopes(raw: Vec<String>) -> Vec<Scope> {
    // A scope this version does not know (written by a newer one) grants nothing.
    raw.iter().filter_map(|s| s.parse().ok()).collect()
}

/// A token's row as listings show it (no hash, no revocation).
#[derive(FromRow)]
struct TokenRow {
    id: Uuid,
    name: String,
    scopes: Vec<String>,
    subject: String,
    teams: Vec<Uuid>,
    created_at: DateTime<Utc>,
    created_by: String,
}

impl From<TokenRow> for TokenInfo {
    fn from(row: TokenRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            scopes: scopes(row.scopes),
            subject: row.subject,
            teams: row.teams,
            created_at: row.created_at,
            created_by: row.created_by,
        }
    }
}

#[async_trait]
impl TokenStore for PgTokenStore {
    async fn create(&self, token: &NewToken, secret_hash: &[u8]) -> Result<TokenInfo, AppError> {
        let scope_names: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
        let row = sqlx::query_as::<_, TokenRow>(
            "INSERT INTO api_tokens (id, name, scopes, token_hash, created_by, subject, teams)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING id, name, scopes, subject, teams, created_at, created_by",
        )
        .bind(Uuid::new_v4())
        .bind(&token.name)
        .bind(&scope_names)
        .bind(secret_hash)
        .bind(&token.created_by)
        .bind(token.subject.as_deref().unwrap_or(&token.name))
        .bind(&token.teams)
        .fetch_one(&self.pool)
        .await;
        match row {
            Ok(row) => Ok(row.into()),
            Err(sqlx::Error::Database(e)) if e.constraint() == Some("api_tokens_active_name") => {
                Err(AppError::conflict(
                    Conflict::NameTaken,
                    format!("an active token named {:?} exists already", token.name),
                ))
            }
            Err(e) => Err(app_error(e)),
        }
    }

    async fn find_by_hash(&self, secret_hash: &[u8]) -> Result<Option<Principal>, AppError> {
        let row: Option<(String, Vec<String>, String, Vec<Uuid>)> = sqlx::query_as(
            "SELECT name, scopes, subject, teams FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(app_error)?;
        Ok(row.map(|(name, granted, subject, teams)| Principal {
            name,
            scopes: scopes(granted),
            subject,
            teams,
        }))
    }

    async fn list(&self) -> Result<Vec<TokenInfo>, AppError> {
        let rows: Vec<TokenRow> = sqlx::query_as(
            "SELECT id, name, scopes, subject, teams, created_at, created_by FROM api_tokens
              WHERE revoked_at IS NULL ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(app_error)?;
        Ok(rows.into_iter().map(TokenInfo::from).collect())
    }

    async fn revoke(&self, id: Uuid) -> Result<bool, AppError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(app_error)?;
        Ok(done.rows_affected() == 1)
    }
}
