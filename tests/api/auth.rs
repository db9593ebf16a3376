//! Bearer tokens: every /api route needs one, scopes are enforced, secrets are stored hashed.

use crate::helpers::{TestApp, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

/// Operations that answer without a bearer token by design, each with the reason. Every
/// other operation of the OpenAPI document must declare `security` and refuse a caller
/// without a valid token; none of these is under `/api`.
const PUBLIC_BY_DESIGN: &[(&str, &str, &str)] = &[
    (
        "get",
        "/healthz",
        "liveness probe: the kubelet calls it without a token",
    ),
    (
        "get",
        "/readyz",
        "readiness probe: the kubelet calls it without a token",
    ),
    (
        "get",
        "/metrics",
        "Prometheus scrapes it without a token; it shows counts and timings, never ledger data",
    ),
];

/// The HTTP methods an OpenAPI path item may hold operations under.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// A syntactically valid value for a parameter of `schema`: what a well-behaved client
/// would send, so that only the missing or wrong token can explain a refusal.
fn valid_value(schema: &Value, ids: &Value, name: &str) -> String {
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first
            .as_str()
            .map_or_else(|| first.to_string(), str::to_owned);
    }
    match (schema["type"].as_str(), schema["format"].as_str()) {
        (_, Some("uuid")) => ids[name]
            .as_str()
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned),
        (_, Some("date-time")) => "2024-01-01T00:00:00Z".to_owned(),
        (Some("integer" | "number"), _) => {
            schema["minimum"].as_i64().unwrap_or(1).max(1).to_string()
        }
        (Some("boolean"), _) => "false".to_owned(),
        _ => ids[name].as_str().unwrap_or(GUARDED).to_owned(),
    }
}

/// The name of the platform deployment the walk aims at: a valid DNS label and usecase name.
const GUARDED: &str = "guarded";

#[tokio::test]
async fn every_documented_api_route_refuses_a_missing_or_wrong_token() {
    let app = TestApp::spawn().await;
    let (status, created) = app
        .post(
            "/api/deployments/deploy-image",
            json!({"image": "nginx:1.27", "name": GUARDED}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    // Path values that name things which exist, so a route that skipped authentication
    // for an existing resource would show it.
    let ids =
        json!({"id": created["id"], "deploymentId": created["deploymentId"], "name": GUARDED});
    let spec = serde_json::to_value(shiplog_api::docs::spec()).unwrap_or_default();
    let paths = spec["paths"].as_object().cloned().unwrap_or_default();

    let mut public = Vec::new();
    let mut walked = 0;
    for (template, item) in &paths {
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            let operation = &item[*method];
            if operation.get("security").is_none() {
                public.push((method.to_string(), template.clone()));
                continue;
            }
            assert!(
                template.starts_with("/api/"),
                "{method} {template} needs a token but lies outside /api"
            );
            let parameters: Vec<&Value> = item["parameters"]
                .as_array()
                .into_iter()
                .chain(operation["parameters"].as_array())
                .flatten()
                .collect();
            let mut path = template.clone();
            let mut query = Vec::new();
            let mut takes_query_token = false;
            for parameter in parameters {
                let name = parameter["name"].as_str().unwrap_or_default();
                let value = valid_value(&parameter["schema"], &ids, name);
                match parameter["in"].as_str() {
                    Some("path") => path = path.replace(&format!("{{{name}}}"), &value),
                    Some("query") if name == "access_token" => takes_query_token = true,
                    Some("query") if parameter["required"] == true => {
                        query.push(format!("{name}={value}"))
                    }
                    _ => {}
                }
            }
            assert!(
                !path.contains('{'),
                "{method} {template}: a path parameter is not documented"
            );
            let url = if query.is_empty() {
                path.clone()
            } else {
                format!("{path}?{}", query.join("&"))
            };
            let method: Method = method
                .to_uppercase()
                .parse()
                .unwrap_or_else(|e| panic!("{e}"));
            let body = operation.get("requestBody").map(|_| json!({}));
            let mut attempts = vec![
                ("no token", None, url.clone()),
                ("an unknown token", Some("Bearer not-a-token"), url.clone()),
                ("an empty token", Some("Bearer "), url.clone()),
                (
                    "the admin token as Basic credentials",
                    Some("Basic dGVzdC1hZG1pbi10b2tlbi0wMTIzNDU2Nzg5"),
                    url.clone(),
                ),
            ];
            if takes_query_token {
                let separator = if url.contains('?') { '&' } else { '?' };
                attempts.push((
                    "an unknown access_token",
                    None,
                    format!("{url}{separator}access_token=not-a-token"),
                ));
            }
            for (description, authorization, url) in attempts {
                let mut request = app.client.request(method.clone(), app.url(&url));
                if let Some(authorization) = authorization {
                    request = request.header("authorization", authorization);
                }
                if let Some(body) = &body {
                    request = request.json(body);
                }
                let response = request
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{url}: {e}"));
                let status = response.status().as_u16();
                let content_type = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let problem: Value = response.json().await.unwrap_or_default();
                assert_eq!(
                    (status, content_type.as_str(), &problem["status"]),
                    (401, "application/problem+json", &json!(401)),
                    "{method} {template} ({url}) with {description}: {problem}"
                );
            }
            walked += 1;
        }
    }
    let mut expected: Vec<(String, String)> = PUBLIC_BY_DESIGN
        .iter()
        .map(|(method, path, _why)| (method.to_string(), path.to_string()))
        .collect();
    expected.sort();
    public.sort();
    assert_eq!(
        public, expected,
        "operations without a token requirement must be public by design, with a reason in PUBLIC_BY_DESIGN"
    );
    assert!(
        walked >= 40,
        "the document looked too small: {walked} operations"
    );
    // Nothing was changed by the refused requests.
    let (status, body) = app
        .get(&format!("/api/deployments/status?name={GUARDED}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, tokens) = app.get("/api/tokens").await;
    assert_eq!(
        tokens,
        json!([]),
        "no token was created by a refused request"
    );
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
