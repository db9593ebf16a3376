//! The process manager's decisions: from a usecase's state, the cluster steps
//! that make Kubernetes match it, and the outcome commands they lead to.
//! Level-triggered: `plan` looks only at the current state, never at which
//! event arrived, so running it again after a crash does the right thing.

use crate::cluster::{ClusterError, ClusterPort, RolloutOutcome, Workload};
use crate::cursor::Cursor;
use crate::error::AppError;
use crate::ports::{Causation, CommandBus, CommandContext, ImageResolver, NoResolution};
use crate::secrets::{NoVault, SecretError, SecretVault};
use async_trait::async_trait;
use chrono::{SubsecRound, Utc};
use shiplog_domain::{DeploymentStatus, Usecase, UsecaseCommand};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, instrument, warn};
use uuid::Uuid;

/// The actor recorded on the process manager's events.
pub const PROCESS_MANAGER: &str = "process-manager";

/// One thing to do in the cluster for a usecase.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Point the Service at the deployed deployment (first, so a handover has no gap).
    Route(Workload),
    /// Apply a pending deployment's objects, then record `DeploymentStarted`.
    Start(Workload),
    /// Re-apply a deploying deployment (idempotent) and watch its rollout to the end.
    Watch(Workload),
    /// Delete the objects of a deployment being undeployed, then record `DeploymentUndeployed`.
    Undeploy(Uuid),
    /// Delete the objects of a superseded, failed or undeployed deployment.
    CleanUp(Uuid),
    /// Delete the usecase's Service: nothing of it is deployed.
    RemoveRoute,
    /// Re-apply the serving deployment with its newest restart stamped on the pod
    /// template, watch the pods roll, then record the restart's outcome.
    Restart {
        /// The serving deployment, carrying the restart id.
        workload: Workload,
        /// The restart waiting for its outcome.
        restart_id: Uuid,
    },
    /// Record that the usecase is deleted: its deletion was asked for and nothing of it runs any more.
    FinishDeletion,
    /// Delete what a deleted usecase leaves beside its deployments (Service, Ingresses, generated values).
    Forget,
    /// Record that a restart cannot finish: its deployment stopped serving first.
    AbandonRestart {
        /// The deployment the restart was for.
        deployment_id: Uuid,
        /// The restart waiting for its outcome.
        restart_id: Uuid,
    },
}

impl Step {
    /// A short, stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Route(_) => "route",
            Self::Start(_) => "start",
            Self::Watch(_) => "watch",
            Self::Undeploy(_) => "undeploy",
            Self::CleanUp(_) => "clean_up",
            Self::RemoveRoute => "remove_route",
            Self::Restart { .. } => "restart",
            Self::AbandonRestart { .. } => "abandon_restart",
            Self::FinishDeletion => "finish_deletion",
            Self::Forget => "forget",
        }
    }
}

/// The steps that bring the cluster in line with `usecase`, in the order to take
/// them. `present` lists the deployments that have objects in the cluster (sorted):
/// only those are cleaned up, so a reconcile costs the same with one finished
/// deployment or a thousand; objects of deployments the usecase does not know are
/// cleaned up too.
pub fn plan(usecase: &Usecase, present: &[Uuid]) -> Vec<Step> {
    let workload = |d: &shiplog_domain::Deployment| Workload {
        usecase_id: usecase.id,
        deployment_id: d.id,
        // Pinned to the digest recorded when it started, so a re-apply keeps the same bytes.
        config: d.running_config(),
        restart: d.latest_restart,
        usecase_name: usecase
            .name
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_default(),
        visibility: usecase.effective_visibility(),
        strategy: usecase.auto_update.strategy,
        secrets: Default::default(),
    };
    let mut steps = Vec::new();
    let serving = usecase.deployments.iter().find(|d| {
        d.status == DeploymentStatus::Deployed && !d.undeploy_requested && !usecase.deleted
    });
    match serving {
        Some(d) => steps.push(Step::Route(workload(d))),
        None if usecase.deleted => steps.push(Step::Forget),
        None => steps.push(Step::RemoveRoute),
    }
    if usecase.ready_to_delete() {
        steps.push(Step::FinishDeletion);
    }
    for d in &usecase.deployments {
        if let (true, Some(restart_id)) = (d.restart_pending, d.latest_restart) {
            let step = if serving.is_some_and(|s| s.id == d.id) {
                Step::Restart {
                    workload: workload(d),
                    restart_id,
                }
            } else {
                Step::AbandonRestart {
                    deployment_id: d.id,
                    restart_id,
                }
            };
            steps.push(step);
        }
        // Nothing of a deleted usecase may remain, whatever state its deployments were left in.
        let step = if d.status.is_terminal() || usecase.deleted {
            if present.binary_search(&d.id).is_err() {
                continue;
            }
            Step::CleanUp(d.id)
        } else if d.undeploy_requested {
            Step::Undeploy(d.id)
        } else {
            match d.status {
                DeploymentStatus::Pending => Step::Start(workload(d)),
                DeploymentStatus::Deploying => Step::Watch(workload(d)),
                _ => continue,
            }
        };
        steps.push(step);
    }
    steps.extend(
        present
            .iter()
            .filter(|id| usecase.deployment(**id).is_none())
            .map(|id| Step::CleanUp(*id)),
    );
    // Routing first, so a replacement serves before the old pods go; removals
    // next, so a superseded rollout stops at once; rollouts, which wait, last.
    steps.sort_by_key(|s| match s {
        Step::Route(_) | Step::RemoveRoute | Step::Forget => 0,
        Step::CleanUp(_)
        | Step::Undeploy(_)
        | Step::AbandonRestart { .. }
        | Step::FinishDeletion => 1,
        Step::Restart { .. } | Step::Start(_) | Step::Watch(_) => 2,
    });
    steps
}

/// Whether a usecase whose plan is `steps` is at rest once they are taken: nothing
/// rolls out, nothing waits to be undeployed, restarted or deleted. Its worker
/// can then end; the next event about it starts one again.
pub fn at_rest(steps: &[Step]) -> bool {
    steps.iter().all(|s| {
        matches!(
            s,
            Step::Route(_) | Step::RemoveRoute | Step::Forget | Step::CleanUp(_)
        )
    })
}

/// Told about every cluster step the process manager takes (for metrics); the
/// default observer ignores them.
pub trait StepObserver: Send + Sync {
    /// `step` (see [`Step::name`]) begins. Told at the start, so that a step cut
    /// off by a re-plan (which happens to most rollout watches) still counts.
    fn started(&self, step: &'static str);
    /// `step` ended with an error (the reconcile is retried).
    fn failed(&self, step: &'static str);
}

/// The observer used when nobody asked for one.
struct Unobserved;

impl StepObserver for Unobserved {
    fn started(&self, _step: &'static str) {}
    fn failed(&self, _step: &'static str) {}
}

/// Loads the current state of a usecase from the event store.
#[async_trait]
pub trait UsecaseLoader: Send + Sync {
    /// The usecase folded from all its events (a default, unregistered one when it has none).
    async fn load(&self, usecase_id: Uuid) -> Result<Usecase, AppError>;
}

/// Why a reconcile stopped early; the runner retries with back-off.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The cluster failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] AppError),
}

/// Carries out plans: cluster steps through the `ClusterPort`, outcomes as commands.
pub struct ProcessManager {
    bus: Arc<dyn CommandBus>,
    loader: Arc<dyn UsecaseLoader>,
    cluster: Arc<dyn ClusterPort>,
    rollout_timeout: Duration,
    observer: Arc<dyn StepObserver>,
    images: Arc<dyn ImageResolver>,
    vault: Arc<dyn SecretVault>,
}

impl ProcessManager {
    /// A process manager over its ports; a rollout not ready within `rollout_timeout` fails.
    pub fn new(
        bus: Arc<dyn CommandBus>,
        loader: Arc<dyn UsecaseLoader>,
        cluster: Arc<dyn ClusterPort>,
        rollout_timeout: Duration,
    ) -> Self {
        Self {
            bus,
            loader,
            cluster,
            rollout_timeout,
            observer: Arc::new(Unobserved),
            images: Arc::new(NoResolution),
            vault: Arc::new(NoVault),
        }
    }

    /// The same process manager, opening deployments' secret values with `vault`
    /// just before it applies them (by default, no vault: a deployment with secret
    /// values fails, saying that no master key is configured).
    pub fn with_vault(mut self, vault: Arc<dyn SecretVault>) -> Self {
        self.vault = vault;
        self
    }

    /// The same process manager, pinning each deployment's image to the digest
    /// `images` resolves its tag to before applying it (by default, nothing is resolved).
    pub fn with_image_resolver(mut self, images: Arc<dyn ImageResolver>) -> Self {
        self.images = images;
        self
    }

    /// The same process manager, reporting each step it takes to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn StepObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// The cluster port, for the start-up sweep.
    pub fn cluster(&self) -> &Arc<dyn ClusterPort> {
        &self.cluster
    }

    /// Brings the cluster in line with the usecase's current state. `causation` is
    /// the cursor of the event that made the process manager look; it is recorded
    /// on every outcome event. Safe to cancel and to run again at any point.
    /// Returns whether the usecase is at rest afterwards (see [`at_rest`]).
    #[instrument(skip(self), fields(%usecase_id, %causation))]
    pub async fn reconcile(
        &self,
        usecase_id: Uuid,
        causation: Cursor,
    ) -> Result<bool, ReconcileError> {
        let usecase = self.loader.load(usecase_id).await?;
        if usecase.name.is_none() {
            return Ok(true);
        }
        let present = self.cluster.present(usecase_id).await?;
        let steps = plan(&usecase, &present);
        let settled = at_rest(&steps);
        if usecase.deleted {
            // Nothing of a deleted usecase may remain; only clean-ups are left to do.
            for step in steps {
                if matches!(step, Step::CleanUp(_) | Step::Forget) {
                    self.take(usecase_id, step, causation).await?;
                }
            }
            return Ok(true);
        }
        for step in steps {
            self.take(usecase_id, step, causation).await?;
        }
        Ok(settled)
    }

    /// Carries out one step and tells the observer how it went.
    async fn take(
        &self,
        usecase_id: Uuid,
        step: Step,
        causation: Cursor,
    ) -> Result<(), ReconcileError> {
        let name = step.name();
        self.observer.started(name);
        let result = self.step(usecase_id, step, causation).await;
        if result.is_err() {
            self.observer.failed(name);
        }
        result
    }

    async fn step(
        &self,
        usecase_id: Uuid,
        step: Step,
        causation: Cursor,
    ) -> Result<(), ReconcileError> {
        match step {
            Step::Route(w) => self.cluster.route(&w).await?,
            Step::RemoveRoute => self.cluster.remove_route(usecase_id).await?,
            Step::Forget => self.cluster.forget(usecase_id).await?,
            Step::FinishDeletion => {
                let at = Utc::now().trunc_subsecs(0);
                self.record(usecase_id, UsecaseCommand::Delete { at }, causation)
                    .await?;
            }
            Step::Start(w) => {
                let Some(w) = self.pin(w, causation).await? else {
                    return Ok(());
                };
                let Some(w) = self.open(w, causation, None).await? else {
                    return Ok(());
                };
                if !self.apply_or_fail(&w, causation).await? {
                    return Ok(());
                }
                let at = Utc::now().trunc_subsecs(0);
                self.record(
                    usecase_id,
                    UsecaseCommand::StartDeployment {
                        deployment_id: w.deployment_id,
                        digest: w.config.image.digest.clone(),
                        at,
                    },
                    causation,
                )
                .await?;
                self.watch(&w, causation).await?;
            }
            Step::Watch(w) => {
                let Some(w) = self.open(w, causation, None).await? else {
                    return Ok(());
                };
                if self.apply_or_fail(&w, causation).await? {
                    self.watch(&w, causation).await?;
                }
            }
            Step::Undeploy(id) => {
                self.cluster.remove(usecase_id, id).await?;
                let at = Utc::now().trunc_subsecs(0);
                self.record(
                    usecase_id,
                    UsecaseCommand::ConfirmUndeployed {
                        deployment_id: id,
                        at,
                    },
                    causation,
                )
                .await?;
            }
            Step::CleanUp(id) => self.cluster.remove(usecase_id, id).await?,
            Step::Restart {
                workload,
                restart_id,
            } => {
                if let Some(w) = self.open(workload, causation, Some(restart_id)).await? {
                    self.restart(&w, restart_id, causation).await?;
                }
            }
            Step::AbandonRestart {
                deployment_id,
                restart_id,
            } => {
                let command = UsecaseCommand::FailRestart {
                    restart_id,
                    message: format!(
                        "deployment {deployment_id} stopped serving before the restart finished"
                    ),
                    at: Utc::now().trunc_subsecs(0),
                };
                self.record(usecase_id, command, causation).await?;
            }
        }
        Ok(())
    }

    /// The workload with its image pinned to the digest its tag names now (a digest
    /// the client or a rollback pinned stays as it is). When the tag cannot be
    /// resolved, records the failure and returns `None`: nothing is applied.
    async fn pin(
        &self,
        mut w: Workload,
        causation: Cursor,
    ) -> Result<Option<Workload>, ReconcileError> {
        if w.config.image.digest.is_some() {
            return Ok(Some(w));
        }
        match self.images.resolve(&w.config.image).await {
            Ok(digest) => {
                if let Some(digest) = &digest {
                    info!(deployment_id = %w.deployment_id, image = %w.config.image, %digest, "image resolved");
                }
                w.config.image.digest = digest;
                Ok(Some(w))
            }
            Err(e) => {
                info!(deployment_id = %w.deployment_id, error = %e, "image not resolved");
                let command = UsecaseCommand::FailDeployment {
                    deployment_id: w.deployment_id,
                    message: e.to_string(),
                    at: Utc::now().trunc_subsecs(0),
                };
                self.record(w.usecase_id, command, causation).await?;
                Ok(None)
            }
        }
    }

    /// The workload with its secret values opened, just before it is applied. When
    /// they cannot be opened (no master key, or one that does not open the usecase's
    /// key), records the failure of the deployment (or of `restart`) and returns
    /// `None`: nothing is applied. A key store that cannot be reached is retried.
    async fn open(
        &self,
        mut w: Workload,
        causation: Cursor,
        restart: Option<Uuid>,
    ) -> Result<Option<Workload>, ReconcileError> {
        match self.vault.open(w.usecase_id, &w.config.secret_env).await {
            Ok(values) => {
                w.secrets = values;
                Ok(Some(w))
            }
            // The key store is down (or broken): nothing is wrong with the deployment, retry.
            Err(e @ (SecretError::Unavailable(_) | SecretError::Internal(_))) => {
                Err(ReconcileError::Ledger(e.into()))
            }
            Err(e) => {
                warn!(deployment_id = %w.deployment_id, error = %e, "secret values not opened");
                let (message, at) = (
                    format!("its secret values cannot be opened: {e}"),
                    Utc::now().trunc_subsecs(0),
                );
                let command = match restart {
                    Some(restart_id) => UsecaseCommand::FailRestart {
                        restart_id,
                        message,
                        at,
                    },
                    None => UsecaseCommand::FailDeployment {
                        deployment_id: w.deployment_id,
                        message,
                        at,
                    },
                };
                self.record(w.usecase_id, command, causation).await?;
                Ok(None)
            }
        }
    }

    /// Rolls the serving deployment's pods (the restart id on the pod template is
    /// the change) and records how the rollout ended.
    async fn restart(
        &self,
        w: &Workload,
        restart_id: Uuid,
        causation: Cursor,
    ) -> Result<(), ReconcileError> {
        let at = || Utc::now().trunc_subsecs(0);
        let command = match self.cluster.apply(w).await {
            Err(ClusterError::Rejected(reason)) => UsecaseCommand::FailRestart {
                restart_id,
                message: format!("the cluster refused the restart: {reason}"),
                at: at(),
            },
            Err(e) => return Err(e.into()),
            Ok(()) => match self.cluster.await_rollout(w, self.rollout_timeout).await? {
                RolloutOutcome::Ready => UsecaseCommand::CompleteRestart {
                    restart_id,
                    at: at(),
                },
                RolloutOutcome::Failed(message) => UsecaseCommand::FailRestart {
                    restart_id,
                    message,
                    at: at(),
                },
            },
        };
        self.record(w.usecase_id, command, causation).await?;
        Ok(())
    }

    /// Applies the workload; when the cluster refuses it for good (an object it
    /// cannot accept, a missing CRD), records the failure instead of retrying
    /// forever. Returns whether the workload is applied.
    async fn apply_or_fail(&self, w: &Workload, causation: Cursor) -> Result<bool, ReconcileError> {
        match self.cluster.apply(w).await {
            Ok(()) => Ok(true),
            Err(ClusterError::Rejected(reason)) => {
                let at = Utc::now().trunc_subsecs(0);
                let message = format!("the cluster refused the deployment: {reason}");
                let command = UsecaseCommand::FailDeployment {
                    deployment_id: w.deployment_id,
                    message,
                    at,
                };
                self.record(w.usecase_id, command, causation).await?;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn watch(&self, w: &Workload, causation: Cursor) -> Result<(), ReconcileError> {
        let outcome = self.cluster.await_rollout(w, self.rollout_timeout).await?;
        let at = Utc::now().trunc_subsecs(0);
        let command = match outcome {
            RolloutOutcome::Ready => {
                // Route before recording success: once a client reads `deployed`,
                // the Service already sends traffic to this deployment. Should the
                // success be refused as stale, the next reconcile routes back.
                self.cluster.route(w).await?;
                UsecaseCommand::CompleteDeployment {
                    deployment_id: w.deployment_id,
                    at,
                }
            }
            RolloutOutcome::Failed(message) => {
                info!(deployment_id = %w.deployment_id, %message, "rollout failed");
                UsecaseCommand::FailDeployment {
                    deployment_id: w.deployment_id,
                    message,
                    at,
                }
            }
        };
        self.record(w.usecase_id, command, causation).await?;
        // The outcome changes what the cluster should look like (route, clean-up):
        // the event it appended triggers the next reconcile.
        Ok(())
    }

    /// Appends an outcome. A conflict means the state moved on (a newer request
    /// superseded the deployment, say); the next reconcile acts on the new state.
    async fn record(
        &self,
        usecase_id: Uuid,
        command: UsecaseCommand,
        causation: Cursor,
    ) -> Result<(), AppError> {
        let ctx = CommandContext {
            actor: PROCESS_MANAGER.to_owned(),
            request_id: format!("pm-{}", Uuid::new_v4()),
            causation: Some(Causation::Event(causation)),
            reason: None,
        };
        match self.bus.execute(usecase_id, command, &ctx).await {
            Ok(_) => Ok(()),
            Err(AppError::Conflict { detail: reason, .. }) => {
                warn!(%usecase_id, %reason, "outcome no longer applies; the state moved on");
                Ok(())
            }
            Err(AppError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
