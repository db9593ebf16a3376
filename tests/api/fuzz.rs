//! Property-based fuzzing of the whole API in CI: `scripts/fuzz` runs schemathesis (a
//! pinned version, in a virtualenv the script creates) against the built binary's
//! `/openapi.json` with an admin token, every check (`--checks all`) and the stateful
//! phase, which follows the document's links from what POST answers. It must find
//! nothing: each earlier finding is a test of its own in `openapi_contract.rs`.

use crate::helpers::{free_port, TestDb, ADMIN_TOKEN};
use shiplog_testkit::eventually;
use std::process::Stdio;
use tokio::process::{Child, Command};

/// The binary under test, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

#[tokio::test]
async fn the_api_survives_schemathesis() {
    let db = TestDb::create().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // A master key, as a configured server has one: secret values are sealed, not refused.
    let key_file = std::env::temp_dir().join(format!("shiplog-fuzz-{}.key", uuid::Uuid::new_v4()));
    std::fs::write(&key_file, "00".repeat(32)).unwrap_or_else(|e| panic!("{e}"));
    // The embedded defaults, as a user runs it: the built-in simulator, so deployments
    // really roll out and the stateful phase reaches logs, restarts and rollbacks.
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_shiplog"))
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("SHIPLOG_LISTEN", format!("127.0.0.1:{port}"))
            .env("SHIPLOG_PROXY_LISTEN", "127.0.0.1:0")
            .env("SHIPLOG_INGRESS_LISTEN", "127.0.0.1:0")
            .env("SHIPLOG_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SHIPLOG_SECRET_KEY_FILE", &key_file)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn shiplog: {e}")),
    );
    let client = reqwest::Client::new();
    eventually("shiplog answers /healthz", || async {
        match client.get(format!("{base}/healthz")).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(response.status().to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/fuzz");
    let output = Command::new(script)
        .args([&base, ADMIN_TOKEN])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let _ = std::fs::remove_file(&key_file);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found failures (exit {:?}); each becomes a test in openapi_contract.rs and a fix:\n{stdout}\n{stderr}",
        output.status.code()
    );
    // A run that tested nothing would pass too: every operation of the document must
    // have been tested, and every phase (the stateful one included) must have run.
    let spec = serde_json::to_value(shiplog_api::docs::spec()).unwrap_or_default();
    let operations: usize = spec["paths"]
        .as_object()
        .map(|paths| {
            paths
                .values()
                .filter_map(|item| item.as_object())
                .map(|item| item.keys().filter(|k| k.as_str() != "parameters").count())
                .sum()
        })
        .unwrap_or_default();
    assert!(
        stdout.contains(&format!("Tested: {operations}")),
        "schemathesis did not test all {operations} operations:\n{stdout}"
    );
    for phase in ["Examples", "Coverage", "Fuzzing", "Stateful"] {
        assert!(
            stdout.contains(&format!("✅ {phase}")),
            "the {phase} phase did not pass:\n{stdout}"
        );
    }
}
