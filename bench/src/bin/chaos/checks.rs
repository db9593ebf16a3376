//! What must hold once the survivors settle: the ledger against every acknowledgement, the
//! lifecycle against its invariants, the hash chain, the cluster against the ledger, and the
//! read models against a rebuild of them.

use crate::flows::{Answer, Sent};
use cqrs_es::Aggregate;
use kube_sim::KubeSim;
use shiplog_application::IngressSettings;
use shiplog_client::wire::ledger::{EventRecord, VerifyReport};
use shiplog_client::Client;
use shiplog_domain::{DeploymentStatus, Usecase, UsecaseEvent};
use shiplog_infrastructure::kube_objects::{
    deployment_name, generated_secret_name, ingress_name, service_name,
};
use shiplog_infrastructure::Projector;
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use uuid::Uuid;

/// The read models and the order their rows are compared in.
const VIEWS: [(&str, &str); 4] = [
    ("usecase_view", "id"),
    ("deployment_view", "id"),
    ("revision_view", "usecase_id, revision"),
    ("team_view", "id"),
];

/// The events that report how a deployment or a restart ended (or that it started):
/// each at most once per deployment or restart, whatever was killed when.
const OUTCOMES: [(&str, &str); 7] = [
    ("DeploymentStarted", "deploymentId"),
    ("DeploymentSucceeded", "deploymentId"),
    ("DeploymentFailed", "deploymentId"),
    ("DeploymentSuperseded", "deploymentId"),
    ("DeploymentUndeployed", "deploymentId"),
    ("RestartSucceeded", "restartId"),
    ("RestartFailed", "restartId"),
];

/// The whole ledger through the API, oldest first.
pub async fn ledger(api: &Client) -> anyhow::Result<Vec<EventRecord>> {
    Ok(api.all_pages("/api/events", &[]).await?)
}

/// Every usecase folded from its events by the aggregate itself, by id.
pub fn fold(events: &[EventRecord]) -> anyhow::Result<BTreeMap<Uuid, Usecase>> {
    let mut usecases: BTreeMap<Uuid, Usecase> = BTreeMap::new();
    for event in events.iter().filter(|e| e.aggregate_type == Usecase::TYPE) {
        let id: Uuid = event.usecase_id.parse()?;
        let payload: UsecaseEvent = serde_json::from_value(event.payload.clone())
            .map_err(|e| anyhow::anyhow!("event {} does not read: {e}", event.cursor))?;
        usecases.entry(id).or_default().apply(payload);
    }
    Ok(usecases)
}

/// What is not at rest yet: deployments in flight or being undeployed, restarts without
/// an outcome, deletions not finished. Empty once the survivors settled.
pub fn unsettled(usecases: &BTreeMap<Uuid, Usecase>) -> Vec<String> {
    let mut busy = Vec::new();
    for (id, usecase) in usecases {
        if usecase.deletion_requested && !usecase.deleted {
            busy.push(format!("usecase {id}: deletion requested, not deleted"));
        }
        for d in &usecase.deployments {
            if d.status.is_in_flight() {
                busy.push(format!("usecase {id}: deployment {} is {}", d.id, d.status));
            } else if d.undeploy_requested && !d.status.is_terminal() {
                busy.push(format!("usecase {id}: deployment {} is being undeployed", d.id));
            }
            if d.restart_pending {
                busy.push(format!(
                    "usecase {id}: restart {:?} of {} has no outcome",
                    d.latest_restart, d.id
                ));
            }
        }
    }
    busy
}

/// Counts of the journal, for the summary.
#[derive(Debug, Default)]
pub struct Tally {
    /// Commands sent (every try).
    pub sent: usize,
    /// Answered 2xx.
    pub acked: usize,
    /// Answered 4xx, by status.
    pub refused: BTreeMap<u16, usize>,
    /// Not answered.
    pub unanswered: usize,
    /// Of those, found in the ledger all the same.
    pub unanswered_recorded: usize,
}

/// Every acknowledged command is in the ledger: an event under its request id, carrying
/// the id its answer gave. No command was answered 5xx.
pub fn acknowledged(sent: &[Sent], events: &[EventRecord], violations: &mut Vec<String>) -> Tally {
    let mut by_request: HashMap<&str, Vec<&EventRecord>> = HashMap::new();
    for event in events {
        if let Some(rid) = event.metadata["request_id"].as_str() {
            by_request.entry(rid).or_default().push(event);
        }
    }
    let mut tally = Tally {
        sent: sent.len(),
        ..Tally::default()
    };
    for s in sent {
        let recorded = by_request.get(s.request_id.as_str());
        match &s.answer {
            Answer::Acked(id) => {
                tally.acked += 1;
                let Some(recorded) = recorded else {
                    violations.push(format!(
                        "acknowledged {} of flow {} (request {}) is not in the ledger",
                        s.what, s.flow, s.request_id
                    ));
                    continue;
                };
                if let Some(id) = id {
                    if !recorded.iter().any(|e| e.payload.to_string().contains(id.as_str())) {
                        violations.push(format!(
                            "acknowledged {} of flow {} gave id {id}, which none of its events (request {}) names",
                            s.what, s.flow, s.request_id
                        ));
                    }
                }
            }
            Answer::Refused(status) => *tally.refused.entry(*status).or_default() += 1,
            Answer::Unanswered => {
                tally.unanswered += 1;
                if recorded.is_some() {
                    tally.unanswered_recorded += 1;
                }
            }
            Answer::Failed(why) => violations.push(format!("flow {}: {why}", s.flow)),
        }
    }
    tally
}

/// No outcome twice for one deployment or restart; at most one deployed per usecase.
pub fn lifecycle(
    events: &[EventRecord],
    usecases: &BTreeMap<Uuid, Usecase>,
    violations: &mut Vec<String>,
) {
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for event in events {
        let Some((_, field)) = OUTCOMES.iter().find(|(t, _)| *t == event.event_type) else {
            continue;
        };
        if let Some(id) = event.payload[&event.event_type][*field].as_str() {
            *seen.entry((event.event_type.clone(), id.to_owned())).or_default() += 1;
        }
    }
    let mut twice: Vec<_> = seen.into_iter().filter(|(_, n)| *n > 1).collect();
    twice.sort();
    for ((kind, id), n) in twice {
        violations.push(format!("{kind} of {id} recorded {n} times"));
    }
    for (id, usecase) in usecases {
        let deployed = usecase
            .deployments
            .iter()
            .filter(|d| d.status == DeploymentStatus::Deployed)
            .count();
        if deployed > 1 {
            violations.push(format!("usecase {id} has {deployed} deployed deployments"));
        }
    }
}

/// The hash chain verifies over every event, all of them sealed.
pub fn chain(report: &VerifyReport, events: usize, violations: &mut Vec<String>) {
    if !report.verified || report.broken_at.is_some() {
        violations.push(format!("the hash chain does not verify: {report:?}"));
    }
    if report.unsealed > 0 || (report.events as usize) < events {
        violations.push(format!(
            "the hash chain covers {} of {events} events ({} unsealed)",
            report.events, report.unsealed
        ));
    }
}

/// The read models as the API serves them agree with the ledger: every usecase listed
/// exists and is not deleted, and each deployment has the status the ledger gives it.
pub async fn read_models_answer(
    api: &Client,
    usecases: &BTreeMap<Uuid, Usecase>,
    violations: &mut Vec<String>,
) -> anyhow::Result<()> {
    let listed = api.usecases(None, None).await?;
    let listed_ids: HashSet<Uuid> = listed.iter().map(|u| u.id).collect();
    for (id, usecase) in usecases {
        if usecase.name.is_none() {
            continue;
        }
        if usecase.deleted == listed_ids.contains(id) {
            violations.push(format!(
                "usecase {id}: deleted in the ledger is {}, listed by the API is {}",
                usecase.deleted,
                listed_ids.contains(id)
            ));
        }
    }
    for u in &listed {
        let deployments = api.deployments(u.id).await?;
        let deployed = deployments
            .iter()
            .filter(|d| d.status.as_str() == "deployed")
            .count();
        if deployed > 1 {
            violations.push(format!("the API shows {deployed} deployed deployments of {}", u.id));
        }
        let Some(folded) = usecases.get(&u.id) else {
            violations.push(format!("the API lists usecase {} the ledger does not know", u.id));
            continue;
        };
        for d in deployments {
            let want = folded.deployment(d.id).map(|f| f.status.as_str());
            if want != Some(d.status.as_str()) {
                violations.push(format!(
                    "deployment {} of {}: the API says {}, the ledger {want:?}",
                    d.id,
                    u.id,
                    d.status.as_str()
                ));
            }
        }
    }
    Ok(())
}

/// The objects the cluster must hold by the ledger, per resource type, and those it may
/// hold (a usecase's generated Secret outlives its deployments until the usecase is deleted).
pub struct Expected {
    /// Exactly these, per resource type.
    pub required: BTreeMap<&'static str, BTreeSet<String>>,
    /// Also allowed (Secrets).
    pub allowed: BTreeSet<String>,
}

/// The resource types compared.
pub const KINDS: [&str; 5] = ["deployments", "secrets", "services", "ingresses", "servicemonitors"];

/// What the ledger says the cluster holds: for each deployed deployment of a usecase
/// not deleted, its Deployment and Secret (and ServiceMonitor when asked for), its
/// usecase's Service, Ingresses when public, and the generated Secret its config needs.
pub fn expected(usecases: &BTreeMap<Uuid, Usecase>) -> Expected {
    let mut required: BTreeMap<&'static str, BTreeSet<String>> =
        KINDS.iter().map(|k| (*k, BTreeSet::new())).collect();
    let mut allowed = BTreeSet::new();
    let ingress = IngressSettings::default();
    let mut add = |kind: &'static str, name: String| {
        required.entry(kind).or_default().insert(name);
    };
    for (id, usecase) in usecases {
        if usecase.deleted || usecase.name.is_none() {
            continue;
        }
        allowed.insert(generated_secret_name(*id));
        let Some(d) = usecase.deployed() else {
            continue;
        };
        let config = d.running_config();
        add("deployments", deployment_name(d.id));
        add("secrets", deployment_name(d.id));
        add("services", service_name(*id));
        if config.service_monitor.as_ref().is_some_and(|m| m.enabled) {
            add("servicemonitors", deployment_name(d.id));
        }
        if config.services().iter().any(|s| !s.generated_secrets.is_empty()) {
            add("secrets", generated_secret_name(*id));
        }
        let name = usecase.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
        for endpoint in ingress.endpoints(&name, usecase.effective_visibility(), &config) {
            add("ingresses", ingress_name(*id, &endpoint.service));
        }
    }
    Expected { required, allowed }
}

/// Where the cluster differs from the ledger: objects missing, and orphans.
pub fn cluster_differences(sim: &KubeSim, namespace: &str, expected: &Expected) -> Vec<String> {
    let mut differences = Vec::new();
    for kind in KINDS {
        let present: BTreeSet<String> = sim
            .objects(kind, Some(namespace))
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        let required = expected.required.get(kind).cloned().unwrap_or_default();
        for name in required.difference(&present) {
            differences.push(format!("{kind}/{name} is missing"));
        }
        for name in present.difference(&required) {
            if kind == "secrets" && expected.allowed.contains(name) {
                continue;
            }
            differences.push(format!("{kind}/{name} is an orphan"));
        }
    }
    differences
}

/// Every row of each read model, as text, in a stable order.
async fn rows(pool: &PgPool) -> anyhow::Result<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for (view, order) in VIEWS {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(v)::text FROM {view} v ORDER BY {order}"
        ))
        .fetch_all(pool)
        .await?;
        out.push(rows);
    }
    Ok(out)
}

/// The read models as the live projector left them equal a rebuild of them from the log.
/// Run with no shiplog process up: the projector is caught up first (the live path, from
/// its checkpoints), then rebuilt from position 0, and every row compared.
pub async fn rebuild(pool: &PgPool, violations: &mut Vec<String>) -> anyhow::Result<u64> {
    let projector = Projector::new(pool.clone());
    projector.catch_up().await?;
    let live = rows(pool).await?;
    let replayed = projector.rebuild().await?;
    let rebuilt = rows(pool).await?;
    for (((view, _), live), rebuilt) in VIEWS.iter().zip(&live).zip(&rebuilt) {
        if live == rebuilt {
            continue;
        }
        let (a, b): (BTreeSet<&String>, BTreeSet<&String>) =
            (live.iter().collect(), rebuilt.iter().collect());
        let only_live: Vec<_> = a.difference(&b).take(3).collect();
        let only_rebuilt: Vec<_> = b.difference(&a).take(3).collect();
        violations.push(format!(
            "{view} differs from its rebuild ({} rows live, {} rebuilt); live only: {only_live:?}; rebuilt only: {only_rebuilt:?}",
            live.len(),
            rebuilt.len()
        ));
    }
    Ok(replayed)
}
