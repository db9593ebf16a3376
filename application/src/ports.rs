//! The traits the application needs from the outside world; `shiplog-infrastructure` implements them.

use crate::cursor::Cursor;
use crate::error::AppError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use shiplog_domain::{
    AutoUpdate, AutoUpdatePause, DeploymentConfig, DeploymentStatus, TeamCommand, Tier,
    UsecaseCommand, Visibility,
};
use uuid::Uuid;

mod image_resolver;
pub use image_resolver::{ImageResolver, NoResolution, ResolveError};

/// Who asked and why: recorded as metadata on every event the command produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    /// The principal of the token that made the request.
    pub actor: String,
    /// The request id (the `x-request-id` header) the command came with.
    pub request_id: String,
    /// What made a component act: for the process manager, the event; for the
    /// auto-update watcher, its check.
    pub causation: Option<Causation>,
    /// Why, in the words of whoever asked (`X-Shiplog-Reason`), when they said.
    pub reason: Option<String>,
}

/// What a command was caused by, recorded as the `causation` of its events' metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causation {
    /// The event at this cursor (the process manager acts on events).
    Event(Cursor),
    /// An auto-update check, which is not itself an event: `check:<id>`.
    Check(Uuid),
}

impl std::fmt::Display for Causation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Event(cursor) => cursor.fmt(f),
            Self::Check(id) => write!(f, "check:{id}"),
        }
    }
}

/// Runs commands against the event-sourced `Team` aggregate.
#[async_trait]
pub trait TeamCommandBus: Send + Sync {
    /// Loads the team, lets it decide, appends the events with `ctx` as metadata, and
    /// returns the cursor of the team's newest event. A taken name is a `Conflict`.
    async fn execute(
        &self,
        team_id: Uuid,
        command: TeamCommand,
        ctx: &CommandContext,
    ) -> Result<Cursor, AppError>;
}

/// Runs commands against the event-sourced `Usecase` aggregate.
#[async_trait]
pub trait CommandBus: Send + Sync {
    /// Loads the usecase, lets it decide, appends the events with `ctx` as metadata,
    /// and returns the cursor of the usecase's newest event (for read-your-writes).
    /// A duplicate name on registration is a `Conflict`.
    async fn execute(
        &self,
        usecase_id: Uuid,
        command: UsecaseCommand,
        ctx: &CommandContext,
    ) -> Result<Cursor, AppError>;
}

/// A usecase as the read model holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsecaseView {
    /// Its id.
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// Who registered it.
    pub created_by: String,
    /// Null until a deployment succeeded, then the latest deployment that is not in error.
    pub deployment: Option<DeploymentView>,
    /// The catalog template it was created from (seed 002).
    pub template: Option<String>,
    /// Who may reach it; `None` for PhariaOS usecases, which are internal.
    pub visibility: Option<Visibility>,
    /// Whether new images are followed, and how pods are replaced.
    pub auto_update: AutoUpdate,
    /// Why auto-update is paused, while a manual rollback pauses it.
    pub auto_update_paused: Option<AutoUpdatePause>,
    /// A deletion was asked for and has not completed.
    pub deletion_requested: bool,
    /// The subject that owns it.
    pub owner: String,
    /// The team that owns it with its owner, if any.
    pub team: Option<Uuid>,
}

/// A deployment as the read model holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentView {
    /// Its id.
    pub id: Uuid,
    /// The usecase it belongs to.
    pub usecase_id: Uuid,
    /// Where it is in the lifecycle.
    pub status: DeploymentStatus,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
    /// Why it failed; empty otherwise.
    pub message: String,
    /// What it runs.
    pub config: DeploymentConfig,
    /// Who requested it.
    pub requested_by: String,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
    /// Who (or which component) made the last change.
    pub updated_by: String,
    /// An undeploy was requested and has not completed yet.
    pub undeploy_requested: bool,
    /// The deployment that replaced it, when superseded.
    pub superseded_by: Option<Uuid>,
}

/// A usecase with the two deployments seed 002's status is derived from.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformView {
    /// The usecase.
    pub usecase: UsecaseView,
    /// Its newest deployment, whatever its status.
    pub latest: Option<DeploymentView>,
    /// Its deployed deployment that is not being undeployed.
    pub serving: Option<DeploymentView>,
}

/// One change of a usecase as its history shows it: what was asked, by whom, and
/// how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Revision {
    /// The change's event sequence in the usecase: increasing, never reused.
    pub revision: i64,
    /// `deploy`, `config`, `rollback`, `restart`, `autoUpdate` or `delete`.
    pub kind: String,
    /// When it was asked.
    pub at: DateTime<Utc>,
    /// Who asked.
    pub actor: String,
    /// The request it came with.
    pub request_id: String,
    /// The deployment it started (deploy, config, rollback) or acted on (restart).
    pub deployment_id: Option<Uuid>,
    /// The restart's id, for restarts.
    pub restart_id: Option<Uuid>,
    /// The image of the deployment it started.
    pub image: Option<String>,
    /// How it ended so far: the deployment's status (`pending` … `deployed`,
    /// `error`, `superseded`, `undeployed`), or a restart's (`pending`,
    /// `succeeded`, `failed`); `None` for settings changes.
    pub status: Option<String>,
    /// Why it failed, when it did.
    pub message: String,
    /// For a config change: the deployment whose config was changed.
    pub based_on: Option<Uuid>,
    /// For a rollback: the deployment whose config was restored.
    pub rollback_of: Option<Uuid>,
    /// For a config change: the names of the variables set (values stay out of history).
    pub variables: Vec<String>,
    /// For an auto-update change: the new settings.
    pub auto_update: Option<AutoUpdate>,
    /// Why, when whoever asked said so (`X-Shiplog-Reason`).
    pub reason: Option<String>,
}

/// Which usecases a caller may see in a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Visible {
    /// Every usecase (admins).
    #[default]
    All,
    /// Those a subject owns and those of its teams.
    Of {
        /// The subject.
        subject: String,
        /// Its teams.
        teams: Vec<Uuid>,
    },
}

/// A team as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamView {
    /// Its id.
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// Its tier.
    pub tier: Tier,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Who changed it last.
    pub updated_by: String,
}

/// A team's deployments over a time range, from the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageCounts {
    /// Deployments created in the range.
    pub created: u64,
    /// Deployments deleted in the range.
    pub deleted: u64,
    /// Deployments that existed at the end of the range.
    pub running: u64,
}

/// Which usecases to list and which page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsecaseFilter {
    /// Only those the caller may see.
    pub visible: Visible,
    /// Only those of this team.
    pub team: Option<Uuid>,
    /// Only names containing this text (case-insensitive).
    pub name: Option<String>,
    /// Page size.
    pub limit: u32,
    /// Continue after this opaque page token.
    pub after: Option<String>,
}

/// One page of a listing and the token for the next one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The items, in listing order.
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Queries over the projections, and the wait that gives read-your-writes.
#[async_trait]
pub trait ReadModel: Send + Sync {
    /// One usecase, unless unknown or deleted.
    async fn usecase(&self, id: Uuid) -> Result<Option<UsecaseView>, AppError>;
    /// Usecases in registration order.
    async fn usecases(&self, filter: &UsecaseFilter) -> Result<Page<UsecaseView>, AppError>;
    /// Deployments of a usecase, newest first.
    async fn deployments(
        &self,
        usecase_id: Uuid,
        limit: u32,
        after: Option<String>,
    ) -> Result<Page<DeploymentView>, AppError>;
    /// One deployment of a usecase.
    async fn deployment(
        &self,
        usecase_id: Uuid,
        deployment_id: Uuid,
    ) -> Result<Option<DeploymentView>, AppError>;
    /// The usecase's deployed deployment that is not being undeployed, if any.
    async fn serving(&self, usecase_id: Uuid) -> Result<Option<DeploymentView>, AppError>;
    /// The live usecase named exactly `name`, with its newest and serving deployments.
    async fn platform_by_name(&self, name: &str) -> Result<Option<PlatformView>, AppError>;
    /// Every live usecase the caller may see (of `team` only, when given), in
    /// registration order, with its newest and serving deployments.
    async fn platform_list(
        &self,
        visible: &Visible,
        team: Option<Uuid>,
    ) -> Result<Vec<PlatformView>, AppError>;
    /// One team.
    async fn team(&self, id: Uuid) -> Result<Option<TeamView>, AppError>;
    /// Teams, by name: all, or those with the ids in `only`.
    async fn teams(&self, only: Option<&[Uuid]>) -> Result<Vec<TeamView>, AppError>;
    /// The teams named in `names` or with an id in `ids` (an OIDC token's teams claim),
    /// found by index, so a request costs the same however many teams exist.
    async fn teams_named(&self, names: &[String], ids: &[Uuid]) -> Result<Vec<TeamView>, AppError>;
    /// The team's deployments created and deleted in `[from, to)`, and existing at `to`.
    async fn team_usage(
        &self,
        team: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<UsageCounts, AppError>;
    /// Up to `limit` changes of a live usecase after revision `after`, oldest first.
    async fn revisions(
        &self,
        usecase_id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Revision>, AppError>;
    /// Returns once every projection has applied the event at `cursor` (or a bounded
    /// time has passed: the write is durable either way, only the view may lag).
    async fn wait_for(&self, cursor: Cursor);
}
