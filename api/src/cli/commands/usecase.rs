//! `shiplog usecase create|list|show|delete` and `shiplog status`.

use crate::cli::args::UsecaseCommand;
use crate::cli::client::{id_of, team_query, Api, TeamLookup};
use crate::cli::error::CliError;
use crate::cli::events::{display_time, image_text};
use crate::cli::output::{text, Output};
use serde_json::{json, Value};

/// Runs one `usecase` subcommand.
pub async fn run(api: &Api, out: &Output, command: UsecaseCommand) -> Result<(), CliError> {
    match command {
        UsecaseCommand::Create {
            name,
            description,
            team,
        } => {
            let team = TeamLookup::new(api).resolve_opt(team.as_deref()).await?;
            let mut body = json!({ "name": name });
            if let Some(description) = description {
                body["description"] = Value::String(description);
            }
            let usecase = api
                .post_query("/api/usecases", &team_query(team.as_deref()), &body)
                .await?;
            if out.is_json() {
                return out.json(&usecase);
            }
            out.line(&format!(
                "usecase {:?} created with id {}",
                text(&usecase, "name"),
                id_of(&usecase)?
            ))
        }
        UsecaseCommand::List { name, team } => {
            let team = TeamLookup::new(api).resolve_opt(team.as_deref()).await?;
            let mut query = team_query(team.as_deref());
            query.extend(name.as_deref().map(|n| ("name", n)));
            let items = api.all_pages("/api/usecases", &query).await?;
            if out.is_json() {
                return out.json(&json!({ "items": items, "nextCursor": null }));
            }
            let mut table = out.table(&["NAME", "ID", "STATUS", "IMAGE", "CREATED"]);
            for usecase in &items {
                let deployment = usecase.get("deployment").filter(|d| !d.is_null());
                table.add_row(vec![
                    comfy_table::Cell::new(text(usecase, "name")),
                    comfy_table::Cell::new(text(usecase, "id")),
                    out.status_cell(deployment.map_or("-", |d| text(d, "status"))),
                    comfy_table::Cell::new(deployment.map_or_else(|| "-".to_owned(), image_of)),
                    comfy_table::Cell::new(display_time(text(usecase, "createdAt"))),
                ]);
            }
            out.print_table(table)
        }
        UsecaseCommand::Show { usecase } => show(api, out, &usecase).await,
        UsecaseCommand::Delete { usecase } => {
            let id = api.resolve_usecase(&usecase).await?;
            api.delete(&format!("/api/usecases/{id}")).await?;
            if out.is_json() {
                return Ok(());
            }
            out.line(&format!("usecase {usecase} deleted"))
        }
    }
}

/// `shiplog status` and `usecase show`: the usecase, its current deployment and, when
/// a newer request is in flight or failed, that one too.
pub async fn show(api: &Api, out: &Output, usecase: &str) -> Result<(), CliError> {
    let usecase = api.usecase(usecase).await?;
    if out.is_json() {
        return out.json(&usecase);
    }
    let id = id_of(&usecase)?;
    let mut fields = vec![
        ("usecase", text(&usecase, "name").to_owned()),
        ("id", id.to_string()),
        ("description", text(&usecase, "description").to_owned()),
        ("created", display_time(text(&usecase, "createdAt"))),
    ];
    let current = usecase.get("deployment").filter(|d| !d.is_null());
    match current {
        Some(d) => describe(out, d, "deployment", &mut fields),
        None => fields.push(("deployment", "none".to_owned())),
    }
    // The usecase shows the deployment serving (or last served); a newer request still
    // rolling out, or one that failed, is worth a line of its own.
    // It needs deployments:read; without it the usecase alone is shown.
    let newest = match api
        .get(
            &format!("/api/usecases/{id}/deployments"),
            &[("limit", "1")],
        )
        .await
    {
        Ok(page) => page,
        Err(CliError::Api { status: 403, .. }) => Value::Null,
        Err(e) => return Err(e),
    };
    if let Some(latest) = newest.get("items").and_then(|i| i.get(0)) {
        if current.map(|c| text(c, "id")) != Some(text(latest, "id")) {
            describe(out, latest, "latest request", &mut fields);
        }
    }
    out.fields(&fields)
}

/// Adds a deployment's lines to `fields` under `label`.
fn describe(
    out: &Output,
    deployment: &Value,
    label: &'static str,
    fields: &mut Vec<(&str, String)>,
) {
    fields.push((
        label,
        format!(
            "{} {}",
            text(deployment, "id"),
            out.status_text(text(deployment, "status"))
        ),
    ));
    fields.push(("  image", image_of(deployment)));
    if let Some(replicas) = deployment
        .get("config")
        .and_then(|c| c.get("replicas"))
        .and_then(Value::as_u64)
    {
        fields.push(("  replicas", replicas.to_string()));
    }
    fields.push((
        "  requested",
        format!(
            "by {} at {}",
            text(deployment, "requestedBy"),
            display_time(text(deployment, "createdAt"))
        ),
    ));
    fields.push(("  updated", display_time(text(deployment, "updatedAt"))));
    let message = text(deployment, "message");
    if !message.is_empty() {
        fields.push(("  message", message.to_owned()));
    }
}

/// A deployment's image as `registry/repository:tag`.
pub fn image_of(deployment: &Value) -> String {
    deployment
        .get("config")
        .and_then(|c| c.get("image"))
        .map(image_text)
        .unwrap_or_default()
}
