//! `shiplog config get|set|unset`: the deployed deployment's environment variables.
//! A change rolls out as a new deployment, which `--wait` follows like `deploy --wait`.

use crate::cli::args::{ConfigCommand, WaitArgs};
use crate::cli::client::{uuid_field, Api};
use crate::cli::commands::deploy::follow_deployment;
use crate::cli::error::CliError;
use crate::cli::output::{text, Output};
use crate::cli::wait::{self, Waiting};
use comfy_table::Cell;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// Runs one `config` subcommand.
pub async fn run(api: &Api, out: &Output, command: ConfigCommand) -> Result<(), CliError> {
    match command {
        ConfigCommand::Get { usecase } => {
            let id = api.resolve_usecase(&usecase).await?;
            let config = current(api, id).await?;
            if out.is_json() {
                return out.json(&config);
            }
            let mut table = out.table(&["NAME", "VALUE"]);
            for (name, value) in env_of(&config) {
                table.add_row(vec![
                    Cell::new(name),
                    Cell::new(value.as_str().unwrap_or("")),
                ]);
            }
            out.line(&format!("deployment {}", text(&config, "deploymentId")))?;
            out.print_table(table)
        }
        ConfigCommand::Set {
            usecase,
            vars,
            replace,
            wait,
        } => {
            let id = api.resolve_usecase(&usecase).await?;
            let current_env = env_of(&current(api, id).await?);
            let mut env = if replace {
                Map::new()
            } else {
                current_env.clone()
            };
            for (name, value) in vars {
                env.insert(name, Value::String(value));
            }
            change(api, out, id, current_env, env, &wait).await
        }
        ConfigCommand::Unset {
            usecase,
            names,
            wait,
        } => {
            let id = api.resolve_usecase(&usecase).await?;
            let current_env = env_of(&current(api, id).await?);
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

/// `GET …/config`: the deployed deployment's id and environment.
async fn current(api: &Api, usecase: Uuid) -> Result<Value, CliError> {
    api.get(&format!("/api/usecases/{usecase}/config"), &[])
        .await
}

fn env_of(config: &Value) -> Map<String, Value> {
    config
        .get("env")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Sends the new environment, unless it is the one deployed already (a new deployment
/// that changes nothing would only roll the pods; `restart` is for that).
async fn change(
    api: &Api,
    out: &Output,
    usecase: Uuid,
    current_env: Map<String, Value>,
    env: Map<String, Value>,
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
    let accepted = api
        .put(
            &format!("/api/usecases/{usecase}/config"),
            &json!({ "env": env }),
        )
        .await?;
    let id = uuid_field(&accepted, "id")?;
    let label = format!(
        "deployment {id} (the config of {} with the new environment)",
        text(&accepted, "basedOn")
    );
    follow_deployment(api, out, usecase, id, feed, wait, &accepted, &label).await
}
