//! The JSON shapes of `/api/teams`: teams, their changes and their usage.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
#[cfg(feature = "server")]
use shiplog_application::{TeamUsage, TeamView};
#[cfg(feature = "server")]
use shiplog_domain::Tier;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A team's billing tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TierBody {
    /// 1 deployment by default (with billing on).
    Free,
    /// 10 deployments by default.
    Business,
    /// No limit by default.
    Enterprise,
}

#[cfg(feature = "server")]
impl From<TierBody> for Tier {
    fn from(t: TierBody) -> Self {
        match t {
            TierBody::Free => Tier::Free,
            TierBody::Business => Tier::Business,
            TierBody::Enterprise => Tier::Enterprise,
        }
    }
}

#[cfg(feature = "server")]
impl From<Tier> for TierBody {
    fn from(t: Tier) -> Self {
        match t {
            Tier::Free => TierBody::Free,
            Tier::Business => TierBody::Business,
            Tier::Enterprise => TierBody::Enterprise,
        }
    }
}

/// Body of `POST /api/teams`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    /// Unique across the installation; 1 to 64 characters, trimmed, not blank, without
    /// control characters.
    #[schema(
        example = "acme",
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Its tier (default free).
    pub tier: Option<TierBody>,
}

/// Body of `PUT /api/teams/{id}`: what changes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeam {
    /// A new name, as [`CreateTeam`]'s.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    /// A new tier: its limit applies to the next creation at once.
    pub tier: Option<TierBody>,
}

/// A team.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamBody {
    /// Its id: what `team_id` and a token's `teams` name.
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// Its tier.
    pub tier: TierBody,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Who changed it last.
    pub updated_by: String,
}

#[cfg(feature = "server")]
impl From<TeamView> for TeamBody {
    fn from(t: TeamView) -> Self {
        Self {
            id: t.id,
            name: t.name,
            tier: t.tier.into(),
            created_at: t.created_at,
            created_by: t.created_by,
            updated_at: t.updated_at,
            updated_by: t.updated_by,
        }
    }
}

/// Query of `GET /api/teams/{id}/usage`.
#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// The range's start, RFC 3339 (default: the beginning).
    pub from: Option<DateTime<Utc>>,
    /// The range's end, exclusive, RFC 3339 (default: now).
    pub to: Option<DateTime<Utc>>,
}

/// `GET /api/teams/{id}/usage`: what the ledger records of a team's deployments.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageBody {
    /// The team.
    pub team_id: Uuid,
    /// Its tier now.
    pub tier: TierBody,
    /// Whether tier limits apply on this installation (`--billing`).
    pub billing: bool,
    /// Its deployment limit now; null: unlimited (or billing off, see `billing`).
    pub limit: Option<u32>,
    /// The range's start.
    pub from: DateTime<Utc>,
    /// The range's end (exclusive).
    pub to: DateTime<Utc>,
    /// Deployments created in the range (`UsecaseRegistered`).
    pub created: u64,
    /// Deployments deleted in the range (`UsecaseDeleted`).
    pub deleted: u64,
    /// Deployments that existed at the end of the range.
    pub running: u64,
}

#[cfg(feature = "server")]
impl From<TeamUsage> for UsageBody {
    fn from(u: TeamUsage) -> Self {
        Self {
            team_id: u.team.id,
            tier: u.team.tier.into(),
            billing: u.billing,
            limit: u.limit,
            from: u.from,
            to: u.to,
            created: u.counts.created,
            deleted: u.counts.deleted,
            running: u.counts.running,
        }
    }
}
