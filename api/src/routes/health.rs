//! Probes for orchestrators: liveness and readiness.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use shiplog_wire::usecases::Health;
use shiplog_wire::Problem;
use std::time::Duration;

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready", body = Health),
    (status = 503, description = "Database unreachable", body = Problem, content_type = "application/problem+json"),
))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let ping = sqlx::query("SELECT 1").execute(&state.pool);
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => Ok(Json(Health {
            status: "ready".to_owned(),
        })),
        Ok(Err(e)) => Err(ApiError::Unavailable(format!(
            "readiness check failed: {e}"
        ))),
        Err(_) => Err(ApiError::Unavailable(
            "readiness check timed out".to_owned(),
        )),
    }
}
