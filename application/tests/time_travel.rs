//! Time travel: given the events recorded up to an instant, when the state is
//! rebuilt in memory, then it is what the live read models showed.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use shiplog_application::{state_at, AppError, Cursor, RecordedEvent, StateAt};
use shiplog_domain::{DeploymentConfig, DeploymentStatus, ImageRef, UsecaseEvent, UsecaseName};
use std::collections::BTreeMap;
use uuid::Uuid;

const U: Uuid = Uuid::from_u128(1);
const D1: Uuid = Uuid::from_u128(11);
const D2: Uuid = Uuid::from_u128(12);
const D3: Uuid = Uuid::from_u128(13);

/// The instant of the `n`th event: one minute apart, so each update is visible.
fn t(n: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, n, 0)
        .single()
        .unwrap_or_else(|| panic!("bad test time {n}"))
}

fn config(tag: &str) -> DeploymentConfig {
    let image =
        ImageRef::new("registry.example", "team/chat", tag).unwrap_or_else(|e| panic!("{e}"));
    DeploymentConfig::new(image, None, Some(8080), BTreeMap::new(), Some(1), None)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn registered(n: u32) -> UsecaseEvent {
    UsecaseEvent::UsecaseRegistered {
        usecase_id: U,
        name: UsecaseName::parse("chat").unwrap_or_else(|e| panic!("{e}")),
        description: "a chat app".into(),
        at: t(n),
        template: None,
        visibility: None,
        owner: None,
        team: None,
    }
}

fn requested(id: Uuid, n: u32) -> UsecaseEvent {
    UsecaseEvent::DeploymentRequested {
        deployment_id: id,
        config: config("1.0.0"),
        at: t(n),
    }
}

fn started(id: Uuid, n: u32) -> UsecaseEvent {
    UsecaseEvent::DeploymentStarted {
        deployment_id: id,
        at: t(n),
    }
}

fn succeeded(id: Uuid, n: u32) -> UsecaseEvent {
    UsecaseEvent::DeploymentSucceeded {
        deployment_id: id,
        at: t(n),
    }
}

fn failed(id: Uuid, n: u32) -> UsecaseEvent {
    UsecaseEvent::DeploymentFailed {
        deployment_id: id,
        message: "image pull failed".into(),
        at: t(n),
    }
}

fn superseded(id: Uuid, by: Uuid, n: u32) -> UsecaseEvent {
    UsecaseEvent::DeploymentSuperseded {
        deployment_id: id,
        superseded_by: by,
        at: t(n),
    }
}

fn undeploy_requested(id: Uuid, n: u32) -> UsecaseEvent {
    UsecaseEvent::UndeployRequested {
        deployment_id: id,
        at: t(n),
    }
}

fn undeployed(id: Uuid, n: u32) -> UsecaseEvent {
    UsecaseEvent::DeploymentUndeployed {
        deployment_id: id,
        at: t(n),
    }
}

fn deleted(n: u32) -> UsecaseEvent {
    UsecaseEvent::UsecaseDeleted { at: t(n) }
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
        ("alice", registered(0)),
        ("alice", requested(D1, 1)),
        ("process-manager", started(D1, 2)),
        ("process-manager", succeeded(D1, 3)),
    ]
}

#[test]
fn nothing_registered_is_none() {
    // given no events at all, or only events before a registration
    let orphan = recorded(vec![("alice", requested(D1, 1))]);
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
    let events = recorded(vec![("alice", registered(0))]);
    // when
    let s = existing(&events);
    // then
    assert_eq!(s.usecase.id, U);
    assert_eq!(s.usecase.name, "chat");
    assert_eq!(s.usecase.description, "a chat app");
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
    assert_eq!(d.config, config("1.0.0"));
    assert!(!d.undeploy_requested);
    assert_eq!(d.superseded_by, None);
    assert_eq!(s.deployments, vec![d.clone()]);
}

#[test]
fn a_pending_or_deploying_deployment_is_not_shown_before_any_success() {
    // given a deployment still rolling out
    let events = recorded(vec![
        ("alice", registered(0)),
        ("alice", requested(D1, 1)),
        ("process-manager", started(D1, 2)),
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
        ("bob", requested(D2, 4)),
        ("process-manager", started(D2, 5)),
        ("process-manager", succeeded(D2, 6)),
        ("process-manager", superseded(D1, D2, 6)),
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
        ("bob", requested(D2, 4)),
        ("process-manager", started(D2, 5)),
        ("process-manager", failed(D2, 6)),
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
    events.push(("bob", requested(D2, 4)));
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
    events.push(("carol", undeploy_requested(D1, 4)));
    let asked = recorded(events.clone());
    events.push(("process-manager", undeployed(D1, 5)));
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
        ("carol", undeploy_requested(D1, 4)),
        ("process-manager", undeployed(D1, 5)),
        ("carol", deleted(6)),
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
        ("bob", requested(D2, 4)),
        ("process-manager", started(D2, 5)),
        ("process-manager", succeeded(D2, 6)),
        ("process-manager", superseded(D1, D2, 6)),
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
    let mut events = recorded(vec![("alice", registered(0))]);
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
        ("bob", requested(D2, 4)),
        ("process-manager", failed(D2, 5)),
        ("bob", requested(D3, 6)),
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
    let mut events = recorded(vec![("alice", registered(0))]);
    events[0].aggregate_id = "chat".to_owned();
    // when / then
    assert!(matches!(state_at(&events), Err(AppError::Internal(_))));
}
