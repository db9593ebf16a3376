//! A resumable reader of shiplog's event streams (Server-Sent Events): it remembers the
//! last `id:` it saw and, when the stream drops (or the server cuts off a slow reader with
//! `event: overflow`), reconnects with `Last-Event-ID`, so no event is lost or repeated.

use crate::error::ClientError;
use crate::http::Client;
use crate::sse::{Message, SseParser};
use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::header::ACCEPT;
use reqwest::{Method, Response};
use serde_json::Value;
use shiplog_wire::ledger::EventRecord;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The cursor before every event: resuming after it replays a stream from the beginning.
pub const FROM_THE_START: &str = "00000000000000000000000000000000";

/// A stream with no byte for this long (shiplog sends keep-alives every 15 s by default)
/// is taken for dead and reconnected.
const IDLE_LIMIT: Duration = Duration::from_secs(90);

/// How long reconnecting is retried while the server cannot be reached.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// One followed event stream.
pub struct EventFeed {
    api: Client,
    path: String,
    types: Option<String>,
    /// The cursor to resume after: the last id seen, or where the feed was asked to start.
    resume: Option<String>,
    /// Where to resume when the stream drops before it delivered anything to resume after.
    fallback: Option<String>,
    response: Option<Response>,
    parser: SseParser,
    queue: VecDeque<Message>,
    /// Say on stderr when the stream is reconnected (for a person watching; a spinner
    /// has its own line).
    pub notices: bool,
}

impl EventFeed {
    /// Connects to the stream at `path` (`/api/events/stream` or a usecase's) and returns
    /// once the server answered: every event committed from then on will be delivered.
    /// `after` starts after that cursor instead of with the next new event; `fallback` is
    /// where a reconnect resumes if no event arrived before the stream dropped.
    pub async fn open(
        api: &Client,
        path: String,
        types: Option<String>,
        after: Option<String>,
        fallback: Option<String>,
    ) -> Result<Self, ClientError> {
        let mut feed = Self {
            api: api.clone(),
            path,
            types,
            resume: after,
            fallback,
            response: None,
            parser: SseParser::default(),
            queue: VecDeque::new(),
            notices: false,
        };
        // The first request names its start as `?after=`, so that a bad --after is
        // reported as such; reconnects use the header, as EventSource does.
        let mut request = feed.stream_request();
        if let Some(after) = &feed.resume {
            request = request.query(&[("after", after)]);
        }
        feed.response = Some(feed.api.send(request).await?);
        Ok(feed)
    }

    /// The cursor of the last event delivered (or where the feed started).
    pub fn last_cursor(&self) -> Option<&str> {
        self.resume.as_deref()
    }

    /// The next event; reconnects as often as needed on the way.
    pub async fn next(&mut self) -> Result<EventRecord, ClientError> {
        loop {
            while let Some(message) = self.queue.pop_front() {
                if message.event.as_deref() == Some("overflow") {
                    // shiplog cut this reader off; it names where to continue.
                    let resume_after = serde_json::from_str::<Value>(&message.data)
                        .ok()
                        .and_then(|v| v.get("resumeAfter")?.as_str().map(str::to_owned));
                    if resume_after.is_some() {
                        self.resume = resume_after;
                    }
                    self.drop_connection();
                    break;
                }
                if message.data.is_empty() {
                    // shiplog opens a stream that named no cursor with its position:
                    // a reconnect before the first event resumes there, missing nothing.
                    if let Some(id) = message.id.filter(|_| self.resume.is_none()) {
                        self.resume = Some(id);
                    }
                    continue;
                }
                let event: EventRecord = serde_json::from_str(&message.data).map_err(|e| {
                    ClientError::Unexpected(format!("an event this client cannot read ({e})"))
                })?;
                self.resume = Some(message.id.unwrap_or_else(|| event.cursor.clone()));
                return Ok(event);
            }
            let Some(response) = self.response.as_mut() else {
                self.reconnect().await?;
                continue;
            };
            match tokio::time::timeout(IDLE_LIMIT, response.chunk()).await {
                Ok(Ok(Some(bytes))) => {
                    let messages = self.parser.feed(&bytes);
                    self.queue.extend(messages);
                }
                // Ended by the server, broken, or silent for too long: resume elsewhere.
                _ => {
                    if self.notices {
                        eprintln!(
                            "the event stream was interrupted; reconnecting after {}",
                            self.resume.as_deref().unwrap_or("the newest event")
                        );
                    }
                    self.drop_connection();
                }
            }
        }
    }

    fn drop_connection(&mut self) {
        self.response = None;
        self.parser = SseParser::default();
        self.queue.clear();
    }

    /// Reconnects after the last event seen, retrying while the server is unreachable
    /// or unavailable, for up to a minute: 250 ms doubling to 5 s, with jitter so that
    /// many followers of a restarting server do not reconnect in step.
    async fn reconnect(&mut self) -> Result<(), ClientError> {
        let started = Instant::now();
        let from = self.resume.clone().or_else(|| self.fallback.clone());
        let mut delays = ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            match self.connect(from.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if retryable(&e) && started.elapsed() < RECONNECT_FOR => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn connect(&mut self, after: Option<String>) -> Result<(), ClientError> {
        let mut request = self.stream_request();
        if let Some(after) = after {
            request = request.header("Last-Event-ID", after);
        }
        self.response = Some(self.api.send(request).await?);
        Ok(())
    }

    fn stream_request(&self) -> reqwest::RequestBuilder {
        let request = self
            .api
            .request(Method::GET, &self.path)
            .header(ACCEPT, "text/event-stream");
        match &self.types {
            Some(types) => request.query(&[("types", types)]),
            None => request,
        }
    }
}

/// Whether a failed reconnect is worth another try (the server restarting, say).
fn retryable(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Unreachable { .. }
            | ClientError::Api {
                status: 502..=504,
                ..
            }
    )
}
