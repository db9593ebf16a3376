//! The ledger for readers: history pages, the hash chain's report, and event streams.

use crate::error::ClientError;
use crate::feed::EventFeed;
use crate::http::Client;
use shiplog_wire::ledger::{AtQuery, EventPage, EventRecord, EventsQuery, VerifyReport};
use shiplog_wire::usecases::UsecaseResponse;
use uuid::Uuid;

/// Where an event stream starts and which events it carries.
#[derive(Debug, Clone, Default)]
pub struct StreamStart {
    /// Only these event types (comma-separated, as `?types=` takes them); all when `None`.
    pub types: Option<String>,
    /// Start after this cursor instead of with the next new event.
    pub after: Option<String>,
    /// Where a reconnect resumes if no event arrived before the stream dropped.
    pub fallback: Option<String>,
}

impl Client {
    /// A usecase's whole history, oldest first.
    pub async fn history(&self, usecase: Uuid) -> Result<Vec<EventRecord>, ClientError> {
        self.all_pages(&format!("/api/usecases/{usecase}/history"), &[])
            .await
    }

    /// `GET /api/events`: one page of the global ledger, filtered.
    pub async fn events(&self, query: &EventsQuery) -> Result<EventPage, ClientError> {
        self.get("/api/events", query).await
    }

    /// `GET /api/usecases/{id}?at=`: the usecase as it stood at an instant (time travel).
    pub async fn usecase_at(
        &self,
        usecase: Uuid,
        at: &AtQuery,
    ) -> Result<UsecaseResponse, ClientError> {
        self.get(&format!("/api/usecases/{usecase}"), at).await
    }

    /// `GET /api/audit/verify`: the hash chain's report.
    pub async fn verify(&self) -> Result<VerifyReport, ClientError> {
        self.get("/api/audit/verify", &()).await
    }

    /// Follows a usecase's events (`None`: every usecase's) as a resumable stream; returns
    /// once the server answered, so every event committed from then on is delivered.
    pub async fn follow(
        &self,
        usecase: Option<Uuid>,
        start: StreamStart,
    ) -> Result<EventFeed, ClientError> {
        let path = match usecase {
            Some(id) => format!("/api/usecases/{id}/events/stream"),
            None => "/api/events/stream".to_owned(),
        };
        EventFeed::open(self, path, start.types, start.after, start.fallback).await
    }
}
