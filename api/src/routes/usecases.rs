//! `/api/usecases`: register, list, show and delete usecases.

use crate::error::ApiError;
use crate::extract::{command_context, ApiJson, ApiPath, ApiQuery, Auth, RequestId};
use crate::routes::links::USECASE_ID;
use crate::routes::problems::{
    DatabaseUnavailable, MalformedQuery, NoSuchUsecase, NotDeclaredJson, Unauthorized,
    UnknownTeamId,
};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use shiplog_application::{page_size, Scope, UsecaseFilter};
use shiplog_wire::ledger::AtQuery;
use shiplog_wire::usecases::{
    CreateUsecase, TeamQuery, UsecasePage, UsecaseQuery, UsecaseResponse,
};
use shiplog_wire::Problem;
use uuid::Uuid;

/// Register a usecase. The name is unique across the installation.
#[utoipa::path(post, path = "/api/usecases", tag = "usecases", request_body = CreateUsecase,
    params(TeamQuery),
    security(("bearer" = ["usecases:write"])),
    responses(
        (status = 201, description = "Registered, owned by the token's subject and team", body = UsecaseResponse, links(
            ("GetUsecase" = (operation_id = "get_usecase", parameters(("id" = USECASE_ID)))),
            ("DeleteUsecase" = (operation_id = "delete_usecase", parameters(("id" = USECASE_ID)))),
            ("RequestDeployment" = (operation_id = "request_deployment", parameters(("id" = USECASE_ID)))),
            ("ListDeployments" = (operation_id = "list_deployments", parameters(("id" = USECASE_ID)))),
            ("Undeploy" = (operation_id = "undeploy", parameters(("id" = USECASE_ID)))),
            ("PutConfig" = (operation_id = "put_config", parameters(("id" = USECASE_ID)))),
            ("Restart" = (operation_id = "restart", parameters(("id" = USECASE_ID)))),
            ("Rollback" = (operation_id = "rollback", parameters(("id" = USECASE_ID)))),
            ("Logs" = (operation_id = "logs", parameters(("id" = USECASE_ID)))),
            ("KubeEvents" = (operation_id = "kube_events", parameters(("id" = USECASE_ID)))),
            ("Usage" = (operation_id = "usage", parameters(("id" = USECASE_ID)))),
            ("History" = (operation_id = "usecase_history", parameters(("id" = USECASE_ID)))),
        )),
        (status = 400, description = "Body is not JSON, or team_id is not a team id", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Token lacks usecases:write, its subject is not a member of team_id, or the deployment limit of the team (or of personal usecases) is reached with billing on", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing, unknown or invalid", body = Problem, content_type = "application/problem+json"),
        Unauthorized, UnknownTeamId, NotDeclaredJson, DatabaseUnavailable,
    ))]
pub async fn create_usecase(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    ApiQuery(team): ApiQuery<TeamQuery>,
    ApiJson(body): ApiJson<CreateUsecase>,
) -> Result<(StatusCode, Json<UsecaseResponse>), ApiError> {
    let principal = auth.require(Scope::UsecasesWrite)?;
    let (name, description) = body.parse()?;
    let ownership = state.teams.ownership(principal, team.team_id).await?;
    let view = state
        .usecases
        .register(
            &command_context(principal, request_id),
            ownership,
            name,
            description,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// List the usecases the caller may see (its own and its teams'; an admin all) in
/// registration order, optionally filtered by name and team.
#[utoipa::path(get, path = "/api/usecases", tag = "usecases", params(UsecaseQuery),
    security(("bearer" = ["usecases:read"])),
    responses(
        (status = 200, description = "One page of usecases", body = UsecasePage),
        (status = 403, description = "Token lacks usecases:read, or its subject is not a member of team_id", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "limit or after out of range", body = Problem, content_type = "application/problem+json"),
        Unauthorized, UnknownTeamId, MalformedQuery, DatabaseUnavailable,
    ))]
pub async fn list_usecases(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(query): ApiQuery<UsecaseQuery>,
) -> Result<Json<UsecasePage>, ApiError> {
    let principal = auth.require(Scope::UsecasesRead)?;
    if let Some(team) = query.team_id {
        state.teams.get(principal, team).await?;
    }
    let filter = UsecaseFilter {
        visible: principal.visible(),
        team: query.team_id,
        name: query.name,
        // 0 is out of range here as on every other paged route, not "the default".
        limit: page_size(query.limit)?,
        after: query.after,
    };
    Ok(Json(state.usecases.list(filter).await?.into()))
}

/// Show one usecase; with `at`, as it was at that instant (rebuilt from the ledger).
#[utoipa::path(get, path = "/api/usecases/{id}", tag = "usecases",
    params(("id" = Uuid, Path, description = "The usecase id"), AtQuery),
    security(("bearer" = ["usecases:read"])),
    responses(
        (status = 200, description = "The usecase", body = UsecaseResponse),
        (status = 400, description = "at is not an RFC 3339 instant", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Token lacks usecases:read, or the usecase belongs to another owner or team (ownership verification failed)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such usecase (at that instant, with at)", body = Problem, content_type = "application/problem+json"),
        Unauthorized, DatabaseUnavailable,
    ))]
pub async fn get_usecase(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<AtQuery>,
) -> Result<Json<UsecaseResponse>, ApiError> {
    auth.require_owner(&state, Scope::UsecasesRead, id).await?;
    let usecase = match query.at {
        Some(at) => state.audit.usecase_at(id, at).await?,
        None => state.usecases.get(id).await?,
    };
    Ok(Json(usecase.into()))
}

/// Delete (deregister) a usecase; refused while anything is deployed or in flight.
#[utoipa::path(delete, path = "/api/usecases/{id}", tag = "usecases",
    params(("id" = Uuid, Path, description = "The usecase id")),
    security(("bearer" = ["usecases:write"])),
    responses(
        (status = 204, description = "Deleted; the name is free again"),
        (status = 403, description = "Token lacks usecases:write, or the usecase belongs to another owner or team (ownership verification failed)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Deployed or a deployment in flight", body = Problem, content_type = "application/problem+json"),
        Unauthorized, NoSuchUsecase, DatabaseUnavailable,
    ))]
pub async fn delete_usecase(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let principal = auth.require_owner(&state, Scope::UsecasesWrite, id).await?;
    state
        .usecases
        .delete(&command_context(principal, request_id), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
