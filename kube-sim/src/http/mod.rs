//! The HTTP side of the API server: the router and the parsed request ([`ApiRequest`]),
//! with lists ([`list`](mod@list)), watches ([`watch`](mod@watch)), pod logs
//! ([`logs`](mod@logs)), writes that need more than the store's verbs
//! ([`write`](mod@write): patch, scale), the `Table` rendering kubectl asks for ([`table`]),
//! the `proxy` subresource of services and pods ([`proxy`]) and metrics.k8s.io ([`metrics`]);
//! in front of them all, the injected faults ([`faults`]) when a rate is configured.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use crate::cluster::Shared;
use crate::resources::{self, ResourceDef, PODS};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{ObjectRef, Writer};

pub(crate) mod faults;
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

/// The router: one fallback handler that parses the Kubernetes paths itself, behind the
/// fault injector when there is one.
pub(crate) fn router(shared: Arc<Shared>, faults: Option<Arc<faults::Injector>>) -> Router {
    let router = Router::new().fallback(handle).with_state(shared);
    match faults {
        Some(injector) => router.layer(axum::middleware::from_fn_with_state(
            injector,
            faults::inject,
        )),
        None => router,
    }
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

/// One API request as the router read it: what every handler needs of it.
pub(crate) struct ApiRequest<'a> {
    /// The cluster it is for.
    pub shared: &'a Arc<Shared>,
    /// Its method.
    pub method: &'a Method,
    /// Its path, without the query.
    pub path: &'a str,
    /// Its query parameters.
    pub params: &'a Params,
    /// Its headers.
    pub headers: &'a HeaderMap,
    /// Its whole body.
    pub body: &'a [u8],
}

impl ApiRequest<'_> {
    /// Who the request is by, for field ownership: the `fieldManager` parameter, else the
    /// client's User-Agent (see [`crate::store::manager_name`]).
    fn field_manager(&self) -> String {
        field_manager(self.params, self.headers)
    }
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
        route(&ApiRequest {
            shared: &shared,
            method: &parts.method,
            path: &path,
            params: &Params(params.0),
            headers: &parts.headers,
            body: &body,
        })
    }
    .await;
    let response = result.unwrap_or_else(IntoResponse::into_response);
    tracing::debug!(%method, %path, status = response.status().as_u16(), "kube-sim request");
    response
}

/// Routes a request by its path: discovery, health, the metrics API, or a resource.
fn route(req: &ApiRequest<'_>) -> ApiResult {
    let (method, path) = (req.method, req.path);
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let host = req
        .headers
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
    let metrics = req.shared.metrics_api;
    match segs.as_slice() {
        [] => discovery(resources::root_paths(metrics)),
        ["version"] => discovery(resources::version_info()),
        ["healthz" | "livez" | "readyz"] => Ok((StatusCode::OK, "ok").into_response()),
        ["openapi", "v2"] => openapi_v2(req.headers),
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
            metrics::route(req.shared, rest, method, req.params)
        }
        ["apis", g, v] if resources::serves_group_version(g, v) => {
            discovery(resources::resource_list(g, v))
        }
        ["api", "v1", rest @ ..] => resource_route(req, "", "v1", rest),
        ["apis", g, v, rest @ ..] if resources::serves_group(g) => resource_route(req, g, v, rest),
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

/// The resources a path under a group version names: a type, in one namespace or all (or
/// cluster-scoped), as the client wants it rendered.
struct Resources {
    /// The type.
    def: &'static ResourceDef,
    /// The namespace in the path; `None` for all namespaces or a cluster-scoped type.
    ns: Option<String>,
    /// Whether the path came through the legacy `watch/` prefix.
    watch_prefix: bool,
    /// How the client wants objects rendered.
    form: Form,
}

impl Resources {
    /// Whether the path names a namespaced type without a namespace (all of them).
    fn all_namespaces(&self) -> bool {
        self.def.namespaced && self.ns.is_none()
    }

    /// One object of the type, in the path's namespace.
    fn object<'a>(&'a self, name: &'a str) -> ObjectRef<'a> {
        ObjectRef {
            def: self.def,
            ns: self.ns.as_deref().unwrap_or_default(),
            name,
        }
    }
}

/// Reads `[watch/][namespaces/{ns}/]{plural}/...` under `group`/`version`; what follows the
/// plural is returned with it.
fn parse_resources<'p>(
    group: &str,
    version: &str,
    rest: &'p [&'p str],
    headers: &HeaderMap,
) -> Result<(Resources, &'p [&'p str]), ApiError> {
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
    let target = Resources {
        def,
        ns,
        watch_prefix,
        form,
    };
    Ok((target, tail))
}

/// Routes a request for a resource type: its collection, one object, or a subresource.
fn resource_route(req: &ApiRequest<'_>, group: &str, version: &str, rest: &[&str]) -> ApiResult {
    let (res, tail) = parse_resources(group, version, rest, req.headers)?;
    let all_namespaces = res.all_namespaces();
    match tail {
        [] => collection(req, &res),
        [name] if !all_namespaces => object(req, &res, name),
        [name, "status"] if !all_namespaces && res.def.status_subresource => {
            status(req, &res, name)
        }
        [name, "scale"] if !all_namespaces && res.def.plural == "deployments" => {
            scale(req, res.object(name))
        }
        [name, "log"] if !all_namespaces && res.def.plural == PODS.plural => {
            if *req.method != Method::GET {
                return Err(ApiError::method_not_allowed(format!(
                    "{} is not supported on pods/log",
                    req.method
                )));
            }
            logs(
                req.shared,
                res.ns.as_deref().unwrap_or_default(),
                name,
                req.params,
            )
        }
        _ => Err(ApiError::no_route()),
    }
}

/// A collection: list or watch it, create in it, delete from it by selectors.
fn collection(req: &ApiRequest<'_>, res: &Resources) -> ApiResult {
    let (shared, method, q, def) = (req.shared, req.method, req.params, res.def);
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let ns = res.ns.clone();
    match *method {
        Method::GET if res.watch_prefix || q.flag("watch") => {
            watch(shared, def, ns, labels, fields, q, res.form)
        }
        Method::GET => list(shared, def, ns.as_deref(), &labels, &fields, q, res.form),
        Method::POST if res.all_namespaces() => Err(ApiError::method_not_allowed(format!(
            "create of {} needs a namespace in the path",
            def.plural
        ))),
        Method::POST => {
            reject_dry_run(q)?;
            let value = parse_body(req.body)?;
            let ns = ns.unwrap_or_default();
            let manager = req.field_manager();
            let writer = Writer::Update { manager: &manager };
            let created = shared.with(|s, c| s.api_create(def, &ns, value, writer, c))?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        Method::DELETE => {
            reject_dry_run(q)?;
            let (deleted, rv) = shared.with(|s, c| {
                let deleted = s.api_delete_collection(def, ns.as_deref(), &labels, &fields, c);
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

/// One object: watch, get, replace, patch or delete it.
fn object(req: &ApiRequest<'_>, res: &Resources, name: &str) -> ApiResult {
    let (shared, method, q, def) = (req.shared, req.method, req.params, res.def);
    let at = res.object(name);
    match *method {
        Method::GET if res.watch_prefix => {
            let labels = LabelSelector::default();
            let fields = FieldSelector::default().with_name(name);
            let ns = Some(at.ns.to_string()).filter(|_| def.namespaced);
            watch(shared, def, ns, labels, fields, q, res.form)
        }
        Method::GET => {
            let obj = shared
                .read(|s| s.get(def, at.ns, name))
                .or_else(|| (def.plural == "namespaces").then(|| Arc::new(virtual_namespace(name))))
                .ok_or_else(|| ApiError::not_found(def, name))?;
            Ok(render_one(def, &obj, res.form, q))
        }
        Method::PUT => {
            reject_dry_run(q)?;
            let value = parse_body(req.body)?;
            let manager = req.field_manager();
            let writer = Writer::Update { manager: &manager };
            let updated = shared.with(|s, c| s.api_update(at, value, false, writer, c))?;
            Ok(json_response(StatusCode::OK, &updated))
        }
        Method::PATCH => patch(req, at, false),
        Method::DELETE => {
            reject_dry_run(q)?;
            let options = if req.body.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                parse_body(req.body)?
            };
            let deleted = shared.with(|s, c| s.api_delete(at, &options, c))?;
            Ok(json_response(StatusCode::OK, &deleted))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on a {}",
            def.singular
        ))),
    }
}

/// The `status` subresource of one object: get, replace or patch it.
fn status(req: &ApiRequest<'_>, res: &Resources, name: &str) -> ApiResult {
    let (shared, method, q, def) = (req.shared, req.method, req.params, res.def);
    let at = res.object(name);
    match *method {
        Method::GET => {
            let obj = shared
                .read(|s| s.get(def, at.ns, name))
                .ok_or_else(|| ApiError::not_found(def, name))?;
            Ok(json_response(StatusCode::OK, &obj))
        }
        Method::PUT => {
            reject_dry_run(q)?;
            let value = parse_body(req.body)?;
            let manager = req.field_manager();
            let writer = Writer::Update { manager: &manager };
            let updated = shared.with(|s, c| s.api_update(at, value, true, writer, c))?;
            Ok(json_response(StatusCode::OK, &updated))
        }
        Method::PATCH => patch(req, at, true),
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {}/status",
            def.plural
        ))),
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
