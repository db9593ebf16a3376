//! The PhariaOS seed's curl examples, run with curl against the built `shiplog`
//! binary on its defaults (which deploy to the built-in simulator). Only the host and the token are changed (and the example ids are
//! replaced by the ones this run created). The seed text has two quoting slips
//! (a missing `\` after the first Authorization header, and unclosed quotes
//! around two URLs); they are mended here as the README explains.

use crate::binary::{curl, free_port, wait_until_healthy, Shiplog};
use crate::helpers::{uuid, TestDb, ADMIN_TOKEN};
use shiplog_testkit::eventually;
use std::process::{Command, Stdio};

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

struct Seed {
    host: String,
    usecase: String,
    deployment: String,
}

impl Seed {
    /// Runs one seed command with host, token and ids substituted; returns (status, body).
    fn run(&self, command: &str) -> (u16, serde_json::Value) {
        let (status, body) = curl(
            &command
                .replace(SEED_HOST, &self.host)
                .replace("<token>", ADMIN_TOKEN)
                .replace(SEED_USECASE, &self.usecase)
                .replace(SEED_DEPLOYMENT, &self.deployment),
        );
        // The PhariaOS answers are JSON or empty.
        (
            status,
            if body.is_string() {
                serde_json::Value::Null
            } else {
                body
            },
        )
    }
}

async fn wait_for_status(seed: &Seed, status: &str) -> serde_json::Value {
    eventually(
        &format!("the seed's deployment becomes {status}"),
        || async {
            match seed.run(GET_DEPLOYMENT) {
                (200, body) if body["status"] == status => Ok(body),
                other => Err(other),
            }
        },
    )
    .await
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
            // The simulator's ingress controller on a port of its own, not the default 8082.
            .env("SHIPLOG_INGRESS_LISTEN", "127.0.0.1:0")
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
    let exit = eventually("shiplog stops on SIGTERM", || {
        let exited = child.0.try_wait();
        async move {
            exited
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "still running".to_owned())
        }
    })
    .await;
    assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
}
