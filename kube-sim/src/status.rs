//! Errors answered as Kubernetes `Status` objects, the way kube-rs and kubectl expect them.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::resources::ResourceDef;

/// A failed request, rendered as a `Status` with `status: Failure`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

fn details(def: &ResourceDef, name: &str) -> Value {
    json!({ "name": name, "group": def.group, "kind": def.plural })
}

impl ApiError {
    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{}\" not found", def.qualified_resource(), name),
            details: Some(details(def, name)),
        }
    }

    pub fn no_route() -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: None,
        }
    }

    pub fn already_exists(def: &ResourceDef, name: &str) -> Self {
        Self {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{}\" already exists", def.qualified_resource(), name),
            details: Some(details(def, name)),
        }
    }

    pub fn conflict(def: &ResourceDef, name: &str, why: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                def.qualified_resource(),
                name,
                why
            ),
            details: Some(details(def, name)),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: None,
        }
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self {
            code: 405,
            reason: "MethodNotAllowed",
            message: message.into(),
            details: None,
        }
    }

    /// 410 `Expired`: a watch from a resourceVersion older than the history kept, which the
    /// client answers by listing again.
    pub fn expired(message: impl Into<String>) -> Self {
        Self {
            code: 410,
            reason: "Expired",
            message: message.into(),
            details: None,
        }
    }

    /// 500 `InternalError`: what kube-apiserver answers when it fails on its side (an
    /// injected fault here).
    pub fn internal_error(message: impl Into<String>) -> Self {
        Self {
            code: 500,
            reason: "InternalError",
            message: format!("Internal error occurred: {}", message.into()),
            details: None,
        }
    }

    /// 429 `TooManyRequests`, as kube-apiserver's priority and fairness answers an overload:
    /// the client should try again after `retry_after_seconds` (also in `Retry-After`).
    pub fn too_many_requests(retry_after_seconds: u32) -> Self {
        Self {
            code: 429,
            reason: "TooManyRequests",
            message: "Too many requests, please try again later.".into(),
            details: Some(json!({ "retryAfterSeconds": retry_after_seconds })),
        }
    }

    /// 503 `ServiceUnavailable`: a proxy with no endpoint, or one it could not reach.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self {
            code: 503,
            reason: "ServiceUnavailable",
            message: message.into(),
            details: None,
        }
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!("the body of the request was in an unknown format - accepted media types include: application/json, application/apply-patch+yaml, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"),
            details: None,
        }
    }

    /// 422 `Invalid`, with one cause per `(field, message)`.
    pub fn invalid(def: &ResourceDef, name: &str, causes: Vec<(String, String)>) -> Self {
        let joined: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let summary = if joined.len() == 1 {
            joined.join("")
        } else {
            format!("[{}]", joined.join(", "))
        };
        let causes: Vec<Value> = causes
            .into_iter()
            .map(|(field, message)| {
                json!({ "reason": "FieldValueInvalid", "message": message, "field": field })
            })
            .collect();
        Self {
            code: 422,
            reason: "Invalid",
            message: format!(
                "{} \"{}\" is invalid: {}",
                def.qualified_kind(),
                name,
                summary
            ),
            details: Some(json!({
                "name": name, "group": def.group, "kind": def.kind, "causes": causes
            })),
        }
    }

    pub fn to_value(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let (Some(details), Some(map)) = (&self.details, status.as_object_mut()) {
            map.insert("details".into(), details.clone());
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.to_value().to_string();
        (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}
