//! Loads a usecase's current state: what the process manager decides on. It reads
//! the same cached, folded aggregates as the command bus, so a reconcile costs the
//! events appended since, not the whole history.

use crate::event_store::CachedEventStore;
use async_trait::async_trait;
use shiplog_application::process_manager::UsecaseLoader;
use shiplog_application::AppError;
use shiplog_domain::Usecase;
use std::sync::Arc;
use uuid::Uuid;

/// Reads the ledger (the read models may lag; the log never does).
pub struct PgUsecaseLoader {
    store: Arc<CachedEventStore<Usecase>>,
}

impl PgUsecaseLoader {
    /// A loader over `store`, the command bus's own.
    pub fn new(store: Arc<CachedEventStore<Usecase>>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl UsecaseLoader for PgUsecaseLoader {
    async fn load(&self, usecase_id: Uuid) -> Result<Usecase, AppError> {
        self.store.load(&usecase_id.to_string()).await
    }
}
