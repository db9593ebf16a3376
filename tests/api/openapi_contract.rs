//! The OpenAPI document and the server agree: the document states every limit the
//! server enforces, and the server accepts what the document allows. Each test is a
//! finding of the schemathesis run (`fuzz.rs`), kept so that it cannot come back.

use crate::helpers::{TestApp, ADMIN_TOKEN};
use crate::problem_types::problem_type;
use reqwest::Method;
use serde_json::{json, Value};
use shiplog_domain::config::{ENV_NAME_PATTERN, NAME_PATTERN};
use shiplog_domain::image::{
    DIGEST_PATTERN, MAX_REFERENCE_LEN, REFERENCE_PATTERN, REGISTRY_PATTERN, REPOSITORY_PATTERN,
    TAG_PATTERN,
};

/// The document as the code defines it.
fn spec() -> Value {
    serde_json::to_value(shiplog_api::docs::spec()).unwrap_or_default()
}

/// Every (method, path, operation) of the document.
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            found.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    found
}

/// The schema of parameter `name` of `operation`, if it has one.
fn parameter(operation: &Value, name: &str) -> Option<Value> {
    operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .map(|p| p["schema"].clone())
}

/// Property `name` of the component schema `schema`.
fn property(spec: &Value, schema: &str, name: &str) -> Value {
    let found = spec["components"]["schemas"][schema]["properties"][name].clone();
    assert!(!found.is_null(), "{schema} has no property {name}");
    found
}

/// A platform deployment named `name` (nothing rolls it out: the app has no cluster).
async fn platform_deployment(app: &TestApp, name: &str) -> Value {
    let (status, created) = app
        .post(
            "/api/deployments/deploy-image",
            json!({"image": "nginx:1.27", "name": name}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created
}

#[tokio::test]
async fn page_sizes_are_documented_as_1_to_200_and_0_is_refused_everywhere() {
    let spec = spec();
    let mut paged = 0;
    for (method, path, operation) in operations(&spec) {
        if let Some(limit) = parameter(&operation, "limit") {
            assert_eq!(
                (&limit["minimum"], &limit["maximum"]),
                (&json!(1), &json!(200)),
                "{method} {path}: {limit}"
            );
            paged += 1;
        }
    }
    assert!(paged >= 5, "only {paged} paged operations");

    let app = TestApp::spawn().await;
    let created = platform_deployment(&app, "paged").await;
    let id = created["id"].as_str().unwrap_or_default();
    for path in [
        "/api/usecases".to_owned(),
        "/api/events".to_owned(),
        format!("/api/usecases/{id}/deployments"),
        format!("/api/usecases/{id}/history"),
        "/api/deployments/paged/history".to_owned(),
    ] {
        for (limit, accepted) in [(0, false), (1, true), (200, true), (201, false)] {
            let (status, body) = app.get(&format!("{path}?limit={limit}")).await;
            if accepted {
                assert_eq!(status, 200, "{path}?limit={limit}: {body}");
            } else {
                assert!(
                    (status == 400 || status == 422) && body["field"] == "limit",
                    "{path}?limit={limit} answered {status}: {body}"
                );
            }
        }
    }
}

#[tokio::test]
async fn log_tails_are_documented_up_to_10000_and_more_is_refused() {
    let spec = spec();
    for (method, path, operation) in operations(&spec) {
        if let Some(tail) = parameter(&operation, "tail") {
            assert_eq!(tail["maximum"], json!(10000), "{method} {path}: {tail}");
        }
    }
    let app = TestApp::spawn().await;
    let created = platform_deployment(&app, "tailed").await;
    let id = created["id"].as_str().unwrap_or_default();
    for path in [
        format!("/api/usecases/{id}/logs?tail=10001"),
        "/api/deployments/tailed/logs?tail=10001".to_owned(),
    ] {
        let (status, body) = app.get(&path).await;
        assert!(
            (status == 400 || status == 422) && body["field"] == "tail",
            "{path} answered {status}: {body}"
        );
    }
}

#[tokio::test]
async fn environment_names_are_documented_with_the_pattern_the_domain_checks() {
    let spec = spec();
    for (schema, name) in [
        ("DeploymentConfigBody", "env"),
        ("ConfigChange", "env"),
        ("CreateFromTemplateBody", "envVars"),
        ("DeployImageBody", "envVars"),
        ("ConfigUpdateBody", "configData"),
    ] {
        assert_eq!(
            property(&spec, schema, name)["propertyNames"]["pattern"],
            ENV_NAME_PATTERN,
            "{schema}.{name}"
        );
    }
    let app = TestApp::spawn().await;
    let (status, problem) = app
        .post(
            "/api/deployments/deploy-image",
            json!({"image": "nginx", "envVars": {"": "x"}}),
        )
        .await;
    assert_eq!(status, 400, "an empty variable name: {problem}");
    assert_eq!(problem["type"], problem_type("invalid-input"));
}

#[tokio::test]
async fn names_are_documented_as_the_domain_checks_them() {
    let spec = spec();
    for (schema, name, max) in [
        ("CreateUsecase", "name", Some(128)),
        ("CreateTeam", "name", Some(64)),
        ("UpdateTeam", "name", Some(64)),
        ("CreateToken", "name", Some(128)),
        ("CreateToken", "subject", Some(128)),
    ] {
        let field = property(&spec, schema, name);
        assert_eq!(field["pattern"], NAME_PATTERN, "{schema}.{name}");
        assert_eq!(field["minLength"], json!(1), "{schema}.{name}");
        assert_eq!(field["maxLength"], json!(max), "{schema}.{name}");
    }
    // The pattern and the server agree on names at the edges of the rule.
    let pattern = regex::Regex::new(NAME_PATTERN).unwrap_or_else(|e| panic!("{e}"));
    let app = TestApp::spawn().await;
    for name in [
        "plain",
        "  padded  ",
        "ünïcödé ✓",
        "\u{a0}",
        "\u{3000}x",
        "",
        "   ",
        "tab\there",
        "bell\u{7}",
        "c1\u{85}",
        "\u{2028}",
    ] {
        let (status, body) = app.post("/api/usecases", json!({ "name": name })).await;
        assert_eq!(
            status == 201,
            pattern.is_match(name),
            "{name:?}: the document says {}, the server answered {status} {body}",
            pattern.is_match(name)
        );
    }
}

#[tokio::test]
async fn image_references_are_documented_as_the_domain_checks_them() {
    let spec = spec();
    for (name, pattern) in [
        ("registry", REGISTRY_PATTERN),
        ("repository", REPOSITORY_PATTERN),
        ("tag", TAG_PATTERN),
        ("digest", DIGEST_PATTERN),
    ] {
        assert_eq!(
            property(&spec, "ImageBody", name)["pattern"],
            pattern,
            "{name}"
        );
    }
    let image = property(&spec, "DeployImageBody", "image");
    assert_eq!(image["pattern"], REFERENCE_PATTERN);
    assert_eq!(image["maxLength"], json!(MAX_REFERENCE_LEN));

    let pattern = regex::Regex::new(REFERENCE_PATTERN).unwrap_or_else(|e| panic!("{e}"));
    let app = TestApp::spawn().await;
    let digest = format!("sha256:{}", "ab".repeat(32));
    for (i, reference) in [
        "nginx".to_owned(),
        "registry.example.com:5000/team/app:1.2.3".to_owned(),
        format!("nginx@{digest}"),
        " nginx".to_owned(),
        "nginx:é".to_owned(),
        "Nginx".to_owned(),
        format!("nginx@md5:{}", "ab".repeat(16)),
        format!("{}:1", "a".repeat(MAX_REFERENCE_LEN - 2)),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = app
            .post(
                "/api/deployments/deploy-image",
                json!({"image": reference, "name": format!("ref{i}")}),
            )
            .await;
        assert_eq!(
            status == 201,
            pattern.is_match(&reference) && reference.len() <= MAX_REFERENCE_LEN,
            "{reference:?}: the server answered {status} {body}"
        );
    }
}

#[tokio::test]
async fn ports_and_replicas_are_documented_with_their_bounds() {
    let spec = spec();
    for schema in ["DeploymentConfigBody", "DeployImageBody"] {
        let port = property(&spec, schema, "containerPort");
        assert_eq!(
            (&port["minimum"], &port["maximum"]),
            (&json!(1), &json!(65535)),
            "{schema}"
        );
    }
    let replicas = property(&spec, "DeploymentConfigBody", "replicas");
    assert_eq!(
        (&replicas["minimum"], &replicas["maximum"]),
        (&json!(1), &json!(100))
    );
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("bounded").await;
    let image = json!({"registry": "registry.example.com", "repository": "team/app", "tag": "1"});
    for (config, field) in [
        (json!({"image": image, "replicas": 0}), "config.replicas"),
        (json!({"image": image, "replicas": 101}), "config.replicas"),
        (
            json!({"image": image, "containerPort": 0}),
            "config.containerPort",
        ),
    ] {
        let (status, problem) = app
            .post(
                &format!("/api/usecases/{usecase}/deployments"),
                json!({ "config": config }),
            )
            .await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (422, Some(field)),
            "{config}: {problem}"
        );
    }
}

#[tokio::test]
async fn a_deployments_status_is_documented_as_the_lifecycle_enum() {
    // Two types were called StatusBody and the platform one took the name of both.
    let spec = spec();
    let status = property(&spec, "DeploymentResponse", "status");
    let name = status["$ref"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        spec["components"]["schemas"][&name]["enum"],
        json!([
            "pending",
            "deploying",
            "deployed",
            "superseded",
            "undeployed",
            "error"
        ]),
        "DeploymentResponse.status refers to {name}"
    );
    assert!(
        spec["components"]["schemas"]["PlatformStatusBody"]["properties"]["deploymentReady"]
            .is_object()
    );
}

#[tokio::test]
async fn event_streams_are_documented_message_by_message() {
    let spec = spec();
    let mut streams = 0;
    for (method, path, operation) in operations(&spec) {
        let stream = &operation["responses"]["200"]["content"]["text/event-stream"];
        if stream.is_null() {
            continue;
        }
        assert_eq!(
            stream["schema"]["$ref"], "#/components/schemas/SseMessage",
            "{method} {path}"
        );
        streams += 1;
    }
    assert_eq!(streams, 4, "the event and log streams");
    for field in ["id", "event", "data", "retry"] {
        property(&spec, "SseMessage", field);
    }
}

#[tokio::test]
async fn a_body_is_an_object_not_an_array() {
    let app = TestApp::spawn().await;
    let (status, team) = app.post("/api/teams", json!({"name": "solid"})).await;
    assert_eq!(status, 201, "{team}");
    let id = team["id"].as_str().unwrap_or_default();
    // serde reads a struct from an array by position: [null, null] was an empty update.
    let (status, problem) = app
        .send(
            Method::PUT,
            &format!("/api/teams/{id}"),
            Some(ADMIN_TOKEN),
            Some(json!([null, null])),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (422, Some("body")),
        "{problem}"
    );
    let usecase = app.create_usecase("nested").await;
    let (status, problem) = app
        .post(
            &format!("/api/usecases/{usecase}/deployments"),
            json!({"config": {
                "image": {"registry": "registry.example.com", "repository": "team/app", "tag": "1"},
                "resources": {"requests": ["500m", "256Mi"]}
            }}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (422, Some("config.resources.requests")),
        "{problem}"
    );
    let (_, deployments) = app
        .get(&format!("/api/usecases/{usecase}/deployments"))
        .await;
    assert_eq!(deployments["items"], json!([]), "nothing was requested");
}

#[tokio::test]
async fn integers_written_with_a_zero_fraction_are_integers() {
    // JSON Schema counts 2.0 as an integer; serde refused it for a u32.
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("fractional").await;
    let (status, accepted) = app
        .post(
            &format!("/api/usecases/{usecase}/deployments"),
            json!({"config": {
                "image": {"registry": "registry.example.com", "repository": "team/app", "tag": "1"},
                "replicas": 2.0, "containerPort": 8.08e3
            }}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let (_, deployment) = app
        .get(&format!(
            "/api/usecases/{usecase}/deployments/{}",
            accepted["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(
        (
            &deployment["config"]["replicas"],
            &deployment["config"]["containerPort"]
        ),
        (&json!(2), &json!(8080)),
        "{deployment}"
    );
    let (status, problem) = app
        .post(
            &format!("/api/usecases/{usecase}/deployments"),
            json!({"config": {
                "image": {"registry": "registry.example.com", "repository": "team/app", "tag": "1"},
                "replicas": 2.5
            }}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (422, Some("config.replicas"))
    );
}

#[tokio::test]
async fn an_empty_time_range_is_an_empty_answer_not_an_error() {
    // The document cannot say that `to` follows `from`, so any two instants are valid.
    let app = TestApp::spawn().await;
    app.create_usecase("timed").await;
    for range in [
        "from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=2030-01-01T00:00:00Z&to=2000-01-01T00:00:00Z",
    ] {
        let (status, page) = app.get(&format!("/api/events?{range}")).await;
        assert_eq!(
            (status, &page["items"]),
            (200, &json!([])),
            "{range}: {page}"
        );
    }
    let (status, team) = app.post("/api/teams", json!({"name": "timed"})).await;
    assert_eq!(status, 201, "{team}");
    let id = team["id"].as_str().unwrap_or_default();
    let (status, usage) = app
        .get(&format!(
            "/api/teams/{id}/usage?from=2030-01-01T00:00:00Z&to=2000-01-01T00:00:00Z"
        ))
        .await;
    assert_eq!(status, 200, "{usage}");
}

#[tokio::test]
async fn a_token_naming_an_unknown_team_is_a_404() {
    let app = TestApp::spawn().await;
    let (status, problem) = app
        .post(
            "/api/tokens",
            json!({"name": "stray", "scopes": ["usecases:read"], "teams": [uuid::Uuid::new_v4()]}),
        )
        .await;
    assert_eq!(status, 404, "{problem}");
    assert_eq!(problem["type"], problem_type("team-not-found"));
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("teams[0]")),
        "{problem}"
    );
    let (_, tokens) = app.get("/api/tokens").await;
    assert_eq!(tokens, json!([]), "no token was created");
}

#[tokio::test]
async fn an_unknown_service_is_a_404_naming_the_services_it_runs() {
    let sim = crate::cluster::sim_with(std::time::Duration::from_millis(100), true).await;
    let app = crate::platform::platform_app(&sim, |_| {}).await;
    platform_deployment(&app, "served").await;
    crate::platform::wait_for(&app, "served", "Ready").await;
    for path in [
        "/api/deployments/served/logs?service=nope",
        "/api/deployments/served/metrics?service=nope",
    ] {
        let (status, problem) = app.get(path).await;
        assert_eq!(status, 404, "{path}: {problem}");
        assert_eq!(problem["type"], problem_type("service-not-found"), "{path}");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("app")),
            "the detail names the services it runs: {problem}"
        );
    }
}

#[tokio::test]
async fn page_tokens_and_cursors_are_documented_and_read_as_written() {
    let spec = spec();
    let usecases = &spec["paths"]["/api/usecases"]["get"];
    assert_eq!(
        parameter(usecases, "after").unwrap_or_default()["pattern"],
        "^[0-9]{1,18}$"
    );
    let deployments = &spec["paths"]["/api/usecases/{id}/deployments"]["get"];
    assert_eq!(
        parameter(deployments, "after").unwrap_or_default()["pattern"],
        "^[0-9]{1,9}$"
    );
    let events = &spec["paths"]["/api/events"]["get"];
    let cursor = parameter(events, "after").unwrap_or_default()["pattern"].clone();
    let cursor =
        regex::Regex::new(cursor.as_str().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));

    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("paged").await;
    for (path, accepted) in [
        ("/api/usecases?after=007".to_owned(), true),
        ("/api/usecases?after=+7".to_owned(), false),
        ("/api/usecases?after=-7".to_owned(), false),
        (
            format!("/api/usecases/{usecase}/deployments?after=12"),
            true,
        ),
        (
            format!("/api/usecases/{usecase}/deployments?after=1234567890"),
            false,
        ),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status == 200, accepted, "{path}: {status} {body}");
    }
    for (after, accepted) in [
        ("0123456789abcdef0123456789ABCDEF", true),
        ("0123456789abcdef8000000000000000", false),
        ("0123456789abcdef", false),
    ] {
        assert_eq!(cursor.is_match(after), accepted, "{after}");
        let (status, body) = app.get(&format!("/api/events?after={after}")).await;
        assert_eq!(status == 200, accepted, "{after}: {status} {body}");
    }
}

#[tokio::test]
async fn event_type_filters_are_documented_as_the_ledger_names_them() {
    let spec = spec();
    let mut names: Vec<&str> = shiplog_domain::events::EVENT_TYPES.to_vec();
    names.extend(shiplog_domain::TEAM_EVENT_TYPES);
    names.extend(shiplog_domain::TOKEN_EVENT_TYPES);
    assert_eq!(
        spec["components"]["schemas"]["EventTypeName"]["enum"],
        json!(names)
    );
    for (method, path, operation) in operations(&spec) {
        let types = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "types");
        if let Some(types) = types {
            assert_eq!(
                (&types["style"], &types["explode"]),
                (&json!("form"), &json!(false)),
                "{method} {path}: comma-separated"
            );
            assert_eq!(
                types["schema"]["items"]["$ref"], "#/components/schemas/EventTypeName",
                "{method} {path}"
            );
            // `types=` is both an empty list and a list of one empty name: the
            // document allows neither, and the server refuses it.
            assert_eq!(types["schema"]["minItems"], 1, "{method} {path}");
        }
    }
    let app = TestApp::spawn().await;
    app.create_usecase("typed").await;
    let (status, page) = app
        .get("/api/events?types=TeamCreated,UsecaseRegistered")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"][0]["type"], "UsecaseRegistered", "{page}");
    // An empty item is no event type, and an empty list names none (schemathesis
    // sent `types=` to the stream).
    let id = page["items"][0]["usecaseId"].as_str().unwrap_or_default();
    for path in [
        "/api/events?types=".to_owned(),
        "/api/events?types=UsecaseRegistered,,TeamCreated".to_owned(),
        "/api/events/stream?types=".to_owned(),
        format!("/api/usecases/{id}/history?types="),
        format!("/api/usecases/{id}/events/stream?types="),
    ] {
        let (status, problem) = app.get(&path).await;
        assert_eq!(status, 422, "{path}: {problem}");
        assert_eq!(problem["field"], "types", "{path}: {problem}");
    }
}

#[tokio::test]
async fn operation_ids_are_unique_and_links_lead_to_real_operations() {
    let spec = spec();
    let mut ids: Vec<String> = operations(&spec)
        .iter()
        .filter_map(|(_, _, o)| o["operationId"].as_str().map(str::to_owned))
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate operationIds: {ids:?}");
    let mut links = 0;
    for (method, path, operation) in operations(&spec) {
        for (status, response) in operation["responses"].as_object().into_iter().flatten() {
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                let target = link["operationId"].as_str().unwrap_or_default();
                assert!(
                    ids.binary_search(&target.to_owned()).is_ok(),
                    "{method} {path} {status} link {name} names {target:?}"
                );
                links += 1;
            }
        }
    }
    // The creations carry their keys on: usecases, deployments, platform deployments, teams, tokens.
    for (path, status) in [
        ("/api/usecases", "201"),
        ("/api/usecases/{id}/deployments", "202"),
        ("/api/deployments", "201"),
        ("/api/deployments/deploy-image", "201"),
        ("/api/teams", "201"),
        ("/api/tokens", "201"),
    ] {
        assert!(
            spec["paths"][path]["post"]["responses"][status]["links"].is_object(),
            "POST {path} {status} has no links"
        );
    }
    assert!(links >= 30, "{links} links");
}

#[tokio::test]
async fn the_served_document_names_the_installations_templates() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let served: Value = response.json().await.unwrap_or_default();
    let (status, templates) = app.get("/api/templates").await;
    assert_eq!(status, 200);
    let names: Vec<Value> = templates
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["name"].clone())
        .collect();
    assert!(!names.is_empty(), "{templates}");
    assert_eq!(
        property(&served, "CreateFromTemplateBody", "template")["enum"],
        json!(names)
    );
    let (status, problem) = app
        .post("/api/deployments", json!({"template": "wordpress"}))
        .await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("template")));
}

#[tokio::test]
async fn the_config_of_a_usecase_with_nothing_deployed_is_a_conflict_not_a_404() {
    // A 404 told clients (and schemathesis) that the usecase just created was gone.
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("idle").await;
    let (status, problem) = app.get(&format!("/api/usecases/{usecase}/config")).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["type"], problem_type("nothing-deployed"));
    let (status, _) = app.get(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_nul_character_is_refused_naming_the_field() {
    // It reached PostgreSQL, which cannot store it in text, and answered 500.
    let app = TestApp::spawn().await;
    for path in ["/api/events?actor=a%00b", "/api/usecases?name=%00"] {
        let (status, problem) = app.get(path).await;
        let field = path
            .split_once('?')
            .and_then(|(_, q)| q.split_once('='))
            .map(|(name, _)| name)
            .unwrap_or_default();
        assert_eq!(
            (status, problem["field"].as_str()),
            (400, Some(field)),
            "{path}: {problem}"
        );
    }
    for (body, field) in [
        (json!({"name": "a\u{0}b"}), "name"),
        (json!({"name": "ok", "description": "\u{0}"}), "description"),
    ] {
        let (status, problem) = app.post("/api/usecases", body.clone()).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (422, Some(field)),
            "{body}: {problem}"
        );
    }
    // A form post (the platform's delete from an HTML page) is read the same way.
    let response = app
        .client
        .post(app.url("/api/deployments/delete"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("deployment_name=a%00b")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 400);
    let problem: Value = response.json().await.unwrap_or_default();
    assert_eq!(problem["field"], "deployment_name", "{problem}");
    let (_, page) = app.get("/api/usecases").await;
    assert_eq!(page["items"], json!([]), "nothing was registered");
}

#[tokio::test]
async fn a_token_name_has_no_control_characters() {
    let app = TestApp::spawn().await;
    let (status, problem) = app
        .post(
            "/api/tokens",
            json!({"name": "ci\u{7}", "scopes": ["usecases:read"]}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (422, Some("name")),
        "{problem}"
    );
    let scopes = property(&spec(), "CreateToken", "scopes");
    assert_eq!(scopes["minItems"], json!(1));
    assert_eq!(
        scopes["items"]["$ref"], "#/components/schemas/ScopeName",
        "{scopes}"
    );
    // Every scope the server grants is one the document names, and no other.
    let documented = &spec()["components"]["schemas"]["ScopeName"]["enum"];
    let granted: Vec<&str> = shiplog_application::Scope::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(documented, &json!(granted));
}

#[tokio::test]
async fn a_rollback_to_no_deployment_of_the_usecase_is_a_conflict_not_a_404() {
    // A 404 after creating the usecase told clients (and schemathesis) it was gone.
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("rolled").await;
    let (status, problem) = app
        .post(
            &format!("/api/usecases/{usecase}/rollback"),
            json!({"deploymentId": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["type"], problem_type("invalid-rollback-target"));
}

#[tokio::test]
async fn version_ranges_are_documented_as_the_domain_checks_them() {
    let spec = spec();
    for schema in ["AutoUpdateChangeBody", "AutoUpdateUpdate"] {
        let field = property(&spec, schema, "range");
        assert_eq!(
            field["pattern"],
            shiplog_domain::VERSION_RANGE_PATTERN,
            "{schema}.range"
        );
        assert_eq!(field["maxLength"], json!(100), "{schema}.range");
    }
}
