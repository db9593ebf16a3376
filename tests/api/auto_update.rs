//! Auto-update against a real registry (issue 16): the watcher notices a new digest
//! behind the deployed tag (or a higher version in a semver range) and deploys it,
//! pinned, with actor `auto-update` and its check as causation; a registry
//! notification triggers a check at once; a manual rollback pauses following
//! until auto-update is enabled again; and `GET …/auto-update` shows it all.

use crate::cluster::{kube_config, object, sim_with};
use crate::helpers::{uuid, TestApp, TestDb, ADMIN_TOKEN};
use kube_sim::KubeSim;
use serde_json::{json, Value};
use shiplog_api::server::ResolveDigests;
use shiplog_testkit::{eventually, Notify, Registry, RegistryOptions, ThrottleProxy};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// shiplog on a fresh simulator, pinning digests, checking every `interval`.
async fn app(interval: Duration) -> (KubeSim, TestApp) {
    let sim = sim_with(Duration::from_millis(50), false).await;
    let app = TestApp::spawn_with_cluster_configured(
        Arc::new(TestDb::create().await),
        kube_config(&sim),
        |s| {
            s.resolve_digests = ResolveDigests::Always;
            s.auto_update.interval = interval;
        },
    )
    .await;
    (sim, app)
}

/// A usecase named `name` running `registry/team/app:tag`, deployed.
async fn running(app: &TestApp, name: &str, registry: &str, tag: &str) -> (Uuid, Uuid) {
    let usecase = app.create_usecase(name).await;
    let body =
        json!({"config": {"image": {"registry": registry, "repository": "team/app", "tag": tag}}});
    let (status, accepted) = app
        .post(&format!("/api/usecases/{usecase}/deployments"), body)
        .await;
    assert_eq!(status, 202, "{accepted}");
    let deployment = uuid(&accepted["id"]);
    app.wait_for_status(usecase, deployment, "deployed").await;
    (usecase, deployment)
}

/// `PUT /api/usecases/{id}/auto-update` with `body`; returns what it answers.
async fn set_auto_update(app: &TestApp, usecase: Uuid, body: Value) -> Value {
    let (status, answer) = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/usecases/{usecase}/auto-update"),
            Some(ADMIN_TOKEN),
            Some(body),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// `GET /api/usecases/{id}/auto-update`.
async fn auto_update(app: &TestApp, usecase: Uuid) -> Value {
    let (status, answer) = app
        .get(&format!("/api/usecases/{usecase}/auto-update"))
        .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// Waits for a deployment other than `old` to serve, and returns it.
async fn next_serving(app: &TestApp, usecase: Uuid, old: Uuid) -> Value {
    eventually(&format!("a deployment replaces {old}"), || async {
        let (_, usecase) = app.get(&format!("/api/usecases/{usecase}")).await;
        let deployment = &usecase["deployment"];
        match (deployment["id"].as_str(), deployment["status"].as_str()) {
            (Some(id), Some("deployed")) if id != old.to_string() => Ok(deployment.clone()),
            _ => Err(usecase.to_string()),
        }
    })
    .await
}

/// Waits until the watcher has checked `usecase` with `outcome`; returns the check.
async fn checked(app: &TestApp, usecase: Uuid, outcome: &str) -> Value {
    eventually(&format!("a check of {usecase} ends {outcome}"), || async {
        let state = auto_update(app, usecase).await;
        match state["check"]["outcome"].as_str() {
            Some(o) if o == outcome => Ok(state["check"].clone()),
            _ => Err(state.to_string()),
        }
    })
    .await
}

/// The image of the main container of the deployment's Deployment object, and its strategy.
fn pod(sim: &KubeSim, deployment: &str) -> (Value, Value) {
    let name = format!("sl-{}", deployment.replace('-', ""));
    let object =
        object(sim, "deployments", &name).unwrap_or_else(|| panic!("no Deployment {name}"));
    (
        object["spec"]["template"]["spec"]["containers"][0]["image"].clone(),
        object["spec"]["strategy"]["type"].clone(),
    )
}

#[tokio::test]
async fn a_new_digest_behind_the_tag_is_deployed_with_the_check_as_causation() {
    let registry = Registry::start().await;
    let first = registry.push("team/app", "1.0", "first build").await;
    let (sim, app) = app(Duration::from_secs(1)).await;
    let (usecase, d1) = running(&app, "follows-latest", &registry.host, "1.0").await;

    let enabled = set_auto_update(
        &app,
        usecase,
        json!({"enabled": true, "strategy": "recreate"}),
    )
    .await;
    assert_eq!(enabled["policy"], "digest", "{enabled}");
    assert_eq!(enabled["paused"], Value::Null);
    // The first check finds what runs.
    let check = checked(&app, usecase, "unchanged").await;
    assert_eq!(check["digest"], json!(first.digest), "{check}");
    assert_eq!(check["tag"], "1.0");

    let second = registry.push("team/app", "1.0", "second build").await;
    let d2 = next_serving(&app, usecase, d1).await;
    assert_eq!(
        d2["config"]["image"]["digest"],
        json!(second.digest),
        "{d2}"
    );
    assert_eq!(d2["config"]["image"]["tag"], "1.0");
    assert_eq!(d2["requestedBy"], "auto-update", "{d2}");
    // The pod runs the new bytes, replaced as the deployment's strategy says.
    let (image, strategy) = pod(&sim, d2["id"].as_str().unwrap_or_default());
    assert_eq!(
        image,
        json!(format!("{}/team/app@{}", registry.host, second.digest))
    );
    assert_eq!(strategy, "Recreate");

    // The ledger says what changed and why: the check is the causation.
    let check = checked(&app, usecase, "updated").await;
    let (_, history) = app
        .get(&format!(
            "/api/usecases/{usecase}/history?types=AutoUpdateRequested"
        ))
        .await;
    let item = &history["items"][0];
    let requested = &item["payload"]["AutoUpdateRequested"];
    assert_eq!(requested["digest"], json!(second.digest), "{history}");
    assert_eq!(requested["previousDigest"], json!(first.digest));
    assert_eq!(requested["basedOn"], json!(d1));
    assert_eq!(requested["checkId"], check["id"]);
    assert_eq!(item["metadata"]["actor"], "auto-update");
    assert_eq!(
        item["metadata"]["causation"],
        json!(format!(
            "check:{}",
            check["id"].as_str().unwrap_or_default()
        ))
    );
    assert_eq!(check["digest"], json!(second.digest));
}

#[tokio::test]
async fn the_semver_policy_follows_the_highest_tag_in_its_range() {
    let registry = Registry::start().await;
    registry.push("team/app", "1.4.0", "1.4.0").await;
    let newest_one = registry.push("team/app", "1.5.2", "1.5.2").await;
    registry.push("team/app", "2.0.0", "2.0.0").await;
    registry.push("team/app", "latest", "2.0.0").await;
    let (_sim, app) = app(Duration::from_secs(1)).await;
    let (usecase, d1) = running(&app, "follows-one", &registry.host, "1.4.0").await;

    // A range must be one, and the policy one of the two.
    for (body, field) in [
        (
            json!({"enabled": true, "policy": "semver", "range": ">=2 ||"}),
            "range",
        ),
        (
            json!({"enabled": true, "policy": "digest", "range": "latest"}),
            "range",
        ),
        (json!({"enabled": true, "range": "one"}), "range"),
        (json!({"enabled": true, "policy": "newest"}), "policy"),
    ] {
        let (status, problem) = app
            .send(
                reqwest::Method::PUT,
                &format!("/api/usecases/{usecase}/auto-update"),
                Some(ADMIN_TOKEN),
                Some(body.clone()),
            )
            .await;
        assert!(
            status == 422 || status == 400,
            "{body} answered {status}: {problem}"
        );
        assert!(problem.to_string().contains(field), "{body}: {problem}");
    }

    let enabled = set_auto_update(&app, usecase, json!({"enabled": true, "range": "^1"})).await;
    assert_eq!(enabled["policy"], "semver", "{enabled}");
    assert_eq!(enabled["range"], "^1");
    let d2 = next_serving(&app, usecase, d1).await;
    assert_eq!(d2["config"]["image"]["tag"], "1.5.2", "{d2}");
    assert_eq!(d2["config"]["image"]["digest"], json!(newest_one.digest));

    // A newer 1.x release is followed; 2.0.0 never is.
    let newer = registry.push("team/app", "1.6.0", "1.6.0").await;
    let d3 = next_serving(&app, usecase, uuid(&d2["id"])).await;
    assert_eq!(d3["config"]["image"]["tag"], "1.6.0", "{d3}");
    assert_eq!(d3["config"]["image"]["digest"], json!(newer.digest));
}

#[tokio::test]
async fn a_manual_rollback_pauses_auto_update_until_it_is_enabled_again() {
    let registry = Registry::start().await;
    registry.push("team/app", "1.0", "first build").await;
    registry.push("team/other", "1.0", "control").await;
    let (_sim, app) = app(Duration::from_secs(1)).await;
    let (usecase, d1) = running(&app, "paused", &registry.host, "1.0").await;
    set_auto_update(&app, usecase, json!({"enabled": true})).await;
    checked(&app, usecase, "unchanged").await;
    let second = registry.push("team/app", "1.0", "second build").await;
    let d2 = next_serving(&app, usecase, d1).await;
    assert_eq!(d2["config"]["image"]["digest"], json!(second.digest));

    // The operator rolls back to the first build on purpose.
    let (status, accepted) = app
        .post(
            &format!("/api/usecases/{usecase}/rollback"),
            json!({"deploymentId": d1}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let d3 = uuid(&accepted["id"]);
    app.wait_for_status(usecase, d3, "deployed").await;
    let state = auto_update(&app, usecase).await;
    assert_eq!(state["enabled"], true, "{state}");
    assert_eq!(state["paused"]["rollback"], json!(d3), "{state}");
    assert!(
        state["paused"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&d1.to_string())),
        "{state}"
    );
    let paused_check = state["check"]["id"].clone();
    // The platform API's status says so too, once its read model has the pause.
    eventually("the status shows the pause", || async {
        let (_, shown) = app.get("/api/deployments/status?name=paused").await;
        if shown["autoUpdate"]["paused"]["rollback"] == json!(d3) {
            Ok(())
        } else {
            Err(shown.to_string())
        }
    })
    .await;

    // While paused, the watcher leaves it alone: a control usecase on the same
    // registry is checked twice meanwhile, this one not at all.
    let control = app.create_usecase("control").await;
    let body = json!({"config": {"image": {"registry": registry.host, "repository": "team/other", "tag": "1.0"}}});
    let (_, accepted) = app
        .post(&format!("/api/usecases/{control}/deployments"), body)
        .await;
    app.wait_for_status(control, uuid(&accepted["id"]), "deployed")
        .await;
    set_auto_update(&app, control, json!({"enabled": true})).await;
    let first_control = checked(&app, control, "unchanged").await;
    eventually("the control usecase is checked again", || async {
        let again = auto_update(&app, control).await["check"].clone();
        if again["id"] != first_control["id"] {
            Ok(())
        } else {
            Err(again.to_string())
        }
    })
    .await;
    let state = auto_update(&app, usecase).await;
    assert_eq!(state["check"]["id"], paused_check, "{state}");
    let (_, now) = app.get(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(now["deployment"]["id"], json!(d3), "{now}");

    // Enabling again resumes: the tag's newer build replaces the rollback.
    let resumed = set_auto_update(&app, usecase, json!({"enabled": true})).await;
    assert_eq!(resumed["paused"], Value::Null, "{resumed}");
    let d4 = next_serving(&app, usecase, d3).await;
    assert_eq!(
        d4["config"]["image"]["digest"],
        json!(second.digest),
        "{d4}"
    );
}

#[tokio::test]
async fn a_registry_notification_triggers_a_check_at_once() {
    let registry = Registry::start().await;
    registry.push("team/app", "1.0", "first build").await;
    // An hour between checks: only the notification can make this one happen.
    let (_sim, app) = app(Duration::from_secs(3600)).await;
    let (usecase, d1) = running(&app, "notified", &registry.host, "1.0").await;
    set_auto_update(&app, usecase, json!({"enabled": true})).await;
    let baseline = checked(&app, usecase, "unchanged").await;

    let (status, created) = app
        .post(
            "/api/tokens",
            json!({"name": "registry", "scopes": ["hooks:registry"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let hook_token = created["token"].as_str().unwrap_or_default().to_owned();
    let second = registry.push("team/app", "1.0", "second build").await;
    let notification = json!({"events": [{
        "id": "4f3c", "timestamp": "2026-11-30T01:00:00Z", "action": "push",
        "target": {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": second.digest, "repository": "team/app", "tag": "1.0",
            "url": format!("http://{}/v2/team/app/manifests/{}", registry.host, second.digest)
        },
        "request": {"host": registry.host}
    }]});
    // Only a token with the hooks scope may deliver it.
    for (token, expected) in [(None, 401), (Some(ADMIN_TOKEN.to_owned()), 202)] {
        let (status, _) = app
            .send(
                reqwest::Method::POST,
                "/api/hooks/registry",
                token.as_deref(),
                Some(json!({"events": []})),
            )
            .await;
        assert_eq!(status, expected, "token {token:?}");
    }
    let (status, accepted) = app
        .send(
            reqwest::Method::POST,
            "/api/hooks/registry",
            Some(&hook_token),
            Some(notification),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["pushes"], 1);
    assert_eq!(accepted["checks"], json!([usecase]));
    // The hook token can do nothing else.
    let (status, _) = app
        .send(
            reqwest::Method::GET,
            &format!("/api/usecases/{usecase}"),
            Some(&hook_token),
            None,
        )
        .await;
    assert_eq!(status, 403);

    let d2 = next_serving(&app, usecase, d1).await;
    assert_eq!(
        d2["config"]["image"]["digest"],
        json!(second.digest),
        "{d2}"
    );
    let check = checked(&app, usecase, "updated").await;
    assert_eq!(check["trigger"], "webhook", "{check}");
    assert_ne!(check["id"], baseline["id"]);
}

#[tokio::test]
async fn a_registry_answering_429_is_left_alone_longer_after_each_refusal() {
    let registry = Registry::start().await;
    registry.push("team/app", "1.0", "first build").await;
    let proxy = ThrottleProxy::start(&registry.host).await;
    let (_sim, app) = app(Duration::from_secs(1)).await;
    // The deployment names the proxy as its registry: every check goes through it.
    let (usecase, d1) = running(&app, "throttled", &proxy.host, "1.0").await;
    set_auto_update(&app, usecase, json!({"enabled": true})).await;
    checked(&app, usecase, "unchanged").await;

    proxy.refuse_all(None);
    let first = checked(&app, usecase, "rateLimited").await;
    assert!(
        first["message"].as_str().is_some_and(|m| m.contains("429")),
        "{first}"
    );
    let second = eventually("a second refused check", || async {
        let check = auto_update(&app, usecase).await["check"].clone();
        if check["outcome"] == "rateLimited" && check["id"] != first["id"] {
            Ok(check)
        } else {
            Err(check.to_string())
        }
    })
    .await;
    // The next check waited until the registry's cool-down ended, and the next
    // cool-down is longer.
    let at = |c: &Value, field: &str| {
        c[field]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .unwrap_or_else(|| panic!("{field} of {c}"))
    };
    assert!(
        at(&second, "at") >= at(&first, "resumes"),
        "{first} {second}"
    );
    assert!(
        at(&second, "resumes") - at(&second, "at") > at(&first, "resumes") - at(&first, "at"),
        "{first} {second}"
    );
    let refused_while_cooling = proxy.refused("HEAD", "/v2/team/app/manifests/1.0");

    // Once the registry answers again, the new build is deployed.
    let second_build = registry.push("team/app", "1.0", "second build").await;
    proxy.pass_all();
    let d2 = next_serving(&app, usecase, d1).await;
    assert_eq!(
        d2["config"]["image"]["digest"],
        json!(second_build.digest),
        "{d2}"
    );
    // One refused request per check, not a retry storm.
    assert!(refused_while_cooling <= 3, "{:?}", proxy.requests());
}

#[tokio::test]
async fn the_registry_s_own_notification_deploys_a_push_at_once() {
    // An hour between checks: only the registry's notification can make this one happen.
    let (_sim, app) = app(Duration::from_secs(3600)).await;
    let (status, created) = app
        .post(
            "/api/tokens",
            json!({"name": "registry", "scopes": ["hooks:registry"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let hook_token = created["token"].as_str().unwrap_or_default();
    let registry = Registry::start_with(RegistryOptions {
        notify: Some(Notify {
            url: app.url("/api/hooks/registry"),
            headers: vec![("Authorization".into(), format!("Bearer {hook_token}"))],
        }),
        ..RegistryOptions::default()
    })
    .await;
    registry.push("team/app", "1.0", "first build").await;
    let (usecase, d1) = running(&app, "notified-by-registry", &registry.host, "1.0").await;
    set_auto_update(&app, usecase, json!({"enabled": true})).await;
    checked(&app, usecase, "unchanged").await;

    let second = registry.push("team/app", "1.0", "second build").await;
    let d2 = next_serving(&app, usecase, d1).await;
    assert_eq!(
        d2["config"]["image"]["digest"],
        json!(second.digest),
        "{d2}"
    );
    assert_eq!(
        checked(&app, usecase, "updated").await["trigger"],
        "webhook"
    );
}
