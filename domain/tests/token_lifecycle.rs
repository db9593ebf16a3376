//! Given/when/then tests of the `Token` aggregate: creation (with and without an
//! expiry), scope changes, revocation, and what it refuses.

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use shiplog_domain::{DomainError, Scope, Token, TokenCommand, TokenEvent};
use uuid::Uuid;

type Fx = TestFramework<Token>;

const TOKEN: Uuid = Uuid::from_u128(11);
const TEAM: Uuid = Uuid::from_u128(7);

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 3, 4, 5, 6)
        .single()
        .unwrap_or_default()
}

fn create(scopes: Vec<Scope>, expires_at: Option<DateTime<Utc>>) -> TokenCommand {
    TokenCommand::Create {
        token_id: TOKEN,
        name: "ci-pipeline".to_owned(),
        scopes,
        subject: "ci".to_owned(),
        teams: vec![TEAM, TEAM],
        expires_at,
        at: at(),
    }
}

fn created() -> TokenEvent {
    TokenEvent::TokenCreated {
        token_id: TOKEN,
        name: "ci-pipeline".to_owned(),
        scopes: vec![Scope::UsecasesRead, Scope::DeploymentsWrite],
        subject: "ci".to_owned(),
        teams: vec![TEAM],
        expires_at: None,
        at: at(),
    }
}

fn revoked() -> TokenEvent {
    TokenEvent::TokenRevoked {
        token_id: TOKEN,
        name: "ci-pipeline".to_owned(),
        at: at(),
    }
}

#[test]
fn a_token_is_created_with_its_scopes_sorted_and_its_teams_once() {
    Fx::with(())
        .given_no_previous_events()
        .when(create(
            vec![
                Scope::DeploymentsWrite,
                Scope::UsecasesRead,
                Scope::DeploymentsWrite,
            ],
            None,
        ))
        .then_expect_events(vec![created()]);
}

#[test]
fn a_token_created_with_an_expiry_records_it() {
    let expiry = at() + Duration::days(30);
    Fx::with(())
        .given_no_previous_events()
        .when(create(vec![Scope::AuditRead], Some(expiry)))
        .then_expect_events(vec![TokenEvent::TokenCreated {
            token_id: TOKEN,
            name: "ci-pipeline".to_owned(),
            scopes: vec![Scope::AuditRead],
            subject: "ci".to_owned(),
            teams: vec![TEAM],
            expires_at: Some(expiry),
            at: at(),
        }]);
}

#[test]
fn a_token_is_refused_without_a_scope_or_with_an_expiry_not_after_its_creation() {
    Fx::with(())
        .given_no_previous_events()
        .when(create(Vec::new(), None))
        .then_expect_error(DomainError::NoScopes);
    Fx::with(())
        .given_no_previous_events()
        .when(create(vec![Scope::AuditRead], Some(at())))
        .then_expect_error(DomainError::ExpiryNotAfterCreation);
}

#[test]
fn a_token_is_created_once() {
    Fx::with(())
        .given(vec![created()])
        .when(create(vec![Scope::Admin], None))
        .then_expect_error(DomainError::TokenAlreadyExists(TOKEN));
}

#[test]
fn a_scope_change_records_the_scopes_before_and_after() {
    Fx::with(())
        .given(vec![created()])
        .when(TokenCommand::ChangeScopes {
            scopes: vec![Scope::DeploymentsRead],
            at: at(),
        })
        .then_expect_events(vec![TokenEvent::TokenScopesChanged {
            token_id: TOKEN,
            name: "ci-pipeline".to_owned(),
            from: vec![Scope::UsecasesRead, Scope::DeploymentsWrite],
            scopes: vec![Scope::DeploymentsRead],
            at: at(),
        }]);
}

#[test]
fn the_same_scopes_again_record_nothing() {
    Fx::with(())
        .given(vec![created()])
        .when(TokenCommand::ChangeScopes {
            scopes: vec![Scope::DeploymentsWrite, Scope::UsecasesRead],
            at: at(),
        })
        .then_expect_events(Vec::new());
}

#[test]
fn scopes_cannot_be_emptied() {
    Fx::with(())
        .given(vec![created()])
        .when(TokenCommand::ChangeScopes {
            scopes: Vec::new(),
            at: at(),
        })
        .then_expect_error(DomainError::NoScopes);
}

#[test]
fn a_token_is_revoked_with_its_name() {
    Fx::with(())
        .given(vec![created()])
        .when(TokenCommand::Revoke { at: at() })
        .then_expect_events(vec![revoked()]);
}

#[test]
fn a_revoked_or_unknown_token_takes_no_change() {
    let cases = [
        (
            "revoke an unknown token",
            vec![],
            TokenCommand::Revoke { at: at() },
        ),
        (
            "change an unknown token",
            vec![],
            TokenCommand::ChangeScopes {
                scopes: vec![Scope::Admin],
                at: at(),
            },
        ),
        (
            "revoke a revoked token",
            vec![created(), revoked()],
            TokenCommand::Revoke { at: at() },
        ),
        (
            "change a revoked token",
            vec![created(), revoked()],
            TokenCommand::ChangeScopes {
                scopes: vec![Scope::Admin],
                at: at(),
            },
        ),
    ];
    for (description, given, when) in cases {
        let refused = Token::default();
        let state = given.into_iter().fold(refused, |mut token, event| {
            cqrs_es::Aggregate::apply(&mut token, event);
            token
        });
        assert_eq!(
            state.decide(when),
            Err(DomainError::TokenNotFound),
            "{description}"
        );
    }
}

#[test]
fn token_events_are_stored_without_a_secret_and_read_back_alike() {
    let event = created();
    let stored = serde_json::to_value(&event).unwrap_or_default();
    assert_eq!(
        stored,
        serde_json::json!({"TokenCreated": {
            "tokenId": TOKEN, "name": "ci-pipeline", "scopes": ["usecases:read", "deployments:write"],
            "subject": "ci", "teams": [TEAM], "at": "2026-02-03T04:05:06Z"
        }})
    );
    let read: TokenEvent = serde_json::from_value(stored).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read, event);
}
