//! A small Server-Sent Events client for the tests: connects, parses messages
//! and comments as the EventSource specification does, and notices the end.

use futures::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::pin::Pin;
use std::time::Duration;

/// One message (or a comment-only block, such as a keep-alive).
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub comments: Vec<String>,
}

impl Message {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("data is not JSON ({e}): {}", self.data))
    }

    pub fn is_comment(&self) -> bool {
        self.id.is_none() && self.event.is_none() && self.data.is_empty()
    }

    /// An `id:` alone: where the stream starts, nothing to dispatch.
    pub fn is_position(&self) -> bool {
        self.id.is_some() && self.event.is_none() && self.data.is_empty()
    }
}

type Bytes = Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// An open stream.
pub struct SseStream {
    pub status: u16,
    pub headers: HeaderMap,
    body: Bytes,
    buffer: String,
}

impl SseStream {
    /// Opens `url` with the given headers (`Authorization`, `Last-Event-ID`, …).
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> Self {
        let mut request = reqwest::Client::new().get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        Self {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next message or comment; `None` when the server ended the stream.
    /// Fails the test when nothing arrives within `limit`.
    pub async fn next_within(&mut self, limit: Duration) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse(&block));
            }
            match tokio::time::timeout(limit, self.body.next()).await {
                Err(_) => panic!(
                    "no SSE message within {limit:?}; buffered: {:?}",
                    self.buffer
                ),
                Ok(None) => return None,
                Ok(Some(Err(e))) => panic!("stream broke: {e}"),
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
            }
        }
    }

    /// The next real message, skipping keep-alive comments and, as EventSource does, messages
    /// without data (shiplog's opening `id:`, which only sets where to resume); `None` at
    /// the end of the stream. Fails the test when none arrives within 15 s, however many
    /// keep-alives do.
    pub async fn next_message(&mut self) -> Option<Message> {
        let limit = Duration::from_secs(15);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "no SSE event within {limit:?}, only keep-alives"
            );
            let message = self.next_within(left).await?;
            if !message.is_comment() && !message.is_position() {
                return Some(message);
            }
        }
    }

    /// Reads messages until `n` events arrived (or the stream ended).
    pub async fn take(&mut self, n: usize) -> Vec<Message> {
        let mut messages = Vec::new();
        while messages.len() < n {
            match self.next_message().await {
                Some(m) => messages.push(m),
                None => break,
            }
        }
        messages
    }
}

fn parse(block: &str) -> Message {
    let mut message = Message::default();
    let mut data = Vec::new();
    for line in block.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            message.comments.push(comment.trim().to_owned());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => message.id = Some(value.to_owned()),
            "event" => message.event = Some(value.to_owned()),
            "data" => data.push(value.to_owned()),
            _ => {}
        }
    }
    message.data = data.join("\n");
    message
}
