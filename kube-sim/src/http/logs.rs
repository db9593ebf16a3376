//! Pod logs: a container's lines (with `tailLines`, `sinceSeconds`/`sinceTime`,
//! `timestamps`, `limitBytes`), and `follow` streaming as the kubelet appends.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::Stream;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{ApiResult, Params};
use crate::cluster::Shared;
use crate::controllers::LogLine;
use crate::json::str_at;
use crate::resources::PODS;
use crate::status::ApiError;

struct LogState {
    shared: Arc<Shared>,
    uid: String,
    container: String,
    next: usize,
    timestamps: bool,
    bytes_left: Option<u64>,
    rx: watch::Receiver<u64>,
    cancel: CancellationToken,
    first: Option<Bytes>,
}

fn format_lines(lines: &[LogLine], timestamps: bool) -> String {
    let mut out = String::new();
    for l in lines {
        if timestamps {
            out.push_str(&l.at.to_rfc3339_opts(SecondsFormat::Nanos, true));
            out.push(' ');
        }
        out.push_str(&l.text);
        out.push('\n');
    }
    out
}

fn truncate_to(text: String, bytes_left: &mut Option<u64>) -> String {
    let Some(left) = bytes_left else { return text };
    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(text.len());
    *left -= u64::try_from(take).unwrap_or(*left);
    let mut cut = take;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[..cut].to_string()
}

fn log_stream(state: LogState) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    futures::stream::unfold(state, |mut st| async move {
        if let Some(first) = st.first.take() {
            if !first.is_empty() {
                return Some((Ok(first), st));
            }
        }
        loop {
            if st.bytes_left == Some(0) {
                return None;
            }
            let shared = st.shared.clone();
            let (text, ended, total) = shared.read_all(|_, c| match c.pod_logs(&st.uid) {
                None => (String::new(), true, st.next),
                Some(logs) => {
                    let lines = logs
                        .containers
                        .get(&st.container)
                        .map(Vec::as_slice)
                        .unwrap_or(&[]);
                    let start = st.next.min(lines.len());
                    (
                        format_lines(&lines[start..], st.timestamps),
                        logs.ended,
                        lines.len(),
                    )
                }
            });
            st.next = total;
            let text = truncate_to(text, &mut st.bytes_left);
            if !text.is_empty() {
                return Some((Ok(Bytes::from(text)), st));
            }
            if ended {
                return None;
            }
            tokio::select! {
                _ = st.cancel.cancelled() => return None,
                changed = st.rx.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
            }
        }
    })
}

/// What a log request asks for besides the container: `timestamps`, `tailLines`,
/// `sinceSeconds`/`sinceTime` and `limitBytes`.
struct LogOptions {
    timestamps: bool,
    tail: Option<i64>,
    since: Option<DateTime<Utc>>,
    limit_bytes: Option<u64>,
}

impl LogOptions {
    /// Reads the options, with the API server's 400s for values it refuses.
    fn parse(q: &Params) -> Result<Self, ApiError> {
        let tail = q.number("tailLines")?;
        let since = match (q.number("sinceSeconds")?, q.get("sinceTime")) {
            (Some(secs), _) => Some(
                chrono::Duration::try_seconds(secs)
                    .and_then(|d| Utc::now().checked_sub_signed(d))
                    .ok_or_else(|| ApiError::bad_request(format!("invalid sinceSeconds {secs}")))?,
            ),
            (None, Some(t)) if !t.is_empty() => Some(
                DateTime::parse_from_rfc3339(t)
                    .map_err(|e| ApiError::bad_request(format!("invalid sinceTime {t:?}: {e}")))?
                    .with_timezone(&Utc),
            ),
            _ => None,
        };
        let limit_bytes = match q.number("limitBytes")? {
            Some(n) if n <= 0 => {
                return Err(ApiError::bad_request(
                    "limitBytes must be greater than zero",
                ))
            }
            n => n.map(i64::unsigned_abs),
        };
        Ok(LogOptions {
            timestamps: q.flag("timestamps"),
            tail,
            since,
            limit_bytes,
        })
    }
}

/// The container of `pod` whose logs are asked for: the `container` parameter, or the only
/// one; refused as the API server refuses it when there is no such container, when it asks
/// for a `previous` one, or when the container has not started.
fn log_container(pod: &Value, name: &str, q: &Params) -> Result<String, ApiError> {
    let names: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().map(|c| str_at(c, "/name").to_string()).collect())
        .unwrap_or_default();
    let container = match q.get("container").filter(|c| !c.is_empty()) {
        Some(c) if names.iter().any(|n| n == c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )))
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )))
        }
    };
    if q.flag("previous") {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    let waiting = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| str_at(c, "/name") == container))
        .map(|c| str_at(c, "/state/waiting/reason").to_string())
        .unwrap_or_else(|| "ContainerCreating".into());
    if !waiting.is_empty() {
        let why = match waiting.as_str() {
            "ImagePullBackOff" | "ErrImagePull" => "trying and failing to pull image".to_string(),
            other => other.to_string(),
        };
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {why}"
        )));
    }
    Ok(container)
}

/// `GET .../pods/{name}/log`: the container's lines so far, then, with `follow`, the lines
/// the kubelet appends until the pod is deleted.
pub(super) fn logs(shared: &Arc<Shared>, ns: &str, name: &str, q: &Params) -> ApiResult {
    let pod = shared
        .read(|s| s.get(&PODS, ns, name))
        .ok_or_else(|| ApiError::not_found(&PODS, name))?;
    let container = log_container(&pod, name, q)?;
    let uid = str_at(&pod, "/metadata/uid").to_string();
    let LogOptions {
        timestamps,
        tail,
        since,
        limit_bytes: mut bytes_left,
    } = LogOptions::parse(q)?;
    let mut rx = shared.log_changes.subscribe();
    rx.borrow_and_update();
    let (text, next) = shared.read_all(|_, c| {
        let lines = c
            .pod_logs(&uid)
            .and_then(|l| l.containers.get(&container))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut selected: Vec<LogLine> = lines
            .iter()
            .filter(|l| since.is_none_or(|t| l.at >= t))
            .cloned()
            .collect();
        if let Some(n) = tail {
            let keep = usize::try_from(n.max(0)).unwrap_or(0);
            let skip = selected.len().saturating_sub(keep);
            selected.drain(..skip);
        }
        (format_lines(&selected, timestamps), lines.len())
    });
    let text = truncate_to(text, &mut bytes_left);
    let headers = [(header::CONTENT_TYPE, "text/plain")];
    if !q.flag("follow") {
        return Ok((StatusCode::OK, headers, text).into_response());
    }
    let state = LogState {
        shared: shared.clone(),
        uid,
        container,
        next,
        timestamps,
        bytes_left,
        rx,
        cancel: shared.cancel.clone(),
        first: Some(Bytes::from(text)),
    };
    Ok((
        StatusCode::OK,
        headers,
        Body::from_stream(log_stream(state)),
    )
        .into_response())
}
