//! Digest pinning against a real registry (issue 16): a deployment by tag runs
//! the manifest digest the tag named when it started, its status, history and
//! time travel show that digest, a rollback runs it again after the tag moved,
//! and a tag that cannot be resolved ends the deployment in `error`.

use crate::cluster::{kube_config, object, sim_with};
use crate::helpers::{TestApp, TestDb};
use kube_sim::KubeSim;
use serde_json::{json, Value};
use shiplog_api::server::ResolveDigests;
use shiplog_testkit::Registry;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// shiplog driving a fresh simulator, resolving digests as `mode` says.
async fn app(mode: ResolveDigests) -> (KubeSim, TestApp) {
    let sim = sim_with(Duration::from_millis(50), false).await;
    let app = TestApp::spawn_with_cluster_configured(
        Arc::new(TestDb::create().await),
        kube_config(&sim),
        |s| s.resolve_digests = mode,
    )
    .await;
    (sim, app)
}

/// Requests a deployment of `registry/repository:tag` and returns its id.
async fn deploy(app: &TestApp, usecase: Uuid, registry: &str, tag: &str) -> Uuid {
    let body =
        json!({"config": {"image": {"registry": registry, "repository": "team/app", "tag": tag}}});
    let (status, accepted) = app
        .post(&format!("/api/usecases/{usecase}/deployments"), body)
        .await;
    assert_eq!(status, 202, "{accepted}");
    crate::helpers::uuid(&accepted["id"])
}

/// The image of the main container of the deployment's Deployment object.
fn pod_image(sim: &KubeSim, deployment: Uuid) -> Value {
    let name = format!("sl-{}", deployment.simple());
    let object =
        object(sim, "deployments", &name).unwrap_or_else(|| panic!("no Deployment {name}"));
    object["spec"]["template"]["spec"]["containers"][0]["image"].clone()
}

#[tokio::test]
async fn a_deployment_by_tag_runs_the_digest_the_tag_named_and_a_rollback_runs_it_again() {
    let registry = Registry::start().await;
    let first = registry.push("team/app", "1.0", "first build").await;
    let (sim, app) = app(ResolveDigests::Always).await;
    let usecase = app.create_usecase("pinned").await;

    let d1 = deploy(&app, usecase, &registry.host, "1.0").await;
    let shown = app.wait_for_status(usecase, d1, "deployed").await;

    // The pod names the digest alone: Kubernetes cannot pull anything else later.
    assert_eq!(
        pod_image(&sim, d1),
        json!(format!("{}/team/app@{}", registry.host, first.digest))
    );
    // Status shows it in the deployment's image, beside the tag it came from.
    assert_eq!(
        shown.config.image.digest.as_deref(),
        Some(first.digest.as_str())
    );
    assert_eq!(shown.config.image.tag, "1.0");
    // History records it on DeploymentStarted.
    let (_, history) = app
        .get(&format!(
            "/api/usecases/{usecase}/history?types=DeploymentStarted"
        ))
        .await;
    assert_eq!(
        history["items"][0]["payload"]["DeploymentStarted"]["digest"],
        json!(first.digest),
        "{history}"
    );
    // Time travel shows it at an instant after the start.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (status, then) = app
        .get(&format!(
            "/api/usecases/{usecase}/deployments/{d1}?at={}",
            now.replace('+', "%2B")
        ))
        .await;
    assert_eq!(status, 200, "{then}");
    assert_eq!(then["config"]["image"]["digest"], json!(first.digest));

    // The tag moves on; a new deployment of it runs the new digest.
    let second = registry.push("team/app", "1.0", "second build").await;
    assert_ne!(first.digest, second.digest);
    let d2 = deploy(&app, usecase, &registry.host, "1.0").await;
    app.wait_for_status(usecase, d2, "deployed").await;
    assert_eq!(
        pod_image(&sim, d2),
        json!(format!("{}/team/app@{}", registry.host, second.digest))
    );

    // Rolling back to the first deployment runs the first build, not what 1.0 names now.
    let (status, accepted) = app
        .post(
            &format!("/api/usecases/{usecase}/rollback"),
            json!({"deploymentId": d1}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let d3 = crate::helpers::uuid(&accepted["id"]);
    let rolled = app.wait_for_status(usecase, d3, "deployed").await;
    assert_eq!(
        rolled.config.image.digest.as_deref(),
        Some(first.digest.as_str())
    );
    assert_eq!(
        pod_image(&sim, d3),
        json!(format!("{}/team/app@{}", registry.host, first.digest))
    );
}

#[tokio::test]
async fn a_tag_the_registry_does_not_know_or_a_registry_that_does_not_answer_ends_in_error() {
    let registry = Registry::start().await;
    registry.push("team/app", "1.0", "only build").await;
    // A loopback port nothing listens on: bound, then released.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let (sim, app) = app(ResolveDigests::Always).await;
    let usecase = app.create_usecase("unresolved").await;

    let missing = deploy(&app, usecase, &registry.host, "9.9").await;
    let failed = app.wait_for_status(usecase, missing, "error").await;
    for part in [
        registry.host.as_str(),
        &format!("{}/team/app:9.9", registry.host),
        "404",
    ] {
        assert!(
            failed.message.contains(part),
            "the message names {part}: {}",
            failed.message
        );
    }
    let unreachable = deploy(&app, usecase, &silent.to_string(), "1.0").await;
    let failed = app.wait_for_status(usecase, unreachable, "error").await;
    for part in [silent.to_string().as_str(), "unreachable"] {
        assert!(
            failed.message.contains(part),
            "the message names {part}: {}",
            failed.message
        );
    }
    // Nothing was applied for either.
    for id in [missing, unreachable] {
        let name = format!("sl-{}", id.simple());
        assert!(
            object(&sim, "deployments", &name).is_none(),
            "{name} applied"
        );
    }
}

#[tokio::test]
async fn auto_in_simulated_mode_deploys_a_made_up_registry_by_its_tag() {
    let (sim, app) = app(ResolveDigests::Auto).await;
    let usecase = app.create_usecase("made-up").await;
    let deployment = deploy(&app, usecase, "registry.example.com", "1.0").await;
    let shown = app.wait_for_status(usecase, deployment, "deployed").await;
    assert_eq!(shown.config.image.digest, None);
    assert_eq!(
        pod_image(&sim, deployment),
        json!("registry.example.com/team/app:1.0")
    );
}
