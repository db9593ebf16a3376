//! What happened to a usecase: past-tense facts, versioned, never rewritten.

use crate::auto_update::{CheckTrigger, PolicyKind, VersionRange};
use crate::config::{DeploymentConfig, UsecaseName};
use crate::platform::{UpdateStrategy, Visibility};
use crate::secrets::{SealedValue, SecretRef};
use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Every event of the `Usecase` aggregate. Each carries its own time (`at`) and
/// everything a reader of the history needs, so history never needs a lookup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
// An event is built once per command and serialised; none is held in bulk (the
// fold keeps deployments, not events), so the config is not boxed.
#[allow(clippy::large_enum_variant)]
pub enum UsecaseEvent {
    /// The usecase was registered under a unique name.
    UsecaseRegistered {
        /// The id the client uses for the usecase from now on.
        usecase_id: Uuid,
        /// Its unique name.
        name: UsecaseName,
        /// Free text from the client.
        description: String,
        /// When it was registered.
        at: DateTime<Utc>,
        /// The catalog template it was created from (seed 002); absent for PhariaOS
        /// usecases and raw images.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<String>,
        /// Who may reach it (seed 002); absent for PhariaOS usecases, which are internal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        visibility: Option<Visibility>,
        /// The subject that owns it; absent on usecases registered before owners
        /// existed, whose owner is the actor that registered them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        /// The team that owns it with its owner; absent for personal ones.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        team: Option<Uuid>,
    },
    /// A client asked for a new deployment with this configuration.
    DeploymentRequested {
        /// The new deployment.
        deployment_id: Uuid,
        /// What to run.
        config: DeploymentConfig,
        /// When it was requested.
        at: DateTime<Utc>,
    },
    /// The deployment's Kubernetes resources were applied; the rollout runs.
    DeploymentStarted {
        /// The deployment now rolling out.
        deployment_id: Uuid,
        /// When the resources were applied.
        at: DateTime<Utc>,
        /// The manifest digest the pods run (`sha256:…`): the one the image's tag
        /// resolved to at the registry when the deployment started, or the one the
        /// client pinned. Absent when it was not resolved (`--resolve-digests never`,
        /// a registry the simulated mode skips), and on events recorded before
        /// digests were (the same version 1.0 shape reads them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
    },
    /// The rollout finished: the deployment serves traffic.
    DeploymentSucceeded {
        /// The deployment now deployed.
        deployment_id: Uuid,
        /// When the rollout finished.
        at: DateTime<Utc>,
    },
    /// The deployment failed; its resources are to be removed.
    DeploymentFailed {
        /// The failed deployment.
        deployment_id: Uuid,
        /// Why, in the user's words.
        message: String,
        /// When it failed.
        at: DateTime<Utc>,
    },
    /// A newer deployment replaced this one; its resources are to be removed.
    DeploymentSuperseded {
        /// The replaced deployment.
        deployment_id: Uuid,
        /// The deployment that replaced it.
        superseded_by: Uuid,
        /// When it was replaced.
        at: DateTime<Utc>,
    },
    /// A client asked to take this deployment down.
    UndeployRequested {
        /// The deployment to take down.
        deployment_id: Uuid,
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// The deployment's resources are gone.
    DeploymentUndeployed {
        /// The deployment taken down.
        deployment_id: Uuid,
        /// When its resources were removed.
        at: DateTime<Utc>,
    },
    /// The usecase was deleted; its name is free again.
    UsecaseDeleted {
        /// When it was deleted.
        at: DateTime<Utc>,
    },
    /// A client asked to roll the pods of the deployed deployment.
    RestartRequested {
        /// The restart, named by its outcome event.
        restart_id: Uuid,
        /// The deployment whose pods are rolled.
        deployment_id: Uuid,
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// The restart's rollout finished: fresh pods serve.
    RestartSucceeded {
        /// The restart.
        restart_id: Uuid,
        /// The deployment restarted.
        deployment_id: Uuid,
        /// When the rollout finished.
        at: DateTime<Utc>,
    },
    /// The restart's rollout failed, or the deployment stopped being deployed first.
    RestartFailed {
        /// The restart.
        restart_id: Uuid,
        /// The deployment it was for.
        deployment_id: Uuid,
        /// Why, in the user's words.
        message: String,
        /// When it failed.
        at: DateTime<Utc>,
    },
    /// A client changed the environment variables; it follows, in the same commit,
    /// the `DeploymentRequested` of the new deployment that rolls them out.
    ConfigChangeRequested {
        /// The new deployment carrying the change.
        deployment_id: Uuid,
        /// The deployed deployment whose config was the starting point.
        based_on: Uuid,
        /// The complete new set of environment variables.
        env: BTreeMap<String, String>,
        /// The complete new set of secret variables, sealed (those of the base when
        /// the change gave none); absent when there are none.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        secret_env: BTreeMap<String, SealedValue>,
        /// The complete new set of references to Kubernetes Secrets (those of the
        /// base when the change gave none); absent when there are none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        secret_refs: Vec<SecretRef>,
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// A client changed the auto-update settings: whether new images of the tag are
    /// followed, and how pods are replaced (the Kubernetes Deployment's strategy).
    AutoUpdateConfigured {
        /// Follow new images of the deployed tag.
        enabled: bool,
        /// How pods are replaced from now on.
        strategy: UpdateStrategy,
        /// Which new images count (absent in events recorded before policies: `digest`).
        #[serde(default)]
        policy: PolicyKind,
        /// The versions a `semver` policy follows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        range: Option<VersionRange>,
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// A manual rollback paused auto-update: following the tag again would undo the
    /// rollback. It follows the rollback's events in the same commit; enabling
    /// auto-update again (`AutoUpdateConfigured`) ends the pause.
    AutoUpdatePaused {
        /// The rollback's new deployment.
        rollback: Uuid,
        /// Why, in the user's words.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The auto-update watcher found a new image for the serving deployment's tag (or,
    /// with a `semver` policy, a higher version's tag); it follows, in the same commit,
    /// the `DeploymentRequested` of the new deployment that runs it, pinned to `digest`.
    AutoUpdateRequested {
        /// The new deployment running the new image.
        deployment_id: Uuid,
        /// The serving deployment the check compared against.
        based_on: Uuid,
        /// The check that found it: the causation of these events.
        check_id: Uuid,
        /// What made the watcher check.
        trigger: CheckTrigger,
        /// The tag followed.
        tag: String,
        /// The digest the tag names now, which the new deployment runs.
        digest: String,
        /// The digest the serving deployment runs, when it was recorded.
        previous_digest: Option<String>,
        /// When it was found.
        at: DateTime<Utc>,
    },
    /// A client asked to delete the usecase: what runs is undeployed first, and
    /// `UsecaseDeleted` follows once nothing of it is left in flight.
    DeletionRequested {
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// A client asked to restore an earlier deployment's config; it follows, in the
    /// same commit, the `DeploymentRequested` of the new deployment that runs it.
    RollbackRequested {
        /// The new deployment running the restored config.
        deployment_id: Uuid,
        /// The earlier deployment whose config is restored.
        rollback_of: Uuid,
        /// When it was asked.
        at: DateTime<Utc>,
    },
}

/// The schema version of every event shape below; bump it with an upcaster when a shape changes.
pub const EVENT_VERSION: &str = "1.0";

impl UsecaseEvent {
    /// The type name stored with the event and shown to clients.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::UsecaseRegistered { .. } => "UsecaseRegistered",
            Self::DeploymentRequested { .. } => "DeploymentRequested",
            Self::DeploymentStarted { .. } => "DeploymentStarted",
            Self::DeploymentSucceeded { .. } => "DeploymentSucceeded",
            Self::DeploymentFailed { .. } => "DeploymentFailed",
            Self::DeploymentSuperseded { .. } => "DeploymentSuperseded",
            Self::UndeployRequested { .. } => "UndeployRequested",
            Self::DeploymentUndeployed { .. } => "DeploymentUndeployed",
            Self::UsecaseDeleted { .. } => "UsecaseDeleted",
            Self::RestartRequested { .. } => "RestartRequested",
            Self::RestartSucceeded { .. } => "RestartSucceeded",
            Self::RestartFailed { .. } => "RestartFailed",
            Self::ConfigChangeRequested { .. } => "ConfigChangeRequested",
            Self::RollbackRequested { .. } => "RollbackRequested",
            Self::AutoUpdateConfigured { .. } => "AutoUpdateConfigured",
            Self::AutoUpdatePaused { .. } => "AutoUpdatePaused",
            Self::AutoUpdateRequested { .. } => "AutoUpdateRequested",
            Self::DeletionRequested { .. } => "DeletionRequested",
        }
    }

    /// When the fact happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::UsecaseRegistered { at, .. }
            | Self::DeploymentRequested { at, .. }
            | Self::DeploymentStarted { at, .. }
            | Self::DeploymentSucceeded { at, .. }
            | Self::DeploymentFailed { at, .. }
            | Self::DeploymentSuperseded { at, .. }
            | Self::UndeployRequested { at, .. }
            | Self::DeploymentUndeployed { at, .. }
            | Self::UsecaseDeleted { at }
            | Self::RestartRequested { at, .. }
            | Self::RestartSucceeded { at, .. }
            | Self::RestartFailed { at, .. }
            | Self::ConfigChangeRequested { at, .. }
            | Self::RollbackRequested { at, .. }
            | Self::AutoUpdateConfigured { at, .. }
            | Self::AutoUpdatePaused { at, .. }
            | Self::AutoUpdateRequested { at, .. }
            | Self::DeletionRequested { at } => *at,
        }
    }
}

/// Every event type name, for filters and documentation.
pub const EVENT_TYPES: [&str; 18] = [
    "UsecaseRegistered",
    "DeploymentRequested",
    "DeploymentStarted",
    "DeploymentSucceeded",
    "DeploymentFailed",
    "DeploymentSuperseded",
    "UndeployRequested",
    "DeploymentUndeployed",
    "UsecaseDeleted",
    "RestartRequested",
    "RestartSucceeded",
    "RestartFailed",
    "ConfigChangeRequested",
    "RollbackRequested",
    "AutoUpdateConfigured",
    "DeletionRequested",
    "AutoUpdatePaused",
    "AutoUpdateRequested",
];

impl DomainEvent for UsecaseEvent {
    fn event_type(&self) -> String {
        self.type_name().to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}
