//! Given/when/then tests of the `Team` aggregate: creation, renames, tier changes, refusals.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use shiplog_domain::{DomainError, Team, TeamCommand, TeamEvent, TeamName, Tier};
use uuid::Uuid;

type Fx = TestFramework<Team>;

const TEAM: Uuid = Uuid::from_u128(7);

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 3, 4, 5, 6)
        .single()
        .unwrap_or_default()
}

fn name(text: &str) -> TeamName {
    TeamName::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn created() -> TeamEvent {
    TeamEvent::TeamCreated {
        team_id: TEAM,
        name: name("acme"),
        tier: Tier::Free,
        at: at(),
    }
}

#[test]
fn a_team_is_created_with_its_name_and_tier() {
    Fx::with(())
        .given_no_previous_events()
        .when(TeamCommand::Create {
            team_id: TEAM,
            name: name("acme"),
            tier: Tier::Free,
            at: at(),
        })
        .then_expect_events(vec![created()]);
}

#[test]
fn a_team_is_created_once() {
    Fx::with(())
        .given(vec![created()])
        .when(TeamCommand::Create {
            team_id: TEAM,
            name: name("acme"),
            tier: Tier::Business,
            at: at(),
        })
        .then_expect_error(DomainError::TeamAlreadyExists(TEAM));
}

#[test]
fn an_update_records_each_change_with_what_it_was_before() {
    Fx::with(())
        .given(vec![created()])
        .when(TeamCommand::Update {
            name: Some(name("acme corp")),
            tier: Some(Tier::Business),
            at: at(),
        })
        .then_expect_events(vec![
            TeamEvent::TeamRenamed {
                from: name("acme"),
                name: name("acme corp"),
                at: at(),
            },
            TeamEvent::TeamTierChanged {
                from: Tier::Free,
                tier: Tier::Business,
                at: at(),
            },
        ]);
}

#[test]
fn an_update_that_changes_nothing_records_nothing() {
    Fx::with(())
        .given(vec![created()])
        .when(TeamCommand::Update {
            name: Some(name("acme")),
            tier: Some(Tier::Free),
            at: at(),
        })
        .then_expect_events(vec![]);
}

#[test]
fn an_unknown_team_cannot_be_updated() {
    Fx::with(())
        .given_no_previous_events()
        .when(TeamCommand::Update {
            name: None,
            tier: Some(Tier::Enterprise),
            at: at(),
        })
        .then_expect_error(DomainError::TeamNotFound);
}

#[test]
fn names_and_tiers_are_validated() {
    assert!(TeamName::parse("  ").is_err());
    assert!(TeamName::parse(&"x".repeat(65)).is_err());
    assert_eq!(Tier::parse("tier", "business"), Ok(Tier::Business));
    assert_eq!(
        Tier::parse("tier", "gold").err().map(|e| e.field),
        Some("tier".to_owned())
    );
}
