//! `usecase_view`: one row per live usecase.

use super::{ProjectedEvent, Projection};
use async_trait::async_trait;
use shiplog_domain::UsecaseEvent;
use sqlx::PgConnection;

/// Keeps `usecase_view` in step with the log; deleted usecases leave it.
pub struct UsecaseViewProjection;

#[async_trait]
impl Projection for UsecaseViewProjection {
    fn name(&self) -> &'static str {
        "usecase_view"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["usecase_view"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        e: &ProjectedEvent<'_>,
    ) -> Result<(), sqlx::Error> {
        let actor = e.raw.actor();
        match &e.event {
            UsecaseEvent::UsecaseRegistered {
                usecase_id,
                name,
                description,
                at,
                template,
                visibility,
                owner,
                team,
            } => {
                sqlx::query(
                    "INSERT INTO usecase_view
                       (id, registered_at_position, name, description, created_at, created_by, updated_at, updated_by,
                        template, visibility, owner, team_id)
                     VALUES ($1, $6, $2, $3, $4, $5, $4, $5, $7, $8, $9, $10)",
                )
                .bind(usecase_id)
                .bind(name.as_str())
                .bind(description)
                .bind(at)
                .bind(actor)
                .bind(e.raw.cursor.position)
                .bind(template)
                .bind(visibility.map(|v| v.as_str()))
                // Usecases registered before owners existed belong to who registered them.
                .bind(owner.as_deref().unwrap_or(actor))
                .bind(team)
                .execute(conn)
                .await?;
            }
            UsecaseEvent::AutoUpdateConfigured {
                enabled,
                strategy,
                at,
            } => {
                sqlx::query(
                    "UPDATE usecase_view
                        SET auto_update_enabled = $2, auto_update_strategy = $3, updated_at = $4, updated_by = $5
                      WHERE id = $1",
                )
                .bind(e.usecase_id)
                .bind(enabled)
                .bind(strategy.as_str())
                .bind(at)
                .bind(actor)
                .execute(conn)
                .await?;
            }
            UsecaseEvent::DeletionRequested { at } => {
                sqlx::query(
                    "UPDATE usecase_view SET deletion_requested = true, updated_at = $2, updated_by = $3 WHERE id = $1",
                )
                .bind(e.usecase_id)
                .bind(at)
                .bind(actor)
                .execute(conn)
                .await?;
            }
            UsecaseEvent::UsecaseDeleted { .. } => {
                sqlx::query("DELETE FROM usecase_view WHERE id = $1")
                    .bind(e.usecase_id)
                    .execute(conn)
                    .await?;
            }
            other => {
                let succeeded = matches!(other, UsecaseEvent::DeploymentSucceeded { .. });
                sqlx::query(
                    "UPDATE usecase_view
                        SET has_succeeded = has_succeeded OR $2, updated_at = $3, updated_by = $4
                      WHERE id = $1",
                )
                .bind(e.usecase_id)
                .bind(succeeded)
                .bind(other.at())
                .bind(actor)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }
}
