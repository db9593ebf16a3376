//! `usecase_view`: one row per live usecase.

use super::{Fact, FoldError, Table};
use chrono::{DateTime, Utc};
use shiplog_domain::{
    AutoUpdate, AutoUpdatePause, PolicyKind, UpdatePolicy, UpdateStrategy, UsecaseEvent,
    VersionRange,
};
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
    /// Which new images are followed (`digest`, `semver`).
    pub auto_update_policy: String,
    /// The versions a `semver` policy follows.
    pub auto_update_range: Option<String>,
    /// Why auto-update is paused (an `AutoUpdatePause` as JSON), while it is.
    pub auto_update_pause: Option<String>,
    /// A deletion was asked for.
    pub deletion_requested: bool,
    /// The subject that owns it.
    pub owner: String,
    /// The team that owns it, if any.
    pub team_id: Option<Uuid>,
}

/// A pause as the row's JSON column holds it.
pub fn pause_json(pause: &AutoUpdatePause) -> String {
    serde_json::json!({
        "reason": pause.reason,
        "rollback": pause.rollback,
        "since": pause.since,
    })
    .to_string()
}

/// The auto-update settings and pause a row's columns hold, decoded as the API shows
/// them; `Err` names the column that holds what no event writes.
pub fn decode_auto_update(
    enabled: bool,
    strategy: &str,
    policy: &str,
    range: Option<&str>,
    pause: Option<&str>,
) -> Result<(AutoUpdate, Option<AutoUpdatePause>), String> {
    let strategy = UpdateStrategy::parse("auto_update_strategy", strategy)
        .map_err(|e| format!("usecase_view.auto_update_strategy: {}", e.reason))?;
    let range = range
        .map(|r| VersionRange::parse("auto_update_range", r))
        .transpose()
        .map_err(|e| format!("usecase_view.auto_update_range: {}", e.reason))?;
    let kind = match policy {
        "digest" => PolicyKind::Digest,
        "semver" => PolicyKind::Semver,
        other => return Err(format!("usecase_view.auto_update_policy: {other:?}")),
    };
    let pause = pause
        .map(serde_json::from_str::<AutoUpdatePause>)
        .transpose()
        .map_err(|e| format!("usecase_view.auto_update_pause: {e}"))?;
    Ok((
        AutoUpdate {
            enabled,
            strategy,
            policy: UpdatePolicy::recorded(kind, range),
        },
        pause,
    ))
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
                auto_update_policy: PolicyKind::Digest.as_str().to_owned(),
                auto_update_range: None,
                auto_update_pause: None,
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
            enabled,
            strategy,
            policy,
            range,
            ..
        } => {
            row.auto_update_enabled = *enabled;
            strategy.as_str().clone_into(&mut row.auto_update_strategy);
            policy.as_str().clone_into(&mut row.auto_update_policy);
            row.auto_update_range = range.as_ref().map(|r| r.as_str().to_owned());
            row.auto_update_pause = None;
        }
        UsecaseEvent::AutoUpdatePaused {
            rollback,
            reason,
            at,
        } => {
            let pause = AutoUpdatePause {
                reason: reason.clone(),
                rollback: *rollback,
                since: *at,
            };
            row.auto_update_pause = Some(pause_json(&pause));
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
