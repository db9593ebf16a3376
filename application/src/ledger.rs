//! The ledger as readers see it: stored events in the global order, the
//! queries auditors run over them, live following, and the hash chain.

use crate::cursor::Cursor;
use crate::error::AppError;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_core::stream::BoxStream;
use serde::Serialize;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

/// One stored event with its place in the global order.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Its place in the global order.
    pub cursor: Cursor,
    /// The kind of thing it is about: `Usecase` or `Team`.
    pub aggregate_type: String,
    /// The usecase (or team) it belongs to: the aggregate id.
    pub aggregate_id: String,
    /// Its number within the usecase, from 1.
    pub sequence: i64,
    /// The event type ("DeploymentRequested").
    pub event_type: String,
    /// The schema version of the payload.
    pub event_version: String,
    /// The event itself, as stored.
    pub payload: serde_json::Value,
    /// actor, request_id, causation.
    pub metadata: serde_json::Value,
    /// When the database stored it.
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// The principal that caused the event ("system" when none was recorded).
    pub fn actor(&self) -> &str {
        self.metadata
            .get("actor")
            .and_then(|a| a.as_str())
            .unwrap_or("system")
    }
}

/// Which events of the ledger to read, and from where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this usecase's events.
    pub usecase: Option<Uuid>,
    /// Only these event types (empty: all).
    pub types: Vec<String>,
    /// Only events caused by this principal.
    pub actor: Option<String>,
    /// Only events recorded at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only events recorded before this instant.
    pub to: Option<DateTime<Utc>>,
}

impl EventFilter {
    /// Whether `event` passes the filter (for live events, which are not queried).
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        self.usecase.is_none_or(|id| {
            event.aggregate_id == *id.hyphenated().encode_lower(&mut Uuid::encode_buffer())
        }) && (self.types.is_empty() || self.types.contains(&event.event_type))
            && self.actor.as_deref().is_none_or(|a| a == event.actor())
            && self.from.is_none_or(|from| event.recorded_at >= from)
            && self.to.is_none_or(|to| event.recorded_at < to)
    }
}

/// What a follower of the ledger receives.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedItem {
    /// First, only for a follower that named no cursor: where it starts. A client
    /// that loses the connection before the first event resumes after it, and so
    /// misses nothing written in the meantime.
    Start {
        /// Resume after this cursor.
        at: Cursor,
    },
    /// The next event, in global order.
    Event(Arc<FollowedEvent>),
    /// The follower fell too far behind and is cut off; it resumes after `last`
    /// (the last event it was sent, or where it started).
    Overflow {
        /// Resume after this cursor.
        last: Cursor,
    },
}

/// An event as followers receive it: one value shared by every follower, with room
/// for the bytes the presentation layer sends for it, so that they are encoded once
/// however many follow.
#[derive(Debug)]
pub struct FollowedEvent {
    event: RecordedEvent,
    encoded: OnceLock<Bytes>,
}

impl FollowedEvent {
    /// Wraps `event`, not encoded yet.
    pub fn new(event: RecordedEvent) -> Self {
        Self {
            event,
            encoded: OnceLock::new(),
        }
    }

    /// The event's encoding: made by `encode` for the first follower that asks, then
    /// shared (a reference count) with every other. Every caller must pass the same
    /// encoding: the first one wins.
    pub fn encoded(&self, encode: impl FnOnce(&RecordedEvent) -> Bytes) -> Bytes {
        self.encoded.get_or_init(|| encode(&self.event)).clone()
    }
}

impl Deref for FollowedEvent {
    type Target = RecordedEvent;

    fn deref(&self) -> &RecordedEvent {
        &self.event
    }
}

impl PartialEq for FollowedEvent {
    /// The same event, whether encoded yet or not.
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event
    }
}

/// The outcome of recomputing the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainReport {
    /// True when every sealed event matches its stored hash and links to its predecessor.
    pub verified: bool,
    /// How many sealed events were checked.
    pub events: u64,
    /// The hash of the last sealed event (hex), the value to keep for later comparison.
    pub head: Option<String>,
    /// Events recorded but not sealed yet (the sealer runs a moment behind the writers).
    pub unsealed: u64,
    /// The first place where the chain breaks, when it does.
    pub broken_at: Option<ChainBreak>,
}

/// Where and why the hash chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainBreak {
    /// The 1-based index of the event in the chain.
    pub chain_index: i64,
    /// The event's cursor (kept by the chain even when the event itself was deleted).
    pub cursor: Option<Cursor>,
    /// The usecase of the event, when it still exists.
    pub usecase_id: Option<String>,
    /// Its sequence within the usecase, when it still exists.
    pub sequence: Option<i64>,
    /// What does not match, in words.
    pub reason: String,
}

/// One sealed event with its chain hashes: a line of the audit export.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedEvent {
    /// The 1-based index in the chain (the global order).
    pub chain_index: i64,
    /// The event.
    pub event: RecordedEvent,
    /// The aggregate type it was stored under ("Usecase").
    pub aggregate_type: String,
    /// The previous event's hash (32 zero bytes for the first).
    pub prev_hash: [u8; 32],
    /// This event's hash.
    pub hash: [u8; 32],
}

/// Read access to the ledger itself (not the read models): the audit trail.
#[async_trait]
pub trait Ledger: HistoryIndex {
    /// Up to `limit` events after `after` that pass `filter`, in global order.
    /// Only events no reader can see out of order are returned.
    async fn events(
        &self,
        filter: &EventFilter,
        after: Cursor,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, AppError>;
    /// Whether any event of this usecase was ever recorded (deleted usecases keep their history).
    async fn usecase_exists(&self, usecase_id: Uuid) -> Result<bool, AppError>;
    /// Replays events after `after` passing `filter` (none: start at the newest event),
    /// then follows live ones, with no gap and no duplicate at the seam; ends with
    /// `Overflow` when the follower falls too far behind.
    /// The subscription starts before this returns, so every event committed afterwards is included.
    async fn follow(
        &self,
        after: Option<Cursor>,
        filter: EventFilter,
    ) -> Result<BoxStream<'static, FeedItem>, AppError>;
    /// Recomputes the whole hash chain.
    async fn verify(&self) -> Result<ChainReport, AppError>;
    /// Every sealed event with its hashes, in chain order; read page by page.
    fn export(&self) -> BoxStream<'static, Result<SealedEvent, AppError>>;
}

/// The few events of one usecase that decide what it looked like after a given
/// event: time travel reads these (a handful of index lookups) instead of the
/// whole history, so `?at=` costs the same on a usecase's tenth event and its
/// forty-thousandth. Sequences are the usecase's own event numbers.
#[async_trait]
pub trait HistoryIndex: Send + Sync {
    /// The sequence of the usecase's last event recorded at or before `at` (the
    /// latest `recorded_at`, the highest sequence on a tie); `None` before its first.
    async fn sequence_at(
        &self,
        usecase_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<i64>, AppError>;
    /// The usecase's event at `upto` and, for each of `types`, its latest event of
    /// that type at or before `upto`, in sequence order, each once.
    async fn latest_of_types(
        &self,
        usecase_id: Uuid,
        upto: i64,
        types: &[&str],
    ) -> Result<Vec<RecordedEvent>, AppError>;
    /// Up to `limit` of its `DeploymentRequested` events before sequence `before`, newest first.
    async fn requests_before(
        &self,
        usecase_id: Uuid,
        before: i64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, AppError>;
    /// How many `DeploymentRequested` events it has at or before `upto`.
    async fn requests_up_to(&self, usecase_id: Uuid, upto: i64) -> Result<i64, AppError>;
    /// Its events that name `deployment_id` (their `deploymentId`) at or before
    /// `upto`, in sequence order.
    async fn deployment_events(
        &self,
        usecase_id: Uuid,
        deployment_id: Uuid,
        upto: i64,
    ) -> Result<Vec<RecordedEvent>, AppError>;
}
