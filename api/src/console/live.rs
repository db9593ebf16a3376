//! The console's live updates: Server-Sent Event streams of rendered HTML fragments
//! (status badges) that htmx's SSE extension swaps into `/deployments` and into a
//! deployment's page.
//!
//! Built on the ledger's live feed: every new event wakes the stream, which reads the
//! caller's deployments again and sends the badges that changed. The read models are
//! fed asynchronously, so an event can arrive before its projection shows it; a short
//! tick reads again while anything is still on its way, so that the last change of a
//! burst (a rollout's `DeploymentSucceeded`) is never missed.

use super::deployment::LOG_TAIL;
use super::deployments::{status_badge, status_event, team_of};
use super::layout::badge;
use super::session::Console;
use super::PageError;
use crate::sse;
use crate::state::AppState;
use crate::stream_slots::{holding, StreamSlot};
use axum::extract::{Path, Query, State};
use axum::http::HeaderName;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use maud::{html, Markup};
use serde::Deserialize;
use shiplog_application::{
    AppError, EventFilter, FeedItem, Platform, PlatformDeployment, Principal, Scope,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How often the badges are read again while the feed is quiet.
const TICK: Duration = Duration::from_secs(1);
/// How many ticks after an event the badges are read again.
const SETTLE_TICKS: u8 = 3;
/// The statuses that change by themselves: while one is shown, every tick reads again.
const IN_FLIGHT: [&str; 3] = ["Pending", "Provisioning", "Deleting"];

/// The live stream's query: the team the page shows.
#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    team_id: Option<String>,
}

/// Whose badges a stream shows.
#[derive(Debug, Clone)]
pub(crate) enum Shown {
    /// The caller's deployments (of this team, when given): `/deployments`.
    List(Option<Uuid>),
    /// One deployment, by name: its page.
    One(String),
}

impl Shown {
    /// The deployments shown now (none when the one deployment is gone).
    async fn read(
        &self,
        platform: &Platform,
        principal: &Principal,
    ) -> Result<Vec<PlatformDeployment>, AppError> {
        match self {
            Self::List(team) => platform.list(principal, *team).await,
            Self::One(name) => match platform.get(principal, name).await {
                Ok(d) => Ok(vec![d]),
                // Deleted meanwhile: its badge says so.
                Err(AppError::NotFound { .. }) => Ok(Vec::new()),
                Err(e) => Err(e),
            },
        }
    }
}

/// What the stream remembers between wake-ups.
pub(crate) struct Badges {
    platform: Arc<Platform>,
    principal: Principal,
    shown_of: Shown,
    feed: BoxStream<'static, FeedItem>,
    ticks: tokio::time::Interval,
    /// The status each deployment's badge shows now.
    shown: HashMap<Uuid, String>,
    /// Ticks left to read again after the last event (its projection may lag).
    settle: u8,
}

impl Badges {
    /// Starts following the badges of `shown_of`: subscribed to `feed` before the first
    /// read, so that no change between the two is lost.
    pub(crate) async fn start(
        state: &AppState,
        principal: Principal,
        shown_of: Shown,
        feed: BoxStream<'static, FeedItem>,
    ) -> Result<Self, PageError> {
        let read = shown_of.read(&state.platform, &principal).await?;
        // One deployment's badge is sent at once (a page reconnecting after a while
        // may show an old one); a list's badges only when they change.
        let (shown, settle) = match shown_of {
            Shown::List(_) => (
                read.into_iter()
                    .map(|d| (d.usecase_id, d.report.status.as_str().to_owned()))
                    .collect(),
                0,
            ),
            Shown::One(_) => (HashMap::new(), 1),
        };
        Ok(Self {
            platform: state.platform.clone(),
            principal,
            shown_of,
            feed,
            ticks: tokio::time::interval(TICK),
            shown,
            settle,
        })
    }

    /// Waits for an event or a tick, then the messages of the badges that changed
    /// (none when nothing did); `None` when the feed ended.
    async fn next(mut self) -> Option<(Vec<Bytes>, Self)> {
        let woken_by_event = tokio::select! {
            item = self.feed.next() => { item?; true }
            _ = self.ticks.tick() => false,
        };
        if woken_by_event {
            self.settle = SETTLE_TICKS;
        } else if self.settle > 0 {
            self.settle -= 1;
        } else if !self.shown.values().any(|s| IN_FLIGHT.contains(&s.as_str())) {
            // Quiet, and nothing on its way: no need to read.
            return Some((Vec::new(), self));
        }
        let Ok(items) = self.shown_of.read(&self.platform, &self.principal).await else {
            // The database is away: the page keeps what it shows; the next wake-up retries.
            return Some((Vec::new(), self));
        };
        let mut messages = Vec::new();
        let listed: Vec<Uuid> = items.iter().map(|d| d.usecase_id).collect();
        // What left the list was deleted: its badge says so.
        let gone: Vec<Uuid> = self
            .shown
            .keys()
            .filter(|id| !listed.contains(id))
            .copied()
            .collect();
        for id in gone {
            self.shown.remove(&id);
            let html = badge("Deleted", None).into_string();
            messages.push(sse::message(None, Some(&status_event(id)), Some(&html)));
        }
        for d in items {
            let status = d.report.status.as_str();
            if self.shown.get(&d.usecase_id).map(String::as_str) != Some(status) {
                let html = status_badge(&d).into_string();
                messages.push(sse::message(
                    None,
                    Some(&status_event(d.usecase_id)),
                    Some(&html),
                ));
                self.shown.insert(d.usecase_id, status.to_owned());
            }
        }
        Some((messages, self))
    }
}

/// `GET /console/live/deployments`: the badges of the caller's deployments (of
/// `team_id`, when given) as they change.
pub async fn deployments(
    State(state): State<AppState>,
    Console(session): Console,
    Query(query): Query<LiveQuery>,
) -> Result<Response, PageError> {
    let principal = session.principal;
    principal.require(Scope::DeploymentsRead)?;
    let team = team_of(query.team_id.as_deref())?;
    let slot = state.streams.take(&principal)?;
    let feed = state.audit.follow(EventFilter::default(), None).await?;
    let badges = Badges::start(&state, principal, Shown::List(team), feed).await?;
    let messages = stream::unfold(badges, Badges::next)
        .flat_map(stream::iter)
        .boxed();
    Ok(live_response(&state, messages, slot))
}

/// `GET /console/live/deployments/{name}`: for a deployment's page, its badge as it
/// changes and, when its pods run, its log lines: `event: logs-reset` (the page drops
/// the lines it was rendered with), the last [`LOG_TAIL`] lines, then new ones, each
/// `event: log` with the line as escaped HTML. One stream (one connection, one slot)
/// per page.
pub async fn deployment(
    State(state): State<AppState>,
    Console(session): Console,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let principal = session.principal;
    principal.require(Scope::DeploymentsRead)?;
    let d = state.platform.get(&principal, &name).await?;
    let slot = state.streams.take(&principal)?;
    // Only this usecase's events wake the stream.
    let filter = EventFilter {
        usecase: Some(d.usecase_id),
        ..EventFilter::default()
    };
    let feed = state.audit.follow(filter, None).await?;
    // Nothing runs yet (or no cluster): the badge alone; the page keeps its static lines.
    let logs = match state
        .platform
        .follow_logs(&principal, &name, None, Some(LOG_TAIL))
        .await
    {
        Ok((_, lines)) => stream::once(async { sse::message(None, Some("logs-reset"), None) })
            .chain(lines.map(|line| {
                let html = match line {
                    Ok(line) => log_line(&line.pod, &line.line),
                    Err(e) => log_line("shiplog", &format!("the log stream failed: {e}")),
                };
                sse::message(None, Some("log"), Some(&html.into_string()))
            }))
            .boxed(),
        Err(_) => stream::empty().boxed(),
    };
    let badges = Badges::start(&state, principal, Shown::One(name), feed).await?;
    let badges = stream::unfold(badges, Badges::next).flat_map(stream::iter);
    Ok(live_response(
        &state,
        stream::select(badges, logs).boxed(),
        slot,
    ))
}

/// One log line as a deployment's page shows it (`pod | line`), escaped.
pub(crate) fn log_line(pod: &str, line: &str) -> Markup {
    html! { span.log-line { (pod) " | " (line) "\n" } }
}

/// The SSE response of `messages`, holding `slot`, ended when shiplog stops.
fn live_response(
    state: &AppState,
    messages: BoxStream<'static, Bytes>,
    slot: StreamSlot,
) -> Response {
    let stopping = state.stopping.child_token().cancelled_owned();
    let messages = messages.take_until(stopping);
    let messages = holding(messages, slot).boxed();
    let no_buffering = [(HeaderName::from_static("x-accel-buffering"), "no")];
    (
        no_buffering,
        sse::response(messages, state.keep_alive, "keep-alive"),
    )
        .into_response()
}
