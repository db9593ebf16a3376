//! The hash chain against a real Postgres: events written through the command
//! bus are sealed in global order, tampering by a superuser (triggers disabled)
//! is reported at the right event, and the export verifies with the auditor's
//! Python script.

use chrono::Utc;
use shiplog_application::chain::export_line;
use shiplog_application::{ChainBreak, ChainReport, CommandBus, CommandContext, Cursor};
use shiplog_domain::{DeploymentConfig, ImageRef, UsecaseCommand, UsecaseName};
use shiplog_infrastructure::audit::{export_page, verify, ChainSealer};
use shiplog_infrastructure::{EventLog, PostgresCommandBus};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;
use std::time::Duration;
use uuid::Uuid;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/verify-export.py");

/// Exercises the canonical form end to end: quotes, backslash, newline, tab,
/// control characters, DEL, non-ASCII, an emoji and U+2028.
const AWKWARD: &str =
    "Café “quoted” \"x\"\n\\ tab\t bell\u{7} esc\u{1b} del\u{7f} 日本 😀 \u{2028} </>";

use shiplog_testkit::{eventually_within, TestDb};

fn ctx(actor: &str) -> CommandContext {
    CommandContext {
        actor: actor.to_owned(),
        request_id: format!("req-{}", Uuid::new_v4().simple()),
        causation: None,
        reason: None,
    }
}

fn config(tag: &str) -> DeploymentConfig {
    let image =
        ImageRef::new("registry.example", "team/app", tag).unwrap_or_else(|e| panic!("{e}"));
    DeploymentConfig::new(image, None, Some(8080), BTreeMap::new(), Some(1), None)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Registers a usecase and requests `deployments` deployments of it, one command
/// (one transaction) at a time.
async fn write_usecase(bus: &PostgresCommandBus, name: &str, deployments: usize) {
    let usecase_id = Uuid::new_v4();
    let actor = format!("actor-{name}");
    let register = UsecaseCommand::Register {
        usecase_id,
        name: UsecaseName::parse(name).unwrap_or_else(|e| panic!("{e}")),
        description: AWKWARD.to_owned(),
        at: Utc::now(),
        owner: "test".to_owned(),
        team: None,
    };
    bus.execute(usecase_id, register, &ctx(&actor))
        .await
        .unwrap_or_else(|e| panic!("register {name}: {e}"));
    for i in 0..deployments {
        let request = UsecaseCommand::RequestDeployment {
            deployment_id: Uuid::new_v4(),
            config: config(&format!("1.0.{i}")),
            at: Utc::now(),
        };
        bus.execute(usecase_id, request, &ctx(&actor))
            .await
            .unwrap_or_else(|e| panic!("deploy {name}: {e}"));
    }
}

async fn event_count(pool: &PgPool) -> u64 {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    n as u64
}

/// Seals until every event is in the chain. Events become readable only once
/// every older transaction on the server has ended (other tests' too), so this
/// polls instead of expecting one call to be enough.
async fn seal_everything(pool: &PgPool) -> ChainReport {
    let sealer = ChainSealer::new(pool.clone());
    eventually_within("every event is sealed", Duration::from_secs(20), || async {
        sealer
            .seal_pending()
            .await
            .unwrap_or_else(|e| panic!("seal: {e}"));
        let report = verify(pool).await.unwrap_or_else(|e| panic!("verify: {e}"));
        if report.unsealed == 0 {
            Ok(report)
        } else {
            Err(report)
        }
    })
    .await
}

/// Every sealed event, read page by page as the API does.
async fn export_all(pool: &PgPool, page: i64) -> Vec<shiplog_application::SealedEvent> {
    let mut all = Vec::new();
    loop {
        let after = all
            .last()
            .map_or(0, |s: &shiplog_application::SealedEvent| s.chain_index);
        let next = export_page(pool, after, page)
            .await
            .unwrap_or_else(|e| panic!("export: {e}"));
        let done = (next.len() as i64) < page;
        all.extend(next);
        if done {
            return all;
        }
    }
}

/// A small ledger of several commands, sealed and verified.
async fn sealed_ledger(db: &TestDb) -> ChainReport {
    let bus = PostgresCommandBus::new(db.pool.clone());
    write_usecase(&bus, "alpha", 3).await;
    write_usecase(&bus, "beta", 2).await;
    write_usecase(&bus, "gamma", 3).await;
    let report = seal_everything(&db.pool).await;
    assert!(report.verified, "fresh ledger does not verify: {report:?}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_from_concurrent_writers_are_sealed_in_global_order() {
    // Given two sealers running (as in two shiplog processes) while 8 tasks write
    let db = TestDb::create().await;
    let sealers = [
        tokio::spawn(ChainSealer::new(db.pool.clone()).run()),
        tokio::spawn(ChainSealer::new(db.pool.clone()).run()),
    ];
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let bus = PostgresCommandBus::new(db.pool.clone());
            tokio::spawn(async move { write_usecase(&bus, &format!("app-{i}"), 6).await })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap_or_else(|e| panic!("writer: {e}"));
    }

    // When everything is sealed
    let report = seal_everything(&db.pool).await;
    for sealer in &sealers {
        sealer.abort();
    }

    // Then the chain verifies, covers every event, and follows the global order
    let total = event_count(&db.pool).await;
    assert!(total >= 8 * 7, "only {total} events written");
    assert!(report.verified, "{report:?}");
    assert_eq!(report.events, total);
    assert_eq!(report.unsealed, 0);
    assert_eq!(report.broken_at, None);

    let sealed = export_all(&db.pool, 100).await;
    let mut conn = db.pool.acquire().await.unwrap_or_else(|e| panic!("{e}"));
    let mut logged = Vec::new();
    let mut after = Cursor::START;
    loop {
        let page = EventLog::read_after(&mut conn, after, 37)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(last) = page.last().map(|e| e.cursor) else {
            break;
        };
        logged.extend(page);
        after = last;
    }
    let chain_events: Vec<_> = sealed.iter().map(|s| s.event.clone()).collect();
    assert_eq!(
        chain_events, logged,
        "chain order differs from the global order"
    );
    let indexes: Vec<i64> = sealed.iter().map(|s| s.chain_index).collect();
    assert_eq!(indexes, (1..=total as i64).collect::<Vec<_>>());
    assert_eq!(
        report.head,
        sealed.last().map(|s| hex::encode(s.hash)),
        "head is the last hash"
    );
}

#[tokio::test]
async fn empty_and_unsealed_ledgers_verify() {
    let db = TestDb::create().await;
    let empty = verify(&db.pool).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        empty,
        ChainReport {
            verified: true,
            events: 0,
            head: None,
            unsealed: 0,
            broken_at: None
        }
    );

    let bus = PostgresCommandBus::new(db.pool.clone());
    write_usecase(&bus, "solo", 1).await;
    let unsealed = verify(&db.pool).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(unsealed.verified && unsealed.events == 0 && unsealed.head.is_none());
    assert_eq!(unsealed.unsealed, event_count(&db.pool).await);
    assert!(export_page(&db.pool, 0, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());
}

/// The sealed event a tampering case aims at.
struct Target {
    chain_index: i64,
    cursor: Cursor,
    usecase_id: String,
    sequence: i64,
}

/// What `verify` should name for a tampering case.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// The target, with its usecase and sequence (content no longer matches).
    Altered,
    /// The target's cursor only: the event is gone.
    Deleted,
    /// The target's index, nothing else: its chain row is gone.
    Gap,
    /// The target's index with its cursor: its chain row was rewritten.
    Relinked,
    /// The next index, with the cursor of an event slipped in just before it.
    Inserted,
}

/// Runs `sql` (with $1 = the target's transaction id as text, $2 its position)
/// as a superuser would, with the append-only trigger of `table` disabled.
async fn tamper(pool: &PgPool, table: &str, trigger: Option<&str>, sql: &str, target: &Target) {
    let mut tx = pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
    if let Some(trigger) = trigger {
        sqlx::query(&format!("ALTER TABLE {table} DISABLE TRIGGER {trigger}"))
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let done = sqlx::query(sql)
        .bind(target.cursor.transaction_id.to_string())
        .bind(target.cursor.position)
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(done.rows_affected(), 1, "{sql} changed nothing");
    if let Some(trigger) = trigger {
        sqlx::query(&format!("ALTER TABLE {table} ENABLE TRIGGER {trigger}"))
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
}

/// A sealed event in the middle of the chain that is the last of its
/// transaction, so that an event forged into that transaction sorts right after it.
async fn pick_target(pool: &PgPool) -> Target {
    let sealed = export_all(pool, 1000).await;
    let middle = sealed.len() / 2;
    let i = (middle..sealed.len() - 1)
        .find(|&i| {
            sealed[i].event.cursor.transaction_id != sealed[i + 1].event.cursor.transaction_id
        })
        .unwrap_or_else(|| panic!("no transaction boundary after the middle"));
    let s = &sealed[i];
    Target {
        chain_index: s.chain_index,
        cursor: s.event.cursor,
        usecase_id: s.event.aggregate_id.clone(),
        sequence: s.event.sequence,
    }
}

const WHERE_TARGET: &str = "WHERE transaction_id = $1::text::xid8 AND position = $2";

#[tokio::test]
async fn tampering_is_reported_at_the_first_broken_event() {
    // (description, table, trigger to disable, statement on the target, expected report)
    let cases: [(&str, &str, Option<&str>, String, Expect); 10] = [
        (
            "payload altered",
            "events",
            Some("events_append_only"),
            format!("UPDATE events SET payload = '{{\"UsecaseDeleted\":{{}}}}' {WHERE_TARGET}"),
            Expect::Altered,
        ),
        (
            "metadata rewritten (another actor)",
            "events",
            Some("events_append_only"),
            format!("UPDATE events SET metadata = '{{\"actor\": \"mallory\"}}' {WHERE_TARGET}"),
            Expect::Altered,
        ),
        (
            "recorded_at moved back by a microsecond",
            "events",
            Some("events_append_only"),
            format!(
                "UPDATE events SET recorded_at = recorded_at - interval '1 microsecond' {WHERE_TARGET}"
            ),
            Expect::Altered,
        ),
        (
            "event type renamed",
            "events",
            Some("events_append_only"),
            format!("UPDATE events SET event_type = 'DeploymentFailed' {WHERE_TARGET}"),
            Expect::Altered,
        ),
        (
            "event deleted",
            "events",
            Some("events_append_only"),
            format!("DELETE FROM events {WHERE_TARGET}"),
            Expect::Deleted,
        ),
        (
            "chain row deleted",
            "event_chain",
            Some("event_chain_append_only"),
            format!("DELETE FROM event_chain {WHERE_TARGET}"),
            Expect::Gap,
        ),
        (
            "stored hash rewritten",
            "event_chain",
            Some("event_chain_append_only"),
            format!("UPDATE event_chain SET hash = sha256('forged') {WHERE_TARGET}"),
            Expect::Altered,
        ),
        (
            "ledger_time lowered (would hide the event from time filters)",
            "event_chain",
            Some("event_chain_append_only"),
            format!("UPDATE event_chain SET ledger_time = '2000-01-01T00:00:00Z' {WHERE_TARGET}"),
            Expect::Altered,
        ),
        (
            "prev_hash rewritten",
            "event_chain",
            Some("event_chain_append_only"),
            format!("UPDATE event_chain SET prev_hash = sha256('forged') {WHERE_TARGET}"),
            Expect::Relinked,
        ),
        (
            "event inserted behind the head with an old transaction id",
            "events",
            None,
            format!(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                                     event_version, payload, metadata, transaction_id)
                 SELECT aggregate_type, aggregate_id, 1000, event_type, event_version,
                        payload, metadata, transaction_id
                   FROM events {WHERE_TARGET}"
            ),
            Expect::Inserted,
        ),
    ];
    for (description, table, trigger, sql, expect) in cases {
        // Given a sealed ledger that verifies
        let db = TestDb::create().await;
        let before = sealed_ledger(&db).await;
        let target = pick_target(&db.pool).await;

        // When a superuser tampers with it
        tamper(&db.pool, table, trigger, &sql, &target).await;

        // Then verify names the first broken event
        let report = verify(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("{description}: verify: {e}"));
        let Some(broken) = report.broken_at.clone() else {
            panic!("{description}: tampering not detected: {report:?}");
        };
        assert!(!report.verified, "{description}: {report:?}");
        let expected = match expect {
            Expect::Altered => (
                target.chain_index,
                Some(target.cursor),
                Some(target.usecase_id.clone()),
                Some(target.sequence),
            ),
            Expect::Deleted | Expect::Relinked => {
                (target.chain_index, Some(target.cursor), None, None)
            }
            Expect::Gap => (target.chain_index, None, None, None),
            Expect::Inserted => {
                let forged: (String, i64) = sqlx::query_as(
                    "SELECT transaction_id::text, position FROM events WHERE sequence = 1000",
                )
                .fetch_one(&db.pool)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
                let cursor = Cursor {
                    transaction_id: forged.0.parse().unwrap_or_else(|e| panic!("{e}")),
                    position: forged.1,
                };
                (
                    target.chain_index + 1,
                    Some(cursor),
                    Some(target.usecase_id.clone()),
                    Some(1000),
                )
            }
        };
        let ChainBreak {
            chain_index,
            cursor,
            usecase_id,
            sequence,
            reason,
        } = broken;
        assert_eq!(
            (chain_index, cursor, usecase_id, sequence),
            expected,
            "{description}: wrong place ({reason})"
        );
        assert_eq!(
            report.events,
            expected.0 as u64 - 1,
            "{description}: events checked before the break"
        );
        assert_eq!(report.unsealed, 0, "{description}");
        assert_eq!(
            report.head, before.head,
            "{description}: head is the stored head"
        );
    }
}

/// Writes the export as NDJSON, one `export_line` per line.
fn write_export(lines: &[serde_json::Value]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("shiplog_audit_{}.ndjson", Uuid::new_v4()));
    let mut file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
    for line in lines {
        writeln!(file, "{line}").unwrap_or_else(|e| panic!("{e}"));
    }
    path
}

/// Runs the auditor's script on `path`: (success, stdout).
fn run_script(path: &std::path::Path) -> (bool, String) {
    let out = Command::new("python3")
        .arg(SCRIPT)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("python3 {SCRIPT}: {e}"));
    assert!(
        out.stderr.is_empty(),
        "script wrote to stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn the_export_verifies_with_the_auditors_script() {
    // Given a sealed ledger whose descriptions need every kind of JSON escape
    let db = TestDb::create().await;
    let report = sealed_ledger(&db).await;
    let head = report.head.clone().unwrap_or_default();

    // When it is exported page by page and checked by the script
    let lines: Vec<_> = export_all(&db.pool, 4)
        .await
        .iter()
        .map(export_line)
        .collect();
    assert_eq!(lines.len() as u64, report.events);
    let path = write_export(&lines);
    let (ok, stdout) = run_script(&path);

    // Then the script agrees with verify()
    assert!(ok, "script rejected a sound export: {stdout}");
    assert_eq!(
        stdout,
        format!("verified {} events, head {head}\n", report.events)
    );

    // And a changed payload is named by its chainIndex
    let k = 3;
    let mut altered = lines.clone();
    altered[k - 1]["payload"]["tampered"] = serde_json::Value::Bool(true);
    let cursor = altered[k - 1]["cursor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let altered_path = write_export(&altered);
    let (ok, stdout) = run_script(&altered_path);
    assert!(!ok, "script accepted an altered payload: {stdout}");
    assert!(
        stdout.starts_with(&format!(
            "chain broken at chainIndex {k} (cursor {cursor}): "
        )),
        "{stdout}"
    );

    // And an export of a ledger with a deleted event shows the gap
    let target = pick_target(&db.pool).await;
    tamper(
        &db.pool,
        "events",
        Some("events_append_only"),
        &format!("DELETE FROM events {WHERE_TARGET}"),
        &target,
    )
    .await;
    let gapped: Vec<_> = export_all(&db.pool, 4)
        .await
        .iter()
        .map(export_line)
        .collect();
    assert_eq!(gapped.len() as u64, report.events - 1);
    let gapped_path = write_export(&gapped);
    let (ok, stdout) = run_script(&gapped_path);
    assert!(
        !ok,
        "script accepted an export with a missing event: {stdout}"
    );
    assert!(
        stdout.starts_with(&format!(
            "chain broken at chainIndex {} ",
            target.chain_index + 1
        )),
        "{stdout}"
    );

    for p in [path, altered_path, gapped_path] {
        let _ = std::fs::remove_file(p);
    }
}
