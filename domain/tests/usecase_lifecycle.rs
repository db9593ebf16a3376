//! Given/when/then tests of the `Usecase` aggregate: every transition and every refusal.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use shiplog_domain::{
    AutoUpdate, CheckTrigger, DeploymentConfig, DeploymentStatus, DomainError, FoundImage,
    ImageRef, PolicyKind, UpdatePolicy, UpdateStrategy, Usecase, UsecaseCommand, UsecaseEvent,
    UsecaseName, VersionRange, Visibility,
};
use std::collections::BTreeMap;
use uuid::Uuid;

type Fx = TestFramework<Usecase>;

const USECASE: Uuid = Uuid::from_u128(1);
const D1: Uuid = Uuid::from_u128(11);
const D2: Uuid = Uuid::from_u128(12);
const D3: Uuid = Uuid::from_u128(13);

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .unwrap_or_default()
}

fn name() -> UsecaseName {
    UsecaseName::parse("chat").unwrap_or_else(|e| panic!("{e}"))
}

fn config(tag: &str) -> DeploymentConfig {
    let image =
        ImageRef::new("registry.example", "team/chat", tag).unwrap_or_else(|e| panic!("{e}"));
    DeploymentConfig::new(image, None, Some(8080), BTreeMap::new(), Some(1), None)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn registered() -> UsecaseEvent {
    UsecaseEvent::UsecaseRegistered {
        usecase_id: USECASE,
        name: name(),
        description: "a chat app".into(),
        at: at(),
        template: None,
        visibility: None,
        owner: Some("alice".into()),
        team: None,
    }
}

fn requested(id: Uuid) -> UsecaseEvent {
    UsecaseEvent::DeploymentRequested {
        deployment_id: id,
        config: config("1.0.0"),
        at: at(),
    }
}

fn started(id: Uuid) -> UsecaseEvent {
    UsecaseEvent::DeploymentStarted {
        deployment_id: id,
        at: at(),
        digest: None,
    }
}

fn succeeded(id: Uuid) -> UsecaseEvent {
    UsecaseEvent::DeploymentSucceeded {
        deployment_id: id,
        at: at(),
    }
}

fn superseded(id: Uuid, by: Uuid) -> UsecaseEvent {
    UsecaseEvent::DeploymentSuperseded {
        deployment_id: id,
        superseded_by: by,
        at: at(),
    }
}

fn undeploy_requested(id: Uuid) -> UsecaseEvent {
    UsecaseEvent::UndeployRequested {
        deployment_id: id,
        at: at(),
    }
}

fn undeployed(id: Uuid) -> UsecaseEvent {
    UsecaseEvent::DeploymentUndeployed {
        deployment_id: id,
        at: at(),
    }
}

fn deployed_d1() -> Vec<UsecaseEvent> {
    vec![registered(), requested(D1), started(D1), succeeded(D1)]
}

fn request(id: Uuid) -> UsecaseCommand {
    UsecaseCommand::RequestDeployment {
        deployment_id: id,
        config: config("1.0.0"),
        at: at(),
    }
}

#[test]
fn register_records_the_usecase() {
    Fx::with(())
        .given_no_previous_events()
        .when(UsecaseCommand::Register {
            usecase_id: USECASE,
            name: name(),
            description: "a chat app".into(),
            at: at(),
            owner: "alice".into(),
            team: None,
        })
        .then_expect_events(vec![registered()]);
}

#[test]
fn register_twice_is_refused() {
    Fx::with(())
        .given(vec![registered()])
        .when(UsecaseCommand::Register {
            usecase_id: USECASE,
            name: name(),
            description: String::new(),
            at: at(),
            owner: "alice".into(),
            team: None,
        })
        .then_expect_error(DomainError::AlreadyRegistered(USECASE));
}

#[test]
fn commands_on_an_unregistered_usecase_are_refused() {
    Fx::with(())
        .given_no_previous_events()
        .when(request(D1))
        .then_expect_error(DomainError::UsecaseNotFound);
}

#[test]
fn request_deployment_records_it_as_pending() {
    Fx::with(())
        .given(vec![registered()])
        .when(request(D1))
        .then_expect_events(vec![requested(D1)]);
}

#[test]
fn a_reused_deployment_id_is_refused() {
    Fx::with(())
        .given(vec![registered(), requested(D1)])
        .when(request(D1))
        .then_expect_error(DomainError::DuplicateDeployment(D1));
}

#[test]
fn a_newer_request_supersedes_older_ones_in_flight() {
    Fx::with(())
        .given(vec![
            registered(),
            requested(D1),
            requested(D2),
            superseded(D1, D2),
            started(D2),
        ])
        .when(request(D3))
        .then_expect_events(vec![requested(D3), superseded(D2, D3)]);
}

#[test]
fn a_newer_request_leaves_the_deployed_one_serving() {
    Fx::with(())
        .given(deployed_d1())
        .when(request(D2))
        .then_expect_events(vec![requested(D2)]);
}

#[test]
fn start_moves_pending_to_deploying() {
    Fx::with(())
        .given(vec![registered(), requested(D1)])
        .when(UsecaseCommand::StartDeployment {
            deployment_id: D1,
            digest: None,
            at: at(),
        })
        .then_expect_events(vec![started(D1)]);
}

#[test]
fn start_of_an_unknown_deployment_is_refused() {
    Fx::with(())
        .given(vec![registered()])
        .when(UsecaseCommand::StartDeployment {
            deployment_id: D1,
            digest: None,
            at: at(),
        })
        .then_expect_error(DomainError::DeploymentNotFound(D1));
}

#[test]
fn start_twice_is_refused() {
    Fx::with(())
        .given(vec![registered(), requested(D1), started(D1)])
        .when(UsecaseCommand::StartDeployment {
            deployment_id: D1,
            digest: None,
            at: at(),
        })
        .then_expect_error(DomainError::InvalidTransition {
            deployment_id: D1,
            status: DeploymentStatus::Deploying,
            action: "started",
        });
}

#[test]
fn success_of_the_first_deployment_supersedes_nothing() {
    Fx::with(())
        .given(vec![registered(), requested(D1), started(D1)])
        .when(UsecaseCommand::CompleteDeployment {
            deployment_id: D1,
            at: at(),
        })
        .then_expect_events(vec![succeeded(D1)]);
}

#[test]
fn success_supersedes_the_previously_deployed_one() {
    let mut given = deployed_d1();
    given.extend([requested(D2), started(D2)]);
    Fx::with(())
        .given(given)
        .when(UsecaseCommand::CompleteDeployment {
            deployment_id: D2,
            at: at(),
        })
        .then_expect_events(vec![succeeded(D2), superseded(D1, D2)]);
}

#[test]
fn success_before_start_is_refused() {
    Fx::with(())
        .given(vec![registered(), requested(D1)])
        .when(UsecaseCommand::CompleteDeployment {
            deployment_id: D1,
            at: at(),
        })
        .then_expect_error(DomainError::InvalidTransition {
            deployment_id: D1,
            status: DeploymentStatus::Pending,
            action: "marked deployed",
        });
}

#[test]
fn success_of_a_superseded_deployment_is_refused() {
    Fx::with(())
        .given(vec![
            registered(),
            requested(D1),
            started(D1),
            requested(D2),
            superseded(D1, D2),
        ])
        .when(UsecaseCommand::CompleteDeployment {
            deployment_id: D1,
            at: at(),
        })
        .then_expect_error(DomainError::InvalidTransition {
            deployment_id: D1,
            status: DeploymentStatus::Superseded,
            action: "marked deployed",
        });
}

#[test]
fn failure_records_the_message_from_pending_or_deploying() {
    let fail = |id| UsecaseCommand::FailDeployment {
        deployment_id: id,
        message: "ImagePullBackOff".into(),
        at: at(),
    };
    let failed = |id| UsecaseEvent::DeploymentFailed {
        deployment_id: id,
        message: "ImagePullBackOff".into(),
        at: at(),
    };
    Fx::with(())
        .given(vec![registered(), requested(D1)])
        .when(fail(D1))
        .then_expect_events(vec![failed(D1)]);
    Fx::with(())
        .given(vec![registered(), requested(D1), started(D1)])
        .when(fail(D1))
        .then_expect_events(vec![failed(D1)]);
    Fx::with(())
        .given(deployed_d1())
        .when(fail(D1))
        .then_expect_error(DomainError::InvalidTransition {
            deployment_id: D1,
            status: DeploymentStatus::Deployed,
            action: "marked failed",
        });
}

#[test]
fn undeploy_takes_down_the_deployed_one_and_those_in_flight() {
    let mut given = deployed_d1();
    given.push(requested(D2));
    Fx::with(())
        .given(given)
        .when(UsecaseCommand::RequestUndeploy { at: at() })
        .then_expect_events(vec![undeploy_requested(D1), undeploy_requested(D2)]);
}

#[test]
fn undeploy_with_nothing_deployed_is_refused() {
    Fx::with(())
        .given(vec![registered(), requested(D1)])
        .when(UsecaseCommand::RequestUndeploy { at: at() })
        .then_expect_error(DomainError::NothingDeployed);
}

#[test]
fn undeploy_twice_is_refused() {
    let mut given = deployed_d1();
    given.push(undeploy_requested(D1));
    Fx::with(())
        .given(given)
        .when(UsecaseCommand::RequestUndeploy { at: at() })
        .then_expect_error(DomainError::UndeployInProgress);
}

#[test]
fn undeployed_is_confirmed_only_after_a_request() {
    let mut given = deployed_d1();
    given.push(undeploy_requested(D1));
    Fx::with(())
        .given(given)
        .when(UsecaseCommand::ConfirmUndeployed {
            deployment_id: D1,
            at: at(),
        })
        .then_expect_events(vec![undeployed(D1)]);
    Fx::with(())
        .given(deployed_d1())
        .when(UsecaseCommand::ConfirmUndeployed {
            deployment_id: D1,
            at: at(),
        })
        .then_expect_error(DomainError::InvalidTransition {
            deployment_id: D1,
            status: DeploymentStatus::Deployed,
            action: "marked undeployed",
        });
}

#[test]
fn a_deployment_being_undeployed_cannot_succeed() {
    let given = vec![
        registered(),
        requested(D1),
        started(D1),
        requested(D2),
        started(D2),
        superseded(D1, D2),
    ];
    let mut given_deployed = given.clone();
    given_deployed.extend([succeeded(D2), undeploy_requested(D2)]);
    Fx::with(())
        .given(given_deployed)
        .when(UsecaseCommand::RequestDeployment {
            deployment_id: D3,
            config: config("2"),
            at: at(),
        })
        .then_expect_events(vec![UsecaseEvent::DeploymentRequested {
            deployment_id: D3,
            config: config("2"),
            at: at(),
        }]);
    let mut in_flight = vec![
        registered(),
        requested(D1),
        started(D1),
        succeeded(D1),
        requested(D2),
        started(D2),
    ];
    in_flight.extend([undeploy_requested(D1), undeploy_requested(D2)]);
    Fx::with(())
        .given(in_flight)
        .when(UsecaseCommand::CompleteDeployment {
            deployment_id: D2,
            at: at(),
        })
        .then_expect_error(DomainError::InvalidTransition {
            deployment_id: D2,
            status: DeploymentStatus::Deploying,
            action: "marked deployed",
        });
}

#[test]
fn delete_is_refused_while_deployed_or_in_flight() {
    Fx::with(())
        .given(deployed_d1())
        .when(UsecaseCommand::Delete { at: at() })
        .then_expect_error(DomainError::UsecaseBusy);
    Fx::with(())
        .given(vec![registered(), requested(D1)])
        .when(UsecaseCommand::Delete { at: at() })
        .then_expect_error(DomainError::UsecaseBusy);
    let mut undeploying = deployed_d1();
    undeploying.push(undeploy_requested(D1));
    Fx::with(())
        .given(undeploying)
        .when(UsecaseCommand::Delete { at: at() })
        .then_expect_error(DomainError::UsecaseBusy);
}

#[test]
fn delete_after_undeploy_records_the_deletion() {
    let mut given = deployed_d1();
    given.extend([undeploy_requested(D1), undeployed(D1)]);
    Fx::with(())
        .given(given)
        .when(UsecaseCommand::Delete { at: at() })
        .then_expect_events(vec![UsecaseEvent::UsecaseDeleted { at: at() }]);
}

#[test]
fn a_deleted_usecase_accepts_no_command() {
    let deleted = vec![registered(), UsecaseEvent::UsecaseDeleted { at: at() }];
    for command in [
        request(D1),
        UsecaseCommand::RequestUndeploy { at: at() },
        UsecaseCommand::Delete { at: at() },
        UsecaseCommand::StartDeployment {
            deployment_id: D1,
            digest: None,
            at: at(),
        },
    ] {
        Fx::with(())
            .given(deleted.clone())
            .when(command)
            .then_expect_error(DomainError::UsecaseDeleted);
    }
}

#[test]
fn events_serialise_with_camel_case_fields_and_type_tags() {
    let json = serde_json::to_value(superseded(D1, D2)).unwrap_or_default();
    assert_eq!(json["DeploymentSuperseded"]["supersededBy"], D2.to_string());
}

// ---------------------------------------------------------------- restart, config, rollback

const R1: Uuid = Uuid::from_u128(21);

fn requested_with(id: Uuid, config: DeploymentConfig) -> UsecaseEvent {
    UsecaseEvent::DeploymentRequested {
        deployment_id: id,
        config,
        at: at(),
    }
}

/// D1 (tag 1.0.0) deployed, then superseded by D2 (tag 2.0.0), which is deployed now.
fn two_releases() -> Vec<UsecaseEvent> {
    vec![
        registered(),
        requested_with(D1, config("1.0.0")),
        started(D1),
        succeeded(D1),
        requested_with(D2, config("2.0.0")),
        started(D2),
        succeeded(D2),
        superseded(D1, D2),
    ]
}

/// A config change names the base its caller saw: refused once another deployment serves,
/// so the caller's answer (`basedOn`) is what the ledger records.
#[test]
fn a_config_change_on_a_base_that_no_longer_serves_is_refused() {
    let serving_d2 = vec![
        registered(),
        requested(D1),
        started(D1),
        succeeded(D1),
        requested(D2),
        started(D2),
        succeeded(D2),
        superseded(D1, D2),
    ];
    Fx::with(())
        .given(serving_d2)
        .when(UsecaseCommand::ChangeConfig {
            expected_base: Some(D1),
            deployment_id: D3,
            env: BTreeMap::new(),
            secret_env: None,
            secret_refs: None,
            at: at(),
        })
        .then_expect_error(DomainError::InvalidTransition {
            deployment_id: D1,
            status: DeploymentStatus::Superseded,
            action: "the base of a config change (another deployment serves now)",
        });
}

/// A restart names the deployment its caller saw serving: recorded for it while it
/// serves, refused once another one serves (a concurrent deploy won), so the caller's
/// answer never names a deployment the ledger does not.
#[test]
fn a_restart_for_a_deployment_that_no_longer_serves_is_refused() {
    let serving_d2 = vec![
        registered(),
        requested(D1),
        started(D1),
        succeeded(D1),
        requested(D2),
        started(D2),
        succeeded(D2),
        superseded(D1, D2),
    ];
    Fx::with(())
        .given(serving_d2.clone())
        .when(UsecaseCommand::RequestRestart {
            expected: Some(D1),
            restart_id: R1,
            at: at(),
        })
        .then_expect_error(DomainError::InvalidTransition {
            deployment_id: D1,
            status: DeploymentStatus::Superseded,
            action: "restarted (another deployment serves now)",
        });
    Fx::with(())
        .given(serving_d2)
        .when(UsecaseCommand::RequestRestart {
            expected: Some(D2),
            restart_id: R1,
            at: at(),
        })
        .then_expect_events(vec![UsecaseEvent::RestartRequested {
            restart_id: R1,
            deployment_id: D2,
            at: at(),
        }]);
}

#[test]
fn a_restart_of_the_serving_deployment_is_recorded_and_refused_while_one_runs() {
    Fx::with(())
        .given(vec![
            registered(),
            requested(D1),
            started(D1),
            succeeded(D1),
        ])
        .when(UsecaseCommand::RequestRestart {
            expected: None,
            restart_id: R1,
            at: at(),
        })
        .then_expect_events(vec![UsecaseEvent::RestartRequested {
            restart_id: R1,
            deployment_id: D1,
            at: at(),
        }]);
    let restarting = vec![
        registered(),
        requested(D1),
        started(D1),
        succeeded(D1),
        UsecaseEvent::RestartRequested {
            restart_id: R1,
            deployment_id: D1,
            at: at(),
        },
    ];
    Fx::with(())
        .given(restarting.clone())
        .when(UsecaseCommand::RequestRestart {
            expected: None,
            restart_id: Uuid::from_u128(22),
            at: at(),
        })
        .then_expect_error(DomainError::RestartInProgress);
    Fx::with(())
        .given(restarting)
        .when(UsecaseCommand::CompleteRestart {
            restart_id: R1,
            at: at(),
        })
        .then_expect_events(vec![UsecaseEvent::RestartSucceeded {
            restart_id: R1,
            deployment_id: D1,
            at: at(),
        }]);
}

#[test]
fn restart_needs_something_deployed_and_outcomes_need_a_pending_restart() {
    Fx::with(())
        .given(vec![registered(), requested(D1)])
        .when(UsecaseCommand::RequestRestart {
            expected: None,
            restart_id: R1,
            at: at(),
        })
        .then_expect_error(DomainError::NothingDeployed);
    Fx::with(())
        .given(vec![
            registered(),
            requested(D1),
            started(D1),
            succeeded(D1),
        ])
        .when(UsecaseCommand::FailRestart {
            restart_id: R1,
            message: "x".into(),
            at: at(),
        })
        .then_expect_error(DomainError::NoSuchRestart(R1));
}

#[test]
fn a_config_change_requests_a_new_deployment_of_the_same_image_with_the_new_env() {
    let env = BTreeMap::from([("MODE".to_owned(), "debug".to_owned())]);
    let mut changed = config("1.0.0");
    changed.env = env.clone();
    Fx::with(())
        .given(vec![
            registered(),
            requested(D1),
            started(D1),
            succeeded(D1),
            requested(D2),
        ])
        .when(UsecaseCommand::ChangeConfig {
            expected_base: None,
            deployment_id: D3,
            env: env.clone(),
            secret_env: None,
            secret_refs: None,
            at: at(),
        })
        .then_expect_events(vec![
            requested_with(D3, changed),
            UsecaseEvent::ConfigChangeRequested {
                deployment_id: D3,
                based_on: D1,
                env,
                secret_env: Default::default(),
                secret_refs: Vec::new(),
                at: at(),
            },
            // The older request still in flight is superseded, as by any new request.
            superseded(D2, D3),
        ]);
    Fx::with(())
        .given(vec![registered()])
        .when(UsecaseCommand::ChangeConfig {
            expected_base: None,
            deployment_id: D3,
            env: BTreeMap::new(),
            secret_env: None,
            secret_refs: None,
            at: at(),
        })
        .then_expect_error(DomainError::NothingDeployed);
}

#[test]
fn a_config_change_without_a_deployed_deployment_mends_the_newest_one() {
    let env = BTreeMap::from([("MODE".to_owned(), "fixed".to_owned())]);
    let mut changed = config("1.0.0");
    changed.env = env.clone();
    Fx::with(())
        .given(vec![
            registered(),
            requested(D1),
            UsecaseEvent::DeploymentFailed {
                deployment_id: D1,
                message: "crashed".into(),
                at: at(),
            },
        ])
        .when(UsecaseCommand::ChangeConfig {
            expected_base: None,
            deployment_id: D2,
            env: env.clone(),
            secret_env: None,
            secret_refs: None,
            at: at(),
        })
        .then_expect_events(vec![
            requested_with(D2, changed),
            UsecaseEvent::ConfigChangeRequested {
                deployment_id: D2,
                based_on: D1,
                env,
                secret_env: Default::default(),
                secret_refs: Vec::new(),
                at: at(),
            },
        ]);
}

#[test]
fn a_rollback_by_default_restores_the_deployment_deployed_before_the_current() {
    Fx::with(())
        .given(two_releases())
        .when(UsecaseCommand::Rollback {
            deployment_id: D3,
            target: None,
            at: at(),
        })
        .then_expect_events(vec![
            requested_with(D3, config("1.0.0")),
            UsecaseEvent::RollbackRequested {
                deployment_id: D3,
                rollback_of: D1,
                at: at(),
            },
        ]);
}

#[test]
fn a_start_records_the_digest_its_image_was_resolved_to() {
    let digest = format!("sha256:{}", "a".repeat(64));
    Fx::with(())
        .given(vec![registered(), requested(D1)])
        .when(UsecaseCommand::StartDeployment {
            deployment_id: D1,
            digest: Some(digest.clone()),
            at: at(),
        })
        .then_expect_events(vec![UsecaseEvent::DeploymentStarted {
            deployment_id: D1,
            at: at(),
            digest: Some(digest),
        }]);
}

#[test]
fn a_rollback_runs_the_digest_the_target_ran_not_what_its_tag_names_now() {
    let old = format!("sha256:{}", "1".repeat(64));
    let mut given = two_releases();
    // D1 started on the digest its tag named then.
    given[2] = UsecaseEvent::DeploymentStarted {
        deployment_id: D1,
        at: at(),
        digest: Some(old.clone()),
    };
    let mut pinned = config("1.0.0");
    pinned.image.digest = Some(old);
    Fx::with(())
        .given(given)
        .when(UsecaseCommand::Rollback {
            deployment_id: D3,
            target: Some(D1),
            at: at(),
        })
        .then_expect_events(vec![
            requested_with(D3, pinned),
            UsecaseEvent::RollbackRequested {
                deployment_id: D3,
                rollback_of: D1,
                at: at(),
            },
        ]);
}

#[test]
fn a_started_event_from_before_digests_still_reads() {
    // Stored before the digest field existed: the same shape, version 1.0.
    let stored = r#"{"DeploymentStarted":{"deploymentId":"00000000-0000-0000-0000-00000000000b","at":"2026-01-01T00:00:00Z"}}"#;
    let event: UsecaseEvent = serde_json::from_str(stored).unwrap();
    assert_eq!(
        event,
        UsecaseEvent::DeploymentStarted {
            deployment_id: D1,
            at: "2026-01-01T00:00:00Z".parse().unwrap(),
            digest: None,
        }
    );
    // And an unresolved start is written exactly as before.
    assert_eq!(serde_json::to_string(&event).unwrap(), stored);
}

#[test]
fn a_rollback_skips_deployments_that_never_served_and_refuses_unfinished_targets() {
    let failed = UsecaseEvent::DeploymentFailed {
        deployment_id: D2,
        message: "crash".into(),
        at: at(),
    };
    // D2 failed: there is nothing deployed before D1, which serves.
    Fx::with(())
        .given(vec![
            registered(),
            requested(D2),
            failed.clone(),
            requested(D1),
            started(D1),
            succeeded(D1),
        ])
        .when(UsecaseCommand::Rollback {
            deployment_id: D3,
            target: None,
            at: at(),
        })
        .then_expect_error(DomainError::NothingToRollBackTo);
    // Naming the serving deployment is refused: it is not finished.
    Fx::with(())
        .given(two_releases())
        .when(UsecaseCommand::Rollback {
            deployment_id: D3,
            target: Some(D2),
            at: at(),
        })
        .then_expect_error(DomainError::InvalidRollbackTarget {
            deployment_id: D2,
            status: DeploymentStatus::Deployed,
        });
    Fx::with(())
        .given(two_releases())
        .when(UsecaseCommand::Rollback {
            deployment_id: D3,
            target: Some(Uuid::from_u128(99)),
            at: at(),
        })
        .then_expect_error(DomainError::UnknownRollbackTarget(Uuid::from_u128(99)));
}

// ---- seed 002: create, auto-update, deletion

fn create() -> UsecaseCommand {
    UsecaseCommand::Create {
        usecase_id: USECASE,
        name: name(),
        description: String::new(),
        template: Some("nginx".into()),
        visibility: Visibility::Public,
        deployment_id: D1,
        config: config("1.0.0"),
        at: at(),
        owner: "alice".into(),
        team: None,
    }
}

fn created() -> Vec<UsecaseEvent> {
    vec![
        UsecaseEvent::UsecaseRegistered {
            usecase_id: USECASE,
            name: name(),
            description: String::new(),
            at: at(),
            template: Some("nginx".into()),
            visibility: Some(Visibility::Public),
            owner: Some("alice".into()),
            team: None,
        },
        requested(D1),
    ]
}

fn deletion_requested() -> UsecaseEvent {
    UsecaseEvent::DeletionRequested { at: at() }
}

fn deleted() -> UsecaseEvent {
    UsecaseEvent::UsecaseDeleted { at: at() }
}

#[test]
fn create_registers_and_requests_the_first_deployment_in_one_commit() {
    Fx::with(())
        .given_no_previous_events()
        .when(create())
        .then_expect_events(created());
}

#[test]
fn create_refuses_an_existing_usecase() {
    Fx::with(())
        .given(created())
        .when(create())
        .then_expect_error(DomainError::AlreadyRegistered(USECASE));
}

#[test]
fn a_created_usecase_remembers_its_template_and_visibility() {
    let mut usecase = Usecase::default();
    for event in created() {
        cqrs_es::Aggregate::apply(&mut usecase, event);
    }
    assert_eq!(usecase.template.as_deref(), Some("nginx"));
    assert_eq!(usecase.effective_visibility(), Visibility::Public);
    let mut pharia = Usecase::default();
    cqrs_es::Aggregate::apply(&mut pharia, registered());
    assert_eq!(
        pharia.effective_visibility(),
        Visibility::Internal,
        "a PhariaOS usecase gets no ingress"
    );
}

#[test]
fn auto_update_settings_are_recorded_when_they_change() {
    let range = VersionRange::parse("range", "^1").unwrap();
    let settings = AutoUpdate {
        enabled: true,
        strategy: UpdateStrategy::Recreate,
        policy: UpdatePolicy::Semver {
            range: range.clone(),
        },
    };
    Fx::with(())
        .given(created())
        .when(UsecaseCommand::ConfigureAutoUpdate { settings, at: at() })
        .then_expect_events(vec![UsecaseEvent::AutoUpdateConfigured {
            enabled: true,
            strategy: UpdateStrategy::Recreate,
            policy: PolicyKind::Semver,
            range: Some(range),
            at: at(),
        }]);
}

#[test]
fn unchanged_auto_update_settings_record_nothing() {
    Fx::with(())
        .given(created())
        .when(UsecaseCommand::ConfigureAutoUpdate {
            settings: AutoUpdate::default(),
            at: at(),
        })
        .then_expect_events(vec![]);
}

#[test]
fn deleting_a_running_usecase_undeploys_everything_first() {
    let mut given = deployed_d1();
    given.push(requested(D2));
    Fx::with(())
        .given(given)
        .when(UsecaseCommand::RequestDeletion { at: at() })
        .then_expect_events(vec![
            deletion_requested(),
            undeploy_requested(D1),
            undeploy_requested(D2),
        ]);
}

#[test]
fn deleting_a_usecase_with_nothing_running_completes_at_once() {
    let mut given = deployed_d1();
    given.extend([undeploy_requested(D1), undeployed(D1)]);
    Fx::with(())
        .given(given)
        .when(UsecaseCommand::RequestDeletion { at: at() })
        .then_expect_events(vec![deletion_requested(), deleted()]);
}

#[test]
fn a_usecase_being_deleted_takes_no_new_request() {
    let mut given = deployed_d1();
    given.extend([deletion_requested(), undeploy_requested(D1)]);
    for (description, command) in [
        ("deploy", request(D2)),
        (
            "restart",
            UsecaseCommand::RequestRestart {
                expected: None,
                restart_id: D3,
                at: at(),
            },
        ),
        ("delete again", UsecaseCommand::RequestDeletion { at: at() }),
        (
            "auto-update",
            UsecaseCommand::ConfigureAutoUpdate {
                settings: AutoUpdate {
                    enabled: true,
                    strategy: UpdateStrategy::Rolling,
                    policy: UpdatePolicy::Digest,
                },
                at: at(),
            },
        ),
    ] {
        let result = Fx::with(())
            .given(given.clone())
            .when(command)
            .inspect_result();
        assert_eq!(
            result.err(),
            Some(DomainError::DeletionInProgress),
            "{description} during a deletion"
        );
    }
}

#[test]
fn a_deletion_finishes_once_the_undeploy_is_confirmed() {
    let mut given = deployed_d1();
    given.extend([deletion_requested(), undeploy_requested(D1)]);
    // The process manager's report still lands while the deletion runs.
    Fx::with(())
        .given(given.clone())
        .when(UsecaseCommand::ConfirmUndeployed {
            deployment_id: D1,
            at: at(),
        })
        .then_expect_events(vec![undeployed(D1)]);
    let mut usecase = Usecase::default();
    for event in given {
        cqrs_es::Aggregate::apply(&mut usecase, event);
    }
    assert!(!usecase.ready_to_delete(), "D1 is still being undeployed");
    cqrs_es::Aggregate::apply(&mut usecase, undeployed(D1));
    assert!(usecase.ready_to_delete());
    Fx::with(())
        .given(vec![
            registered(),
            requested(D1),
            started(D1),
            succeeded(D1),
            deletion_requested(),
            undeploy_requested(D1),
            undeployed(D1),
        ])
        .when(UsecaseCommand::Delete { at: at() })
        .then_expect_events(vec![deleted()]);
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn auto_update_on() -> UsecaseEvent {
    UsecaseEvent::AutoUpdateConfigured {
        enabled: true,
        strategy: UpdateStrategy::Rolling,
        policy: PolicyKind::Digest,
        range: None,
        at: at(),
    }
}

/// D1 serves, started on digest `1…`, with auto-update on.
fn following_d1() -> Vec<UsecaseEvent> {
    vec![
        registered(),
        auto_update_on(),
        requested(D1),
        UsecaseEvent::DeploymentStarted {
            deployment_id: D1,
            at: at(),
            digest: Some(digest('1')),
        },
        succeeded(D1),
    ]
}

fn found(tag: &str, digest: String) -> UsecaseCommand {
    UsecaseCommand::RequestAutoUpdate {
        deployment_id: D2,
        found: FoundImage {
            check_id: D3,
            trigger: CheckTrigger::Webhook,
            expected: D1,
            tag: tag.to_owned(),
            digest,
        },
        at: at(),
    }
}

#[test]
fn a_new_digest_behind_the_tag_becomes_a_deployment_pinned_to_it() {
    let mut pinned = config("1.0.0");
    pinned.image.digest = Some(digest('2'));
    Fx::with(())
        .given(following_d1())
        .when(found("1.0.0", digest('2')))
        .then_expect_events(vec![
            requested_with(D2, pinned),
            UsecaseEvent::AutoUpdateRequested {
                deployment_id: D2,
                based_on: D1,
                check_id: D3,
                trigger: CheckTrigger::Webhook,
                tag: "1.0.0".into(),
                digest: digest('2'),
                previous_digest: Some(digest('1')),
                at: at(),
            },
        ]);
}

#[test]
fn a_higher_version_s_tag_replaces_the_tag_of_the_serving_config() {
    let mut newer = config("1.2.0");
    newer.image.digest = Some(digest('3'));
    let events = Fx::with(())
        .given(following_d1())
        .when(found("1.2.0", digest('3')))
        .inspect_result()
        .unwrap();
    assert_eq!(events[0], requested_with(D2, newer));
}

#[test]
fn the_digest_already_running_records_nothing() {
    Fx::with(())
        .given(following_d1())
        .when(found("1.0.0", digest('1')))
        .then_expect_events(vec![]);
}

#[test]
fn an_image_update_is_refused_when_it_no_longer_applies() {
    let off = UsecaseEvent::AutoUpdateConfigured {
        enabled: false,
        strategy: UpdateStrategy::Rolling,
        policy: PolicyKind::Digest,
        range: None,
        at: at(),
    };
    let cases: Vec<(&str, Vec<UsecaseEvent>, DomainError)> = vec![
        ("auto-update off", vec![off], DomainError::AutoUpdateOff),
        (
            "a deployment in flight",
            vec![requested(D3)],
            DomainError::UpdateInFlight,
        ),
        (
            "paused by a rollback",
            vec![UsecaseEvent::AutoUpdatePaused {
                rollback: D3,
                reason: "rolled back".into(),
                at: at(),
            }],
            DomainError::AutoUpdatePaused("rolled back".into()),
        ),
    ];
    for (description, extra, expected) in cases {
        let mut given = following_d1();
        given.extend(extra);
        let result = Fx::with(())
            .given(given)
            .when(found("1.0.0", digest('2')))
            .inspect_result();
        assert_eq!(result.err(), Some(expected), "{description}");
    }
    // Another deployment serves now than the one the check compared against.
    let mut given = following_d1();
    given.extend([
        requested(D3),
        started(D3),
        succeeded(D3),
        superseded(D1, D3),
    ]);
    let result = Fx::with(())
        .given(given)
        .when(found("1.0.0", digest('2')))
        .inspect_result();
    assert!(
        matches!(result, Err(DomainError::InvalidTransition { deployment_id, .. }) if deployment_id == D1),
        "{result:?}"
    );
}

#[test]
fn a_manual_rollback_pauses_auto_update_until_it_is_enabled_again() {
    let mut given = following_d1();
    given.extend([
        requested(D2),
        started(D2),
        succeeded(D2),
        superseded(D1, D2),
    ]);
    let events = Fx::with(())
        .given(given.clone())
        .when(UsecaseCommand::Rollback {
            deployment_id: D3,
            target: Some(D1),
            at: at(),
        })
        .inspect_result()
        .unwrap();
    let paused = events
        .iter()
        .find(|e| matches!(e, UsecaseEvent::AutoUpdatePaused { rollback, .. } if *rollback == D3));
    assert!(paused.is_some(), "{events:?}");
    given.extend(events);
    let mut state = Usecase::default();
    for event in given.clone() {
        cqrs_es::Aggregate::apply(&mut state, event);
    }
    assert!(state.auto_update_paused.is_some());
    // The same settings again end the pause.
    let settings = AutoUpdate {
        enabled: true,
        strategy: UpdateStrategy::Rolling,
        policy: UpdatePolicy::Digest,
    };
    Fx::with(())
        .given(given)
        .when(UsecaseCommand::ConfigureAutoUpdate { settings, at: at() })
        .then_expect_events(vec![auto_update_on()]);
    let mut resumed = state;
    cqrs_es::Aggregate::apply(&mut resumed, auto_update_on());
    assert_eq!(resumed.auto_update_paused, None);
}

#[test]
fn a_rollback_without_auto_update_pauses_nothing() {
    let events = Fx::with(())
        .given(two_releases())
        .when(UsecaseCommand::Rollback {
            deployment_id: D3,
            target: None,
            at: at(),
        })
        .inspect_result()
        .unwrap();
    assert!(!events
        .iter()
        .any(|e| matches!(e, UsecaseEvent::AutoUpdatePaused { .. })));
}

#[test]
fn an_auto_update_setting_from_before_policies_still_reads_as_digest() {
    let stored = r#"{"AutoUpdateConfigured":{"enabled":true,"strategy":"rolling","at":"2026-01-01T00:00:00Z"}}"#;
    let event: UsecaseEvent = serde_json::from_str(stored).unwrap();
    let mut state = Usecase::default();
    cqrs_es::Aggregate::apply(&mut state, event);
    assert_eq!(state.auto_update.policy, UpdatePolicy::Digest);
    assert!(state.auto_update.enabled);
}
