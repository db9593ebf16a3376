//! Bad input, by category, wherever a request carries it (path, query, headers,
//! body): every row says what is wrong and must get a 4xx problem+json of the
//! expected kind naming the field; nothing is written, and the server stays ready.
//! What only a raw connection can send (wrong content lengths, slow clients) and
//! what takes more than one request (streams per token, names that look alike)
//! have tests of their own below.

use crate::helpers::{TestApp, ADMIN_TOKEN};
use crate::problem_types::problem_type;
use reqwest::Method;
use serde_json::{json, Value};
use shiplog_testkit::{eventually, scaled};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request as the table sends it: any bytes in the path, headers and body.
struct Request {
    method: Method,
    path: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Option<Vec<u8>>,
    content_type: &'static str,
    chunked: bool,
}

impl Request {
    fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
            content_type: "application/json",
            chunked: false,
        }
    }

    /// A body of exactly these bytes, declared as JSON.
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// A JSON body.
    fn json(self, body: &Value) -> Self {
        self.body(body.to_string())
    }

    /// A form post (`application/x-www-form-urlencoded`) of these bytes.
    fn form(mut self, body: &[u8]) -> Self {
        self.content_type = "application/x-www-form-urlencoded";
        self.body(body.to_vec())
    }

    fn header(mut self, name: &'static str, value: &[u8]) -> Self {
        self.headers.push((name, value.to_vec()));
        self
    }

    /// Sent with `Transfer-Encoding: chunked` instead of a Content-Length.
    fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }
}

fn get(path: impl Into<String>) -> Request {
    Request::new(Method::GET, path)
}

fn post(path: impl Into<String>) -> Request {
    Request::new(Method::POST, path)
}

fn put(path: impl Into<String>) -> Request {
    Request::new(Method::PUT, path)
}

/// The answer a row must get: its status, the problem's kind (slug) and field.
struct Expected {
    status: u16,
    kind: &'static str,
    field: Option<String>,
}

fn answer(status: u16, kind: &'static str, field: Option<&str>) -> Expected {
    Expected {
        status,
        kind,
        field: field.map(str::to_owned),
    }
}

/// One row: what is wrong (with its category), the request, and the answer it must get.
struct Case {
    what: String,
    request: Request,
    expected: Expected,
}

/// Builds the rows of one category.
struct Category(&'static str);

impl Category {
    fn case(
        &self,
        description: impl AsRef<str>,
        request: Request,
        status: u16,
        kind: &'static str,
        field: Option<&str>,
    ) -> Case {
        Case {
            what: self.what(description),
            request,
            expected: answer(status, kind, field),
        }
    }

    /// A row's description as failure messages print it: `category / description`.
    fn what(&self, description: impl AsRef<str>) -> String {
        format!("{} / {}", self.0, description.as_ref())
    }
}

/// Rows written ([`events`] and tokens): nothing bad input sends may add one.
async fn rows_written(app: &TestApp) -> (i64, i64) {
    sqlx::query_as("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM api_tokens)")
        .fetch_one(&app.db.pool)
        .await
        .unwrap_or_else(|e| panic!("counting rows: {e}"))
}

/// The server still answers, and its database with it.
async fn assert_ready(app: &TestApp, after: &str) {
    let (status, body) = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 200, "/readyz after {after}: {body}");
}

/// Checks an answer against what a row expects: status, problem+json, kind,
/// detail, field; `what` describes the row in the failure message.
fn assert_problem(what: &str, expected: &Expected, status: u16, content_type: &str, body: &[u8]) {
    let problem: Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    assert_eq!(
        status, expected.status,
        "{what}: the API did not answer {}; got {problem}",
        expected.status
    );
    assert_eq!(
        content_type, "application/problem+json",
        "{what}: {problem}"
    );
    assert_eq!(problem["status"], expected.status, "{what}: {problem}");
    assert_eq!(
        problem["type"],
        problem_type(expected.kind),
        "{what}: the problem's kind: {problem}"
    );
    assert!(
        problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{what}: a detail is required: {problem}"
    );
    assert_eq!(
        problem["field"].as_str(),
        expected.field.as_deref(),
        "{what}: the problem must name the field: {problem}"
    );
}

/// Checks a response against its row; a 429 or 503 must say when to retry.
async fn assert_answers(case: &Case, response: reqwest::Response) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if matches!(status, 429 | 503) {
        assert!(
            headers.contains_key("retry-after"),
            "{}: a {status} says when to retry",
            case.what
        );
    }
    let body = response.bytes().await.unwrap_or_default();
    assert_problem(&case.what, &case.expected, status, content_type, &body);
}

async fn send(app: &TestApp, request: &Request) -> reqwest::Response {
    let mut builder = app
        .client
        .request(request.method.clone(), app.url(&request.path))
        .bearer_auth(ADMIN_TOKEN);
    for (name, value) in &request.headers {
        let value = reqwest::header::HeaderValue::from_bytes(value)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        builder = builder.header(*name, value);
    }
    if let Some(body) = &request.body {
        builder = builder.header("content-type", request.content_type);
        builder = if request.chunked {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
            builder.body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        } else {
            builder.body(body.clone())
        };
    }
    builder
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", request.path))
}

/// `depth` arrays, one inside the other.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// `count` environment variables of `size` bytes each.
fn env(count: usize, size: usize) -> Value {
    (0..count)
        .map(|i| (format!("VAR_{i}"), Value::String("x".repeat(size))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// What the table's requests address, made by the setup.
struct Targets {
    /// `POST` here deploys the registered usecase.
    deployments: String,
    /// `PUT` here changes its config.
    config: String,
    /// The largest body the server accepts.
    max_body: usize,
}

/// A deployment body with an image and `extra` members in its config.
fn with_image(extra: Value) -> Value {
    let mut config =
        json!({"image": {"registry": "r.example.com", "repository": "team/app", "tag": "1.0.0"}});
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    json!({ "config": config })
}

fn long(n: usize) -> String {
    "x".repeat(n)
}

/// Every row, by category; one line each, so that the table reads as one.
#[rustfmt::skip]
fn table(t: &Targets) -> Vec<Case> {
    let (deployments, config) = (t.deployments.as_str(), t.config.as_str());
    let mut cases = Vec::new();

    let c = Category("NUL bytes and invalid UTF-8");
    cases.extend([
        c.case("a NUL in a text filter of the ledger (reached PostgreSQL: 500)", get("/api/events?actor=a%00b"), 400, "invalid-input", Some("actor")),
        c.case("a NUL in the name filter of usecases", get("/api/usecases?name=%00"), 400, "invalid-input", Some("name")),
        c.case("invalid UTF-8 in a text filter", get("/api/events?actor=%FF"), 400, "invalid-input", Some("actor")),
        c.case("a NUL in a platform name query", get("/api/deployments/status?name=web%00"), 400, "invalid-input", Some("name")),
        c.case("a NUL in a stream's access_token", get("/api/events/stream?access_token=%00"), 400, "invalid-input", Some("access_token")),
        c.case("a NUL in a platform name in the path", get("/api/deployments/we%00b/logs"), 404, "not-found", Some("name")),
        c.case("invalid UTF-8 in a platform name in the path", get("/api/deployments/%C3%28/events"), 404, "not-found", Some("name")),
        c.case("a NUL where the path has an id", get("/api/usecases/%00/history"), 404, "not-found", Some("id")),
        c.case("a Last-Event-ID that is not text", get("/api/events/stream").header("last-event-id", b"\xff\xfe"), 422, "invalid-input", Some("Last-Event-ID")),
        c.case("an X-Request-Id that is not ASCII", post("/api/usecases").json(&json!({"name": "rid"})).header("x-request-id", b"caf\xc3\xa9"), 400, "invalid-input", Some("X-Request-Id")),
        c.case("a NUL in a usecase name", post("/api/usecases").json(&json!({"name": "a\u{0}b"})), 422, "invalid-input", Some("name")),
        c.case("a NUL in a description", post("/api/usecases").json(&json!({"name": "nul", "description": "a\u{0}"})), 422, "invalid-input", Some("description")),
        c.case("a NUL in an environment value", post(deployments).json(&with_image(json!({"env": {"A": "x\u{0}"}}))), 422, "invalid-input", Some("config.env.A")),
        c.case("a NUL in an environment name", post(deployments).json(&with_image(json!({"env": {"A\u{0}": "x"}}))), 422, "invalid-input", Some("config.env")),
        c.case("a NUL in a platform environment value", post("/api/deployments/deploy-image").json(&json!({"image": "nginx", "envVars": {"A": "\u{0}"}})), 400, "invalid-input", Some("envVars.A")),
        c.case("a NUL in a token name", post("/api/tokens").json(&json!({"name": "t\u{0}", "scopes": ["admin"]})), 422, "invalid-input", Some("name")),
        c.case("a NUL in a token's subject", post("/api/tokens").json(&json!({"name": "t", "subject": "s\u{0}", "scopes": ["admin"]})), 422, "invalid-input", Some("subject")),
        c.case("a NUL in a team name", post("/api/teams").json(&json!({"name": "\u{0}"})), 422, "invalid-input", Some("name")),
        c.case("a raw NUL byte in a JSON string", post("/api/usecases").body(b"{\"name\": \"a\0b\"}".to_vec()), 400, "invalid-input", Some("name")),
        c.case("bytes that are not UTF-8 in a JSON string", post("/api/usecases").body(b"{\"name\": \"\xff\xfe\"}".to_vec()), 400, "invalid-input", Some("name")),
        c.case("a lone surrogate escape", post("/api/usecases").body(br#"{"name": "\ud800"}"#.to_vec()), 400, "invalid-input", Some("name")),
        c.case("a NUL in a form field", post("/api/deployments/delete").form(b"deployment_name=web%00"), 400, "invalid-input", Some("deployment_name")),
        c.case("invalid UTF-8 in a form field", post("/api/deployments/delete").form(b"deployment_name=%FF"), 400, "invalid-input", Some("deployment_name")),
    ]);

    let c = Category("over-long strings");
    cases.extend([
        c.case("a usecase name of 129 characters", post("/api/usecases").json(&json!({"name": long(129)})), 422, "invalid-input", Some("name")),
        c.case("a description of 4097 characters", post("/api/usecases").json(&json!({"name": "d", "description": long(4097)})), 422, "invalid-input", Some("description")),
        c.case("a team name of 65 characters", post("/api/teams").json(&json!({"name": long(65)})), 422, "invalid-input", Some("name")),
        c.case("a token name of 129 characters", post("/api/tokens").json(&json!({"name": long(129), "scopes": ["admin"]})), 422, "invalid-input", Some("name")),
        c.case("a token subject of 129 characters", post("/api/tokens").json(&json!({"name": "s", "subject": long(129), "scopes": ["admin"]})), 422, "invalid-input", Some("subject")),
        c.case("a platform name of 41 characters", post("/api/deployments/deploy-image").json(&json!({"image": "nginx", "name": long(41)})), 400, "invalid-input", Some("name")),
        c.case("an image tag of 129 characters", post(deployments).json(&json!({"config": {"image": {"registry": "r.example.com", "repository": "team/app", "tag": long(129)}}})), 422, "invalid-input", Some("config.image.tag")),
        c.case("an environment name of 254 characters", post(deployments).json(&with_image(json!({"env": {long(254): "v"}}))), 422, "invalid-input", Some("config.env")),
        c.case("a query value of 2049 characters", get(format!("/api/events?actor={}", long(2049))), 400, "invalid-input", Some("actor")),
        c.case("a path value of 2049 characters", get(format!("/api/deployments/{}/events", long(2049))), 404, "not-found", Some("name")),
        c.case("an X-Request-Id of 201 characters", post("/api/usecases").json(&json!({"name": "rid"})).header("x-request-id", long(201).as_bytes()), 400, "invalid-input", Some("X-Request-Id")),
    ]);

    let c = Category("deep JSON nesting");
    cases.extend([
        c.case("10,000 nested arrays as a name", post("/api/usecases").body(format!(r#"{{"name": {}}}"#, nested(10_000))), 422, "invalid-input", Some("name")),
        // serde reads a struct from an array too, member by member: the first is the name.
        c.case("10,000 nested arrays as the body", post("/api/usecases").body(nested(10_000)), 422, "invalid-input", Some("[0]")),
        c.case("10,000 nested arrays as an environment value", post(deployments).body(format!(r#"{{"config": {{"image": {{"registry": "r.example.com", "repository": "a", "tag": "1"}}, "env": {{"A": {}}}}}}}"#, nested(10_000))), 422, "invalid-input", Some("config.env.A")),
        c.case("10,000 nested arrays as platform environment variables", post("/api/deployments/deploy-image").body(format!(r#"{{"image": "nginx", "envVars": {}}}"#, nested(10_000))), 400, "invalid-input", Some("envVars")),
    ]);

    let c = Category("huge bodies");
    let huge = format!(r#"{{"name": "{}"}}"#, long(t.max_body));
    cases.extend([
        c.case("a body one mebibyte long, with its Content-Length", post("/api/usecases").body(huge.clone()), 413, "content-too-large", Some("body")),
        c.case("a body one mebibyte long, chunked", post("/api/usecases").body(huge).chunked(), 413, "content-too-large", Some("body")),
        c.case("a platform config one mebibyte long", put("/api/deployments/config").json(&json!({"deployment_name": "web", "configData": {"A": long(t.max_body)}})), 413, "content-too-large", Some("body")),
    ]);

    let c = Category("huge env maps");
    cases.extend([
        c.case("501 variables in a deployment", post(deployments).json(&with_image(json!({"env": env(501, 1)}))), 422, "invalid-input", Some("config.env")),
        c.case("300 KB of values in a config change", put(config).json(&json!({"env": env(3, 100_000)})), 422, "invalid-input", Some("env")),
        c.case("501 platform environment variables", post("/api/deployments/deploy-image").json(&json!({"image": "nginx", "envVars": env(501, 1)})), 400, "invalid-input", Some("envVars")),
        c.case("300 KB of platform config", put("/api/deployments/config").json(&json!({"deployment_name": "web", "configData": env(3, 100_000)})), 400, "invalid-input", Some("configData")),
    ]);

    let c = Category("names that differ only by Unicode normalisation");
    cases.extend([
        c.case("a usecase name, decomposed, of a composed one", post("/api/usecases").json(&json!({"name": "Cafe\u{301}"})), 409, "name-taken", Some("name")),
        c.case("a team name, decomposed, of a composed one", post("/api/teams").json(&json!({"name": "E\u{301}quipe"})), 409, "name-taken", Some("name")),
        c.case("a token name, decomposed, of a composed one", post("/api/tokens").json(&json!({"name": "jose\u{301}", "scopes": ["usecases:read"]})), 409, "name-taken", Some("name")),
        c.case("a platform name in upper case (a DNS label has none)", post("/api/deployments/deploy-image").json(&json!({"image": "nginx", "name": "Web"})), 400, "invalid-input", Some("name")),
    ]);

    let c = Category("malformed or invalid JSON");
    cases.extend([
        c.case("missing name", post("/api/usecases").json(&json!({"description": "x"})), 422, "invalid-input", Some("name")),
        c.case("empty name", post("/api/usecases").json(&json!({"name": "  "})), 422, "invalid-input", Some("name")),
        c.case("name of the wrong type", post("/api/usecases").json(&json!({"name": 42})), 422, "invalid-input", Some("name")),
        c.case("unknown field", post("/api/usecases").json(&json!({"name": "a", "owner": "me"})), 422, "invalid-input", Some("owner")),
        c.case("malformed JSON", post("/api/usecases").body(r#"{"name": "#), 400, "invalid-input", Some("name")),
        c.case("empty body", post("/api/usecases").body(""), 400, "invalid-input", None),
        c.case("trailing garbage", post("/api/usecases").body(r#"{"name": "a"} x"#), 400, "invalid-input", Some("body")),
        c.case("a JSON array", post("/api/usecases").body("[]"), 422, "invalid-input", Some("body")),
        c.case("not declared as JSON", Request { content_type: "text/plain", ..post("/api/usecases").json(&json!({"name": "a"})) }, 415, "unsupported-media-type", Some("Content-Type")),
        c.case("missing config", post(deployments).json(&json!({})), 422, "invalid-input", Some("config")),
        c.case("missing image", post(deployments).json(&json!({"config": {}})), 422, "invalid-input", Some("config.image")),
        c.case("missing tag", post(deployments).json(&json!({"config": {"image": {"registry": "r.example.com", "repository": "team/app"}}})), 422, "invalid-input", Some("config.image.tag")),
        c.case("empty tag", post(deployments).json(&json!({"config": {"image": {"registry": "r.example.com", "repository": "team/app", "tag": ""}}})), 422, "invalid-input", Some("config.image.tag")),
        c.case("registry with a scheme", post(deployments).json(&json!({"config": {"image": {"registry": "https://r.example.com", "repository": "team/app", "tag": "1"}}})), 422, "invalid-input", Some("config.image.registry")),
        c.case("upper-case repository", post(deployments).json(&json!({"config": {"image": {"registry": "r.example.com", "repository": "Team/App", "tag": "1"}}})), 422, "invalid-input", Some("config.image.repository")),
        c.case("tag with a space", post(deployments).json(&json!({"config": {"image": {"registry": "r.example.com", "repository": "team/app", "tag": "1 0"}}})), 422, "invalid-input", Some("config.image.tag")),
        c.case("zero replicas", post(deployments).json(&with_image(json!({"replicas": 0}))), 422, "invalid-input", Some("config.replicas")),
        c.case("negative replicas", post(deployments).json(&with_image(json!({"replicas": -1}))), 422, "invalid-input", Some("config.replicas")),
        c.case("port out of range", post(deployments).json(&with_image(json!({"containerPort": 70000}))), 422, "invalid-input", Some("config.containerPort")),
        c.case("bad env name", post(deployments).json(&with_image(json!({"env": {"1X": "y"}}))), 422, "invalid-input", Some("config.env.1X")),
        c.case("bad scraping interval", post(deployments).json(&with_image(json!({"serviceMonitor": {"enabled": true, "scrapingInterval": "often"}}))), 422, "invalid-input", Some("config.serviceMonitor.scrapingInterval")),
        c.case("bad quantity", post(deployments).json(&with_image(json!({"resources": {"limits": {"memory": "lots"}}}))), 422, "invalid-input", Some("config.resources.limits.memory")),
        c.case("unknown config field", post(deployments).json(&with_image(json!({"colour": "red"}))), 422, "invalid-input", Some("config.colour")),
    ]);

    let c = Category("malformed query values");
    cases.extend([
        c.case("limit not a number", get("/api/usecases?limit=abc"), 400, "invalid-input", Some("limit")),
        c.case("limit too large", get("/api/usecases?limit=5000"), 422, "invalid-input", Some("limit")),
        c.case("page token not ours", get("/api/usecases?after=garbage"), 422, "invalid-input", Some("after")),
    ]);
    cases
}

#[tokio::test]
async fn bad_input_by_category_gets_a_problem_naming_the_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("target").await;
    // The originals of the names the table sends again, decomposed.
    for (path, body) in [
        ("/api/usecases", json!({"name": "Caf\u{e9}"})),
        ("/api/teams", json!({"name": "\u{c9}quipe"})),
        (
            "/api/tokens",
            json!({"name": "jos\u{e9}", "scopes": ["usecases:read"]}),
        ),
        (
            "/api/deployments/deploy-image",
            json!({"image": "nginx", "name": "web"}),
        ),
    ] {
        let (status, created) = app.post(path, body).await;
        assert_eq!(status, 201, "{path}: {created}");
    }
    let cases = table(&Targets {
        deployments: format!("/api/usecases/{usecase}/deployments"),
        config: format!("/api/usecases/{usecase}/config"),
        max_body: shiplog_api::limits::RequestLimits::default().max_body_size,
    });

    let before = rows_written(&app).await;
    for case in &cases {
        assert_answers(case, send(&app, &case.request).await).await;
    }
    assert_eq!(
        rows_written(&app).await,
        before,
        "bad input wrote events or tokens"
    );
    assert_ready(&app, "the bad input").await;
}

/// What the server sent back on a raw connection, read until it closed it.
struct RawAnswer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

/// Sends `request` on a connection of its own, closes the sending side when
/// `half_close`, and reads until the server closes the connection.
async fn raw(app: &TestApp, request: &[u8], half_close: bool) -> Option<RawAnswer> {
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap_or_else(|e| panic!("connecting: {e}"));
    stream
        .write_all(request)
        .await
        .unwrap_or_else(|e| panic!("sending: {e}"));
    if half_close {
        stream
            .shutdown()
            .await
            .unwrap_or_else(|e| panic!("closing the sending side: {e}"));
    }
    read_answer(&mut stream).await
}

/// Reads until the server closes the connection; `None` when it sent nothing.
async fn read_answer(stream: &mut (impl AsyncRead + Unpin)) -> Option<RawAnswer> {
    let mut bytes = Vec::new();
    tokio::time::timeout(
        scaled(Duration::from_secs(20)),
        stream.read_to_end(&mut bytes),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the server kept the connection open: {}",
            String::from_utf8_lossy(&bytes)
        )
    })
    .unwrap_or_else(|e| panic!("reading: {e}"));
    if bytes.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    Some(RawAnswer {
        status,
        content_type,
        body: body.as_bytes().to_vec(),
    })
}

/// The head of a POST of a usecase with `content_length`, closing after the answer.
fn post_head(extra_headers: &str) -> String {
    format!(
        "POST /api/usecases HTTP/1.1\r\nHost: shiplog\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nConnection: close\r\n{extra_headers}\r\n"
    )
}

#[tokio::test]
async fn wrong_content_lengths_and_oversized_heads_get_a_clear_answer_and_write_nothing() {
    let app = TestApp::spawn().await;
    let c = Category("wrong content lengths");
    let body = r#"{"name": "lengths"}"#;
    let max_body = shiplog_api::limits::RequestLimits::default().max_body_size;
    // (what, bytes sent, whether the client then closes its sending side, the answer)
    let cases = [
        (
            c.what("a Content-Length larger than the body, then the client stops sending"),
            format!(
                "{}{body}",
                post_head(&format!("Content-Length: {}\r\n", body.len() + 50))
            ),
            true,
            answer(400, "invalid-input", Some("body")),
        ),
        (
            c.what("a Content-Length shorter than the body: the body is cut there"),
            format!("{}{body}", post_head("Content-Length: 12\r\n")),
            false,
            answer(400, "invalid-input", Some("name")),
        ),
        (
            c.what("a Content-Length beyond the limit, answered before the body is sent"),
            post_head(&format!("Content-Length: {}\r\n", max_body + 1)),
            false,
            answer(413, "content-too-large", Some("body")),
        ),
    ];
    let before = rows_written(&app).await;
    for (what, bytes, half_close, expected) in &cases {
        let reply = raw(&app, bytes.as_bytes(), *half_close)
            .await
            .unwrap_or_else(|| panic!("{what}: no answer"));
        assert_problem(
            what,
            expected,
            reply.status,
            &reply.content_type,
            &reply.body,
        );
    }
    // Malformed framing, and a head beyond hyper's bounds, are refused by hyper before
    // any handler, with a bare status and a closed connection: no problem document
    // can be sent there.
    let huge = "x".repeat(500_000);
    let many: String = (0..200).map(|i| format!("X-Header-{i}: v\r\n")).collect();
    #[rustfmt::skip]
    let bare = [
        ("a Content-Length that is not a number", format!("{}{body}", post_head("Content-Length: twelve\r\n")), 400),
        ("two different Content-Lengths", format!("{}{body}", post_head("Content-Length: 5\r\nContent-Length: 6\r\n")), 400),
        ("a Content-Length and chunked transfer coding", format!("{}{body}", post_head("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n")), 400),
        ("a URI of 500 KB", format!("GET /api/events?actor={huge} HTTP/1.1\r\nHost: shiplog\r\n\r\n"), 431),
        ("a header of 500 KB", format!("GET /healthz HTTP/1.1\r\nHost: shiplog\r\nX-Big: {huge}\r\n\r\n"), 431),
        ("200 headers", format!("GET /healthz HTTP/1.1\r\nHost: shiplog\r\n{many}\r\n"), 431),
    ];
    for (description, request, status) in bare {
        let reply = raw(&app, request.as_bytes(), false).await;
        assert_eq!(reply.map(|r| r.status), Some(status), "{description}");
    }
    assert_eq!(
        rows_written(&app).await,
        before,
        "a wrong length wrote something"
    );
    assert_ready(&app, "wrong content lengths").await;
}

#[tokio::test]
async fn slow_clients_are_cut_off_after_the_configured_timeouts() {
    let app = TestApp::spawn_configured(|settings| {
        settings.limits.header_read_timeout = Duration::from_secs(1);
        settings.limits.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let before = rows_written(&app).await;

    // Headers that never end: the connection is closed, without an answer.
    let started = std::time::Instant::now();
    let reply = raw(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: shiplog\r\nX-Slow: ",
        false,
    )
    .await;
    assert!(
        reply.is_none(),
        "headers never finished: the connection closes without an answer"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed only after --header-read-timeout, not before ({:?})",
        started.elapsed()
    );

    let c = Category("slow clients");
    let timed_out = answer(408, "request-timeout", Some("body"));
    let stalled = c.what("a body that stops arriving");
    let bytes = format!("{}{}", post_head("Content-Length: 100\r\n"), r#"{"name": "#);
    let reply = raw(&app, bytes.as_bytes(), false)
        .await
        .unwrap_or_else(|| panic!("{stalled}: no answer"));
    assert_problem(
        &stalled,
        &timed_out,
        reply.status,
        &reply.content_type,
        &reply.body,
    );

    // A byte now and then never lets the body finish within the deadline.
    let trickled = c.what("a body trickled a byte at a time");
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    stream
        .write_all(post_head("Content-Length: 100\r\n").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut reading, mut writing) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for byte in br#"{"name": "trickled", "description": "slowly"}"#
            .iter()
            .cycle()
            .take(100)
        {
            if writing.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let reply = read_answer(&mut reading)
        .await
        .unwrap_or_else(|| panic!("{trickled}: no answer"));
    trickle.abort();
    assert_problem(
        &trickled,
        &timed_out,
        reply.status,
        &reply.content_type,
        &reply.body,
    );

    assert_eq!(
        rows_written(&app).await,
        before,
        "a slow client wrote something"
    );
    assert_ready(&app, "slow clients").await;
}

/// Opens a stream and waits for its answer's head.
async fn open(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn a_token_may_hold_only_so_many_streams_and_a_closed_one_frees_its_slot() {
    let app = TestApp::spawn_configured(|settings| settings.limits.max_streams_per_token = 2).await;
    let usecase = app.create_usecase("followed").await;
    let (status, auditor) = app
        .post(
            "/api/tokens",
            json!({"name": "auditor", "scopes": ["audit:read"]}),
        )
        .await;
    assert_eq!(status, 201, "{auditor}");
    let auditor = auditor["token"].as_str().unwrap_or_default().to_owned();

    let mut first = open(&app, "/api/events/stream", ADMIN_TOKEN).await;
    assert_eq!(first.status(), 200);
    assert!(
        first.chunk().await.is_ok_and(|c| c.is_some()),
        "the stream says where it starts"
    );
    let second = open(
        &app,
        &format!("/api/usecases/{usecase}/events/stream"),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(second.status(), 200);

    let c = Category("too many concurrent streams per token");
    #[rustfmt::skip]
    let cases = [
        c.case("a third event stream", get("/api/events/stream"), 429, "too-many-streams", None),
        c.case("a third usecase event stream", get(format!("/api/usecases/{usecase}/events/stream")), 429, "too-many-streams", None),
        c.case("a log stream, refused before the cluster is asked", get(format!("/api/usecases/{usecase}/logs/stream")), 429, "too-many-streams", None),
        c.case("a followed log", get(format!("/api/usecases/{usecase}/logs?follow=true")), 429, "too-many-streams", None),
        c.case("a platform log stream", get("/api/deployments/web/logs/stream"), 429, "too-many-streams", None),
        c.case("a followed platform log", get("/api/deployments/web/logs?follow=true"), 429, "too-many-streams", None),
    ];
    for case in &cases {
        assert_answers(case, send(&app, &case.request).await).await;
    }
    // A log read that does not follow is no stream.
    let (status, body) = app.get(&format!("/api/usecases/{usecase}/logs")).await;
    assert_ne!(status, 429, "{body}");

    let other = open(&app, "/api/events/stream", &auditor).await;
    assert_eq!(other.status(), 200, "another token has slots of its own");

    drop(first);
    let mut third = eventually("a closed stream frees its token's slot", || async {
        let response = open(&app, "/api/events/stream", ADMIN_TOKEN).await;
        if response.status() == 200 {
            Ok(response)
        } else {
            Err(response.status())
        }
    })
    .await;
    assert!(third.chunk().await.is_ok_and(|c| c.is_some()));
    drop((second, other));
    assert_ready(&app, "streams refused").await;
}

#[tokio::test]
async fn names_that_look_the_same_are_one_name_and_case_makes_another() {
    let app = TestApp::spawn().await;
    // (what, path, the body naming it `name`)
    let named = |what: &str, name: &str| match what {
        "token" => json!({"name": name, "scopes": ["usecases:read"]}),
        _ => json!({ "name": name }),
    };
    for (what, path, decomposed, composed) in [
        ("usecase", "/api/usecases", "Jose\u{301}", "Jos\u{e9}"),
        ("team", "/api/teams", "E\u{301}quipe", "\u{c9}quipe"),
        ("token", "/api/tokens", "Jose\u{301}", "Jos\u{e9}"),
    ] {
        let (status, created) = app.post(path, named(what, decomposed)).await;
        assert_eq!(status, 201, "{what}: {created}");
        assert_eq!(
            created["name"], composed,
            "a {what} name is kept composed (NFC)"
        );
        let (status, taken) = app.post(path, named(what, composed)).await;
        assert_eq!(
            (status, taken["type"].as_str(), taken["field"].as_str()),
            (409, Some(problem_type("name-taken").as_str()), Some("name")),
            "the composed {what} name is the same name: {taken}"
        );
        let lower = composed.to_lowercase();
        let (status, other) = app.post(path, named(what, &lower)).await;
        assert_eq!(
            status, 201,
            "a {what} name that differs in case is another name: {other}"
        );
    }
    let (status, page) = app.get("/api/usecases?name=jos%C3%A9").await;
    assert_eq!(status, 200, "{page}");
    let names: Vec<&str> = page["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|u| u["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        ["Jos\u{e9}", "jos\u{e9}"],
        "the case-insensitive filter finds both"
    );
}
