//! `team_view`: one row per team, with its name and tier. How events change it is
//! the fold's (`shiplog_application::read_models`); here are the loads and writes.

use super::{chunks, Projection, ProjectionError};
use async_trait::async_trait;
use shiplog_application::read_models::{Needs, ReadModels, TeamRow, Views};
use sqlx::PgConnection;
use uuid::Uuid;

/// Keeps `team_view` in step with the log's team events.
pub struct TeamViewProjection;

const COLUMNS: &str = "id, name, tier, created_at, created_by, updated_at, updated_by";

#[async_trait]
impl Projection for TeamViewProjection {
    fn name(&self) -> &'static str {
        "team_view"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["team_view"]
    }

    fn view(&self) -> Views {
        Views {
            usecases: false,
            deployments: false,
            revisions: false,
            teams: true,
        }
    }

    async fn load(
        &self,
        conn: &mut PgConnection,
        missing: &Needs,
        models: &mut ReadModels,
    ) -> Result<(), ProjectionError> {
        if missing.teams.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = missing.teams.iter().copied().collect();
        let rows: Vec<TeamRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM team_view WHERE id = ANY($1)"
        ))
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            models.teams.load(r.id, Some(r));
        }
        // The rest have no row.
        for id in ids {
            models.teams.load(id, None);
        }
        Ok(())
    }

    async fn write(&self, conn: &mut PgConnection, models: &ReadModels) -> Result<(), sqlx::Error> {
        let changes = models.teams.changes();
        if !changes.deleted.is_empty() {
            sqlx::query("DELETE FROM team_view WHERE id = ANY($1)")
                .bind(&changes.deleted)
                .execute(&mut *conn)
                .await?;
        }
        for rows in chunks(&changes.updated) {
            sqlx::query(
                "UPDATE team_view t
                    SET name = v.name, tier = v.tier, updated_at = v.updated_at,
                        updated_by = v.updated_by
                   FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])
                        AS v(id, name, tier, updated_at, updated_by)
                  WHERE t.id = v.id",
            )
            .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.tier.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.updated_by.as_str())
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *conn)
            .await?;
        }
        for rows in chunks(&changes.inserted) {
            sqlx::query(&format!(
                "INSERT INTO team_view ({COLUMNS})
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[],
                                      $5::text[], $6::timestamptz[], $7::text[])"
            ))
            .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.tier.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.created_by.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.updated_by.as_str())
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}
