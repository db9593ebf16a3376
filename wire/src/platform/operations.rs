//! Operating a named deployment of the platform API: config, logs, metrics, history,
//! auto-update, Kubernetes events, and the template catalog.

use super::StrategyBody;
use crate::auto_update::{AutoUpdateState, PolicyBody};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
#[cfg(feature = "server")]
use shiplog_application::operations::Usage;
#[cfg(feature = "server")]
use shiplog_application::{PlatformConfig, Revision, Template};
#[cfg(feature = "server")]
use shiplog_domain::{AutoUpdate, UpdatePolicy};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// `GET /api/deployments/config`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDataBody {
    /// The environment variables of the deployment's main service.
    #[schema(example = json!({"PORT": "8080"}))]
    pub config_data: BTreeMap<String, String>,
    /// Variables shiplog generated and keeps in a Kubernetes Secret only; their values
    /// are never shown or recorded. A value set in `configData` takes their place.
    pub generated_secrets: Vec<String>,
    /// The variables the template marks secret, masked (`{"secret": true, "key": …}`):
    /// their values are sealed in the ledger and never shown. Sending them in
    /// `configData` replaces them; leaving them all out keeps them. Absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::limits::optional_secret_env_map)]
    pub secret_env: Option<BTreeMap<String, crate::secrets::SecretEnvValue>>,
    /// The deployment the config is taken from (the serving one, else the newest).
    pub deployment_id: Uuid,
}

#[cfg(feature = "server")]
impl From<PlatformConfig> for ConfigDataBody {
    fn from(c: PlatformConfig) -> Self {
        Self {
            config_data: c.env,
            generated_secrets: c.generated,
            secret_env: crate::secrets::masked(&c.secret_env),
            deployment_id: c.deployment_id,
        }
    }
}

/// Body of `PUT /api/deployments/config`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigUpdateBody {
    /// The deployment's name.
    #[serde(rename = "deployment_name")]
    pub deployment_name: String,
    /// The new environment variables: the complete set, at most 500 variables, of at
    /// most 256 KiB together; names consist of letters, digits, `_`, `-` and `.`, not
    /// starting with a digit.
    #[schema(example = json!({"PORT": "8080", "DEBUG": "true"}), schema_with = crate::limits::env_map)]
    pub config_data: BTreeMap<String, String>,
}

/// Query of the log routes.
#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlatformLogsQuery {
    /// The service of a multi-service template (default: the first).
    pub service: Option<String>,
    /// Recent lines per pod, 0 to 10000 (default 100).
    #[param(maximum = 10000)]
    pub tail: Option<u32>,
    /// Keep streaming new lines (text/plain, one per line) until the client leaves.
    pub follow: Option<bool>,
}

/// Query of the log stream.
#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlatformLogStreamQuery {
    /// The service of a multi-service template (default: the first).
    pub service: Option<String>,
    /// Recent lines per pod first, 0 to 10000 (default 100).
    #[param(maximum = 10000)]
    pub tail: Option<u32>,
    /// The token, for clients that cannot send headers; prefer a `ticket`: URLs end up in logs.
    pub access_token: Option<String>,
    /// A stream ticket (`POST /api/stream-tickets`): the way for a browser's
    /// `EventSource`, which cannot send headers. One use, within its lifetime.
    pub ticket: Option<String>,
}

/// `GET /api/deployments/{name}/logs`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformLogsBody {
    /// The lines, pod by pod, one per line.
    pub logs: String,
    /// The deployment they come from.
    pub deployment_id: Uuid,
}

/// Query of the metrics route.
#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ServiceQuery {
    /// The service of a multi-service template (default: the first).
    pub service: Option<String>,
}

/// One pod's usage in Kubernetes quantities.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodQuantities {
    /// The pod.
    pub pod: String,
    /// CPU in millicores (`150m`).
    pub cpu_usage: String,
    /// Memory (`256Mi`).
    pub memory_usage: String,
}

/// `GET /api/deployments/{name}/metrics`: usage of the service's container over all pods.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsBody {
    /// CPU in millicores (`150m`).
    #[schema(example = "150m")]
    pub cpu_usage: String,
    /// Memory, in Mi (`256Mi`), or Ki below one Mi.
    #[schema(example = "256Mi")]
    pub memory_usage: String,
    /// When the newest sample was taken.
    pub timestamp: DateTime<Utc>,
    /// Per pod.
    pub pods: Vec<PodQuantities>,
}

/// CPU cores as Kubernetes writes millicores.
pub fn millicores(cores: f64) -> String {
    format!("{}m", (cores * 1000.0).round().max(0.0) as u64)
}

/// Bytes as Kubernetes writes memory: whole Mi, or Ki below one Mi.
pub fn mebibytes(bytes: u64) -> String {
    const MI: u64 = 1024 * 1024;
    if bytes >= MI {
        format!("{}Mi", (bytes + MI / 2) / MI)
    } else {
        format!("{}Ki", bytes.div_ceil(1024))
    }
}

#[cfg(feature = "server")]
impl From<Usage> for MetricsBody {
    fn from(u: Usage) -> Self {
        let cpu: f64 = u.pods.iter().map(|p| p.cpu_cores).sum();
        let memory: u64 = u.pods.iter().map(|p| p.memory_bytes).sum();
        let timestamp = u
            .pods
            .iter()
            .filter_map(|p| p.timestamp)
            .max()
            .unwrap_or_else(Utc::now);
        Self {
            cpu_usage: millicores(cpu),
            memory_usage: mebibytes(memory),
            timestamp,
            pods: u
                .pods
                .into_iter()
                .map(|p| PodQuantities {
                    cpu_usage: millicores(p.cpu_cores),
                    memory_usage: mebibytes(p.memory_bytes),
                    pod: p.pod,
                })
                .collect(),
        }
    }
}

/// Query of the history route.
#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryPageQuery {
    /// Continue after this revision (the `nextCursor` of the previous page).
    pub after: Option<i64>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// Auto-update settings as a history row shows them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AutoUpdateSettings {
    /// Follow new images of the deployed tag.
    pub enabled: bool,
    /// How pods are replaced.
    pub strategy: StrategyBody,
    /// Which new images count (`digest` in changes recorded before policies).
    #[serde(default = "digest_policy")]
    pub policy: PolicyBody,
    /// The versions a `semver` policy follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
}

/// The policy of settings recorded before policies existed.
fn digest_policy() -> PolicyBody {
    PolicyBody::Digest
}

/// One change of a deployment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionBody {
    /// The change's event sequence: increasing, never reused.
    pub revision: i64,
    /// `deploy`, `config`, `rollback`, `imageUpdate` (a new image auto-update found;
    /// actor `auto-update`), `restart`, `autoUpdate` (a settings change),
    /// `autoUpdatePaused` (by a manual rollback) or `delete`.
    pub kind: String,
    /// When it was asked.
    pub at: DateTime<Utc>,
    /// Who asked.
    pub actor: String,
    /// The request it came with.
    pub request_id: String,
    /// The deployment it started (deploy, config, rollback) or restarted.
    pub deployment_id: Option<Uuid>,
    /// The restart's id, for restarts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_id: Option<Uuid>,
    /// The image of the deployment it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How it ended so far: the deployment's status, or a restart's (`pending`,
    /// `succeeded`, `failed`); absent for settings changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// For a config change or an image update: the deployment it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub based_on: Option<Uuid>,
    /// For a rollback: the deployment whose config was restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<Uuid>,
    /// For a config change: the variables set (names only; values stay out of history).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<String>,
    /// For an auto-update change: the new settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_update: Option<AutoUpdateSettings>,
    /// Why, when whoever asked said so (`X-Shiplog-Reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(feature = "server")]
impl From<Revision> for RevisionBody {
    fn from(r: Revision) -> Self {
        Self {
            revision: r.revision,
            kind: r.kind,
            at: r.at,
            actor: r.actor,
            request_id: r.request_id,
            deployment_id: r.deployment_id,
            restart_id: r.restart_id,
            image: r.image,
            status: r.status,
            message: r.message,
            based_on: r.based_on,
            rollback_of: r.rollback_of,
            variables: r.variables,
            auto_update: r.auto_update.map(|a: AutoUpdate| AutoUpdateSettings {
                enabled: a.enabled,
                strategy: a.strategy.into(),
                policy: match a.policy {
                    UpdatePolicy::Digest => PolicyBody::Digest,
                    UpdatePolicy::Semver { .. } => PolicyBody::Semver,
                },
                range: a.policy.range().map(|r| r.as_str().to_owned()),
            }),
            reason: r.reason,
        }
    }
}

/// `GET /api/deployments/{name}/history`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryBody {
    /// The changes, oldest first.
    pub revisions: Vec<RevisionBody>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /api/deployments/auto-update`: the settings, the pause and the last check.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AutoUpdateBody {
    /// The deployment.
    pub deployment_name: String,
    /// Its auto-update.
    #[serde(flatten)]
    pub state: AutoUpdateState,
}

/// Body of `PUT /api/deployments/auto-update`: what is left out stays.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoUpdateUpdate {
    /// The deployment's name.
    pub deployment_name: String,
    /// Follow new images; `true` again also ends a pause left by a manual rollback.
    pub enabled: bool,
    /// How pods are replaced; unchanged when absent.
    pub strategy: Option<StrategyBody>,
    /// Which new images count; unchanged when absent (`semver` when only `range` is given).
    pub policy: Option<PolicyBody>,
    /// The versions a `semver` policy follows (`^1`, `~1.4`, `>=2 <3`, `1.x`): comparators
    /// separated by spaces or commas, or one wildcard alone.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^(?:(?:(?:=|>=|<=|>|<|~|\^) *)?(?:0|[1-9][0-9]{0,8})(?:\.(?:0|[1-9][0-9]{0,8})){0,2}(?:[ ,]+(?:(?:=|>=|<=|>|<|~|\^) *)?(?:0|[1-9][0-9]{0,8})(?:\.(?:0|[1-9][0-9]{0,8})){0,2})*|(?:0|[1-9][0-9]{0,8})(?:\.(?:0|[1-9][0-9]{0,8}))?\.[xX*]|[xX*])$"
    )]
    pub range: Option<String>,
}

/// `GET /api/deployments/{name}/events`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlatformEventsBody {
    /// Kubernetes events of its objects, oldest first.
    pub events: Vec<crate::operations::KubeEventBody>,
}

/// A service of a template.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateServiceBody {
    /// Its name.
    pub name: String,
    /// Its image.
    pub image: String,
    /// The port it listens on.
    pub port: u16,
    /// Whether a public deployment gets an Ingress for it.
    pub exposed: bool,
    /// Its environment defaults.
    pub env: BTreeMap<String, String>,
    /// Variables whose values shiplog generates and keeps in the cluster only.
    pub generated_secrets: Vec<String>,
    /// Variables whose values are secret: sent in `envVars` or `configData`, they are
    /// sealed in the ledger and shown masked.
    #[serde(default)]
    pub secret_env: Vec<String>,
}

/// A template of the catalog.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateBody {
    /// Its name.
    #[schema(example = "nginx")]
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its services, the main one first.
    pub services: Vec<TemplateServiceBody>,
    /// The ports of its services, in order.
    pub ports: Vec<u16>,
    /// The environment defaults of its main service (what `envVars` adds to).
    pub default_env: BTreeMap<String, String>,
}

#[cfg(feature = "server")]
impl From<&Template> for TemplateBody {
    fn from(t: &Template) -> Self {
        Self {
            name: t.name.clone(),
            description: t.description.clone(),
            ports: t.services.iter().map(|s| s.port).collect(),
            default_env: t
                .services
                .first()
                .map(|s| s.env.clone())
                .unwrap_or_default(),
            services: t
                .services
                .iter()
                .map(|s| TemplateServiceBody {
                    name: s.name.clone(),
                    image: s.image.clone(),
                    port: s.port,
                    exposed: s.exposed,
                    env: s.env.clone(),
                    generated_secrets: s.generated_secrets.clone(),
                    secret_env: s.secret_env.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the server leaves out when empty, a client reads back as empty.
    #[test]
    fn a_revision_without_message_or_variables_reads_back() {
        let revision = RevisionBody {
            revision: 3,
            kind: "restart".to_owned(),
            at: Utc::now(),
            actor: "ci".to_owned(),
            request_id: "r-1".to_owned(),
            deployment_id: None,
            restart_id: Some(Uuid::new_v4()),
            image: None,
            status: Some("succeeded".to_owned()),
            message: String::new(),
            based_on: None,
            rollback_of: None,
            variables: Vec::new(),
            auto_update: None,
            reason: None,
        };
        let json = serde_json::to_value(&revision).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            json.get("message").is_none() && json.get("variables").is_none(),
            "{json}"
        );
        let read: RevisionBody = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((read.message.as_str(), read.variables.len()), ("", 0));
    }

    #[test]
    fn quantities_are_written_as_kubernetes_writes_them() {
        assert_eq!(millicores(0.15), "150m");
        assert_eq!(millicores(0.0), "0m");
        assert_eq!(mebibytes(256 * 1024 * 1024), "256Mi");
        assert_eq!(mebibytes(1536 * 1024), "2Mi", "rounded to the nearest Mi");
        assert_eq!(mebibytes(1000), "1Ki");
    }
}
