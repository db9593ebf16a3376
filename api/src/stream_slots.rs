//! How many event and log streams each token has open: a stream holds a connection,
//! a task and a subscription for as long as its client likes, so one token may hold
//! only so many at once (`--max-streams-per-token`); one more is answered 429.

use crate::error::ApiError;
use futures::Stream;
use futures::StreamExt;
use shiplog_application::Principal;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The open streams of every token, by principal (a token's name is unique among
/// the active ones).
#[derive(Debug)]
pub struct StreamSlots {
    limit: usize,
    open: Mutex<HashMap<String, usize>>,
}

impl StreamSlots {
    /// Slots for at most `limit` streams per token.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// One more stream for `principal`, held until the slot is dropped; 429 when it
    /// has `limit` open already.
    pub fn take(self: &Arc<Self>, principal: &Principal) -> Result<StreamSlot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(principal.name.clone()).or_insert(0);
        if *count >= self.limit {
            return Err(ApiError::TooManyStreams { limit: self.limit });
        }
        *count += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            principal: principal.name.clone(),
        })
    }

    /// How many streams `principal` has open.
    pub fn open(&self, principal: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(principal).copied().unwrap_or(0)
    }
}

/// One open stream of a token; dropping it (when the stream ends or its client goes)
/// frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    principal: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.principal) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // Tokens come and go: keep no entry for one with nothing open.
                open.remove(&self.principal);
            }
        }
    }
}

/// `stream`, holding `slot` for as long as it lives.
pub fn holding<S: Stream>(stream: S, slot: StreamSlot) -> impl Stream<Item = S::Item> {
    stream.map(move |item| {
        let _held = &slot;
        item
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(name: &str) -> Principal {
        Principal {
            name: name.to_owned(),
            scopes: Vec::new(),
            subject: name.to_owned(),
            teams: Vec::new(),
        }
    }

    #[test]
    fn a_token_holds_at_most_the_limit_and_a_closed_stream_frees_its_slot() {
        let slots = StreamSlots::new(2);
        let (alice, bob) = (principal("alice"), principal("bob"));
        let first = slots.take(&alice).unwrap_or_else(|e| panic!("{e}"));
        let _second = slots.take(&alice).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(
                slots.take(&alice),
                Err(ApiError::TooManyStreams { limit: 2 })
            ),
            "a third stream of one token is refused"
        );
        assert!(
            slots.take(&bob).is_ok(),
            "another token has slots of its own"
        );
        drop(first);
        assert_eq!(slots.open("alice"), 1);
        assert!(slots.take(&alice).is_ok(), "a closed stream frees its slot");
    }

    #[test]
    fn a_token_with_nothing_open_leaves_no_entry() {
        let slots = StreamSlots::new(1);
        drop(
            slots
                .take(&principal("carol"))
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let open = slots.open.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(open.is_empty());
    }
}
