//! The HTTP routes, one file per resource.

pub mod deployments;
pub mod health;
pub mod tokens;
pub mod usecases;
