//! `deployment_view`: one row per deployment, with its status and config. How
//! events change it is the fold's (`shiplog_application::read_models`); here are
//! the loads and writes.

use super::{chunks, Projection, ProjectionError};
use async_trait::async_trait;
use shiplog_application::read_models::{DeploymentRow, Needs, ReadModels, Views};
use sqlx::PgConnection;
use std::collections::HashSet;
use uuid::Uuid;

/// Keeps `deployment_view` in step with the log.
pub struct DeploymentViewProjection;

#[async_trait]
impl Projection for DeploymentViewProjection {
    fn name(&self) -> &'static str {
        "deployment_view"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["deployment_view"]
    }

    fn view(&self) -> Views {
        Views {
            usecases: false,
            deployments: true,
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
        if !missing.deployments.is_empty() {
            let ids: Vec<Uuid> = missing.deployments.iter().copied().collect();
            let rows: Vec<DeploymentRow> = sqlx::query_as(
                "SELECT id, usecase_id, ordinal, status, created_at, message, config::text AS config,
                        requested_by, updated_at, updated_by, undeploy_requested, superseded_by
                   FROM deployment_view WHERE id = ANY($1)",
            )
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
            let mut found = HashSet::with_capacity(rows.len());
            for r in rows {
                found.insert(r.id);
                models.deployments.load(r.id, Some(r));
            }
            for id in ids.into_iter().filter(|id| !found.contains(id)) {
                models.deployments.load(id, None);
            }
        }
        if !missing.ordinals.is_empty() {
            let usecases: Vec<Uuid> = missing.ordinals.iter().copied().collect();
            // One step down the (usecase_id, ordinal) index per usecase.
            let maxima: Vec<(Uuid, i32)> = sqlx::query_as(
                "SELECT u.id, COALESCE((SELECT max(d.ordinal) FROM deployment_view d
                                         WHERE d.usecase_id = u.id), 0)
                   FROM UNNEST($1::uuid[]) AS u(id)",
            )
            .bind(&usecases)
            .fetch_all(&mut *conn)
            .await?;
            for (usecase_id, max) in maxima {
                models.deployments.load_max_ordinal(usecase_id, max);
            }
        }
        Ok(())
    }

    async fn write(&self, conn: &mut PgConnection, models: &ReadModels) -> Result<(), sqlx::Error> {
        let table = &models.deployments;
        let changes = table.rows.changes();
        let deleted_usecases: Vec<Uuid> = table.deleted_usecases().copied().collect();
        if !changes.deleted.is_empty() || !deleted_usecases.is_empty() {
            // A deleted usecase takes its rows along, also those the fold never held.
            sqlx::query("DELETE FROM deployment_view WHERE id = ANY($1) OR usecase_id = ANY($2)")
                .bind(&changes.deleted)
                .bind(&deleted_usecases)
                .execute(&mut *conn)
                .await?;
        }
        for rows in chunks(&changes.updated) {
            // Only what an event after the request can change (the config: the digest
            // a start pinned its image to).
            sqlx::query(
                "UPDATE deployment_view d
                    SET status = v.status, message = v.message, updated_at = v.updated_at,
                        updated_by = v.updated_by, undeploy_requested = v.undeploy_requested,
                        superseded_by = v.superseded_by, config = v.config::jsonb
                   FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[],
                               $6::bool[], $7::uuid[], $8::text[])
                        AS v(id, status, message, updated_at, updated_by, undeploy_requested,
                             superseded_by, config)
                  WHERE d.id = v.id",
            )
            .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.message.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.updated_by.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.undeploy_requested)
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.superseded_by).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.config.as_str()).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        for rows in chunks(&changes.inserted) {
            sqlx::query(
                "INSERT INTO deployment_view
                   (id, usecase_id, ordinal, status, created_at, message, config, requested_by,
                    updated_at, updated_by, undeploy_requested, superseded_by)
                 SELECT id, usecase_id, ordinal, status, created_at, message, config::jsonb,
                        requested_by, updated_at, updated_by, undeploy_requested, superseded_by
                   FROM UNNEST($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::timestamptz[],
                               $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::text[],
                               $11::bool[], $12::uuid[])
                        AS v(id, usecase_id, ordinal, status, created_at, message, config,
                             requested_by, updated_at, updated_by, undeploy_requested,
                             superseded_by)",
            )
            .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.usecase_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.ordinal).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.message.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.config.as_str()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.requested_by.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.updated_by.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.undeploy_requested)
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.superseded_by).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}
