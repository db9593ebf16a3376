//! API tokens in Postgres, stored as hashes.

use crate::db::app_error;
use async_trait::async_trait;
use shiplog_application::{AppError, Conflict, NewToken, Principal, Scope, TokenInfo, TokenStore};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
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

fn info(row: &PgRow) -> Result<TokenInfo, sqlx::Error> {
    Ok(TokenInfo {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        scopes: scopes(row.try_get("scopes")?),
        subject: row.try_get("subject")?,
        teams: row.try_get("teams")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}

#[async_trait]
impl TokenStore for PgTokenStore {
    async fn create(&self, token: &NewToken, secret_hash: &[u8]) -> Result<TokenInfo, AppError> {
        let scope_names: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
        let row = sqlx::query(
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
            Ok(row) => info(&row).map_err(app_error),
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
        let row = sqlx::query(
            "SELECT name, scopes, subject, teams FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(app_error)?;
        row.map(|row| -> Result<Principal, sqlx::Error> {
            Ok(Principal {
                name: row.try_get("name")?,
                scopes: scopes(row.try_get("scopes")?),
                subject: row.try_get("subject")?,
                teams: row.try_get("teams")?,
            })
        })
        .transpose()
        .map_err(app_error)
    }

    async fn list(&self) -> Result<Vec<TokenInfo>, AppError> {
        let rows = sqlx::query(
            "SELECT id, name, scopes, subject, teams, created_at, created_by FROM api_tokens
              WHERE revoked_at IS NULL ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(app_error)?;
        rows.iter()
            .map(info)
            .collect::<Result<_, _>>()
            .map_err(app_error)
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
