//! Read models are disposable: a rebuild from position 0 gives identical rows.

use crate::helpers::TestApp;
use serde_json::Value;
use shiplog_domain::UsecaseCommand;
use shiplog_infrastructure::Projector;

async fn snapshot(app: &TestApp) -> (Vec<Value>, Vec<Value>) {
    let usecases = sqlx::query_scalar("SELECT to_jsonb(v) FROM usecase_view v ORDER BY id")
        .fetch_all(&app.db.pool)
        .await;
    let deployments = sqlx::query_scalar("SELECT to_jsonb(v) FROM deployment_view v ORDER BY id")
        .fetch_all(&app.db.pool)
        .await;
    (
        usecases.unwrap_or_else(|e| panic!("{e}")),
        deployments.unwrap_or_else(|e| panic!("{e}")),
    )
}

#[tokio::test]
async fn rebuild_replays_the_log_into_identical_rows() {
    let app = TestApp::spawn().await;
    let a = app.create_usecase("a").await;
    let b = app.create_usecase("b").await;
    let gone = app.create_usecase("gone").await;
    let a1 = app.deploy(a, "1").await;
    app.mark_deployed(a, a1).await;
    let a2 = app.deploy(a, "2").await;
    app.record(
        a,
        UsecaseCommand::FailDeployment {
            deployment_id: a2,
            message: "CrashLoopBackOff".into(),
            at: chrono::Utc::now(),
        },
    )
    .await;
    app.wait_for_status(a, a2, "error").await;
    let b1 = app.deploy(b, "1").await;
    app.deploy(b, "2").await;
    app.wait_for_status(b, b1, "superseded").await;
    let (status, _) = app.delete(&format!("/api/usecases/{gone}")).await;
    assert_eq!(status, 204);

    let before = snapshot(&app).await;
    assert_eq!(
        (before.0.len(), before.1.len()),
        (2, 4),
        "two live usecases, four deployments"
    );
    // Damage the read model; the rebuild must not care.
    sqlx::query("UPDATE deployment_view SET status = 'bogus'")
        .execute(&app.db.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let replayed = Projector::new(app.db.pool.clone())
        .rebuild()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replayed, 12, "every event of the log is replayed");
    assert_eq!(snapshot(&app).await, before);

    // The running server keeps projecting from the rebuilt checkpoint.
    let b3 = app.deploy(b, "3").await;
    let (status, body) = app
        .get(&format!("/api/usecases/{b}/deployments/{b3}"))
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("pending")));
}

#[tokio::test]
async fn shiplog_projections_rebuild_works_from_the_command_line() {
    let app = TestApp::spawn().await;
    let u = app.create_usecase("cli").await;
    app.deploy(u, "1").await;
    let before = snapshot(&app).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(["projections", "rebuild"])
        .env("DATABASE_URL", &app.db.url)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("from 2 events"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(snapshot(&app).await, before);
}
