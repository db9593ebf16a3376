//! The process manager's decisions, from usecase state alone (no I/O).

use chrono::Utc;
use cqrs_es::Aggregate;
use shiplog_application::{plan, Step};
use shiplog_domain::{DeploymentConfig, ImageRef, Usecase, UsecaseEvent, UsecaseName};
use std::collections::BTreeMap;
use uuid::Uuid;

const U: Uuid = Uuid::from_u128(1);
const D1: Uuid = Uuid::from_u128(11);
const D2: Uuid = Uuid::from_u128(12);

fn usecase(events: Vec<UsecaseEvent>) -> Usecase {
    let mut u = Usecase::default();
    u.apply(UsecaseEvent::UsecaseRegistered {
        usecase_id: U,
        name: UsecaseName::parse("u").unwrap_or_else(|e| panic!("{e}")),
        description: String::new(),
        at: Utc::now(),
        template: None,
        visibility: None,
        owner: None,
        team: None,
    });
    for e in events {
        u.apply(e);
    }
    u
}

fn config() -> DeploymentConfig {
    let image = ImageRef::new("r.example.com", "app", "1").unwrap_or_else(|e| panic!("{e}"));
    DeploymentConfig::new(image, None, None, BTreeMap::new(), None, None)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn requested(id: Uuid) -> UsecaseEvent {
    UsecaseEvent::DeploymentRequested {
        deployment_id: id,
        config: config(),
        at: Utc::now(),
    }
}

fn names(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| match s {
            Step::Route(w) => format!("route {}", w.deployment_id.as_u128()),
            Step::Start(w) => format!("start {}", w.deployment_id.as_u128()),
            Step::Watch(w) => format!("watch {}", w.deployment_id.as_u128()),
            Step::Undeploy(d) => format!("undeploy {}", d.as_u128()),
            Step::CleanUp(d) => format!("cleanup {}", d.as_u128()),
            Step::RemoveRoute => "remove-route".to_owned(),
            Step::Forget => "forget".to_owned(),
            Step::FinishDeletion => "finish-deletion".to_owned(),
            Step::Restart {
                workload,
                restart_id,
            } => format!(
                "restart {} ({}, stamped {:?})",
                workload.deployment_id.as_u128(),
                restart_id.as_u128(),
                workload.restart.map(|r| r.as_u128())
            ),
            Step::AbandonRestart {
                deployment_id,
                restart_id,
            } => format!(
                "abandon restart {} of {}",
                restart_id.as_u128(),
                deployment_id.as_u128()
            ),
        })
        .collect()
}

#[test]
fn a_pending_deployment_is_started() {
    assert_eq!(
        names(&plan(&usecase(vec![requested(D1)]))),
        ["remove-route", "start 11"]
    );
}

#[test]
fn a_deploying_deployment_is_reapplied_and_watched() {
    let u = usecase(vec![
        requested(D1),
        UsecaseEvent::DeploymentStarted {
            deployment_id: D1,
            at: Utc::now(),
        },
    ]);
    assert_eq!(names(&plan(&u)), ["remove-route", "watch 11"]);
}

#[test]
fn the_deployed_one_is_routed_before_a_newer_one_rolls_out() {
    let now = Utc::now();
    let u = usecase(vec![
        requested(D1),
        UsecaseEvent::DeploymentStarted {
            deployment_id: D1,
            at: now,
        },
        UsecaseEvent::DeploymentSucceeded {
            deployment_id: D1,
            at: now,
        },
        requested(D2),
    ]);
    assert_eq!(names(&plan(&u)), ["route 11", "start 12"]);
}

#[test]
fn after_a_handover_the_new_one_is_routed_before_the_old_one_is_removed() {
    let now = Utc::now();
    let u = usecase(vec![
        requested(D1),
        UsecaseEvent::DeploymentStarted {
            deployment_id: D1,
            at: now,
        },
        UsecaseEvent::DeploymentSucceeded {
            deployment_id: D1,
            at: now,
        },
        requested(D2),
        UsecaseEvent::DeploymentStarted {
            deployment_id: D2,
            at: now,
        },
        UsecaseEvent::DeploymentSucceeded {
            deployment_id: D2,
            at: now,
        },
        UsecaseEvent::DeploymentSuperseded {
            deployment_id: D1,
            superseded_by: D2,
            at: now,
        },
    ]);
    assert_eq!(names(&plan(&u)), ["route 12", "cleanup 11"]);
}

#[test]
fn a_superseded_rollout_is_removed_before_the_new_one_is_watched() {
    let now = Utc::now();
    let u = usecase(vec![
        requested(D1),
        UsecaseEvent::DeploymentStarted {
            deployment_id: D1,
            at: now,
        },
        requested(D2),
        UsecaseEvent::DeploymentSuperseded {
            deployment_id: D1,
            superseded_by: D2,
            at: now,
        },
    ]);
    assert_eq!(names(&plan(&u)), ["remove-route", "cleanup 11", "start 12"]);
}

#[test]
fn undeploy_removes_everything_and_confirms() {
    let now = Utc::now();
    let u = usecase(vec![
        requested(D1),
        UsecaseEvent::DeploymentStarted {
            deployment_id: D1,
            at: now,
        },
        UsecaseEvent::DeploymentSucceeded {
            deployment_id: D1,
            at: now,
        },
        UsecaseEvent::UndeployRequested {
            deployment_id: D1,
            at: now,
        },
    ]);
    assert_eq!(names(&plan(&u)), ["remove-route", "undeploy 11"]);
}

#[test]
fn failed_and_deleted_usecases_are_cleaned_up() {
    let now = Utc::now();
    let u = usecase(vec![
        requested(D1),
        UsecaseEvent::DeploymentFailed {
            deployment_id: D1,
            message: "x".into(),
            at: now,
        },
        UsecaseEvent::UsecaseDeleted { at: now },
    ]);
    assert_eq!(names(&plan(&u)), ["forget", "cleanup 11"]);
}

fn deployed(id: Uuid) -> Vec<UsecaseEvent> {
    let at = Utc::now();
    vec![
        requested(id),
        UsecaseEvent::DeploymentStarted {
            deployment_id: id,
            at,
        },
        UsecaseEvent::DeploymentSucceeded {
            deployment_id: id,
            at,
        },
    ]
}

const R1: Uuid = Uuid::from_u128(21);

#[test]
fn a_pending_restart_rolls_the_serving_deployment_with_its_id_stamped() {
    let mut events = deployed(D1);
    events.push(UsecaseEvent::RestartRequested {
        restart_id: R1,
        deployment_id: D1,
        at: Utc::now(),
    });
    assert_eq!(
        names(&plan(&usecase(events.clone()))),
        ["route 11", "restart 11 (21, stamped Some(21))"]
    );
    // Once it succeeded, nothing is left to do, but the stamp stays on every later apply.
    events.push(UsecaseEvent::RestartSucceeded {
        restart_id: R1,
        deployment_id: D1,
        at: Utc::now(),
    });
    let u = usecase(events);
    let steps = plan(&u);
    assert_eq!(names(&steps), ["route 11"]);
    match &steps[0] {
        Step::Route(w) => assert_eq!(w.restart, Some(R1)),
        other => panic!("expected a route, got {other:?}"),
    }
}

#[test]
fn a_restart_of_a_deployment_that_stopped_serving_is_abandoned() {
    let mut events = deployed(D1);
    events.push(UsecaseEvent::RestartRequested {
        restart_id: R1,
        deployment_id: D1,
        at: Utc::now(),
    });
    events.push(UsecaseEvent::UndeployRequested {
        deployment_id: D1,
        at: Utc::now(),
    });
    assert_eq!(
        names(&plan(&usecase(events))),
        ["remove-route", "abandon restart 21 of 11", "undeploy 11"]
    );
}
