//! The JSON shapes of the audit trail and event streams: one event as clients
//! see it, pages of them, query parameters, and the hash chain's report.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
#[cfg(feature = "server")]
use shiplog_application::{ChainBreak, ChainReport, Page, RecordedEvent};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// One event of the ledger: what happened, to which usecase, when, caused by whom.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    /// Its place in the global order: an opaque, sortable string. Pass it as `after`
    /// (or `Last-Event-ID`) to continue after this event.
    #[schema(example = "00000000000002f1000000000000002a")]
    pub cursor: String,
    /// What it is about: `Usecase`, or `Team` for a team's events.
    #[schema(example = "Usecase")]
    pub aggregate_type: String,
    /// The usecase it belongs to (for a team's event: the team).
    pub usecase_id: String,
    /// Its number within the usecase, from 1.
    pub sequence: i64,
    /// The event type.
    #[serde(rename = "type")]
    #[schema(example = "DeploymentSucceeded")]
    pub event_type: String,
    /// The schema version of the payload.
    #[schema(example = "1.0")]
    pub version: String,
    /// When the ledger recorded it (microsecond precision).
    pub recorded_at: String,
    /// The principal (token name) or component (`process-manager`) that caused it.
    pub actor: String,
    /// The event itself: `{"<type>": {...fields}}`, as stored (the hash chain covers
    /// it). A secret value appears only sealed: `{"secret": true, "key": "<data key
    /// fingerprint>", "nonce": "…", "ciphertext": "…"}`, never in clear.
    pub payload: serde_json::Value,
    /// actor, request_id and, for the process manager's events, causation (the cursor of the event it acted on).
    pub metadata: serde_json::Value,
}

#[cfg(feature = "server")]
impl From<&RecordedEvent> for EventRecord {
    fn from(e: &RecordedEvent) -> Self {
        Self {
            cursor: e.cursor.to_string(),
            aggregate_type: e.aggregate_type.clone(),
            usecase_id: e.aggregate_id.clone(),
            sequence: e.sequence,
            event_type: e.event_type.clone(),
            version: e.event_version.clone(),
            recorded_at: e
                .recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            actor: e.actor().to_owned(),
            payload: e.payload.clone(),
            metadata: e.metadata.clone(),
        }
    }
}

/// One page of events in the global order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    /// The events, oldest first.
    pub items: Vec<EventRecord>,
    /// Pass as `after` for the next page; null on the last page (to follow new
    /// events, pass the last item's cursor later, or use the stream).
    pub next_cursor: Option<String>,
}

#[cfg(feature = "server")]
impl From<Page<RecordedEvent>> for EventPage {
    fn from(page: Page<RecordedEvent>) -> Self {
        Self {
            items: page.items.iter().map(EventRecord::from).collect(),
            next_cursor: page.next,
        }
    }
}

/// Filters and paging of `GET /api/events`.
#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this usecase's events.
    pub usecase: Option<Uuid>,
    /// Only these event types, comma-separated (`DeploymentSucceeded,DeploymentFailed`).
    #[param(value_type = Option<Vec<crate::limits::EventTypeName>>, style = Form, explode = false, min_items = 1)]
    pub types: Option<String>,
    /// Only events caused by this principal (token name, `admin`, `process-manager`).
    pub actor: Option<String>,
    /// Only events recorded at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only events recorded before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Continue after this cursor (the `next` of the previous page, or any event's cursor).
    #[param(pattern = r"^[0-9a-fA-F]{16}[0-7][0-9a-fA-F]{15}$")]
    pub after: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// Filter and paging of a usecase's history.
#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only these event types, comma-separated.
    #[param(value_type = Option<Vec<crate::limits::EventTypeName>>, style = Form, explode = false, min_items = 1)]
    pub types: Option<String>,
    /// Continue after this cursor.
    #[param(pattern = r"^[0-9a-fA-F]{16}[0-7][0-9a-fA-F]{15}$")]
    pub after: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// Where a stream starts and what it carries.
#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Only these event types, comma-separated.
    #[param(value_type = Option<Vec<crate::limits::EventTypeName>>, style = Form, explode = false, min_items = 1)]
    pub types: Option<String>,
    /// Replay everything after this cursor first (`00000000000000000000000000000000`:
    /// from the beginning). Without it (and without `Last-Event-ID`) the stream starts
    /// with the next new event. A `Last-Event-ID` header wins over this parameter.
    #[param(pattern = r"^[0-9a-fA-F]{16}[0-7][0-9a-fA-F]{15}$")]
    pub after: Option<String>,
    /// The bearer token, for clients that cannot send headers. Prefer a `ticket`
    /// (or the `Authorization` header): URLs end up in logs.
    pub access_token: Option<String>,
    /// A stream ticket (`POST /api/stream-tickets`): the way for a browser's
    /// `EventSource`, which cannot send headers. One use, within its lifetime.
    pub ticket: Option<String>,
}

/// Ask for the state at an earlier instant.
#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AtQuery {
    /// Rebuild the state from the events recorded up to this instant (RFC 3339)
    /// instead of reading the current one.
    pub at: Option<DateTime<Utc>>,
}

/// The result of recomputing the hash chain.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// True when every sealed event matches its hash and links to its predecessor.
    pub verified: bool,
    /// How many sealed events were checked.
    pub events: u64,
    /// The hash of the newest sealed event (hex); keep it to detect a rewrite later.
    pub head: Option<String>,
    /// Events recorded but not sealed yet (the sealer follows the writers within moments).
    pub unsealed: u64,
    /// The first event where the chain breaks, when it does.
    pub broken_at: Option<ChainBreakBody>,
}

/// Where and why the chain breaks.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainBreakBody {
    /// The 1-based index of the event in the chain.
    pub chain_index: i64,
    /// The event's cursor (kept by the chain even when the event itself was deleted).
    pub cursor: Option<String>,
    /// Its usecase, when the event still exists.
    pub usecase_id: Option<String>,
    /// Its sequence within the usecase, when the event still exists.
    pub sequence: Option<i64>,
    /// What does not match.
    pub reason: String,
}

#[cfg(feature = "server")]
impl From<ChainReport> for VerifyReport {
    fn from(r: ChainReport) -> Self {
        Self {
            verified: r.verified,
            events: r.events,
            head: r.head,
            unsealed: r.unsealed,
            broken_at: r.broken_at.map(ChainBreakBody::from),
        }
    }
}

#[cfg(feature = "server")]
impl From<ChainBreak> for ChainBreakBody {
    fn from(b: ChainBreak) -> Self {
        Self {
            chain_index: b.chain_index,
            cursor: b.cursor.map(|c| c.to_string()),
            usecase_id: b.usecase_id,
            sequence: b.sequence,
            reason: b.reason,
        }
    }
}
