//! Time travel: given the events recorded up to an instant, when the state is
//! rebuilt in memory, then it is what the live read models showed.

use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use shiplog_application::{
    deployment_at, state_at, usecase_at, AppError, Cursor, DeploymentAt, HistoryIndex,
    RecordedEvent, StateAt,
};
use shiplog_domain::{DeploymentStatus, UsecaseEvent, UsecaseName};
use shiplog_testkit::events;
use uuid::Uuid;

const U: Uuid = Uuid::from_u128(1);
const D1: Uuid = Uuid::from_u128(11);
const D2: Uuid = Uuid::from_u128(12);
const D3: Uuid = Uuid::from_u128(13);

/// The instant of the `n`th event: one minute apart, so each update is visible.
fn t(n: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 0, 0)
        .single()
        .unwrap_or_else(|| panic!("bad test time {n}"))
        + chrono::Duration::minutes(i64::from(n))
}

/// Stores `events` as the event log would: sequence and position from 1, the actor in metadata.
fn recorded(events: Vec<(&str, UsecaseEvent)>) -> Vec<RecordedEvent> {
    events
        .into_iter()
        .zip(1i64..)
        .map(|((actor, event), n)| RecordedEvent {
            cursor: Cursor {
                transaction_id: 100 + n as u64,
                position: n,
            },
            aggregate_id: U.to_string(),
            sequence: n,
            event_type: event.type_name().to_owned(),
            event_version: "1.0".to_owned(),
            payload: serde_json::to_value(&event).unwrap_or_else(|e| panic!("{e}")),
            metadata: json!({ "actor": actor, "request_id": format!("req-{n}") }),
            recorded_at: event.at(),
            aggregate_type: "Usecase".to_owned(),
        })
        .collect()
}

fn state(events: &[RecordedEvent]) -> Option<StateAt> {
    state_at(events).unwrap_or_else(|e| panic!("state_at failed: {e}"))
}

fn existing(events: &[RecordedEvent]) -> StateAt {
    state(events).unwrap_or_else(|| panic!("expected the usecase to exist"))
}

/// Registration, then D1 requested by alice and rolled out by the process manager.
fn deployed_d1() -> Vec<(&'static str, UsecaseEvent)> {
    vec![
        ("alice", events::registered(U, "chat", t(0))),
        (
            "alice",
            events::requested(D1, events::config("1.0.0"), t(1)),
        ),
        ("process-manager", events::started(D1, t(2))),
        ("process-manager", events::succeeded(D1, t(3))),
    ]
}

#[test]
fn nothing_registered_is_none() {
    // given no events at all, or only events before a registration
    let orphan = recorded(vec![(
        "alice",
        events::requested(D1, events::config("1.0.0"), t(1)),
    )]);
    // when / then
    assert!(state(&[]).is_none(), "no events");
    assert!(
        state(&orphan).is_none(),
        "a deployment without registration"
    );
}

#[test]
fn a_registered_usecase_has_no_deployment() {
    // given
    let events = recorded(vec![("alice", events::registered(U, "chat", t(0)))]);
    // when
    let s = existing(&events);
    // then
    assert_eq!(s.usecase.id, U);
    assert_eq!(s.usecase.name, "chat");
    assert_eq!(s.usecase.description, "built by a test");
    assert_eq!(s.usecase.created_at, t(0));
    assert_eq!(s.usecase.created_by, "alice");
    assert_eq!(s.usecase.deployment, None);
    assert!(s.deployments.is_empty());
}

#[test]
fn a_succeeded_deployment_is_shown_deployed() {
    // given
    let events = recorded(deployed_d1());
    // when
    let s = existing(&events);
    // then
    let d = s.usecase.deployment.as_ref().expect("a deployment");
    assert_eq!(d.id, D1);
    assert_eq!(d.usecase_id, U);
    assert_eq!(d.status, DeploymentStatus::Deployed);
    assert_eq!(d.created_at, t(1));
    assert_eq!(d.requested_by, "alice");
    assert_eq!(d.updated_at, t(3), "the outcome event's time");
    assert_eq!(d.updated_by, "process-manager", "the outcome event's actor");
    assert_eq!(d.message, "");
    assert_eq!(d.config, events::config("1.0.0"));
    assert!(!d.undeploy_requested);
    assert_eq!(d.superseded_by, None);
    assert_eq!(s.deployments, vec![d.clone()]);
}

#[test]
fn a_pending_or_deploying_deployment_is_not_shown_before_any_success() {
    // given a deployment still rolling out
    let events = recorded(vec![
        ("alice", events::registered(U, "chat", t(0))),
        (
            "alice",
            events::requested(D1, events::config("1.0.0"), t(1)),
        ),
        ("process-manager", events::started(D1, t(2))),
    ]);
    // when
    let s = existing(&events);
    // then the usecase shows none, the listing shows it deploying
    assert_eq!(s.usecase.deployment, None);
    assert_eq!(s.deployments.len(), 1);
    assert_eq!(s.deployments[0].status, DeploymentStatus::Deploying);
    assert_eq!(s.deployments[0].updated_by, "process-manager");
}

#[test]
fn a_second_deployment_supersedes_the_first() {
    // given D2 rolled out over D1
    let mut events = deployed_d1();
    events.extend([
        ("bob", events::requested(D2, events::config("1.0.0"), t(4))),
        ("process-manager", events::started(D2, t(5))),
        ("process-manager", events::succeeded(D2, t(6))),
        ("process-manager", events::superseded(D1, D2, t(6))),
    ]);
    let events = recorded(events);
    // when
    let s = existing(&events);
    // then
    let shown = s.usecase.deployment.as_ref().expect("a deployment");
    assert_eq!(shown.id, D2);
    assert_eq!(shown.status, DeploymentStatus::Deployed);
    assert_eq!(shown.requested_by, "bob");
    let ids: Vec<Uuid> = s.deployments.iter().map(|d| d.id).collect();
    assert_eq!(ids, [D2, D1], "newest first");
    let d1 = &s.deployments[1];
    assert_eq!(d1.status, DeploymentStatus::Superseded);
    assert_eq!(d1.superseded_by, Some(D2));
    assert_eq!(d1.updated_at, t(6));
    assert_eq!(d1.updated_by, "process-manager");
}

#[test]
fn a_failed_deployment_after_a_success_leaves_the_last_good_one_shown() {
    // given D2 fails after D1 was deployed
    let mut events = deployed_d1();
    events.extend([
        ("bob", events::requested(D2, events::config("1.0.0"), t(4))),
        ("process-manager", events::started(D2, t(5))),
        (
            "process-manager",
            events::failed(D2, "image pull failed", t(6)),
        ),
    ]);
    let events = recorded(events);
    // when
    let s = existing(&events);
    // then
    let shown = s.usecase.deployment.as_ref().expect("a deployment");
    assert_eq!(shown.id, D1);
    assert_eq!(shown.status, DeploymentStatus::Deployed);
    let d2 = &s.deployments[0];
    assert_eq!(d2.id, D2);
    assert_eq!(d2.status, DeploymentStatus::Error);
    assert_eq!(d2.message, "image pull failed");
    assert_eq!(d2.updated_by, "process-manager");
}

#[test]
fn a_newer_request_is_shown_while_it_is_pending() {
    // given D1 deployed and D2 only requested (the read model's rule: latest not in error)
    let mut events = deployed_d1();
    events.push(("bob", events::requested(D2, events::config("1.0.0"), t(4))));
    let events = recorded(events);
    // when
    let s = existing(&events);
    // then
    let shown = s.usecase.deployment.as_ref().expect("a deployment");
    assert_eq!(shown.id, D2);
    assert_eq!(shown.status, DeploymentStatus::Pending);
}

#[test]
fn undeploy_requested_then_undeployed() {
    // given an undeploy asked by carol
    let mut events = deployed_d1();
    events.push(("carol", events::undeploy_requested(D1, t(4))));
    let asked = recorded(events.clone());
    events.push(("process-manager", events::undeployed(D1, t(5))));
    let done = recorded(events);

    // when the undeploy is only requested
    let s = existing(&asked);
    // then the status is unchanged, the flag and who/when are set
    let d = s.usecase.deployment.as_ref().expect("a deployment");
    assert_eq!(d.status, DeploymentStatus::Deployed);
    assert!(d.undeploy_requested);
    assert_eq!(d.updated_at, t(4));
    assert_eq!(d.updated_by, "carol");

    // when it completed
    let s = existing(&done);
    // then the usecase still shows it (it succeeded once), now undeployed
    let d = s.usecase.deployment.as_ref().expect("a deployment");
    assert_eq!(d.id, D1);
    assert_eq!(d.status, DeploymentStatus::Undeployed);
    assert!(!d.undeploy_requested);
    assert_eq!(d.updated_at, t(5));
    assert_eq!(d.updated_by, "process-manager");
}

#[test]
fn a_deleted_usecase_is_none() {
    // given
    let mut events = deployed_d1();
    events.extend([
        ("carol", events::undeploy_requested(D1, t(4))),
        ("process-manager", events::undeployed(D1, t(5))),
        ("carol", events::deleted(t(6))),
    ]);
    let events = recorded(events);
    // when / then
    assert!(state(&events).is_none());
}

/// One row of the cut table: how many events are handed over and what is then shown.
struct Cut {
    description: &'static str,
    prefix: usize,
    shown: Option<(Uuid, DeploymentStatus)>,
    deployments: usize,
}

impl Cut {
    fn new(
        description: &'static str,
        prefix: usize,
        shown: Option<(Uuid, DeploymentStatus)>,
        deployments: usize,
    ) -> Self {
        Self {
            description,
            prefix,
            shown,
            deployments,
        }
    }
}

#[test]
fn a_cut_in_the_middle_of_a_lifecycle_gives_the_earlier_state() {
    // given a full lifecycle of D1 then D2, of which only a prefix is handed over
    let mut all = deployed_d1();
    all.extend([
        ("bob", events::requested(D2, events::config("1.0.0"), t(4))),
        ("process-manager", events::started(D2, t(5))),
        ("process-manager", events::succeeded(D2, t(6))),
        ("process-manager", events::superseded(D1, D2, t(6))),
    ]);
    let all = recorded(all);
    let cases = [
        Cut::new("registration only", 1, None, 0),
        Cut::new("D1 requested", 2, None, 1),
        Cut::new("D1 deployed", 4, Some((D1, DeploymentStatus::Deployed)), 1),
        Cut::new(
            "D2 deploying",
            6,
            Some((D2, DeploymentStatus::Deploying)),
            2,
        ),
        Cut::new("D2 deployed", 8, Some((D2, DeploymentStatus::Deployed)), 2),
    ];
    for cut in cases {
        // when
        let s = existing(&all[..cut.prefix]);
        // then
        assert_eq!(
            s.usecase.deployment.as_ref().map(|d| (d.id, d.status)),
            cut.shown,
            "usecase deployment at cut '{}'",
            cut.description
        );
        assert_eq!(
            s.deployments.len(),
            cut.deployments,
            "deployments at cut '{}'",
            cut.description
        );
    }
    let before_supersede = existing(&all[..6]);
    assert_eq!(before_supersede.deployments[1].id, D1);
    assert_eq!(
        before_supersede.deployments[1].status,
        DeploymentStatus::Deployed
    );
    assert_eq!(before_supersede.deployments[1].superseded_by, None);
}

#[test]
fn events_are_applied_in_cursor_order() {
    // given the events handed over out of order
    let mut events = recorded(deployed_d1());
    events.reverse();
    // when / then the result is the same as in order
    assert_eq!(state(&events), state(&recorded(deployed_d1())));
}

#[test]
fn a_missing_actor_is_system() {
    // given a registration without actor metadata
    let mut events = recorded(vec![("alice", events::registered(U, "chat", t(0)))]);
    events[0].metadata = json!({});
    // when / then
    assert_eq!(existing(&events).usecase.created_by, "system");
}

#[test]
fn times_keep_microseconds_as_timestamptz_does() {
    // given an event time with nanoseconds
    let at = t(0) + chrono::TimeDelta::nanoseconds(1_234_567);
    let events = recorded(vec![(
        "alice",
        UsecaseEvent::UsecaseRegistered {
            usecase_id: U,
            name: UsecaseName::parse("chat").unwrap_or_else(|e| panic!("{e}")),
            description: String::new(),
            at,
            template: None,
            visibility: None,
            owner: None,
            team: None,
        },
    )]);
    // when / then
    assert_eq!(
        existing(&events).usecase.created_at,
        t(0) + chrono::TimeDelta::microseconds(1_234)
    );
}

#[test]
fn the_listing_shows_every_deployment_newest_first() {
    // given three deployments, one of them failed
    let mut events = deployed_d1();
    events.extend([
        ("bob", events::requested(D2, events::config("1.0.0"), t(4))),
        (
            "process-manager",
            events::failed(D2, "image pull failed", t(5)),
        ),
        ("bob", events::requested(D3, events::config("1.0.0"), t(6))),
    ]);
    let events = recorded(events);
    // when
    let ids: Vec<Uuid> = existing(&events).deployments.iter().map(|d| d.id).collect();
    // then
    assert_eq!(ids, [D3, D2, D1]);
}

#[test]
fn a_payload_that_does_not_deserialize_is_an_internal_error() {
    // given
    let mut events = recorded(deployed_d1());
    events[2].payload = json!({ "DeploymentStarted": { "deploymentId": "not-a-uuid" } });
    // when
    let result = state_at(&events);
    // then
    match result {
        Err(AppError::Internal(message)) => {
            assert!(
                message.contains(&events[2].cursor.to_string()),
                "names the cursor: {message}"
            );
            assert!(
                message.contains("DeploymentStarted"),
                "names the type: {message}"
            );
        }
        other => panic!("expected an internal error, got {other:?}"),
    }
}

#[test]
fn an_aggregate_id_that_is_not_a_uuid_is_an_internal_error() {
    // given
    let mut events = recorded(vec![("alice", events::registered(U, "chat", t(0)))]);
    events[0].aggregate_id = "chat".to_owned();
    // when / then
    assert!(matches!(state_at(&events), Err(AppError::Internal(_))));
}

/// The ledger's `HistoryIndex` over events in memory: each lookup as the SQL
/// states it, so the selective fold can be compared with the full one.
struct InMemory(Vec<RecordedEvent>);

impl InMemory {
    fn of(&self, usecase_id: Uuid) -> impl Iterator<Item = &RecordedEvent> {
        let id = usecase_id.to_string();
        self.0.iter().filter(move |e| e.aggregate_id == id)
    }
}

#[async_trait::async_trait]
impl HistoryIndex for InMemory {
    async fn sequence_at(
        &self,
        usecase_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<i64>, AppError> {
        Ok(self
            .of(usecase_id)
            .filter(|e| e.recorded_at <= at)
            .max_by_key(|e| (e.recorded_at, e.sequence))
            .map(|e| e.sequence))
    }

    async fn latest_of_types(
        &self,
        usecase_id: Uuid,
        upto: i64,
        types: &[&str],
    ) -> Result<Vec<RecordedEvent>, AppError> {
        let mut chosen: Vec<RecordedEvent> = self
            .of(usecase_id)
            .filter(|e| e.sequence == upto)
            .cloned()
            .collect();
        for wanted in types {
            chosen.extend(
                self.of(usecase_id)
                    .filter(|e| e.event_type == *wanted && e.sequence <= upto)
                    .max_by_key(|e| e.sequence)
                    .cloned(),
            );
        }
        chosen.sort_by_key(|e| e.sequence);
        chosen.dedup_by_key(|e| e.sequence);
        Ok(chosen)
    }

    async fn requests_before(
        &self,
        usecase_id: Uuid,
        before: i64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, AppError> {
        let mut requests: Vec<RecordedEvent> = self
            .of(usecase_id)
            .filter(|e| e.event_type == "DeploymentRequested" && e.sequence < before)
            .cloned()
            .collect();
        requests.sort_by_key(|e| std::cmp::Reverse(e.sequence));
        requests.truncate(limit as usize);
        Ok(requests)
    }

    async fn requests_up_to(&self, usecase_id: Uuid, upto: i64) -> Result<i64, AppError> {
        Ok(self
            .of(usecase_id)
            .filter(|e| e.event_type == "DeploymentRequested" && e.sequence <= upto)
            .count() as i64)
    }

    async fn deployment_events(
        &self,
        usecase_id: Uuid,
        deployment_id: Uuid,
        upto: i64,
    ) -> Result<Vec<RecordedEvent>, AppError> {
        let id = deployment_id.to_string();
        let mut events: Vec<RecordedEvent> = self
            .of(usecase_id)
            .filter(|e| {
                e.sequence <= upto
                    && e.payload[&e.event_type]["deploymentId"].as_str() == Some(id.as_str())
            })
            .cloned()
            .collect();
        events.sort_by_key(|e| e.sequence);
        Ok(events)
    }
}

/// A random but well-formed history: deployments requested, rolled out, failed,
/// superseded, undeployed, restarted, reconfigured, auto-update and deletion
/// requests, and sometimes the usecase's deletion at the end; one event a minute.
fn random_history(rng: &mut StdRng, len: usize) -> Vec<(&'static str, UsecaseEvent)> {
    let actors = ["alice", "bob", "process-manager"];
    let mut events = vec![("alice", events::registered(U, "chat", t(0)))];
    let mut ids: Vec<Uuid> = Vec::new();
    let mut serving: Option<Uuid> = None;
    for n in 1..len as u32 {
        let actor = actors[rng.gen_range(0..actors.len())];
        let some =
            |rng: &mut StdRng, ids: &[Uuid]| ids.get(rng.gen_range(0..ids.len().max(1))).copied();
        let event = match rng.gen_range(0..12) {
            0..=2 => {
                let id = Uuid::from_u128(1000 + u128::from(n));
                ids.push(id);
                events::requested(id, events::config("1.0.0"), t(n))
            }
            3 => match some(rng, &ids) {
                Some(id) => events::started(id, t(n)),
                None => continue,
            },
            4 | 5 => match ids.last().copied() {
                Some(id) => {
                    if let Some(old) = serving.replace(id).filter(|old| *old != id) {
                        events.push((actor, events::succeeded(id, t(n))));
                        events::superseded(old, id, t(n))
                    } else {
                        events::succeeded(id, t(n))
                    }
                }
                None => continue,
            },
            6 => match some(rng, &ids) {
                Some(id) => events::failed(id, "image pull failed", t(n)),
                None => continue,
            },
            7 => match some(rng, &ids) {
                Some(id) => events::undeploy_requested(id, t(n)),
                None => continue,
            },
            8 => match some(rng, &ids) {
                Some(id) => events::undeployed(id, t(n)),
                None => continue,
            },
            // A pause, and settings that end it: the latest of the two decides.
            9 if rng.gen_bool(0.3) => events::auto_update_paused(Uuid::from_u128(7000), t(n)),
            9 => events::auto_update(
                rng.gen_bool(0.5),
                if rng.gen_bool(0.5) {
                    shiplog_domain::UpdateStrategy::Rolling
                } else {
                    shiplog_domain::UpdateStrategy::Recreate
                },
                t(n),
            ),
            10 => UsecaseEvent::DeletionRequested { at: t(n) },
            _ => match some(rng, &ids) {
                Some(id) => UsecaseEvent::RestartRequested {
                    restart_id: Uuid::from_u128(5000 + u128::from(n)),
                    deployment_id: id,
                    at: t(n),
                },
                None => continue,
            },
        };
        events.push((actor, event));
    }
    if rng.gen_bool(0.2) {
        events.push(("alice", events::deleted(t(len as u32))));
    }
    events
}

/// At every instant of many random histories, the selective fold answers exactly
/// what the full fold does: the usecase, and each of its deployments.
#[tokio::test]
async fn the_selective_fold_agrees_with_the_full_one_at_every_instant() {
    let mut rng = StdRng::seed_from_u64(13);
    for round in 0..60 {
        let history = recorded(random_history(&mut rng, 10 + round));
        let index = InMemory(history.clone());
        let deployments: Vec<Uuid> = history
            .iter()
            .filter_map(|e| e.payload["DeploymentRequested"]["deploymentId"].as_str())
            .filter_map(|id| id.parse().ok())
            .chain([Uuid::from_u128(999)])
            .collect();
        for upto in 0..history.len() {
            // Events recorded at the same instant are all in.
            let at = history[upto].recorded_at;
            let until: Vec<RecordedEvent> = history
                .iter()
                .filter(|e| e.recorded_at <= at)
                .cloned()
                .collect();
            let full = state(&until);
            let selective = usecase_at(&index, U, at)
                .await
                .unwrap_or_else(|e| panic!("round {round} at {upto}: {e}"));
            assert_eq!(
                selective,
                full.as_ref().map(|s| s.usecase.clone()),
                "round {round}, after event {upto}"
            );
            for id in &deployments {
                let expected = match &full {
                    None => DeploymentAt::NoUsecase,
                    Some(state) => state
                        .deployments
                        .iter()
                        .find(|d| d.id == *id)
                        .cloned()
                        .map_or(DeploymentAt::NoDeployment, |d| {
                            DeploymentAt::Found(Box::new(d))
                        }),
                };
                let got = deployment_at(&index, U, *id, at)
                    .await
                    .unwrap_or_else(|e| panic!("round {round} at {upto}: {e}"));
                assert_eq!(got, expected, "round {round}, after event {upto}, {id}");
            }
        }
    }
}

/// Before the first event there is nothing to show.
#[tokio::test]
async fn the_selective_fold_before_the_registration_is_none() {
    let history = recorded(deployed_d1());
    let index = InMemory(history);
    let before = t(0) - chrono::Duration::seconds(1);
    assert_eq!(usecase_at(&index, U, before).await.ok(), Some(None));
    assert_eq!(
        deployment_at(&index, U, D1, before).await.ok(),
        Some(DeploymentAt::NoUsecase)
    );
}
