//! Operating a deployed usecase: restart, config, rollback (ledger commands the
//! process manager carries out) and logs, Kubernetes events and resource usage
//! (read from the cluster).

use crate::error::ApiError;
use crate::extract::{
    command_context, ApiJson, ApiPath, ApiQuery, Auth, OptionalJson, RequestId, StreamAuth,
};
use crate::routes::problems::{
    ClusterUnavailable, DatabaseUnavailable, MalformedQuery, NoSuchUsecase, NotDeclaredJson,
    NotJson, ReadUsecaseDenied, SecretsOrDatabaseUnavailable, TooManyStreams, Unauthorized,
    UnauthorizedStream, WriteUsecaseDenied,
};
use crate::state::AppState;
use crate::stream_slots::{holding, StreamSlot};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderName, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::stream::BoxStream;
use futures::StreamExt;
use shiplog_application::auto_update::AutoUpdateChange;
use shiplog_application::{ClusterError, LogLine, Scope};
use shiplog_wire::auto_update::{policy_of, AutoUpdateChangeBody, AutoUpdateState};
use shiplog_wire::operations::{
    ConfigAccepted, ConfigChange, ConfigResponse, KubeEventList, LogLineBody, LogStreamQuery,
    LogsQuery, LogsResponse, RestartAccepted, RollbackAccepted, RollbackRequest, UsageResponse,
};
use shiplog_wire::Problem;
use std::convert::Infallible;
use uuid::Uuid;

/// Roll the pods of the deployed deployment (same config, fresh pods).
#[utoipa::path(post, path = "/api/usecases/{id}/restart", tag = "operations",
    params(("id" = Uuid, Path, description = "The usecase id")),
    security(("bearer" = ["deployments:write"])),
    responses(
        (status = 202, description = "Accepted: a RestartRequested event; RestartSucceeded or RestartFailed follows when the pods rolled", body = RestartAccepted),
        (status = 409, description = "Nothing is deployed, or a restart is still in progress", body = Problem, content_type = "application/problem+json"),
        Unauthorized, WriteUsecaseDenied, NoSuchUsecase, DatabaseUnavailable,
    ))]
pub async fn restart(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<(StatusCode, Json<RestartAccepted>), ApiError> {
    let principal = auth
        .require_owner(&state, Scope::DeploymentsWrite, id)
        .await?;
    let accepted = state
        .operations
        .restart(&command_context(principal, request_id), id)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RestartAccepted {
            restart_id: accepted.id,
            deployment_id: accepted.deployment_id,
        }),
    ))
}

/// The usecase's auto-update: the settings (enabled, strategy, policy, range), the
/// pause a manual rollback leaves, and the watcher's last check.
#[utoipa::path(get, path = "/api/usecases/{id}/auto-update", tag = "operations",
    params(("id" = Uuid, Path, description = "The usecase id")),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "The settings, the pause and the last check", body = AutoUpdateState),
        Unauthorized, ReadUsecaseDenied, NoSuchUsecase, DatabaseUnavailable,
    ))]
pub async fn get_auto_update(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<AutoUpdateState>, ApiError> {
    auth.require_owner(&state, Scope::DeploymentsRead, id)
        .await?;
    Ok(Json(state.operations.auto_update(id).await?.into()))
}

/// Change the usecase's auto-update (what the body leaves out stays). While enabled,
/// the watcher checks the serving image's registry every `--auto-update-interval`
/// seconds (at once on a registry notification) and deploys a new image it finds,
/// pinned to its digest, with actor `auto-update`: `digest` follows a new digest
/// behind the tag, `semver` the highest tag inside `range`. Enabling again ends a
/// pause left by a manual rollback; unchanged settings record nothing.
#[utoipa::path(put, path = "/api/usecases/{id}/auto-update", tag = "operations", request_body = AutoUpdateChangeBody,
    params(("id" = Uuid, Path, description = "The usecase id")),
    security(("bearer" = ["deployments:write"])),
    responses(
        (status = 200, description = "AutoUpdateConfigured is recorded (unless nothing changed)", body = AutoUpdateState),
        (status = 409, description = "It is being deleted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "policy is not digest or semver, or range is missing (semver), given (digest) or not a version range", body = Problem, content_type = "application/problem+json"),
        Unauthorized, WriteUsecaseDenied, NoSuchUsecase, NotJson, NotDeclaredJson, DatabaseUnavailable,
    ))]
pub async fn put_auto_update(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<AutoUpdateChangeBody>,
) -> Result<Json<AutoUpdateState>, ApiError> {
    let principal = auth
        .require_owner(&state, Scope::DeploymentsWrite, id)
        .await?;
    let change = AutoUpdateChange {
        enabled: body.enabled,
        strategy: body.strategy.map(Into::into),
        policy: policy_of(body.policy, body.range.as_deref())?,
    };
    let status = state
        .operations
        .configure_auto_update(&command_context(principal, request_id), id, change)
        .await?;
    Ok(Json(status.into()))
}

/// The environment variables of the deployed deployment.
#[utoipa::path(get, path = "/api/usecases/{id}/config", tag = "operations",
    params(("id" = Uuid, Path, description = "The usecase id")),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "The deployed deployment and its environment", body = ConfigResponse),
        (status = 404, description = "No such usecase", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing of it is deployed", body = Problem, content_type = "application/problem+json"),
        Unauthorized, ReadUsecaseDenied, DatabaseUnavailable,
    ))]
pub async fn get_config(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<ConfigResponse>, ApiError> {
    auth.require_owner(&state, Scope::DeploymentsRead, id)
        .await?;
    Ok(Json(state.operations.config(id).await?.into()))
}

/// Replace the environment variables: a new deployment with the same image and
/// settings rolls them out and supersedes the deployed one through the usual lifecycle.
#[utoipa::path(put, path = "/api/usecases/{id}/config", tag = "operations", request_body = ConfigChange,
    params(("id" = Uuid, Path, description = "The usecase id")),
    security(("bearer" = ["deployments:write"])),
    responses(
        (status = 202, description = "Accepted: ConfigChangeRequested and the new deployment's DeploymentRequested", body = ConfigAccepted),
        (status = 409, description = "Nothing is deployed to take the image from", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "env is missing, or a variable name is invalid (the field names it: env.NAME, secretEnv.NAME, secretRefs[i].secret.key), or a variable is both plain and secret", body = Problem, content_type = "application/problem+json"),
        Unauthorized, WriteUsecaseDenied, NoSuchUsecase, NotJson, NotDeclaredJson, SecretsOrDatabaseUnavailable,
    ))]
pub async fn put_config(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ConfigChange>,
) -> Result<(StatusCode, Json<ConfigAccepted>), ApiError> {
    let principal = auth
        .require_owner(&state, Scope::DeploymentsWrite, id)
        .await?;
    let (env, secrets) = body.parse()?;
    let accepted = state
        .operations
        .change_config(&command_context(principal, request_id), id, env, secrets)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ConfigAccepted {
            id: accepted.id,
            based_on: accepted.deployment_id,
        }),
    ))
}

/// Deploy again the config of an earlier deployment (default: the one deployed
/// before the current), as a new deployment whose events say which it restores.
#[utoipa::path(post, path = "/api/usecases/{id}/rollback", tag = "operations", request_body(content = RollbackRequest, description = "Optional; an empty body rolls back to the deployment before the current"),
    params(("id" = Uuid, Path, description = "The usecase id")),
    security(("bearer" = ["deployments:write"])),
    responses(
        (status = 202, description = "Accepted: the new deployment's DeploymentRequested and RollbackRequested", body = RollbackAccepted),
        (status = 404, description = "No such usecase", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing deployed and no deploymentId, no earlier deployed deployment, or deploymentId names no finished deployment of this usecase", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown or mistyped field", body = Problem, content_type = "application/problem+json"),
        Unauthorized, WriteUsecaseDenied, NotJson, NotDeclaredJson, DatabaseUnavailable,
    ))]
pub async fn rollback(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
    OptionalJson(body): OptionalJson<RollbackRequest>,
) -> Result<(StatusCode, Json<RollbackAccepted>), ApiError> {
    let principal = auth
        .require_owner(&state, Scope::DeploymentsWrite, id)
        .await?;
    let accepted = state
        .operations
        .rollback(
            &command_context(principal, request_id),
            id,
            body.deployment_id,
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RollbackAccepted {
            id: accepted.id,
            rollback_of: accepted.deployment_id,
        }),
    ))
}

/// Container logs of the deployed deployment's pods: the last `tail` lines per pod
/// as JSON, or with `follow=true` those and then new lines as NDJSON while they come.
#[utoipa::path(get, path = "/api/usecases/{id}/logs", tag = "operations",
    params(("id" = Uuid, Path, description = "The usecase id"), LogsQuery),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "The lines (follow=false), or an endless application/x-ndjson stream of {pod, line} (follow=true)", body = LogsResponse),
        (status = 404, description = "No such usecase or deployment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing is deployed and no deploymentId was named", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "tail out of range", body = Problem, content_type = "application/problem+json"),
        Unauthorized, ReadUsecaseDenied, MalformedQuery, TooManyStreams, ClusterUnavailable,
    ))]
pub async fn logs(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Response, ApiError> {
    auth.require_owner(&state, Scope::DeploymentsRead, id)
        .await?;
    if !query.follow.unwrap_or(false) {
        let logs = state
            .operations
            .logs(id, query.deployment_id, None, query.tail)
            .await?;
        return Ok(Json(LogsResponse::from(logs)).into_response());
    }
    let slot = state.streams.take(&auth.0)?;
    let (deployment_id, lines) = state
        .operations
        .follow_logs(id, query.deployment_id, None, query.tail)
        .await?;
    Ok(followed_lines(
        &state,
        slot,
        deployment_id,
        lines,
        "application/x-ndjson",
        |line| {
            let mut json = serde_json::to_vec(&LogLineBody::from(line)).unwrap_or_default();
            json.push(b'\n');
            json
        },
    ))
}

/// A followed log as an endless body of `content_type`, one `render`ed chunk per
/// line, ending at shutdown or at the first error (the client can reconnect); it
/// holds `slot` of its token's streams until then.
pub(crate) fn followed_lines(
    state: &AppState,
    slot: StreamSlot,
    deployment_id: Uuid,
    lines: BoxStream<'static, Result<LogLine, ClusterError>>,
    content_type: &str,
    render: fn(LogLine) -> Vec<u8>,
) -> Response {
    let body = lines
        .take_while(|line| std::future::ready(line.is_ok()))
        .filter_map(|line| std::future::ready(line.ok()))
        .map(move |line| Ok::<_, Infallible>(render(line)))
        .take_until(state.stopping.clone().cancelled_owned());
    let body = holding(body, slot);
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                HeaderName::from_static("x-accel-buffering"),
                "no".to_owned(),
            ),
            (
                HeaderName::from_static("x-shiplog-deployment"),
                deployment_id.to_string(),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Container logs as Server-Sent Events: the last `tail` lines per pod, then new
/// lines as they come, also from pods that start later (a restart rolls new ones);
/// each message is `event: log`, `data: {"pod","line"}`.
#[utoipa::path(get, path = "/api/usecases/{id}/logs/stream", tag = "operations",
    params(("id" = Uuid, Path, description = "The usecase id"), LogStreamQuery),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "An endless text/event-stream of log lines, also of pods that start later (a restart); `event: end` once the deployment has no pod left", body = shiplog_wire::limits::SseMessage, content_type = "text/event-stream"),
        (status = 404, description = "No such usecase or deployment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing is deployed and no deploymentId was named", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "tail out of range", body = Problem, content_type = "application/problem+json"),
        UnauthorizedStream, ReadUsecaseDenied, MalformedQuery, TooManyStreams, ClusterUnavailable,
    ))]
pub async fn stream_logs(
    State(state): State<AppState>,
    StreamAuth(auth): StreamAuth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<LogStreamQuery>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require_owner(&state, Scope::DeploymentsRead, id)
        .await?;
    let slot = state.streams.take(&auth.0)?;
    let (_, lines) = state
        .operations
        .follow_logs(id, query.deployment_id, None, query.tail)
        .await?;
    Ok(log_events(&state, slot, lines))
}

/// A followed log as Server-Sent Events: `event: log` per line, `event: error` when
/// the cluster fails, `event: end` once no pod is left; it ends at shutdown, and
/// holds `slot` of its token's streams until then.
pub(crate) fn log_events(
    state: &AppState,
    slot: StreamSlot,
    lines: BoxStream<'static, Result<LogLine, ClusterError>>,
) -> impl IntoResponse {
    let messages = lines
        .map(|line| match line {
            Ok(line) => log_event(line),
            Err(e) => Event::default()
                .event("error")
                .data(serde_json::json!({"detail": e.to_string()}).to_string()),
        })
        .chain(futures::stream::once(async {
            Event::default()
                .event("end")
                .data(r#"{"detail":"the deployment has no pod left"}"#)
        }))
        .map(Ok::<_, Infallible>)
        .take_until(state.stopping.clone().cancelled_owned());
    let messages = holding(messages, slot);
    let no_buffering = [(HeaderName::from_static("x-accel-buffering"), "no")];
    (
        no_buffering,
        Sse::new(messages).keep_alive(
            KeepAlive::new()
                .interval(state.keep_alive)
                .text("keep-alive"),
        ),
    )
}

fn log_event(line: LogLine) -> Event {
    let data = serde_json::to_string(&LogLineBody::from(line)).unwrap_or_default();
    Event::default().event("log").data(data)
}

/// Kubernetes events of the usecase's Service, Deployments and pods, oldest first.
#[utoipa::path(get, path = "/api/usecases/{id}/kube-events", tag = "operations",
    params(("id" = Uuid, Path, description = "The usecase id")),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "The events the cluster still keeps (Kubernetes drops them after an hour by default)", body = KubeEventList),
        Unauthorized, ReadUsecaseDenied, NoSuchUsecase, ClusterUnavailable,
    ))]
pub async fn kube_events(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<KubeEventList>, ApiError> {
    auth.require_owner(&state, Scope::DeploymentsRead, id)
        .await?;
    let items = state.operations.kube_events(id).await?;
    Ok(Json(KubeEventList {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// CPU and memory of the deployed deployment's pods, from the cluster's metrics.k8s.io.
#[utoipa::path(get, path = "/api/usecases/{id}/metrics", tag = "operations",
    params(("id" = Uuid, Path, description = "The usecase id")),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "Usage per pod and in total", body = UsageResponse),
        (status = 409, description = "Nothing is deployed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cluster has no metrics API (metrics-server), or it or the database is unavailable", body = Problem, content_type = "application/problem+json"),
        Unauthorized, ReadUsecaseDenied, NoSuchUsecase,
    ))]
pub async fn usage(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<UsageResponse>, ApiError> {
    auth.require_owner(&state, Scope::DeploymentsRead, id)
        .await?;
    Ok(Json(state.operations.usage(id, None).await?.into()))
}
