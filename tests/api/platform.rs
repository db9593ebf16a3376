//! The platform API (seed 002) against the Kubernetes simulator through the real
//! kube-rs adapter: named deployments of templates and images, their URLs,
//! Secrets and Ingresses, deletion, and the PhariaOS API on the same usecases.

use crate::cluster::{kube_config, object, secret_values, sim_with};
use crate::helpers::{uuid, TestApp, TestDb, ADMIN_TOKEN, NAMESPACE};
use kube_sim::KubeSim;
use reqwest::Method;
use serde_json::{json, Value};
use shiplog_api::server::Settings;
use shiplog_testkit::eventually;
use std::sync::Arc;
use std::time::Duration;

/// shiplog driving `sim`, its ingress URLs pointing at the simulator's ingress controller.
pub async fn platform_app(sim: &KubeSim, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let port = sim
        .ingress_addr()
        .map(|a| a.port())
        .unwrap_or_else(|| panic!("the simulator runs no ingress controller"));
    TestApp::spawn_with_cluster_configured(
        Arc::new(TestDb::create().await),
        kube_config(sim),
        |settings| {
            settings.kube.ingress.port = Some(port);
            configure(settings);
        },
    )
    .await
}

async fn sim() -> KubeSim {
    sim_with(Duration::from_millis(100), true).await
}

/// Polls `GET /api/deployments/status?name=` until it shows `status`; fails after 10 s.
pub async fn wait_for(app: &TestApp, name: &str, status: &str) -> Value {
    let path = format!("/api/deployments/status?name={name}");
    eventually(&format!("{name} becomes {status}"), || async {
        match app.get(&path).await {
            (200, body) if body["status"] == status => Ok(body),
            other => Err(other),
        }
    })
    .await
}

/// Polls until the deployment is gone (the status answers 404); fails after 10 s.
async fn wait_until_gone(app: &TestApp, name: &str) {
    let path = format!("/api/deployments/status?name={name}");
    eventually(&format!("{name} is gone"), || async {
        match app.get(&path).await {
            (404, _) => Ok(()),
            other => Err(other),
        }
    })
    .await;
}

/// One row of an error table: what is sent (method, path, body), with which
/// token, and the status and field expected.
type Case<'a> = (
    &'a str,
    (Method, String, Option<Value>),
    Option<&'a str>,
    u16,
    Option<&'a str>,
);

/// Polls the deployment's history until its restart succeeded (failing at once if
/// it failed, after 10 s if it never ends); returns the revisions then.
async fn restarted(app: &TestApp, name: &str) -> Vec<Value> {
    let path = format!("/api/deployments/{name}/history");
    eventually(&format!("the restart of {name} succeeds"), || async {
        let (status, history) = app.get(&path).await;
        assert_eq!(status, 200, "{history}");
        let revisions = history["revisions"].as_array().cloned().unwrap_or_default();
        let restart = revisions
            .iter()
            .find(|r| r["kind"] == "restart")
            .cloned()
            .unwrap_or_default();
        assert_ne!(restart["status"], "failed", "{history}");
        if restart["status"] == "succeeded" {
            Ok(revisions)
        } else {
            Err(history)
        }
    })
    .await
}

async fn put(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    app.send(Method::PUT, path, Some(ADMIN_TOKEN), Some(body))
        .await
}

/// Creates a deployment and returns its name.
async fn create(app: &TestApp, body: Value) -> String {
    let (status, created) = app.post("/api/deployments", body).await;
    assert_eq!(status, 201, "{created}");
    created["name"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no name: {created}"))
}

/// Names of the simulator's objects of `resource` that belong to the usecase `id`.
fn objects_of(sim: &KubeSim, resource: &str, id: &str) -> Vec<String> {
    let mut names: Vec<String> = sim
        .objects(resource, Some(NAMESPACE))
        .into_iter()
        .filter(|o| o["metadata"]["labels"]["shiplog.io/usecase"] == id)
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// GETs `url` (an ingress URL) and returns the status and the echo app's JSON.
/// Hosts under `localhost` go to loopback, as curl and browsers resolve them
/// (the system resolver behind reqwest does not, on every machine).
async fn visit(url: &str) -> (u16, Value) {
    let parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let mut client = reqwest::Client::builder();
    if host.ends_with(".localhost") {
        client = client.resolve(&host, ([127, 0, 0, 1], port).into());
    }
    let response = client
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn a_public_deployment_answers_at_its_url_and_an_internal_one_has_no_ingress() {
    let sim = sim().await;
    let app = platform_app(&sim, |_| {}).await;

    let public = create(
        &app,
        json!({"template": "nginx", "envVars": {"GREETING": "hello"}, "visibility": "public"}),
    )
    .await;
    assert_eq!(public.len(), 10, "a generated name like abc123xyz7");
    let ready = wait_for(&app, &public, "Ready").await;
    assert_eq!(ready["deploymentReady"], true);
    let url = ready["ingresses"][0]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no ingress: {ready}"))
        .to_owned();
    assert_eq!(ready["ingresses"][0]["host"], format!("{public}.localhost"));
    assert_eq!(ready["ingresses"][0]["id"], "nginx");
    let (status, echo) = visit(&format!("{url}/hello")).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["path"], "/hello");
    assert_eq!(
        echo["env"]["GREETING"], "hello",
        "the value reaches the container through its Secret"
    );

    let internal = create(&app, json!({"template": "nginx", "visibility": "internal"})).await;
    let ready = wait_for(&app, &internal, "Ready").await;
    assert_eq!(ready["ingresses"], json!([]));
    let (_, list) = app.get("/api/deployments").await;
    let item = list
        .as_array()
        .and_then(|items| items.iter().find(|i| i["name"] == internal.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("{internal} not listed: {list}"));
    assert_eq!(item["visibility"], "internal");
    assert_eq!(item["ingresses"], json!([]));
    let id = item["id"].as_str().unwrap_or_default().to_owned();
    assert!(objects_of(&sim, "ingresses", &id).is_empty(), "no Ingress");
    // Still reachable through shiplog's applications proxy.
    let response = app
        .client
        .get(format!("{}/{id}/ping", app.proxy_base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn deleting_removes_every_object_and_frees_the_name() {
    let sim = sim().await;
    let app = platform_app(&sim, |_| {}).await;
    let (status, created) = app
        .post(
            "/api/deployments/deploy-image",
            json!({"image": "registry.example.com/team/web:1.0", "name": "web", "containerPort": 80, "envVars": {"TOKEN": "t0ps3cret"}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    wait_for(&app, "web", "Ready").await;
    assert_eq!(objects_of(&sim, "ingresses", &id).len(), 1);
    assert_eq!(objects_of(&sim, "secrets", &id).len(), 1);
    assert_eq!(objects_of(&sim, "deployments", &id).len(), 1);
    assert_eq!(objects_of(&sim, "services", &id).len(), 1);

    let (status, deleted) = app
        .post("/api/deployments/delete", json!({"deployment_name": "web"}))
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["success"], true);
    wait_until_gone(&app, "web").await;
    for resource in ["ingresses", "secrets", "deployments", "services", "pods"] {
        eventually(
            &format!("the {resource} of the deleted deployment are gone"),
            || async {
                let left = objects_of(&sim, resource, &id);
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(left)
                }
            },
        )
        .await;
    }
    let events: Vec<String> = app
        .events_of(uuid(&Value::String(id.clone())))
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert!(
        events.ends_with(&[
            "DeletionRequested".to_owned(),
            "UndeployRequested".to_owned(),
            "DeploymentUndeployed".to_owned(),
            "UsecaseDeleted".to_owned()
        ]),
        "{events:?}"
    );

    // The name is free again.
    let (status, again) = app
        .post(
            "/api/deployments/deploy-image",
            json!({"image": "nginx", "name": "web"}),
        )
        .await;
    assert_eq!(status, 201, "{again}");
}

#[tokio::test]
async fn a_form_post_deletes_and_redirects_to_the_deployments_page() {
    let sim = sim().await;
    let app = platform_app(&sim, |s| {
        s.deployments_page = "/console/deployments".to_owned()
    })
    .await;
    let name = create(&app, json!({"template": "nginx"})).await;
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .post(app.url("/api/deployments/delete"))
        .bearer_auth(ADMIN_TOKEN)
        .form(&[("deployment_name", name.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("/console/deployments")
    );
    wait_until_gone(&app, &name).await;
}

#[tokio::test]
async fn a_generated_password_stays_in_the_cluster_and_survives_a_config_change() {
    let sim = sim().await;
    let app = platform_app(&sim, |_| {}).await;
    let name = create(&app, json!({"template": "postgres"})).await;
    let ready = wait_for(&app, &name, "Ready").await;
    assert_eq!(ready["ingresses"], json!([]), "a database is never exposed");
    let (_, list) = app.get("/api/deployments").await;
    let id = list[0]["id"].as_str().unwrap_or_default().to_owned();
    let generated = secret_values(&sim, &format!("sl-{}-generated", id.replace('-', "")));
    let password = generated
        .get("postgres.POSTGRES_PASSWORD")
        .cloned()
        .unwrap_or_else(|| panic!("no generated password: {generated:?}"));
    assert_eq!(password.len(), 32);

    let (status, config) = app
        .get(&format!("/api/deployments/config?name={name}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(config["generatedSecrets"], json!(["POSTGRES_PASSWORD"]));
    assert!(
        !config.to_string().contains(&password),
        "the value is never shown"
    );
    let ledger: Vec<String> = sqlx::query_scalar("SELECT payload::text FROM events")
        .fetch_all(&app.db.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ledger.iter().all(|p| !p.contains(&password)),
        "the generated value is not in the ledger"
    );

    let (status, changed) = put(
        &app,
        "/api/deployments/config",
        json!({"deployment_name": name, "configData": {"POSTGRES_USER": "postgres", "POSTGRES_DB": "shop"}}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    let new_deployment = changed["id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/api/deployments/status?name={name}");
    eventually("the changed config serves", || async {
        let (_, status) = app.get(&path).await;
        let serves = status["status"] == "Ready"
            && status["statusMessage"]
                .as_str()
                .is_some_and(|m| m.contains(&new_deployment));
        if serves {
            Ok(())
        } else {
            Err(status)
        }
    })
    .await;
    let after = secret_values(&sim, &format!("sl-{}-generated", id.replace('-', "")));
    assert_eq!(
        after.get("postgres.POSTGRES_PASSWORD"),
        Some(&password),
        "the password outlives the config change"
    );
    let k8s = object(
        &sim,
        "deployments",
        &format!("sl-{}", new_deployment.replace('-', "")),
    )
    .unwrap_or_else(|| panic!("no Deployment"));
    assert!(
        k8s.to_string().contains("-generated"),
        "the new pods refer to the same generated Secret: {k8s}"
    );
}

#[tokio::test]
async fn a_multi_service_template_gets_an_ingress_per_exposed_service_and_logs_per_service() {
    let sim = sim().await;
    let text = "templates:\n  - name: shop\n    description: a shop and its admin\n    services:\n      - {name: web, image: 'shop:1', port: 8080}\n      - {name: admin, image: 'shop-admin:1', port: 9090}\n      - {name: cache, image: 'redis:7', port: 6379, exposed: false}\n";
    let catalog = shiplog_application::Catalog::with_file(text).unwrap_or_else(|e| panic!("{e}"));
    let app = platform_app(&sim, |s| s.catalog = catalog).await;

    let (_, templates) = app.get("/api/templates").await;
    let names: Vec<&str> = templates
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["nginx", "postgres", "shop"]);

    let name = create(&app, json!({"template": "shop"})).await;
    let ready = wait_for(&app, &name, "Ready").await;
    let hosts: Vec<&str> = ready["ingresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["host"].as_str())
        .collect();
    assert_eq!(
        hosts,
        [
            format!("{name}.localhost"),
            format!("{name}-admin.localhost")
        ]
    );
    for ingress in ready["ingresses"].as_array().into_iter().flatten() {
        let url = ingress["url"].as_str().unwrap_or_default();
        let (status, echo) = visit(url).await;
        assert_eq!(status, 200, "{url}: {echo}");
        let containers: Vec<&str> = echo["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(
            containers,
            ["web", "admin", "cache"],
            "one pod, three containers"
        );
    }

    for service in ["web", "admin", "cache"] {
        let (status, logs) = app
            .get(&format!(
                // The line naming the service comes at start-up; on a slow machine
                // more than ten heartbeats may follow it before this reads.
                "/api/deployments/{name}/logs?service={service}&tail=1000"
            ))
            .await;
        assert_eq!(status, 200, "{service}: {logs}");
        assert!(
            logs["logs"].as_str().is_some_and(|l| l.contains(service)),
            "{service}'s own log: {logs}"
        );
        let (status, metrics) = app
            .get(&format!(
                "/api/deployments/{name}/metrics?service={service}"
            ))
            .await;
        assert_eq!(status, 200, "{service}: {metrics}");
        assert!(metrics["cpuUsage"]
            .as_str()
            .is_some_and(|c| c.ends_with('m')));
    }
    let (status, problem) = app
        .get(&format!("/api/deployments/{name}/logs?service=nope"))
        .await;
    assert_eq!(status, 404, "{problem}");
    assert_eq!(
        problem["type"],
        crate::problem_types::problem_type("service-not-found")
    );
    assert!(problem["error"]
        .as_str()
        .is_some_and(|e| e.contains("web, admin, cache")));
}

#[test]
fn shiplog_refuses_to_start_with_a_templates_file_it_cannot_use() {
    let dir = std::env::temp_dir().join(format!("shiplog-templates-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("templates.yaml");
    std::fs::write(
        &file,
        "templates:\n  - name: shop\n    services:\n      - {name: web, image: 'Not An Image', port: 80}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // It stops before it touches the database or binds anything.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .arg("serve")
        .env("SHIPLOG_TEMPLATES", &file)
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("SHIPLOG_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("templates.yaml") && stderr.contains("templates[0].services[0].image"),
        "names the file and the field: {stderr}"
    );
}

#[tokio::test]
async fn the_phariaos_api_works_on_the_same_usecases() {
    let sim = sim().await;
    let app = platform_app(&sim, |_| {}).await;

    // A platform deployment is a usecase: the PhariaOS routes see and operate it.
    let (_, created) = app
        .post("/api/deployments", json!({"template": "nginx"}))
        .await;
    let name = created["name"].as_str().unwrap_or_default().to_owned();
    let id = uuid(&created["id"]);
    let first = uuid(&created["deploymentId"]);
    app.wait_for_status(id, first, "deployed").await;
    let (status, usecase) = app.get(&format!("/api/usecases/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(usecase["name"], name.as_str());
    assert_eq!(usecase["deployment"]["id"], first.to_string());
    let (status, accepted) = app
        .post(
            &format!("/api/usecases/{id}/deployments"),
            json!({"config": {"image": {"registry": "registry.example.com", "repository": "team/web", "tag": "2.0"}}}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let second = uuid(&accepted["id"]);
    app.wait_for_status(id, second, "deployed").await;
    let ready = wait_for(&app, &name, "Ready").await;
    assert_eq!(
        ready["ingresses"][0]["host"],
        format!("{name}.localhost"),
        "still public, now with the PhariaOS deployment's image"
    );
    let (status, _) = app.delete(&format!("/api/usecases/{id}/deployments")).await;
    assert_eq!(status, 202);
    app.wait_for_status(id, second, "undeployed").await;
    wait_for(&app, &name, "Stopped").await;
    assert!(
        objects_of(&sim, "ingresses", &id.to_string()).is_empty(),
        "nothing deployed: no Ingress"
    );

    // A PhariaOS usecase appears on the platform side: internal, no template.
    let pharia = app.create_usecase("name of your usecase application").await;
    let (_, list) = app.get("/api/deployments").await;
    let item = list
        .as_array()
        .and_then(|items| items.iter().find(|i| i["id"] == pharia.to_string()))
        .cloned()
        .unwrap_or_else(|| panic!("not listed: {list}"));
    assert_eq!(item["status"], "Stopped");
    assert_eq!(item["template"], Value::Null);
    assert_eq!(item["visibility"], "internal");
    let d = app.deploy(pharia, "1.0.0").await;
    app.wait_for_status(pharia, d, "deployed").await;
    let ready = wait_for(&app, "name%20of%20your%20usecase%20application", "Ready").await;
    assert_eq!(
        ready["ingresses"],
        json!([]),
        "PhariaOS usecases are internal"
    );
    assert!(objects_of(&sim, "ingresses", &pharia.to_string()).is_empty());
}

#[tokio::test]
async fn history_records_each_change_with_who_and_how_it_ended() {
    let sim = sim().await;
    let app = platform_app(&sim, |_| {}).await;
    let name = create(&app, json!({"template": "nginx"})).await;
    wait_for(&app, &name, "Ready").await;
    let (status, _) = app
        .post("/api/deployments/restart", json!({"deployment_name": name}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = put(
        &app,
        "/api/deployments/auto-update",
        json!({"deployment_name": name, "enabled": true, "strategy": "rolling"}),
    )
    .await;
    assert_eq!(status, 200);
    let revisions = restarted(&app, &name).await;
    let kinds: Vec<&str> = revisions
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["deploy", "restart", "autoUpdate"]);
    assert_eq!(revisions[0]["status"], "deployed");
    assert_eq!(revisions[0]["actor"], "admin");
    assert_eq!(revisions[0]["image"], "docker.io/library/nginx:stable");
    assert_eq!(
        revisions[2]["autoUpdate"],
        json!({"enabled": true, "strategy": "rolling", "policy": "digest"})
    );
    let (_, page) = app
        .get(&format!("/api/deployments/{name}/history?limit=1"))
        .await;
    assert_eq!(page["revisions"].as_array().map(Vec::len), Some(1));
    let next = page["nextCursor"].as_str().unwrap_or_default();
    let (_, rest) = app
        .get(&format!("/api/deployments/{name}/history?after={next}"))
        .await;
    assert_eq!(
        rest["revisions"][0]["kind"], "restart",
        "the next page follows on"
    );
}

#[tokio::test]
async fn every_error_the_seed_names_is_answered_with_its_code_and_an_error_sentence() {
    let sim = sim().await;
    let app = platform_app(&sim, |_| {}).await;
    let name = create(&app, json!({"template": "nginx"})).await;
    wait_for(&app, &name, "Ready").await;
    let (status, _) = app
        .post(
            "/api/deployments/deploy-image",
            json!({"image": "nginx", "name": "taken"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, reader) = app
        .post(
            "/api/tokens",
            json!({"name": "reader", "scopes": ["deployments:read"]}),
        )
        .await;
    assert_eq!(status, 201, "{reader}");
    let reader = reader["token"].as_str().unwrap_or_default().to_owned();

    let post = |path: &str, body: Value| (Method::POST, path.to_owned(), Some(body));
    let get = |path: String| (Method::GET, path, None);
    // (description, request, token, status, field)
    let cases: Vec<Case> = vec![
        (
            "create without a template",
            post("/api/deployments", json!({"envVars": {}})),
            Some(ADMIN_TOKEN),
            400,
            Some("template"),
        ),
        (
            "an unknown template",
            post("/api/deployments", json!({"template": "wordpress"})),
            Some(ADMIN_TOKEN),
            400,
            Some("template"),
        ),
        (
            "an unknown visibility",
            post(
                "/api/deployments",
                json!({"template": "nginx", "visibility": "private"}),
            ),
            Some(ADMIN_TOKEN),
            400,
            Some("visibility"),
        ),
        (
            "an invalid variable name",
            post(
                "/api/deployments",
                json!({"template": "nginx", "envVars": {"1X": "y"}}),
            ),
            Some(ADMIN_TOKEN),
            400,
            Some("envVars.1X"),
        ),
        (
            "an unknown field",
            post(
                "/api/deployments",
                json!({"template": "nginx", "replicas": 3}),
            ),
            Some(ADMIN_TOKEN),
            400,
            Some("replicas"),
        ),
        (
            "deploy-image without an image",
            post("/api/deployments/deploy-image", json!({"name": "x"})),
            Some(ADMIN_TOKEN),
            400,
            Some("image"),
        ),
        (
            "an invalid image reference",
            post(
                "/api/deployments/deploy-image",
                json!({"image": "Not An Image"}),
            ),
            Some(ADMIN_TOKEN),
            400,
            Some("image"),
        ),
        (
            "a name that is no DNS label",
            post(
                "/api/deployments/deploy-image",
                json!({"image": "nginx", "name": "My App"}),
            ),
            Some(ADMIN_TOKEN),
            400,
            Some("name"),
        ),
        (
            "container port 0",
            post(
                "/api/deployments/deploy-image",
                json!({"image": "nginx", "containerPort": 0}),
            ),
            Some(ADMIN_TOKEN),
            400,
            Some("containerPort"),
        ),
        (
            "a name that exists",
            post(
                "/api/deployments/deploy-image",
                json!({"image": "nginx", "name": "taken"}),
            ),
            Some(ADMIN_TOKEN),
            409,
            None,
        ),
        (
            "status without a name",
            get("/api/deployments/status".to_owned()),
            Some(ADMIN_TOKEN),
            400,
            Some("name"),
        ),
        (
            "status of an unknown name",
            get("/api/deployments/status?name=nothere".to_owned()),
            Some(ADMIN_TOKEN),
            404,
            None,
        ),
        (
            "delete without deployment_name",
            post("/api/deployments/delete", json!({})),
            Some(ADMIN_TOKEN),
            400,
            Some("deployment_name"),
        ),
        (
            "delete an unknown name",
            post(
                "/api/deployments/delete",
                json!({"deployment_name": "nothere"}),
            ),
            Some(ADMIN_TOKEN),
            404,
            None,
        ),
        (
            "restart an unknown name",
            post(
                "/api/deployments/restart",
                json!({"deployment_name": "nothere"}),
            ),
            Some(ADMIN_TOKEN),
            404,
            None,
        ),
        (
            "config of an unknown name",
            get("/api/deployments/config?name=nothere".to_owned()),
            Some(ADMIN_TOKEN),
            404,
            None,
        ),
        (
            "config without configData",
            (
                Method::PUT,
                "/api/deployments/config".to_owned(),
                Some(json!({"deployment_name": name})),
            ),
            Some(ADMIN_TOKEN),
            400,
            Some("configData"),
        ),
        (
            "an unknown strategy",
            (
                Method::PUT,
                "/api/deployments/auto-update".to_owned(),
                Some(json!({"deployment_name": name, "enabled": true, "strategy": "blue-green"})),
            ),
            Some(ADMIN_TOKEN),
            400,
            Some("strategy"),
        ),
        (
            "logs with too large a tail",
            get(format!("/api/deployments/{name}/logs?tail=100000")),
            Some(ADMIN_TOKEN),
            400,
            Some("tail"),
        ),
        (
            "logs of an unknown name",
            get("/api/deployments/nothere/logs".to_owned()),
            Some(ADMIN_TOKEN),
            404,
            None,
        ),
        (
            "metrics of an unknown service",
            get(format!("/api/deployments/{name}/metrics?service=db")),
            Some(ADMIN_TOKEN),
            404,
            None,
        ),
        (
            "history with limit 0",
            get(format!("/api/deployments/{name}/history?limit=0")),
            Some(ADMIN_TOKEN),
            400,
            Some("limit"),
        ),
        (
            "events of an unknown name",
            get("/api/deployments/nothere/events".to_owned()),
            Some(ADMIN_TOKEN),
            404,
            None,
        ),
        (
            "no token",
            get("/api/deployments".to_owned()),
            None,
            401,
            None,
        ),
        (
            "a read-only token creating",
            post("/api/deployments", json!({"template": "nginx"})),
            Some(reader.as_str()),
            403,
            None,
        ),
        (
            "a read-only token deleting",
            post("/api/deployments/delete", json!({"deployment_name": name})),
            Some(reader.as_str()),
            403,
            None,
        ),
    ];
    for (description, (method, path, body), token, status, field) in cases {
        let (code, problem) = app.send(method, &path, token, body).await;
        assert_eq!(code, status, "{description}: {problem}");
        assert!(
            problem["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{description}: every error carries a sentence in `error`: {problem}"
        );
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{description}: {problem}");
        }
    }
    let (status, _) = app
        .send(Method::GET, "/api/deployments", Some(reader.as_str()), None)
        .await;
    assert_eq!(status, 200, "deployments:read may list");

    // A deletion in progress refuses a second one and any change.
    let (status, _) = app
        .post("/api/deployments/delete", json!({"deployment_name": name}))
        .await;
    assert_eq!(status, 200);
    let (status, problem) = app
        .post("/api/deployments/restart", json!({"deployment_name": name}))
        .await;
    assert!(
        status == 409 || status == 404,
        "a restart while it is deleted: {status} {problem}"
    );
}

#[tokio::test]
async fn without_a_cluster_the_cluster_reads_answer_503_with_retry_after() {
    let app = TestApp::spawn().await;
    let (status, created) = app
        .post("/api/deployments", json!({"template": "nginx"}))
        .await;
    assert_eq!(
        status, 201,
        "the ledger takes it without a cluster: {created}"
    );
    let name = created["name"].as_str().unwrap_or_default();
    let id = uuid(&created["id"]);
    app.mark_deployed(id, uuid(&created["deploymentId"])).await;
    for path in [
        format!("/api/deployments/{name}/logs"),
        format!("/api/deployments/{name}/metrics"),
        format!("/api/deployments/{name}/events"),
    ] {
        let response = app
            .client
            .get(app.url(&path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status().as_u16(), 503, "{path}");
        assert!(response.headers().contains_key("retry-after"), "{path}");
        let problem: Value = response.json().await.unwrap_or_default();
        assert!(
            problem["error"]
                .as_str()
                .is_some_and(|e| e.contains("without a cluster")),
            "{path}: {problem}"
        );
    }
}

#[tokio::test]
async fn the_update_strategy_becomes_the_deployments_strategy_on_its_next_rollout() {
    let sim = sim().await;
    let app = platform_app(&sim, |_| {}).await;
    let (_, created) = app
        .post("/api/deployments", json!({"template": "nginx"}))
        .await;
    let name = created["name"].as_str().unwrap_or_default().to_owned();
    let deployment = format!(
        "sl-{}",
        created["deploymentId"]
            .as_str()
            .unwrap_or_default()
            .replace('-', "")
    );
    wait_for(&app, &name, "Ready").await;
    let strategy = |sim: &KubeSim| {
        object(sim, "deployments", &deployment)
            .map(|d| d["spec"]["strategy"].clone())
            .unwrap_or_default()
    };
    assert_eq!(
        strategy(&sim),
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
        "rolling by default, never a missing pod"
    );

    let (status, settings) = put(
        &app,
        "/api/deployments/auto-update",
        json!({"deployment_name": name, "enabled": false, "strategy": "recreate"}),
    )
    .await;
    assert_eq!(status, 200, "{settings}");
    let (_, shown) = app
        .get(&format!("/api/deployments/auto-update?name={name}"))
        .await;
    assert_eq!(shown["strategy"], "recreate");
    let (status, accepted) = app
        .post("/api/deployments/restart", json!({"deployment_name": name}))
        .await;
    assert_eq!(status, 200, "{accepted}");
    restarted(&app, &name).await;
    assert_eq!(
        strategy(&sim),
        json!({"type": "Recreate"}),
        "the restart rolled with the new strategy; rollingUpdate is gone"
    );
}
