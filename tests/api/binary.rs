//! Running the built `shiplog` binary and curl commands against it, as the seed
//! walkthroughs do: the binary is killed when the test ends.

use serde_json::Value;
use shiplog_testkit::eventually_within;
use std::process::{Child, Command};
use std::time::Duration;

/// The built binary, killed when the test ends.
pub struct Shiplog(pub Child);

impl Drop for Shiplog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits until `host` answers `/healthz`; fails after 30 s (scaled).
pub async fn wait_until_healthy(host: &str) {
    let client = reqwest::Client::new();
    let url = format!("{host}/healthz");
    eventually_within(
        "shiplog serve comes up",
        Duration::from_secs(30),
        || async {
            match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(r.status().to_string()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
}

/// Runs a curl command line with bash; returns (status, body as JSON, or as a
/// string when it is not JSON). The harness only adds how it reads the answer:
/// quiet, and the status on a last line.
pub fn curl(command: &str) -> (u16, Value) {
    let script = format!("{command} --silent --show-error --write-out '\\n%{{http_code}}'");
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("bash: {e}"));
    assert!(
        output.status.success(),
        "curl failed: {}\n{script}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        status.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned())),
    )
}
