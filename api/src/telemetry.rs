//! The middlewares that count and time every HTTP request in the server's metrics:
//! the API's, by matched route, and the applications proxy's, as one route.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use shiplog_infrastructure::Telemetry;
use std::sync::Arc;
use std::time::Instant;

/// Records method, matched route (`unmatched` for the 404 fallback) and status of each
/// request, and the time until its response headers (a stream's lifetime is not counted).
pub async fn record_http(
    State(telemetry): State<Arc<Telemetry>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    // The route template, never the raw path: ids in paths would make a series each.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    telemetry.record_http(
        method.as_str(),
        route.as_deref(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The route label of every request through the applications proxy.
pub const PROXY_ROUTE: &str = "proxy /{usecaseId}/{path}";

/// As [`record_http`] for the applications proxy's listener: its paths are the
/// applications', so they all count as one route, [`PROXY_ROUTE`].
pub async fn record_proxy(
    State(telemetry): State<Arc<Telemetry>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    telemetry.record_http(
        method.as_str(),
        Some(PROXY_ROUTE),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
