//! The `Team` aggregate: a named group of subjects that owns deployments together,
//! with the tier that bounds how many it may have when billing is on. Its changes
//! are ledger events like a usecase's, so who changed a team's tier, and when, is
//! part of the audit trail (and of billing).

use crate::config::InvalidField;
use crate::error::DomainError;
use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// A team's billing tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The smallest tier (1 deployment by default).
    #[default]
    Free,
    /// 10 deployments by default.
    Business,
    /// No limit by default.
    Enterprise,
}

impl Tier {
    /// Every tier, smallest first.
    pub const ALL: [Tier; 3] = [Tier::Free, Tier::Business, Tier::Enterprise];

    /// The word the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Business => "business",
            Self::Enterprise => "enterprise",
        }
    }

    /// Reads the API's word; `field` names the input in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidField> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| {
                InvalidField::new(
                    field,
                    format!("{raw:?} is not a tier; use free, business or enterprise"),
                )
            })
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest team name, in characters.
pub const MAX_TEAM_NAME_LEN: usize = 64;

/// A team's name: unique across the installation, trimmed, 1 to 64 characters,
/// no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TeamName(String);

impl TeamName {
    /// Validates a name as a client sent it (field `name`).
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        crate::config::checked_name(raw, MAX_TEAM_NAME_LEN).map(Self)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TeamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an admin asks of a team.
#[derive(Debug, Clone, PartialEq)]
pub enum TeamCommand {
    /// Create a team.
    Create {
        /// Its id.
        team_id: Uuid,
        /// Its unique name.
        name: TeamName,
        /// Its tier.
        tier: Tier,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Rename it and/or change its tier; what does not change records nothing.
    Update {
        /// The new name, if it changes.
        name: Option<TeamName>,
        /// The new tier, if it changes.
        tier: Option<Tier>,
        /// Now.
        at: DateTime<Utc>,
    },
}

impl TeamCommand {
    /// A short, stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create_team",
            Self::Update { .. } => "update_team",
        }
    }
}

/// What happened to a team: past-tense facts, each with its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum TeamEvent {
    /// The team was created.
    TeamCreated {
        /// Its id.
        team_id: Uuid,
        /// Its unique name.
        name: TeamName,
        /// Its tier.
        tier: Tier,
        /// When.
        at: DateTime<Utc>,
    },
    /// The team was renamed.
    TeamRenamed {
        /// The name before.
        from: TeamName,
        /// The name now.
        name: TeamName,
        /// When.
        at: DateTime<Utc>,
    },
    /// The team's tier changed: its deployment limit changes with it, at once.
    TeamTierChanged {
        /// The tier before.
        from: Tier,
        /// The tier now.
        tier: Tier,
        /// When.
        at: DateTime<Utc>,
    },
}

/// Every team event type name, for filters and documentation.
pub const TEAM_EVENT_TYPES: [&str; 3] = ["TeamCreated", "TeamRenamed", "TeamTierChanged"];

impl TeamEvent {
    /// The type name stored with the event.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::TeamCreated { .. } => "TeamCreated",
            Self::TeamRenamed { .. } => "TeamRenamed",
            Self::TeamTierChanged { .. } => "TeamTierChanged",
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::TeamCreated { at, .. }
            | Self::TeamRenamed { at, .. }
            | Self::TeamTierChanged { at, .. } => *at,
        }
    }
}

impl DomainEvent for TeamEvent {
    fn event_type(&self) -> String {
        self.type_name().to_owned()
    }

    fn event_version(&self) -> String {
        crate::events::EVENT_VERSION.to_owned()
    }
}

/// A team as its events leave it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Team {
    /// Its id (nil until created).
    pub id: Uuid,
    /// Its name, once created.
    pub name: Option<TeamName>,
    /// Its tier.
    pub tier: Tier,
}

impl Team {
    /// The events `command` produces, or why it is refused.
    pub fn decide(&self, command: TeamCommand) -> Result<Vec<TeamEvent>, DomainError> {
        match command {
            TeamCommand::Create {
                team_id,
                name,
                tier,
                at,
            } => {
                if self.name.is_some() {
                    return Err(DomainError::TeamAlreadyExists(self.id));
                }
                Ok(vec![TeamEvent::TeamCreated {
                    team_id,
                    name,
                    tier,
                    at,
                }])
            }
            TeamCommand::Update { name, tier, at } => {
                let current = self.name.as_ref().ok_or(DomainError::TeamNotFound)?;
                let mut events = Vec::new();
                if let Some(name) = name.filter(|n| n != current) {
                    events.push(TeamEvent::TeamRenamed {
                        from: current.clone(),
                        name,
                        at,
                    });
                }
                if let Some(tier) = tier.filter(|t| *t != self.tier) {
                    events.push(TeamEvent::TeamTierChanged {
                        from: self.tier,
                        tier,
                        at,
                    });
                }
                Ok(events)
            }
        }
    }
}

impl Aggregate for Team {
    const TYPE: &'static str = "Team";
    type Command = TeamCommand;
    type Event = TeamEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            TeamEvent::TeamCreated {
                team_id,
                name,
                tier,
                ..
            } => {
                self.id = team_id;
                self.name = Some(name);
                self.tier = tier;
            }
            TeamEvent::TeamRenamed { name, .. } => self.name = Some(name),
            TeamEvent::TeamTierChanged { tier, .. } => self.tier = tier,
        }
    }
}
