//! shiplog's use cases: what a client can ask for, expressed over ports that
//! the infrastructure implements (event store, read models, token storage).

pub mod access;
pub mod audit;
pub mod auth;
pub mod auto_update;
pub mod chain;
pub mod cluster;
pub mod cursor;
pub mod error;
pub mod ledger;
pub mod oidc;
pub mod operations;
pub mod platform;
pub mod ports;
pub mod process_manager;
pub mod read_models;
pub mod secrets;
pub mod sessions;
pub mod stream_tickets;
pub mod teams;
pub mod time_travel;
pub mod usecases;

pub use access::Access;
pub use audit::{parse_types, Audit};
pub use auth::{
    Authenticator, Credential, NewToken, Principal, Scope, StoredToken, TokenInfo, TokenStore,
    OWNERSHIP_REFUSED,
};
pub use cluster::{ClusterError, ClusterPort, RolloutOutcome, Workload};
pub use cursor::Cursor;
pub use error::{AppError, Conflict, Denial, Missing};
pub use ledger::{
    ChainBreak, ChainReport, EventFilter, FeedItem, FollowedEvent, HistoryIndex, Ledger,
    RecordedEvent, SealedEvent,
};
pub use operations::{
    Accepted, ClusterInsight, Config, KubeEvent, LogLine, Logs, Operations, PodUsage, Usage,
};
pub use platform::{
    Catalog, CatalogError, FromImage, FromTemplate, IngressEndpoint, IngressSettings, Platform,
    PlatformConfig, PlatformDeployment, PlatformStatus, StatusReport, Template, TemplateService,
};
pub use ports::{
    Causation, CommandBus, CommandContext, DeploymentView, ImageResolver, NoResolution, Page,
    PlatformView, ReadModel, ResolveError, Revision, TeamCommandBus, TeamView, UsageCounts,
    UsecaseFilter, UsecaseView, Visible,
};
pub use process_manager::{
    at_rest, plan, ProcessManager, ReconcileError, Step, StepObserver, UsecaseLoader,
    PROCESS_MANAGER,
};
pub use secrets::{
    clear_secrets, no_vault, ClearSecrets, NoVault, SealedSecrets, SecretError, SecretInput,
    SecretValue, SecretVault,
};
pub use sessions::{
    ActiveSession, OpenedSession, SessionBasis, SessionPrincipal, SessionStore, Sessions,
    StoredSession,
};
pub use stream_tickets::{IssuedTicket, StreamTickets, TicketGrant, TicketStore};
pub use teams::{BillingSettings, Ownership, TeamUsage, Teams};
pub use time_travel::{deployment_at, state_at, usecase_at, DeploymentAt, StateAt};
pub use usecases::{page_size, Usecases};
