//! `/api/teams`: teams (changed by admins, as ledger events) and their usage.

use crate::error::ApiError;
use crate::extract::{command_context, ApiJson, ApiPath, ApiQuery, Auth, RequestId};
use crate::routes::problems::{
    AdminOnly, DatabaseUnavailable, NoSuchTeam, NotDeclaredJson, NotJson, Unauthorized,
};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use shiplog_application::Scope;
use shiplog_domain::{TeamName, Tier};
use shiplog_wire::teams::{CreateTeam, TeamBody, UpdateTeam, UsageBody, UsageQuery};
use shiplog_wire::Problem;
use uuid::Uuid;

/// The scopes that may read teams (an admin's implies both).
const READ: &[Scope] = &[Scope::DeploymentsRead, Scope::UsecasesRead];

/// Create a team (a `TeamCreated` event). Tokens join it through their `teams`.
#[utoipa::path(post, path = "/api/teams", tag = "teams", request_body = CreateTeam,
    security(("bearer" = ["admin"])),
    responses(
        (status = 201, description = "Created", body = TeamBody, links(
            ("GetTeam" = (operation_id = "get_team", parameters(("id" = "$response.body#/id")))),
            ("UpdateTeam" = (operation_id = "update_team", parameters(("id" = "$response.body#/id")))),
            ("TeamUsage" = (operation_id = "team_usage", parameters(("id" = "$response.body#/id")))),
            ("ListUsecases" = (operation_id = "list_usecases", parameters(("team_id" = "$response.body#/id")))),
            ("CreateUsecase" = (operation_id = "create_usecase", parameters(("team_id" = "$response.body#/id")))),
            ("ListDeployments" = (operation_id = "platform_list", parameters(("team_id" = "$response.body#/id")))),
        )),
        (status = 409, description = "A team has this name", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "name is missing or invalid, or tier is not free, business or enterprise", body = Problem, content_type = "application/problem+json"),
        Unauthorized, AdminOnly, NotJson, NotDeclaredJson, DatabaseUnavailable,
    ))]
pub async fn create_team(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    ApiJson(body): ApiJson<CreateTeam>,
) -> Result<(StatusCode, Json<TeamBody>), ApiError> {
    let principal = auth.require(Scope::Admin)?;
    let name = TeamName::parse(&body.name)?;
    let tier = body.tier.map(Tier::from).unwrap_or_default();
    let team = state
        .teams
        .create(&command_context(principal, request_id), name, tier)
        .await?;
    Ok((StatusCode::CREATED, Json(team.into())))
}

/// The teams the caller may see: every team for an admin, else its own.
#[utoipa::path(get, path = "/api/teams", tag = "teams",
    security(("bearer" = ["deployments:read"]), ("bearer" = ["usecases:read"])),
    responses(
        (status = 200, description = "The teams, by name", body = Vec<TeamBody>),
        (status = 403, description = "Token lacks deployments:read and usecases:read", body = Problem, content_type = "application/problem+json"),
        Unauthorized, DatabaseUnavailable,
    ))]
pub async fn list_teams(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<TeamBody>>, ApiError> {
    let principal = auth.require_any(READ)?;
    let teams = state.teams.list(principal).await?;
    Ok(Json(teams.into_iter().map(Into::into).collect()))
}

/// One team, for its members and admins.
#[utoipa::path(get, path = "/api/teams/{id}", tag = "teams",
    params(("id" = Uuid, Path, description = "The team id")),
    security(("bearer" = ["deployments:read"]), ("bearer" = ["usecases:read"])),
    responses(
        (status = 200, description = "The team", body = TeamBody),
        (status = 403, description = "Token lacks deployments:read and usecases:read, or is not a member of the team (ownership verification failed)", body = Problem, content_type = "application/problem+json"),
        Unauthorized, NoSuchTeam, DatabaseUnavailable,
    ))]
pub async fn get_team(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<TeamBody>, ApiError> {
    let principal = auth.require_any(READ)?;
    Ok(Json(state.teams.get(principal, id).await?.into()))
}

/// Rename a team and/or change its tier (`TeamRenamed`, `TeamTierChanged`); a new
/// tier's limit applies to the next creation at once. What does not change records nothing.
#[utoipa::path(put, path = "/api/teams/{id}", tag = "teams", request_body = UpdateTeam,
    params(("id" = Uuid, Path, description = "The team id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The team now", body = TeamBody),
        (status = 409, description = "Another team has this name", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "name is invalid, or tier is not free, business or enterprise", body = Problem, content_type = "application/problem+json"),
        Unauthorized, AdminOnly, NoSuchTeam, NotJson, NotDeclaredJson, DatabaseUnavailable,
    ))]
pub async fn update_team(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateTeam>,
) -> Result<Json<TeamBody>, ApiError> {
    let principal = auth.require(Scope::Admin)?;
    let name = body.name.as_deref().map(TeamName::parse).transpose()?;
    let team = state
        .teams
        .update(
            &command_context(principal, request_id),
            id,
            name,
            body.tier.map(Into::into),
        )
        .await?;
    Ok(Json(team.into()))
}

/// A team's deployments over a time range, from the ledger: created and deleted in
/// it, and existing at its end (the billing record seed 002 speaks of).
#[utoipa::path(get, path = "/api/teams/{id}/usage", tag = "teams",
    params(("id" = Uuid, Path, description = "The team id"), UsageQuery),
    security(("bearer" = ["deployments:read"]), ("bearer" = ["usecases:read"])),
    responses(
        (status = 200, description = "The usage (to not after from is an empty range: nothing created or deleted in it)", body = UsageBody),
        (status = 400, description = "from or to is not an RFC 3339 instant", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Token lacks deployments:read and usecases:read, or is not a member of the team (ownership verification failed)", body = Problem, content_type = "application/problem+json"),
        Unauthorized, NoSuchTeam, DatabaseUnavailable,
    ))]
pub async fn team_usage(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<UsageBody>, ApiError> {
    let principal = auth.require_any(READ)?;
    let usage = state
        .teams
        .usage(principal, id, query.from, query.to)
        .await?;
    Ok(Json(usage.into()))
}
