//! Operating a named deployment through the platform API (seed 002): restart,
//! config, auto-update and history are ledger commands and reads; logs, metrics
//! and Kubernetes events are read from the cluster.

use crate::error::PlatformError;
use crate::extract::{
    command_context, ApiPath, ApiQuery, Auth, PlatformJson, RequestId, StreamAuth,
};
use crate::routes::operations::{followed_lines, log_events};
use crate::routes::problems::{
    ClusterUnavailable, DatabaseUnavailable, NoSuchDeployment, NotDeclaredJson,
    ReadDeploymentDenied, SecretsOrDatabaseUnavailable, TooManyStreams, Unauthorized,
    UnauthorizedStream, WriteDeploymentDenied,
};
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use shiplog_application::auto_update::AutoUpdateChange;
use shiplog_application::Scope;
use shiplog_wire::auto_update::policy_of;
use shiplog_wire::platform::{
    AutoUpdateBody, AutoUpdateUpdate, ChangeAccepted, ConfigDataBody, ConfigUpdateBody,
    DeploymentNameBody, HistoryBody, HistoryPageQuery, MetricsBody, NameQuery, PlatformEventsBody,
    PlatformLogStreamQuery, PlatformLogsBody, PlatformLogsQuery, ServiceQuery,
};
use shiplog_wire::Problem;

/// Roll all pods of a deployment (same config, fresh pods), as a restart annotation does.
#[utoipa::path(post, path = "/api/deployments/restart", operation_id = "platform_restart", tag = "platform", request_body = DeploymentNameBody,
    security(("bearer" = ["deployments:write"])),
    responses(
        (status = 200, description = "RestartRequested is recorded; RestartSucceeded or RestartFailed follows (see the history)", body = ChangeAccepted),
        (status = 400, description = "deployment_name is missing, or the body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing of it is ready, a restart is still rolling, or it is being deleted", body = Problem, content_type = "application/problem+json"),
        Unauthorized, WriteDeploymentDenied, NoSuchDeployment, DatabaseUnavailable,
    ))]
pub async fn restart(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    PlatformJson(body): PlatformJson<DeploymentNameBody>,
) -> Result<Json<ChangeAccepted>, PlatformError> {
    let principal = auth.require(Scope::DeploymentsWrite)?;
    let ctx = command_context(principal, request_id);
    let accepted = state
        .platform
        .restart(&ctx, principal, &body.deployment_name)
        .await?;
    Ok(Json(ChangeAccepted {
        success: true,
        message: format!(
            "the pods of deployment {} are rolled",
            accepted.deployment_id
        ),
        deployment_name: body.deployment_name,
        id: Some(accepted.id),
    }))
}

/// The environment variables a deployment runs with (generated secrets by name only).
#[utoipa::path(get, path = "/api/deployments/config", operation_id = "platform_get_config", tag = "platform",
    params(NameQuery),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "The serving deployment's variables (else the newest's)", body = ConfigDataBody),
        (status = 400, description = "name is missing", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It was never deployed (a PhariaOS usecase without deployments)", body = Problem, content_type = "application/problem+json"),
        Unauthorized, ReadDeploymentDenied, NoSuchDeployment, DatabaseUnavailable,
    ))]
pub async fn get_config(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(query): ApiQuery<NameQuery>,
) -> Result<Json<ConfigDataBody>, PlatformError> {
    let principal = auth.require(Scope::DeploymentsRead)?;
    Ok(Json(
        state.platform.config(principal, &query.name).await?.into(),
    ))
}

/// Replace the environment variables and roll them out: a new deployment of the same
/// image that supersedes the serving one once ready (a failure leaves it serving).
#[utoipa::path(put, path = "/api/deployments/config", operation_id = "platform_put_config", tag = "platform", request_body = ConfigUpdateBody,
    security(("bearer" = ["deployments:write"])),
    responses(
        (status = 200, description = "ConfigChangeRequested and the new deployment's DeploymentRequested are recorded; `id` is the new deployment", body = ChangeAccepted),
        (status = 400, description = "deployment_name or configData is missing, or a variable name is invalid (configData.NAME)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It was never deployed, or it is being deleted", body = Problem, content_type = "application/problem+json"),
        Unauthorized, WriteDeploymentDenied, NoSuchDeployment, NotDeclaredJson, SecretsOrDatabaseUnavailable,
    ))]
pub async fn put_config(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    PlatformJson(body): PlatformJson<ConfigUpdateBody>,
) -> Result<Json<ChangeAccepted>, PlatformError> {
    let principal = auth.require(Scope::DeploymentsWrite)?;
    let ctx = command_context(principal, request_id);
    let deployment_id = state
        .platform
        .change_config(&ctx, principal, &body.deployment_name, body.config_data)
        .await?;
    Ok(Json(ChangeAccepted {
        success: true,
        message: format!("deployment {deployment_id} rolls out the new configuration"),
        deployment_name: body.deployment_name,
        id: Some(deployment_id),
    }))
}

/// Container logs of a service (default: the first): the last `tail` lines per pod,
/// or with `follow=true` those and then new lines as `text/plain` while they come.
#[utoipa::path(get, path = "/api/deployments/{name}/logs", operation_id = "platform_logs", tag = "platform",
    params(("name" = String, Path, description = "The deployment's name"), PlatformLogsQuery),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "The lines (follow=false), or an endless text/plain stream of lines (follow=true)", body = PlatformLogsBody),
        (status = 400, description = "A query parameter is malformed, tail is out of range, or service names no service of it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing of it is ready", body = Problem, content_type = "application/problem+json"),
        Unauthorized, ReadDeploymentDenied, NoSuchDeployment, TooManyStreams, ClusterUnavailable,
    ))]
pub async fn logs(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<PlatformLogsQuery>,
) -> Result<Response, PlatformError> {
    let principal = auth.require(Scope::DeploymentsRead)?;
    let service = query.service.as_deref();
    if !query.follow.unwrap_or(false) {
        let logs = state
            .platform
            .logs(principal, &name, service, query.tail)
            .await?;
        let mut text = String::new();
        for line in &logs.lines {
            text.push_str(&line.line);
            text.push('\n');
        }
        return Ok(Json(PlatformLogsBody {
            logs: text,
            deployment_id: logs.deployment_id,
        })
        .into_response());
    }
    let slot = state.streams.take(principal)?;
    let (deployment_id, lines) = state
        .platform
        .follow_logs(principal, &name, service, query.tail)
        .await?;
    Ok(followed_lines(
        &state,
        slot,
        deployment_id,
        lines,
        "text/plain; charset=utf-8",
        |line| format!("{}\n", line.line).into_bytes(),
    ))
}

/// Container logs of a service as Server-Sent Events: the last `tail` lines per pod,
/// then new lines (also of pods that start later); `event: log`, `data: {"pod","line"}`.
#[utoipa::path(get, path = "/api/deployments/{name}/logs/stream", operation_id = "platform_stream_logs", tag = "platform",
    params(("name" = String, Path, description = "The deployment's name"), PlatformLogStreamQuery),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "An endless text/event-stream of log lines; `event: end` once no pod is left", body = shiplog_wire::limits::SseMessage, content_type = "text/event-stream"),
        (status = 400, description = "A query parameter is malformed, tail is out of range, or service names no service of it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing of it is ready", body = Problem, content_type = "application/problem+json"),
        UnauthorizedStream, ReadDeploymentDenied, NoSuchDeployment, TooManyStreams, ClusterUnavailable,
    ))]
pub async fn stream_logs(
    State(state): State<AppState>,
    StreamAuth(auth): StreamAuth,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<PlatformLogStreamQuery>,
) -> Result<impl IntoResponse, PlatformError> {
    let principal = auth.require(Scope::DeploymentsRead)?;
    let slot = state.streams.take(principal)?;
    let (_, lines) = state
        .platform
        .follow_logs(principal, &name, query.service.as_deref(), query.tail)
        .await?;
    Ok(log_events(&state, slot, lines))
}

/// CPU and memory of a service (default: the first) over all pods, from metrics.k8s.io.
#[utoipa::path(get, path = "/api/deployments/{name}/metrics", operation_id = "platform_metrics", tag = "platform",
    params(("name" = String, Path, description = "The deployment's name"), ServiceQuery),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "Usage in Kubernetes quantities", body = MetricsBody),
        (status = 400, description = "service names no service of it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing of it is ready", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cluster has no metrics API (metrics-server), or it or the database is unavailable", body = Problem, content_type = "application/problem+json"),
        Unauthorized, ReadDeploymentDenied, NoSuchDeployment,
    ))]
pub async fn metrics(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<ServiceQuery>,
) -> Result<Json<MetricsBody>, PlatformError> {
    let principal = auth.require(Scope::DeploymentsRead)?;
    let usage = state
        .platform
        .metrics(principal, &name, query.service.as_deref())
        .await?;
    Ok(Json(usage.into()))
}

/// A deployment's changes (deploy, config, rollback, restart, auto-update, delete),
/// with who, when, what and how each ended, from the ledger; oldest first, paged.
#[utoipa::path(get, path = "/api/deployments/{name}/history", operation_id = "platform_history", tag = "platform",
    params(("name" = String, Path, description = "The deployment's name"), HistoryPageQuery),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "A page of revisions", body = HistoryBody),
        (status = 400, description = "A query parameter is malformed or limit is out of range", body = Problem, content_type = "application/problem+json"),
        Unauthorized, ReadDeploymentDenied, NoSuchDeployment, DatabaseUnavailable,
    ))]
pub async fn history(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryPageQuery>,
) -> Result<Json<HistoryBody>, PlatformError> {
    let principal = auth.require(Scope::DeploymentsRead)?;
    let page = state
        .platform
        .history(principal, &name, query.after, query.limit)
        .await?;
    Ok(Json(HistoryBody {
        revisions: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next,
    }))
}

/// The auto-update of a deployment: the settings (enabled, strategy, policy, range),
/// the pause a manual rollback leaves, and the watcher's last check (when, the tag
/// and the digest it saw, how it ended).
#[utoipa::path(get, path = "/api/deployments/auto-update", operation_id = "platform_get_auto_update", tag = "platform",
    params(NameQuery),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "The settings, the pause and the last check", body = AutoUpdateBody),
        (status = 400, description = "name is missing", body = Problem, content_type = "application/problem+json"),
        Unauthorized, ReadDeploymentDenied, NoSuchDeployment, DatabaseUnavailable,
    ))]
pub async fn get_auto_update(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(query): ApiQuery<NameQuery>,
) -> Result<Json<AutoUpdateBody>, PlatformError> {
    let principal = auth.require(Scope::DeploymentsRead)?;
    let status = state.platform.auto_update(principal, &query.name).await?;
    Ok(Json(AutoUpdateBody {
        deployment_name: query.name,
        state: status.into(),
    }))
}

/// Change the auto-update settings. While enabled, the watcher checks the registry of
/// the serving image every `--auto-update-interval` seconds (and at once on a registry
/// notification) and deploys a new image it finds, pinned to its digest, with actor
/// `auto-update`. The `digest` policy follows a new digest behind the deployed tag;
/// `semver` follows the highest tag inside `range`. The strategy becomes the
/// Kubernetes Deployment's (`rolling`: RollingUpdate, `recreate`: Recreate) from its
/// next apply. Enabling again ends a pause left by a manual rollback; an unchanged
/// setting records nothing.
#[utoipa::path(put, path = "/api/deployments/auto-update", operation_id = "platform_put_auto_update", tag = "platform", request_body = AutoUpdateUpdate,
    security(("bearer" = ["deployments:write"])),
    responses(
        (status = 200, description = "AutoUpdateConfigured is recorded (unless nothing changed)", body = AutoUpdateBody),
        (status = 400, description = "deployment_name or enabled is missing, strategy is not rolling or recreate, policy is not digest or semver, or range is missing (semver), given (digest) or not a version range", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It is being deleted", body = Problem, content_type = "application/problem+json"),
        Unauthorized, WriteDeploymentDenied, NoSuchDeployment, NotDeclaredJson, DatabaseUnavailable,
    ))]
pub async fn put_auto_update(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    PlatformJson(body): PlatformJson<AutoUpdateUpdate>,
) -> Result<Json<AutoUpdateBody>, PlatformError> {
    let principal = auth.require(Scope::DeploymentsWrite)?;
    let ctx = command_context(principal, request_id);
    let change = AutoUpdateChange {
        enabled: body.enabled,
        strategy: body.strategy.map(Into::into),
        policy: policy_of(body.policy, body.range.as_deref())?,
    };
    let status = state
        .platform
        .set_auto_update(&ctx, principal, &body.deployment_name, change)
        .await?;
    Ok(Json(AutoUpdateBody {
        deployment_name: body.deployment_name,
        state: status.into(),
    }))
}

/// Kubernetes events of a deployment's objects (Service, Deployments, pods), oldest first.
#[utoipa::path(get, path = "/api/deployments/{name}/events", operation_id = "platform_events", tag = "platform",
    params(("name" = String, Path, description = "The deployment's name")),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "The events the cluster still keeps", body = PlatformEventsBody),
        Unauthorized, ReadDeploymentDenied, NoSuchDeployment, ClusterUnavailable,
    ))]
pub async fn events(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PlatformEventsBody>, PlatformError> {
    let principal = auth.require(Scope::DeploymentsRead)?;
    let events = state.platform.kube_events(principal, &name).await?;
    Ok(Json(PlatformEventsBody {
        events: events.into_iter().map(Into::into).collect(),
    }))
}
