//! Live event streams (SSE): resumption without gap or duplicate, filters,
//! keep-alives, slow subscribers, delivery across processes, browsers (CORS).

use crate::helpers::{TestApp, ADMIN_TOKEN, CORS_ORIGIN};
use crate::sse::{Message, SseStream};
use serde_json::{json, Value};
use shiplog_testkit::eventually_within;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const FROM_THE_START: &str = "00000000000000000000000000000000";

fn bearer() -> (&'static str, String) {
    ("authorization", format!("Bearer {ADMIN_TOKEN}"))
}

async fn open(app: &TestApp, path: &str, last_event_id: Option<&str>) -> SseStream {
    let (name, value) = bearer();
    let mut headers = vec![(name, value.as_str())];
    if let Some(id) = last_event_id {
        headers.push(("last-event-id", id));
    }
    let stream = SseStream::open(&app.url(path), &headers).await;
    assert_eq!(stream.status, 200, "opening {path}");
    stream
}

/// The usecase's events as the history endpoint lists them (all pages), as cursors.
async fn history_cursors(app: &TestApp, usecase: Uuid) -> Vec<String> {
    let pages = app
        .get_pages(&format!("/api/usecases/{usecase}/history?limit=200"))
        .await;
    pages
        .iter()
        .flat_map(|page| page["items"].as_array().cloned().unwrap_or_default())
        .map(|item| item["cursor"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn ids(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.id.clone().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_reconnects_with_last_event_id_gets_exactly_the_missed_events() {
    let app = Arc::new(TestApp::spawn().await);
    let usecase = app.create_usecase("resumable").await;
    let path = format!("/api/usecases/{usecase}/events/stream");

    // First connection: replay from the start, then two live events.
    let mut first = open(&app, &format!("{path}?after={FROM_THE_START}"), None).await;
    let registered = first.take(1).await;
    assert_eq!(registered[0].event.as_deref(), Some("UsecaseRegistered"));
    let deployment = app.deploy(usecase, "v1").await;
    app.mark_deployed(usecase, deployment).await;
    let live = first.take(3).await;
    assert_eq!(
        live.iter()
            .map(|m| m.event.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        [
            "DeploymentRequested",
            "DeploymentStarted",
            "DeploymentSucceeded"
        ]
    );
    let data = live[0].json();
    assert_eq!(data["cursor"], json!(live[0].id.clone()));
    assert_eq!(data["usecaseId"], json!(usecase.to_string()));
    assert_eq!(data["type"], "DeploymentRequested");
    assert_eq!(data["actor"], "admin");
    assert_eq!(data["sequence"], 2);
    assert!(
        data["payload"]["DeploymentRequested"]["deploymentId"].is_string(),
        "{data}"
    );
    let resume_from = live[2].id.clone().unwrap_or_default();
    drop(first);

    // While disconnected, and while reconnecting, events keep being written.
    for tag in ["v2", "v3"] {
        app.deploy(usecase, tag).await;
    }
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (app, writing) = (app.clone(), writing.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while writing.load(Ordering::SeqCst) && n < 20 {
                app.deploy(usecase, &format!("w{n}")).await;
                n += 1;
            }
        })
    };
    let mut second = open(&app, &path, Some(&resume_from)).await;
    let _ = writer.await;
    writing.store(false, Ordering::SeqCst);

    let all = history_cursors(&app, usecase).await;
    let position = all
        .iter()
        .position(|c| *c == resume_from)
        .unwrap_or_else(|| panic!("resume point not in history"));
    let missed = &all[position + 1..];
    let received = second.take(missed.len()).await;
    assert_eq!(
        ids(&received),
        missed,
        "exactly the missed events, in order, no duplicate"
    );
    // Nothing more than that: the next thing on the stream is a keep-alive, not an event.
    let next = second.next_within(Duration::from_secs(5)).await;
    assert!(
        next.as_ref().is_some_and(Message::is_comment),
        "unexpected extra message: {next:?}"
    );
}

#[tokio::test]
async fn the_types_filter_passes_only_the_named_types() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("filtered").await;
    let mut stream = open(
        &app,
        &format!(
            "/api/events/stream?after={FROM_THE_START}&types=DeploymentSucceeded,UsecaseDeleted"
        ),
        None,
    )
    .await;
    let deployment = app.deploy(usecase, "v1").await;
    app.mark_deployed(usecase, deployment).await;
    let got = stream.take(1).await;
    assert_eq!(got[0].event.as_deref(), Some("DeploymentSucceeded"));
    assert_eq!(
        got[0].json()["payload"]["DeploymentSucceeded"]["deploymentId"],
        json!(deployment.to_string())
    );
}

#[tokio::test]
async fn an_idle_stream_gets_keep_alive_comments() {
    let app = TestApp::spawn().await;
    let mut stream = open(&app, "/api/events/stream", None).await;
    assert_eq!(
        stream
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    // A stream that named no cursor first says where it starts (nothing to dispatch).
    let opening = stream.next_within(Duration::from_secs(5)).await;
    assert!(
        opening.as_ref().is_some_and(Message::is_position),
        "expected the opening position, got {opening:?}"
    );
    // Test apps send a keep-alive every 300 ms.
    let message = stream.next_within(Duration::from_secs(5)).await;
    assert!(
        message
            .as_ref()
            .is_some_and(|m| m.is_comment() && m.comments == ["keep-alive"]),
        "expected a keep-alive comment, got {message:?}"
    );
}

#[tokio::test]
async fn a_stream_dropped_before_its_first_event_resumes_from_where_it_started() {
    let app = TestApp::spawn().await;
    let before = app.create_usecase("before-the-stream").await;
    let mut first = open(&app, "/api/events/stream", None).await;
    let opening = first
        .next_within(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("the stream ended"));
    assert!(opening.is_position(), "{opening:?}");
    let start = opening.id.clone().unwrap_or_default();
    // The position is the newest event when the stream opened: the registration before it.
    let history = history_cursors(&app, before).await;
    assert_eq!(history.last(), Some(&start));
    drop(first);

    // Written while no stream is open: a client that had no event yet would lose it
    // without the opening position.
    let during = app.create_usecase("while-disconnected").await;
    let mut second = open(&app, "/api/events/stream", Some(&start)).await;
    let resumed = second.take(1).await;
    assert_eq!(ids(&resumed), history_cursors(&app, during).await[..1]);
    assert_eq!(resumed[0].json()["usecaseId"], during.to_string());
    // A stream resumed from a cursor starts with events, not with a position.
    let next = second.next_within(Duration::from_secs(5)).await;
    assert!(
        next.as_ref().is_some_and(Message::is_comment),
        "unexpected message after the resumed event: {next:?}"
    );
}

#[tokio::test]
async fn streams_refuse_bad_input_with_problems_naming_the_field() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("streamed").await;
    let (name, value) = bearer();
    for (description, path, headers, status, field) in [
        (
            "unknown event type",
            "/api/events/stream?types=Nope".to_owned(),
            vec![],
            422,
            Some("types"),
        ),
        (
            "malformed after",
            "/api/events/stream?after=xyz".to_owned(),
            vec![],
            422,
            Some("after"),
        ),
        (
            "malformed Last-Event-ID",
            "/api/events/stream".to_owned(),
            vec![("last-event-id", "12")],
            422,
            Some("Last-Event-ID"),
        ),
        (
            "unknown usecase",
            format!("/api/usecases/{}/events/stream", Uuid::new_v4()),
            vec![],
            404,
            None,
        ),
        (
            "known usecase, bad type",
            format!("/api/usecases/{usecase}/events/stream?types=X"),
            vec![],
            422,
            Some("types"),
        ),
    ] {
        let mut all = vec![(name, value.as_str())];
        all.extend(headers);
        let response = all
            .iter()
            .fold(reqwest::Client::new().get(app.url(&path)), |r, (k, v)| {
                r.header(*k, *v)
            })
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status().as_u16(), status, "{description}");
        let body: Value = response.json().await.unwrap_or_default();
        assert_eq!(body["field"].as_str(), field, "{description}: {body}");
    }
}

#[tokio::test]
async fn a_browser_event_source_can_authenticate_with_access_token_and_cors() {
    let app = TestApp::spawn().await;
    // EventSource sends no Authorization header: the token goes in the query.
    let url = app.url(&format!("/api/events/stream?access_token={ADMIN_TOKEN}"));
    let mut stream = SseStream::open(&url, &[("origin", CORS_ORIGIN)]).await;
    assert_eq!(stream.status, 200);
    assert_eq!(
        stream
            .headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some(CORS_ORIGIN)
    );
    app.create_usecase("seen-by-a-browser").await;
    assert_eq!(
        stream.take(1).await[0].event.as_deref(),
        Some("UsecaseRegistered")
    );

    let bad = SseStream::open(&app.url("/api/events/stream?access_token=wrong"), &[]).await;
    assert_eq!(bad.status, 401);

    // A reconnecting EventSource sends Last-Event-ID: the preflight allows it.
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, app.url("/api/events/stream"))
        .header("origin", CORS_ORIGIN)
        .header("access-control-request-method", "GET")
        .header(
            "access-control-request-headers",
            "last-event-id, authorization",
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("last-event-id") && allowed.contains("authorization"),
        "{allowed}"
    );

    // Another origin gets no CORS permission.
    let other = reqwest::Client::new()
        .get(app.url("/api/usecases"))
        .bearer_auth(ADMIN_TOKEN)
        .header("origin", "http://elsewhere.example")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

/// Writes `n` events of ~2 KB each straight into the ledger, in one statement.
async fn flood(app: &TestApp, n: i64) {
    let usecase = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'Usecase', $1, s, 'DeploymentStarted', '1.0',
                json_build_object('DeploymentStarted', json_build_object('deploymentId', gen_random_uuid(), 'at', '2026-01-01T00:00:00Z')),
                json_build_object('actor', 'load', 'request_id', repeat('x', 2000))
           FROM generate_series(1, $2) AS s",
    )
    .bind(usecase.to_string())
    .bind(n)
    .execute(&app.db.pool)
    .await
    .unwrap_or_else(|e| panic!("flood: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_too_slow_to_keep_up_is_cut_off_and_resumes_without_a_gap() {
    let app = TestApp::spawn_configured(|s| s.streams.buffer = 16).await;
    let mut slow = open(&app, "/api/events/stream", None).await;
    // The subscriber reads nothing while 3000 events (~6 MB) are written: more than
    // the sockets hold, so the server must either buffer or cut it off.
    let total = 3000;
    flood(&app, total).await;
    // Give the server time to find the socket full. Nothing outside the server can
    // observe that moment, so this is a pause, not a wait for a condition.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut received = Vec::new();
    let mut overflow = None;
    while let Some(message) = slow.next_message().await {
        match message.event.as_deref() {
            Some("overflow") => overflow = Some(message.json()),
            _ => received.push(message.id.clone().unwrap_or_default()),
        }
    }
    let overflow =
        overflow.unwrap_or_else(|| panic!("no overflow message after {} events", received.len()));
    assert!(received.len() < total as usize, "cut off before the end");
    // The cut names the last event delivered (or, when none was, where the stream began).
    let last = overflow["resumeAfter"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if let Some(delivered) = received.last() {
        assert_eq!(&last, delivered, "{overflow}");
    }
    assert!(overflow["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("Last-Event-ID"));

    let mut resumed = open(&app, "/api/events/stream", Some(&last)).await;
    let rest = resumed.take(total as usize - received.len()).await;
    received.extend(ids(&rest));
    let mut sorted = received.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, received, "in order and without duplicates");
    assert_eq!(
        received.len(),
        total as usize,
        "every event, across the cut"
    );
}

/// `shiplog serve` as a separate process on the test's database, API only.
struct OtherProcess(Child, String);

impl Drop for OtherProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_stream_on_one_process_sees_events_written_through_another() {
    let app = TestApp::spawn().await;
    let mut stream = open(&app, "/api/events/stream", None).await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .arg("serve")
        .env("SHIPLOG_PROXY_LISTEN", "127.0.0.1:0")
        .env("DATABASE_URL", &app.db.url)
        .env("SHIPLOG_LISTEN", format!("127.0.0.1:{port}"))
        .env("SHIPLOG_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SHIPLOG_CLUSTER", "none")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn shiplog: {e}"));
    let other = OtherProcess(child, format!("http://127.0.0.1:{port}"));
    let client = reqwest::Client::new();
    let created = eventually_within(
        "the other process comes up and registers",
        Duration::from_secs(30),
        || async {
            let response = client
                .post(format!("{}/api/usecases", other.1))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"name": "written-elsewhere"}))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            assert_eq!(response.status().as_u16(), 201);
            Ok::<_, String>(response.json::<Value>().await.unwrap_or_default())
        },
    )
    .await;
    let seen = stream.take(1).await;
    assert_eq!(seen[0].event.as_deref(), Some("UsecaseRegistered"));
    assert_eq!(seen[0].json()["usecaseId"], created["id"]);
}
