//! The one error type of the HTTP layer, mapped once to RFC 9457 problem+json.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use shiplog_application::AppError;
use shiplog_domain::InvalidField;
use shiplog_wire::Problem;
use tracing::{error, warn};

/// Every way a request can fail; each variant documents its status.
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
    /// 422: well-formed JSON with a missing, unknown or invalid field.
    #[error("{0}")]
    Invalid(InvalidField),
    /// 401: no bearer token, or one shiplog does not know.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// 403: the token lacks the scope the route needs.
    #[error("this token lacks the scope {0}")]
    Forbidden(String),
    /// 403: not the owner (or a member of its team), or the deployment limit is reached.
    #[error("{0}")]
    Denied(String),
    /// 404: no such usecase, deployment, token or route.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request contradicts the current state (name taken, nothing deployed, ...).
    #[error("{0}")]
    Conflict(String),
    /// 503 with Retry-After: the database cannot be reached; nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// 503 with Retry-After: the cluster cannot answer; the detail says why.
    #[error("{0}")]
    ClusterUnavailable(String),
    /// 502: the applications proxy found no deployed application, or it did not answer.
    #[error("{0}")]
    BadGateway(String),
    /// 500: a bug; logged with details, shown without.
    #[error("{0}")]
    Internal(String),
}

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECONDS: &str = "5";

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Invalid(field) => Self::Invalid(field),
            AppError::NotFound(m) => Self::NotFound(m),
            AppError::Conflict(m) => Self::Conflict(m),
            AppError::Forbidden(scope) => Self::Forbidden(scope),
            AppError::Denied(m) => Self::Denied(m),
            AppError::Unavailable(m) => Self::Unavailable(m),
            AppError::ClusterUnavailable(m) => Self::ClusterUnavailable(m),
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
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::Denied(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable(_) | Self::ClusterUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let (detail, field) = match self {
            Self::BadRequest { detail, field } => (detail.clone(), field.clone()),
            Self::Invalid(invalid) => (invalid.to_string(), Some(invalid.field.clone())),
            Self::Unavailable(_) => (
                "the database is unavailable; nothing was changed, retry later".to_owned(),
                None,
            ),
            Self::Internal(_) => ("internal error; it has been logged".to_owned(), None),
            other => (other.to_string(), None),
        };
        Problem {
            kind: "about:blank".to_owned(),
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
            Self::Unavailable(_) | Self::ClusterUnavailable(_) => {
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
