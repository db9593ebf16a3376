//! The JSON shapes of shiplog's HTTP APIs: the PhariaOS usecase API, the platform API
//! of seed 002, the ledger, teams and tokens, and the problem document of every error.
//! The server writes them and the typed client reads them, so a renamed field breaks
//! the build of both instead of printing an empty cell. With the `server` feature they
//! also convert from the domain's and the application's types.

pub mod auto_update;
pub mod ledger;
pub mod limits;
pub mod operations;
pub mod platform;
pub mod problem;
pub mod secrets;
pub mod teams;
pub mod usecases;

pub use problem::{Problem, ProblemType};
