//! shiplog's use cases: what a client can ask for, expressed over ports that
//! the infrastructure implements (event store, read models, token storage).

pub mod auth;
pub mod cluster;
pub mod cursor;
pub mod error;
pub mod ports;
pub mod process_manager;
pub mod usecases;

pub use auth::{Authenticator, NewToken, Principal, Scope, TokenInfo};
pub use cluster::{ClusterError, ClusterPort, RolloutOutcome, Workload};
pub use cursor::Cursor;
pub use error::AppError;
pub use ports::{
    CommandBus, CommandContext, DeploymentView, Page, ReadModel, TokenStore, UsecaseFilter,
    UsecaseView,
};
pub use process_manager::{
    plan, ProcessManager, ReconcileError, Step, UsecaseLoader, PROCESS_MANAGER,
};
pub use usecases::Usecases;
