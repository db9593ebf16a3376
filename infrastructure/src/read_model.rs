//! Queries over `usecase_view` and `deployment_view`.

use crate::db::app_error;
use crate::projections::Projector;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shiplog_application::read_models::decode_auto_update;
use shiplog_application::read_models::TeamRow;
use shiplog_application::{
    AppError, Cursor, DeploymentView, Page, PlatformView, ReadModel, Revision, TeamView,
    UsageCounts, UsecaseFilter, UsecaseView, Visible,
};
use shiplog_domain::{DeploymentStatus, InvalidField};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use std::sync::{Arc, LazyLock};
use uuid::Uuid;

/// The read side of the API.
pub struct PgReadModel {
    pool: PgPool,
    projector: Arc<Projector>,
}

impl PgReadModel {
    /// Reads from `pool`; waits on `projector` for read-your-writes.
    pub fn new(pool: PgPool, projector: Arc<Projector>) -> Self {
        Self { pool, projector }
    }
}

/// The columns of a `deployment_view` row aliased `alias`, each prefixed `{alias}_`.
fn deployment_columns(alias: &str) -> String {
    [
        "id",
        "usecase_id",
        "status",
        "created_at",
        "message",
        "config",
        "requested_by",
        "updated_at",
        "updated_by",
        "undeploy_requested",
        "superseded_by",
        "ordinal",
    ]
    .iter()
    .map(|c| format!("{alias}.{c} AS {alias}_{c}"))
    .collect::<Vec<_>>()
    .join(", ")
}

static DEPLOYMENT_COLUMNS: LazyLock<String> = LazyLock::new(|| deployment_columns("d"));

/// The usecase's own columns.
const USECASE_COLUMNS: &str =
    "u.id, u.registered_at_position, u.name, u.description, u.created_at, u.created_by,
    u.template, u.visibility, u.auto_update_enabled, u.auto_update_strategy, u.deletion_requested,
    u.auto_update_policy, u.auto_update_range, u.auto_update_pause::text AS auto_update_pause,
    u.owner, u.team_id";

/// The part of a `WHERE` that keeps what a caller may see: `$subject` is NULL for
/// admins (everything), else its own and its teams' (`$teams`); `$team` narrows to one team.
fn access_condition(subject: usize, teams: usize, team: usize) -> String {
    format!(
        "(${subject}::text IS NULL OR u.owner = ${subject} OR u.team_id = ANY(${teams}::uuid[]))
         AND (${team}::uuid IS NULL OR u.team_id = ${team})"
    )
}

/// The binds of [`access_condition`]: the subject (none for all) and its teams.
fn access_binds(visible: &Visible) -> (Option<String>, Vec<Uuid>) {
    match visible {
        Visible::All => (None, Vec::new()),
        Visible::Of { subject, teams } => (Some(subject.clone()), teams.clone()),
    }
}

/// Once a deployment has succeeded, the usecase's latest deployment not in error
/// (`d_`): the PhariaOS API's `deployment` field.
const PHARIA_DEPLOYMENT_JOIN: &str = "LEFT JOIN LATERAL (
        SELECT * FROM deployment_view d
         WHERE d.usecase_id = u.id AND u.has_succeeded AND d.status <> 'error'
         ORDER BY d.ordinal DESC LIMIT 1) d ON true";

/// The usecase columns plus its PhariaOS `deployment`.
fn usecase_select() -> String {
    format!(
        "SELECT {USECASE_COLUMNS}, {} FROM usecase_view u {PHARIA_DEPLOYMENT_JOIN}",
        *DEPLOYMENT_COLUMNS
    )
}

/// As [`usecase_select`], plus the newest deployment (`l_`) and the serving one
/// (`s_`): what seed 002's status is derived from. Each is one step down an index.
fn platform_select() -> String {
    format!(
        "SELECT {USECASE_COLUMNS}, {}, {}, {}
           FROM usecase_view u {PHARIA_DEPLOYMENT_JOIN}
           LEFT JOIN LATERAL (
                SELECT * FROM deployment_view l WHERE l.usecase_id = u.id
                 ORDER BY l.ordinal DESC LIMIT 1) l ON true
           LEFT JOIN LATERAL (
                SELECT * FROM deployment_view s
                 WHERE s.usecase_id = u.id AND s.status = 'deployed' AND NOT s.undeploy_requested
                 ORDER BY s.ordinal DESC LIMIT 1) s ON true",
        *DEPLOYMENT_COLUMNS,
        deployment_columns("l"),
        deployment_columns("s"),
    )
}

fn status(raw: &str) -> Result<DeploymentStatus, sqlx::Error> {
    word(raw)
}

fn deployment(row: &PgRow) -> Result<Option<DeploymentView>, sqlx::Error> {
    prefixed_deployment(row, "d")
}

/// The deployment of the columns prefixed `{p}_`, if the row has one.
fn prefixed_deployment(row: &PgRow, p: &str) -> Result<Option<DeploymentView>, sqlx::Error> {
    let col = |c: &str| format!("{p}_{c}");
    let Some(id) = row.try_get::<Option<Uuid>, _>(col("id").as_str())? else {
        return Ok(None);
    };
    let config: serde_json::Value = row.try_get(col("config").as_str())?;
    Ok(Some(DeploymentView {
        id,
        usecase_id: row.try_get(col("usecase_id").as_str())?,
        status: status(row.try_get(col("status").as_str())?)?,
        created_at: row.try_get(col("created_at").as_str())?,
        message: row.try_get(col("message").as_str())?,
        config: serde_json::from_value(config).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        requested_by: row.try_get(col("requested_by").as_str())?,
        updated_at: row.try_get(col("updated_at").as_str())?,
        updated_by: row.try_get(col("updated_by").as_str())?,
        undeploy_requested: row.try_get(col("undeploy_requested").as_str())?,
        superseded_by: row.try_get(col("superseded_by").as_str())?,
    }))
}

/// A word stored in a text column, read back through its serde spelling.
fn word<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, sqlx::Error> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned()))
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn revision(row: &PgRow) -> Result<Revision, sqlx::Error> {
    let auto_update: Option<serde_json::Value> = row.try_get("auto_update")?;
    Ok(Revision {
        revision: row.try_get("revision")?,
        kind: row.try_get("kind")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        request_id: row.try_get("request_id")?,
        deployment_id: row.try_get("deployment_id")?,
        restart_id: row.try_get("restart_id")?,
        image: row.try_get("image")?,
        status: row.try_get("status")?,
        message: row.try_get("message")?,
        based_on: row.try_get("based_on")?,
        rollback_of: row.try_get("rollback_of")?,
        variables: row.try_get("variables")?,
        auto_update: auto_update
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        reason: row.try_get("reason")?,
    })
}

const TEAM_SELECT: &str =
    "SELECT id, name, tier, created_at, created_by, updated_at, updated_by FROM team_view";

/// `team_view` rows as the API shows them.
fn team_views(rows: Vec<TeamRow>) -> Result<Vec<TeamView>, AppError> {
    rows.into_iter()
        .map(team)
        .collect::<Result<_, _>>()
        .map_err(app_error)
}

/// A `team_view` row as the API shows it (its tier read back from its word).
fn team(row: TeamRow) -> Result<TeamView, sqlx::Error> {
    Ok(TeamView {
        id: row.id,
        name: row.name,
        tier: word(&row.tier)?,
        created_at: row.created_at,
        created_by: row.created_by,
        updated_at: row.updated_at,
        updated_by: row.updated_by,
    })
}

fn platform(row: &PgRow) -> Result<PlatformView, sqlx::Error> {
    Ok(PlatformView {
        usecase: usecase(row)?,
        latest: prefixed_deployment(row, "l")?,
        serving: prefixed_deployment(row, "s")?,
    })
}

fn usecase(row: &PgRow) -> Result<UsecaseView, sqlx::Error> {
    let auto_update = decode_auto_update(
        row.try_get("auto_update_enabled")?,
        row.try_get("auto_update_strategy")?,
        row.try_get("auto_update_policy")?,
        row.try_get("auto_update_range")?,
        row.try_get("auto_update_pause")?,
    )
    .map_err(|e| sqlx::Error::Decode(e.into()))?;
    Ok(UsecaseView {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        deployment: deployment(row)?,
        template: row.try_get("template")?,
        visibility: row
            .try_get::<Option<String>, _>("visibility")?
            .as_deref()
            .map(word)
            .transpose()?,
        auto_update: auto_update.0,
        auto_update_paused: auto_update.1,
        deletion_requested: row.try_get("deletion_requested")?,
        owner: row.try_get("owner")?,
        team: row.try_get("team_id")?,
    })
}

/// A page token as shiplog writes them: decimal digits only, at most `digits` of them
/// (so that it fits its type); the OpenAPI document states the same pattern.
fn page_token<T: std::str::FromStr>(token: &str, digits: usize) -> Result<T, AppError> {
    if token.is_empty() || token.len() > digits || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid_page_token());
    }
    token.parse().map_err(|_| invalid_page_token())
}

fn invalid_page_token() -> AppError {
    AppError::Invalid(InvalidField::new(
        "after",
        "is not a page token from a previous response",
    ))
}

/// Escapes LIKE wildcards so a filter matches the text literally.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The deployment of a row that may be missing.
fn optional_deployment(
    row: Option<sqlx::postgres::PgRow>,
) -> Result<Option<DeploymentView>, AppError> {
    Ok(row
        .as_ref()
        .map(deployment)
        .transpose()
        .map_err(app_error)?
        .flatten())
}

#[async_trait]
impl ReadModel for PgReadModel {
    async fn usecase(&self, id: Uuid) -> Result<Option<UsecaseView>, AppError> {
        let row = sqlx::query(&format!("{} WHERE u.id = $1", usecase_select()))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(app_error)?;
        row.as_ref().map(usecase).transpose().map_err(app_error)
    }

    async fn usecases(&self, filter: &UsecaseFilter) -> Result<Page<UsecaseView>, AppError> {
        // The page token is the last item's registration position: registration order, stable.
        let after: Option<i64> = filter
            .after
            .as_deref()
            .map(|t| page_token(t, 18))
            .transpose()?;
        let (subject, teams) = access_binds(&filter.visible);
        let rows = sqlx::query(&format!(
            "{} WHERE ($1::text IS NULL OR u.name ILIKE $1)
                  AND ($2::bigint IS NULL OR u.registered_at_position > $2)
                  AND {}
                ORDER BY u.registered_at_position
                LIMIT $3",
            usecase_select(),
            access_condition(4, 5, 6)
        ))
        .bind(filter.name.as_deref().map(like_pattern))
        .bind(after)
        .bind(i64::from(filter.limit) + 1)
        .bind(subject)
        .bind(teams)
        .bind(filter.team)
        .fetch_all(&self.pool)
        .await
        .map_err(app_error)?;
        let mut items = rows
            .iter()
            .map(usecase)
            .collect::<Result<Vec<_>, _>>()
            .map_err(app_error)?;
        let next = if items.len() > filter.limit as usize {
            items.truncate(filter.limit as usize);
            let last: i64 = rows[filter.limit as usize - 1]
                .try_get("registered_at_position")
                .map_err(app_error)?;
            Some(last.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn deployments(
        &self,
        usecase_id: Uuid,
        limit: u32,
        after: Option<String>,
    ) -> Result<Page<DeploymentView>, AppError> {
        let after: Option<i32> = after.map(|t| page_token(&t, 9)).transpose()?;
        let rows = sqlx::query(&format!(
            "SELECT {} FROM deployment_view d
              WHERE d.usecase_id = $1 AND ($2::int IS NULL OR d.ordinal < $2)
              ORDER BY d.ordinal DESC LIMIT $3",
            *DEPLOYMENT_COLUMNS
        ))
        .bind(usecase_id)
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(app_error)?;
        let mut items = Vec::with_capacity(rows.len());
        let mut ordinals = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(d) = deployment(row).map_err(app_error)? {
                items.push(d);
                ordinals.push(row.try_get::<i32, _>("d_ordinal").map_err(app_error)?);
            }
        }
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            ordinals.get(limit as usize - 1).map(|o| o.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn deployment(
        &self,
        usecase_id: Uuid,
        deployment_id: Uuid,
    ) -> Result<Option<DeploymentView>, AppError> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM deployment_view d WHERE d.usecase_id = $1 AND d.id = $2",
            *DEPLOYMENT_COLUMNS
        ))
        .bind(usecase_id)
        .bind(deployment_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(app_error)?;
        optional_deployment(row)
    }

    async fn serving(&self, usecase_id: Uuid) -> Result<Option<DeploymentView>, AppError> {
        let row = sqlx::query(&format!("SELECT {} FROM deployment_view d WHERE d.usecase_id = $1 AND d.status = 'deployed' AND NOT d.undeploy_requested LIMIT 1", *DEPLOYMENT_COLUMNS))
            .bind(usecase_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(app_error)?;
        optional_deployment(row)
    }

    async fn platform_by_name(&self, name: &str) -> Result<Option<PlatformView>, AppError> {
        let row = sqlx::query(&format!("{} WHERE u.name = $1", platform_select()))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(app_error)?;
        row.as_ref().map(platform).transpose().map_err(app_error)
    }

    async fn platform_list(
        &self,
        visible: &Visible,
        team: Option<Uuid>,
    ) -> Result<Vec<PlatformView>, AppError> {
        let (subject, teams) = access_binds(visible);
        let rows = sqlx::query(&format!(
            "{} WHERE {} ORDER BY u.registered_at_position",
            platform_select(),
            access_condition(1, 2, 3)
        ))
        .bind(subject)
        .bind(teams)
        .bind(team)
        .fetch_all(&self.pool)
        .await
        .map_err(app_error)?;
        rows.iter()
            .map(platform)
            .collect::<Result<_, _>>()
            .map_err(app_error)
    }

    async fn revisions(
        &self,
        usecase_id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Revision>, AppError> {
        // A deployment's outcome is deployment_view's; a restart's is kept on its row.
        let rows = sqlx::query(
            "SELECT r.revision, r.kind, r.at, r.actor, r.request_id, r.deployment_id, r.restart_id,
                    r.image, COALESCE(r.status, d.status) AS status,
                    CASE WHEN r.restart_id IS NULL AND r.deployment_id IS NOT NULL
                         THEN COALESCE(d.message, '') ELSE r.message END AS message,
                    r.based_on, r.rollback_of, r.variables, r.auto_update, r.reason
               FROM revision_view r
               LEFT JOIN deployment_view d ON d.id = r.deployment_id AND r.restart_id IS NULL
              WHERE r.usecase_id = $1 AND ($2::bigint IS NULL OR r.revision > $2)
              ORDER BY r.revision LIMIT $3",
        )
        .bind(usecase_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(app_error)?;
        rows.iter()
            .map(revision)
            .collect::<Result<_, _>>()
            .map_err(app_error)
    }

    async fn team(&self, id: Uuid) -> Result<Option<TeamView>, AppError> {
        let row: Option<TeamRow> = sqlx::query_as(&format!("{TEAM_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(app_error)?;
        row.map(team).transpose().map_err(app_error)
    }

    async fn teams(&self, only: Option<&[Uuid]>) -> Result<Vec<TeamView>, AppError> {
        let rows: Vec<TeamRow> = sqlx::query_as(&format!(
            "{TEAM_SELECT} WHERE ($1::uuid[] IS NULL OR id = ANY($1)) ORDER BY name"
        ))
        .bind(only)
        .fetch_all(&self.pool)
        .await
        .map_err(app_error)?;
        team_views(rows)
    }

    async fn teams_named(&self, names: &[String], ids: &[Uuid]) -> Result<Vec<TeamView>, AppError> {
        // team_names (its name is the primary key) is written with the events that
        // name teams, so a name finds its team's row through two index lookups.
        let rows: Vec<TeamRow> = sqlx::query_as(&format!(
            "{TEAM_SELECT} WHERE id = ANY($2)
                OR id IN (SELECT team_id::uuid FROM team_names WHERE name = ANY($1))
              ORDER BY name"
        ))
        .bind(names)
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(app_error)?;
        team_views(rows)
    }

    async fn team_usage(
        &self,
        team: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<UsageCounts, AppError> {
        // billing_usecases is written with the events that create and delete
        // usecases, in their transactions: it is the ledger's own account of them.
        let (created, deleted, running): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE created_at >= $2 AND created_at < $3),
                    count(*) FILTER (WHERE deleted_at >= $2 AND deleted_at < $3),
                    count(*) FILTER (WHERE created_at < $3 AND (deleted_at IS NULL OR deleted_at >= $3))
               FROM billing_usecases WHERE account = $1",
        )
        .bind(format!("team:{team}"))
        .bind(from)
        .bind(to)
        .fetch_one(&self.pool)
        .await
        .map_err(app_error)?;
        let count = |n: i64| u64::try_from(n).unwrap_or_default();
        Ok(UsageCounts {
            created: count(created),
            deleted: count(deleted),
            running: count(running),
        })
    }

    async fn wait_for(&self, cursor: Cursor) {
        self.projector.wait_for(cursor).await;
    }
}
