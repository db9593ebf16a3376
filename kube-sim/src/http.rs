//! The HTTP side: routing of the Kubernetes REST paths, list/watch/log streaming, and the
//! `Table` rendering kubectl asks for.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::Stream;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::json::str_at;
use crate::managed_fields::Writer;
use crate::resources::{self, ResourceDef, PODS};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Change, ChangeType, Store};
use crate::Shared;

/// Largest request body accepted.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// How often a watch that allows bookmarks gets one while nothing else happens.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);
/// Watch length when the client names no `timeoutSeconds` (the real server picks 30–60 min).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// What a route answers: a response, or a `Status` error.
pub(crate) type ApiResult = Result<Response, ApiError>;

/// The router: one fallback handler that parses the Kubernetes paths itself.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// The query parameters of a request, in order.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    fn number(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for {key}: {v:?} is not an integer"))
            }),
        }
    }
}

/// How the client wants objects rendered (from its Accept header).
#[derive(Clone, Copy, PartialEq)]
enum Form {
    Full,
    Table,
    Metadata,
}

fn form_of(headers: &HeaderMap) -> Form {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The first media type the client lists wins, as content negotiation goes.
    let first = accept.split(',').next().unwrap_or("");
    if first.contains("as=Table") {
        Form::Table
    } else if first.contains("as=PartialObjectMetadata") {
        Form::Metadata
    } else {
        Form::Full
    }
}

/// A JSON answer with the given status.
pub(crate) fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // Proxied requests stream their bodies: they must not be read here.
    if let Some(target) = crate::proxy::parse_path(&path) {
        let response = crate::proxy::forward(&shared, target, req).await;
        tracing::debug!(%method, %path, status = response.status().as_u16(), "kube-sim proxy request");
        return response;
    }
    let (parts, body) = req.into_parts();
    let result = async {
        let params = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        let body = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|e| ApiError {
                code: 413,
                reason: "RequestEntityTooLarge",
                message: format!("could not read the request body: {e}"),
                details: None,
            })?;
        route(
            &shared,
            &parts.method,
            &path,
            &Params(params.0),
            &parts.headers,
            body,
        )
        .await
    }
    .await;
    let response = result.unwrap_or_else(IntoResponse::into_response);
    tracing::debug!(%method, %path, status = response.status().as_u16(), "kube-sim request");
    response
}

async fn route(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    q: &Params,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let discovery = |doc: Value| -> ApiResult {
        if *method != Method::GET {
            return Err(ApiError::method_not_allowed(format!(
                "{method} is not supported on {path}"
            )));
        }
        Ok(json_response(StatusCode::OK, &doc))
    };
    let metrics = shared.metrics_api;
    match segs.as_slice() {
        [] => discovery(resources::root_paths(metrics)),
        ["version"] => discovery(resources::version_info()),
        ["healthz" | "livez" | "readyz"] => Ok((StatusCode::OK, "ok").into_response()),
        ["openapi", "v2"] => openapi_v2(headers),
        ["api"] => discovery(resources::core_versions(&host)),
        ["apis"] => discovery(resources::group_list(&host, metrics)),
        ["api", "v1"] => discovery(resources::resource_list("", "v1")),
        ["apis", g] => match resources::group(g, &host, metrics) {
            Some(doc) => discovery(doc),
            None => Err(ApiError::no_route()),
        },
        ["apis", crate::metrics::GROUP, crate::metrics::VERSION] if metrics => {
            discovery(crate::metrics::resource_list())
        }
        ["apis", crate::metrics::GROUP, crate::metrics::VERSION, rest @ ..] if metrics => {
            crate::metrics::route(shared, rest, method, q)
        }
        ["apis", g, v] if resources::serves_group_version(g, v) => {
            discovery(resources::resource_list(g, v))
        }
        ["api", "v1", rest @ ..] => {
            resource_route(shared, "", "v1", rest, method, q, headers, body).await
        }
        ["apis", g, v, rest @ ..] if resources::serves_group(g) => {
            resource_route(shared, g, v, rest, method, q, headers, body).await
        }
        _ => Err(ApiError::no_route()),
    }
}

/// An OpenAPI v2 document with no definitions: kubectl fetches it before `apply` (for client
/// side validation, which then has no schema to check against and passes). kubectl asks for
/// protobuf, and an empty body is a valid empty protobuf `Document`.
fn openapi_v2(headers: &HeaderMap) -> ApiResult {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("protobuf") {
        let content_type = "application/octet-stream";
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, content_type)],
            Vec::<u8>::new(),
        )
            .into_response());
    }
    let doc = json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": "v1.33.0-kube-sim" },
        "paths": {},
        "definitions": {},
    });
    Ok(json_response(StatusCode::OK, &doc))
}

#[allow(clippy::too_many_arguments)]
async fn resource_route(
    shared: &Arc<Shared>,
    group: &str,
    version: &str,
    rest: &[&str],
    method: &Method,
    q: &Params,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult {
    let (watch_prefix, rest) = match rest.split_first() {
        Some((&"watch", tail)) => (true, tail),
        _ => (false, rest),
    };
    let (def, ns, tail): (&'static ResourceDef, Option<String>, &[&str]) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if resources::find(group, version, plural).is_some_and(|d| d.namespaced) =>
        {
            let def = resources::find(group, version, plural).ok_or_else(ApiError::no_route)?;
            (def, Some((*ns).to_string()), tail)
        }
        [plural, tail @ ..] => {
            let def = resources::find(group, version, plural).ok_or_else(ApiError::no_route)?;
            (def, None, tail)
        }
        [] => return Err(ApiError::no_route()),
    };
    let form = form_of(headers);
    let all_namespaces = def.namespaced && ns.is_none();
    match tail {
        [] => {
            let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
            let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
                .map_err(ApiError::bad_request)?;
            match *method {
                Method::GET if watch_prefix || q.flag("watch") => {
                    watch(shared, def, ns, labels, fields, q, form)
                }
                Method::GET => list(shared, def, ns.as_deref(), &labels, &fields, q, form),
                Method::POST if all_namespaces => Err(ApiError::method_not_allowed(format!(
                    "create of {} needs a namespace in the path",
                    def.plural
                ))),
                Method::POST => {
                    reject_dry_run(q)?;
                    let value = parse_body(&body)?;
                    let ns = ns.unwrap_or_default();
                    let manager = field_manager(q, headers);
                    let writer = Writer::Update { manager: &manager };
                    let created = shared.with(|s| s.api_create(def, &ns, value, writer))?;
                    Ok(json_response(StatusCode::CREATED, &created))
                }
                Method::DELETE => {
                    reject_dry_run(q)?;
                    let (deleted, rv) = shared.with(|s| {
                        let deleted = s.api_delete_collection(def, ns.as_deref(), &labels, &fields);
                        (deleted, s.rv)
                    });
                    let items: Vec<Value> = deleted.iter().map(|o| (**o).clone()).collect();
                    Ok(json_response(
                        StatusCode::OK,
                        &list_doc(def, rv, items, None, None),
                    ))
                }
                _ => Err(ApiError::method_not_allowed(format!(
                    "{method} is not supported on a collection of {}",
                    def.plural
                ))),
            }
        }
        [name] if !all_namespaces => {
            let ns = ns.unwrap_or_default();
            let name = (*name).to_string();
            match *method {
                Method::GET if watch_prefix => {
                    let labels = LabelSelector::default();
                    let fields = FieldSelector::default().with_name(&name);
                    watch(
                        shared,
                        def,
                        Some(ns).filter(|_| def.namespaced),
                        labels,
                        fields,
                        q,
                        form,
                    )
                }
                Method::GET => {
                    let obj = shared
                        .read(|s| s.get(def, &ns, &name))
                        .or_else(|| {
                            (def.plural == "namespaces").then(|| Arc::new(virtual_namespace(&name)))
                        })
                        .ok_or_else(|| ApiError::not_found(def, &name))?;
                    Ok(render_one(def, &obj, form, q))
                }
                Method::PUT => {
                    reject_dry_run(q)?;
                    let value = parse_body(&body)?;
                    let manager = field_manager(q, headers);
                    let writer = Writer::Update { manager: &manager };
                    let updated =
                        shared.with(|s| s.api_update(def, &ns, &name, value, false, writer))?;
                    Ok(json_response(StatusCode::OK, &updated))
                }
                Method::PATCH => patch(shared, def, &ns, &name, q, headers, &body, false),
                Method::DELETE => {
                    reject_dry_run(q)?;
                    let options = if body.iter().all(u8::is_ascii_whitespace) {
                        json!({})
                    } else {
                        parse_body(&body)?
                    };
                    let deleted = shared.with(|s| s.api_delete(def, &ns, &name, &options))?;
                    Ok(json_response(StatusCode::OK, &deleted))
                }
                _ => Err(ApiError::method_not_allowed(format!(
                    "{method} is not supported on a {}",
                    def.singular
                ))),
            }
        }
        [name, "status"] if !all_namespaces && def.status_subresource => {
            let ns = ns.unwrap_or_default();
            let name = (*name).to_string();
            match *method {
                Method::GET => {
                    let obj = shared
                        .read(|s| s.get(def, &ns, &name))
                        .ok_or_else(|| ApiError::not_found(def, &name))?;
                    Ok(json_response(StatusCode::OK, &obj))
                }
                Method::PUT => {
                    reject_dry_run(q)?;
                    let value = parse_body(&body)?;
                    let manager = field_manager(q, headers);
                    let writer = Writer::Update { manager: &manager };
                    let updated =
                        shared.with(|s| s.api_update(def, &ns, &name, value, true, writer))?;
                    Ok(json_response(StatusCode::OK, &updated))
                }
                Method::PATCH => patch(shared, def, &ns, &name, q, headers, &body, true),
                _ => Err(ApiError::method_not_allowed(format!(
                    "{method} is not supported on {}/status",
                    def.plural
                ))),
            }
        }
        [name, "scale"] if !all_namespaces && def.plural == "deployments" => {
            let ns = ns.unwrap_or_default();
            scale(shared, def, &ns, name, method, q, headers, &body)
        }
        [name, "log"] if !all_namespaces && def.plural == PODS.plural => {
            if *method != Method::GET {
                return Err(ApiError::method_not_allowed(format!(
                    "{method} is not supported on pods/log"
                )));
            }
            logs(shared, &ns.unwrap_or_default(), name, q)
        }
        _ => Err(ApiError::no_route()),
    }
}

/// Who a write is by, for field ownership: the `fieldManager` parameter, else the client's
/// User-Agent (see [`crate::managed_fields::manager_name`]).
fn field_manager(q: &Params, headers: &HeaderMap) -> String {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    crate::managed_fields::manager_name(q.get("fieldManager"), agent)
}

fn reject_dry_run(q: &Params) -> Result<(), ApiError> {
    match q.get("dryRun") {
        Some(v) if !v.is_empty() => Err(ApiError::bad_request("kube-sim does not support dryRun")),
        _ => Ok(()),
    }
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not valid JSON (kube-sim accepts JSON only): {e}"
        ))
    })
}

/// Namespaces are always Active: a GET of one never seen answers as if it existed.
fn virtual_namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": name, "labels": { "kubernetes.io/metadata.name": name } },
        "spec": { "finalizers": ["kubernetes"] },
        "status": { "phase": "Active" },
    })
}

#[allow(clippy::too_many_arguments)]
fn patch(
    shared: &Arc<Shared>,
    def: &'static ResourceDef,
    ns: &str,
    name: &str,
    q: &Params,
    headers: &HeaderMap,
    body: &[u8],
    status_only: bool,
) -> ApiResult {
    reject_dry_run(q)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    let apply = match media {
        "application/apply-patch+yaml" | "application/apply-patch+json" => true,
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => false,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if apply && q.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    if let Some(force) = q.get("force") {
        if !matches!(force, "true" | "false" | "") {
            return Err(ApiError::bad_request(format!(
                "invalid value for force: {force:?}"
            )));
        }
    }
    let value = parse_body(body)?;
    let manager = field_manager(q, headers);
    let (obj, created) =
        shared.with(|s| s.api_patch(def, ns, name, value, apply, status_only, &manager))?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(code, &obj))
}

/// The `autoscaling/v1` Scale view of a deployment (what `kubectl scale` reads and writes).
fn scale_doc(dep: &Value) -> Value {
    let selector: Vec<String> = dep
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let meta = dep.get("metadata").cloned().unwrap_or(json!({}));
    let pick = |k: &str| meta.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": pick("name"),
            "namespace": pick("namespace"),
            "uid": pick("uid"),
            "resourceVersion": pick("resourceVersion"),
            "creationTimestamp": pick("creationTimestamp"),
        },
        "spec": { "replicas": dep.pointer("/spec/replicas").cloned().unwrap_or(json!(1)) },
        "status": {
            "replicas": dep.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector.join(","),
        },
    })
}

#[allow(clippy::too_many_arguments)]
fn scale(
    shared: &Arc<Shared>,
    def: &'static ResourceDef,
    ns: &str,
    name: &str,
    method: &Method,
    q: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult {
    let current = shared
        .read(|s| s.get(def, ns, name))
        .ok_or_else(|| ApiError::not_found(def, name))?;
    let wanted = match *method {
        Method::GET => return Ok(json_response(StatusCode::OK, &scale_doc(&current))),
        Method::PUT => parse_body(body)?,
        Method::PATCH => {
            let media = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let media = media.split(';').next().unwrap_or("").trim();
            if !matches!(
                media,
                "application/merge-patch+json"
                    | "application/strategic-merge-patch+json"
                    | "application/apply-patch+yaml"
            ) {
                return Err(ApiError::unsupported_media_type(media));
            }
            let mut doc = scale_doc(&current);
            crate::json::merge_patch(&mut doc, &parse_body(body)?);
            doc
        }
        _ => {
            return Err(ApiError::method_not_allowed(format!(
                "{method} is not supported on deployments/scale"
            )))
        }
    };
    reject_dry_run(q)?;
    let replicas = wanted
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::invalid(
                def,
                name,
                vec![(
                    "spec.replicas".into(),
                    "Invalid value: must be a non-negative integer".into(),
                )],
            )
        })?;
    let mut update = (*current).clone();
    crate::json::obj_mut(&mut update, "spec").insert("replicas".into(), json!(replicas));
    let rv = str_at(&wanted, "/metadata/resourceVersion");
    crate::json::obj_mut(&mut update, "metadata").insert("resourceVersion".into(), json!(rv));
    let manager = field_manager(q, headers);
    let writer = Writer::Update { manager: &manager };
    let updated = shared.with(|s| s.api_update(def, ns, name, update, false, writer))?;
    Ok(json_response(StatusCode::OK, &scale_doc(&updated)))
}

// ---------------------------------------------------------------------- list

fn list_doc(
    def: &ResourceDef,
    rv: u64,
    items: Vec<Value>,
    cont: Option<String>,
    remaining: Option<usize>,
) -> Value {
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if let Some(map) = meta.as_object_mut() {
        if let Some(c) = cont {
            map.insert("continue".into(), json!(c));
        }
        if let Some(r) = remaining {
            map.insert("remainingItemCount".into(), json!(r));
        }
    }
    json!({
        "kind": format!("{}List", def.kind),
        "apiVersion": def.api_version(),
        "metadata": meta,
        "items": items,
    })
}

fn list(
    shared: &Arc<Shared>,
    def: &'static ResourceDef,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    q: &Params,
    form: Form,
) -> ApiResult {
    let limit = q
        .number("limit")?
        .filter(|l| *l > 0)
        .and_then(|l| usize::try_from(l).ok());
    // A continue token is "<resourceVersion>/<namespace>/<name>" of the last item served.
    let cont = match q.get("continue").filter(|c| !c.is_empty()) {
        None => None,
        Some(token) => {
            let mut parts = token.splitn(3, '/');
            let rv = parts.next().and_then(|r| r.parse::<u64>().ok());
            match (rv, parts.next(), parts.next()) {
                (Some(rv), Some(ns), Some(name)) => Some((rv, ns.to_string(), name.to_string())),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "continue key is not valid: {token:?}"
                    )))
                }
            }
        }
    };
    let (matching, current_rv) = shared.read(|s| {
        let items: Vec<Arc<Value>> = s
            .list(def, ns)
            .into_iter()
            .filter(|o| labels.matches(o) && fields.matches(o))
            .collect();
        (items, s.rv)
    });
    let rv = cont.as_ref().map_or(current_rv, |(rv, _, _)| *rv);
    let after: Vec<Arc<Value>> = match &cont {
        None => matching,
        Some((_, cns, cname)) => matching
            .into_iter()
            .filter(|o| {
                let key = crate::store::object_key(o);
                (key.0.as_str(), key.1.as_str()) > (cns.as_str(), cname.as_str())
            })
            .collect(),
    };
    let (page, next) = match limit {
        Some(limit) if after.len() > limit => {
            let page: Vec<Arc<Value>> = after[..limit].to_vec();
            let remaining = after.len() - limit;
            let token = page.last().map(|o| {
                let (ons, oname) = crate::store::object_key(o);
                format!("{rv}/{ons}/{oname}")
            });
            (page, token.map(|t| (t, remaining)))
        }
        _ => (after, None),
    };
    if form == Form::Table {
        return Ok(json_response(
            StatusCode::OK,
            &table(def, &page, rv, q.get("includeObject").unwrap_or("Metadata")),
        ));
    }
    let items: Vec<Value> = page
        .iter()
        .map(|o| {
            if form == Form::Metadata {
                partial(o)
            } else {
                (**o).clone()
            }
        })
        .collect();
    let (cont, remaining) = match next {
        Some((t, r)) => (Some(t), Some(r)),
        None => (None, None),
    };
    let mut doc = list_doc(def, rv, items, cont, remaining);
    if form == Form::Metadata {
        if let Some(map) = doc.as_object_mut() {
            map.insert("kind".into(), json!("PartialObjectMetadataList"));
            map.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
        }
    }
    Ok(json_response(StatusCode::OK, &doc))
}

fn render_one(def: &ResourceDef, obj: &Value, form: Form, q: &Params) -> Response {
    match form {
        Form::Full => json_response(StatusCode::OK, obj),
        Form::Metadata => json_response(StatusCode::OK, &partial(obj)),
        Form::Table => {
            let rv = str_at(obj, "/metadata/resourceVersion")
                .parse()
                .unwrap_or(0);
            let doc = table(
                def,
                &[Arc::new(obj.clone())],
                rv,
                q.get("includeObject").unwrap_or("Metadata"),
            );
            json_response(StatusCode::OK, &doc)
        }
    }
}

// ---------------------------------------------------------------------- watch

fn event_line(kind: &str, object: &Value) -> Bytes {
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
        if change.def.plural != self.def.plural {
            return None;
        }
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

    /// Queues every change after the cursor and moves the cursor to the store's version.
    fn fill(&mut self) {
        let shared = self.shared.clone();
        let (lines, rv) = shared.read(|s: &Store| {
            let start = s.history.partition_point(|c| c.rv <= self.cursor);
            let lines: Vec<Bytes> = s.history[start..]
                .iter()
                .filter_map(|c| self.translate(c))
                .map(|(kind, obj)| event_line(kind, &obj))
                .collect();
            (lines, s.rv)
        });
        self.pending.extend(lines);
        self.cursor = self.cursor.max(rv);
    }
}

fn watch_stream(state: WatchState) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(line) = st.pending.pop_front() {
                return Some((Ok(line), st));
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

fn watch(
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
        deadline: crate::later(now, timeout),
        bookmarks,
        next_bookmark: now + BOOKMARK_INTERVAL,
    };
    if from.is_none() || initial_events {
        // Start with the current state as ADDED events, then follow the history from there.
        let (objects, rv) = shared.read(|s| (s.list(def, state.ns.as_deref()), s.rv));
        let lines: Vec<Bytes> = objects
            .iter()
            .filter(|o| state.matches(o))
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

// ---------------------------------------------------------------------- logs

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

fn format_lines(lines: &[crate::kubelet::LogLine], timestamps: bool) -> String {
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
            let (text, ended, total) = shared.read(|s| match s.logs.get(&st.uid) {
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

fn logs(shared: &Arc<Shared>, ns: &str, name: &str, q: &Params) -> ApiResult {
    let pod = shared
        .read(|s| s.get(&PODS, ns, name))
        .ok_or_else(|| ApiError::not_found(&PODS, name))?;
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
    let uid = str_at(&pod, "/metadata/uid").to_string();
    let timestamps = q.flag("timestamps");
    let tail = q.number("tailLines")?;
    let since: Option<DateTime<Utc>> = match (q.number("sinceSeconds")?, q.get("sinceTime")) {
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
    let mut bytes_left = match q.number("limitBytes")? {
        Some(n) if n <= 0 => {
            return Err(ApiError::bad_request(
                "limitBytes must be greater than zero",
            ))
        }
        n => n.map(i64::unsigned_abs),
    };
    let mut rx = shared.log_changes.subscribe();
    rx.borrow_and_update();
    let (text, next) = shared.read(|s| {
        let lines = s
            .logs
            .get(&uid)
            .and_then(|l| l.containers.get(&container))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut selected: Vec<crate::kubelet::LogLine> = lines
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

// ---------------------------------------------------------------------- tables (kubectl get)

/// Kubernetes' short human durations: 42s, 3m12s, 47m, 5h3m, 30h, 3d4h, 120d.
fn human_age(timestamp: &str) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(timestamp) else {
        return "<unknown>".into();
    };
    let secs = (Utc::now() - t.with_timezone(&Utc)).num_seconds().max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        if secs % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", secs % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else {
        format!("{d}d")
    }
}

fn int_at(obj: &Value, path: &str) -> i64 {
    obj.pointer(path).and_then(Value::as_i64).unwrap_or(0)
}

fn pod_status_text(pod: &Value) -> String {
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    let waiting = statuses.and_then(|cs| {
        cs.iter()
            .map(|c| str_at(c, "/state/waiting/reason"))
            .find(|r| !r.is_empty())
    });
    match waiting {
        Some(reason) => reason.to_string(),
        None => str_at(pod, "/status/phase").to_string(),
    }
}

fn columns_and_cells(
    def: &ResourceDef,
    obj: &Value,
) -> (Vec<(&'static str, &'static str)>, Vec<Value>) {
    let name = json!(str_at(obj, "/metadata/name"));
    let age = json!(human_age(str_at(obj, "/metadata/creationTimestamp")));
    match def.plural {
        "pods" => {
            let statuses = obj
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array);
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses.map_or(0, |cs| {
                cs.iter()
                    .filter(|c| c.get("ready") == Some(&json!(true)))
                    .count()
            });
            let restarts: i64 =
                statuses.map_or(0, |cs| cs.iter().map(|c| int_at(c, "/restartCount")).sum());
            (
                vec![
                    ("Name", "string"),
                    ("Ready", "string"),
                    ("Status", "string"),
                    ("Restarts", "string"),
                    ("Age", "string"),
                ],
                vec![
                    name,
                    json!(format!("{ready}/{total}")),
                    json!(pod_status_text(obj)),
                    json!(restarts.to_string()),
                    age,
                ],
            )
        }
        "deployments" => (
            vec![
                ("Name", "string"),
                ("Ready", "string"),
                ("Up-to-date", "integer"),
                ("Available", "integer"),
                ("Age", "string"),
            ],
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int_at(obj, "/status/readyReplicas"),
                    int_at(obj, "/spec/replicas")
                )),
                json!(int_at(obj, "/status/updatedReplicas")),
                json!(int_at(obj, "/status/availableReplicas")),
                age,
            ],
        ),
        "services" => {
            let ports: Vec<String> = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| format!("{}/{}", int_at(p, "/port"), str_at(p, "/protocol")))
                        .collect()
                })
                .unwrap_or_default();
            let ports = if ports.is_empty() {
                "<none>".to_string()
            } else {
                ports.join(",")
            };
            (
                vec![
                    ("Name", "string"),
                    ("Type", "string"),
                    ("Cluster-IP", "string"),
                    ("External-IP", "string"),
                    ("Port(s)", "string"),
                    ("Age", "string"),
                ],
                vec![
                    name,
                    json!(str_at(obj, "/spec/type")),
                    json!(str_at(obj, "/spec/clusterIP")),
                    json!("<none>"),
                    json!(ports),
                    age,
                ],
            )
        }
        "events" => (
            vec![
                ("Last Seen", "string"),
                ("Type", "string"),
                ("Reason", "string"),
                ("Object", "string"),
                ("Message", "string"),
            ],
            vec![
                json!(human_age(str_at(obj, "/lastTimestamp"))),
                json!(str_at(obj, "/type")),
                json!(str_at(obj, "/reason")),
                json!(format!(
                    "{}/{}",
                    str_at(obj, "/involvedObject/kind").to_lowercase(),
                    str_at(obj, "/involvedObject/name")
                )),
                json!(str_at(obj, "/message")),
            ],
        ),
        "secrets" => crate::secrets::table_row(obj, name, age),
        "ingresses" => crate::ingress::table_row(obj, name, age),
        "namespaces" => (
            vec![("Name", "string"), ("Status", "string"), ("Age", "string")],
            vec![name, json!(str_at(obj, "/status/phase")), age],
        ),
        _ => (vec![("Name", "string"), ("Age", "string")], vec![name, age]),
    }
}

/// A `meta.k8s.io/v1` Table, what `kubectl get` prints.
fn table(def: &ResourceDef, objects: &[Arc<Value>], rv: u64, include: &str) -> Value {
    let (columns, _) = columns_and_cells(def, &json!({}));
    let column_defs: Vec<Value> = columns
        .iter()
        .map(|(name, kind)| {
            json!({
                "name": name,
                "type": kind,
                "format": if *name == "Name" { "name" } else { "" },
                "description": "",
                "priority": 0,
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let (_, cells) = columns_and_cells(def, o);
            let mut row = json!({ "cells": cells });
            let object = match include {
                "None" => None,
                "Object" => Some((**o).clone()),
                _ => Some(partial(o)),
            };
            if let (Some(object), Some(map)) = (object, row.as_object_mut()) {
                map.insert("object".into(), object);
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": { "resourceVersion": rv.to_string() },
        "columnDefinitions": column_defs,
        "rows": rows,
    })
}
