//! The web console's sessions over plain HTTP: logging in with an API token, the
//! cookie's attributes, the API accepting the cookie, CSRF on every change, logout,
//! revocation, and pages sending a browser without a session to `/login`.
//! (`console_browser.rs` drives the same console in a real browser.)

use crate::helpers::{TestApp, ADMIN_TOKEN};
use crate::problem_types::problem_type;
use regex::Regex;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::Response;
use serde_json::{json, Value};
use shiplog_application::oidc::ClaimMapping;
use shiplog_infrastructure::oidc::OidcSettings;
use shiplog_testkit::oidc::now;
use shiplog_testkit::{eventually, SigningKey, TestIdp};

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The `Set-Cookie` header of `name` in `response`, whole.
fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The value of a cookie from its `Set-Cookie` header.
fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

/// The `value` of the hidden input `name` in `html`.
fn hidden(html: &str, name: &str) -> Option<String> {
    let pattern = format!(r#"name="{name}" value="([^"]*)""#);
    Regex::new(&pattern)
        .unwrap_or_else(|e| panic!("{e}"))
        .captures(html)
        .map(|c| c[1].to_owned())
}

fn location(response: &Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A logged-in browser: the session cookie's `Set-Cookie` and the session's CSRF token.
struct Session {
    set_cookie: String,
    cookie: String,
    csrf: String,
}

/// Loads the login form and posts `token` with it; returns the answer.
async fn post_login(app: &TestApp, token: &str, next: &str) -> Response {
    let client = browser();
    let form = client
        .get(app.url(&format!("/login?next={next}")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(form.status().as_u16(), 200);
    let login_cookie = set_cookie(&form, "shiplog_login")
        .unwrap_or_else(|| panic!("the login form sets its CSRF cookie"));
    let html = form.text().await.unwrap_or_default();
    let csrf = hidden(&html, "csrf_token").unwrap_or_else(|| panic!("no csrf field: {html}"));
    let next = hidden(&html, "next").unwrap_or_default();
    client
        .post(app.url("/login"))
        .header(
            COOKIE,
            format!("shiplog_login={}", cookie_value(&login_cookie)),
        )
        .form(&[("token", token), ("next", &next), ("csrf_token", &csrf)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Logs in with `token` and reads the CSRF token off `page` (one its scopes open).
async fn login(app: &TestApp, token: &str, page: &str) -> Session {
    let response = post_login(app, token, page).await;
    assert_eq!(response.status().as_u16(), 303, "login answers See Other");
    assert_eq!(location(&response), page);
    let set_cookie =
        set_cookie(&response, "shiplog_session").unwrap_or_else(|| panic!("no session cookie"));
    let cookie = format!("shiplog_session={}", cookie_value(&set_cookie));
    let response = browser()
        .get(app.url(page))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 200, "{page} with the session");
    let html = response.text().await.unwrap_or_default();
    let csrf = hidden(&html, "csrf_token").unwrap_or_else(|| panic!("no csrf field: {html}"));
    Session {
        set_cookie,
        cookie,
        csrf,
    }
}

/// A token of `name` with `scopes`; returns (id, secret).
async fn token(app: &TestApp, name: &str, scopes: &[&str]) -> (String, String) {
    let (status, body) = app
        .post("/api/tokens", json!({"name": name, "scopes": scopes}))
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap_or_default().to_owned(),
        body["token"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Asserts that the usecase `created` (an answer with its `id`) has history, all of
/// it caused by `actor`.
async fn assert_every_event_is_by(app: &TestApp, created: &Value, actor: &str) {
    let id = created["id"].as_str().unwrap_or_default();
    let (_, history) = app.get(&format!("/api/usecases/{id}/history")).await;
    let actors: Vec<&str> = history["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert!(
        !actors.is_empty() && actors.iter().all(|a| *a == actor),
        "{history}"
    );
}

/// A change sent with the session cookie: (what it is, a header, the form).
type CsrfCase<'a> = (&'a str, Option<(&'a str, &'a str)>, Vec<(&'a str, &'a str)>);

async fn problem(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn a_page_without_a_session_sends_the_browser_to_login_and_back() {
    let app = TestApp::spawn().await;
    for path in ["/deployments", "/deployments/web?at=x", "/ledger", "/audit"] {
        let response = browser()
            .get(app.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status().as_u16(), 303, "{path}");
        let to = location(&response);
        assert!(to.starts_with("/login?next=%2F"), "{path} -> {to}");
    }
    // A stale or made-up cookie is no session either.
    let response = browser()
        .get(app.url("/deployments"))
        .header(COOKIE, "shiplog_session=0123")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 303);
}

#[tokio::test]
async fn logging_in_sets_a_strict_http_only_cookie_the_api_accepts_as_the_token() {
    let app = TestApp::spawn().await;
    let (_, secret) = token(&app, "lead", &["deployments:read", "deployments:write"]).await;
    let session = login(&app, &secret, "/deployments").await;
    let attributes = session.set_cookie.to_ascii_lowercase();
    for attribute in ["httponly", "samesite=strict", "path=/", "max-age=43200"] {
        assert!(
            attributes.contains(attribute),
            "{attribute} in {}",
            session.set_cookie
        );
    }
    assert!(!attributes.contains("secure"), "plain HTTP: no Secure");
    assert!(
        !session.set_cookie.contains(&secret),
        "the cookie is not the token"
    );
    let response = browser()
        .get(app.url("/api/deployments"))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        response.status().as_u16(),
        200,
        "the API reads with the session"
    );
    // Only hashes are stored: the cookie's value is nowhere in the table.
    let stored: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT id_hash FROM console_sessions")
        .fetch_all(&app.db.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored.len(), 1);
    let id = cookie_value(&session.set_cookie);
    assert_ne!(hex::encode(&stored[0].0), id);
}

#[tokio::test]
async fn behind_https_the_cookie_is_secure() {
    let app = TestApp::spawn_configured(|s| {
        s.console.public_url = Some("https://shiplog.example.com".to_owned())
    })
    .await;
    let response = post_login(&app, ADMIN_TOKEN, "/ledger").await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(
        location(&response),
        "/ledger",
        "back where the browser was sent from"
    );
    let cookie = set_cookie(&response, "shiplog_session").unwrap_or_default();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn a_change_with_the_session_cookie_needs_the_csrf_token() {
    let app = TestApp::spawn().await;
    let session = login(&app, ADMIN_TOKEN, "/deployments").await;
    let cases: [CsrfCase; 4] = [
        (
            "a form without csrf_token",
            None,
            vec![("deployment_name", "web")],
        ),
        (
            "a form with another csrf_token",
            None,
            vec![("deployment_name", "web"), ("csrf_token", "0000")],
        ),
        (
            "a wrong X-CSRF-Token header",
            Some(("X-CSRF-Token", "0000")),
            vec![("deployment_name", "web")],
        ),
        (
            "the login form's token instead of the session's",
            None,
            vec![("deployment_name", "web"), ("csrf_token", "")],
        ),
    ];
    for (description, header, form) in cases {
        let mut request = browser()
            .post(app.url("/api/deployments/delete"))
            .header(COOKIE, &session.cookie)
            .form(&form);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let (status, body) = problem(request.send().await.unwrap_or_else(|e| panic!("{e}"))).await;
        assert_eq!(status, 403, "{description}: {body}");
        assert_eq!(
            body["type"],
            problem_type("csrf-token-invalid"),
            "{description}"
        );
        assert_eq!(body["field"], "csrf_token", "{description}");
    }
    // A JSON body from a script needs the header too.
    let response = browser()
        .post(app.url("/api/deployments"))
        .header(COOKIE, &session.cookie)
        .json(&json!({"template": "nginx"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 403, "JSON without X-CSRF-Token");
    // With the token, the change goes through, and the session's principal is its actor.
    let response = browser()
        .post(app.url("/api/deployments"))
        .header(COOKIE, &session.cookie)
        .header("X-CSRF-Token", &session.csrf)
        .json(&json!({"template": "nginx"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 201, "with X-CSRF-Token");
    let created: Value = response.json().await.unwrap_or_default();
    let name = created["name"].as_str().unwrap_or_default().to_owned();
    // The form post with the token: seed 002's delete, back to the console's page.
    let response = browser()
        .post(app.url("/api/deployments/delete"))
        .header(COOKIE, &session.cookie)
        .form(&[
            ("deployment_name", name.as_str()),
            ("csrf_token", &session.csrf),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(location(&response), "/deployments");
    assert_every_event_is_by(&app, &created, "admin").await;
}

#[tokio::test]
async fn logging_out_or_revoking_the_token_ends_the_session() {
    let app = TestApp::spawn().await;
    let (id, secret) = token(&app, "auditor", &["audit:read"]).await;
    let session = login(&app, &secret, "/audit").await;
    // Logout is a change: without the CSRF token it is refused.
    let response = browser()
        .post(app.url("/logout"))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 403);
    let response = browser()
        .post(app.url("/logout"))
        .header(COOKIE, &session.cookie)
        .form(&[("csrf_token", session.csrf.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(location(&response), "/login");
    let cleared = set_cookie(&response, "shiplog_session").unwrap_or_default();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let after = browser()
        .get(app.url("/audit"))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after.status().as_u16(), 303, "the old cookie opens nothing");

    let session = login(&app, &secret, "/audit").await;
    let (status, body) = app.delete(&format!("/api/tokens/{id}")).await;
    assert_eq!(status, 204, "{body}");
    let response = browser()
        .get(app.url("/api/events"))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        response.status().as_u16(),
        401,
        "a revoked token's session is over"
    );
}

#[tokio::test]
async fn a_bad_login_is_refused_and_next_never_leaves_the_site() {
    let app = TestApp::spawn().await;
    let response = post_login(&app, "not-a-token", "/deployments").await;
    assert_eq!(response.status().as_u16(), 401);
    assert!(set_cookie(&response, "shiplog_session").is_none());
    // Without the login form's cookie (a post from another site), no session.
    let response = browser()
        .post(app.url("/login"))
        .form(&[("token", ADMIN_TOKEN), ("csrf_token", "abc")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 403);
    assert!(set_cookie(&response, "shiplog_session").is_none());
    for next in ["https%3A%2F%2Fevil.example%2F", "%2F%2Fevil.example"] {
        let response = post_login(&app, ADMIN_TOKEN, next).await;
        assert_eq!(location(&response), "/deployments", "next={next}");
    }
}

#[tokio::test]
async fn a_session_ends_when_it_expires() {
    let app =
        TestApp::spawn_configured(|s| s.console.session_ttl = std::time::Duration::from_secs(1))
            .await;
    let session = login(&app, ADMIN_TOKEN, "/audit").await;
    assert!(
        session.set_cookie.contains("Max-Age=1"),
        "{}",
        session.set_cookie
    );
    // The browser would drop the cookie itself; shiplog refuses it all the same.
    eventually("the expired session is refused", || async {
        let response = browser()
            .get(app.url("/audit"))
            .header(COOKIE, &session.cookie)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        match response.status().as_u16() {
            303 => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let left: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT id_hash FROM console_sessions")
        .fetch_all(&app.db.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(left.is_empty(), "an expired session is forgotten");
}

#[tokio::test]
async fn an_oidc_token_opens_a_session_that_acts_as_its_subject_and_ends_with_the_token() {
    let key = SigningKey::rsa_a("console");
    let idp = TestIdp::start(&[&key]).await;
    let settings = OidcSettings {
        issuer: idp.issuer.clone(),
        audience: "shiplog".to_owned(),
        jwks_url: None,
        refetch_interval: std::time::Duration::from_secs(30),
        claims: ClaimMapping::default(),
    };
    let app = TestApp::spawn_configured(|s| s.oidc = Some(settings)).await;
    let scopes = "usecases:read usecases:write deployments:read deployments:write";
    let jwt = key.sign(&idp.claims(
        "shiplog",
        "carol@example.com",
        json!({"shiplog_scopes": scopes, "exp": now() + 120}),
    ));
    let session = login(&app, &jwt, "/deployments").await;
    // The session lasts no longer than the JWT it was opened with (12 h otherwise).
    let max_age: u64 = Regex::new(r"Max-Age=(\d+)")
        .ok()
        .and_then(|re| re.captures(&session.set_cookie))
        .and_then(|c| c[1].parse().ok())
        .unwrap_or(u64::MAX);
    assert!(max_age <= 120, "{}", session.set_cookie);
    // It keeps the provider's principal, not the JWT: the table holds no bearer secret.
    let rows: Vec<(Option<Vec<u8>>, Option<Value>)> =
        sqlx::query_as("SELECT token_hash, principal FROM console_sessions")
            .fetch_all(&app.db.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, None);
    assert_eq!(
        rows[0].1.as_ref().map(|p| p["subject"].clone()),
        Some(json!("carol@example.com"))
    );
    // A change through the session is carol's, on her next requests too.
    let response = browser()
        .post(app.url("/api/deployments"))
        .header(COOKIE, &session.cookie)
        .header("X-CSRF-Token", &session.csrf)
        .json(&json!({"template": "nginx"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 201, "with the session of a JWT");
    let created: Value = response.json().await.unwrap_or_default();
    assert_every_event_is_by(&app, &created, "carol@example.com").await;
    // An expired JWT opens no session.
    let expired = key.sign(&idp.claims(
        "shiplog",
        "carol@example.com",
        json!({"shiplog_scopes": scopes, "exp": now() - 120}),
    ));
    let response = post_login(&app, &expired, "/deployments").await;
    assert_ne!(
        response.status().as_u16(),
        303,
        "an expired JWT is no login"
    );
    assert!(set_cookie(&response, "shiplog_session").is_none());
}

#[tokio::test]
async fn a_deployments_page_follows_its_badge_and_its_log_lines_live() {
    let sim = crate::cluster::sim_with(std::time::Duration::from_millis(100), true).await;
    let app = crate::platform::platform_app(&sim, |_| {}).await;
    let (status, created) = app
        .post("/api/deployments", json!({"template": "nginx"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let name = created["name"].as_str().unwrap_or_default().to_owned();
    crate::platform::wait_for(&app, &name, "Ready").await;
    let session = login(&app, ADMIN_TOKEN, "/deployments").await;

    // The page renders the last lines and names its one live stream.
    let page = browser()
        .get(app.url(&format!("/deployments/{name}")))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    assert!(
        page.contains(&format!("sse-connect=\"/console/live/deployments/{name}\"")),
        "{page}"
    );
    assert!(page.contains("id=\"log-lines\""), "{page}");

    let mut stream = crate::sse::SseStream::open(
        &app.url(&format!("/console/live/deployments/{name}")),
        &[("cookie", &session.cookie)],
    )
    .await;
    assert_eq!(stream.status, 200);
    // The badge at once, then the tail after a reset, then new lines (the simulator's
    // pods write a heartbeat every 100 ms), each an escaped HTML line.
    let messages = stream.take(8).await;
    let events: Vec<&str> = messages
        .iter()
        .map(|m| m.event.as_deref().unwrap_or_default())
        .collect();
    let badge = messages
        .iter()
        .find(|m| m.event.as_deref().is_some_and(|e| e.starts_with("status-")))
        .unwrap_or_else(|| panic!("no badge: {events:?}"));
    assert!(badge.data.contains(">Ready</span>"), "{}", badge.data);
    let reset = events.iter().position(|e| *e == "logs-reset");
    let first_line = events.iter().position(|e| *e == "log");
    assert!(
        reset.is_some() && reset < first_line,
        "the reset comes before the lines: {events:?}"
    );
    let lines: Vec<&str> = messages
        .iter()
        .filter(|m| m.event.as_deref() == Some("log"))
        .map(|m| m.data.as_str())
        .collect();
    assert!(lines.len() >= 5, "{events:?}");
    for line in lines {
        assert!(
            line.starts_with("<span class=\"log-line\">") && line.contains(" | kube-sim: "),
            "{line}"
        );
    }

    // A deployment the caller cannot see has no stream.
    let response = browser()
        .get(app.url("/console/live/deployments/no-such-deployment"))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test]
async fn with_require_reason_the_consoles_delete_form_says_why_in_its_reason_field() {
    let app = TestApp::spawn_configured(|s| s.require_reason = true).await;
    let created: Value = app
        .client
        .post(app.url("/api/usecases"))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-shiplog-reason", "a usecase to delete")
        .json(&json!({"name": "said-why"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let usecase = created["id"].as_str().unwrap_or_default().to_owned();
    let session = login(&app, ADMIN_TOKEN, "/deployments").await;
    let confirm = browser()
        .get(app.url("/deployments/said-why/delete"))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    assert!(
        confirm.contains("name=\"reason\"") && confirm.contains("required"),
        "the confirmation asks why: {confirm}"
    );
    let post = |form: String| {
        browser()
            .post(app.url("/api/deployments/delete"))
            .header(COOKIE, &session.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
    };
    let cases = [
        ("no reason field", String::new()),
        ("a blank reason", "&reason=+++".to_owned()),
    ];
    for (description, reason) in cases {
        let response = post(format!(
            "csrf_token={}&deployment_name=said-why{reason}",
            session.csrf
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let (status, problem) = problem(response).await;
        assert_eq!(status, 400, "{description}: {problem}");
        assert_eq!(problem["field"], "reason", "{description}: {problem}");
    }
    let response = post(format!(
        "csrf_token={}&deployment_name=said-why&reason=replaced+by+v2",
        session.csrf
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        response.status().as_u16(),
        303,
        "back to the deployments page"
    );
    let (status, history) = app.get(&format!("/api/usecases/{usecase}/history")).await;
    assert_eq!(status, 200, "{history}");
    let deleted = history["items"]
        .as_array()
        .into_iter()
        .flatten()
        .skip(1)
        .cloned()
        .collect::<Vec<Value>>();
    assert!(!deleted.is_empty(), "the deletion is recorded: {history}");
    for event in deleted {
        assert_eq!(event["metadata"]["reason"], "replaced by v2", "{event}");
    }
    // A JSON client still says why in the header, and is told so.
    let (status, problem) = app
        .post(
            "/api/deployments/delete",
            json!({"deployment_name": "said-why"}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "X-Shiplog-Reason");
}
