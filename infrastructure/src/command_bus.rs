//! Commands on the `Usecase` aggregate through cqrs-es and postgres-es's plain
//! event store (the snapshot and aggregate stores of 0.5.0 are broken).

use crate::db::{app_error, is_outage};
use crate::event_log::EventLog;
use crate::telemetry::Telemetry;
use async_trait::async_trait;
use cqrs_es::{Aggregate, AggregateError};
use postgres_es::{postgres_cqrs, PostgresCqrs};
use shiplog_application::{AppError, CommandBus, CommandContext, Cursor};
use shiplog_domain::{DomainError, Usecase, UsecaseCommand};
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

    async fn name_taken(&self, name: &str) -> Result<bool, AppError> {
        let taken: Option<i32> = sqlx::query_scalar("SELECT 1 FROM usecase_names WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(app_error)?;
        Ok(taken.is_some())
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
            Ok(sql) => AppError::Internal(format!("database error: {sql}")),
            Err(other) => AppError::Internal(other.to_string()),
        }),
    }
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
        let id = usecase_id.to_string();
        let registering = match &command {
            UsecaseCommand::Register { name, .. } | UsecaseCommand::Create { name, .. } => {
                Some(name.to_string())
            }
            _ => None,
        };
        if let Some(name) = &registering {
            // The early, friendly check; the trigger on the events table is the guarantee.
            if self.name_taken(name).await? {
                return Err(AppError::Conflict(format!(
                    "a usecase named {name:?} already exists"
                )));
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .cqrs
                .execute_with_metadata(&id, command.clone(), metadata(ctx))
                .await
            {
                Ok(()) => break,
                Err(err) => match map_error(err) {
                    Some(app) => return Err(app),
                    None => {
                        if let Some(name) = &registering {
                            if self.name_taken(name).await? {
                                return Err(AppError::Conflict(format!(
                                    "a usecase named {name:?} already exists"
                                )));
                            }
                        }
                        if attempt >= MAX_ATTEMPTS {
                            return Err(AppError::Unavailable(format!(
                                "usecase {usecase_id} is too busy; retry"
                            )));
                        }
                        warn!(attempt, %usecase_id, "concurrent write to the usecase; retrying the command");
                    }
                },
            }
        }
        let mut conn = self.pool.acquire().await.map_err(app_error)?;
        EventLog::last_of(&mut conn, Usecase::TYPE, &id)
            .await
            .map_err(app_error)?
            .ok_or_else(|| {
                AppError::Internal(format!(
                    "no events stored for usecase {usecase_id} after a command"
                ))
            })
    }
}
