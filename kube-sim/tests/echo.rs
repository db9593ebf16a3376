//! The echo apps behind Deployments and the services/pods proxy in front of them, used as
//! shiplog uses them: the cluster side through kube-rs, the traffic over plain HTTP (reqwest)
//! and through `kube::Client::send`.

// A test's unwrap is its assertion (clippy.toml allows it only inside #[test] functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{rolled_out, start, within};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use kube::Client;
use kube_sim::KubeSim;
use serde_json::{json, Value};
use shiplog_testkit::eventually_within;

const NS: &str = "shop";

/// A Deployment as shiplog applies it: selected by `shiplog.io/deployment=<id>`.
fn app(name: &str, id: &str, image: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": { "shiplog.io/deployment": id } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "shiplog.io/deployment": id } },
            "template": {
                "metadata": { "labels": { "shiplog.io/deployment": id, "app": name } },
                "spec": { "containers": [{
                    "name": "app",
                    "image": image,
                    "ports": [{ "name": "http", "containerPort": 8080 }]
                }] }
            }
        }
    }))
    .expect("deployment manifest")
}

/// A Service in front of the pods of shiplog deployment `id`, with one port named `http`.
fn service(name: &str, id: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name },
        "spec": {
            "selector": { "shiplog.io/deployment": id },
            "ports": [{ "name": "http", "port": 80, "targetPort": "http" }]
        }
    }))
    .expect("service manifest")
}

async fn apply_deployment(client: &Client, dep: &Deployment) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let name = dep.metadata.name.clone().expect("named");
    api.patch(
        &name,
        &PatchParams::apply("shiplog").force(),
        &Patch::Apply(dep),
    )
    .await
    .unwrap_or_else(|e| panic!("applying deployment {name}: {e}"))
}

async fn apply_service(client: &Client, svc: &Service) {
    let api: Api<Service> = Api::namespaced(client.clone(), NS);
    let name = svc.metadata.name.clone().expect("named");
    api.patch(
        &name,
        &PatchParams::apply("shiplog").force(),
        &Patch::Apply(svc),
    )
    .await
    .unwrap_or_else(|e| panic!("applying service {name}: {e}"));
}

async fn wait_rolled_out(client: &Client, name: &str) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    within(
        5,
        &format!("rollout of {name}"),
        await_condition(api, name, |d: Option<&Deployment>| rolled_out(d)),
    )
    .await
    .unwrap_or_else(|e| panic!("watching {name}: {e}"))
    .unwrap_or_else(|| panic!("{name} was deleted"))
}

async fn pod_names(client: &Client, id: &str) -> BTreeSet<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    pods.list(&ListParams::default().labels(&format!("shiplog.io/deployment={id}")))
        .await
        .unwrap_or_else(|e| panic!("listing pods: {e}"))
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect()
}

fn proxy_url(sim: &KubeSim, svc: &str, rest: &str) -> String {
    format!(
        "{}/api/v1/namespaces/{NS}/services/{svc}/proxy{rest}",
        sim.url()
    )
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client")
}

/// Sends a request and returns status, headers and the body as JSON.
async fn call(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = req.send().await.unwrap_or_else(|e| panic!("request: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_else(|e| panic!("body: {e}"));
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

/// A sim with one rolled-out Deployment `web` (shiplog id `d1`, two replicas) behind `web-svc`.
async fn shop() -> (KubeSim, Client) {
    let (sim, client) = start().await;
    apply_deployment(
        &client,
        &app("web", "d1", "registry.example.com/web:1.0", 2),
    )
    .await;
    apply_service(&client, &service("web-svc", "d1")).await;
    wait_rolled_out(&client, "web").await;
    (sim, client)
}

#[tokio::test]
async fn the_service_proxy_forwards_to_the_deployments_echo_app() {
    let (sim, client) = shop().await;
    let pods = pod_names(&client, "d1").await;

    let (status, headers, body) = call(
        http()
            .post(proxy_url(&sim, "web-svc:http", "/hello?x=1"))
            .header("x-custom", "yes")
            .body("hi there"),
    )
    .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deployment"], "web");
    assert_eq!(body["namespace"], NS);
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], "/hello");
    assert_eq!(body["query"], "x=1");
    assert_eq!(body["body"], "hi there");
    assert_eq!(body["bodyBytes"], 8);
    assert_eq!(body["headers"]["x-custom"], "yes");
    assert_eq!(
        body["labels"],
        json!({ "shiplog.io/deployment": "d1", "app": "web" })
    );
    let pod = body["pod"].as_str().expect("pod named").to_string();
    assert!(pods.contains(&pod), "{pod} is not one of {pods:?}");
    // The sim passes the app's own CORS headers through, as kube-apiserver does.
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(headers["access-control-allow-headers"], "*");
    assert_eq!(headers["content-type"], "application/json");

    // The request was logged by the pod it was routed to.
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let logs = pod_api
        .logs(&pod, &LogParams::default())
        .await
        .unwrap_or_else(|e| panic!("logs: {e}"));
    assert!(logs.contains("echo: POST /hello -> 200"), "{logs}");

    // Round robin: a few requests reach both pods.
    let mut seen = BTreeSet::new();
    for _ in 0..4 {
        let (_, _, body) = call(http().get(proxy_url(&sim, "web-svc:http", "/"))).await;
        seen.insert(body["pod"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(seen, pods);
}

#[tokio::test]
async fn every_method_status_and_id_form_is_proxied() {
    let (sim, _client) = shop().await;
    let cases = [
        ("GET", "web-svc:http", "", 200, "/"),
        ("PUT", "web-svc:http", "/a/b", 200, "/a/b"),
        ("PATCH", "web-svc:80", "/p", 200, "/p"),
        ("DELETE", "http:web-svc:http", "/d", 200, "/d"),
        ("OPTIONS", "web-svc:http", "/o", 200, "/o"),
        ("GET", "web-svc%3Ahttp", "/encoded", 200, "/encoded"),
        ("POST", "web-svc:http", "/status/418", 418, "/status/418"),
        ("GET", "web-svc:http", "/status/503", 503, "/status/503"),
    ];
    for (method, id, rest, want_status, want_path) in cases {
        let what = format!("{method} {id}{rest}");
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let (status, headers, body) =
            call(http().request(method.clone(), proxy_url(&sim, id, rest))).await;
        assert_eq!(status, want_status, "{what}: {body}");
        assert_eq!(body["method"], method.as_str(), "{what}");
        assert_eq!(body["path"], want_path, "{what}");
        assert_eq!(headers["access-control-allow-origin"], "*", "{what}");
    }
    let head = http()
        .head(proxy_url(&sim, "web-svc:http", "/h"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("HEAD: {e}"));
    assert_eq!(head.status(), 200);
}

#[tokio::test]
async fn bodies_stream_both_ways_through_the_proxy() {
    let (sim, _client) = shop().await;

    // Response: the first line arrives long before the last is written.
    let started = Instant::now();
    let mut resp = http()
        .get(proxy_url(
            &sim,
            "web-svc:http",
            "/stream?chunks=5&intervalMs=200",
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("stream: {e}"));
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/plain")));
    let mut text = String::new();
    let mut first_at = None;
    while let Some(chunk) = resp.chunk().await.unwrap_or_else(|e| panic!("chunk: {e}")) {
        first_at.get_or_insert_with(|| started.elapsed());
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let last_at = started.elapsed();
    let first_at = first_at.expect("a first chunk");
    assert_eq!(
        text,
        (0..5)
            .map(|i| format!("chunk {i} from web\n"))
            .collect::<String>()
    );
    assert!(
        last_at >= Duration::from_millis(800) && first_at + Duration::from_millis(500) < last_at,
        "first line after {first_at:?}, last after {last_at:?}"
    );

    // Request: a streamed upload of 9 MiB is counted, and too big to be echoed back. (The
    // API server's own routes refuse bodies over 8 MiB: the proxy does not buffer.)
    let chunks =
        futures::stream::iter((0..9).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 1024 * 1024])));
    let (status, _, body) = call(
        http()
            .post(proxy_url(&sim, "web-svc:http", "/upload"))
            .body(reqwest::Body::wrap_stream(chunks)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bodyBytes"], 9 * 1024 * 1024);
    assert_eq!(body["body"], Value::Null);
}

#[tokio::test]
async fn proxy_failures_answer_like_kube_apiserver() {
    let (sim, client) = shop().await;
    apply_deployment(
        &client,
        &app("bad", "d2", "registry.example.com/web:1.0-broken", 1),
    )
    .await;
    apply_service(&client, &service("bad-svc", "d2")).await;

    let cases = [
        (
            "a missing Service",
            "nope:http",
            404,
            "NotFound",
            r#"services "nope" not found"#,
        ),
        (
            "a Service whose only pod never gets Ready",
            "bad-svc:http",
            503,
            "ServiceUnavailable",
            r#"no endpoints available for service "bad-svc""#,
        ),
        (
            "a port number the Service does not have",
            "web-svc:81",
            503,
            "ServiceUnavailable",
            r#"no service port 81 found for service "web-svc""#,
        ),
        (
            "a port name the Service does not have",
            "web-svc:metrics",
            503,
            "ServiceUnavailable",
            r#"no endpoints available for service "web-svc:metrics""#,
        ),
        (
            "no port name for a Service whose port is named",
            "web-svc",
            503,
            "ServiceUnavailable",
            r#"no endpoints available for service "web-svc""#,
        ),
        (
            "https to an app that speaks http",
            "https:web-svc:http",
            503,
            "ServiceUnavailable",
            "error trying to reach service",
        ),
    ];
    for (what, id, code, reason, message) in cases {
        let (status, _, body) = call(http().get(proxy_url(&sim, id, "/x"))).await;
        assert_eq!(status, code, "{what}: {body}");
        assert_eq!(body["kind"], "Status", "{what}");
        assert_eq!(body["reason"], reason, "{what}");
        assert_eq!(body["code"], code, "{what}");
        let got = body["message"].as_str().unwrap_or_default();
        assert!(got.contains(message), "{what}: {got}");
    }
}

#[tokio::test]
async fn the_pod_proxy_reaches_one_pod() {
    let (sim, client) = shop().await;
    for pod in pod_names(&client, "d1").await {
        let url = format!(
            "{}/api/v1/namespaces/{NS}/pods/{pod}:8080/proxy/one",
            sim.url()
        );
        let (status, _, body) = call(http().get(url)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["pod"], pod.as_str());
        assert_eq!(body["path"], "/one");
    }
    let missing = format!("{}/api/v1/namespaces/{NS}/pods/nope/proxy/", sim.url());
    let (status, _, body) = call(http().get(missing)).await;
    assert_eq!((status, &body["reason"]), (404, &json!("NotFound")));
}

/// Waits until nothing listens on `addr` any more.
async fn wait_refused(addr: SocketAddr) {
    eventually_within(
        &format!("{addr} refuses connections"),
        Duration::from_secs(5),
        || async {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(_) => Err("it still accepts them"),
                Err(_) => Ok(()),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn the_selector_picks_the_app_and_deleting_a_deployment_stops_its_app() {
    let (sim, client) = shop().await;
    apply_deployment(
        &client,
        &app("web2", "d2", "registry.example.com/web:2.0", 1),
    )
    .await;
    wait_rolled_out(&client, "web2").await;
    let url = proxy_url(&sim, "web-svc:http", "/which");
    let (_, _, body) = call(http().get(&url)).await;
    assert_eq!(body["deployment"], "web");

    apply_service(&client, &service("web-svc", "d2")).await;
    let (_, _, body) = call(http().get(&url)).await;
    assert_eq!(body["deployment"], "web2");
    assert_eq!(body["labels"]["shiplog.io/deployment"], "d2");

    // The app listens on its own port too, until its Deployment is deleted.
    let addr = sim.echo_addr(NS, "web2").expect("web2 has an echo app");
    let (status, _, body) = call(http().get(format!("http://{addr}/direct"))).await;
    assert_eq!((status, &body["deployment"]), (200, &json!("web2")));
    assert_eq!(body["pod"], Value::Null, "no proxy, no pod header");
    Api::<Deployment>::namespaced(client.clone(), NS)
        .delete("web2", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    assert_eq!(sim.echo_addr(NS, "web2"), None);
    within(5, "web2's app to stop", wait_refused(addr)).await;
    let (status, _, body) = call(http().get(&url)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["message"],
        r#"no endpoints available for service "web-svc""#
    );

    // The other app is untouched.
    apply_service(&client, &service("web-svc", "d1")).await;
    let (status, _, body) = call(http().get(&url)).await;
    assert_eq!((status, &body["deployment"]), (200, &json!("web")));
}

#[tokio::test]
async fn kube_client_send_reaches_the_proxy() {
    let (_sim, client) = shop().await;
    let path = format!("/api/v1/namespaces/{NS}/services/web-svc:http/proxy/via-kube?y=2");
    let req = axum::http::Request::post(&path)
        .header("content-type", "text/plain")
        .body(kube::client::Body::from(b"from kube".to_vec()))
        .expect("request");
    let resp = client
        .send(req)
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let bytes = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), 1 << 20)
        .await
        .unwrap_or_else(|e| panic!("body: {e}"));
    let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("json: {e}"));
    assert_eq!(
        (&body["path"], &body["query"], &body["body"]),
        (&json!("/via-kube"), &json!("y=2"), &json!("from kube"))
    );

    // The response body of `send` streams: read it frame by frame.
    let req = axum::http::Request::get(format!(
        "/api/v1/namespaces/{NS}/services/web-svc:http/proxy/stream?chunks=3&intervalMs=300"
    ))
    .body(kube::client::Body::empty())
    .expect("request");
    let started = Instant::now();
    let resp = client
        .send(req)
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    let mut frames = axum::body::Body::new(resp.into_body()).into_data_stream();
    let first = frames
        .next()
        .await
        .expect("a first frame")
        .unwrap_or_else(|e| panic!("frame: {e}"));
    let first_at = started.elapsed();
    assert_eq!(&first[..], b"chunk 0 from web\n");
    let mut rest = Vec::new();
    while let Some(frame) = frames.next().await {
        rest.extend_from_slice(&frame.unwrap_or_else(|e| panic!("frame: {e}")));
    }
    assert_eq!(rest, b"chunk 1 from web\nchunk 2 from web\n");
    assert!(
        first_at + Duration::from_millis(400) < started.elapsed(),
        "first frame after {first_at:?}"
    );
}

#[tokio::test]
async fn a_restart_by_apply_replaces_the_pods_and_the_app_keeps_answering() {
    let (sim, client) = shop().await;
    let before = pod_names(&client, "d1").await;

    let mut restarted = app("web", "d1", "registry.example.com/web:1.0", 2);
    let restart_id = uuid::Uuid::new_v4().to_string();
    let template_meta = restarted
        .spec
        .as_mut()
        .and_then(|s| s.template.metadata.as_mut())
        .expect("template metadata");
    template_meta.annotations =
        Some([("shiplog.io/restart".to_string(), restart_id.clone())].into());
    let applied = apply_deployment(&client, &restarted).await;
    assert_eq!(applied.metadata.generation, Some(2));

    let done = wait_rolled_out(&client, "web").await;
    let status = done.status.expect("status");
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (Some(2), Some(2), Some(2), Some(2))
    );
    let after = pod_names(&client, "d1").await;
    assert_eq!(after.len(), 2);
    assert!(after.is_disjoint(&before), "{before:?} -> {after:?}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    for name in &after {
        let pod = pods
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let annotations = pod.metadata.annotations.unwrap_or_default();
        assert_eq!(annotations.get("shiplog.io/restart"), Some(&restart_id));
    }

    let (status, _, body) = call(http().get(proxy_url(&sim, "web-svc:http", "/after"))).await;
    assert_eq!(status, 200, "{body}");
    let pod = body["pod"].as_str().unwrap_or_default().to_string();
    assert!(after.contains(&pod), "{pod} is not a new pod");

    // Events: the old pods were killed, the new ones started, the Deployment scaled.
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let reasons_of = |kind: &'static str, name: String| {
        let events = events.clone();
        async move {
            let selector = format!("involvedObject.kind={kind},involvedObject.name={name}");
            let listed = events
                .list(&ListParams::default().fields(&selector))
                .await
                .unwrap_or_else(|e| panic!("events of {name}: {e}"))
                .items;
            for e in &listed {
                assert_eq!(e.involved_object.name.as_deref(), Some(name.as_str()));
                assert_eq!(e.involved_object.kind.as_deref(), Some(kind));
                assert_eq!(e.involved_object.namespace.as_deref(), Some(NS));
                assert!(e.count.is_some_and(|c| c >= 1), "{e:?}");
                assert!(e.first_timestamp.is_some() && e.last_timestamp.is_some());
                assert!(e.message.is_some() && e.type_.is_some());
            }
            listed
                .into_iter()
                .filter_map(|e| e.reason)
                .collect::<Vec<_>>()
        }
    };
    for old in &before {
        let reasons = reasons_of("Pod", old.clone()).await;
        assert_eq!(
            reasons,
            [
                "Scheduled",
                "Pulling",
                "Pulled",
                "Created",
                "Started",
                "Killing"
            ],
            "{old}"
        );
    }
    for new in &after {
        let reasons = reasons_of("Pod", new.clone()).await;
        assert_eq!(
            reasons,
            ["Scheduled", "Pulling", "Pulled", "Created", "Started"],
            "{new}"
        );
    }
    let deployment_reasons = reasons_of("Deployment", "web".into()).await;
    assert!(
        deployment_reasons.len() >= 3
            && deployment_reasons.iter().all(|r| r == "ScalingReplicaSet"),
        "{deployment_reasons:?}"
    );
}

#[tokio::test]
async fn shutting_the_simulator_down_stops_the_echo_apps() {
    let (sim, _client) = shop().await;
    let addr = sim.echo_addr(NS, "web").expect("web has an echo app");
    assert_eq!(sim.echo_addr(NS, "nope"), None);
    sim.shutdown().await;
    within(5, "the app to stop", wait_refused(addr)).await;
}
