//! Digest pinning against a real registry (issue 16): a deployment by tag runs
//! the manifest digest the tag named when it started, its status, history and
//! time travel show that digest, a rollback runs it again after the tag moved,
//! and a tag that cannot be resolved ends the deployment in `error`. A private
//! registry is read with the credentials of the pull secret shiplog is told of.

use crate::cluster::{kube_config, object, sim_with};
use crate::helpers::{TestApp, TestDb, ADMIN_TOKEN, NAMESPACE};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PostParams};
use kube_sim::KubeSim;
use serde_json::{json, Value};
use shiplog_api::server::ResolveDigests;
use shiplog_testkit::{eventually, Registry, RegistryOptions, ThrottleProxy};
use std::collections::BTreeMap;
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

/// The pull secret every test app names (`--image-pull-secret`, in `helpers.rs`).
const PULL_SECRET: &str = "registry-credentials";

/// Creates the pull secret shiplog reads credentials from, holding `docker_config`,
/// in the simulator through the Kubernetes API, as an operator would.
async fn create_pull_secret(sim: &KubeSim, docker_config: String) {
    let client = kube::Client::try_from(kube_config(sim)).unwrap_or_else(|e| panic!("{e}"));
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client, NAMESPACE);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(PULL_SECRET.to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".to_owned()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_owned(),
            ByteString(docker_config.into_bytes()),
        )])),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|e| panic!("create the pull secret: {e}"));
}

/// A registry that only lets `robot` in.
async fn private_registry() -> Registry {
    Registry::start_with(RegistryOptions {
        auth: Some(("robot".to_owned(), "s3cret".to_owned())),
        notify: None,
    })
    .await
}

#[tokio::test]
async fn a_private_registry_answers_401_without_credentials_and_the_pull_secret_s_let_it_deploy() {
    let registry = private_registry().await;
    let pushed = registry.push("team/app", "1.0", "private build").await;
    let (sim, app) = app(ResolveDigests::Always).await;
    let usecase = app.create_usecase("private").await;

    // No pull secret yet: the registry refuses, and the deployment says so.
    let refused = deploy(&app, usecase, &registry.host, "1.0").await;
    let failed = app.wait_for_status(usecase, refused, "error").await;
    for part in [
        registry.host.as_str(),
        &format!("{}/team/app:1.0", registry.host),
        "401",
    ] {
        assert!(
            failed.message.contains(part),
            "the message names {part}: {}",
            failed.message
        );
    }
    let name = format!("sl-{}", refused.simple());
    assert!(
        object(&sim, "deployments", &name).is_none(),
        "{name} applied"
    );

    // With the credentials in the pull secret, the same image deploys, pinned.
    create_pull_secret(&sim, registry.docker_config()).await;
    let admitted = deploy(&app, usecase, &registry.host, "1.0").await;
    let shown = app.wait_for_status(usecase, admitted, "deployed").await;
    assert_eq!(
        shown.config.image.digest.as_deref(),
        Some(pushed.digest.as_str())
    );
    assert_eq!(
        pod_image(&sim, admitted),
        json!(format!("{}/team/app@{}", registry.host, pushed.digest))
    );
}

#[tokio::test]
async fn the_audit_export_carries_the_digest_a_deployment_started_with() {
    let registry = Registry::start().await;
    let pushed = registry.push("team/app", "1.0", "audited build").await;
    let (_sim, app) = app(ResolveDigests::Always).await;
    let usecase = app.create_usecase("audited").await;
    let deployment = deploy(&app, usecase, &registry.host, "1.0").await;
    app.wait_for_status(usecase, deployment, "deployed").await;

    // The export holds sealed events only: wait until the start is sealed.
    let started = eventually("DeploymentStarted in the audit export", || async {
        let export = app
            .client
            .get(app.url("/api/audit/export"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        export
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["type"] == "DeploymentStarted")
            .ok_or(export)
    })
    .await;
    assert_eq!(started["usecaseId"], json!(usecase), "{started}");
    assert_eq!(
        started["payload"]["DeploymentStarted"]["digest"],
        json!(pushed.digest),
        "{started}"
    );
}

#[tokio::test]
async fn a_private_registry_behind_the_test_proxy_resolves_with_one_head() {
    let registry = private_registry().await;
    let pushed = registry.push("team/app", "1.0", "proxied build").await;
    let proxy = ThrottleProxy::start(&registry.host).await;
    let (sim, app) = app(ResolveDigests::Always).await;
    // The credentials are the registry's, filed under the name shiplog is given: the proxy's.
    create_pull_secret(
        &sim,
        json!({"auths": {&proxy.host: {"username": "robot", "password": "s3cret"}}}).to_string(),
    )
    .await;
    let usecase = app.create_usecase("proxied").await;

    let deployment = deploy(&app, usecase, &proxy.host, "1.0").await;
    let shown = app.wait_for_status(usecase, deployment, "deployed").await;
    assert_eq!(
        shown.config.image.digest.as_deref(),
        Some(pushed.digest.as_str())
    );
    // oci-client met the registry's basic challenge through the proxy and took the
    // digest from the HEAD's Docker-Content-Digest, with no GET after it.
    let manifest = "/v2/team/app/manifests/1.0";
    assert_eq!(
        proxy.forwarded("HEAD", manifest),
        1,
        "{:?}",
        proxy.requests()
    );
    assert_eq!(
        proxy.forwarded("GET", manifest),
        0,
        "{:?}",
        proxy.requests()
    );
}
