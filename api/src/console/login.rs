//! `/login` and `/logout`: an API token in, a session cookie out, and back.

use super::layout::{error_note, page, Section};
use super::session::{
    cookie, local_path, see_other, session_cookie, set_cookie, ConsoleSession, LOGIN_COOKIE,
    SESSION_COOKIE,
};
use super::PageError;
use crate::state::AppState;
use axum::extract::{Form, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;
use shiplog_application::sessions::{random_token, same_token};
use std::time::Duration;

/// How long a login form may stay open before it must be loaded again.
const LOGIN_FORM_TTL: Duration = Duration::from_secs(3600);

/// `/login`'s query: where to go once logged in.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    /// A local path; anything else is replaced by `/deployments`.
    next: Option<String>,
}

/// What the login form posts.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// The API token.
    #[serde(default)]
    token: String,
    /// Where to go afterwards.
    next: Option<String>,
    /// The login form's CSRF token (the `shiplog_login` cookie's value).
    #[serde(default)]
    csrf_token: String,
}

/// The login form (a browser that has a session goes straight on to `next`).
pub async fn form(
    State(state): State<AppState>,
    session: Option<Extension<ConsoleSession>>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let next = local_path(query.next.as_deref());
    if session.is_some() {
        return see_other(&next);
    }
    login_page(&state, &headers, &next, None, StatusCode::OK)
}

/// The login page with a fresh form token in its cookie and hidden field.
fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let token = random_token();
    let secure = state.console.secure_cookies(headers);
    let markup = login_markup(next, &token, error);
    (
        status,
        [(
            SET_COOKIE,
            set_cookie(LOGIN_COOKIE, &token, "/login", LOGIN_FORM_TTL, secure),
        )],
        markup,
    )
        .into_response()
}

fn login_markup(next: &str, csrf: &str, error: Option<&str>) -> Markup {
    page(
        "Log in",
        Section::Login,
        None,
        html! {
            section.card.narrow {
                h1 { "Log in to shiplog" }
                @if let Some(error) = error { (error_note(error)) }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    input type="hidden" name="csrf_token" value=(csrf);
                    label for="token" { "API token" }
                    input #token type="password" name="token" required autocomplete="current-password"
                        autofocus aria-describedby="token-help";
                    p.help #token-help {
                        "A token from " code { "shiplog token create" } " or " code { "POST /api/tokens" }
                        ". The session acts as that token: its name is recorded on what you do, "
                        "and revoking the token ends the session."
                    }
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

/// Checks the form token, opens a session for the API token and sends the browser on;
/// an unknown token gets the form again (401).
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let next = local_path(form.next.as_deref());
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_token(&form.csrf_token, &expected) {
        let error = "The login form expired or was not sent by this site; please log in again.";
        return Ok(login_page(
            &state,
            &headers,
            &next,
            Some(error),
            StatusCode::FORBIDDEN,
        ));
    }
    let Some(opened) = state.sessions.open(&form.token).await? else {
        let error = "This token is unknown or revoked.";
        return Ok(login_page(
            &state,
            &headers,
            &next,
            Some(error),
            StatusCode::UNAUTHORIZED,
        ));
    };
    tracing::info!(principal = %opened.principal.name, "console: session opened");
    let secure = state.console.secure_cookies(&headers);
    let mut response = see_other(&next);
    let cookies = response.headers_mut();
    let (name, value) = session_cookie(&state, &headers, &opened);
    cookies.append(name, value);
    cookies.append(
        SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", "/login", Duration::ZERO, secure),
    );
    Ok(response)
}

/// Ends the session (its CSRF token was checked on the way in) and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    session: Option<Extension<ConsoleSession>>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    if let Some(Extension(session)) = session {
        state.sessions.close(&session.id).await?;
        tracing::info!(principal = %session.principal.name, "console: session closed");
    }
    let secure = state.console.secure_cookies(&headers);
    let mut response = see_other("/login");
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/", Duration::ZERO, secure),
    );
    Ok(response)
}
