//! The simulator's ingress controller's listener, played as ingress-nginx plays it, on a real
//! port ([`crate::SimConfig::ingress_listen`]): each request is routed by its `Host` and path
//! over the Ingresses of every namespace (the controllers' routing table,
//! `controllers::ingress::routes`) to a Ready pod of the backend Service, and forwarded to
//! that pod's app exactly as the services proxy forwards ([`crate::http::proxy::send`]): any
//! method, bodies streamed both ways, hop-by-hop headers dropped.
//! The original `Host` is kept and ingress-nginx's `X-Forwarded-*`, `X-Real-IP` and
//! `X-Request-ID` headers are added. No rule: 404 `404 page not found`; no Service or no
//! Ready pod: 503; an app that cannot be reached: 502. Plain HTTP only.
//!
//! As a controller it also writes the address it serves on into the `status.loadBalancer` of
//! every Ingress that is created or changed while it runs (`controllers::ingress`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;

use crate::cluster::Shared;
use crate::controllers::{host_of, Backend};
use crate::http::proxy::{end_to_end, send, service_endpoint, SendError};

/// The body of ingress-nginx's default backend, for a request no Ingress rule matches.
const NOT_FOUND: &str = "404 page not found";

/// What a request handler needs: the cluster, and the port the listener serves on (for
/// `X-Forwarded-Port`).
#[derive(Clone)]
struct IngressState {
    shared: Arc<Shared>,
    port: u16,
}

/// Serves the ingress controller on `listener` until the simulator shuts down.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    let cancel = shared.cancel.clone();
    let app = Router::new()
        .fallback(handle)
        .with_state(IngressState { shared, port });
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, service)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
    {
        tracing::warn!(error = %e, "kube-sim ingress controller stopped with an error");
    }
}

/// Routes one request: a matching backend gets it forwarded, no match gets the 404.
async fn handle(
    State(state): State<IngressState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    // HTTP/1.1 names the host in `Host`; an absolute-form or HTTP/2 request in its URI.
    let host_header = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let host = host_of(&host_header);
    let path = req.uri().path().to_string();
    let backend = state.shared.read_all(|_, c| c.route(&host, &path));
    let response = match backend {
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            NOT_FOUND,
        )
            .into_response(),
        Some(backend) => forward(&state, backend, client, &host_header, req).await,
    };
    tracing::debug!(%host, %path, status = response.status().as_u16(), "kube-sim ingress request");
    response
}

/// Forwards a request to a Ready pod of the backend Service, with ingress-nginx's headers.
async fn forward(
    state: &IngressState,
    backend: Backend,
    client: SocketAddr,
    host_header: &str,
    req: Request,
) -> Response {
    let Backend::Service { ns, name, port } = backend else {
        return nginx_error(StatusCode::SERVICE_UNAVAILABLE);
    };
    // Any reason the services proxy would give (no Service, no such port, no Ready pod) is
    // ingress-nginx's 503: an upstream without endpoints.
    let Ok(endpoint) = service_endpoint(&state.shared, &ns, &format!("{name}:{port}")) else {
        return nginx_error(StatusCode::SERVICE_UNAVAILABLE);
    };
    let (parts, body) = req.into_parts();
    let mut headers = end_to_end(&parts.headers);
    add_proxy_headers(&mut headers, client, host_header, state.port);
    let sent = send(
        &state.shared,
        &endpoint,
        parts.method,
        parts.uri.path(),
        parts.uri.query(),
        headers,
        body,
    )
    .await;
    match sent {
        Ok(response) => response,
        Err(SendError::NoApp(_)) => nginx_error(StatusCode::SERVICE_UNAVAILABLE),
        Err(SendError::Unreachable(_)) => nginx_error(StatusCode::BAD_GATEWAY),
    }
}

/// The headers ingress-nginx sets on a proxied request (its defaults: the client's own
/// `X-Forwarded-For` is not trusted but passed on as `X-Original-Forwarded-For`, and a
/// client's `X-Request-ID` is kept).
fn add_proxy_headers(headers: &mut HeaderMap, client: SocketAddr, host: &str, port: u16) {
    let client_ip = client.ip().to_string();
    let original_for = headers.remove("x-forwarded-for");
    let request_id = headers
        .get("x-request-id")
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("0"))
        });
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    headers.insert(HeaderName::from_static("x-request-id"), request_id);
    set(headers, "x-real-ip", &client_ip);
    set(headers, "x-forwarded-for", &client_ip);
    set(headers, "x-forwarded-host", host);
    set(headers, "x-forwarded-port", &port.to_string());
    for name in ["x-forwarded-proto", "x-forwarded-scheme", "x-scheme"] {
        set(headers, name, "http");
    }
    if let Some(original) = original_for {
        headers.insert(
            HeaderName::from_static("x-original-forwarded-for"),
            original,
        );
    }
}

/// nginx's own error page for a status.
fn nginx_error(code: StatusCode) -> Response {
    let title = format!(
        "{} {}",
        code.as_u16(),
        match code {
            StatusCode::SERVICE_UNAVAILABLE => "Service Temporarily Unavailable",
            other => other.canonical_reason().unwrap_or(""),
        }
    );
    let page = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    (code, [(header::CONTENT_TYPE, "text/html")], page).into_response()
}
