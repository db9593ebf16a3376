//! The applications proxy: it reaches the deployed deployment (then the new one,
//! then none), checks tokens, answers preflights, streams both ways, and does not
//! hold up shutdown.

use super::{deploy, deployed, sim, through_proxy};
use crate::cluster::app_on;
use crate::helpers::CORS_ORIGIN;
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[tokio::test]
async fn the_proxy_reaches_the_deployed_deployment_then_the_new_one_and_502_once_undeployed() {
    let sim = sim(true).await;
    let app = app_on(&sim).await;
    let (usecase, d1) = deployed(&app, "echo", "1.0.0", json!({})).await;

    // The PhariaOS example: POST /{usecaseId}/execute with a JSON body.
    let response = through_proxy(
        &app,
        reqwest::Method::POST,
        &format!("/{usecase}/execute?lang=en"),
    )
    .header("content-type", "application/json")
    .header("origin", CORS_ORIGIN)
    .body(r#"{"question": "what is your favorite color?"}"#)
    .send()
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    // Exactly one set of CORS headers: the proxy's, not the application's `*`.
    let origins: Vec<_> = response
        .headers()
        .get_all("access-control-allow-origin")
        .iter()
        .collect();
    assert_eq!(origins, [CORS_ORIGIN], "{:?}", response.headers());
    assert!(response
        .headers()
        .get("access-control-allow-headers")
        .is_none());
    let echo: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(echo["labels"]["shiplog.io/deployment"], d1.to_string());
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/execute");
    assert_eq!(echo["query"], "lang=en");
    assert_eq!(
        echo["body"],
        r#"{"question": "what is your favorite color?"}"#
    );
    assert_eq!(echo["headers"]["x-forwarded-prefix"], format!("/{usecase}"));
    let proxy_host = app.proxy_base.trim_start_matches("http://");
    assert_eq!(echo["headers"]["x-forwarded-host"], proxy_host);
    assert!(
        echo["headers"]["x-forwarded-for"]
            .as_str()
            .is_some_and(|f| f.starts_with("127.0.0.1")),
        "{echo}"
    );
    assert!(
        echo["headers"].get("authorization").is_none(),
        "shiplog's token must not reach the application: {echo}"
    );

    // A second deploy: once it reads `deployed`, the proxy already reaches it.
    let d2 = deploy(&app, usecase, "2.0.0", json!({})).await;
    let response = through_proxy(&app, reqwest::Method::GET, &format!("/{usecase}/whoami"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(echo["labels"]["shiplog.io/deployment"], d2.to_string());

    // The application's own error statuses pass through unchanged.
    let teapot = through_proxy(
        &app,
        reqwest::Method::GET,
        &format!("/{usecase}/status/418"),
    )
    .send()
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(teapot.status(), 418);

    let (status, _) = app
        .delete(&format!("/api/usecases/{usecase}/deployments"))
        .await;
    assert_eq!(status, 202);
    app.wait_for_status(usecase, d2, "undeployed").await;
    let gone = through_proxy(&app, reqwest::Method::GET, &format!("/{usecase}/whoami"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gone.status(), 502);
    assert_eq!(gone.headers()["content-type"], "application/problem+json");
    let problem: Value = gone.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(problem["status"], 502);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no deployed application")),
        "{problem}"
    );

    // Proxied requests are counted in shiplog's metrics, as one route.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    for line in [
        r#"shiplog_http_requests_total{method="POST",route="proxy /{usecaseId}/{path}",status="200"} 1"#,
        r#"shiplog_http_requests_total{method="GET",route="proxy /{usecaseId}/{path}",status="418"} 1"#,
        r#"shiplog_http_requests_total{method="GET",route="proxy /{usecaseId}/{path}",status="502"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line} in:\n{metrics}"
        );
    }
    // Both deployments were started, the Service routed, and undeploy took one down.
    let actions = |action: &str| -> u64 {
        let prefix = format!(r#"shiplog_process_manager_actions_total{{action="{action}"}} "#);
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in:\n{metrics}"))
    };
    assert!(actions("start") >= 2, "{metrics}");
    // The Service was routed at least once; whether the second deployment's routing is a
    // step of its own or folded into the reconcile the undeploy brings depends on timing
    // (the proxy reaching the second deployment above is what a user sees).
    assert!(actions("route") >= 1, "{metrics}");
    assert!(actions("undeploy") >= 1, "{metrics}");
}

#[tokio::test]
async fn the_proxy_checks_tokens_answers_preflights_itself_and_resolves_only_usecases() {
    let sim = sim(true).await;
    let app = app_on(&sim).await;
    let (usecase, _) = deployed(&app, "echo", "1.0.0", json!({})).await;
    let url = format!("{}/{usecase}/execute", app.proxy_base);

    // A browser's preflight carries no token and gets exactly one set of CORS headers.
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", CORS_ORIGIN)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let h = preflight.headers();
    assert_eq!(h.get_all("access-control-allow-origin").iter().count(), 1);
    assert_eq!(h["access-control-allow-origin"], CORS_ORIGIN);
    assert_eq!(h["access-control-allow-methods"], "POST");
    assert_eq!(
        h["access-control-allow-headers"],
        "authorization,content-type"
    );

    let anonymous = app
        .client
        .post(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(anonymous.status(), 401);

    // A token without usecases:read is refused.
    let (_, token) = app
        .post(
            "/api/tokens",
            json!({"name": "auditor", "scopes": ["audit:read"]}),
        )
        .await;
    let secret = token["token"].as_str().unwrap_or_default().to_owned();
    let forbidden = app
        .client
        .post(&url)
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(forbidden.status(), 403);

    for path in [
        format!("/{}/x", Uuid::new_v4()),
        "/not-a-usecase/x".to_owned(),
        "/".to_owned(),
    ] {
        let response = through_proxy(&app, reqwest::Method::GET, &path)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status(), 502, "{path}");
    }
}

#[tokio::test]
async fn the_proxy_streams_responses_and_large_request_bodies() {
    let sim = sim(true).await;
    let app = app_on(&sim).await;
    let (usecase, _) = deployed(&app, "echo", "1.0.0", json!({})).await;

    // Three lines, 300 ms apart: the first arrives long before the last.
    let response = through_proxy(
        &app,
        reqwest::Method::GET,
        &format!("/{usecase}/stream?chunks=3&intervalMs=300"),
    )
    .send()
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let first = body
        .next()
        .await
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no first chunk"));
    let first_at = Instant::now();
    assert!(
        String::from_utf8_lossy(&first).starts_with("chunk 0"),
        "{first:?}"
    );
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("{e}")));
    }
    assert!(
        first_at.elapsed() >= Duration::from_millis(400),
        "the response was buffered: the rest came {:?} after the first line",
        first_at.elapsed()
    );
    assert_eq!(String::from_utf8_lossy(&rest).lines().count(), 2);

    // A 3 MiB upload, sent as a stream of 64 KiB chunks.
    let chunks = (0..48).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 64 * 1024]));
    let response = through_proxy(&app, reqwest::Method::PUT, &format!("/{usecase}/upload"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(echo["bodyBytes"], 48 * 64 * 1024);
}

#[tokio::test]
async fn a_stream_open_through_the_proxy_does_not_hold_up_shutdown() {
    let sim = sim(true).await;
    let mut app = app_on(&sim).await;
    let (usecase, _) = deployed(&app, "endless", "1.0.0", json!({})).await;
    let response = through_proxy(
        &app,
        reqwest::Method::GET,
        &format!("/{usecase}/stream?chunks=1000&intervalMs=100"),
    )
    .send()
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut body = response.bytes_stream();
    assert!(
        body.next().await.is_some_and(|c| c.is_ok()),
        "the stream started"
    );
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .unwrap_or_else(|_| panic!("shutdown waited for the proxied stream"));
    // The client sees the stream end instead of hanging.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = body.next().await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the proxied stream was not closed at shutdown"
    );
}
