//! `team_view`: one row per team, with its name and tier.

use super::{ProjectedEvent, Projection};
use crate::event_log::RecordedEvent;
use async_trait::async_trait;
use shiplog_domain::TeamEvent;
use sqlx::PgConnection;
use uuid::Uuid;

/// Keeps `team_view` in step with the log's team events.
pub struct TeamViewProjection;

#[async_trait]
impl Projection for TeamViewProjection {
    fn name(&self) -> &'static str {
        "team_view"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["team_view"]
    }

    async fn apply(
        &self,
        _conn: &mut PgConnection,
        _event: &ProjectedEvent<'_>,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn apply_team(
        &self,
        conn: &mut PgConnection,
        raw: &RecordedEvent,
        team_id: Uuid,
        event: &TeamEvent,
    ) -> Result<(), sqlx::Error> {
        let actor = raw.actor();
        match event {
            TeamEvent::TeamCreated { name, tier, at, .. } => {
                sqlx::query(
                    "INSERT INTO team_view (id, name, tier, created_at, created_by, updated_at, updated_by)
                     VALUES ($1, $2, $3, $4, $5, $4, $5)",
                )
                .bind(team_id)
                .bind(name.as_str())
                .bind(tier.as_str())
                .bind(at)
                .bind(actor)
                .execute(conn)
                .await?;
            }
            TeamEvent::TeamRenamed { name, at, .. } => {
                sqlx::query(
                    "UPDATE team_view SET name = $2, updated_at = $3, updated_by = $4 WHERE id = $1",
                )
                .bind(team_id)
                .bind(name.as_str())
                .bind(at)
                .bind(actor)
                .execute(conn)
                .await?;
            }
            TeamEvent::TeamTierChanged { tier, at, .. } => {
                sqlx::query(
                    "UPDATE team_view SET tier = $2, updated_at = $3, updated_by = $4 WHERE id = $1",
                )
                .bind(team_id)
                .bind(tier.as_str())
                .bind(at)
                .bind(actor)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }
}
