//! `shiplog token create|list|revoke`: API tokens for people and pipelines.

use crate::cli::args::TokenCommand;
use crate::cli::client::{id_of, Api};
use crate::cli::error::CliError;
use crate::cli::events::display_time;
use crate::cli::output::{text, Output};
use comfy_table::Cell;
use serde_json::{json, Value};
use uuid::Uuid;

/// Runs one `token` subcommand.
pub async fn run(api: &Api, out: &Output, command: TokenCommand) -> Result<(), CliError> {
    match command {
        TokenCommand::Create { name, scopes } => {
            let created = api
                .post(
                    "/api/tokens",
                    Some(&json!({ "name": name, "scopes": scopes })),
                )
                .await?;
            if out.is_json() {
                return out.json(&created);
            }
            // The secret alone on stdout, so `TOKEN=$(shiplog token create …)` keeps just it.
            eprintln!(
                "token {:?} created (id {}, scopes {}); its secret is shown this once:",
                text(&created, "name"),
                text(&created, "id"),
                scopes_of(&created)
            );
            out.line(text(&created, "token"))
        }
        TokenCommand::List => {
            let tokens = api.get("/api/tokens", &[]).await?;
            if out.is_json() {
                return out.json(&tokens);
            }
            let mut table = out.table(&["NAME", "ID", "SCOPES", "CREATED", "CREATED BY"]);
            for token in tokens.as_array().into_iter().flatten() {
                table.add_row(vec![
                    Cell::new(text(token, "name")),
                    Cell::new(text(token, "id")),
                    Cell::new(scopes_of(token)),
                    Cell::new(display_time(text(token, "createdAt"))),
                    Cell::new(text(token, "createdBy")),
                ]);
            }
            out.print_table(table)
        }
        TokenCommand::Revoke { id: token } => {
            let id = match token.trim().parse::<Uuid>() {
                Ok(id) => id,
                Err(_) => {
                    // A name: the active token of that name (names are unique among them).
                    let tokens = api.get("/api/tokens", &[]).await?;
                    let found = tokens
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|t| text(t, "name") == token.trim());
                    match found {
                        Some(t) => id_of(t)?,
                        None => return Err(CliError::NoSuchToken(token)),
                    }
                }
            };
            api.delete(&format!("/api/tokens/{id}")).await?;
            if out.is_json() {
                return Ok(());
            }
            out.line(&format!("token {token} revoked"))
        }
    }
}

fn scopes_of(token: &Value) -> String {
    token
        .get("scopes")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}
