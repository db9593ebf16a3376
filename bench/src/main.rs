//! `shiplog-bench`: shiplog's benchmarks, numbers rather than assertions.
//!
//! - without a subcommand, or `audit`: the audit trail at a million events
//!   (`cargo run --release -p shiplog-bench -- --events 1000000`);
//! - `all`: every measurement of the performance issue against the release
//!   binary, each with its baseline measured in the same run, printed as one
//!   table (`cargo run --release -p shiplog-bench -- all [--quick]`).

mod audit;
mod suite;

use clap::{Parser, Subcommand};

/// shiplog's benchmarks.
#[derive(Parser)]
#[command(name = "shiplog-bench", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand: the audit-trail benchmark.
    #[command(flatten)]
    audit: audit::Args,
}

#[derive(Subcommand)]
enum Command {
    /// The audit trail at N events: queries, sealing, verify, export (the default).
    Audit(audit::Args),
    /// Every measurement of the performance issue, with same-run baselines, as one table.
    All(suite::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli {
            command: Some(Command::All(args)),
            ..
        } => suite::main(args).await,
        Cli {
            command: Some(Command::Audit(args)),
            ..
        } => audit::main(args).await,
        Cli {
            command: None,
            audit,
        } => audit::main(audit).await,
    }
}
