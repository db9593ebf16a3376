//! The one error type of the HTTP layer, mapped once to RFC 9457 problem+json.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use shiplog_application::{AppError, Conflict, Denial, Missing};
use shiplog_domain::InvalidField;
use shiplog_wire::{Problem, ProblemType};
use tracing::{error, warn};

/// Every way a request can fail; each variant documents its status, and
/// [`ApiError::problem_type`] maps it (with its kind) to the problem `type`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON at all, or a query/path value is malformed.
    #[error("{detail}")]
    BadRequest {
        /// What is wrong.
        detail: String,
        /// The field at fault, when one is.
        field: Option<String>,
    },
    /// 415: the body is declared as something other than JSON.
    #[error("the body must be JSON: send the header Content-Type: application/json")]
    UnsupportedMediaType,
    /// 413: the body is larger than `--max-body-size` allows.
    #[error("the request body is larger than the {limit} bytes this server accepts")]
    ContentTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// 408: the body did not arrive within `--body-read-timeout`.
    #[error("the request body did not arrive in time; send it without pausing")]
    RequestTimeout,
    /// 429 with Retry-After: the token has `--max-streams-per-token` streams open.
    #[error("this token has {limit} event and log streams open, as many as it may; close one, or retry later")]
    TooManyStreams {
        /// How many streams a token may have open at once.
        limit: usize,
    },
    /// 422: well-formed JSON with a missing, unknown or invalid field.
    #[error("{0}")]
    Invalid(InvalidField),
    /// 401: no bearer token, or one shiplog does not know.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// 401: a credential shiplog knows and refuses, saying why its holder may know:
    /// an expired token, a used or expired stream ticket.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: the token lacks the scope the route needs.
    #[error("this token lacks the scope {0}")]
    Forbidden(String),
    /// 403: a request authenticated by the console's session cookie changes something
    /// without the session's CSRF token; the detail says what was missing.
    #[error("{0}")]
    CsrfRejected(String),
    /// 403: not the owner (or a member of its team), or the deployment limit is reached.
    #[error("{detail}")]
    Denied {
        /// Which of the two.
        reason: Denial,
        /// What the client is told.
        detail: String,
    },
    /// 404: no such usecase, deployment, team or token.
    #[error("{detail}")]
    NotFound {
        /// What is missing.
        what: Missing,
        /// What the client is told.
        detail: String,
    },
    /// 404: no such route, or a path value (a malformed id) that can name nothing.
    #[error("{0}")]
    NoSuchResource(String),
    /// 404: a path value that can name nothing (not UTF-8, a NUL, too long); `field`
    /// names the route's parameter.
    #[error("{detail}")]
    NoSuchPathValue {
        /// Why nothing can have this name.
        detail: String,
        /// The route's parameter (`name`, `id`), or `path` off the routes.
        field: String,
    },
    /// 409: the request contradicts the current state (name taken, nothing deployed, ...).
    #[error("{detail}")]
    Conflict {
        /// Which state it contradicts.
        kind: Conflict,
        /// What the client is told.
        detail: String,
    },
    /// 503 with Retry-After: the database cannot be reached; nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// 503 with Retry-After: the cluster cannot answer; the detail says why.
    #[error("{0}")]
    ClusterUnavailable(String),
    /// 503 with Retry-After: the OIDC identity provider's keys cannot be had; nothing was changed.
    #[error("{0}")]
    IdentityProviderUnavailable(String),
    /// 503 without Retry-After: secret values cannot be sealed or opened (no master
    /// key, or the wrong one); nothing was changed.
    #[error("{0}")]
    SecretsUnavailable(String),
    /// 502: the applications proxy found no deployed application, or it did not answer.
    #[error("{0}")]
    BadGateway(String),
    /// 500: a bug; logged with details, shown without.
    #[error("{0}")]
    Internal(String),
}

/// Seconds a client should wait before retrying after a 503 or a 429.
const RETRY_AFTER_SECONDS: &str = "5";

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Invalid(field) => Self::Invalid(field),
            AppError::NotFound { what, detail } => Self::NotFound { what, detail },
            AppError::Conflict { kind, detail } => Self::Conflict { kind, detail },
            AppError::Unauthenticated(detail) => Self::Unauthenticated(detail),
            AppError::Forbidden(scope) => Self::Forbidden(scope),
            AppError::Denied { reason, detail } => Self::Denied { reason, detail },
            AppError::Unavailable(m) => Self::Unavailable(m),
            AppError::ClusterUnavailable(m) => Self::ClusterUnavailable(m),
            AppError::IdentityProviderUnavailable(m) => Self::IdentityProviderUnavailable(m),
            AppError::SecretsUnavailable(m) => Self::SecretsUnavailable(m),
            AppError::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<InvalidField> for ApiError {
    fn from(err: InvalidField) -> Self {
        Self::Invalid(err)
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ContentTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyStreams { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized | Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::Denied { .. } | Self::CsrfRejected(_) => {
                StatusCode::FORBIDDEN
            }
            Self::NotFound { .. } | Self::NoSuchResource(_) | Self::NoSuchPathValue { .. } => {
                StatusCode::NOT_FOUND
            }
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unavailable(_)
            | Self::ClusterUnavailable(_)
            | Self::IdentityProviderUnavailable(_)
            | Self::SecretsUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem `type` of this error: the one place kinds become URIs.
    pub fn problem_type(&self) -> ProblemType {
        match self {
            Self::BadRequest { .. } | Self::Invalid(_) => ProblemType::InvalidInput,
            Self::UnsupportedMediaType => ProblemType::UnsupportedMediaType,
            Self::ContentTooLarge { .. } => ProblemType::ContentTooLarge,
            Self::RequestTimeout => ProblemType::RequestTimeout,
            Self::TooManyStreams { .. } => ProblemType::TooManyStreams,
            Self::Unauthorized | Self::Unauthenticated(_) => ProblemType::Unauthorized,
            Self::Forbidden(_) => ProblemType::MissingScope,
            Self::CsrfRejected(_) => ProblemType::CsrfTokenInvalid,
            Self::Denied { reason, .. } => match reason {
                Denial::NotOwner => ProblemType::NotOwner,
                Denial::LimitReached => ProblemType::DeploymentLimitReached,
            },
            Self::NotFound { what, .. } => match what {
                Missing::Usecase => ProblemType::UsecaseNotFound,
                Missing::Deployment => ProblemType::DeploymentNotFound,
                Missing::Team => ProblemType::TeamNotFound,
                Missing::Token => ProblemType::TokenNotFound,
                Missing::Service => ProblemType::ServiceNotFound,
            },
            Self::NoSuchResource(_) | Self::NoSuchPathValue { .. } => ProblemType::NotFound,
            Self::Conflict { kind, .. } => match kind {
                Conflict::NameTaken => ProblemType::NameTaken,
                Conflict::NothingDeployed => ProblemType::NothingDeployed,
                Conflict::AlreadyExists => ProblemType::AlreadyExists,
                Conflict::InProgress => ProblemType::OperationInProgress,
                Conflict::Busy => ProblemType::UsecaseBusy,
                Conflict::InvalidTransition => ProblemType::InvalidTransition,
                Conflict::InvalidRollbackTarget => ProblemType::InvalidRollbackTarget,
            },
            Self::Unavailable(_) => ProblemType::DatabaseUnavailable,
            Self::ClusterUnavailable(_) => ProblemType::ClusterUnavailable,
            Self::IdentityProviderUnavailable(_) => ProblemType::IdentityProviderUnavailable,
            Self::SecretsUnavailable(_) => ProblemType::SecretsUnavailable,
            Self::BadGateway(_) => ProblemType::BadGateway,
            Self::Internal(_) => ProblemType::Internal,
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let (detail, field) = match self {
            Self::BadRequest { detail, field } => (detail.clone(), field.clone()),
            Self::Invalid(invalid) => (invalid.to_string(), Some(invalid.field.clone())),
            Self::NoSuchPathValue { detail, field } => (detail.clone(), Some(field.clone())),
            Self::UnsupportedMediaType => (self.to_string(), Some("Content-Type".to_owned())),
            Self::ContentTooLarge { .. } | Self::RequestTimeout => {
                (self.to_string(), Some("body".to_owned()))
            }
            // Whichever command found the name taken, the field at fault is the name.
            Self::Conflict {
                kind: Conflict::NameTaken,
                detail,
            } => (detail.clone(), Some("name".to_owned())),
            Self::CsrfRejected(detail) => (detail.clone(), Some("csrf_token".to_owned())),
            Self::Unavailable(_) => (
                "the database is unavailable; nothing was changed, retry later".to_owned(),
                None,
            ),
            Self::IdentityProviderUnavailable(_) => (
                "the identity provider's signing keys cannot be fetched, so its token cannot be checked; nothing was changed, retry later".to_owned(),
                None,
            ),
            Self::Internal(_) => ("internal error; it has been logged".to_owned(), None),
            other => (other.to_string(), None),
        };
        Problem {
            kind: self.problem_type(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            error: detail.clone(),
            detail,
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(details) => error!(%details, "internal error"),
            Self::Unavailable(details) => error!(%details, "dependency unavailable"),
            Self::ClusterUnavailable(details) => warn!(%details, "cluster unavailable"),
            Self::IdentityProviderUnavailable(details) => {
                warn!(%details, "identity provider unavailable")
            }
            Self::SecretsUnavailable(details) => warn!(%details, "secrets unavailable"),
            _ => {}
        }
        let status = self.status();
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Unauthenticated(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            Self::Unavailable(_)
            | Self::ClusterUnavailable(_)
            | Self::IdentityProviderUnavailable(_)
            | Self::TooManyStreams { .. } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
            }
            _ => {}
        }
        response
    }
}

/// An error of a platform (seed 002) route: as [`ApiError`], except that invalid
/// input is a 400, which is what that API promises for "missing or invalid
/// parameters" (the PhariaOS routes keep their 422).
#[derive(Debug)]
pub struct PlatformError(pub ApiError);

impl<E: Into<ApiError>> From<E> for PlatformError {
    fn from(err: E) -> Self {
        Self(err.into())
    }
}

impl IntoResponse for PlatformError {
    fn into_response(self) -> Response {
        match self.0 {
            ApiError::Invalid(invalid) => ApiError::BadRequest {
                detail: invalid.to_string(),
                field: Some(invalid.field),
            }
            .into_response(),
            other => other.into_response(),
        }
    }
}
