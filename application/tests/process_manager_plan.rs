//! The process manager's decisions, from usecase state alone (no I/O).

use chrono::Utc;
use shiplog_application::{at_rest, plan, Step};
use shiplog_domain::{Usecase, UsecaseEvent};
use shiplog_testkit::events;
use uuid::Uuid;

const U: Uuid = Uuid::from_u128(1);
const D1: Uuid = Uuid::from_u128(11);
const D2: Uuid = Uuid::from_u128(12);
/// What a cluster holds when neither deployment's objects were removed yet.
const BOTH: &[Uuid] = &[D1, D2];

/// The usecase registered, then after `history`.
fn usecase(history: Vec<UsecaseEvent>) -> Usecase {
    let registered = events::registered(U, "u", Utc::now());
    events::usecase(std::iter::once(registered).chain(history))
}

fn requested(id: Uuid) -> UsecaseEvent {
    events::requested(id, events::config("1"), Utc::now())
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
        names(&plan(&usecase(vec![requested(D1)]), &[])),
        ["remove-route", "start 11"]
    );
}

#[test]
fn a_deploying_deployment_is_reapplied_and_watched() {
    let u = usecase(vec![requested(D1), events::started(D1, Utc::now())]);
    assert_eq!(names(&plan(&u, &[D1])), ["remove-route", "watch 11"]);
}

#[test]
fn the_deployed_one_is_routed_before_a_newer_one_rolls_out() {
    let now = Utc::now();
    let u = usecase(vec![
        requested(D1),
        events::started(D1, now),
        events::succeeded(D1, now),
        requested(D2),
    ]);
    assert_eq!(names(&plan(&u, BOTH)), ["route 11", "start 12"]);
}

#[test]
fn after_a_handover_the_new_one_is_routed_before_the_old_one_is_removed() {
    let now = Utc::now();
    let u = usecase(vec![
        requested(D1),
        events::started(D1, now),
        events::succeeded(D1, now),
        requested(D2),
        events::started(D2, now),
        events::succeeded(D2, now),
        events::superseded(D1, D2, now),
    ]);
    assert_eq!(names(&plan(&u, BOTH)), ["route 12", "cleanup 11"]);
}

#[test]
fn a_superseded_rollout_is_removed_before_the_new_one_is_watched() {
    let now = Utc::now();
    let u = usecase(vec![
        requested(D1),
        events::started(D1, now),
        requested(D2),
        events::superseded(D1, D2, now),
    ]);
    assert_eq!(
        names(&plan(&u, BOTH)),
        ["remove-route", "cleanup 11", "start 12"]
    );
}

#[test]
fn undeploy_removes_everything_and_confirms() {
    let now = Utc::now();
    let u = usecase(vec![
        requested(D1),
        events::started(D1, now),
        events::succeeded(D1, now),
        events::undeploy_requested(D1, now),
    ]);
    assert_eq!(names(&plan(&u, &[D1])), ["remove-route", "undeploy 11"]);
}

#[test]
fn failed_and_deleted_usecases_are_cleaned_up() {
    let now = Utc::now();
    let u = usecase(vec![
        requested(D1),
        events::failed(D1, "x", now),
        events::deleted(now),
    ]);
    assert_eq!(names(&plan(&u, &[D1])), ["forget", "cleanup 11"]);
}

fn deployed(id: Uuid) -> Vec<UsecaseEvent> {
    let at = Utc::now();
    vec![
        requested(id),
        events::started(id, at),
        events::succeeded(id, at),
    ]
}

const R1: Uuid = Uuid::from_u128(21);

#[test]
fn a_pending_restart_rolls_the_serving_deployment_with_its_id_stamped() {
    let mut events = deployed(D1);
    events.push(events::restart_requested(R1, D1, Utc::now()));
    assert_eq!(
        names(&plan(&usecase(events.clone()), &[D1])),
        ["route 11", "restart 11 (21, stamped Some(21))"]
    );
    // Once it succeeded, nothing is left to do, but the stamp stays on every later apply.
    events.push(events::restart_succeeded(R1, D1, Utc::now()));
    let u = usecase(events);
    let steps = plan(&u, &[D1]);
    assert_eq!(names(&steps), ["route 11"]);
    match &steps[0] {
        Step::Route(w) => assert_eq!(w.restart, Some(R1)),
        other => panic!("expected a route, got {other:?}"),
    }
}

#[test]
fn a_restart_of_a_deployment_that_stopped_serving_is_abandoned() {
    let mut events = deployed(D1);
    events.push(events::restart_requested(R1, D1, Utc::now()));
    events.push(events::undeploy_requested(D1, Utc::now()));
    assert_eq!(
        names(&plan(&usecase(events), &[D1])),
        ["remove-route", "abandon restart 21 of 11", "undeploy 11"]
    );
}

#[test]
fn finished_deployments_without_objects_in_the_cluster_cost_nothing() {
    // A long history: a thousand deployments, each superseded by the next.
    let now = Utc::now();
    let ids: Vec<Uuid> = (100..1100).map(Uuid::from_u128).collect();
    let mut events = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        events.extend(deployed(*id));
        if i > 0 {
            events.push(events::superseded(ids[i - 1], *id, now));
        }
    }
    let u = usecase(events);
    let serving = ids[ids.len() - 1];
    // Only the serving deployment is left in the cluster: routing it is all there is to do.
    let steps = plan(&u, &[serving]);
    assert_eq!(names(&steps), ["route 1099"]);
    assert!(at_rest(&steps));
    // One superseded deployment whose removal did not happen yet is removed, and only it.
    let mut present = vec![ids[500], serving];
    present.sort();
    assert_eq!(names(&plan(&u, &present)), ["route 1099", "cleanup 600"]);
}

#[test]
fn objects_of_deployments_the_usecase_does_not_know_are_removed() {
    let stray = Uuid::from_u128(99);
    let steps = plan(&usecase(deployed(D1)), &[D1, stray]);
    assert_eq!(names(&steps), ["route 11", "cleanup 99"]);
    assert!(at_rest(&steps));
}

#[test]
fn a_usecase_is_at_rest_only_when_nothing_rolls_out_or_waits() {
    assert!(!at_rest(&plan(&usecase(vec![requested(D1)]), &[])));
    let mut events = deployed(D1);
    assert!(at_rest(&plan(&usecase(events.clone()), &[D1])));
    events.push(events::undeploy_requested(D1, Utc::now()));
    assert!(!at_rest(&plan(&usecase(events), &[D1])));
}

#[test]
fn a_deleted_usecase_loses_every_object_whatever_its_deployments_state() {
    let u = usecase(vec![
        requested(D1),
        events::started(D1, Utc::now()),
        events::deleted(Utc::now()),
    ]);
    let steps = plan(&u, &[D1]);
    assert!(
        names(&steps).contains(&"cleanup 11".to_owned()),
        "{:?}",
        names(&steps)
    );
    assert!(names(&steps).contains(&"forget".to_owned()));
}
