//! Commands on the `Usecase` and `Team` aggregates through cqrs-es and
//! postgres-es's plain event store (the snapshot and aggregate stores of 0.5.0 are
//! broken).

use crate::db::{app_error, is_outage};
use crate::event_log::EventLog;
use crate::telemetry::Telemetry;
use async_trait::async_trait;
use cqrs_es::{Aggregate, AggregateError};
use postgres_es::{postgres_cqrs, PostgresCqrs};
use shiplog_application::{AppError, CommandBus, CommandContext, Cursor, TeamCommandBus};
use shiplog_domain::{DomainError, Team, TeamCommand, Usecase, UsecaseCommand};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use tracing::{instrument, warn};
use uuid::Uuid;

/// How often a command is retried when another writer appended to the same
/// usecase between our load and our commit (optimistic concurrency).
const MAX_ATTEMPTS: usize = 8;

/// Executes commands with metadata and reports where their events landed.
pub struct PostgresCommandBus {
    cqrs: PostgresCqrs<Usecase>,
    pool: PgPool,
}

impl PostgresCommandBus {
    /// A bus over the events table of `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            cqrs: postgres_cqrs(pool.clone(), Vec::new(), ()),
            pool,
        }
    }

    /// A bus over the events table of `pool` that counts the events it appends in `telemetry`.
    pub fn with_metrics(pool: PgPool, telemetry: Arc<Telemetry>) -> Self {
        Self {
            cqrs: postgres_cqrs(pool.clone(), vec![telemetry.appended_events_query()], ()),
            pool,
        }
    }
}

/// A name the command reserves in a table of unique names (`usecase_names`,
/// `team_names`), kept by a trigger in the command's own transaction.
struct Reservation<'a> {
    /// The table.
    table: &'static str,
    /// The name.
    name: &'a str,
    /// What is named, for the refusal ("usecase", "team").
    what: &'static str,
}

impl Reservation<'_> {
    /// `Conflict` when the name is taken (by another, committed reservation).
    async fn check(&self, pool: &PgPool) -> Result<(), AppError> {
        let taken: Option<i32> =
            sqlx::query_scalar(&format!("SELECT 1 FROM {} WHERE name = $1", self.table))
                .bind(self.name)
                .fetch_optional(pool)
                .await
                .map_err(app_error)?;
        match taken {
            Some(_) => Err(AppError::Conflict(format!(
                "a {} named {:?} already exists",
                self.what, self.name
            ))),
            None => Ok(()),
        }
    }
}

fn metadata(ctx: &CommandContext) -> HashMap<String, String> {
    let mut metadata = HashMap::from([
        ("actor".to_owned(), ctx.actor.clone()),
        ("request_id".to_owned(), ctx.request_id.clone()),
    ]);
    if let Some(causation) = ctx.causation {
        metadata.insert("causation".to_owned(), causation.to_string());
    }
    metadata
}

/// What the database's triggers refused, by the constraint they name: a reached
/// deployment limit (403) or a team that does not exist (404).
fn refused_by_trigger(sql: &sqlx::Error) -> Option<AppError> {
    let sqlx::Error::Database(db) = sql else {
        return None;
    };
    let detail = db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .and_then(|pg| pg.detail())
        .unwrap_or_default()
        .to_owned();
    match db.constraint() {
        Some("tier_limit") => Some(AppError::Denied(format!(
            "Deployment limit reached: {detail}"
        ))),
        Some("usecase_team") => Some(AppError::NotFound(db.message().to_owned())),
        _ => None,
    }
}

/// Maps the framework's error; `None` means "conflict, try again".
fn map_error(err: AggregateError<DomainError>) -> Option<AppError> {
    match err {
        AggregateError::UserError(e) => Some(e.into()),
        AggregateError::AggregateConflict => None,
        AggregateError::DatabaseConnectionError(e) => {
            Some(AppError::Unavailable(format!("database unavailable: {e}")))
        }
        AggregateError::DeserializationError(e) => Some(AppError::Internal(format!(
            "stored event does not deserialize: {e}"
        ))),
        AggregateError::UnexpectedError(e) => Some(match e.downcast::<sqlx::Error>() {
            Ok(sql) if is_outage(&sql) => {
                AppError::Unavailable(format!("database unavailable: {sql}"))
            }
            Ok(sql) => refused_by_trigger(&sql)
                .unwrap_or_else(|| AppError::Internal(format!("database error: {sql}"))),
            Err(other) => AppError::Internal(other.to_string()),
        }),
    }
}

/// Runs `command` on aggregate `id`: retries when another writer appended to it
/// first (optimistic concurrency), and tells a taken name (postgres-es reports
/// every unique violation as a conflict) by checking the reservation. Returns the
/// cursor of the aggregate's newest event.
async fn execute<A>(
    cqrs: &PostgresCqrs<A>,
    pool: &PgPool,
    id: Uuid,
    command: A::Command,
    ctx: &CommandContext,
    reservation: Option<Reservation<'_>>,
) -> Result<Cursor, AppError>
where
    A: Aggregate<Error = DomainError>,
    A::Command: Clone,
{
    if let Some(reservation) = &reservation {
        // The early, friendly check; the trigger on the events table is the guarantee.
        reservation.check(pool).await?;
    }
    let aggregate_id = id.to_string();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match cqrs
            .execute_with_metadata(&aggregate_id, command.clone(), metadata(ctx))
            .await
        {
            Ok(()) => break,
            Err(err) => match map_error(err) {
                Some(app) => return Err(app),
                None => {
                    if let Some(reservation) = &reservation {
                        reservation.check(pool).await?;
                    }
                    if attempt >= MAX_ATTEMPTS {
                        return Err(AppError::Unavailable(format!(
                            "{} {id} is too busy; retry",
                            A::TYPE.to_lowercase()
                        )));
                    }
                    warn!(attempt, %id, "concurrent write to the same stream; retrying the command");
                }
            },
        }
    }
    let mut conn = pool.acquire().await.map_err(app_error)?;
    EventLog::last_of(&mut conn, A::TYPE, &aggregate_id)
        .await
        .map_err(app_error)?
        .ok_or_else(|| AppError::Internal(format!("no events stored for {id} after a command")))
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
        let reservation = name.as_deref().map(|name| Reservation {
            table: "usecase_names",
            name,
            what: "usecase",
        });
        execute(
            &self.cqrs,
            &self.pool,
            usecase_id,
            command,
            ctx,
            reservation,
        )
        .await
    }
}

/// Executes team commands with metadata.
pub struct PostgresTeamBus {
    cqrs: PostgresCqrs<Team>,
    pool: PgPool,
}

impl PostgresTeamBus {
    /// A bus over the events table of `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            cqrs: postgres_cqrs(pool.clone(), Vec::new(), ()),
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
        let reservation = name.as_deref().map(|name| Reservation {
            table: "team_names",
            name,
            what: "team",
        });
        execute(&self.cqrs, &self.pool, team_id, command, ctx, reservation).await
    }
}
