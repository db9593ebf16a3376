//! `shiplog templates`, `create`, `deploy-image`, `ls` and `remove`: the platform API
//! (seed 002). Its named deployments are usecases under their names, so every usecase
//! command (`status`, `logs`, `history`, `undeploy`, …) works on them as well.

use crate::args::{CreateArgs, DeployImageArgs, LsArgs, RemoveArgs, WaitArgs};
use crate::client::TeamLookup;
use crate::error::CliError;
use crate::events::short;
use crate::output::Output;
use crate::wait::{self, Progress, Waiting};
use comfy_table::Cell;
use shiplog_client::Client;
use shiplog_wire::platform::{
    CreateFromTemplateBody, DeployImageBody, PlatformDeploymentBody, TemplateServiceBody,
    VisibilityBody,
};

/// `shiplog templates`: the catalog `create` starts from.
pub async fn templates(api: &Client, out: &Output) -> Result<(), CliError> {
    let templates = api.templates().await?;
    if out.is_json() {
        return out.json(&templates);
    }
    let mut table = out.table(&["NAME", "SERVICES", "DESCRIPTION"]);
    for template in &templates {
        let services: Vec<String> = template.services.iter().map(service_text).collect();
        table.add_row(vec![
            Cell::new(&template.name),
            Cell::new(services.join("\n")),
            Cell::new(&template.description),
        ]);
    }
    out.print_table(table)
}

/// A template's service in a cell: `nginx:stable (port 80)`, and whether it stays
/// unexposed (no ingress even when the deployment is public).
fn service_text(service: &TemplateServiceBody) -> String {
    let exposed = if service.exposed { "" } else { ", not exposed" };
    format!("{} (port {}{exposed})", service.image, service.port)
}

/// `shiplog create`: a deployment of a template under a generated name, owned by the
/// token's subject and `--team` (default: the token's only team).
pub async fn create(api: &Client, out: &Output, args: CreateArgs) -> Result<(), CliError> {
    let team = TeamLookup::new(api)
        .resolve_opt(args.team.as_deref())
        .await?;
    let body = CreateFromTemplateBody {
        template: args.template,
        env_vars: args.env.into_iter().collect(),
        visibility: args.visibility.map(Into::into).unwrap_or_default(),
    };
    let created = api.create_deployment(&body, team).await?;
    launched(api, out, created, &args.wait).await
}

/// `shiplog deploy-image`: a deployment of a raw image, under `--name` or a generated
/// name, owned as for `create`.
pub async fn deploy_image(
    api: &Client,
    out: &Output,
    args: DeployImageArgs,
) -> Result<(), CliError> {
    let team = TeamLookup::new(api)
        .resolve_opt(args.team.as_deref())
        .await?;
    let body = DeployImageBody {
        image: args.image,
        name: args.name,
        container_port: args.port,
        env_vars: args.env.into_iter().collect(),
        visibility: args.visibility.map(Into::into).unwrap_or_default(),
    };
    let created = api.deploy_image(&body, team).await?;
    launched(api, out, created, &args.wait).await
}

/// The end of `create` and `deploy-image`: with --wait, follows the first deployment to
/// its outcome (exit 1 unless deployed). Then prints the name on the first line and each
/// URL on a line of its own (`NAME=$(shiplog create nginx | head -n1)`), also when the
/// wait failed, so that a script knows what to remove; or with -o json the deployment
/// (as created, or as it ended).
async fn launched(
    api: &Client,
    out: &Output,
    created: PlatformDeploymentBody,
    wait: &WaitArgs,
) -> Result<(), CliError> {
    if !wait.wait {
        if out.is_json() {
            return out.json(&created);
        }
        eprintln!(
            "{} created ({}); follow it with: shiplog status {}   (or add --wait)",
            created.name,
            origin(&created),
            created.name
        );
        return print_name_and_urls(out, &created);
    }
    let deployment = created.deployment_id.ok_or_else(|| {
        CliError::unexpected(format!("{} was created without a deployment", created.name))
    })?;
    // Its name at once, above the spinner: the result on stdout comes at the end.
    eprintln!("{} created ({})", created.name, origin(&created));
    let mut feed = match wait::replay(api, created.id, Waiting::Deployment).await {
        Ok(feed) => feed,
        Err(e) => {
            // It exists all the same (a token without usecases:read cannot follow it).
            if out.is_json() {
                out.json(&created)?;
            } else {
                print_name_and_urls(out, &created)?;
            }
            return Err(e);
        }
    };
    let mut progress = Progress::start(format!(
        "deployment {} pending",
        short(&deployment.to_string())
    ));
    let outcome = tokio::time::timeout(
        wait::limit(wait),
        wait::deployment(&mut feed, deployment, &mut progress),
    )
    .await;
    let outcome = wait::timed(outcome, wait, &progress);
    drop(progress);
    // So that an `ls` right after shows what the wait saw; a token that may create but
    // not read cannot, and the outcome alone decides then.
    let settled = match &outcome {
        Ok(()) => Some("Ready"),
        Err(CliError::DeploymentFailed { .. }) => Some("Error"),
        Err(_) => None,
    };
    if let Some(status) = settled {
        let _ = wait::settle_named(api, &created.name, status).await;
    }
    if out.is_json() {
        match (api.platform_deployment(&created.name).await, &outcome) {
            (Ok(ended), _) => out.json(&ended)?,
            (Err(e), Ok(())) => return Err(e.into()),
            (Err(_), Err(_)) => {}
        }
        return outcome;
    }
    if outcome.is_ok() {
        eprintln!("{} deployed", created.name);
    }
    print_name_and_urls(out, &created)?;
    outcome
}

/// Where a deployment comes from, for sentences: `template nginx` or its image.
fn origin(deployment: &PlatformDeploymentBody) -> String {
    match (&deployment.template, &deployment.image) {
        (Some(template), _) => format!("template {template}"),
        (None, Some(image)) => image.clone(),
        (None, None) => "no image yet".to_owned(),
    }
}

/// The name alone on the first line, then one line per URL.
fn print_name_and_urls(out: &Output, deployment: &PlatformDeploymentBody) -> Result<(), CliError> {
    out.line(&deployment.name)?;
    for ingress in &deployment.ingresses {
        out.line(&ingress.url)?;
    }
    Ok(())
}

/// `shiplog ls`: every named deployment this token can see (or `--team`'s), oldest first.
pub async fn list(api: &Client, out: &Output, args: LsArgs) -> Result<(), CliError> {
    // One lookup for the whole command: `--team`'s name and every row's team name.
    let mut teams = TeamLookup::new(api);
    let team = teams.resolve_opt(args.team.as_deref()).await?;
    let deployments = api.platform_deployments(team).await?;
    if out.is_json() {
        return out.json(&deployments);
    }
    let mut table = out.table(&[
        "NAME",
        "STATUS",
        "TEMPLATE/IMAGE",
        "VISIBILITY",
        "OWNER",
        "URL",
    ]);
    for d in &deployments {
        let from = d.template.as_deref().or(d.image.as_deref()).unwrap_or("-");
        let urls: Vec<&str> = d.ingresses.iter().map(|i| i.url.as_str()).collect();
        // `alice (acme)`: the owner, and the team that shares it when there is one.
        let owner = match d.team_id {
            Some(team) => format!("{} ({})", d.owner, teams.display(team).await?),
            None => d.owner.clone(),
        };
        table.add_row(vec![
            Cell::new(&d.name),
            out.status_cell(&d.status),
            Cell::new(from),
            Cell::new(visibility_text(d.visibility)),
            Cell::new(owner),
            Cell::new(if urls.is_empty() {
                "-".to_owned()
            } else {
                urls.join("\n")
            }),
        ]);
    }
    out.print_table(table)
}

/// A visibility as `--visibility` spells it.
fn visibility_text(visibility: VisibilityBody) -> &'static str {
    match visibility {
        VisibilityBody::Public => "public",
        VisibilityBody::Internal => "internal",
    }
}

/// `shiplog remove`: undeploys and deletes a named deployment; with --wait, until it is
/// gone. The stream is opened before the request, as for `undeploy --wait`.
pub async fn remove(api: &Client, out: &Output, args: RemoveArgs) -> Result<(), CliError> {
    let mut feed = if args.wait.wait {
        // By exact name: a platform name that happens to read as a UUID is still a name.
        let usecase = api.usecase_named(&args.name).await?;
        Some(wait::subscribe(api, usecase.id, Waiting::Deletion).await?)
    } else {
        None
    };
    let accepted = api.delete_deployment(&args.name).await?;
    if let Some(feed) = feed.as_mut() {
        let mut progress = Progress::start(format!("deleting {}", args.name));
        let outcome =
            tokio::time::timeout(wait::limit(&args.wait), wait::deletion(feed, &mut progress))
                .await;
        wait::timed(outcome, &args.wait, &progress)?;
        drop(progress);
        let _ = wait::settle_gone(api, &args.name).await;
    }
    if out.is_json() {
        return out.json(&accepted);
    }
    if args.wait.wait {
        out.line(&format!("{} removed", accepted.deployment_name))
    } else {
        out.line(&accepted.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_service_shows_its_image_port_and_exposure() {
        let service = |exposed| TemplateServiceBody {
            name: "db".to_owned(),
            image: "postgres:16".to_owned(),
            port: 5432,
            exposed,
            env: BTreeMap::new(),
            generated_secrets: Vec::new(),
            secret_env: Vec::new(),
        };
        assert_eq!(service_text(&service(true)), "postgres:16 (port 5432)");
        assert_eq!(
            service_text(&service(false)),
            "postgres:16 (port 5432, not exposed)"
        );
    }
}
