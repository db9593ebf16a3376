//! The deployment flows: each one usecase's life, planned from the seed (register or create,
//! then deploys, config changes, restarts, rollbacks, broken images, undeploys, and a
//! delete or not), run against whichever shiplog process is up. Every command is journalled
//! with the request id it was sent under and what its client was told, so that the checks
//! can hold the ledger to every acknowledgement.

use crate::fleet::{Fleet, ADMIN_TOKEN};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use shiplog_client::{Client, ClientError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long one wait of a flow (a rollout, a deletion) may take before the flow gives up
/// on it and goes on; the checks after the run judge the end state.
const WAIT_BUDGET: Duration = Duration::from_secs(60);
/// How often a command is tried while no process answers.
const ATTEMPTS: usize = 40;
/// The pause between two tries of an unanswered command, and between two polls.
const PAUSE: Duration = Duration::from_millis(150);
/// The client's bound on one request: far above any healthy answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How a flow's usecase comes into being.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `POST /api/usecases`, then a first deploy.
    Register,
    /// `POST /api/deployments/deploy-image`: public (Ingress), with a variable (Secret).
    Image,
    /// `POST /api/deployments` of the `postgres` template: a generated password Secret.
    Template,
}

/// One change a flow makes to its usecase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A new deployment of a good image.
    Deploy,
    /// A new deployment of an image that never pulls: it ends in error.
    DeployBroken,
    /// `PUT /api/usecases/{id}/config`.
    Config,
    /// `POST /api/usecases/{id}/restart`.
    Restart,
    /// `POST /api/usecases/{id}/rollback`.
    Rollback,
    /// `DELETE /api/usecases/{id}/deployments`.
    Undeploy,
    /// `PUT /api/deployments/config`.
    PlatformConfig,
    /// `POST /api/deployments/restart`.
    PlatformRestart,
}

/// One flow, as the seed plans it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Its number in the run (0-based).
    pub index: usize,
    /// How its usecase is created.
    pub start: Start,
    /// What is done to it, in order.
    pub ops: Vec<Op>,
    /// Whether it is deleted at the end (else it is left as it is).
    pub delete: bool,
}

/// The seed of flow `index`'s own random numbers: flows stay the same whatever the others do.
fn flow_seed(seed: u64, index: usize) -> u64 {
    seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Plan {
    /// Flow `index` of the run seeded `seed`.
    pub fn of(seed: u64, index: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(flow_seed(seed, index));
        let start = match rng.gen_range(0..100) {
            0..=59 => Start::Register,
            60..=84 => Start::Image,
            _ => Start::Template,
        };
        let mut ops = Vec::new();
        match start {
            Start::Register => {
                ops.push(if rng.gen_bool(0.2) {
                    Op::DeployBroken
                } else {
                    Op::Deploy
                });
                for _ in 0..rng.gen_range(2..=5) {
                    ops.push(match rng.gen_range(0..100) {
                        0..=19 => Op::Deploy,
                        20..=29 => Op::DeployBroken,
                        30..=49 => Op::Config,
                        50..=64 => Op::Restart,
                        65..=79 => Op::Rollback,
                        _ => Op::Undeploy,
                    });
                }
            }
            Start::Image | Start::Template => {
                for _ in 0..rng.gen_range(0..=3) {
                    ops.push(match rng.gen_range(0..100) {
                        0..=34 => Op::PlatformConfig,
                        35..=59 => Op::PlatformRestart,
                        60..=79 => Op::Rollback,
                        _ => Op::DeployBroken,
                    });
                }
            }
        }
        Self {
            index,
            start,
            ops,
            delete: rng.gen_bool(0.5),
        }
    }
}

/// What a command's client was told.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A 2xx: acknowledged; the id the answer gave, when it gave one.
    Acked(Option<String>),
    /// A 4xx: refused (a conflict the flow runs into, such as nothing to roll back to).
    Refused(u16),
    /// No answer: the process died (or was down). It may or may not be in the ledger.
    Unanswered,
    /// A 5xx or a refused token: a bug.
    Failed(String),
}

/// One command sent.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The flow that sent it.
    pub flow: usize,
    /// What it was (`deploy`, `platform-delete`, ...).
    pub what: &'static str,
    /// The `X-Request-Id` it was sent with: the ledger records it on its events.
    pub request_id: String,
    /// What its client was told.
    pub answer: Answer,
}

/// Everything the flows did, shared by all of them.
#[derive(Default)]
pub struct Journal {
    /// Every command, in the order answered.
    pub sent: Mutex<Vec<Sent>>,
    /// Waits that ran out of budget (not violations by themselves: the end state is checked).
    pub slow: Mutex<Vec<String>>,
    /// Flows that ran to their end.
    pub finished: AtomicUsize,
    /// Usecases the flows created, with the flow that created them.
    pub usecases: Mutex<Vec<(usize, Uuid)>>,
}

impl Journal {
    fn record(&self, sent: Sent) {
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sent);
    }

    fn slow(&self, what: String) {
        eprintln!("  slow: {what}");
        self.slow
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(what);
    }
}

/// What every flow needs: the processes, one HTTP client, the journal and the run's bounds.
pub struct Driver {
    /// The processes.
    pub fleet: Arc<Fleet>,
    /// The pooled HTTP client.
    pub http: reqwest::Client,
    /// The journal.
    pub journal: Journal,
    /// The run's seed (in names and request ids).
    pub seed: u64,
    /// No new flow, command or wait starts after this.
    pub deadline: Instant,
}

/// The result of one command: its answer, and the body of a 2xx.
struct Reply {
    answer: Answer,
    body: Value,
}

impl Driver {
    /// The clients of the processes in use, one per process.
    async fn clients(&self) -> Vec<Client> {
        self.fleet
            .urls()
            .await
            .iter()
            .map(|url| Client::with_http(self.http.clone(), url, Some(ADMIN_TOKEN)))
            .collect()
    }

    fn past_deadline(&self) -> bool {
        Instant::now() > self.deadline
    }

    /// Sends a command until some process answers it (each try under a request id of its
    /// own, journalled), and returns the last answer.
    async fn command(
        &self,
        flow: usize,
        what: &'static str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut last = Reply {
            answer: Answer::Unanswered,
            body: Value::Null,
        };
        for attempt in 0..ATTEMPTS {
            if self.past_deadline() {
                break;
            }
            let clients = self.clients().await;
            let client = &clients[(flow + attempt) % clients.len()];
            let request_id = format!(
                "chaos-{}-{flow}-{what}-{}",
                self.seed,
                Uuid::new_v4().simple()
            );
            let mut request = client
                .request(method.clone(), path)
                .header("x-request-id", &request_id)
                .timeout(REQUEST_TIMEOUT);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let (answer, body) = match client.send(request).await {
                Ok(response) => {
                    // The status line is the acknowledgement: the body may still be cut off.
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    let id = ["id", "restartId"]
                        .iter()
                        .find_map(|k| body[*k].as_str().map(str::to_owned));
                    (Answer::Acked(id), body)
                }
                Err(ClientError::Unreachable { .. }) => (Answer::Unanswered, Value::Null),
                Err(ClientError::Api { status, .. }) if (400..500).contains(&status) => {
                    (Answer::Refused(status), Value::Null)
                }
                Err(e) => (
                    Answer::Failed(format!("{what} {path}: {e} (status {:?})", e.status())),
                    Value::Null,
                ),
            };
            self.journal.record(Sent {
                flow,
                what,
                request_id,
                answer: answer.clone(),
            });
            let retry = matches!(answer, Answer::Unanswered | Answer::Failed(_));
            last = Reply { answer, body };
            if !retry {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
        last
    }

    /// Reads `path` from any process until one answers (status and body), within the
    /// run's bounds.
    async fn read(&self, flow: usize, path: &str) -> Option<(StatusCode, Value)> {
        for attempt in 0..ATTEMPTS {
            let clients = self.clients().await;
            let client = &clients[(flow + attempt) % clients.len()];
            let request = client.request(Method::GET, path).timeout(REQUEST_TIMEOUT);
            if let Ok(response) = request.send().await {
                let status = response.status();
                if let Ok(body) = response.json::<Value>().await {
                    if !status.is_server_error() {
                        return Some((status, body));
                    }
                }
            }
            tokio::time::sleep(PAUSE).await;
        }
        None
    }

    /// Polls `check` (Ok: done; Err: what was seen) until it holds or the wait's budget
    /// runs out, which is journalled as slow.
    async fn wait<F, Fut>(&self, what: String, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let until = (Instant::now() + WAIT_BUDGET).min(self.deadline);
        let mut seen = String::new();
        while Instant::now() < until {
            match check().await {
                Ok(()) => return,
                Err(s) => seen = s,
            }
            tokio::time::sleep(PAUSE).await;
        }
        if !self.past_deadline() {
            self.journal.slow(format!("{what}: {seen}"));
        }
    }

    /// Until the usecase has nothing pending, deploying or being undeployed (or is gone).
    async fn wait_quiet(&self, flow: usize, usecase: Uuid) {
        let path = format!("/api/usecases/{usecase}/deployments?limit=200");
        self.wait(
            format!("flow {flow}: usecase {usecase} at rest"),
            || async {
                match self.read(flow, &path).await {
                    Some((StatusCode::NOT_FOUND, _)) => Ok(()),
                    Some((StatusCode::OK, page)) => {
                        let busy: Vec<String> = page["items"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|d| {
                                let status = d["status"].as_str().unwrap_or_default();
                                matches!(status, "pending" | "deploying")
                                    || (d["undeployRequested"] == true
                                        && !matches!(status, "superseded" | "undeployed" | "error"))
                            })
                            .map(|d| format!("{} {}", d["id"], d["status"]))
                            .collect();
                        if busy.is_empty() {
                            Ok(())
                        } else {
                            Err(busy.join(", "))
                        }
                    }
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
    }

    /// Until the restart has an outcome in the usecase's history.
    async fn wait_restart(&self, flow: usize, usecase: Uuid, restart: &str) {
        let path = format!(
            "/api/usecases/{usecase}/history?limit=200&types=RestartSucceeded,RestartFailed"
        );
        self.wait(format!("flow {flow}: restart {restart} ended"), || async {
            match self.read(flow, &path).await {
                Some((StatusCode::OK, page)) if page.to_string().contains(restart) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }

    /// Until the usecase is deleted (its read answers 404).
    async fn wait_deleted(&self, flow: usize, usecase: Uuid) {
        let path = format!("/api/usecases/{usecase}");
        self.wait(
            format!("flow {flow}: usecase {usecase} deleted"),
            || async {
                match self.read(flow, &path).await {
                    Some((StatusCode::NOT_FOUND, _)) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
    }

    /// The id of the usecase named exactly `name`: its registration is in the ledger, but
    /// the read models may not show it yet (a process that just started catches up first).
    async fn usecase_named(&self, flow: usize, name: &str) -> Option<Uuid> {
        let until = (Instant::now() + WAIT_BUDGET).min(self.deadline);
        let path = format!("/api/usecases?limit=200&name={name}");
        while Instant::now() < until {
            if let Some((_, page)) = self.read(flow, &path).await {
                let found = page["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|u| u["name"] == name)
                    .and_then(|u| u["id"].as_str()?.parse().ok());
                if found.is_some() {
                    return found;
                }
            }
            tokio::time::sleep(PAUSE).await;
        }
        None
    }

    /// Creates the flow's usecase; its id and name, or `None` when no creation was
    /// acknowledged within the run's bounds.
    async fn create(&self, plan: &Plan) -> Result<(Uuid, String), String> {
        let flow = plan.index;
        let seed = self.seed;
        let mut last = Answer::Unanswered;
        for _ in 0..3 {
            let (what, path, body, name) = match plan.start {
                Start::Register => {
                    let name = format!("chaos-{seed}-{flow}");
                    (
                        "register",
                        "/api/usecases",
                        json!({"name": name}),
                        Some(name),
                    )
                }
                Start::Image => {
                    let name = format!("c{seed}-{flow}-web");
                    let body = json!({
                        "image": "registry.example.com/team/web:1.0",
                        "name": name,
                        "envVars": {"TOKEN": format!("t0ps3cret-{flow}")},
                        "visibility": "public",
                    });
                    (
                        "platform-image",
                        "/api/deployments/deploy-image",
                        body,
                        Some(name),
                    )
                }
                // A generated name: an unanswered creation cannot be found again, and is
                // left as it is (the checks cover it like any other usecase).
                Start::Template => (
                    "platform-create",
                    "/api/deployments",
                    json!({"template": "postgres", "visibility": "internal"}),
                    None,
                ),
            };
            let reply = self
                .command(flow, what, Method::POST, path, Some(body))
                .await;
            match &reply.answer {
                Answer::Acked(_) => {
                    let id = reply.body["id"].as_str().and_then(|s| s.parse().ok());
                    let name = reply.body["name"]
                        .as_str()
                        .map(str::to_owned)
                        .or(name.clone());
                    if let (Some(id), Some(name)) = (id, name.clone()) {
                        return Ok((id, name));
                    }
                    // Acknowledged, but the body was cut off: find it by name.
                    if let Some(name) = name {
                        return self.found(flow, name).await;
                    }
                }
                // Taken: an earlier, unanswered try of ours got through.
                Answer::Refused(409) => {
                    if let Some(name) = name {
                        return self.found(flow, name).await;
                    }
                }
                _ => {}
            }
            last = reply.answer;
            if self.past_deadline() {
                break;
            }
        }
        Err(format!("the last answer: {last:?}"))
    }

    /// The usecase named `name`, which the ledger has, with its name.
    async fn found(&self, flow: usize, name: String) -> Result<(Uuid, String), String> {
        match self.usecase_named(flow, &name).await {
            Some(id) => Ok((id, name)),
            None => Err(format!("{name} is taken, but no process lists it")),
        }
    }

    /// Runs one flow to its end (or to the run's deadline).
    pub async fn run(&self, plan: &Plan) {
        let flow = plan.index;
        let (usecase, name) = match self.create(plan).await {
            Ok(created) => created,
            Err(why) => {
                self.journal.slow(format!(
                    "flow {flow}: its usecase could not be created: {why}"
                ));
                return;
            }
        };
        self.journal
            .usecases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((flow, usecase));
        let base = format!("/api/usecases/{usecase}");
        if plan.start != Start::Register {
            self.wait_quiet(flow, usecase).await;
        }
        for (i, op) in plan.ops.iter().enumerate() {
            if self.past_deadline() {
                return;
            }
            let image = |tag: String| {
                json!({"config": {
                    "image": {"registry": "registry.example.com", "repository": "team/app", "tag": tag},
                    "env": {"STEP": i.to_string()},
                }})
            };
            let reply = match op {
                Op::Deploy => {
                    let body = image(format!("1.{i}.0"));
                    self.command(
                        flow,
                        "deploy",
                        Method::POST,
                        &format!("{base}/deployments"),
                        Some(body),
                    )
                    .await
                }
                Op::DeployBroken => {
                    let body = image(format!("1.{i}.0-broken"));
                    self.command(
                        flow,
                        "deploy-broken",
                        Method::POST,
                        &format!("{base}/deployments"),
                        Some(body),
                    )
                    .await
                }
                Op::Config => {
                    let body = json!({"env": {"STEP": i.to_string(), "MODE": "changed"}});
                    self.command(
                        flow,
                        "config",
                        Method::PUT,
                        &format!("{base}/config"),
                        Some(body),
                    )
                    .await
                }
                Op::Restart => {
                    self.command(
                        flow,
                        "restart",
                        Method::POST,
                        &format!("{base}/restart"),
                        None,
                    )
                    .await
                }
                Op::Rollback => {
                    self.command(
                        flow,
                        "rollback",
                        Method::POST,
                        &format!("{base}/rollback"),
                        Some(json!({})),
                    )
                    .await
                }
                Op::Undeploy => {
                    self.command(
                        flow,
                        "undeploy",
                        Method::DELETE,
                        &format!("{base}/deployments"),
                        None,
                    )
                    .await
                }
                Op::PlatformConfig => {
                    let body =
                        json!({"deployment_name": name, "configData": {"STEP": i.to_string()}});
                    self.command(
                        flow,
                        "platform-config",
                        Method::PUT,
                        "/api/deployments/config",
                        Some(body),
                    )
                    .await
                }
                Op::PlatformRestart => {
                    let body = json!({"deployment_name": name});
                    self.command(
                        flow,
                        "platform-restart",
                        Method::POST,
                        "/api/deployments/restart",
                        Some(body),
                    )
                    .await
                }
            };
            if let (Op::Restart | Op::PlatformRestart, Answer::Acked(Some(restart))) =
                (op, &reply.answer)
            {
                self.wait_restart(flow, usecase, restart).await;
            }
            self.wait_quiet(flow, usecase).await;
        }
        if plan.delete && !self.past_deadline() {
            // After an undeploy the PhariaOS delete applies (204); otherwise the platform's
            // delete, which undeploys first. A 409 (still in flight) falls back to the latter.
            let mut deleted = false;
            if plan.ops.last() == Some(&Op::Undeploy) {
                let reply = self
                    .command(flow, "delete", Method::DELETE, &base, None)
                    .await;
                deleted = matches!(reply.answer, Answer::Acked(_) | Answer::Refused(404));
            }
            if !deleted {
                let body = json!({"deployment_name": name});
                self.command(
                    flow,
                    "platform-delete",
                    Method::POST,
                    "/api/deployments/delete",
                    Some(body),
                )
                .await;
            }
            self.wait_deleted(flow, usecase).await;
        }
        self.journal.finished.fetch_add(1, Ordering::SeqCst);
    }
}
