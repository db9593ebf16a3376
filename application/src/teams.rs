//! Teams and billing: who owns deployments together, the tier that bounds how many
//! they may have, and the usage the ledger records. Team changes are commands on the
//! `Team` aggregate, so they are events in the audit trail.

use crate::auth::{Principal, OWNERSHIP_REFUSED};
use crate::error::{AppError, Denial, Missing};
use crate::ports::{CommandContext, ReadModel, TeamCommandBus, TeamView, UsageCounts};
use chrono::{DateTime, SubsecRound, Utc};
use shiplog_domain::{TeamCommand, TeamName, Tier};
use std::sync::Arc;
use tracing::instrument;
use uuid::Uuid;

/// Who a new usecase belongs to: the subject that asks, and the team of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// The owning subject.
    pub owner: String,
    /// The owning team, if any.
    pub team: Option<Uuid>,
}

/// Whether creations are bounded by tier, and how far (`--billing`, `--tier-limit`,
/// `--personal-tier`). The database enforces the bound; these settings reach its
/// trigger through every connection of shiplog's pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingSettings {
    /// Whether limits apply at all.
    pub enabled: bool,
    /// The most deployments of a free team (`None`: unlimited).
    pub free: Option<u32>,
    /// Of a business team.
    pub business: Option<u32>,
    /// Of an enterprise team.
    pub enterprise: Option<u32>,
    /// The tier whose limit a subject's personal deployments share.
    pub personal_tier: Tier,
}

impl Default for BillingSettings {
    /// Seed 002's limits (free 1, business 10, enterprise unlimited), billing off.
    fn default() -> Self {
        Self {
            enabled: false,
            free: Some(1),
            business: Some(10),
            enterprise: None,
            personal_tier: Tier::Free,
        }
    }
}

impl BillingSettings {
    /// The limit of `tier` when billing is on.
    pub fn limit(&self, tier: Tier) -> Option<u32> {
        if !self.enabled {
            return None;
        }
        match tier {
            Tier::Free => self.free,
            Tier::Business => self.business,
            Tier::Enterprise => self.enterprise,
        }
    }
}

/// A team's usage over a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamUsage {
    /// The team.
    pub team: TeamView,
    /// Whether tier limits apply (`--billing`).
    pub billing: bool,
    /// Its limit now (`None`: unlimited, or billing off).
    pub limit: Option<u32>,
    /// The range's start.
    pub from: DateTime<Utc>,
    /// The range's end (exclusive).
    pub to: DateTime<Utc>,
    /// What the ledger says happened in it.
    pub counts: UsageCounts,
}

/// Creates, lists and changes teams, answers their usage, and says which team a
/// request acts for.
pub struct Teams {
    bus: Arc<dyn TeamCommandBus>,
    read: Arc<dyn ReadModel>,
    billing: BillingSettings,
}

impl Teams {
    /// Wires the team use cases to their ports.
    pub fn new(
        bus: Arc<dyn TeamCommandBus>,
        read: Arc<dyn ReadModel>,
        billing: BillingSettings,
    ) -> Self {
        Self { bus, read, billing }
    }

    /// The billing settings in force.
    pub fn billing(&self) -> &BillingSettings {
        &self.billing
    }

    async fn execute(
        &self,
        ctx: &CommandContext,
        team_id: Uuid,
        command: TeamCommand,
    ) -> Result<(), AppError> {
        let cursor = self.bus.execute(team_id, command, ctx).await?;
        self.read.wait_for(cursor).await;
        Ok(())
    }

    /// The team, unless unknown.
    async fn find(&self, id: Uuid) -> Result<TeamView, AppError> {
        self.read
            .team(id)
            .await?
            .ok_or_else(|| AppError::not_found(Missing::Team, format!("team {id} not found")))
    }

    /// Creates a team (admins only; the route checks the scope).
    #[instrument(skip(self, ctx), fields(actor = %ctx.actor))]
    pub async fn create(
        &self,
        ctx: &CommandContext,
        name: TeamName,
        tier: Tier,
    ) -> Result<TeamView, AppError> {
        let team_id = Uuid::new_v4();
        let command = TeamCommand::Create {
            team_id,
            name,
            tier,
            at: Utc::now().trunc_subsecs(0),
        };
        self.execute(ctx, team_id, command).await?;
        self.find(team_id).await
    }

    /// Renames a team and/or changes its tier; the new tier bounds the next create at once.
    #[instrument(skip(self, ctx), fields(actor = %ctx.actor))]
    pub async fn update(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        name: Option<TeamName>,
        tier: Option<Tier>,
    ) -> Result<TeamView, AppError> {
        let current = self.find(id).await?;
        // Keeping its own name is no rename (and no clash with its own reservation).
        let name = name.filter(|n| n.as_str() != current.name);
        let command = TeamCommand::Update {
            name,
            tier,
            at: Utc::now().trunc_subsecs(0),
        };
        self.execute(ctx, id, command).await?;
        self.find(id).await
    }

    /// The teams the caller may see: all for an admin, else its own.
    pub async fn list(&self, principal: &Principal) -> Result<Vec<TeamView>, AppError> {
        if principal.is_admin() {
            self.read.teams(None).await
        } else {
            self.read.teams(Some(&principal.teams)).await
        }
    }

    /// One team, for its members and admins.
    pub async fn get(&self, principal: &Principal, id: Uuid) -> Result<TeamView, AppError> {
        let team = self.find(id).await?;
        if !principal.in_team(id) {
            return Err(not_a_member(id));
        }
        Ok(team)
    }

    /// The team's deployments created, deleted and existing over `[from, to)`
    /// (default: from the beginning until now), from the ledger.
    pub async fn usage(
        &self,
        principal: &Principal,
        id: Uuid,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<TeamUsage, AppError> {
        let team = self.get(principal, id).await?;
        let from = from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let to = to.unwrap_or_else(Utc::now);
        // `to` not after `from` is an empty range: nothing created or deleted in it,
        // what runs at `to` still counted (the document cannot state an order of the two).
        let counts = self.read.team_usage(id, from, to).await?;
        Ok(TeamUsage {
            billing: self.billing.enabled,
            limit: self.billing.limit(team.tier),
            team,
            from,
            to,
            counts,
        })
    }

    /// A missing team (404, the detail naming `field[i]`) unless every team of `ids`
    /// exists: a well-formed id that names nothing, as `team_id` of the query.
    pub async fn check_exist(&self, ids: &[Uuid], field: &str) -> Result<(), AppError> {
        for (i, id) in ids.iter().enumerate() {
            if self.read.team(*id).await?.is_none() {
                return Err(AppError::not_found(
                    Missing::Team,
                    format!("{field}[{i}]: no team has the id {id}"),
                ));
            }
        }
        Ok(())
    }

    /// The team a request acts for: the one it names (the caller must be a member,
    /// admins may name any), else the caller's only team, else none (personal).
    pub async fn context(
        &self,
        principal: &Principal,
        requested: Option<Uuid>,
    ) -> Result<Option<Uuid>, AppError> {
        match requested {
            Some(id) => {
                self.find(id).await?;
                if !principal.in_team(id) {
                    return Err(not_a_member(id));
                }
                Ok(Some(id))
            }
            None => Ok(match principal.teams.as_slice() {
                [only] => Some(*only),
                _ => None,
            }),
        }
    }

    /// Who a new usecase of this request belongs to.
    pub async fn ownership(
        &self,
        principal: &Principal,
        requested: Option<Uuid>,
    ) -> Result<Ownership, AppError> {
        Ok(Ownership {
            owner: principal.subject.clone(),
            team: self.context(principal, requested).await?,
        })
    }
}

/// The refusal for a caller outside `team`.
fn not_a_member(team: Uuid) -> AppError {
    AppError::denied(
        Denial::NotOwner,
        format!("{OWNERSHIP_REFUSED}: this token's subject is not a member of team {team}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_apply_only_with_billing_on() {
        let off = BillingSettings::default();
        assert_eq!(off.limit(Tier::Free), None);
        let on = BillingSettings {
            enabled: true,
            ..BillingSettings::default()
        };
        assert_eq!(on.limit(Tier::Free), Some(1));
        assert_eq!(on.limit(Tier::Business), Some(10));
        assert_eq!(on.limit(Tier::Enterprise), None);
    }
}
