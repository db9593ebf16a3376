//! A reason on every change (issue 18, item 5): `X-Shiplog-Reason` is recorded in the
//! metadata of the events a change causes and shown in both histories; a shiplog run
//! with `--require-reason` refuses changes without one, and reads stay free.

use crate::helpers::{TestApp, ADMIN_TOKEN};
use serde_json::{json, Value};

/// `method path` with the admin token, `body`, and the reason header when given.
async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    reason: Option<&str>,
) -> (u16, Value) {
    let mut request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(reason) = reason {
        request = request.header("X-Shiplog-Reason", reason);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn a_reason_is_recorded_with_the_change_and_shown_in_both_histories() {
    let app = TestApp::spawn().await;
    let (status, created) = send(
        &app,
        reqwest::Method::POST,
        "/api/deployments/deploy-image",
        Some(json!({"image": "registry.example.com/team/app:1.0", "name": "reasoned"})),
        Some("INC-42: roll out the fix"),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (_, history) = app.get("/api/deployments/reasoned/history").await;
    assert_eq!(
        history["revisions"][0]["reason"], "INC-42: roll out the fix",
        "{history}"
    );
    let id = created["id"].as_str().unwrap_or_default();
    let (_, events) = app.get(&format!("/api/usecases/{id}/history")).await;
    for item in events["items"].as_array().into_iter().flatten() {
        assert_eq!(
            item["metadata"]["reason"], "INC-42: roll out the fix",
            "{item}"
        );
    }

    // A change without a reason records none; a reason that is no text is refused.
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        "/api/usecases",
        Some(json!({"name": "unreasoned"})),
        None,
    )
    .await;
    assert_eq!(status, 201);
    let (_, events) = app.get("/api/events?limit=200").await;
    let count = events["items"].as_array().map_or(0, Vec::len);
    let too_long = "x".repeat(1001);
    let (status, problem) = send(
        &app,
        reqwest::Method::POST,
        "/api/usecases",
        Some(json!({"name": "refused"})),
        Some(&too_long),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "X-Shiplog-Reason", "{problem}");
    let (_, events) = app.get("/api/events?limit=200").await;
    assert_eq!(
        events["items"].as_array().map_or(0, Vec::len),
        count,
        "nothing written"
    );
}

#[tokio::test]
async fn with_require_reason_a_change_without_one_is_refused_and_reads_are_not() {
    let app = TestApp::spawn_configured(|s| s.require_reason = true).await;
    let (status, problem) = send(
        &app,
        reqwest::Method::POST,
        "/api/usecases",
        Some(json!({"name": "why-not"})),
        None,
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "X-Shiplog-Reason", "{problem}");
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        "/api/usecases",
        Some(json!({"name": "why-not"})),
        Some("   "),
    )
    .await;
    assert_eq!(status, 400, "a blank reason is none");
    let (status, created) = send(
        &app,
        reqwest::Method::POST,
        "/api/usecases",
        Some(json!({"name": "why-not"})),
        Some("a new service for the Q4 launch"),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, _) = app.get("/api/usecases").await;
    assert_eq!(status, 200, "reads need no reason");
}
