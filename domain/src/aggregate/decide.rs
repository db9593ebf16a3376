//! What a usecase decides: the events each command produces against its current state,
//! or why the command is refused. The state and how events change it are in the parent.

use super::Usecase;
use crate::auto_update::FoundImage;
use crate::commands::UsecaseCommand;
use crate::config::DeploymentConfig;
use crate::error::DomainError;
use crate::events::UsecaseEvent;
use crate::secrets::check_disjoint;
use crate::status::DeploymentStatus;
use chrono::{DateTime, Utc};
use uuid::Uuid;

impl Usecase {
    /// The events `command` produces against the current state, or why it is refused.
    pub fn decide(&self, command: UsecaseCommand) -> Result<Vec<UsecaseEvent>, DomainError> {
        match command {
            UsecaseCommand::Register {
                usecase_id,
                name,
                description,
                owner,
                team,
                at,
            } => {
                if self.name.is_some() {
                    return Err(DomainError::AlreadyRegistered(self.id));
                }
                Ok(vec![UsecaseEvent::UsecaseRegistered {
                    usecase_id,
                    name,
                    description,
                    at,
                    template: None,
                    visibility: None,
                    owner: Some(owner),
                    team,
                }])
            }
            UsecaseCommand::Create {
                usecase_id,
                name,
                description,
                template,
                visibility,
                owner,
                team,
                deployment_id,
                config,
                at,
            } => {
                if self.name.is_some() {
                    return Err(DomainError::AlreadyRegistered(self.id));
                }
                Ok(vec![
                    UsecaseEvent::UsecaseRegistered {
                        usecase_id,
                        name,
                        description,
                        at,
                        template,
                        visibility: Some(visibility),
                        owner: Some(owner),
                        team,
                    },
                    UsecaseEvent::DeploymentRequested {
                        deployment_id,
                        config,
                        at,
                    },
                ])
            }
            live => self.decide_live(live),
        }
    }

    /// The decision on a command for a registered usecase: everything but the two that
    /// register it, which are refused here (it exists already).
    fn decide_live(&self, command: UsecaseCommand) -> Result<Vec<UsecaseEvent>, DomainError> {
        use DeploymentStatus::{Deploying, Pending};
        self.ensure_active()?;
        if matches!(
            command,
            UsecaseCommand::RequestDeployment { .. }
                | UsecaseCommand::RequestUndeploy { .. }
                | UsecaseCommand::RequestRestart { .. }
                | UsecaseCommand::ChangeConfig { .. }
                | UsecaseCommand::Rollback { .. }
                | UsecaseCommand::ConfigureAutoUpdate { .. }
                | UsecaseCommand::RequestDeletion { .. }
                | UsecaseCommand::RequestAutoUpdate { .. }
        ) {
            self.ensure_accepting()?;
        }
        match command {
            UsecaseCommand::Register { .. } | UsecaseCommand::Create { .. } => {
                Err(DomainError::AlreadyRegistered(self.id))
            }
            UsecaseCommand::ConfigureAutoUpdate { settings, at } => {
                // The same settings again record nothing, unless they end a pause.
                if settings == self.auto_update && self.auto_update_paused.is_none() {
                    return Ok(Vec::new());
                }
                Ok(vec![UsecaseEvent::AutoUpdateConfigured {
                    enabled: settings.enabled,
                    strategy: settings.strategy,
                    policy: settings.policy.kind(),
                    range: settings.policy.range().cloned(),
                    at,
                }])
            }
            UsecaseCommand::RequestAutoUpdate {
                deployment_id,
                found,
                at,
            } => self.auto_update_to(deployment_id, found, at),
            UsecaseCommand::RequestDeletion { at } => {
                let mut events = vec![UsecaseEvent::DeletionRequested { at }];
                // Whatever runs or is on its way goes first, as an undeploy would take it.
                events.extend(self.deployments.iter().filter(|d| d.is_live()).map(|d| {
                    UsecaseEvent::UndeployRequested {
                        deployment_id: d.id,
                        at,
                    }
                }));
                // Nothing to wait for: the deletion completes in the same commit.
                if self.deployments.iter().all(|d| d.status.is_terminal()) {
                    events.push(UsecaseEvent::UsecaseDeleted { at });
                }
                Ok(events)
            }
            UsecaseCommand::RequestDeployment {
                deployment_id,
                config,
                at,
            } => self.request(deployment_id, config, at),
            UsecaseCommand::StartDeployment {
                deployment_id,
                digest,
                at,
            } => {
                self.deployment_for(deployment_id, &[Pending], "started")?;
                Ok(vec![UsecaseEvent::DeploymentStarted {
                    deployment_id,
                    at,
                    digest,
                }])
            }
            UsecaseCommand::CompleteDeployment { deployment_id, at } => {
                self.deployment_for(deployment_id, &[Deploying], "marked deployed")?;
                let mut events = vec![UsecaseEvent::DeploymentSucceeded { deployment_id, at }];
                // At most one deployment is deployed: the new one replaces the old.
                if let Some(previous) = self.deployed().filter(|d| !d.undeploy_requested) {
                    events.push(UsecaseEvent::DeploymentSuperseded {
                        deployment_id: previous.id,
                        superseded_by: deployment_id,
                        at,
                    });
                }
                Ok(events)
            }
            UsecaseCommand::FailDeployment {
                deployment_id,
                message,
                at,
            } => {
                self.deployment_for(deployment_id, &[Pending, Deploying], "marked failed")?;
                Ok(vec![UsecaseEvent::DeploymentFailed {
                    deployment_id,
                    message,
                    at,
                }])
            }
            UsecaseCommand::RequestUndeploy { at } => {
                if self.deployed().is_none() {
                    return Err(DomainError::NothingDeployed);
                }
                if self.deployed().is_some_and(|d| d.undeploy_requested) {
                    return Err(DomainError::UndeployInProgress);
                }
                // Undeploy means "nothing of this usecase runs": in-flight ones go too.
                Ok(self
                    .deployments
                    .iter()
                    .filter(|d| d.is_live())
                    .map(|d| UsecaseEvent::UndeployRequested {
                        deployment_id: d.id,
                        at,
                    })
                    .collect())
            }
            UsecaseCommand::ConfirmUndeployed { deployment_id, at } => {
                let deployment = self
                    .deployment(deployment_id)
                    .ok_or(DomainError::DeploymentNotFound(deployment_id))?;
                if !deployment.undeploy_requested || deployment.status.is_terminal() {
                    return Err(DomainError::InvalidTransition {
                        deployment_id,
                        status: deployment.status,
                        action: "marked undeployed",
                    });
                }
                Ok(vec![UsecaseEvent::DeploymentUndeployed {
                    deployment_id,
                    at,
                }])
            }
            UsecaseCommand::Delete { at } => {
                if self.deployments.iter().any(|d| !d.status.is_terminal()) {
                    return Err(DomainError::UsecaseBusy);
                }
                Ok(vec![UsecaseEvent::UsecaseDeleted { at }])
            }
            UsecaseCommand::RequestRestart {
                restart_id,
                expected,
                at,
            } => {
                let serving = self.serving().ok_or(DomainError::NothingDeployed)?;
                self.ensure_expected(
                    expected,
                    serving.id,
                    "restarted (another deployment serves now)",
                )?;
                if serving.restart_pending {
                    return Err(DomainError::RestartInProgress);
                }
                Ok(vec![UsecaseEvent::RestartRequested {
                    restart_id,
                    deployment_id: serving.id,
                    at,
                }])
            }
            UsecaseCommand::CompleteRestart { restart_id, at } => {
                let d = self.restarting(restart_id)?;
                Ok(vec![UsecaseEvent::RestartSucceeded {
                    restart_id,
                    deployment_id: d.id,
                    at,
                }])
            }
            UsecaseCommand::FailRestart {
                restart_id,
                message,
                at,
            } => {
                let d = self.restarting(restart_id)?;
                Ok(vec![UsecaseEvent::RestartFailed {
                    restart_id,
                    deployment_id: d.id,
                    message,
                    at,
                }])
            }
            UsecaseCommand::ChangeConfig {
                deployment_id,
                expected_base,
                env,
                secret_env,
                secret_refs,
                at,
            } => {
                // The serving config, or else the newest one (a failed deployment
                // is mended by changing its config); the API decides which it allows.
                let base = self
                    .serving()
                    .or(self.deployments.last())
                    .ok_or(DomainError::NothingDeployed)?;
                self.ensure_expected(
                    expected_base,
                    base.id,
                    "the base of a config change (another deployment serves now)",
                )?;
                let secret_env = secret_env.unwrap_or_else(|| base.config.secret_env.clone());
                let secret_refs = secret_refs.unwrap_or_else(|| base.config.secret_refs.clone());
                // Kept secret variables count too: a plain value may not shadow one.
                check_disjoint(&env, &secret_env, &secret_refs, "")?;
                let config = DeploymentConfig {
                    env: env.clone(),
                    secret_env: secret_env.clone(),
                    secret_refs: secret_refs.clone(),
                    ..(*base.config).clone()
                };
                // Right after the DeploymentRequested it explains, before any supersession.
                let mut events = self.request(deployment_id, config, at)?;
                events.insert(
                    1,
                    UsecaseEvent::ConfigChangeRequested {
                        deployment_id,
                        based_on: base.id,
                        env,
                        secret_env,
                        secret_refs,
                        at,
                    },
                );
                Ok(events)
            }
            UsecaseCommand::Rollback {
                deployment_id,
                target,
                at,
            } => {
                let target = self.rollback_target(target)?;
                // The bytes the target ran, not whatever its tag names today: its
                // recorded digest pins the new deployment's image.
                let mut events = self.request(deployment_id, target.running_config(), at)?;
                events.insert(
                    1,
                    UsecaseEvent::RollbackRequested {
                        deployment_id,
                        rollback_of: target.id,
                        at,
                    },
                );
                // Following the tag again would undo the rollback at the next check.
                if self.auto_update.enabled && self.auto_update_paused.is_none() {
                    events.push(UsecaseEvent::AutoUpdatePaused {
                        rollback: deployment_id,
                        reason: format!(
                            "a manual rollback to deployment {}; enable auto-update again to resume",
                            target.id
                        ),
                        at,
                    });
                }
                Ok(events)
            }
        }
    }

    /// The events of an image update the watcher found: a new deployment of the serving
    /// config with the new tag, pinned to `digest`. Nothing when the serving deployment
    /// runs that digest already (a check that raced a deployment, or a repeated webhook).
    fn auto_update_to(
        &self,
        deployment_id: Uuid,
        found: FoundImage,
        at: DateTime<Utc>,
    ) -> Result<Vec<UsecaseEvent>, DomainError> {
        let FoundImage {
            check_id,
            trigger,
            expected,
            tag,
            digest,
        } = found;
        if !self.auto_update.enabled {
            return Err(DomainError::AutoUpdateOff);
        }
        if let Some(pause) = &self.auto_update_paused {
            return Err(DomainError::AutoUpdatePaused(pause.reason.clone()));
        }
        let serving = self.serving().ok_or(DomainError::NothingDeployed)?;
        self.ensure_expected(
            Some(expected),
            serving.id,
            "updated to a new image (another deployment serves now)",
        )?;
        // A deployment after the serving one is on its way: it decides what runs next.
        if self
            .deployments
            .iter()
            .any(|d| d.status.is_in_flight() && !d.undeploy_requested)
        {
            return Err(DomainError::UpdateInFlight);
        }
        let running = serving.running_config();
        if running.image.tag == tag && running.image.digest.as_deref() == Some(digest.as_str()) {
            return Ok(Vec::new());
        }
        let mut config = running.clone();
        config.image.tag.clone_from(&tag);
        config.image.digest = Some(digest.clone());
        let mut events = self.request(deployment_id, config, at)?;
        events.insert(
            1,
            UsecaseEvent::AutoUpdateRequested {
                deployment_id,
                based_on: serving.id,
                check_id,
                trigger,
                tag,
                digest,
                previous_digest: running.image.digest,
                at,
            },
        );
        Ok(events)
    }

    /// Refuses a command whose caller named a deployment (`expected`) other than the one
    /// it would act on (`actual`), so that the caller's answer names what the ledger records.
    fn ensure_expected(
        &self,
        expected: Option<Uuid>,
        actual: Uuid,
        action: &'static str,
    ) -> Result<(), DomainError> {
        match expected.filter(|e| *e != actual) {
            Some(expected) => Err(DomainError::InvalidTransition {
                deployment_id: expected,
                status: self
                    .deployment(expected)
                    .map_or(DeploymentStatus::Undeployed, |d| d.status),
                action,
            }),
            None => Ok(()),
        }
    }
}
