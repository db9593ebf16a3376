//! Bad input: every row names what is wrong and must get a 4xx problem+json naming the field.

use crate::helpers::{TestApp, ADMIN_TOKEN};
use serde_json::Value;

struct Case {
    description: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: &'static str,
    status: u16,
    field: Option<&'static str>,
}

const fn case(
    description: &'static str,
    path: &'static str,
    body: &'static str,
    status: u16,
    field: Option<&'static str>,
) -> Case {
    Case {
        description,
        path,
        content_type: Some("application/json"),
        body,
        status,
        field,
    }
}

const IMAGE: &str =
    r#""image": {"registry": "r.example.com", "repository": "team/app", "tag": "1.0.0"}"#;

#[tokio::test]
async fn bad_input_gets_a_problem_naming_the_field() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("target").await;
    let deployments = format!("/api/usecases/{usecase}/deployments");
    let with_image = |extra: &str| format!(r#"{{"config": {{{IMAGE}{extra}}}}}"#);
    let owned: Vec<(String, Case)> = vec![
        (String::new(), case("missing name", "/api/usecases", r#"{"description": "x"}"#, 422, Some("name"))),
        (String::new(), case("empty name", "/api/usecases", r#"{"name": "  "}"#, 422, Some("name"))),
        (String::new(), case("name of the wrong type", "/api/usecases", r#"{"name": 42}"#, 422, Some("name"))),
        (String::new(), case("unknown field", "/api/usecases", r#"{"name": "a", "owner": "me"}"#, 422, Some("owner"))),
        (String::new(), case("malformed JSON", "/api/usecases", r#"{"name": "#, 400, None)),
        (String::new(), case("empty body", "/api/usecases", "", 400, None)),
        (String::new(), case("trailing garbage", "/api/usecases", r#"{"name": "a"} x"#, 400, None)),
        (String::new(), Case { content_type: Some("text/plain"), ..case("not declared as JSON", "/api/usecases", r#"{"name": "a"}"#, 415, None) }),
        (String::new(), case("a JSON array", "/api/usecases", "[]", 422, None)),
        (r#"{}"#.to_owned(), case("missing config", "", "", 422, Some("config"))),
        (r#"{"config": {}}"#.to_owned(), case("missing image", "", "", 422, Some("config.image"))),
        (r#"{"config": {"image": {"registry": "r.example.com", "repository": "team/app"}}}"#.to_owned(), case("missing tag", "", "", 422, Some("config.image.tag"))),
        (r#"{"config": {"image": {"registry": "r.example.com", "repository": "team/app", "tag": ""}}}"#.to_owned(), case("empty tag", "", "", 422, Some("config.image.tag"))),
        (r#"{"config": {"image": {"registry": "https://r.example.com", "repository": "team/app", "tag": "1"}}}"#.to_owned(), case("registry with a scheme", "", "", 422, Some("config.image.registry"))),
        (r#"{"config": {"image": {"registry": "r.example.com", "repository": "Team/App", "tag": "1"}}}"#.to_owned(), case("upper-case repository", "", "", 422, Some("config.image.repository"))),
        (r#"{"config": {"image": {"registry": "r.example.com", "repository": "team/app", "tag": "1 0"}}}"#.to_owned(), case("tag with a space", "", "", 422, Some("config.image.tag"))),
        (with_image(r#", "replicas": 0"#), case("zero replicas", "", "", 422, Some("config.replicas"))),
        (with_image(r#", "replicas": -1"#), case("negative replicas", "", "", 422, Some("config.replicas"))),
        (with_image(r#", "containerPort": 70000"#), case("port out of range", "", "", 422, Some("config.containerPort"))),
        (with_image(r#", "env": {"1X": "y"}"#), case("bad env name", "", "", 422, Some("config.env.1X"))),
        (with_image(r#", "serviceMonitor": {"enabled": true, "scrapingInterval": "often"}"#), case("bad scraping interval", "", "", 422, Some("config.serviceMonitor.scrapingInterval"))),
        (with_image(r#", "resources": {"limits": {"memory": "lots"}}"#), case("bad quantity", "", "", 422, Some("config.resources.limits.memory"))),
        (with_image(r#", "colour": "red""#), case("unknown config field", "", "", 422, Some("config.colour"))),
    ];
    for (deploy_body, mut case) in owned {
        let path = if case.path.is_empty() {
            deployments.as_str()
        } else {
            case.path
        };
        let body = if case.path.is_empty() {
            deploy_body
        } else {
            case.body.to_owned()
        };
        case.path = "";
        let mut request = app
            .client
            .post(app.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .body(body.clone());
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let problem: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            status, case.status,
            "{}: the API did not answer {} for {body}; got {problem}",
            case.description, case.status
        );
        assert_eq!(
            content_type, "application/problem+json",
            "{}",
            case.description
        );
        assert_eq!(
            problem["status"], case.status,
            "{}: {problem}",
            case.description
        );
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}: a detail is required: {problem}",
            case.description
        );
        if let Some(field) = case.field {
            assert_eq!(
                problem["field"], field,
                "{}: the problem must name the field: {problem}",
                case.description
            );
        }
    }
}

#[tokio::test]
async fn bad_query_parameters_are_named() {
    let app = TestApp::spawn().await;
    for (description, query, status, field) in [
        ("limit not a number", "limit=abc", 400, "limit"),
        ("limit too large", "limit=5000", 422, "limit"),
        ("page token not ours", "after=garbage", 422, "after"),
    ] {
        let (code, problem) = app.get(&format!("/api/usecases?{query}")).await;
        assert_eq!(
            (code, problem["field"].as_str()),
            (status, Some(field)),
            "{description}: {problem}"
        );
    }
}
