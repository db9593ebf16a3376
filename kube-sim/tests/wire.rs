//! The wire format itself, over a plain TCP socket: Status bodies for bad requests (never a
//! dropped connection), newline-delimited watch events with bookmarks, kubectl's Table form.

// A test's unwrap is its assertion (clippy.toml allows it only inside #[test] functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kube_sim::{KubeSim, SimConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP/1.1 request with `Connection: close`; returns the status code and the
/// (de-chunked) body.
async fn request(
    sim: &KubeSim,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        sim.addr(),
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (code, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn status(body: &str) -> (String, u64) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(
        (
            v["kind"].as_str(),
            v["apiVersion"].as_str(),
            v["status"].as_str()
        ),
        (Some("Status"), Some("v1"), Some("Failure")),
        "{body}"
    );
    (
        v["reason"].as_str().unwrap().to_string(),
        v["code"].as_u64().unwrap(),
    )
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// method, path, headers, body, expected code, expected reason
type Case<'a> = (
    &'a str,
    String,
    Vec<(&'a str, &'a str)>,
    &'a str,
    u16,
    &'a str,
);

const HUGE: &str = r#"{"metadata":{"name":"huge"},"spec":{"replicas":2000000000,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i:1"}]}}}}"#;

#[tokio::test]
async fn bad_requests_get_status_objects() {
    let sim = KubeSim::start(SimConfig::default()).await.unwrap();
    let deps = "/apis/apps/v1/namespaces/default/deployments";
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/api/v1/namespaces/default/widgets".into(),
            vec![],
            "",
            404,
            "NotFound",
        ),
        (
            "GET",
            "/apis/nothing.example.com/v1".into(),
            vec![],
            "",
            404,
            "NotFound",
        ),
        (
            "GET",
            format!("{deps}/missing"),
            vec![],
            "",
            404,
            "NotFound",
        ),
        (
            "POST",
            deps.into(),
            vec![JSON],
            "{not json",
            400,
            "BadRequest",
        ),
        ("POST", deps.into(), vec![JSON], "[1,2]", 400, "BadRequest"),
        (
            "POST",
            deps.into(),
            vec![JSON],
            r#"{"apiVersion":"v1","kind":"Deployment","metadata":{"name":"x"}}"#,
            400,
            "BadRequest",
        ),
        (
            "POST",
            deps.into(),
            vec![JSON],
            r#"{"metadata":{"name":"x","namespace":"other"}}"#,
            400,
            "BadRequest",
        ),
        (
            "POST",
            deps.into(),
            vec![JSON],
            r#"{"metadata":{"name":"x"}}"#,
            422,
            "Invalid",
        ),
        (
            "POST",
            "/apis/apps/v1/deployments".into(),
            vec![JSON],
            "{}",
            405,
            "MethodNotAllowed",
        ),
        (
            "PATCH",
            format!("{deps}/x"),
            vec![("Content-Type", "application/apply-patch+yaml")],
            r#"{"apiVersion":"apps/v1","kind":"Deployment"}"#,
            400,
            "BadRequest",
        ),
        (
            "PATCH",
            format!("{deps}/x"),
            vec![("Content-Type", "application/json-patch+json")],
            "[]",
            415,
            "UnsupportedMediaType",
        ),
        (
            "PATCH",
            format!("{deps}/x"),
            vec![("Content-Type", "application/merge-patch+json")],
            "{}",
            404,
            "NotFound",
        ),
        (
            "GET",
            format!("{deps}?labelSelector=app%20in%20(x"),
            vec![],
            "",
            400,
            "BadRequest",
        ),
        (
            "GET",
            format!("{deps}?watch=true&resourceVersion=abc"),
            vec![],
            "",
            400,
            "BadRequest",
        ),
        (
            "GET",
            format!("{deps}?limit=x"),
            vec![],
            "",
            400,
            "BadRequest",
        ),
        (
            "GET",
            format!("{deps}?limit=1&continue=garbage"),
            vec![],
            "",
            400,
            "BadRequest",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods/nope/log".into(),
            vec![],
            "",
            404,
            "NotFound",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods/nope/log".into(),
            vec![],
            "",
            405,
            "MethodNotAllowed",
        ),
        (
            "PUT",
            "/version".into(),
            vec![],
            "",
            405,
            "MethodNotAllowed",
        ),
        (
            "DELETE",
            format!("{deps}/nope"),
            vec![],
            "",
            404,
            "NotFound",
        ),
        ("POST", deps.into(), vec![JSON], HUGE, 422, "Invalid"),
        (
            "GET",
            "/api/v1/namespaces/default/pods/nope/log?sinceSeconds=9223372036854775807".into(),
            vec![],
            "",
            404,
            "NotFound",
        ),
    ];
    for (method, path, headers, body, code, reason) in cases {
        let (got, text) = request(&sim, method, &path, &headers, body).await;
        assert_eq!(got, code, "{method} {path}: {text}");
        assert_eq!(
            status(&text),
            (reason.to_string(), u64::from(code)),
            "{method} {path}"
        );
    }
    // Still serving after all that.
    let (code, body) = request(&sim, "GET", "/version", &[], "").await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["gitVersion"],
        "v1.33.0-kube-sim"
    );
}

#[tokio::test]
async fn watch_is_newline_delimited_json_with_bookmarks_and_timeout() {
    let sim = KubeSim::start(SimConfig::default()).await.unwrap();
    let svc = json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "web" }, "spec": { "ports": [{ "port": 80 }] } });
    let (code, _) = request(
        &sim,
        "POST",
        "/api/v1/namespaces/default/services",
        &[JSON],
        &svc.to_string(),
    )
    .await;
    assert_eq!(code, 201);
    // The stream ends after timeoutSeconds; a bookmark arrives within its 5 s interval.
    let (code, body) = request(
        &sim,
        "GET",
        "/api/v1/services?watch=1&allowWatchBookmarks=true&timeoutSeconds=6",
        &[],
        "",
    )
    .await;
    assert_eq!(code, 200);
    let events: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "web");
    let bookmark = events
        .iter()
        .find(|e| e["type"] == "BOOKMARK")
        .expect("a bookmark");
    assert_eq!(bookmark["object"]["kind"], "Service");
    assert!(bookmark["object"]["metadata"]["resourceVersion"]
        .as_str()
        .is_some());
}

#[tokio::test]
async fn kubectl_gets_tables() {
    let sim = KubeSim::start(SimConfig {
        ready_delay: Duration::from_millis(10),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dep = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
        "spec": { "selector": { "matchLabels": { "app": "web" } }, "template": {
            "metadata": { "labels": { "app": "web" } },
            "spec": { "containers": [{ "name": "app", "image": "nginx:1" }] } } }
    });
    let (code, _) = request(
        &sim,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        &[JSON],
        &dep.to_string(),
    )
    .await;
    assert_eq!(code, 201);
    let accept = ("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json");
    let (code, body) = request(
        &sim,
        "GET",
        "/apis/apps/v1/deployments?limit=500",
        &[accept],
        "",
    )
    .await;
    assert_eq!(code, 200);
    let table: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "Ready", "Up-to-date", "Available", "Age"]);
    assert_eq!(table["rows"][0]["cells"][0], "web");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(
        table["rows"][0]["object"]["metadata"]["namespace"],
        "default"
    );
}

#[tokio::test]
async fn serve_runs_until_its_shutdown_future_completes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kube_sim::serve(listener, SimConfig::default(), async {
        let _ = stopped.await;
    }));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    assert!(
        raw.starts_with("HTTP/1.1 200") && raw.contains("v1.33.0-kube-sim"),
        "{raw}"
    );
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returns after shutdown");
    result.unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}
