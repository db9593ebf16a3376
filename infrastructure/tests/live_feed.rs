//! A follower that starts before the live feed does: it must still get every event
//! after the position it announces, including one written while the feed was not
//! yet running (the feed starts at the log's tail and never sends what lies before).

use chrono::Utc;
use futures::StreamExt;
use shiplog_application::{CommandBus, CommandContext, Cursor, EventFilter, FeedItem, Ledger};
use shiplog_domain::{UsecaseCommand, UsecaseName};
use shiplog_infrastructure::{LiveFeed, PgLedger, PostgresCommandBus};
use shiplog_testkit::TestDb;
use std::time::Duration;
use uuid::Uuid;

async fn register(bus: &PostgresCommandBus, name: &str) -> Uuid {
    let id = Uuid::new_v4();
    let command = UsecaseCommand::Register {
        usecase_id: id,
        name: UsecaseName::parse(name).unwrap_or_else(|e| panic!("{e}")),
        description: String::new(),
        at: Utc::now(),
        owner: "test".to_owned(),
        team: None,
    };
    let ctx = CommandContext {
        actor: "test".to_owned(),
        request_id: "test".to_owned(),
        causation: None,
        reason: None,
    };
    bus.execute(id, command, &ctx)
        .await
        .unwrap_or_else(|e| panic!("register {name}: {e}"));
    id
}

#[tokio::test]
async fn a_follower_waits_for_the_feed_and_misses_nothing_after_its_start() {
    let db = TestDb::create().await;
    let bus = PostgresCommandBus::new(db.pool.clone());
    let feed = LiveFeed::new(db.pool.clone(), 1024);
    let ledger = PgLedger::new(db.pool.clone(), feed.clone());

    // The follower asks first, while the feed is not running yet: it must wait for
    // the feed. Were it to fix its start now, an event committed before the feed's
    // first round (which starts at the log's tail) would be neither replayed to it
    // (if its catch-up already ran) nor sent live.
    let mut follower =
        tokio::spawn(async move { ledger.follow(None, EventFilter::default()).await });
    let returned_early = tokio::time::timeout(Duration::from_millis(300), &mut follower)
        .await
        .is_ok();
    assert!(
        !returned_early,
        "follow() fixed its start before the live feed had started"
    );
    let early = register(&bus, "written-before-the-feed-started").await;
    let feed_task = tokio::spawn(feed.run());
    let mut stream = follower
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("follow: {e}"));
    let start = match stream.next().await {
        Some(FeedItem::Start { at }) => at,
        other => panic!("expected the starting position first, got {other:?}"),
    };
    let late = register(&bus, "written-after").await;

    // Everything after the announced start arrives, in order; nothing is skipped.
    let mut expected = vec![late.to_string()];
    if start < cursor_of(&db, early).await {
        expected.insert(0, early.to_string());
    }
    let mut received = Vec::new();
    while received.len() < expected.len() {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Ok(Some(FeedItem::Event(event))) => received.push(event.aggregate_id.clone()),
            Ok(other) => panic!("unexpected {other:?} after {received:?}"),
            Err(_) => panic!("only {received:?} of {expected:?} within 10 s (start {start})"),
        }
    }
    assert_eq!(received, expected);
    feed_task.abort();
}

/// The cursor of the (only) event of a usecase, read from the table directly: the
/// ledger shows an event only once every older transaction on the server ended,
/// and other tests' transactions may still be open.
async fn cursor_of(db: &TestDb, usecase: Uuid) -> Cursor {
    let (transaction_id, position): (String, i64) =
        sqlx::query_as("SELECT transaction_id::text, position FROM events WHERE aggregate_id = $1")
            .bind(usecase.to_string())
            .fetch_one(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("the event of {usecase}: {e}"));
    Cursor {
        transaction_id: transaction_id
            .parse()
            .unwrap_or_else(|e| panic!("{transaction_id}: {e}")),
        position,
    }
}
