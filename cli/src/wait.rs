//! `--wait`: follow the usecase's event stream until the outcome of what was asked
//! (a deployment, an undeploy, a restart), with a spinner, within `--timeout`.

use super::args::WaitArgs;
use super::error::CliError;
use super::events::{short, LedgerEvent};
use indicatif::{ProgressBar, ProgressStyle};
use shiplog_client::{Client, EventFeed, StreamStart, FROM_THE_START};
use shiplog_wire::usecases::DeploymentResponse;
use std::collections::HashSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a finished wait reads the read models until they show its outcome.
const SETTLE_FOR: Duration = Duration::from_secs(5);

/// The events that move a deployment through its lifecycle.
const DEPLOYMENT_EVENTS: &str = "DeploymentRequested,DeploymentStarted,DeploymentSucceeded,DeploymentFailed,DeploymentSuperseded,DeploymentUndeployed";
/// The events that say an undeploy was asked for, and that a deployment is down.
const UNDEPLOY_EVENTS: &str =
    "UndeployRequested,DeploymentUndeployed,DeploymentFailed,DeploymentSuperseded";
/// The outcomes of a restart.
const RESTART_EVENTS: &str = "RestartSucceeded,RestartFailed";
/// The steps of a deletion: asked for, what ran taken down, deleted.
const DELETION_EVENTS: &str = "DeletionRequested,DeploymentUndeployed,UsecaseDeleted";

/// What the wait is for; it picks the events the stream carries.
#[derive(Debug, Clone, Copy)]
pub enum Waiting {
    /// A deployment's lifecycle (deploy, rollback, config changes).
    Deployment,
    /// An undeploy.
    Undeploy,
    /// A restart.
    Restart,
    /// A deletion (`remove`): undeploy, then delete.
    Deletion,
}

impl Waiting {
    /// The event types the stream is asked for.
    fn types(self) -> &'static str {
        match self {
            Waiting::Deployment => DEPLOYMENT_EVENTS,
            Waiting::Undeploy => UNDEPLOY_EVENTS,
            Waiting::Restart => RESTART_EVENTS,
            Waiting::Deletion => DELETION_EVENTS,
        }
    }
}

/// Opens the usecase's event stream *before* the request is sent, so that every event
/// the request causes is seen. Should the stream drop before any event arrived, it
/// resumes from the usecase's beginning (the waits below pick out their own ids).
pub async fn subscribe(
    api: &Client,
    usecase: Uuid,
    waiting: Waiting,
) -> Result<EventFeed, CliError> {
    open(api, usecase, waiting, None).await
}

/// Opens the stream of a usecase the request itself created (`create`, `deploy-image`):
/// it could not be subscribed to before, so it is read from the usecase's first event on,
/// which replays everything the request caused before going live; nothing is missed.
pub async fn replay(api: &Client, usecase: Uuid, waiting: Waiting) -> Result<EventFeed, CliError> {
    open(api, usecase, waiting, Some(FROM_THE_START.to_owned())).await
}

async fn open(
    api: &Client,
    usecase: Uuid,
    waiting: Waiting,
    after: Option<String>,
) -> Result<EventFeed, CliError> {
    let start = StreamStart {
        types: Some(waiting.types().to_owned()),
        after,
        fallback: Some(FROM_THE_START.to_owned()),
    };
    Ok(api.follow(Some(usecase), start).await?)
}

/// Shows where a wait stands: a spinner when stderr is a terminal, otherwise one line on
/// stderr per change (readable in CI logs). Never on stdout, which carries the result.
pub struct Progress {
    bar: Option<ProgressBar>,
    current: String,
}

impl Progress {
    /// Starts showing `message`.
    pub fn start(message: String) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.set_message(message.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        if bar.is_none() {
            eprintln!("{message}");
        }
        Self {
            bar,
            current: message,
        }
    }

    /// Shows `message` instead, if it is news.
    pub fn set(&mut self, message: String) {
        if message == self.current {
            return;
        }
        match &self.bar {
            Some(bar) => bar.set_message(message.clone()),
            None => eprintln!("{message}"),
        }
        self.current = message;
    }

    /// What it shows now.
    pub fn current(&self) -> &str {
        &self.current
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// How long `--timeout` lets a wait run.
pub fn limit(args: &WaitArgs) -> Duration {
    Duration::from_secs(args.timeout)
}

/// The outcome of a wait run under `tokio::time::timeout(limit(args), …)`, or, when the
/// time ran out, the error that says where things stood.
pub fn timed<T>(
    result: Result<Result<T, CliError>, tokio::time::error::Elapsed>,
    args: &WaitArgs,
    progress: &Progress,
) -> Result<T, CliError> {
    result.unwrap_or_else(|_| {
        Err(CliError::TimedOut {
            secs: args.timeout,
            state: progress.current().to_owned(),
        })
    })
}

/// Follows deployment `id` until it is deployed (Ok) or ends otherwise (the error says how).
pub async fn deployment(
    feed: &mut EventFeed,
    id: Uuid,
    progress: &mut Progress,
) -> Result<(), CliError> {
    let target = id.to_string();
    loop {
        let event = LedgerEvent::new(feed.next().await?);
        if event.text("deploymentId") != target {
            continue;
        }
        match event.kind() {
            "DeploymentRequested" => progress.set(format!("deployment {} pending", short(&target))),
            "DeploymentStarted" => progress.set(format!("deployment {} deploying", short(&target))),
            "DeploymentSucceeded" => return Ok(()),
            "DeploymentFailed" => {
                return Err(CliError::DeploymentFailed {
                    id,
                    message: event.text("message").to_owned(),
                })
            }
            "DeploymentSuperseded" => {
                return Err(CliError::DeploymentSuperseded {
                    id,
                    by: event.text("supersededBy").to_owned(),
                })
            }
            "DeploymentUndeployed" => return Err(CliError::DeploymentUndeployed(id)),
            _ => {}
        }
    }
}

/// Follows the undeploy sent with `request_id` until every deployment it took down is
/// down; returns them. They are the `UndeployRequested` events of that request, which
/// commit together and therefore all arrive before any of them can be confirmed.
pub async fn undeploy(
    feed: &mut EventFeed,
    request_id: &str,
    progress: &mut Progress,
) -> Result<Vec<Uuid>, CliError> {
    let mut taken_down: Vec<Uuid> = Vec::new();
    let mut down: HashSet<Uuid> = HashSet::new();
    loop {
        let event = LedgerEvent::new(feed.next().await?);
        let Ok(deployment) = event.text("deploymentId").parse::<Uuid>() else {
            continue;
        };
        match event.kind() {
            "UndeployRequested" if event.request_id() == Some(request_id) => {
                // More may follow in the same commit: count them before saying how many.
                taken_down.push(deployment);
                continue;
            }
            "DeploymentUndeployed" | "DeploymentFailed" | "DeploymentSuperseded" => {
                if taken_down.contains(&deployment) {
                    down.insert(deployment);
                }
            }
            _ => continue,
        }
        if !taken_down.is_empty() && taken_down.iter().all(|d| down.contains(d)) {
            return Ok(taken_down);
        }
        progress.set(format!(
            "undeploying: {} of {} deployment(s) down",
            down.len(),
            taken_down.len()
        ));
    }
}

/// Follows restart `restart_id` until it succeeded (Ok) or failed.
pub async fn restart(feed: &mut EventFeed, restart_id: Uuid) -> Result<(), CliError> {
    let target = restart_id.to_string();
    loop {
        let event = LedgerEvent::new(feed.next().await?);
        if event.text("restartId") != target {
            continue;
        }
        match event.kind() {
            "RestartSucceeded" => return Ok(()),
            "RestartFailed" => {
                return Err(CliError::RestartFailed {
                    id: restart_id,
                    message: event.text("message").to_owned(),
                })
            }
            _ => {}
        }
    }
}

/// Follows a requested deletion until the usecase is deleted (its `UsecaseDeleted`).
pub async fn deletion(feed: &mut EventFeed, progress: &mut Progress) -> Result<(), CliError> {
    loop {
        let event = LedgerEvent::new(feed.next().await?);
        match event.kind() {
            "DeletionRequested" => progress.set("deleting: undeploying what runs".to_owned()),
            "DeploymentUndeployed" => progress.set(format!(
                "deleting: deployment {} undeployed",
                short(event.text("deploymentId"))
            )),
            "UsecaseDeleted" => return Ok(()),
            _ => {}
        }
    }
}

/// The deployment as the API shows it once its status has caught up with the outcome
/// the stream reported (read models follow the ledger a moment later); after a few
/// seconds, whatever it shows.
pub async fn settled_deployment(
    api: &Client,
    usecase: Uuid,
    id: Uuid,
    outcome: &Result<(), CliError>,
) -> Result<DeploymentResponse, CliError> {
    let expected = match outcome {
        Ok(()) => "deployed",
        Err(CliError::DeploymentFailed { .. }) => "error",
        Err(CliError::DeploymentSuperseded { .. }) => "superseded",
        Err(CliError::DeploymentUndeployed(_)) => "undeployed",
        Err(_) => return settle(api, usecase, id, &[]).await,
    };
    settle(api, usecase, id, &[expected]).await
}

/// Reads the deployment until it shows one of `expected` (none: at once), for at most a few
/// seconds. A wait ends on the ledger's event; this makes the next command (`status`,
/// `deployments`) see the same state, since those read the projections.
pub async fn settle(
    api: &Client,
    usecase: Uuid,
    id: Uuid,
    expected: &[&str],
) -> Result<DeploymentResponse, CliError> {
    let deadline = Instant::now() + SETTLE_FOR;
    loop {
        let deployment = api.deployment(usecase, id).await?;
        let settled = expected.contains(&deployment.status.as_str());
        if expected.is_empty() || settled || Instant::now() >= deadline {
            return Ok(deployment);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads a named deployment's status until it is `expected` (`Ready`), for at most a few
/// seconds, so that an `ls` right after a wait shows what the wait saw.
pub async fn settle_named(api: &Client, name: &str, expected: &str) -> Result<(), CliError> {
    let deadline = Instant::now() + SETTLE_FOR;
    loop {
        let status = api.deployment_status(name).await?;
        if status.status == expected || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads a named deployment's status until it answers 404, for at most a few seconds:
/// the ledger says it is deleted a moment before the read models do.
pub async fn settle_gone(api: &Client, name: &str) -> Result<(), CliError> {
    let deadline = Instant::now() + SETTLE_FOR;
    loop {
        match api.deployment_status(name).await {
            Err(e) if e.status() == Some(404) => return Ok(()),
            Err(e) => return Err(e.into()),
            Ok(_) if Instant::now() >= deadline => return Ok(()),
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
