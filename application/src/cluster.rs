//! The port to Kubernetes: what the process manager asks of a cluster, in
//! shiplog's terms (usecases and deployments), never in Kubernetes objects.

use async_trait::async_trait;
use shiplog_domain::DeploymentConfig;
use std::time::Duration;
use thiserror::Error;
use uuid::Uuid;

/// One deployment's workload: what to run, and whose it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// The usecase it belongs to.
    pub usecase_id: Uuid,
    /// The deployment.
    pub deployment_id: Uuid,
    /// What it runs.
    pub config: DeploymentConfig,
    /// The newest restart asked for, stamped on the pod template so pods roll
    /// exactly once per restart, however often the workload is applied.
    pub restart: Option<Uuid>,
}

/// How a rollout ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutOutcome {
    /// Every replica is ready on the current generation.
    Ready,
    /// It cannot succeed; the message says why, in the user's words.
    Failed(String),
}

/// Why the cluster could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClusterError {
    /// The API server is unreachable or overloaded; retry later.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// The API server refused the request (invalid object, forbidden, ...).
    #[error("cluster refused the request: {0}")]
    Rejected(String),
}

/// Drives Kubernetes for the process manager. Every operation is idempotent:
/// applying twice or deleting what is gone succeeds.
#[async_trait]
pub trait ClusterPort: Send + Sync {
    /// Server-side applies the deployment's objects (Deployment, and ServiceMonitor when asked for).
    async fn apply(&self, workload: &Workload) -> Result<(), ClusterError>;
    /// Watches the rollout until it is ready, fails, or `timeout` passes (a failure).
    async fn await_rollout(
        &self,
        workload: &Workload,
        timeout: Duration,
    ) -> Result<RolloutOutcome, ClusterError>;
    /// Points the usecase's stable Service at this deployment's pods.
    async fn route(&self, workload: &Workload) -> Result<(), ClusterError>;
    /// Deletes the deployment's objects.
    async fn remove(&self, usecase_id: Uuid, deployment_id: Uuid) -> Result<(), ClusterError>;
    /// Deletes the usecase's Service.
    async fn remove_route(&self, usecase_id: Uuid) -> Result<(), ClusterError>;
    /// Every (usecase, deployment) that has objects in the cluster, for the start-up sweep.
    async fn managed(&self) -> Result<Vec<(Uuid, Uuid)>, ClusterError>;
}
