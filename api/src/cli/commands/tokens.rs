//! `shiplog token create|list|revoke`: API tokens for people and pipelines, each
//! speaking for a subject and its teams.

use crate::cli::args::TokenCommand;
use crate::cli::client::{typed, Api, TeamLookup};
use crate::cli::error::CliError;
use crate::cli::events::display_instant;
use crate::cli::output::Output;
use comfy_table::Cell;
use serde::Serialize;
use shiplog_wire::usecases::{TokenCreated, TokenResponse};
use uuid::Uuid;

/// Body of `POST /api/tokens` (the server reads it as `CreateToken`).
#[derive(Debug, Serialize)]
struct CreateTokenRequest<'a> {
    name: &'a str,
    scopes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    teams: Vec<Uuid>,
}

/// Runs one `token` subcommand.
pub async fn run(api: &Api, out: &Output, command: TokenCommand) -> Result<(), CliError> {
    match command {
        TokenCommand::Create {
            name,
            scopes,
            subject,
            teams,
        } => {
            // Every --team by one lookup of the team names (an admin sees them all).
            let mut lookup = TeamLookup::new(api);
            let mut team_ids = Vec::with_capacity(teams.len());
            for team in &teams {
                team_ids.push(lookup.resolve(team).await?);
            }
            let body = CreateTokenRequest {
                name: &name,
                scopes: &scopes,
                subject: subject.as_deref(),
                teams: team_ids,
            };
            let answer = api.post_body("/api/tokens", &body).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let created: TokenCreated = typed(&answer, "the created token")?;
            let info = &created.info;
            let teams = team_names(&mut lookup, &info.teams).await?;
            // The secret alone on stdout, so `TOKEN=$(shiplog token create …)` keeps just it.
            eprintln!(
                "token {:?} created (id {}, subject {:?}, teams {}, scopes {}); \
                 its secret is shown this once:",
                info.name,
                info.id,
                info.subject,
                if teams.is_empty() { "none" } else { &teams },
                info.scopes.join(",")
            );
            out.line(&created.token)
        }
        TokenCommand::List => {
            let answer = api.get("/api/tokens", &[]).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let tokens: Vec<TokenResponse> = typed(&answer, "a token list")?;
            let mut lookup = TeamLookup::new(api);
            let mut table = out.table(&[
                "NAME",
                "ID",
                "SUBJECT",
                "TEAMS",
                "SCOPES",
                "CREATED",
                "CREATED BY",
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
                ]);
            }
            out.print_table(table)
        }
        TokenCommand::Revoke { id: token } => {
            let id = match token.trim().parse::<Uuid>() {
                Ok(id) => id,
                Err(_) => {
                    // A name: the active token of that name (names are unique among them).
                    let answer = api.get("/api/tokens", &[]).await?;
                    let tokens: Vec<TokenResponse> = typed(&answer, "a token list")?;
                    match tokens.iter().find(|t| t.name == token.trim()) {
                        Some(t) => t.id,
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

/// A token's teams by name, comma-separated; "" when it has none (and then no request).
async fn team_names(lookup: &mut TeamLookup<'_>, teams: &[Uuid]) -> Result<String, CliError> {
    let mut names = Vec::with_capacity(teams.len());
    for team in teams {
        names.push(lookup.display(*team).await?);
    }
    Ok(names.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use shiplog_wire::usecases::CreateToken;

    /// The server's request DTO refuses unknown fields: a body the CLI spells differently
    /// fails here rather than against a server.
    #[test]
    fn a_create_body_is_what_the_server_reads() {
        let scopes = ["deployments:read".to_owned()];
        let team = Uuid::new_v4();
        let cases = [
            ("a name and scopes only", None, vec![]),
            ("a subject and a team", Some("ci"), vec![team]),
        ];
        for (description, subject, teams) in cases {
            let body = serde_json::to_value(CreateTokenRequest {
                name: "pipeline",
                scopes: &scopes,
                subject,
                teams: teams.clone(),
            })
            .map(CreateToken::deserialize);
            assert!(
                matches!(&body, Ok(Ok(b)) if b.name == "pipeline" && b.scopes == scopes
                    && b.subject.as_deref() == subject && b.teams == teams),
                "{description}: {body:?}"
            );
        }
    }
}
