//! Seed 002's platform API over the same usecases: templates, named deployments,
//! their status, ingresses and operations.

pub mod ingress;
pub mod service;
pub mod status;
pub mod templates;

pub use ingress::{IngressEndpoint, IngressSettings};
pub use service::{FromImage, FromTemplate, Platform, PlatformConfig, PlatformDeployment};
pub use status::{status_of, PlatformStatus, StatusReport};
pub use templates::{Catalog, CatalogError, Template, TemplateService};
