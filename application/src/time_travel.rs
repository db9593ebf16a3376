//! Time travel: a usecase's read-model state at an earlier instant, rebuilt in
//! memory from the events recorded up to it.
//!
//! The live read models are SQL projections (`usecase_view`, `deployment_view`)
//! queried by the read model. Both ways here fold events through the same fold
//! the projector uses ([`crate::read_models`]) and decode the rows as the read
//! model's queries do, so that the past looks exactly as the live API would have
//! shown it: the same ordinals, the same `updated_by`, the same "latest
//! deployment that is not in error", and timestamps cut to the microseconds that
//! `timestamptz` keeps.
//!
//! - [`state_at`] folds every event of a usecase: the reference, and what tests
//!   compare the other against.
//! - [`usecase_at`] and [`deployment_at`] answer the API. A row of the read
//!   models changes only with the events that name it, so they fold only those:
//!   the usecase row from its registration and the latest event of each type
//!   that sets one of its columns, a deployment row from the events naming that
//!   deployment, its ordinal from how many deployments were requested before it.
//!   A few index lookups ([`HistoryIndex`]), whatever the length of the history.
//!
//! "At an instant" means after the usecase's last event recorded at or before
//! it: a state the usecase really had, with every earlier event of it applied.

use crate::error::AppError;
use crate::ledger::{HistoryIndex, RecordedEvent};
use crate::ports::{DeploymentView, UsecaseView};
use crate::read_models::{decode_auto_update, DeploymentRow, Fact, ReadModels, UsecaseRow, Views};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use shiplog_domain::{DeploymentStatus, UsecaseEvent};
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
        let usecase_id = fold(&mut tables, raw, Views::USECASES_AND_DEPLOYMENTS)?;
        if *target.get_or_insert(usecase_id) != usecase_id {
            return Err(AppError::Internal(format!(
                "time travel got events of more than one usecase ({} at {})",
                raw.aggregate_id, raw.cursor
            )));
        }
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

/// Folds one stored event into `views` of `tables`; returns its usecase.
fn fold(tables: &mut ReadModels, raw: &RecordedEvent, views: Views) -> Result<Uuid, AppError> {
    // Decoded before the id is checked, as the projector does.
    let event = decode(raw)?;
    let usecase_id = aggregate_id(raw)?;
    let fact = Fact {
        cursor: raw.cursor,
        usecase_id,
        sequence: raw.sequence,
        actor: raw.actor(),
        request_id: raw.metadata["request_id"].as_str().unwrap_or_default(),
        reason: raw.metadata["reason"].as_str(),
        event: &event,
    };
    tables
        .apply(&fact, views)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(usecase_id)
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
        usecase: usecase_view(row, deployment)?,
        deployments,
    }))
}

/// A `usecase_view` row with its current deployment, as the read model decodes them.
fn usecase_view(
    row: &UsecaseRow,
    deployment: Option<DeploymentView>,
) -> Result<UsecaseView, AppError> {
    let auto_update = decode_auto_update(
        row.auto_update_enabled,
        &row.auto_update_strategy,
        &row.auto_update_policy,
        row.auto_update_range.as_deref(),
        row.auto_update_pause.as_deref(),
    )
    .map_err(AppError::Internal)?;
    Ok(UsecaseView {
        id: row.id,
        name: row.name.clone(),
        description: row.description.clone(),
        created_at: row.created_at,
        created_by: row.created_by.clone(),
        deployment,
        template: row.template.clone(),
        visibility: row.visibility.as_deref().map(word).transpose()?,
        auto_update: auto_update.0,
        auto_update_paused: auto_update.1,
        deletion_requested: row.deletion_requested,
        owner: row.owner.clone(),
        team: row.team_id,
    })
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

/// The event types whose latest occurrence sets a column of a usecase row: its
/// registration, its deletion, and each flag or setting. Every other event only
/// touches `updated_at`/`updated_by`, which the last event decides.
const USECASE_ROW_TYPES: [&str; 6] = [
    "UsecaseRegistered",
    "UsecaseDeleted",
    "AutoUpdateConfigured",
    "AutoUpdatePaused",
    "DeletionRequested",
    "DeploymentSucceeded",
];

/// Deployments read per round while looking for the newest one not in error.
const CANDIDATES: u32 = 8;

/// One deployment at an instant, or which of the two did not exist then.
#[derive(Debug, Clone, PartialEq)]
pub enum DeploymentAt {
    /// The usecase was not registered yet, or already deleted.
    NoUsecase,
    /// The usecase existed, the deployment not (yet).
    NoDeployment,
    /// The deployment as the live API showed it (boxed: the other answers are empty).
    Found(Box<DeploymentView>),
}

/// The usecase as `GET /api/usecases/{id}` showed it at `at`; `None` when it was
/// not registered yet or already deleted. Reads only the events that decide it.
pub async fn usecase_at(
    history: &dyn HistoryIndex,
    usecase_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Option<UsecaseView>, AppError> {
    let Some(upto) = history.sequence_at(usecase_id, at).await? else {
        return Ok(None);
    };
    let Some(row) = usecase_row(history, usecase_id, upto).await? else {
        return Ok(None);
    };
    // `usecase_select`: nothing until a deployment succeeded, then the newest row not in error.
    let deployment = if row.has_succeeded {
        serving(history, usecase_id, upto).await?
    } else {
        None
    };
    usecase_view(&row, deployment).map(Some)
}

/// One deployment as the live API showed it at `at`. Reads only the events that
/// decide it.
pub async fn deployment_at(
    history: &dyn HistoryIndex,
    usecase_id: Uuid,
    deployment_id: Uuid,
    at: DateTime<Utc>,
) -> Result<DeploymentAt, AppError> {
    let Some(upto) = history.sequence_at(usecase_id, at).await? else {
        return Ok(DeploymentAt::NoUsecase);
    };
    if usecase_row(history, usecase_id, upto).await?.is_none() {
        return Ok(DeploymentAt::NoUsecase);
    }
    let events = history
        .deployment_events(usecase_id, deployment_id, upto)
        .await?;
    let Some(request) = events
        .iter()
        .find(|e| e.event_type == "DeploymentRequested")
    else {
        return Ok(DeploymentAt::NoDeployment);
    };
    let before = history
        .requests_up_to(usecase_id, request.sequence - 1)
        .await?;
    match deployment_row(usecase_id, deployment_id, &events, before)? {
        Some(row) => deployment_view(&row).map(|d| DeploymentAt::Found(Box::new(d))),
        None => Ok(DeploymentAt::NoDeployment),
    }
}

/// The usecase row after event `upto`, folded from the events that set its columns.
async fn usecase_row(
    history: &dyn HistoryIndex,
    usecase_id: Uuid,
    upto: i64,
) -> Result<Option<UsecaseRow>, AppError> {
    let events = history
        .latest_of_types(usecase_id, upto, &USECASE_ROW_TYPES)
        .await?;
    let mut tables = ReadModels::empty();
    for raw in &events {
        if fold(&mut tables, raw, Views::USECASES)? != usecase_id {
            return Err(AppError::Internal(format!(
                "time travel for {usecase_id} got an event of {} at {}",
                raw.aggregate_id, raw.cursor
            )));
        }
    }
    Ok(tables.usecases.get(&usecase_id).cloned())
}

/// The newest deployment not in error after event `upto`, walking the requests
/// back from the newest.
async fn serving(
    history: &dyn HistoryIndex,
    usecase_id: Uuid,
    upto: i64,
) -> Result<Option<DeploymentView>, AppError> {
    // Ordinals count the requests: the newest has as many as there are.
    let mut ordinal = history.requests_up_to(usecase_id, upto).await?;
    let mut before = upto + 1;
    loop {
        let requests = history
            .requests_before(usecase_id, before, CANDIDATES)
            .await?;
        if requests.is_empty() {
            return Ok(None);
        }
        for request in &requests {
            before = request.sequence;
            ordinal -= 1;
            let UsecaseEvent::DeploymentRequested { deployment_id, .. } = decode(request)? else {
                return Err(AppError::Internal(format!(
                    "event at {} is not a DeploymentRequested",
                    request.cursor
                )));
            };
            let events = history
                .deployment_events(usecase_id, deployment_id, upto)
                .await?;
            let row = deployment_row(usecase_id, deployment_id, &events, ordinal)?;
            if let Some(row) = row.filter(|r| r.status != DeploymentStatus::Error.as_str()) {
                return deployment_view(&row).map(Some);
            }
        }
    }
}

/// A deployment's row folded from the events naming it, `before` deployments
/// having been requested before it.
fn deployment_row(
    usecase_id: Uuid,
    deployment_id: Uuid,
    events: &[RecordedEvent],
    before: i64,
) -> Result<Option<DeploymentRow>, AppError> {
    let before = i32::try_from(before)
        .map_err(|_| AppError::Internal(format!("{before} deployments overflow an ordinal")))?;
    let mut tables = ReadModels::empty();
    tables.deployments.load_max_ordinal(usecase_id, before);
    for raw in events {
        fold(&mut tables, raw, Views::DEPLOYMENTS)?;
    }
    Ok(tables.deployments.rows.get(&deployment_id).cloned())
}
