//! Queries over `usecase_view` and `deployment_view`.

use crate::db::app_error;
use crate::projections::Projector;
use async_trait::async_trait;
use shiplog_application::{
    AppError, Cursor, DeploymentView, Page, ReadModel, UsecaseFilter, UsecaseView,
};
use shiplog_domain::{DeploymentStatus, InvalidField};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use std::sync::Arc;
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

const DEPLOYMENT_COLUMNS: &str = "d.id AS d_id, d.usecase_id AS d_usecase_id, d.status AS d_status,
    d.created_at AS d_created_at, d.message AS d_message, d.config AS d_config,
    d.requested_by AS d_requested_by, d.updated_at AS d_updated_at, d.updated_by AS d_updated_by,
    d.undeploy_requested AS d_undeploy_requested, d.superseded_by AS d_superseded_by, d.ordinal AS d_ordinal";

/// The usecase columns plus, once a deployment has succeeded, its latest non-error deployment.
fn usecase_select() -> String {
    format!(
        "SELECT u.id, u.registered_at_position, u.name, u.description, u.created_at, u.created_by, {DEPLOYMENT_COLUMNS}
           FROM usecase_view u
           LEFT JOIN LATERAL (
                SELECT * FROM deployment_view d
                 WHERE d.usecase_id = u.id AND u.has_succeeded AND d.status <> 'error'
                 ORDER BY d.ordinal DESC LIMIT 1) d ON true"
    )
}

fn status(raw: &str) -> Result<DeploymentStatus, sqlx::Error> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned()))
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn deployment(row: &PgRow) -> Result<Option<DeploymentView>, sqlx::Error> {
    let Some(id) = row.try_get::<Option<Uuid>, _>("d_id")? else {
        return Ok(None);
    };
    let config: serde_json::Value = row.try_get("d_config")?;
    Ok(Some(DeploymentView {
        id,
        usecase_id: row.try_get("d_usecase_id")?,
        status: status(row.try_get("d_status")?)?,
        created_at: row.try_get("d_created_at")?,
        message: row.try_get("d_message")?,
        config: serde_json::from_value(config).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        requested_by: row.try_get("d_requested_by")?,
        updated_at: row.try_get("d_updated_at")?,
        updated_by: row.try_get("d_updated_by")?,
        undeploy_requested: row.try_get("d_undeploy_requested")?,
        superseded_by: row.try_get("d_superseded_by")?,
    }))
}

fn usecase(row: &PgRow) -> Result<UsecaseView, sqlx::Error> {
    Ok(UsecaseView {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        deployment: deployment(row)?,
    })
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
            .map(|t| t.parse().map_err(|_| invalid_page_token()))
            .transpose()?;
        let rows = sqlx::query(&format!(
            "{} WHERE ($1::text IS NULL OR u.name ILIKE $1)
                  AND ($2::bigint IS NULL OR u.registered_at_position > $2)
                ORDER BY u.registered_at_position
                LIMIT $3",
            usecase_select()
        ))
        .bind(filter.name.as_deref().map(like_pattern))
        .bind(after)
        .bind(i64::from(filter.limit) + 1)
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
        let after: Option<i32> = after
            .map(|t| {
                t.parse().map_err(|_| {
                    AppError::Invalid(InvalidField::new(
                        "after",
                        "is not a page token from a previous response",
                    ))
                })
            })
            .transpose()?;
        let rows = sqlx::query(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployment_view d
              WHERE d.usecase_id = $1 AND ($2::int IS NULL OR d.ordinal < $2)
              ORDER BY d.ordinal DESC LIMIT $3"
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
        let row = sqlx::query(&format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployment_view d WHERE d.usecase_id = $1 AND d.id = $2"))
            .bind(usecase_id)
            .bind(deployment_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(app_error)?;
        optional_deployment(row)
    }

    async fn serving(&self, usecase_id: Uuid) -> Result<Option<DeploymentView>, AppError> {
        let row = sqlx::query(&format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployment_view d WHERE d.usecase_id = $1 AND d.status = 'deployed' AND NOT d.undeploy_requested LIMIT 1"))
            .bind(usecase_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(app_error)?;
        optional_deployment(row)
    }

    async fn wait_for(&self, cursor: Cursor) {
        self.projector.wait_for(cursor).await;
    }
}
