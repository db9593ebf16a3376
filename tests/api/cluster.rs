//! The process manager against the Kubernetes simulator over HTTP, through the
//! real kube-rs adapter: deployments reach `deployed` by themselves, and the
//! cluster always matches the ledger.

use crate::helpers::{deploy_body, uuid, TestApp, TestDb, NAMESPACE};
use kube_sim::{KubeSim, SimConfig};
use serde_json::{json, Value};
use shiplog_testkit::{eventually, eventually_within};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

async fn sim(ready_delay_ms: u64) -> KubeSim {
    sim_with(Duration::from_millis(ready_delay_ms), true).await
}

/// A simulator whose pods start after `ready_delay`, with metrics.k8s.io or without.
pub async fn sim_with(ready_delay: Duration, metrics_api: bool) -> KubeSim {
    let config = SimConfig {
        ready_delay,
        progress_deadline: Duration::from_secs(5),
        log_interval: Duration::from_millis(100),
        metrics_api,
        // Its ingress controller on a port of its own, so public URLs can be tried.
        ingress_listen: Some(([127, 0, 0, 1], 0).into()),
        ..SimConfig::default()
    };
    KubeSim::start(config)
        .await
        .unwrap_or_else(|e| panic!("simulator: {e}"))
}

/// shiplog on a database of its own, driving `sim`.
pub async fn app_on(sim: &KubeSim) -> TestApp {
    TestApp::spawn_with_cluster(Arc::new(TestDb::create().await), kube_config(sim)).await
}

/// The kube configuration shiplog uses to reach the simulator.
pub fn kube_config(sim: &KubeSim) -> kube::Config {
    let url = sim.url().parse().unwrap_or_else(|e| panic!("{e}"));
    kube::Config::new(url)
}

fn deployment_name(id: Uuid) -> String {
    format!("sl-{}", id.simple())
}

fn names(sim: &KubeSim, resource: &str) -> Vec<String> {
    let mut names: Vec<String> = sim
        .objects(resource, Some(NAMESPACE))
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// The decoded values of a Secret in the test namespace, by key.
pub fn secret_values(sim: &KubeSim, name: &str) -> std::collections::BTreeMap<String, String> {
    use base64::Engine as _;
    let secret = object(sim, "secrets", name).unwrap_or_else(|| panic!("no Secret {name}"));
    secret["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or_default())
                .unwrap_or_else(|e| panic!("{name}.{k}: {e}"));
            (k.clone(), String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect()
}

pub fn object(sim: &KubeSim, resource: &str, name: &str) -> Option<Value> {
    sim.objects(resource, Some(NAMESPACE))
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
}

#[tokio::test]
async fn a_deployment_reaches_deployed_with_its_objects_in_the_cluster() {
    let sim = sim(100).await;
    let app =
        TestApp::spawn_with_cluster(Arc::new(TestDb::create().await), kube_config(&sim)).await;
    let usecase = app.create_usecase("chat").await;
    let body = json!({"config": {
        "image": {"registry": "registry.example.com", "repository": "team/chat", "tag": "1.2.3"},
        "containerPort": 9000, "env": {"MODE": "prod"}, "replicas": 2,
        "serviceMonitor": {"enabled": true, "scrapingInterval": "5s"}
    }});
    let (status, accepted) = app
        .post(&format!("/api/usecases/{usecase}/deployments"), body)
        .await;
    assert_eq!(status, 202);
    let d = uuid(&accepted["id"]);
    let deployed = app.wait_for_status(usecase, d, "deployed").await;
    assert_eq!(deployed.message, "");

    let k8s =
        object(&sim, "deployments", &deployment_name(d)).unwrap_or_else(|| panic!("no Deployment"));
    let container = &k8s["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example.com/team/chat:1.2.3");
    assert_eq!(container["ports"][0]["containerPort"], 9000);
    // The value lives in the deployment's Secret; the Deployment only refers to it.
    assert_eq!(
        container["env"][0],
        json!({"name": "MODE", "valueFrom": {"secretKeyRef": {"name": deployment_name(d), "key": "app.MODE"}}})
    );
    assert!(
        !k8s.to_string().contains("prod"),
        "no value in clear: {k8s}"
    );
    assert_eq!(
        secret_values(&sim, &deployment_name(d)),
        [("app.MODE".to_owned(), "prod".to_owned())].into()
    );
    assert_eq!(k8s["spec"]["replicas"], 2);
    assert_eq!(
        k8s["spec"]["template"]["spec"]["imagePullSecrets"][0]["name"],
        "registry-credentials"
    );
    assert_eq!(
        k8s["metadata"]["labels"]["shiplog.io/usecase"],
        usecase.to_string()
    );
    assert_eq!(
        k8s["metadata"]["labels"]["shiplog.io/deployment"],
        d.to_string()
    );

    // The Service is routed by the reconcile that follows DeploymentSucceeded.
    let service_name = format!("sl-{}", usecase.simple());
    eventually("the Service selects the deployed deployment", || async {
        match object(&sim, "services", &service_name) {
            Some(s) if s["spec"]["selector"]["shiplog.io/deployment"] == d.to_string() => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let service = object(&sim, "services", &service_name).unwrap_or_default();
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 9000);
    let monitor = object(&sim, "servicemonitors", &deployment_name(d))
        .unwrap_or_else(|| panic!("no ServiceMonitor"));
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "5s");

    let (_, u) = app.get(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(u["deployment"]["id"], d.to_string());

    // Outcome events name the process manager and the event that caused them.
    let rows = app.events_of(usecase).await;
    let types: Vec<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "UsecaseRegistered",
            "DeploymentRequested",
            "DeploymentStarted",
            "DeploymentSucceeded"
        ]
    );
    for (event_type, metadata) in &rows[2..] {
        assert_eq!(metadata["actor"], "process-manager", "{event_type}");
        assert!(
            metadata["causation"]
                .as_str()
                .is_some_and(|c| c.len() == 32),
            "{event_type} names its cause: {metadata}"
        );
    }
}

#[tokio::test]
async fn a_second_deployment_supersedes_the_first_and_its_objects_go() {
    let sim = sim(100).await;
    let app =
        TestApp::spawn_with_cluster(Arc::new(TestDb::create().await), kube_config(&sim)).await;
    let usecase = app.create_usecase("chat").await;
    let first = app.deploy(usecase, "1").await;
    app.wait_for_status(usecase, first, "deployed").await;
    let second = app.deploy(usecase, "2").await;
    app.wait_for_status(usecase, second, "deployed").await;
    let superseded = app.wait_for_status(usecase, first, "superseded").await;
    assert_eq!(superseded.superseded_by, Some(second));
    eventually("only the second Deployment is left", || async {
        let left = names(&sim, "deployments");
        if left == [deployment_name(second)] {
            Ok(())
        } else {
            Err(left)
        }
    })
    .await;
    let service = object(&sim, "services", &format!("sl-{}", usecase.simple())).unwrap_or_default();
    assert_eq!(
        service["spec"]["selector"]["shiplog.io/deployment"],
        second.to_string()
    );
    eventually("the first one's pods are gone", || async {
        let others: Vec<Value> = sim
            .objects("pods", Some(NAMESPACE))
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["shiplog.io/deployment"] != second.to_string())
            .map(|p| p["metadata"]["name"].clone())
            .collect();
        if others.is_empty() {
            Ok(())
        } else {
            Err(others)
        }
    })
    .await;
}

#[tokio::test]
async fn a_broken_image_ends_in_error_naming_the_cause_and_leaves_nothing() {
    let sim = sim(100).await;
    let app =
        TestApp::spawn_with_cluster(Arc::new(TestDb::create().await), kube_config(&sim)).await;
    let usecase = app.create_usecase("chat").await;
    let broken = app.deploy(usecase, "1.0-broken").await;
    let failed = app.wait_for_status(usecase, broken, "error").await;
    let message = failed.message.as_str();
    assert!(
        message.contains("ImagePullBackOff")
            && message.contains("registry.example.com/team/app:1.0-broken"),
        "{message}"
    );
    eventually("the failed Deployment is deleted", || async {
        let left = names(&sim, "deployments");
        if left.is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    })
    .await;
    let (_, u) = app.get(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(u["deployment"], Value::Null);

    let (status, body) = app
        .post(&format!("/api/usecases/{usecase}/deployments"), json!({"config": {"image": {"registry": "nowhere.invalid", "repository": "app", "tag": "1"}}}))
        .await;
    assert_eq!(status, 202, "{body}");
    let failed = app
        .wait_for_status(usecase, uuid(&body["id"]), "error")
        .await;
    assert!(
        failed.message.contains("nowhere.invalid/app:1"),
        "{failed:?}"
    );
}

#[tokio::test]
async fn undeploy_removes_the_objects() {
    let sim = sim(100).await;
    let app =
        TestApp::spawn_with_cluster(Arc::new(TestDb::create().await), kube_config(&sim)).await;
    let usecase = app.create_usecase("chat").await;
    let d = app.deploy(usecase, "1").await;
    app.wait_for_status(usecase, d, "deployed").await;
    let (status, _) = app
        .delete(&format!("/api/usecases/{usecase}/deployments"))
        .await;
    assert_eq!(status, 202);
    app.wait_for_status(usecase, d, "undeployed").await;
    eventually("Deployment and Service are gone", || async {
        let left = (names(&sim, "deployments"), names(&sim, "services"));
        if left.0.is_empty() && left.1.is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    })
    .await;
    let (status, _) = app.delete(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_rollout_resumes_and_finishes() {
    let sim = sim(1_500).await;
    let db = Arc::new(TestDb::create().await);
    let mut first = TestApp::spawn_with_cluster(db.clone(), kube_config(&sim)).await;
    let usecase = first.create_usecase("chat").await;
    let d = first.deploy(usecase, "1").await;
    first.wait_for_status(usecase, d, "deploying").await;
    first.stop().await;

    let second = TestApp::spawn_with_cluster(db, kube_config(&sim)).await;
    second.wait_for_status(usecase, d, "deployed").await;
    assert_eq!(names(&sim, "deployments"), [deployment_name(d)]);
}

/// Stops and restarts shiplog at random moments while deployments, supersessions
/// and undeploys are under way, then checks the ledger and the cluster agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_process_manager_at_random_points_loses_nothing_and_orphans_nothing() {
    let sim = sim(150).await;
    let db = Arc::new(TestDb::create().await);
    let mut app = TestApp::spawn_with_cluster(db.clone(), kube_config(&sim)).await;
    let usecases = [
        app.create_usecase("a").await,
        app.create_usecase("b").await,
        app.create_usecase("c").await,
    ];
    let mut rng_state: u64 = 0x5eed_1234_abcd_0001;
    let mut next = move |bound: u64| {
        // xorshift: deterministic "random" points, reproducible from the seed.
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % bound
    };
    let mut requested = 0;
    for round in 0..8 {
        for (i, usecase) in usecases.iter().enumerate() {
            let tag = if (round + i) % 5 == 4 {
                format!("{round}-broken")
            } else {
                format!("{round}")
            };
            let (status, body) = app
                .post(
                    &format!("/api/usecases/{usecase}/deployments"),
                    deploy_body(&tag),
                )
                .await;
            assert_eq!(status, 202, "{body}");
            requested += 1;
        }
        if round % 3 == 2 {
            // Undeploy whatever is deployed (409 when nothing is: fine).
            let _ = app
                .delete(&format!(
                    "/api/usecases/{}/deployments",
                    usecases[round % 3]
                ))
                .await;
        }
        // Kill at a random point: sometimes at once, sometimes mid-rollout.
        tokio::time::sleep(Duration::from_millis(next(400))).await;
        app.stop().await;
        app = TestApp::spawn_with_cluster(db.clone(), kube_config(&sim)).await;
    }

    // Let the last process manager finish: nothing may stay pending or deploying.
    let views = eventually_within(
        "no deployment in flight",
        Duration::from_secs(30),
        || async {
            let mut views = Vec::new();
            for usecase in usecases {
                let (_, page) = app
                    .get(&format!("/api/usecases/{usecase}/deployments?limit=200"))
                    .await;
                views.extend(
                    page["items"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|d| (usecase, d)),
                );
            }
            let busy = views.iter().any(|(_, d)| {
                matches!(d["status"].as_str(), Some("pending" | "deploying"))
                    || d["undeployRequested"] == true
            });
            if busy {
                Err(views)
            } else {
                Ok(views)
            }
        },
    )
    .await;
    assert_eq!(
        views.len(),
        requested,
        "every request is in the ledger once"
    );
    for usecase in usecases {
        let deployed = views
            .iter()
            .filter(|(u, d)| *u == usecase && d["status"] == "deployed")
            .count();
        assert!(deployed <= 1, "usecase {usecase} has {deployed} deployed");
    }
    // The cluster holds exactly the deployed deployments' objects, nothing orphaned.
    let mut expected: Vec<String> = views
        .iter()
        .filter(|(_, d)| d["status"] == "deployed")
        .map(|(_, d)| deployment_name(uuid(&d["id"])))
        .collect();
    expected.sort();
    eventually("the cluster matches the ledger", || async {
        let present = names(&sim, "deployments");
        if present == expected {
            Ok(())
        } else {
            Err(present)
        }
    })
    .await;
    // Every stored event has a unique place in its stream and in the global order.
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) - count(DISTINCT (transaction_id, position)) FROM events",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap_or(-1);
    assert_eq!(duplicates, 0);
    // No deployment got two outcomes of the same kind.
    let repeated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
            SELECT event_type, payload::jsonb -> event_type ->> 'deploymentId' AS deployment
              FROM events
             WHERE payload::jsonb -> event_type ->> 'deploymentId' IS NOT NULL
             GROUP BY 1, 2
            HAVING count(*) > 1) repeated",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap_or(-1);
    assert_eq!(
        repeated, 0,
        "an outcome was recorded twice for one deployment"
    );
}
