//! A database outage is a 503 with Retry-After, never a 500, and nothing is half-written.

use crate::helpers::{TestApp, TestDb};
use serde_json::json;
use shiplog_testkit::eventually_within;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy to the test Postgres that can be cut and restored.
pub(crate) struct PgProxy {
    pub(crate) port: u16,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl PgProxy {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let open = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (open, connections) = (open.clone(), connections.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        continue; // dropped: the client sees the connection closed
                    }
                    let copy = tokio::spawn(async move {
                        if let Ok(mut upstream) = TcpStream::connect("127.0.0.1:5432").await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        }
                    });
                    if let Ok(mut list) = connections.lock() {
                        list.push(copy);
                    }
                }
            })
        };
        Self {
            port,
            open,
            connections,
            accept,
        }
    }

    pub(crate) fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        if let Ok(mut list) = self.connections.lock() {
            list.drain(..).for_each(|c| c.abort());
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test]
async fn a_database_outage_is_a_503_with_retry_after_and_recovers() {
    let db = TestDb::create().await;
    let proxy = PgProxy::start().await;
    let via_proxy = format!("postgres://postgres@127.0.0.1:{}/{}", proxy.port, db.name);
    let app = TestApp::spawn_with_url(db, &via_proxy).await;
    app.create_usecase("before").await;

    proxy.cut();
    let response = app
        .client
        .post(app.url("/api/usecases"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .json(&json!({"name": "during"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 503, "a write during the outage");
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let (status, problem) = app.get("/api/usecases").await;
    assert_eq!(status, 503, "a read during the outage");
    assert_eq!(
        problem["type"],
        crate::problem_types::problem_type("database-unavailable"),
        "{problem}"
    );
    let (status, _) = app.send(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 503, "not ready without a database");
    let (status, _) = app.send(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200, "but alive");

    proxy.restore();
    eventually_within(
        "ready again after the outage",
        Duration::from_secs(20),
        || async {
            match app.send(reqwest::Method::GET, "/readyz", None, None).await {
                (200, _) => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
    let (status, page) = app.get("/api/usecases").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert_eq!(names, ["before"], "the refused write left nothing behind");
    app.create_usecase("after").await;
}
