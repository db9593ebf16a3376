//! `deployment_view`: one row per deployment, with its status and config.

use super::{ProjectedEvent, Projection};
use async_trait::async_trait;
use shiplog_domain::{DeploymentStatus, UsecaseEvent};
use sqlx::PgConnection;
use uuid::Uuid;

/// Keeps `deployment_view` in step with the log.
pub struct DeploymentViewProjection;

async fn set_status(
    conn: &mut PgConnection,
    e: &ProjectedEvent<'_>,
    deployment_id: &Uuid,
    status: DeploymentStatus,
    message: Option<&str>,
    superseded_by: Option<&Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deployment_view
            SET status = $2, message = COALESCE($3, message), superseded_by = COALESCE($4, superseded_by),
                updated_at = $5, updated_by = $6
          WHERE id = $1",
    )
    .bind(deployment_id)
    .bind(status.as_str())
    .bind(message)
    .bind(superseded_by)
    .bind(e.event.at())
    .bind(e.raw.actor())
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Projection for DeploymentViewProjection {
    fn name(&self) -> &'static str {
        "deployment_view"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["deployment_view"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        e: &ProjectedEvent<'_>,
    ) -> Result<(), sqlx::Error> {
        use DeploymentStatus as S;
        match &e.event {
            UsecaseEvent::DeploymentRequested {
                deployment_id,
                config,
                at,
            } => {
                let config = serde_json::to_value(config)
                    .map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
                sqlx::query(
                    "INSERT INTO deployment_view
                       (id, usecase_id, ordinal, status, created_at, config, requested_by, updated_at, updated_by)
                     VALUES ($1, $2,
                       (SELECT COALESCE(MAX(ordinal), 0) + 1 FROM deployment_view WHERE usecase_id = $2),
                       'pending', $3, $4, $5, $3, $5)",
                )
                .bind(deployment_id)
                .bind(e.usecase_id)
                .bind(at)
                .bind(config)
                .bind(e.raw.actor())
                .execute(conn)
                .await?;
            }
            UsecaseEvent::DeploymentStarted { deployment_id, .. } => {
                set_status(conn, e, deployment_id, S::Deploying, None, None).await?
            }
            UsecaseEvent::DeploymentSucceeded { deployment_id, .. } => {
                set_status(conn, e, deployment_id, S::Deployed, None, None).await?
            }
            UsecaseEvent::DeploymentFailed {
                deployment_id,
                message,
                ..
            } => set_status(conn, e, deployment_id, S::Error, Some(message), None).await?,
            UsecaseEvent::DeploymentSuperseded {
                deployment_id,
                superseded_by,
                ..
            } => {
                set_status(
                    conn,
                    e,
                    deployment_id,
                    S::Superseded,
                    None,
                    Some(superseded_by),
                )
                .await?
            }
            UsecaseEvent::DeploymentUndeployed { deployment_id, .. } => {
                sqlx::query("UPDATE deployment_view SET undeploy_requested = false WHERE id = $1")
                    .bind(deployment_id)
                    .execute(&mut *conn)
                    .await?;
                set_status(conn, e, deployment_id, S::Undeployed, None, None).await?
            }
            UsecaseEvent::UndeployRequested { deployment_id, at } => {
                sqlx::query("UPDATE deployment_view SET undeploy_requested = true, updated_at = $2, updated_by = $3 WHERE id = $1")
                    .bind(deployment_id)
                    .bind(at)
                    .bind(e.raw.actor())
                    .execute(conn)
                    .await?;
            }
            UsecaseEvent::UsecaseDeleted { .. } => {
                sqlx::query("DELETE FROM deployment_view WHERE usecase_id = $1")
                    .bind(e.usecase_id)
                    .execute(conn)
                    .await?;
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
}
