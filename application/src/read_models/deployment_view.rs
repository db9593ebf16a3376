//! `deployment_view`: one row per deployment, with its status and config.

use super::{Fact, FoldError, Table};
use chrono::{DateTime, Utc};
use shiplog_domain::{DeploymentStatus, UsecaseEvent};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// A row of `deployment_view`, column for column.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct DeploymentRow {
    /// The deployment.
    pub id: Uuid,
    /// The usecase that requested it.
    pub usecase_id: Uuid,
    /// 1, 2, 3 … among the usecase's rows: listing order.
    pub ordinal: i32,
    /// Its status, as the API spells it.
    pub status: String,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
    /// Why it failed; empty otherwise.
    pub message: String,
    /// What it runs, as JSON text (the column is `jsonb`).
    pub config: String,
    /// Who requested it.
    pub requested_by: String,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Who made the last change.
    pub updated_by: String,
    /// An undeploy was requested and has not completed.
    pub undeploy_requested: bool,
    /// The deployment that replaced it.
    pub superseded_by: Option<Uuid>,
}

/// What the fold knows of one usecase's deployments.
#[derive(Debug, Clone, Default)]
struct OfUsecase {
    /// The highest ordinal among its rows, once known (0: it has none).
    max_ordinal: Option<i32>,
    /// Its rows held in memory, to delete with it.
    ids: Vec<Uuid>,
}

/// `deployment_view` in memory: rows by id, and per usecase what ordinals need.
#[derive(Debug, Clone)]
pub struct DeploymentTable {
    /// The rows, by deployment id.
    pub rows: Table<Uuid, DeploymentRow>,
    usecases: HashMap<Uuid, OfUsecase>,
    /// Usecases whose rows were all deleted since the last write.
    deleted: HashSet<Uuid>,
}

impl DeploymentTable {
    pub(super) fn new(complete: bool) -> Self {
        Self {
            rows: Table::new(complete),
            usecases: HashMap::new(),
            deleted: HashSet::new(),
        }
    }

    /// Records a stored row (or that `id` has none).
    pub fn load(&mut self, id: Uuid, row: Option<DeploymentRow>) {
        match row {
            // Deleted with its usecase since the last write: gone, though still stored.
            Some(row) if self.deleted.contains(&row.usecase_id) => self.rows.load_gone(id),
            Some(row) => {
                if !self.rows.knows(&id) {
                    self.usecases
                        .entry(row.usecase_id)
                        .or_default()
                        .ids
                        .push(id);
                }
                self.rows.load(id, Some(row));
            }
            None => self.rows.load(id, None),
        }
    }

    /// Records the highest ordinal among `usecase_id`'s stored rows (0: none).
    pub fn load_max_ordinal(&mut self, usecase_id: Uuid, max: i32) {
        self.usecases
            .entry(usecase_id)
            .or_default()
            .max_ordinal
            .get_or_insert(max);
    }

    /// Whether the fold knows the highest ordinal of `usecase_id`'s rows.
    pub fn knows_ordinal(&self, usecase_id: &Uuid) -> bool {
        self.rows.is_complete()
            || self
                .usecases
                .get(usecase_id)
                .is_some_and(|u| u.max_ordinal.is_some())
    }

    /// The usecases whose rows were all deleted since the last write: the rows of
    /// theirs the fold does not hold are deleted by usecase.
    pub fn deleted_usecases(&self) -> impl Iterator<Item = &Uuid> {
        self.deleted.iter()
    }

    /// `usecase_id`'s rows in memory (for a complete table: all of them).
    pub fn of_usecase(&self, usecase_id: Uuid) -> impl Iterator<Item = &DeploymentRow> {
        self.usecases
            .get(&usecase_id)
            .into_iter()
            .flat_map(|u| u.ids.iter())
            .filter_map(|id| self.rows.get(id))
            .filter(move |row| row.usecase_id == usecase_id)
    }

    pub(super) fn written(&mut self) {
        self.rows.written();
        self.deleted.clear();
    }

    pub(super) fn forget(&mut self) {
        self.rows.forget();
        self.usecases.clear();
        self.deleted.clear();
    }

    pub(super) fn apply(&mut self, fact: &Fact<'_>, at: DateTime<Utc>) -> Result<(), FoldError> {
        use DeploymentStatus as S;
        let actor = fact.actor;
        match fact.event {
            UsecaseEvent::DeploymentRequested {
                deployment_id,
                config,
                ..
            } => {
                if !self.rows.knows(deployment_id) {
                    return Err(FoldError::not_loaded(fact, "its deployment row"));
                }
                if self.rows.get(deployment_id).is_some() {
                    return Err(FoldError::refused(
                        fact,
                        "requests a deployment id that already has a row",
                    ));
                }
                let complete = self.rows.is_complete();
                let usecase = self.usecases.entry(fact.usecase_id).or_default();
                // Ordinals count the rows present now, so they restart after a delete.
                let max = match usecase.max_ordinal {
                    Some(max) => max,
                    None if complete => 0,
                    None => return Err(FoldError::not_loaded(fact, "its usecase's ordinals")),
                };
                let config = serde_json::to_string(config).map_err(|err| FoldError::Config {
                    cursor: fact.cursor,
                    event_type: fact.event.type_name(),
                    message: err.to_string(),
                })?;
                usecase.max_ordinal = Some(max + 1);
                usecase.ids.push(*deployment_id);
                self.rows.insert(
                    *deployment_id,
                    DeploymentRow {
                        id: *deployment_id,
                        usecase_id: fact.usecase_id,
                        ordinal: max + 1,
                        status: S::Pending.as_str().to_owned(),
                        created_at: at,
                        message: String::new(),
                        config,
                        requested_by: actor.to_owned(),
                        updated_at: at,
                        updated_by: actor.to_owned(),
                        undeploy_requested: false,
                        superseded_by: None,
                    },
                );
            }
            UsecaseEvent::DeploymentStarted {
                deployment_id,
                digest,
                ..
            } => {
                if let Some(digest) = digest {
                    self.pin(fact, deployment_id, digest)?;
                }
                self.set_status(fact, deployment_id, S::Deploying, None, None, at)?
            }
            UsecaseEvent::DeploymentSucceeded { deployment_id, .. } => {
                self.set_status(fact, deployment_id, S::Deployed, None, None, at)?
            }
            UsecaseEvent::DeploymentFailed {
                deployment_id,
                message,
                ..
            } => self.set_status(fact, deployment_id, S::Error, Some(message), None, at)?,
            UsecaseEvent::DeploymentSuperseded {
                deployment_id,
                superseded_by,
                ..
            } => self.set_status(
                fact,
                deployment_id,
                S::Superseded,
                None,
                Some(*superseded_by),
                at,
            )?,
            UsecaseEvent::DeploymentUndeployed { deployment_id, .. } => {
                if let Some(row) = self.row_mut(fact, deployment_id)? {
                    row.undeploy_requested = false;
                }
                self.set_status(fact, deployment_id, S::Undeployed, None, None, at)?
            }
            UsecaseEvent::UndeployRequested { deployment_id, .. } => {
                // Only the flag and who/when change; the status stays as it was.
                if let Some(row) = self.row_mut(fact, deployment_id)? {
                    row.undeploy_requested = true;
                    row.updated_at = at;
                    actor.clone_into(&mut row.updated_by);
                }
            }
            UsecaseEvent::UsecaseDeleted { .. } => {
                let usecase = self.usecases.entry(fact.usecase_id).or_default();
                for id in std::mem::take(&mut usecase.ids) {
                    if self
                        .rows
                        .get(&id)
                        .is_some_and(|row| row.usecase_id == fact.usecase_id)
                    {
                        self.rows.remove(&id);
                    }
                }
                usecase.max_ordinal = Some(0);
                self.deleted.insert(fact.usecase_id);
            }
            // Restarts, config changes, rollbacks and image updates leave the row alone:
            // the DeploymentRequested of a config change, rollback or update makes its own.
            UsecaseEvent::UsecaseRegistered { .. }
            | UsecaseEvent::RestartRequested { .. }
            | UsecaseEvent::RestartSucceeded { .. }
            | UsecaseEvent::RestartFailed { .. }
            | UsecaseEvent::ConfigChangeRequested { .. }
            | UsecaseEvent::RollbackRequested { .. }
            | UsecaseEvent::AutoUpdateConfigured { .. }
            | UsecaseEvent::AutoUpdatePaused { .. }
            | UsecaseEvent::AutoUpdateRequested { .. }
            | UsecaseEvent::DeletionRequested { .. } => {}
        }
        Ok(())
    }

    /// The row to change, if there is one (an `UPDATE` matching no row changes nothing).
    fn row_mut(
        &mut self,
        fact: &Fact<'_>,
        id: &Uuid,
    ) -> Result<Option<&mut DeploymentRow>, FoldError> {
        if !self.rows.knows(id) {
            return Err(FoldError::not_loaded(fact, "its deployment row"));
        }
        Ok(self.rows.get_mut(id))
    }

    /// The projection's `set_status`: a message or successor, once set, is kept
    /// (`COALESCE`); an unknown deployment is left alone.
    /// Records the digest the deployment's image was resolved to in its config's
    /// `image.digest`, where every reader of the image (status, history, time
    /// travel) finds it, as the projections' `jsonb_set` does.
    fn pin(&mut self, fact: &Fact<'_>, id: &Uuid, digest: &str) -> Result<(), FoldError> {
        let Some(row) = self.row_mut(fact, id)? else {
            return Ok(());
        };
        let not_json = |err: serde_json::Error| FoldError::Config {
            cursor: fact.cursor,
            event_type: fact.event.type_name(),
            message: err.to_string(),
        };
        let mut config: serde_json::Value = serde_json::from_str(&row.config).map_err(not_json)?;
        if let Some(image) = config.get_mut("image").and_then(|i| i.as_object_mut()) {
            image.insert("digest".to_owned(), digest.into());
        }
        row.config = serde_json::to_string(&config).map_err(not_json)?;
        Ok(())
    }

    fn set_status(
        &mut self,
        fact: &Fact<'_>,
        id: &Uuid,
        status: DeploymentStatus,
        message: Option<&str>,
        superseded_by: Option<Uuid>,
        at: DateTime<Utc>,
    ) -> Result<(), FoldError> {
        let Some(row) = self.row_mut(fact, id)? else {
            return Ok(());
        };
        status.as_str().clone_into(&mut row.status);
        if let Some(message) = message {
            message.clone_into(&mut row.message);
        }
        if superseded_by.is_some() {
            row.superseded_by = superseded_by;
        }
        row.updated_at = at;
        fact.actor.clone_into(&mut row.updated_by);
        Ok(())
    }
}
