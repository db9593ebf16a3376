//! The command bus tells a name taken by a concurrent command (a violation of the
//! name reservation's own constraint, which the early check cannot see) from
//! another writer's events on the same aggregate (a conflict on the events'
//! primary key): the first is a 409 name-taken, the second is decided again on
//! the other writer's events and is no taken name.
//!
//! Each test holds the competing write in an open transaction, starts the
//! command, waits until the command waits for that transaction's lock, and only
//! then commits: the interleaving is forced, not hoped for.

use chrono::Utc;
use cqrs_es::DomainEvent;
use shiplog_application::{AppError, CommandBus, CommandContext, Conflict, TeamCommandBus};
use shiplog_domain::{TeamCommand, TeamName, Tier, Usecase, UsecaseCommand, UsecaseName};
use shiplog_infrastructure::{PostgresCommandBus, PostgresTeamBus};
use shiplog_testkit::{eventually, TestDb};
use sqlx::{PgPool, Postgres, Transaction};
use std::future::Future;
use std::sync::Arc;
use uuid::Uuid;

fn ctx() -> CommandContext {
    CommandContext {
        actor: "test".to_owned(),
        request_id: "test".to_owned(),
        causation: None,
        reason: None,
    }
}

fn register(usecase_id: Uuid, name: &str) -> UsecaseCommand {
    UsecaseCommand::Register {
        usecase_id,
        name: UsecaseName::parse(name).unwrap_or_else(|e| panic!("{e}")),
        description: String::new(),
        at: Utc::now(),
        owner: "test".to_owned(),
        team: None,
    }
}

/// Returns once a session of `db` waits for a lock (the command, on the open
/// transaction's row).
async fn until_a_command_waits_for_a_lock(db: &TestDb) {
    eventually(
        "the command to wait for the open transaction's lock",
        || async {
            let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(&db.name)
        .fetch_one(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("pg_stat_activity: {e}"));
            if waiting > 0 {
                Ok(())
            } else {
                Err("no session waits for a lock")
            }
        },
    )
    .await
}

/// Starts `command`, waits until it waits for `open` (a competing write held in an
/// uncommitted transaction), commits `open`, and returns what the command answered.
async fn commit_while_it_waits<T: Send + 'static>(
    db: &TestDb,
    open: Transaction<'static, Postgres>,
    command: impl Future<Output = Result<T, AppError>> + Send + 'static,
) -> Result<T, AppError> {
    let command = tokio::spawn(command);
    until_a_command_waits_for_a_lock(db).await;
    open.commit()
        .await
        .unwrap_or_else(|e| panic!("commit: {e}"));
    command.await.unwrap_or_else(|e| panic!("command: {e}"))
}

/// Reserves `name` in `table` for another aggregate, in a transaction left open, as a
/// concurrent command's trigger does.
async fn reserved(
    db: &TestDb,
    table: &str,
    column: &str,
    name: &str,
) -> Transaction<'static, Postgres> {
    let mut open = db
        .pool
        .begin()
        .await
        .unwrap_or_else(|e| panic!("begin: {e}"));
    sqlx::query(&format!(
        "INSERT INTO {table} (name, {column}) VALUES ($1, $2)"
    ))
    .bind(name)
    .bind(Uuid::new_v4().to_string())
    .execute(&mut *open)
    .await
    .unwrap_or_else(|e| panic!("reserve {name}: {e}"));
    open
}

fn assert_name_taken<T: std::fmt::Debug>(result: Result<T, AppError>, expected: &str) {
    match result {
        Err(AppError::Conflict {
            kind: Conflict::NameTaken,
            detail,
        }) => assert_eq!(detail, expected),
        other => panic!("expected the name to be taken, got {other:?}"),
    }
}

#[tokio::test]
async fn a_usecase_name_taken_by_a_concurrent_registration_is_name_taken() {
    let db = TestDb::create().await;
    let bus = Arc::new(PostgresCommandBus::new(db.pool.clone()));
    let id = Uuid::new_v4();
    let open = reserved(&db, "usecase_names", "usecase_id", "contested").await;
    let result = commit_while_it_waits(&db, open, async move {
        bus.execute(id, register(id, "contested"), &ctx()).await
    })
    .await;
    assert_name_taken(result, r#"a usecase named "contested" already exists"#);
    assert_eq!(events_of(&db.pool, id).await, 0, "nothing was appended");
}

#[tokio::test]
async fn a_team_name_taken_by_a_concurrent_create_is_name_taken() {
    let db = TestDb::create().await;
    let bus = Arc::new(PostgresTeamBus::new(db.pool.clone()));
    let id = Uuid::new_v4();
    let command = TeamCommand::Create {
        team_id: id,
        name: TeamName::parse("contested").unwrap_or_else(|e| panic!("{e}")),
        tier: Tier::Free,
        at: Utc::now(),
    };
    let open = reserved(&db, "team_names", "team_id", "contested").await;
    let result = commit_while_it_waits(
        &db,
        open,
        async move { bus.execute(id, command, &ctx()).await },
    )
    .await;
    assert_name_taken(result, r#"a team named "contested" already exists"#);
    assert_eq!(events_of(&db.pool, id).await, 0, "nothing was appended");
}

#[tokio::test]
async fn another_writer_on_the_same_usecase_is_no_taken_name() {
    let db = TestDb::create().await;
    let bus = Arc::new(PostgresCommandBus::new(db.pool.clone()));
    let id = Uuid::new_v4();
    // Another process registers the same usecase id (under another name) first:
    // its event takes the sequence this command's event needs.
    let first = Usecase::default()
        .decide(register(id, "first"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut open = db
        .pool
        .begin()
        .await
        .unwrap_or_else(|e| panic!("begin: {e}"));
    for (i, event) in first.into_iter().enumerate() {
        let payload = serde_json::to_value(&event).unwrap_or_else(|e| panic!("{e}"));
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('Usecase', $1, $2, $3, $4, $5::json, '{\"actor\": \"test\"}'::json)",
        )
        .bind(id.to_string())
        .bind(i as i64 + 1)
        .bind(event.event_type())
        .bind(event.event_version())
        .bind(payload)
        .execute(&mut *open)
        .await
        .unwrap_or_else(|e| panic!("the other writer's event: {e}"));
    }
    let result = commit_while_it_waits(&db, open, async move {
        bus.execute(id, register(id, "second"), &ctx()).await
    })
    .await;
    match result {
        Err(AppError::Conflict {
            kind: Conflict::AlreadyExists,
            detail,
        }) => assert_eq!(detail, format!("usecase {id} is already registered")),
        other => panic!("expected the command decided again on the other writer's event (already registered), got {other:?}"),
    }
    let reserved: Vec<String> = sqlx::query_scalar("SELECT name FROM usecase_names")
        .fetch_all(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        reserved,
        ["first"],
        "only the other writer's name is reserved"
    );
    assert_eq!(
        events_of(&db.pool, id).await,
        1,
        "only the other writer's event is stored"
    );
}

async fn events_of(pool: &PgPool, id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(id.to_string())
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("events of {id}: {e}"))
}
