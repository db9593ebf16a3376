//! Operating a deployed usecase: restart, configuration, rollback (commands on
//! the ledger) and logs, Kubernetes events and resource usage (read from the
//! cluster through the `ClusterInsight` port).

use crate::auto_update::{AutoUpdateChange, AutoUpdateStatus, CheckStore};
use crate::cluster::ClusterError;
use crate::error::{AppError, Conflict, Missing};
use crate::ports::{CommandBus, CommandContext, ReadModel};
use crate::process_manager::UsecaseLoader;
use crate::secrets::{no_vault, SecretInput, SecretVault};
use crate::usecases::execute_visible;
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use futures_core::stream::BoxStream;
use shiplog_domain::{
    check_env, Deployment, InvalidField, SealedValue, SecretRef, Usecase, UsecaseCommand,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::instrument;
use uuid::Uuid;

/// The most log lines one request may ask for.
pub const MAX_TAIL: u32 = 10_000;
/// The log lines returned when a client names no `tail`.
pub const DEFAULT_TAIL: u32 = 100;

/// One line a container wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The pod that wrote it.
    pub pod: String,
    /// The line, without its newline.
    pub line: String,
}

/// A Kubernetes event about one of a usecase's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeEvent {
    /// `Normal` or `Warning`.
    pub kind: String,
    /// Kubernetes' reason word (`Pulled`, `BackOff`, `ScalingReplicaSet`, ...).
    pub reason: String,
    /// The human message.
    pub message: String,
    /// The object it is about: its kind (`Pod`, `Deployment`, `Service`).
    pub object_kind: String,
    /// The object's name.
    pub object_name: String,
    /// How often it happened.
    pub count: i32,
    /// When it first happened, when Kubernetes says.
    pub first_seen: Option<DateTime<Utc>>,
    /// When it last happened, when Kubernetes says.
    pub last_seen: Option<DateTime<Utc>>,
}

/// CPU and memory one pod uses now, as metrics.k8s.io reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodUsage {
    /// The pod.
    pub pod: String,
    /// CPU in cores (0.25 = 250m).
    pub cpu_cores: f64,
    /// Working-set memory in bytes.
    pub memory_bytes: u64,
    /// When the sample was taken.
    pub timestamp: Option<DateTime<Utc>>,
    /// The window the CPU rate was measured over, e.g. `30s`.
    pub window: String,
}

/// What the operations routes read from the cluster; implemented on kube-rs.
#[async_trait]
pub trait ClusterInsight: Send + Sync {
    /// The last `tail` lines of `container` in every pod of the deployment, pod by pod.
    async fn logs(
        &self,
        deployment_id: Uuid,
        container: &str,
        tail: u32,
    ) -> Result<Vec<LogLine>, ClusterError>;
    /// The last `tail` lines of `container` in every pod of the deployment, then new
    /// lines as they come.
    async fn follow_logs(
        &self,
        deployment_id: Uuid,
        container: &str,
        tail: u32,
    ) -> Result<BoxStream<'static, Result<LogLine, ClusterError>>, ClusterError>;
    /// Events of the usecase's Service and of these deployments and their pods, oldest first.
    async fn events(
        &self,
        usecase_id: Uuid,
        deployment_ids: &[Uuid],
    ) -> Result<Vec<KubeEvent>, ClusterError>;
    /// Usage of the deployment's pods (of `container` alone, or of all their
    /// containers); `None` when the cluster serves no metrics.k8s.io.
    async fn usage(
        &self,
        deployment_id: Uuid,
        container: Option<&str>,
    ) -> Result<Option<Vec<PodUsage>>, ClusterError>;
}

/// A command the API accepted: the process manager carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The restart or the new deployment the command started.
    pub id: Uuid,
    /// The deployment it acts on (restart) or starts from (config change, rollback).
    pub deployment_id: Uuid,
}

/// The environment of the serving deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The deployment serving now.
    pub deployment_id: Uuid,
    /// Its environment variables.
    pub env: BTreeMap<String, String>,
    /// Its secret variables, sealed (shown masked).
    pub secret_env: BTreeMap<String, SealedValue>,
    /// Its variables read from Kubernetes Secrets.
    pub secret_refs: Vec<SecretRef>,
}

/// The logs of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logs {
    /// The deployment they come from.
    pub deployment_id: Uuid,
    /// The lines, pod by pod.
    pub lines: Vec<LogLine>,
}

/// Resource usage of one deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// The deployment measured.
    pub deployment_id: Uuid,
    /// One sample per running pod.
    pub pods: Vec<PodUsage>,
}

/// Restart, config, rollback, logs, Kubernetes events and usage of a usecase.
pub struct Operations {
    bus: Arc<dyn CommandBus>,
    read: Arc<dyn ReadModel>,
    ledger: Arc<dyn UsecaseLoader>,
    cluster: Option<Arc<dyn ClusterInsight>>,
    checks: Arc<dyn CheckStore>,
    vault: Arc<dyn SecretVault>,
}

fn cluster_error(e: ClusterError) -> AppError {
    match e {
        ClusterError::Unavailable(m) => AppError::ClusterUnavailable(m),
        ClusterError::Rejected(m) => {
            AppError::ClusterUnavailable(format!("the cluster refused the request: {m}"))
        }
    }
}

impl Operations {
    /// Wires the operations to their ports; `cluster` is `None` when this process
    /// runs without a cluster (`--cluster none`): cluster reads then answer 503.
    /// `checks` holds the auto-update watcher's last check of each usecase.
    pub fn new(
        bus: Arc<dyn CommandBus>,
        read: Arc<dyn ReadModel>,
        ledger: Arc<dyn UsecaseLoader>,
        cluster: Option<Arc<dyn ClusterInsight>>,
        checks: Arc<dyn CheckStore>,
    ) -> Self {
        Self {
            bus,
            read,
            ledger,
            cluster,
            checks,
            vault: no_vault(),
        }
    }

    /// The same operations, sealing the secret values of config changes with `vault`.
    pub fn with_vault(mut self, vault: Arc<dyn SecretVault>) -> Self {
        self.vault = vault;
        self
    }

    /// The usecase as the ledger has it now (not the projection: no lag).
    async fn usecase(&self, usecase_id: Uuid) -> Result<Usecase, AppError> {
        let usecase = self.ledger.load(usecase_id).await?;
        if usecase.name.is_none() || usecase.deleted {
            return Err(AppError::not_found(
                Missing::Usecase,
                format!("usecase {usecase_id} not found"),
            ));
        }
        Ok(usecase)
    }

    fn cluster(&self) -> Result<&Arc<dyn ClusterInsight>, AppError> {
        self.cluster.as_ref().ok_or_else(|| {
            AppError::ClusterUnavailable(
                "this shiplog process runs without a cluster (--cluster none)".to_owned(),
            )
        })
    }

    async fn execute(
        &self,
        ctx: &CommandContext,
        usecase_id: Uuid,
        command: UsecaseCommand,
    ) -> Result<(), AppError> {
        // An unknown or deleted usecase is the aggregate's NotFound; no need to load it first.
        execute_visible(&*self.bus, &*self.read, usecase_id, command, ctx).await
    }

    /// The serving deployment: an explicit one is checked to belong to the usecase.
    async fn deployment_of(
        &self,
        usecase_id: Uuid,
        deployment_id: Option<Uuid>,
    ) -> Result<Deployment, AppError> {
        let usecase = self.usecase(usecase_id).await?;
        match deployment_id {
            Some(id) => usecase
                .deployment(id)
                .cloned()
                .ok_or_else(|| {
                    AppError::not_found(Missing::Deployment, format!("deployment {id} not found"))
                }),
            None => usecase.serving().cloned().ok_or_else(|| {
                AppError::conflict(
                    Conflict::NothingDeployed,
                    format!(
                        "usecase {usecase_id} has no deployed deployment; name one with deploymentId"
                    ),
                )
            }),
        }
    }

    /// Rolls the pods of the deployed deployment; the process manager records the outcome.
    #[instrument(skip(self, ctx), fields(actor = %ctx.actor))]
    pub async fn restart(
        &self,
        ctx: &CommandContext,
        usecase_id: Uuid,
    ) -> Result<Accepted, AppError> {
        let restart_id = Uuid::new_v4();
        // The deployment serving now; the aggregate refuses the restart if another one
        // serves by the time it decides, so the answer names what the ledger records
        // even when other replicas act on the usecase at the same time.
        let deployment_id = self
            .usecase(usecase_id)
            .await?
            .serving()
            .map(|d| d.id)
            .ok_or_else(|| AppError::from(shiplog_domain::DomainError::NothingDeployed))?;
        let command = UsecaseCommand::RequestRestart {
            restart_id,
            expected: Some(deployment_id),
            at: Utc::now().trunc_subsecs(0),
        };
        self.execute(ctx, usecase_id, command).await?;
        Ok(Accepted {
            id: restart_id,
            deployment_id,
        })
    }

    /// The auto-update settings as the ledger holds them now, the pause, and the
    /// watcher's last check.
    pub async fn auto_update(&self, usecase_id: Uuid) -> Result<AutoUpdateStatus, AppError> {
        let usecase = self.usecase(usecase_id).await?;
        Ok(AutoUpdateStatus {
            settings: usecase.auto_update,
            paused: usecase.auto_update_paused,
            last_check: self.checks.last(usecase_id).await?,
        })
    }

    /// Changes the auto-update settings (what `change` leaves out stays); enabling
    /// again ends a pause. Settings equal to the current ones record nothing.
    #[instrument(skip(self, ctx), fields(actor = %ctx.actor))]
    pub async fn configure_auto_update(
        &self,
        ctx: &CommandContext,
        usecase_id: Uuid,
        change: AutoUpdateChange,
    ) -> Result<AutoUpdateStatus, AppError> {
        let current = self.usecase(usecase_id).await?.auto_update;
        let command = UsecaseCommand::ConfigureAutoUpdate {
            settings: change.applied_to(&current),
            at: Utc::now().trunc_subsecs(0),
        };
        self.execute(ctx, usecase_id, command).await?;
        self.auto_update(usecase_id).await
    }

    /// The environment variables of the deployed deployment, if one is deployed.
    async fn serving_config(&self, usecase_id: Uuid) -> Result<Option<Config>, AppError> {
        let usecase = self.usecase(usecase_id).await?;
        Ok(usecase.serving().map(|d| Config {
            deployment_id: d.id,
            env: d.config.env.clone(),
            secret_env: d.config.secret_env.clone(),
            secret_refs: d.config.secret_refs.clone(),
        }))
    }

    /// The environment variables of the deployed deployment; with nothing deployed, a
    /// conflict (409, as the other reads of what is deployed), not a 404: the usecase exists.
    pub async fn config(&self, usecase_id: Uuid) -> Result<Config, AppError> {
        self.serving_config(usecase_id).await?.ok_or_else(|| {
            AppError::conflict(
                Conflict::NothingDeployed,
                format!("usecase {usecase_id} has no deployed deployment"),
            )
        })
    }

    /// Records new environment variables and rolls them out as a new deployment of the
    /// same image. Secret values given replace the current set (sealed first); none
    /// given keep it, as references do.
    #[instrument(skip(self, ctx, env, secrets), fields(actor = %ctx.actor))]
    pub async fn change_config(
        &self,
        ctx: &CommandContext,
        usecase_id: Uuid,
        env: BTreeMap<String, String>,
        secrets: SecretInput,
    ) -> Result<Accepted, AppError> {
        check_env(&env, "env")?;
        let base = self.serving_config(usecase_id).await?.ok_or_else(|| {
            AppError::conflict(
                Conflict::NothingDeployed,
                format!(
                    "usecase {usecase_id} has no deployed deployment; \
                     deploy it before changing its config"
                ),
            )
        })?;
        let (secret_env, secret_refs) = secrets.seal(&*self.vault, usecase_id).await?;
        let deployment_id = Uuid::new_v4();
        // The answer's basedOn is what the ledger records: the aggregate refuses the
        // change if another deployment serves by the time it decides.
        let command = UsecaseCommand::ChangeConfig {
            deployment_id,
            expected_base: Some(base.deployment_id),
            env,
            secret_env,
            secret_refs,
            at: Utc::now().trunc_subsecs(0),
        };
        self.execute(ctx, usecase_id, command).await?;
        Ok(Accepted {
            id: deployment_id,
            deployment_id: base.deployment_id,
        })
    }

    /// Deploys again the config of `target` (default: the deployment deployed before
    /// the current one) as a new deployment.
    #[instrument(skip(self, ctx), fields(actor = %ctx.actor))]
    pub async fn rollback(
        &self,
        ctx: &CommandContext,
        usecase_id: Uuid,
        target: Option<Uuid>,
    ) -> Result<Accepted, AppError> {
        let deployment_id = Uuid::new_v4();
        let command = UsecaseCommand::Rollback {
            deployment_id,
            target,
            at: Utc::now().trunc_subsecs(0),
        };
        self.execute(ctx, usecase_id, command).await?;
        let usecase = self.ledger.load(usecase_id).await?;
        let rolled_back_to = usecase
            .deployment(deployment_id)
            .and_then(|d| d.rollback_of)
            .ok_or_else(|| {
                AppError::Internal(format!("rollback {deployment_id} was not stored"))
            })?;
        Ok(Accepted {
            id: deployment_id,
            deployment_id: rolled_back_to,
        })
    }

    /// The last `tail` lines of the deployed (or the named) deployment's pods: of
    /// the container of `service`, or of the main one.
    pub async fn logs(
        &self,
        usecase_id: Uuid,
        deployment_id: Option<Uuid>,
        service: Option<&str>,
        tail: Option<u32>,
    ) -> Result<Logs, AppError> {
        let tail = tail_size(tail)?;
        let cluster = self.cluster()?;
        let deployment = self.deployment_of(usecase_id, deployment_id).await?;
        let container = container_of(&deployment, service)?;
        let lines = cluster
            .logs(deployment.id, &container, tail)
            .await
            .map_err(cluster_error)?;
        Ok(Logs {
            deployment_id: deployment.id,
            lines,
        })
    }

    /// The last `tail` lines, then every new line, of the deployed (or the named)
    /// deployment's pods: of the container of `service`, or of the main one.
    pub async fn follow_logs(
        &self,
        usecase_id: Uuid,
        deployment_id: Option<Uuid>,
        service: Option<&str>,
        tail: Option<u32>,
    ) -> Result<(Uuid, BoxStream<'static, Result<LogLine, ClusterError>>), AppError> {
        let tail = tail_size(tail)?;
        let cluster = self.cluster()?;
        let deployment = self.deployment_of(usecase_id, deployment_id).await?;
        let container = container_of(&deployment, service)?;
        let stream = cluster
            .follow_logs(deployment.id, &container, tail)
            .await
            .map_err(cluster_error)?;
        Ok((deployment.id, stream))
    }

    /// Kubernetes events of the usecase's objects, oldest first.
    pub async fn kube_events(&self, usecase_id: Uuid) -> Result<Vec<KubeEvent>, AppError> {
        let cluster = self.cluster()?;
        let usecase = self.usecase(usecase_id).await?;
        let ids: Vec<Uuid> = usecase.deployments.iter().map(|d| d.id).collect();
        cluster
            .events(usecase_id, &ids)
            .await
            .map_err(cluster_error)
    }

    /// CPU and memory of the deployed deployment's pods (of the container of
    /// `service` alone, or of whole pods); 503 when the cluster has no metrics API.
    pub async fn usage(&self, usecase_id: Uuid, service: Option<&str>) -> Result<Usage, AppError> {
        let cluster = self.cluster()?;
        let deployment = self.deployment_of(usecase_id, None).await?;
        let deployment_id = deployment.id;
        let container = service
            .map(|s| container_of(&deployment, Some(s)))
            .transpose()?;
        match cluster
            .usage(deployment_id, container.as_deref())
            .await
            .map_err(cluster_error)?
        {
            Some(pods) => Ok(Usage {
                deployment_id,
                pods,
            }),
            None => Err(AppError::ClusterUnavailable(
                "the cluster serves no resource metrics (metrics.k8s.io); install metrics-server"
                    .to_owned(),
            )),
        }
    }
}

/// The container of `service` in the deployment (the main one when `None`); a
/// service it does not run is not found (404: well-formed, but it names nothing
/// here), and the detail names the services it runs.
fn container_of(deployment: &Deployment, service: Option<&str>) -> Result<String, AppError> {
    let services = deployment.config.services();
    let found = match service {
        None => services.first(),
        Some(name) => services.iter().find(|s| s.name == name),
    };
    found.map(|s| s.name.to_owned()).ok_or_else(|| {
        let names: Vec<&str> = services.iter().map(|s| s.name).collect();
        AppError::not_found(
            Missing::Service,
            format!(
                "service: {:?} is not a service of this deployment; it runs {}",
                service.unwrap_or_default(),
                names.join(", ")
            ),
        )
    })
}

/// Checks a requested number of log lines.
fn tail_size(tail: Option<u32>) -> Result<u32, AppError> {
    match tail {
        None => Ok(DEFAULT_TAIL),
        Some(t) if t <= MAX_TAIL => Ok(t),
        Some(_) => {
            Err(InvalidField::new("tail", format!("must be between 0 and {MAX_TAIL}")).into())
        }
    }
}
