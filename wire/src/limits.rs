//! What the OpenAPI document states about inputs beyond their types: the schemas of
//! environment maps (built here: a derive attribute cannot say them), the event types
//! a filter names, and one message of an SSE stream. The server enforces the same rules in the domain; the
//! API tests compare both, so the document cannot drift from what is refused.

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

/// An environment variable's name, as `shiplog_domain::config::ENV_NAME_PATTERN` checks it.
pub const ENV_NAME_PATTERN: &str = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$";

/// A cursor of the global order, as shiplog writes it: 32 hexadecimal characters
/// (the writing transaction, then the position, which is below 2^63).
pub const CURSOR_PATTERN: &str = r"^[0-9a-fA-F]{16}[0-7][0-9a-fA-F]{15}$";

/// The schema of an environment map: names as the domain checks them, values any text.
pub fn env_map() -> Schema {
    env_object(SchemaType::Type(Type::Object))
}

/// As [`env_map`], for a map that may be null or absent.
pub fn optional_env_map() -> Schema {
    env_object(SchemaType::from_iter([Type::Object, Type::Null]))
}

/// The schema of a `secretEnv` map that may be null or absent: names as `env`'s;
/// each value a string in requests, `MaskedSecret` in answers.
pub fn optional_secret_env_map() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
            .additional_properties(Some(AdditionalProperties::RefOr(
                <crate::secrets::SecretEnvValue as utoipa::PartialSchema>::schema(),
            )))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(ENV_NAME_PATTERN))
                    .build(),
            ))
            .build(),
    )
}

/// The schema of a `secretRefs` list that may be null or absent: at most 100
/// references, no two alike (the server also refuses two of one variable, which
/// JSON Schema cannot state).
pub fn optional_secret_refs() -> Schema {
    Schema::Array(
        utoipa::openapi::schema::ArrayBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
            .items(<crate::secrets::SecretRefBody as utoipa::PartialSchema>::schema())
            .max_items(Some(crate::secrets::MAX_SECRET_REFS))
            .unique_items(true)
            .build(),
    )
}

fn env_object(kind: SchemaType) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(kind)
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::Object(
                ObjectBuilder::new().schema_type(Type::String).build(),
            )))))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(ENV_NAME_PATTERN))
                    .build(),
            ))
            .build(),
    )
}

/// An event type, as a `types` filter names it (sent comma-separated:
/// `style: form, explode: false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum EventTypeName {
    /// A usecase was registered.
    UsecaseRegistered,
    /// A deployment was requested.
    DeploymentRequested,
    /// The process manager started rolling it out.
    DeploymentStarted,
    /// It rolled out.
    DeploymentSucceeded,
    /// It failed.
    DeploymentFailed,
    /// A newer one replaced it.
    DeploymentSuperseded,
    /// An undeploy was requested.
    UndeployRequested,
    /// It was taken down.
    DeploymentUndeployed,
    /// The usecase was deleted.
    UsecaseDeleted,
    /// A restart was requested.
    RestartRequested,
    /// The restart rolled out.
    RestartSucceeded,
    /// The restart failed.
    RestartFailed,
    /// A config change was requested.
    ConfigChangeRequested,
    /// A rollback was requested.
    RollbackRequested,
    /// Auto-update settings changed.
    AutoUpdateConfigured,
    /// A platform deployment's deletion was requested.
    DeletionRequested,
    /// A manual rollback paused auto-update.
    AutoUpdatePaused,
    /// Auto-update found a new image and requested its deployment.
    AutoUpdateRequested,
    /// A team was created.
    TeamCreated,
    /// A team was renamed.
    TeamRenamed,
    /// A team's tier changed.
    TeamTierChanged,
    /// An API token was created.
    TokenCreated,
    /// An API token's scopes changed.
    TokenScopesChanged,
    /// An API token was revoked.
    TokenRevoked,
}

/// One message of a Server-Sent Events stream, as a client parses it: what the
/// document says each message of a `text/event-stream` response is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SseMessage {
    /// The message's id (an event's cursor), to resume after it with `Last-Event-ID`.
    pub id: Option<String>,
    /// The message's type (`log`, an event type, `overflow`); `message` when absent.
    pub event: Option<String>,
    /// Its data: one JSON document.
    pub data: Option<String>,
    /// How long a client should wait before reconnecting, in milliseconds.
    pub retry: Option<u64>,
}
