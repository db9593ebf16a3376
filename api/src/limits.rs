//! What a request to the API may be, checked before any handler runs: the size of
//! its body and how long it may take to arrive (tower-http's layers, their refusals
//! turned into problem documents), and what its path, query string and request id
//! may hold. A refusal names the field at fault; nothing reaches the database.

use crate::error::ApiError;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use percent_encoding::percent_decode;
use std::time::Duration;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::RequestBodyDeadlineLayer;

/// The bounds `shiplog serve` puts on requests and streams (`--max-body-size` and
/// the others), so that no client can hold the server's memory, tasks or streams.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// The largest request body accepted, in bytes; larger ones are answered 413.
    pub max_body_size: usize,
    /// How long a client may take to send a request's headers; the connection is
    /// closed after it (also an idle kept-alive one).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body; answered 408 after it.
    pub body_read_timeout: Duration,
    /// How many event and log streams one token may have open at once; one more is
    /// answered 429.
    pub max_streams_per_token: usize,
}

/// `--max-body-size`'s default: 1 MiB, four times the largest environment a
/// deployment may have.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 1024 * 1024;
/// `--header-read-timeout`'s default, in seconds (hyper's own when it has a timer).
pub const DEFAULT_HEADER_READ_TIMEOUT: u64 = 30;
/// `--body-read-timeout`'s default, in seconds: 1 MiB at 35 KB/s.
pub const DEFAULT_BODY_READ_TIMEOUT: u64 = 30;
/// `--max-streams-per-token`'s default: room for a dashboard and a few pipelines.
pub const DEFAULT_MAX_STREAMS_PER_TOKEN: u64 = 32;

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_body_size: usize::try_from(DEFAULT_MAX_BODY_SIZE).unwrap_or(usize::MAX),
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT),
            body_read_timeout: Duration::from_secs(DEFAULT_BODY_READ_TIMEOUT),
            max_streams_per_token: usize::try_from(DEFAULT_MAX_STREAMS_PER_TOKEN)
                .unwrap_or(usize::MAX),
        }
    }
}

/// The longest path segment or query value, in characters: nothing shiplog names
/// is longer, so a longer one names nothing.
pub const MAX_PARAMETER_LEN: usize = 2048;

/// The longest `X-Request-Id` a client may set: the id is recorded with every event
/// the request causes.
pub const MAX_REQUEST_ID_LEN: usize = 200;

/// The body limit a handler's extractor reports in its 413, as the layers enforce it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Wraps every route of `router` in the request checks: the body limit and deadline
/// (innermost, so that the handler reads the bounded body) and the path, query and
/// request-id checks.
pub fn checked<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    limits: &RequestLimits,
) -> Router<S> {
    let limit = limits.max_body_size;
    router
        // axum's own 2 MB default would cut bodies short of a larger configured limit.
        .layer(DefaultBodyLimit::disable())
        .layer(Extension(BodyLimit(limit)))
        .layer(RequestBodyLimitLayer::new(limit))
        // tower-http answers a declared Content-Length beyond the limit at once, in
        // plain text: say it as every other refusal is said.
        .layer(middleware::map_response(
            move |response: Response| async move { too_large_as_problem(response, limit) },
        ))
        // One deadline for the whole body, from the request's start: a client that
        // trickles a byte now and then cannot hold a task for long either.
        .layer(RequestBodyDeadlineLayer::new(limits.body_read_timeout))
        .layer(middleware::from_fn(check_request))
}

/// tower-http's bare 413 as a problem document.
fn too_large_as_problem(response: Response, limit: usize) -> Response {
    let is_problem = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem {
        return ApiError::ContentTooLarge { limit }.into_response();
    }
    response
}

/// Refuses a request whose path, query string or request id cannot be right, before
/// any handler (or the database) sees it.
async fn check_request(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>();
    let checked = check_path(request.uri().path(), route.map(MatchedPath::as_str))
        .and_then(|()| {
            let query = request.uri().query().unwrap_or_default();
            check_urlencoded(query.as_bytes()).map_err(|(field, detail)| ApiError::BadRequest {
                detail: format!("query parameter {field}: {detail}"),
                field: Some(field),
            })
        })
        .and_then(|()| check_request_id(request.headers()));
    match checked {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// What is wrong with a percent-encoded value, if anything: not UTF-8, a NUL, or
/// longer than [`MAX_PARAMETER_LEN`].
fn decoded_fault(raw: &[u8]) -> Option<String> {
    let decoded = match percent_decode(raw).decode_utf8() {
        Ok(decoded) => decoded,
        Err(_) => return Some("is not valid UTF-8 once percent-decoded".to_owned()),
    };
    if decoded.contains('\0') {
        return Some("must not contain NUL characters (%00)".to_owned());
    }
    if decoded.chars().count() > MAX_PARAMETER_LEN {
        return Some(format!(
            "is longer than the {MAX_PARAMETER_LEN} characters anything in shiplog can be"
        ));
    }
    None
}

/// Checks each segment of `path`. A segment that cannot name anything is a 404, as a
/// malformed id is, naming the route's parameter at that place (`path` off the routes).
fn check_path(path: &str, route: Option<&str>) -> Result<(), ApiError> {
    let template: Vec<&str> = route.map(|r| r.split('/').collect()).unwrap_or_default();
    for (i, segment) in path.split('/').enumerate() {
        let Some(fault) = decoded_fault(segment.as_bytes()) else {
            continue;
        };
        let field = template
            .get(i)
            .and_then(|t| t.strip_prefix('{'))
            .and_then(|t| t.strip_suffix('}'))
            .map(|t| t.trim_start_matches('*'))
            .unwrap_or("path");
        return Err(ApiError::NoSuchPathValue {
            detail: format!("the path's {field} {fault}, so it names nothing"),
            field: field.to_owned(),
        });
    }
    Ok(())
}

/// Checks an `application/x-www-form-urlencoded` text (a query string, a form body)
/// strictly, where the usual parsers replace what is not UTF-8 without a word: each
/// name and value must decode to UTF-8 without NUL. `Err((field, what is wrong))`.
pub(crate) fn check_urlencoded(raw: &[u8]) -> Result<(), (String, String)> {
    for pair in raw.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let mut parts = pair.splitn(2, |b| *b == b'=');
        let name = parts.next().unwrap_or_default();
        let value = parts.next().unwrap_or_default();
        // In this format `+` is a space; it decodes to nothing else.
        let plus_as_space = |bytes: &[u8]| -> Vec<u8> {
            bytes
                .iter()
                .map(|b| if *b == b'+' { b' ' } else { *b })
                .collect()
        };
        let name = plus_as_space(name);
        let field = || {
            let lossy = percent_decode(&name)
                .decode_utf8_lossy()
                .replace('\0', "\u{fffd}");
            lossy.chars().take(64).collect::<String>()
        };
        if let Some(fault) = decoded_fault(&name) {
            return Err((field(), fault));
        }
        if let Some(fault) = decoded_fault(&plus_as_space(value)) {
            return Err((field(), fault));
        }
    }
    Ok(())
}

/// A request id set by the client is recorded with every event it causes: visible
/// ASCII of at most [`MAX_REQUEST_ID_LEN`] characters, or a 400 naming the header.
fn check_request_id(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(id) = headers.get("x-request-id") else {
        return Ok(());
    };
    let bytes = id.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_REQUEST_ID_LEN
        || !bytes.iter().all(u8::is_ascii_graphic)
    {
        return Err(ApiError::BadRequest {
            detail: format!(
                "X-Request-Id must be 1 to {MAX_REQUEST_ID_LEN} visible ASCII characters (it is recorded with the events the request causes)"
            ),
            field: Some("X-Request-Id".to_owned()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_text_is_checked_strictly() {
        let long = format!("name={}", "a".repeat(MAX_PARAMETER_LEN + 1));
        let cases: [(&str, &[u8], Option<&str>); 8] = [
            ("plain pairs", b"actor=bob&limit=5", None),
            ("escapes and spaces", b"name=caf%C3%A9+bar&x", None),
            (
                "the longest value",
                &long.as_bytes()[..long.len() - 1],
                None,
            ),
            ("a NUL in a value", b"actor=a%00b", Some("actor")),
            (
                "invalid UTF-8 in a value",
                b"limit=1&name=%FF",
                Some("name"),
            ),
            ("invalid UTF-8 in a name", b"n%FFme=x", Some("n\u{fffd}me")),
            ("a NUL in a name", b"a%00=x", Some("a\u{fffd}")),
            ("a value too long", long.as_bytes(), Some("name")),
        ];
        for (description, raw, field) in cases {
            assert_eq!(
                check_urlencoded(raw).err().map(|(f, _)| f).as_deref(),
                field,
                "{description}"
            );
        }
    }

    #[test]
    fn a_path_value_that_names_nothing_is_named_after_its_parameter() {
        let route = Some("/api/deployments/{name}/logs");
        let field = |path: &str, route: Option<&str>| match check_path(path, route) {
            Err(ApiError::NoSuchPathValue { field, .. }) => Some(field),
            _ => None,
        };
        assert_eq!(field("/api/deployments/web/logs", route), None);
        assert_eq!(
            field("/api/deployments/a%00b/logs", route).as_deref(),
            Some("name")
        );
        assert_eq!(
            field("/api/deployments/%FF/logs", route).as_deref(),
            Some("name")
        );
        assert_eq!(field("/api/nothing/%00", None).as_deref(), Some("path"));
    }

    #[test]
    fn a_request_id_is_short_visible_ascii() {
        let with = |value: &[u8]| {
            let mut headers = HeaderMap::new();
            headers.insert(
                "x-request-id",
                axum::http::HeaderValue::from_bytes(value).unwrap_or_else(|e| panic!("{e}")),
            );
            check_request_id(&headers).is_ok()
        };
        assert!(with(b"3f1c2d9e-0000-4000-8000-000000000000"));
        assert!(!with(b"two words"));
        assert!(!with(b"caf\xc3\xa9"));
        assert!(!with("x".repeat(MAX_REQUEST_ID_LEN + 1).as_bytes()));
        assert!(check_request_id(&HeaderMap::new()).is_ok());
    }
}
