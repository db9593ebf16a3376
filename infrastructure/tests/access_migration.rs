//! Migration 0014 puts access in the ledger: every token that works gets its
//! `TokenCreated` (with its creator and creation time), so that it can be revoked as
//! a ledger command like any token created afterwards; revoked tokens get none.

use chrono::{DateTime, SubsecRound, Utc};
use shiplog_application::{CommandContext, TokenStore};
use shiplog_domain::{Scope, TokenCommand, TokenEvent};
use shiplog_infrastructure::db::MIGRATOR;
use shiplog_infrastructure::PgTokenStore;
use shiplog_testkit::TestDb;
use sqlx::migrate::Migrator;
use uuid::Uuid;

/// The migrations before 0014, as a database of the previous release has them.
async fn migrate_to_0013(db: &TestDb) {
    let dir = std::env::temp_dir().join(format!("shiplog-migrations-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
    for entry in std::fs::read_dir(source).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.as_str() < "0014" {
            std::fs::copy(&path, dir.join(&name)).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let before = Migrator::new(dir.as_path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    before.run(&db.pool).await.unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn tokens_that_existed_get_their_token_created_and_can_be_revoked_in_the_ledger() {
    let db = TestDb::create_empty().await;
    migrate_to_0013(&db).await;
    let created_at: DateTime<Utc> = Utc::now().trunc_subsecs(6);
    let (active, revoked) = (Uuid::new_v4(), Uuid::new_v4());
    for (id, name, revoked_at) in [
        (active, "old-ci", None),
        (revoked, "gone", Some(Utc::now())),
    ] {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, scopes, token_hash, created_at, created_by, revoked_at, subject, teams)
             VALUES ($1, $2, ARRAY['usecases:read', 'audit:read'], $3, $4, 'admin', $5, 'ci', '{}')",
        )
        .bind(id)
        .bind(name)
        .bind(id.as_bytes().to_vec())
        .bind(created_at)
        .bind(revoked_at)
        .execute(&db.pool)
        .await
        .unwrap();
    }

    MIGRATOR.run(&db.pool).await.unwrap();

    let rows: Vec<(String, serde_json::Value, serde_json::Value)> = sqlx::query_as(
        "SELECT aggregate_id, payload::jsonb, metadata::jsonb FROM events WHERE aggregate_type = 'Token'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (aggregate_id, payload, metadata) = &rows[0];
    assert_eq!(aggregate_id, &active.to_string());
    assert_eq!(metadata["actor"], "admin");
    assert!(metadata["reason"]
        .as_str()
        .is_some_and(|r| r.contains("migration 0014")));
    let event: TokenEvent = serde_json::from_value(payload.clone()).unwrap();
    assert_eq!(
        event,
        TokenEvent::TokenCreated {
            token_id: active,
            name: "old-ci".to_owned(),
            scopes: vec![Scope::UsecasesRead, Scope::AuditRead],
            subject: "ci".to_owned(),
            teams: Vec::new(),
            expires_at: None,
            at: created_at,
        }
    );

    // The aggregate knows the token: revoking it is a ledger command like any other.
    let ctx = CommandContext {
        actor: "admin".to_owned(),
        request_id: "test".to_owned(),
        causation: None,
        reason: None,
    };
    let store = PgTokenStore::new(db.pool.clone());
    store
        .execute(active, TokenCommand::Revoke { at: Utc::now() }, None, &ctx)
        .await
        .unwrap();
    assert!(store.find_by_id(active).await.unwrap().is_none());
}
