//! `usecase_view`: one row per live usecase.

use super::{Fact, FoldError, Table};
use chrono::{DateTime, Utc};
use shiplog_domain::UsecaseEvent;
use uuid::Uuid;

/// A row of `usecase_view`, column for column.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct UsecaseRow {
    /// The usecase.
    pub id: Uuid,
    /// The registration event's position: listing order, stable across rebuilds.
    pub registered_at_position: i64,
    /// Its unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// Who registered it.
    pub created_by: String,
    /// A deployment of it has succeeded once (it stays true).
    pub has_succeeded: bool,
    /// The time of its latest event.
    pub updated_at: DateTime<Utc>,
    /// Who caused its latest event.
    pub updated_by: String,
    /// The catalog template it was created from.
    pub template: Option<String>,
    /// Who may reach it, as the API spells it.
    pub visibility: Option<String>,
    /// Whether new images are followed.
    pub auto_update_enabled: bool,
    /// How pods are replaced, as the API spells it.
    pub auto_update_strategy: String,
    /// A deletion was asked for.
    pub deletion_requested: bool,
    /// The subject that owns it.
    pub owner: String,
    /// The team that owns it, if any.
    pub team_id: Option<Uuid>,
}

/// The strategy column's default, which the registration leaves in place.
const DEFAULT_STRATEGY: &str = "rolling";

pub(super) fn apply(
    table: &mut Table<Uuid, UsecaseRow>,
    fact: &Fact<'_>,
    at: DateTime<Utc>,
) -> Result<(), FoldError> {
    let actor = fact.actor;
    // Every event but the registration changes the row of the aggregate id.
    let id = fact.usecase_id;
    match fact.event {
        UsecaseEvent::UsecaseRegistered {
            usecase_id,
            name,
            description,
            template,
            visibility,
            owner,
            team,
            ..
        } => {
            if !table.knows(usecase_id) {
                return Err(FoldError::not_loaded(fact, "its usecase row"));
            }
            let row = UsecaseRow {
                id: *usecase_id,
                registered_at_position: fact.cursor.position,
                name: name.as_str().to_owned(),
                description: description.clone(),
                created_at: at,
                created_by: actor.to_owned(),
                has_succeeded: false,
                updated_at: at,
                updated_by: actor.to_owned(),
                template: template.clone(),
                visibility: visibility.map(|v| v.as_str().to_owned()),
                auto_update_enabled: false,
                auto_update_strategy: DEFAULT_STRATEGY.to_owned(),
                deletion_requested: false,
                // Usecases registered before owners existed belong to who registered them.
                owner: owner.as_deref().unwrap_or(actor).to_owned(),
                team_id: *team,
            };
            if !table.insert(*usecase_id, row) {
                return Err(FoldError::refused(
                    fact,
                    "registers a usecase that already has a row",
                ));
            }
            return Ok(());
        }
        UsecaseEvent::UsecaseDeleted { .. } => {
            if !table.knows(&id) {
                return Err(FoldError::not_loaded(fact, "its usecase row"));
            }
            table.remove(&id);
            return Ok(());
        }
        _ => {}
    }
    if !table.knows(&id) {
        return Err(FoldError::not_loaded(fact, "its usecase row"));
    }
    // An UPDATE matching no row changes nothing.
    let Some(row) = table.get_mut(&id) else {
        return Ok(());
    };
    match fact.event {
        UsecaseEvent::AutoUpdateConfigured {
            enabled, strategy, ..
        } => {
            row.auto_update_enabled = *enabled;
            strategy.as_str().clone_into(&mut row.auto_update_strategy);
        }
        UsecaseEvent::DeletionRequested { .. } => row.deletion_requested = true,
        // Once true it stays true, whatever happens to the deployment later.
        UsecaseEvent::DeploymentSucceeded { .. } => row.has_succeeded = true,
        _ => {}
    }
    row.updated_at = at;
    actor.clone_into(&mut row.updated_by);
    Ok(())
}
