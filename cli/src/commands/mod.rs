//! One file per family of client commands; each turns parsed arguments into API calls
//! and prints the answer.

pub mod auto_update;
pub mod config;
pub mod deploy;
pub mod ledger;
pub mod logs;
pub mod platform;
pub mod teams;
pub mod tokens;
pub mod usecase;
