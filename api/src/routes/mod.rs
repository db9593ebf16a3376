//! The HTTP routes, one file per resource.

pub mod audit;
pub mod deployments;
pub mod events;
pub mod health;
pub mod hooks;
pub mod metrics;
pub mod operations;
pub mod platform;
pub mod platform_ops;
pub mod problems;
pub mod teams;
pub mod tokens;
pub mod usecases;
