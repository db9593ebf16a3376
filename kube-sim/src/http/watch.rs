//! Watches: newline-delimited JSON events read from the store's change history, with the
//! initial state when asked for, bookmarks, and the client's timeout. A watch whose
//! resourceVersion the bounded history no longer covers gets kube-apiserver's answer: a 200
//! stream with one `ERROR` event (a 410 `Expired` Status), then the end; the client lists again.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use futures::Stream;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::table::table;
use super::{partial, ApiResult, Form, Params};
use crate::cluster::Shared;
use crate::json::str_at;
use crate::resources::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Change, ChangeType, Expired, Store};

/// How often a watch that allows bookmarks gets one while nothing else happens.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);
/// Watch length when the client names no `timeoutSeconds` (the real server picks 30–60 min).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// One line of a watch stream: an event of type `kind` about `object`.
pub(super) fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({ "type": kind, "object": object }).to_string();
    line.push('\n');
    Bytes::from(line)
}

struct WatchState {
    shared: Arc<Shared>,
    def: &'static ResourceDef,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    form: Form,
    include: String,
    cursor: u64,
    pending: VecDeque<Bytes>,
    rx: watch::Receiver<u64>,
    cancel: CancellationToken,
    deadline: Instant,
    bookmarks: bool,
    next_bookmark: Instant,
    /// Set once the history no longer covers the cursor: the stream ends after what is queued.
    expired: bool,
}

impl WatchState {
    fn matches(&self, obj: &Value) -> bool {
        self.ns
            .as_deref()
            .is_none_or(|ns| str_at(obj, "/metadata/namespace") == ns)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    fn render(&self, obj: &Value) -> Value {
        match self.form {
            Form::Metadata => partial(obj),
            // `kubectl get -w` asks for every event's object as a one-row Table.
            Form::Table => {
                let rv = str_at(obj, "/metadata/resourceVersion")
                    .parse()
                    .unwrap_or(0);
                table(self.def, &[Arc::new(obj.clone())], rv, &self.include)
            }
            Form::Full => obj.clone(),
        }
    }

    fn bookmark(&self, initial_end: bool) -> Bytes {
        let mut meta = json!({ "resourceVersion": self.cursor.to_string() });
        if initial_end {
            if let Some(map) = meta.as_object_mut() {
                map.insert(
                    "annotations".into(),
                    json!({ "k8s.io/initial-events-end": "true" }),
                );
            }
        }
        event_line(
            "BOOKMARK",
            &json!({ "kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": meta }),
        )
    }

    /// What a history entry looks like to this watch, if anything.
    fn translate(&self, change: &Change) -> Option<(&'static str, Value)> {
        let now = self.matches(&change.object);
        let kind = match change.kind {
            ChangeType::Added | ChangeType::Deleted => now.then_some(change.kind.as_str()),
            ChangeType::Modified => {
                let before = change.old.as_deref().is_some_and(|o| self.matches(o));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }?;
        Some((kind, self.render(&change.object)))
    }

    /// Queues every change of the watched type after the cursor and moves the cursor to the
    /// store's version; queues the 410 error instead when the history has moved past the
    /// cursor (a stream not read for a while, or a resume from an old version).
    fn fill(&mut self) {
        let shared = self.shared.clone();
        let (lines, rv) = shared.read(|s: &Store| {
            let lines: Result<Vec<Bytes>, Expired> =
                s.history.since(self.def, self.cursor).map(|changes| {
                    changes
                        .filter_map(|c| self.translate(c))
                        .map(|(kind, obj)| event_line(kind, &obj))
                        .collect()
                });
            (lines, s.rv)
        });
        match lines {
            Ok(lines) => {
                self.pending.extend(lines);
                self.cursor = self.cursor.max(rv);
            }
            Err(expired) => {
                let status = ApiError::expired(expired.message()).to_value();
                self.pending.push_back(event_line("ERROR", &status));
                self.expired = true;
            }
        }
    }
}

fn watch_stream(state: WatchState) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(line) = st.pending.pop_front() {
                return Some((Ok(line), st));
            }
            if st.expired {
                return None;
            }
            st.fill();
            if !st.pending.is_empty() {
                continue;
            }
            tokio::select! {
                _ = st.cancel.cancelled() => return None,
                _ = tokio::time::sleep_until(st.deadline) => return None,
                changed = st.rx.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = tokio::time::sleep_until(st.next_bookmark), if st.bookmarks => {
                    st.next_bookmark = Instant::now() + BOOKMARK_INTERVAL;
                    let line = st.bookmark(false);
                    st.pending.push_back(line);
                }
            }
        }
    })
}

pub(super) fn watch(
    shared: &Arc<Shared>,
    def: &'static ResourceDef,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    q: &Params,
    form: Form,
) -> ApiResult {
    let rv = q.get("resourceVersion").unwrap_or("");
    let initial_events = q.flag("sendInitialEvents");
    let from = match rv {
        "" | "0" => None,
        v => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {v:?}")))?,
        ),
    };
    let timeout = match q.number("timeoutSeconds")? {
        Some(secs) if secs > 0 => Duration::from_secs(secs.unsigned_abs()),
        _ => DEFAULT_WATCH_TIMEOUT,
    };
    let bookmarks = q.flag("allowWatchBookmarks");
    let mut rx = shared.changes.subscribe();
    rx.borrow_and_update();
    let now = Instant::now();
    let mut state = WatchState {
        shared: shared.clone(),
        def,
        ns,
        labels,
        fields,
        form,
        include: q.get("includeObject").unwrap_or("Metadata").to_string(),
        cursor: from.unwrap_or(0),
        pending: VecDeque::new(),
        rx,
        cancel: shared.cancel.clone(),
        deadline: crate::cluster::later(now, timeout),
        bookmarks,
        next_bookmark: now + BOOKMARK_INTERVAL,
        expired: false,
    };
    if from.is_none() || initial_events {
        // Start with the current state as ADDED events, then follow the history from there.
        let (objects, rv) = shared.read(|s| {
            let objects = s.select(def, state.ns.as_deref(), &state.labels, &state.fields);
            (objects, s.rv)
        });
        let lines: Vec<Bytes> = objects
            .iter()
            .map(|o| event_line("ADDED", &state.render(o)))
            .collect();
        state.pending.extend(lines);
        state.cursor = rv;
        if initial_events && bookmarks {
            let line = state.bookmark(true);
            state.pending.push_back(line);
        }
    }
    let body = Body::from_stream(watch_stream(state));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
