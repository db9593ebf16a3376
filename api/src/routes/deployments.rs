//! `/api/usecases/{id}/deployments`: deploy, list, show and undeploy.

use crate::error::ApiError;
use crate::extract::{command_context, ApiJson, ApiPath, ApiQuery, Auth, RequestId};
use crate::routes::problems::{
    DatabaseUnavailable, MalformedQuery, NoSuchUsecase, NotDeclaredJson, NotJson,
    ReadUsecaseDenied, SecretsOrDatabaseUnavailable, Unauthorized, WriteUsecaseDenied,
};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use shiplog_application::Scope;
use shiplog_wire::ledger::AtQuery;
use shiplog_wire::usecases::{
    CreateDeployment, DeploymentAccepted, DeploymentPage, DeploymentResponse, PageQuery,
};
use shiplog_wire::Problem;
use uuid::Uuid;

/// Request a deployment. Older requests still in flight are superseded; the
/// deployed one keeps serving until the new one is deployed.
#[utoipa::path(post, path = "/api/usecases/{id}/deployments", tag = "deployments", request_body = CreateDeployment,
    params(("id" = Uuid, Path, description = "The usecase id")),
    security(("bearer" = ["deployments:write"])),
    responses(
        (status = 202, description = "Accepted; follow it with GET .../deployments/{deploymentId}", body = DeploymentAccepted, links(
            ("GetDeployment" = (operation_id = "get_deployment", parameters(("id" = "$request.path.id"), ("deploymentId" = "$response.body#/id")))),
            ("Logs" = (operation_id = "logs", parameters(("id" = "$request.path.id"), ("deploymentId" = "$response.body#/id")))),
            ("Rollback" = (operation_id = "rollback", parameters(("id" = "$request.path.id")), request_body = json!({"deploymentId": "$response.body#/id"}))),
        )),
        (status = 422, description = "A field is missing, unknown or invalid (for example the image reference, a secretEnv name, a secretRefs entry, or a variable both in env and secretEnv)", body = Problem, content_type = "application/problem+json"),
        Unauthorized, WriteUsecaseDenied, NoSuchUsecase, NotJson, NotDeclaredJson, SecretsOrDatabaseUnavailable,
    ))]
pub async fn request_deployment(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateDeployment>,
) -> Result<(StatusCode, Json<DeploymentAccepted>), ApiError> {
    let principal = auth
        .require_owner(&state, Scope::DeploymentsWrite, id)
        .await?;
    let (config, secrets) = body.config.parse()?;
    let deployment_id = state
        .usecases
        .request_deployment(&command_context(principal, request_id), id, config, secrets)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeploymentAccepted { id: deployment_id }),
    ))
}

/// List a usecase's deployments, newest first.
#[utoipa::path(get, path = "/api/usecases/{id}/deployments", tag = "deployments",
    params(("id" = Uuid, Path, description = "The usecase id"), PageQuery),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "One page of deployments", body = DeploymentPage),
        (status = 422, description = "limit or after out of range", body = Problem, content_type = "application/problem+json"),
        Unauthorized, ReadUsecaseDenied, NoSuchUsecase, MalformedQuery, DatabaseUnavailable,
    ))]
pub async fn list_deployments(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<DeploymentPage>, ApiError> {
    auth.require_owner(&state, Scope::DeploymentsRead, id)
        .await?;
    Ok(Json(
        state
            .usecases
            .deployments(id, query.limit, query.after)
            .await?
            .into(),
    ))
}

/// Show one deployment: its status and, on error, the message; with `at`, as it was then.
#[utoipa::path(get, path = "/api/usecases/{id}/deployments/{deploymentId}", tag = "deployments",
    params(("id" = Uuid, Path, description = "The usecase id"), ("deploymentId" = Uuid, Path, description = "The deployment id"), AtQuery),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "The deployment", body = DeploymentResponse),
        (status = 400, description = "at is not an RFC 3339 instant", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such usecase or deployment (at that instant, with at)", body = Problem, content_type = "application/problem+json"),
        Unauthorized, ReadUsecaseDenied, DatabaseUnavailable,
    ))]
pub async fn get_deployment(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath((id, deployment_id)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(query): ApiQuery<AtQuery>,
) -> Result<Json<DeploymentResponse>, ApiError> {
    auth.require_owner(&state, Scope::DeploymentsRead, id)
        .await?;
    let deployment = match query.at {
        Some(at) => state.audit.deployment_at(id, deployment_id, at).await?,
        None => state.usecases.deployment(id, deployment_id).await?,
    };
    Ok(Json(deployment.into()))
}

/// Undeploy the usecase: the deployed deployment and any still in flight.
#[utoipa::path(delete, path = "/api/usecases/{id}/deployments", tag = "deployments",
    params(("id" = Uuid, Path, description = "The usecase id")),
    security(("bearer" = ["deployments:write"])),
    responses(
        (status = 202, description = "Undeploy accepted"),
        (status = 409, description = "Nothing is deployed, or an undeploy is already under way", body = Problem, content_type = "application/problem+json"),
        Unauthorized, WriteUsecaseDenied, NoSuchUsecase, DatabaseUnavailable,
    ))]
pub async fn undeploy(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let principal = auth
        .require_owner(&state, Scope::DeploymentsWrite, id)
        .await?;
    state
        .usecases
        .undeploy(&command_context(principal, request_id), id)
        .await?;
    Ok(StatusCode::ACCEPTED)
}
