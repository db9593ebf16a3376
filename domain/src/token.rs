//! The `Token` aggregate: access to shiplog as ledger facts. Creating an API token,
//! changing what it may do and revoking it are events like a usecase's, so who gave
//! whom access, and when and why, is part of the audit trail, the export and the
//! hash chain. A token's secret is never part of them: it exists only in the answer
//! that creates it (and as a hash in the lookup table, outside the ledger).

use crate::error::DomainError;
use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
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

/// What an admin asks of a token.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenCommand {
    /// Create a token (its secret is made and kept outside the ledger).
    Create {
        /// Its id.
        token_id: Uuid,
        /// Its name: the principal recorded as the actor of what it causes (checked upstream).
        name: String,
        /// What it may do; at least one.
        scopes: Vec<Scope>,
        /// Who it speaks for.
        subject: String,
        /// The teams its subject belongs to.
        teams: Vec<Uuid>,
        /// When it stops working, if ever; must be after `at`.
        expires_at: Option<DateTime<Utc>>,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Replace what it may do; the same scopes again record nothing.
    ChangeScopes {
        /// The scopes from now on; at least one.
        scopes: Vec<Scope>,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Revoke it: it stops working at once, for good.
    Revoke {
        /// Now.
        at: DateTime<Utc>,
    },
}

impl TokenCommand {
    /// A short, stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create_token",
            Self::ChangeScopes { .. } => "change_token_scopes",
            Self::Revoke { .. } => "revoke_token",
        }
    }
}

/// What happened to a token: past-tense facts, each with its time. None holds the
/// secret or its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum TokenEvent {
    /// A token was created.
    TokenCreated {
        /// Its id.
        token_id: Uuid,
        /// Its name (the principal).
        name: String,
        /// What it may do.
        scopes: Vec<Scope>,
        /// Who it speaks for.
        subject: String,
        /// The teams its subject belongs to.
        teams: Vec<Uuid>,
        /// When it stops working; absent: never.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// What a token may do changed, at once.
    TokenScopesChanged {
        /// Its id.
        token_id: Uuid,
        /// Its name, so that the event reads without a lookup.
        name: String,
        /// The scopes before.
        from: Vec<Scope>,
        /// The scopes now.
        scopes: Vec<Scope>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A token was revoked: it stopped working at once.
    TokenRevoked {
        /// Its id.
        token_id: Uuid,
        /// Its name, so that the event reads without a lookup.
        name: String,
        /// When.
        at: DateTime<Utc>,
    },
}

/// Every token event type name, for filters and documentation.
pub const TOKEN_EVENT_TYPES: [&str; 3] = ["TokenCreated", "TokenScopesChanged", "TokenRevoked"];

impl TokenEvent {
    /// The type name stored with the event.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::TokenCreated { .. } => "TokenCreated",
            Self::TokenScopesChanged { .. } => "TokenScopesChanged",
            Self::TokenRevoked { .. } => "TokenRevoked",
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::TokenCreated { at, .. }
            | Self::TokenScopesChanged { at, .. }
            | Self::TokenRevoked { at, .. } => *at,
        }
    }
}

impl DomainEvent for TokenEvent {
    fn event_type(&self) -> String {
        self.type_name().to_owned()
    }

    fn event_version(&self) -> String {
        crate::events::EVENT_VERSION.to_owned()
    }
}

/// A token as its events leave it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Token {
    /// Its id (nil until created).
    pub id: Uuid,
    /// Its name, once created.
    pub name: Option<String>,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// Scopes as a token keeps them: sorted, each once, at least one.
fn normalized(mut scopes: Vec<Scope>) -> Result<Vec<Scope>, DomainError> {
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(DomainError::NoScopes);
    }
    Ok(scopes)
}

impl Token {
    /// The name of a token that exists and is not revoked; what every change needs.
    fn active_name(&self) -> Result<&str, DomainError> {
        match &self.name {
            Some(name) if !self.revoked => Ok(name),
            _ => Err(DomainError::TokenNotFound),
        }
    }

    /// The events `command` produces, or why it is refused.
    pub fn decide(&self, command: TokenCommand) -> Result<Vec<TokenEvent>, DomainError> {
        match command {
            TokenCommand::Create {
                token_id,
                name,
                scopes,
                subject,
                teams,
                expires_at,
                at,
            } => {
                if self.name.is_some() {
                    return Err(DomainError::TokenAlreadyExists(self.id));
                }
                if expires_at.is_some_and(|expiry| expiry <= at) {
                    return Err(DomainError::ExpiryNotAfterCreation);
                }
                let mut teams = teams;
                teams.sort();
                teams.dedup();
                Ok(vec![TokenEvent::TokenCreated {
                    token_id,
                    name,
                    scopes: normalized(scopes)?,
                    subject,
                    teams,
                    expires_at,
                    at,
                }])
            }
            TokenCommand::ChangeScopes { scopes, at } => {
                let name = self.active_name()?;
                let scopes = normalized(scopes)?;
                if scopes == self.scopes {
                    return Ok(Vec::new());
                }
                Ok(vec![TokenEvent::TokenScopesChanged {
                    token_id: self.id,
                    name: name.to_owned(),
                    from: self.scopes.clone(),
                    scopes,
                    at,
                }])
            }
            TokenCommand::Revoke { at } => {
                let name = self.active_name()?;
                Ok(vec![TokenEvent::TokenRevoked {
                    token_id: self.id,
                    name: name.to_owned(),
                    at,
                }])
            }
        }
    }
}

impl Aggregate for Token {
    const TYPE: &'static str = "Token";
    type Command = TokenCommand;
    type Event = TokenEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            TokenEvent::TokenCreated {
                token_id,
                name,
                scopes,
                ..
            } => {
                self.id = token_id;
                self.name = Some(name);
                self.scopes = scopes;
            }
            TokenEvent::TokenScopesChanged { scopes, .. } => self.scopes = scopes,
            TokenEvent::TokenRevoked { .. } => self.revoked = true,
        }
    }
}
