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
                busy.push(format!(
                    "usecase {id}: deployment {} is being undeployed",
                    d.id
                ));
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
    /// Answered 4xx, by command and status (`rollback 409`).
    pub refused: BTreeMap<String, usize>,
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
                    if !recorded
                        .iter()
                        .any(|e| e.payload.to_string().contains(id.as_str()))
                    {
                        violations.push(format!(
                            "acknowledged {} of flow {} gave id {id}, which none of its events (request {}) names",
                            s.what, s.flow, s.request_id
                        ));
                    }
                }
            }
            Answer::Refused(status) => {
                *tally
                    .refused
                    .entry(format!("{} {status}", s.what))
                    .or_default() += 1
            }
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
            *seen
                .entry((event.event_type.clone(), id.to_owned()))
                .or_default() += 1;
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

/// Where the read models as the API serves them disagree with the ledger: every usecase
/// listed exists and is not deleted, each deployment has the status the ledger gives it,
/// and none shows two deployed.
pub async fn read_model_differences(
    api: &Client,
    usecases: &BTreeMap<Uuid, Usecase>,
) -> anyhow::Result<Vec<String>> {
    let mut violations = Vec::new();
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
            violations.push(format!(
                "the API shows {deployed} deployed deployments of {}",
                u.id
            ));
        }
        let Some(folded) = usecases.get(&u.id) else {
            violations.push(format!(
                "the API lists usecase {} the ledger does not know",
                u.id
            ));
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
    Ok(violations)
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
pub const KINDS: [&str; 5] = [
    "deployments",
    "secrets",
    "services",
    "ingresses",
    "servicemonitors",
];

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
        if config
            .services()
            .iter()
            .any(|s| !s.generated_secrets.is_empty())
        {
            add("secrets", generated_secret_name(*id));
        }
        let name = usecase
            .name
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::{Answer, Sent};
    use chrono::Utc;
    use shiplog_testkit::events::{
        config, deleted, deletion_requested, registered, requested, started, succeeded,
        undeploy_requested, undeployed,
    };

    /// The ledger's records of `events` of one usecase, each under request id `r<sequence>`.
    fn records(usecase: Uuid, events: Vec<UsecaseEvent>) -> Vec<EventRecord> {
        events
            .into_iter()
            .zip(1..)
            .map(|(event, sequence)| EventRecord {
                cursor: format!("{sequence:032}"),
                aggregate_type: "Usecase".to_owned(),
                usecase_id: usecase.to_string(),
                sequence,
                event_type: event.type_name().to_owned(),
                version: "1.0".to_owned(),
                recorded_at: Utc::now().to_rfc3339(),
                actor: "admin".to_owned(),
                payload: serde_json::to_value(&event).unwrap(),
                metadata: serde_json::json!({"request_id": format!("r{sequence}")}),
            })
            .collect()
    }

    fn sent(request_id: &str, answer: Answer) -> Sent {
        Sent {
            flow: 0,
            what: "deploy",
            request_id: request_id.to_owned(),
            answer,
        }
    }

    #[test]
    fn a_deletion_that_never_finished_and_a_pending_deployment_are_unsettled() {
        let (u, d) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let now = Utc::now();
        let events = records(
            u,
            vec![
                registered(u, "half", now),
                requested(d, config("1.0"), now),
                deletion_requested(now),
            ],
        );
        let busy = unsettled(&fold(&events).unwrap());
        assert_eq!(busy.len(), 2, "{busy:?}");
        assert!(busy[0].contains("deletion requested"), "{busy:?}");
        assert!(busy[1].contains("pending"), "{busy:?}");
    }

    #[test]
    fn an_acknowledged_command_missing_from_the_ledger_is_a_violation() {
        let (u, d) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let now = Utc::now();
        let events = records(
            u,
            vec![registered(u, "a", now), requested(d, config("1.0"), now)],
        );
        let journal = [
            sent("r2", Answer::Acked(Some(d.to_string()))),
            sent("r1", Answer::Unanswered),
            sent("lost", Answer::Acked(None)),
            sent("r2", Answer::Acked(Some(Uuid::from_u128(9).to_string()))),
            sent("x", Answer::Failed("deploy: HTTP 500".to_owned())),
        ];
        let mut violations = Vec::new();
        let tally = acknowledged(&journal, &events, &mut violations);
        assert_eq!(
            (tally.acked, tally.unanswered, tally.unanswered_recorded),
            (3, 1, 1)
        );
        assert_eq!(violations.len(), 3, "{violations:?}");
        assert!(violations[0].contains("request lost"), "{violations:?}");
        assert!(violations[1].contains("gave id"), "{violations:?}");
        assert!(violations[2].contains("HTTP 500"), "{violations:?}");
    }

    #[test]
    fn an_outcome_recorded_twice_is_a_violation() {
        let (u, d) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let now = Utc::now();
        let events = records(
            u,
            vec![
                registered(u, "twice", now),
                requested(d, config("1.0"), now),
                started(d, now),
                succeeded(d, now),
                succeeded(d, now),
            ],
        );
        let mut violations = Vec::new();
        lifecycle(&events, &fold(&events).unwrap(), &mut violations);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].starts_with("DeploymentSucceeded"),
            "{violations:?}"
        );
    }

    #[test]
    fn the_cluster_holds_the_objects_of_what_is_deployed_and_nothing_of_the_deleted() {
        let (kept, gone) = (Uuid::from_u128(1), Uuid::from_u128(3));
        let (d, e) = (Uuid::from_u128(2), Uuid::from_u128(4));
        let now = Utc::now();
        let mut events = records(
            kept,
            vec![
                registered(kept, "kept", now),
                requested(d, config("1.0"), now),
                started(d, now),
                succeeded(d, now),
            ],
        );
        events.extend(records(
            gone,
            vec![
                registered(gone, "gone", now),
                requested(e, config("1.0"), now),
                started(e, now),
                succeeded(e, now),
                undeploy_requested(e, now),
                undeployed(e, now),
                deleted(now),
            ],
        ));
        let expected = expected(&fold(&events).unwrap());
        let names = |kind: &str| expected.required[kind].iter().cloned().collect::<Vec<_>>();
        assert_eq!(names("deployments"), [deployment_name(d)]);
        assert_eq!(names("secrets"), [deployment_name(d)]);
        assert_eq!(names("services"), [service_name(kept)]);
        assert!(names("ingresses").is_empty());
        assert!(expected.allowed.contains(&generated_secret_name(kept)));
        assert!(!expected.allowed.contains(&generated_secret_name(gone)));
    }
}
