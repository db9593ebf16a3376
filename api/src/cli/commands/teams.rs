//! `shiplog team create|list|show|update|usage`: the teams that own deployments, their
//! tiers (and so their deployment limits), and what they used over a time range.

use crate::cli::args::TeamCommand;
use crate::cli::client::{typed, Api, TeamLookup};
use crate::cli::error::CliError;
use crate::cli::events::display_instant;
use crate::cli::output::Output;
use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::Cell;
use serde::Serialize;
use shiplog_wire::teams::{TeamBody, TierBody, UsageBody};

/// Body of `POST /api/teams` (the server reads it as `CreateTeam`).
#[derive(Debug, Serialize)]
struct CreateTeamRequest<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tier: Option<TierBody>,
}

/// Body of `PUT /api/teams/{id}` (the server's `UpdateTeam`): only what changes.
#[derive(Debug, Serialize)]
struct UpdateTeamRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tier: Option<TierBody>,
}

/// Runs one `team` subcommand.
pub async fn run(api: &Api, out: &Output, command: TeamCommand) -> Result<(), CliError> {
    match command {
        TeamCommand::Create { name, tier } => {
            let body = CreateTeamRequest {
                name: &name,
                tier: tier.map(Into::into),
            };
            let answer = api.post_body("/api/teams", &body).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let team: TeamBody = typed(&answer, "the created team")?;
            // The id alone on stdout, so `TEAM=$(shiplog team create …)` keeps just it.
            eprintln!(
                "team {:?} created (tier {})",
                team.name,
                tier_text(team.tier)
            );
            out.line(&team.id.to_string())
        }
        TeamCommand::List => {
            let answer = api.get("/api/teams", &[]).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let teams: Vec<TeamBody> = typed(&answer, "a team list")?;
            let mut table = out.table(&["ID", "NAME", "TIER", "UPDATED"]);
            for team in &teams {
                table.add_row(vec![
                    Cell::new(team.id),
                    Cell::new(&team.name),
                    Cell::new(tier_text(team.tier)),
                    Cell::new(display_instant(&team.updated_at)),
                ]);
            }
            out.print_table(table)
        }
        TeamCommand::Show { team } => {
            let id = TeamLookup::new(api).resolve(&team).await?;
            let answer = api.get(&format!("/api/teams/{id}"), &[]).await?;
            print_team(out, &answer)
        }
        TeamCommand::Update { team, name, tier } => {
            let id = TeamLookup::new(api).resolve(&team).await?;
            let body = UpdateTeamRequest {
                name: name.as_deref(),
                tier: tier.map(Into::into),
            };
            let answer = api.put(&format!("/api/teams/{id}"), &body).await?;
            print_team(out, &answer)
        }
        TeamCommand::Usage { team, from, to } => {
            let id = TeamLookup::new(api).resolve(&team).await?;
            let query: Vec<(&str, String)> = [("from", from), ("to", to)]
                .into_iter()
                .filter_map(|(key, at)| at.map(|at| (key, instant_text(&at))))
                .collect();
            let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let answer = api.get(&format!("/api/teams/{id}/usage"), &query).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let usage: UsageBody = typed(&answer, "a team's usage")?;
            out.fields(&[
                ("team", team.trim().to_owned()),
                ("id", usage.team_id.to_string()),
                ("tier", tier_text(usage.tier).to_owned()),
                (
                    "limit",
                    match (usage.billing, usage.limit) {
                        (false, _) => "none (billing is off)".to_owned(),
                        (true, None) => "unlimited".to_owned(),
                        (true, Some(limit)) => limit.to_string(),
                    },
                ),
                ("from", display_instant(&usage.from)),
                ("to", display_instant(&usage.to)),
                ("created", usage.created.to_string()),
                ("deleted", usage.deleted.to_string()),
                ("running", usage.running.to_string()),
            ])
        }
    }
}

/// `team show` and `team update`: the team as the API answered, or its fields.
fn print_team(out: &Output, answer: &serde_json::Value) -> Result<(), CliError> {
    if out.is_json() {
        return out.json(answer);
    }
    let team: TeamBody = typed(answer, "a team")?;
    out.fields(&[
        ("team", team.name),
        ("id", team.id.to_string()),
        ("tier", tier_text(team.tier).to_owned()),
        (
            "created",
            format!(
                "{} by {}",
                display_instant(&team.created_at),
                team.created_by
            ),
        ),
        (
            "updated",
            format!(
                "{} by {}",
                display_instant(&team.updated_at),
                team.updated_by
            ),
        ),
    ])
}

/// A tier as `--tier` spells it.
fn tier_text(tier: TierBody) -> &'static str {
    match tier {
        TierBody::Free => "free",
        TierBody::Business => "business",
        TierBody::Enterprise => "enterprise",
    }
}

/// An instant as the API reads it in a query (`2026-01-31T00:00:00Z`).
fn instant_text(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use shiplog_wire::teams::{CreateTeam, UpdateTeam};

    /// The server's request DTOs refuse unknown fields: a body the CLI spells differently
    /// fails here rather than against a server.
    #[test]
    fn request_bodies_are_what_the_server_reads() {
        let create = serde_json::to_value(CreateTeamRequest {
            name: "acme",
            tier: Some(TierBody::Business),
        })
        .map(CreateTeam::deserialize);
        assert!(
            matches!(&create, Ok(Ok(b)) if b.name == "acme" && b.tier == Some(TierBody::Business)),
            "{create:?}"
        );
        let cases = [
            ("a new name only", Some("acme corp"), None),
            ("a new tier only", None, Some(TierBody::Enterprise)),
            ("both", Some("acme corp"), Some(TierBody::Free)),
        ];
        for (description, name, tier) in cases {
            let update =
                serde_json::to_value(UpdateTeamRequest { name, tier }).map(UpdateTeam::deserialize);
            assert!(
                matches!(&update, Ok(Ok(b)) if b.name.as_deref() == name && b.tier == tier),
                "{description}: {update:?}"
            );
        }
    }
}
