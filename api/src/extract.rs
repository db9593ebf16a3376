//! Extractors: JSON bodies that name the faulty field, bearer-token
//! authentication, request context, and path/query values with problem+json rejections.

use crate::error::{ApiError, PlatformError};
use crate::limits::{check_urlencoded, BodyLimit};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shiplog_application::{Authenticator, CommandContext, Principal, Scope};
use shiplog_domain::InvalidField;
use uuid::Uuid;

/// A JSON body: a syntax error is a 400, a missing, unknown or mistyped field a 422 naming the field.
/// A missing Content-Type is accepted as JSON; any other declared type is a 415.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Serialize, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match json_body(req, state).await? {
            Some(value) => Ok(Self(value)),
            None => Err(ApiError::BadRequest {
                detail: "the request body is empty; expected a JSON object".to_owned(),
                field: None,
            }),
        }
    }
}

/// As [`ApiJson`], but an empty body is `T::default()`: for commands whose body is optional.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Serialize + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(json_body(req, state).await?.unwrap_or_default()))
    }
}

/// A JSON body of a platform (seed 002) route: as [`ApiJson`], but a missing or
/// invalid field is a 400, as that API answers.
pub struct PlatformJson<T>(pub T);

impl<T: DeserializeOwned + Serialize, S: Send + Sync> FromRequest<S> for PlatformJson<T> {
    type Rejection = PlatformError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(ApiJson::from_request(req, state).await?.0))
    }
}

/// A body that is JSON or, from an HTML form, `application/x-www-form-urlencoded`;
/// which one it was decides the answer (JSON, or a redirect for the browser).
pub enum JsonOrForm<T> {
    /// A JSON body.
    Json(T),
    /// A form post.
    Form(T),
}

impl<T: DeserializeOwned + Serialize, S: Send + Sync> FromRequest<S> for JsonOrForm<T> {
    type Rejection = PlatformError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .starts_with("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Ok(Self::Json(ApiJson::from_request(req, state).await?.0));
        }
        let bytes = read_body(req, state).await?;
        // serde_urlencoded replaces what is not UTF-8 without a word: check first.
        check_urlencoded(&bytes).map_err(|(field, detail)| ApiError::BadRequest {
            detail: format!("form field {field}: {detail}"),
            field: Some(field),
        })?;
        let value = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            let detail = format!("the form is not valid: {e}");
            ApiError::BadRequest {
                field: backticked(&detail).map(str::to_owned),
                detail,
            }
        })?;
        Ok(Self::Form(value))
    }
}

/// Reads a JSON body; `None` when it is empty.
async fn json_body<T: DeserializeOwned + Serialize, S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<Option<T>, ApiError> {
    if let Some(content_type) = req.headers().get(CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    let bytes = read_body(req, state).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    refuse_nul(&bytes)?;
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    let direct = serde_path_to_error::deserialize(&mut deserializer);
    let parsed: T = match direct {
        Ok(parsed) => {
            // Trailing garbage after the object is a syntax error, not something to ignore.
            deserializer.end().map_err(|e| ApiError::BadRequest {
                detail: format!("the request body is not valid JSON: {e}"),
                field: Some("body".to_owned()),
            })?;
            parsed
        }
        // JSON Schema counts a whole number written `2.0` as an integer; serde does not.
        // Read once more with such numbers as integers; any other fault is the first one.
        Err(first) => {
            let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                return Err(json_error(first));
            };
            if !integral_numbers(&mut value) {
                return Err(json_error(first));
            }
            serde_path_to_error::deserialize(value).map_err(json_error)?
        }
    };
    // serde reads a struct from an array too, by position; the document says object.
    // Only a body with a `[` can hold an array.
    if bytes.contains(&b'[') {
        if let Ok(sent) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            let read = serde_json::to_value(&parsed).unwrap_or_default();
            if let Some(field) = array_for_object(&sent, &read, "") {
                return Err(ApiError::Invalid(InvalidField::new(
                    if field.is_empty() {
                        "body".to_owned()
                    } else {
                        field
                    },
                    "must be a JSON object, not an array",
                )));
            }
        }
    }
    Ok(Some(parsed))
}

/// Writes numbers with no fraction (`40.0`, `1e2`) as the integers they are: JSON Schema
/// counts them as integers, serde refuses them for an integer field. Says whether any was.
fn integral_numbers(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            let integral = n
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| serde_json::Number::from(f as i64));
            match integral {
                Some(integral) => {
                    *n = integral;
                    true
                }
                None => false,
            }
        }
        // Every member is rewritten, not only up to the first one that was.
        serde_json::Value::Array(items) => {
            let mut any = false;
            for item in items {
                any |= integral_numbers(item);
            }
            any
        }
        serde_json::Value::Object(fields) => {
            let mut any = false;
            for item in fields.values_mut() {
                any |= integral_numbers(item);
            }
            any
        }
        _ => false,
    }
}

/// The path of the first place where the client sent an array and the type read an
/// object there (`config.resources.requests`); `""` for the body itself.
fn array_for_object(
    sent: &serde_json::Value,
    read: &serde_json::Value,
    at: &str,
) -> Option<String> {
    use serde_json::Value::{Array, Object};
    match (sent, read) {
        (Array(_), Object(_)) => Some(at.to_owned()),
        (Object(sent), Object(read)) => sent.iter().find_map(|(key, value)| {
            let path = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            read.get(key)
                .and_then(|read| array_for_object(value, read, &path))
        }),
        (Array(sent), Array(read)) => sent
            .iter()
            .zip(read)
            .enumerate()
            .find_map(|(i, (s, r))| array_for_object(s, r, &format!("{at}[{i}]"))),
        _ => None,
    }
}

/// Reads the whole body: 413 beyond `--max-body-size`, 408 when it has not arrived
/// within `--body-read-timeout`, 400 when the client broke it off.
pub(crate) async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let limit = req.extensions().get::<BodyLimit>().copied();
    Bytes::from_request(req, state).await.map_err(|rejection| {
        let too_large = matches!(
            &rejection,
            BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))
        );
        if too_large {
            return ApiError::ContentTooLarge {
                limit: limit.map_or(0, |l| l.0),
            };
        }
        if caused_by::<tower_http::timeout::TimeoutError>(&rejection) {
            return ApiError::RequestTimeout;
        }
        ApiError::BadRequest {
            detail: format!("cannot read the request body: {rejection}"),
            field: Some("body".to_owned()),
        }
    })
}

/// Whether an error of type `E` is somewhere in `err`'s chain of causes.
fn caused_by<E: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(cause) = next {
        if cause.is::<E>() {
            return true;
        }
        next = cause.source();
    }
    false
}

/// A NUL character (`\u0000`) anywhere in a JSON body is refused, naming where: no
/// name, value or variable shiplog keeps can hold one (PostgreSQL text cannot, nor
/// can a process environment).
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    // Only a body with the escape can hold a NUL (a raw one is not JSON); only such
    // a body is parsed twice.
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(());
    };
    match nul_at(&value, String::new()) {
        Some(field) => Err(ApiError::Invalid(InvalidField::new(
            if field.is_empty() {
                "body".to_owned()
            } else {
                field
            },
            "must not contain NUL characters (\\u0000)",
        ))),
        None => Ok(()),
    }
}

/// The path (`config.env.A`, `teams[0]`) of the first string in `value` that holds a
/// NUL, written as the field of every other input error; for a key with one, the
/// path of its object (a field name with a NUL in it would help no one).
fn nul_at(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_at(item, format!("{path}[{i}]"))),
        Value::Object(members) => members.iter().find_map(|(key, member)| {
            if key.contains('\0') {
                return Some(path.clone());
            }
            let at = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            nul_at(member, at)
        }),
        _ => None,
    }
}

/// Turns a serde error into 400 (not JSON) or 422 (wrong shape) naming the field.
fn json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let message = inner.to_string();
    if !inner.is_data() {
        // Where the syntax broke, when it was inside a member (a string that is not
        // UTF-8, a lone surrogate): that member is the field at fault.
        return ApiError::BadRequest {
            detail: format!("the request body is not valid JSON: {message}"),
            field: Some(if path == "." { "body".to_owned() } else { path }),
        };
    }
    // serde reports a missing or unknown field at its parent; name the field itself.
    let named = backticked(&message);
    let mut field = if path == "." { String::new() } else { path };
    if let Some(name) = named
        .filter(|_| message.starts_with("missing field") || message.starts_with("unknown field"))
    {
        if !field.ends_with(name) {
            field = if field.is_empty() {
                name.to_owned()
            } else {
                format!("{field}.{name}")
            };
        }
    }
    // Drop serde's " at line 1 column 2" position suffix: the field says where.
    let reason = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned();
    ApiError::Invalid(InvalidField::new(
        if field.is_empty() {
            "body".to_owned()
        } else {
            field
        },
        reason,
    ))
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// The authenticated caller. Rejects with 401 when the bearer token is missing or unknown.
pub struct Auth(pub Principal);

impl Auth {
    /// 403 unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<&Principal, ApiError> {
        self.0.require(scope)?;
        Ok(&self.0)
    }
}

impl Auth {
    /// 403 unless the caller holds `scope` and may act on usecase `id`: its owner, a
    /// member of its team, or an admin ("ownership verification failed"); 404 when
    /// there is no such usecase.
    pub async fn require_owner(
        &self,
        state: &AppState,
        scope: Scope,
        id: Uuid,
    ) -> Result<&Principal, ApiError> {
        let principal = self.require(scope)?;
        state.usecases.authorize(principal, id).await?;
        Ok(principal)
    }

    /// As [`Auth::require_owner`] with any of `scopes`, except that an auditor
    /// (`audit:read`) reads every usecase's trail, also a deleted one's.
    pub async fn require_owner_or_auditor(
        &self,
        state: &AppState,
        scopes: &[Scope],
        id: Uuid,
    ) -> Result<&Principal, ApiError> {
        if self.0.require(Scope::AuditRead).is_ok() {
            return Ok(&self.0);
        }
        let principal = self.require_any(scopes)?;
        state.usecases.authorize(principal, id).await?;
        Ok(principal)
    }
}

impl Auth {
    /// 403 unless the caller holds one of `scopes`.
    pub fn require_any(&self, scopes: &[Scope]) -> Result<&Principal, ApiError> {
        self.0.require_any(scopes)?;
        Ok(&self.0)
    }
}

/// The token of an `Authorization: Bearer …` header, if there is one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let header = headers.get(AUTHORIZATION)?.to_str().ok()?;
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
}

/// The principal behind `token`; 401 when there is none or it is unknown.
pub(crate) async fn authenticate(
    auth: &Authenticator,
    token: Option<&str>,
) -> Result<Principal, ApiError> {
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    auth.authenticate(token)
        .await?
        .ok_or(ApiError::Unauthorized)
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The web console's session (checked by `console::session::resolve_session`)
        // stands for a token when the request carries none.
        if let (None, Some(session)) = (bearer(&parts.headers), console_session(parts)) {
            return Ok(Self(session));
        }
        Ok(Self(
            authenticate(&state.auth, bearer(&parts.headers)).await?,
        ))
    }
}

/// The principal of the console session the request came with, if any.
fn console_session(parts: &Parts) -> Option<Principal> {
    parts
        .extensions
        .get::<crate::console::session::ConsoleSession>()
        .map(|s| s.principal.clone())
}

/// The caller of an event or log stream: the bearer header, else the console's session
/// cookie, else a stream ticket (`?ticket=`, single use, from `POST
/// /api/stream-tickets`), else an `access_token` query parameter, since a browser's
/// `EventSource` cannot send headers. Only stream routes take this extractor, so a
/// ticket opens nothing else.
pub struct StreamAuth(pub Auth);

impl FromRequestParts<AppState> for StreamAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(&parts.headers) {
            return Ok(Self(Auth(authenticate(&state.auth, Some(token)).await?)));
        }
        if let Some(session) = console_session(parts) {
            return Ok(Self(Auth(session)));
        }
        let query = parts.uri.query().unwrap_or_default();
        let parameter = |name: &str| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        };
        if let Some(ticket) = parameter("ticket").filter(|t| !t.is_empty()) {
            return Ok(Self(Auth(state.stream_tickets.redeem(&ticket).await?)));
        }
        let token = parameter("access_token");
        Ok(Self(Auth(
            authenticate(&state.auth, token.as_deref()).await?,
        )))
    }
}

/// The `Last-Event-ID` header an `EventSource` sends when it reconnects; one that is
/// not text is a 422 naming it, as a cursor shiplog did not produce is.
pub struct LastEventId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for LastEventId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get("last-event-id") else {
            return Ok(Self(None));
        };
        let id = header.to_str().map_err(|_| {
            ApiError::Invalid(InvalidField::new(
                "Last-Event-ID",
                "is not visible ASCII; use the cursor of an event shiplog returned",
            ))
        })?;
        let id = id.trim();
        Ok(Self((!id.is_empty()).then(|| id.to_owned())))
    }
}

/// The header a client says why it makes a change with; its events' metadata records it.
pub const REASON_HEADER: &str = "x-shiplog-reason";
/// The longest reason a change may carry, in characters.
pub const MAX_REASON_LEN: usize = 1000;

/// What a change request says about itself: its id (set by the request-id middleware,
/// `x-request-id`) and why it is made (`X-Shiplog-Reason`). With `--require-reason`
/// a change without a reason is refused (400 naming the header).
pub struct RequestId {
    /// The request id.
    pub id: String,
    /// The reason given, trimmed; `None` when none was.
    pub reason: Option<String>,
}

impl FromRequestParts<AppState> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let request = ReasonLater::from_request_parts(parts, state).await?.0;
        request.require_reason(state, REASON_FIELD_HEADER)
    }
}

/// How `X-Shiplog-Reason` is named in problems.
const REASON_FIELD_HEADER: &str = "X-Shiplog-Reason";

impl RequestId {
    /// The request, or with `--require-reason` and no reason given a 400 naming `field`
    /// (where the client should have said why).
    pub fn require_reason(self, state: &AppState, field: &str) -> Result<Self, ApiError> {
        if self.reason.is_none() && state.require_reason {
            return Err(ApiError::BadRequest {
                detail: format!(
                    "this shiplog requires a reason for every change: say why in {field}"
                ),
                field: Some(field.to_owned()),
            });
        }
        Ok(self)
    }

    /// The reason of the header or, when it gave none, of the body's `reason` field (a
    /// form post cannot set headers), checked as the header is; then `--require-reason`,
    /// naming the form field for a form post and the header otherwise.
    pub fn with_body_reason(
        mut self,
        state: &AppState,
        reason: Option<&str>,
        form: bool,
    ) -> Result<Self, ApiError> {
        if self.reason.is_none() {
            self.reason = checked_reason(reason.unwrap_or_default(), "reason")?;
        }
        let field = if form { "reason" } else { REASON_FIELD_HEADER };
        self.require_reason(state, field)
    }
}

/// [`RequestId`] without `--require-reason`'s refusal, for a route whose body may carry
/// the reason: it calls [`RequestId::with_body_reason`] once the body is read.
pub struct ReasonLater(pub RequestId);

impl FromRequestParts<AppState> for ReasonLater {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let reason = reason_of(&parts.headers)?;
        Ok(Self(RequestId { id, reason }))
    }
}

/// The reason in `X-Shiplog-Reason`: UTF-8 text without control characters, at most
/// [`MAX_REASON_LEN`] characters; blank counts as none.
fn reason_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(REASON_HEADER) else {
        return Ok(None);
    };
    let text = std::str::from_utf8(value.as_bytes()).map_err(|_| ApiError::BadRequest {
        detail: "X-Shiplog-Reason is not UTF-8".to_owned(),
        field: Some(REASON_FIELD_HEADER.to_owned()),
    })?;
    checked_reason(text, REASON_FIELD_HEADER)
}

/// A reason as given in `field`: without control characters, at most
/// [`MAX_REASON_LEN`] characters, trimmed; blank counts as none.
fn checked_reason(text: &str, field: &str) -> Result<Option<String>, ApiError> {
    let refuse = |why: &str| ApiError::BadRequest {
        detail: format!("{field} {why}"),
        field: Some(field.to_owned()),
    };
    let text = text.trim();
    if text.chars().any(char::is_control) {
        return Err(refuse("must not contain control characters"));
    }
    if text.chars().count() > MAX_REASON_LEN {
        return Err(refuse(&format!(
            "must be at most {MAX_REASON_LEN} characters"
        )));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// The metadata recorded on the events a request causes.
pub fn command_context(principal: &Principal, request: RequestId) -> CommandContext {
    CommandContext {
        actor: principal.name.clone(),
        request_id: request.id,
        causation: None,
        reason: request.reason,
    }
}

/// Path parameters; a malformed id is a 404 (no such thing can exist).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::NoSuchResource(format!("no such resource: {}", rejection.body_text()))
    }
}

/// The name of the first field of a URL-encoded query or form whose value holds a NUL
/// character (PostgreSQL text cannot hold one).
fn field_with_nul(encoded: &[u8]) -> Option<String> {
    form_urlencoded::parse(encoded)
        .find(|(_, value)| value.contains('\0'))
        .map(|(name, _)| name.into_owned())
}

/// Query parameters; a malformed value is a 400 naming the parameter, and so is a
/// value with a NUL character (PostgreSQL text cannot hold one).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some(name) = field_with_nul(query.as_bytes()) {
            return Err(ApiError::BadRequest {
                detail: format!("{name}: must not contain NUL characters"),
                field: Some(name),
            });
        }
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(ApiError::from)?;
        Ok(Self(value))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let detail = rejection.body_text();
        // serde_urlencoded says "Failed to deserialize query string: limit: invalid digit ...".
        let field = detail
            .split_once("query string: ")
            .and_then(|(_, rest)| rest.split_once(": "))
            .map(|(field, _)| field.to_owned())
            .filter(|f| !f.contains(' '))
            .or_else(|| backticked(&detail).map(str::to_owned));
        ApiError::BadRequest { detail, field }
    }
}
