//! Three `shiplog serve` processes on one database and one cluster behave as one
//! service: under load from clients spread over all three (registrations, a few
//! names raced on purpose, deploys, config changes, restarts and rollbacks that
//! collide on the same usecases from different processes), every acknowledged
//! command is in the ledger, a raced name is given once, nothing answers 5xx,
//! every process's event stream carries the whole ledger in order, the process
//! manager runs once, the read models equal a rebuild, the hash chain verifies,
//! and every process's applications proxy reaches what is deployed.

use crate::helpers::{free_port, spawn_serve_on_kube, TestDb, ADMIN_TOKEN};
use futures::future::join_all;
use kube_sim::{KubeSim, SimConfig};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use shiplog_client::wire::ledger::EventRecord;
use shiplog_client::wire::operations::{ConfigChange, RollbackRequest};
use shiplog_client::wire::problem::ProblemType;
use shiplog_client::wire::usecases::{
    CreateDeployment, CreateUsecase, DeploymentConfigBody, ImageBody, StatusBody, UsecaseResponse,
};
use shiplog_client::{Client, ClientError, StreamStart};
use shiplog_testkit::{eventually, eventually_within};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// What the process manager's leader writes once when it takes the lead.
const LEADS: &str = "process manager: this process leads";
/// The processes on the one database.
const REPLICAS: usize = 3;
/// Usecases every worker operates on: few, so that commands collide.
const SHARED: usize = 4;
/// Names each registered from every replica at the same moment.
const RACED: usize = 3;
/// Usecases of names of their own, registered alongside.
const DISTINCT: usize = 9;
/// Concurrent clients operating the shared usecases; worker `w` uses replica `w % 3`.
const WORKERS: usize = 6;
/// Commands per worker, one after the other.
const OPS_PER_WORKER: usize = 30;

/// One `shiplog serve` process, killed when dropped.
struct Replica {
    child: Child,
    log: PathBuf,
    api: Client,
    proxy: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    /// Starts the built binary on `db`, driving the cluster behind `kubeconfig`, and
    /// returns once it answers `/readyz`.
    async fn start(db: &TestDb, kubeconfig: &Path, dir: &Path, n: usize) -> Self {
        let (port, proxy_port) = (free_port(), free_port());
        let log = dir.join(format!("serve-{n}.log"));
        let child = spawn_serve_on_kube(&db.url, kubeconfig, port, proxy_port, &log);
        let api = Client::new(&format!("http://127.0.0.1:{port}"), Some(ADMIN_TOKEN))
            .unwrap_or_else(|e| panic!("{e}"));
        let replica = Self {
            child,
            log,
            api,
            proxy: format!("http://127.0.0.1:{proxy_port}"),
        };
        eventually_within(
            &format!("replica {n} is ready"),
            Duration::from_secs(30),
            || async { replica.api.get::<Value, _>("/readyz", &()).await },
        )
        .await;
        replica
    }

    /// How often its log says it took the lead of the process manager.
    fn times_led(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches(LEADS)
            .count()
    }
}

/// The kinds of command the load sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Register,
    Deploy,
    Config,
    Restart,
    Rollback,
}

impl Kind {
    /// The event an accepted command of this kind appends, and its field holding the
    /// id the client was given.
    fn recorded_as(self) -> (&'static str, &'static str) {
        match self {
            Kind::Register => ("UsecaseRegistered", "usecaseId"),
            Kind::Deploy => ("DeploymentRequested", "deploymentId"),
            Kind::Config => ("ConfigChangeRequested", "deploymentId"),
            Kind::Restart => ("RestartRequested", "restartId"),
            Kind::Rollback => ("RollbackRequested", "deploymentId"),
        }
    }
}

/// A worker's commands in turn: deploys often, and each of the others twice per round.
const ROUND: [Kind; 8] = [
    Kind::Deploy,
    Kind::Config,
    Kind::Deploy,
    Kind::Restart,
    Kind::Rollback,
    Kind::Deploy,
    Kind::Restart,
    Kind::Config,
];

/// One command sent and what its client was told: the id it was given, or the refusal.
#[derive(Debug)]
struct Outcome {
    kind: Kind,
    replica: usize,
    answer: Result<Uuid, ClientError>,
}

/// `POST /api/usecases` on `api`: the new usecase's id on 201, the refusal otherwise.
async fn register(api: &Client, name: &str) -> Result<Uuid, ClientError> {
    let body = CreateUsecase {
        name: name.to_owned(),
        description: None,
    };
    let response = api
        .send(api.request(Method::POST, "/api/usecases").json(&body))
        .await?;
    if response.status() != StatusCode::CREATED {
        return Err(ClientError::Unexpected(format!(
            "registration answered {}",
            response.status()
        )));
    }
    let created: UsecaseResponse = response
        .json()
        .await
        .map_err(|e| ClientError::Unexpected(e.to_string()))?;
    Ok(created.id)
}

/// A deployment of `registry.example.com/team/app:<tag>`.
fn deployment_of(tag: &str) -> CreateDeployment {
    CreateDeployment {
        config: DeploymentConfigBody {
            image: ImageBody {
                registry: "registry.example.com".to_owned(),
                repository: "team/app".to_owned(),
                tag: tag.to_owned(),
                digest: None,
            },
            service_monitor: None,
            container_port: None,
            env: None,
            replicas: None,
            resources: None,
            secret_env: None,
            secret_refs: None,
        },
    }
}

/// Sends command `i` of worker `w` to `api`: the kind and usecase follow from `w`
/// and `i`, so that at every step the three workers of one group (one per replica)
/// act on the same usecase at once.
async fn command(
    api: &Client,
    usecases: &[Uuid],
    w: usize,
    i: usize,
) -> (Kind, Result<Uuid, ClientError>) {
    let usecase = usecases[(i + w / REPLICAS) % usecases.len()];
    let kind = ROUND[(i + w) % ROUND.len()];
    let answer = match kind {
        Kind::Deploy => api
            .deploy(usecase, &deployment_of(&format!("{w}.{i}.0")))
            .await
            .map(|a| a.id),
        Kind::Config => {
            let env = BTreeMap::from([("RUN".to_owned(), format!("{w}-{i}"))]);
            api.change_config(
                usecase,
                &ConfigChange {
                    env,
                    ..ConfigChange::default()
                },
            )
            .await
            .map(|a| a.id)
        }
        Kind::Restart => api.restart(usecase).await.map(|a| a.restart_id),
        Kind::Rollback => api
            .rollback(usecase, &RollbackRequest::default())
            .await
            .map(|a| a.id),
        Kind::Register => unreachable!("workers register nothing"),
    };
    (kind, answer)
}

/// The ids of `payload` (`{"<type>": {...}}`) under `field`, when it has one.
fn id_in(event: &EventRecord, field: &str) -> Option<String> {
    event.payload[&event.event_type][field]
        .as_str()
        .map(str::to_owned)
}

/// The whole ledger, oldest first, through `api`'s `GET /api/events` pages.
async fn ledger(api: &Client) -> Vec<EventRecord> {
    api.all_pages("/api/events", &[])
        .await
        .unwrap_or_else(|e| panic!("reading the ledger: {e}"))
}

/// What is still in flight: deployments pending or deploying, restarts without an outcome.
async fn in_flight(api: &Client) -> Result<(), String> {
    let mut busy = Vec::new();
    for usecase in api.usecases(None, None).await.map_err(|e| e.to_string())? {
        for d in api
            .deployments(usecase.id)
            .await
            .map_err(|e| e.to_string())?
        {
            if matches!(d.status, StatusBody::Pending | StatusBody::Deploying) {
                busy.push(format!("deployment {} is {}", d.id, d.status.as_str()));
            }
        }
    }
    let events = ledger(api).await;
    let ended: HashSet<String> = events
        .iter()
        .filter(|e| matches!(e.event_type.as_str(), "RestartSucceeded" | "RestartFailed"))
        .filter_map(|e| id_in(e, "restartId"))
        .collect();
    busy.extend(
        events
            .iter()
            .filter(|e| e.event_type == "RestartRequested")
            .filter_map(|e| id_in(e, "restartId"))
            .filter(|id| !ended.contains(id))
            .map(|id| format!("restart {id} has no outcome")),
    );
    if busy.is_empty() {
        Ok(())
    } else {
        Err(busy.join("; "))
    }
}

/// Every usecase with its deployments, as the read models answer through `api`.
async fn read_models(api: &Client) -> Value {
    let mut usecases = api
        .usecases(None, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    usecases.sort_by_key(|u| u.id);
    let mut all = Vec::new();
    for usecase in usecases {
        let deployments = api
            .deployments(usecase.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        all.push(json!({"usecase": usecase, "deployments": deployments}));
    }
    Value::Array(all)
}

#[tokio::test]
async fn three_replicas_on_one_database_behave_as_one_service_under_load() {
    // Arrange: one cluster, one database, three processes.
    let sim = KubeSim::start(SimConfig {
        ready_delay: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("shiplog-replicas-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("replica logs in {}", dir.display());
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)
        .unwrap_or_else(|e| panic!("{e}"));
    let db = TestDb::create().await;
    let replicas = join_all((0..REPLICAS).map(|n| Replica::start(&db, &kubeconfig, &dir, n))).await;
    eventually("one replica leads the process manager", || async {
        let leaders = replicas.iter().filter(|r| r.times_led() > 0).count();
        if leaders > 0 {
            Ok(())
        } else {
            Err("no log says it leads")
        }
    })
    .await;

    // An event stream on each replica, open before the first command.
    let streams: Vec<Arc<Mutex<Vec<String>>>> = (0..REPLICAS).map(|_| Arc::default()).collect();
    let mut followers = Vec::new();
    for (replica, seen) in replicas.iter().zip(&streams) {
        let mut feed = replica
            .api
            .follow(None, StreamStart::default())
            .await
            .unwrap_or_else(|e| panic!("following {}: {e}", replica.api.base_url()));
        let seen = seen.clone();
        followers.push(tokio::spawn(async move {
            loop {
                match feed.next().await {
                    Ok(event) => seen
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(event.cursor),
                    Err(e) => return e,
                }
            }
        }));
    }

    // Act, first: registrations: the shared usecases, names of their own, and raced
    // names, each sent to every replica at once.
    let api = |n: usize| &replicas[n % REPLICAS].api;
    let shared: Vec<(usize, String)> = (0..SHARED).map(|k| (k, format!("shared-{k}"))).collect();
    let distinct: Vec<(usize, String)> = (0..DISTINCT)
        .map(|k| (k, format!("distinct-{k}")))
        .collect();
    let raced: Vec<(usize, String)> = (0..RACED)
        .flat_map(|k| (0..REPLICAS).map(move |n| (n, format!("raced-{k}"))))
        .collect();
    let registrations = shared.iter().chain(&distinct).chain(&raced);
    let registered = join_all(registrations.map(|(n, name)| async move {
        (name.clone(), *n % REPLICAS, register(api(*n), name).await)
    }))
    .await;
    let usecases: Vec<Uuid> = registered
        .iter()
        .filter(|(name, _, _)| name.starts_with("shared-"))
        .map(|(name, _, answer)| {
            answer
                .as_ref()
                .copied()
                .unwrap_or_else(|e| panic!("registering {name}: {e}"))
        })
        .collect();

    // Then each shared usecase is deployed twice, from two replicas, so that restarts,
    // config changes and rollbacks have something to act on from the start.
    join_all(usecases.iter().enumerate().map(|(k, usecase)| async move {
        for (n, tag) in [(k, "0.0.1"), (k + 1, "0.0.2")] {
            let accepted = api(n)
                .deploy(*usecase, &deployment_of(tag))
                .await
                .unwrap_or_else(|e| panic!("deploying {tag} of {usecase}: {e}"));
            eventually(&format!("{tag} of {usecase} is deployed"), || async {
                match api(n).deployment(*usecase, accepted.id).await {
                    Ok(d) if d.status == StatusBody::Deployed => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            })
            .await;
        }
    }))
    .await;

    // Then: workers on every replica operate the shared usecases, colliding.
    let worked = join_all((0..WORKERS).map(|w| {
        let usecases = &usecases;
        async move {
            let mut outcomes = Vec::new();
            for i in 0..OPS_PER_WORKER {
                let (kind, answer) = command(api(w), usecases, w, i).await;
                outcomes.push(Outcome {
                    kind,
                    replica: w % REPLICAS,
                    answer,
                });
            }
            outcomes
        }
    }))
    .await;
    let mut outcomes: Vec<Outcome> = worked.into_iter().flatten().collect();

    // Assert: a raced name went to exactly one registration; the others were told it is taken.
    for k in 0..RACED {
        let name = format!("raced-{k}");
        let attempts: Vec<_> = registered.iter().filter(|(n, _, _)| *n == name).collect();
        let won = attempts.iter().filter(|(_, _, a)| a.is_ok()).count();
        assert_eq!(
            won, 1,
            "{name}: exactly one registration must win: {attempts:?}"
        );
        for (_, replica, answer) in &attempts {
            if let Err(e) = answer {
                assert!(
                    e.status() == Some(409) && e.kind() == Some(ProblemType::NameTaken),
                    "{name} on replica {replica}: a lost race is a 409 name-taken, not {e:?}"
                );
            }
        }
    }
    outcomes.extend(registered.into_iter().map(|(_, replica, answer)| Outcome {
        kind: Kind::Register,
        replica,
        answer,
    }));
    // Nothing failed: every refusal is a client error (a conflict the client can act on).
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .filter(
            |o| matches!(&o.answer, Err(e) if !e.status().is_some_and(|s| (400..500).contains(&s))),
        )
        .collect();
    assert!(failed.is_empty(), "commands that failed: {failed:#?}");
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for outcome in &outcomes {
        let answer = match &outcome.answer {
            Ok(_) => "accepted".to_owned(),
            Err(e) => format!("{:?}", e.kind()),
        };
        *tally
            .entry(format!("{:?} {answer}", outcome.kind))
            .or_default() += 1;
    }
    eprintln!("{} commands: {tally:?}", outcomes.len());
    for kind in [Kind::Deploy, Kind::Config, Kind::Restart, Kind::Rollback] {
        assert!(
            outcomes.iter().any(|o| o.kind == kind && o.answer.is_ok()),
            "the load must have had at least one accepted {kind:?}"
        );
    }
    // Every acknowledged command is in the ledger, by the id its client was given.
    let events = ledger(&replicas[0].api).await;
    let recorded: HashSet<(String, String)> = events
        .iter()
        .flat_map(|e| {
            ["usecaseId", "deploymentId", "restartId"]
                .into_iter()
                .filter_map(|field| id_in(e, field).map(|id| (e.event_type.clone(), id)))
        })
        .collect();
    for outcome in &outcomes {
        if let Ok(id) = &outcome.answer {
            let (event_type, _) = outcome.kind.recorded_as();
            assert!(
                recorded.contains(&(event_type.to_owned(), id.to_string())),
                "a {:?} acknowledged by replica {}, but no {event_type} of {id} in the ledger",
                outcome.kind,
                outcome.replica
            );
        }
    }

    // Once the load settles: nothing in flight, at most one deployed per usecase.
    eventually_within(
        "every deployment and restart reaches a final state",
        Duration::from_secs(60),
        || in_flight(&replicas[1].api),
    )
    .await;
    let models = read_models(&replicas[2].api).await;
    for entry in models.as_array().into_iter().flatten() {
        let deployed = entry["deployments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["status"] == "deployed")
            .count();
        assert!(deployed <= 1, "more than one deployed: {entry}");
    }

    // No outcome recorded twice.
    let events = ledger(&replicas[0].api).await;
    let mut outcomes_of: HashMap<(String, String), usize> = HashMap::new();
    for event in &events {
        let field = match event.event_type.as_str() {
            "DeploymentStarted"
            | "DeploymentSucceeded"
            | "DeploymentFailed"
            | "DeploymentSuperseded"
            | "DeploymentUndeployed" => "deploymentId",
            "RestartSucceeded" | "RestartFailed" => "restartId",
            _ => continue,
        };
        if let Some(id) = id_in(event, field) {
            *outcomes_of
                .entry((event.event_type.clone(), id))
                .or_default() += 1;
        }
    }
    let twice: Vec<_> = outcomes_of.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "outcomes recorded more than once: {twice:?}"
    );

    // Every replica's stream carried the whole ledger, in order, none twice.
    let cursors: Vec<String> = events.iter().map(|e| e.cursor.clone()).collect();
    for (n, seen) in streams.iter().enumerate() {
        let seen = eventually(
            &format!("replica {n}'s stream reaches the ledger's end"),
            || async {
                let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if seen.len() >= cursors.len() {
                    Ok(seen)
                } else {
                    Err(format!("{} of {} events", seen.len(), cursors.len()))
                }
            },
        )
        .await;
        assert!(
            seen.windows(2).all(|pair| pair[0] < pair[1]),
            "replica {n}'s stream is out of order or repeats an event"
        );
        assert_eq!(
            seen[..cursors.len()],
            cursors[..],
            "replica {n}'s stream differs from the ledger"
        );
    }
    for follower in followers {
        follower.abort();
    }

    // The process manager ran once: one replica took the lead, once, and kept it.
    let led: Vec<usize> = replicas.iter().map(Replica::times_led).collect();
    assert_eq!(
        led.iter().sum::<usize>(),
        1,
        "times each replica led: {led:?}"
    );

    // The read models equal a rebuild of them from the ledger.
    let rebuilt = tokio::process::Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(["projections", "rebuild", "--database-url", &db.url])
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap_or_else(|e| panic!("running shiplog projections rebuild: {e}"));
    assert!(
        rebuilt.status.success(),
        "shiplog projections rebuild: {}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    assert_eq!(
        read_models(&replicas[0].api).await,
        models,
        "the read models differ from their rebuild"
    );

    // The hash chain over the ledger verifies.
    let report = replicas[1]
        .api
        .verify()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.verified, "{report:?}");

    // Every replica's applications proxy reaches a deployed usecase's application.
    let (usecase, deployment) = models
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|entry| {
            let deployed = entry["deployments"]
                .as_array()?
                .iter()
                .find(|d| d["status"] == "deployed")?;
            Some((entry["usecase"]["id"].clone(), deployed["id"].clone()))
        })
        .unwrap_or_else(|| panic!("no usecase is deployed after the load: {models}"));
    let usecase = usecase.as_str().unwrap_or_default().to_owned();
    let http = reqwest::Client::new();
    for (n, replica) in replicas.iter().enumerate() {
        let response = http
            .get(format!("{}/{usecase}/whoami", replica.proxy))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap_or_else(|e| panic!("replica {n}'s proxy: {e}"));
        assert_eq!(response.status(), 200, "replica {n}'s proxy");
        let echo: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            echo["labels"]["shiplog.io/deployment"], deployment,
            "replica {n}'s proxy reached another deployment"
        );
    }
    drop(replicas);
    let _ = std::fs::remove_dir_all(&dir);
}
