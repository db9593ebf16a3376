//! `/api/tokens`: create (secret shown once), list, change and revoke API tokens.
//! Needs `admin`. Each change is a ledger event (`TokenCreated`,
//! `TokenScopesChanged`, `TokenRevoked`) with its actor and reason.

use crate::error::ApiError;
use crate::extract::{command_context, ApiJson, ApiPath, Auth, RequestId};
use crate::routes::problems::{
    AdminOnly, DatabaseUnavailable, NotDeclaredJson, NotJson, Unauthorized,
};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use shiplog_application::{NewToken, Scope};
use shiplog_domain::InvalidField;
use shiplog_wire::usecases::{CreateToken, TokenCreated, TokenResponse, UpdateToken};
use shiplog_wire::Problem;
use uuid::Uuid;

/// Create a token (a `TokenCreated` event, with the caller as actor and the
/// `X-Shiplog-Reason`). The secret is in this response only; shiplog stores its hash,
/// outside the ledger.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = CreateToken,
    security(("bearer" = ["admin"])),
    responses(
        (status = 201, description = "Created", body = TokenCreated, links(
            ("UpdateToken" = (operation_id = "update_token", parameters(("id" = "$response.body#/id")))),
            ("RevokeToken" = (operation_id = "revoke_token", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 409, description = "An active token has this name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A team of `teams` does not exist (the detail names `teams[i]`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A blank name or subject, one with control characters, no scope or an unknown scope; `expiresIn` not 1 to 31536000 seconds", body = Problem, content_type = "application/problem+json"),
        Unauthorized, AdminOnly, NotJson, NotDeclaredJson, DatabaseUnavailable,
    ))]
pub async fn create_token(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let principal = auth.require(Scope::Admin)?;
    let scopes = parse_scopes(&body.scopes)?;
    state.teams.check_exist(&body.teams, "teams").await?;
    let new = NewToken {
        name: body.name,
        scopes,
        subject: body.subject,
        teams: body.teams,
        expires_in: body.expires_in,
    };
    let ctx = command_context(principal, request_id);
    let (info, token) = state.access.issue(&ctx, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            info: info.into(),
            token,
        }),
    ))
}

/// The scopes of a body, each known (422 naming `scopes[i]` otherwise).
fn parse_scopes(raw: &[String]) -> Result<Vec<Scope>, InvalidField> {
    raw.iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<Scope>()
                .map_err(|reason| InvalidField::new(format!("scopes[{i}]"), reason))
        })
        .collect()
}

/// List tokens that are not revoked (without secrets), expired ones with their expiry.
#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "Tokens not revoked, oldest first", body = Vec<TokenResponse>),
        Unauthorized, AdminOnly, DatabaseUnavailable,
    ))]
pub async fn list_tokens(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<TokenResponse>>, ApiError> {
    auth.require(Scope::Admin)?;
    Ok(Json(
        state
            .access
            .list()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Change what a token may do, at once (a `TokenScopesChanged` event; none when
/// the scopes are the same).
#[utoipa::path(patch, path = "/api/tokens/{id}", tag = "tokens", request_body = UpdateToken,
    params(("id" = Uuid, Path, description = "The token id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The token now", body = TokenResponse),
        (status = 404, description = "No active token with this id", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No scope, or an unknown scope", body = Problem, content_type = "application/problem+json"),
        Unauthorized, AdminOnly, NotJson, NotDeclaredJson, DatabaseUnavailable,
    ))]
pub async fn update_token(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateToken>,
) -> Result<Json<TokenResponse>, ApiError> {
    let principal = auth.require(Scope::Admin)?;
    let scopes = parse_scopes(&body.scopes)?;
    let ctx = command_context(principal, request_id);
    let token = state.access.change_scopes(&ctx, id, scopes).await?;
    Ok(Json(token.into()))
}

/// Revoke a token (a `TokenRevoked` event); it stops working at once.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens",
    params(("id" = Uuid, Path, description = "The token id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No active token with this id", body = Problem, content_type = "application/problem+json"),
        Unauthorized, AdminOnly, DatabaseUnavailable,
    ))]
pub async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let principal = auth.require(Scope::Admin)?;
    state
        .access
        .revoke(&command_context(principal, request_id), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
