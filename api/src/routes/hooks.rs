//! Webhooks other systems call: a registry's push notifications make the
//! auto-update watcher check the deployments that follow the pushed image at once.

use crate::error::ApiError;
use crate::extract::{ApiJson, Auth};
use crate::routes::problems::{DatabaseUnavailable, NotDeclaredJson, NotJson, Unauthorized};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use shiplog_application::Scope;
use shiplog_wire::auto_update::{HookAccepted, RegistryNotification};
use shiplog_wire::Problem;

/// A registry's push notification (the distribution registry's `notifications`
/// format). Each manifest push makes every deployment that follows the pushed
/// repository (its serving image's registry and repository; under the `digest`
/// policy also its tag) due for a check at once; the watcher then deploys what it
/// finds as usual. Pulls, deletes and blob pushes are ignored. Authenticated by a
/// token with the `hooks:registry` scope, sent by the registry as
/// `Authorization: Bearer …` (its endpoint's `headers`).
#[utoipa::path(post, path = "/api/hooks/registry", tag = "hooks", request_body = RegistryNotification,
    security(("bearer" = ["hooks:registry"])),
    responses(
        (status = 202, description = "The checks are due; the watcher runs them at once", body = HookAccepted),
        (status = 403, description = "The token lacks the hooks:registry scope", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body is not a notification envelope (an object with `events`); the field names where", body = Problem, content_type = "application/problem+json"),
        Unauthorized, NotJson, NotDeclaredJson, DatabaseUnavailable,
    ))]
pub async fn registry(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(notification): ApiJson<RegistryNotification>,
) -> Result<(StatusCode, Json<HookAccepted>), ApiError> {
    auth.require(Scope::HooksRegistry)?;
    let pushes = notification.pushes();
    let checks = state.hooks.pushed(&pushes).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(HookAccepted {
            pushes: pushes.len(),
            checks,
        }),
    ))
}
