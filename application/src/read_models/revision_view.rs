//! `revision_view`: one row per change of a usecase, with how it ended so far
//! (seed 002's deployment history). How a deployment it started is doing is not
//! copied here on every outcome event: the history query joins `deployment_view`,
//! which has it, so most events (outcomes) cost this read model nothing.

use super::{Fact, FoldError, Table};
use chrono::{DateTime, Utc};
use shiplog_domain::{AutoUpdate, UpdatePolicy, UsecaseEvent};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// A row of `revision_view`, column for column.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct RevisionRow {
    /// The usecase changed.
    pub usecase_id: Uuid,
    /// The change's event sequence.
    pub revision: i64,
    /// deploy, config, rollback, restart, autoUpdate or delete.
    pub kind: String,
    /// When it was asked for.
    pub at: DateTime<Utc>,
    /// Who asked.
    pub actor: String,
    /// The request it came from.
    pub request_id: String,
    /// The deployment it started (or restarted).
    pub deployment_id: Option<Uuid>,
    /// The restart, for a restart.
    pub restart_id: Option<Uuid>,
    /// The image deployed.
    pub image: Option<String>,
    /// How a restart ended so far.
    pub status: Option<String>,
    /// Why a restart failed.
    pub message: String,
    /// The deployment a config change started from.
    pub based_on: Option<Uuid>,
    /// The deployment a rollback restored.
    pub rollback_of: Option<Uuid>,
    /// The names of a config change's variables.
    pub variables: Vec<String>,
    /// The auto-update settings chosen, as JSON text (the column is `jsonb`).
    pub auto_update: Option<String>,
    /// Why, when whoever asked said so.
    pub reason: Option<String>,
}

/// The primary key of `revision_view`: (usecase, revision).
pub type RevisionKey = (Uuid, i64);

/// `revision_view` in memory: rows by key, and the lookups its updates use.
#[derive(Debug, Clone)]
pub struct RevisionTable {
    /// The rows, by (usecase, revision).
    pub rows: Table<RevisionKey, RevisionRow>,
    /// Rows in memory by the deployment they started (restarts left out).
    by_deployment: HashMap<Uuid, Vec<RevisionKey>>,
    /// Rows in memory by restart.
    by_restart: HashMap<Uuid, Vec<RevisionKey>>,
    /// Rows in memory by usecase, to delete with it.
    by_usecase: HashMap<Uuid, Vec<i64>>,
    /// Deployments (of config changes and rollbacks) whose every row is in memory.
    deployments_known: HashSet<Uuid>,
    /// Restarts (of outcomes) whose every row is in memory.
    restarts_known: HashSet<Uuid>,
    /// Usecases whose rows were all deleted since the last write.
    deleted: HashSet<Uuid>,
}

impl RevisionTable {
    pub(super) fn new(complete: bool) -> Self {
        Self {
            rows: Table::new(complete),
            by_deployment: HashMap::new(),
            by_restart: HashMap::new(),
            by_usecase: HashMap::new(),
            deployments_known: HashSet::new(),
            restarts_known: HashSet::new(),
            deleted: HashSet::new(),
        }
    }

    /// Records the stored rows of these deployments and restarts: `rows` are every
    /// row the table holds of them.
    pub fn load(
        &mut self,
        deployments: impl IntoIterator<Item = Uuid>,
        restarts: impl IntoIterator<Item = Uuid>,
        rows: Vec<RevisionRow>,
    ) {
        for row in rows {
            let key = (row.usecase_id, row.revision);
            if self.rows.knows(&key) {
                continue;
            }
            if self.deleted.contains(&row.usecase_id) {
                // Deleted with its usecase since the last write: gone, though still stored.
                self.rows.load_gone(key);
                continue;
            }
            self.index(&row);
            self.rows.load(key, Some(row));
        }
        self.deployments_known.extend(deployments);
        self.restarts_known.extend(restarts);
    }

    /// Whether every row of `deployment_id` (without a restart) is in memory.
    pub fn knows_deployment(&self, deployment_id: &Uuid) -> bool {
        self.rows.is_complete() || self.deployments_known.contains(deployment_id)
    }

    /// Whether every row of `restart_id` is in memory.
    pub fn knows_restart(&self, restart_id: &Uuid) -> bool {
        self.rows.is_complete() || self.restarts_known.contains(restart_id)
    }

    /// The usecases whose rows were all deleted since the last write.
    pub fn deleted_usecases(&self) -> impl Iterator<Item = &Uuid> {
        self.deleted.iter()
    }

    pub(super) fn written(&mut self) {
        self.rows.written();
        self.deleted.clear();
    }

    pub(super) fn forget(&mut self) {
        self.rows.forget();
        self.by_deployment.clear();
        self.by_restart.clear();
        self.by_usecase.clear();
        self.deployments_known.clear();
        self.restarts_known.clear();
        self.deleted.clear();
    }

    fn index(&mut self, row: &RevisionRow) {
        let key = (row.usecase_id, row.revision);
        match (row.deployment_id, row.restart_id) {
            (_, Some(restart)) => self.by_restart.entry(restart).or_default().push(key),
            (Some(deployment), None) => self.by_deployment.entry(deployment).or_default().push(key),
            (None, None) => {}
        }
        self.by_usecase
            .entry(row.usecase_id)
            .or_default()
            .push(row.revision);
    }

    fn insert(&mut self, fact: &Fact<'_>, row: RevisionRow) -> Result<(), FoldError> {
        let key = (row.usecase_id, row.revision);
        // A stored row under this key that is not in memory makes the INSERT fail, as it did.
        if self.rows.get(&key).is_some() {
            return Err(FoldError::refused(
                fact,
                "records a change whose revision already has a row",
            ));
        }
        self.index(&row);
        self.rows.insert(key, row);
        Ok(())
    }

    /// Applies `change` to every row that `keys` lists and that still matches.
    fn update_each(
        &mut self,
        keys: Option<&Vec<RevisionKey>>,
        matches: impl Fn(&RevisionRow) -> bool,
        change: impl Fn(&mut RevisionRow),
    ) {
        for key in keys.into_iter().flatten() {
            // The index may name rows deleted (or replaced) since: check the row itself.
            if self.rows.get(key).is_some_and(&matches) {
                if let Some(row) = self.rows.get_mut(key) {
                    change(row);
                }
            }
        }
    }

    pub(super) fn apply(&mut self, fact: &Fact<'_>, at: DateTime<Utc>) -> Result<(), FoldError> {
        let change = |kind: &str| RevisionRow {
            usecase_id: fact.usecase_id,
            revision: fact.sequence,
            kind: kind.to_owned(),
            at,
            actor: fact.actor.to_owned(),
            request_id: fact.request_id.to_owned(),
            deployment_id: None,
            restart_id: None,
            image: None,
            status: None,
            message: String::new(),
            based_on: None,
            rollback_of: None,
            variables: Vec::new(),
            auto_update: None,
            reason: fact.reason.map(str::to_owned),
        };
        match fact.event {
            UsecaseEvent::DeploymentRequested {
                deployment_id,
                config,
                ..
            } => {
                let row = RevisionRow {
                    deployment_id: Some(*deployment_id),
                    image: Some(config.image.to_string()),
                    ..change("deploy")
                };
                self.insert(fact, row)?
            }
            // Both follow their DeploymentRequested in the same commit: they say what it was.
            UsecaseEvent::ConfigChangeRequested {
                deployment_id,
                based_on,
                env,
                ..
            } => {
                let names: Vec<String> = env.keys().cloned().collect();
                self.explain_request(fact, deployment_id, |row| {
                    "config".clone_into(&mut row.kind);
                    row.based_on = Some(*based_on);
                    row.variables.clone_from(&names);
                })?
            }
            UsecaseEvent::RollbackRequested {
                deployment_id,
                rollback_of,
                ..
            } => self.explain_request(fact, deployment_id, |row| {
                "rollback".clone_into(&mut row.kind);
                row.rollback_of = Some(*rollback_of);
            })?,
            UsecaseEvent::RestartRequested {
                restart_id,
                deployment_id,
                ..
            } => {
                let row = RevisionRow {
                    deployment_id: Some(*deployment_id),
                    restart_id: Some(*restart_id),
                    status: Some("pending".to_owned()),
                    ..change("restart")
                };
                self.insert(fact, row)?
            }
            UsecaseEvent::AutoUpdateConfigured {
                enabled,
                strategy,
                policy,
                range,
                ..
            } => {
                let settings = AutoUpdate {
                    enabled: *enabled,
                    strategy: *strategy,
                    policy: UpdatePolicy::recorded(*policy, range.clone()),
                };
                let row = RevisionRow {
                    auto_update: Some(settings_json(&settings)),
                    ..change("autoUpdate")
                };
                self.insert(fact, row)?
            }
            UsecaseEvent::AutoUpdatePaused { reason, .. } => {
                let row = RevisionRow {
                    message: reason.clone(),
                    ..change("autoUpdatePaused")
                };
                self.insert(fact, row)?
            }
            // It follows its DeploymentRequested in the same commit: an image update.
            UsecaseEvent::AutoUpdateRequested {
                deployment_id,
                based_on,
                ..
            } => self.explain_request(fact, deployment_id, |row| {
                "imageUpdate".clone_into(&mut row.kind);
                row.based_on = Some(*based_on);
            })?,
            UsecaseEvent::DeletionRequested { .. } => self.insert(fact, change("delete"))?,
            UsecaseEvent::RestartSucceeded { restart_id, .. } => {
                self.restart_outcome(fact, restart_id, "succeeded", None)?
            }
            UsecaseEvent::RestartFailed {
                restart_id,
                message,
                ..
            } => self.restart_outcome(fact, restart_id, "failed", Some(message))?,
            UsecaseEvent::UsecaseDeleted { .. } => {
                let usecase_id = fact.usecase_id;
                for revision in self.by_usecase.remove(&usecase_id).unwrap_or_default() {
                    self.rows.remove(&(usecase_id, revision));
                }
                self.deleted.insert(usecase_id);
            }
            // A deployment's outcomes are read from deployment_view when the history is.
            UsecaseEvent::UsecaseRegistered { .. }
            | UsecaseEvent::UndeployRequested { .. }
            | UsecaseEvent::DeploymentStarted { .. }
            | UsecaseEvent::DeploymentSucceeded { .. }
            | UsecaseEvent::DeploymentFailed { .. }
            | UsecaseEvent::DeploymentSuperseded { .. }
            | UsecaseEvent::DeploymentUndeployed { .. } => {}
        }
        Ok(())
    }

    /// An event that says what the `DeploymentRequested` before it in the same commit
    /// was (a config change, a rollback, an image update): `change` its deployment's row.
    fn explain_request(
        &mut self,
        fact: &Fact<'_>,
        deployment_id: &Uuid,
        change: impl Fn(&mut RevisionRow),
    ) -> Result<(), FoldError> {
        if !self.knows_deployment(deployment_id) {
            return Err(FoldError::not_loaded(fact, "its deployment's changes"));
        }
        let keys = self.by_deployment.get(deployment_id).cloned();
        self.update_each(
            keys.as_ref(),
            |row| row.deployment_id == Some(*deployment_id) && row.restart_id.is_none(),
            change,
        );
        Ok(())
    }

    /// The restart `restart_id` ended as `status`: every row of it says so.
    fn restart_outcome(
        &mut self,
        fact: &Fact<'_>,
        restart_id: &Uuid,
        status: &str,
        message: Option<&str>,
    ) -> Result<(), FoldError> {
        if !self.knows_restart(restart_id) {
            return Err(FoldError::not_loaded(fact, "its restart's changes"));
        }
        let keys = self.by_restart.get(restart_id).cloned();
        self.update_each(
            keys.as_ref(),
            |row| row.restart_id == Some(*restart_id),
            |row| {
                row.status = Some(status.to_owned());
                if let Some(message) = message {
                    message.clone_into(&mut row.message);
                }
            },
        );
        Ok(())
    }
}

/// Auto-update settings as a history row's JSON column holds them (and `Revision` reads them).
pub fn settings_json(settings: &AutoUpdate) -> String {
    let mut json = serde_json::json!({
        "enabled": settings.enabled,
        "strategy": settings.strategy,
        "policy": {"kind": settings.policy.kind()},
    });
    if let Some(range) = settings.policy.range() {
        json["policy"]["range"] = serde_json::Value::String(range.as_str().to_owned());
    }
    json.to_string()
}
