//! Seed 002's curl examples, run with curl against the built `shiplog` binary on
//! its defaults (the built-in simulator, its ingress controller, hosts under
//! `localhost`). Only the host, the key and the deployment name are replaced
//! (`abc123xyz7` becomes the name this run generated).

use crate::binary::{curl, free_port, wait_until_healthy, Shiplog};
use crate::helpers::{TestDb, ADMIN_TOKEN};
use serde_json::Value;
use shiplog_testkit::eventually_within;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const SEED_HOST: &str = "https://your-domain.com";
const SEED_NAME: &str = "abc123xyz7";

const LIST: &str = r#"curl -X GET "https://your-domain.com/api/deployments" \
  -H "Authorization: Bearer YOUR_API_KEY""#;

const CREATE: &str = r#"curl -X POST "https://your-domain.com/api/deployments" \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{
    "template": "nginx",
    "envVars": {
      "PORT": "8080"
    },
    "visibility": "public"
  }'"#;

const STATUS: &str = r#"curl -X GET "https://your-domain.com/api/deployments/status?name=abc123xyz7" \
  -H "Authorization: Bearer YOUR_API_KEY""#;

const DELETE: &str = r#"curl -X POST "https://your-domain.com/api/deployments/delete" \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{"deployment_name": "abc123xyz7"}'"#;

const RESTART: &str = r#"curl -X POST "https://your-domain.com/api/deployments/restart" \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{"deployment_name": "abc123xyz7"}'"#;

const DEPLOY_IMAGE: &str = r#"curl -X POST "https://your-domain.com/api/deployments/deploy-image" \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{
    "image": "myapp:v1.0.0",
    "containerPort": 3000,
    "envVars": {
      "NODE_ENV": "production",
      "PORT": "3000"
    }
  }'"#;

const UPDATE_CONFIG: &str = r#"curl -X PUT "https://your-domain.com/api/deployments/config" \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{
    "deployment_name": "abc123xyz7",
    "configData": {
      "PORT": "8080",
      "DEBUG": "true"
    }
  }'"#;

const LOGS: &str = r#"curl -X GET "https://your-domain.com/api/deployments/abc123xyz7/logs?tail=50" \
  -H "Authorization: Bearer YOUR_API_KEY""#;

const STREAM_LOGS: &str = r#"curl -X GET "https://your-domain.com/api/deployments/abc123xyz7/logs/stream" \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "Accept: text/event-stream""#;

const METRICS: &str = r#"curl -X GET "https://your-domain.com/api/deployments/abc123xyz7/metrics" \
  -H "Authorization: Bearer YOUR_API_KEY""#;

const HISTORY: &str = r#"curl -X GET "https://your-domain.com/api/deployments/abc123xyz7/history" \
  -H "Authorization: Bearer YOUR_API_KEY""#;

const AUTO_UPDATE: &str = r#"curl -X PUT "https://your-domain.com/api/deployments/auto-update" \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{
    "deployment_name": "abc123xyz7",
    "enabled": true,
    "strategy": "rolling"
  }'"#;

const EVENTS: &str = r#"curl -X GET "https://your-domain.com/api/deployments/abc123xyz7/events" \
  -H "Authorization: Bearer YOUR_API_KEY""#;

struct Seed {
    host: String,
    name: String,
}

impl Seed {
    /// The seed command with host, key and name substituted.
    fn command(&self, command: &str) -> String {
        command
            .replace(SEED_HOST, &self.host)
            .replace("YOUR_API_KEY", ADMIN_TOKEN)
            .replace(SEED_NAME, &self.name)
    }

    /// Runs one seed command; returns (status, body as JSON or as a string).
    fn run(&self, command: &str) -> (u16, Value) {
        curl(&self.command(command))
    }

    /// Runs an endless streaming seed command until it printed `lines` lines.
    fn first_lines(&self, command: &str, lines: usize) -> Vec<String> {
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "exec {} --silent --no-buffer",
                self.command(command)
            ))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("bash: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let read: Vec<String> = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take(lines)
            .collect();
        let _ = child.kill();
        let _ = child.wait();
        read
    }

    /// Polls the seed's status command until it shows `status`.
    async fn wait_for(&self, status: &str) -> Value {
        eventually_within(
            &format!("the seed's deployment is {status}"),
            Duration::from_secs(15),
            || async {
                match self.run(STATUS) {
                    (200, body) if body["status"] == status => Ok(body),
                    other => Err(other),
                }
            },
        )
        .await
    }
}

#[tokio::test]
async fn the_platform_seed_curl_examples_work_against_the_binary() {
    let db = TestDb::create().await;
    let port = free_port();
    let host = format!("http://127.0.0.1:{port}");
    let _shiplog = Shiplog(
        Command::new(env!("CARGO_BIN_EXE_shiplog"))
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("SHIPLOG_LISTEN", format!("127.0.0.1:{port}"))
            .env("SHIPLOG_PROXY_LISTEN", "127.0.0.1:0")
            .env(
                "SHIPLOG_INGRESS_LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .env("SHIPLOG_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn shiplog: {e}")),
    );
    wait_until_healthy(&host).await;
    let mut seed = Seed {
        host,
        name: SEED_NAME.to_owned(),
    };

    let (status, list) = seed.run(LIST);
    assert_eq!(
        (status, list.clone()),
        (200, serde_json::json!([])),
        "{list}"
    );

    let (status, created) = seed.run(CREATE);
    assert_eq!(status, 201, "create: {created}");
    // "typically Pending": the built-in cluster may have begun the rollout by the time it answers.
    assert!(
        matches!(
            created["status"].as_str(),
            Some("Pending" | "Provisioning" | "Ready")
        ),
        "{created}"
    );
    assert_eq!(created["template"], "nginx");
    assert_eq!(created["visibility"], "public");
    let name = created["name"].as_str().unwrap_or_default().to_owned();
    assert!(
        name.len() == 10
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "a name like abc123xyz7: {name}"
    );
    seed.name = name.clone();

    // The built-in simulator rolls it out by itself.
    let ready = seed.wait_for("Ready").await;
    assert_eq!(ready["deploymentReady"], true);
    assert_eq!(ready["allowDelete"], true);
    assert_eq!(ready["allowRequest"], false);
    assert_eq!(ready["ingresses"][0]["id"], "nginx");
    assert_eq!(ready["ingresses"][0]["name"], "nginx");
    assert_eq!(ready["ingresses"][0]["host"], format!("{name}.localhost"));
    // The URL answers through the simulator's ingress controller, as curl resolves *.localhost.
    let url = ready["ingresses"][0]["url"].as_str().unwrap_or_default();
    let (status, page) = curl(&format!("curl {url}/"));
    assert_eq!(status, 200, "{url}: {page}");
    assert_eq!(page["env"]["PORT"], "8080", "envVars reach the container");

    let (status, restarted) = seed.run(RESTART);
    assert_eq!(status, 200, "restart: {restarted}");
    let (status, changed) = seed.run(UPDATE_CONFIG);
    assert_eq!(status, 200, "config: {changed}");
    let (status, logs) = seed.run(LOGS);
    assert_eq!(status, 200, "logs: {logs}");
    assert!(
        logs["logs"]
            .as_str()
            .is_some_and(|l| l.contains("kube-sim")),
        "{logs}"
    );
    let stream = seed.first_lines(STREAM_LOGS, 2);
    assert_eq!(
        stream.first().map(String::as_str),
        Some("event: log"),
        "{stream:?}"
    );
    assert!(stream[1].starts_with("data: {\"pod\":"), "{stream:?}");
    let (status, metrics) = seed.run(METRICS);
    assert_eq!(status, 200, "metrics: {metrics}");
    for (field, unit) in [("cpuUsage", "m"), ("memoryUsage", "i")] {
        assert!(
            metrics[field].as_str().is_some_and(|v| v.ends_with(unit)),
            "{field}: {metrics}"
        );
    }
    assert!(metrics["timestamp"].is_string());
    let (status, updated) = seed.run(AUTO_UPDATE);
    assert_eq!(status, 200, "auto-update: {updated}");
    assert_eq!(updated["enabled"], true);
    let (status, history) = seed.run(HISTORY);
    assert_eq!(status, 200, "history: {history}");
    let kinds: Vec<&str> = history["revisions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["deploy", "restart", "config", "autoUpdate"]);
    let (status, events) = seed.run(EVENTS);
    assert_eq!(status, 200, "events: {events}");
    assert!(
        events["events"].as_array().is_some_and(|e| !e.is_empty()),
        "{events}"
    );

    let (status, image) = seed.run(DEPLOY_IMAGE);
    assert_eq!(status, 201, "deploy-image: {image}");
    assert_eq!(image["image"], "docker.io/library/myapp:v1.0.0");
    assert_eq!(image["template"], Value::Null);
    let (status, list) = seed.run(LIST);
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    assert_eq!(list[0]["name"], name.as_str());
    assert_eq!(list[0]["canDelete"], true);

    let (status, deleted) = seed.run(DELETE);
    assert_eq!(status, 200, "delete: {deleted}");
    assert_eq!(deleted["success"], true);
    eventually_within(
        "the seed's deployment is deleted",
        Duration::from_secs(15),
        || async {
            let (code, body) = seed.run(STATUS);
            if code == 404 {
                return Ok(());
            }
            assert_eq!(body["status"], "Deleting", "{body}");
            Err(body)
        },
    )
    .await;
}
