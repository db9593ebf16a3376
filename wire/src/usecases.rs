//! The JSON shapes of the API (camelCase, as PhariaOS has them) and their
//! conversion to and from the domain. Validation itself lives in the domain.

use crate::secrets::{SecretEnvValue, SecretRefBody};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
#[cfg(feature = "server")]
use shiplog_application::{DeploymentView, Page, SecretInput, TokenInfo, UsecaseView};
#[cfg(feature = "server")]
use shiplog_domain::{
    DeploymentConfig, DeploymentStatus, ImageRef, InvalidField, ResourceList, Resources,
    ServiceMonitor, UsecaseName,
};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Body of `POST /api/usecases`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUsecase {
    /// Unique across the installation; 1 to 128 characters, trimmed, not blank, without
    /// control characters.
    #[schema(
        example = "name of your usecase application",
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Free text of at most 4096 characters; empty when omitted.
    #[schema(example = "description of your usecase application", max_length = 4096)]
    pub description: Option<String>,
}

#[cfg(feature = "server")]
impl CreateUsecase {
    /// The validated name and the description.
    pub fn parse(self) -> Result<(UsecaseName, String), InvalidField> {
        let description = self.description.unwrap_or_default();
        if description.chars().count() > 4096 {
            return Err(InvalidField::new(
                "description",
                "must be at most 4096 characters",
            ));
        }
        Ok((UsecaseName::parse(&self.name)?, description))
    }
}

/// A usecase: the PhariaOS shape.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsecaseResponse {
    /// The usecase's id.
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// Null until a deployment succeeded; then the latest deployment not in error.
    pub deployment: Option<DeploymentResponse>,
}

#[cfg(feature = "server")]
impl From<UsecaseView> for UsecaseResponse {
    fn from(v: UsecaseView) -> Self {
        Self {
            id: v.id,
            name: v.name,
            description: v.description,
            created_at: v.created_at,
            deployment: v.deployment.map(Into::into),
        }
    }
}

/// A page of usecases.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsecasePage {
    /// The usecases, in registration order.
    pub items: Vec<UsecaseResponse>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(feature = "server")]
impl From<Page<UsecaseView>> for UsecasePage {
    fn from(p: Page<UsecaseView>) -> Self {
        Self {
            items: p.items.into_iter().map(Into::into).collect(),
            next_cursor: p.next,
        }
    }
}

/// The team a creation acts for (`?team_id=`): the caller must be a member; without
/// it, the caller's only team, else none (personal).
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TeamQuery {
    /// The owning team's id.
    pub team_id: Option<Uuid>,
}

/// Query of `GET /api/usecases`.
#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsecaseQuery {
    /// Only the usecases of this team (the caller must be a member).
    pub team_id: Option<Uuid>,
    /// Only usecases whose name contains this text (case-insensitive).
    pub name: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,18}$")]
    pub after: Option<String>,
}

/// Query of `GET /api/usecases/{id}/deployments`.
#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,9}$")]
    pub after: Option<String>,
}

/// Body of `POST /api/usecases/{id}/deployments`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateDeployment {
    /// What to deploy.
    pub config: DeploymentConfigBody,
}

/// A deployment's configuration; only `image` is required.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentConfigBody {
    /// The container image.
    pub image: ImageBody,
    /// Prometheus scraping of the application's `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_monitor: Option<ServiceMonitorBody>,
    /// The port the application listens on, 1 to 65535 (default 8080).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 65535)]
    pub container_port: Option<u16>,
    /// Environment variables: at most 500 variables, of at most 256 KiB together; names
    /// consist of letters, digits, `_`, `-` and `.`, not starting with a digit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::limits::optional_env_map)]
    pub env: Option<BTreeMap<String, String>>,
    /// Number of pods, 1 to 100 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub replicas: Option<u32>,
    /// CPU and memory requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesBody>,
    /// Secret variables, name to value (names and limits as `env`'s; a name may not
    /// also be in `env` or `secretRefs`). Each value is sealed under the usecase's
    /// key before it is recorded and reaches the pod through the deployment's
    /// Kubernetes Secret; every answer shows it masked (`{"secret": true, "key": …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::limits::optional_secret_env_map)]
    pub secret_env: Option<BTreeMap<String, SecretEnvValue>>,
    /// Variables read from existing Kubernetes Secrets in shiplog's namespace
    /// (`valueFrom.secretKeyRef`); recorded as given, since they hold no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::limits::optional_secret_refs)]
    pub secret_refs: Option<Vec<SecretRefBody>>,
}

/// A container image, split as PhariaOS sends it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageBody {
    /// Registry host, optionally with :port.
    #[schema(
        example = "your.container.registry.de",
        max_length = 253,
        pattern = r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]{1,5})?$"
    )]
    pub registry: String,
    /// Repository path: lower-case components separated by `/`.
    #[schema(
        example = "your/repository",
        max_length = 255,
        pattern = r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
    )]
    pub repository: String,
    /// Image tag: letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, at most 128.
    #[schema(example = "1.0.0", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]
    pub tag: String,
    /// Pins the image to this manifest digest: it is pulled by digest, whatever the tag
    /// points to by then. Absent when the image is not pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        example = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        max_length = 1024,
        pattern = r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"
    )]
    pub digest: Option<String>,
}

/// Prometheus scraping settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceMonitorBody {
    /// Create a ServiceMonitor.
    pub enabled: bool,
    /// Prometheus duration between scrapes (default 30s).
    #[schema(example = "5s", pattern = r"^(?:[0-9]+(?:ms|s|m|h))+$")]
    pub scraping_interval: Option<String>,
}

/// Requests and limits.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourcesBody {
    /// What the scheduler reserves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceListBody>,
    /// The most the container may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceListBody>,
}

/// CPU and memory in Kubernetes quantities.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceListBody {
    /// CPU ("500m", "2").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[0-9]+(?:\.[0-9]+)?(?:m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")]
    pub cpu: Option<String>,
    /// Memory ("256Mi").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[0-9]+(?:\.[0-9]+)?(?:m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")]
    pub memory: Option<String>,
}

#[cfg(feature = "server")]
impl ResourceListBody {
    fn parse(self, field: &str) -> Result<ResourceList, InvalidField> {
        ResourceList::new(field, self.cpu.as_deref(), self.memory.as_deref())
    }
}

#[cfg(feature = "server")]
impl DeploymentConfigBody {
    /// Validates the configuration through the domain's constructors; the secret
    /// values come back apart, in clear, to be sealed before the command is built.
    pub fn parse(self) -> Result<(DeploymentConfig, SecretInput), InvalidField> {
        let (values, refs) = crate::secrets::parse_secrets(
            "config",
            self.env.as_ref().unwrap_or(&BTreeMap::new()),
            self.secret_env,
            self.secret_refs,
        )?;
        let mut image = ImageRef::new(
            &self.image.registry,
            &self.image.repository,
            &self.image.tag,
        )?;
        if let Some(digest) = &self.image.digest {
            image = image.pinned(digest)?;
        }
        let service_monitor = self
            .service_monitor
            .map(|m| ServiceMonitor::new(m.enabled, m.scraping_interval.as_deref()))
            .transpose()?;
        let resources = self
            .resources
            .map(|r| -> Result<Resources, InvalidField> {
                Ok(Resources {
                    requests: r
                        .requests
                        .map(|l| l.parse("config.resources.requests"))
                        .transpose()?,
                    limits: r
                        .limits
                        .map(|l| l.parse("config.resources.limits"))
                        .transpose()?,
                })
            })
            .transpose()?;
        let config = DeploymentConfig::new(
            image,
            service_monitor,
            self.container_port,
            self.env.unwrap_or_default(),
            self.replicas,
            resources,
        )?;
        Ok((config, SecretInput { values, refs }))
    }
}

impl DeploymentConfigBody {
    /// A config that names only its image; the server fills in every default (port
    /// 8080, one replica, no env, no monitor, no resources).
    pub fn image(image: ImageBody) -> Self {
        Self {
            image,
            service_monitor: None,
            container_port: None,
            env: None,
            replicas: None,
            resources: None,
            secret_env: None,
            secret_refs: None,
        }
    }
}

impl ImageBody {
    /// An image by registry, repository and tag, not pinned to a digest.
    pub fn tagged(registry: &str, repository: &str, tag: &str) -> Self {
        Self {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            digest: None,
        }
    }
}

#[cfg(feature = "server")]
impl From<DeploymentConfig> for DeploymentConfigBody {
    fn from(c: DeploymentConfig) -> Self {
        let list = |l: ResourceList| ResourceListBody {
            cpu: l.cpu,
            memory: l.memory,
        };
        Self {
            image: ImageBody {
                registry: c.image.registry,
                repository: c.image.repository,
                tag: c.image.tag,
                digest: c.image.digest,
            },
            service_monitor: c.service_monitor.map(|m| ServiceMonitorBody {
                enabled: m.enabled,
                scraping_interval: Some(m.scraping_interval),
            }),
            container_port: Some(c.container_port),
            env: Some(c.env),
            replicas: Some(c.replicas),
            resources: c.resources.map(|r| ResourcesBody {
                requests: r.requests.map(list),
                limits: r.limits.map(list),
            }),
            secret_env: crate::secrets::masked(&c.secret_env),
            secret_refs: crate::secrets::ref_bodies(&c.secret_refs),
        }
    }
}

/// Answer to an accepted deployment request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeploymentAccepted {
    /// The new deployment's id.
    pub id: Uuid,
}

/// The lifecycle status of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusBody {
    /// Requested; nothing applied yet.
    Pending,
    /// Resources applied; rolling out.
    Deploying,
    /// Serving; at most one per usecase.
    Deployed,
    /// Replaced by a newer deployment.
    Superseded,
    /// Taken down on request.
    Undeployed,
    /// Failed; see `message`.
    Error,
}

impl StatusBody {
    /// The status as the JSON spells it (`deployed`), for tables and sentences.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Deploying => "deploying",
            Self::Deployed => "deployed",
            Self::Superseded => "superseded",
            Self::Undeployed => "undeployed",
            Self::Error => "error",
        }
    }
}

#[cfg(feature = "server")]
impl From<DeploymentStatus> for StatusBody {
    fn from(s: DeploymentStatus) -> Self {
        match s {
            DeploymentStatus::Pending => Self::Pending,
            DeploymentStatus::Deploying => Self::Deploying,
            DeploymentStatus::Deployed => Self::Deployed,
            DeploymentStatus::Superseded => Self::Superseded,
            DeploymentStatus::Undeployed => Self::Undeployed,
            DeploymentStatus::Error => Self::Error,
        }
    }
}

/// A deployment: the PhariaOS fields (id, status, createdAt, message) and what shiplog knows besides.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentResponse {
    /// The deployment's id.
    pub id: Uuid,
    /// Where it is in the lifecycle.
    pub status: StatusBody,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
    /// Why it failed; empty otherwise.
    pub message: String,
    /// What it runs, with defaults filled in.
    pub config: DeploymentConfigBody,
    /// The principal that requested it.
    pub requested_by: String,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// An undeploy was requested and has not finished.
    pub undeploy_requested: bool,
    /// The deployment that replaced it, when superseded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<Uuid>,
}

#[cfg(feature = "server")]
impl From<DeploymentView> for DeploymentResponse {
    fn from(d: DeploymentView) -> Self {
        Self {
            id: d.id,
            status: d.status.into(),
            created_at: d.created_at,
            message: d.message,
            config: d.config.into(),
            requested_by: d.requested_by,
            updated_at: d.updated_at,
            undeploy_requested: d.undeploy_requested,
            superseded_by: d.superseded_by,
        }
    }
}

/// A page of deployments.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentPage {
    /// The deployments, newest first.
    pub items: Vec<DeploymentResponse>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(feature = "server")]
impl From<Page<DeploymentView>> for DeploymentPage {
    fn from(p: Page<DeploymentView>) -> Self {
        Self {
            items: p.items.into_iter().map(Into::into).collect(),
            next_cursor: p.next,
        }
    }
}

/// Body of `POST /api/tokens`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
    /// Unique among active tokens; recorded as the actor of every event the token causes.
    /// Trimmed, kept in Unicode NFC, 1 to 128 characters, no control characters.
    #[schema(
        example = "ci-pipeline",
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// At least one of usecases:read, usecases:write, deployments:read, deployments:write, audit:read, admin.
    #[schema(example = json!(["usecases:read", "deployments:write"]), value_type = Vec<ScopeName>, min_items = 1)]
    pub scopes: Vec<String>,
    /// Who the token speaks for: the owner of what it creates, whose usecases it may
    /// read and change (default: its name). Several tokens may share a subject.
    /// Checked as the name is: 1 to 128 characters, trimmed, not blank, without control
    /// characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub subject: Option<String>,
    /// The ids of the teams its subject belongs to: their deployments are its to read
    /// and change too, and with exactly one, what it creates belongs to that team.
    #[serde(default)]
    pub teams: Vec<Uuid>,
    /// It stops working this many seconds after its creation: 1 second to a year
    /// (31536000). Absent: it does not expire. Its `expiresAt` is in the answer.
    #[schema(minimum = 1, maximum = 31536000)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

/// Body of `PATCH /api/tokens/{id}`: what the token may do from now on.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateToken {
    /// The complete set of scopes from now on (at least one); recorded as a
    /// `TokenScopesChanged` event when it differs.
    #[schema(example = json!(["deployments:read"]), value_type = Vec<ScopeName>, min_items = 1)]
    pub scopes: Vec<String>,
}

/// A stream ticket: one stream, within a minute.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamTicketBody {
    /// Pass it as `?ticket=` to one event or log stream route (an `EventSource` URL).
    /// It opens one stream, as the caller that asked for it; it is not a bearer token.
    pub ticket: String,
    /// When it stops working, used or not.
    pub expires_at: DateTime<Utc>,
}

/// A scope a token may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ScopeName {
    /// Read usecases.
    #[serde(rename = "usecases:read")]
    UsecasesRead,
    /// Register and delete usecases.
    #[serde(rename = "usecases:write")]
    UsecasesWrite,
    /// Read deployments, their logs and usage.
    #[serde(rename = "deployments:read")]
    DeploymentsRead,
    /// Deploy, undeploy and operate.
    #[serde(rename = "deployments:write")]
    DeploymentsWrite,
    /// Read the whole ledger.
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Everything, tokens and teams included.
    #[serde(rename = "admin")]
    Admin,
    /// Deliver registry push notifications (`POST /api/hooks/registry`) and nothing else.
    #[serde(rename = "hooks:registry")]
    HooksRegistry,
}

/// A token as listed (never with its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// Its id, for revocation.
    pub id: Uuid,
    /// Its name: the principal recorded on events.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<String>,
    /// Who it speaks for.
    pub subject: String,
    /// The teams its subject belongs to.
    pub teams: Vec<Uuid>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// When it stops working (null: never); a token past it is refused with 401.
    pub expires_at: Option<DateTime<Utc>>,
}

#[cfg(feature = "server")]
impl From<TokenInfo> for TokenResponse {
    fn from(t: TokenInfo) -> Self {
        Self {
            id: t.id,
            name: t.name,
            scopes: t.scopes.iter().map(|s| s.to_string()).collect(),
            subject: t.subject,
            teams: t.teams,
            created_at: t.created_at,
            created_by: t.created_by,
            expires_at: t.expires_at,
        }
    }
}

/// A newly created token, with the secret shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenCreated {
    /// The stored token.
    #[serde(flatten)]
    pub info: TokenResponse,
    /// The bearer token; store it now, shiplog keeps only its hash.
    pub token: String,
}

/// Answer of the health probes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// "ok" or "ready".
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::StatusBody;

    #[test]
    fn a_status_is_named_as_the_json_spells_it() {
        use StatusBody::*;
        for status in [Pending, Deploying, Deployed, Superseded, Undeployed, Error] {
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(serde_json::Value::String(status.as_str().to_owned()))
            );
        }
    }
}
