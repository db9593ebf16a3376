//! Named deployments of the platform API: who may reach them, how they roll out,
//! creating, listing, status and deletion.

use crate::auto_update::AutoUpdateState;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
#[cfg(feature = "server")]
use shiplog_application::{IngressEndpoint, PlatformDeployment};
#[cfg(feature = "server")]
use shiplog_domain::{UpdateStrategy, Visibility};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Who may reach a deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VisibilityBody {
    /// An Ingress per exposed service at `<name>.<ingress domain>`.
    #[default]
    Public,
    /// No Ingress: reachable inside the cluster and through the applications proxy.
    Internal,
}

#[cfg(feature = "server")]
impl From<VisibilityBody> for Visibility {
    fn from(v: VisibilityBody) -> Self {
        match v {
            VisibilityBody::Public => Visibility::Public,
            VisibilityBody::Internal => Visibility::Internal,
        }
    }
}

#[cfg(feature = "server")]
impl From<Visibility> for VisibilityBody {
    fn from(v: Visibility) -> Self {
        match v {
            Visibility::Public => VisibilityBody::Public,
            Visibility::Internal => VisibilityBody::Internal,
        }
    }
}

/// How a deployment's pods are replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StrategyBody {
    /// New pods before old ones go (Kubernetes `RollingUpdate`).
    Rolling,
    /// Old pods go before new ones start (Kubernetes `Recreate`).
    Recreate,
}

#[cfg(feature = "server")]
impl From<StrategyBody> for UpdateStrategy {
    fn from(s: StrategyBody) -> Self {
        match s {
            StrategyBody::Rolling => UpdateStrategy::Rolling,
            StrategyBody::Recreate => UpdateStrategy::Recreate,
        }
    }
}

#[cfg(feature = "server")]
impl From<UpdateStrategy> for StrategyBody {
    fn from(s: UpdateStrategy) -> Self {
        match s {
            UpdateStrategy::Rolling => StrategyBody::Rolling,
            UpdateStrategy::Recreate => StrategyBody::Recreate,
        }
    }
}

/// One way into a public deployment: the Ingress of one exposed service.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IngressBody {
    /// The service's name.
    #[schema(example = "nginx")]
    pub id: String,
    /// The service's name.
    #[schema(example = "nginx")]
    pub name: String,
    /// The host its Ingress rule matches.
    #[schema(example = "abc123xyz7.localhost")]
    pub host: String,
    /// Where a browser reaches it (`https` when the ingresses have TLS).
    pub url: String,
}

#[cfg(feature = "server")]
impl From<IngressEndpoint> for IngressBody {
    fn from(e: IngressEndpoint) -> Self {
        Self {
            id: e.service.clone(),
            name: e.service,
            host: e.host,
            url: e.url,
        }
    }
}

/// A deployment: seed 002's fields, then shiplog's.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformDeploymentBody {
    /// Its unique name.
    #[schema(example = "abc123xyz7")]
    pub name: String,
    /// `Pending`, `Provisioning`, `Ready`, `Error`, `Deleting`, or `Stopped` (nothing runs:
    /// a PhariaOS usecase never deployed or undeployed).
    #[schema(example = "Ready")]
    pub status: String,
    /// The template it was created from; null for a raw image or a PhariaOS usecase.
    #[schema(example = "nginx")]
    pub template: Option<String>,
    /// Who may reach it.
    pub visibility: VisibilityBody,
    /// Where it is reached (public deployments with an exposed service).
    pub ingresses: Vec<IngressBody>,
    /// Why it failed, when its status is `Error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Whether it can be deleted (not already being deleted).
    pub can_delete: bool,
    /// The usecase behind it: the PhariaOS API's id for the same thing.
    pub id: Uuid,
    /// The image of its newest deployment.
    #[schema(example = "docker.io/library/nginx:stable")]
    pub image: Option<String>,
    /// Its newest deployment (after a create: the first one), to follow with
    /// `GET /api/usecases/{id}/deployments/{deploymentId}` or the usecase's event stream.
    pub deployment_id: Option<Uuid>,
    /// One sentence on where it is.
    pub status_message: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// The subject that owns it.
    pub owner: String,
    /// The team that owns it with its owner; null for a personal deployment.
    pub team_id: Option<Uuid>,
}

#[cfg(feature = "server")]
impl From<PlatformDeployment> for PlatformDeploymentBody {
    fn from(d: PlatformDeployment) -> Self {
        Self {
            name: d.name,
            status: d.report.status.to_string(),
            template: d.template,
            visibility: d.visibility.into(),
            ingresses: d.ingresses.into_iter().map(Into::into).collect(),
            last_error: d.report.last_error,
            can_delete: d.report.allow_delete,
            id: d.usecase_id,
            image: d.image,
            deployment_id: d.deployment_id,
            status_message: d.report.message,
            created_at: d.created_at,
            created_by: d.created_by,
            owner: d.owner,
            team_id: d.team,
        }
    }
}

/// Query of `GET /api/deployments`.
#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this team's deployments (the caller must be a member).
    pub team_id: Option<Uuid>,
}

/// Body of `POST /api/deployments`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateFromTemplateBody {
    /// The template's name (see `GET /api/templates`).
    #[schema(example = "nginx")]
    pub template: String,
    /// Environment variables over the template's defaults (of its first service): at
    /// most 500 variables, of at most 256 KiB together; names consist of letters,
    /// digits, `_`, `-` and `.`, not starting with a digit.
    #[serde(default)]
    #[schema(example = json!({"PORT": "8080"}), schema_with = crate::limits::env_map)]
    pub env_vars: BTreeMap<String, String>,
    /// Who may reach it (default public).
    #[serde(default)]
    pub visibility: VisibilityBody,
}

/// Body of `POST /api/deployments/deploy-image`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployImageBody {
    /// The image in Docker's reference syntax: `nginx:latest`, `myapp:v1.0.0`,
    /// `myregistry.com/app:v1.2.3`, optionally `@sha256:…`; normalised as Docker does.
    #[schema(
        example = "myapp:v1.0.0",
        min_length = 1,
        max_length = 247,
        pattern = r"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@(?:sha256:[0-9a-fA-F]{64}|sha384:[0-9a-fA-F]{96}|sha512:[0-9a-fA-F]{128}))?$"
    )]
    pub image: String,
    /// A name of your choosing (a DNS label of up to 40 characters: lower-case letters,
    /// digits and inner `-`); generated when absent.
    #[schema(
        min_length = 1,
        max_length = 40,
        pattern = r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$"
    )]
    pub name: Option<String>,
    /// The port the container listens on, 1 to 65535 (default 8080).
    #[schema(example = 3000, minimum = 1, maximum = 65535)]
    pub container_port: Option<u16>,
    /// Environment variables: at most 500 variables, of at most 256 KiB together;
    /// names as in `envVars` of `POST /api/deployments`.
    #[serde(default)]
    #[schema(schema_with = crate::limits::env_map)]
    pub env_vars: BTreeMap<String, String>,
    /// Who may reach it (default public).
    #[serde(default)]
    pub visibility: VisibilityBody,
}

/// A query naming one deployment.
#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NameQuery {
    /// The deployment's name.
    pub name: String,
}

/// `GET /api/deployments/status`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PlatformStatusBody)]
pub struct StatusBody {
    /// `Pending`, `Provisioning`, `Ready`, `Error`, `Deleting` or `Stopped`.
    pub status: String,
    /// A deployment serves traffic now (also while a newer one rolls out).
    pub deployment_ready: bool,
    /// It may be deleted.
    pub allow_delete: bool,
    /// A new deployment request would start something (it failed or runs nothing): a
    /// config change deploys it again.
    pub allow_request: bool,
    /// Where it is reached; empty until it is ready.
    pub ingresses: Vec<IngressBody>,
    /// Where it is, or why it failed.
    pub status_message: String,
    /// Why it failed, when its status is `Error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Its auto-update: the settings, and `paused` while a manual rollback pauses it.
    pub auto_update: AutoUpdateState,
}

#[cfg(feature = "server")]
impl From<PlatformDeployment> for StatusBody {
    fn from(d: PlatformDeployment) -> Self {
        let ready = d.report.ready;
        Self {
            status: d.report.status.to_string(),
            deployment_ready: ready,
            allow_delete: d.report.allow_delete,
            allow_request: d.report.allow_request,
            ingresses: if ready {
                d.ingresses.into_iter().map(Into::into).collect()
            } else {
                Vec::new()
            },
            status_message: d.report.message,
            last_error: d.report.last_error,
            auto_update: d.auto_update.into(),
        }
    }
}

/// A body naming one deployment (delete, restart).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentNameBody {
    /// The deployment's name.
    #[schema(example = "abc123xyz7")]
    pub deployment_name: String,
}

/// What deleting a deployment sends: its name and, for a form post (which cannot set
/// `X-Shiplog-Reason`), why.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteDeploymentBody {
    /// The deployment's name.
    #[schema(example = "abc123xyz7")]
    pub deployment_name: String,
    /// Why it is deleted, recorded with its events as `X-Shiplog-Reason` is (the header
    /// wins when both are given); with `--require-reason` one of the two is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "replaced by the v2 deployment", max_length = 1000)]
    pub reason: Option<String>,
}

/// The answer to an accepted change.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChangeAccepted {
    /// Always true: the change is recorded in the ledger and carried out.
    pub success: bool,
    /// The deployment it is about.
    pub deployment_name: String,
    /// What happens now.
    pub message: String,
    /// The new deployment (config change) or the restart, to follow in the history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
}
