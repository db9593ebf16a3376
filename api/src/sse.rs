//! Server-Sent Events whose messages are ready-made bytes.
//!
//! axum's `Sse` takes an `Event` per message and copies it into a fresh buffer for
//! every stream; a ledger event followed by thousands of streams is rendered once
//! instead (see `FollowedEvent::encoded`) and each stream sends the same `Bytes`. The
//! format written here is the one axum writes (`name: value` lines, a blank line).

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures::stream::{BoxStream, Stream};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// One SSE message: `id:`, `event:` and `data:` lines (each when given), then a blank
/// line. A line break in `data` starts a new `data:` line, as the format requires
/// (the break kept, as axum does); `id` and `event` must have none.
pub fn message(id: Option<&str>, event: Option<&str>, data: Option<&str>) -> Bytes {
    let size: usize = [id, event, data]
        .iter()
        .flatten()
        .map(|f| f.len() + 8)
        .sum();
    let mut buffer = BytesMut::with_capacity(size + 1);
    if let Some(id) = id {
        field(&mut buffer, "id", id);
    }
    if let Some(event) = event {
        field(&mut buffer, "event", event);
    }
    if let Some(data) = data.filter(|d| !d.is_empty()) {
        buffer.put_slice(b"data: ");
        for piece in data.split_inclusive(['\n', '\r']) {
            buffer.put_slice(piece.as_bytes());
            if piece.ends_with(['\n', '\r']) {
                buffer.put_slice(b"data: ");
            }
        }
        buffer.put_u8(b'\n');
    }
    buffer.put_u8(b'\n');
    buffer.freeze()
}

/// Writes `name: value` and a line break.
fn field(buffer: &mut BytesMut, name: &str, value: &str) {
    buffer.put_slice(name.as_bytes());
    buffer.put_slice(b": ");
    buffer.put_slice(value.as_bytes());
    buffer.put_u8(b'\n');
}

/// A `text/event-stream` response of `messages`, with a `: <text>` comment after
/// every `keep_alive` without a message (so that proxies keep the connection open).
pub fn response(messages: BoxStream<'static, Bytes>, keep_alive: Duration, text: &str) -> Response {
    let comment = Bytes::from(format!(": {text}\n\n"));
    let body = KeepAlive {
        messages,
        timer: Box::pin(tokio::time::sleep(keep_alive)),
        interval: keep_alive,
        last_sent: Instant::now(),
        comment,
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Passes messages on and adds a comment when none came for `interval`. The timer is
/// not moved per message (that would touch the runtime's timer wheel for every
/// message of every stream): when it fires early, it is set again from the last send.
struct KeepAlive {
    messages: BoxStream<'static, Bytes>,
    timer: Pin<Box<Sleep>>,
    interval: Duration,
    last_sent: Instant,
    comment: Bytes,
}

impl Stream for KeepAlive {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.messages.as_mut().poll_next(cx) {
            Poll::Ready(Some(message)) => {
                this.last_sent = Instant::now();
                Poll::Ready(Some(Ok(message)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => loop {
                ready!(this.timer.as_mut().poll(cx));
                let now = Instant::now();
                let due = this.last_sent + this.interval;
                if now >= due {
                    this.last_sent = now;
                    this.timer.as_mut().reset(now + this.interval);
                    return Poll::Ready(Some(Ok(this.comment.clone())));
                }
                this.timer.as_mut().reset(due);
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_has_its_fields_in_order_and_ends_with_a_blank_line() {
        let cases = [
            (
                "all three",
                message(Some("c1"), Some("E"), Some("{}")),
                "id: c1\nevent: E\ndata: {}\n\n",
            ),
            ("an id only", message(Some("c1"), None, None), "id: c1\n\n"),
            (
                "data over two lines",
                message(None, Some("overflow"), Some("a\nb")),
                "event: overflow\ndata: a\ndata: b\n\n",
            ),
            (
                "data ending in a carriage return",
                message(None, None, Some("a\r")),
                "data: a\rdata: \n\n",
            ),
        ];
        for (description, got, want) in cases {
            assert_eq!(&got[..], want.as_bytes(), "{description}");
        }
    }
}
