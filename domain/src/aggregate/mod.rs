//! The `Usecase` aggregate: decides which events a command produces and folds
//! events into state. It is the only place the deployment lifecycle is enforced.

mod decide;

use crate::auto_update::{AutoUpdate, AutoUpdatePause, UpdatePolicy};
use crate::commands::UsecaseCommand;
use crate::config::{DeploymentConfig, UsecaseName};
use crate::error::DomainError;
use crate::events::UsecaseEvent;
use crate::platform::Visibility;
use crate::status::DeploymentStatus;
use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// One deployment of a usecase as the aggregate tracks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Its id.
    pub id: Uuid,
    /// What it runs; shared, so that copying a usecase with a long history is cheap.
    pub config: Arc<DeploymentConfig>,
    /// Where it is in the lifecycle.
    pub status: DeploymentStatus,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
    /// Failure message, empty otherwise.
    pub message: String,
    /// An undeploy was asked for and its resources are not gone yet.
    pub undeploy_requested: bool,
    /// It reached `deployed` at some point (a rollback target must have).
    #[serde(default)]
    pub ever_deployed: bool,
    /// The newest restart asked for; its id is stamped on the pod template.
    #[serde(default)]
    pub latest_restart: Option<Uuid>,
    /// That restart has no outcome yet.
    #[serde(default)]
    pub restart_pending: bool,
    /// Set when it restores an earlier deployment's config: that deployment.
    #[serde(default)]
    pub rollback_of: Option<Uuid>,
    /// Set when it rolls out a config change: the deployment whose config was changed.
    #[serde(default)]
    pub based_on: Option<Uuid>,
    /// The manifest digest it runs, recorded when it started (`DeploymentStarted`).
    #[serde(default)]
    pub digest: Option<String>,
}

impl Deployment {
    /// Its config with the image pinned to the recorded digest, when there is one:
    /// what its pods run, and what a rollback to it restores.
    pub fn running_config(&self) -> DeploymentConfig {
        let mut config = (*self.config).clone();
        if let Some(digest) = &self.digest {
            config.image.digest = Some(digest.clone());
        }
        config
    }

    /// Deployed or in flight, and not yet on its way down: what undeploy would take down.
    fn is_live(&self) -> bool {
        !self.status.is_terminal() && !self.undeploy_requested
    }
}

/// A registered usecase and all its deployments, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usecase {
    /// Its id (nil until registered).
    pub id: Uuid,
    /// Its unique name, once registered.
    pub name: Option<UsecaseName>,
    /// Free text.
    pub description: String,
    /// When it was registered.
    pub created_at: Option<DateTime<Utc>>,
    /// Deleted usecases accept no command.
    pub deleted: bool,
    /// Every deployment ever requested, oldest first.
    pub deployments: Vec<Deployment>,
    /// The catalog template it was created from (seed 002).
    #[serde(default)]
    pub template: Option<String>,
    /// Who may reach it; `None` for PhariaOS usecases, which are internal.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// Whether new images are followed, and how pods are replaced.
    #[serde(default)]
    pub auto_update: AutoUpdate,
    /// Set while a manual rollback has paused auto-update.
    #[serde(default)]
    pub auto_update_paused: Option<AutoUpdatePause>,
    /// A deletion was asked for: what runs is being taken down, then it is deleted.
    #[serde(default)]
    pub deletion_requested: bool,
}

impl Usecase {
    /// The deployment with this id, if it belongs to the usecase.
    pub fn deployment(&self, id: Uuid) -> Option<&Deployment> {
        self.deployments.iter().find(|d| d.id == id)
    }

    /// The one deployment currently `deployed`, if any.
    pub fn deployed(&self) -> Option<&Deployment> {
        self.deployments
            .iter()
            .find(|d| d.status == DeploymentStatus::Deployed)
    }

    fn deployment_mut(&mut self, id: Uuid) -> Option<&mut Deployment> {
        self.deployments.iter_mut().find(|d| d.id == id)
    }

    /// The deployed deployment that is not on its way down: what restart, config and rollback act on.
    pub fn serving(&self) -> Option<&Deployment> {
        self.deployed().filter(|d| !d.undeploy_requested)
    }

    /// A new deployment of `config`, superseding every older one still in flight.
    fn request(
        &self,
        deployment_id: Uuid,
        config: DeploymentConfig,
        at: DateTime<Utc>,
    ) -> Result<Vec<UsecaseEvent>, DomainError> {
        if self.deployment(deployment_id).is_some() {
            return Err(DomainError::DuplicateDeployment(deployment_id));
        }
        let mut events = vec![UsecaseEvent::DeploymentRequested {
            deployment_id,
            config,
            at,
        }];
        // A newer request makes every older one still in flight obsolete.
        events.extend(
            self.deployments
                .iter()
                .filter(|d| d.status.is_in_flight() && !d.undeploy_requested)
                .map(|d| UsecaseEvent::DeploymentSuperseded {
                    deployment_id: d.id,
                    superseded_by: deployment_id,
                    at,
                }),
        );
        Ok(events)
    }

    /// The deployment whose config a rollback restores: `target`, or the newest
    /// deployment that was deployed before the one serving now.
    fn rollback_target(&self, target: Option<Uuid>) -> Result<&Deployment, DomainError> {
        let serving = self.serving();
        match target {
            Some(id) => {
                let d = self
                    .deployment(id)
                    .ok_or(DomainError::UnknownRollbackTarget(id))?;
                if !d.status.is_terminal() {
                    return Err(DomainError::InvalidRollbackTarget {
                        deployment_id: id,
                        status: d.status,
                    });
                }
                Ok(d)
            }
            None => {
                let current = serving.ok_or(DomainError::NothingDeployed)?;
                self.deployments
                    .iter()
                    .take_while(|d| d.id != current.id)
                    .filter(|d| d.ever_deployed && d.status.is_terminal())
                    .last()
                    .ok_or(DomainError::NothingToRollBackTo)
            }
        }
    }

    /// The deployment with a pending restart `restart_id`.
    fn restarting(&self, restart_id: Uuid) -> Result<&Deployment, DomainError> {
        self.deployments
            .iter()
            .find(|d| d.restart_pending && d.latest_restart == Some(restart_id))
            .ok_or(DomainError::NoSuchRestart(restart_id))
    }

    /// Refuses every command on a usecase that does not exist (any more).
    fn ensure_active(&self) -> Result<(), DomainError> {
        if self.name.is_none() {
            return Err(DomainError::UsecaseNotFound);
        }
        if self.deleted {
            return Err(DomainError::UsecaseDeleted);
        }
        Ok(())
    }

    /// Refuses a client's new request while the usecase is being deleted; outcomes
    /// the process manager reports still land, so that the deletion can finish.
    fn ensure_accepting(&self) -> Result<(), DomainError> {
        if self.deletion_requested {
            return Err(DomainError::DeletionInProgress);
        }
        Ok(())
    }

    /// Who may reach the usecase: its own visibility, internal for PhariaOS usecases.
    pub fn effective_visibility(&self) -> Visibility {
        self.visibility.unwrap_or(Visibility::Internal)
    }

    /// A deletion was asked for and nothing of the usecase is deployed or in flight any more.
    pub fn ready_to_delete(&self) -> bool {
        self.deletion_requested
            && !self.deleted
            && self.deployments.iter().all(|d| d.status.is_terminal())
    }

    /// Finds a deployment the process manager reports on and checks it may take `action`.
    fn deployment_for(
        &self,
        id: Uuid,
        allowed: &[DeploymentStatus],
        action: &'static str,
    ) -> Result<&Deployment, DomainError> {
        let deployment = self
            .deployment(id)
            .ok_or(DomainError::DeploymentNotFound(id))?;
        if !allowed.contains(&deployment.status) || deployment.undeploy_requested {
            return Err(DomainError::InvalidTransition {
                deployment_id: id,
                status: deployment.status,
                action,
            });
        }
        Ok(deployment)
    }

    fn set_status(&mut self, id: Uuid, status: DeploymentStatus) -> Option<&mut Deployment> {
        let deployment = self.deployment_mut(id)?;
        deployment.status = status;
        Some(deployment)
    }
}

impl Aggregate for Usecase {
    const TYPE: &'static str = "Usecase";
    type Command = UsecaseCommand;
    type Event = UsecaseEvent;
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
            UsecaseEvent::UsecaseRegistered {
                usecase_id,
                name,
                description,
                at,
                template,
                visibility,
                ..
            } => {
                self.id = usecase_id;
                self.name = Some(name);
                self.description = description;
                self.created_at = Some(at);
                self.template = template;
                self.visibility = visibility;
            }
            UsecaseEvent::AutoUpdateConfigured {
                enabled,
                strategy,
                policy,
                range,
                ..
            } => {
                self.auto_update = AutoUpdate {
                    enabled,
                    strategy,
                    policy: UpdatePolicy::recorded(policy, range),
                };
                // Enabling (or disabling) again is the answer to a pause.
                self.auto_update_paused = None;
            }
            UsecaseEvent::AutoUpdatePaused {
                rollback,
                reason,
                at,
            } => {
                self.auto_update_paused = Some(AutoUpdatePause {
                    reason,
                    rollback,
                    since: at,
                })
            }
            // The DeploymentRequested just before it carries the new image.
            UsecaseEvent::AutoUpdateRequested { .. } => {}
            UsecaseEvent::DeletionRequested { .. } => self.deletion_requested = true,
            UsecaseEvent::DeploymentRequested {
                deployment_id,
                config,
                at,
            } => self.deployments.push(Deployment {
                id: deployment_id,
                config: Arc::new(config),
                status: DeploymentStatus::Pending,
                created_at: at,
                message: String::new(),
                undeploy_requested: false,
                ever_deployed: false,
                latest_restart: None,
                restart_pending: false,
                rollback_of: None,
                based_on: None,
                digest: None,
            }),
            UsecaseEvent::DeploymentStarted {
                deployment_id,
                digest,
                ..
            } => {
                if let Some(d) = self.set_status(deployment_id, DeploymentStatus::Deploying) {
                    d.digest = digest;
                }
            }
            UsecaseEvent::DeploymentSucceeded { deployment_id, .. } => {
                if let Some(d) = self.set_status(deployment_id, DeploymentStatus::Deployed) {
                    d.ever_deployed = true;
                }
            }
            UsecaseEvent::DeploymentFailed {
                deployment_id,
                message,
                ..
            } => {
                if let Some(d) = self.set_status(deployment_id, DeploymentStatus::Error) {
                    d.message = message;
                }
            }
            UsecaseEvent::DeploymentSuperseded { deployment_id, .. } => {
                self.set_status(deployment_id, DeploymentStatus::Superseded);
            }
            UsecaseEvent::UndeployRequested { deployment_id, .. } => {
                if let Some(d) = self.deployment_mut(deployment_id) {
                    d.undeploy_requested = true;
                }
            }
            UsecaseEvent::DeploymentUndeployed { deployment_id, .. } => {
                self.set_status(deployment_id, DeploymentStatus::Undeployed);
            }
            UsecaseEvent::UsecaseDeleted { .. } => self.deleted = true,
            UsecaseEvent::RestartRequested {
                restart_id,
                deployment_id,
                ..
            } => {
                if let Some(d) = self.deployment_mut(deployment_id) {
                    d.latest_restart = Some(restart_id);
                    d.restart_pending = true;
                }
            }
            UsecaseEvent::RestartSucceeded { deployment_id, .. }
            | UsecaseEvent::RestartFailed { deployment_id, .. } => {
                if let Some(d) = self.deployment_mut(deployment_id) {
                    d.restart_pending = false;
                }
            }
            UsecaseEvent::RollbackRequested {
                deployment_id,
                rollback_of,
                ..
            } => {
                if let Some(d) = self.deployment_mut(deployment_id) {
                    d.rollback_of = Some(rollback_of);
                }
            }
            // The DeploymentRequested just before it carries the new config.
            UsecaseEvent::ConfigChangeRequested {
                deployment_id,
                based_on,
                ..
            } => {
                if let Some(d) = self.deployment_mut(deployment_id) {
                    d.based_on = Some(based_on);
                }
            }
        }
    }
}
