//! The bench's calls to the API (writes and event pages) through shiplog's typed client.

use anyhow::Context;
use shiplog_client::wire::ledger::{EventPage, EventsQuery};
use shiplog_client::wire::usecases::{
    CreateDeployment, CreateUsecase, DeploymentConfigBody, ImageBody,
};
use shiplog_client::Client;
use uuid::Uuid;

/// Parses a cursor as the API shows it (32 hex digits).
pub(crate) fn cursor(text: &str) -> anyhow::Result<u128> {
    Ok(u128::from_str_radix(text, 16)?)
}

/// The API client of the bench (POSTs and reads), not the subscribers: shiplog's typed
/// client.
pub(crate) struct Api {
    pub(crate) client: Client,
}

impl Api {
    pub(crate) async fn create_usecase(&self, name: &str) -> anyhow::Result<String> {
        let body = CreateUsecase {
            name: name.to_owned(),
            description: Some("bench".to_owned()),
        };
        let created = self
            .client
            .create_usecase(&body, None)
            .await
            .with_context(|| format!("creating {name}"))?;
        Ok(created.id.to_string())
    }

    /// Requests a deployment; the HTTP status it was answered with (0: no answer).
    pub(crate) async fn deploy(&self, usecase: &str, tag: &str) -> anyhow::Result<u16> {
        let usecase: Uuid = usecase.parse()?;
        let body = CreateDeployment {
            config: DeploymentConfigBody::image(ImageBody::tagged(
                "registry.example.com",
                "team/app",
                tag,
            )),
        };
        Ok(match self.client.deploy(usecase, &body).await {
            Ok(_) => 202,
            Err(e) => e.status().unwrap_or(0),
        })
    }

    /// The cursor of the newest event.
    pub(crate) async fn newest(&self) -> anyhow::Result<u128> {
        let mut after: Option<String> = None;
        let mut newest = 0;
        loop {
            let page = self.page(after.clone()).await?;
            if let Some(last) = page.items.last() {
                newest = cursor(&last.cursor)?;
            }
            match page.next_cursor {
                Some(next) => after = Some(next),
                None => return Ok(newest),
            }
        }
    }

    /// Every event after `after`: cursor and `recordedAt` in microseconds since the epoch.
    pub(crate) async fn events_after(&self, after: u128) -> anyhow::Result<Vec<(u128, i64)>> {
        let mut after = format!("{after:032x}");
        let mut events = Vec::new();
        loop {
            let page = self.page(Some(after)).await?;
            for item in &page.items {
                let at = chrono::DateTime::parse_from_rfc3339(&item.recorded_at)?;
                events.push((cursor(&item.cursor)?, at.timestamp_micros()));
            }
            match page.next_cursor {
                Some(next) => after = next,
                None => return Ok(events),
            }
        }
    }

    pub(crate) async fn page(&self, after: Option<String>) -> anyhow::Result<EventPage> {
        let query = EventsQuery {
            usecase: None,
            types: None,
            actor: None,
            from: None,
            to: None,
            after,
            limit: Some(200),
        };
        self.client.events(&query).await.context("/api/events")
    }
}
