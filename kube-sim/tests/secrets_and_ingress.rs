//! Secrets and Ingresses as shiplog uses them: Secrets stored as the API server stores them
//! and resolved into pods' environments by the kubelet; Ingresses validated, and served by
//! the simulator's ingress controller on a real port.

mod common;

use std::collections::BTreeMap;

use common::{start, within};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams, PostParams};
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
