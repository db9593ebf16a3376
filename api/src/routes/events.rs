//! The ledger for readers: `/api/events` (paged and filtered, and as a live
//! stream) and a usecase's own history and stream.

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Auth, LastEventId, StreamAuth};
use crate::routes::problems::{
    AuditorOnly, DatabaseUnavailable, MalformedQuery, TooManyStreams, Unauthorized,
    UnauthorizedStream,
};
use crate::sse;
use crate::state::AppState;
use crate::stream_slots::{holding, StreamSlot};
use axum::extract::State;
use axum::http::HeaderName;
use axum::response::IntoResponse;
use axum::Json;
use bytes::Bytes;
use futures::StreamExt;
use shiplog_application::{parse_types, Cursor, EventFilter, FeedItem, Scope};
use shiplog_domain::InvalidField;
use shiplog_wire::ledger::{EventPage, EventRecord, EventsQuery, HistoryQuery, StreamQuery};
use shiplog_wire::Problem;
use uuid::Uuid;

/// Read the global ledger, oldest first, filtered by usecase, event type, actor and time.
#[utoipa::path(get, path = "/api/events", tag = "audit", params(EventsQuery),
    security(("bearer" = ["audit:read"])),
    responses(
        (status = 200, description = "One page of the ledger in the global order", body = EventPage),
        (status = 422, description = "Unknown event type, a cursor shiplog did not produce, or limit out of range (to not after from is an empty page, not an error)", body = Problem, content_type = "application/problem+json"),
        Unauthorized, AuditorOnly, MalformedQuery, DatabaseUnavailable,
    ))]
pub async fn list_events(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    auth.require(Scope::AuditRead)?;
    let filter = EventFilter {
        usecase: query.usecase,
        types: parse_types(query.types.as_deref(), "types")?,
        actor: query.actor,
        from: query.from,
        to: query.to,
    };
    let after = parse_cursor(query.after.as_deref(), "after")?;
    Ok(Json(
        state
            .audit
            .events(&filter, after, query.limit)
            .await?
            .into(),
    ))
}

/// Read one usecase's history: every event, oldest first, also after the usecase was deleted.
#[utoipa::path(get, path = "/api/usecases/{id}/history", tag = "audit",
    params(("id" = Uuid, Path, description = "The usecase id"), HistoryQuery),
    security(("bearer" = ["usecases:read"]), ("bearer" = ["audit:read"])),
    responses(
        (status = 200, description = "One page of the usecase's events", body = EventPage),
        (status = 403, description = "Token lacks usecases:read and audit:read, or the usecase belongs to another owner or team (ownership verification failed)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No event of this usecase was ever recorded", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown event type, a cursor shiplog did not produce, or limit out of range", body = Problem, content_type = "application/problem+json"),
        Unauthorized, MalformedQuery, DatabaseUnavailable,
    ))]
pub async fn usecase_history(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<EventPage>, ApiError> {
    auth.require_owner_or_auditor(&state, &[Scope::UsecasesRead], id)
        .await?;
    let types = parse_types(query.types.as_deref(), "types")?;
    let after = parse_cursor(query.after.as_deref(), "after")?;
    let page = state.audit.history(id, types, after, query.limit).await?;
    Ok(Json(page.into()))
}

/// Follow the whole ledger live as Server-Sent Events.
///
/// Each message: `id:` the event's cursor, `event:` its type, `data:` the event as JSON
/// (the shape of `EventRecord`). Reconnect with `Last-Event-ID` (browsers do it by
/// themselves) or `?after=` to receive exactly what was missed. Idle streams get a
/// `: keep-alive` comment. A subscriber too slow to keep up receives a final
/// `event: overflow` message whose data names `resumeAfter`, and the stream ends.
#[utoipa::path(get, path = "/api/events/stream", tag = "audit", params(StreamQuery),
    security(("bearer" = ["audit:read"])),
    responses(
        (status = 200, description = "An endless text/event-stream of ledger events; without a cursor it opens with an `id:`-only message (where it starts) to resume from", body = shiplog_wire::limits::SseMessage, content_type = "text/event-stream"),
        (status = 422, description = "Unknown event type, or a cursor shiplog did not produce", body = Problem, content_type = "application/problem+json"),
        UnauthorizedStream, AuditorOnly, MalformedQuery, TooManyStreams, DatabaseUnavailable,
    ))]
pub async fn stream_events(
    State(state): State<AppState>,
    StreamAuth(auth): StreamAuth,
    LastEventId(last_event_id): LastEventId,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Scope::AuditRead)?;
    let slot = state.streams.take(&auth.0)?;
    follow(&state, None, last_event_id, query, slot).await
}

/// Follow one usecase's events live as Server-Sent Events (same format and resumption as `/api/events/stream`).
#[utoipa::path(get, path = "/api/usecases/{id}/events/stream", tag = "audit",
    params(("id" = Uuid, Path, description = "The usecase id"), StreamQuery),
    security(("bearer" = ["usecases:read"]), ("bearer" = ["audit:read"]), ("bearer" = ["deployments:read"])),
    responses(
        (status = 200, description = "An endless text/event-stream of the usecase's events; without a cursor it opens with an `id:`-only message (where it starts) to resume from", body = shiplog_wire::limits::SseMessage, content_type = "text/event-stream"),
        (status = 403, description = "Token lacks usecases:read, audit:read and deployments:read, or the usecase belongs to another owner or team (ownership verification failed)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No event of this usecase was ever recorded", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown event type, or a cursor shiplog did not produce", body = Problem, content_type = "application/problem+json"),
        UnauthorizedStream, MalformedQuery, TooManyStreams, DatabaseUnavailable,
    ))]
pub async fn stream_usecase_events(
    State(state): State<AppState>,
    StreamAuth(auth): StreamAuth,
    LastEventId(last_event_id): LastEventId,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<impl IntoResponse, ApiError> {
    // A deploying pipeline (deployments:read) may follow the outcome of what it asked for.
    auth.require_owner_or_auditor(&state, &[Scope::UsecasesRead, Scope::DeploymentsRead], id)
        .await?;
    let slot = state.streams.take(&auth.0)?;
    follow(&state, Some(id), last_event_id, query, slot).await
}

/// Parses where a stream starts (the `Last-Event-ID` header wins over `?after=`) and what it
/// carries; the stream holds `slot` of its token's streams until it ends.
async fn follow(
    state: &AppState,
    usecase: Option<Uuid>,
    last_event_id: Option<String>,
    query: StreamQuery,
    slot: StreamSlot,
) -> Result<impl IntoResponse, ApiError> {
    let after = match last_event_id {
        Some(id) => parse_cursor(Some(&id), "Last-Event-ID")?,
        None => parse_cursor(query.after.as_deref(), "after")?,
    };
    let filter = EventFilter {
        usecase,
        types: parse_types(query.types.as_deref(), "types")?,
        ..EventFilter::default()
    };
    let feed = state.audit.follow(filter, after).await?;
    // A token of the stream's own: waiting on the shared one would lock the same
    // mutex from every stream at every message.
    let stopping = state.stopping.child_token().cancelled_owned();
    let messages = holding(feed.map(message).take_until(stopping), slot).boxed();
    // Reverse proxies (nginx) must pass each message on at once instead of buffering.
    let no_buffering = [(HeaderName::from_static("x-accel-buffering"), "no")];
    Ok((
        no_buffering,
        sse::response(messages, state.keep_alive, "keep-alive"),
    ))
}

/// The SSE message for `item`. An event's is rendered by the first stream that sends
/// it and shared by every other.
fn message(item: FeedItem) -> Bytes {
    match item {
        FeedItem::Event(event) => event.encoded(|event| {
            let data = serde_json::to_string(&EventRecord::from(event))
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
            sse::message(
                Some(&event.cursor.to_string()),
                Some(&event.event_type),
                Some(&data),
            )
        }),
        // An id without data: EventSource dispatches nothing but remembers the id,
        // and sends it back as Last-Event-ID should the connection drop.
        FeedItem::Start { at } => sse::message(Some(&at.to_string()), None, None),
        FeedItem::Overflow { last } => {
            let data = serde_json::json!({
                "detail": "this subscriber fell too far behind and was disconnected; reconnect with Last-Event-ID (or ?after=) set to resumeAfter to continue without a gap",
                "resumeAfter": last.to_string(),
            });
            sse::message(None, Some("overflow"), Some(&data.to_string()))
        }
    }
}

/// Reads an optional cursor parameter; a string shiplog did not produce is a 422 naming `field`.
fn parse_cursor(raw: Option<&str>, field: &str) -> Result<Option<Cursor>, ApiError> {
    raw.map(|s| {
        s.trim().parse::<Cursor>().map_err(|e| {
            ApiError::Invalid(InvalidField::new(
                field,
                format!("{e}; use the cursor of an event shiplog returned"),
            ))
        })
    })
    .transpose()
}
