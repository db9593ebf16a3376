//! shiplog's HTTP layer: the PhariaOS usecase API and the platform API on axum, its OpenAPI
//! document and Redoc, the server the `shiplog` binary runs, and its command line client.

pub mod cli;
pub mod docs;
pub mod dto;
pub mod error;
pub mod extract;
pub mod ledger_dto;
pub mod memory;
pub mod ops_dto;
pub mod platform_dto;
pub mod proxy;
pub mod routes;
pub mod server;
pub mod sse;
pub mod state;
pub mod team_dto;
pub mod telemetry;
