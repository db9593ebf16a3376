//! The domain events tests build by hand, one builder per event: a test states
//! the history it needs (`registered`, `requested`, `started`, `succeeded`, ...)
//! without repeating every field, and a new field of an event is filled in here
//! once.
//!
//! Times are the caller's: pass `Utc::now()` when they do not matter, a clock
//! of the test's own when they do.

use chrono::{DateTime, Utc};
use shiplog_domain::{
    DeploymentConfig, ImageRef, PolicyKind, Team, TeamEvent, TeamName, Tier, UpdateStrategy,
    Usecase, UsecaseEvent, UsecaseName,
};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A valid usecase name; panics on one the domain refuses (a test's own typo).
pub fn name(raw: &str) -> UsecaseName {
    UsecaseName::parse(raw).unwrap_or_else(|e| panic!("usecase name {raw:?}: {e}"))
}

/// A valid team name; panics on one the domain refuses.
pub fn team_name(raw: &str) -> TeamName {
    TeamName::parse(raw).unwrap_or_else(|e| panic!("team name {raw:?}: {e}"))
}

/// A deployment config running `registry.example.com/team/app:<tag>` on port
/// 8080, one replica, no environment.
pub fn config(tag: &str) -> DeploymentConfig {
    config_with_env(tag, BTreeMap::new())
}

/// As [`config`], with these environment variables.
pub fn config_with_env(tag: &str, env: BTreeMap<String, String>) -> DeploymentConfig {
    let image = ImageRef::new("registry.example.com", "team/app", tag)
        .unwrap_or_else(|e| panic!("image tag {tag:?}: {e}"));
    DeploymentConfig::new(image, None, Some(8080), env, Some(1), None)
        .unwrap_or_else(|e| panic!("config: {e}"))
}

/// `UsecaseRegistered` of a PhariaOS usecase (no template, visibility, owner or team).
pub fn registered(usecase_id: Uuid, name: &str, at: DateTime<Utc>) -> UsecaseEvent {
    UsecaseEvent::UsecaseRegistered {
        usecase_id,
        name: self::name(name),
        description: "built by a test".to_owned(),
        at,
        template: None,
        visibility: None,
        owner: None,
        team: None,
    }
}

/// `DeploymentRequested` of `config`.
pub fn requested(deployment_id: Uuid, config: DeploymentConfig, at: DateTime<Utc>) -> UsecaseEvent {
    UsecaseEvent::DeploymentRequested {
        deployment_id,
        config,
        at,
    }
}

/// `DeploymentStarted`.
pub fn started(deployment_id: Uuid, at: DateTime<Utc>) -> UsecaseEvent {
    UsecaseEvent::DeploymentStarted {
        deployment_id,
        at,
        digest: None,
    }
}

/// `DeploymentStarted` with the image resolved to `digest`.
pub fn started_pinned(deployment_id: Uuid, digest: &str, at: DateTime<Utc>) -> UsecaseEvent {
    UsecaseEvent::DeploymentStarted {
        deployment_id,
        at,
        digest: Some(digest.to_owned()),
    }
}

/// `DeploymentSucceeded`.
pub fn succeeded(deployment_id: Uuid, at: DateTime<Utc>) -> UsecaseEvent {
    UsecaseEvent::DeploymentSucceeded { deployment_id, at }
}

/// `DeploymentFailed` with `message`.
pub fn failed(deployment_id: Uuid, message: &str, at: DateTime<Utc>) -> UsecaseEvent {
    UsecaseEvent::DeploymentFailed {
        deployment_id,
        message: message.to_owned(),
        at,
    }
}

/// `DeploymentSuperseded` by `superseded_by`.
pub fn superseded(deployment_id: Uuid, superseded_by: Uuid, at: DateTime<Utc>) -> UsecaseEvent {
    UsecaseEvent::DeploymentSuperseded {
        deployment_id,
        superseded_by,
        at,
    }
}

/// `UndeployRequested`.
pub fn undeploy_requested(deployment_id: Uuid, at: DateTime<Utc>) -> UsecaseEvent {
    UsecaseEvent::UndeployRequested { deployment_id, at }
}

/// `DeploymentUndeployed`.
pub fn undeployed(deployment_id: Uuid, at: DateTime<Utc>) -> UsecaseEvent {
    UsecaseEvent::DeploymentUndeployed { deployment_id, at }
}

/// `UsecaseDeleted`.
pub fn deleted(at: DateTime<Utc>) -> UsecaseEvent {
    UsecaseEvent::UsecaseDeleted { at }
}

/// `DeletionRequested`.
pub fn deletion_requested(at: DateTime<Utc>) -> UsecaseEvent {
    UsecaseEvent::DeletionRequested { at }
}

/// `RestartRequested` of `deployment_id`'s pods.
pub fn restart_requested(restart_id: Uuid, deployment_id: Uuid, at: DateTime<Utc>) -> UsecaseEvent {
    UsecaseEvent::RestartRequested {
        restart_id,
        deployment_id,
        at,
    }
}

/// `RestartSucceeded`.
pub fn restart_succeeded(restart_id: Uuid, deployment_id: Uuid, at: DateTime<Utc>) -> UsecaseEvent {
    UsecaseEvent::RestartSucceeded {
        restart_id,
        deployment_id,
        at,
    }
}

/// `AutoUpdateConfigured` with the `digest` policy.
pub fn auto_update(enabled: bool, strategy: UpdateStrategy, at: DateTime<Utc>) -> UsecaseEvent {
    UsecaseEvent::AutoUpdateConfigured {
        enabled,
        strategy,
        policy: PolicyKind::Digest,
        range: None,
        at,
    }
}

/// `AutoUpdatePaused` by the rollback `rollback`.
pub fn auto_update_paused(rollback: Uuid, at: DateTime<Utc>) -> UsecaseEvent {
    UsecaseEvent::AutoUpdatePaused {
        rollback,
        reason: format!("a manual rollback ({rollback})"),
        at,
    }
}

/// `TeamCreated`.
pub fn team_created(team_id: Uuid, name: &str, tier: Tier, at: DateTime<Utc>) -> TeamEvent {
    TeamEvent::TeamCreated {
        team_id,
        name: team_name(name),
        tier,
        at,
    }
}

/// The `Usecase` aggregate as `events` leave it, folded as the event store folds
/// them (no command decides anything).
pub fn usecase(events: impl IntoIterator<Item = UsecaseEvent>) -> Usecase {
    use cqrs_es::Aggregate;
    let mut usecase = Usecase::default();
    for event in events {
        usecase.apply(event);
    }
    usecase
}

/// The `Team` aggregate as `events` leave it.
pub fn team(events: impl IntoIterator<Item = TeamEvent>) -> Team {
    use cqrs_es::Aggregate;
    let mut team = Team::default();
    for event in events {
        team.apply(event);
    }
    team
}
