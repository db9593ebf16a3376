//! The HTTP side: routing of the Kubernetes REST paths to the verbs, with lists ([`list`]),
//! watches ([`watch`]), pod logs ([`logs`]), writes that need more than the store's verbs
//! ([`write`]: patch, scale), the `Table` rendering kubectl asks for ([`table`]), the `proxy`
//! subresource of services and pods ([`proxy`]) and metrics.k8s.io ([`metrics`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use crate::cluster::Shared;
use crate::resources::{self, ResourceDef, PODS};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::Writer;

mod list;
mod logs;
mod metrics;
pub(crate) mod proxy;
mod table;
mod watch;
mod write;

use list::{list, list_doc, render_one};
use logs::logs;
use watch::watch;
use write::{patch, scale};

/// Largest request body accepted.
const MAX_BODY: usize = 8 * 1024 * 1024;

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
    if let Some(target) = proxy::parse_path(&path) {
        let response = proxy::forward(&shared, target, req).await;
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
        ["apis", metrics::GROUP, metrics::VERSION] if metrics => {
            discovery(metrics::resource_list())
        }
        ["apis", metrics::GROUP, metrics::VERSION, rest @ ..] if metrics => {
            metrics::route(shared, rest, method, q)
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
/// User-Agent (see [`crate::store::manager_name`]).
fn field_manager(q: &Params, headers: &HeaderMap) -> String {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    crate::store::manager_name(q.get("fieldManager"), agent)
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
