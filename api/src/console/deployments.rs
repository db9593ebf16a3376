//! `/deployments`: the caller's deployments and usecases with live status badges,
//! ingress links, a team selector, the two create forms, and delete with a
//! confirmation page whose form posts to seed 002's own `POST /api/deployments/delete`.

use super::layout::{badge, csrf_field, done_note, page, Section};
use super::session::{see_other, Console};
use super::{command_context, parse_env, ConsoleForm, PageError};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{html, Markup};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use shiplog_application::{FromImage, FromTemplate, PlatformDeployment, Scope, TeamView};
use shiplog_domain::Visibility;
use uuid::Uuid;

/// `/deployments`' query: the team shown, and what was just done.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Only this team's deployments (empty: all the caller may see).
    team_id: Option<String>,
    /// The name of a deployment just created, to say so.
    created: Option<String>,
    /// The name of a deployment just deleted, to say so.
    deleted: Option<String>,
}

/// A team id from a form or query: empty is none, anything else must be a UUID.
pub(crate) fn team_of(raw: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(id) => id.parse().map(Some).map_err(|_| ApiError::BadRequest {
            detail: format!("team_id: {id:?} is not a team's id"),
            field: Some("team_id".to_owned()),
        }),
    }
}

/// The deployments page.
pub async fn show(
    State(state): State<AppState>,
    Console(session): Console,
    Query(query): Query<ListQuery>,
) -> Result<Markup, PageError> {
    let principal = &session.principal;
    principal.require(Scope::DeploymentsRead)?;
    let team = team_of(query.team_id.as_deref())?;
    let teams = state.teams.list(principal).await?;
    let items = state.platform.list(principal, team).await?;
    let live = match team {
        Some(team) => format!("/console/live/deployments?team_id={team}"),
        None => "/console/live/deployments".to_owned(),
    };
    let may_write = principal.require(Scope::DeploymentsWrite).is_ok();
    let body = html! {
        h1 { "Deployments" }
        @if let Some(name) = &query.created { (done_note(&format!("Deployment {name} was created; its status follows below."))) }
        @if let Some(name) = &query.deleted { (done_note(&format!("Deployment {name} is being deleted."))) }
        (team_selector(&teams, team))
        section.card aria-labelledby="list-title" {
            h2 #list-title { "Deployments and usecases" }
            @if items.is_empty() {
                p { "Nothing here yet: create a deployment below." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" { "Status" }
                            th scope="col" { "Source" } th.optional scope="col" { "Owner" }
                            th scope="col" { "Reached at" } th scope="col" { span.visually-hidden { "Actions" } }
                        } }
                        tbody sse-connect=(live) {
                            @for d in &items { (row(d, &teams, may_write)) }
                        }
                    }
                }
            }
        }
        @if may_write { (create_forms(&state, &session, &teams, team)) }
    };
    Ok(page(
        "Deployments",
        Section::Deployments,
        Some(&session),
        body,
    ))
}

/// The SSE event that carries deployment `id`'s badge.
pub fn status_event(id: Uuid) -> String {
    format!("status-{id}")
}

/// The badge of a deployment in the list, the live fragment's content.
pub fn status_badge(d: &PlatformDeployment) -> Markup {
    badge(d.report.status.as_str(), Some(&format!("badge-{}", d.name)))
}

fn row(d: &PlatformDeployment, teams: &[TeamView], may_write: bool) -> Markup {
    let source = match (&d.template, &d.image) {
        (Some(template), _) => format!("template {template}"),
        (None, Some(image)) => image.clone(),
        (None, None) => "—".to_owned(),
    };
    let team = d.team.map(|t| {
        teams
            .iter()
            .find(|v| v.id == t)
            .map_or(t.to_string(), |v| v.name.clone())
    });
    let link = format!("/deployments/{}", encoded(&d.name));
    html! {
        tr id={ "row-" (d.name) } {
            td { a href=(link) { (d.name) } }
            td sse-swap=(status_event(d.usecase_id)) title=(d.report.message) { (status_badge(d)) }
            td.mono { (source) }
            td.optional { (d.owner) @if let Some(team) = team { br; span.meta { "team " (team) } } }
            td {
                @for ingress in &d.ingresses { a href=(ingress.url) { (ingress.host) } br; }
                @if d.ingresses.is_empty() { span.meta { (d.visibility.as_str()) } }
            }
            td {
                @if may_write && d.report.allow_delete {
                    a href={ (link) "/delete" } aria-label={ "Delete " (d.name) } { "Delete" }
                }
            }
        }
    }
}

/// A path segment, percent-encoded.
pub(crate) fn encoded(segment: &str) -> String {
    utf8_percent_encode(segment, NON_ALPHANUMERIC).to_string()
}

fn team_selector(teams: &[TeamView], team: Option<Uuid>) -> Markup {
    html! {
        form.card method="get" action="/deployments" {
            label for="team_id" { "Team" }
            select #team_id name="team_id" {
                option value="" selected[team.is_none()] { "All I may see" }
                @for t in teams {
                    option value=(t.id) selected[team == Some(t.id)] { (t.name) }
                }
            }
            button.secondary type="submit" { "Show" }
        }
    }
}

fn team_field(id: &str, teams: &[TeamView], team: Option<Uuid>) -> Markup {
    html! {
        label for=(id) { "Team" }
        select id=(id) name="team_id" {
            option value="" selected[team.is_none()] { "My own (or my only team)" }
            @for t in teams { option value=(t.id) selected[team == Some(t.id)] { (t.name) } }
        }
    }
}

fn common_fields(prefix: &str) -> Markup {
    html! {
        label for={ (prefix) "-visibility" } { "Visibility" }
        select id={ (prefix) "-visibility" } name="visibility" {
            option value="public" { "public (an Ingress per exposed service)" }
            option value="internal" { "internal (inside the cluster only)" }
        }
        label for={ (prefix) "-env" } { "Environment variables" }
        textarea id={ (prefix) "-env" } name="env" placeholder="PORT=8080" aria-describedby={ (prefix) "-env-help" } {}
        p.help id={ (prefix) "-env-help" } { "One KEY=VALUE per line." }
        label for={ (prefix) "-reason" } { "Reason (optional)" }
        input type="text" id={ (prefix) "-reason" } name="reason" maxlength="1000";
    }
}

fn create_forms(
    state: &AppState,
    session: &super::session::ConsoleSession,
    teams: &[TeamView],
    team: Option<Uuid>,
) -> Markup {
    html! {
        div.grid {
            section.card aria-labelledby="from-template" {
                h2 #from-template { "Create from a template" }
                form method="post" action="/deployments" {
                    (csrf_field(session))
                    input type="hidden" name="kind" value="template";
                    label for="template" { "Template" }
                    select #template name="template" required {
                        @for t in state.platform.templates() {
                            option value=(t.name) { (t.name) @if !t.description.is_empty() { " — " (t.description) } }
                        }
                    }
                    (team_field("template-team", teams, team))
                    (common_fields("template"))
                    button type="submit" { "Create" }
                }
            }
            section.card aria-labelledby="from-image" {
                h2 #from-image { "Deploy an image" }
                form method="post" action="/deployments" {
                    (csrf_field(session))
                    input type="hidden" name="kind" value="image";
                    label for="image" { "Image" }
                    input #image type="text" name="image" required placeholder="nginx:1.27";
                    label for="image-name" { "Name (optional)" }
                    input #image-name type="text" name="name" placeholder="generated when empty";
                    label for="image-port" { "Container port" }
                    input #image-port type="number" name="container_port" min="1" max="65535" placeholder="8080";
                    (team_field("image-team", teams, team))
                    (common_fields("image"))
                    button type="submit" { "Deploy" }
                }
            }
        }
    }
}

/// What the create forms post.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreateForm {
    /// `template` or `image`.
    kind: String,
    template: Option<String>,
    image: Option<String>,
    name: Option<String>,
    container_port: Option<String>,
    visibility: Option<String>,
    env: Option<String>,
    team_id: Option<String>,
    reason: Option<String>,
}

/// `Some(text)` unless blank.
fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn visibility_of(raw: Option<String>) -> Result<Visibility, ApiError> {
    match raw.as_deref() {
        None | Some("public") => Ok(Visibility::Public),
        Some("internal") => Ok(Visibility::Internal),
        Some(other) => Err(ApiError::BadRequest {
            detail: format!("visibility: {other:?} is neither public nor internal"),
            field: Some("visibility".to_owned()),
        }),
    }
}

/// Creates a deployment from a template or an image, as `POST /api/deployments` and
/// `POST /api/deployments/deploy-image` do, then back to the list.
pub async fn create(
    State(state): State<AppState>,
    Console(session): Console,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<CreateForm>,
) -> Result<Response, PageError> {
    let principal = &session.principal;
    principal.require(Scope::DeploymentsWrite)?;
    let ctx = command_context(&state, principal, &headers, form.reason.as_deref())?;
    let team = team_of(form.team_id.as_deref())?;
    let env_vars = parse_env(form.env.as_deref().unwrap_or_default(), "env")?;
    let visibility = visibility_of(given(&form.visibility))?;
    let created = match form.kind.as_str() {
        "image" => {
            let port = match given(&form.container_port) {
                None => None,
                Some(p) => Some(p.parse::<u16>().map_err(|_| ApiError::BadRequest {
                    detail: format!("container_port: {p:?} is not a port (1 to 65535)"),
                    field: Some("container_port".to_owned()),
                })?),
            };
            let request = FromImage {
                image: given(&form.image).unwrap_or_default(),
                name: given(&form.name),
                container_port: port,
                env_vars,
                visibility,
            };
            state
                .platform
                .deploy_image(&ctx, principal, team, request)
                .await?
        }
        _ => {
            let request = FromTemplate {
                template: given(&form.template).unwrap_or_default(),
                env_vars,
                visibility,
            };
            state
                .platform
                .create(&ctx, principal, team, request)
                .await?
        }
    };
    Ok(see_other(&format!(
        "/deployments?created={}",
        encoded(&created.name)
    )))
}

/// Asks before deleting: a page whose form posts to seed 002's delete, which answers
/// a form post with 303 back to `/deployments`.
pub async fn confirm_delete(
    State(state): State<AppState>,
    Console(session): Console,
    Path(name): Path<String>,
) -> Result<Markup, PageError> {
    let principal = &session.principal;
    principal.require(Scope::DeploymentsWrite)?;
    let deployment = state.platform.get(principal, &name).await?;
    let body = html! {
        section.card.narrow aria-labelledby="confirm" {
            h1 #confirm { "Delete " (deployment.name) "?" }
            p { "What runs is undeployed, then the deployment and its Kubernetes objects are removed. "
                "Its history stays in the ledger." }
            p { "Status now: " (badge(deployment.report.status.as_str(), None)) }
            form method="post" action="/api/deployments/delete" {
                (csrf_field(&session))
                input type="hidden" name="deployment_name" value=(deployment.name);
                label for="delete-reason" { "Reason" @if !state.require_reason { " (optional)" } }
                input #delete-reason type="text" name="reason" maxlength="1000" required[state.require_reason];
                button.danger type="submit" { "Delete " (deployment.name) }
                " "
                a.button.secondary href={ "/deployments/" (encoded(&deployment.name)) } { "Cancel" }
            }
        }
    };
    Ok(page("Delete", Section::Deployments, Some(&session), body))
}
