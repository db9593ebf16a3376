//! The usecase API's use cases: each one turns a request into one command (or one query).

use crate::auth::Principal;
use crate::error::{AppError, Missing};
use crate::ports::{
    CommandBus, CommandContext, DeploymentView, Page, ReadModel, UsecaseFilter, UsecaseView,
};
use crate::secrets::{no_vault, SecretInput, SecretVault};
use crate::teams::Ownership;
use chrono::{SubsecRound, Utc};
use shiplog_domain::{DeploymentConfig, UsecaseCommand, UsecaseName};
use std::sync::Arc;
use tracing::instrument;
use uuid::Uuid;

/// The most items one page may hold.
pub const MAX_PAGE_SIZE: u32 = 200;
/// The page size when a client names none.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Registers, deploys, undeploys and deletes usecases, and reads them back.
pub struct Usecases {
    bus: Arc<dyn CommandBus>,
    read: Arc<dyn ReadModel>,
    vault: Arc<dyn SecretVault>,
}

impl Usecases {
    /// Wires the use cases to their ports (with no vault: secret values are refused).
    pub fn new(bus: Arc<dyn CommandBus>, read: Arc<dyn ReadModel>) -> Self {
        Self {
            bus,
            read,
            vault: no_vault(),
        }
    }

    /// The same use cases, sealing secret values with `vault`.
    pub fn with_vault(mut self, vault: Arc<dyn SecretVault>) -> Self {
        self.vault = vault;
        self
    }

    /// Runs a command and waits until the read models show its events.
    async fn execute(
        &self,
        usecase_id: Uuid,
        command: UsecaseCommand,
        ctx: &CommandContext,
    ) -> Result<(), AppError> {
        execute_visible(&*self.bus, &*self.read, usecase_id, command, ctx).await
    }

    /// Registers a usecase under a unique name, owned by `ownership`; a taken name is
    /// a `Conflict`, a reached deployment limit `Denied`.
    #[instrument(skip(self, ctx, description), fields(actor = %ctx.actor))]
    pub async fn register(
        &self,
        ctx: &CommandContext,
        ownership: Ownership,
        name: UsecaseName,
        description: String,
    ) -> Result<UsecaseView, AppError> {
        let usecase_id = Uuid::new_v4();
        // Whole seconds, as the PhariaOS API shows them ("2025-02-05T11:26:11Z").
        let at = Utc::now().trunc_subsecs(0);
        let command = UsecaseCommand::Register {
            usecase_id,
            name: name.clone(),
            description: description.clone(),
            owner: ownership.owner.clone(),
            team: ownership.team,
            at,
        };
        self.execute(usecase_id, command, ctx).await?;
        // The view normally has it now; if the projector lags, answer from what was written.
        Ok(self.read.usecase(usecase_id).await?.unwrap_or(UsecaseView {
            id: usecase_id,
            name: name.to_string(),
            description,
            created_at: at,
            created_by: ctx.actor.clone(),
            deployment: None,
            template: None,
            visibility: None,
            auto_update: Default::default(),
            auto_update_paused: None,
            deletion_requested: false,
            owner: ownership.owner,
            team: ownership.team,
        }))
    }

    /// Refuses (403) a caller that may not act on the usecase: neither its owner, nor
    /// a member of its team, nor an admin. Unknown and deleted usecases are `NotFound`.
    pub async fn authorize(&self, principal: &Principal, id: Uuid) -> Result<(), AppError> {
        let usecase = self.get(id).await?;
        principal.require_access(&usecase.owner, usecase.team, &format!("usecase {id}"))
    }

    /// One usecase; unknown or deleted ids are `NotFound`.
    pub async fn get(&self, id: Uuid) -> Result<UsecaseView, AppError> {
        self.read
            .usecase(id)
            .await?
            .ok_or_else(|| AppError::not_found(Missing::Usecase, format!("usecase {id} not found")))
    }

    /// A page of usecases, optionally filtered by name.
    pub async fn list(&self, mut filter: UsecaseFilter) -> Result<Page<UsecaseView>, AppError> {
        filter.limit = page_size(Some(filter.limit).filter(|l| *l > 0))?;
        self.read.usecases(&filter).await
    }

    /// Requests a deployment; returns its id. Older requests still in flight are superseded.
    /// Its secret values are sealed under the usecase's key before the command is built.
    #[instrument(skip(self, ctx, config, secrets), fields(actor = %ctx.actor, image = %config.image))]
    pub async fn request_deployment(
        &self,
        ctx: &CommandContext,
        usecase_id: Uuid,
        config: DeploymentConfig,
        secrets: SecretInput,
    ) -> Result<Uuid, AppError> {
        let config = secrets
            .sealed_into(&*self.vault, usecase_id, config, "config")
            .await?;
        let deployment_id = Uuid::new_v4();
        let command = UsecaseCommand::RequestDeployment {
            deployment_id,
            config,
            at: Utc::now().trunc_subsecs(0),
        };
        self.execute(usecase_id, command, ctx).await?;
        Ok(deployment_id)
    }

    /// A page of a usecase's deployments, newest first.
    pub async fn deployments(
        &self,
        usecase_id: Uuid,
        limit: Option<u32>,
        after: Option<String>,
    ) -> Result<Page<DeploymentView>, AppError> {
        self.get(usecase_id).await?;
        self.read
            .deployments(usecase_id, page_size(limit)?, after)
            .await
    }

    /// One deployment of a usecase.
    pub async fn deployment(
        &self,
        usecase_id: Uuid,
        deployment_id: Uuid,
    ) -> Result<DeploymentView, AppError> {
        self.get(usecase_id).await?;
        self.read
            .deployment(usecase_id, deployment_id)
            .await?
            .ok_or_else(|| {
                AppError::not_found(
                    Missing::Deployment,
                    format!("deployment {deployment_id} not found"),
                )
            })
    }

    /// The deployment serving the usecase's traffic, for the applications proxy;
    /// `None` when the usecase is unknown or nothing of it is deployed.
    pub async fn serving(&self, usecase_id: Uuid) -> Result<Option<DeploymentView>, AppError> {
        self.read.serving(usecase_id).await
    }

    /// Takes the usecase down; a `Conflict` when nothing is deployed.
    #[instrument(skip(self, ctx), fields(actor = %ctx.actor))]
    pub async fn undeploy(&self, ctx: &CommandContext, usecase_id: Uuid) -> Result<(), AppError> {
        let at = Utc::now().trunc_subsecs(0);
        self.execute(usecase_id, UsecaseCommand::RequestUndeploy { at }, ctx)
            .await
    }

    /// Deletes the usecase; a `Conflict` while anything is deployed or in flight.
    #[instrument(skip(self, ctx), fields(actor = %ctx.actor))]
    pub async fn delete(&self, ctx: &CommandContext, usecase_id: Uuid) -> Result<(), AppError> {
        let at = Utc::now().trunc_subsecs(0);
        self.execute(usecase_id, UsecaseCommand::Delete { at }, ctx)
            .await
    }

    /// Records an outcome reported by the cluster side (the process manager):
    /// `StartDeployment`, `CompleteDeployment`, `FailDeployment` or `ConfirmUndeployed`.
    #[instrument(skip(self, ctx), fields(actor = %ctx.actor))]
    pub async fn record_outcome(
        &self,
        ctx: &CommandContext,
        usecase_id: Uuid,
        command: UsecaseCommand,
    ) -> Result<(), AppError> {
        match command {
            UsecaseCommand::StartDeployment { .. }
            | UsecaseCommand::CompleteDeployment { .. }
            | UsecaseCommand::FailDeployment { .. }
            | UsecaseCommand::ConfirmUndeployed { .. } => {
                self.execute(usecase_id, command, ctx).await
            }
            other => Err(AppError::Internal(format!(
                "not an outcome command: {other:?}"
            ))),
        }
    }
}

/// Runs a command and waits until the read models show its events
/// (read-your-writes: the client's next read agrees with what it was told).
pub(crate) async fn execute_visible(
    bus: &dyn CommandBus,
    read: &dyn ReadModel,
    usecase_id: Uuid,
    command: UsecaseCommand,
    ctx: &CommandContext,
) -> Result<(), AppError> {
    let cursor = bus.execute(usecase_id, command, ctx).await?;
    read.wait_for(cursor).await;
    Ok(())
}

/// Checks a requested page size against the bounds (1 to 200; absent: the default).
pub fn page_size(limit: Option<u32>) -> Result<u32, AppError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(l) if (1..=MAX_PAGE_SIZE).contains(&l) => Ok(l),
        Some(_) => Err(shiplog_domain::InvalidField::new(
            "limit",
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        )
        .into()),
    }
}
