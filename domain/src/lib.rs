//! The heart of shiplog: the `Usecase` aggregate, its commands and events, and
//! the value types that make invalid input unrepresentable. Pure: no I/O.

pub mod aggregate;
pub mod commands;
pub mod config;
pub mod error;
pub mod events;
pub mod status;

pub use aggregate::{Deployment, Usecase};
pub use commands::UsecaseCommand;
pub use config::{
    check_env, DeploymentConfig, ImageRef, InvalidField, ResourceList, Resources, ServiceMonitor,
    UsecaseName,
};
pub use error::DomainError;
pub use events::UsecaseEvent;
pub use status::DeploymentStatus;
