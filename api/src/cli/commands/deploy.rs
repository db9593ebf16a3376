//! `shiplog deploy`, `deployments`, `undeploy`, `restart` and `rollback`: the commands
//! that start or list deployments, with `--wait` following them to their outcome.

use crate::cli::args::{DeployArgs, RollbackArgs, WaitArgs, WaitingTarget};
use crate::cli::client::{uuid_field, Api};
use crate::cli::commands::usecase::image_of;
use crate::cli::error::CliError;
use crate::cli::events::{display_time, short};
use crate::cli::feed::EventFeed;
use crate::cli::output::{text, Output};
use crate::cli::wait::{self, Progress, Waiting};
use comfy_table::Cell;
use reqwest::Method;
use serde_json::{json, Value};
use shiplog_wire::usecases::{DeploymentConfigBody, ImageBody, ServiceMonitorBody};
use uuid::Uuid;

/// `shiplog deploy`: requests a deployment; with --wait, follows it to its outcome.
pub async fn deploy(api: &Api, out: &Output, args: DeployArgs) -> Result<(), CliError> {
    let usecase = api.resolve_usecase(&args.usecase).await?;
    let label_image = args.image.to_string();
    let body = DeployRequest {
        config: DeploymentConfigBody {
            image: ImageBody {
                registry: args.image.registry,
                repository: args.image.repository,
                tag: args.image.tag,
                digest: args.image.digest,
            },
            service_monitor: args.service_monitor.map(|interval| ServiceMonitorBody {
                enabled: true,
                scraping_interval: Some(interval),
            }),
            container_port: args.port,
            env: (!args.env.is_empty()).then(|| args.env.into_iter().collect()),
            replicas: args.replicas,
            resources: None,
        },
    };
    let feed = subscribe_if(api, usecase, &args.wait, Waiting::Deployment).await?;
    let accepted = api
        .post_body(&format!("/api/usecases/{usecase}/deployments"), &body)
        .await?;
    let id = uuid_field(&accepted, "id")?;
    let label = format!("deployment {id} of {label_image}");
    follow_deployment(api, out, usecase, id, feed, &args.wait, &accepted, &label).await
}

/// Body of `POST /api/usecases/{id}/deployments` (the server reads it as `CreateDeployment`),
/// built from the server's own config DTO.
#[derive(Debug, serde::Serialize)]
struct DeployRequest {
    config: DeploymentConfigBody,
}

/// The end of every command that starts a deployment (deploy, rollback, config changes):
/// without --wait, print the 202 answer; with it, follow the deployment to its end
/// (exit 1 unless deployed). `label` names the deployment in sentences.
#[allow(clippy::too_many_arguments)]
pub async fn follow_deployment(
    api: &Api,
    out: &Output,
    usecase: Uuid,
    id: Uuid,
    feed: Option<EventFeed>,
    wait: &WaitArgs,
    accepted: &Value,
    label: &str,
) -> Result<(), CliError> {
    let Some(mut feed) = feed else {
        if out.is_json() {
            return out.json(accepted);
        }
        out.line(&format!("{label} requested"))?;
        return out.line(&format!(
            "follow it with: shiplog status {usecase}   (or add --wait)"
        ));
    };
    let mut progress = Progress::start(format!("deployment {} pending", short(&id.to_string())));
    let outcome = tokio::time::timeout(
        wait::limit(wait),
        wait::deployment(&mut feed, id, &mut progress),
    )
    .await;
    let outcome = wait::timed(outcome, wait, &progress);
    drop(progress);
    if out.is_json() {
        // The deployment as it ended; reading it needs deployments:read, which a token
        // that may only deploy lacks: then the outcome alone decides.
        match (
            wait::settled_deployment(api, usecase, id, &outcome).await,
            &outcome,
        ) {
            (Ok(deployment), _) => out.json(&deployment)?,
            (Err(e), Ok(())) => return Err(e),
            (Err(_), Err(_)) => {}
        }
    } else if outcome.is_ok() {
        // So that a `status` right after shows it deployed; a token that may only
        // deploy cannot read it back, and the outcome alone decides then.
        let _ = wait::settle(api, usecase, id, &["deployed"]).await;
        out.line(&format!("{label} {}", out.status_text("deployed")))?;
    }
    outcome
}

/// Opens the usecase's event stream when --wait asks for it (before the request is sent).
async fn subscribe_if(
    api: &Api,
    usecase: Uuid,
    wait: &WaitArgs,
    waiting: Waiting,
) -> Result<Option<EventFeed>, CliError> {
    if wait.wait {
        wait::subscribe(api, usecase, waiting).await.map(Some)
    } else {
        Ok(None)
    }
}

/// `shiplog deployments`: every deployment of the usecase, newest first.
pub async fn list(api: &Api, out: &Output, usecase: &str) -> Result<(), CliError> {
    let usecase = api.resolve_usecase(usecase).await?;
    let items = api
        .all_pages(&format!("/api/usecases/{usecase}/deployments"), &[])
        .await?;
    if out.is_json() {
        return out.json(&json!({ "items": items, "nextCursor": null }));
    }
    let mut table = out.table(&[
        "ID",
        "STATUS",
        "IMAGE",
        "REQUESTED BY",
        "CREATED",
        "MESSAGE",
    ]);
    for d in &items {
        table.add_row(vec![
            Cell::new(text(d, "id")),
            out.status_cell(text(d, "status")),
            Cell::new(image_of(d)),
            Cell::new(text(d, "requestedBy")),
            Cell::new(display_time(text(d, "createdAt"))),
            Cell::new(text(d, "message")),
        ]);
    }
    out.print_table(table)
}

/// `shiplog undeploy`: takes down what is deployed or in flight; with --wait, until all of it is down.
pub async fn undeploy(api: &Api, out: &Output, args: WaitingTarget) -> Result<(), CliError> {
    let usecase = api.resolve_usecase(&args.usecase).await?;
    let mut feed = subscribe_if(api, usecase, &args.wait, Waiting::Undeploy).await?;
    // Our own request id comes back on the UndeployRequested events this request causes,
    // which is how --wait knows which deployments it took down.
    let request_id = Uuid::new_v4().to_string();
    api.json(
        api.request(
            Method::DELETE,
            &format!("/api/usecases/{usecase}/deployments"),
        )
        .header("x-request-id", &request_id),
    )
    .await?;
    let Some(feed) = feed.as_mut() else {
        if !out.is_json() {
            out.line(&format!("undeploy of {} requested", args.usecase))?;
        }
        return Ok(());
    };
    let mut progress = Progress::start("undeploying".to_owned());
    let outcome = tokio::time::timeout(
        wait::limit(&args.wait),
        wait::undeploy(feed, &request_id, &mut progress),
    )
    .await;
    let taken_down = wait::timed(outcome, &args.wait, &progress)?;
    drop(progress);
    for id in &taken_down {
        // As for deploy: the next command reads the projections; a token without
        // deployments:read skips this.
        let _ = wait::settle(api, usecase, *id, &["undeployed", "error", "superseded"]).await;
    }
    if !out.is_json() {
        let ids: Vec<String> = taken_down.iter().map(Uuid::to_string).collect();
        out.line(&format!("{} undeployed: {}", args.usecase, ids.join(", ")))?;
    }
    Ok(())
}

/// `shiplog restart`: rolls the pods of the deployed deployment; with --wait, until they serve again.
pub async fn restart(api: &Api, out: &Output, args: WaitingTarget) -> Result<(), CliError> {
    let usecase = api.resolve_usecase(&args.usecase).await?;
    let mut feed = subscribe_if(api, usecase, &args.wait, Waiting::Restart).await?;
    let accepted = api
        .post(&format!("/api/usecases/{usecase}/restart"), None)
        .await?;
    let restart_id = uuid_field(&accepted, "restartId")?;
    let deployment = text(&accepted, "deploymentId").to_owned();
    if let Some(feed) = feed.as_mut() {
        let progress = Progress::start(format!("restarting deployment {}", short(&deployment)));
        let outcome =
            tokio::time::timeout(wait::limit(&args.wait), wait::restart(feed, restart_id)).await;
        wait::timed(outcome, &args.wait, &progress)?;
    }
    if out.is_json() {
        return out.json(&accepted);
    }
    if args.wait.wait {
        out.line(&format!(
            "restart {restart_id} of deployment {deployment} succeeded"
        ))
    } else {
        out.line(&format!(
            "restart {restart_id} of deployment {deployment} requested"
        ))
    }
}

/// `shiplog rollback`: deploys an earlier config again as a new deployment.
pub async fn rollback(api: &Api, out: &Output, args: RollbackArgs) -> Result<(), CliError> {
    let usecase = api.resolve_usecase(&args.usecase).await?;
    let feed = subscribe_if(api, usecase, &args.wait, Waiting::Deployment).await?;
    let path = format!("/api/usecases/{usecase}/rollback");
    let body = args.to.map(|to| json!({ "deploymentId": to }));
    let accepted = api.post(&path, body.as_ref()).await?;
    let id = uuid_field(&accepted, "id")?;
    let label = format!(
        "deployment {id} (rollback to the config of {})",
        text(&accepted, "rollbackOf")
    );
    follow_deployment(api, out, usecase, id, feed, &args.wait, &accepted, &label).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::parse_image;
    use serde::Deserialize;
    use shiplog_wire::usecases::CreateDeployment;

    /// The server refuses unknown fields: a body the CLI spells differently fails here.
    #[test]
    fn a_deploy_body_is_what_the_server_reads() {
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let image = parse_image(&format!("nginx:1.27@{digest}")).unwrap_or_else(|e| panic!("{e}"));
        let body = DeployRequest {
            config: DeploymentConfigBody {
                image: ImageBody {
                    registry: image.registry,
                    repository: image.repository,
                    tag: image.tag,
                    digest: image.digest,
                },
                service_monitor: None,
                container_port: Some(80),
                env: None,
                replicas: None,
                resources: None,
            },
        };
        let read = serde_json::to_value(&body)
            .map(CreateDeployment::deserialize)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let config = read.config.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.image.to_string(),
            format!("docker.io/library/nginx:1.27@{digest}")
        );
    }
}
