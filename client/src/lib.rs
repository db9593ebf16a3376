//! A typed client of shiplog's HTTP API. Every call takes and returns the server's own
//! JSON shapes (`shiplog-wire`), so a field renamed on one side breaks the build of the
//! other instead of printing an empty cell. The `shiplog` command line, the black-box
//! tests and the benchmarks call shiplog through it.

mod error;
mod feed;
mod http;
mod ledger;
mod platform;
pub mod sse;
mod teams;
mod usecases;

pub use error::ClientError;
pub use feed::{EventFeed, FROM_THE_START};
pub use http::Client;
pub use ledger::StreamStart;
/// URLs as the client takes them, for callers that check a base URL before use.
pub use reqwest::Url;
pub use shiplog_wire as wire;
pub use usecases::LogFollower;
