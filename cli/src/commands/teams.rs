//! `shiplog team create|list|show|update|usage`: the teams that own deployments, their
//! tiers (and so their deployment limits), and what they used over a time range.

use crate::args::TeamCommand;
use crate::client::TeamLookup;
use crate::error::CliError;
use crate::events::display_instant;
use crate::output::Output;
use comfy_table::Cell;
use shiplog_client::Client;
use shiplog_wire::teams::{CreateTeam, TeamBody, TierBody, UpdateTeam, UsageQuery};

/// Runs one `team` subcommand.
pub async fn run(api: &Client, out: &Output, command: TeamCommand) -> Result<(), CliError> {
    match command {
        TeamCommand::Create { name, tier } => {
            let body = CreateTeam {
                name,
                tier: tier.map(Into::into),
            };
            let team = api.create_team(&body).await?;
            if out.is_json() {
                return out.json(&team);
            }
            // The id alone on stdout, so `TEAM=$(shiplog team create …)` keeps just it.
            eprintln!(
                "team {:?} created (tier {})",
                team.name,
                tier_text(team.tier)
            );
            out.line(&team.id.to_string())
        }
        TeamCommand::List => {
            let teams = api.teams().await?;
            if out.is_json() {
                return out.json(&teams);
            }
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
            print_team(out, api.team(id).await?)
        }
        TeamCommand::Update { team, name, tier } => {
            let id = TeamLookup::new(api).resolve(&team).await?;
            let body = UpdateTeam {
                name,
                tier: tier.map(Into::into),
            };
            print_team(out, api.update_team(id, &body).await?)
        }
        TeamCommand::Usage { team, from, to } => {
            let id = TeamLookup::new(api).resolve(&team).await?;
            let usage = api.team_usage(id, &UsageQuery { from, to }).await?;
            if out.is_json() {
                return out.json(&usage);
            }
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
fn print_team(out: &Output, team: TeamBody) -> Result<(), CliError> {
    if out.is_json() {
        return out.json(&team);
    }
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
