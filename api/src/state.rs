//! What every handler can reach.

use shiplog_application::{Authenticator, Usecases};
use sqlx::PgPool;
use std::sync::Arc;

/// Shared by all handlers: the use cases, the authenticator and the pool (for readiness).
#[derive(Clone)]
pub struct AppState {
    /// The usecase API's use cases.
    pub usecases: Arc<Usecases>,
    /// Bearer tokens.
    pub auth: Arc<Authenticator>,
    /// Only for `/readyz`.
    pub pool: PgPool,
}
