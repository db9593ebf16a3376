//! The echo apps: one real HTTP server on 127.0.0.1 per Deployment that has had a Ready pod,
//! standing in for the containers, so the services proxy has something to reach. An app
//! belongs to its Deployment, not to a pod: every pod of the Deployment, of the old template
//! or the new one during a rollout, is served by it, and it stops only once the Deployment is
//! deleted and has drained (`ECHO_DRAIN` in the controllers).
//!
//! The kubelet only records that an app should start or stop ([`EchoOp`]); [`Echoes::apply`]
//! binds and spawns after the store's lock is released (see `Shared::with`). An app reads
//! the cluster through [`Host`], which the cluster implements, so the apps depend on nothing
//! above them. An app answers
//! any request with a JSON description of it, streams lines on `/stream`, answers a chosen
//! status on `/status/<code>`, always adds its own (wrong) CORS headers, and writes one log
//! line per request to the pod named in `X-Kube-Sim-Pod`. Its description of a request names
//! that pod's environment as the kubelet resolved it at container start (`env`, `containers`),
//! so tests can see what a Deployment's Secrets put into its pods.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::StreamExt;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

/// The request header naming the pod a proxied request was routed to.
pub(crate) const POD_HEADER: &str = "x-kube-sim-pod";
/// How much of a request body the echo keeps (and shows, if UTF-8).
const MAX_ECHOED_BODY: usize = 64 * 1024;
/// Most lines `/stream` writes.
const MAX_CHUNKS: u64 = 1000;
/// Longest pause between `/stream` lines.
const MAX_INTERVAL_MS: u64 = 60_000;

/// What the store wants done to the echo apps once its lock is released.
#[derive(Debug, Clone)]
pub(crate) enum EchoOp {
    /// A pod of this Deployment became Ready: run its app unless it already runs.
    Start {
        uid: String,
        ns: String,
        name: String,
    },
    /// The Deployment was deleted and its app has drained: stop it.
    Stop { uid: String },
}

/// The Deployment an app stands in for.
#[derive(Debug, Clone)]
pub(crate) struct App {
    /// The Deployment's uid: an app serves one Deployment, not a later one of the same name.
    pub uid: String,
    /// Its namespace.
    pub ns: String,
    /// Its name.
    pub name: String,
}

/// What an echo app asks of the cluster it runs in.
pub(crate) trait Host: Send + Sync {
    /// The pod template labels of the app's Deployment, while it exists.
    fn template_labels(&self, app: &App) -> Option<Value>;

    /// What the kubelet started `pod` with, if it is a pod of the app's Deployment: the
    /// environment of its first container, and each started container (`name`, `image`,
    /// `env`); `{}` and `[]` otherwise.
    fn pod_environment(&self, app: &App, pod: &str) -> (Value, Value);

    /// Appends a line the app wrote to the log of `pod`, if it is one of the app's
    /// Deployment's running pods.
    fn append_log(&self, app: &App, pod: &str, line: &str);
}

/// One running echo app.
struct EchoApp {
    addr: SocketAddr,
    cancel: CancellationToken,
}

/// The running echo apps, by Deployment uid.
#[derive(Default)]
pub(crate) struct Echoes {
    apps: HashMap<String, EchoApp>,
}

impl Echoes {
    /// The address of a Deployment's app, if it runs.
    pub fn addr(&self, deployment_uid: &str) -> Option<SocketAddr> {
        self.apps.get(deployment_uid).map(|a| a.addr)
    }

    /// Starts and stops apps as the store asked. Binding happens here, synchronously, so an
    /// app is reachable before anyone can see the Ready pod that asked for it.
    pub fn apply(&mut self, ops: Vec<EchoOp>, host: &Weak<dyn Host>, parent: &CancellationToken) {
        for op in ops {
            match op {
                EchoOp::Start { uid, ns, name } => {
                    if self.apps.contains_key(&uid) || parent.is_cancelled() {
                        continue;
                    }
                    let app = App {
                        uid: uid.clone(),
                        ns: ns.clone(),
                        name: name.clone(),
                    };
                    match start(host.clone(), parent, app) {
                        Ok(app) => {
                            tracing::debug!(%ns, %name, addr = %app.addr, "kube-sim echo app started");
                            self.apps.insert(uid, app);
                        }
                        Err(e) => {
                            tracing::warn!(%ns, %name, error = %e, "kube-sim could not start an echo app");
                        }
                    }
                }
                EchoOp::Stop { uid } => {
                    if let Some(app) = self.apps.remove(&uid) {
                        app.cancel.cancel();
                    }
                }
            }
        }
    }
}

/// What one app's handler needs to know.
#[derive(Clone)]
struct EchoState {
    /// Weak, so a running app never keeps a dropped simulator alive.
    host: Weak<dyn Host>,
    app: App,
    cancel: CancellationToken,
}

/// Binds an app's listener and spawns its server.
fn start(host: Weak<dyn Host>, parent: &CancellationToken, app: App) -> std::io::Result<EchoApp> {
    // A std listener binds without an await; tokio adopts it inside the spawned task.
    let listener = bind_loopback()?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
    let cancel = parent.child_token();
    let state = EchoState {
        host,
        app,
        cancel: cancel.clone(),
    };
    runtime.spawn(serve(listener, state));
    Ok(EchoApp { addr, cancel })
}

/// Linux's default ephemeral port range, where the apps' ports are picked.
const APP_PORTS: std::ops::RangeInclusive<u16> = 32768..=60999;
/// Ports tried in turn before leaving the choice to the system.
const BIND_ATTEMPTS: usize = 64;

/// A listener on a free port of 127.0.0.1, for one app. Ports are tried in turn from a
/// process-wide counter (starting at a random one, so simulators in other processes mostly
/// try others), rather than bound as port 0: with thousands of apps listening, the kernel's
/// own search for a free port costs milliseconds per bind (11 us with 6,000 ports taken,
/// 3 ms with 12,000, on this machine's Linux), a bind of a named port stays at ~10 us.
fn bind_loopback() -> std::io::Result<std::net::TcpListener> {
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let next = NEXT.get_or_init(|| AtomicU32::new(rand::random()));
    let (first, count) = (
        u32::from(*APP_PORTS.start()),
        u32::from(*APP_PORTS.end() - *APP_PORTS.start()) + 1,
    );
    for _ in 0..BIND_ATTEMPTS {
        let offset = next.fetch_add(1, AtomicOrdering::Relaxed) % count;
        let Ok(port) = u16::try_from(first + offset) else {
            continue;
        };
        // Taken (by another app, process or connection): the next one will do.
        if let Ok(listener) = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            return Ok(listener);
        }
    }
    std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
}

async fn serve(listener: std::net::TcpListener, state: EchoState) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "kube-sim echo app could not listen");
            return;
        }
    };
    let cancel = state.cancel.clone();
    let app = Router::new().fallback(echo).with_state(state);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
    {
        tracing::warn!(error = %e, "kube-sim echo app stopped with an error");
    }
}

/// Adds the app's own CORS headers: a real app that (wrongly) does CORS itself.
fn with_cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("*"),
    );
    response
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

async fn echo(State(state): State<EchoState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let pod = parts
        .headers
        .get(POD_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let response = if parts.method == axum::http::Method::GET && path == "/stream" {
        stream(&state, parts.uri.query().unwrap_or(""))
    } else {
        let code = match path.strip_prefix("/status/") {
            None => Ok(StatusCode::OK),
            Some(code) => code
                .parse::<u16>()
                .ok()
                .filter(|c| (200..=599).contains(c))
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| {
                    format!("/status/ takes a status code from 200 to 599, not {code:?}")
                }),
        };
        match code {
            Err(message) => json_response(StatusCode::BAD_REQUEST, &json!({ "error": message })),
            Ok(code) => match read_body(body).await {
                Err(message) => {
                    json_response(StatusCode::BAD_REQUEST, &json!({ "error": message }))
                }
                Ok((count, kept)) => {
                    let doc = describe(&state, pod.as_deref(), &parts, count, kept);
                    json_response(code, &doc)
                }
            },
        }
    };
    let line = format!(
        "echo: {} {} -> {}",
        parts.method,
        path,
        response.status().as_u16()
    );
    if let (Some(pod), Some(host)) = (pod, state.host.upgrade()) {
        host.append_log(&state.app, &pod, &line);
    }
    with_cors(response)
}

/// Reads the whole body as a stream: counts every byte and keeps the first 64 KiB.
async fn read_body(body: Body) -> Result<(u64, Vec<u8>), String> {
    let mut stream = body.into_data_stream();
    let mut count = 0u64;
    let mut kept = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("could not read the request body: {e}"))?;
        count += u64::try_from(chunk.len()).unwrap_or(u64::MAX);
        let room = (MAX_ECHOED_BODY + 1).saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok((count, kept))
}

fn header_map(headers: &HeaderMap) -> Map<String, Value> {
    let mut out = Map::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        // `HeaderName`s are lower-case already.
        out.insert(name.as_str().to_string(), json!(values.join(", ")));
    }
    out
}

fn describe(
    state: &EchoState,
    pod: Option<&str>,
    parts: &axum::http::request::Parts,
    count: u64,
    kept: Vec<u8>,
) -> Value {
    let host = state.host.upgrade();
    let labels = host
        .as_ref()
        .and_then(|host| host.template_labels(&state.app))
        .unwrap_or_else(|| json!({}));
    // A request that names no pod of this Deployment (a direct call to the app) has no
    // environment to report.
    let (env, containers) = match (&host, pod) {
        (Some(host), Some(pod)) => host.pod_environment(&state.app, pod),
        _ => (json!({}), json!([])),
    };
    let body = if kept.len() > MAX_ECHOED_BODY {
        Value::Null
    } else {
        String::from_utf8(kept).map_or(Value::Null, Value::String)
    };
    json!({
        "deployment": state.app.name,
        "namespace": state.app.ns,
        "pod": pod,
        "labels": labels,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or(""),
        "headers": header_map(&parts.headers),
        "bodyBytes": count,
        "body": body,
        "env": env,
        "containers": containers,
    })
}

/// `GET /stream?chunks=N&intervalMs=M`: N lines, one every M ms, each flushed as written.
fn stream(state: &EchoState, query: &str) -> Response {
    let mut chunks = 3u64;
    let mut interval = 100u64;
    for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        let target = match key {
            "chunks" => &mut chunks,
            "intervalMs" => &mut interval,
            _ => continue,
        };
        match value.parse::<u64>() {
            Ok(n) => *target = n,
            Err(_) => {
                let message = format!("{key} must be a non-negative integer, not {value:?}");
                return json_response(StatusCode::BAD_REQUEST, &json!({ "error": message }));
            }
        }
    }
    if chunks > MAX_CHUNKS || interval > MAX_INTERVAL_MS {
        let message =
            format!("chunks must be at most {MAX_CHUNKS} and intervalMs at most {MAX_INTERVAL_MS}");
        return json_response(StatusCode::BAD_REQUEST, &json!({ "error": message }));
    }
    let name: Arc<str> = Arc::from(state.app.name.as_str());
    let cancel = state.cancel.clone();
    let interval = Duration::from_millis(interval);
    let lines = futures::stream::unfold(0u64, move |i| {
        let name = name.clone();
        let cancel = cancel.clone();
        async move {
            if i >= chunks {
                return None;
            }
            if i > 0 {
                // The app stopping (Deployment deleted, simulator shut down) ends the stream.
                tokio::select! {
                    _ = cancel.cancelled() => return None,
                    _ = tokio::time::sleep(interval) => {}
                }
            }
            let line = Bytes::from(format!("chunk {i} from {name}\n"));
            Some((Ok::<_, Infallible>(line), i + 1))
        }
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(lines),
    )
        .into_response()
}
