//! Bearer tokens: every /api route needs one, scopes are enforced, secrets are stored hashed.

use crate::helpers::{TestApp, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn no_api_route_answers_without_a_valid_token() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("guarded").await;
    let spec = shiplog_api::docs::spec();
    let spec = serde_json::to_value(&spec).unwrap_or_default();
    let paths = spec["paths"].as_object().cloned().unwrap_or_default();
    let mut checked = 0;
    for (template, operations) in &paths {
        if !template.starts_with("/api") {
            continue;
        }
        let path = template
            .replace("{id}", &usecase.to_string())
            .replace("{deploymentId}", &uuid::Uuid::new_v4().to_string());
        for method in operations
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let method: Method = method
                .to_uppercase()
                .parse()
                .unwrap_or_else(|e| panic!("{e}"));
            for (description, token) in [
                ("no token", None),
                ("an unknown token", Some("not-a-token")),
                ("an empty token", Some("")),
            ] {
                let (status, body) = app
                    .send(method.clone(), &path, token, Some(json!({})))
                    .await;
                assert_eq!(
                    status, 401,
                    "{method} {template} with {description} answered {status}: {body}"
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "the route table looked too small: {checked} operations"
    );
    // Nothing was changed by the refused requests.
    let (status, _) = app.get(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_401_says_how_to_authenticate() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/api/usecases"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
}

async fn create_token(app: &TestApp, name: &str, scopes: &[&str]) -> (String, String) {
    create_token_for(app, name, scopes, name).await
}

/// A token named `name` that speaks for `subject` (several tokens may share one).
async fn create_token_for(
    app: &TestApp,
    name: &str,
    scopes: &[&str],
    subject: &str,
) -> (String, String) {
    let (status, body) = app
        .post(
            "/api/tokens",
            json!({"name": name, "scopes": scopes, "subject": subject}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap_or_default().to_owned(),
        body["token"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn scopes_decide_what_a_token_may_do_and_its_name_is_the_actor() {
    let app = TestApp::spawn().await;
    // Two tokens of one subject: they share what it owns; each is its own actor.
    let (_, reader) = create_token_for(
        &app,
        "dashboard",
        &["usecases:read", "deployments:read"],
        "platform",
    )
    .await;
    let (_, ci) = create_token_for(
        &app,
        "ci-pipeline",
        &["usecases:write", "usecases:read", "deployments:write"],
        "platform",
    )
    .await;

    let (status, body) = app
        .send(
            Method::POST,
            "/api/usecases",
            Some(&reader),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, 403, "read-only token registering: {body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("usecases:write")),
        "{body}"
    );

    let (status, created) = app
        .send(
            Method::POST,
            "/api/usecases",
            Some(&ci),
            Some(json!({"name": "by-ci"})),
        )
        .await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap_or_default();
    let (status, accepted) = app
        .send(
            Method::POST,
            &format!("/api/usecases/{id}/deployments"),
            Some(&ci),
            Some(crate::helpers::deploy_body("1")),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = app
        .send(
            Method::GET,
            &format!("/api/usecases/{id}/deployments"),
            Some(&ci),
            None,
        )
        .await;
    assert_eq!(status, 403, "ci token lacks deployments:read");
    let (status, d) = app
        .send(
            Method::GET,
            &format!(
                "/api/usecases/{id}/deployments/{}",
                accepted["id"].as_str().unwrap_or_default()
            ),
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        d["requestedBy"], "ci-pipeline",
        "the token's principal is the actor: {d}"
    );
    let (status, _) = app.send(Method::GET, "/api/tokens", Some(&ci), None).await;
    assert_eq!(status, 403, "token management needs admin");
}

#[tokio::test]
async fn tokens_are_listed_without_secrets_stored_hashed_and_revocable() {
    let app = TestApp::spawn().await;
    let (id, secret) = create_token(&app, "temp", &["usecases:read"]).await;
    assert!(
        secret.starts_with("shiplog_") && secret.len() > 40,
        "{secret}"
    );

    let (status, list) = app.get("/api/tokens").await;
    assert_eq!(status, 200);
    assert!(
        !list.to_string().contains(&secret),
        "a listing must never show a secret"
    );
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["scopes"], json!(["usecases:read"]));

    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_tokens WHERE position($1::bytea in token_hash) > 0 OR name = $2",
    )
    .bind(secret.as_bytes())
    .bind(&secret)
    .fetch_one(&app.db.pool)
    .await
    .unwrap_or(-1);
    assert_eq!(stored, 0, "the secret itself must not be in the database");

    let (status, _) = app
        .send(Method::GET, "/api/usecases", Some(&secret), None)
        .await;
    assert_eq!(status, 200);
    let (status, dup) = app
        .post("/api/tokens", json!({"name": "temp", "scopes": ["admin"]}))
        .await;
    assert_eq!(status, 409, "{dup}");
    let (status, _) = app.delete(&format!("/api/tokens/{id}")).await;
    assert_eq!(status, 204);
    let (status, _) = app
        .send(Method::GET, "/api/usecases", Some(&secret), None)
        .await;
    assert_eq!(status, 401, "a revoked token stops working");
    let (status, _) = app.delete(&format!("/api/tokens/{id}")).await;
    assert_eq!(status, 404, "revoking twice");
}

#[tokio::test]
async fn token_requests_are_validated() {
    let app = TestApp::spawn().await;
    for (description, body, field) in [
        (
            "unknown scope",
            json!({"name": "t", "scopes": ["usecases:read", "root"]}),
            "scopes[1]",
        ),
        ("no scope", json!({"name": "t", "scopes": []}), "scopes"),
        (
            "empty name",
            json!({"name": "", "scopes": ["admin"]}),
            "name",
        ),
    ] {
        let (status, problem): (u16, Value) = app.post("/api/tokens", body).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (422, Some(field)),
            "{description}: {problem}"
        );
    }
    let (status, _) = app
        .send(Method::GET, "/api/tokens", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(status, 200);
}
