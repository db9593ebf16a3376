//! The one error type of the application layer; the API maps each variant (and
//! its kind) to one status and one problem type.

use shiplog_domain::{DomainError, InvalidField};
use thiserror::Error;

/// Why a use case could not be carried out.
#[derive(Debug, Error)]
pub enum AppError {
    /// Input failed validation (422), naming the field.
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// The thing asked for does not exist (404).
    #[error("{detail}")]
    NotFound {
        /// What kind of thing is missing.
        what: Missing,
        /// The sentence the client is shown.
        detail: String,
    },
    /// The request contradicts the current state (409).
    #[error("{detail}")]
    Conflict {
        /// Which state it contradicts.
        kind: Conflict,
        /// The sentence the client is shown.
        detail: String,
    },
    /// The credential was recognised and is refused, with a reason its holder may
    /// read: an expired token, a used or expired stream ticket (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller lacks a scope (403).
    #[error("this token lacks the scope {0}")]
    Forbidden(String),
    /// The caller may not do this for another reason: it does not own the thing, or
    /// its deployment limit is reached (403); `reason` says which.
    #[error("{detail}")]
    Denied {
        /// Why it is refused.
        reason: Denial,
        /// The sentence the client is shown.
        detail: String,
    },
    /// The database (or another dependency) cannot be reached; retry later (503).
    #[error("{0}")]
    Unavailable(String),
    /// The cluster cannot answer (unreachable, or it lacks what was asked for, such
    /// as metrics.k8s.io); the message is meant for the user (503).
    #[error("{0}")]
    ClusterUnavailable(String),
    /// The OIDC identity provider's keys (JWKS) cannot be had, and none are cached:
    /// its tokens cannot be checked for now (503).
    #[error("{0}")]
    IdentityProviderUnavailable(String),
    /// Secret values cannot be sealed or opened: no master key is configured, or
    /// the configured one does not open the usecase's data key (503, no retry helps
    /// until the operator acts); the message is meant for the user.
    #[error("{0}")]
    SecretsUnavailable(String),
    /// A bug or an unexpected state (500); details are logged, not shown.
    #[error("{0}")]
    Internal(String),
}

/// What a [`AppError::NotFound`] did not find, for clients to tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// No such usecase (or it was deleted, or did not exist at the instant asked for).
    Usecase,
    /// No such deployment (of this usecase, or by this name).
    Deployment,
    /// No such team.
    Team,
    /// No such API token.
    Token,
    /// The deployment runs no service of the name asked for (a multi-service template's).
    Service,
}

/// Which state a [`AppError::Conflict`] contradicts, for clients to tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The name (of a usecase, team or token) is taken.
    NameTaken,
    /// The request needs a deployed deployment and none is.
    NothingDeployed,
    /// A usecase, deployment or team with this id exists already.
    AlreadyExists,
    /// An undeploy, a restart or the deletion is already under way.
    InProgress,
    /// The usecase has a deployment that is deployed or in flight (it cannot be deleted).
    Busy,
    /// The deployment's status does not allow this step.
    InvalidTransition,
    /// There is no earlier finished deployment to roll back to, or the one named is not one.
    InvalidRollbackTarget,
}

/// Why a [`AppError::Denied`] refuses a caller that holds the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// It neither owns the thing nor belongs to its team ("ownership verification failed").
    NotOwner,
    /// With billing on, its account's tier allows no more deployments.
    LimitReached,
}

impl AppError {
    /// A 404 for a missing `what`, told as `detail`.
    pub fn not_found(what: Missing, detail: impl Into<String>) -> Self {
        Self::NotFound {
            what,
            detail: detail.into(),
        }
    }

    /// A 409 of `kind`, told as `detail`.
    pub fn conflict(kind: Conflict, detail: impl Into<String>) -> Self {
        Self::Conflict {
            kind,
            detail: detail.into(),
        }
    }

    /// A 403 for `reason`, told as `detail`.
    pub fn denied(reason: Denial, detail: impl Into<String>) -> Self {
        Self::Denied {
            reason,
            detail: detail.into(),
        }
    }
}

impl From<DomainError> for AppError {
    fn from(err: DomainError) -> Self {
        let conflict = |kind| Self::conflict(kind, err.to_string());
        match err {
            DomainError::Invalid(ref field) => Self::Invalid(field.clone()),
            DomainError::UsecaseNotFound | DomainError::UsecaseDeleted => {
                Self::not_found(Missing::Usecase, "usecase not found")
            }
            DomainError::DeploymentNotFound(_) => {
                Self::not_found(Missing::Deployment, err.to_string())
            }
            DomainError::TeamNotFound => Self::not_found(Missing::Team, err.to_string()),
            DomainError::TokenNotFound => Self::not_found(Missing::Token, err.to_string()),
            DomainError::NoScopes => InvalidField::new("scopes", err.to_string()).into(),
            DomainError::ExpiryNotAfterCreation => {
                InvalidField::new("expiresAt", err.to_string()).into()
            }
            DomainError::AlreadyRegistered(_)
            | DomainError::DuplicateDeployment(_)
            | DomainError::TeamAlreadyExists(_)
            | DomainError::TokenAlreadyExists(_) => conflict(Conflict::AlreadyExists),
            DomainError::NothingDeployed => conflict(Conflict::NothingDeployed),
            DomainError::UndeployInProgress
            | DomainError::RestartInProgress
            | DomainError::DeletionInProgress
            | DomainError::UpdateInFlight => conflict(Conflict::InProgress),
            DomainError::UsecaseBusy => conflict(Conflict::Busy),
            DomainError::InvalidTransition { .. }
            | DomainError::NoSuchRestart(_)
            | DomainError::AutoUpdateOff
            | DomainError::AutoUpdatePaused(_) => conflict(Conflict::InvalidTransition),
            DomainError::NothingToRollBackTo
            | DomainError::InvalidRollbackTarget { .. }
            | DomainError::UnknownRollbackTarget(_) => conflict(Conflict::InvalidRollbackTarget),
        }
    }
}
