//! Given/when/then tests of secret variables in the `Usecase` aggregate: what the
//! events record of them (sealed values and references, never a clear value), how a
//! config change keeps or replaces them, and that a rollback restores them.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use shiplog_domain::{
    DeploymentConfig, DomainError, ImageRef, InvalidField, SealedValue, SecretKeySelector,
    SecretRef, Usecase, UsecaseCommand, UsecaseEvent, UsecaseName,
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

/// A value as the sealing adapter would return it; the aggregate treats it as opaque.
fn sealed(tag: &str) -> SealedValue {
    SealedValue::new(
        "3fa2c1d0a1b2c3d4".into(),
        format!("nonce-{tag}"),
        format!("ciphertext-{tag}"),
    )
}

fn db_ref() -> SecretRef {
    SecretRef {
        name: "DB_URL".into(),
        secret: SecretKeySelector {
            name: "db".into(),
            key: "url".into(),
        },
    }
}

fn plain_config() -> DeploymentConfig {
    let image =
        ImageRef::new("registry.example", "team/chat", "1.0.0").unwrap_or_else(|e| panic!("{e}"));
    let env = BTreeMap::from([("MODE".to_owned(), "prod".to_owned())]);
    DeploymentConfig::new(image, None, Some(8080), env, Some(1), None)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn secret_config(tag: &str) -> DeploymentConfig {
    plain_config()
        .with_secrets(
            "config",
            BTreeMap::from([("DB_PASSWORD".to_owned(), sealed(tag))]),
            vec![db_ref()],
        )
        .unwrap_or_else(|e| panic!("{e}"))
}

fn registered() -> UsecaseEvent {
    UsecaseEvent::UsecaseRegistered {
        usecase_id: USECASE,
        name: UsecaseName::parse("chat").unwrap_or_else(|e| panic!("{e}")),
        description: String::new(),
        at: at(),
        template: None,
        visibility: None,
        owner: Some("alice".into()),
        team: None,
    }
}

fn requested(id: Uuid, config: DeploymentConfig) -> UsecaseEvent {
    UsecaseEvent::DeploymentRequested {
        deployment_id: id,
        config,
        at: at(),
    }
}

fn deployed(id: Uuid) -> Vec<UsecaseEvent> {
    vec![
        UsecaseEvent::DeploymentStarted {
            deployment_id: id,
            at: at(),
            digest: None,
        },
        UsecaseEvent::DeploymentSucceeded {
            deployment_id: id,
            at: at(),
        },
    ]
}

fn change(
    env: BTreeMap<String, String>,
    secret_env: Option<BTreeMap<String, SealedValue>>,
) -> UsecaseCommand {
    UsecaseCommand::ChangeConfig {
        deployment_id: D2,
        expected_base: Some(D1),
        env,
        secret_env,
        secret_refs: None,
        at: at(),
    }
}

#[test]
fn a_deployment_request_records_sealed_values_and_references_as_given() {
    Fx::with(())
        .given(vec![registered()])
        .when(UsecaseCommand::RequestDeployment {
            deployment_id: D1,
            config: secret_config("a"),
            at: at(),
        })
        .then_expect_events(vec![requested(D1, secret_config("a"))]);
}

#[test]
fn the_recorded_event_holds_ciphertext_and_the_key_fingerprint_never_a_value() {
    let event = requested(D1, secret_config("a"));
    let json = serde_json::to_value(&event).unwrap_or_default();
    assert_eq!(
        json["DeploymentRequested"]["config"]["secretEnv"]["DB_PASSWORD"],
        serde_json::json!({"secret": true, "key": "3fa2c1d0a1b2c3d4", "nonce": "nonce-a", "ciphertext": "ciphertext-a"})
    );
    assert_eq!(
        json["DeploymentRequested"]["config"]["secretRefs"],
        serde_json::json!([{"name": "DB_URL", "secret": {"name": "db", "key": "url"}}])
    );
    // Configs without secrets are stored exactly as before secrets existed.
    let plain = serde_json::to_value(requested(D1, plain_config())).unwrap_or_default();
    assert!(plain["DeploymentRequested"]["config"]
        .get("secretEnv")
        .is_none());
    assert!(plain["DeploymentRequested"]["config"]
        .get("secretRefs")
        .is_none());
}

#[test]
fn a_config_change_without_secret_values_keeps_the_sealed_ones_of_its_base() {
    let mut given = vec![registered(), requested(D1, secret_config("a"))];
    given.extend(deployed(D1));
    let env = BTreeMap::from([("MODE".to_owned(), "debug".to_owned())]);
    let mut expected = secret_config("a");
    expected.env = env.clone();
    Fx::with(())
        .given(given)
        .when(change(env.clone(), None))
        .then_expect_events(vec![
            requested(D2, expected),
            UsecaseEvent::ConfigChangeRequested {
                deployment_id: D2,
                based_on: D1,
                env,
                secret_env: BTreeMap::from([("DB_PASSWORD".to_owned(), sealed("a"))]),
                secret_refs: vec![db_ref()],
                at: at(),
            },
        ]);
}

#[test]
fn a_config_change_with_secret_values_replaces_the_whole_set() {
    let mut given = vec![registered(), requested(D1, secret_config("a"))];
    given.extend(deployed(D1));
    let env = BTreeMap::new();
    let new_secrets = BTreeMap::from([("API_KEY".to_owned(), sealed("b"))]);
    let mut expected = secret_config("a");
    expected.env = env.clone();
    expected.secret_env = new_secrets.clone();
    Fx::with(())
        .given(given)
        .when(change(env.clone(), Some(new_secrets.clone())))
        .then_expect_events(vec![
            requested(D2, expected),
            UsecaseEvent::ConfigChangeRequested {
                deployment_id: D2,
                based_on: D1,
                env,
                secret_env: new_secrets,
                secret_refs: vec![db_ref()],
                at: at(),
            },
        ]);
}

#[test]
fn a_plain_value_may_not_shadow_a_kept_secret_one() {
    let mut given = vec![registered(), requested(D1, secret_config("a"))];
    given.extend(deployed(D1));
    let env = BTreeMap::from([("DB_PASSWORD".to_owned(), "oops".to_owned())]);
    Fx::with(())
        .given(given)
        .when(change(env, None))
        .then_expect_error(DomainError::Invalid(InvalidField::new(
            "secretEnv.DB_PASSWORD",
            "is also given in env; a variable is either plain (env) or secret (secretEnv)",
        )));
}

#[test]
fn a_rollback_restores_the_sealed_values_of_its_target() {
    let mut given = vec![registered(), requested(D1, secret_config("a"))];
    given.extend(deployed(D1));
    given.push(requested(D2, secret_config("b")));
    given.extend(deployed(D2));
    given.push(UsecaseEvent::DeploymentSuperseded {
        deployment_id: D1,
        superseded_by: D2,
        at: at(),
    });
    Fx::with(())
        .given(given)
        .when(UsecaseCommand::Rollback {
            deployment_id: D3,
            target: None,
            at: at(),
        })
        .then_expect_events(vec![
            requested(D3, secret_config("a")),
            UsecaseEvent::RollbackRequested {
                deployment_id: D3,
                rollback_of: D1,
                at: at(),
            },
        ]);
}

#[test]
fn a_variable_given_plain_and_secret_is_refused_naming_the_secret_one() {
    let image =
        ImageRef::new("registry.example", "team/chat", "1.0.0").unwrap_or_else(|e| panic!("{e}"));
    let env = BTreeMap::from([("DB_PASSWORD".to_owned(), "x".to_owned())]);
    let config = DeploymentConfig::new(image, None, None, env, None, None).and_then(|c| {
        c.with_secrets(
            "config",
            BTreeMap::from([("DB_PASSWORD".to_owned(), sealed("a"))]),
            Vec::new(),
        )
    });
    assert_eq!(
        config.err().map(|e| e.field),
        Some("config.secretEnv.DB_PASSWORD".to_owned())
    );
}
