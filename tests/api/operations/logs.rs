//! Logs: the tail and a follow of the simulator's lines, as NDJSON and as SSE,
//! and a follow that picks up the pods a restart rolls.

use super::{deployed, pod_names, sim};
use crate::cluster::{app_on, kube_config};
use crate::helpers::{TestApp, TestDb, ADMIN_TOKEN};
use crate::sse::SseStream;
use futures::StreamExt;
use serde_json::{json, Value};
use shiplog_testkit::eventually;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn logs_tail_and_follow_return_the_simulators_lines() {
    let sim = sim(true).await;
    let app = app_on(&sim).await;
    let (usecase, d1) = deployed(&app, "chatty", "1.0.0", json!({})).await;

    // Heartbeats come every 100 ms; wait until there are a few.
    let path = format!("/api/usecases/{usecase}/logs?tail=3");
    let logs = eventually("3 lines of logs", || async {
        let (status, logs) = app.get(&path).await;
        assert_eq!(status, 200, "{logs}");
        if logs["lines"].as_array().is_some_and(|l| l.len() == 3) {
            Ok(logs)
        } else {
            Err(logs)
        }
    })
    .await;
    assert_eq!(logs["deploymentId"], d1.to_string());
    let pods = pod_names(&sim, d1);
    for line in logs["lines"].as_array().cloned().unwrap_or_default() {
        assert!(pods.contains(&line["pod"].as_str().unwrap_or_default().to_owned()));
        assert!(
            line["line"]
                .as_str()
                .is_some_and(|l| l.starts_with("kube-sim: ")),
            "{line}"
        );
    }

    // follow=true: NDJSON that keeps coming.
    let response = app
        .client
        .get(app.url(&format!("/api/usecases/{usecase}/logs?tail=1&follow=true")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while text.lines().count() < 4 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .unwrap_or_else(|_| panic!("no new log line within 10 s: {text}"))
            .unwrap_or_else(|| panic!("the stream ended: {text}"))
            .unwrap_or_else(|e| panic!("{e}"));
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let numbers: Vec<u64> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .filter_map(|v| {
            v["line"]
                .as_str()
                .and_then(|l| l.strip_prefix("kube-sim: heartbeat "))
                .and_then(|n| n.parse().ok())
        })
        .collect();
    assert!(numbers.len() >= 4, "{text}");
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "new lines follow in order: {numbers:?}"
    );

    // The SSE variant, with the token as a query parameter, as a browser would.
    let mut stream = SseStream::open(
        &app.url(&format!(
            "/api/usecases/{usecase}/logs/stream?tail=2&access_token={ADMIN_TOKEN}"
        )),
        &[],
    )
    .await;
    assert_eq!(stream.status, 200);
    let messages = stream.take(3).await;
    assert_eq!(messages.len(), 3);
    for m in &messages {
        assert_eq!(m.event.as_deref(), Some("log"));
        assert!(m.json()["line"]
            .as_str()
            .is_some_and(|l| l.starts_with("kube-sim: heartbeat")));
    }

    let (status, problem) = app
        .get(&format!("/api/usecases/{usecase}/logs?tail=20000"))
        .await;
    assert_eq!(status, 422);
    assert_eq!(problem["field"], "tail");
}

#[tokio::test]
async fn following_logs_picks_up_the_pods_a_restart_rolls() {
    let sim = sim(true).await;
    let app = app_on(&sim).await;
    let (usecase, d1) = deployed(&app, "restarted-while-followed", "1.0.0", json!({})).await;
    let before = pod_names(&sim, d1);
    let response = app
        .client
        .get(app.url(&format!("/api/usecases/{usecase}/logs?tail=1&follow=true")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let (status, _) = app
        .post(&format!("/api/usecases/{usecase}/restart"), json!({}))
        .await;
    assert_eq!(status, 202);
    // The same response goes on with the lines of a pod the restart created.
    let mut text = String::new();
    let new_pod_line = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(15), body.next())
            .await
            .unwrap_or_else(|_| panic!("no line of a new pod within 15 s: {text}"))
            .unwrap_or_else(|| panic!("the stream ended: {text}"))
            .unwrap_or_else(|e| panic!("{e}"));
        text.push_str(&String::from_utf8_lossy(&chunk));
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                v["pod"]
                    .as_str()
                    .is_some_and(|p| !before.iter().any(|b| b == p))
            });
        if let Some(line) = found {
            break line;
        }
    };
    assert!(
        new_pod_line["line"]
            .as_str()
            .is_some_and(|l| l.starts_with("kube-sim: ")),
        "{new_pod_line}"
    );
}

#[tokio::test]
async fn a_followed_log_holds_one_of_its_tokens_stream_slots_until_it_closes() {
    let sim = sim(true).await;
    let app = TestApp::spawn_with_cluster_configured(
        Arc::new(TestDb::create().await),
        kube_config(&sim),
        |settings| settings.limits.max_streams_per_token = 1,
    )
    .await;
    let (usecase, _) = deployed(&app, "followed-once", "1.0.0", json!({})).await;
    let mut log = app
        .client
        .get(app.url(&format!("/api/usecases/{usecase}/logs?tail=1&follow=true")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(log.status(), 200);
    assert!(log.chunk().await.is_ok_and(|c| c.is_some()), "a line came");

    let (status, problem) = app.get("/api/events/stream").await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (429, Some("https://shiplog.dev/problems/too-many-streams")),
        "the token's one slot is the log's: {problem}"
    );

    drop(log);
    eventually("the closed log frees its slot", || async {
        let response = app
            .client
            .get(app.url("/api/events/stream"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        match response.status().as_u16() {
            200 => Ok(()),
            other => Err(other),
        }
    })
    .await;
}
