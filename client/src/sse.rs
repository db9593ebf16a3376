//! A small Server-Sent Events parser: bytes in, messages out, as the EventSource
//! specification reads them (fields `id`, `event`, `data`; `:` starts a comment; a blank
//! line ends a message). Written here rather than taken from a crate because it is this
//! small and the client needs exactly this much.

/// One message of an event stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The `id:` field: the event's cursor, to resume after it.
    pub id: Option<String>,
    /// The `event:` field: the event type (`overflow` for shiplog's last message to a slow reader).
    pub event: Option<String>,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// Turns chunks of a `text/event-stream` body into messages; a chunk may end anywhere,
/// even inside a UTF-8 character.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    current: Message,
    has_data: bool,
    has_fields: bool,
}

impl SseParser {
    /// Feeds one chunk and returns the messages it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Message> {
        self.pending.extend_from_slice(chunk);
        let mut messages = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if let Some(message) = self.line(&line) {
                messages.push(message);
            }
        }
        messages
    }

    /// Handles one line; a blank one completes the message being read.
    fn line(&mut self, line: &str) -> Option<Message> {
        if line.is_empty() {
            let message = std::mem::take(&mut self.current);
            let complete = self.has_fields;
            self.has_data = false;
            self.has_fields = false;
            return complete.then_some(message);
        }
        if line.starts_with(':') {
            return None; // a comment, such as shiplog's keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "id" => self.current.id = Some(value.to_owned()),
            "event" => self.current.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => return None, // `retry` and unknown fields are of no use here
        }
        self.has_fields = true;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_read_across_chunk_boundaries_and_comments_are_skipped() {
        let stream = ": keep-alive\n\nid: 0001\nevent: DeploymentStarted\ndata: {\"a\":\n\
                      data: 1}\n\n:keep-alive\r\n\r\nid:0002\r\nevent:overflow\r\ndata:é\r\n\r\n";
        let bytes = stream.as_bytes();
        // Every split point, including inside the two-byte 'é'.
        for split in 0..bytes.len() {
            let mut parser = SseParser::default();
            let mut messages = parser.feed(&bytes[..split]);
            messages.extend(parser.feed(&bytes[split..]));
            assert_eq!(
                messages,
                vec![
                    Message {
                        id: Some("0001".into()),
                        event: Some("DeploymentStarted".into()),
                        data: "{\"a\":\n1}".into(),
                    },
                    Message {
                        id: Some("0002".into()),
                        event: Some("overflow".into()),
                        data: "é".into(),
                    },
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn an_unfinished_message_is_not_delivered() {
        let mut parser = SseParser::default();
        assert!(parser.feed(b"id: 1\ndata: x\n").is_empty());
        assert_eq!(parser.feed(b"\n").len(), 1);
    }
}
