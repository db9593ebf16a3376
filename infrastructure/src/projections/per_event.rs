//! The projections as they were before batches were folded in memory: one SQL
//! statement per event per projection. Kept for tests only, as the oracle the
//! batched projector must agree with row for row (see `tests.rs`).

use crate::event_log::RecordedEvent;
use shiplog_application::read_models::{pause_json, settings_json};
use shiplog_domain::{
    AutoUpdate, AutoUpdatePause, DeploymentStatus, TeamEvent, UpdatePolicy, UsecaseEvent,
};
use sqlx::PgConnection;
use uuid::Uuid;

/// A usecase event decoded for projections: the typed payload plus where and by whom.
pub struct ProjectedEvent<'a> {
    /// The raw stored event.
    pub raw: &'a RecordedEvent,
    /// The usecase it belongs to.
    pub usecase_id: Uuid,
    /// The typed event.
    pub event: UsecaseEvent,
}

/// Applies one usecase event to the four read models, projection after projection.
pub async fn apply(conn: &mut PgConnection, e: &ProjectedEvent<'_>) -> Result<(), sqlx::Error> {
    usecase_view(conn, e).await?;
    deployment_view(conn, e).await?;
    revision_view(conn, e).await
}

async fn usecase_view(conn: &mut PgConnection, e: &ProjectedEvent<'_>) -> Result<(), sqlx::Error> {
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
            policy,
            range,
            at,
        } => {
            sqlx::query(
                    "UPDATE usecase_view
                        SET auto_update_enabled = $2, auto_update_strategy = $3, updated_at = $4, updated_by = $5,
                            auto_update_policy = $6, auto_update_range = $7, auto_update_pause = NULL
                      WHERE id = $1",
                )
                .bind(e.usecase_id)
                .bind(enabled)
                .bind(strategy.as_str())
                .bind(at)
                .bind(actor)
                .bind(policy.as_str())
                .bind(range.as_ref().map(|r| r.as_str()))
                .execute(conn)
                .await?;
        }
        UsecaseEvent::AutoUpdatePaused {
            rollback,
            reason,
            at,
        } => {
            let pause = pause_json(&AutoUpdatePause {
                reason: reason.clone(),
                rollback: *rollback,
                since: *at,
            });
            sqlx::query(
                "UPDATE usecase_view
                    SET auto_update_pause = $2::jsonb, updated_at = $3, updated_by = $4
                  WHERE id = $1",
            )
            .bind(e.usecase_id)
            .bind(pause)
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

async fn deployment_view(
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
            let config =
                serde_json::to_value(config).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
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
        UsecaseEvent::DeploymentStarted {
            deployment_id,
            digest,
            ..
        } => {
            if let Some(digest) = digest {
                // The resolved digest goes where every reader of the image finds it.
                sqlx::query(
                    "UPDATE deployment_view
                        SET config = jsonb_set(config, '{image,digest}', to_jsonb($2::text))
                      WHERE id = $1 AND jsonb_typeof(config->'image') = 'object'",
                )
                .bind(deployment_id)
                .bind(digest)
                .execute(&mut *conn)
                .await?;
            }
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
        | UsecaseEvent::AutoUpdatePaused { .. }
        | UsecaseEvent::AutoUpdateRequested { .. }
        | UsecaseEvent::DeletionRequested { .. } => {}
    }
    Ok(())
}

/// The columns a change row is created with; the rest start empty.
struct NewRevision<'a> {
    kind: &'a str,
    deployment_id: Option<&'a Uuid>,
    restart_id: Option<&'a Uuid>,
    image: Option<String>,
    status: Option<&'a str>,
    auto_update: Option<serde_json::Value>,
    message: &'a str,
}

async fn insert(
    conn: &mut PgConnection,
    e: &ProjectedEvent<'_>,
    row: NewRevision<'_>,
) -> Result<(), sqlx::Error> {
    let request_id = e.raw.metadata["request_id"].as_str().unwrap_or_default();
    sqlx::query(
        "INSERT INTO revision_view
           (usecase_id, revision, kind, at, actor, request_id, deployment_id, restart_id, image, status, auto_update, message, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
    .bind(row.message)
    .bind(e.raw.metadata["reason"].as_str())
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

async fn revision_view(conn: &mut PgConnection, e: &ProjectedEvent<'_>) -> Result<(), sqlx::Error> {
    let change = |kind| NewRevision {
        kind,
        deployment_id: None,
        restart_id: None,
        image: None,
        status: None,
        auto_update: None,
        message: "",
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
            enabled,
            strategy,
            policy,
            range,
            ..
        } => {
            let settings = AutoUpdate {
                enabled: *enabled,
                strategy: *strategy,
                policy: UpdatePolicy::recorded(*policy, range.clone()),
            };
            let settings = serde_json::from_str(&settings_json(&settings)).ok();
            let row = NewRevision {
                auto_update: settings,
                ..change("autoUpdate")
            };
            insert(conn, e, row).await?
        }
        UsecaseEvent::AutoUpdatePaused { reason, .. } => {
            let row = NewRevision {
                message: reason,
                ..change("autoUpdatePaused")
            };
            insert(conn, e, row).await?
        }
        UsecaseEvent::AutoUpdateRequested {
            deployment_id,
            based_on,
            ..
        } => {
            sqlx::query(
                "UPDATE revision_view SET kind = 'imageUpdate', based_on = $2
                      WHERE deployment_id = $1 AND restart_id IS NULL",
            )
            .bind(deployment_id)
            .bind(based_on)
            .execute(conn)
            .await?;
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

/// Applies one team event to `team_view`.
pub async fn apply_team(
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
