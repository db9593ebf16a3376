//! `team_view`: one row per team, with its name and tier.

use super::{FoldError, Table, TeamFact};
use chrono::{DateTime, Utc};
use shiplog_domain::TeamEvent;
use uuid::Uuid;

/// A row of `team_view`, column for column.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct TeamRow {
    /// The team.
    pub id: Uuid,
    /// Its name now.
    pub name: String,
    /// Its tier now, as the API spells it.
    pub tier: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Who changed it last.
    pub updated_by: String,
}

pub(super) fn apply(
    table: &mut Table<Uuid, TeamRow>,
    fact: &TeamFact<'_>,
    at: DateTime<Utc>,
) -> Result<(), FoldError> {
    let id = fact.team_id;
    if !table.knows(&id) {
        return Err(FoldError::NotLoaded {
            cursor: fact.cursor,
            event_type: fact.event.type_name(),
            what: "its team row",
        });
    }
    let actor = fact.actor;
    match fact.event {
        TeamEvent::TeamCreated { name, tier, .. } => {
            let row = TeamRow {
                id,
                name: name.as_str().to_owned(),
                tier: tier.as_str().to_owned(),
                created_at: at,
                created_by: actor.to_owned(),
                updated_at: at,
                updated_by: actor.to_owned(),
            };
            if !table.insert(id, row) {
                return Err(FoldError::Refused {
                    cursor: fact.cursor,
                    event_type: fact.event.type_name(),
                    what: "creates a team that already has a row",
                });
            }
        }
        TeamEvent::TeamRenamed { name, .. } => {
            if let Some(row) = table.get_mut(&id) {
                name.as_str().clone_into(&mut row.name);
                row.updated_at = at;
                actor.clone_into(&mut row.updated_by);
            }
        }
        TeamEvent::TeamTierChanged { tier, .. } => {
            if let Some(row) = table.get_mut(&id) {
                tier.as_str().clone_into(&mut row.tier);
                row.updated_at = at;
                actor.clone_into(&mut row.updated_by);
            }
        }
    }
    Ok(())
}
