//! Bearer tokens: scopes, principals, and how a presented token becomes one.

use crate::error::{AppError, Conflict, Denial, Missing};
use crate::oidc::{looks_like_jwt, Oidc};
use crate::ports::Visible;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shiplog_domain::config::normalized_name;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use uuid::Uuid;

/// What a token may do. `admin` implies every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// Read usecases.
    #[serde(rename = "usecases:read")]
    UsecasesRead,
    /// Register and delete usecases.
    #[serde(rename = "usecases:write")]
    UsecasesWrite,
    /// Read deployments.
    #[serde(rename = "deployments:read")]
    DeploymentsRead,
    /// Deploy and undeploy.
    #[serde(rename = "deployments:write")]
    DeploymentsWrite,
    /// Read the audit trail.
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Everything, including token management.
    #[serde(rename = "admin")]
    Admin,
    /// Deliver registry push notifications (`POST /api/hooks/registry`) and nothing
    /// else: the token a registry's notification config holds.
    #[serde(rename = "hooks:registry")]
    HooksRegistry,
}

impl Scope {
    /// Every scope, in documentation order.
    pub const ALL: [Scope; 7] = [
        Scope::UsecasesRead,
        Scope::UsecasesWrite,
        Scope::DeploymentsRead,
        Scope::DeploymentsWrite,
        Scope::AuditRead,
        Scope::Admin,
        Scope::HooksRegistry,
    ];

    /// The scope as tokens and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::UsecasesRead => "usecases:read",
            Scope::UsecasesWrite => "usecases:write",
            Scope::DeploymentsRead => "deployments:read",
            Scope::DeploymentsWrite => "deployments:write",
            Scope::AuditRead => "audit:read",
            Scope::Admin => "admin",
            Scope::HooksRegistry => "hooks:registry",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("unknown scope {s:?}"))
    }
}

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
    /// Who created it.
    pub created_by: String,
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

/// Stores API tokens, hashed.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new token's hash; a name already in use by an active token is a `Conflict`.
    async fn create(&self, token: &NewToken, secret_hash: &[u8]) -> Result<TokenInfo, AppError>;
    /// The active token with this hash, if any.
    async fn find_by_hash(&self, secret_hash: &[u8]) -> Result<Option<Principal>, AppError>;
    /// Active tokens, oldest first.
    async fn list(&self) -> Result<Vec<TokenInfo>, AppError>;
    /// Revokes a token; `false` when no active token has this id.
    async fn revoke(&self, id: Uuid) -> Result<bool, AppError>;
}

/// Turns a presented bearer token into a principal, and issues new tokens.
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

    /// The principal behind `secret`, or `None` when the token is unknown or revoked
    /// (or, for a JWT, does not check out).
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>, AppError> {
        let hash = hash_secret(secret);
        // Compare hashes, not secrets, so the comparison time says nothing about the secret.
        if self.admin_hash.is_some_and(|admin| admin == hash) {
            return Ok(Some(Principal {
                name: BOOTSTRAP_ADMIN.to_owned(),
                scopes: vec![Scope::Admin],
                subject: BOOTSTRAP_ADMIN.to_owned(),
                teams: Vec::new(),
            }));
        }
        // No API token has a JWT's shape, so a JWT is the identity provider's to vouch for.
        if let Some(oidc) = self.oidc.as_ref().filter(|_| looks_like_jwt(secret)) {
            return oidc.authenticate(secret).await;
        }
        self.store.find_by_hash(&hash).await
    }

    /// Creates a token and returns it with its secret, which is shown only this once.
    pub async fn issue(&self, token: NewToken) -> Result<(TokenInfo, String), AppError> {
        // A token's name is a principal: recorded as the actor of every event it causes
        // (and indexed there), so it is checked as names are.
        let name = normalized_name("name", &token.name, MAX_PRINCIPAL_LEN)?;
        let name = name.as_str();
        if name == BOOTSTRAP_ADMIN {
            return Err(AppError::conflict(
                Conflict::NameTaken,
                format!("the name {BOOTSTRAP_ADMIN:?} is reserved for the bootstrap token"),
            ));
        }
        if token.scopes.is_empty() {
            return Err(
                shiplog_domain::InvalidField::new("scopes", "name at least one scope").into(),
            );
        }
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let secret = format!("shiplog_{}", hex::encode(bytes));
        let subject = match token.subject.as_deref() {
            None => name.to_owned(),
            Some(subject) => normalized_name("subject", subject, MAX_PRINCIPAL_LEN)?,
        };
        let mut teams = token.teams.clone();
        teams.sort();
        teams.dedup();
        let token = NewToken {
            name: name.to_owned(),
            subject: Some(subject),
            teams,
            ..token
        };
        let info = self.store.create(&token, &hash_secret(&secret)).await?;
        Ok((info, secret))
    }

    /// Active tokens, without secrets.
    pub async fn list(&self) -> Result<Vec<TokenInfo>, AppError> {
        self.store.list().await
    }

    /// Revokes a token; unknown ids are `NotFound`.
    pub async fn revoke(&self, id: Uuid) -> Result<(), AppError> {
        if self.store.revoke(id).await? {
            Ok(())
        } else {
            Err(AppError::not_found(
                Missing::Token,
                format!("token {id} not found"),
            ))
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
            return Ok(Some(Principal {
                name: BOOTSTRAP_ADMIN.to_owned(),
                scopes: vec![Scope::Admin],
                subject: BOOTSTRAP_ADMIN.to_owned(),
                teams: Vec::new(),
            }));
        }
        self.store.find_by_hash(hash).await
    }
}
