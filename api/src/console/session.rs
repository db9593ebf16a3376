//! The console's session cookie and CSRF protection, for the console's pages and for
//! the API routes alike (seed 002: "Authentication: session or API key").
//!
//! [`resolve_session`] runs on every request: a request with a bearer token is the
//! API's as before (the cookie is ignored); one with the session cookie gets the
//! session's principal as a [`ConsoleSession`] extension, which the `Auth` extractor
//! accepts as it accepts a token. A cookie-authenticated request that changes
//! something must carry the session's CSRF token (form field `csrf_token` or header
//! `X-CSRF-Token`): without it, a 403 problem and nothing done.

use crate::error::ApiError;
use crate::extract::{bearer, read_body};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::{percent_decode, utf8_percent_encode, NON_ALPHANUMERIC};
use shiplog_application::sessions::same_token;
use shiplog_application::{OpenedSession, Principal};
use std::time::Duration;

/// The cookie that carries the session id.
pub const SESSION_COOKIE: &str = "shiplog_session";
/// The cookie that carries the login form's CSRF token (double submit: a site that is
/// not shiplog can neither read it nor make the browser send it).
pub const LOGIN_COOKIE: &str = "shiplog_login";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";
/// The header that carries the CSRF token (for scripts and htmx).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the console's sessions are kept and its cookies set.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// How long a session lasts after login.
    pub session_ttl: Duration,
    /// The URL people reach shiplog at, when it is behind a proxy; an `https` one
    /// makes every cookie `Secure`.
    pub public_url: Option<String>,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            session_ttl: shiplog_application::sessions::DEFAULT_SESSION_TTL,
            public_url: None,
        }
    }
}

impl ConsoleSettings {
    /// Whether cookies set in answer to a request with `headers` get `Secure`: the
    /// configured public URL is https, or a proxy says the request came over https.
    pub fn secure_cookies(&self, headers: &HeaderMap) -> bool {
        let public_https = self
            .public_url
            .as_deref()
            .is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("https://"));
        let forwarded_https = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
        public_https || forwarded_https
    }
}

/// The session a request came with: who it acts as and the token its forms carry.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    /// Who the session acts as; the actor of the events it causes.
    pub principal: Principal,
    /// The CSRF token its forms carry.
    pub csrf_token: String,
    /// The session id (from the cookie), for logout; never logged or shown.
    pub(crate) id: String,
}

/// The value of cookie `name` in `headers`, if sent.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_owned())
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always, Secure when `secure`;
/// `max_age` zero deletes it.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Duration,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        max_age.as_secs()
    );
    // Names and values are ours (hex and fixed words): always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a request with `method` changes something (and so needs the CSRF token).
fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Finds the session of a request that carries no bearer token but the session
/// cookie, checks the CSRF token of an unsafe one, and hands the session on as a
/// [`ConsoleSession`] extension. An unknown or expired cookie is as no cookie: the API
/// answers 401, a page sends the browser to `/login`.
pub async fn resolve_session(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if bearer(request.headers()).is_some() {
        return next.run(request).await;
    }
    let Some(id) = cookie(request.headers(), SESSION_COOKIE) else {
        return next.run(request).await;
    };
    let session = match state.sessions.resume(&id).await {
        Ok(Some(session)) => session,
        Ok(None) => return next.run(request).await,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut request = request;
    // The login form has its own CSRF token (the session may be about to change).
    let is_login = request.uri().path() == "/login";
    if is_unsafe(request.method()) && !is_login {
        request = match checked_csrf(request, &session.csrf_token).await {
            Ok(request) => request,
            Err(refused) => return refused.into_response(),
        };
    }
    request.extensions_mut().insert(ConsoleSession {
        principal: session.principal,
        csrf_token: session.csrf_token,
        id,
    });
    next.run(request).await
}

/// The request again if it carries `expected` in `X-CSRF-Token` or, for a form post, in
/// the field `csrf_token` (which is taken out, so that the route sees the form it
/// documents); else a 403 problem naming the field.
async fn checked_csrf(request: Request, expected: &str) -> Result<Request, ApiError> {
    let refused = |detail: &str| ApiError::CsrfRejected(detail.to_owned());
    if let Some(presented) = request.headers().get(CSRF_HEADER) {
        let presented = presented.to_str().unwrap_or_default();
        return if same_token(presented.trim(), expected) {
            Ok(request)
        } else {
            Err(refused(
                "the X-CSRF-Token header is not this session's CSRF token",
            ))
        };
    }
    let is_form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(refused(
            "a request authenticated by the session cookie must carry the session's CSRF token (form field csrf_token or header X-CSRF-Token)",
        ));
    }
    let (parts, body) = request.into_parts();
    let bytes = read_body(Request::from_parts(parts.clone(), body), &()).await?;
    let (token, rest) = take_field(&bytes, CSRF_FIELD);
    match token {
        Some(token) if same_token(&token, expected) => {
            Ok(Request::from_parts(parts, Body::from(rest)))
        }
        Some(_) => Err(refused("the form's csrf_token is not this session's CSRF token")),
        None => Err(refused(
            "the form lacks csrf_token: a form posted with the session cookie must carry the session's CSRF token",
        )),
    }
}

/// The (percent-decoded) value of `field` in a URL-encoded form, and the form without
/// it, every other pair left byte for byte as sent (so that the route's own checks of
/// encoding and NUL characters see what the client sent).
fn take_field(form: &[u8], field: &str) -> (Option<String>, Vec<u8>) {
    let mut value = None;
    let mut rest: Vec<&[u8]> = Vec::new();
    for pair in form.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (key, raw) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let key = decode(key);
        if key == field {
            value.get_or_insert_with(|| decode(raw));
        } else {
            rest.push(pair);
        }
    }
    (value, rest.join(&b'&'))
}

/// A form key or value, `+` as space, percent-decoded (lossily: only compared).
fn decode(raw: &[u8]) -> String {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_decode(&spaced).decode_utf8_lossy().into_owned()
}

/// Where a page sends a browser without a session: `/login?next=<where it was>`.
pub fn to_login(parts: &Parts) -> Response {
    let here = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/deployments");
    let next = utf8_percent_encode(here, NON_ALPHANUMERIC);
    see_other(&format!("/login?next={next}"))
}

/// A 303 See Other to `location` (a local path).
pub fn see_other(location: &str) -> Response {
    let location = HeaderValue::from_str(location)
        .unwrap_or_else(|_| HeaderValue::from_static("/deployments"));
    (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
}

/// `next` if it is a path of this site (`/…`, not `//host` or `/\host`, which browsers
/// read as another site), else the deployments page: a login link cannot send the
/// browser elsewhere.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && path.len() <= 2048
                && !path.chars().any(|c| c.is_control() || c == '\\') =>
        {
            path.to_owned()
        }
        _ => "/deployments".to_owned(),
    }
}

/// A console page's caller: the session, or else the browser is sent to `/login`.
pub struct Console(pub ConsoleSession);

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Response> {
        match parts.extensions.get::<ConsoleSession>() {
            Some(session) => Ok(Self(session.clone())),
            None => Err(to_login(parts)),
        }
    }
}

/// The `Set-Cookie` header of a new session's cookie, kept by the browser as long as
/// the session lasts (shorter than `--session-ttl` when its OIDC token expires sooner).
pub fn session_cookie(
    state: &AppState,
    headers: &HeaderMap,
    opened: &OpenedSession,
) -> (axum::http::HeaderName, HeaderValue) {
    let secure = state.console.secure_cookies(headers);
    // Whole seconds, rounded up: the instants between opening and answering are not
    // taken off a session that lasts the full `--session-ttl`.
    let millis = (opened.expires_at - chrono::Utc::now()).num_milliseconds();
    let lasts = Duration::from_secs(u64::try_from(millis).unwrap_or(0).div_ceil(1000))
        .min(state.console.session_ttl);
    (
        SET_COOKIE,
        set_cookie(SESSION_COOKIE, &opened.id, "/", lasts, secure),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        let cases = [
            (
                "a page of the console",
                Some("/deployments/web?at=1"),
                "/deployments/web?at=1",
            ),
            ("nothing", None, "/deployments"),
            (
                "another site",
                Some("https://evil.example/"),
                "/deployments",
            ),
            (
                "a protocol-relative URL",
                Some("//evil.example/x"),
                "/deployments",
            ),
            ("a backslash URL", Some("/\\evil.example"), "/deployments"),
            ("a relative path", Some("deployments"), "/deployments"),
            (
                "a header injection",
                Some("/x\r\nSet-Cookie: a=b"),
                "/deployments",
            ),
        ];
        for (description, next, expected) in cases {
            assert_eq!(local_path(next), expected, "{description}");
        }
    }

    #[test]
    fn the_csrf_field_is_taken_out_and_the_rest_left_as_sent() {
        let (token, rest) = take_field(b"deployment_name=web&csrf_token=ab%63&x=%FF", CSRF_FIELD);
        assert_eq!(token.as_deref(), Some("abc"));
        assert_eq!(rest, b"deployment_name=web&x=%FF");
        let (token, rest) = take_field(b"deployment_name=web", CSRF_FIELD);
        assert_eq!(token, None);
        assert_eq!(rest, b"deployment_name=web");
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; shiplog_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
