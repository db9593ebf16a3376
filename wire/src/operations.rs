//! Request and response bodies of the operations routes: restart, config,
//! rollback, logs, Kubernetes events and resource usage.

use crate::secrets::{SecretEnvValue, SecretRefBody};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
#[cfg(feature = "server")]
use shiplog_application::operations::{Config, Logs, Usage};
#[cfg(feature = "server")]
use shiplog_application::{KubeEvent, LogLine, PodUsage};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Answer to an accepted restart.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartAccepted {
    /// The restart; its outcome is a `RestartSucceeded` or `RestartFailed` event with this id.
    pub restart_id: Uuid,
    /// The deployment whose pods are rolled.
    pub deployment_id: Uuid,
}

/// The environment variables of a usecase's deployed deployment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigResponse {
    /// The deployment serving now.
    pub deployment_id: Uuid,
    /// Its environment variables.
    pub env: BTreeMap<String, String>,
    /// Its secret variables, masked (`{"secret": true, "key": …}`); absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::limits::optional_secret_env_map)]
    pub secret_env: Option<BTreeMap<String, SecretEnvValue>>,
    /// Its variables read from Kubernetes Secrets; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_refs: Option<Vec<SecretRefBody>>,
}

#[cfg(feature = "server")]
impl From<Config> for ConfigResponse {
    fn from(c: Config) -> Self {
        Self {
            deployment_id: c.deployment_id,
            env: c.env,
            secret_env: crate::secrets::masked(&c.secret_env),
            secret_refs: crate::secrets::ref_bodies(&c.secret_refs),
        }
    }
}

/// New environment variables: the complete set (names not listed are removed).
/// Secret values and references are replaced as a set when given, and kept as they
/// are when left out (their values cannot be read back to be sent again).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigChange {
    /// Name to value; names consist of letters, digits, `_`, `-` and `.`, not starting with a digit;
    /// at most 500 variables, of at most 256 KiB together.
    #[schema(schema_with = crate::limits::env_map)]
    pub env: BTreeMap<String, String>,
    /// The complete new set of secret variables, name to value (sealed before they
    /// are recorded); `{}` removes them all; left out, the current ones are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::limits::optional_secret_env_map)]
    pub secret_env: Option<BTreeMap<String, SecretEnvValue>>,
    /// The complete new set of references to Kubernetes Secrets; left out, the
    /// current ones are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::limits::optional_secret_refs)]
    pub secret_refs: Option<Vec<SecretRefBody>>,
}

#[cfg(feature = "server")]
impl ConfigChange {
    /// The plain environment and the secret part, checked (fields named from the body's top).
    pub fn parse(
        self,
    ) -> Result<
        (BTreeMap<String, String>, shiplog_application::SecretInput),
        shiplog_domain::InvalidField,
    > {
        shiplog_domain::check_env(&self.env, "env")?;
        let (values, refs) =
            crate::secrets::parse_secrets("", &self.env, self.secret_env, self.secret_refs)?;
        Ok((self.env, shiplog_application::SecretInput { values, refs }))
    }
}

/// Answer to an accepted config change: the new deployment rolling it out.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigAccepted {
    /// The new deployment; follow it with `GET /api/usecases/{id}/deployments/{deploymentId}`.
    pub id: Uuid,
    /// The deployed deployment whose image and settings it keeps.
    pub based_on: Uuid,
}

/// Which earlier deployment to restore; an empty body means the one deployed before the current.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackRequest {
    /// A finished deployment of this usecase (superseded, undeployed or error).
    pub deployment_id: Option<Uuid>,
}

/// Answer to an accepted rollback: the new deployment running the earlier config.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackAccepted {
    /// The new deployment; follow it with `GET /api/usecases/{id}/deployments/{deploymentId}`.
    pub id: Uuid,
    /// The earlier deployment whose config it runs.
    pub rollback_of: Uuid,
}

/// Which logs, and how many.
#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Lines per pod from the end of its log (0 to 10000; default 100).
    #[param(maximum = 10000)]
    pub tail: Option<u32>,
    /// Keep the response open and stream new lines as NDJSON (`{"pod","line"}` per line).
    pub follow: Option<bool>,
    /// Another deployment of the usecase (one still rolling out, say); default: the deployed one.
    pub deployment_id: Option<Uuid>,
}

/// Which logs to stream, and from where.
#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogStreamQuery {
    /// Lines per pod from the end of its log to start with (0 to 10000; default 100).
    #[param(maximum = 10000)]
    pub tail: Option<u32>,
    /// Another deployment of the usecase; default: the deployed one.
    pub deployment_id: Option<Uuid>,
    /// The bearer token, for clients that cannot set headers; prefer a `ticket`: URLs end up in logs.
    #[serde(rename = "access_token")]
    #[param(rename = "access_token")]
    pub access_token: Option<String>,
    /// A stream ticket (`POST /api/stream-tickets`): the way for a browser's
    /// `EventSource`, which cannot send headers. One use, within its lifetime.
    pub ticket: Option<String>,
}

/// One log line and the pod that wrote it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogLineBody {
    /// The pod.
    pub pod: String,
    /// The line, without its newline.
    pub line: String,
}

#[cfg(feature = "server")]
impl From<LogLine> for LogLineBody {
    fn from(l: LogLine) -> Self {
        Self {
            pod: l.pod,
            line: l.line,
        }
    }
}

/// The last lines of a deployment's pods.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsResponse {
    /// The deployment they come from.
    pub deployment_id: Uuid,
    /// The lines, pod by pod, oldest first within a pod.
    pub lines: Vec<LogLineBody>,
}

#[cfg(feature = "server")]
impl From<Logs> for LogsResponse {
    fn from(l: Logs) -> Self {
        Self {
            deployment_id: l.deployment_id,
            lines: l.lines.into_iter().map(Into::into).collect(),
        }
    }
}

/// A Kubernetes event about one of the usecase's objects.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeEventBody {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Kubernetes' reason (`Pulled`, `BackOff`, `ScalingReplicaSet`, ...).
    pub reason: String,
    /// What happened.
    pub message: String,
    /// The object's kind (`Deployment`, `Pod`, `Service`).
    pub object_kind: String,
    /// The object's name.
    pub object_name: String,
    /// How often it happened.
    pub count: i32,
    /// When it first happened.
    pub first_seen: Option<DateTime<Utc>>,
    /// When it last happened.
    pub last_seen: Option<DateTime<Utc>>,
}

#[cfg(feature = "server")]
impl From<KubeEvent> for KubeEventBody {
    fn from(e: KubeEvent) -> Self {
        Self {
            kind: e.kind,
            reason: e.reason,
            message: e.message,
            object_kind: e.object_kind,
            object_name: e.object_name,
            count: e.count,
            first_seen: e.first_seen,
            last_seen: e.last_seen,
        }
    }
}

/// The Kubernetes events of a usecase, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KubeEventList {
    /// The events.
    pub items: Vec<KubeEventBody>,
}

/// CPU and memory of one pod.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodUsageBody {
    /// The pod.
    pub pod: String,
    /// CPU in cores (0.25 = 250 millicores).
    pub cpu_cores: f64,
    /// Working-set memory in bytes.
    pub memory_bytes: u64,
    /// When the sample was taken.
    pub timestamp: Option<DateTime<Utc>>,
    /// The window the CPU rate covers, e.g. `30s`.
    pub window: String,
}

#[cfg(feature = "server")]
impl From<PodUsage> for PodUsageBody {
    fn from(p: PodUsage) -> Self {
        Self {
            pod: p.pod,
            cpu_cores: p.cpu_cores,
            memory_bytes: p.memory_bytes,
            timestamp: p.timestamp,
            window: p.window,
        }
    }
}

/// Resource usage of the deployed deployment, per pod and in total.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageResponse {
    /// The deployment measured.
    pub deployment_id: Uuid,
    /// Sum of the pods' CPU, in cores.
    pub cpu_cores: f64,
    /// Sum of the pods' memory, in bytes.
    pub memory_bytes: u64,
    /// One sample per running pod.
    pub pods: Vec<PodUsageBody>,
}

#[cfg(feature = "server")]
impl From<Usage> for UsageResponse {
    fn from(u: Usage) -> Self {
        Self {
            deployment_id: u.deployment_id,
            cpu_cores: u.pods.iter().map(|p| p.cpu_cores).sum(),
            memory_bytes: u.pods.iter().map(|p| p.memory_bytes).sum(),
            pods: u.pods.into_iter().map(Into::into).collect(),
        }
    }
}
