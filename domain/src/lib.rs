//! The heart of shiplog: the `Usecase` aggregate, its commands and events, and
//! the value types that make invalid input unrepresentable. Pure: no I/O.

pub mod aggregate;
pub mod auto_update;
pub mod commands;
pub mod config;
pub mod error;
pub mod events;
pub mod image;
pub mod platform;
pub mod secrets;
pub mod status;
pub mod team;
pub mod token;

pub use aggregate::{Deployment, Usecase};
pub use auto_update::{
    AutoUpdate, AutoUpdatePause, CheckTrigger, FoundImage, PolicyKind, UpdatePolicy, VersionRange,
    VERSION_RANGE_PATTERN,
};
pub use commands::UsecaseCommand;
pub use config::{
    check_env, DeploymentConfig, InvalidField, ResourceList, Resources, ServiceMonitor,
    ServiceSpec, Sidecar, UsecaseName, ENV_NAME_PATTERN, MAIN_CONTAINER, MAIN_PORT_NAME,
    MAX_ENV_NAME_LEN,
};
pub use error::DomainError;
pub use events::UsecaseEvent;
pub use image::ImageRef;
pub use platform::{check_platform_name, check_service_name, UpdateStrategy, Visibility};
pub use secrets::{
    check_disjoint, check_secret_refs, MaskedValue, SealedValue, SecretKeySelector, SecretRef,
    SECRET_KEY_PATTERN, SECRET_NAME_PATTERN,
};
pub use status::DeploymentStatus;
pub use team::{Team, TeamCommand, TeamEvent, TeamName, Tier, TEAM_EVENT_TYPES};
pub use token::{Scope, Token, TokenCommand, TokenEvent, TOKEN_EVENT_TYPES};
