//! The one error type of the application layer; the API maps each variant to one status.

use shiplog_domain::{DomainError, InvalidField};
use thiserror::Error;

/// Why a use case could not be carried out.
#[derive(Debug, Error)]
pub enum AppError {
    /// Input failed validation (422), naming the field.
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// The thing asked for does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The caller lacks a scope (403).
    #[error("this token lacks the scope {0}")]
    Forbidden(String),
    /// The caller may not do this for another reason: it does not own the thing, or
    /// its deployment limit is reached (403); the message says which.
    #[error("{0}")]
    Denied(String),
    /// The database (or another dependency) cannot be reached; retry later (503).
    #[error("{0}")]
    Unavailable(String),
    /// The cluster cannot answer (unreachable, or it lacks what was asked for, such
    /// as metrics.k8s.io); the message is meant for the user (503).
    #[error("{0}")]
    ClusterUnavailable(String),
    /// A bug or an unexpected state (500); details are logged, not shown.
    #[error("{0}")]
    Internal(String),
}

impl From<DomainError> for AppError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::UsecaseNotFound | DomainError::UsecaseDeleted => {
                Self::NotFound("usecase not found".to_owned())
            }
            DomainError::DeploymentNotFound(_) => Self::NotFound(err.to_string()),
            DomainError::AlreadyRegistered(_)
            | DomainError::DuplicateDeployment(_)
            | DomainError::InvalidTransition { .. }
            | DomainError::NothingDeployed
            | DomainError::UndeployInProgress
            | DomainError::UsecaseBusy
            | DomainError::RestartInProgress
            | DomainError::NoSuchRestart(_)
            | DomainError::NothingToRollBackTo
            | DomainError::DeletionInProgress
            | DomainError::TeamAlreadyExists(_)
            | DomainError::InvalidRollbackTarget { .. } => Self::Conflict(err.to_string()),
            DomainError::TeamNotFound => Self::NotFound(err.to_string()),
        }
    }
}
