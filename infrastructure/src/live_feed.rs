//! The live feed: one reader of the event log per process, and one shared ring of
//! the events it read, which every follower reads by position.
//!
//! A follower is a position in the ring and a wake-up registration, nothing more:
//! events are stored once, however many follow, and a follower that falls behind
//! the ring's oldest event is cut off (it resumes from its last cursor by reading
//! the log), so no follower makes the process buffer without bound. Followers
//! that start at the tail never query the database: they wait for the next round
//! of the one reader, which serves all of them at once.

use crate::event_log::Wakeup;
use crate::ledger::{page, tail};
use crate::retry;
use futures::stream::BoxStream;
use futures::StreamExt;
use shiplog_application::{AppError, Cursor, EventFilter, FeedItem, FollowedEvent, RecordedEvent};
use sqlx::PgPool;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore, SemaphorePermit};
use tracing::{debug, warn};

/// How many events the reader, and a follower's catch-up, ask for per query.
const PAGE: u32 = 500;
/// How long a new follower waits for the feed to start (or for its next round).
const FEED_START: Duration = Duration::from_secs(10);
/// How often the reader looks at the log when no notification woke it.
const POLL: Duration = Duration::from_millis(250);
/// The least time between the starts of two rounds of the reader: the most a
/// round adds to an event's delivery.
const ROUND_GAP: Duration = Duration::from_millis(20);
/// How many events a follower takes from the ring per look (fewer lock round trips).
const BATCH: usize = 32;
/// Catch-up queries of followers running at once: the pool stays free for writers
/// even when many followers reconnect with a cursor together.
const CATCH_UP_QUERIES: usize = 4;

/// Reads the log once per process and keeps the newest events in a ring that every
/// follower reads by position. The ring holds `capacity` events: a follower that
/// falls further behind is cut off (it resumes from its last cursor).
pub struct LiveFeed {
    pool: PgPool,
    capacity: usize,
    /// The ring; a change wakes the followers waiting at its end.
    ring: watch::Sender<Ring>,
    /// Rounds of the reader begun so far.
    rounds_begun: AtomicU64,
    /// The last round completed without error (0: none yet, the feed has not started).
    rounds_done: watch::Sender<u64>,
    /// Asks the reader for a round now (a follower starting at the tail).
    poke: Notify,
    /// Followers connected now.
    followers: AtomicUsize,
    /// The most followers connected at once since `take_peak_followers` last looked.
    peak_followers: AtomicUsize,
    /// Bounds the followers' catch-up queries.
    catch_up: Semaphore,
}

/// The events the feed read most recently, each numbered by the order of reading.
struct Ring {
    /// The number of `events[0]`.
    first: u64,
    /// At most `capacity` events, in the global order.
    events: VecDeque<Arc<FollowedEvent>>,
    /// Every event after this cursor is in `events` or not read yet.
    base: Cursor,
    /// The reader has read every visible event up to this cursor.
    head: Cursor,
}

impl Ring {
    /// The number the next event will get.
    fn end(&self) -> u64 {
        self.first + self.events.len() as u64
    }

    /// Appends `event`, dropping the oldest when the ring is full.
    fn push(&mut self, event: RecordedEvent, capacity: usize) {
        if self.events.len() >= capacity {
            if let Some(oldest) = self.events.pop_front() {
                self.base = oldest.cursor;
                self.first += 1;
            }
        }
        self.head = event.cursor;
        self.events.push_back(Arc::new(FollowedEvent::new(event)));
    }

    /// Empties the ring and continues after `tail` (nobody follows: nothing to keep).
    fn skip_to(&mut self, tail: Cursor) {
        self.first = self.end();
        self.events.clear();
        self.base = tail;
        self.head = tail;
    }

    /// The number of the first event after `seam`, if the ring holds every event after it.
    fn position_after(&self, seam: Cursor) -> Option<u64> {
        if self.base > seam {
            return None;
        }
        Some(self.first + self.events.partition_point(|e| e.cursor <= seam) as u64)
    }
}

/// Why a reader gets no further event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// It fell behind: the ring dropped an event it had not taken yet.
    Behind,
    /// The feed is gone (the process is stopping).
    Closed,
}

impl LiveFeed {
    /// A feed over `pool` that keeps the newest `capacity` events for its followers.
    pub fn new(pool: PgPool, capacity: usize) -> Arc<Self> {
        let capacity = capacity.max(1);
        let ring = Ring {
            first: 0,
            events: VecDeque::new(),
            base: Cursor::START,
            head: Cursor::START,
        };
        Arc::new(Self {
            pool,
            capacity,
            ring: watch::Sender::new(ring),
            rounds_begun: AtomicU64::new(0),
            rounds_done: watch::Sender::new(0),
            poke: Notify::new(),
            followers: AtomicUsize::new(0),
            peak_followers: AtomicUsize::new(0),
            catch_up: Semaphore::new(CATCH_UP_QUERIES),
        })
    }

    /// How many followers are connected now.
    pub fn followers(&self) -> usize {
        self.followers.load(Ordering::SeqCst)
    }

    /// The most followers connected at once since the last call (at least those
    /// connected now): a crowd that came and went between two looks is seen too.
    pub fn take_peak_followers(&self) -> usize {
        let now = self.followers();
        self.peak_followers.swap(now, Ordering::SeqCst).max(now)
    }

    /// Counts a follower until the returned guard is dropped. SeqCst, as is the
    /// reader's count of rounds: a round that sees no follower began before the
    /// follower's `tail_now` looked at the rounds, so it waits for a later one.
    fn follower(self: &Arc<Self>) -> FollowerGuard {
        let now = self.followers.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_followers.fetch_max(now, Ordering::SeqCst);
        FollowerGuard(self.clone())
    }

    /// Returns once round `round` (or a later one) completed; `Unavailable` when
    /// that takes longer than `FEED_START` (the database is unreachable, or the
    /// feed does not run).
    async fn round_done(&self, round: u64) -> Result<(), AppError> {
        let mut done = self.rounds_done.subscribe();
        let reached = tokio::time::timeout(FEED_START, done.wait_for(|d| *d >= round))
            .await
            .is_ok_and(|r| r.is_ok());
        if reached {
            return Ok(());
        }
        Err(AppError::Unavailable(
            "the live event feed has not started yet (is the database reachable?); retry"
                .to_owned(),
        ))
    }

    /// Returns once the feed knows where it starts (at once, after the first time).
    async fn started(&self) -> Result<(), AppError> {
        self.round_done(1).await
    }

    /// The log's tail as of now, without a query of this follower's own: waits for a
    /// round of the reader that begins after this call (one round serves every
    /// follower waiting), and returns the newest event it had read and the ring
    /// number of the next event. Every event after that cursor arrives at or after
    /// that number.
    async fn tail_now(&self) -> Result<(Cursor, u64), AppError> {
        let round = self.rounds_begun.load(Ordering::SeqCst) + 1;
        self.poke.notify_one();
        self.round_done(round).await?;
        let ring = self.ring.borrow();
        Ok((ring.head, ring.end()))
    }

    /// How far the reader has read: every visible event up to it is in the ring or
    /// older than the ring.
    fn head(&self) -> Cursor {
        self.ring.borrow().head
    }

    /// Where a follower that has everything up to `seam` joins the ring; `None`
    /// when the ring no longer holds every event after `seam`.
    fn position_after(&self, seam: Cursor) -> Option<u64> {
        self.ring.borrow().position_after(seam)
    }

    /// Reads the ring from `position` on.
    fn reader(&self, position: u64) -> Reader {
        Reader {
            ring: self.ring.subscribe(),
            position,
            batch: VecDeque::with_capacity(BATCH),
        }
    }

    /// One page of a follower's catch-up from the log, at most `CATCH_UP_QUERIES` at once.
    async fn catch_up(
        &self,
        filter: &EventFilter,
        after: Cursor,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        let _permit: Option<SemaphorePermit<'_>> = self.catch_up.acquire().await.ok();
        page(&self.pool, filter, after, PAGE).await
    }

    /// Replays events after `after` passing `filter` from the log (none: starts at
    /// the newest event and announces it), then follows the ring, with no gap and no
    /// duplicate at the seam; ends with `Overflow` when the follower falls behind
    /// the ring. Catch-up reads hold no ring position, so a long replay costs the
    /// ring nothing.
    pub(crate) async fn follow(
        self: &Arc<Self>,
        after: Option<Cursor>,
        filter: EventFilter,
    ) -> Result<BoxStream<'static, FeedItem>, AppError> {
        // The ring holds everything after the feed's own start; ours must not lie before it.
        self.started().await?;
        // Counted before the start is fixed: the feed skips ahead only while nobody
        // follows, so nothing after our start can be skipped.
        let guard = self.follower();
        // Without a cursor, fix the start now, before the caller answers: every event
        // committed after the answer's headers is then part of the stream.
        let (mut last, joined) = match after {
            Some(cursor) => (cursor, None),
            None => {
                let (at, position) = self.tail_now().await?;
                (at, Some(position))
            }
        };
        let feed = self.clone();
        Ok(async_stream::stream! {
            let _guard = guard;
            let position = match joined {
                Some(position) => {
                    yield FeedItem::Start { at: last };
                    position
                }
                None => {
                    let mut delays = retry::backoff(RETRY_MIN, RETRY_MAX);
                    loop {
                        // Every event up to the feed's head is visible to the query
                        // below: once a page is short, we have every match up to there.
                        let head = feed.head();
                        let events = match feed.catch_up(&filter, last).await {
                            Ok(events) => events,
                            Err(e) => {
                                warn!(error = %e, "follower cannot read the log; retrying");
                                // A follower outlives a database restart instead of
                                // failing (its keep-alives go on meanwhile).
                                tokio::time::sleep(delays.next().unwrap_or(RETRY_MAX)).await;
                                continue;
                            }
                        };
                        delays = retry::backoff(RETRY_MIN, RETRY_MAX);
                        let full = events.len() == PAGE as usize;
                        for event in events {
                            last = event.cursor;
                            yield FeedItem::Event(Arc::new(FollowedEvent::new(event)));
                        }
                        if full {
                            continue;
                        }
                        // None: the ring dropped events after the head while we read.
                        if let Some(position) = feed.position_after(head.max(last)) {
                            break position;
                        }
                    }
                }
            };
            // Live: anything at or before `last` was already sent by the catch-up.
            let mut reader = feed.reader(position);
            loop {
                match reader.next().await {
                    Ok(event) => {
                        if event.cursor > last && filter.matches(&event) {
                            last = event.cursor;
                            yield FeedItem::Event(event);
                        }
                    }
                    Err(Stop::Behind) => {
                        yield FeedItem::Overflow { last };
                        break;
                    }
                    Err(Stop::Closed) => break,
                }
            }
        }
        .boxed())
    }

    /// Follows the log until the task is dropped, woken by NOTIFY (so events written
    /// through another process on the same database arrive too), by a follower that
    /// needs a fresh tail, or by a short poll.
    pub async fn run(self: Arc<Self>) {
        let mut wakeup = Wakeup::connect(&self.pool).await;
        let mut position = None;
        loop {
            let began = tokio::time::Instant::now();
            let round = self.rounds_begun.fetch_add(1, Ordering::SeqCst) + 1;
            match self.round(position).await {
                Ok(reached) => {
                    position = Some(reached);
                    self.rounds_done.send_replace(round);
                }
                Err(e) => warn!(error = %e, "live feed could not read the log; retrying"),
            }
            tokio::select! {
                () = wakeup.wait(POLL) => {}
                () = self.poke.notified() => {}
            }
            // Every round that finds events wakes every follower, and each then writes
            // to its socket: while writers commit many times a second, a round per
            // commit would cost a write per commit and follower; one at most every
            // ROUND_GAP carries the events of several commits in one.
            tokio::time::sleep_until(began + ROUND_GAP).await;
        }
    }

    /// Puts every event after `position` that is visible now into the ring; returns
    /// how far it got.
    async fn round(&self, position: Option<Cursor>) -> Result<Cursor, sqlx::Error> {
        let Some(mut position) = position else {
            let tail = tail(&self.pool).await?;
            self.ring.send_modify(|ring| ring.skip_to(tail));
            return Ok(tail);
        };
        if self.followers() == 0 {
            // Nobody listens: skip ahead without reading payloads, and let the ring's
            // events go. A follower that comes later starts from what the ring says.
            let tail = tail(&self.pool).await?;
            if tail > position {
                self.ring.send_modify(|ring| ring.skip_to(tail));
                return Ok(tail);
            }
            return Ok(position);
        }
        loop {
            let events = page(&self.pool, &EventFilter::default(), position, PAGE).await?;
            let Some(last) = events.last().map(|e| e.cursor) else {
                return Ok(position);
            };
            let full = events.len() == PAGE as usize;
            let read = events.len();
            // One change per page: followers wake once for the whole page.
            self.ring.send_modify(|ring| {
                for event in events {
                    ring.push(event, self.capacity);
                }
            });
            debug!(read, %last, "live feed");
            position = last;
            if !full {
                return Ok(position);
            }
        }
    }
}

/// The first pause before a follower reads the log again after a failure.
const RETRY_MIN: Duration = Duration::from_millis(250);
/// The longest pause between a failing follower's reads.
const RETRY_MAX: Duration = Duration::from_secs(8);

/// Keeps a follower counted while it lives.
struct FollowerGuard(Arc<LiveFeed>);

impl Drop for FollowerGuard {
    fn drop(&mut self) {
        self.0.followers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A follower's place in the ring.
struct Reader {
    ring: watch::Receiver<Ring>,
    position: u64,
    /// Events taken from the ring and not handed out yet (at most `BATCH`).
    batch: VecDeque<Arc<FollowedEvent>>,
}

impl Reader {
    /// The next event, waiting for one.
    async fn next(&mut self) -> Result<Arc<FollowedEvent>, Stop> {
        loop {
            if let Some(event) = self.batch.pop_front() {
                return Ok(event);
            }
            {
                // Marks the ring seen under the same lock as the read: a change after
                // this read wakes `changed` below, so nothing is missed.
                let ring = self.ring.borrow_and_update();
                if self.position < ring.first {
                    return Err(Stop::Behind);
                }
                let from = usize::try_from(self.position - ring.first).unwrap_or(usize::MAX);
                if from < ring.events.len() {
                    let to = ring.events.len().min(from + BATCH);
                    self.batch.extend(ring.events.range(from..to).cloned());
                }
                self.position += self.batch.len() as u64;
            }
            if self.batch.is_empty() && self.ring.changed().await.is_err() {
                return Err(Stop::Closed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(position: i64) -> Cursor {
        Cursor {
            transaction_id: 1,
            position,
        }
    }

    fn event(position: i64) -> RecordedEvent {
        RecordedEvent {
            cursor: at(position),
            aggregate_type: "Usecase".to_owned(),
            aggregate_id: "u".to_owned(),
            sequence: position,
            event_type: "UsecaseRegistered".to_owned(),
            event_version: "1.0".to_owned(),
            payload: serde_json::Value::Null,
            metadata: serde_json::Value::Null,
            recorded_at: chrono::Utc::now(),
        }
    }

    fn ring() -> Ring {
        Ring {
            first: 0,
            events: VecDeque::new(),
            base: Cursor::START,
            head: Cursor::START,
        }
    }

    #[test]
    fn a_full_ring_drops_its_oldest_and_no_longer_joins_before_it() {
        let mut ring = ring();
        for p in 1..=5 {
            ring.push(event(p), 3);
        }
        assert_eq!((ring.first, ring.end(), ring.head), (2, 5, at(5)));
        assert_eq!(ring.position_after(at(1)), None, "event 2 was dropped");
        assert_eq!(ring.position_after(at(2)), Some(2), "joins at event 3");
        assert_eq!(ring.position_after(at(5)), Some(5), "joins at the end");
    }

    #[test]
    fn skipping_ahead_keeps_the_numbering_and_moves_the_base() {
        let mut ring = ring();
        ring.push(event(1), 8);
        ring.skip_to(at(9));
        assert_eq!(
            (ring.first, ring.end(), ring.base, ring.head),
            (1, 1, at(9), at(9))
        );
        assert_eq!(
            ring.position_after(at(1)),
            None,
            "events 2..9 were never read"
        );
        assert_eq!(ring.position_after(at(9)), Some(1));
    }

    #[tokio::test]
    async fn a_reader_gets_every_event_in_order_then_is_cut_off_once_it_falls_behind() {
        let (sender, _) = watch::channel(ring());
        let mut reader = Reader {
            ring: sender.subscribe(),
            position: 0,
            batch: VecDeque::new(),
        };
        sender.send_modify(|r| (1..=3).for_each(|p| r.push(event(p), 4)));
        for p in 1..=3 {
            assert_eq!(reader.next().await.map(|e| e.cursor), Ok(at(p)));
        }
        // Waits for the next event rather than failing when there is none yet.
        let waiting = tokio::spawn(async move {
            let next = reader.next().await.map(|e| e.cursor);
            (next, reader)
        });
        // Lets the reader run until it waits (the test runtime has one thread).
        tokio::task::yield_now().await;
        sender.send_modify(|r| r.push(event(4), 4));
        let (next, mut reader) = waiting.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next, Ok(at(4)));
        // Five more into a ring of four: event 5 is gone before the reader took it.
        sender.send_modify(|r| (5..=9).for_each(|p| r.push(event(p), 4)));
        assert_eq!(reader.next().await.map(|e| e.cursor), Err(Stop::Behind));
    }
}
