//! Every kind of failure names itself: a client tells "name taken" from "nothing
//! deployed" by the problem's `type` URI, not by parsing its sentence.

use crate::helpers::{deploy_body, TestApp, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// The `type` URI of the problem kind `slug`: the URIs are a contract with clients.
pub fn problem_type(slug: &str) -> String {
    format!("https://shiplog.dev/problems/{slug}")
}

/// A token of `subject` with `scopes`; returns its secret.
async fn token(app: &TestApp, subject: &str, scopes: &[&str]) -> String {
    let (status, body) = app
        .post(
            "/api/tokens",
            json!({"name": subject, "scopes": scopes, "subject": subject}),
        )
        .await;
    assert_eq!(status, 201, "token {subject}: {body}");
    body["token"].as_str().unwrap_or_default().to_owned()
}

/// A request that fails: (what it is, method, path, token, body, status, problem slug).
type Case<'a> = (
    &'a str,
    Method,
    String,
    Option<&'a str>,
    Option<Value>,
    u16,
    &'a str,
);

#[tokio::test]
async fn each_kind_of_failure_has_a_problem_type_of_its_own() {
    let app = TestApp::spawn().await;
    let chat = app.create_usecase("chat").await;
    let busy = app.create_usecase("busy").await;
    app.deploy(busy, "1").await;
    let live = app.create_usecase("live").await;
    let deployed = app.deploy(live, "1").await;
    app.mark_deployed(live, deployed).await;
    let leaving = app.create_usecase("leaving").await;
    let deployed = app.deploy(leaving, "1").await;
    app.mark_deployed(leaving, deployed).await;
    let (status, body) = app
        .delete(&format!("/api/usecases/{leaving}/deployments"))
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = app.post("/api/teams", json!({"name": "core"})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post(
            "/api/deployments/deploy-image",
            json!({"image": "nginx", "name": "web"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let reader = token(&app, "reader", &["usecases:read"]).await;
    let bob = token(&app, "bob", &["usecases:read", "usecases:write"]).await;
    let unknown = Uuid::new_v4();

    let admin = Some(ADMIN_TOKEN);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("a missing field", Method::POST, "/api/usecases".into(), admin, Some(json!({"description": "x"})), 422, "invalid-input"),
        ("a platform route's missing field", Method::POST, "/api/deployments/deploy-image".into(), admin, Some(json!({"name": "x"})), 400, "invalid-input"),
        ("a malformed query value", Method::GET, "/api/usecases?limit=abc".into(), admin, None, 400, "invalid-input"),
        ("no token", Method::GET, "/api/usecases".into(), None, None, 401, "unauthorized"),
        ("a token without usecases:write", Method::POST, "/api/usecases".into(), Some(&reader), Some(json!({"name": "x"})), 403, "missing-scope"),
        ("another owner's usecase", Method::GET, format!("/api/usecases/{chat}"), Some(&bob), None, 403, "not-owner"),
        ("an unknown usecase", Method::GET, format!("/api/usecases/{unknown}"), admin, None, 404, "usecase-not-found"),
        ("an unknown deployment", Method::GET, format!("/api/usecases/{chat}/deployments/{unknown}"), admin, None, 404, "deployment-not-found"),
        ("an unknown platform deployment", Method::GET, "/api/deployments/status?name=nothere".into(), admin, None, 404, "deployment-not-found"),
        ("an unknown team", Method::GET, format!("/api/teams/{unknown}"), admin, None, 404, "team-not-found"),
        ("an unknown token", Method::DELETE, format!("/api/tokens/{unknown}"), admin, None, 404, "token-not-found"),
        ("an unknown route", Method::GET, "/api/nothing-here".into(), admin, None, 404, "not-found"),
        ("a malformed id", Method::GET, "/api/usecases/not-an-id".into(), admin, None, 404, "not-found"),
        ("a taken usecase name", Method::POST, "/api/usecases".into(), admin, Some(json!({"name": "chat"})), 409, "name-taken"),
        ("a taken platform deployment name", Method::POST, "/api/deployments/deploy-image".into(), admin, Some(json!({"image": "nginx", "name": "web"})), 409, "name-taken"),
        ("a taken team name", Method::POST, "/api/teams".into(), admin, Some(json!({"name": "core"})), 409, "name-taken"),
        ("a taken token name", Method::POST, "/api/tokens".into(), admin, Some(json!({"name": "reader", "scopes": ["usecases:read"]})), 409, "name-taken"),
        ("an undeploy with nothing deployed", Method::DELETE, format!("/api/usecases/{chat}/deployments"), admin, None, 409, "nothing-deployed"),
        ("a config change with nothing deployed", Method::PUT, format!("/api/usecases/{chat}/config"), admin, Some(json!({"env": {"A": "b"}})), 409, "nothing-deployed"),
        ("the config with nothing deployed", Method::GET, format!("/api/usecases/{chat}/config"), admin, None, 409, "nothing-deployed"),
        ("deleting a usecase with a deployment in flight", Method::DELETE, format!("/api/usecases/{busy}"), admin, None, 409, "usecase-busy"),
        ("a rollback with nothing to roll back to", Method::POST, format!("/api/usecases/{live}/rollback"), admin, Some(json!({})), 409, "invalid-rollback-target"),
        ("a second undeploy", Method::DELETE, format!("/api/usecases/{leaving}/deployments"), admin, None, 409, "operation-in-progress"),
    ];
    for (description, method, path, token, body, status, slug) in cases {
        let (code, problem) = app.send(method, &path, token, body).await;
        assert_eq!(
            (code, problem["type"].as_str()),
            (status, Some(problem_type(slug).as_str())),
            "{description}: {problem}"
        );
    }

    let response = app
        .client
        .post(app.url("/api/usecases"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "text/plain")
        .body(deploy_body("1").to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 415);
    let problem: Value = response.json().await.unwrap_or_default();
    assert_eq!(
        problem["type"],
        problem_type("unsupported-media-type"),
        "{problem}"
    );
}
