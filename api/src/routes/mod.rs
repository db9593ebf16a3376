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
pub mod stream_tickets;
pub mod teams;
pub mod tokens;
pub mod usecases;

/// The OpenAPI links' runtime expressions (how a client, or schemathesis' stateful
/// phase, carries a created resource's key into the operations that take it).
pub(crate) mod links {
    /// The created usecase's id (the platform routes answer it as `id` too).
    pub(crate) const USECASE_ID: &str = "$response.body#/id";
    /// The created platform deployment's name.
    pub(crate) const DEPLOYMENT_NAME: &str = "$response.body#/name";
}
