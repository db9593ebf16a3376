//! The web console: server-rendered pages (maud) over the same application services the
//! API routes call, for people who are not at a terminal. Sessions come from an API
//! token (`/login`); pages work without JavaScript, and htmx with its SSE extension
//! (vendored, served from here) updates status badges live.

pub mod assets;
pub mod deployment;
pub mod deployments;
pub mod layout;
pub mod ledger;
pub mod live;
pub mod login;
pub mod session;

use crate::error::{ApiError, PlatformError};
use crate::extract::JsonOrForm;
use crate::state::AppState;
use axum::extract::{FromRequest, Request};
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use layout::{error_note, page, Section};
use maud::html;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The console's routes (pages, their form posts, the live fragments and the assets).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { session::see_other("/deployments") }))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route(
            "/deployments",
            get(deployments::show).post(deployments::create),
        )
        .route("/deployments/{name}", get(deployment::show))
        .route(
            "/deployments/{name}/delete",
            get(deployments::confirm_delete),
        )
        .route("/deployments/{name}/restart", post(deployment::restart))
        .route(
            "/deployments/{name}/config",
            post(deployment::change_config),
        )
        .route("/deployments/{name}/rollback", post(deployment::rollback))
        .route("/console/live/deployments", get(live::deployments))
        .route("/console/live/deployments/{name}", get(live::deployment))
        .route("/console/live/ledger", get(ledger::live))
        .route("/ledger", get(ledger::ledger))
        .route("/audit", get(ledger::audit))
        .route("/console/assets/{file}", get(assets::asset))
}

/// A console page's failure, answered as an HTML page (a browser is reading) with the
/// status, title and detail the API would give as problem+json.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(err: E) -> Self {
        Self(err.into())
    }
}

impl From<PlatformError> for PageError {
    fn from(err: PlatformError) -> Self {
        Self(err.0)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        // The API's own answer decides the status, the logging and Retry-After.
        let problem = self.0.problem();
        let answered = self.0.into_response();
        let status = answered.status();
        let retry = answered.headers().get(RETRY_AFTER).cloned();
        let body = page(
            &problem.title,
            Section::Deployments,
            None,
            html! {
                section.card {
                    h1 { (status.as_u16()) " " (problem.title) }
                    (error_note(&problem.detail))
                    @if let Some(field) = &problem.field { p { "Field: " code { (field) } } }
                    p { a href="/deployments" { "Back to the deployments" } }
                }
            },
        );
        let mut response = (status, body).into_response();
        if let Some(retry) = retry {
            response.headers_mut().insert(RETRY_AFTER, retry);
        }
        response
    }
}

/// A console form post: a URL-encoded body read with the API's own checks (NUL
/// characters and invalid UTF-8 refused naming the field, as problem+json).
pub struct ConsoleForm<T>(pub T);

impl<T: DeserializeOwned + Serialize, S: Send + Sync> FromRequest<S> for ConsoleForm<T> {
    type Rejection = PlatformError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match JsonOrForm::from_request(req, state).await? {
            JsonOrForm::Json(value) | JsonOrForm::Form(value) => Ok(Self(value)),
        }
    }
}

/// The metadata recorded on the events a console form causes: the session's principal
/// as the actor, the request id, and the form's `reason` field (forms cannot send
/// `X-Shiplog-Reason`); with `--require-reason` a blank reason is refused naming it.
pub(crate) fn command_context(
    state: &AppState,
    principal: &shiplog_application::Principal,
    headers: &axum::http::HeaderMap,
    reason: Option<&str>,
) -> Result<shiplog_application::CommandContext, ApiError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let refuse = |detail: String| ApiError::BadRequest {
        detail,
        field: Some("reason".to_owned()),
    };
    if let Some(reason) = reason {
        if reason.chars().any(char::is_control) {
            return Err(refuse(
                "reason must not contain control characters".to_owned(),
            ));
        }
        if reason.chars().count() > crate::extract::MAX_REASON_LEN {
            return Err(refuse(format!(
                "reason must be at most {} characters",
                crate::extract::MAX_REASON_LEN
            )));
        }
    } else if state.require_reason {
        return Err(refuse(
            "this shiplog requires a reason for every change: say why in the reason field"
                .to_owned(),
        ));
    }
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(shiplog_application::CommandContext {
        actor: principal.name.clone(),
        request_id,
        causation: None,
        reason: reason.map(str::to_owned),
    })
}

/// Environment variables from a textarea, one `KEY=VALUE` per line (blank lines
/// skipped); a line without `=` is refused naming `field`.
pub(crate) fn parse_env(
    text: &str,
    field: &str,
) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
    let mut env = std::collections::BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(ApiError::BadRequest {
                detail: format!("{field}: line {} is not KEY=VALUE", i + 1),
                field: Some(field.to_owned()),
            });
        };
        env.insert(key.trim().to_owned(), value.to_owned());
    }
    Ok(env)
}
