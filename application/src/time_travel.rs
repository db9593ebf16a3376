//! Time travel: a usecase's read-model state at an earlier instant, rebuilt in
//! memory from the events recorded up to it.
//!
//! The live read models are SQL projections (`usecase_view`, `deployment_view`)
//! queried by the read model. [`state_at`] folds the same events through the
//! same fold the projector uses ([`crate::read_models`]), from empty tables, and
//! decodes the rows as the read model's queries do, so that the past looks
//! exactly as the live API would have shown it: the same ordinals, the same
//! `updated_by`, the same "latest deployment that is not in error", and
//! timestamps cut to the microseconds that `timestamptz` keeps.

use crate::error::AppError;
use crate::ledger::RecordedEvent;
use crate::ports::{DeploymentView, UsecaseView};
use crate::read_models::{DeploymentRow, Fact, ReadModels, Views};
use serde::Deserialize;
use shiplog_domain::{AutoUpdate, DeploymentStatus, UsecaseEvent};
use std::cmp::Reverse;
use uuid::Uuid;

/// What the read models showed for one usecase at some instant: the answer of a time-travel query.
#[derive(Debug, Clone, PartialEq)]
pub struct StateAt {
    /// The usecase as `GET /api/usecases/{id}` showed it.
    pub usecase: UsecaseView,
    /// Its deployments, newest first, as the live deployment listing returns them.
    pub deployments: Vec<DeploymentView>,
}

/// Rebuilds what the read models showed after exactly these events of one usecase.
///
/// `events` are the usecase's stored events up to the instant asked for; they
/// are applied in the global order (by cursor), as the projector applies them.
/// `Ok(None)` when the usecase is not registered (yet) or already deleted by
/// then. A payload that does not deserialize, an aggregate id that is not a
/// UUID, events of more than one usecase, or an event the projections would
/// refuse (a duplicate id, a timestamp `timestamptz` cannot hold) is an
/// `AppError::Internal`: the live read models would be stuck at that event too.
pub fn state_at(events: &[RecordedEvent]) -> Result<Option<StateAt>, AppError> {
    let mut ordered: Vec<&RecordedEvent> = events.iter().collect();
    // The projector follows the global order; a stable sort keeps the caller's order on ties.
    ordered.sort_by_key(|e| e.cursor);
    let mut tables = ReadModels::empty();
    let mut target: Option<Uuid> = None;
    for raw in ordered {
        // Decoded before the id is checked, as the projector does.
        let event = decode(raw)?;
        let usecase_id = aggregate_id(raw)?;
        if *target.get_or_insert(usecase_id) != usecase_id {
            return Err(AppError::Internal(format!(
                "time travel got events of more than one usecase ({} at {})",
                raw.aggregate_id, raw.cursor
            )));
        }
        let fact = Fact {
            cursor: raw.cursor,
            usecase_id,
            sequence: raw.sequence,
            actor: raw.actor(),
            request_id: raw.metadata["request_id"].as_str().unwrap_or_default(),
            event: &event,
        };
        tables
            .apply(&fact, Views::USECASES_AND_DEPLOYMENTS)
            .map_err(|e| AppError::Internal(e.to_string()))?;
    }
    match target {
        Some(usecase_id) => state_of(&tables, usecase_id),
        None => Ok(None),
    }
}

/// The typed event, as the projector decodes it (no upcasting).
fn decode(raw: &RecordedEvent) -> Result<UsecaseEvent, AppError> {
    UsecaseEvent::deserialize(&raw.payload).map_err(|err| {
        AppError::Internal(format!(
            "event at {} ({}) does not deserialize: {err}",
            raw.cursor, raw.event_type
        ))
    })
}

/// The usecase an event belongs to; the projector refuses ids that are not UUIDs.
fn aggregate_id(raw: &RecordedEvent) -> Result<Uuid, AppError> {
    raw.aggregate_id.parse().map_err(|_| {
        AppError::Internal(format!(
            "event at {} ({}) has an aggregate id that is not a UUID: {:?}",
            raw.cursor, raw.event_type, raw.aggregate_id
        ))
    })
}

/// What the read model's queries return for `usecase_id` over these rows, decoded
/// as they decode the columns.
fn state_of(tables: &ReadModels, usecase_id: Uuid) -> Result<Option<StateAt>, AppError> {
    let Some(row) = tables.usecases.get(&usecase_id) else {
        return Ok(None);
    };
    let mut rows: Vec<&DeploymentRow> = tables.deployments.of_usecase(usecase_id).collect();
    rows.sort_by_key(|d| Reverse(d.ordinal));
    let deployments = rows
        .into_iter()
        .map(deployment_view)
        .collect::<Result<Vec<_>, _>>()?;
    // `usecase_select`: nothing until a deployment succeeded, then the newest row not in error.
    let deployment = deployments
        .iter()
        .find(|d| row.has_succeeded && d.status != DeploymentStatus::Error)
        .cloned();
    Ok(Some(StateAt {
        usecase: UsecaseView {
            id: row.id,
            name: row.name.clone(),
            description: row.description.clone(),
            created_at: row.created_at,
            created_by: row.created_by.clone(),
            deployment,
            template: row.template.clone(),
            visibility: row.visibility.as_deref().map(word).transpose()?,
            auto_update: AutoUpdate {
                enabled: row.auto_update_enabled,
                strategy: word(&row.auto_update_strategy)?,
            },
            deletion_requested: row.deletion_requested,
            owner: row.owner.clone(),
            team: row.team_id,
        },
        deployments,
    }))
}

/// A `deployment_view` row as the read model decodes it.
fn deployment_view(row: &DeploymentRow) -> Result<DeploymentView, AppError> {
    Ok(DeploymentView {
        id: row.id,
        usecase_id: row.usecase_id,
        status: word(&row.status)?,
        created_at: row.created_at,
        message: row.message.clone(),
        config: serde_json::from_str(&row.config)
            .map_err(|e| AppError::Internal(format!("deployment {} config: {e}", row.id)))?,
        requested_by: row.requested_by.clone(),
        updated_at: row.updated_at,
        updated_by: row.updated_by.clone(),
        undeploy_requested: row.undeploy_requested,
        superseded_by: row.superseded_by,
    })
}

/// A word stored in a text column, read back through its serde spelling.
fn word<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, AppError> {
    T::deserialize(serde_json::Value::String(raw.to_owned()))
        .map_err(|e| AppError::Internal(format!("read model word {raw:?}: {e}")))
}
