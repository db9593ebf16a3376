//! The applications proxy (PhariaOS's "Applications Proxy"): its own listener,
//! where `/{usecaseId}/{path…}` reaches the usecase's deployed application.
//! Method, headers, query and body are forwarded, both bodies streamed, through
//! the Kubernetes API server's service proxy. The caller's bearer token is
//! checked (scope `usecases:read`) and not passed on; CORS is answered here and
//! the application's own CORS headers are dropped, so browsers never see two sets.

use crate::error::ApiError;
use crate::extract::{authenticate, bearer};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Response, Uri};
use axum::response::IntoResponse;
use axum::Router;
use futures::StreamExt;
use http_body_util::{BodyExt, Limited};
use shiplog_application::{AppError, Authenticator, Scope, Usecases};
use shiplog_infrastructure::kube_cluster::service_name;
use shiplog_infrastructure::upstream::ApiServerHttp;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tower::BoxError;
use tracing::warn;
use uuid::Uuid;

/// Where the proxy sends requests: the API server, and the namespace of the Services.
#[derive(Clone)]
pub struct Upstream {
    /// HTTP to the API server with kube's credentials.
    pub http: ApiServerHttp,
    /// The namespace shiplog's Services live in.
    pub namespace: String,
}

/// What the proxy's handler needs.
#[derive(Clone)]
pub struct ProxyState {
    /// Finds the deployed deployment of a usecase.
    pub usecases: Arc<Usecases>,
    /// Checks bearer tokens.
    pub auth: Arc<Authenticator>,
    /// `None` when this process runs without a cluster: every request is then a 503.
    pub upstream: Option<Upstream>,
    /// Fired at shutdown: open response streams end, so a graceful stop is not held up.
    pub stopping: CancellationToken,
}

/// The proxy's router: every path is `/{usecaseId}/{path…}`.
pub fn proxy_router(state: ProxyState) -> Router {
    Router::new().fallback(forward).with_state(state)
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus
/// `host`, which belongs to the next hop.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// The largest error body of the API server the proxy reads to tell its errors from the application's.
const STATUS_BODY_LIMIT: usize = 64 * 1024;

fn copy_headers(from: &HeaderMap, drop: impl Fn(&HeaderName) -> bool) -> HeaderMap {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|n| n.trim().to_ascii_lowercase()))
        .collect();
    let mut headers = HeaderMap::with_capacity(from.len());
    for (name, value) in from {
        if HOP_BY_HOP.contains(&name.as_str())
            || named.iter().any(|n| n == name.as_str())
            || drop(name)
        {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    headers
}

/// Splits `/{usecaseId}/{rest}` keeping `rest` exactly as sent (percent-encoding included).
fn target(uri: &Uri) -> Option<(Uuid, String)> {
    let path = uri.path().strip_prefix('/')?;
    let (id, rest) = match path.find('/') {
        Some(i) => (&path[..i], &path[i..]),
        None => (path, "/"),
    };
    Some((id.parse().ok()?, rest.to_owned()))
}

/// What the application needs to know about the original request: where it is
/// mounted (`X-Forwarded-Prefix`), the host the client asked for
/// (`X-Forwarded-Host`) and the client's address, after any earlier proxies'
/// (`X-Forwarded-For`).
fn forwarded_headers(
    outgoing: &mut HeaderMap,
    incoming: &HeaderMap,
    usecase_id: Uuid,
    peer: Option<SocketAddr>,
) {
    if let Ok(prefix) = HeaderValue::from_str(&format!("/{usecase_id}")) {
        outgoing.insert(HeaderName::from_static("x-forwarded-prefix"), prefix);
    }
    let forwarded_host = HeaderName::from_static("x-forwarded-host");
    if let Some(host) = incoming
        .get(header::HOST)
        .filter(|_| !incoming.contains_key(&forwarded_host))
    {
        outgoing.insert(forwarded_host, host.clone());
    }
    if let Some(peer) = peer {
        let forwarded_for = HeaderName::from_static("x-forwarded-for");
        let chain = match incoming.get(&forwarded_for).and_then(|v| v.to_str().ok()) {
            Some(earlier) => format!("{earlier}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&chain) {
            outgoing.insert(forwarded_for, value);
        }
    }
}

/// Forwards one request to the usecase's deployed application.
async fn forward(State(state): State<ProxyState>, request: Request) -> Response<Body> {
    // Present when the listener serves with connect info (`shiplog serve` does).
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    match proxy(state, peer, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn proxy(
    state: ProxyState,
    peer: Option<SocketAddr>,
    request: Request,
) -> Result<Response<Body>, ApiError> {
    let token = bearer(request.headers()).map(str::to_owned);
    let principal = authenticate(&state.auth, token.as_deref()).await?;
    principal.require(Scope::UsecasesRead)?;
    let (usecase_id, rest) = target(request.uri()).ok_or_else(|| {
        ApiError::BadGateway(format!(
            "{} does not resolve to an application: the path must start with a usecase id",
            request.uri().path()
        ))
    })?;
    // Only its owner, its team and admins reach an application; an unknown usecase
    // is no application at all (502, as the seed says).
    match state.usecases.authorize(&principal, usecase_id).await {
        Err(AppError::NotFound { .. }) => {
            return Err(ApiError::BadGateway(format!(
                "usecase {usecase_id} has no deployed application"
            )))
        }
        other => other?,
    }
    if state.usecases.serving(usecase_id).await?.is_none() {
        return Err(ApiError::BadGateway(format!(
            "usecase {usecase_id} has no deployed application"
        )));
    }
    let upstream = state.upstream.as_ref().ok_or_else(|| {
        ApiError::ClusterUnavailable(
            "this shiplog process runs without a cluster (--cluster none)".to_owned(),
        )
    })?;
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let uri = format!(
        "/api/v1/namespaces/{}/services/{}:http/proxy{rest}{query}",
        upstream.namespace,
        service_name(usecase_id)
    );
    let (parts, body) = request.into_parts();
    // shiplog's token is for shiplog; the application never sees it.
    let mut headers = copy_headers(&parts.headers, |n| n == header::AUTHORIZATION);
    forwarded_headers(&mut headers, &parts.headers, usecase_id, peer);
    let mut outgoing = axum::http::Request::builder()
        .method(parts.method)
        .uri(uri)
        .body(body.map_err(BoxError::from).boxed_unsync())
        .map_err(|e| ApiError::BadGateway(format!("cannot forward this request: {e}")))?;
    *outgoing.headers_mut() = headers;
    let response = upstream.http.send(outgoing).await.map_err(|e| {
        warn!(%usecase_id, error = %e, "the applications proxy cannot reach the API server");
        ApiError::BadGateway(format!(
            "the application of usecase {usecase_id} cannot be reached: {e}"
        ))
    })?;
    let (parts, body) = response.into_parts();
    // The application's CORS headers go: the proxy's CORS layer answers for it.
    let headers = copy_headers(&parts.headers, |n| {
        n.as_str().starts_with("access-control-")
    });
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let failed = parts.status.is_client_error() || parts.status.is_server_error();
    let body = if failed && json {
        // The API server's own errors (no endpoints, no Service, forbidden) are Status
        // objects; the application's errors pass through unchanged.
        let bytes = Limited::new(body, STATUS_BODY_LIMIT)
            .collect()
            .await
            .map_err(|e| ApiError::BadGateway(format!("the application's answer broke off: {e}")))?
            .to_bytes();
        if let Some(message) = api_server_status(&bytes) {
            return Err(ApiError::BadGateway(format!(
                "the application of usecase {usecase_id} is not available: {message}"
            )));
        }
        Body::from(bytes)
    } else {
        // Frame by frame as they come; cut at shutdown (an endless stream would hold it up).
        let frames = body
            .into_data_stream()
            .take_until(state.stopping.clone().cancelled_owned());
        Body::from_stream(frames)
    };
    let mut response = Response::new(body);
    *response.status_mut() = parts.status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// The message of a Kubernetes `Status` object, if `body` is one.
fn api_server_status(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    (value["kind"] == "Status" && value["apiVersion"] == "v1")
        .then(|| value["message"].as_str().unwrap_or("unknown").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_keeps_its_encoding_after_the_usecase_id() {
        let id = Uuid::from_u128(7);
        let uri: Uri = format!("/{id}/a%2Fb/c?x=1")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(target(&uri), Some((id, "/a%2Fb/c".to_owned())));
        let bare: Uri = format!("/{id}").parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(target(&bare), Some((id, "/".to_owned())));
        let junk: Uri = "/not-a-uuid/x".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(target(&junk), None);
    }

    #[test]
    fn hop_by_hop_and_dropped_headers_are_not_copied() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(header::HOST, HeaderValue::from_static("proxy"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        let copied = copy_headers(&h, |n| n == header::AUTHORIZATION);
        assert_eq!(copied.len(), 1, "{copied:?}");
        assert_eq!(copied["x-kept"], "yes");
    }

    #[test]
    fn the_application_learns_its_prefix_the_host_and_the_client_chain() {
        let id = Uuid::from_u128(7);
        let mut incoming = HeaderMap::new();
        incoming.insert(header::HOST, HeaderValue::from_static("apps.example.com"));
        incoming.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        let mut outgoing = HeaderMap::new();
        let peer: SocketAddr = "10.0.0.5:4711".parse().unwrap_or_else(|e| panic!("{e}"));
        forwarded_headers(&mut outgoing, &incoming, id, Some(peer));
        assert_eq!(outgoing["x-forwarded-prefix"], format!("/{id}").as_str());
        assert_eq!(outgoing["x-forwarded-host"], "apps.example.com");
        assert_eq!(outgoing["x-forwarded-for"], "203.0.113.9, 10.0.0.5");
    }

    #[test]
    fn only_kubernetes_status_objects_count_as_the_api_servers_errors() {
        let status = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no endpoints available for service \"sl-x\"","code":503}"#;
        assert_eq!(
            api_server_status(status).as_deref(),
            Some("no endpoints available for service \"sl-x\"")
        );
        assert_eq!(api_server_status(br#"{"error":"app says no"}"#), None);
        assert_eq!(api_server_status(b"not json"), None);
    }
}
