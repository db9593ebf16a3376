//! Bearer tokens: scopes, principals, and how a presented token becomes one.

use crate::cursor::Cursor;
use crate::error::{AppError, Denial};
use crate::oidc::{looks_like_jwt, Oidc};
use crate::ports::{CommandContext, Visible};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use shiplog_domain::TokenCommand;
use std::sync::Arc;
use uuid::Uuid;

/// What a token may do: the domain's, since scopes are part of the token events.
pub use shiplog_domain::Scope;

/// An authenticated caller: the name recorded as the actor of its events, and its scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Recorded as `actor` on every event this caller causes.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Who it speaks for: the owner of what it creates (by default the token's name).
    pub subject: String,
    /// The teams its subject belongs to.
    pub teams: Vec<Uuid>,
}

/// The answer every refused ownership check gives, in seed 002's words.
pub const OWNERSHIP_REFUSED: &str = "ownership verification failed";

impl Principal {
    /// Admins may act on every usecase and team.
    pub fn is_admin(&self) -> bool {
        self.scopes.contains(&Scope::Admin)
    }

    /// Whether it may read and change a usecase owned by `owner` (and `team`): its
    /// own, its teams', or any when it is an admin.
    pub fn may_access(&self, owner: &str, team: Option<Uuid>) -> bool {
        self.is_admin() || self.subject == owner || team.is_some_and(|t| self.teams.contains(&t))
    }

    /// Refuses (403 "ownership verification failed") what it may not access; `what`
    /// names the thing in the refusal.
    pub fn require_access(
        &self,
        owner: &str,
        team: Option<Uuid>,
        what: &str,
    ) -> Result<(), AppError> {
        if self.may_access(owner, team) {
            Ok(())
        } else {
            Err(AppError::denied(
                Denial::NotOwner,
                format!("{OWNERSHIP_REFUSED}: {what} belongs to another owner or team"),
            ))
        }
    }

    /// Whether it belongs to `team` (admins act for every team).
    pub fn in_team(&self, team: Uuid) -> bool {
        self.is_admin() || self.teams.contains(&team)
    }

    /// What its listings show: everything for an admin, else its own and its teams'.
    pub fn visible(&self) -> Visible {
        if self.is_admin() {
            Visible::All
        } else {
            Visible::Of {
                subject: self.subject.clone(),
                teams: self.teams.clone(),
            }
        }
    }
}

impl Principal {
    /// Succeeds when the principal holds `scope` (or `admin`).
    pub fn require(&self, scope: Scope) -> Result<(), AppError> {
        if self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin) {
            Ok(())
        } else {
            Err(AppError::Forbidden(scope.to_string()))
        }
    }
}

impl Principal {
    /// Succeeds when the principal holds any of `scopes` (or `admin`); the refusal names them all.
    pub fn require_any(&self, scopes: &[Scope]) -> Result<(), AppError> {
        if scopes.iter().any(|s| self.require(*s).is_ok()) {
            Ok(())
        } else {
            let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            Err(AppError::Forbidden(names.join(" or ")))
        }
    }
}

/// A token to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Unique among active tokens; becomes the principal's name.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Who it speaks for; `None`: its name.
    pub subject: Option<String>,
    /// The teams its subject belongs to (they must exist).
    pub teams: Vec<Uuid>,
    /// It stops working this many seconds after its creation (`expiresIn`), if ever.
    pub expires_in: Option<u64>,
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// Its id, for revocation.
    pub id: Uuid,
    /// Its name (the principal).
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Who it speaks for.
    pub subject: String,
    /// The teams its subject belongs to.
    pub teams: Vec<Uuid>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// When it stops working; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token found by its secret's hash or its id: who it is and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// Its id.
    pub id: Uuid,
    /// The caller it makes.
    pub principal: Principal,
    /// When it stops working; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a presented secret was: the bootstrap admin token of the configuration, or a
/// stored API token. A stream ticket remembers it, to check the access again on use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `SHIPLOG_ADMIN_TOKEN`: not stored, valid while the configuration says so.
    Bootstrap,
    /// The API token with this id.
    Token(Uuid),
    /// A JWT of the OIDC identity provider: not kept, so it cannot be checked again later.
    Identity,
}

/// The longest token name and subject, in characters.
pub const MAX_PRINCIPAL_LEN: usize = 128;

/// The principal name of the bootstrap admin token.
pub const BOOTSTRAP_ADMIN: &str = "admin";

/// The fingerprint stored instead of a token: tokens are 256 random bits, so a
/// plain SHA-256 is enough (no password stretching needed).
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Where API tokens live: their events in the ledger, and beside them the lookup
/// table of their hashes, which changes in the same transaction as the events.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Decides `command` on token `id`, appends its events with `ctx` as metadata and
    /// writes the token's lookup row (with `secret_hash` for a creation) in the same
    /// transaction: both commit or neither. Answers the token as it is then, and the
    /// cursor of its newest event (for read-your-writes). A name in use by an active
    /// token is a `Conflict`; an unknown or revoked token `NotFound`.
    async fn execute(
        &self,
        id: Uuid,
        command: TokenCommand,
        secret_hash: Option<[u8; 32]>,
        ctx: &CommandContext,
    ) -> Result<(TokenInfo, Option<Cursor>), AppError>;
    /// The token with this hash, unless revoked (expired ones too: the caller tells them apart).
    async fn find_by_hash(&self, secret_hash: &[u8]) -> Result<Option<StoredToken>, AppError>;
    /// The token with this id, unless revoked.
    async fn find_by_id(&self, id: Uuid) -> Result<Option<StoredToken>, AppError>;
    /// Tokens not revoked (expired ones included), oldest first.
    async fn list(&self) -> Result<Vec<TokenInfo>, AppError>;
}

/// The principal of the bootstrap admin token.
fn bootstrap_admin() -> Principal {
    Principal {
        name: BOOTSTRAP_ADMIN.to_owned(),
        scopes: vec![Scope::Admin],
        subject: BOOTSTRAP_ADMIN.to_owned(),
        teams: Vec::new(),
    }
}

/// Turns a presented bearer token into a principal.
pub struct Authenticator {
    store: Arc<dyn TokenStore>,
    admin_hash: Option<[u8; 32]>,
    /// The identity provider whose JWTs are accepted too, when one is configured.
    oidc: Option<Arc<Oidc>>,
}

impl Authenticator {
    /// `admin_token` is the bootstrap token from `SHIPLOG_ADMIN_TOKEN`, if configured.
    pub fn new(store: Arc<dyn TokenStore>, admin_token: Option<&str>) -> Self {
        Self {
            store,
            admin_hash: admin_token.map(hash_secret),
            oidc: None,
        }
    }

    /// Accepts the JWTs of an OIDC identity provider beside API tokens.
    pub fn with_oidc(self, oidc: Arc<Oidc>) -> Self {
        Self {
            oidc: Some(oidc),
            ..self
        }
    }

    /// The principal behind `secret`, or `None` when the token is unknown or revoked;
    /// an expired token is refused saying so (`Unauthenticated`).
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>, AppError> {
        Ok(self.identify(secret).await?.map(|(principal, _)| principal))
    }

    /// As [`Authenticator::authenticate`], with the credential the secret is.
    pub async fn identify(
        &self,
        secret: &str,
    ) -> Result<Option<(Principal, Credential)>, AppError> {
        let hash = hash_secret(secret);
        // Compare hashes, not secrets, so the comparison time says nothing about the secret.
        if self.admin_hash.is_some_and(|admin| admin == hash) {
            return Ok(Some((bootstrap_admin(), Credential::Bootstrap)));
        }
        // No API token has a JWT's shape, so a JWT is the identity provider's to vouch for.
        if let Some(oidc) = self.oidc_for(secret) {
            return Ok(oidc
                .authenticate(secret)
                .await?
                .map(|principal| (principal, Credential::Identity)));
        }
        let token = self.store.find_by_hash(&hash).await?;
        Ok(unexpired(token)?.map(|t| (t.principal, Credential::Token(t.id))))
    }

    /// The principal `credential` makes now: `None` when the token was revoked or the
    /// bootstrap token is no longer configured; an expired token is refused saying so.
    pub async fn recheck(&self, credential: Credential) -> Result<Option<Principal>, AppError> {
        match credential {
            Credential::Bootstrap => Ok(self.admin_hash.map(|_| bootstrap_admin())),
            Credential::Token(id) => {
                let token = self.store.find_by_id(id).await?;
                Ok(unexpired(token)?.map(|t| t.principal))
            }
            // An identity provider's token is not kept, so nothing can vouch for it again.
            Credential::Identity => Ok(None),
        }
    }
}

impl Authenticator {
    /// The identity provider that vouches for `secret`, when OIDC is on and `secret` is
    /// a JWT: a console session opened with it rests on the provider's verdict.
    pub fn oidc_for(&self, secret: &str) -> Option<&Oidc> {
        self.oidc.as_deref().filter(|_| looks_like_jwt(secret))
    }

    /// The principal behind the token whose hash is `hash` (as [`hash_secret`] makes
    /// it), or `None` when it is unknown or revoked: how a console session, which keeps
    /// only its token's hash, checks that token on every request.
    pub async fn authenticate_hash(&self, hash: &[u8]) -> Result<Option<Principal>, AppError> {
        if self
            .admin_hash
            .is_some_and(|admin| admin.as_slice() == hash)
        {
            return Ok(Some(bootstrap_admin()));
        }
        Ok(unexpired(self.store.find_by_hash(hash).await?)?.map(|t| t.principal))
    }
}

/// `token`, unless it has expired: then the refusal says so (its holder knows the
/// token; an unknown one is told nothing more than before).
fn unexpired(token: Option<StoredToken>) -> Result<Option<StoredToken>, AppError> {
    match token {
        Some(StoredToken {
            expires_at: Some(expiry),
            ..
        }) if expiry <= Utc::now() => Err(AppError::Unauthenticated(format!(
            "this token expired at {}",
            expiry.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))),
        other => Ok(other),
    }
}
