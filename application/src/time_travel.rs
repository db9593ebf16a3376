//! Time travel: a usecase's read-model state at an earlier instant, rebuilt in
//! memory from the events recorded up to it.
//!
//! The live read models are SQL projections (`usecase_view`, `deployment_view`)
//! queried by the read model. [`state_at`] folds the same events through an
//! in-memory copy of those two tables, statement for statement, so that the past
//! looks exactly as the live API would have shown it: the same ordinals, the same
//! `updated_by`, the same "latest deployment that is not in error", and
//! timestamps cut to the microseconds that `timestamptz` keeps.

use crate::error::AppError;
use crate::ledger::RecordedEvent;
use crate::ports::{DeploymentView, UsecaseView};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use shiplog_domain::{AutoUpdate, DeploymentStatus, UsecaseEvent, Visibility};
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
    let mut tables = Tables::default();
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
        tables.apply(usecase_id, raw, &event)?;
    }
    Ok(target.and_then(|usecase_id| tables.into_state(usecase_id)))
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

/// `at` as a `timestamptz` column gives it back: sqlx sends whole microseconds
/// since 2000-01-01, truncated toward that epoch, so nanoseconds are lost.
fn stored(at: DateTime<Utc>, raw: &RecordedEvent) -> Result<DateTime<Utc>, AppError> {
    let out_of_range = || {
        AppError::Internal(format!(
            "event at {} ({}) has a time Postgres cannot store: {at}",
            raw.cursor, raw.event_type
        ))
    };
    let epoch = DateTime::<Utc>::from_timestamp(POSTGRES_EPOCH, 0).ok_or_else(out_of_range)?;
    let micros = (at - epoch).num_microseconds().ok_or_else(out_of_range)?;
    epoch
        .checked_add_signed(chrono::TimeDelta::microseconds(micros))
        .ok_or_else(out_of_range)
}

/// 2000-01-01T00:00:00Z in Unix seconds: the origin of Postgres timestamps.
const POSTGRES_EPOCH: i64 = 946_684_800;

/// A row of `usecase_view`, with only the columns the read model shows
/// (`updated_at`/`updated_by` are kept there but never read back).
struct UsecaseRow {
    id: Uuid,
    name: String,
    description: String,
    created_at: DateTime<Utc>,
    created_by: String,
    has_succeeded: bool,
    template: Option<String>,
    visibility: Option<Visibility>,
    auto_update: AutoUpdate,
    deletion_requested: bool,
    owner: String,
    team: Option<Uuid>,
}

/// A row of `deployment_view`: the view plus the ordinal that orders the listing.
struct DeploymentRow {
    ordinal: i32,
    view: DeploymentView,
}

/// The two projection tables, in memory.
#[derive(Default)]
struct Tables {
    usecases: Vec<UsecaseRow>,
    deployments: Vec<DeploymentRow>,
}

impl Tables {
    /// One event through both projections, in the projector's order.
    fn apply(
        &mut self,
        usecase_id: Uuid,
        raw: &RecordedEvent,
        event: &UsecaseEvent,
    ) -> Result<(), AppError> {
        // Every statement binds the event's time, so one the database refuses fails the event.
        let at = stored(event.at(), raw)?;
        self.apply_usecase_view(usecase_id, raw, event, at)?;
        self.apply_deployment_view(usecase_id, raw, event, at)
    }

    /// Mirrors `UsecaseViewProjection::apply`.
    fn apply_usecase_view(
        &mut self,
        usecase_id: Uuid,
        raw: &RecordedEvent,
        event: &UsecaseEvent,
        at: DateTime<Utc>,
    ) -> Result<(), AppError> {
        match event {
            // The row takes the payload's id, while later statements match the aggregate id.
            UsecaseEvent::UsecaseRegistered {
                usecase_id: id,
                name,
                description,
                template,
                visibility,
                owner,
                team,
                ..
            } => {
                if self.usecases.iter().any(|u| u.id == *id) {
                    return Err(refused(raw, "registers a usecase that already has a row"));
                }
                self.usecases.push(UsecaseRow {
                    id: *id,
                    name: name.as_str().to_owned(),
                    description: description.clone(),
                    created_at: at,
                    created_by: raw.actor().to_owned(),
                    has_succeeded: false,
                    template: template.clone(),
                    visibility: *visibility,
                    auto_update: AutoUpdate::default(),
                    deletion_requested: false,
                    // Usecases registered before owners existed belong to who registered them.
                    owner: owner.clone().unwrap_or_else(|| raw.actor().to_owned()),
                    team: *team,
                });
            }
            UsecaseEvent::UsecaseDeleted { .. } => self.usecases.retain(|u| u.id != usecase_id),
            UsecaseEvent::AutoUpdateConfigured {
                enabled, strategy, ..
            } => {
                for row in self.usecases.iter_mut().filter(|u| u.id == usecase_id) {
                    row.auto_update = AutoUpdate {
                        enabled: *enabled,
                        strategy: *strategy,
                    };
                }
            }
            UsecaseEvent::DeletionRequested { .. } => {
                for row in self.usecases.iter_mut().filter(|u| u.id == usecase_id) {
                    row.deletion_requested = true;
                }
            }
            other => {
                // Once true it stays true, whatever happens to the deployment later.
                let succeeded = matches!(other, UsecaseEvent::DeploymentSucceeded { .. });
                for row in self.usecases.iter_mut().filter(|u| u.id == usecase_id) {
                    row.has_succeeded |= succeeded;
                }
            }
        }
        Ok(())
    }

    /// Mirrors `DeploymentViewProjection::apply`.
    fn apply_deployment_view(
        &mut self,
        usecase_id: Uuid,
        raw: &RecordedEvent,
        event: &UsecaseEvent,
        at: DateTime<Utc>,
    ) -> Result<(), AppError> {
        use DeploymentStatus as S;
        let actor = raw.actor();
        match event {
            UsecaseEvent::DeploymentRequested {
                deployment_id,
                config,
                ..
            } => {
                if self.deployments.iter().any(|d| d.view.id == *deployment_id) {
                    return Err(refused(
                        raw,
                        "requests a deployment id that already has a row",
                    ));
                }
                // Ordinals count the rows present now, so they restart after a delete.
                let ordinal = self
                    .deployments
                    .iter()
                    .filter(|d| d.view.usecase_id == usecase_id)
                    .map(|d| d.ordinal)
                    .max()
                    .unwrap_or(0)
                    + 1;
                self.deployments.push(DeploymentRow {
                    ordinal,
                    view: DeploymentView {
                        id: *deployment_id,
                        usecase_id,
                        status: S::Pending,
                        created_at: at,
                        message: String::new(),
                        config: config.clone(),
                        requested_by: actor.to_owned(),
                        updated_at: at,
                        updated_by: actor.to_owned(),
                        undeploy_requested: false,
                        superseded_by: None,
                    },
                });
            }
            UsecaseEvent::DeploymentStarted { deployment_id, .. } => {
                self.set_status(*deployment_id, S::Deploying, None, None, at, actor)
            }
            UsecaseEvent::DeploymentSucceeded { deployment_id, .. } => {
                self.set_status(*deployment_id, S::Deployed, None, None, at, actor)
            }
            UsecaseEvent::DeploymentFailed {
                deployment_id,
                message,
                ..
            } => self.set_status(*deployment_id, S::Error, Some(message), None, at, actor),
            UsecaseEvent::DeploymentSuperseded {
                deployment_id,
                superseded_by,
                ..
            } => self.set_status(
                *deployment_id,
                S::Superseded,
                None,
                Some(*superseded_by),
                at,
                actor,
            ),
            UsecaseEvent::DeploymentUndeployed { deployment_id, .. } => {
                if let Some(row) = self.deployment_mut(*deployment_id) {
                    row.undeploy_requested = false;
                }
                self.set_status(*deployment_id, S::Undeployed, None, None, at, actor)
            }
            UsecaseEvent::UndeployRequested { deployment_id, .. } => {
                // Only the flag and who/when change; the status stays as it was.
                if let Some(row) = self.deployment_mut(*deployment_id) {
                    row.undeploy_requested = true;
                    row.updated_at = at;
                    row.updated_by = actor.to_owned();
                }
            }
            UsecaseEvent::UsecaseDeleted { .. } => {
                self.deployments.retain(|d| d.view.usecase_id != usecase_id)
            }
            // Restarts, config changes and rollbacks leave the row alone: the
            // DeploymentRequested of a config change or rollback makes its own.
            UsecaseEvent::UsecaseRegistered { .. }
            | UsecaseEvent::RestartRequested { .. }
            | UsecaseEvent::RestartSucceeded { .. }
            | UsecaseEvent::RestartFailed { .. }
            | UsecaseEvent::ConfigChangeRequested { .. }
            | UsecaseEvent::RollbackRequested { .. }
            | UsecaseEvent::AutoUpdateConfigured { .. }
            | UsecaseEvent::DeletionRequested { .. } => {}
        }
        Ok(())
    }

    /// Mirrors the projection's `set_status`: a message or successor, once set, is kept
    /// (`COALESCE`); an unknown deployment is left alone, as an `UPDATE` matching no row.
    fn set_status(
        &mut self,
        deployment_id: Uuid,
        status: DeploymentStatus,
        message: Option<&str>,
        superseded_by: Option<Uuid>,
        at: DateTime<Utc>,
        actor: &str,
    ) {
        let Some(row) = self.deployment_mut(deployment_id) else {
            return;
        };
        row.status = status;
        if let Some(message) = message {
            message.clone_into(&mut row.message);
        }
        if superseded_by.is_some() {
            row.superseded_by = superseded_by;
        }
        row.updated_at = at;
        actor.clone_into(&mut row.updated_by);
    }

    fn deployment_mut(&mut self, id: Uuid) -> Option<&mut DeploymentView> {
        self.deployments
            .iter_mut()
            .map(|d| &mut d.view)
            .find(|d| d.id == id)
    }

    /// What the read model's queries return for `usecase_id` over these rows.
    fn into_state(mut self, usecase_id: Uuid) -> Option<StateAt> {
        let row = self.usecases.into_iter().find(|u| u.id == usecase_id)?;
        self.deployments.retain(|d| d.view.usecase_id == usecase_id);
        self.deployments.sort_by_key(|d| Reverse(d.ordinal));
        // `usecase_select`: nothing until a deployment succeeded, then the newest row not in error.
        let deployment = self
            .deployments
            .iter()
            .find(|d| row.has_succeeded && d.view.status != DeploymentStatus::Error)
            .map(|d| d.view.clone());
        Some(StateAt {
            usecase: UsecaseView {
                id: row.id,
                name: row.name,
                description: row.description,
                created_at: row.created_at,
                created_by: row.created_by,
                deployment,
                template: row.template,
                visibility: row.visibility,
                auto_update: row.auto_update,
                deletion_requested: row.deletion_requested,
                owner: row.owner,
                team: row.team,
            },
            deployments: self.deployments.into_iter().map(|d| d.view).collect(),
        })
    }
}

/// An event the projection's SQL would reject (a constraint violation).
fn refused(raw: &RecordedEvent, what: &str) -> AppError {
    AppError::Internal(format!(
        "event at {} ({}) {what}; the projections would refuse it",
        raw.cursor, raw.event_type
    ))
}
