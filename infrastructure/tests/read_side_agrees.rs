//! The read side agrees with itself, whatever the history: random valid command
//! sequences go through the aggregates' real command path (the command buses
//! the server uses, with the process manager's outcome commands among the
//! client's), and then
//!
//! 1. the live projections (the projector following the log in small pages,
//!    some of them in the middle of the sequence),
//! 2. a rebuild of the projections from the log (`Projector::rebuild`, what
//!    `shiplog projections rebuild` runs), and
//! 3. time travel at the ledger's latest instant (`?at=`: `Audit::usecase_at`
//!    and `Audit::deployment_at`)
//!
//! must answer the application's queries identically, field for field: every
//! usecase, its deployments (one by one and paged), the one serving, its
//! revisions, the listings, every team. The aggregates the test keeps beside
//! the buses (which decide every command first, so that the test knows what the
//! ledger holds) must agree with what the views say of each deployment.
//!
//! proptest generates the sequences and, on a failure, shrinks them to a short
//! one and prints it. Each case runs in a database of its own. `PROPTEST_CASES`
//! sets the number of cases (default 12, about a second each).

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use shiplog_application::{
    AppError, Audit, CommandBus, CommandContext, DeploymentView, Page, PlatformView, ReadModel,
    Revision, TeamCommandBus, TeamView, UsecaseFilter, UsecaseView, Usecases, Visible,
};
use shiplog_domain::{
    AutoUpdate, CheckTrigger, DeploymentStatus, FoundImage, Team, TeamCommand, TeamName, Tier,
    UpdatePolicy, UpdateStrategy, Usecase, UsecaseCommand, UsecaseName, Visibility,
};
use shiplog_infrastructure::projections::ProjectorLimits;
use shiplog_infrastructure::{
    LiveFeed, PgLedger, PgReadModel, PostgresCommandBus, PostgresTeamBus, Projector,
};
use shiplog_testkit::{events, eventually, TestDb};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Cases per run when `PROPTEST_CASES` is unset: about a second each.
const CASES: u32 = 12;
/// The longest command sequence of a case.
const MAX_STEPS: usize = 60;
/// The process manager's name: outcome commands are recorded under it.
const PROCESS_MANAGER: &str = "process-manager";
/// The clients that send the other commands.
const CLIENTS: [&str; 2] = ["alice", "bob"];
/// Page size of the paged listings read back: small, so that paging is tested too.
const PAGE: u32 = 3;

/// One command of a sequence, as generated: which entity it acts on is an
/// [`Index`] into what exists when it runs (the test picks among the usecases,
/// deployments and teams that the command can act on, where there are any).
#[derive(Debug, Clone)]
enum Step {
    /// `Register` (a PhariaOS usecase) or, with `platform`, `Create` (a platform
    /// deployment: registration and first deployment in one commit); possibly in
    /// a team, possibly under a deleted usecase's name.
    Register {
        platform: Option<(bool, bool)>,
        team: Option<Index>,
        reuse_name: Option<Index>,
        client: usize,
    },
    /// `RequestDeployment` of an image tag, with one of a few environments.
    Deploy {
        usecase: Index,
        tag: u8,
        env: u8,
        client: usize,
    },
    /// The process manager applied a pending deployment (`StartDeployment`).
    Start { usecase: Index, deployment: Index },
    /// A rollout finished (`CompleteDeployment`).
    Succeed { usecase: Index, deployment: Index },
    /// A deployment failed (`FailDeployment`).
    Fail { usecase: Index, deployment: Index },
    /// `RequestUndeploy`.
    Undeploy { usecase: Index, client: usize },
    /// The process manager removed an undeployed deployment (`ConfirmUndeployed`).
    ConfirmUndeployed { usecase: Index, deployment: Index },
    /// `Delete`: refused while anything runs.
    Delete { usecase: Index, client: usize },
    /// `RequestDeletion`: undeploys first.
    RequestDeletion { usecase: Index, client: usize },
    /// `RequestRestart`.
    Restart { usecase: Index, client: usize },
    /// A restart's outcome (`CompleteRestart` or `FailRestart`).
    FinishRestart { usecase: Index, succeeded: bool },
    /// `ChangeConfig` to one of a few environments.
    ChangeConfig {
        usecase: Index,
        env: u8,
        client: usize,
    },
    /// `Rollback` to the default target or a chosen earlier deployment.
    Rollback {
        usecase: Index,
        target: Option<Index>,
        client: usize,
    },
    /// `ConfigureAutoUpdate`, with the `digest` policy or `semver` in `^1`.
    AutoUpdate {
        usecase: Index,
        enabled: bool,
        recreate: bool,
        semver: bool,
        client: usize,
    },
    /// `RequestAutoUpdate`: the watcher found one of a few tags and digests.
    ImageUpdate { usecase: Index, tag: u8, digest: u8 },
    /// `TeamCommand::Create`.
    CreateTeam { tier: usize, client: usize },
    /// `TeamCommand::Update`: a new name and/or a tier (maybe the same one).
    UpdateTeam {
        team: Index,
        rename: bool,
        tier: Option<usize>,
        client: usize,
    },
    /// The live projector catches up now, so that its pages end mid-sequence.
    Project,
}

fn client() -> impl Strategy<Value = usize> {
    0..CLIENTS.len()
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => register(),
        2 => (any::<Index>(), 0..4u8, 0..3u8, client())
            .prop_map(|(usecase, tag, env, client)| Step::Deploy { usecase, tag, env, client }),
        4 => (any::<Index>(), any::<Index>())
            .prop_map(|(usecase, deployment)| Step::Start { usecase, deployment }),
        5 => (any::<Index>(), any::<Index>())
            .prop_map(|(usecase, deployment)| Step::Succeed { usecase, deployment }),
        1 => (any::<Index>(), any::<Index>())
            .prop_map(|(usecase, deployment)| Step::Fail { usecase, deployment }),
        2 => (any::<Index>(), client()).prop_map(|(usecase, client)| Step::Undeploy { usecase, client }),
        2 => (any::<Index>(), any::<Index>())
            .prop_map(|(usecase, deployment)| Step::ConfirmUndeployed { usecase, deployment }),
        1 => (any::<Index>(), client()).prop_map(|(usecase, client)| Step::Delete { usecase, client }),
        1 => (any::<Index>(), client())
            .prop_map(|(usecase, client)| Step::RequestDeletion { usecase, client }),
        2 => (any::<Index>(), client()).prop_map(|(usecase, client)| Step::Restart { usecase, client }),
        2 => (any::<Index>(), any::<bool>())
            .prop_map(|(usecase, succeeded)| Step::FinishRestart { usecase, succeeded }),
        1 => (any::<Index>(), 0..3u8, client())
            .prop_map(|(usecase, env, client)| Step::ChangeConfig { usecase, env, client }),
        2 => (any::<Index>(), proptest::option::of(any::<Index>()), client())
            .prop_map(|(usecase, target, client)| Step::Rollback { usecase, target, client }),
        1 => (any::<Index>(), any::<bool>(), any::<bool>(), any::<bool>(), client())
            .prop_map(|(usecase, enabled, recreate, semver, client)| Step::AutoUpdate { usecase, enabled, recreate, semver, client }),
        2 => (any::<Index>(), 0..3u8, 0..3u8)
            .prop_map(|(usecase, tag, digest)| Step::ImageUpdate { usecase, tag, digest }),
        1 => (0..Tier::ALL.len(), client()).prop_map(|(tier, client)| Step::CreateTeam { tier, client }),
        1 => (any::<Index>(), any::<bool>(), proptest::option::of(0..Tier::ALL.len()), client())
            .prop_map(|(team, rename, tier, client)| Step::UpdateTeam { team, rename, tier, client }),
        2 => Just(Step::Project),
    ]
}

fn register() -> impl Strategy<Value = Step> {
    (
        proptest::option::of(any::<(bool, bool)>()),
        proptest::option::of(any::<Index>()),
        proptest::option::weighted(0.2, any::<Index>()),
        client(),
    )
        .prop_map(|(platform, team, reuse_name, client)| Step::Register {
            platform,
            team,
            reuse_name,
            client,
        })
}

/// A generated case: the live projector's page size, and the commands: a few
/// registrations first (so that most commands find a usecase), then any.
fn case() -> impl Strategy<Value = (usize, Vec<Step>)> {
    (
        1..6usize,
        proptest::collection::vec(register(), 1..4),
        proptest::collection::vec(step(), 1..MAX_STEPS),
    )
        .prop_map(|(batch, mut steps, rest)| {
            steps.extend(rest);
            (batch, steps)
        })
}

/// One of a few environments (the same index, the same variables).
fn env(n: u8) -> BTreeMap<String, String> {
    match n % 3 {
        0 => BTreeMap::new(),
        1 => BTreeMap::from([("LOG_LEVEL".to_owned(), "debug".to_owned())]),
        _ => BTreeMap::from([
            ("LOG_LEVEL".to_owned(), "info".to_owned()),
            ("FEATURE_X".to_owned(), "on".to_owned()),
        ]),
    }
}

/// The `index`th of `candidates`, or of `all` when no candidate exists (the
/// command is then likely refused, and skipped).
fn pick<T: Copy>(index: &Index, candidates: &[T], all: &[T]) -> Option<T> {
    let from = if candidates.is_empty() {
        all
    } else {
        candidates
    };
    (!from.is_empty()).then(|| *index.get(from))
}

/// A usecase as the test knows it: its aggregate, folded from the events its
/// commands produced.
struct KnownUsecase {
    id: Uuid,
    name: String,
    state: Usecase,
}

/// What one case wrote, and what it tallies.
struct World {
    bus: PostgresCommandBus,
    teams_bus: PostgresTeamBus,
    projector: Arc<Projector>,
    pool: sqlx::PgPool,
    usecases: Vec<KnownUsecase>,
    teams: Vec<(Uuid, Team)>,
    names: u32,
    requests: u32,
    accepted: BTreeMap<&'static str, u32>,
    refused: BTreeMap<&'static str, u32>,
}

impl World {
    fn ctx(&mut self, actor: &str) -> CommandContext {
        self.requests += 1;
        CommandContext {
            actor: actor.to_owned(),
            request_id: format!("req-{}", self.requests),
            causation: None,
            reason: None,
        }
    }

    fn fresh_name(&mut self, prefix: &str) -> String {
        self.names += 1;
        format!("{prefix}-{}", self.names)
    }

    /// The usecases a client command may act on: those not deleted.
    fn live(&self) -> Vec<usize> {
        (0..self.usecases.len())
            .filter(|&u| !self.usecases[u].state.deleted)
            .collect()
    }

    /// A usecase not deleted for which `fits` holds (the command can act on it),
    /// or, when none does, any usecase not deleted (the command is then refused).
    fn usecase_where(&self, index: &Index, fits: impl Fn(&Usecase) -> bool) -> Option<usize> {
        let live = self.live();
        let fitting: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&u| fits(&self.usecases[u].state))
            .collect();
        pick(index, &fitting, &live)
    }

    /// The deployments of usecase `u` for which `eligible` holds, and all of them.
    fn deployments_of(
        &self,
        u: usize,
        eligible: impl Fn(&shiplog_domain::Deployment) -> bool,
    ) -> (Vec<Uuid>, Vec<Uuid>) {
        let all = &self.usecases[u].state.deployments;
        (
            all.iter().filter(|d| eligible(d)).map(|d| d.id).collect(),
            all.iter().map(|d| d.id).collect(),
        )
    }

    /// Runs `command` on usecase `u` (or a new one) through the bus, after the
    /// aggregate the test keeps has decided it: both must agree; a refusal is skipped.
    async fn usecase_command(
        &mut self,
        u: Option<usize>,
        command: UsecaseCommand,
        actor: &str,
    ) -> Result<(), TestCaseError> {
        let kind = command.kind();
        let (id, state) = match u {
            Some(u) => (self.usecases[u].id, self.usecases[u].state.clone()),
            None => (command_usecase_id(&command), Usecase::default()),
        };
        let decided = state.decide(command.clone());
        let ctx = self.ctx(actor);
        let executed = self.bus.execute(id, command.clone(), &ctx).await;
        match (decided, executed) {
            (Ok(events), Ok(_)) => {
                *self.accepted.entry(kind).or_default() += 1;
                let known = match u {
                    Some(u) => &mut self.usecases[u],
                    None => {
                        let name = match &command {
                            UsecaseCommand::Register { name, .. }
                            | UsecaseCommand::Create { name, .. } => name.as_str().to_owned(),
                            _ => String::new(),
                        };
                        self.usecases.push(KnownUsecase {
                            id,
                            name,
                            state: Usecase::default(),
                        });
                        self.usecases.last_mut().ok_or_else(|| fail("no usecase"))?
                    }
                };
                for event in events {
                    known.state.apply(event);
                }
                Ok(())
            }
            (Err(_), Err(AppError::Conflict { .. } | AppError::NotFound { .. } | AppError::Invalid(_))) => {
                *self.refused.entry(kind).or_default() += 1;
                Ok(())
            }
            (decided, executed) => Err(fail(format!(
                "{kind} on {id}: the aggregate decided {decided:?}, the command bus answered {executed:?}"
            ))),
        }
    }

    /// Runs `command` on team `t` (or a new one), as [`World::usecase_command`].
    async fn team_command(
        &mut self,
        t: Option<usize>,
        team_id: Uuid,
        command: TeamCommand,
        actor: &str,
    ) -> Result<(), TestCaseError> {
        let kind = command.kind();
        let state = t.map(|t| self.teams[t].1.clone()).unwrap_or_default();
        let decided = state.decide(command.clone());
        let ctx = self.ctx(actor);
        let executed = self.teams_bus.execute(team_id, command, &ctx).await;
        match (decided, executed) {
            (Ok(events), Ok(_)) => {
                *self.accepted.entry(kind).or_default() += 1;
                let team = match t {
                    Some(t) => &mut self.teams[t].1,
                    None => {
                        self.teams.push((team_id, Team::default()));
                        &mut self.teams.last_mut().ok_or_else(|| fail("no team"))?.1
                    }
                };
                for event in events {
                    team.apply(event);
                }
                Ok(())
            }
            (Err(_), Err(AppError::Conflict { .. } | AppError::NotFound { .. })) => {
                *self.refused.entry(kind).or_default() += 1;
                Ok(())
            }
            (decided, executed) => Err(fail(format!(
                "{kind} on team {team_id}: the aggregate decided {decided:?}, the team bus answered {executed:?}"
            ))),
        }
    }

    /// Turns a generated step into a command on what exists now, and runs it.
    async fn run(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let at = Utc::now();
        // What a client may ask of a usecase that is not being deleted.
        let open = |u: &Usecase| !u.deletion_requested;
        match step {
            Step::Register {
                platform,
                team,
                reuse_name,
                client,
            } => {
                // A name is free again once its usecase is deleted, until it is taken anew.
                let taken = |name: &str| {
                    self.usecases
                        .iter()
                        .any(|k| !k.state.deleted && k.name == name)
                };
                let deleted: Vec<usize> = (0..self.usecases.len())
                    .filter(|&u| self.usecases[u].state.deleted && !taken(&self.usecases[u].name))
                    .collect();
                let name = match reuse_name.as_ref().and_then(|i| pick(i, &deleted, &[])) {
                    Some(u) => self.usecases[u].name.clone(),
                    None => self.fresh_name("usecase"),
                };
                let team_ids: Vec<Uuid> = self.teams.iter().map(|(id, _)| *id).collect();
                let team = team.as_ref().and_then(|i| pick(i, &team_ids, &[]));
                let owner = CLIENTS[*client].to_owned();
                let usecase_id = Uuid::new_v4();
                let name = UsecaseName::parse(&name).map_err(fail)?;
                let command = match platform {
                    None => UsecaseCommand::Register {
                        usecase_id,
                        name,
                        description: "registered by a client".to_owned(),
                        owner,
                        team,
                        at,
                    },
                    Some((template, public)) => UsecaseCommand::Create {
                        usecase_id,
                        name,
                        description: "a platform deployment".to_owned(),
                        template: template.then(|| "nginx".to_owned()),
                        visibility: if *public {
                            Visibility::Public
                        } else {
                            Visibility::Internal
                        },
                        owner,
                        team,
                        deployment_id: Uuid::new_v4(),
                        config: events::config("1.0.0"),
                        at,
                    },
                };
                self.usecase_command(None, command, CLIENTS[*client]).await
            }
            Step::Deploy {
                usecase,
                tag,
                env: e,
                client,
            } => {
                let Some(u) = self.usecase_where(usecase, open) else {
                    return Ok(());
                };
                let command = UsecaseCommand::RequestDeployment {
                    deployment_id: Uuid::new_v4(),
                    config: events::config_with_env(&format!("1.{tag}.0"), env(*e)),
                    at,
                };
                self.usecase_command(Some(u), command, CLIENTS[*client])
                    .await
            }
            Step::Start {
                usecase,
                deployment,
            }
            | Step::Succeed {
                usecase,
                deployment,
            }
            | Step::Fail {
                usecase,
                deployment,
            }
            | Step::ConfirmUndeployed {
                usecase,
                deployment,
            } => {
                // What the process manager would report on next. Outcomes also land
                // on a usecase being deleted.
                let awaits_outcome = |d: &shiplog_domain::Deployment| match step {
                    Step::Start { .. } => {
                        d.status == DeploymentStatus::Pending && !d.undeploy_requested
                    }
                    Step::Succeed { .. } => {
                        d.status == DeploymentStatus::Deploying && !d.undeploy_requested
                    }
                    Step::Fail { .. } => d.status.is_in_flight() && !d.undeploy_requested,
                    _ => d.undeploy_requested && !d.status.is_terminal(),
                };
                let Some(u) =
                    self.usecase_where(usecase, |u| u.deployments.iter().any(awaits_outcome))
                else {
                    return Ok(());
                };
                let (eligible, all) = self.deployments_of(u, awaits_outcome);
                let Some(deployment_id) = pick(deployment, &eligible, &all) else {
                    return Ok(());
                };
                let command = match step {
                    Step::Start { .. } => UsecaseCommand::StartDeployment {
                        deployment_id,
                        // Half the starts resolve a digest, which the views then show.
                        digest: (deployment_id.as_u128() % 2 == 0)
                            .then(|| format!("sha256:{:064x}", deployment_id.as_u128())),
                        at,
                    },
                    Step::Succeed { .. } => {
                        UsecaseCommand::CompleteDeployment { deployment_id, at }
                    }
                    Step::Fail { .. } => UsecaseCommand::FailDeployment {
                        deployment_id,
                        message: "Back-off pulling image".to_owned(),
                        at,
                    },
                    _ => UsecaseCommand::ConfirmUndeployed { deployment_id, at },
                };
                self.usecase_command(Some(u), command, PROCESS_MANAGER)
                    .await
            }
            Step::Undeploy { usecase, client }
            | Step::Delete { usecase, client }
            | Step::RequestDeletion { usecase, client }
            | Step::Restart { usecase, client } => {
                let fits = |u: &Usecase| match step {
                    Step::Undeploy { .. } => open(u) && u.serving().is_some(),
                    Step::Delete { .. } => u.deployments.iter().all(|d| d.status.is_terminal()),
                    Step::RequestDeletion { .. } => open(u),
                    _ => open(u) && u.serving().is_some_and(|d| !d.restart_pending),
                };
                let Some(u) = self.usecase_where(usecase, fits) else {
                    return Ok(());
                };
                let command = match step {
                    Step::Undeploy { .. } => UsecaseCommand::RequestUndeploy { at },
                    Step::Delete { .. } => UsecaseCommand::Delete { at },
                    Step::RequestDeletion { .. } => UsecaseCommand::RequestDeletion { at },
                    _ => UsecaseCommand::RequestRestart {
                        expected: None,
                        restart_id: Uuid::new_v4(),
                        at,
                    },
                };
                // The process manager finishes a deletion with Delete; clients send it too.
                let actor = match step {
                    Step::Delete { .. } if self.usecases[u].state.deletion_requested => {
                        PROCESS_MANAGER
                    }
                    _ => CLIENTS[*client],
                };
                self.usecase_command(Some(u), command, actor).await
            }
            Step::FinishRestart { usecase, succeeded } => {
                let restarting = |u: &Usecase| u.deployments.iter().any(|d| d.restart_pending);
                let Some(u) = self.usecase_where(usecase, restarting) else {
                    return Ok(());
                };
                let pending = self.usecases[u]
                    .state
                    .deployments
                    .iter()
                    .find(|d| d.restart_pending)
                    .and_then(|d| d.latest_restart);
                let restart_id = pending.unwrap_or_else(Uuid::new_v4);
                let command = if *succeeded {
                    UsecaseCommand::CompleteRestart { restart_id, at }
                } else {
                    UsecaseCommand::FailRestart {
                        restart_id,
                        message: "the rollout did not finish".to_owned(),
                        at,
                    }
                };
                self.usecase_command(Some(u), command, PROCESS_MANAGER)
                    .await
            }
            Step::ChangeConfig {
                usecase,
                env: e,
                client,
            } => {
                let fits = |u: &Usecase| open(u) && !u.deployments.is_empty();
                let Some(u) = self.usecase_where(usecase, fits) else {
                    return Ok(());
                };
                let command = UsecaseCommand::ChangeConfig {
                    expected_base: None,
                    deployment_id: Uuid::new_v4(),
                    env: env(*e),
                    secret_env: None,
                    secret_refs: None,
                    at,
                };
                self.usecase_command(Some(u), command, CLIENTS[*client])
                    .await
            }
            Step::Rollback {
                usecase,
                target,
                client,
            } => {
                // Something serves, and something served before it.
                let fits = |u: &Usecase| {
                    open(u)
                        && u.serving().is_some()
                        && u.deployments
                            .iter()
                            .any(|d| d.ever_deployed && d.status.is_terminal())
                };
                let Some(u) = self.usecase_where(usecase, fits) else {
                    return Ok(());
                };
                let (eligible, all) =
                    self.deployments_of(u, |d| d.ever_deployed && d.status.is_terminal());
                let target = target.as_ref().and_then(|i| pick(i, &eligible, &all));
                let command = UsecaseCommand::Rollback {
                    deployment_id: Uuid::new_v4(),
                    target,
                    at,
                };
                self.usecase_command(Some(u), command, CLIENTS[*client])
                    .await
            }
            Step::AutoUpdate {
                usecase,
                enabled,
                recreate,
                semver,
                client,
            } => {
                let Some(u) = self.usecase_where(usecase, open) else {
                    return Ok(());
                };
                let policy = if *semver {
                    UpdatePolicy::parse("", "semver", Some("^1")).map_err(fail)?
                } else {
                    UpdatePolicy::Digest
                };
                let settings = AutoUpdate {
                    enabled: *enabled,
                    strategy: if *recreate {
                        UpdateStrategy::Recreate
                    } else {
                        UpdateStrategy::Rolling
                    },
                    policy,
                };
                let command = UsecaseCommand::ConfigureAutoUpdate { settings, at };
                self.usecase_command(Some(u), command, CLIENTS[*client])
                    .await
            }
            Step::ImageUpdate {
                usecase,
                tag,
                digest,
            } => {
                let following = |u: &Usecase| u.serving().is_some() && u.auto_update.enabled;
                let Some(u) = self.usecase_where(usecase, following) else {
                    return Ok(());
                };
                let Some(serving) = self.usecases[u].state.serving().map(|d| d.id) else {
                    return Ok(());
                };
                let command = UsecaseCommand::RequestAutoUpdate {
                    deployment_id: Uuid::new_v4(),
                    found: FoundImage {
                        check_id: Uuid::new_v4(),
                        trigger: CheckTrigger::Interval,
                        expected: serving,
                        tag: format!("1.{tag}.0"),
                        digest: format!("sha256:{}", digest.to_string().repeat(64)),
                    },
                    at,
                };
                self.usecase_command(Some(u), command, "auto-update").await
            }
            Step::CreateTeam { tier, client } => {
                let team_id = Uuid::new_v4();
                let name = TeamName::parse(&self.fresh_name("team")).map_err(fail)?;
                let command = TeamCommand::Create {
                    team_id,
                    name,
                    tier: Tier::ALL[*tier],
                    at,
                };
                self.team_command(None, team_id, command, CLIENTS[*client])
                    .await
            }
            Step::UpdateTeam {
                team,
                rename,
                tier,
                client,
            } => {
                let all: Vec<usize> = (0..self.teams.len()).collect();
                let Some(t) = pick(team, &all, &[]) else {
                    return Ok(());
                };
                // Keeping its name is no rename: the API's use case sends none then.
                let name = if *rename {
                    Some(TeamName::parse(&self.fresh_name("team")).map_err(fail)?)
                } else {
                    None
                };
                let command = TeamCommand::Update {
                    name,
                    tier: tier.map(|t| Tier::ALL[t]),
                    at,
                };
                let team_id = self.teams[t].0;
                self.team_command(Some(t), team_id, command, CLIENTS[*client])
                    .await
            }
            Step::Project => self
                .projector
                .catch_up()
                .await
                .map_err(|e| fail(format!("live projection: {e}"))),
        }
    }
}

/// The usecase id a registration names.
fn command_usecase_id(command: &UsecaseCommand) -> Uuid {
    match command {
        UsecaseCommand::Register { usecase_id, .. } | UsecaseCommand::Create { usecase_id, .. } => {
            *usecase_id
        }
        _ => Uuid::nil(),
    }
}

fn fail(message: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(message.to_string())
}

/// A query's answer with "not found" as `None`, as the API's 404.
fn found<T>(answer: Result<T, AppError>, what: &str) -> Result<Option<T>, TestCaseError> {
    match answer {
        Ok(value) => Ok(Some(value)),
        Err(AppError::NotFound { .. }) => Ok(None),
        Err(e) => Err(fail(format!("{what}: {e}"))),
    }
}

/// What the application's queries answer about one usecase.
#[derive(Debug, Clone, PartialEq)]
struct UsecaseAnswers {
    /// `GET /api/usecases/{id}`.
    usecase: Option<UsecaseView>,
    /// `GET /api/usecases/{id}/deployments`, every page (`None`: 404).
    deployments: Option<Vec<DeploymentView>>,
    /// `GET /api/usecases/{id}/deployments/{d}` for each deployment it ever had.
    each: Vec<(Uuid, Option<DeploymentView>)>,
    /// The deployment the applications proxy routes to.
    serving: Option<DeploymentView>,
    /// Its history of changes.
    revisions: Vec<Revision>,
}

/// What the application's queries answer about everything a case wrote.
#[derive(Debug, Clone, PartialEq)]
struct Answers {
    usecases: Vec<(Uuid, UsecaseAnswers)>,
    /// `GET /api/usecases`, every page.
    listing: Vec<UsecaseView>,
    /// `GET /api/deployments` (the platform API's listing).
    platform: Vec<PlatformView>,
    /// `GET /api/teams`.
    teams: Vec<TeamView>,
    /// `GET /api/teams/{id}` for each team.
    each_team: Vec<(Uuid, Option<TeamView>)>,
}

/// Reads every answer through the application's query ports over `read`.
async fn answers(world: &World, read: Arc<dyn ReadModel>) -> Result<Answers, TestCaseError> {
    // The service wants a bus; the queries below never use it.
    let bus: Arc<dyn CommandBus> = Arc::new(PostgresCommandBus::new(world.pool.clone()));
    let service = Usecases::new(bus, read.clone());
    let mut usecases = Vec::new();
    for known in &world.usecases {
        let id = known.id;
        let usecase = found(service.get(id).await, "usecase")?;
        let mut deployments = Some(Vec::new());
        let mut after = None;
        loop {
            match found(
                service.deployments(id, Some(PAGE), after.clone()).await,
                "deployments",
            )? {
                None => {
                    deployments = None;
                    break;
                }
                Some(Page { items, next }) => {
                    if let Some(all) = deployments.as_mut() {
                        all.extend(items);
                    }
                    match next {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
            }
        }
        let mut each = Vec::new();
        for d in &known.state.deployments {
            each.push((
                d.id,
                found(service.deployment(id, d.id).await, "deployment")?,
            ));
        }
        let serving = read
            .serving(id)
            .await
            .map_err(|e| fail(format!("serving: {e}")))?;
        let revisions = read
            .revisions(id, None, 10_000)
            .await
            .map_err(|e| fail(format!("revisions: {e}")))?;
        usecases.push((
            id,
            UsecaseAnswers {
                usecase,
                deployments,
                each,
                serving,
                revisions,
            },
        ));
    }
    let mut listing = Vec::new();
    let mut filter = UsecaseFilter {
        limit: PAGE,
        ..UsecaseFilter::default()
    };
    loop {
        let page = service
            .list(filter.clone())
            .await
            .map_err(|e| fail(format!("listing: {e}")))?;
        listing.extend(page.items);
        match page.next {
            Some(next) => filter.after = Some(next),
            None => break,
        }
    }
    let platform = read
        .platform_list(&Visible::All, None)
        .await
        .map_err(|e| fail(format!("platform listing: {e}")))?;
    let teams = read
        .teams(None)
        .await
        .map_err(|e| fail(format!("teams: {e}")))?;
    let mut each_team = Vec::new();
    for (id, _) in &world.teams {
        let team = read
            .team(*id)
            .await
            .map_err(|e| fail(format!("team: {e}")))?;
        each_team.push((*id, team));
    }
    Ok(Answers {
        usecases,
        listing,
        platform,
        teams,
        each_team,
    })
}

/// Compares two sets of answers part by part, so that a failure names the
/// usecase, deployment or team where they differ.
fn agree(left: &Answers, right: &Answers, what: &str) -> Result<(), TestCaseError> {
    for ((id, l), (_, r)) in left.usecases.iter().zip(&right.usecases) {
        prop_assert_eq!(&l.usecase, &r.usecase, "{}: usecase {}", what, id);
        prop_assert_eq!(
            &l.deployments,
            &r.deployments,
            "{}: deployments of {}",
            what,
            id
        );
        for ((d, l), (_, r)) in l.each.iter().zip(&r.each) {
            prop_assert_eq!(l, r, "{}: deployment {} of {}", what, d, id);
        }
        prop_assert_eq!(
            &l.serving,
            &r.serving,
            "{}: serving deployment of {}",
            what,
            id
        );
        prop_assert_eq!(&l.revisions, &r.revisions, "{}: revisions of {}", what, id);
    }
    prop_assert_eq!(
        &left.listing,
        &right.listing,
        "{}: the usecase listing",
        what
    );
    prop_assert_eq!(
        &left.platform,
        &right.platform,
        "{}: the platform listing",
        what
    );
    prop_assert_eq!(&left.teams, &right.teams, "{}: the team listing", what);
    prop_assert_eq!(
        &left.each_team,
        &right.each_team,
        "{}: teams one by one",
        what
    );
    prop_assert_eq!(left, right, "{}", what);
    Ok(())
}

/// The views say of each usecase, deployment and team what its aggregate says.
fn match_aggregates(world: &World, live: &Answers) -> Result<(), TestCaseError> {
    for (known, (_, answers)) in world.usecases.iter().zip(&live.usecases) {
        let id = known.id;
        let state = &known.state;
        prop_assert_eq!(
            answers.usecase.is_none(),
            state.deleted,
            "usecase {} deleted",
            id
        );
        let Some(view) = &answers.usecase else {
            continue;
        };
        prop_assert_eq!(
            Some(view.name.as_str()),
            state.name.as_ref().map(UsecaseName::as_str)
        );
        prop_assert_eq!(&view.template, &state.template, "template of {}", id);
        prop_assert_eq!(view.visibility, state.visibility, "visibility of {}", id);
        prop_assert_eq!(
            &view.auto_update,
            &state.auto_update,
            "auto-update of {}",
            id
        );
        prop_assert_eq!(
            &view.auto_update_paused,
            &state.auto_update_paused,
            "auto-update pause of {}",
            id
        );
        prop_assert_eq!(
            view.deletion_requested,
            state.deletion_requested,
            "deletion requested of {}",
            id
        );
        let listed = answers.deployments.clone().unwrap_or_default();
        let newest_first: Vec<Uuid> = state.deployments.iter().rev().map(|d| d.id).collect();
        prop_assert_eq!(
            listed.iter().map(|d| d.id).collect::<Vec<_>>(),
            newest_first,
            "deployments of {}, newest first",
            id
        );
        for (view, aggregate) in listed.iter().zip(state.deployments.iter().rev()) {
            prop_assert_eq!(view.status, aggregate.status, "status of {}", view.id);
            // The view's flag means "asked for and not done yet"; the aggregate keeps it.
            prop_assert_eq!(
                view.undeploy_requested,
                aggregate.undeploy_requested && aggregate.status != DeploymentStatus::Undeployed,
                "undeploy requested of {}",
                view.id
            );
            prop_assert_eq!(&view.message, &aggregate.message, "message of {}", view.id);
            // The view's image carries the digest the deployment started on.
            prop_assert_eq!(
                &view.config,
                &aggregate.running_config(),
                "config of {}",
                view.id
            );
        }
        // Deployed and not being undeployed. Not `Usecase::serving()`: that looks
        // only at the first deployed deployment, which during an undeploy may be
        // the old one on its way down while a newer one already serves.
        let serving = state
            .deployments
            .iter()
            .find(|d| d.status == DeploymentStatus::Deployed && !d.undeploy_requested);
        prop_assert_eq!(
            answers.serving.as_ref().map(|d| d.id),
            serving.map(|d| d.id),
            "serving deployment of {}",
            id
        );
    }
    for ((id, team), (_, view)) in world.teams.iter().zip(&live.each_team) {
        let view = view
            .as_ref()
            .ok_or_else(|| fail(format!("team {id} missing")))?;
        prop_assert_eq!(
            Some(view.name.as_str()),
            team.name.as_ref().map(TeamName::as_str)
        );
        prop_assert_eq!(view.tier, team.tier, "tier of team {}", id);
    }
    Ok(())
}

/// Time travel at `at` answers, for each usecase and each of its deployments,
/// what the live queries answer.
async fn time_travel_agrees(
    audit: &Audit,
    live: &Answers,
    at: DateTime<Utc>,
) -> Result<(), TestCaseError> {
    for (id, answers) in &live.usecases {
        let then = found(audit.usecase_at(*id, at).await, "usecase at")?;
        prop_assert_eq!(&then, &answers.usecase, "?at=now: usecase {}", id);
        for (d, now) in &answers.each {
            let then = found(audit.deployment_at(*id, *d, at).await, "deployment at")?;
            prop_assert_eq!(&then, now, "?at=now: deployment {} of {}", d, id);
        }
    }
    Ok(())
}

/// One case: a database of its own, the commands, then the three read sides.
async fn run_case(batch: usize, steps: &[Step], tally: &Mutex<Tally>) -> Result<(), TestCaseError> {
    let db = TestDb::create().await;
    let projector = Projector::with_limits(db.pool.clone(), ProjectorLimits::pages_of(batch));
    let mut world = World {
        bus: PostgresCommandBus::new(db.pool.clone()),
        teams_bus: PostgresTeamBus::new(db.pool.clone()),
        projector: projector.clone(),
        pool: db.pool.clone(),
        usecases: Vec::new(),
        teams: Vec::new(),
        names: 0,
        requests: 0,
        accepted: BTreeMap::new(),
        refused: BTreeMap::new(),
    };
    for step in steps {
        world.run(step).await?;
    }
    // Readers of the log see an event once every older transaction on the server
    // has ended (other tests' too): wait for that, or the projector and the
    // rebuild would read less than time travel.
    eventually("every event is visible to readers of the log", || async {
        let hidden: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events
              WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())",
        )
        .fetch_one(&db.pool)
        .await
        .map_err(|e| e.to_string())?;
        if hidden == 0 {
            Ok(())
        } else {
            Err(format!("{hidden} events not yet visible"))
        }
    })
    .await;
    projector
        .catch_up()
        .await
        .map_err(|e| fail(format!("live projection: {e}")))?;
    let read: Arc<dyn ReadModel> = Arc::new(PgReadModel::new(db.pool.clone(), projector));
    let live = answers(&world, read.clone()).await?;
    match_aggregates(&world, &live)?;

    // What `shiplog projections rebuild` runs, on the same tables.
    Projector::new(db.pool.clone())
        .rebuild()
        .await
        .map_err(|e| fail(format!("rebuild: {e}")))?;
    let rebuilt = answers(&world, read).await?;
    agree(&live, &rebuilt, "live projections vs a rebuild")?;

    let latest: Option<DateTime<Utc>> = sqlx::query_scalar("SELECT max(recorded_at) FROM events")
        .fetch_one(&db.pool)
        .await
        .map_err(|e| fail(format!("latest instant: {e}")))?;
    if let Some(at) = latest {
        let feed = LiveFeed::new(db.pool.clone(), 16);
        let audit = Audit::new(Arc::new(PgLedger::new(db.pool.clone(), feed)));
        time_travel_agrees(&audit, &live, at).await?;
    }

    let mut tally = tally.lock().map_err(|_| fail("tally poisoned"))?;
    for (kind, n) in world.accepted {
        *tally.accepted.entry(kind).or_default() += n;
    }
    for (kind, n) in world.refused {
        *tally.refused.entry(kind).or_default() += n;
    }
    tally.usecases += world.usecases.len();
    Ok(())
}

/// What the whole run exercised, printed at its end.
#[derive(Debug, Default)]
struct Tally {
    accepted: BTreeMap<&'static str, u32>,
    refused: BTreeMap<&'static str, u32>,
    usecases: usize,
}

#[test]
fn projections_a_rebuild_and_time_travel_at_now_agree_on_random_command_sequences() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let config = if std::env::var_os("PROPTEST_CASES").is_some() {
        Config::default()
    } else {
        Config::with_cases(CASES)
    };
    let config = Config {
        // Each case creates a database: bound the shrinking of a failure.
        max_shrink_iters: 100,
        max_shrink_time: 90_000,
        // The minimal failing sequence is printed; nothing is written to the tree.
        failure_persistence: None,
        ..config
    };
    let cases = config.cases;
    let started = std::time::Instant::now();
    let tally = Mutex::new(Tally::default());
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(), |(batch, steps)| {
        runtime.block_on(run_case(batch, &steps, &tally))
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let tally = tally.into_inner().unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{} cases in {:?}: {} usecases; commands accepted: {:?}; refused and skipped: {:?}",
        cases,
        started.elapsed(),
        tally.usecases,
        tally.accepted,
        tally.refused
    );
    let kinds: BTreeSet<&str> = tally.accepted.keys().copied().collect();
    for kind in [
        "register",
        "create",
        "request_deployment",
        "start_deployment",
        "complete_deployment",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} was accepted in the whole run: {tally:?}"
        );
    }
}
