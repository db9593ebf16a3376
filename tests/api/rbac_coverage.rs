//! The Role covers what shiplog calls: the server, wired as `shiplog serve --cluster kube`
//! wires it, runs every operation that reaches the cluster against the simulator behind a
//! recording proxy; each request is mapped to what kube-apiserver authorizes (group,
//! resource, verb, namespace) and checked against `kube_permissions::PERMISSIONS`, the list
//! `deploy/base/role.yaml` grants. A call the list lacks fails the test, named; so does a
//! listed permission no operation uses (least privilege).

use crate::cluster::sim_with;
use crate::helpers::{uuid, TestApp, TestDb, ADMIN_TOKEN, NAMESPACE};
use crate::platform::wait_for;
use futures::StreamExt;
use kube_sim::{KubeSim, RecordingProxy};
use reqwest::Method;
use serde_json::{json, Value};
use shiplog_infrastructure::kube_permissions::{allows, required, PERMISSIONS};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Checks `check` until it holds, within the test kit's budget (scaled for slow machines).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    shiplog_testkit::eventually_within(what, Duration::from_secs(15), || {
        let holds = check();
        async move {
            if holds.await {
                Ok(())
            } else {
                Err("not yet")
            }
        }
    })
    .await
}

/// Creates a platform deployment and returns its name once it is Ready.
async fn create_ready(app: &TestApp, body: Value) -> String {
    let (status, created) = app.post("/api/deployments", body).await;
    assert_eq!(status, 201, "{created}");
    let name = created["name"].as_str().unwrap_or_default().to_owned();
    wait_for(app, &name, "Ready").await;
    name
}

/// The usecase id of a platform deployment.
async fn id_of(app: &TestApp, name: &str) -> String {
    let (status, body) = app
        .get(&format!("/api/deployments/status?name={name}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, list) = app.get("/api/deployments").await;
    list.as_array()
        .into_iter()
        .flatten()
        .find(|d| d["name"] == name)
        .and_then(|d| d["id"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{name} is not listed: {list}"))
}

/// Objects of `resource` in the test namespace labelled with the usecase `id`.
fn objects_of(sim: &KubeSim, resource: &str, id: &str) -> usize {
    sim.objects(resource, Some(NAMESPACE))
        .iter()
        .filter(|o| o["metadata"]["labels"]["shiplog.io/usecase"] == id)
        .count()
}

/// Runs every operation of shiplog that reaches the cluster.
async fn every_cluster_operation(app: &TestApp, sim: &KubeSim) {
    // A public deployment of a template: Secret, Deployment, rollout watches, Service, Ingress.
    let web = create_ready(app, json!({"template": "nginx", "visibility": "public"})).await;
    let web_id = id_of(app, &web).await;
    // A database: its generated password, created once in a Secret of the usecase.
    let db = create_ready(app, json!({"template": "postgres"})).await;
    // A config change: the generated Secret read back, the superseded deployment removed.
    let (status, changed) = app
        .send(
            Method::PUT,
            "/api/deployments/config",
            Some(ADMIN_TOKEN),
            Some(json!({"deployment_name": db, "configData": {"POSTGRES_DB": "shop"}})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    let new_deployment = changed["id"].as_str().unwrap_or_default().to_owned();
    eventually("the config change serves", || async {
        let (_, s) = app.get(&format!("/api/deployments/status?name={db}")).await;
        s["status"] == "Ready"
            && s["statusMessage"]
                .as_str()
                .is_some_and(|m| m.contains(&new_deployment))
    })
    .await;
    // A restart.
    let (status, body) = app
        .post("/api/deployments/restart", json!({"deployment_name": web}))
        .await;
    assert!(status == 200 || status == 202, "{status} {body}");
    eventually("the restart succeeds", || async {
        let (_, history) = app.get(&format!("/api/deployments/{web}/history")).await;
        history["revisions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["kind"] == "restart" && r["status"] == "succeeded")
    })
    .await;
    // Logs, read and followed; usage; Kubernetes events.
    for path in [
        format!("/api/deployments/{web}/logs?tail=5"),
        format!("/api/deployments/{web}/metrics"),
        format!("/api/deployments/{web}/events"),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let follow = app
        .client
        .get(app.url(&format!("/api/usecases/{web_id}/logs?tail=1&follow=true")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(follow.status(), 200);
    let mut lines = follow.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next()).await;
    assert!(
        matches!(first, Ok(Some(Ok(_)))),
        "a followed log line: {first:?}"
    );
    drop(lines);
    // The applications proxy, with every method it forwards.
    for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] {
        let method = Method::from_bytes(method.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let response = app
            .client
            .request(method.clone(), format!("{}/{web_id}/rbac", app.proxy_base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status(), 200, "{method} through the proxy");
    }

    // A usecase with a ServiceMonitor, undeployed, then deleted.
    let usecase = app.create_usecase("monitored").await;
    let body = json!({"config": {
        "image": {"registry": "registry.example.com", "repository": "team/app", "tag": "1"},
        "serviceMonitor": {"enabled": true, "scrapingInterval": "5s"}
    }});
    let (status, accepted) = app
        .post(&format!("/api/usecases/{usecase}/deployments"), body)
        .await;
    assert_eq!(status, 202, "{accepted}");
    let deployment = uuid(&accepted["id"]);
    app.wait_for_status(usecase, deployment, "deployed").await;
    assert_eq!(sim.objects("servicemonitors", Some(NAMESPACE)).len(), 1);
    let (status, _) = app
        .delete(&format!("/api/usecases/{usecase}/deployments"))
        .await;
    assert_eq!(status, 202);
    app.wait_for_status(usecase, deployment, "undeployed").await;
    let monitored = usecase.to_string();
    eventually("the monitored usecase's objects go", || async {
        objects_of(sim, "deployments", &monitored) == 0
            && objects_of(sim, "services", &monitored) == 0
            && sim.objects("servicemonitors", Some(NAMESPACE)).is_empty()
    })
    .await;
    let (status, _) = app.delete(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(status, 204);

    // The platform deployments deleted: everything of theirs goes, generated Secret included.
    for name in [&web, &db] {
        let id = id_of(app, name).await;
        let (status, body) = app
            .post("/api/deployments/delete", json!({"deployment_name": name}))
            .await;
        assert_eq!(status, 200, "{body}");
        eventually(&format!("{name}'s objects go"), || async {
            ["deployments", "secrets", "services", "ingresses"]
                .iter()
                .all(|r| objects_of(sim, r, &id) == 0)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_grants_every_call_shiplog_makes_and_nothing_else() {
    let sim = sim_with(Duration::from_millis(100), true).await;
    let recorder = RecordingProxy::start(&sim.url())
        .await
        .unwrap_or_else(|e| panic!("recording proxy: {e}"));
    let url = recorder.url().parse().unwrap_or_else(|e| panic!("{e}"));
    let app =
        TestApp::spawn_with_cluster(Arc::new(TestDb::create().await), kube::Config::new(url)).await;

    every_cluster_operation(&app, &sim).await;

    let mut refused = Vec::new();
    let mut used = BTreeSet::new();
    let requests = recorder.take();
    for request in &requests {
        let needed = required(
            &request.method,
            &request.path,
            request.query.as_deref(),
            request.content_type.as_deref(),
        );
        match needed {
            Err(e) => refused.push(format!("{request}: {e}")),
            Ok(accesses) => {
                for access in accesses {
                    if access.namespace.as_deref() != Some(NAMESPACE) {
                        refused.push(format!(
                            "{request}: needs {access}: outside shiplog's namespace, no Role grants it"
                        ));
                    } else if !allows(&access.group, &access.resource, access.verb) {
                        refused.push(format!(
                            "{request}: needs {access}, which kube_permissions::PERMISSIONS (and so the Role) lacks"
                        ));
                    } else {
                        used.insert((access.group.clone(), access.resource.clone(), access.verb));
                    }
                }
            }
        }
    }
    refused.sort();
    refused.dedup();
    assert!(
        refused.is_empty(),
        "calls a cluster with shiplog's Role would refuse:\n{}",
        refused.join("\n")
    );
    let unused: Vec<String> = PERMISSIONS
        .iter()
        .flat_map(|p| p.verbs.iter().map(move |v| (p.group, p.resource, *v)))
        .filter(|(g, r, v)| !used.contains(&((*g).to_owned(), (*r).to_owned(), *v)))
        .map(|(g, r, v)| format!("{v} {r} ({g:?})"))
        .collect();
    assert!(
        unused.is_empty(),
        "PERMISSIONS grants what no operation called ({} requests seen); remove it, or add the operation that needs it to this flow: {unused:?}",
        requests.len()
    );
}
