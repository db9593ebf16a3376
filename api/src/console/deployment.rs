//! `/deployments/{name}`: one deployment's status, config (secret values masked, as the
//! application's config view gives them), restart, config edit, rollback to any earlier
//! deployment, Kubernetes events, cpu/memory, a live log tail, and its history as a timeline
//! with a slider that shows the state at any of its instants (`?at=`).

use super::deployments::{encoded, status_badge, status_event};
use super::layout::{badge, csrf_field, done_note, error_note, page, Section};
use super::live::log_line;
use super::session::{see_other, Console, ConsoleSession};
use super::{command_context, parse_env, ConsoleForm, PageError};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use shiplog_application::usecases::MAX_PAGE_SIZE;
use shiplog_application::{
    AppError, PlatformConfig, PlatformDeployment, RecordedEvent, Scope, UsecaseView,
};
use uuid::Uuid;

/// How many log lines the page is rendered with (and its live stream starts with).
pub(crate) const LOG_TAIL: u32 = 40;
/// How many log lines the page keeps as new ones arrive (`console.js` drops older ones).
const KEEP_LINES: u32 = 500;

/// The page's query: the instant to show the state at, as a time or as a step of the
/// history (what the slider sends), and what was just done.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    /// An RFC 3339 instant.
    at: Option<String>,
    /// The index of a history event: the state right after it.
    step: Option<usize>,
    /// What was just done, to say so.
    done: Option<String>,
}

/// One entry of the timeline, read from a recorded event.
struct Entry<'a> {
    event: &'a RecordedEvent,
    deployment_id: Option<Uuid>,
    digest: Option<&'a str>,
    reason: Option<&'a str>,
}

fn entry(event: &RecordedEvent) -> Entry<'_> {
    // The payload is the event's fields, or (as serde tags an enum) an object with
    // the event type as its one key.
    let fields = Some(
        event
            .payload
            .get(&event.event_type)
            .unwrap_or(&event.payload),
    );
    let field = |name: &str| fields.and_then(|f| f.get(name)).and_then(|v| v.as_str());
    Entry {
        deployment_id: field("deploymentId").and_then(|id| id.parse().ok()),
        digest: field("digest"),
        reason: event.metadata.get("reason").and_then(|r| r.as_str()),
        event,
    }
}

/// The instant asked for: `at` as given, else the instant of history event `step`.
fn instant(
    query: &PageQuery,
    history: &[RecordedEvent],
) -> Result<Option<DateTime<Utc>>, ApiError> {
    if let Some(at) = query.at.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        return DateTime::parse_from_rfc3339(at)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| ApiError::BadRequest {
                detail: format!("at: {at:?} is not an RFC 3339 instant ({e})"),
                field: Some("at".to_owned()),
            });
    }
    Ok(query
        .step
        .and_then(|i| history.get(i))
        // The state right after the event: the instant just past it.
        .map(|e| e.recorded_at + chrono::Duration::microseconds(1)))
}

/// The deployment's page.
pub async fn show(
    State(state): State<AppState>,
    Console(session): Console,
    Path(name): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Markup, PageError> {
    let principal = &session.principal;
    principal.require(Scope::DeploymentsRead)?;
    let d = state.platform.get(principal, &name).await?;
    let history = state
        .audit
        .history(d.usecase_id, Vec::new(), None, Some(MAX_PAGE_SIZE))
        .await?;
    let at = instant(&query, &history.items)?;
    let then = match at {
        Some(at) => Some(
            state
                .audit
                .usecase_at(d.usecase_id, at)
                .await
                .map_err(ApiError::from),
        ),
        None => None,
    };
    let config = state.platform.config(principal, &name).await;
    // The cluster's reads fail on their own (no cluster, no metrics API): each part
    // of the page says so instead of the whole page failing.
    let kube_events = state.platform.kube_events(principal, &name).await;
    let usage = state.platform.metrics(principal, &name, None).await;
    let logs = state
        .platform
        .logs(principal, &name, None, Some(LOG_TAIL))
        .await;
    let may_write = principal.require(Scope::DeploymentsWrite).is_ok();
    let live = format!("/console/live/deployments/{}", encoded(&d.name));
    // One live stream for the page: the badge and the log lines (see `live`).
    let body = html! { div sse-connect=(live) {
        p { a href="/deployments" { "← Deployments" } }
        h1 {
            (d.name) " "
            span sse-swap=(status_event(d.usecase_id)) { (status_badge(&d)) }
        }
        @if let Some(done) = &query.done { (done_note(done)) }
        div.grid {
            (status_card(&d))
            (config_card(&session, &d, &config, may_write))
        }
        (timeline_card(&session, &d, &history.items, at, then.as_ref(), may_write, history.next.is_some()))
        div.grid {
            section.card aria-labelledby="kube-events" {
                h2 #kube-events { "Kubernetes events" }
                @match &kube_events {
                    Ok(events) if events.is_empty() => p.meta { "None." },
                    Ok(events) => ul { @for e in events {
                        li { span.meta { (e.kind) " " (e.object_kind) "/" (e.object_name) } " " strong { (e.reason) } ": " (e.message)
                            @if e.count > 1 { " (×" (e.count) ")" } }
                    } },
                    Err(e) => (unavailable(e)),
                }
            }
            section.card aria-labelledby="usage" {
                h2 #usage { "CPU and memory" }
                @match &usage {
                    Ok(usage) if usage.pods.is_empty() => p.meta { "No pod runs." },
                    Ok(usage) => table { thead { tr { th scope="col" { "Pod" } th scope="col" { "CPU" } th scope="col" { "Memory" } } }
                        tbody { @for p in &usage.pods { tr {
                            td.mono { (p.pod) } td { (format!("{:.0}m", p.cpu_cores * 1000.0)) }
                            td { (format!("{:.1} MiB", p.memory_bytes as f64 / 1048576.0)) }
                        } } } },
                    Err(e) => (unavailable(e)),
                }
            }
        }
        section.card aria-labelledby="logs" {
            h2 #logs { "Logs" }
            @match &logs {
                // Rendered with the last lines (all a page without JavaScript shows);
                // the live stream starts again from the same tail, then appends.
                Ok(logs) => pre.logs #log-lines tabindex="0" aria-label="Log lines"
                    sse-swap="log" hx-swap="beforeend" data-live-reset data-keep-lines=(KEEP_LINES) {
                    @for l in &logs.lines { (log_line(&l.pod, &l.line)) }
                    @if logs.lines.is_empty() { "(no lines yet)" }
                },
                Err(e) => (unavailable(e)),
            }
            p.help { "New lines appear as they are written (the last " (KEEP_LINES) " are kept). Also "
                code { "GET /api/deployments/" (d.name) "/logs/stream" } "." }
        }
    } };
    Ok(page(&d.name, Section::Deployments, Some(&session), body))
}

/// What a part of the page says when its read failed.
fn unavailable(err: &AppError) -> Markup {
    html! { p.meta { (err.to_string()) } }
}

fn status_card(d: &PlatformDeployment) -> Markup {
    html! {
        section.card aria-labelledby="status-title" {
            h2 #status-title { "Status" }
            dl.facts {
                dt { "Status" } dd { (d.report.status.as_str()) ": " (d.report.message) }
                @if let Some(error) = &d.report.last_error { dt { "Last error" } dd { (error) } }
                dt { "Source" } dd.mono { (d.template.as_deref().map(|t| format!("template {t}")).or(d.image.clone()).unwrap_or_default()) }
                dt { "Image" } dd.mono { (d.image.as_deref().unwrap_or("—")) }
                dt { "Visibility" } dd { (d.visibility.as_str()) }
                dt { "Reached at" } dd {
                    @for i in &d.ingresses { a href=(i.url) { (i.url) } br; }
                    @if d.ingresses.is_empty() { "no public address" }
                }
                dt { "Owner" } dd { (d.owner) @if let Some(t) = d.team { " (team " (t) ")" } }
                dt { "Created" } dd { (stamp(d.created_at)) " by " (d.created_by) }
                dt { "Usecase id" } dd.mono { (d.usecase_id) }
            }
        }
    }
}

fn config_card(
    session: &ConsoleSession,
    d: &PlatformDeployment,
    config: &Result<PlatformConfig, AppError>,
    may_write: bool,
) -> Markup {
    let path = format!("/deployments/{}", encoded(&d.name));
    html! {
        section.card aria-labelledby="config-title" {
            h2 #config-title { "Config" }
            @match config {
                Ok(config) => {
                    p.meta { "Of deployment " span.mono { (config.deployment_id) } }
                    dl.facts {
                        @for (key, value) in &config.env { dt.mono { (key) } dd.mono { (value) } }
                        @for key in &config.generated { dt.mono { (key) } dd.meta { "generated secret, kept in the cluster only" } }
                    }
                    @if config.env.is_empty() && config.generated.is_empty() { p.meta { "No variables." } }
                    @if may_write {
                        form method="post" action={ (path) "/config" } {
                            (csrf_field(session))
                            label for="config-env" { "New variables (replace the current ones)" }
                            textarea #config-env name="env" aria-describedby="config-help" {
                                @for (key, value) in &config.env { (key) "=" (value) "\n" }
                            }
                            p.help #config-help { "One KEY=VALUE per line; applying rolls out a new deployment." }
                            label for="config-reason" { "Reason (optional)" }
                            input #config-reason type="text" name="reason" maxlength="1000";
                            button type="submit" { "Apply config" }
                        }
                    }
                }
                Err(e) => (unavailable(e)),
            }
            @if may_write && d.report.ready {
                form method="post" action={ (path) "/restart" } {
                    (csrf_field(session))
                    label for="restart-reason" { "Reason (optional)" }
                    input #restart-reason type="text" name="reason" maxlength="1000";
                    button.secondary type="submit" { "Restart pods" }
                }
            }
        }
    }
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[allow(clippy::too_many_arguments)]
fn timeline_card(
    session: &ConsoleSession,
    d: &PlatformDeployment,
    history: &[RecordedEvent],
    at: Option<DateTime<Utc>>,
    then: Option<&Result<UsecaseView, ApiError>>,
    may_write: bool,
    more: bool,
) -> Markup {
    let path = format!("/deployments/{}", encoded(&d.name));
    let entries: Vec<Entry> = history.iter().map(entry).collect();
    // The deployments that finished rolling out (and so can be rolled back to).
    let finished: Vec<Uuid> = entries
        .iter()
        .filter(|e| e.event.event_type == "DeploymentSucceeded")
        .filter_map(|e| e.deployment_id)
        .collect();
    let serving = d.deployment_id;
    let step = at.and_then(|at| entries.iter().rposition(|e| e.event.recorded_at < at));
    let last = entries.len().saturating_sub(1);
    html! {
        section.card aria-labelledby="history-title" {
            h2 #history-title { "History" }
            @if !entries.is_empty() {
                form.slider method="get" action=(path)
                    hx-get=(path) hx-trigger="change" hx-select="#main" hx-target="#main" hx-swap="outerHTML" hx-push-url="true" {
                    label for="step" { "State at a point of the history" }
                    input #step type="range" name="step" min="0" max=(last) value=(step.unwrap_or(last))
                        aria-valuetext=(step.map(|i| stamp(entries[i].event.recorded_at)).unwrap_or_else(|| "now".to_owned()));
                    button.secondary type="submit" { "Show" }
                    " "
                    @if at.is_some() { a href=(path) { "Back to now" } }
                }
            }
            @if let (Some(at), Some(then)) = (at, then) {
                div.card #state-at {
                    h3 { "State at " (stamp(at)) }
                    @match then {
                        Ok(view) => {
                            @match &view.deployment {
                                Some(dep) => p { "Deployment " span.mono { (dep.id) } " "
                                    (badge(dep.status.as_str(), None)) " running " span.mono { (dep.config.image.to_string()) } },
                                None => p { "Nothing had been deployed yet." },
                            }
                            @if view.deletion_requested { p { "Its deletion had been requested." } }
                        }
                        Err(e) => (error_note(&e.problem().detail)),
                    }
                }
            }
            ol.timeline {
                @for (i, e) in entries.iter().enumerate() {
                    li.future[step.is_some_and(|s| i > s)] {
                        strong { (e.event.event_type) }
                        " " span.meta { (stamp(e.event.recorded_at)) " by " (e.event.actor()) }
                        @if let Some(reason) = e.reason { br; "Reason: " em { (reason) } }
                        @if let Some(id) = e.deployment_id { br; span.meta { "deployment " span.mono { (id) } } }
                        @if let Some(digest) = e.digest { br; span.meta { "digest " span.mono { (digest) } } }
                        @if may_write && e.event.event_type == "DeploymentSucceeded" {
                            @if let Some(id) = e.deployment_id.filter(|id| Some(*id) != serving && finished.contains(id)) {
                                form.inline method="post" action={ (path) "/rollback" } {
                                    (csrf_field(session))
                                    input type="hidden" name="deployment_id" value=(id);
                                    " " button.secondary type="submit" aria-label={ "Roll back to deployment " (id) } { "Roll back to this" }
                                }
                            }
                        }
                    }
                }
            }
            @if more { p.meta { "Older entries continue in " a href={ "/ledger?usecase=" (d.usecase_id) } { "the ledger" } "." } }
        }
    }
}

/// What the config form posts.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConfigForm {
    #[serde(default)]
    env: String,
    reason: Option<String>,
}

/// What the restart form posts.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ReasonForm {
    reason: Option<String>,
}

/// What a rollback button posts.
#[derive(Debug, Serialize, Deserialize)]
pub struct RollbackForm {
    deployment_id: Option<String>,
    reason: Option<String>,
}

/// Back to the deployment's page, saying what was done.
fn back(name: &str, done: &str) -> Response {
    see_other(&format!(
        "/deployments/{}?done={}",
        encoded(name),
        encoded(done)
    ))
}

/// Rolls the pods, as `POST /api/deployments/restart`.
pub async fn restart(
    State(state): State<AppState>,
    Console(session): Console,
    Path(name): Path<String>,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<ReasonForm>,
) -> Result<Response, PageError> {
    let principal = &session.principal;
    principal.require(Scope::DeploymentsWrite)?;
    let ctx = command_context(&state, principal, &headers, form.reason.as_deref())?;
    state.platform.restart(&ctx, principal, &name).await?;
    Ok(back(&name, "Restart requested."))
}

/// Replaces the variables, as `PUT /api/deployments/config`.
pub async fn change_config(
    State(state): State<AppState>,
    Console(session): Console,
    Path(name): Path<String>,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<ConfigForm>,
) -> Result<Response, PageError> {
    let principal = &session.principal;
    principal.require(Scope::DeploymentsWrite)?;
    let ctx = command_context(&state, principal, &headers, form.reason.as_deref())?;
    let env = parse_env(&form.env, "env")?;
    state
        .platform
        .change_config(&ctx, principal, &name, env)
        .await?;
    Ok(back(
        &name,
        "Config change requested: a new deployment rolls out.",
    ))
}

/// Deploys an earlier deployment's config again, as the usecase API's rollback.
pub async fn rollback(
    State(state): State<AppState>,
    Console(session): Console,
    Path(name): Path<String>,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<RollbackForm>,
) -> Result<Response, PageError> {
    let principal = &session.principal;
    principal.require(Scope::DeploymentsWrite)?;
    let ctx = command_context(&state, principal, &headers, form.reason.as_deref())?;
    let target = match form
        .deployment_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(id) => Some(id.parse::<Uuid>().map_err(|_| ApiError::BadRequest {
            detail: format!("deployment_id: {id:?} is not a deployment's id"),
            field: Some("deployment_id".to_owned()),
        })?),
    };
    let accepted = state
        .platform
        .rollback(&ctx, principal, &name, target)
        .await?;
    Ok(back(
        &name,
        &format!(
            "Rollback to deployment {} requested.",
            accepted.deployment_id
        ),
    ))
}
