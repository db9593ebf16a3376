//! shiplog's HTTP layer: the PhariaOS usecase API and the platform API on axum, its OpenAPI
//! document and Redoc, and the server the `shiplog` binary runs.

pub mod command_line;
pub mod console;
pub mod docs;
pub mod error;
pub mod extract;
pub mod http_server;
pub mod limits;
pub mod memory;
pub mod proxy;
pub mod routes;
pub mod server;
pub mod sse;
pub mod state;
pub mod stream_slots;
pub mod telemetry;
