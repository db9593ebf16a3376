//! API tokens on PostgreSQL: a token's events and its lookup row commit together or
//! not at all, and the projector passes token events over without stalling on them.

use chrono::{SubsecRound, Utc};
use shiplog_application::{CommandContext, Scope, TokenStore};
use shiplog_domain::TokenCommand;
use shiplog_infrastructure::{PgTokenStore, Projector};
use shiplog_testkit::{eventually, TestDb};
use uuid::Uuid;

fn ctx() -> CommandContext {
    CommandContext {
        actor: "admin".to_owned(),
        request_id: "test".to_owned(),
        causation: None,
        reason: Some("the test asked".to_owned()),
    }
}

fn create(id: Uuid, name: &str) -> TokenCommand {
    TokenCommand::Create {
        token_id: id,
        name: name.to_owned(),
        scopes: vec![Scope::AuditRead],
        subject: name.to_owned(),
        teams: Vec::new(),
        expires_at: None,
        at: Utc::now().trunc_subsecs(6),
    }
}

/// How many events token `id` has in the ledger.
async fn events_of(db: &TestDb, id: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'Token' AND aggregate_id = $1",
    )
    .bind(id.to_string())
    .fetch_one(&db.pool)
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn a_token_and_its_event_commit_together_or_not_at_all() {
    let db = TestDb::create().await;
    let store = PgTokenStore::new(db.pool.clone());
    let first = Uuid::new_v4();
    let (info, cursor) = store
        .execute(first, create(first, "pipeline"), Some([1; 32]), &ctx())
        .await
        .unwrap();
    assert_eq!(info.created_by, "admin");
    assert!(cursor.is_some());
    assert_eq!(events_of(&db, first).await, 1);
    let found = store.find_by_hash(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(
        (found.id, found.principal.name.as_str()),
        (first, "pipeline")
    );

    // The lookup table refuses a second active token of the name: its event goes too.
    let second = Uuid::new_v4();
    let refused = store
        .execute(second, create(second, "pipeline"), Some([2; 32]), &ctx())
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(
        events_of(&db, second).await,
        0,
        "an event without its token"
    );
    assert!(store.find_by_hash(&[2; 32]).await.unwrap().is_none());

    // A revocation is an event and the row's revocation at once.
    store
        .execute(first, TokenCommand::Revoke { at: Utc::now() }, None, &ctx())
        .await
        .unwrap();
    assert_eq!(events_of(&db, first).await, 2);
    assert!(store.find_by_hash(&[1; 32]).await.unwrap().is_none());
    assert!(store.find_by_id(first).await.unwrap().is_none());
}

#[tokio::test]
async fn the_projector_moves_past_token_events() {
    let db = TestDb::create().await;
    let store = PgTokenStore::new(db.pool.clone());
    let mut last = None;
    for n in 0..3 {
        let id = Uuid::new_v4();
        let (_, cursor) = store
            .execute(id, create(id, &format!("token-{n}")), Some([n; 32]), &ctx())
            .await
            .unwrap();
        last = cursor;
    }
    let last = last.unwrap();
    let projector = Projector::new(db.pool.clone());
    // Only token events after the checkpoints: every read model's checkpoint passes them.
    eventually("the checkpoints pass the token events", || async {
        projector.catch_up().await.map_err(|e| e.to_string())?;
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM subscription_checkpoints
              WHERE (transaction_id, position) < ($1::text::xid8, $2)",
        )
        .bind(last.transaction_id.to_string())
        .bind(last.position)
        .fetch_one(&db.pool)
        .await
        .map_err(|e| e.to_string())?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM subscription_checkpoints")
            .fetch_one(&db.pool)
            .await
            .map_err(|e| e.to_string())?;
        if total > 0 && behind == 0 {
            Ok(())
        } else {
            Err(format!("{behind} of {total} checkpoints behind"))
        }
    })
    .await;
    // A rebuild reads them too, and builds no row of them.
    projector.rebuild().await.unwrap();
}
