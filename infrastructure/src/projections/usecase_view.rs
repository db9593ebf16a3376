//! `usecase_view`: one row per live usecase. How events change it is the fold's
//! (`shiplog_application::read_models`); here are the loads and writes.

use super::{chunks, Projection, ProjectionError};
use async_trait::async_trait;
use shiplog_application::read_models::{Needs, ReadModels, UsecaseRow, Views};
use sqlx::PgConnection;
use uuid::Uuid;

/// Keeps `usecase_view` in step with the log; deleted usecases leave it.
pub struct UsecaseViewProjection;

const COLUMNS: &str = "id, registered_at_position, name, description, created_at, created_by,
    has_succeeded, updated_at, updated_by, template, visibility, auto_update_enabled,
    auto_update_strategy, deletion_requested, owner, team_id, auto_update_policy,
    auto_update_range, auto_update_pause";

/// [`COLUMNS`] as a SELECT reads them into a `UsecaseRow` (the pause's JSON as text).
const SELECTED: &str = "id, registered_at_position, name, description, created_at, created_by,
    has_succeeded, updated_at, updated_by, template, visibility, auto_update_enabled,
    auto_update_strategy, deletion_requested, owner, team_id, auto_update_policy,
    auto_update_range, auto_update_pause::text AS auto_update_pause";

#[async_trait]
impl Projection for UsecaseViewProjection {
    fn name(&self) -> &'static str {
        "usecase_view"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["usecase_view"]
    }

    fn view(&self) -> Views {
        Views {
            usecases: true,
            deployments: false,
            revisions: false,
            teams: false,
        }
    }

    async fn load(
        &self,
        conn: &mut PgConnection,
        missing: &Needs,
        models: &mut ReadModels,
    ) -> Result<(), ProjectionError> {
        if missing.usecases.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = missing.usecases.iter().copied().collect();
        let rows: Vec<UsecaseRow> = sqlx::query_as(&format!(
            "SELECT {SELECTED} FROM usecase_view WHERE id = ANY($1)"
        ))
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            models.usecases.load(r.id, Some(r));
        }
        // The rest have no row.
        for id in ids {
            models.usecases.load(id, None);
        }
        Ok(())
    }

    async fn write(&self, conn: &mut PgConnection, models: &ReadModels) -> Result<(), sqlx::Error> {
        let changes = models.usecases.changes();
        if !changes.deleted.is_empty() {
            sqlx::query("DELETE FROM usecase_view WHERE id = ANY($1)")
                .bind(&changes.deleted)
                .execute(&mut *conn)
                .await?;
        }
        for rows in chunks(&changes.updated) {
            // Only what an event after the registration can change.
            sqlx::query(
                "UPDATE usecase_view u
                    SET has_succeeded = v.has_succeeded, updated_at = v.updated_at,
                        updated_by = v.updated_by, auto_update_enabled = v.auto_update_enabled,
                        auto_update_strategy = v.auto_update_strategy,
                        deletion_requested = v.deletion_requested,
                        auto_update_policy = v.auto_update_policy,
                        auto_update_range = v.auto_update_range,
                        auto_update_pause = v.auto_update_pause::jsonb
                   FROM UNNEST($1::uuid[], $2::bool[], $3::timestamptz[], $4::text[], $5::bool[],
                               $6::text[], $7::bool[], $8::text[], $9::text[], $10::text[])
                        AS v(id, has_succeeded, updated_at, updated_by, auto_update_enabled,
                             auto_update_strategy, deletion_requested, auto_update_policy,
                             auto_update_range, auto_update_pause)
                  WHERE u.id = v.id",
            )
            .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.has_succeeded).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.updated_by.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.auto_update_enabled)
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.auto_update_strategy.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.deletion_requested)
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.auto_update_policy.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.auto_update_range.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.auto_update_pause.as_deref())
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *conn)
            .await?;
        }
        for rows in chunks(&changes.inserted) {
            sqlx::query(&format!(
                "INSERT INTO usecase_view ({COLUMNS})
                 SELECT id, registered_at_position, name, description, created_at, created_by,
                        has_succeeded, updated_at, updated_by, template, visibility,
                        auto_update_enabled, auto_update_strategy, deletion_requested, owner,
                        team_id, auto_update_policy, auto_update_range, auto_update_pause::jsonb
                   FROM UNNEST($1::uuid[], $2::bigint[], $3::text[], $4::text[],
                               $5::timestamptz[], $6::text[], $7::bool[], $8::timestamptz[],
                               $9::text[], $10::text[], $11::text[], $12::bool[], $13::text[],
                               $14::bool[], $15::text[], $16::uuid[], $17::text[], $18::text[],
                               $19::text[])
                        AS v(id, registered_at_position, name, description, created_at,
                             created_by, has_succeeded, updated_at, updated_by, template,
                             visibility, auto_update_enabled, auto_update_strategy,
                             deletion_requested, owner, team_id, auto_update_policy,
                             auto_update_range, auto_update_pause)"
            ))
            .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.registered_at_position)
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.description.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.created_by.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.has_succeeded).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.updated_by.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.template.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.visibility.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.auto_update_enabled)
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.auto_update_strategy.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.deletion_requested)
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.owner.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.team_id).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.auto_update_policy.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.auto_update_range.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.auto_update_pause.as_deref())
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}
