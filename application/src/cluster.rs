//! The port to Kubernetes: what the process manager asks of a cluster, in
//! shiplog's terms (usecases and deployments), never in Kubernetes objects.

use crate::secrets::ClearSecrets;
use async_trait::async_trait;
use shiplog_domain::{DeploymentConfig, UpdateStrategy, Visibility};
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
    /// The usecase's name: public services are reached at `<name>.<ingress domain>`.
    pub usecase_name: String,
    /// Who may reach it: public services get an Ingress when routed.
    pub visibility: Visibility,
    /// How Kubernetes replaces its pods (the Deployment's strategy).
    pub strategy: UpdateStrategy,
    /// The opened values of `config.secret_env`, for the deployment's Secret: filled by
    /// the process manager just before it applies, empty in a plan (and for every step
    /// that only removes objects, which therefore never needs the usecase's key).
    pub secrets: ClearSecrets,
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
    /// Server-side applies the deployment's objects: its Secret (the environment), the
    /// Deployment, the ServiceMonitor when asked for, and the usecase's generated values.
    async fn apply(&self, workload: &Workload) -> Result<(), ClusterError>;
    /// Watches the rollout until it is ready, fails, or `timeout` passes (a failure).
    async fn await_rollout(
        &self,
        workload: &Workload,
        timeout: Duration,
    ) -> Result<RolloutOutcome, ClusterError>;
    /// Points the usecase's stable Service at this deployment's pods and, when the
    /// usecase is public, its Ingresses at the Service.
    async fn route(&self, workload: &Workload) -> Result<(), ClusterError>;
    /// Deletes the deployment's objects (Deployment, ServiceMonitor, Secret).
    async fn remove(&self, usecase_id: Uuid, deployment_id: Uuid) -> Result<(), ClusterError>;
    /// Deletes the usecase's Service and Ingresses.
    async fn remove_route(&self, usecase_id: Uuid) -> Result<(), ClusterError>;
    /// Deletes everything of a deleted usecase that outlives its deployments: its
    /// Service, its Ingresses and the Secret of its generated values.
    async fn forget(&self, usecase_id: Uuid) -> Result<(), ClusterError>;
    /// Every usecase that has objects in the cluster, for the start-up sweep: one with a
    /// Deployment, and one left with Secrets only (a deleted usecase's generated values
    /// when its last reconcile was cut off, a deployment's Secret applied before its
    /// Deployment).
    async fn managed(&self) -> Result<Vec<Uuid>, ClusterError>;
    /// The deployments of one usecase that have objects in the cluster (a Deployment
    /// or a Secret): what a reconcile cleans up, whatever the length of the history.
    async fn present(&self, usecase_id: Uuid) -> Result<Vec<Uuid>, ClusterError>;
}
