//! Restart: fresh pods roll, the outcome is recorded, and the application keeps
//! answering through the proxy meanwhile.

use super::{deployed, event_of, pod_names, sim, through_proxy};
use crate::cluster::{app_on, sim_with};
use crate::helpers::{uuid, TestApp, NAMESPACE};
use serde_json::{json, Value};
use shiplog_testkit::eventually;
use std::time::Duration;
use uuid::Uuid;

#[tokio::test]
async fn a_restart_rolls_fresh_pods_and_records_its_outcome() {
    let sim = sim(true).await;
    let app = app_on(&sim).await;
    let (usecase, d1) = deployed(&app, "restartable", "1.0.0", json!({})).await;
    let pods_before: Vec<String> = pod_names(&sim, d1);
    assert!(!pods_before.is_empty());

    let (status, accepted) = app
        .post(&format!("/api/usecases/{usecase}/restart"), json!({}))
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["deploymentId"], d1.to_string());
    let restart_id = accepted["restartId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let done = event_of(&app, usecase, "RestartSucceeded").await;
    assert_eq!(done["payload"]["RestartSucceeded"]["restartId"], restart_id);
    assert_eq!(done["actor"], "process-manager");
    let requested = event_of(&app, usecase, "RestartRequested").await;
    assert_eq!(requested["actor"], "admin");
    assert_eq!(
        requested["payload"]["RestartRequested"]["deploymentId"],
        d1.to_string()
    );

    // Fresh pods, stamped with the restart; the deployment is still the deployed one.
    let pods_after = pod_names(&sim, d1);
    assert!(!pods_after.is_empty());
    assert!(
        pods_after.iter().all(|p| !pods_before.contains(p)),
        "{pods_before:?} {pods_after:?}"
    );
    let k8s = sim
        .objects("deployments", Some(NAMESPACE))
        .into_iter()
        .find(|o| o["metadata"]["name"] == format!("sl-{}", d1.simple()))
        .unwrap_or_default();
    assert_eq!(
        k8s["spec"]["template"]["metadata"]["annotations"]["shiplog.io/restart"],
        restart_id
    );
    let view = app.wait_for_status(usecase, d1, "deployed").await;
    assert_eq!(view.status.as_str(), "deployed");

    // A second restart is accepted once the first finished; nothing deployed is a 409.
    let (status, _) = app
        .post(&format!("/api/usecases/{usecase}/restart"), json!({}))
        .await;
    assert_eq!(status, 202);
    let (status, _) = app
        .post(
            &format!("/api/usecases/{}/restart", Uuid::new_v4()),
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "an unknown usecase");
    let other = app.create_usecase("idle").await;
    let (status, problem) = app
        .post(&format!("/api/usecases/{other}/restart"), json!({}))
        .await;
    assert_eq!(status, 409, "{problem}");
}

/// Sends requests through the proxy one after another until `done` finishes; every one must
/// answer 200. Returns what `done` gave and the echo of every answer.
async fn answering_until<T>(
    app: &TestApp,
    usecase: Uuid,
    what: &str,
    done: impl std::future::Future<Output = T>,
) -> (T, Vec<Value>) {
    let mut done = std::pin::pin!(done);
    let mut echoes: Vec<Value> = Vec::new();
    loop {
        let request = async {
            let response = through_proxy(app, reqwest::Method::GET, &format!("/{usecase}/during"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{what}: request {}: {e}", echoes.len() + 1));
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            (status, body)
        };
        tokio::select! {
            biased;
            out = &mut done => return (out, echoes),
            (status, body) = request => {
                assert_eq!(
                    status,
                    200,
                    "{what}: request {} after {} answered: {body}",
                    echoes.len() + 1,
                    echoes.len()
                );
                let echo = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
                echoes.push(echo);
            }
        }
    }
}

/// The pod an echo answer came from.
fn pod_of(echo: &Value) -> String {
    echo["pod"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_restart_keeps_the_application_answering_through_the_proxy() {
    // New pods take a second to become ready: long enough that requests surely overlap
    // each rollout, however slow the machine is.
    let sim = sim_with(Duration::from_secs(1), true).await;
    let app = app_on(&sim).await;
    let (usecase, d1) = deployed(&app, "steady", "1.0.0", json!({})).await;
    let old_pods = pod_names(&sim, d1);

    // A restart rolls the pods while requests keep coming: the old pod serves until the
    // new one is Ready.
    let (status, accepted) = app
        .post(&format!("/api/usecases/{usecase}/restart"), json!({}))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let (_, during) = answering_until(
        &app,
        usecase,
        "restart",
        event_of(&app, usecase, "RestartSucceeded"),
    )
    .await;
    assert!(
        during.len() >= 3,
        "only {} requests during the restart",
        during.len()
    );
    assert!(
        during
            .iter()
            .all(|e| e["labels"]["shiplog.io/deployment"] == d1.to_string()),
        "{during:?}"
    );
    assert!(
        old_pods.contains(&pod_of(&during[0])),
        "the first request did not reach the old pod {old_pods:?}: {}",
        during[0]
    );
    let response = through_proxy(&app, reqwest::Method::GET, &format!("/{usecase}/after"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let after: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    let new_pods = pod_names(&sim, d1);
    assert!(
        new_pods.contains(&pod_of(&after)) && !old_pods.contains(&pod_of(&after)),
        "{} answered; old {old_pods:?}, new {new_pods:?}",
        pod_of(&after)
    );

    // A new tag: requests keep answering while the Service moves to the new deployment and
    // the old one is removed.
    let body = json!({"config": {
        "image": {"registry": "registry.example.com", "repository": "team/app", "tag": "2.0.0"},
    }});
    let (status, accepted) = app
        .post(&format!("/api/usecases/{usecase}/deployments"), body)
        .await;
    assert_eq!(status, 202, "{accepted}");
    let d2 = uuid(&accepted["id"]);
    let handover = async {
        app.wait_for_status(usecase, d2, "deployed").await;
        let old_name = format!("sl-{}", d1.simple());
        eventually(&format!("{old_name} and its pods are removed"), || async {
            let deployment_left = sim
                .objects("deployments", Some(NAMESPACE))
                .iter()
                .any(|d| d["metadata"]["name"] == old_name);
            let pods_left = pod_names(&sim, d1);
            if deployment_left || !pods_left.is_empty() {
                Err((deployment_left, pods_left))
            } else {
                Ok(())
            }
        })
        .await;
    };
    let ((), during) = answering_until(&app, usecase, "new tag", handover).await;
    assert!(
        during.len() >= 3,
        "only {} requests during the new deploy",
        during.len()
    );
    let from = |d: Uuid| {
        during
            .iter()
            .filter(|e| e["labels"]["shiplog.io/deployment"] == d.to_string())
            .count()
    };
    assert!(
        from(d1) > 0 && from(d1) + from(d2) == during.len(),
        "{} from the old deployment, {} from the new, of {}",
        from(d1),
        from(d2),
        during.len()
    );
    let response = through_proxy(&app, reqwest::Method::GET, &format!("/{usecase}/after"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let after: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after["labels"]["shiplog.io/deployment"], d2.to_string());
    assert!(
        pod_names(&sim, d2).contains(&pod_of(&after)),
        "{} is not a pod of {d2}",
        pod_of(&after)
    );
}
