//! `shiplog usecase create|list|show|delete` and `shiplog status`.

use crate::args::UsecaseCommand;
use crate::client::TeamLookup;
use crate::error::CliError;
use crate::events::{display_instant, image_body_text};
use crate::output::Output;
use comfy_table::Cell;
use shiplog_client::Client;
use shiplog_wire::usecases::{CreateUsecase, DeploymentResponse, UsecasePage};

/// Runs one `usecase` subcommand.
pub async fn run(api: &Client, out: &Output, command: UsecaseCommand) -> Result<(), CliError> {
    match command {
        UsecaseCommand::Create {
            name,
            description,
            team,
        } => {
            let team = TeamLookup::new(api).resolve_opt(team.as_deref()).await?;
            let body = CreateUsecase { name, description };
            let usecase = api.create_usecase(&body, team).await?;
            if out.is_json() {
                return out.json(&usecase);
            }
            out.line(&format!(
                "usecase {:?} created with id {}",
                usecase.name, usecase.id
            ))
        }
        UsecaseCommand::List { name, team } => {
            let team = TeamLookup::new(api).resolve_opt(team.as_deref()).await?;
            let items = api.usecases(name.as_deref(), team).await?;
            if out.is_json() {
                return out.json(&UsecasePage {
                    items,
                    next_cursor: None,
                });
            }
            let mut table = out.table(&["NAME", "ID", "STATUS", "IMAGE", "CREATED"]);
            for usecase in &items {
                let deployment = usecase.deployment.as_ref();
                table.add_row(vec![
                    Cell::new(&usecase.name),
                    Cell::new(usecase.id),
                    out.status_cell(deployment.map_or("-", |d| d.status.as_str())),
                    Cell::new(deployment.map_or_else(|| "-".to_owned(), image_of)),
                    Cell::new(display_instant(&usecase.created_at)),
                ]);
            }
            out.print_table(table)
        }
        UsecaseCommand::Show { usecase } => show(api, out, &usecase).await,
        UsecaseCommand::Delete { usecase } => {
            let id = api.resolve_usecase(&usecase).await?;
            api.delete_usecase(id).await?;
            if out.is_json() {
                return Ok(());
            }
            out.line(&format!("usecase {usecase} deleted"))
        }
    }
}

/// `shiplog status` and `usecase show`: the usecase, its current deployment and, when
/// a newer request is in flight or failed, that one too.
pub async fn show(api: &Client, out: &Output, usecase: &str) -> Result<(), CliError> {
    let usecase = api.usecase_by(usecase).await?;
    if out.is_json() {
        return out.json(&usecase);
    }
    let mut fields = vec![
        ("usecase", usecase.name.clone()),
        ("id", usecase.id.to_string()),
        ("description", usecase.description.clone()),
        ("created", display_instant(&usecase.created_at)),
    ];
    let current = usecase.deployment.as_ref();
    match current {
        Some(d) => describe(out, d, "deployment", &mut fields),
        None => fields.push(("deployment", "none".to_owned())),
    }
    // The usecase shows the deployment serving (or last served); a newer request still
    // rolling out, or one that failed, is worth a line of its own.
    // It needs deployments:read; without it the usecase alone is shown.
    let newest = match api.deployments_page(usecase.id, 1).await {
        Ok(page) => page.items,
        Err(e) if e.status() == Some(403) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    if let Some(latest) = newest.first() {
        if current.map(|c| c.id) != Some(latest.id) {
            describe(out, latest, "latest request", &mut fields);
        }
    }
    out.fields(&fields)
}

/// Adds a deployment's lines to `fields` under `label`.
fn describe(
    out: &Output,
    deployment: &DeploymentResponse,
    label: &'static str,
    fields: &mut Vec<(&str, String)>,
) {
    fields.push((
        label,
        format!(
            "{} {}",
            deployment.id,
            out.status_text(deployment.status.as_str())
        ),
    ));
    fields.push(("  image", image_of(deployment)));
    if let Some(replicas) = deployment.config.replicas {
        fields.push(("  replicas", replicas.to_string()));
    }
    fields.push((
        "  requested",
        format!(
            "by {} at {}",
            deployment.requested_by,
            display_instant(&deployment.created_at)
        ),
    ));
    fields.push(("  updated", display_instant(&deployment.updated_at)));
    if !deployment.message.is_empty() {
        fields.push(("  message", deployment.message.clone()));
    }
}

/// A deployment's image as `registry/repository:tag`.
pub fn image_of(deployment: &DeploymentResponse) -> String {
    image_body_text(&deployment.config.image)
}
