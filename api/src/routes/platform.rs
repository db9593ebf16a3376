//! The platform API of seed 002: named deployments of templates and images, on
//! the same usecases and ledger as the PhariaOS API. Invalid input is a 400 here.

use crate::error::PlatformError;
use crate::extract::{
    command_context, ApiQuery, Auth, JsonOrForm, PlatformJson, ReasonLater, RequestId,
};
use crate::routes::links::{DEPLOYMENT_NAME, USECASE_ID};
use crate::routes::problems::{
    DatabaseUnavailable, NoSuchDeployment, NotDeclaredJson, ReadDeploymentDenied,
    SecretsOrDatabaseUnavailable, Unauthorized, UnknownTeamId, WriteDeploymentDenied,
};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use shiplog_application::{FromImage, FromTemplate, Scope};
use shiplog_wire::platform::{
    ChangeAccepted, CreateFromTemplateBody, DeleteDeploymentBody, DeployImageBody, ListQuery,
    NameQuery, PlatformDeploymentBody, StatusBody, TemplateBody,
};
use shiplog_wire::usecases::TeamQuery;
use shiplog_wire::Problem;

/// The deployments the caller may see, oldest first: its own and its teams' (an
/// admin sees all); with `team_id`, only that team's (the caller must be a member).
#[utoipa::path(get, path = "/api/deployments", operation_id = "platform_list", tag = "platform",
    params(ListQuery),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "The deployments", body = Vec<PlatformDeploymentBody>),
        (status = 400, description = "A query parameter is malformed (team_id is a team's id)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Token lacks deployments:read, or its subject is not a member of team_id (ownership verification failed)", body = Problem, content_type = "application/problem+json"),
        Unauthorized, UnknownTeamId, DatabaseUnavailable,
    ))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<PlatformDeploymentBody>>, PlatformError> {
    let principal = auth.require(Scope::DeploymentsRead)?;
    let items = state.platform.list(principal, query.team_id).await?;
    Ok(Json(items.into_iter().map(Into::into).collect()))
}

/// Create a deployment from a template under a generated name (`abc123xyz7`); the
/// process manager rolls it out.
#[utoipa::path(post, path = "/api/deployments", operation_id = "platform_create", tag = "platform", request_body = CreateFromTemplateBody,
    params(TeamQuery),
    security(("bearer" = ["deployments:write"])),
    responses(
        (status = 201, description = "Created: UsecaseRegistered and DeploymentRequested in one commit; status Pending", body = PlatformDeploymentBody, links(
            ("Status" = (operation_id = "platform_status", parameters(("name" = DEPLOYMENT_NAME)))),
            ("GetConfig" = (operation_id = "platform_get_config", parameters(("name" = DEPLOYMENT_NAME)))),
            ("PutConfig" = (operation_id = "platform_put_config", request_body = json!({"deployment_name": "$response.body#/name", "configData": {"PORT": "8080"}}))),
            ("Restart" = (operation_id = "platform_restart", request_body = json!({"deployment_name": "$response.body#/name"}))),
            ("Delete" = (operation_id = "platform_delete", request_body = json!({"deployment_name": "$response.body#/name"}))),
            ("Logs" = (operation_id = "platform_logs", parameters(("name" = DEPLOYMENT_NAME)))),
            ("Metrics" = (operation_id = "platform_metrics", parameters(("name" = DEPLOYMENT_NAME)))),
            ("History" = (operation_id = "platform_history", parameters(("name" = DEPLOYMENT_NAME)))),
            ("Events" = (operation_id = "platform_events", parameters(("name" = DEPLOYMENT_NAME)))),
            ("GetAutoUpdate" = (operation_id = "platform_get_auto_update", parameters(("name" = DEPLOYMENT_NAME)))),
            ("PutAutoUpdate" = (operation_id = "platform_put_auto_update", request_body = json!({"deployment_name": "$response.body#/name", "enabled": true, "strategy": "recreate"}))),
            ("GetUsecase" = (operation_id = "get_usecase", parameters(("id" = USECASE_ID)))),
            ("GetDeployment" = (operation_id = "get_deployment", parameters(("id" = USECASE_ID), ("deploymentId" = "$response.body#/deploymentId")))),
            ("UsecaseHistory" = (operation_id = "usecase_history", parameters(("id" = USECASE_ID)))),
        )),
        (status = 400, description = "Body is not JSON, or template, envVars or visibility is missing or invalid (the field names it)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Token lacks deployments:write, its subject is not a member of team_id, or the deployment limit is reached (billing on)", body = Problem, content_type = "application/problem+json"),
        Unauthorized, UnknownTeamId, NotDeclaredJson, SecretsOrDatabaseUnavailable,
    ))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    ApiQuery(team): ApiQuery<TeamQuery>,
    PlatformJson(body): PlatformJson<CreateFromTemplateBody>,
) -> Result<(StatusCode, Json<PlatformDeploymentBody>), PlatformError> {
    let principal = auth.require(Scope::DeploymentsWrite)?;
    let request = FromTemplate {
        template: body.template,
        env_vars: body.env_vars,
        visibility: body.visibility.into(),
    };
    let created = state
        .platform
        .create(
            &command_context(principal, request_id),
            principal,
            team.team_id,
            request,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Deploy a raw container image, under a name of your choosing or a generated one.
#[utoipa::path(post, path = "/api/deployments/deploy-image", operation_id = "platform_deploy_image", tag = "platform", request_body = DeployImageBody,
    params(TeamQuery),
    security(("bearer" = ["deployments:write"])),
    responses(
        (status = 201, description = "Created: status Pending", body = PlatformDeploymentBody, links(
            ("Status" = (operation_id = "platform_status", parameters(("name" = DEPLOYMENT_NAME)))),
            ("GetConfig" = (operation_id = "platform_get_config", parameters(("name" = DEPLOYMENT_NAME)))),
            ("PutConfig" = (operation_id = "platform_put_config", request_body = json!({"deployment_name": "$response.body#/name", "configData": {"PORT": "8080"}}))),
            ("Restart" = (operation_id = "platform_restart", request_body = json!({"deployment_name": "$response.body#/name"}))),
            ("Delete" = (operation_id = "platform_delete", request_body = json!({"deployment_name": "$response.body#/name"}))),
            ("Logs" = (operation_id = "platform_logs", parameters(("name" = DEPLOYMENT_NAME)))),
            ("Metrics" = (operation_id = "platform_metrics", parameters(("name" = DEPLOYMENT_NAME)))),
            ("History" = (operation_id = "platform_history", parameters(("name" = DEPLOYMENT_NAME)))),
            ("Events" = (operation_id = "platform_events", parameters(("name" = DEPLOYMENT_NAME)))),
            ("GetAutoUpdate" = (operation_id = "platform_get_auto_update", parameters(("name" = DEPLOYMENT_NAME)))),
            ("PutAutoUpdate" = (operation_id = "platform_put_auto_update", request_body = json!({"deployment_name": "$response.body#/name", "enabled": true, "strategy": "recreate"}))),
            ("GetUsecase" = (operation_id = "get_usecase", parameters(("id" = USECASE_ID)))),
            ("GetDeployment" = (operation_id = "get_deployment", parameters(("id" = USECASE_ID), ("deploymentId" = "$response.body#/deploymentId")))),
            ("UsecaseHistory" = (operation_id = "usecase_history", parameters(("id" = USECASE_ID)))),
        )),
        (status = 400, description = "Body is not JSON, or image, name, containerPort, envVars or visibility is missing or invalid (the field names it)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Token lacks deployments:write, its subject is not a member of team_id, or the deployment limit is reached (billing on)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A deployment (or usecase) with this name exists", body = Problem, content_type = "application/problem+json"),
        Unauthorized, UnknownTeamId, NotDeclaredJson, DatabaseUnavailable,
    ))]
pub async fn deploy_image(
    State(state): State<AppState>,
    auth: Auth,
    request_id: RequestId,
    ApiQuery(team): ApiQuery<TeamQuery>,
    PlatformJson(body): PlatformJson<DeployImageBody>,
) -> Result<(StatusCode, Json<PlatformDeploymentBody>), PlatformError> {
    let principal = auth.require(Scope::DeploymentsWrite)?;
    let request = FromImage {
        image: body.image,
        name: body.name,
        container_port: body.container_port,
        env_vars: body.env_vars,
        visibility: body.visibility.into(),
    };
    let created = state
        .platform
        .deploy_image(
            &command_context(principal, request_id),
            principal,
            team.team_id,
            request,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// A deployment's status, with its ingresses once it is ready.
#[utoipa::path(get, path = "/api/deployments/status", operation_id = "platform_status", tag = "platform",
    params(NameQuery),
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "The status", body = StatusBody),
        (status = 400, description = "name is missing", body = Problem, content_type = "application/problem+json"),
        Unauthorized, ReadDeploymentDenied, NoSuchDeployment, DatabaseUnavailable,
    ))]
pub async fn status(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(query): ApiQuery<NameQuery>,
) -> Result<Json<StatusBody>, PlatformError> {
    let principal = auth.require(Scope::DeploymentsRead)?;
    Ok(Json(
        state.platform.get(principal, &query.name).await?.into(),
    ))
}

/// Delete a deployment: what runs is undeployed, then the usecase is deleted and
/// its Kubernetes objects (Deployment, Service, Ingresses, Secrets) removed. A form
/// post (`application/x-www-form-urlencoded`) is redirected to the deployments page.
#[utoipa::path(post, path = "/api/deployments/delete", operation_id = "platform_delete", tag = "platform",
    request_body(content(
        (DeleteDeploymentBody = "application/json"),
        (DeleteDeploymentBody = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = ["deployments:write"])),
    responses(
        (status = 200, description = "JSON: DeletionRequested is recorded; the status is Deleting until nothing is left", body = ChangeAccepted),
        (status = 303, description = "Form post: done as for JSON, then back to the deployments page (`--deployments-page`)"),
        (status = 400, description = "deployment_name is missing, the body is malformed, or the reason is invalid (or missing with --require-reason)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It is already being deleted", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is neither JSON nor a form", body = Problem, content_type = "application/problem+json"),
        Unauthorized, WriteDeploymentDenied, NoSuchDeployment, DatabaseUnavailable,
    ))]
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    ReasonLater(request_id): ReasonLater,
    body: JsonOrForm<DeleteDeploymentBody>,
) -> Result<Response, PlatformError> {
    let principal = auth.require(Scope::DeploymentsWrite)?;
    let (body, form) = match body {
        JsonOrForm::Json(body) => (body, false),
        JsonOrForm::Form(body) => (body, true),
    };
    // A form (the console's confirmation) says why in its `reason` field.
    let request_id = request_id.with_body_reason(&state, body.reason.as_deref(), form)?;
    let ctx = command_context(principal, request_id);
    state
        .platform
        .delete(&ctx, principal, &body.deployment_name)
        .await?;
    if form {
        let page = state.deployments_page.as_str();
        return Ok((StatusCode::SEE_OTHER, [(header::LOCATION, page)]).into_response());
    }
    Ok(Json(ChangeAccepted {
        success: true,
        message: format!(
            "deployment {} is being deleted: what runs is undeployed, then its objects are removed",
            body.deployment_name
        ),
        deployment_name: body.deployment_name,
        id: None,
    })
    .into_response())
}

/// The template catalog: built-in `nginx` and `postgres`, and those of `--templates`.
#[utoipa::path(get, path = "/api/templates", operation_id = "platform_templates", tag = "platform",
    security(("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "The templates", body = Vec<TemplateBody>),
        (status = 403, description = "Token lacks deployments:read", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable (checking the token); retry", body = Problem, content_type = "application/problem+json"),
        Unauthorized,
    ))]
pub async fn templates(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<TemplateBody>>, PlatformError> {
    auth.require(Scope::DeploymentsRead)?;
    Ok(Json(
        state.platform.templates().iter().map(Into::into).collect(),
    ))
}
