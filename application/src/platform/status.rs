//! Seed 002's status of a deployment, derived from the usecase's newest and
//! serving deployments: a pure function, so every case is a table row in a test.

use crate::ports::PlatformView;
use shiplog_domain::DeploymentStatus;
use std::fmt;

/// Where a platform deployment is, in seed 002's words (plus `Stopped`, for a
/// usecase that runs nothing and is not on its way: registered through the
/// PhariaOS API and never deployed, or undeployed there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformStatus {
    /// Requested; nothing applied to the cluster yet.
    Pending,
    /// Its objects are applied; the rollout runs.
    Provisioning,
    /// Deployed and serving.
    Ready,
    /// The newest deployment failed and nothing serves; `lastError` says why.
    Error,
    /// A deletion was requested; what runs is taken down, then it is deleted.
    Deleting,
    /// Nothing runs and nothing is on its way.
    Stopped,
}

impl PlatformStatus {
    /// The word the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Provisioning => "Provisioning",
            Self::Ready => "Ready",
            Self::Error => "Error",
            Self::Deleting => "Deleting",
            Self::Stopped => "Stopped",
        }
    }
}

impl fmt::Display for PlatformStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `GET /api/deployments/status` tells about a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The status.
    pub status: PlatformStatus,
    /// A deployment serves traffic now (also while a newer one rolls out).
    pub ready: bool,
    /// It may be deleted (not already being deleted).
    pub allow_delete: bool,
    /// A new deployment request would start something: it failed or runs nothing,
    /// so a config change (`PUT /api/deployments/config`) deploys it again.
    pub allow_request: bool,
    /// Why it failed, when its status is `Error`.
    pub last_error: Option<String>,
    /// One sentence on where it is, for people.
    pub message: String,
}

/// The status of `view`.
pub fn status_of(view: &PlatformView) -> StatusReport {
    let serving = view.serving.as_ref();
    let latest = view.latest.as_ref();
    let report = |status, message: String| StatusReport {
        status,
        ready: serving.is_some(),
        allow_delete: !view.usecase.deletion_requested,
        allow_request: matches!(status, PlatformStatus::Error | PlatformStatus::Stopped),
        last_error: None,
        message,
    };
    if view.usecase.deletion_requested {
        return StatusReport {
            ready: false,
            ..report(
                PlatformStatus::Deleting,
                "being deleted: what runs is undeployed, then its objects are removed".to_owned(),
            )
        };
    }
    let keeps_serving = serving
        .map(|s| format!("; deployment {} keeps serving until then", s.id))
        .unwrap_or_default();
    match latest {
        Some(l) if l.status.is_in_flight() && !l.undeploy_requested => {
            let (status, what) = match l.status {
                DeploymentStatus::Pending => (PlatformStatus::Pending, "is waiting to be applied"),
                _ => (PlatformStatus::Provisioning, "is rolling out"),
            };
            report(status, format!("deployment {} {what}{keeps_serving}", l.id))
        }
        _ if serving.is_some() => {
            let failed = latest
                .filter(|l| l.status == DeploymentStatus::Error)
                .map(|l| {
                    format!(
                        "; the latest change (deployment {}) failed: {}",
                        l.id, l.message
                    )
                })
                .unwrap_or_default();
            let id = serving.map(|s| s.id.to_string()).unwrap_or_default();
            report(
                PlatformStatus::Ready,
                format!("deployment {id} serves{failed}"),
            )
        }
        Some(l) if l.status == DeploymentStatus::Error => StatusReport {
            last_error: Some(l.message.clone()),
            ..report(PlatformStatus::Error, l.message.clone())
        },
        Some(l) if l.undeploy_requested => report(
            PlatformStatus::Stopped,
            format!("deployment {} is being undeployed", l.id),
        ),
        Some(_) => report(PlatformStatus::Stopped, "nothing is deployed".to_owned()),
        None => report(
            PlatformStatus::Stopped,
            "nothing was ever deployed".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{DeploymentView, UsecaseView};
    use chrono::Utc;
    use shiplog_domain::{DeploymentConfig, ImageRef};
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn deployment(n: u128, status: DeploymentStatus, undeploying: bool) -> DeploymentView {
        let image = ImageRef::parse("image", "nginx").unwrap_or_else(|e| panic!("{e}"));
        DeploymentView {
            id: Uuid::from_u128(n),
            usecase_id: Uuid::from_u128(1),
            status,
            created_at: Utc::now(),
            message: if status == DeploymentStatus::Error {
                "the image cannot be pulled".to_owned()
            } else {
                String::new()
            },
            config: DeploymentConfig::new(image, None, None, BTreeMap::new(), None, None)
                .unwrap_or_else(|e| panic!("{e}")),
            requested_by: "alice".to_owned(),
            updated_at: Utc::now(),
            updated_by: "alice".to_owned(),
            undeploy_requested: undeploying,
            superseded_by: None,
        }
    }

    fn view(
        deleting: bool,
        latest: Option<DeploymentView>,
        serving: Option<DeploymentView>,
    ) -> PlatformView {
        PlatformView {
            usecase: UsecaseView {
                id: Uuid::from_u128(1),
                name: "abc".to_owned(),
                description: String::new(),
                created_at: Utc::now(),
                created_by: "alice".to_owned(),
                deployment: None,
                template: None,
                visibility: None,
                auto_update: Default::default(),
                auto_update_paused: None,
                deletion_requested: deleting,
                owner: "alice".to_owned(),
                team: None,
            },
            latest,
            serving,
        }
    }

    #[test]
    fn the_status_follows_the_newest_and_the_serving_deployment() {
        use DeploymentStatus as D;
        use PlatformStatus as P;
        let d = deployment;
        let cases = [
            (
                "just requested",
                view(false, Some(d(2, D::Pending, false)), None),
                P::Pending,
                false,
                false,
            ),
            (
                "rolling out",
                view(false, Some(d(2, D::Deploying, false)), None),
                P::Provisioning,
                false,
                false,
            ),
            (
                "ready",
                view(
                    false,
                    Some(d(2, D::Deployed, false)),
                    Some(d(2, D::Deployed, false)),
                ),
                P::Ready,
                true,
                false,
            ),
            (
                "a config change rolls out over a serving one",
                view(
                    false,
                    Some(d(3, D::Deploying, false)),
                    Some(d(2, D::Deployed, false)),
                ),
                P::Provisioning,
                true,
                false,
            ),
            (
                "a failed change leaves the old one serving",
                view(
                    false,
                    Some(d(3, D::Error, false)),
                    Some(d(2, D::Deployed, false)),
                ),
                P::Ready,
                true,
                false,
            ),
            (
                "failed, nothing serves",
                view(false, Some(d(2, D::Error, false)), None),
                P::Error,
                false,
                true,
            ),
            (
                "being deleted",
                view(true, Some(d(2, D::Deployed, true)), None),
                P::Deleting,
                false,
                false,
            ),
            (
                "undeployed through PhariaOS",
                view(false, Some(d(2, D::Undeployed, false)), None),
                P::Stopped,
                false,
                true,
            ),
            (
                "being undeployed",
                view(false, Some(d(2, D::Deployed, true)), None),
                P::Stopped,
                false,
                true,
            ),
            (
                "registered, never deployed",
                view(false, None, None),
                P::Stopped,
                false,
                true,
            ),
        ];
        for (description, view, status, ready, allow_request) in cases {
            let report = status_of(&view);
            assert_eq!(report.status, status, "{description}: {}", report.message);
            assert_eq!(report.ready, ready, "{description}: ready");
            assert_eq!(
                report.allow_request, allow_request,
                "{description}: allowRequest"
            );
            assert_eq!(
                report.allow_delete,
                status != P::Deleting,
                "{description}: allowDelete"
            );
            assert_eq!(
                report.last_error.is_some(),
                status == P::Error,
                "{description}: lastError only with Error"
            );
        }
    }

    #[test]
    fn messages_say_what_failed_and_what_keeps_serving() {
        use DeploymentStatus as D;
        let failed_change = status_of(&view(
            false,
            Some(deployment(3, D::Error, false)),
            Some(deployment(2, D::Deployed, false)),
        ));
        assert!(
            failed_change
                .message
                .contains("failed: the image cannot be pulled"),
            "{}",
            failed_change.message
        );
        let error = status_of(&view(false, Some(deployment(2, D::Error, false)), None));
        assert_eq!(
            error.last_error.as_deref(),
            Some("the image cannot be pulled")
        );
    }
}
