//! Secret environment values: given to the pod through the deployment's Kubernetes
//! Secret, sealed everywhere else (events, read models, export, streams, the command
//! line, the server's own output), kept by config changes and rollbacks, and
//! unrecoverable once the usecase is deleted while the hash chain still verifies.

use crate::binary::{free_port, wait_until_healthy, Shiplog};
use crate::cluster::{kube_config, object, secret_values, sim_with};
use crate::helpers::{uuid, TestApp, TestDb, ADMIN_TOKEN, NAMESPACE};
use base64::Engine as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use rand::RngCore;
use serde_json::{json, Value};
use shiplog_api::server::SecretKeySource;
use shiplog_application::{SecretError, SecretVault};
use shiplog_domain::SealedValue;
use shiplog_infrastructure::{MasterKey, PgVault};
use shiplog_testkit::eventually_within;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// The value searched for, byte-wise, everywhere it must not be.
const SECRET: &str = "hunter2-s3cr3t-b9d41c7e";
/// How long a deployment may take to reach its state in these tests.
const BUDGET: Duration = Duration::from_secs(60);

/// `shiplog serve` (the built binary) on `db`, driving the simulator behind `kubeconfig`,
/// with the master key in `key_file`, its stdout and stderr in files under `dir`.
fn serve(db: &TestDb, kubeconfig: &Path, key_file: &Path, dir: &Path, port: u16) -> Shiplog {
    let file = |name: &str| std::fs::File::create(dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("SHIPLOG_LISTEN", format!("127.0.0.1:{port}"))
        .env("SHIPLOG_PROXY_LISTEN", "127.0.0.1:0")
        .env("SHIPLOG_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SHIPLOG_CLUSTER", "kube")
        .env("SHIPLOG_RESOLVE_DIGESTS", "never")
        .env("KUBECONFIG", kubeconfig)
        .env("SHIPLOG_NAMESPACE", NAMESPACE)
        .env("SHIPLOG_SECRET_KEY_FILE", key_file)
        // shiplog's own crates at debug: the more it says, the more a leak would show.
        .env(
            "SHIPLOG_LOG",
            "info,sqlx=warn,shiplog_api=debug,shiplog_application=debug,shiplog_infrastructure=debug",
        )
        .env("NO_COLOR", "1")
        .stdout(file("stdout.log"))
        .stderr(file("stderr.log"))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn shiplog: {e}"));
    Shiplog(child)
}

/// Sends `request` as the admin; returns the status and the JSON answer (null when none).
async fn call(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until the deployment has `status`; returns it as the API shows it.
async fn wait_for(
    http: &reqwest::Client,
    base: &str,
    usecase: Uuid,
    deployment: &Value,
    status: &str,
) -> Value {
    let url = format!(
        "{base}/api/usecases/{usecase}/deployments/{}",
        uuid(deployment)
    );
    eventually_within(
        &format!("deployment {deployment} is {status}"),
        BUDGET,
        || async {
            let (_, d) = call(http.get(&url)).await;
            match d["status"] == status {
                true => Ok(d),
                false => Err(d),
            }
        },
    )
    .await
}

/// Runs the command line against `base`; returns its stdout and stderr together.
async fn cli(base: &str, args: &[&str]) -> String {
    let (base, args): (String, Vec<String>) = (
        base.to_owned(),
        args.iter().map(|a| (*a).to_owned()).collect(),
    );
    tokio::task::spawn_blocking(move || {
        let output = assert_cmd::Command::new(env!("CARGO_BIN_EXE_shiplog"))
            .args(&args)
            .env("SHIPLOG_URL", &base)
            .env("SHIPLOG_TOKEN", ADMIN_TOKEN)
            .env("NO_COLOR", "1")
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap_or_else(|e| panic!("shiplog {args:?}: {e}"));
        assert!(output.status.success(), "shiplog {args:?}: {output:?}");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Every row of every table of the database as text (the data keys' table aside,
/// which holds wrapped keys and no value).
async fn whole_database(db: &TestDb) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'secret_keys'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut text = String::new();
    for table in tables {
        let rows: Option<String> = sqlx::query_scalar(&format!(
            "SELECT string_agg(t::text, E'\\n') FROM \"{table}\" t"
        ))
        .fetch_one(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{table}: {e}"));
        text.push_str(&rows.unwrap_or_default());
    }
    text
}

/// Fails when `SECRET` is anywhere in `haystack`, naming where.
fn assert_no_secret(where_: &str, haystack: &[u8]) {
    assert!(
        !haystack
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes()),
        "the secret value appears in {where_}"
    );
}

#[tokio::test]
async fn a_secret_value_reaches_the_pod_through_its_secret_and_nowhere_else() {
    // Arrange: a cluster with a Secret of the operator's, and shiplog with a master key.
    let dir = std::env::temp_dir().join(format!("shiplog-secrets-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let sim = sim_with(Duration::from_millis(100), false).await;
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)
        .unwrap_or_else(|e| panic!("{e}"));
    let kube = kube::Client::try_from(kube_config(&sim)).unwrap_or_else(|e| panic!("{e}"));
    let operator_secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "tokens", "namespace": NAMESPACE},
        "stringData": {"api": "operator-held-token"},
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    Api::<Secret>::namespaced(kube, NAMESPACE)
        .create(&PostParams::default(), &operator_secret)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let key_file = dir.join("master.key");
    std::fs::write(
        &key_file,
        base64::engine::general_purpose::STANDARD.encode(key),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let db = TestDb::create().await;
    let port = free_port();
    let mut server = serve(&db, &kubeconfig, &key_file, &dir, port);
    let base = format!("http://127.0.0.1:{port}");
    wait_until_healthy(&base).await;
    let http = reqwest::Client::new();

    // A stream of the whole ledger, from its start, kept for the end.
    let streamed = Arc::new(Mutex::new(Vec::<u8>::new()));
    let response = http
        .get(format!("{base}/api/events/stream?after={}", "0".repeat(32)))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sink = streamed.clone();
    let stream_task = tokio::spawn(async move {
        let mut body = response.bytes_stream();
        while let Some(Ok(chunk)) = body.next().await {
            if let Ok(mut buffer) = sink.lock() {
                buffer.extend_from_slice(&chunk);
            }
        }
    });

    // Act: deploy with a secret value and a reference to the operator's Secret.
    let (_, usecase) = call(
        http.post(format!("{base}/api/usecases"))
            .json(&json!({"name": "with-secrets"})),
    )
    .await;
    let usecase = uuid(&usecase["id"]);
    let (status, accepted) = call(http.post(format!("{base}/api/usecases/{usecase}/deployments")).json(&json!({
        "config": {
            "image": {"registry": "registry.example.com", "repository": "team/app", "tag": "1.0.0"},
            "env": {"MODE": "prod"},
            "secretEnv": {"DB_PASSWORD": SECRET},
            "secretRefs": [{"name": "API_TOKEN", "secret": {"name": "tokens", "key": "api"}}],
        }
    })))
    .await;
    assert_eq!(status, 202, "{accepted}");
    let first = wait_for(&http, &base, usecase, &accepted["id"], "deployed").await;

    // The API shows the value masked with the key's fingerprint, and the reference as given.
    let masked = &first["config"]["secretEnv"]["DB_PASSWORD"];
    let fingerprint = masked["key"].as_str().unwrap_or_default().to_owned();
    assert_eq!(masked, &json!({"secret": true, "key": fingerprint}));
    assert!(
        fingerprint.len() == 16 && fingerprint.chars().all(|c| c.is_ascii_hexdigit()),
        "{masked}"
    );
    assert_eq!(
        first["config"]["secretRefs"],
        json!([{"name": "API_TOKEN", "secret": {"name": "tokens", "key": "api"}}])
    );

    // The pod gets the value through the deployment's Secret, and the reference through the operator's.
    let pod_secret = |deployment: &Value| format!("sl-{}", uuid(deployment).simple());
    assert_eq!(
        secret_values(&sim, &pod_secret(&first["id"]))
            .get("app.DB_PASSWORD")
            .map(String::as_str),
        Some(SECRET)
    );
    let k8s = object(&sim, "deployments", &pod_secret(&first["id"])).unwrap_or_default();
    let env = &k8s["spec"]["template"]["spec"]["containers"][0]["env"];
    let by_name = |name: &str| {
        env.as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        by_name("DB_PASSWORD")["valueFrom"]["secretKeyRef"],
        json!({"name": pod_secret(&first["id"]), "key": "app.DB_PASSWORD"})
    );
    assert_eq!(
        by_name("API_TOKEN")["valueFrom"]["secretKeyRef"],
        json!({"name": "tokens", "key": "api"})
    );
    assert_no_secret("the Deployment object", k8s.to_string().as_bytes());

    // A config change that gives no secret values keeps them.
    let (status, changed) = call(
        http.put(format!("{base}/api/usecases/{usecase}/config"))
            .json(&json!({"env": {"MODE": "debug"}})),
    )
    .await;
    assert_eq!(status, 202, "{changed}");
    let second = wait_for(&http, &base, usecase, &changed["id"], "deployed").await;
    assert_eq!(second["config"]["secretEnv"]["DB_PASSWORD"], *masked);
    assert_eq!(
        secret_values(&sim, &pod_secret(&second["id"]))
            .get("app.DB_PASSWORD")
            .map(String::as_str),
        Some(SECRET)
    );
    let (_, config) = call(http.get(format!("{base}/api/usecases/{usecase}/config"))).await;
    assert_eq!(config["secretEnv"]["DB_PASSWORD"], *masked, "{config}");

    // A rollback restores the first deployment's sealed value, which still opens.
    let (status, rolled) = call(
        http.post(format!("{base}/api/usecases/{usecase}/rollback"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 202, "{rolled}");
    let third = wait_for(&http, &base, usecase, &rolled["id"], "deployed").await;
    assert_eq!(third["config"]["env"], json!({"MODE": "prod"}));
    assert_eq!(
        secret_values(&sim, &pod_secret(&third["id"]))
            .get("app.DB_PASSWORD")
            .map(String::as_str),
        Some(SECRET)
    );

    // The command line shows the value masked, in tables and as JSON.
    let id = usecase.to_string();
    for args in [
        vec!["config", "get", id.as_str()],
        vec!["--output", "json", "config", "get", id.as_str()],
        vec!["history", id.as_str()],
        vec!["--output", "json", "deployments", id.as_str()],
    ] {
        let output = cli(&base, &args).await;
        assert_no_secret(&format!("`shiplog {}`", args.join(" ")), output.as_bytes());
        assert!(
            output.contains(&fingerprint),
            "`shiplog {}` names the key: {output}",
            args.join(" ")
        );
    }

    // The export (and the hash chain under it) holds ciphertext and the fingerprint only.
    let export = http
        .get(format!("{base}/api/audit/export"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("{e}"))
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_no_secret("the export", &export);
    assert!(String::from_utf8_lossy(&export).contains("\"ciphertext\""));

    // Delete the usecase: undeploy, then delete.
    let (status, _) = call(http.delete(format!("{base}/api/usecases/{usecase}/deployments"))).await;
    assert_eq!(status, 202);
    wait_for(&http, &base, usecase, &rolled["id"], "undeployed").await;
    let (status, body) = call(http.delete(format!("{base}/api/usecases/{usecase}"))).await;
    assert_eq!(status, 204, "{body}");

    // Assert: the value is in no row of the database, no stream message, no output.
    let events = whole_database(&db).await;
    assert!(
        events.contains(&fingerprint),
        "the ledger records the key's fingerprint"
    );
    assert_no_secret("the database's rows", events.as_bytes());
    eventually_within("the stream carried the deletion", BUDGET, || async {
        let text = String::from_utf8_lossy(&streamed.lock().map(|b| b.clone()).unwrap_or_default())
            .into_owned();
        match text.contains("UsecaseDeleted") {
            true => Ok(()),
            false => Err(text.len()),
        }
    })
    .await;
    stream_task.abort();
    assert_no_secret(
        "the SSE stream",
        &streamed.lock().map(|b| b.clone()).unwrap_or_default(),
    );

    // The data key is destroyed: the sealed value cannot be opened through the vault.
    let sealed_json: Value = sqlx::query_scalar(
        "SELECT payload::jsonb -> 'DeploymentRequested' -> 'config' -> 'secretEnv' -> 'DB_PASSWORD'
         FROM events WHERE aggregate_id = $1 AND event_type = 'DeploymentRequested' ORDER BY sequence LIMIT 1",
    )
    .bind(usecase.to_string())
    .fetch_one(&db.pool)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let sealed: SealedValue = serde_json::from_value(sealed_json).unwrap_or_else(|e| panic!("{e}"));
    let master = MasterKey::from_file(&key_file).unwrap_or_else(|e| panic!("{e}"));
    let vault = PgVault::new(db.pool.clone(), master);
    let opened = vault
        .open(
            usecase,
            &BTreeMap::from([("DB_PASSWORD".to_owned(), sealed)]),
        )
        .await;
    assert_eq!(opened.err(), Some(SecretError::KeyDestroyed(usecase)));
    let (wrapped, destroyed): (Option<Vec<u8>>, bool) = sqlx::query_as(
        "SELECT wrapped_key, destroyed_at IS NOT NULL FROM secret_keys WHERE usecase_id = $1",
    )
    .bind(usecase)
    .fetch_one(&db.pool)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((wrapped, destroyed), (None, true), "a tombstone is left");

    // The hash chain, which covers the ciphertext, still verifies.
    let verified = eventually_within(
        "every event is sealed into the chain and verifies",
        BUDGET,
        || async {
            let (_, report) = call(http.get(format!("{base}/api/audit/verify"))).await;
            match report["verified"] == true && report["unsealed"] == 0 {
                true => Ok(report),
                false => Err(report),
            }
        },
    )
    .await;
    assert!(
        verified["events"].as_u64().unwrap_or_default() > 10,
        "{verified}"
    );

    // The server never logged it either.
    let _ = server.0.kill();
    let _ = server.0.wait();
    let mut logs = std::fs::read(dir.join("stdout.log")).unwrap_or_default();
    logs.extend(std::fs::read(dir.join("stderr.log")).unwrap_or_default());
    assert!(
        String::from_utf8_lossy(&logs).contains("data key created"),
        "the logs were captured"
    );
    assert_no_secret("shiplog's stdout and stderr", &logs);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The usecase's stored events as (type, payload), in stream order.
async fn payloads_of(app: &TestApp, usecase: Uuid) -> Vec<(String, Value)> {
    sqlx::query_as(
        "SELECT event_type, payload::jsonb FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(usecase.to_string())
    .fetch_all(&app.db.pool)
    .await
    .unwrap_or_else(|e| panic!("events of {usecase}: {e}"))
}

/// A problem's status and `field`.
fn status_and_field(status: u16, body: &Value) -> (u16, Option<&str>) {
    (status, body["field"].as_str())
}

#[tokio::test]
async fn bad_secret_inputs_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("bad-secrets").await;
    let image =
        json!({"registry": "registry.example.com", "repository": "team/app", "tag": "1.0.0"});
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "an invalid name",
            json!({"secretEnv": {"1BAD": "x"}}),
            "config.secretEnv.1BAD",
        ),
        (
            "an empty name",
            json!({"secretEnv": {"": "x"}}),
            "config.secretEnv",
        ),
        (
            "a NUL in a value",
            json!({"secretEnv": {"A": "x\u{0}y"}}),
            "config.secretEnv.A",
        ),
        (
            "a name in env and in secretEnv",
            json!({"env": {"A": "plain"}, "secretEnv": {"A": "secret"}}),
            "config.secretEnv.A",
        ),
        (
            "a masked value sent back",
            json!({"secretEnv": {"A": {"secret": true, "key": "3fa2c1d0a1b2c3d4"}}}),
            "config.secretEnv.A",
        ),
        (
            "a reference without its key",
            json!({"secretRefs": [{"name": "A", "secret": {"name": "db"}}]}),
            "config.secretRefs[0].secret.key",
        ),
        (
            "a reference to an invalid Secret name",
            json!({"secretRefs": [{"name": "A", "secret": {"name": "Not_A_Name", "key": "k"}}]}),
            "config.secretRefs[0].secret.name",
        ),
        (
            "a variable referenced twice",
            json!({"secretRefs": [{"name": "A", "secret": {"name": "db", "key": "k"}}, {"name": "A", "secret": {"name": "db", "key": "j"}}]}),
            "config.secretRefs[1].name",
        ),
        (
            "a reference of a variable also in secretEnv",
            json!({"secretEnv": {"A": "x"}, "secretRefs": [{"name": "A", "secret": {"name": "db", "key": "k"}}]}),
            "config.secretRefs[0].name",
        ),
    ];
    for (description, extra, field) in cases {
        let mut config = json!({"image": image});
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        let (status, body) = app
            .post(
                &format!("/api/usecases/{usecase}/deployments"),
                json!({"config": config}),
            )
            .await;
        assert_eq!(
            status_and_field(status, &body),
            (422, Some(field)),
            "{description}: {body}"
        );
    }
    // The config change route names its fields from the top of its body.
    let (status, body) = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/usecases/{usecase}/config"),
            Some(ADMIN_TOKEN),
            Some(json!({"env": {}, "secretEnv": {"1BAD": "x"}})),
        )
        .await;
    assert_eq!(
        status_and_field(status, &body),
        (422, Some("secretEnv.1BAD")),
        "{body}"
    );
    // Nothing of it was recorded.
    assert!(
        app.events_of(usecase)
            .await
            .iter()
            .all(|(kind, _)| kind != "DeploymentRequested"),
        "no deployment was requested"
    );
}

#[tokio::test]
async fn a_server_without_a_master_key_refuses_secret_values_and_records_nothing() {
    let app = TestApp::spawn_configured(|s| s.secret_key = SecretKeySource::None).await;
    let usecase = app.create_usecase("no-master-key").await;
    let mut body = json!({"config": {"image": {"registry": "registry.example.com", "repository": "team/app", "tag": "1.0.0"}}});
    body["config"]["secretEnv"] = json!({"DB_PASSWORD": SECRET});
    let (status, problem) = app
        .post(
            &format!("/api/usecases/{usecase}/deployments"),
            body.clone(),
        )
        .await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(
        problem["type"],
        "https://shiplog.dev/problems/secrets-unavailable"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("--secret-key-file"),
        "{problem}"
    );
    let recorded = payloads_of(&app, usecase).await;
    assert!(
        recorded
            .iter()
            .all(|(kind, _)| kind != "DeploymentRequested"),
        "{recorded:?}"
    );
    assert_no_secret(
        "the events",
        serde_json::to_string(&recorded)
            .unwrap_or_default()
            .as_bytes(),
    );
    // Without secret values it deploys as before.
    if let Some(config) = body["config"].as_object_mut() {
        config.remove("secretEnv");
    }
    let (status, _) = app
        .post(&format!("/api/usecases/{usecase}/deployments"), body)
        .await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn a_template_marks_its_password_secret_on_the_platform_api() {
    let app = TestApp::spawn().await;
    let (status, created) = app
        .post(
            "/api/deployments",
            json!({"template": "postgres", "envVars": {"POSTGRES_PASSWORD": SECRET, "POSTGRES_DB": "shop"}, "visibility": "internal"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let name = created["name"].as_str().unwrap_or_default().to_owned();
    let (status, config) = app
        .get(&format!("/api/deployments/config?name={name}"))
        .await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["configData"]["POSTGRES_DB"], "shop");
    assert!(
        config["configData"].get("POSTGRES_PASSWORD").is_none(),
        "{config}"
    );
    assert_eq!(
        config["secretEnv"]["POSTGRES_PASSWORD"]["secret"], true,
        "{config}"
    );
    assert_eq!(
        config["generatedSecrets"],
        json!([]),
        "the given value wins over a generated one"
    );
    let usecase = uuid(&created["id"]);
    let recorded = payloads_of(&app, usecase).await;
    assert_no_secret(
        "the events",
        serde_json::to_string(&recorded)
            .unwrap_or_default()
            .as_bytes(),
    );
    // A config change without the password keeps it.
    let (status, changed) = app
        .send(
            reqwest::Method::PUT,
            "/api/deployments/config",
            Some(ADMIN_TOKEN),
            Some(json!({"deployment_name": name, "configData": {"POSTGRES_DB": "shop2"}})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    let recorded = payloads_of(&app, usecase).await;
    let change = recorded
        .iter()
        .find(|(kind, _)| kind == "ConfigChangeRequested")
        .map(|(_, payload)| payload.clone())
        .unwrap_or_default();
    assert_eq!(
        change["ConfigChangeRequested"]["secretEnv"]["POSTGRES_PASSWORD"]["key"],
        config["secretEnv"]["POSTGRES_PASSWORD"]["key"],
        "{change}"
    );
}
