//! The PhariaOS seed's curl examples, run with curl against the built `shiplog`
//! binary on its defaults (which deploy to the built-in simulator). Only the host and the token are changed (and the example ids are
//! replaced by the ones this run created). The seed text has two quoting slips
//! (a missing `\` after the first Authorization header, and unclosed quotes
//! around two URLs); they are mended here as the README explains.

use crate::helpers::{uuid, TestDb, ADMIN_TOKEN};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SEED_HOST: &str = "https://pharia-os-manager.<your.pharia-ai.domain.com>";
const SEED_USECASE: &str = "ee7ab86f-bfde-450f-bb0e-1433e91a8d90";
const SEED_DEPLOYMENT: &str = "d132cff5-cfed-4f94-8133-50e37bda6b95";

const CREATE: &str = r#"curl --request POST \
--url 'https://pharia-os-manager.<your.pharia-ai.domain.com>/api/usecases' \
--header 'Authorization: Bearer <token>' \
--header 'Content-Type: application/json' \
--data '{
"description": "description of your usecase application",
"name": "name of your usecase application"
}'"#;

const DEPLOY: &str = r#"curl --request POST \
--url 'https://pharia-os-manager.<your.pharia-ai.domain.com>/api/usecases/ee7ab86f-bfde-450f-bb0e-1433e91a8d90/deployments' \
--header 'Authorization: Bearer <token>' \
--header 'Content-Type: application/json' \
--data '{
"config": {
"image": {
"registry": "your.container.registry.de",
"repository": "your/repository",
"tag": "1.0.0"
}
}
}'"#;

const GET_DEPLOYMENT: &str = r#"curl --request GET \
--url https://pharia-os-manager.<your.pharia-ai.domain.com>/api/usecases/ee7ab86f-bfde-450f-bb0e-1433e91a8d90/deployments/d132cff5-cfed-4f94-8133-50e37bda6b95 \
--header 'Authorization: Bearer <token>'"#;

const UNDEPLOY: &str = r#"curl --request DELETE \
--url 'https://pharia-os-manager.<your.pharia-ai.domain.com>/api/usecases/ee7ab86f-bfde-450f-bb0e-1433e91a8d90/deployments' \
--header 'Authorization: Bearer <token>'"#;

const DELETE: &str = r#"curl --request DELETE \
--url 'https://pharia-os-manager.<your.pharia-ai.domain.com>/api/usecases/ee7ab86f-bfde-450f-bb0e-1433e91a8d90' \
--header 'Authorization: Bearer <token>'"#;

/// The built binary, killed when the test ends.
struct Shiplog(Child);

impl Drop for Shiplog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Seed {
    host: String,
    usecase: String,
    deployment: String,
}

impl Seed {
    /// Runs one seed command with host, token and ids substituted; returns (status, body).
    fn run(&self, command: &str) -> (u16, serde_json::Value) {
        let command = command
            .replace(SEED_HOST, &self.host)
            .replace("<token>", ADMIN_TOKEN)
            .replace(SEED_USECASE, &self.usecase)
            .replace(SEED_DEPLOYMENT, &self.deployment);
        // The harness only adds how it reads the answer: quiet, and the status on a last line.
        let script = format!("{command} --silent --show-error --write-out '\\n%{{http_code}}'");
        let output = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("bash: {e}"));
        assert!(
            output.status.success(),
            "curl failed: {}\n{script}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (
            status.trim().parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        )
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn wait_until_healthy(host: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = reqwest::Client::new();
    loop {
        let healthy = client
            .get(format!("{host}/healthz"))
            .send()
            .await
            .map(|r| r.status().is_success());
        if healthy.unwrap_or(false) {
            return;
        }
        assert!(Instant::now() < deadline, "shiplog serve did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_status(seed: &Seed, status: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = seed.run(GET_DEPLOYMENT);
        if code == 200 && body["status"] == status {
            return body;
        }
        assert!(Instant::now() < deadline, "never {status}: {code} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_seed_curl_walkthrough_works_against_the_binary() {
    let db = TestDb::create().await;
    let port = free_port();
    let host = format!("http://127.0.0.1:{port}");
    let mut child = Shiplog(
        Command::new(env!("CARGO_BIN_EXE_shiplog"))
            .arg("serve")
            .env("SHIPLOG_PROXY_LISTEN", "127.0.0.1:0")
            .env("DATABASE_URL", &db.url)
            .env("SHIPLOG_LISTEN", format!("127.0.0.1:{port}"))
            .env("SHIPLOG_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn shiplog: {e}")),
    );
    wait_until_healthy(&host).await;
    let mut seed = Seed {
        host,
        usecase: String::new(),
        deployment: String::new(),
    };

    let (status, usecase) = seed.run(CREATE);
    assert_eq!(status, 201, "create: {usecase}");
    assert_eq!(usecase["name"], "name of your usecase application");
    assert_eq!(
        usecase["description"],
        "description of your usecase application"
    );
    assert_eq!(usecase["deployment"], serde_json::Value::Null);
    seed.usecase = uuid(&usecase["id"]).to_string();

    let (status, conflict) = seed.run(CREATE);
    assert_eq!(status, 409, "the name is unique: {conflict}");

    let (status, accepted) = seed.run(DEPLOY);
    assert_eq!(status, 202, "deploy: {accepted}");
    seed.deployment = uuid(&accepted["id"]).to_string();

    let (status, deployment) = seed.run(GET_DEPLOYMENT);
    assert_eq!(status, 200);
    assert_eq!(deployment["id"].as_str(), Some(seed.deployment.as_str()));
    assert!(
        matches!(
            deployment["status"].as_str(),
            Some("pending" | "deploying" | "deployed")
        ),
        "{deployment}"
    );

    // With no flags the binary deploys to its built-in Kubernetes simulator, so the
    // process manager moves the deployment to `deployed` by itself.
    let deployed = wait_for_status(&seed, "deployed").await;
    assert_eq!(deployed["message"], "");

    let (status, _) = seed.run(DELETE);
    assert_eq!(status, 409, "a deployed usecase cannot be deleted");
    let (status, _) = seed.run(UNDEPLOY);
    assert_eq!(status, 202, "undeploy");
    wait_for_status(&seed, "undeployed").await;
    let (status, _) = seed.run(DELETE);
    assert_eq!(status, 204, "delete");
    let (status, _) = seed.run(GET_DEPLOYMENT);
    assert_eq!(status, 404, "gone with its usecase");

    // SIGTERM: the server shuts down gracefully and exits 0.
    let pid = child.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = child.0.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            break status;
        }
        assert!(Instant::now() < deadline, "shiplog did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
}
