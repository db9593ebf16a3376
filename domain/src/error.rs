//! Why the aggregate refuses a command.

use crate::status::DeploymentStatus;
use thiserror::Error;
use uuid::Uuid;

/// A command the `Usecase` aggregate refuses; each variant maps to one HTTP status upstream.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// The usecase was never registered (404).
    #[error("usecase not found")]
    UsecaseNotFound,
    /// The usecase was deleted; it accepts no more commands (404).
    #[error("usecase has been deleted")]
    UsecaseDeleted,
    /// A usecase with this id exists already (409).
    #[error("usecase {0} is already registered")]
    AlreadyRegistered(Uuid),
    /// No deployment with this id belongs to the usecase (404).
    #[error("deployment {0} not found")]
    DeploymentNotFound(Uuid),
    /// A deployment with this id exists already (409).
    #[error("deployment {0} already exists")]
    DuplicateDeployment(Uuid),
    /// The deployment's current status does not allow this step (409).
    #[error("deployment {deployment_id} is {status} and cannot be {action}")]
    InvalidTransition {
        /// The deployment the command was about.
        deployment_id: Uuid,
        /// Its status when the command arrived.
        status: DeploymentStatus,
        /// What the command tried, in past participle ("started", "marked deployed").
        action: &'static str,
    },
    /// Undeploy needs a deployed deployment (409).
    #[error("nothing is deployed")]
    NothingDeployed,
    /// An undeploy is already under way (409).
    #[error("an undeploy is already in progress")]
    UndeployInProgress,
    /// Delete needs nothing deployed and nothing in flight (409).
    #[error("usecase has a deployment that is deployed or in progress; undeploy it first")]
    UsecaseBusy,
    /// A restart of the deployed deployment is still rolling (409).
    #[error("a restart is already in progress")]
    RestartInProgress,
    /// No restart with this id is waiting for its outcome (409).
    #[error("restart {0} is not in progress")]
    NoSuchRestart(Uuid),
    /// No team with this id was created (404).
    #[error("team not found")]
    TeamNotFound,
    /// A team with this id exists already (409).
    #[error("team {0} already exists")]
    TeamAlreadyExists(Uuid),
    /// No token with this id was created, or it was revoked (404).
    #[error("no active token with this id")]
    TokenNotFound,
    /// A token with this id exists already (409).
    #[error("token {0} already exists")]
    TokenAlreadyExists(Uuid),
    /// A token needs at least one scope (422 naming `scopes`).
    #[error("name at least one scope")]
    NoScopes,
    /// A token's expiry must come after its creation (422 naming the expiry).
    #[error("the expiry must be in the future")]
    ExpiryNotAfterCreation,
    /// The usecase is being deleted; it accepts no new request (409).
    #[error("the usecase is being deleted")]
    DeletionInProgress,
    /// A rollback needs an earlier deployment that was deployed (409).
    #[error("there is no earlier deployed deployment to roll back to")]
    NothingToRollBackTo,
    /// The rollback target named in the request is no deployment of this usecase (409,
    /// as any other target that is not one: the usecase itself exists).
    #[error(
        "deployment {0} is not a deployment of this usecase; roll back to an earlier, finished one"
    )]
    UnknownRollbackTarget(Uuid),
    /// The rollback target is the deployment that is deployed now, or one still in flight (409).
    #[error(
        "deployment {deployment_id} is {status}; roll back to an earlier, finished deployment"
    )]
    InvalidRollbackTarget {
        /// The requested target.
        deployment_id: Uuid,
        /// Its status.
        status: DeploymentStatus,
    },
    /// An auto-update was found for a usecase whose auto-update is off (409).
    #[error("auto-update is disabled")]
    AutoUpdateOff,
    /// Auto-update is paused by a manual rollback until it is enabled again (409).
    #[error("auto-update is paused: {0}")]
    AutoUpdatePaused(String),
    /// A deployment is already in flight; an image update waits for it to end (409).
    #[error("a deployment is in progress; the image update waits until it ends")]
    UpdateInFlight,
    /// The command's input contradicts the state it meets (422, naming the field): a
    /// config change's plain variable that is a kept secret one, say.
    #[error(transparent)]
    Invalid(#[from] crate::config::InvalidField),
}
