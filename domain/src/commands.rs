//! What clients and the process manager ask of a usecase.

use crate::auto_update::{AutoUpdate, FoundImage};
use crate::config::{DeploymentConfig, UsecaseName};
use crate::platform::Visibility;
use crate::secrets::{SealedValue, SecretRef};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A request to change a usecase; the aggregate answers with events or a `DomainError`.
/// Times come from the caller so the aggregate stays pure and testable.
#[derive(Debug, Clone, PartialEq)]
pub enum UsecaseCommand {
    /// Register a new usecase.
    Register {
        /// The new usecase's id.
        usecase_id: Uuid,
        /// Its unique name.
        name: UsecaseName,
        /// Free text.
        description: String,
        /// The subject that owns it.
        owner: String,
        /// The team that owns it with its owner; `None` for a personal usecase.
        team: Option<Uuid>,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Create a platform deployment (seed 002): register under a unique name and
    /// request the first deployment, in one commit, so that no usecase is ever
    /// left registered without the deployment it was created for.
    Create {
        /// The new usecase's id.
        usecase_id: Uuid,
        /// Its unique name (generated, or chosen by the client).
        name: UsecaseName,
        /// Free text.
        description: String,
        /// The catalog template, when created from one.
        template: Option<String>,
        /// Who may reach it.
        visibility: Visibility,
        /// The subject that owns it.
        owner: String,
        /// The team that owns it with its owner; `None` for a personal one.
        team: Option<Uuid>,
        /// The first deployment's id.
        deployment_id: Uuid,
        /// What it runs.
        config: DeploymentConfig,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Change the auto-update settings; settings equal to the current ones record nothing.
    ConfigureAutoUpdate {
        /// The new settings.
        settings: AutoUpdate,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Deploy the new image the auto-update watcher found for the serving deployment's
    /// tag (or a higher version's tag), pinned to the digest it found.
    RequestAutoUpdate {
        /// The new deployment's id.
        deployment_id: Uuid,
        /// What the check found.
        found: FoundImage,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Delete the usecase once what runs of it is undeployed (seed 002's delete):
    /// everything deployed or in flight is taken down first.
    RequestDeletion {
        /// Now.
        at: DateTime<Utc>,
    },
    /// Ask for a new deployment; older ones still in flight are superseded.
    RequestDeployment {
        /// The new deployment's id.
        deployment_id: Uuid,
        /// What to run.
        config: DeploymentConfig,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Record that the deployment's resources were applied (process manager).
    StartDeployment {
        /// The deployment.
        deployment_id: Uuid,
        /// The manifest digest its image was pinned to before the apply, if any.
        digest: Option<String>,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Record a finished rollout (process manager); the previous deployed one is superseded.
    CompleteDeployment {
        /// The deployment.
        deployment_id: Uuid,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Record a failure (process manager).
    FailDeployment {
        /// The deployment.
        deployment_id: Uuid,
        /// Why it failed.
        message: String,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Take the usecase down: the deployed deployment and any still in flight.
    RequestUndeploy {
        /// Now.
        at: DateTime<Utc>,
    },
    /// Record that a deployment's resources are gone after an undeploy (process manager).
    ConfirmUndeployed {
        /// The deployment.
        deployment_id: Uuid,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Delete the usecase; refused while anything is deployed or in flight.
    Delete {
        /// Now.
        at: DateTime<Utc>,
    },
    /// Roll the pods of the deployed deployment (same config, fresh pods).
    RequestRestart {
        /// The new restart's id.
        restart_id: Uuid,
        /// The deployment the caller saw serving, when it names one: refused if another
        /// serves by the time the command is decided, so that the caller's answer names
        /// the deployment the ledger records.
        expected: Option<Uuid>,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Record that a restart's rollout finished (process manager).
    CompleteRestart {
        /// The restart.
        restart_id: Uuid,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Record that a restart's rollout failed or no longer applies (process manager).
    FailRestart {
        /// The restart.
        restart_id: Uuid,
        /// Why, in the user's words.
        message: String,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Deploy the deployed deployment's config again with these environment variables.
    ChangeConfig {
        /// The new deployment's id.
        deployment_id: Uuid,
        /// The base the caller saw (the serving deployment), when it names one: refused if
        /// the base differs by the time the command is decided, so that the caller's
        /// answer names the base the ledger records.
        expected_base: Option<Uuid>,
        /// The complete new set of environment variables.
        env: BTreeMap<String, String>,
        /// The complete new set of secret variables, sealed; `None` keeps the base's
        /// (a client cannot read them back to send them again).
        secret_env: Option<BTreeMap<String, SealedValue>>,
        /// The complete new set of references to Kubernetes Secrets; `None` keeps the base's.
        secret_refs: Option<Vec<SecretRef>>,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Deploy the config of an earlier deployment again, as a new deployment.
    Rollback {
        /// The new deployment's id.
        deployment_id: Uuid,
        /// The deployment whose config to restore; `None`: the one deployed before the current.
        target: Option<Uuid>,
        /// Now.
        at: DateTime<Utc>,
    },
}

impl UsecaseCommand {
    /// A short, stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Register { .. } => "register",
            Self::RequestDeployment { .. } => "request_deployment",
            Self::StartDeployment { .. } => "start_deployment",
            Self::CompleteDeployment { .. } => "complete_deployment",
            Self::FailDeployment { .. } => "fail_deployment",
            Self::RequestUndeploy { .. } => "request_undeploy",
            Self::ConfirmUndeployed { .. } => "confirm_undeployed",
            Self::Delete { .. } => "delete",
            Self::RequestRestart { .. } => "request_restart",
            Self::CompleteRestart { .. } => "complete_restart",
            Self::FailRestart { .. } => "fail_restart",
            Self::ChangeConfig { .. } => "change_config",
            Self::Rollback { .. } => "rollback",
            Self::Create { .. } => "create",
            Self::ConfigureAutoUpdate { .. } => "configure_auto_update",
            Self::RequestDeletion { .. } => "request_deletion",
            Self::RequestAutoUpdate { .. } => "request_auto_update",
        }
    }
}
