//! What every handler can reach.

use crate::console::session::ConsoleSettings;
use crate::stream_slots::StreamSlots;
use shiplog_application::auto_update::RegistryHooks;
use shiplog_application::{
    Access, Audit, Authenticator, Operations, Platform, Sessions, StreamTickets, Teams, Usecases,
};
use shiplog_infrastructure::Telemetry;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Shared by all handlers: the use cases, the authenticator and the pool (for readiness).
#[derive(Clone)]
pub struct AppState {
    /// The usecase API's use cases.
    pub usecases: Arc<Usecases>,
    /// Restart, config, rollback, logs, Kubernetes events and usage.
    pub operations: Arc<Operations>,
    /// Registry push notifications, which trigger auto-update checks.
    pub hooks: Arc<RegistryHooks>,
    /// The platform API's use cases (seed 002): named deployments of templates and images.
    pub platform: Arc<Platform>,
    /// Teams, the team a request acts for, and billing.
    pub teams: Arc<Teams>,
    /// Where a form post to the platform API's delete is redirected.
    pub deployments_page: String,
    /// The audit trail and event streams.
    pub audit: Arc<Audit>,
    /// Bearer tokens.
    pub auth: Arc<Authenticator>,
    /// Creating, changing and revoking tokens: ledger commands.
    pub access: Arc<Access>,
    /// Single-use tickets that open one event or log stream (`?ticket=`).
    pub stream_tickets: Arc<StreamTickets>,
    /// Only for `/readyz`.
    pub pool: PgPool,
    /// How often an idle event stream sends a keep-alive comment.
    pub keep_alive: Duration,
    /// Fired at shutdown: event streams end so that the server can stop.
    pub stopping: CancellationToken,
    /// Changes without a reason (`X-Shiplog-Reason`) are refused (`--require-reason`).
    pub require_reason: bool,
    /// This server's metrics, served at `/metrics`.
    pub telemetry: Arc<Telemetry>,
    /// The event and log streams each token has open, bounded per token.
    pub streams: Arc<StreamSlots>,
    /// The web console's sessions.
    pub sessions: Arc<Sessions>,
    /// How the web console keeps sessions and sets cookies.
    pub console: ConsoleSettings,
}
