//! Every way a call to shiplog can fail, as the caller needs to tell them apart: no
//! answer, a refused token, a problem document, or an answer this client cannot read.

use reqwest::StatusCode;
use shiplog_wire::problem::ProblemType;
use shiplog_wire::Problem;

/// Any RFC 9457 document, every member optional.
#[derive(serde::Deserialize)]
struct AnyProblem {
    #[serde(rename = "type")]
    kind: Option<ProblemType>,
    detail: Option<String>,
    field: Option<String>,
}

/// What went wrong in a call to shiplog's API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer from the server (connection refused, DNS, timeout, connection lost).
    #[error("cannot reach shiplog at {url}: {reason}")]
    Unreachable {
        /// The base URL the client used.
        url: String,
        /// The innermost cause, e.g. "Connection refused (os error 111)".
        reason: String,
    },
    /// The server answered 401: no token, or one it does not know.
    #[error("the token was refused: set --token or SHIPLOG_TOKEN")]
    Unauthorized,
    /// The server refused or failed with a status other than 401; its problem document
    /// when it sent one (a proxy in between may not).
    #[error("{detail}{}", field.as_ref().map(|f| format!(" (field: {f})")).unwrap_or_default())]
    Api {
        /// The HTTP status.
        status: u16,
        /// The problem's detail, or what the body said.
        detail: String,
        /// The request field at fault, when the server names one.
        field: Option<String>,
        /// The problem's kind (its `type` URI), when the body was a problem document:
        /// what a caller matches on, rather than the sentence.
        kind: Option<ProblemType>,
    },
    /// A name given in place of an id matches no usecase this token can see.
    #[error("no usecase named {0:?}")]
    NoSuchUsecase(String),
    /// The server answered something this client does not understand.
    #[error("unexpected answer from shiplog: {0}")]
    Unexpected(String),
}

impl ClientError {
    /// The problem's kind, if the server answered with a problem document.
    pub fn kind(&self) -> Option<ProblemType> {
        match self {
            Self::Api { kind, .. } => *kind,
            _ => None,
        }
    }

    /// The HTTP status of a refusal, if the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            Self::Unauthorized => Some(401),
            _ => None,
        }
    }

    /// The error for a failed status, from its problem+json body when it has one.
    pub(crate) fn from_answer(status: StatusCode, text: &str) -> Self {
        if let Ok(problem) = serde_json::from_str::<Problem>(text) {
            return Self::Api {
                status: status.as_u16(),
                detail: problem.detail,
                field: problem.field,
                kind: Some(problem.kind),
            };
        }
        // A problem document from something other than shiplog (a proxy, an older
        // shiplog): RFC 9457 asks for no member but lets `detail` say what went wrong.
        if let Ok(problem) = serde_json::from_str::<AnyProblem>(text) {
            if let Some(detail) = problem.detail {
                return Self::Api {
                    status: status.as_u16(),
                    detail,
                    field: problem.field,
                    kind: problem.kind,
                };
            }
        }
        // Not shiplog's problem document (a proxy in between, say): show what there is.
        let reason = status.canonical_reason().unwrap_or("error");
        let excerpt: String = text.trim().chars().take(200).collect();
        let detail = if excerpt.is_empty() {
            format!("HTTP {} {reason}", status.as_u16())
        } else {
            format!("HTTP {} {reason}: {excerpt}", status.as_u16())
        };
        Self::Api {
            status: status.as_u16(),
            detail,
            field: None,
            kind: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_document_gives_detail_field_and_type() {
        let error = ClientError::from_answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"bad tag","field":"config.image.tag","error":"bad tag"}"#,
        );
        assert_eq!(error.to_string(), "bad tag (field: config.image.tag)");
        assert!(
            matches!(
                &error,
                ClientError::Api {
                    status: 422,
                    kind: Some(ProblemType::Blank),
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn a_problem_document_of_someone_else_gives_its_detail() {
        let error = ClientError::from_answer(
            StatusCode::CONFLICT,
            r#"{"type":"https://shiplog.dev/problems/name-taken","status":409,"detail":"taken"}"#,
        );
        assert_eq!(error.to_string(), "taken");
        assert_eq!(error.kind(), Some(ProblemType::NameTaken));
    }

    #[test]
    fn a_body_that_is_no_problem_document_is_shown_as_it_is() {
        let error = ClientError::from_answer(StatusCode::BAD_GATEWAY, "<html>upstream down</html>");
        assert_eq!(
            error.to_string(),
            "HTTP 502 Bad Gateway: <html>upstream down</html>"
        );
        assert_eq!(
            ClientError::from_answer(StatusCode::NOT_FOUND, "").to_string(),
            "HTTP 404 Not Found"
        );
    }
}
