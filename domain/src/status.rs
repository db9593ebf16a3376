//! The lifecycle states of one deployment.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a deployment is in its lifecycle; serialised as the lower-case words of the PhariaOS API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentStatus {
    /// Requested, nothing applied to the cluster yet.
    Pending,
    /// Resources applied, waiting for the rollout.
    Deploying,
    /// Rolled out and serving; at most one per usecase.
    Deployed,
    /// Replaced by a newer deployment; its resources are removed.
    Superseded,
    /// Taken down on request; its resources are removed.
    Undeployed,
    /// Failed; `message` says why and its resources are removed.
    Error,
}

impl DeploymentStatus {
    /// The status as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Deploying => "deploying",
            Self::Deployed => "deployed",
            Self::Superseded => "superseded",
            Self::Undeployed => "undeployed",
            Self::Error => "error",
        }
    }

    /// True while the cluster may still be changed on this deployment's behalf.
    pub fn is_in_flight(self) -> bool {
        matches!(self, Self::Pending | Self::Deploying)
    }

    /// True once nothing more will ever happen to this deployment.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Superseded | Self::Undeployed | Self::Error)
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
