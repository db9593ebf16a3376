//! The deployment lifecycle through the API, with outcomes driven as the process manager will.

use crate::helpers::{TestApp, PROCESS_MANAGER};
use serde_json::{json, Value};
use shiplog_domain::UsecaseCommand;

#[tokio::test]
async fn a_deployment_starts_pending_and_carries_its_config_and_requester() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("chat").await;
    let body = json!({"config": {
        "image": {"registry": "your.container.registry.de", "repository": "your/repository", "tag": "1.0.0"},
        "serviceMonitor": {"enabled": true, "scrapingInterval": "5s"},
        "containerPort": 9000, "env": {"MODE": "prod"}, "replicas": 2,
        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}}
    }});
    let (status, accepted) = app
        .post(&format!("/api/usecases/{usecase}/deployments"), body)
        .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap_or_default().to_owned();
    let (status, d) = app
        .get(&format!("/api/usecases/{usecase}/deployments/{id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(d["status"], "pending");
    assert_eq!(d["message"], "");
    assert_eq!(d["requestedBy"], "admin");
    assert_eq!(
        d["config"]["serviceMonitor"],
        json!({"enabled": true, "scrapingInterval": "5s"})
    );
    assert_eq!(d["config"]["containerPort"], 9000);
    assert_eq!(d["config"]["replicas"], 2);
    assert_eq!(d["config"]["env"]["MODE"], "prod");
    assert_eq!(d["config"]["resources"]["limits"]["memory"], "256Mi");
}

#[tokio::test]
async fn the_usecase_shows_no_deployment_until_one_succeeded() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("chat").await;
    let first = app.deploy(usecase, "1").await;
    let (_, u) = app.get(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(u["deployment"], Value::Null, "pending only: {u}");
    app.mark_deployed(usecase, first).await;
    let (_, u) = app.get(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(
        (
            u["deployment"]["id"].as_str(),
            u["deployment"]["status"].as_str()
        ),
        (Some(first.to_string().as_str()), Some("deployed"))
    );
    // A newer request that fails does not become the usecase's deployment.
    let failing = app.deploy(usecase, "2").await;
    app.record(
        usecase,
        UsecaseCommand::FailDeployment {
            deployment_id: failing,
            message: "ImagePullBackOff: image not found".into(),
            at: chrono::Utc::now(),
        },
    )
    .await;
    let failed = app.wait_for_status(usecase, failing, "error").await;
    assert_eq!(failed.message, "ImagePullBackOff: image not found");
    assert!(failed.updated_at >= failed.created_at, "{failed:?}");
    let (_, u) = app.get(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(
        u["deployment"]["id"],
        first.to_string(),
        "error deployments are skipped: {u}"
    );
}

#[tokio::test]
async fn a_newer_request_supersedes_the_pending_one_and_then_the_deployed_one() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("chat").await;
    let d1 = app.deploy(usecase, "1").await;
    let d2 = app.deploy(usecase, "2").await;
    let (_, first) = app
        .get(&format!("/api/usecases/{usecase}/deployments/{d1}"))
        .await;
    assert_eq!(
        (first["status"].as_str(), first["supersededBy"].as_str()),
        (Some("superseded"), Some(d2.to_string().as_str()))
    );
    app.mark_deployed(usecase, d2).await;
    let d3 = app.deploy(usecase, "3").await;
    app.mark_deployed(usecase, d3).await;
    let (_, page) = app
        .get(&format!("/api/usecases/{usecase}/deployments"))
        .await;
    let statuses: Vec<&str> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["status"].as_str())
        .collect();
    assert_eq!(
        statuses,
        ["deployed", "superseded", "superseded"],
        "newest first, one deployed: {page}"
    );
}

#[tokio::test]
async fn undeploy_needs_something_deployed_and_delete_needs_nothing_running() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("chat").await;
    let (status, body) = app
        .delete(&format!("/api/usecases/{usecase}/deployments"))
        .await;
    assert_eq!(status, 409, "undeploy with nothing deployed: {body}");
    let d1 = app.deploy(usecase, "1").await;
    let (status, _) = app.delete(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(status, 409, "delete while a deployment is pending");
    app.mark_deployed(usecase, d1).await;
    let (status, _) = app.delete(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(status, 409, "delete while deployed");
    let (status, _) = app
        .delete(&format!("/api/usecases/{usecase}/deployments"))
        .await;
    assert_eq!(status, 202, "undeploy");
    let (_, d) = app
        .get(&format!("/api/usecases/{usecase}/deployments/{d1}"))
        .await;
    assert_eq!(d["undeployRequested"], true);
    let (status, _) = app
        .delete(&format!("/api/usecases/{usecase}/deployments"))
        .await;
    assert_eq!(
        status, 409,
        "a second undeploy while the first is under way"
    );
    let (status, _) = app.delete(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(status, 409, "delete while undeploying");
    app.record(
        usecase,
        UsecaseCommand::ConfirmUndeployed {
            deployment_id: d1,
            at: chrono::Utc::now(),
        },
    )
    .await;
    let d = app.wait_for_status(usecase, d1, "undeployed").await;
    assert!(!d.undeploy_requested, "the undeploy has finished: {d:?}");
    let (status, _) = app.delete(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn unknown_deployments_are_404() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("chat").await;
    let other = app.create_usecase("other").await;
    let d = app.deploy(other, "1").await;
    let (status, _) = app
        .get(&format!(
            "/api/usecases/{usecase}/deployments/{}",
            uuid::Uuid::new_v4()
        ))
        .await;
    assert_eq!(status, 404, "an id that does not exist");
    let (status, _) = app
        .get(&format!("/api/usecases/{usecase}/deployments/{d}"))
        .await;
    assert_eq!(status, 404, "a deployment of another usecase");
}

#[tokio::test]
async fn every_event_records_actor_and_request_id() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("chat").await;
    let d = app.deploy(usecase, "1").await;
    app.mark_deployed(usecase, d).await;
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
    for (event_type, metadata) in &rows[..2] {
        assert_eq!(metadata["actor"], "admin", "{event_type}");
        assert_eq!(
            metadata["request_id"].as_str().map(|r| r.len()),
            Some(36),
            "{event_type}: a request uuid"
        );
    }
    assert_eq!(rows[2].1["actor"], PROCESS_MANAGER);
}
