//! `shiplog config get|set|unset`: the deployed deployment's environment variables.
//! A change rolls out as a new deployment, which `--wait` follows like `deploy --wait`.

use crate::args::{ConfigCommand, WaitArgs};
use crate::commands::deploy::{follow_deployment, Started};
use crate::error::CliError;
use crate::output::Output;
use crate::wait::{self, Waiting};
use comfy_table::Cell;
use shiplog_client::Client;
use shiplog_wire::operations::ConfigChange;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Runs one `config` subcommand.
pub async fn run(api: &Client, out: &Output, command: ConfigCommand) -> Result<(), CliError> {
    match command {
        ConfigCommand::Get { usecase } => {
            let id = api.resolve_usecase(&usecase).await?;
            let config = api.config(id).await?;
            if out.is_json() {
                return out.json(&config);
            }
            let mut table = out.table(&["NAME", "VALUE"]);
            for (name, value) in &config.env {
                table.add_row(vec![Cell::new(name), Cell::new(value)]);
            }
            // Secret values are never sent to a client: shown as the API masks them.
            for (name, value) in config.secret_env.iter().flatten() {
                table.add_row(vec![Cell::new(name), Cell::new(value.display())]);
            }
            for r in config.secret_refs.iter().flatten() {
                table.add_row(vec![
                    Cell::new(&r.name),
                    Cell::new(format!(
                        "from Secret {} key {}",
                        r.secret.name, r.secret.key
                    )),
                ]);
            }
            out.line(&format!("deployment {}", config.deployment_id))?;
            out.print_table(table)
        }
        ConfigCommand::Set {
            usecase,
            vars,
            replace,
            wait,
        } => {
            let id = api.resolve_usecase(&usecase).await?;
            let current_env = api.config(id).await?.env;
            let mut env = if replace {
                BTreeMap::new()
            } else {
                current_env.clone()
            };
            env.extend(vars);
            change(api, out, id, current_env, env, &wait).await
        }
        ConfigCommand::Unset {
            usecase,
            names,
            wait,
        } => {
            let id = api.resolve_usecase(&usecase).await?;
            let current_env = api.config(id).await?.env;
            let mut env = current_env.clone();
            for name in &names {
                if env.remove(name).is_none() {
                    eprintln!("warning: {name} is not set");
                }
            }
            change(api, out, id, current_env, env, &wait).await
        }
    }
}

/// Sends the new environment, unless it is the one deployed already (a new deployment
/// that changes nothing would only roll the pods; `restart` is for that).
async fn change(
    api: &Client,
    out: &Output,
    usecase: Uuid,
    current_env: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    wait: &WaitArgs,
) -> Result<(), CliError> {
    if env == current_env {
        if !out.is_json() {
            out.line("nothing to change: the environment is already so")?;
        }
        return Ok(());
    }
    let feed = if wait.wait {
        Some(wait::subscribe(api, usecase, Waiting::Deployment).await?)
    } else {
        None
    };
    // Secret values and references are left out: the server keeps them as they are.
    let change = ConfigChange {
        env,
        ..ConfigChange::default()
    };
    let accepted = api.change_config(usecase, &change).await?;
    let started = Started {
        usecase,
        id: accepted.id,
        feed,
        label: format!(
            "deployment {} (the config of {} with the new environment)",
            accepted.id, accepted.based_on
        ),
    };
    follow_deployment(api, out, wait, started, &accepted).await
}
