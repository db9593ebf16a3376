//! The vault against a real Postgres: one data key per usecase however many first
//! seals race, another master key is told apart from altered data, and the key is
//! destroyed exactly when the usecase's deletion is recorded.

use chrono::Utc;
use shiplog_application::{
    clear_secrets, CommandBus, CommandContext, SealedSecrets, SecretError, SecretVault,
};
use shiplog_domain::{UsecaseCommand, UsecaseName};
use shiplog_infrastructure::{MasterKey, PgVault, PostgresCommandBus};
use shiplog_testkit::TestDb;
use std::collections::BTreeMap;
use uuid::Uuid;

fn values(value: &str) -> shiplog_application::ClearSecrets {
    clear_secrets(BTreeMap::from([(
        "DB_PASSWORD".to_owned(),
        value.to_owned(),
    )]))
}

fn ctx() -> CommandContext {
    CommandContext {
        actor: "alice".to_owned(),
        request_id: "test".to_owned(),
        causation: None,
        reason: None,
    }
}

#[tokio::test]
async fn racing_first_seals_agree_on_one_key_and_both_open() {
    let db = TestDb::create().await;
    let vault = PgVault::new(db.pool.clone(), MasterKey::ephemeral());
    let usecase = Uuid::new_v4();
    let (one, two) = (values("one"), values("two"));
    let (a, b) = tokio::join!(vault.seal(usecase, &one), vault.seal(usecase, &two));
    let (a, b) = (
        a.unwrap_or_else(|e| panic!("{e}")),
        b.unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(a["DB_PASSWORD"].key, b["DB_PASSWORD"].key, "one data key");
    for (sealed, value) in [(a, "one"), (b, "two")] {
        let opened = vault
            .open(usecase, &sealed)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(opened["DB_PASSWORD"].expose(), value);
    }
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM secret_keys")
        .fetch_one(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(keys, 1);
}

#[tokio::test]
async fn another_master_key_is_named_instead_of_failing_obscurely() {
    let db = TestDb::create().await;
    let usecase = Uuid::new_v4();
    let (first, second) = (MasterKey::ephemeral(), MasterKey::ephemeral());
    let sealed = PgVault::new(db.pool.clone(), first.clone())
        .seal(usecase, &values("x"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let other = PgVault::new(db.pool.clone(), second.clone());
    match other.open(usecase, &sealed).await {
        Err(SecretError::Undecryptable(message)) => {
            assert!(
                message.contains(&first.fingerprint()) && message.contains(&second.fingerprint()),
                "{message}"
            );
        }
        other => panic!("expected Undecryptable, got {other:?}"),
    }
    // Sealing with it is refused too: no second key is made behind the first.
    assert!(other.seal(usecase, &values("y")).await.is_err());
    // Nothing sealed needs no key at all.
    assert!(other
        .open(Uuid::new_v4(), &SealedSecrets::new())
        .await
        .is_ok_and(|v| v.is_empty()));
}

#[tokio::test]
async fn the_key_is_destroyed_in_the_commit_that_records_the_deletion() {
    let db = TestDb::create().await;
    let vault = PgVault::new(db.pool.clone(), MasterKey::ephemeral());
    let bus = PostgresCommandBus::new(db.pool.clone());
    let usecase = Uuid::new_v4();
    let at = Utc::now();
    bus.execute(
        usecase,
        UsecaseCommand::Register {
            usecase_id: usecase,
            name: UsecaseName::parse("shredded").unwrap_or_else(|e| panic!("{e}")),
            description: String::new(),
            owner: "alice".to_owned(),
            team: None,
            at,
        },
        &ctx(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let sealed = vault
        .seal(usecase, &values("x"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Until the deletion is recorded, the value opens.
    assert!(vault.open(usecase, &sealed).await.is_ok());
    bus.execute(usecase, UsecaseCommand::Delete { at }, &ctx())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        vault.open(usecase, &sealed).await.err(),
        Some(SecretError::KeyDestroyed(usecase))
    );
    // No new key for a deleted usecase: its tombstone stays.
    assert_eq!(
        vault.seal(usecase, &values("again")).await.err(),
        Some(SecretError::KeyDestroyed(usecase))
    );
    // A usecase deleted without ever having a key gets a tombstone too.
    let never = Uuid::new_v4();
    bus.execute(
        never,
        UsecaseCommand::Register {
            usecase_id: never,
            name: UsecaseName::parse("never-sealed").unwrap_or_else(|e| panic!("{e}")),
            description: String::new(),
            owner: "alice".to_owned(),
            team: None,
            at,
        },
        &ctx(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    bus.execute(never, UsecaseCommand::Delete { at }, &ctx())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        vault.seal(never, &values("late")).await.err(),
        Some(SecretError::KeyDestroyed(never))
    );
}
