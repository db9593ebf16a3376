//! `/api/tokens`: create (secret shown once), list and revoke API tokens. Needs `admin`.

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Auth};
use crate::routes::problems::{
    AdminOnly, DatabaseUnavailable, NotDeclaredJson, NotJson, Unauthorized,
};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use shiplog_application::{NewToken, Scope};
use shiplog_domain::InvalidField;
use shiplog_wire::usecases::{CreateToken, TokenCreated, TokenResponse};
use shiplog_wire::Problem;
use uuid::Uuid;

/// Create a token. The secret is in this response only; shiplog stores its hash.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = CreateToken,
    security(("bearer" = ["admin"])),
    responses(
        (status = 201, description = "Created", body = TokenCreated, links(
            ("RevokeToken" = (operation_id = "revoke_token", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 409, description = "An active token has this name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A team of `teams` does not exist (the detail names `teams[i]`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A blank name or subject, one with control characters, no scope or an unknown scope", body = Problem, content_type = "application/problem+json"),
        Unauthorized, AdminOnly, NotJson, NotDeclaredJson, DatabaseUnavailable,
    ))]
pub async fn create_token(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let principal = auth.require(Scope::Admin)?;
    let scopes = body
        .scopes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<Scope>()
                .map_err(|reason| InvalidField::new(format!("scopes[{i}]"), reason))
        })
        .collect::<Result<Vec<_>, _>>()?;
    state.teams.check_exist(&body.teams, "teams").await?;
    let new = NewToken {
        name: body.name,
        scopes,
        subject: body.subject,
        teams: body.teams,
        created_by: principal.name.clone(),
    };
    let (info, token) = state.auth.issue(new).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            info: info.into(),
            token,
        }),
    ))
}

/// List active tokens (without secrets).
#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "Active tokens, oldest first", body = Vec<TokenResponse>),
        Unauthorized, AdminOnly, DatabaseUnavailable,
    ))]
pub async fn list_tokens(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<TokenResponse>>, ApiError> {
    auth.require(Scope::Admin)?;
    Ok(Json(
        state
            .auth
            .list()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Revoke a token; it stops working at once.
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
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    auth.require(Scope::Admin)?;
    state.auth.revoke(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
