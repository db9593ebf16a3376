//! Access as ledger events and stream tickets (issue 18, items 2 and 4): creating,
//! changing and revoking a token are events with their actor and reason, in
//! `/api/events`, the export and the hash chain, and never hold the secret; tokens may
//! expire; a stream ticket opens one stream, once, as the token that asked for it.

use crate::helpers::{TestApp, ADMIN_TOKEN};
use crate::sse::SseStream;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use shiplog_application::auth::hash_secret;
use shiplog_testkit::eventually;
use std::time::Duration;

/// `method path` with `token`, the reason header when given, and `body`.
async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    reason: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
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

/// Creates a token as the admin; answers its id and secret.
async fn create_token(app: &TestApp, body: Value) -> (String, String) {
    let (status, created) = send(
        app,
        reqwest::Method::POST,
        "/api/tokens",
        ADMIN_TOKEN,
        None,
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let secret = created["token"].as_str().unwrap_or_default().to_owned();
    (id, secret)
}

/// The status `GET path` answers with `token`, and its body.
async fn get_as(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    send(app, reqwest::Method::GET, path, token, None, None).await
}

/// The events of `types` once `/api/events` has `n` of them (the ledger shows an
/// event once it is safely in the global order).
async fn events_of(app: &TestApp, types: &str, n: usize) -> Vec<Value> {
    eventually("the events are in the ledger", || async {
        let (status, page) = app.get(&format!("/api/events?types={types}")).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            Ok(items)
        } else {
            Err(page)
        }
    })
    .await
}

/// Polls `/api/audit/verify` until every event is sealed.
async fn sealed_report(app: &TestApp) -> Value {
    eventually("every event is sealed", || async {
        let (status, report) = app.get("/api/audit/verify").await;
        assert_eq!(status, 200, "{report}");
        if report["unsealed"] == 0 {
            Ok(report)
        } else {
            Err(report)
        }
    })
    .await
}

#[tokio::test]
async fn a_tokens_lifecycle_is_in_the_ledger_the_export_and_the_chain_without_its_secret() {
    let app = TestApp::spawn().await;
    let (status, created) = send(
        &app,
        reqwest::Method::POST,
        "/api/tokens",
        ADMIN_TOKEN,
        Some("OPS-7: the release pipeline deploys"),
        Some(
            json!({"name": "release-pipeline", "scopes": ["deployments:write", "usecases:read"],
                    "subject": "release", "expiresIn": 86400}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let secret = created["token"].as_str().unwrap_or_default().to_owned();
    assert_eq!(get_as(&app, "/api/usecases", &secret).await.0, 200);

    let (status, changed) = send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/tokens/{id}"),
        ADMIN_TOKEN,
        Some("OPS-8: read only until the audit ends"),
        Some(json!({"scopes": ["usecases:read"]})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["scopes"], json!(["usecases:read"]), "{changed}");
    // The change holds at once: deploying needs the scope it no longer has.
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        "/api/usecases",
        &secret,
        None,
        Some(json!({"name": "after-the-change"})),
    )
    .await;
    assert_eq!(status, 403, "the narrowed token still writes");

    let (status, body) = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/tokens/{id}"),
        ADMIN_TOKEN,
        Some("OPS-9: the secret leaked into a build log"),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(get_as(&app, "/api/usecases", &secret).await.0, 401);

    let items = events_of(&app, "TokenCreated,TokenScopesChanged,TokenRevoked", 3).await;
    let seen: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default(),
                e["actor"].as_str().unwrap_or_default(),
                e["metadata"]["reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "TokenCreated",
                "admin",
                "OPS-7: the release pipeline deploys"
            ),
            (
                "TokenScopesChanged",
                "admin",
                "OPS-8: read only until the audit ends"
            ),
            (
                "TokenRevoked",
                "admin",
                "OPS-9: the secret leaked into a build log"
            ),
        ],
        "{items:?}"
    );
    for item in &items {
        assert_eq!(item["aggregateType"], "Token", "{item}");
        assert_eq!(item["usecaseId"], id.as_str(), "{item}");
    }
    let token_created = &items[0]["payload"]["TokenCreated"];
    assert_eq!(token_created["tokenId"], id.as_str());
    assert_eq!(token_created["name"], "release-pipeline");
    assert_eq!(token_created["subject"], "release");
    assert_eq!(token_created["teams"], json!([]));
    assert_eq!(
        token_created["scopes"],
        json!(["usecases:read", "deployments:write"])
    );
    assert_eq!(token_created["expiresAt"], created["expiresAt"]);
    assert_eq!(
        items[1]["payload"]["TokenScopesChanged"]["from"],
        json!(["usecases:read", "deployments:write"])
    );
    assert_eq!(
        items[2]["payload"]["TokenRevoked"]["name"],
        "release-pipeline"
    );

    let report = sealed_report(&app).await;
    assert_eq!(report["verified"], true, "{report}");
    let export = app
        .client
        .get(app.url("/api/audit/export"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    let exported: Vec<Value> = export
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|line: &Value| line["aggregateType"] == "Token")
        .collect();
    assert_eq!(exported.len(), 3, "{export}");

    // Neither the secret nor its stored hash is anywhere in the ledger, byte for byte.
    let hash = hex::encode(hash_secret(&secret));
    let random_part = secret.trim_start_matches("shiplog_");
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT payload::text, metadata::text FROM events")
            .fetch_all(&app.db.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    for needle in [secret.as_str(), random_part, hash.as_str()] {
        assert!(!export.contains(needle), "the export holds {needle}");
        for (payload, metadata) in &rows {
            assert!(
                !payload.contains(needle) && !metadata.contains(needle),
                "an event holds {needle}: {payload} {metadata}"
            );
        }
    }
}

#[tokio::test]
async fn a_token_refused_by_the_database_leaves_no_event_and_the_name_is_free_again_once_revoked() {
    let app = TestApp::spawn().await;
    let (id, _) = create_token(&app, json!({"name": "twice", "scopes": ["audit:read"]})).await;
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        "/api/tokens",
        ADMIN_TOKEN,
        None,
        Some(json!({"name": "twice", "scopes": ["audit:read"]})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["field"], "name", "{body}");
    let (status, _) = app.delete(&format!("/api/tokens/{id}")).await;
    assert_eq!(status, 204);
    let (status, body) = app.delete(&format!("/api/tokens/{id}")).await;
    assert_eq!(status, 404, "a revoked token is revoked again: {body}");
    create_token(&app, json!({"name": "twice", "scopes": ["audit:read"]})).await;
    // Two creations and one revocation: the refused creation left no event.
    let events = events_of(&app, "TokenCreated,TokenRevoked", 3).await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, ["TokenCreated", "TokenRevoked", "TokenCreated"]);
}

#[tokio::test]
async fn a_token_stops_working_when_it_expires_and_says_so() {
    let app = TestApp::spawn().await;
    let (id, secret) = create_token(
        &app,
        json!({"name": "short-lived", "scopes": ["usecases:read"], "expiresIn": 2}),
    )
    .await;
    let (_, tokens) = app.get("/api/tokens").await;
    let listed = tokens
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["id"] == id.as_str())
        .cloned()
        .unwrap_or_default();
    let expiry: DateTime<Utc> = serde_json::from_value(listed["expiresAt"].clone())
        .unwrap_or_else(|e| panic!("expiresAt in {listed}: {e}"));
    assert!(expiry > Utc::now(), "{listed}");
    assert_eq!(get_as(&app, "/api/usecases", &secret).await.0, 200);

    let refusal = eventually("the token expires", || async {
        match get_as(&app, "/api/usecases", &secret).await {
            (401, problem) => Ok(problem),
            other => Err(other),
        }
    })
    .await;
    assert_eq!(
        refusal["type"], "https://shiplog.dev/problems/unauthorized",
        "{refusal}"
    );
    assert!(
        refusal["detail"]
            .as_str()
            .is_some_and(|d| d.contains("expired")),
        "{refusal}"
    );
    // An unknown token is told no more than before.
    let (status, unknown) = get_as(&app, "/api/usecases", "shiplog_not-a-token").await;
    assert_eq!(status, 401);
    assert_eq!(unknown["detail"], "missing or invalid bearer token");
}

#[tokio::test]
async fn a_lifetime_is_a_second_to_a_year() {
    let app = TestApp::spawn().await;
    let cases = [
        ("zero seconds", json!({"expiresIn": 0}), "expiresIn"),
        ("over a year", json!({"expiresIn": 31_536_001}), "expiresIn"),
        (
            "an instant instead of a lifetime",
            json!({"expiresAt": "2099-01-01T00:00:00Z"}),
            "expiresAt",
        ),
    ];
    for (description, expiry, field) in cases {
        let mut body = json!({"name": "bounded", "scopes": ["audit:read"]});
        if let (Some(body), Some(expiry)) = (body.as_object_mut(), expiry.as_object()) {
            body.extend(expiry.clone());
        }
        let (status, problem) = app.post("/api/tokens", body).await;
        assert_eq!(status, 422, "{description}: {problem}");
        assert_eq!(problem["field"], field, "{description}: {problem}");
    }
    // A refused creation records nothing: the only token event is the one made after.
    let (_, year) = create_token(
        &app,
        json!({"name": "bounded", "scopes": ["audit:read"], "expiresIn": 31_536_000}),
    )
    .await;
    assert!(!year.is_empty());
    let created = events_of(&app, "TokenCreated", 1).await;
    assert_eq!(created.len(), 1, "{created:?}");
}

/// A stream ticket for `token`.
async fn ticket(app: &TestApp, token: &str) -> (String, DateTime<Utc>) {
    let (status, body) = send(
        app,
        reqwest::Method::POST,
        "/api/stream-tickets",
        token,
        None,
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let expires_at = serde_json::from_value(body["expiresAt"].clone())
        .unwrap_or_else(|e| panic!("expiresAt in {body}: {e}"));
    (
        body["ticket"].as_str().unwrap_or_default().to_owned(),
        expires_at,
    )
}

/// Opens `path` with `?ticket=` and no header, as an `EventSource` does.
async fn open_with_ticket(app: &TestApp, path: &str, ticket: &str) -> SseStream {
    let separator = if path.contains('?') { '&' } else { '?' };
    SseStream::open(&app.url(&format!("{path}{separator}ticket={ticket}")), &[]).await
}

#[tokio::test]
async fn a_stream_ticket_opens_one_stream_once_as_its_token_and_nothing_else() {
    let app = TestApp::spawn().await;
    let (ticket_value, expires_at) = ticket(&app, ADMIN_TOKEN).await;
    let lifetime = expires_at - Utc::now();
    assert!(
        lifetime > chrono::Duration::seconds(50) && lifetime <= chrono::Duration::seconds(61),
        "a default ticket lives a minute: {expires_at}"
    );
    let mut stream = open_with_ticket(&app, "/api/events/stream", &ticket_value).await;
    assert_eq!(stream.status, 200);
    app.create_usecase("followed-with-a-ticket").await;
    assert_eq!(
        stream.take(1).await[0].event.as_deref(),
        Some("UsecaseRegistered")
    );

    let again = open_with_ticket(&app, "/api/events/stream", &ticket_value).await;
    assert_eq!(again.status, 401, "a ticket opened a second stream");

    // A ticket is not a bearer token, nor a query token of other routes.
    let (other, _) = ticket(&app, ADMIN_TOKEN).await;
    assert_eq!(get_as(&app, "/api/usecases", &other).await.0, 401);
    assert_eq!(
        get_as(&app, "/api/events/stream", &other).await.0,
        401,
        "a ticket as a bearer header opened a stream"
    );
    let response = app
        .client
        .get(app.url(&format!("/api/usecases?ticket={other}")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 401);
    // Those refusals did not use it up: it still opens its one stream.
    let stream = open_with_ticket(&app, "/api/events/stream", &other).await;
    assert_eq!(stream.status, 200);

    // The stream runs with the scopes of the token that asked: a reader of usecases
    // follows its own usecase, not the whole ledger.
    let (_, reader) = create_token(
        &app,
        json!({"name": "dashboard", "scopes": ["usecases:read", "usecases:write"]}),
    )
    .await;
    let (status, mine) = send(
        &app,
        reqwest::Method::POST,
        "/api/usecases",
        &reader,
        None,
        Some(json!({"name": "the-dashboards-own"})),
    )
    .await;
    assert_eq!(status, 201, "{mine}");
    let mine = mine["id"].as_str().unwrap_or_default();
    let (t, _) = ticket(&app, &reader).await;
    assert_eq!(
        open_with_ticket(&app, "/api/events/stream", &t)
            .await
            .status,
        403
    );
    let (t, _) = ticket(&app, &reader).await;
    let path = format!("/api/usecases/{mine}/events/stream?after=00000000000000000000000000000000");
    let mut own = open_with_ticket(&app, &path, &t).await;
    assert_eq!(own.status, 200);
    assert_eq!(
        own.take(1).await[0].event.as_deref(),
        Some("UsecaseRegistered")
    );
}

#[tokio::test]
async fn a_ticket_of_a_revoked_token_opens_nothing() {
    let app = TestApp::spawn().await;
    let (id, secret) =
        create_token(&app, json!({"name": "soon-gone", "scopes": ["audit:read"]})).await;
    let (unused, _) = ticket(&app, &secret).await;
    let (status, _) = app.delete(&format!("/api/tokens/{id}")).await;
    assert_eq!(status, 204);
    let refused = open_with_ticket(&app, "/api/events/stream", &unused).await;
    assert_eq!(refused.status, 401);
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        "/api/stream-tickets",
        &secret,
        None,
        None,
    )
    .await;
    assert_eq!(status, 401, "a revoked token got a ticket");
}

#[tokio::test]
async fn an_unused_ticket_expires() {
    let app = TestApp::spawn_configured(|settings| {
        settings.streams.ticket_ttl = Duration::from_secs(1);
    })
    .await;
    let (unused, expires_at) = ticket(&app, ADMIN_TOKEN).await;
    eventually("the ticket's expiry passes", || async {
        let now = Utc::now();
        if now > expires_at {
            Ok(())
        } else {
            Err(now)
        }
    })
    .await;
    let refused = open_with_ticket(&app, "/api/events/stream", &unused).await;
    assert_eq!(refused.status, 401);
}

#[tokio::test]
async fn a_ticket_from_one_replica_opens_a_stream_on_another_once() {
    let app = TestApp::spawn().await;
    let replica = app.replica().await;
    let (issued_here, _) = ticket(&app, ADMIN_TOKEN).await;
    let stream = open_with_ticket(&replica, "/api/events/stream", &issued_here).await;
    assert_eq!(stream.status, 200);
    let again = open_with_ticket(&app, "/api/events/stream", &issued_here).await;
    assert_eq!(again.status, 401, "the ticket worked once on each replica");
}
