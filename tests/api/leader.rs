//! Two `shiplog serve` processes on one database and one cluster: exactly one
//! runs the process manager, and when it is killed the other takes over.

use crate::helpers::{deploy_body, free_port, spawn_serve_on_kube, uuid, TestDb, ADMIN_TOKEN};
use kube_sim::{KubeSim, SimConfig};
use serde_json::json;
use shiplog_testkit::eventually_within;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LEADS: &str = "process manager: this process leads";

struct Serve {
    child: Child,
    log: PathBuf,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn spawn(db: &TestDb, kubeconfig: &Path, dir: &Path, n: usize) -> Self {
        let port = free_port();
        let log = dir.join(format!("serve-{n}.log"));
        let child = spawn_serve_on_kube(&db.url, kubeconfig, port, 0, &log);
        Self {
            child,
            log,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn leads(&self) -> bool {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .contains(LEADS)
    }
}

/// Sends `request` as the admin and returns the JSON answer (null when it is not JSON).
async fn answer(request: reqwest::RequestBuilder) -> serde_json::Value {
    request
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default()
}

async fn deploy_and_wait(client: &reqwest::Client, base: &str, usecase: &str, tag: &str) {
    let accepted = answer(
        client
            .post(format!("{base}/api/usecases/{usecase}/deployments"))
            .json(&deploy_body(tag)),
    )
    .await;
    let id = uuid(&accepted["id"]);
    let url = format!("{base}/api/usecases/{usecase}/deployments/{id}");
    eventually_within(
        &format!("{tag} is deployed"),
        Duration::from_secs(15),
        || async {
            let d = answer(client.get(&url)).await;
            if d["status"] == "deployed" {
                Ok(())
            } else {
                Err(d)
            }
        },
    )
    .await;
}

#[tokio::test]
async fn exactly_one_process_leads_and_the_other_takes_over_when_it_dies() {
    let sim = KubeSim::start(SimConfig {
        ready_delay: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let dir =
        std::env::temp_dir().join(format!("shiplog-leader-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)
        .unwrap_or_else(|e| panic!("{e}"));
    let db = TestDb::create().await;
    let one = Serve::spawn(&db, &kubeconfig, &dir, 1);
    let two = Serve::spawn(&db, &kubeconfig, &dir, 2);

    eventually_within("one process leads", Duration::from_secs(20), || async {
        if one.leads() || two.leads() {
            Ok(())
        } else {
            Err("neither log says it leads")
        }
    })
    .await;
    // Give the other every chance to (wrongly) lead as well.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        one.leads() != two.leads(),
        "exactly one process must lead (one: {}, two: {})",
        one.leads(),
        two.leads()
    );

    let client = reqwest::Client::new();
    let created = answer(
        client
            .post(format!("{}/api/usecases", two.base))
            .json(&json!({"name": "shared"})),
    )
    .await;
    let usecase = created["id"].as_str().unwrap_or_default().to_owned();
    deploy_and_wait(&client, &two.base, &usecase, "1").await;

    // Kill the leader without warning; the survivor must take over within seconds.
    let mut servers = vec![one, two];
    let leader_at = servers
        .iter()
        .position(Serve::leads)
        .unwrap_or_else(|| panic!("no leader"));
    let mut leader = servers.remove(leader_at);
    let survivor = servers.remove(0);
    leader.child.kill().unwrap_or_else(|e| panic!("{e}"));
    let _ = leader.child.wait();
    let killed_at = Instant::now();
    eventually_within(
        "the survivor takes over",
        Duration::from_secs(10),
        || async {
            if survivor.leads() {
                Ok(())
            } else {
                Err("its log does not say it leads")
            }
        },
    )
    .await;
    let took = killed_at.elapsed();
    eprintln!("takeover after {took:?}");
    deploy_and_wait(&client, &survivor.base, &usecase, "2").await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn shiplog_sim_runs_standalone_and_writes_a_working_kubeconfig() {
    let dir = std::env::temp_dir().join(format!("shiplog-sim-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = dir.join("kubeconfig");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sim = Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args([
            "sim",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--write-kubeconfig",
        ])
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn shiplog sim: {e}"));
    eventually_within(
        "the kubeconfig is written",
        Duration::from_secs(20),
        || async {
            if kubeconfig.exists() {
                Ok(())
            } else {
                Err("no file yet")
            }
        },
    )
    .await;
    let yaml = std::fs::read_to_string(&kubeconfig).unwrap_or_default();
    let config =
        kube::config::Kubeconfig::from_yaml(&yaml).unwrap_or_else(|e| panic!("kubeconfig: {e}"));
    let config =
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let client = kube::Client::try_from(config).unwrap_or_else(|e| panic!("{e}"));
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> = kube::Api::all(client);
    let list = deployments.list(&Default::default()).await;
    let _ = sim.kill();
    let _ = sim.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        list.map(|l| l.items.len())
            .unwrap_or_else(|e| panic!("list across all namespaces: {e}")),
        0
    );
}
