//! Secrets and Ingresses as shiplog uses them: Secrets stored as the API server stores them
//! and resolved into pods' environments by the kubelet; Ingresses validated, and served by
//! the simulator's ingress controller on a real port.

// A test's unwrap is its assertion (clippy.toml allows it only inside #[test] functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use common::{rolled_out, start, start_with, within};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressTLS};
use k8s_openapi::ByteString;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use kube_sim::{KubeSim, SimConfig};
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
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let selector = format!("involvedObject.name={pod_name},type=Warning");
    let mut watched = watcher(events, watcher::Config::default().fields(&selector))
        .applied_objects()
        .boxed();
    within(5, "a retry", async {
        while let Some(event) = watched.next().await {
            let event = event.unwrap_or_else(|e| panic!("watching events: {e}"));
            if event.count.is_some_and(|c| c > 1) {
                return;
            }
        }
        panic!("the event watch ended before a retry")
    })
    .await;
    let retried = warnings(&client, &pod_name).await;
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

// ---------------------------------------------------------------------- ingresses

/// A simulator whose ingress controller listens on a free port of 127.0.0.1.
async fn start_with_ingress() -> (KubeSim, Client, SocketAddr) {
    let config = SimConfig {
        ingress_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..common::fast_config()
    };
    let (sim, client) = start_with(config).await;
    let addr = sim.ingress_addr().expect("the ingress controller listens");
    assert_ne!(addr.port(), 0, "the bound port, not the configured 0");
    (sim, client, addr)
}

/// An Ingress `name` whose rules are `rules`.
fn ingress(name: &str, rules: Value) -> Ingress {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": { "name": name },
        "spec": { "ingressClassName": "nginx", "rules": rules },
    }))
    .unwrap_or_else(|e| panic!("ingress manifest: {e}"))
}

/// One HTTP path of an Ingress rule, to Service `svc` port `http`.
fn path(path: &str, kind: &str, svc: &str) -> Value {
    json!({ "path": path, "pathType": kind, "backend": { "service": { "name": svc, "port": { "name": "http" } } } })
}

/// A rolled-out Deployment `name` (echo apps) behind a Service `name`.
async fn app(client: &Client, name: &str, image: &str) {
    let containers =
        json!([{ "name": "app", "image": image, "ports": [{ "containerPort": 8080 }] }]);
    apply(client, &deployment(name, 2, containers)).await;
    apply(client, &service(name, name)).await;
}

/// A request to the ingress controller for `host` and `path`: status, headers, body text.
async fn via_ingress(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = http()
        .get(format!("http://{addr}{path}"))
        .header("host", host)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{host}{path}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp
        .text()
        .await
        .unwrap_or_else(|e| panic!("{host}{path} body: {e}"));
    (status, headers, text)
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn ingresses_are_validated_as_the_api_server_does() {
    let (_sim, client) = start().await;
    let api: Api<Ingress> = Api::namespaced(client.clone(), NS);
    // (description, rules, expected cause fields)
    let cases = [
        (
            "an upper-case host",
            json!([{ "host": "MyApp.localhost", "http": { "paths": [path("/", "Prefix", "web")] } }]),
            vec!["spec.rules[0].host"],
        ),
        (
            "a host with an underscore",
            json!([{ "host": "my_app.localhost", "http": { "paths": [path("/", "Prefix", "web")] } }]),
            vec!["spec.rules[0].host"],
        ),
        (
            "a path without a pathType",
            json!([{ "host": "myapp.localhost", "http": { "paths": [{ "path": "/", "backend": { "service": { "name": "web", "port": { "number": 80 } } } }] } }]),
            vec!["spec.rules[0].http.paths[0].pathType"],
        ),
        (
            "a relative Prefix path and a backend without a port",
            json!([{ "http": { "paths": [{ "path": "api", "pathType": "Prefix", "backend": { "service": { "name": "web" } } }] } }]),
            vec![
                "spec.rules[0].http.paths[0].path",
                "spec.rules[0].http.paths[0].backend",
            ],
        ),
    ];
    for (what, rules, fields) in cases {
        let err = api
            .create(&PostParams::default(), &ingress("bad", rules))
            .await
            .map(|i| panic!("{what}: accepted as {i:?}"))
            .unwrap_err();
        let (code, reason, got) = refusal(err);
        assert_eq!((code, reason.as_str()), (422, "Invalid"), "{what}");
        assert_eq!(got, fields, "{what}");
    }
    // A wildcard host, TLS and the class are kept as given.
    let mut good = ingress(
        "good",
        json!([{ "host": "*.apps.localhost", "http": { "paths": [path("/", "Prefix", "web")] } }]),
    );
    if let Some(spec) = good.spec.as_mut() {
        spec.tls = Some(vec![IngressTLS {
            hosts: Some(vec!["*.apps.localhost".into()]),
            secret_name: Some("apps-tls".into()),
        }]);
    }
    let created = api
        .create(&PostParams::default(), &good)
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let spec = created.spec.expect("spec");
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    assert_eq!(
        spec.tls
            .and_then(|t| t.first().and_then(|t| t.secret_name.clone())),
        Some("apps-tls".into())
    );
}

#[tokio::test]
async fn the_ingress_controller_routes_by_host_to_the_services_pods() {
    let (sim, client, addr) = start_with_ingress().await;
    app(&client, "web", "registry.example.com/web:1.0").await;
    apply(
        &client,
        &ingress("web", json!([{ "host": "myapp.localhost", "http": { "paths": [path("/", "Prefix", "web")] } }])),
    )
    .await;
    wait_rolled_out(&client, "web").await;
    let pods: Vec<String> = Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap_or_else(|e| panic!("pods: {e}"))
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();

    let resp = http()
        .post(format!("http://{addr}/orders?page=2"))
        .header("host", "MyApp.localhost:8080")
        .header("x-forwarded-for", "203.0.113.7")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "dropped")
        .body("order 1")
        .send()
        .await
        .unwrap_or_else(|e| panic!("through the ingress: {e}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "*",
        "the app's headers come back"
    );
    let echo: Value = resp
        .json()
        .await
        .unwrap_or_else(|e| panic!("echo json: {e}"));
    assert_eq!(
        (&echo["deployment"], &echo["namespace"]),
        (&json!("web"), &json!(NS))
    );
    assert!(
        pods.iter().any(|p| echo["pod"] == p.as_str()),
        "{} is not one of {pods:?}",
        echo["pod"]
    );
    assert_eq!(
        (&echo["method"], &echo["path"], &echo["query"]),
        (&json!("POST"), &json!("/orders"), &json!("page=2"))
    );
    assert_eq!(echo["body"], "order 1");
    let headers = &echo["headers"];
    assert_eq!(
        headers["host"], "MyApp.localhost:8080",
        "the original Host is kept"
    );
    assert_eq!(headers["x-forwarded-host"], "MyApp.localhost:8080");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-port"], addr.port().to_string());
    assert_eq!(
        headers["x-forwarded-for"], "127.0.0.1",
        "the client as ingress-nginx sees it"
    );
    assert_eq!(headers["x-original-forwarded-for"], "203.0.113.7");
    assert_eq!(headers["x-real-ip"], "127.0.0.1");
    assert!(
        headers["x-request-id"]
            .as_str()
            .is_some_and(|id| id.len() == 32),
        "{headers}"
    );
    assert_eq!(headers.get("x-hop"), None, "hop-by-hop headers are dropped");

    // Streams come through as they are written.
    let mut stream = http()
        .get(format!("http://{addr}/stream?chunks=3&intervalMs=200"))
        .header("host", "myapp.localhost")
        .send()
        .await
        .unwrap_or_else(|e| panic!("stream: {e}"));
    let first = within(5, "the first chunk", stream.chunk())
        .await
        .unwrap_or_else(|e| panic!("chunk: {e}"));
    assert_eq!(first.as_deref(), Some(&b"chunk 0 from web\n"[..]));

    // No rule for the host: ingress-nginx's default backend.
    let (status, headers, text) = via_ingress(addr, "unknown.localhost", "/").await;
    assert_eq!((status, text.as_str()), (404, "404 page not found"));
    assert!(headers["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/plain")));

    // Moving the Ingress to another host moves the traffic.
    apply(
        &client,
        &ingress("web", json!([{ "host": "shop.localhost", "http": { "paths": [path("/", "Prefix", "web")] } }])),
    )
    .await;
    assert_eq!(via_ingress(addr, "myapp.localhost", "/").await.0, 404);
    let (status, _, text) = via_ingress(addr, "shop.localhost", "/").await;
    assert_eq!((status, &parse(&text)["deployment"]), (200, &json!("web")));
    Api::<Ingress>::namespaced(client.clone(), NS)
        .delete("web", &Default::default())
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    assert_eq!(via_ingress(addr, "shop.localhost", "/").await.0, 404);
    drop(sim);
}

#[tokio::test]
async fn exact_paths_beat_prefixes_and_prefixes_match_whole_elements() {
    let (_sim, client, addr) = start_with_ingress().await;
    app(&client, "web", "registry.example.com/web:1.0").await;
    app(&client, "api", "registry.example.com/api:1.0").await;
    apply(
        &client,
        &ingress(
            "site",
            json!([{ "host": "myapp.localhost", "http": { "paths": [
            path("/", "Prefix", "web"),
            path("/api", "Exact", "api"),
            path("/static/", "Prefix", "api"),
        ] } }]),
        ),
    )
    .await;
    wait_rolled_out(&client, "web").await;
    wait_rolled_out(&client, "api").await;
    // (request path, the Deployment that answers)
    let cases = [
        ("/", "web"),
        ("/api", "api"),
        ("/api/", "web"),
        ("/api/users", "web"),
        ("/static", "api"),
        ("/static/app.js", "api"),
        ("/staticx", "web"),
    ];
    for (path, want) in cases {
        let (status, _, text) = via_ingress(addr, "myapp.localhost", path).await;
        assert_eq!(status, 200, "{path}: {text}");
        assert_eq!(parse(&text)["deployment"], want, "{path}");
        assert_eq!(parse(&text)["path"], path, "{path}");
    }
}

#[tokio::test]
async fn a_backend_without_a_ready_pod_or_service_is_a_503() {
    let (_sim, client, addr) = start_with_ingress().await;
    app(&client, "broken", "registry.example.com/web:1.0-broken").await;
    apply(
        &client,
        &ingress("site", json!([
            { "host": "broken.localhost", "http": { "paths": [path("/", "Prefix", "broken")] } },
            { "host": "missing.localhost", "http": { "paths": [path("/", "Prefix", "nope")] } },
        ])),
    )
    .await;
    wait_for_pod(&client, "broken", "the image pull to fail", |p| {
        waiting(p).is_some_and(|(reason, _)| reason == "ImagePullBackOff")
    })
    .await;
    for host in ["broken.localhost", "missing.localhost"] {
        let (status, headers, text) = via_ingress(addr, host, "/").await;
        assert_eq!(status, 503, "{host}: {text}");
        assert!(
            text.contains("503 Service Temporarily Unavailable"),
            "{host}: {text}"
        );
        assert_eq!(headers["content-type"], "text/html", "{host}");
    }
}

#[tokio::test]
async fn the_ingress_controller_writes_its_address_into_the_status() {
    let (sim, client, _addr) = start_with_ingress().await;
    let api: Api<Ingress> = Api::namespaced(client.clone(), NS);
    let created = apply(
        &client,
        &ingress("web", json!([{ "host": "myapp.localhost", "http": { "paths": [path("/", "Prefix", "web")] } }])),
    )
    .await;
    let balanced = |i: Option<&Ingress>| {
        i.and_then(|i| i.status.as_ref())
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .and_then(|ips| ips.first())
            .and_then(|ip| ip.ip.clone())
    };
    assert_eq!(
        balanced(Some(&created)),
        None,
        "the controller writes it, not the API server"
    );
    let done = within(
        5,
        "the load balancer status",
        await_condition(api.clone(), "web", |i: Option<&Ingress>| {
            balanced(i).is_some()
        }),
    )
    .await
    .unwrap_or_else(|e| panic!("watch: {e}"));
    assert_eq!(balanced(done.as_ref()).as_deref(), Some("127.0.0.1"));

    // kubectl's view of it.
    let (columns, cells) = kubectl_table(
        &sim,
        &format!("/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses"),
    )
    .await;
    assert_eq!(
        columns,
        ["Name", "Class", "Hosts", "Address", "Ports", "Age"]
    );
    assert_eq!(
        cells[..5],
        [
            json!("web"),
            json!("nginx"),
            json!("myapp.localhost"),
            json!("127.0.0.1"),
            json!("80")
        ]
    );
    let resources = client
        .list_api_group_resources("networking.k8s.io/v1")
        .await
        .unwrap_or_else(|e| panic!("discovery: {e}"));
    let names: Vec<&str> = resources
        .resources
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["ingresses", "ingresses/status"]);
    assert_eq!(
        resources.resources[0].short_names.as_deref(),
        Some(&["ing".to_string()][..])
    );

    // Without an ingress controller, nobody writes the status.
    let (plain, plain_client) = start().await;
    assert_eq!(plain.ingress_addr(), None);
    let api: Api<Ingress> = Api::namespaced(plain_client.clone(), NS);
    apply(
        &plain_client,
        &ingress("web", json!([{ "host": "myapp.localhost", "http": { "paths": [path("/", "Prefix", "web")] } }])),
    )
    .await;
    // A rollout takes longer than any status sync would: by then it would be there.
    app(&plain_client, "web", "registry.example.com/web:1.0").await;
    wait_rolled_out(&plain_client, "web").await;
    let stored = api.get("web").await.unwrap_or_else(|e| panic!("get: {e}"));
    assert_eq!(balanced(Some(&stored)), None);
}
