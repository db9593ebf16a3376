//! `GET /metrics`: shiplog's own metrics for Prometheus.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use shiplog_infrastructure::telemetry::CONTENT_TYPE;
use shiplog_wire::Problem;

/// Prometheus metrics of this process in the OpenMetrics text format. Unauthenticated,
/// as scrapers rarely hold API tokens: it reveals counts and timings, never ledger data.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Requests, commands, appended events, projection lag, process-manager steps, retried Kubernetes API calls and stream followers of this process; `shiplog_projection_lag_events` is left out while the database cannot be read", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
    (status = 500, description = "The metrics could not be encoded (a bug)", body = Problem, content_type = "application/problem+json"),
))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let body = state
        .telemetry
        .encode()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
}
