//! `revision_view`: one row per change of a usecase, with how it ended so far
//! (seed 002's deployment history). How a deployment it started is doing is not
//! copied here on every outcome event: the query joins `deployment_view`, which
//! has it, so most events (outcomes) cost this projection nothing.

use super::{ProjectedEvent, Projection};
use async_trait::async_trait;
use shiplog_domain::UsecaseEvent;
use sqlx::PgConnection;
use uuid::Uuid;

/// Keeps `revision_view` in step with the log; deleted usecases leave it.
pub struct RevisionViewProjection;

/// The columns a change row is created with; the rest start empty.
struct NewRevision<'a> {
    kind: &'a str,
    deployment_id: Option<&'a Uuid>,
    restart_id: Option<&'a Uuid>,
    image: Option<String>,
    status: Option<&'a str>,
    auto_update: Option<serde_json::Value>,
}

async fn insert(
    conn: &mut PgConnection,
    e: &ProjectedEvent<'_>,
    row: NewRevision<'_>,
) -> Result<(), sqlx::Error> {
    let request_id = e.raw.metadata["request_id"].as_str().unwrap_or_default();
    sqlx::query(
        "INSERT INTO revision_view
           (usecase_id, revision, kind, at, actor, request_id, deployment_id, restart_id, image, status, auto_update)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(e.usecase_id)
    .bind(e.raw.sequence)
    .bind(row.kind)
    .bind(e.event.at())
    .bind(e.raw.actor())
    .bind(request_id)
    .bind(row.deployment_id)
    .bind(row.restart_id)
    .bind(row.image)
    .bind(row.status)
    .bind(row.auto_update)
    .execute(conn)
    .await?;
    Ok(())
}

/// The restart `restart_id` ended as `status`.
async fn restart_outcome(
    conn: &mut PgConnection,
    restart_id: &Uuid,
    status: &str,
    message: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE revision_view SET status = $2, message = COALESCE($3, message) WHERE restart_id = $1",
    )
    .bind(restart_id)
    .bind(status)
    .bind(message)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Projection for RevisionViewProjection {
    fn name(&self) -> &'static str {
        "revision_view"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["revision_view"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        e: &ProjectedEvent<'_>,
    ) -> Result<(), sqlx::Error> {
        let change = |kind| NewRevision {
            kind,
            deployment_id: None,
            restart_id: None,
            image: None,
            status: None,
            auto_update: None,
        };
        match &e.event {
            UsecaseEvent::DeploymentRequested {
                deployment_id,
                config,
                ..
            } => {
                let row = NewRevision {
                    deployment_id: Some(deployment_id),
                    image: Some(config.image.to_string()),
                    ..change("deploy")
                };
                insert(conn, e, row).await?
            }
            // Both follow their DeploymentRequested in the same commit: they say what it was.
            UsecaseEvent::ConfigChangeRequested {
                deployment_id,
                based_on,
                env,
                ..
            } => {
                let names: Vec<&str> = env.keys().map(String::as_str).collect();
                sqlx::query(
                    "UPDATE revision_view SET kind = 'config', based_on = $2, variables = $3
                      WHERE deployment_id = $1 AND restart_id IS NULL",
                )
                .bind(deployment_id)
                .bind(based_on)
                .bind(names)
                .execute(conn)
                .await?;
            }
            UsecaseEvent::RollbackRequested {
                deployment_id,
                rollback_of,
                ..
            } => {
                sqlx::query(
                    "UPDATE revision_view SET kind = 'rollback', rollback_of = $2
                      WHERE deployment_id = $1 AND restart_id IS NULL",
                )
                .bind(deployment_id)
                .bind(rollback_of)
                .execute(conn)
                .await?;
            }
            UsecaseEvent::RestartRequested {
                restart_id,
                deployment_id,
                ..
            } => {
                let row = NewRevision {
                    deployment_id: Some(deployment_id),
                    restart_id: Some(restart_id),
                    status: Some("pending"),
                    ..change("restart")
                };
                insert(conn, e, row).await?
            }
            UsecaseEvent::AutoUpdateConfigured {
                enabled, strategy, ..
            } => {
                let settings = serde_json::json!({"enabled": enabled, "strategy": strategy});
                let row = NewRevision {
                    auto_update: Some(settings),
                    ..change("autoUpdate")
                };
                insert(conn, e, row).await?
            }
            UsecaseEvent::DeletionRequested { .. } => insert(conn, e, change("delete")).await?,
            UsecaseEvent::RestartSucceeded { restart_id, .. } => {
                restart_outcome(conn, restart_id, "succeeded", None).await?
            }
            UsecaseEvent::RestartFailed {
                restart_id,
                message,
                ..
            } => restart_outcome(conn, restart_id, "failed", Some(message)).await?,
            UsecaseEvent::UsecaseDeleted { .. } => {
                sqlx::query("DELETE FROM revision_view WHERE usecase_id = $1")
                    .bind(e.usecase_id)
                    .execute(conn)
                    .await?;
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
}
