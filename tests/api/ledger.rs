//! The events table: append-only in the database, and a global order that a
//! reader can follow without ever skipping an event whose transaction commits late.

use crate::helpers::{TestApp, TestDb};
use shiplog_application::Cursor;
use shiplog_infrastructure::EventLog;
use shiplog_testkit::scaled;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn the_events_table_refuses_update_delete_and_truncate() {
    let app = TestApp::spawn().await;
    app.create_usecase("immutable").await;
    for (description, sql) in [
        ("update", "UPDATE events SET payload = '{}'::json"),
        ("delete", "DELETE FROM events"),
        ("truncate", "TRUNCATE events"),
    ] {
        let result = sqlx::query(sql).execute(&app.db.pool).await;
        let message = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("append-only"),
            "{description} must be refused by the database, got {message:?}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.db.pool)
        .await
        .unwrap_or(0);
    assert_eq!(count, 1, "the registration event is still there");
}

async fn insert_event(conn: &mut sqlx::PgConnection, aggregate: &str, sequence: i64) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('OrderTest', $1, $2, 'Tick', '1.0', '{}', '{}')",
    )
    .bind(aggregate)
    .bind(sequence)
    .execute(conn)
    .await
    .unwrap_or_else(|e| panic!("insert: {e}"));
}

/// Many writers, some holding their transaction open long after later writers
/// committed; a reader following the global order must see every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_sees_every_event_exactly_once_despite_late_commits() {
    let db = TestDb::create().await;
    const WRITERS: usize = 12;
    const PER_WRITER: usize = 25;
    let done = Arc::new(AtomicBool::new(false));

    let expected = WRITERS * PER_WRITER + 1;
    let reader = {
        let pool = db.pool.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut cursor = Cursor::START;
            let mut seen: Vec<(String, i64)> = Vec::new();
            let mut cursors = Vec::new();
            // The visibility horizon is the whole server's: a long transaction in another
            // database (a neighbour's benchmark) delays what may be read, never loses it.
            let mut patience: Option<std::time::Instant> = None;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let mut conn = pool.acquire().await.unwrap_or_else(|e| panic!("{e}"));
                let batch = EventLog::read_after(&mut conn, cursor, 7)
                    .await
                    .unwrap_or_else(|e| panic!("read: {e}"));
                drop(conn);
                if batch.is_empty() {
                    if finished {
                        let deadline = *patience.get_or_insert_with(|| {
                            std::time::Instant::now() + scaled(Duration::from_secs(30))
                        });
                        if seen.len() >= expected || std::time::Instant::now() > deadline {
                            return (seen, cursors);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                for event in batch {
                    cursors.push(event.cursor);
                    seen.push((event.aggregate_id, event.sequence));
                    cursor = event.cursor;
                }
            }
        })
    };

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let pool = db.pool.clone();
            tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    let mut tx = pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
                    insert_event(&mut tx, &format!("writer-{w}"), i as i64).await;
                    // Every few transactions stay open while others commit: their
                    // positions are lower than events that become visible first.
                    if (w + i) % 5 == 0 {
                        tokio::time::sleep(Duration::from_millis(15 + (w as u64 * 7) % 40)).await;
                    }
                    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
                }
            })
        })
        .collect();
    // One transaction takes its position first and commits last of all.
    let straggler = {
        let pool = db.pool.clone();
        tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
            insert_event(&mut tx, "straggler", 0).await;
            tokio::time::sleep(Duration::from_millis(400)).await;
            tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
        })
    };
    // A rolled-back transaction burns a position; the reader must not wait for it.
    {
        let mut tx = db.pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
        insert_event(&mut tx, "rolled-back", 0).await;
        tx.rollback().await.unwrap_or_else(|e| panic!("{e}"));
    }
    for writer in writers {
        writer.await.unwrap_or_else(|e| panic!("{e}"));
    }
    straggler.await.unwrap_or_else(|e| panic!("{e}"));
    done.store(true, Ordering::SeqCst);
    let (seen, cursors) = reader.await.unwrap_or_else(|e| panic!("{e}"));

    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "an event was delivered twice");
    assert_eq!(seen.len(), expected, "an event was skipped");
    assert!(
        unique.contains(&("straggler".to_owned(), 0)),
        "the late committer was skipped"
    );
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "cursors must increase strictly"
    );
    let strings: Vec<String> = cursors.iter().map(ToString::to_string).collect();
    assert!(
        strings.windows(2).all(|w| w[0] < w[1]),
        "cursor strings must sort like cursors"
    );
    // Within one writer the order of its own events is kept.
    for w in 0..WRITERS {
        let own: Vec<i64> = seen
            .iter()
            .filter(|(a, _)| *a == format!("writer-{w}"))
            .map(|(_, s)| *s)
            .collect();
        assert!(
            own.windows(2).all(|p| p[0] < p[1]),
            "writer {w} out of order: {own:?}"
        );
    }
}
