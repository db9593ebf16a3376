//! Sessions of the web console: a browser logs in once with an API token and then
//! carries a random session id in a cookie instead of the token.
//!
//! Only a hash of the session id is stored, and the session is bound to the token it
//! was opened with (the token's hash, as the token store keeps it): every request checks
//! that token again, so revoking it (or the token's scopes and teams changing) takes
//! effect on the session's next request. The CSRF token of a session is derived from its
//! id, so a stolen copy of the sessions table yields neither.
//!
//! A session opened with an OIDC token (a JWT) has no token in the store to check
//! again: it keeps the principal the identity provider vouched for and ends when the
//! JWT does (its `exp`), or earlier at the session's own lifetime.

use crate::auth::Scope;
use crate::auth::{hash_secret, Authenticator, Principal};
use crate::error::AppError;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use uuid::Uuid;

/// The default lifetime of a console session: a working day.
pub const DEFAULT_SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// What a session rests on, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionBasis {
    /// The hash of the API token it was opened with, checked again on every request.
    Token(Vec<u8>),
    /// The principal an identity provider vouched for at login (an OIDC token), held
    /// until the session expires, which is no later than the token did.
    Identity(SessionPrincipal),
}

/// A principal as a session opened with an OIDC token keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPrincipal {
    /// The actor its events record.
    pub name: String,
    /// The owner of what it creates.
    pub subject: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Its teams.
    pub teams: Vec<Uuid>,
}

impl From<Principal> for SessionPrincipal {
    fn from(p: Principal) -> Self {
        Self {
            name: p.name,
            subject: p.subject,
            scopes: p.scopes,
            teams: p.teams,
        }
    }
}

impl From<SessionPrincipal> for Principal {
    fn from(p: SessionPrincipal) -> Self {
        Self {
            name: p.name,
            subject: p.subject,
            scopes: p.scopes,
            teams: p.teams,
        }
    }
}

/// A stored session: what the store keeps about it (never the id itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// What it was opened with.
    pub basis: SessionBasis,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// Keeps console sessions by the hash of their id.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn create(
        &self,
        id_hash: &[u8],
        basis: &SessionBasis,
        expires_at: DateTime<Utc>,
    ) -> Result<(), AppError>;
    /// The session with this id hash, expired or not.
    async fn find(&self, id_hash: &[u8]) -> Result<Option<StoredSession>, AppError>;
    /// Ends a session (nothing happens when there is none).
    async fn delete(&self, id_hash: &[u8]) -> Result<(), AppError>;
    /// Forgets every session that expired before `now`.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, AppError>;
}

/// A session the caller just opened: the id goes into the cookie, once.
#[derive(Debug, Clone)]
pub struct OpenedSession {
    /// The session id, the cookie's value; shiplog keeps only its hash.
    pub id: String,
    /// The token forms must carry in `csrf_token` (or requests in `X-CSRF-Token`).
    pub csrf_token: String,
    /// Who the session acts as.
    pub principal: Principal,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// A live session found by its id.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    /// Who it acts as: the principal of its token, as the token is now.
    pub principal: Principal,
    /// Its CSRF token.
    pub csrf_token: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// Opens, resumes and ends console sessions over a [`SessionStore`].
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    auth: Arc<Authenticator>,
    ttl: Duration,
}

/// 256 random bits, hex-encoded: a session id or a login form's CSRF token.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The CSRF token of the session with id `id`: a hash of the id under its own label, so
/// that it is stable for the session's life yet reveals nothing about the id.
pub fn csrf_token_of(id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"shiplog console csrf\0");
    hasher.update(id.as_bytes());
    hex::encode(hasher.finalize())
}

/// Whether `presented` is `expected`, compared as hashes so that the time taken says
/// nothing about how much of it matched.
pub fn same_token(presented: &str, expected: &str) -> bool {
    hash_secret(presented) == hash_secret(expected)
}

impl Sessions {
    /// Sessions kept in `store`, checked against the tokens of `auth`, lasting `ttl`.
    pub fn new(
        store: Arc<dyn SessionStore>,
        auth: Arc<Authenticator>,
        ttl: std::time::Duration,
    ) -> Self {
        let ttl = Duration::from_std(ttl).unwrap_or_else(|_| Duration::hours(12));
        Self { store, auth, ttl }
    }

    /// Opens a session for the API token (or, when OIDC is on, the identity provider's
    /// JWT) `token`; `None` when the token is unknown, revoked or does not check out.
    /// Expired sessions are swept on the way.
    pub async fn open(&self, token: &str) -> Result<Option<OpenedSession>, AppError> {
        let token = token.trim();
        if token.is_empty() {
            return Ok(None);
        }
        let now = Utc::now();
        let mut expires_at = now + self.ttl;
        let (principal, basis) = if let Some(oidc) = self.auth.oidc_for(token) {
            let Some((principal, until)) = oidc.authenticate_until(token).await? else {
                return Ok(None);
            };
            // The provider vouched for the caller until then, not for longer.
            if let Some(until) = until {
                expires_at = expires_at.min(until);
            }
            let basis = SessionBasis::Identity(principal.clone().into());
            (principal, basis)
        } else {
            let Some(principal) = self.auth.authenticate(token).await? else {
                return Ok(None);
            };
            (principal, SessionBasis::Token(hash_secret(token).to_vec()))
        };
        if expires_at <= now {
            return Ok(None);
        }
        self.store.purge_expired(now).await?;
        let id = random_token();
        self.store
            .create(&hash_secret(&id), &basis, expires_at)
            .await?;
        Ok(Some(OpenedSession {
            csrf_token: csrf_token_of(&id),
            id,
            principal,
            expires_at,
        }))
    }

    /// The live session with id `id`: `None` when there is none, it expired, or its
    /// token was revoked (the session is then forgotten).
    pub async fn resume(&self, id: &str) -> Result<Option<ActiveSession>, AppError> {
        if id.is_empty() {
            return Ok(None);
        }
        let id_hash = hash_secret(id);
        let Some(stored) = self.store.find(&id_hash).await? else {
            return Ok(None);
        };
        if stored.expires_at <= Utc::now() {
            self.store.delete(&id_hash).await?;
            return Ok(None);
        }
        let principal = match stored.basis {
            SessionBasis::Identity(principal) => principal.into(),
            SessionBasis::Token(hash) => match self.auth.authenticate_hash(&hash).await? {
                Some(principal) => principal,
                None => {
                    // The token was revoked: so is every session opened with it.
                    self.store.delete(&id_hash).await?;
                    return Ok(None);
                }
            },
        };
        Ok(Some(ActiveSession {
            principal,
            csrf_token: csrf_token_of(id),
            expires_at: stored.expires_at,
        }))
    }

    /// Ends the session with id `id`, if there is one.
    pub async fn close(&self, id: &str) -> Result<(), AppError> {
        self.store.delete(&hash_secret(id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csrf_token_is_stable_per_session_and_differs_between_sessions() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(csrf_token_of(&a), csrf_token_of(&a));
        assert_ne!(csrf_token_of(&a), csrf_token_of(&b));
        assert_ne!(csrf_token_of(&a), a, "the CSRF token is not the session id");
        assert!(same_token(&csrf_token_of(&a), &csrf_token_of(&a)));
        assert!(!same_token("", &csrf_token_of(&a)));
    }
}
