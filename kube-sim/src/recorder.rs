//! A recording proxy to put in front of an API server (usually the simulator): it forwards
//! every request as it is, bodies streamed both ways so that watches and log follows stay
//! open, and keeps the method, path and query of each, so that a test or a benchmark can say
//! which calls a client made (shiplog's Role coverage test, the Kubernetes-calls benchmark).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The HTTP method, e.g. `PATCH`.
    pub method: String,
    /// The path, e.g. `/apis/apps/v1/namespaces/shiplog/deployments/sl-1`.
    pub path: String,
    /// The query string without its `?`, if there is one.
    pub query: Option<String>,
    /// The `Content-Type` header, if any (a server-side apply is a PATCH of
    /// `application/apply-patch+yaml`).
    pub content_type: Option<String>,
}

impl RecordedRequest {
    /// Whether it asks for a watch (`watch=true` or `watch=1`): one long request.
    pub fn is_watch(&self) -> bool {
        self.query_param("watch")
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    }

    /// The first value of a query parameter, as sent (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .as_deref()?
            .split('&')
            .find_map(|pair| match pair.split_once('=') {
                Some((key, value)) if key == name => Some(value),
                None if pair == name => Some(""),
                _ => None,
            })
    }
}

impl std::fmt::Display for RecordedRequest {
    /// `GET /api/v1/namespaces/ns/pods?watch=true`, as in an access log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.query {
            Some(query) => write!(f, "{} {}?{query}", self.method, self.path),
            None => write!(f, "{} {}", self.method, self.path),
        }
    }
}

/// What the proxy has seen: the requests since the last `take`, and when the last one came.
struct Seen {
    requests: Vec<RecordedRequest>,
    last: Instant,
}

struct Inner {
    upstream: String,
    http: reqwest::Client,
    seen: Mutex<Seen>,
}

impl Inner {
    fn seen(&self) -> MutexGuard<'_, Seen> {
        // Each update is one push and one assignment: a poisoned lock holds whole data.
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A recording proxy serving on a free port of 127.0.0.1 until dropped.
pub struct RecordingProxy {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl RecordingProxy {
    /// Starts a proxy in front of `upstream` (a base URL such as [`crate::KubeSim::url`]).
    pub async fn start(upstream: &str) -> std::io::Result<RecordingProxy> {
        // No proxy from the environment: the upstream is on loopback. No redirects: the
        // client is the one to see and follow them.
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http,
            seen: Mutex::new(Seen {
                requests: Vec::new(),
                last: Instant::now(),
            }),
        });
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(forward).with_state(inner.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the recording proxy stopped");
            }
        });
        Ok(RecordingProxy { addr, inner, task })
    }

    /// The base URL clients use instead of the upstream's, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request seen since the last [`RecordingProxy::take`], in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.seen().requests.clone()
    }

    /// The requests seen so far, emptied: the next call sees only later ones.
    pub fn take(&self) -> Vec<RecordedRequest> {
        std::mem::take(&mut self.inner.seen().requests)
    }

    /// How long since the last request came (or since the start, before any).
    pub fn idle_for(&self) -> Duration {
        self.inner.seen().last.elapsed()
    }
}

impl Drop for RecordingProxy {
    /// Stops serving; open streams end with the task.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Records one request and forwards it upstream, both bodies streamed.
async fn forward(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let recorded = RecordedRequest {
        method: request.method().as_str().to_owned(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().map(str::to_owned),
        content_type: request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    {
        let mut seen = inner.seen();
        seen.requests.push(recorded);
        seen.last = Instant::now();
    }
    let url = format!(
        "{}{}",
        inner.upstream,
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let mut upstream = inner.http.request(request.method().clone(), url);
    for (name, value) in request.headers() {
        if name != header::HOST {
            upstream = upstream.header(name, value);
        }
    }
    let body = reqwest::Body::wrap_stream(request.into_body().into_data_stream());
    match upstream.body(body).send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if name != header::TRANSFER_ENCODING && name != header::CONNECTION {
                    response = response.header(name, value);
                }
            }
            response
                .body(Body::from_stream(answer.bytes_stream()))
                .unwrap_or_else(|_| bad_gateway("the upstream's answer could not be relayed"))
        }
        Err(e) => bad_gateway(&e.to_string()),
    }
}

fn bad_gateway(message: &str) -> Response {
    let mut response = Response::new(Body::from(message.to_owned()));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}
