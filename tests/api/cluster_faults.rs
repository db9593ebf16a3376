//! The deployment flows against an unreliable Kubernetes API: the simulator fails one
//! request in ten (500s, 429s, timeouts, dropped connections, slow answers, dropped and
//! expired watches; seeded). Every flow still ends in the right state, the cluster holds
//! exactly what the ledger says is deployed, and `/metrics` counts the retries it took.

use crate::binary::{free_port, wait_until_healthy, Shiplog};
use crate::cluster::kube_config;
use crate::helpers::{uuid, TestApp, TestDb, ADMIN_TOKEN, NAMESPACE};
use crate::metrics::scrape;
use kube_sim::{Faults, KubeSim, SimConfig};
use serde_json::{json, Value};
use shiplog_testkit::{eventually_within, scaled};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The share of API requests that fail, as the issue asks.
const FAULT_RATE: f64 = 0.1;
/// A fixed seed: the same faults for the same sequence of requests.
const SEED: u64 = 17;
/// How long shiplog waits for one API call here; the simulator's timeouts hold longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// What each wait of a flow may take: faults make a flow slower, never stuck.
const BUDGET: Duration = Duration::from_secs(30);
/// What all the flows together may take (a few seconds without faults, about ten with).
const FLOWS_BUDGET: Duration = Duration::from_secs(30);

async fn faulty_sim() -> KubeSim {
    KubeSim::start(SimConfig {
        ready_delay: Duration::from_millis(100),
        progress_deadline: Duration::from_secs(5),
        log_interval: Duration::from_millis(100),
        ingress_listen: Some(([127, 0, 0, 1], 0).into()),
        faults: Faults {
            rate: FAULT_RATE,
            seed: SEED,
            hold: 2 * REQUEST_TIMEOUT,
            delay: Duration::from_millis(300),
        },
        ..SimConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("simulator: {e}"))
}

/// Reads the deployment until it shows `status`.
async fn wait_status(app: &TestApp, usecase: Uuid, deployment: Uuid, status: &str) -> Value {
    let path = format!("/api/usecases/{usecase}/deployments/{deployment}");
    eventually_within(
        &format!("deployment {deployment} becomes {status}"),
        BUDGET,
        || async {
            match app.get(&path).await {
                (200, d) if d["status"] == status => Ok(d),
                other => Err(other),
            }
        },
    )
    .await
}

/// The usecase's events, oldest first (none once it is deleted and forgotten: never here).
async fn event_types(app: &TestApp, usecase: Uuid) -> Vec<String> {
    app.events_of(usecase)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

/// Waits until the usecase's ledger holds an event of `event_type` after `after` others.
async fn wait_event(app: &TestApp, usecase: Uuid, event_type: &str, after: usize) {
    eventually_within(
        &format!("a {event_type} event of usecase {usecase}"),
        BUDGET,
        || async {
            let types = event_types(app, usecase).await;
            if types.iter().skip(after).any(|t| t == event_type) {
                Ok(())
            } else {
                Err(types)
            }
        },
    )
    .await;
}

fn accepted(response: (u16, Value), what: &str) -> Value {
    let (status, body) = response;
    assert_eq!(status, 202, "{what}: {body}");
    body
}

/// Deploy, change the config, restart, roll back, undeploy, delete: each step ends as it
/// would on a reliable cluster.
async fn lifecycle(app: &TestApp) -> Uuid {
    let usecase = app.create_usecase("lifecycle").await;
    let body = json!({"config": {
        "image": {"registry": "registry.example.com", "repository": "team/app", "tag": "1.0.0"},
        "env": {"MODE": "prod"},
    }});
    let path = format!("/api/usecases/{usecase}/deployments");
    let d1 = uuid(&accepted(app.post(&path, body).await, "deploy")["id"]);
    wait_status(app, usecase, d1, "deployed").await;

    let change = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/usecases/{usecase}/config"),
            Some(ADMIN_TOKEN),
            Some(json!({"env": {"MODE": "debug"}})),
        )
        .await;
    let d2 = uuid(&accepted(change, "config change")["id"]);
    wait_status(app, usecase, d2, "deployed").await;
    wait_status(app, usecase, d1, "superseded").await;

    let before = event_types(app, usecase).await.len();
    let restart = app
        .post(&format!("/api/usecases/{usecase}/restart"), json!({}))
        .await;
    let restart = accepted(restart, "restart");
    assert_eq!(restart["deploymentId"], d2.to_string());
    wait_event(app, usecase, "RestartSucceeded", before).await;
    wait_status(app, usecase, d2, "deployed").await;

    let rollback = app
        .post(&format!("/api/usecases/{usecase}/rollback"), json!({}))
        .await;
    let rollback = accepted(rollback, "rollback");
    assert_eq!(rollback["rollbackOf"], d1.to_string());
    let d3 = uuid(&rollback["id"]);
    wait_status(app, usecase, d3, "deployed").await;
    wait_status(app, usecase, d2, "superseded").await;
    let (_, config) = app.get(&format!("/api/usecases/{usecase}/config")).await;
    assert_eq!(
        config["env"],
        json!({"MODE": "prod"}),
        "d1's config is back"
    );

    accepted(app.delete(&path).await, "undeploy");
    wait_status(app, usecase, d3, "undeployed").await;
    let (status, body) = app.delete(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(status, 204, "delete: {body}");
    let (status, _) = app.get(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(status, 404, "a deleted usecase");
    usecase
}

/// An image that cannot be pulled ends in error, naming the cause.
async fn broken(app: &TestApp) -> Uuid {
    let usecase = app.create_usecase("broken").await;
    let path = format!("/api/usecases/{usecase}/deployments");
    let body = crate::helpers::deploy_body("1.0-broken");
    let d = uuid(&accepted(app.post(&path, body).await, "deploy")["id"]);
    let failed = wait_status(app, usecase, d, "error").await;
    let message = failed["message"].as_str().unwrap_or_default();
    assert!(message.contains("ImagePullBackOff"), "{message}");
    usecase
}

/// A deployment that stays deployed.
async fn steady(app: &TestApp) -> Uuid {
    let usecase = app.create_usecase("steady").await;
    let path = format!("/api/usecases/{usecase}/deployments");
    let body = crate::helpers::deploy_body("2.0.0");
    let d = uuid(&accepted(app.post(&path, body).await, "deploy")["id"]);
    wait_status(app, usecase, d, "deployed").await;
    usecase
}

/// A public platform deployment (Service, Ingress, Secret) deleted while it serves: it is
/// undeployed, then deleted, and nothing of it is left.
async fn deleted_while_serving(app: &TestApp) -> Uuid {
    let created = app
        .post(
            "/api/deployments/deploy-image",
            json!({"image": "registry.example.com/team/web:1.0", "name": "web", "envVars": {"TOKEN": "t0ps3cret"}}),
        )
        .await;
    assert_eq!(created.0, 201, "{}", created.1);
    let usecase = uuid(&created.1["id"]);
    let status = "/api/deployments/status?name=web";
    eventually_within("web is Ready", BUDGET, || async {
        match app.get(status).await {
            (200, body) if body["status"] == "Ready" => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let (code, deleted) = app
        .post("/api/deployments/delete", json!({"deployment_name": "web"}))
        .await;
    assert_eq!(code, 200, "{deleted}");
    eventually_within("web is gone", BUDGET, || async {
        match app.get(status).await {
            (404, _) => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let types = event_types(app, usecase).await;
    assert!(
        types.ends_with(&[
            "DeletionRequested".to_owned(),
            "UndeployRequested".to_owned(),
            "DeploymentUndeployed".to_owned(),
            "UsecaseDeleted".to_owned()
        ]),
        "{types:?}"
    );
    usecase
}

/// The names of the simulator's objects of `resource` in shiplog's namespace.
fn names(sim: &KubeSim, resource: &str) -> BTreeSet<String> {
    sim.objects(resource, Some(NAMESPACE))
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// What the cluster must hold by the ledger: the objects of every deployed deployment and
/// the Service of its usecase. Fails while anything is still in flight.
async fn expected_by_ledger(
    app: &TestApp,
    usecases: &[Uuid],
) -> Result<(BTreeSet<String>, BTreeSet<String>), Vec<Value>> {
    let mut deployments = BTreeSet::new();
    let mut services = BTreeSet::new();
    let mut busy = Vec::new();
    for usecase in usecases {
        let (status, page) = app
            .get(&format!("/api/usecases/{usecase}/deployments?limit=200"))
            .await;
        if status == 404 {
            // Deleted: nothing of it may remain.
            continue;
        }
        for d in page["items"].as_array().cloned().unwrap_or_default() {
            if matches!(d["status"].as_str(), Some("pending" | "deploying"))
                || d["undeployRequested"] == true
            {
                busy.push(d.clone());
            }
            if d["status"] == "deployed" {
                deployments.insert(format!("sl-{}", uuid(&d["id"]).simple()));
                services.insert(format!("sl-{}", usecase.simple()));
            }
        }
    }
    if busy.is_empty() {
        Ok((deployments, services))
    } else {
        Err(busy)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_ends_in_the_right_state_when_one_api_request_in_ten_fails() {
    let sim = faulty_sim().await;
    let port = sim.ingress_addr().map(|a| a.port());
    let app = TestApp::spawn_with_cluster_configured(
        Arc::new(TestDb::create().await),
        kube_config(&sim),
        |settings| {
            settings.kube.request_timeout = REQUEST_TIMEOUT;
            settings.kube.ingress.port = port;
        },
    )
    .await;

    // All at once, within a bound: shiplog must cope, not merely get there in the end
    // (without retries of its own calls, the same run takes close to a minute).
    let flows = async {
        tokio::join!(
            lifecycle(&app),
            broken(&app),
            steady(&app),
            deleted_while_serving(&app)
        )
    };
    let (lifecycle, broken, steady, web) = tokio::time::timeout(scaled(FLOWS_BUDGET), flows)
        .await
        .unwrap_or_else(|_| panic!("the flows did not all finish within {FLOWS_BUDGET:?}"));

    // The cluster holds exactly what the ledger says is deployed: steady's objects only.
    let usecases = [lifecycle, broken, steady, web];
    let (deployments, services) = eventually_within("nothing in flight", BUDGET, || {
        expected_by_ledger(&app, &usecases)
    })
    .await;
    assert_eq!(deployments.len(), 1, "only steady is deployed");
    eventually_within("the cluster matches the ledger", BUDGET, || async {
        let present = (
            names(&sim, "deployments"),
            names(&sim, "services"),
            names(&sim, "secrets"),
            names(&sim, "ingresses"),
        );
        let wanted = (
            deployments.clone(),
            services.clone(),
            // A deployment's Secret carries its environment, and goes with it.
            deployments.clone(),
            BTreeSet::new(),
        );
        if present == wanted {
            Ok(())
        } else {
            Err(present)
        }
    })
    .await;

    // The faults happened, and shiplog got through them by trying again.
    let injected = sim.injected_faults();
    assert!(
        injected.values().sum::<u64>() >= 10,
        "the simulator injected faults: {injected:?}"
    );
    let retries = scrape(&app).await.total("shiplog_cluster_retries");
    assert!(
        retries > 0.0,
        "/metrics counts the retries ({injected:?} injected)"
    );
}

/// The sum of `shiplog_cluster_retries_total` over its label sets, in a scrape's text.
fn retries_in(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("shiplog_cluster_retries_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn serve_injects_faults_in_its_built_in_simulator_when_asked_and_still_deploys() {
    let db = TestDb::create().await;
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("shiplog-sim-faults-{}.log", Uuid::new_v4()));
    let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("{e}"));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args([
            "serve",
            "--cluster",
            "simulated",
            "--resolve-digests",
            "never",
        ])
        .args(["--sim-fault-rate", "0.3", "--sim-fault-seed", "5"])
        .args(["--cluster-request-timeout", "1"])
        .env("DATABASE_URL", &db.url)
        .env("SHIPLOG_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SHIPLOG_LISTEN", format!("127.0.0.1:{port}"))
        .env("SHIPLOG_PROXY_LISTEN", "127.0.0.1:0")
        .env("SHIPLOG_INGRESS_LISTEN", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn shiplog: {e}"));
    let _serve = Shiplog(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_until_healthy(&base).await;
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        log.contains("injects API-server faults") && log.contains("seed=5"),
        "the log says faults are injected, and with which seed:\n{log}"
    );

    let api =
        shiplog_client::Client::new(&base, Some(ADMIN_TOKEN)).unwrap_or_else(|e| panic!("{e}"));
    let usecase = api
        .create_usecase(
            &shiplog_client::wire::usecases::CreateUsecase {
                name: "embedded".to_owned(),
                description: None,
            },
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .id;
    let deployment = api
        .deploy(usecase, &crate::helpers::deployment_of("1.0.0"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .id;
    eventually_within("the deployment is deployed", BUDGET, || async {
        match api.deployment(usecase, deployment).await {
            Ok(d) if d.status.as_str() == "deployed" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let http = reqwest::Client::new();
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(retries_in(&metrics) > 0.0, "{metrics}");
    let _ = std::fs::remove_file(&log_path);
}
