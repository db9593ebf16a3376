//! Auto-update as both APIs show and change it (`GET/PUT /api/deployments/auto-update`,
//! `GET/PUT /api/usecases/{id}/auto-update`), and the registry notifications that
//! trigger a check (`POST /api/hooks/registry`). Field names are single words, so the
//! same shapes read alike in the platform API's snake_case and the PhariaOS API's
//! camelCase bodies.

use crate::platform::StrategyBody;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[cfg(feature = "server")]
use shiplog_application::auto_update::{AutoUpdateStatus, CheckRecord};
#[cfg(feature = "server")]
use shiplog_domain::{AutoUpdatePause, InvalidField, UpdatePolicy};

/// Which new images auto-update follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyBody {
    /// A new digest behind the deployed tag (the tag was pushed again).
    Digest,
    /// The highest tag that is a semantic version inside `range`.
    Semver,
}

/// The auto-update settings, the pause and the last check.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AutoUpdateState {
    /// Follow new images.
    pub enabled: bool,
    /// How pods are replaced: the Kubernetes Deployment's strategy.
    pub strategy: StrategyBody,
    /// Which new images count.
    pub policy: PolicyBody,
    /// The versions a `semver` policy follows (`^1`, `~1.4`, `>=2 <3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// Set while a manual rollback pauses auto-update; enabling it again resumes.
    pub paused: Option<PauseBody>,
    /// The watcher's last check; absent until the first (and in a deployment's status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckBody>,
}

/// Why auto-update is paused.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PauseBody {
    /// In the user's words.
    pub reason: String,
    /// The rollback's deployment that paused it.
    pub rollback: Uuid,
    /// Since when.
    pub since: DateTime<Utc>,
}

/// One check of the registry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckBody {
    /// The check: the `causation` of the events of the update it requested.
    pub id: Uuid,
    /// When it ran.
    pub at: DateTime<Utc>,
    /// `interval` (the periodic check) or `webhook` (a registry notification).
    pub trigger: String,
    /// The tag it looked at.
    pub tag: String,
    /// The digest that tag named: the last seen digest.
    pub digest: Option<String>,
    /// `unchanged`, `updated`, `waiting`, `rateLimited`, `failed` or `skipped`.
    pub outcome: String,
    /// What happened (the registry's answer on failure; the new deployment on update).
    pub message: String,
    /// After a 429 (or while a deployment is in flight), the next check waits until then.
    pub resumes: Option<DateTime<Utc>>,
}

/// A change of the settings (PhariaOS API): what is left out stays.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoUpdateChangeBody {
    /// Follow new images; `true` again also ends a pause.
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

/// A registry's notification envelope (the distribution registry's format,
/// `application/vnd.docker.distribution.events.v1+json`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegistryNotification {
    /// The events; only manifest pushes trigger checks.
    #[serde(default)]
    pub events: Vec<RegistryEvent>,
}

/// One event of a registry notification.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegistryEvent {
    /// `push`, `pull`, `delete`, …
    #[serde(default)]
    pub action: String,
    /// What was pushed.
    #[serde(default)]
    pub target: Option<RegistryTarget>,
    /// The request that pushed it.
    #[serde(default)]
    pub request: Option<RegistryRequest>,
}

/// The object a registry event is about.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryTarget {
    /// The pushed object's media type (a manifest's, for the pushes that count).
    #[serde(default)]
    pub media_type: String,
    /// The repository (`team/app`).
    #[serde(default)]
    pub repository: String,
    /// The tag, when a tag was pushed.
    #[serde(default)]
    pub tag: Option<String>,
    /// The object's digest.
    #[serde(default)]
    pub digest: Option<String>,
    /// Where it is fetched; its host names the registry.
    #[serde(default)]
    pub url: Option<String>,
}

/// The request behind a registry event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegistryRequest {
    /// The registry's host as the client addressed it (`host[:port]`).
    #[serde(default)]
    pub host: Option<String>,
}

/// Answer of `POST /api/hooks/registry`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HookAccepted {
    /// Manifest pushes the notification carried.
    pub pushes: usize,
    /// The usecases (deployments) whose check it made due at once.
    pub checks: Vec<Uuid>,
}

#[cfg(feature = "server")]
impl From<AutoUpdateStatus> for AutoUpdateState {
    fn from(s: AutoUpdateStatus) -> Self {
        Self {
            enabled: s.settings.enabled,
            strategy: s.settings.strategy.into(),
            policy: match s.settings.policy {
                UpdatePolicy::Digest => PolicyBody::Digest,
                UpdatePolicy::Semver { .. } => PolicyBody::Semver,
            },
            range: s.settings.policy.range().map(|r| r.as_str().to_owned()),
            paused: s.paused.map(|p: AutoUpdatePause| PauseBody {
                reason: p.reason,
                rollback: p.rollback,
                since: p.since,
            }),
            check: s.last_check.map(|c: CheckRecord| CheckBody {
                id: c.check_id,
                at: c.checked_at,
                trigger: c.trigger.as_str().to_owned(),
                tag: c.tag,
                digest: c.digest,
                outcome: c.outcome.as_str().to_owned(),
                message: c.message,
                resumes: c.not_before,
            }),
        }
    }
}

/// The policy a change names: `policy` with `range` (`semver` when only `range` is
/// given); `None` when it names neither (the current policy stays).
#[cfg(feature = "server")]
pub fn policy_of(
    policy: Option<PolicyBody>,
    range: Option<&str>,
) -> Result<Option<UpdatePolicy>, InvalidField> {
    let kind = match (policy, range) {
        (None, None) => return Ok(None),
        (Some(PolicyBody::Digest), _) => "digest",
        (Some(PolicyBody::Semver), _) | (None, Some(_)) => "semver",
    };
    UpdatePolicy::parse("", kind, range).map(Some)
}

#[cfg(feature = "server")]
impl RegistryNotification {
    /// The manifest pushes it carries, as the watcher matches them to deployments:
    /// the registry from the target's URL (else the request's host), the repository
    /// and the tag.
    pub fn pushes(&self) -> Vec<shiplog_application::auto_update::PushedImage> {
        self.events
            .iter()
            .filter(|e| e.action == "push")
            .filter_map(|e| {
                let target = e.target.as_ref()?;
                // Layers and configs are pushed too; only a manifest names an image.
                if !target.media_type.contains("manifest") || target.repository.is_empty() {
                    return None;
                }
                let registry = target
                    .url
                    .as_deref()
                    .and_then(host_of_url)
                    .or_else(|| e.request.as_ref().and_then(|r| r.host.clone()));
                Some(shiplog_application::auto_update::PushedImage {
                    registry,
                    repository: target.repository.clone(),
                    tag: target.tag.clone().filter(|t| !t.is_empty()),
                })
            })
            .collect()
    }
}

/// `host[:port]` of an `http(s)://host[:port]/…` URL.
#[cfg(feature = "server")]
fn host_of_url(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let host = rest.split('/').next()?;
    (!host.is_empty()).then(|| host.to_owned())
}

#[cfg(all(test, feature = "server"))]
mod tests {
    use super::*;

    #[test]
    fn only_manifest_pushes_count_and_name_their_registry() {
        let body = serde_json::json!({"events": [
            {"action": "push", "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
              "repository": "team/app", "tag": "latest", "digest": "sha256:aa",
              "url": "http://127.0.0.1:5000/v2/team/app/manifests/sha256:aa"},
             "request": {"host": "registry.lan:5000"}},
            {"action": "push", "target": {"mediaType": "application/octet-stream", "repository": "team/app"}},
            {"action": "pull", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": "team/app"}},
            {"action": "push", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": "team/other"},
             "request": {"host": "registry.lan:5000"}}
        ]});
        let notification: RegistryNotification = serde_json::from_value(body).unwrap();
        let pushes = notification.pushes();
        assert_eq!(pushes.len(), 2, "{pushes:?}");
        assert_eq!(pushes[0].registry.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(pushes[0].tag.as_deref(), Some("latest"));
        assert_eq!(pushes[1].registry.as_deref(), Some("registry.lan:5000"));
        assert_eq!(pushes[1].tag, None);
    }

    #[test]
    fn a_range_alone_means_semver_and_digest_ignores_one() {
        assert_eq!(policy_of(None, None), Ok(None));
        let semver = policy_of(None, Some("^1")).unwrap().unwrap();
        assert_eq!(semver.kind().as_str(), "semver");
        assert_eq!(
            policy_of(Some(PolicyBody::Digest), Some("^1")).unwrap(),
            Some(UpdatePolicy::Digest)
        );
        assert_eq!(
            policy_of(Some(PolicyBody::Semver), Some("one"))
                .unwrap_err()
                .field,
            "range"
        );
    }
}
