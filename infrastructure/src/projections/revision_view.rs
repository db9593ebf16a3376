//! `revision_view`: one row per change of a usecase (seed 002's deployment
//! history). How events change it is the fold's (`shiplog_application::read_models`);
//! here are the loads and writes.

use super::{chunks, Projection, ProjectionError};
use async_trait::async_trait;
use shiplog_application::read_models::{Needs, ReadModels, RevisionRow, Views};
use sqlx::PgConnection;
use uuid::Uuid;

/// Keeps `revision_view` in step with the log; deleted usecases leave it.
pub struct RevisionViewProjection;

const COLUMNS: &str =
    "usecase_id, revision, kind, at, actor, request_id, deployment_id, restart_id,
    image, status, message, based_on, rollback_of, variables, auto_update::text AS auto_update,
    reason";

/// `names` as a PostgreSQL array literal (`{"A","B"}`): one text per row, so that
/// an `UNNEST` can carry a `text[]` column.
fn array_literal(names: &[String]) -> String {
    let quoted: Vec<String> = names
        .iter()
        .map(|n| format!("\"{}\"", n.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

#[async_trait]
impl Projection for RevisionViewProjection {
    fn name(&self) -> &'static str {
        "revision_view"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["revision_view"]
    }

    fn view(&self) -> Views {
        Views {
            usecases: false,
            deployments: false,
            revisions: true,
            teams: false,
        }
    }

    async fn load(
        &self,
        conn: &mut PgConnection,
        missing: &Needs,
        models: &mut ReadModels,
    ) -> Result<(), ProjectionError> {
        if missing.revisions_of_deployments.is_empty() && missing.revisions_of_restarts.is_empty() {
            return Ok(());
        }
        let deployments: Vec<Uuid> = missing.revisions_of_deployments.iter().copied().collect();
        let restarts: Vec<Uuid> = missing.revisions_of_restarts.iter().copied().collect();
        // Each half walks its own partial index.
        let rows: Vec<RevisionRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM revision_view WHERE deployment_id = ANY($1) AND restart_id IS NULL
             UNION ALL
             SELECT {COLUMNS} FROM revision_view WHERE restart_id = ANY($2) AND restart_id IS NOT NULL"
        ))
        .bind(&deployments)
        .bind(&restarts)
        .fetch_all(&mut *conn)
        .await?;
        models.revisions.load(deployments, restarts, rows);
        Ok(())
    }

    async fn write(&self, conn: &mut PgConnection, models: &ReadModels) -> Result<(), sqlx::Error> {
        let table = &models.revisions;
        let changes = table.rows.changes();
        let deleted_usecases: Vec<Uuid> = table.deleted_usecases().copied().collect();
        if !changes.deleted.is_empty() || !deleted_usecases.is_empty() {
            let (usecases, revisions): (Vec<Uuid>, Vec<i64>) =
                changes.deleted.iter().copied().unzip();
            // A deleted usecase takes its rows along, also those the fold never held.
            sqlx::query(
                "DELETE FROM revision_view
                  WHERE usecase_id = ANY($3)
                     OR (usecase_id, revision) IN (SELECT * FROM UNNEST($1::uuid[], $2::bigint[]))",
            )
            .bind(&usecases)
            .bind(&revisions)
            .bind(&deleted_usecases)
            .execute(&mut *conn)
            .await?;
        }
        for rows in chunks(&changes.updated) {
            // Only what an event after the change can change.
            sqlx::query(
                "UPDATE revision_view r
                    SET kind = v.kind, status = v.status, message = v.message,
                        based_on = v.based_on, rollback_of = v.rollback_of,
                        variables = v.variables::text[]
                   FROM UNNEST($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                               $6::uuid[], $7::uuid[], $8::text[])
                        AS v(usecase_id, revision, kind, status, message, based_on, rollback_of,
                             variables)
                  WHERE r.usecase_id = v.usecase_id AND r.revision = v.revision",
            )
            .bind(rows.iter().map(|r| r.usecase_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.revision).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.status.as_deref()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.message.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.based_on).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.rollback_of).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| array_literal(&r.variables))
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *conn)
            .await?;
        }
        for rows in chunks(&changes.inserted) {
            sqlx::query(
                "INSERT INTO revision_view
                   (usecase_id, revision, kind, at, actor, request_id, deployment_id, restart_id,
                    image, status, message, based_on, rollback_of, variables, auto_update, reason)
                 SELECT usecase_id, revision, kind, at, actor, request_id, deployment_id, restart_id,
                        image, status, message, based_on, rollback_of, variables::text[],
                        auto_update::jsonb, reason
                   FROM UNNEST($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[], $5::text[],
                               $6::text[], $7::uuid[], $8::uuid[], $9::text[], $10::text[],
                               $11::text[], $12::uuid[], $13::uuid[], $14::text[], $15::text[],
                               $16::text[])
                        AS v(usecase_id, revision, kind, at, actor, request_id, deployment_id,
                             restart_id, image, status, message, based_on, rollback_of, variables,
                             auto_update, reason)",
            )
            .bind(rows.iter().map(|r| r.usecase_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.revision).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.actor.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.deployment_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.restart_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.image.as_deref()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.status.as_deref()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.message.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.based_on).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.rollback_of).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| array_literal(&r.variables))
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.auto_update.as_deref()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.reason.as_deref()).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::array_literal;

    #[test]
    fn array_literals_quote_every_name() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(array_literal(&[]), "{}");
        assert_eq!(array_literal(&names(&["A", "B_2"])), r#"{"A","B_2"}"#);
        assert_eq!(
            array_literal(&names(&[r#"a"b\c"#, "{x,y}"])),
            r#"{"a\"b\\c","{x,y}"}"#
        );
    }
}
