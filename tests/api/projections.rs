//! Read models are disposable: a rebuild from position 0 gives identical rows.

use crate::helpers::TestApp;
use serde_json::Value;
use shiplog_domain::UsecaseCommand;
use shiplog_infrastructure::Projector;

async fn snapshot(app: &TestApp) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let rows = |sql: &'static str| async move {
        sqlx::query_scalar(sql)
            .fetch_all(&app.db.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    (
        rows("SELECT to_jsonb(v) FROM usecase_view v ORDER BY id").await,
        rows("SELECT to_jsonb(v) FROM deployment_view v ORDER BY id").await,
        rows("SELECT to_jsonb(v) FROM revision_view v ORDER BY usecase_id, revision").await,
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
    let (status, _) = app
        .post(&format!("/api/usecases/{a}/restart"), serde_json::json!({}))
        .await;
    assert_eq!(status, 202);
    let (status, _) = app
        .send(
            reqwest::Method::PUT,
            "/api/deployments/auto-update",
            Some(crate::helpers::ADMIN_TOKEN),
            Some(serde_json::json!({"deployment_name": "a", "enabled": true, "strategy": "recreate"})),
        )
        .await;
    assert_eq!(status, 200);
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
        (before.0.len(), before.1.len(), before.2.len()),
        (2, 4, 6),
        "two live usecases, four deployments, six changes (four deploys, a restart, an auto-update)"
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
    assert_eq!(replayed, 14, "every event of the log is replayed");
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
    // Awaited, not blocking: the server under test runs on this runtime, and a
    // projector frozen inside its transaction would hold the locks the rebuild needs
    // (until PostgreSQL ends the idle transaction a minute later).
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(["projections", "rebuild"])
        .env("DATABASE_URL", &app.db.url)
        .output()
        .await
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
