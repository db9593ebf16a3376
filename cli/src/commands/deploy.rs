//! `shiplog deploy`, `deployments`, `undeploy`, `restart` and `rollback`: the commands
//! that start or list deployments, with `--wait` following them to their outcome.

use crate::args::{DeployArgs, RollbackArgs, WaitArgs, WaitingTarget};
use crate::commands::usecase::image_of;
use crate::error::CliError;
use crate::events::{display_instant, short};
use crate::output::Output;
use crate::wait::{self, Progress, Waiting};
use comfy_table::Cell;
use serde::Serialize;
use shiplog_client::{Client, EventFeed};
use shiplog_domain::ImageRef;
use shiplog_wire::operations::RollbackRequest;
use shiplog_wire::secrets::SecretEnvValue;
use shiplog_wire::usecases::{
    CreateDeployment, DeploymentConfigBody, DeploymentPage, ImageBody, ServiceMonitorBody,
};
use uuid::Uuid;

/// `shiplog deploy`: requests a deployment; with --wait, follows it to its outcome.
pub async fn deploy(api: &Client, out: &Output, args: DeployArgs) -> Result<(), CliError> {
    let usecase = api.resolve_usecase(&args.usecase).await?;
    let label_image = args.image.to_string();
    let body = CreateDeployment {
        config: DeploymentConfigBody {
            image: image_body(args.image),
            service_monitor: args.service_monitor.map(|interval| ServiceMonitorBody {
                enabled: true,
                scraping_interval: Some(interval),
            }),
            container_port: args.port,
            env: (!args.env.is_empty()).then(|| args.env.into_iter().collect()),
            replicas: args.replicas,
            resources: None,
            secret_env: (!args.secret_env.is_empty()).then(|| {
                args.secret_env
                    .into_iter()
                    .map(|(k, v)| (k, SecretEnvValue::Value(v)))
                    .collect()
            }),
            secret_refs: None,
        },
    };
    let feed = subscribe_if(api, usecase, &args.wait, Waiting::Deployment).await?;
    let accepted = api.deploy(usecase, &body).await?;
    let started = Started {
        usecase,
        id: accepted.id,
        feed,
        label: format!("deployment {} of {label_image}", accepted.id),
    };
    follow_deployment(api, out, &args.wait, started, &accepted).await
}

/// A deployment a command just requested, and how to follow it.
pub struct Started {
    /// Its usecase.
    pub usecase: Uuid,
    /// The deployment.
    pub id: Uuid,
    /// The usecase's stream, opened before the request when --wait asked for it.
    pub feed: Option<EventFeed>,
    /// How sentences name it.
    pub label: String,
}

/// The end of every command that starts a deployment (deploy, rollback, config changes):
/// without --wait, print the 202 answer; with it, follow the deployment to its end
/// (exit 1 unless deployed). `label` names the deployment in sentences.
pub async fn follow_deployment<A: Serialize>(
    api: &Client,
    out: &Output,
    wait: &WaitArgs,
    started: Started,
    accepted: &A,
) -> Result<(), CliError> {
    let Started {
        usecase,
        id,
        feed,
        label,
    } = started;
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
    api: &Client,
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
pub async fn list(api: &Client, out: &Output, usecase: &str) -> Result<(), CliError> {
    let usecase = api.resolve_usecase(usecase).await?;
    let items = api.deployments(usecase).await?;
    if out.is_json() {
        return out.json(&DeploymentPage {
            items,
            next_cursor: None,
        });
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
            Cell::new(d.id),
            out.status_cell(d.status.as_str()),
            Cell::new(image_of(d)),
            Cell::new(&d.requested_by),
            Cell::new(display_instant(&d.created_at)),
            Cell::new(&d.message),
        ]);
    }
    out.print_table(table)
}

/// `shiplog undeploy`: takes down what is deployed or in flight; with --wait, until all of it is down.
pub async fn undeploy(api: &Client, out: &Output, args: WaitingTarget) -> Result<(), CliError> {
    let usecase = api.resolve_usecase(&args.usecase).await?;
    let mut feed = subscribe_if(api, usecase, &args.wait, Waiting::Undeploy).await?;
    // Our own request id comes back on the UndeployRequested events this request causes,
    // which is how --wait knows which deployments it took down.
    let request_id = Uuid::new_v4().to_string();
    api.undeploy(usecase, &request_id).await?;
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
pub async fn restart(api: &Client, out: &Output, args: WaitingTarget) -> Result<(), CliError> {
    let usecase = api.resolve_usecase(&args.usecase).await?;
    let mut feed = subscribe_if(api, usecase, &args.wait, Waiting::Restart).await?;
    let accepted = api.restart(usecase).await?;
    let restart_id = accepted.restart_id;
    let deployment = accepted.deployment_id.to_string();
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
pub async fn rollback(api: &Client, out: &Output, args: RollbackArgs) -> Result<(), CliError> {
    let usecase = api.resolve_usecase(&args.usecase).await?;
    let feed = subscribe_if(api, usecase, &args.wait, Waiting::Deployment).await?;
    let body = RollbackRequest {
        deployment_id: args.to,
    };
    let accepted = api.rollback(usecase, &body).await?;
    let started = Started {
        usecase,
        id: accepted.id,
        feed,
        label: format!(
            "deployment {} (rollback to the config of {})",
            accepted.id, accepted.rollback_of
        ),
    };
    follow_deployment(api, out, &args.wait, started, &accepted).await
}

/// The image as the deploy body carries it, parsed and normalised by the domain.
fn image_body(image: ImageRef) -> ImageBody {
    ImageBody {
        registry: image.registry,
        repository: image.repository,
        tag: image.tag,
        digest: image.digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse_image;
    use crate::events::image_body_text;

    /// `--image` in Docker's syntax reaches the body normalised, digest and all.
    #[test]
    fn a_deploy_body_carries_the_normalised_image() {
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let image = parse_image(&format!("nginx:1.27@{digest}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            image_body_text(&image_body(image)),
            format!("docker.io/library/nginx:1.27@{digest}")
        );
    }
}
