//! The Postgres side of shiplog: the postgres-es event store with a global
//! order, the subscriptions that feed the read models, and token storage.

pub mod audit;
pub mod auto_update;
pub mod command_bus;
pub mod db;
pub mod event_log;
pub mod event_store;
pub mod image_resolver;
pub mod kube_calls;
pub mod kube_cluster;
pub mod kube_insight;
pub mod kube_objects;
pub mod kube_permissions;
pub mod leader;
pub mod ledger;
pub mod live_feed;
pub mod oidc;
pub mod private_db;
pub mod process_manager;
pub mod projections;
pub mod read_model;
mod retry;
pub mod secrets;
pub mod sessions;
pub mod stream_tickets;
pub mod telemetry;
pub mod tokens;
pub mod upstream;
pub mod usecase_loader;

pub use command_bus::{PostgresCommandBus, PostgresTeamBus};
pub use event_log::{EventLog, RecordedEvent};
pub use ledger::PgLedger;
pub use live_feed::LiveFeed;
pub use projections::Projector;
pub use read_model::PgReadModel;
pub use secrets::{MasterKey, PgVault};
pub use sessions::PgSessionStore;
pub use stream_tickets::PgTicketStore;
pub use telemetry::{ClusterRetries, MeteredCommandBus, Telemetry};
pub use tokens::PgTokenStore;
