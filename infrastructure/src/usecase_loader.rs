//! Loads a usecase's current state by folding its events: what the process manager decides on.

use crate::db::app_error;
use async_trait::async_trait;
use cqrs_es::Aggregate;
use shiplog_application::process_manager::UsecaseLoader;
use shiplog_application::AppError;
use shiplog_domain::{Usecase, UsecaseEvent};
use sqlx::PgPool;
use uuid::Uuid;

/// Reads the events table directly (the read models may lag; the log never does).
pub struct PgUsecaseLoader {
    pool: PgPool,
}

impl PgUsecaseLoader {
    /// A loader on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl UsecaseLoader for PgUsecaseLoader {
    async fn load(&self, usecase_id: Uuid) -> Result<Usecase, AppError> {
        let payloads: Vec<serde_json::Value> = sqlx::query_scalar(
            "SELECT payload FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
        )
        .bind(Usecase::TYPE)
        .bind(usecase_id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(app_error)?;
        let mut usecase = Usecase::default();
        for payload in payloads {
            let event: UsecaseEvent = serde_json::from_value(payload).map_err(|e| {
                AppError::Internal(format!(
                    "stored event of usecase {usecase_id} does not deserialize: {e}"
                ))
            })?;
            usecase.apply(event);
        }
        Ok(usecase)
    }
}
