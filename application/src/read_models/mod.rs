//! The read models in memory: the rows of `usecase_view`, `deployment_view`,
//! `revision_view` and `team_view`, and how each event changes them.
//!
//! One fold serves every reader of the log. The projector loads the rows a page
//! of events touches, folds the whole page here and writes back only the final
//! state of each row, a few statements per table instead of one per event; a
//! rebuild folds the log from empty tables; time travel folds one usecase's
//! events. Each rule is the rule the projections' SQL had, statement for
//! statement: ordinals count the usecase's rows present now, a failure message or
//! successor once set is kept (`COALESCE`), every event of a usecase touches its
//! row's `updated_at`/`updated_by`, and times keep the microseconds `timestamptz` keeps.

mod deployment_view;
mod revision_view;
mod table;
mod team_view;
mod usecase_view;

pub use deployment_view::{DeploymentRow, DeploymentTable};
pub use revision_view::{settings_json, RevisionKey, RevisionRow, RevisionTable};
pub use table::{Changes, Table};
pub use team_view::TeamRow;
pub use usecase_view::{decode_auto_update, pause_json, UsecaseRow};

use crate::cursor::Cursor;
use chrono::{DateTime, Utc};
use shiplog_domain::{TeamEvent, UsecaseEvent};
use std::collections::HashSet;
use uuid::Uuid;

/// One stored usecase event, decoded, with what the read models take from its record.
#[derive(Debug, Clone, Copy)]
pub struct Fact<'a> {
    /// Its place in the global order.
    pub cursor: Cursor,
    /// The usecase it belongs to: the aggregate id, which every row but the
    /// registration's own is found by.
    pub usecase_id: Uuid,
    /// Its number within the usecase: a change's revision.
    pub sequence: i64,
    /// Who caused it ("system" when none was recorded).
    pub actor: &'a str,
    /// The request it came from (empty when none was recorded).
    pub request_id: &'a str,
    /// Why, when whoever asked said so.
    pub reason: Option<&'a str>,
    /// The event.
    pub event: &'a UsecaseEvent,
}

/// One stored team event, decoded.
#[derive(Debug, Clone, Copy)]
pub struct TeamFact<'a> {
    /// Its place in the global order.
    pub cursor: Cursor,
    /// The team it belongs to (the aggregate id).
    pub team_id: Uuid,
    /// Who caused it.
    pub actor: &'a str,
    /// The event.
    pub event: &'a TeamEvent,
}

/// Which read models an event is folded into: each keeps its own checkpoint, and
/// one that is behind the others (a read model added later) catches up alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Views {
    /// `usecase_view`.
    pub usecases: bool,
    /// `deployment_view`.
    pub deployments: bool,
    /// `revision_view`.
    pub revisions: bool,
    /// `team_view`.
    pub teams: bool,
}

impl Views {
    /// Every read model.
    pub const ALL: Views = Views {
        usecases: true,
        deployments: true,
        revisions: true,
        teams: true,
    };
    /// The two the usecase API reads (and time travel shows).
    pub const USECASES_AND_DEPLOYMENTS: Views = Views {
        usecases: true,
        deployments: true,
        revisions: false,
        teams: false,
    };
    /// `usecase_view` alone: time travel folds a usecase row from its own events.
    pub const USECASES: Views = Views {
        usecases: true,
        deployments: false,
        revisions: false,
        teams: false,
    };
    /// `deployment_view` alone: time travel folds a deployment row from the events naming it.
    pub const DEPLOYMENTS: Views = Views {
        usecases: false,
        deployments: true,
        revisions: false,
        teams: false,
    };
}

/// Why an event cannot be folded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FoldError {
    /// The projections' SQL refuses it (a key that has a row already): the read
    /// models stop at this event.
    #[error("event at {cursor} ({event_type}) {what}; the projections would refuse it")]
    Refused {
        /// Where it is in the log.
        cursor: Cursor,
        /// Its type.
        event_type: &'static str,
        /// What is wrong.
        what: &'static str,
    },
    /// Its time is one PostgreSQL cannot store.
    #[error("event at {cursor} ({event_type}) has a time Postgres cannot store: {at}")]
    Time {
        /// Where it is in the log.
        cursor: Cursor,
        /// Its type.
        event_type: &'static str,
        /// The time.
        at: DateTime<Utc>,
    },
    /// Its config cannot be written as JSON.
    #[error("event at {cursor} ({event_type}) has a config that is not JSON: {message}")]
    Config {
        /// Where it is in the log.
        cursor: Cursor,
        /// Its type.
        event_type: &'static str,
        /// The serde error.
        message: String,
    },
    /// A row it changes was not loaded before the fold: a bug in the caller.
    #[error("event at {cursor} ({event_type}) needs {what} that was not loaded")]
    NotLoaded {
        /// Where it is in the log.
        cursor: Cursor,
        /// Its type.
        event_type: &'static str,
        /// Which row.
        what: &'static str,
    },
}

impl FoldError {
    pub(crate) fn refused(fact: &Fact<'_>, what: &'static str) -> Self {
        Self::Refused {
            cursor: fact.cursor,
            event_type: fact.event.type_name(),
            what,
        }
    }

    pub(crate) fn not_loaded(fact: &Fact<'_>, what: &'static str) -> Self {
        Self::NotLoaded {
            cursor: fact.cursor,
            event_type: fact.event.type_name(),
            what,
        }
    }
}

/// The keys a page of events reads or changes, by table: what must be loaded
/// into a partial fold before the page is folded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// `usecase_view` rows by id.
    pub usecases: HashSet<Uuid>,
    /// `deployment_view` rows by id.
    pub deployments: HashSet<Uuid>,
    /// Usecases whose highest deployment ordinal is needed (a deployment is requested).
    pub ordinals: HashSet<Uuid>,
    /// `revision_view` rows of these deployments (without a restart).
    pub revisions_of_deployments: HashSet<Uuid>,
    /// `revision_view` rows of these restarts.
    pub revisions_of_restarts: HashSet<Uuid>,
    /// `team_view` rows by id.
    pub teams: HashSet<Uuid>,
}

impl Needs {
    /// Adds what `fact` needs in `views`.
    pub fn add(&mut self, fact: &Fact<'_>, views: Views) {
        use UsecaseEvent as E;
        if views.usecases {
            match fact.event {
                // The row takes the payload's id; every other event finds it by the aggregate id.
                E::UsecaseRegistered { usecase_id, .. } => self.usecases.insert(*usecase_id),
                _ => self.usecases.insert(fact.usecase_id),
            };
        }
        if views.deployments {
            match fact.event {
                E::DeploymentRequested { deployment_id, .. } => {
                    self.deployments.insert(*deployment_id);
                    self.ordinals.insert(fact.usecase_id);
                }
                E::DeploymentStarted { deployment_id, .. }
                | E::DeploymentSucceeded { deployment_id, .. }
                | E::DeploymentFailed { deployment_id, .. }
                | E::DeploymentSuperseded { deployment_id, .. }
                | E::DeploymentUndeployed { deployment_id, .. }
                | E::UndeployRequested { deployment_id, .. } => {
                    self.deployments.insert(*deployment_id);
                }
                _ => {}
            }
        }
        if views.revisions {
            match fact.event {
                E::ConfigChangeRequested { deployment_id, .. }
                | E::RollbackRequested { deployment_id, .. }
                | E::AutoUpdateRequested { deployment_id, .. } => {
                    self.revisions_of_deployments.insert(*deployment_id);
                }
                E::RestartSucceeded { restart_id, .. } | E::RestartFailed { restart_id, .. } => {
                    self.revisions_of_restarts.insert(*restart_id);
                }
                _ => {}
            }
        }
    }

    /// Adds what a team event needs in `views`.
    pub fn add_team(&mut self, fact: &TeamFact<'_>, views: Views) {
        if views.teams {
            self.teams.insert(fact.team_id);
        }
    }

    /// Whether nothing is needed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The four read models in memory.
#[derive(Debug, Clone)]
pub struct ReadModels {
    /// `usecase_view`, by usecase id.
    pub usecases: Table<Uuid, UsecaseRow>,
    /// `deployment_view`.
    pub deployments: DeploymentTable,
    /// `revision_view`.
    pub revisions: RevisionTable,
    /// `team_view`, by team id.
    pub teams: Table<Uuid, TeamRow>,
}

impl ReadModels {
    /// Empty read models that know every row (there is none): a rebuild from the
    /// first event, or time travel.
    pub fn empty() -> Self {
        Self::new(true)
    }

    /// Read models that know only what is loaded into them: a page of the live log.
    pub fn partial() -> Self {
        Self::new(false)
    }

    fn new(complete: bool) -> Self {
        Self {
            usecases: Table::new(complete),
            deployments: DeploymentTable::new(complete),
            revisions: RevisionTable::new(complete),
            teams: Table::new(complete),
        }
    }

    /// Folds one usecase event into `views`.
    pub fn apply(&mut self, fact: &Fact<'_>, views: Views) -> Result<(), FoldError> {
        // Every statement of the projections bound the event's time, so one the
        // database refuses stopped the event.
        let at = stored(fact.event.at()).ok_or_else(|| FoldError::Time {
            cursor: fact.cursor,
            event_type: fact.event.type_name(),
            at: fact.event.at(),
        })?;
        if views.usecases {
            usecase_view::apply(&mut self.usecases, fact, at)?;
        }
        if views.deployments {
            self.deployments.apply(fact, at)?;
        }
        if views.revisions {
            self.revisions.apply(fact, at)?;
        }
        Ok(())
    }

    /// Folds one team event into `views`.
    pub fn apply_team(&mut self, fact: &TeamFact<'_>, views: Views) -> Result<(), FoldError> {
        let at = stored(fact.event.at()).ok_or_else(|| FoldError::Time {
            cursor: fact.cursor,
            event_type: fact.event.type_name(),
            at: fact.event.at(),
        })?;
        if views.teams {
            team_view::apply(&mut self.teams, fact, at)?;
        }
        Ok(())
    }

    /// What of `needs` these read models do not know yet: what to load.
    pub fn missing(&self, needs: &Needs) -> Needs {
        let unknown = |keys: &HashSet<Uuid>, known: &dyn Fn(&Uuid) -> bool| {
            keys.iter().copied().filter(|k| !known(k)).collect()
        };
        Needs {
            usecases: unknown(&needs.usecases, &|k| self.usecases.knows(k)),
            deployments: unknown(&needs.deployments, &|k| self.deployments.rows.knows(k)),
            ordinals: unknown(&needs.ordinals, &|k| self.deployments.knows_ordinal(k)),
            revisions_of_deployments: unknown(&needs.revisions_of_deployments, &|k| {
                self.revisions.knows_deployment(k)
            }),
            revisions_of_restarts: unknown(&needs.revisions_of_restarts, &|k| {
                self.revisions.knows_restart(k)
            }),
            teams: unknown(&needs.teams, &|k| self.teams.knows(k)),
        }
    }

    /// How many keys are held in memory, over all tables.
    pub fn len(&self) -> usize {
        self.usecases.len()
            + self.deployments.rows.len()
            + self.revisions.rows.len()
            + self.teams.len()
    }

    /// Whether nothing is held in memory.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every change was written: the database holds what the fold holds.
    pub fn written(&mut self) {
        self.usecases.written();
        self.deployments.written();
        self.revisions.written();
        self.teams.written();
    }

    /// Forgets every row (after every change was written), to bound memory: what
    /// a later page needs is loaded again.
    pub fn forget(&mut self) {
        self.usecases.forget();
        self.deployments.forget();
        self.revisions.forget();
        self.teams.forget();
    }
}

/// 2000-01-01T00:00:00Z in Unix seconds: the origin of PostgreSQL timestamps.
const POSTGRES_EPOCH: i64 = 946_684_800;

/// `at` as a `timestamptz` column gives it back: sqlx sends whole microseconds
/// since 2000-01-01, truncated toward that epoch, so nanoseconds are lost.
/// `None` when sqlx cannot send it.
pub fn stored(at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let epoch = DateTime::<Utc>::from_timestamp(POSTGRES_EPOCH, 0)?;
    let micros = (at - epoch).num_microseconds()?;
    epoch.checked_add_signed(chrono::TimeDelta::microseconds(micros))
}
