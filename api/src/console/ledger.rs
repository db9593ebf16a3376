//! `/ledger` (the global event stream, filtered by a GET form, new events appended
//! live) and `/audit` (the hash chain's head, its length and the verification result,
//! with the export link). Both are for auditors (`audit:read`), as their API routes.

use super::layout::{badge, page, Section};
use super::session::Console;
use super::PageError;
use crate::error::ApiError;
use crate::sse;
use crate::state::AppState;
use crate::stream_slots::holding;
use axum::extract::{Query, State};
use axum::http::HeaderName;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use futures::StreamExt;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use shiplog_application::{parse_types, Cursor, EventFilter, FeedItem, RecordedEvent, Scope};
use shiplog_domain::events::EVENT_TYPES;

/// How many events a ledger page shows.
const PAGE: u32 = 100;

/// The ledger's filters, as the GET form sends them (empty fields are no filter).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LedgerQuery {
    /// One event type (or a comma-separated list).
    #[serde(default)]
    types: String,
    /// Only events caused by this principal.
    #[serde(default)]
    actor: String,
    /// Only this usecase's events (its id).
    #[serde(default)]
    usecase: String,
    /// From this instant on (`datetime-local`, read as UTC, or RFC 3339).
    #[serde(default)]
    from: String,
    /// Before this instant.
    #[serde(default)]
    to: String,
    /// The page after this cursor.
    #[serde(default)]
    after: String,
}

/// An instant of a filter field: RFC 3339, or a browser's `datetime-local` (UTC).
fn instant(raw: &str, field: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| ApiError::BadRequest {
            detail: format!("{field}: {raw:?} is not a date and time"),
            field: Some(field.to_owned()),
        })
}

impl LedgerQuery {
    /// The filter the fields ask for; a malformed one is a 400 naming it.
    fn filter(&self) -> Result<EventFilter, ApiError> {
        let usecase = match self.usecase.trim() {
            "" => None,
            id => Some(id.parse().map_err(|_| ApiError::BadRequest {
                detail: format!("usecase: {id:?} is not a usecase's id"),
                field: Some("usecase".to_owned()),
            })?),
        };
        Ok(EventFilter {
            usecase,
            // A form always sends its fields: a blank one means any type.
            types: parse_types(Some(self.types.trim()).filter(|t| !t.is_empty()), "types")?,
            actor: Some(self.actor.trim().to_owned()).filter(|a| !a.is_empty()),
            from: instant(&self.from, "from")?,
            to: instant(&self.to, "to")?,
        })
    }

    /// The query string of the same filters (for the live stream and the next page).
    fn encoded(&self, after: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("types", &self.types),
            ("actor", &self.actor),
            ("usecase", &self.usecase),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !value.trim().is_empty() {
                query.append_pair(key, value);
            }
        }
        if let Some(after) = after {
            query.append_pair("after", after);
        }
        query.finish()
    }
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One ledger event as a table row (also what the live stream sends).
fn row(e: &RecordedEvent) -> Markup {
    let reason = e.metadata.get("reason").and_then(|r| r.as_str());
    html! {
        tr {
            td.mono { (stamp(e.recorded_at)) }
            td { strong { (e.event_type) } @if let Some(r) = reason { br; span.meta { "reason: " (r) } } }
            td { (e.actor()) }
            td.mono.optional {
                @if e.aggregate_type == "Usecase" {
                    a href={ "/ledger?usecase=" (e.aggregate_id) } { (e.aggregate_id) }
                } @else { (e.aggregate_type) " " (e.aggregate_id) }
                " #" (e.sequence)
            }
        }
    }
}

/// The ledger page.
pub async fn ledger(
    State(state): State<AppState>,
    Console(session): Console,
    Query(query): Query<LedgerQuery>,
) -> Result<Markup, PageError> {
    session.principal.require(Scope::AuditRead)?;
    let filter = query.filter()?;
    let after = match query.after.trim() {
        "" => None,
        raw => Some(raw.parse::<Cursor>().map_err(|e| ApiError::BadRequest {
            detail: format!("after: {e}"),
            field: Some("after".to_owned()),
        })?),
    };
    let events = state.audit.events(&filter, after, Some(PAGE)).await?;
    let live = format!("/console/live/ledger?{}", query.encoded(None));
    let body = html! {
        h1 { "Ledger" }
        form.card.filters method="get" action="/ledger" aria-label="Filter the ledger" {
            div { label for="types" { "Event type" }
                input #types type="text" name="types" value=(query.types) list="event-types" placeholder="any";
                datalist #event-types { @for t in EVENT_TYPES { option value=(t) {} } } }
            div { label for="actor" { "Actor" } input #actor type="text" name="actor" value=(query.actor) placeholder="any"; }
            div { label for="usecase" { "Usecase id" } input #usecase type="text" name="usecase" value=(query.usecase) placeholder="any"; }
            div { label for="from" { "From (UTC)" } input #from type="datetime-local" name="from" value=(query.from); }
            div { label for="to" { "Before (UTC)" } input #to type="datetime-local" name="to" value=(query.to); }
            div { button type="submit" { "Filter" } " " a href="/ledger" { "Clear" } }
        }
        section.card aria-labelledby="events-title" {
            h2 #events-title { "Events, oldest first" }
            p.help { "New events that pass the filters are added at the end as they are recorded." }
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "Recorded" } th scope="col" { "Event" } th scope="col" { "Actor" } th.optional scope="col" { "Usecase" } } }
                    tbody #ledger-rows sse-connect=(live) sse-swap="ledger" hx-swap="beforeend" {
                        @for e in &events.items { (row(e)) }
                    }
                }
            }
            @if let Some(next) = &events.next {
                p { a href={ "/ledger?" (query.encoded(Some(next))) } { "Next page" } }
            }
        }
    };
    Ok(page("Ledger", Section::Ledger, Some(&session), body))
}

/// `GET /console/live/ledger`: new events that pass the filters, as table rows.
pub async fn live(
    State(state): State<AppState>,
    Console(session): Console,
    Query(query): Query<LedgerQuery>,
) -> Result<Response, PageError> {
    session.principal.require(Scope::AuditRead)?;
    let filter = query.filter()?;
    let slot = state.streams.take(&session.principal)?;
    let feed = state.audit.follow(filter, None).await?;
    let stopping = state.stopping.child_token().cancelled_owned();
    let rows = feed
        .filter_map(|item| async move {
            match item {
                FeedItem::Event(e) => Some(sse::message(
                    None,
                    Some("ledger"),
                    Some(&row(&e).into_string()),
                )),
                FeedItem::Start { .. } | FeedItem::Overflow { .. } => None,
            }
        })
        .take_until(stopping);
    let rows = holding(rows, slot).boxed();
    let no_buffering = [(HeaderName::from_static("x-accel-buffering"), "no")];
    Ok((
        no_buffering,
        sse::response(rows, state.keep_alive, "keep-alive"),
    )
        .into_response())
}

/// The audit page: verifies the hash chain now and shows the result.
pub async fn audit(
    State(state): State<AppState>,
    Console(session): Console,
) -> Result<Markup, PageError> {
    session.principal.require(Scope::AuditRead)?;
    let report = state.audit.verify().await?;
    let body = html! {
        h1 { "Audit" }
        section.card aria-labelledby="chain-title" {
            h2 #chain-title { "Hash chain" }
            dl.facts {
                dt { "Result" } dd #verify-result {
                    @if report.verified { (badge("Verified", None)) " every sealed event matches its hash and links to the one before" }
                    @else { (badge("Error", None)) " the chain is broken" }
                }
                dt { "Sealed events" } dd #chain-count { (report.events) }
                dt { "Not sealed yet" } dd { (report.unsealed) " (the sealer runs a moment behind the writers)" }
                dt { "Chain head" } dd.mono #chain-head { (report.head.as_deref().unwrap_or("— (nothing sealed yet)")) }
                @if let Some(b) = &report.broken_at {
                    dt { "Broken at" } dd { "event " (b.chain_index) ": " (b.reason) }
                }
            }
            p.help { "Keep the head: a later verification that reaches it shows that nothing before it changed." }
            p {
                a.button href="/api/audit/export" download="shiplog-ledger.ndjson" { "Export the ledger (NDJSON)" }
                " "
                a.button.secondary href="/audit" { "Verify again" }
            }
        }
    };
    Ok(page("Audit", Section::Audit, Some(&session), body))
}
