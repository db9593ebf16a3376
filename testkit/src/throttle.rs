//! A registry that rate-limits, for a test: a small reverse proxy on a free
//! loopback port in front of a [`Registry`](crate::Registry) (or any registry),
//! which forwards every request as it came and can be told to answer manifest
//! requests with `429 Too Many Requests`, as Docker Hub does past its pull limit.
//!
//! - Everything passes through unchanged (method, path, query, headers, body
//!   both ways: `Docker-Content-Digest`, `Content-Type`, `WWW-Authenticate`,
//!   `Location`), so `oci-client` works through it. The client's `Host` reaches
//!   the registry as `X-Forwarded-Host`, so the URLs the registry writes (upload
//!   locations) name the proxy.
//! - Refusals ([`ThrottleProxy::refuse_next`], [`ThrottleProxy::refuse_all`])
//!   apply to manifest requests only (`/v2/<repository>/manifests/<reference>`,
//!   any method): the `/v2/` ping, blobs and uploads always pass. A refusal is
//!   `429` with `Retry-After` when asked for and the distribution error body
//!   `{"errors":[{"code":"TOOMANYREQUESTS","message":"…"}]}` (no body for HEAD).
//! - Every request is logged ([`ThrottleProxy::requests`]) and counted by
//!   method and path ([`ThrottleProxy::forwarded`], [`ThrottleProxy::refused`]).
//!
//! Mind `oci-client`'s digest lookup: a HEAD that brings no `Docker-Content-Digest`
//! (a refused one included) is followed by a GET of the same manifest, so one
//! lookup against a refusing proxy takes two refusals.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::task::JoinHandle;

/// A proxy in front of one registry; stops on drop.
pub struct ThrottleProxy {
    /// `127.0.0.1:PORT`: the registry part of an image reference that goes through the proxy.
    pub host: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

/// One request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Its method, upper case (`HEAD`).
    pub method: String,
    /// Its path, without the query (`/v2/team/app/manifests/1.0`).
    pub path: String,
    /// Whether the proxy answered it `429` itself instead of forwarding it.
    pub refused: bool,
}

/// Which manifest requests are refused.
#[derive(Debug, Clone, Copy)]
enum Refusing {
    /// None: everything is forwarded.
    Off,
    /// The next so many; then everything is forwarded again.
    Next(u32),
    /// All, until switched off.
    All,
}

/// What the proxy's handler and its owner share.
struct Shared {
    /// `HOST:PORT` of the registry behind the proxy.
    upstream: String,
    http: reqwest::Client,
    refusing: Mutex<(Refusing, Option<u64>)>,
    log: Mutex<Vec<Seen>>,
}

impl ThrottleProxy {
    /// Starts a proxy on a free loopback port in front of the registry at
    /// `upstream_host` (`127.0.0.1:PORT`, spoken to over plain HTTP), forwarding
    /// everything until told otherwise.
    pub async fn start(upstream_host: &str) -> Self {
        let http = reqwest::Client::builder()
            // The client of the proxy follows redirects itself, if it wants to.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap_or_else(|e| panic!("the proxy's HTTP client: {e}"));
        let shared = Arc::new(Shared {
            upstream: upstream_host.to_owned(),
            http,
            refusing: Mutex::new((Refusing::Off, None)),
            log: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("a free port for the proxy: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the proxy's address: {e}"));
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("throttle proxy at {addr}: {e}");
            }
        });
        Self {
            host: addr.to_string(),
            shared,
            server,
        }
    }

    /// Answers the next `n` manifest requests `429` (with `Retry-After:
    /// retry_after` seconds when given), then forwards again.
    pub fn refuse_next(&self, n: u32, retry_after: Option<u64>) {
        *self.shared.refusing() = (Refusing::Next(n), retry_after);
    }

    /// Answers every manifest request `429` (with `Retry-After: retry_after`
    /// seconds when given) until [`pass_all`](Self::pass_all).
    pub fn refuse_all(&self, retry_after: Option<u64>) {
        *self.shared.refusing() = (Refusing::All, retry_after);
    }

    /// Forwards everything again: refusals still pending are dropped.
    pub fn pass_all(&self) {
        *self.shared.refusing() = (Refusing::Off, None);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.log().clone()
    }

    /// How many `method` requests to `path` (no query) were forwarded to the registry.
    pub fn forwarded(&self, method: &str, path: &str) -> usize {
        self.count(method, path, false)
    }

    /// How many `method` requests to `path` (no query) were answered `429`.
    pub fn refused(&self, method: &str, path: &str) -> usize {
        self.count(method, path, true)
    }

    fn count(&self, method: &str, path: &str, refused: bool) -> usize {
        self.shared
            .log()
            .iter()
            .filter(|seen| {
                seen.refused == refused
                    && seen.path == path
                    && seen.method.eq_ignore_ascii_case(method)
            })
            .count()
    }
}

impl Drop for ThrottleProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Shared {
    fn refusing(&self) -> MutexGuard<'_, (Refusing, Option<u64>)> {
        // A test that panicked while holding the lock has failed already.
        self.refusing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn log(&self) -> MutexGuard<'_, Vec<Seen>> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether this manifest request is refused, and with which `Retry-After`;
    /// takes one refusal of a counted batch.
    fn take_refusal(&self) -> Option<Option<u64>> {
        let mut refusing = self.refusing();
        let retry_after = refusing.1;
        match refusing.0 {
            Refusing::Off | Refusing::Next(0) => None,
            Refusing::Next(n) => {
                refusing.0 = Refusing::Next(n - 1);
                Some(retry_after)
            }
            Refusing::All => Some(retry_after),
        }
    }
}

/// Headers that belong to one connection, not to the message: never forwarded.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// Refuses the request or forwards it to the registry, and answers with what came back.
async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let refusal = if is_manifest(&path) {
        shared.take_refusal()
    } else {
        None
    };
    shared.log().push(Seen {
        method: method.as_str().to_owned(),
        path: path.clone(),
        refused: refusal.is_some(),
    });
    if let Some(retry_after) = refusal {
        return too_many_requests(&method, retry_after);
    }

    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or(path.as_str(), |pq| pq.as_str())
        .to_owned();
    let url = format!("http://{}{path_and_query}", shared.upstream);
    let mut headers = without_hop_by_hop(request.headers());
    // The registry writes URLs (upload locations) for the host its client named.
    if let Some(host) = headers.remove(header::HOST) {
        headers
            .entry(HeaderName::from_static("x-forwarded-host"))
            .or_insert(host);
    }
    let body = match axum::body::to_bytes(request.into_body(), usize::MAX).await {
        Ok(body) => body,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("request body: {e}")).into_response(),
    };
    let answer = shared
        .http
        .request(method, &url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("{url}: {e}")).into_response();
        }
    };
    let status = answer.status();
    let headers = without_hop_by_hop(answer.headers());
    let body = match answer.bytes().await {
        Ok(body) => body,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("{url}: body: {e}")).into_response();
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Whether `path` names a manifest: `/v2/<repository>/manifests/<reference>`.
fn is_manifest(path: &str) -> bool {
    path.strip_prefix("/v2/")
        .and_then(|rest| rest.rsplit_once("/manifests/"))
        .is_some_and(|(repository, reference)| !repository.is_empty() && !reference.is_empty())
}

/// `headers` less those of the connection.
fn without_hop_by_hop(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers
}

/// The registry's answer past a rate limit, in the distribution API's error format.
fn too_many_requests(method: &Method, retry_after: Option<u64>) -> Response {
    let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"too many requests (shiplog test proxy)","detail":null}]}"#;
    let mut response = if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(body))
    };
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        HeaderName::from_static("docker-distribution-api-version"),
        HeaderValue::from_static("registry/2.0"),
    );
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Registry, RegistryOptions};
    use serde_json::Value;

    const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

    /// A HEAD or GET of `repository:tag`'s manifest at `host`, with the credentials when given.
    async fn manifest(
        method: reqwest::Method,
        host: &str,
        path: &str,
        credentials: Option<(&str, &str)>,
    ) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .request(method, format!("http://{host}{path}"))
            .header("accept", MANIFEST_TYPE);
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        request.send().await.unwrap()
    }

    fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn a_head_through_the_proxy_gives_what_the_registry_gives() {
        let registry = Registry::start().await;
        let pushed = registry.push("team/app", "1.0", "build").await;
        let proxy = ThrottleProxy::start(&registry.host).await;
        let path = "/v2/team/app/manifests/1.0";

        let direct = manifest(reqwest::Method::HEAD, &registry.host, path, None).await;
        let through = manifest(reqwest::Method::HEAD, &proxy.host, path, None).await;
        assert_eq!(through.status().as_u16(), 200);
        assert_eq!(
            header(&through, "docker-content-digest"),
            Some(pushed.digest.as_str())
        );
        for name in [
            "docker-content-digest",
            "content-type",
            "content-length",
            "etag",
        ] {
            assert_eq!(header(&through, name), header(&direct, name), "{name}");
        }
        // A GET brings the manifest itself, whose digest is the tag's.
        let got = manifest(reqwest::Method::GET, &proxy.host, path, None).await;
        assert_eq!(got.status().as_u16(), 200);
        let body = got.bytes().await.unwrap();
        assert_eq!(crate::registry::sha256(&body), pushed.digest);
        // A tag the registry does not know: its 404 and error body come through.
        let missing = manifest(
            reqwest::Method::GET,
            &proxy.host,
            "/v2/team/app/manifests/9.9",
            None,
        )
        .await;
        assert_eq!(missing.status().as_u16(), 404);
        let error: Value = missing.json().await.unwrap();
        assert_eq!(error["errors"][0]["code"], "MANIFEST_UNKNOWN");

        assert_eq!(proxy.forwarded("HEAD", path), 1);
        assert_eq!(proxy.forwarded("GET", path), 1);
        assert_eq!(proxy.refused("HEAD", path), 0);
        assert_eq!(proxy.requests().len(), 3);
    }

    #[tokio::test]
    async fn the_next_n_manifest_requests_are_refused_and_then_pass() {
        let registry = Registry::start().await;
        let pushed = registry.push("team/app", "1.0", "build").await;
        let proxy = ThrottleProxy::start(&registry.host).await;
        let path = "/v2/team/app/manifests/1.0";

        proxy.refuse_next(2, Some(3));
        // The ping is no manifest request: it passes and takes no refusal.
        let ping = reqwest::get(format!("http://{}/v2/", proxy.host))
            .await
            .unwrap();
        assert_eq!(ping.status().as_u16(), 200);
        let head = manifest(reqwest::Method::HEAD, &proxy.host, path, None).await;
        assert_eq!(head.status().as_u16(), 429);
        assert_eq!(header(&head, "retry-after"), Some("3"));
        assert_eq!(header(&head, "docker-content-digest"), None);
        let get = manifest(reqwest::Method::GET, &proxy.host, path, None).await;
        assert_eq!(get.status().as_u16(), 429);
        let error: Value = get.json().await.unwrap();
        assert_eq!(error["errors"][0]["code"], "TOOMANYREQUESTS", "{error}");
        // The two refusals are spent: the third passes.
        let head = manifest(reqwest::Method::HEAD, &proxy.host, path, None).await;
        assert_eq!(head.status().as_u16(), 200);
        assert_eq!(
            header(&head, "docker-content-digest"),
            Some(pushed.digest.as_str())
        );

        assert_eq!(proxy.refused("HEAD", path), 1);
        assert_eq!(proxy.refused("GET", path), 1);
        assert_eq!(proxy.forwarded("HEAD", path), 1);
        assert_eq!(proxy.forwarded("GET", "/v2/"), 1);
        assert_eq!(
            proxy.requests(),
            vec![
                Seen {
                    method: "GET".into(),
                    path: "/v2/".into(),
                    refused: false
                },
                Seen {
                    method: "HEAD".into(),
                    path: path.into(),
                    refused: true
                },
                Seen {
                    method: "GET".into(),
                    path: path.into(),
                    refused: true
                },
                Seen {
                    method: "HEAD".into(),
                    path: path.into(),
                    refused: false
                },
            ]
        );
    }

    #[tokio::test]
    async fn refusing_all_lasts_until_switched_off_and_auth_challenges_pass_through() {
        let registry = Registry::start_with(RegistryOptions {
            auth: Some(("robot".to_owned(), "s3cret".to_owned())),
            notify: None,
        })
        .await;
        let pushed = registry.push("team/app", "1.0", "build").await;
        let proxy = ThrottleProxy::start(&registry.host).await;
        let path = "/v2/team/app/manifests/1.0";
        let credentials = Some(("robot", "s3cret"));

        // Without credentials the registry's challenge comes through as it was.
        let anonymous = manifest(reqwest::Method::HEAD, &proxy.host, path, None).await;
        assert_eq!(anonymous.status().as_u16(), 401);
        assert_eq!(
            header(&anonymous, "www-authenticate"),
            Some("Basic realm=\"shiplog-test\"")
        );

        proxy.refuse_all(None);
        for _ in 0..3 {
            let head = manifest(reqwest::Method::HEAD, &proxy.host, path, credentials).await;
            assert_eq!(head.status().as_u16(), 429);
            assert_eq!(header(&head, "retry-after"), None);
        }
        proxy.pass_all();
        let head = manifest(reqwest::Method::HEAD, &proxy.host, path, credentials).await;
        assert_eq!(head.status().as_u16(), 200);
        assert_eq!(
            header(&head, "docker-content-digest"),
            Some(pushed.digest.as_str())
        );
        assert_eq!(proxy.refused("HEAD", path), 3);
        assert_eq!(proxy.forwarded("head", path), 2);
    }

    #[tokio::test]
    async fn an_upload_through_the_proxy_is_told_to_continue_at_the_proxy() {
        let registry = Registry::start().await;
        let proxy = ThrottleProxy::start(&registry.host).await;
        let started = reqwest::Client::new()
            .post(format!("http://{}/v2/team/app/blobs/uploads/", proxy.host))
            .send()
            .await
            .unwrap();
        assert_eq!(started.status().as_u16(), 202);
        let location = header(&started, "location").unwrap();
        assert!(
            location.starts_with(&format!("http://{}/v2/team/app/blobs/uploads/", proxy.host)),
            "{location}"
        );
    }

    #[test]
    fn manifest_paths_are_told_from_the_others() {
        for (path, manifest) in [
            ("/v2/team/app/manifests/1.0", true),
            ("/v2/app/manifests/sha256:abc", true),
            ("/v2/a/b/c/manifests/latest", true),
            ("/v2/", false),
            ("/v2/team/app/blobs/sha256:abc", false),
            ("/v2/team/app/blobs/uploads/", false),
            ("/v2/team/app/tags/list", false),
            ("/v2/team/app/manifests/", false),
        ] {
            assert_eq!(is_manifest(path), manifest, "{path}");
        }
    }
}
