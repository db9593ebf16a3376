//! The `shiplog` command line client: every subcommand but `serve` and the operator
//! tools (`projections`, `openapi`, `sim`) calls shiplog's HTTP API, as curl would, and
//! prints tables for people or the API's JSON for scripts (`--output json`).

mod args;
mod client;
mod commands;
mod error;
mod events;
mod hoist;
mod output;
mod wait;

pub use args::{ClientCommand, Connection, OutputFormat, DEFAULT_URL};
pub use error::{CliError, EXIT_CONFLICT, EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE};
pub use hoist::hoist_connection_options;

use args::{AuditArgs, AuditCommand};
use output::{colours_allowed, Output};
use shiplog_client::Client;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// The exit codes, for `shiplog --help` (the README has the same table).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok
  1  error: refused by the server (401; 403: a missing scope, someone else's usecase
     (ownership verification failed), a tier's deployment limit reached; 5xx), network,
     a deployment that ended in error or was superseded during --wait, a --wait that
     timed out, a broken audit chain
  2  usage: the command line is wrong
  3  not found: no such usecase, deployment, team or token (404, or no usecase, team or
     token of that name)
  4  conflict: the request contradicts the current state (409: name taken, nothing deployed, …)

Client commands read SHIPLOG_URL (default http://127.0.0.1:8080) and SHIPLOG_TOKEN.";

/// `shiplog completions`: the shell to write a completion script for.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish (also elvish, powershell).
    pub shell: clap_complete::Shell,
}

/// Runs a client command and prints its result; errors become one line on stderr
/// (`error: …`) and the documented exit code.
pub async fn run(command: ClientCommand) -> ExitCode {
    let conn = connection(&command).clone();
    let out = Output::new(conn.output);
    let client = Client::new(&conn.url, conn.token.as_deref())
        .and_then(|api| api.with_reason(conn.reason.as_deref()));
    let result = match client {
        Ok(api) => dispatch(&api, &out, command).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(error) => {
            if !error.is_silent() {
                report(&error, conn.output);
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// Prints a shell completion script for `command` (the whole `shiplog` CLI) to stdout.
pub fn print_completions(args: &CompletionsArgs, mut command: clap::Command) -> ExitCode {
    let name = command.get_name().to_owned();
    // clap_complete panics when its writer fails; a buffer cannot, and stdout's errors
    // (a closed pipe) are then handled like every other command's.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    let written = std::io::stdout()
        .lock()
        .write_all(&script)
        .map_err(CliError::from);
    match written {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(error) => {
            if !error.is_silent() {
                report(&error, OutputFormat::Table);
            }
            ExitCode::from(error.exit_code())
        }
    }
}

async fn dispatch(api: &Client, out: &Output, command: ClientCommand) -> Result<(), CliError> {
    use commands::{auto_update, config, deploy, ledger, logs, platform, teams, tokens, usecase};
    match command {
        ClientCommand::Templates(_) => platform::templates(api, out).await,
        ClientCommand::Create(args) => platform::create(api, out, args).await,
        ClientCommand::DeployImage(args) => platform::deploy_image(api, out, args).await,
        ClientCommand::Ls(args) => platform::list(api, out, args).await,
        ClientCommand::Remove(args) => platform::remove(api, out, args).await,
        ClientCommand::Usecase(args) => usecase::run(api, out, args.command).await,
        ClientCommand::Deploy(args) => deploy::deploy(api, out, args).await,
        ClientCommand::Status(target) => usecase::show(api, out, &target.usecase).await,
        ClientCommand::Deployments(target) => deploy::list(api, out, &target.usecase).await,
        ClientCommand::Undeploy(args) => deploy::undeploy(api, out, args).await,
        ClientCommand::Restart(args) => deploy::restart(api, out, args).await,
        ClientCommand::Rollback(args) => deploy::rollback(api, out, args).await,
        ClientCommand::Config(args) => config::run(api, out, args.command).await,
        ClientCommand::AutoUpdate(args) => auto_update::run(api, out, args).await,
        ClientCommand::Logs(args) => logs::run(api, out, args).await,
        ClientCommand::History(target) => ledger::history(api, out, &target.usecase).await,
        ClientCommand::Watch(args) => ledger::watch(api, out, args).await,
        ClientCommand::Audit(AuditArgs {
            command: AuditCommand::Verify,
            ..
        }) => ledger::verify(api, out).await,
        ClientCommand::Token(args) => tokens::run(api, out, args.command).await,
        ClientCommand::Team(args) => teams::run(api, out, args.command).await,
    }
}

/// The connection options of whichever command it is.
fn connection(command: &ClientCommand) -> &Connection {
    match command {
        ClientCommand::Templates(a) => &a.conn,
        ClientCommand::Ls(a) => &a.conn,
        ClientCommand::Create(a) => &a.conn,
        ClientCommand::DeployImage(a) => &a.conn,
        ClientCommand::Remove(a) => &a.conn,
        ClientCommand::Usecase(a) => &a.conn,
        ClientCommand::Deploy(a) => &a.conn,
        ClientCommand::Status(a) | ClientCommand::Deployments(a) | ClientCommand::History(a) => {
            &a.conn
        }
        ClientCommand::Undeploy(a) | ClientCommand::Restart(a) => &a.conn,
        ClientCommand::Rollback(a) => &a.conn,
        ClientCommand::Config(a) => &a.conn,
        ClientCommand::AutoUpdate(a) => &a.conn,
        ClientCommand::Logs(a) => &a.conn,
        ClientCommand::Watch(a) => &a.conn,
        ClientCommand::Audit(a) => &a.conn,
        ClientCommand::Token(a) => &a.conn,
        ClientCommand::Team(a) => &a.conn,
    }
}

/// One line on stderr: `error: …`, red on a terminal (never with --output json).
fn report(error: &CliError, format: OutputFormat) {
    let colour =
        format == OutputFormat::Table && std::io::stderr().is_terminal() && colours_allowed();
    if colour {
        eprintln!("\x1b[31merror:\x1b[0m {error}");
    } else {
        eprintln!("error: {error}");
    }
}
