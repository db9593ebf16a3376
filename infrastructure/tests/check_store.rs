//! The auto-update watcher's checks on PostgreSQL: kept per usecase, read back as
//! written, and forgotten once their usecase is gone.

use chrono::{SubsecRound, Utc};
use shiplog_application::auto_update::{CheckOutcome, CheckRecord, CheckStore};
use shiplog_application::{CommandBus, CommandContext};
use shiplog_domain::{CheckTrigger, UsecaseCommand, UsecaseName};
use shiplog_infrastructure::auto_update::PgCheckStore;
use shiplog_infrastructure::{PostgresCommandBus, Projector};
use shiplog_testkit::{eventually, TestDb};
use uuid::Uuid;

fn check(outcome: CheckOutcome) -> CheckRecord {
    CheckRecord {
        check_id: Uuid::new_v4(),
        checked_at: Utc::now().trunc_subsecs(6),
        trigger: CheckTrigger::Webhook,
        tag: "1.0".to_owned(),
        digest: Some(format!("sha256:{}", "e".repeat(64))),
        outcome,
        message: "429 Too Many Requests".to_owned(),
        not_before: Some(Utc::now().trunc_subsecs(6)),
    }
}

#[tokio::test]
async fn checks_read_back_as_written_and_are_forgotten_with_their_usecase() {
    let db = TestDb::create().await;
    let store = PgCheckStore::new(db.pool.clone());
    // A usecase that exists in the read model, and one that does not (deleted).
    let kept = Uuid::new_v4();
    let bus = PostgresCommandBus::new(db.pool.clone());
    let ctx = CommandContext {
        actor: "test".to_owned(),
        request_id: "test".to_owned(),
        causation: None,
        reason: None,
    };
    let register = UsecaseCommand::Register {
        usecase_id: kept,
        name: UsecaseName::parse("kept").unwrap(),
        description: String::new(),
        owner: "test".to_owned(),
        team: None,
        at: Utc::now(),
    };
    bus.execute(kept, register, &ctx).await.unwrap();
    // The projector reads only what is safely ordered; catch up until the row is there.
    let projector = Projector::new(db.pool.clone());
    eventually("the usecase is projected", || async {
        projector.catch_up().await.map_err(|e| e.to_string())?;
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM usecase_view WHERE id = $1")
            .bind(kept)
            .fetch_one(&db.pool)
            .await
            .map_err(|e| e.to_string())?;
        if rows == 1 {
            Ok(())
        } else {
            Err("not yet".to_owned())
        }
    })
    .await;
    let gone = Uuid::new_v4();

    let written = check(CheckOutcome::RateLimited);
    store.record(kept, &written).await.unwrap();
    store
        .record(gone, &check(CheckOutcome::Unchanged))
        .await
        .unwrap();
    assert_eq!(store.last(kept).await.unwrap(), Some(written.clone()));
    // A newer check replaces it.
    let newer = check(CheckOutcome::Updated);
    store.record(kept, &newer).await.unwrap();
    assert_eq!(store.last(kept).await.unwrap(), Some(newer.clone()));

    assert_eq!(store.prune().await.unwrap(), 1);
    assert_eq!(store.last(gone).await.unwrap(), None);
    assert_eq!(store.last(kept).await.unwrap(), Some(newer));
}
