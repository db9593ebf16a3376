//! Operating deployed usecases against Postgres and the Kubernetes simulator: the
//! applications proxy, restart, config, rollback, logs, Kubernetes events and usage.

use crate::cluster::{app_on, sim_with};
use crate::helpers::{uuid, TestApp, ADMIN_TOKEN, CORS_ORIGIN, NAMESPACE};
use crate::sse::SseStream;
use futures::StreamExt;
use kube_sim::KubeSim;
use serde_json::{json, Value};
use shiplog_testkit::{eventually, eventually_within};
use std::time::{Duration, Instant};
use uuid::Uuid;

async fn sim(metrics_api: bool) -> KubeSim {
    sim_with(Duration::from_millis(100), metrics_api).await
}

/// Registers a usecase and deploys `tag` with `env`, waiting until it is deployed.
async fn deployed(app: &TestApp, name: &str, tag: &str, env: Value) -> (Uuid, Uuid) {
    let usecase = app.create_usecase(name).await;
    let d = deploy(app, usecase, tag, env).await;
    (usecase, d)
}

async fn deploy(app: &TestApp, usecase: Uuid, tag: &str, env: Value) -> Uuid {
    let body = json!({"config": {
        "image": {"registry": "registry.example.com", "repository": "team/app", "tag": tag},
        "env": env,
    }});
    let (status, accepted) = app
        .post(&format!("/api/usecases/{usecase}/deployments"), body)
        .await;
    assert_eq!(status, 202, "{accepted}");
    let d = uuid(&accepted["id"]);
    app.wait_for_status(usecase, d, "deployed").await;
    d
}

/// A request through the applications proxy with the admin token.
fn through_proxy(app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, format!("{}{path}", app.proxy_base))
        .bearer_auth(ADMIN_TOKEN)
}

/// Waits until the usecase's ledger holds an event of `event_type`; returns its payload.
async fn event_of(app: &TestApp, usecase: Uuid, event_type: &str) -> Value {
    let path = format!("/api/usecases/{usecase}/history?limit=200");
    eventually_within(
        &format!("a {event_type} event of usecase {usecase}"),
        Duration::from_secs(15),
        || async {
            let pages = app.get_pages(&path).await;
            let found = pages
                .iter()
                .flat_map(|p| p["items"].as_array().cloned().unwrap_or_default())
                .find(|e| e["type"] == event_type);
            found.ok_or_else(|| event_types(&pages))
        },
    )
    .await
}

fn event_types(pages: &[Value]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p["items"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["type"].as_str().map(str::to_owned))
        .collect()
}

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
    // Both deployments were started, their Service routed, and undeploy took one down.
    let actions = |action: &str| -> u64 {
        let prefix = format!(r#"shiplog_process_manager_actions_total{{action="{action}"}} "#);
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in:\n{metrics}"))
    };
    assert!(actions("start") >= 2, "{metrics}");
    assert!(actions("route") >= 2, "{metrics}");
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
async fn a_restart_rolls_fresh_pods_and_records_its_outcome() {
    let sim = sim(true).await;
    let app = app_on(&sim).await;
    let (usecase, d1) = deployed(&app, "restartable", "1.0.0", json!({})).await;
    let pods_before: Vec<String> = pod_names(&sim, d1);
    assert!(!pods_before.is_empty());

    let (status, accepted) = app
        .post(&format!("/api/usecases/{usecase}/restart"), json!({}))
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["deploymentId"], d1.to_string());
    let restart_id = accepted["restartId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let done = event_of(&app, usecase, "RestartSucceeded").await;
    assert_eq!(done["payload"]["RestartSucceeded"]["restartId"], restart_id);
    assert_eq!(done["actor"], "process-manager");
    let requested = event_of(&app, usecase, "RestartRequested").await;
    assert_eq!(requested["actor"], "admin");
    assert_eq!(
        requested["payload"]["RestartRequested"]["deploymentId"],
        d1.to_string()
    );

    // Fresh pods, stamped with the restart; the deployment is still the deployed one.
    let pods_after = pod_names(&sim, d1);
    assert!(!pods_after.is_empty());
    assert!(
        pods_after.iter().all(|p| !pods_before.contains(p)),
        "{pods_before:?} {pods_after:?}"
    );
    let k8s = sim
        .objects("deployments", Some(NAMESPACE))
        .into_iter()
        .find(|o| o["metadata"]["name"] == format!("sl-{}", d1.simple()))
        .unwrap_or_default();
    assert_eq!(
        k8s["spec"]["template"]["metadata"]["annotations"]["shiplog.io/restart"],
        restart_id
    );
    let view = app.wait_for_status(usecase, d1, "deployed").await;
    assert_eq!(view["status"], "deployed");

    // A second restart is accepted once the first finished; nothing deployed is a 409.
    let (status, _) = app
        .post(&format!("/api/usecases/{usecase}/restart"), json!({}))
        .await;
    assert_eq!(status, 202);
    let (status, _) = app
        .post(
            &format!("/api/usecases/{}/restart", Uuid::new_v4()),
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "an unknown usecase");
    let other = app.create_usecase("idle").await;
    let (status, problem) = app
        .post(&format!("/api/usecases/{other}/restart"), json!({}))
        .await;
    assert_eq!(status, 409, "{problem}");
}

fn pod_names(sim: &KubeSim, deployment: Uuid) -> Vec<String> {
    let mut names: Vec<String> = sim
        .objects("pods", Some(NAMESPACE))
        .iter()
        .filter(|p| p["metadata"]["labels"]["shiplog.io/deployment"] == deployment.to_string())
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Sends requests through the proxy one after another until `done` finishes; every one must
/// answer 200. Returns what `done` gave and the echo of every answer.
async fn answering_until<T>(
    app: &TestApp,
    usecase: Uuid,
    what: &str,
    done: impl std::future::Future<Output = T>,
) -> (T, Vec<Value>) {
    let mut done = std::pin::pin!(done);
    let mut echoes: Vec<Value> = Vec::new();
    loop {
        let request = async {
            let response = through_proxy(app, reqwest::Method::GET, &format!("/{usecase}/during"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{what}: request {}: {e}", echoes.len() + 1));
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            (status, body)
        };
        tokio::select! {
            biased;
            out = &mut done => return (out, echoes),
            (status, body) = request => {
                assert_eq!(
                    status,
                    200,
                    "{what}: request {} after {} answered: {body}",
                    echoes.len() + 1,
                    echoes.len()
                );
                let echo = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
                echoes.push(echo);
            }
        }
    }
}

/// The pod an echo answer came from.
fn pod_of(echo: &Value) -> String {
    echo["pod"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_restart_keeps_the_application_answering_through_the_proxy() {
    // New pods take a second to become ready: long enough that requests surely overlap
    // each rollout, however slow the machine is.
    let sim = sim_with(Duration::from_secs(1), true).await;
    let app = app_on(&sim).await;
    let (usecase, d1) = deployed(&app, "steady", "1.0.0", json!({})).await;
    let old_pods = pod_names(&sim, d1);

    // A restart rolls the pods while requests keep coming: the old pod serves until the
    // new one is Ready.
    let (status, accepted) = app
        .post(&format!("/api/usecases/{usecase}/restart"), json!({}))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let (_, during) = answering_until(
        &app,
        usecase,
        "restart",
        event_of(&app, usecase, "RestartSucceeded"),
    )
    .await;
    assert!(
        during.len() >= 3,
        "only {} requests during the restart",
        during.len()
    );
    assert!(
        during
            .iter()
            .all(|e| e["labels"]["shiplog.io/deployment"] == d1.to_string()),
        "{during:?}"
    );
    assert!(
        old_pods.contains(&pod_of(&during[0])),
        "the first request did not reach the old pod {old_pods:?}: {}",
        during[0]
    );
    let response = through_proxy(&app, reqwest::Method::GET, &format!("/{usecase}/after"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let after: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    let new_pods = pod_names(&sim, d1);
    assert!(
        new_pods.contains(&pod_of(&after)) && !old_pods.contains(&pod_of(&after)),
        "{} answered; old {old_pods:?}, new {new_pods:?}",
        pod_of(&after)
    );

    // A new tag: requests keep answering while the Service moves to the new deployment and
    // the old one is removed.
    let body = json!({"config": {
        "image": {"registry": "registry.example.com", "repository": "team/app", "tag": "2.0.0"},
    }});
    let (status, accepted) = app
        .post(&format!("/api/usecases/{usecase}/deployments"), body)
        .await;
    assert_eq!(status, 202, "{accepted}");
    let d2 = uuid(&accepted["id"]);
    let handover = async {
        app.wait_for_status(usecase, d2, "deployed").await;
        let old_name = format!("sl-{}", d1.simple());
        eventually(&format!("{old_name} and its pods are removed"), || async {
            let deployment_left = sim
                .objects("deployments", Some(NAMESPACE))
                .iter()
                .any(|d| d["metadata"]["name"] == old_name);
            let pods_left = pod_names(&sim, d1);
            if deployment_left || !pods_left.is_empty() {
                Err((deployment_left, pods_left))
            } else {
                Ok(())
            }
        })
        .await;
    };
    let ((), during) = answering_until(&app, usecase, "new tag", handover).await;
    assert!(
        during.len() >= 3,
        "only {} requests during the new deploy",
        during.len()
    );
    let from = |d: Uuid| {
        during
            .iter()
            .filter(|e| e["labels"]["shiplog.io/deployment"] == d.to_string())
            .count()
    };
    assert!(
        from(d1) > 0 && from(d1) + from(d2) == during.len(),
        "{} from the old deployment, {} from the new, of {}",
        from(d1),
        from(d2),
        during.len()
    );
    let response = through_proxy(&app, reqwest::Method::GET, &format!("/{usecase}/after"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let after: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after["labels"]["shiplog.io/deployment"], d2.to_string());
    assert!(
        pod_names(&sim, d2).contains(&pod_of(&after)),
        "{} is not a pod of {d2}",
        pod_of(&after)
    );
}

#[tokio::test]
async fn a_config_change_rolls_out_a_new_deployment_and_a_rollback_restores_the_earlier_one() {
    let sim = sim(true).await;
    let app = app_on(&sim).await;
    let (usecase, d1) = deployed(&app, "configurable", "1.0.0", json!({"MODE": "prod"})).await;

    let (status, config) = app.get(&format!("/api/usecases/{usecase}/config")).await;
    assert_eq!(status, 200);
    assert_eq!(
        config,
        json!({"deploymentId": d1.to_string(), "env": {"MODE": "prod"}})
    );

    let (status, problem) = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/usecases/{usecase}/config"),
            Some(ADMIN_TOKEN),
            Some(json!({"env": {"1BAD": "x"}})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "env.1BAD");

    let (status, accepted) = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/usecases/{usecase}/config"),
            Some(ADMIN_TOKEN),
            Some(json!({"env": {"MODE": "debug", "LOG": "trace"}})),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["basedOn"], d1.to_string());
    let d2 = uuid(&accepted["id"]);
    let view = app.wait_for_status(usecase, d2, "deployed").await;
    assert_eq!(view["config"]["image"]["tag"], "1.0.0", "same image");
    app.wait_for_status(usecase, d1, "superseded").await;
    let (_, config) = app.get(&format!("/api/usecases/{usecase}/config")).await;
    assert_eq!(config["deploymentId"], d2.to_string());
    assert_eq!(config["env"], json!({"LOG": "trace", "MODE": "debug"}));
    assert_eq!(
        crate::cluster::secret_values(&sim, &format!("sl-{}", d2.simple())),
        [
            ("app.LOG".to_owned(), "trace".to_owned()),
            ("app.MODE".to_owned(), "debug".to_owned())
        ]
        .into(),
        "the new environment is in the new deployment's Secret"
    );
    let change = event_of(&app, usecase, "ConfigChangeRequested").await;
    assert_eq!(
        change["payload"]["ConfigChangeRequested"]["basedOn"],
        d1.to_string()
    );
    assert_eq!(
        change["payload"]["ConfigChangeRequested"]["deploymentId"],
        d2.to_string()
    );

    // Roll back (empty body): the deployment before the current, d1, comes back as d3.
    let response = app
        .client
        .post(app.url(&format!("/api/usecases/{usecase}/rollback")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(accepted["rollbackOf"], d1.to_string());
    let d3 = uuid(&accepted["id"]);
    app.wait_for_status(usecase, d3, "deployed").await;
    let (_, config) = app.get(&format!("/api/usecases/{usecase}/config")).await;
    assert_eq!(config["env"], json!({"MODE": "prod"}));
    let rollback = event_of(&app, usecase, "RollbackRequested").await;
    assert_eq!(
        rollback["payload"]["RollbackRequested"]["rollbackOf"],
        d1.to_string()
    );
    assert_eq!(
        rollback["payload"]["RollbackRequested"]["deploymentId"],
        d3.to_string()
    );

    // Naming a target: back to d2's config.
    let (status, accepted) = app
        .post(
            &format!("/api/usecases/{usecase}/rollback"),
            json!({"deploymentId": d2.to_string()}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["rollbackOf"], d2.to_string());
    app.wait_for_status(usecase, uuid(&accepted["id"]), "deployed")
        .await;

    let pages = app
        .get_pages(&format!("/api/usecases/{usecase}/history?limit=200"))
        .await;
    let types = event_types(&pages);
    let requested_then = |t: &str| {
        types
            .windows(2)
            .any(|w| w[0] == "DeploymentRequested" && w[1] == t)
    };
    assert!(requested_then("ConfigChangeRequested"), "{types:?}");
    assert!(requested_then("RollbackRequested"), "{types:?}");

    // The serving deployment is no rollback target; an unknown one is a 404.
    let (status, _) = app
        .post(
            &format!("/api/usecases/{usecase}/rollback"),
            json!({"deploymentId": accepted["id"]}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = app
        .post(
            &format!("/api/usecases/{usecase}/rollback"),
            json!({"deploymentId": Uuid::new_v4().to_string()}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, problem) = app
        .post(
            &format!("/api/usecases/{usecase}/rollback"),
            json!({"deployment": "x"}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "deployment");
}

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
async fn kubernetes_events_and_usage_come_from_the_cluster() {
    let sim = sim(true).await;
    let app = app_on(&sim).await;
    let (usecase, d1) = deployed(&app, "observed", "1.0.0", json!({})).await;

    let (status, events) = app
        .get(&format!("/api/usecases/{usecase}/kube-events"))
        .await;
    assert_eq!(status, 200, "{events}");
    let items = events["items"].as_array().cloned().unwrap_or_default();
    let has = |kind: &str, reason: &str| {
        items
            .iter()
            .any(|e| e["objectKind"] == kind && e["reason"] == reason)
    };
    assert!(has("Deployment", "ScalingReplicaSet"), "{events}");
    assert!(has("Pod", "Pulled") && has("Pod", "Started"), "{events}");
    assert!(items.iter().all(|e| e["objectName"]
        .as_str()
        .is_some_and(|n| n.starts_with(&format!("sl-{}", d1.simple())))));

    let (status, usage) = app.get(&format!("/api/usecases/{usecase}/metrics")).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["deploymentId"], d1.to_string());
    let pods = usage["pods"].as_array().cloned().unwrap_or_default();
    assert_eq!(pods.len(), 1, "{usage}");
    assert!(
        pods[0]["cpuCores"].as_f64().is_some_and(|c| c > 0.0),
        "{usage}"
    );
    assert!(
        pods[0]["memoryBytes"]
            .as_u64()
            .is_some_and(|m| m >= 8 * 1024 * 1024),
        "{usage}"
    );
    assert_eq!(usage["memoryBytes"], pods[0]["memoryBytes"]);
}

#[tokio::test]
async fn a_cluster_without_metrics_or_no_cluster_at_all_is_a_clear_503() {
    let sim = sim(false).await;
    let app = app_on(&sim).await;
    let (usecase, _) = deployed(&app, "unmetered", "1.0.0", json!({})).await;
    let response = app
        .client
        .get(app.url(&format!("/api/usecases/{usecase}/metrics")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let problem: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("metrics.k8s.io")),
        "{problem}"
    );

    // --cluster none: the ledger commands work, the cluster reads say why they cannot.
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("offline").await;
    // The ledger side needs no cluster: nothing deployed is a conflict, not an outage.
    let (status, problem) = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/usecases/{usecase}/config"),
            Some(ADMIN_TOKEN),
            Some(json!({"env": {}})),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    let (status, _) = app.get(&format!("/api/usecases/{usecase}/config")).await;
    assert_eq!(status, 404);
    let (status, problem) = app
        .get(&format!("/api/usecases/{usecase}/kube-events"))
        .await;
    assert_eq!(status, 503, "{problem}");
    assert!(problem["detail"]
        .as_str()
        .is_some_and(|d| d.contains("--cluster none")));
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
