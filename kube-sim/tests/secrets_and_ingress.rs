//! Secrets and Ingresses as shiplog uses them: Secrets stored as the API server stores them
//! and resolved into pods' environments by the kubelet; Ingresses validated, and served by
//! the simulator's ingress controller on a real port.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{rolled_out, start, within};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod, Secret, Service};
use k8s_openapi::ByteString;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use kube_sim::KubeSim;
use serde_json::{json, Value};

const NS: &str = "shop";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client")
}

/// The status code, reason and causes' fields of a refused request.
fn refusal(err: kube::Error) -> (u16, String, Vec<String>) {
    match err {
        kube::Error::Api(status) => {
            let fields = status
                .details
                .map(|d| d.causes)
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.field)
                .collect();
            (status.code, status.reason, fields)
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn secret(value: Value) -> Secret {
    serde_json::from_value(value).unwrap_or_else(|e| panic!("secret manifest: {e}"))
}

fn secrets(client: &Client) -> Api<Secret> {
    Api::namespaced(client.clone(), NS)
}

/// A Secret's data as text, for comparing.
fn data_of(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

// ---------------------------------------------------------------------- secrets

#[tokio::test]
async fn string_data_becomes_base64_data_and_is_never_stored() {
    let (sim, client) = start().await;
    let api = secrets(&client);

    let created = api
        .create(
            &PostParams::default(),
            &secret(json!({
                "metadata": { "name": "db" },
                "data": { "user": "YWRtaW4=", "password": "b2xk" },
                "stringData": { "password": "hunter2" },
            })),
        )
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));

    assert_eq!(created.type_.as_deref(), Some("Opaque"), "type defaults");
    assert_eq!(created.string_data, None);
    let want: BTreeMap<String, String> = [("user", "admin"), ("password", "hunter2")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    assert_eq!(data_of(&created), want, "stringData wins over data");
    let stored = &sim.objects("secrets", Some(NS))[0];
    assert_eq!(stored.get("stringData"), None, "{stored}");
    assert_eq!(stored["data"]["password"], "aHVudGVyMg==");

    // A merge patch and a server-side apply of stringData go the same way.
    let patched = api
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "password": "s3cret" } })),
        )
        .await
        .unwrap_or_else(|e| panic!("merge patch: {e}"));
    assert_eq!(data_of(&patched)["password"], "s3cret");
    let applied = api
        .patch(
            "db",
            &PatchParams::apply("shiplog").force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": { "name": "db" },
                "stringData": { "token": "t0k3n" },
            })),
        )
        .await
        .unwrap_or_else(|e| panic!("apply: {e}"));
    assert_eq!(
        data_of(&applied).keys().collect::<Vec<_>>(),
        ["password", "token", "user"]
    );
    let stored = &sim.objects("secrets", Some(NS))[0];
    assert_eq!(stored.get("stringData"), None, "{stored}");
    let fetched = api.get("db").await.unwrap_or_else(|e| panic!("get: {e}"));
    assert_eq!(fetched.data, applied.data);
}

#[tokio::test]
async fn secrets_are_validated_as_the_api_server_does() {
    let (_sim, client) = start().await;
    let api = secrets(&client);
    // (description, manifest, expected code, reason and cause fields)
    let cases = [
        (
            "a key with a space",
            json!({ "metadata": { "name": "a" }, "data": { "bad key": "eA==" } }),
            (422, "Invalid", vec!["data[bad key]"]),
        ),
        (
            "a stringData key with a slash",
            json!({ "metadata": { "name": "b" }, "stringData": { "a/b": "x" } }),
            (422, "Invalid", vec!["data[a/b]"]),
        ),
        (
            "a TLS secret without its key",
            json!({ "metadata": { "name": "c" }, "type": "kubernetes.io/tls", "stringData": { "tls.crt": "x" } }),
            (422, "Invalid", vec!["data[tls.key]"]),
        ),
        (
            "a value that is not base64",
            json!({ "metadata": { "name": "d" }, "data": { "k": "not base64!" } }),
            (400, "BadRequest", vec![]),
        ),
    ];
    for (what, manifest, (code, reason, fields)) in cases {
        // Raw JSON: k8s-openapi would refuse to build a Secret whose data is not base64.
        let body = serde_json::to_vec(&manifest).expect("json");
        let req = axum::http::Request::post(format!("/api/v1/namespaces/{NS}/secrets"))
            .header("content-type", "application/json")
            .body(body)
            .expect("request");
        let err = client
            .request::<Secret>(req)
            .await
            .map(|s| panic!("{what}: accepted as {s:?}"))
            .unwrap_err();
        let (got_code, got_reason, got_fields) = refusal(err);
        assert_eq!(
            (got_code, got_reason.as_str(), got_fields),
            (code, reason, fields.iter().map(|f| f.to_string()).collect()),
            "{what}"
        );
    }
    let ok = api
        .create(
            &PostParams::default(),
            &secret(json!({ "metadata": { "name": "ok" }, "data": { "a.b_C-1": ByteString(b"x".to_vec()) } })),
        )
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}

/// A `kubectl get` of one resource type as a Table: the column names and the first row.
async fn kubectl_table(sim: &KubeSim, path: &str) -> (Vec<String>, Vec<Value>) {
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let table: Value = http()
        .get(format!("{}{path}", sim.url()))
        .header("accept", accept)
        .send()
        .await
        .unwrap_or_else(|e| panic!("table: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("table json: {e}"));
    assert_eq!(table["kind"], "Table", "{table}");
    let columns = table["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect();
    let cells = table["rows"][0]["cells"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    (columns, cells)
}

#[tokio::test]
async fn kubectl_get_secrets_shows_type_and_data_count() {
    let (sim, client) = start().await;
    secrets(&client)
        .create(
            &PostParams::default(),
            &secret(json!({ "metadata": { "name": "db" }, "stringData": { "a": "1", "b": "2" } })),
        )
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let (columns, cells) = kubectl_table(&sim, &format!("/api/v1/namespaces/{NS}/secrets")).await;
    assert_eq!(columns, ["Name", "Type", "Data", "Age"]);
    assert_eq!(cells[..3], [json!("db"), json!("Opaque"), json!(2)]);

    let core = within(5, "discovery", client.list_core_api_resources("v1"))
        .await
        .unwrap_or_else(|e| panic!("discovery: {e}"));
    let listed = core
        .resources
        .iter()
        .find(|r| r.name == "secrets")
        .expect("secrets are announced");
    assert_eq!((listed.kind.as_str(), listed.namespaced), ("Secret", true));
    assert!(!core.resources.iter().any(|r| r.name == "secrets/status"));
}

// ---------------------------------------------------------------------- pods and Secrets

/// A Deployment of `replicas` pods labelled `app=<name>` whose containers are `containers`.
fn deployment(name: &str, replicas: i32, containers: Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": containers }
            }
        }
    }))
    .unwrap_or_else(|e| panic!("deployment manifest: {e}"))
}

/// A Service `name` with one port `http` (80) in front of the pods labelled `app=<app>`.
fn service(name: &str, app: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name },
        "spec": {
            "selector": { "app": app },
            "ports": [{ "name": "http", "port": 80, "targetPort": 8080 }]
        }
    }))
    .unwrap_or_else(|e| panic!("service manifest: {e}"))
}

/// Server-side applies `obj` as shiplog does.
async fn apply<K>(client: &Client, obj: &K) -> K
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), NS);
    let name = obj.meta().name.clone().expect("named");
    api.patch(
        &name,
        &PatchParams::apply("shiplog").force(),
        &Patch::Apply(obj),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {name}: {e}"))
}

async fn wait_rolled_out(client: &Client, name: &str) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    within(
        5,
        &format!("rollout of {name}"),
        await_condition(api, name, |d: Option<&Deployment>| rolled_out(d)),
    )
    .await
    .unwrap_or_else(|e| panic!("watching {name}: {e}"))
    .unwrap_or_else(|| panic!("{name} was deleted"))
}

/// Waits (watching) until a pod labelled `app=<app>` satisfies `ok`, and returns it.
async fn wait_for_pod(client: &Client, app: &str, what: &str, ok: impl Fn(&Pod) -> bool) -> Pod {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let config = watcher::Config::default().labels(&format!("app={app}"));
    let mut pods = watcher(api, config).applied_objects().boxed();
    within(5, what, async {
        while let Some(pod) = pods.next().await {
            let pod = pod.unwrap_or_else(|e| panic!("watching pods: {e}"));
            if ok(&pod) {
                return pod;
            }
        }
        panic!("the pod watch ended before {what}")
    })
    .await
}

/// The first container's waiting reason and message.
fn waiting(pod: &Pod) -> Option<(String, String)> {
    let state = pod
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .clone()?;
    Some((state.reason?, state.message.unwrap_or_default()))
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The Warning events about a pod, as `(reason, message, count)`.
async fn warnings(client: &Client, pod: &str) -> Vec<(String, String, i32)> {
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let selector = format!("involvedObject.name={pod},type=Warning");
    events
        .list(&ListParams::default().fields(&selector))
        .await
        .unwrap_or_else(|e| panic!("events: {e}"))
        .items
        .into_iter()
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
                e.count.unwrap_or(0),
            )
        })
        .collect()
}

/// Calls the echo app behind Service `svc` through the API server's services proxy.
async fn echo_via_proxy(sim: &KubeSim, svc: &str) -> Value {
    let url = format!(
        "{}/api/v1/namespaces/{NS}/services/{svc}:http/proxy/whoami",
        sim.url()
    );
    let resp = http()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("proxy: {e}"));
    assert_eq!(resp.status(), 200, "through {svc}");
    resp.json()
        .await
        .unwrap_or_else(|e| panic!("echo json: {e}"))
}

#[tokio::test]
async fn a_pod_waits_in_create_container_config_error_until_its_secret_and_key_exist() {
    let (sim, client) = start().await;
    let containers = json!([{
        "name": "app",
        "image": "registry.example.com/web:1.0",
        "env": [{ "name": "PASSWORD", "valueFrom": { "secretKeyRef": { "name": "db", "key": "password" } } }],
    }]);
    apply(&client, &deployment("web", 1, containers)).await;
    apply(&client, &service("web", "web")).await;

    // No Secret: the container cannot be configured, the pod is not Ready.
    let pod = wait_for_pod(&client, "web", "a config error", |p| {
        waiting(p).is_some_and(|(r, _)| r == "CreateContainerConfigError")
    })
    .await;
    let pod_name = pod.metadata.name.clone().expect("pod named");
    assert_eq!(
        waiting(&pod),
        Some((
            "CreateContainerConfigError".into(),
            r#"secret "db" not found"#.into()
        ))
    );
    assert!(!is_ready(&pod));
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    let failed = warnings(&client, &pod_name).await;
    assert!(
        failed.iter().any(|(reason, message, _)| reason == "Failed"
            && message == r#"Error: secret "db" not found"#),
        "{failed:?}"
    );
    // The kubelet keeps trying: the same event is counted again.
    let retried = within(5, "a retry", async {
        loop {
            let events = warnings(&client, &pod_name).await;
            if events
                .iter()
                .any(|(r, _, count)| r == "Failed" && *count > 1)
            {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(retried.len(), 1, "one event, counted: {retried:?}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let dep = deployments
        .get("web")
        .await
        .unwrap_or_else(|e| panic!("get: {e}"));
    assert_eq!(dep.status.and_then(|s| s.ready_replicas), Some(0));

    // The Secret without the key: another message.
    apply(&client, &secret(json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "db" }, "stringData": { "user": "admin" } }))).await;
    let want = format!("couldn't find key password in Secret {NS}/db");
    let pod = wait_for_pod(&client, "web", "the missing key", |p| {
        waiting(p).is_some_and(|(_, m)| m == want)
    })
    .await;
    assert!(!is_ready(&pod));

    // With the key, the same pod starts and the Deployment rolls out.
    apply(&client, &secret(json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "db" }, "stringData": { "password": "hunter2" } }))).await;
    let pod = wait_for_pod(&client, "web", "the pod to get Ready", is_ready).await;
    assert_eq!(pod.metadata.name.as_deref(), Some(pod_name.as_str()));
    wait_rolled_out(&client, "web").await;
    let echo = echo_via_proxy(&sim, "web").await;
    assert_eq!(echo["env"], json!({ "PASSWORD": "hunter2" }));
    assert_eq!(echo["pod"], pod_name.as_str());
}

#[tokio::test]
async fn the_echo_app_reports_the_environment_its_pods_started_with() {
    let (sim, client) = start().await;
    let db = json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "db" },
        "stringData": { "user": "admin", "password": "hunter2" } });
    apply(&client, &secret(db)).await;
    apply(&client, &secret(json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "extra" }, "stringData": { "FEATURE": "on" } }))).await;
    let containers = json!([
        {
            "name": "app",
            "image": "registry.example.com/web:1.0",
            "envFrom": [{ "prefix": "DB_", "secretRef": { "name": "db" } }],
            "env": [
                { "name": "MODE", "value": "prod" },
                { "name": "PASSWORD", "valueFrom": { "secretKeyRef": { "name": "db", "key": "password" } } },
                { "name": "MAYBE", "valueFrom": { "secretKeyRef": { "name": "absent", "key": "x", "optional": true } } },
                { "name": "DB_user", "value": "overridden by env" },
                { "name": "POD_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } },
            ],
        },
        {
            "name": "sidecar",
            "image": "registry.example.com/proxy:2.0",
            "envFrom": [{ "secretRef": { "name": "extra" } }, { "secretRef": { "name": "gone", "optional": true } }],
        },
    ]);
    apply(&client, &deployment("web", 1, containers)).await;
    apply(&client, &service("web", "web")).await;
    wait_rolled_out(&client, "web").await;

    let app_env = json!({
        "DB_password": "hunter2",
        "DB_user": "overridden by env",
        "MODE": "prod",
        "PASSWORD": "hunter2",
        "POD_NAMESPACE": NS,
    });
    let echo = echo_via_proxy(&sim, "web").await;
    assert_eq!(echo["env"], app_env);
    assert_eq!(
        echo["containers"],
        json!([
            { "name": "app", "image": "registry.example.com/web:1.0", "env": app_env },
            { "name": "sidecar", "image": "registry.example.com/proxy:2.0", "env": { "FEATURE": "on" } },
        ])
    );

    // A running container keeps what it started with.
    secrets(&client)
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "password": "changed" } })),
        )
        .await
        .unwrap_or_else(|e| panic!("patch: {e}"));
    let echo = echo_via_proxy(&sim, "web").await;
    assert_eq!(echo["env"]["PASSWORD"], "hunter2");

    // A direct call names no pod: no environment to report.
    let addr = sim.echo_addr(NS, "web").expect("web has an echo app");
    let direct: Value = http()
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("direct: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("direct json: {e}"));
    assert_eq!(
        (&direct["env"], &direct["containers"]),
        (&json!({}), &json!([]))
    );
}
