//! `/api/audit`: recompute the hash chain, and export the sealed ledger for
//! verification without shiplog.

use crate::error::ApiError;
use crate::extract::Auth;
use crate::routes::problems::{AuditorOnly, DatabaseUnavailable, Unauthorized};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use shiplog_application::chain::export_line;
use shiplog_application::{Scope, SealedEvent};
use shiplog_wire::ledger::VerifyReport;

/// Recompute the hash chain over the whole ledger and report the first break, if any.
#[utoipa::path(get, path = "/api/audit/verify", tag = "audit",
    security(("bearer" = ["audit:read"])),
    responses(
        (status = 200, description = "The chain's state: verified, or the first event where it breaks", body = VerifyReport),
        Unauthorized, AuditorOnly, DatabaseUnavailable,
    ))]
pub async fn verify(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<VerifyReport>, ApiError> {
    auth.require(Scope::AuditRead)?;
    Ok(Json(state.audit.verify().await?.into()))
}

/// Export every sealed event with its hashes as NDJSON (one JSON object per line, chain order).
///
/// Each line holds the hashed record (`aggregateType`, `cursor`, `metadata`, `payload`,
/// `recordedAt`, `sequence`, `type`, `usecaseId`, `version`) plus `chainIndex`, `actor`,
/// `prevHash` and `hash`. The README documents how to recompute the hashes.
#[utoipa::path(get, path = "/api/audit/export", tag = "audit",
    security(("bearer" = ["audit:read"])),
    responses(
        (status = 200, description = "The sealed ledger, one event per line", body = String, content_type = "application/x-ndjson"),
        Unauthorized, AuditorOnly, DatabaseUnavailable,
    ))]
pub async fn export(State(state): State<AppState>, auth: Auth) -> Result<Response, ApiError> {
    auth.require(Scope::AuditRead)?;
    let mut sealed = state.audit.export();
    // Read the first page before answering, so an outage is a 503 and not a cut-off body.
    let first = match sealed.next().await {
        Some(Err(e)) => return Err(e.into()),
        other => other,
    };
    let lines = futures::stream::iter(first).chain(sealed).map(|item| {
        // A failure after the first line can only cut the body short: the client
        // sees an incomplete chunked transfer, never a silently shorter export.
        item.map(|event: SealedEvent| {
            let mut line = export_line(&event).to_string();
            line.push('\n');
            Bytes::from(line)
        })
        .map_err(|e| std::io::Error::other(e.to_string()))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}
