//! Stream tickets in PostgreSQL (`stream_tickets`, migration 0014), hashed: every
//! replica on the database honours a ticket another one issued, and one use wins
//! however many replicas race for it (a conditional `UPDATE … RETURNING`).

use crate::db::app_error;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shiplog_application::{AppError, Credential, TicketGrant, TicketStore};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// The `stream_tickets` table.
pub struct PgTicketStore {
    pool: PgPool,
}

impl PgTicketStore {
    /// A store on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// How a credential is kept in a ticket's row: its kind and, for a token, its id.
fn columns(credential: Credential) -> (&'static str, Option<Uuid>) {
    match credential {
        Credential::Bootstrap => ("bootstrap", None),
        Credential::Token(id) => ("token", Some(id)),
        // Never issued a ticket (see StreamTickets::issue); stored as what it is all the same.
        Credential::Identity => ("identity", None),
    }
}

#[async_trait]
impl TicketStore for PgTicketStore {
    async fn create(
        &self,
        ticket_hash: &[u8],
        grant: &TicketGrant,
        ttl: Duration,
    ) -> Result<DateTime<Utc>, AppError> {
        let (kind, token_id) = columns(grant.credential);
        // Expired tickets go as new ones come: the table holds about a minute of them.
        let (expires_at,): (DateTime<Utc>,) = sqlx::query_as(
            "WITH pruned AS (DELETE FROM stream_tickets WHERE expires_at <= now())
             INSERT INTO stream_tickets (ticket_hash, credential, token_id, principal, expires_at)
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
             RETURNING expires_at",
        )
        .bind(ticket_hash)
        .bind(kind)
        .bind(token_id)
        .bind(&grant.principal)
        .bind(ttl.as_secs_f64())
        .fetch_one(&self.pool)
        .await
        .map_err(app_error)?;
        Ok(expires_at)
    }

    async fn consume(&self, ticket_hash: &[u8]) -> Result<Option<TicketGrant>, AppError> {
        let row: Option<(String, Option<Uuid>, String)> = sqlx::query_as(
            "UPDATE stream_tickets SET used_at = now()
              WHERE ticket_hash = $1 AND used_at IS NULL AND expires_at > now()
              RETURNING credential, token_id, principal",
        )
        .bind(ticket_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(app_error)?;
        Ok(row.and_then(|(kind, token_id, principal)| {
            let credential = match (kind.as_str(), token_id) {
                ("bootstrap", _) => Credential::Bootstrap,
                ("token", Some(id)) => Credential::Token(id),
                // A kind this version does not know (a newer one wrote it) opens nothing.
                _ => return None,
            };
            Some(TicketGrant {
                credential,
                principal,
            })
        }))
    }
}
