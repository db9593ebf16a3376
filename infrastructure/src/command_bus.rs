//! Commands on the `Usecase` and `Team` aggregates: decided on the state the
//! [`CachedEventStore`] keeps folded, appended in one insert, and mapped to what a
//! client is told (a taken name, a reached limit, an outage).

use crate::db::{app_error, is_outage};
use crate::event_store::{CachedEventStore, StoreError};
use crate::telemetry::Telemetry;
use async_trait::async_trait;
use shiplog_application::{
    AppError, CommandBus, CommandContext, Conflict, Cursor, Denial, Missing, TeamCommandBus,
};
use shiplog_domain::{Team, TeamCommand, Usecase, UsecaseCommand};
use sqlx::PgPool;
use std::sync::Arc;
use tracing::instrument;
use uuid::Uuid;

/// Executes usecase commands with metadata and reports where their events landed.
pub struct PostgresCommandBus {
    store: Arc<CachedEventStore<Usecase>>,
    pool: PgPool,
}

impl PostgresCommandBus {
    /// A bus over the events table of `pool`, with a cache of its own.
    pub fn new(pool: PgPool) -> Self {
        Self::over(
            Arc::new(CachedEventStore::new(pool.clone(), Vec::new())),
            pool,
        )
    }

    /// A bus over `store` (shared with the process manager's loader, so one cache serves both).
    pub fn over(store: Arc<CachedEventStore<Usecase>>, pool: PgPool) -> Self {
        Self { store, pool }
    }

    /// A store over the events table of `pool` that counts the events it appends in `telemetry`.
    pub fn metered_store(
        pool: PgPool,
        telemetry: &Arc<Telemetry>,
    ) -> Arc<CachedEventStore<Usecase>> {
        Arc::new(CachedEventStore::new(
            pool,
            vec![telemetry.appended_events_query()],
        ))
    }
}

/// A name the command reserves in a table of unique names (`usecase_names`,
/// `team_names`), kept by a trigger in the command's own transaction.
struct Reservation<'a> {
    /// The table.
    table: &'static str,
    /// Its unique constraint on the name (named by migration 0011): a violation of
    /// it, and only of it, means the name is taken.
    constraint: &'static str,
    /// The name.
    name: &'a str,
    /// What is named, for the refusal ("usecase", "team").
    what: &'static str,
}

impl Reservation<'_> {
    /// The reservation of a usecase's name.
    fn usecase(name: &str) -> Reservation<'_> {
        Reservation {
            table: "usecase_names",
            constraint: "usecase_name_unique",
            name,
            what: "usecase",
        }
    }

    /// The reservation of a team's name.
    fn team(name: &str) -> Reservation<'_> {
        Reservation {
            table: "team_names",
            constraint: "team_name_unique",
            name,
            what: "team",
        }
    }

    /// The refusal of a taken name.
    fn taken(&self) -> AppError {
        AppError::conflict(
            Conflict::NameTaken,
            format!("a {} named {:?} already exists", self.what, self.name),
        )
    }

    /// `Conflict` when the name is taken (by another, committed reservation).
    async fn check(&self, pool: &PgPool) -> Result<(), AppError> {
        let taken: Option<i32> =
            sqlx::query_scalar(&format!("SELECT 1 FROM {} WHERE name = $1", self.table))
                .bind(self.name)
                .fetch_optional(pool)
                .await
                .map_err(app_error)?;
        match taken {
            Some(_) => Err(self.taken()),
            None => Ok(()),
        }
    }
}

/// What the database refused, by the constraint it names: the name reservation's
/// unique constraint (a name taken by a concurrent command, 409), or a trigger's
/// refusal: a reached deployment limit (403) or a team that does not exist (404).
fn refused_by_constraint(
    sql: &sqlx::Error,
    reservation: Option<&Reservation<'_>>,
) -> Option<AppError> {
    let sqlx::Error::Database(db) = sql else {
        return None;
    };
    let constraint = db.constraint()?;
    if let Some(reservation) = reservation.filter(|r| r.constraint == constraint) {
        return Some(reservation.taken());
    }
    match constraint {
        "tier_limit" => {
            let detail = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|pg| pg.detail())
                .unwrap_or_default();
            Some(AppError::denied(
                Denial::LimitReached,
                format!("Deployment limit reached: {detail}"),
            ))
        }
        "usecase_team" => Some(AppError::not_found(Missing::Team, db.message())),
        _ => None,
    }
}

/// What a failed command means to the client: the aggregate's refusal, a taken
/// name or a trigger's refusal (told by the constraint that fired), an outage or a
/// bug. Another writer on the same aggregate is not among them: the store decides
/// again on its events, and answers `Busy` only when it keeps losing.
fn failure(err: StoreError, reservation: Option<&Reservation<'_>>) -> AppError {
    match err {
        StoreError::Refused(e) => e.into(),
        StoreError::Busy => AppError::Unavailable("the usecase is too busy; retry".to_owned()),
        StoreError::Database(sql) if is_outage(&sql) => {
            AppError::Unavailable(format!("database unavailable: {sql}"))
        }
        StoreError::Database(sql) => {
            refused_by_constraint(&sql, reservation).unwrap_or_else(|| app_error(sql))
        }
    }
}

/// The cursor a committed command reports: its last event's (or, for a command
/// that changed nothing, the aggregate's newest).
fn cursor_of(cursor: Option<Cursor>, id: Uuid) -> Result<Cursor, AppError> {
    cursor.ok_or_else(|| AppError::Internal(format!("no events stored for {id} after a command")))
}

#[async_trait]
impl CommandBus for PostgresCommandBus {
    #[instrument(skip(self, command, ctx), fields(request_id = %ctx.request_id))]
    async fn execute(
        &self,
        usecase_id: Uuid,
        command: UsecaseCommand,
        ctx: &CommandContext,
    ) -> Result<Cursor, AppError> {
        let name = match &command {
            UsecaseCommand::Register { name, .. } | UsecaseCommand::Create { name, .. } => {
                Some(name.to_string())
            }
            _ => None,
        };
        let reservation = name.as_deref().map(Reservation::usecase);
        if let Some(reservation) = &reservation {
            // The early, friendly check; the trigger on the events table is the guarantee.
            reservation.check(&self.pool).await?;
        }
        match self
            .store
            .execute(&usecase_id.to_string(), command, ctx)
            .await
        {
            Ok(committed) => cursor_of(committed.cursor, usecase_id),
            Err(e) => Err(failure(e, reservation.as_ref())),
        }
    }
}

/// Executes team commands with metadata.
pub struct PostgresTeamBus {
    store: CachedEventStore<Team>,
    pool: PgPool,
}

impl PostgresTeamBus {
    /// A bus over the events table of `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            store: CachedEventStore::new(pool.clone(), Vec::new()),
            pool,
        }
    }
}

#[async_trait]
impl TeamCommandBus for PostgresTeamBus {
    #[instrument(skip(self, command, ctx), fields(request_id = %ctx.request_id))]
    async fn execute(
        &self,
        team_id: Uuid,
        command: TeamCommand,
        ctx: &CommandContext,
    ) -> Result<Cursor, AppError> {
        let name = match &command {
            TeamCommand::Create { name, .. } => Some(name.to_string()),
            TeamCommand::Update { name, .. } => name.as_ref().map(ToString::to_string),
        };
        let reservation = name.as_deref().map(Reservation::team);
        if let Some(reservation) = &reservation {
            reservation.check(&self.pool).await?;
        }
        match self.store.execute(&team_id.to_string(), command, ctx).await {
            Ok(committed) => cursor_of(committed.cursor, team_id),
            Err(e) => Err(failure(e, reservation.as_ref())),
        }
    }
}
