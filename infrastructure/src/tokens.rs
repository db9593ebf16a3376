//! API tokens in Postgres: their events in the ledger (the `Token` aggregate), and
//! `api_tokens`, the lookup of a presented secret by its hash, written in the same
//! transaction as the events, so that no token works without its `TokenCreated`
//! and none stops being revoked without its `TokenRevoked`.

use crate::db::{app_error, is_outage};
use crate::event_store::{CachedEventStore, Companion, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shiplog_application::{
    AppError, CommandContext, Conflict, Cursor, Principal, Scope, StoredToken, TokenInfo,
    TokenStore,
};
use shiplog_domain::{Token, TokenCommand, TokenEvent};
use sqlx::{FromRow, PgConnection, PgPool};
use tracing::instrument;
use uuid::Uuid;

/// The `Token` aggregate's events and the `api_tokens` table beside them.
pub struct PgTokenStore {
    pool: PgPool,
    events: CachedEventStore<Token>,
}

impl PgTokenStore {
    /// A store on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            events: CachedEventStore::new(pool.clone(), Vec::new()),
            pool,
        }
    }
}

fn scopes(raw: Vec<String>) -> Vec<Scope> {
    // A scope this version does not know (written by a newer one) grants nothing.
    raw.iter().filter_map(|s| s.parse().ok()).collect()
}

fn scope_names(scopes: &[Scope]) -> Vec<&'static str> {
    scopes.iter().map(|s| s.as_str()).collect()
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
    expires_at: Option<DateTime<Utc>>,
}

/// The columns of a [`TokenRow`].
const TOKEN_COLUMNS: &str = "id, name, scopes, subject, teams, created_at, created_by, expires_at";

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
            expires_at: row.expires_at,
        }
    }
}

impl From<TokenRow> for StoredToken {
    fn from(row: TokenRow) -> Self {
        Self {
            id: row.id,
            expires_at: row.expires_at,
            principal: Principal {
                name: row.name,
                scopes: scopes(row.scopes),
                subject: row.subject,
                teams: row.teams,
            },
        }
    }
}

/// What a token command writes to `api_tokens` beside its events: the row (with the
/// secret's hash) for a creation, the scopes for a change, the revocation.
struct LookupRow<'a> {
    /// The hash of a new token's secret.
    secret_hash: Option<[u8; 32]>,
    /// Who made the change (the row keeps who created the token).
    actor: &'a str,
}

#[async_trait]
impl Companion<TokenEvent> for LookupRow<'_> {
    async fn write(
        &self,
        conn: &mut PgConnection,
        events: &[TokenEvent],
    ) -> Result<(), sqlx::Error> {
        for event in events {
            match event {
                TokenEvent::TokenCreated {
                    token_id,
                    name,
                    scopes,
                    subject,
                    teams,
                    expires_at,
                    at,
                } => {
                    let hash = self.secret_hash.ok_or_else(|| {
                        sqlx::Error::Protocol(
                            "a token was created without its secret's hash".into(),
                        )
                    })?;
                    sqlx::query(
                        "INSERT INTO api_tokens (id, name, scopes, token_hash, created_by, subject, teams, created_at, expires_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(token_id)
                    .bind(name)
                    .bind(scope_names(scopes))
                    .bind(&hash[..])
                    .bind(self.actor)
                    .bind(subject)
                    .bind(teams)
                    .bind(at)
                    .bind(expires_at)
                    .execute(&mut *conn)
                    .await?;
                }
                TokenEvent::TokenScopesChanged {
                    token_id, scopes, ..
                } => {
                    sqlx::query("UPDATE api_tokens SET scopes = $2 WHERE id = $1")
                        .bind(token_id)
                        .bind(scope_names(scopes))
                        .execute(&mut *conn)
                        .await?;
                }
                TokenEvent::TokenRevoked { token_id, at, .. } => {
                    sqlx::query(
                        "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                    )
                    .bind(token_id)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// What a failed token command means to the client: the aggregate's refusal, a name
/// in use by another active token (the lookup table's unique index), an outage or a bug.
fn failure(err: StoreError, command: &str) -> AppError {
    match err {
        StoreError::Refused(e) => e.into(),
        StoreError::Busy => AppError::Unavailable("the token is too busy; retry".to_owned()),
        StoreError::Database(sql) if is_outage(&sql) => {
            AppError::Unavailable(format!("database unavailable: {sql}"))
        }
        StoreError::Database(sqlx::Error::Database(db))
            if db.constraint() == Some("api_tokens_active_name") =>
        {
            AppError::conflict(
                Conflict::NameTaken,
                format!("an active token named {command:?} exists already"),
            )
        }
        StoreError::Database(sql) => app_error(sql),
    }
}

impl PgTokenStore {
    /// The token's row, revoked or not.
    async fn row(&self, id: Uuid) -> Result<Option<TokenRow>, AppError> {
        sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(app_error)
    }
}

#[async_trait]
impl TokenStore for PgTokenStore {
    #[instrument(skip(self, command, secret_hash, ctx), fields(kind = command.kind(), request_id = %ctx.request_id))]
    async fn execute(
        &self,
        id: Uuid,
        command: TokenCommand,
        secret_hash: Option<[u8; 32]>,
        ctx: &CommandContext,
    ) -> Result<(TokenInfo, Option<Cursor>), AppError> {
        let name = match &command {
            TokenCommand::Create { name, .. } => name.clone(),
            _ => String::new(),
        };
        let lookup = LookupRow {
            secret_hash,
            actor: &ctx.actor,
        };
        let committed = self
            .events
            .execute_with(&id.to_string(), command, ctx, Some(&lookup))
            .await
            .map_err(|e| failure(e, &name))?;
        let row = self.row(id).await?.ok_or_else(|| {
            AppError::Internal(format!("token {id} has events but no lookup row"))
        })?;
        Ok((row.into(), committed.cursor))
    }

    async fn find_by_hash(&self, secret_hash: &[u8]) -> Result<Option<StoredToken>, AppError> {
        let row: Option<TokenRow> = sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(app_error)?;
        Ok(row.map(StoredToken::from))
    }

    async fn find_by_id(&self, id: Uuid) -> Result<Option<StoredToken>, AppError> {
        let row: Option<TokenRow> = sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1 AND revoked_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(app_error)?;
        Ok(row.map(StoredToken::from))
    }

    async fn list(&self) -> Result<Vec<TokenInfo>, AppError> {
        let rows: Vec<TokenRow> = sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE revoked_at IS NULL ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(app_error)?;
        Ok(rows.into_iter().map(TokenInfo::from).collect())
    }
}
