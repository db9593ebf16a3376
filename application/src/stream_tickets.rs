//! Stream tickets: short-lived, single-use secrets for the one place a client
//! cannot send a header, a browser's `EventSource` URL. A long-lived token in a
//! URL ends up in logs and histories; a ticket there is worth nothing a minute
//! later, or once used. A ticket opens an event or log stream as the principal that
//! asked for it, whose access is checked again when it is used (a token revoked in
//! between makes its tickets worthless). Tickets are operational state, like
//! sessions, not ledger events.

use crate::auth::{hash_secret, Authenticator, Credential, Principal};
use crate::error::AppError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::RngCore;
use std::sync::Arc;
use std::time::Duration;

/// How long a ticket is valid by default: long enough to open a stream, short
/// enough that a logged URL is useless.
pub const DEFAULT_TICKET_TTL: Duration = Duration::from_secs(60);

/// What the store keeps of a ticket: never the ticket itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketGrant {
    /// Who asked for it: checked again on use.
    pub credential: Credential,
    /// The principal's name, for the record.
    pub principal: String,
}

/// Tickets, hashed, in storage every replica shares.
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Stores a ticket's hash valid for `ttl` and removes tickets that have expired;
    /// answers when it expires (the database's clock, which every replica shares).
    async fn create(
        &self,
        ticket_hash: &[u8],
        grant: &TicketGrant,
        ttl: Duration,
    ) -> Result<DateTime<Utc>, AppError>;
    /// Marks the ticket used, atomically, if it exists, is unused and has not expired:
    /// of two concurrent uses (on any replicas) one gets the grant, the other `None`.
    async fn consume(&self, ticket_hash: &[u8]) -> Result<Option<TicketGrant>, AppError>;
}

/// A new ticket: the secret (shown once) and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTicket {
    /// The ticket, for `?ticket=`.
    pub ticket: String,
    /// When it stops working, used or not.
    pub expires_at: DateTime<Utc>,
}

/// The refusal of every ticket that cannot open a stream; it says no more than
/// which rule a ticket follows, whichever it broke.
pub const TICKET_REFUSED: &str =
    "this stream ticket is unknown, used or expired: a ticket opens one stream, within its lifetime";

/// Issues tickets and redeems them for a stream.
pub struct StreamTickets {
    store: Arc<dyn TicketStore>,
    auth: Arc<Authenticator>,
    ttl: Duration,
}

impl StreamTickets {
    /// Tickets valid for `ttl`, in `store`, checked again through `auth` on use.
    pub fn new(store: Arc<dyn TicketStore>, auth: Arc<Authenticator>, ttl: Duration) -> Self {
        Self { store, auth, ttl }
    }

    /// A ticket for whoever presented `secret` (a bearer token; a ticket is not one);
    /// `None` for an unknown or revoked token, `Unauthenticated` for an expired one.
    pub async fn issue(&self, secret: &str) -> Result<Option<IssuedTicket>, AppError> {
        let Some((principal, credential)) = self.auth.identify(secret).await? else {
            return Ok(None);
        };
        if credential == Credential::Identity {
            // Nothing could check an OIDC caller's access again when the ticket is used;
            // its JWT is short-lived already and may itself be the stream's access_token.
            return Err(AppError::Forbidden(
                "stream tickets are issued to API tokens; an OIDC token is short-lived already: pass it as access_token".to_owned(),
            ));
        }
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let ticket = format!("shiplog_ticket_{}", hex::encode(bytes));
        let grant = TicketGrant {
            credential,
            principal: principal.name,
        };
        let expires_at = self
            .store
            .create(&hash_secret(&ticket), &grant, self.ttl)
            .await?;
        Ok(Some(IssuedTicket { ticket, expires_at }))
    }

    /// The principal a ticket opens a stream as, using it up: its creator's access as
    /// it is now. A ticket that is unknown, used, expired, or whose creator's token
    /// was revoked or has expired since, is refused (`Unauthenticated`).
    pub async fn redeem(&self, ticket: &str) -> Result<Principal, AppError> {
        let refused = || AppError::Unauthenticated(TICKET_REFUSED.to_owned());
        let grant = self
            .store
            .consume(&hash_secret(ticket))
            .await?
            .ok_or_else(refused)?;
        match self.auth.recheck(grant.credential).await {
            Ok(Some(principal)) => Ok(principal),
            Ok(None) | Err(AppError::Unauthenticated(_)) => Err(AppError::Unauthenticated(
                "the token this stream ticket was issued to is revoked or expired".to_owned(),
            )),
            Err(e) => Err(e),
        }
    }
}
