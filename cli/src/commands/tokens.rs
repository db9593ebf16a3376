//! `shiplog token create|list|revoke`: API tokens for people and pipelines, each
//! speaking for a subject and its teams.

use crate::args::TokenCommand;
use crate::client::TeamLookup;
use crate::error::CliError;
use crate::events::display_instant;
use crate::output::Output;
use comfy_table::Cell;
use shiplog_client::Client;
use shiplog_wire::usecases::CreateToken;
use uuid::Uuid;

/// Runs one `token` subcommand.
pub async fn run(api: &Client, out: &Output, command: TokenCommand) -> Result<(), CliError> {
    match command {
        TokenCommand::Create {
            name,
            scopes,
            subject,
            teams,
            expires_in,
        } => {
            // Every --team by one lookup of the team names (an admin sees them all).
            let mut lookup = TeamLookup::new(api);
            let mut team_ids = Vec::with_capacity(teams.len());
            for team in &teams {
                team_ids.push(lookup.resolve(team).await?);
            }
            let body = CreateToken {
                name,
                scopes,
                subject,
                teams: team_ids,
                expires_in,
            };
            let created = api.create_token(&body).await?;
            if out.is_json() {
                return out.json(&created);
            }
            let info = &created.info;
            let teams = team_names(&mut lookup, &info.teams).await?;
            // The secret alone on stdout, so `TOKEN=$(shiplog token create …)` keeps just it.
            eprintln!(
                "token {:?} created (id {}, subject {:?}, teams {}, scopes {}, \
                 expires {}); its secret is shown this once:",
                info.name,
                info.id,
                info.subject,
                if teams.is_empty() { "none" } else { &teams },
                info.scopes.join(","),
                info.expires_at
                    .as_ref()
                    .map_or_else(|| "never".to_owned(), display_instant)
            );
            out.line(&created.token)
        }
        TokenCommand::List => {
            let tokens = api.tokens().await?;
            if out.is_json() {
                return out.json(&tokens);
            }
            let mut lookup = TeamLookup::new(api);
            let mut table = out.table(&[
                "NAME",
                "ID",
                "SUBJECT",
                "TEAMS",
                "SCOPES",
                "CREATED",
                "CREATED BY",
                "EXPIRES",
            ]);
            for token in &tokens {
                let teams = team_names(&mut lookup, &token.teams).await?;
                table.add_row(vec![
                    Cell::new(&token.name),
                    Cell::new(token.id),
                    Cell::new(&token.subject),
                    Cell::new(if teams.is_empty() { "-" } else { &teams }),
                    Cell::new(token.scopes.join(",")),
                    Cell::new(display_instant(&token.created_at)),
                    Cell::new(&token.created_by),
                    Cell::new(
                        token
                            .expires_at
                            .as_ref()
                            .map_or_else(|| "never".to_owned(), display_instant),
                    ),
                ]);
            }
            out.print_table(table)
        }
        TokenCommand::Revoke { id: token } => {
            let id = match token.trim().parse::<Uuid>() {
                Ok(id) => id,
                Err(_) => {
                    // A name: the active token of that name (names are unique among them).
                    let tokens = api.tokens().await?;
                    match tokens.iter().find(|t| t.name == token.trim()) {
                        Some(t) => t.id,
                        None => return Err(CliError::NoSuchToken(token)),
                    }
                }
            };
            api.revoke_token(id).await?;
            if out.is_json() {
                return Ok(());
            }
            out.line(&format!("token {token} revoked"))
        }
    }
}

/// A token's teams by name, comma-separated; "" when it has none (and then no request).
async fn team_names(lookup: &mut TeamLookup<'_>, teams: &[Uuid]) -> Result<String, CliError> {
    let mut names = Vec::with_capacity(teams.len());
    for team in teams {
        names.push(lookup.display(*team).await?);
    }
    Ok(names.join(","))
}
