//! The platform API's use cases: each turns a request about a named deployment
//! into one command on the usecase of that name, or one read.

use super::ingress::{IngressEndpoint, IngressSettings};
use super::status::{status_of, StatusReport};
use super::templates::{Catalog, Template};
use crate::auth::Principal;
use crate::auto_update::{AutoUpdateChange, AutoUpdateStatus};
use crate::cluster::ClusterError;
use crate::error::{AppError, Conflict, Missing};
use crate::operations::{Accepted, KubeEvent, LogLine, Logs, Operations, Usage};
use crate::ports::{
    CommandBus, CommandContext, DeploymentView, Page, PlatformView, ReadModel, Revision,
};
use crate::secrets::{clear_secrets, no_vault, SecretVault};
use crate::teams::{Ownership, Teams};
use crate::usecases::{execute_visible, page_size};
use chrono::{DateTime, SubsecRound, Utc};
use futures_core::stream::BoxStream;
use rand::Rng;
use shiplog_domain::{
    check_env, check_platform_name, DeploymentConfig, ImageRef, InvalidField, SealedValue,
    UsecaseCommand, UsecaseName, Visibility,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::{instrument, warn};
use uuid::Uuid;

/// The length of a generated deployment name (`abc123xyz7`).
pub const GENERATED_NAME_LEN: usize = 10;
/// How often a generated name is drawn again when it is taken.
const NAME_ATTEMPTS: usize = 5;

/// A platform deployment as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformDeployment {
    /// The usecase behind it (the PhariaOS API's id for the same thing).
    pub usecase_id: Uuid,
    /// Its unique name.
    pub name: String,
    /// The template it was created from; `None` for a raw image or a PhariaOS usecase.
    pub template: Option<String>,
    /// Who may reach it.
    pub visibility: Visibility,
    /// Its status and what may be done with it.
    pub report: StatusReport,
    /// Where it is reached: the Ingresses of the serving config (else the newest).
    pub ingresses: Vec<IngressEndpoint>,
    /// The image of its newest deployment.
    pub image: Option<String>,
    /// Its newest deployment (the first one, right after creation).
    pub deployment_id: Option<Uuid>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// The subject that owns it.
    pub owner: String,
    /// The team that owns it with its owner, if any.
    pub team: Option<Uuid>,
    /// Its auto-update settings and the pause a manual rollback left, if any (the
    /// watcher's last check is `GET …/auto-update`'s).
    pub auto_update: AutoUpdateStatus,
}

/// What `POST /api/deployments` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromTemplate {
    /// The template's name.
    pub template: String,
    /// Variables over the template's defaults.
    pub env_vars: BTreeMap<String, String>,
    /// Who may reach it (default public).
    pub visibility: Visibility,
}

/// What `POST /api/deployments/deploy-image` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromImage {
    /// The image, in Docker's reference syntax.
    pub image: String,
    /// A name of the client's choosing; generated when `None`.
    pub name: Option<String>,
    /// The port the container listens on (default 8080).
    pub container_port: Option<u16>,
    /// Its environment.
    pub env_vars: BTreeMap<String, String>,
    /// Who may reach it (default public).
    pub visibility: Visibility,
}

/// The environment a deployment runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformConfig {
    /// The deployment it is taken from: the serving one, else the newest.
    pub deployment_id: Uuid,
    /// The main service's variables with their values.
    pub env: BTreeMap<String, String>,
    /// Variables shiplog generated and keeps in the cluster only (values never shown).
    pub generated: Vec<String>,
    /// The variables the template marks secret, sealed (shown masked).
    pub secret_env: BTreeMap<String, SealedValue>,
}

/// Named deployments from templates and images, over the usecases of the ledger.
pub struct Platform {
    bus: Arc<dyn CommandBus>,
    read: Arc<dyn ReadModel>,
    operations: Arc<Operations>,
    teams: Arc<Teams>,
    catalog: Catalog,
    ingress: IngressSettings,
    vault: Arc<dyn SecretVault>,
}

/// A fresh deployment name: a letter, then letters and digits (`abc123xyz7`).
fn generated_name() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let mut name = String::with_capacity(GENERATED_NAME_LEN);
    name.push(char::from(LETTERS[rng.gen_range(0..LETTERS.len())]));
    for _ in 1..GENERATED_NAME_LEN {
        name.push(char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]));
    }
    name
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

impl Platform {
    /// Wires the platform to its ports, the catalog and the ingress settings.
    pub fn new(
        bus: Arc<dyn CommandBus>,
        read: Arc<dyn ReadModel>,
        operations: Arc<Operations>,
        teams: Arc<Teams>,
        catalog: Catalog,
        ingress: IngressSettings,
    ) -> Self {
        Self {
            bus,
            read,
            operations,
            teams,
            catalog,
            ingress,
            vault: no_vault(),
        }
    }

    /// The same platform, sealing the values of variables templates mark secret with `vault`.
    pub fn with_vault(mut self, vault: Arc<dyn SecretVault>) -> Self {
        self.vault = vault;
        self
    }

    /// The templates deployments can be created from.
    pub fn templates(&self) -> &[Template] {
        self.catalog.templates()
    }

    /// The deployment as the API shows it.
    fn present(&self, view: PlatformView) -> PlatformDeployment {
        let report = status_of(&view);
        let visibility = view.usecase.visibility.unwrap_or(Visibility::Internal);
        let shown: Option<&DeploymentView> = view.serving.as_ref().or(view.latest.as_ref());
        let ingresses = shown
            .map(|d| {
                self.ingress
                    .endpoints(&view.usecase.name, visibility, &d.config)
            })
            .unwrap_or_default();
        PlatformDeployment {
            usecase_id: view.usecase.id,
            image: view.latest.as_ref().map(|d| d.config.image.to_string()),
            deployment_id: view.latest.as_ref().map(|d| d.id),
            name: view.usecase.name,
            template: view.usecase.template,
            visibility,
            report,
            ingresses,
            created_at: view.usecase.created_at,
            created_by: view.usecase.created_by,
            owner: view.usecase.owner,
            team: view.usecase.team,
            auto_update: AutoUpdateStatus {
                settings: view.usecase.auto_update,
                paused: view.usecase.auto_update_paused,
                last_check: None,
            },
        }
    }

    /// The live usecase named `name`, if `principal` may act on it; unknown names
    /// are `NotFound`, others' deployments `Denied` ("ownership verification failed").
    async fn view(&self, principal: &Principal, name: &str) -> Result<PlatformView, AppError> {
        let view = self.read.platform_by_name(name).await?.ok_or_else(|| {
            AppError::not_found(
                Missing::Deployment,
                format!("deployment {name:?} not found"),
            )
        })?;
        principal.require_access(
            &view.usecase.owner,
            view.usecase.team,
            &format!("deployment {name:?}"),
        )?;
        Ok(view)
    }

    /// The deployments the caller may see (of `team` only, when it names one it
    /// belongs to), oldest first.
    pub async fn list(
        &self,
        principal: &Principal,
        team: Option<Uuid>,
    ) -> Result<Vec<PlatformDeployment>, AppError> {
        if let Some(team) = team {
            self.teams.get(principal, team).await?;
        }
        let views = self.read.platform_list(&principal.visible(), team).await?;
        Ok(views.into_iter().map(|v| self.present(v)).collect())
    }

    /// One deployment by name.
    pub async fn get(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<PlatformDeployment, AppError> {
        Ok(self.present(self.view(principal, name).await?))
    }

    /// The deployment as the read model shows it right after the caller created it.
    async fn present_by_name(&self, name: &str) -> Result<PlatformDeployment, AppError> {
        let view = self
            .read
            .platform_by_name(name)
            .await?
            .ok_or_else(|| AppError::Internal(format!("deployment {name:?} was not stored")))?;
        Ok(self.present(view))
    }

    /// Runs a command on the usecase and waits until the read models show it.
    async fn execute(
        &self,
        ctx: &CommandContext,
        usecase_id: Uuid,
        command: UsecaseCommand,
    ) -> Result<(), AppError> {
        execute_visible(&*self.bus, &*self.read, usecase_id, command, ctx).await
    }

    /// Registers a usecase under `name` (or under fresh generated names until one is
    /// free) with its first deployment, in one commit; answers as the read model shows it.
    /// `usecase_id` is fresh: its secret values were sealed for it. A taken name
    /// records nothing, so the next attempt keeps the id.
    #[allow(clippy::too_many_arguments)]
    async fn launch(
        &self,
        ctx: &CommandContext,
        ownership: Ownership,
        usecase_id: Uuid,
        name: Option<String>,
        template: Option<String>,
        visibility: Visibility,
        config: DeploymentConfig,
    ) -> Result<PlatformDeployment, AppError> {
        let attempts = if name.is_some() { 1 } else { NAME_ATTEMPTS };
        for attempt in 1..=attempts {
            let chosen = name.clone().unwrap_or_else(generated_name);
            let command = UsecaseCommand::Create {
                usecase_id,
                name: UsecaseName::parse(&chosen)?,
                description: String::new(),
                template: template.clone(),
                visibility,
                owner: ownership.owner.clone(),
                team: ownership.team,
                deployment_id: Uuid::new_v4(),
                config: config.clone(),
                at: now(),
            };
            match self.execute(ctx, usecase_id, command).await {
                Ok(()) => return self.present_by_name(&chosen).await,
                Err(AppError::Conflict {
                    kind: Conflict::NameTaken,
                    ..
                }) if name.is_some() => {
                    return Err(AppError::conflict(
                        Conflict::NameTaken,
                        format!("a deployment named {chosen:?} already exists"),
                    ))
                }
                Err(AppError::Conflict {
                    kind: Conflict::NameTaken,
                    ..
                }) if attempt < attempts => {
                    warn!(%chosen, "a generated name was taken; drawing another");
                }
                Err(e) => return Err(e),
            }
        }
        Err(AppError::Unavailable(
            "no free deployment name was found; retry".to_owned(),
        ))
    }

    /// Creates a deployment from a catalog template under a generated name, owned by
    /// the caller and the team it names (or its only team); a reached tier limit is `Denied`.
    #[instrument(skip(self, ctx, principal, request), fields(actor = %ctx.actor, template = %request.template))]
    pub async fn create(
        &self,
        ctx: &CommandContext,
        principal: &Principal,
        team: Option<Uuid>,
        request: FromTemplate,
    ) -> Result<PlatformDeployment, AppError> {
        let template = self.catalog.get(&request.template).ok_or_else(|| {
            InvalidField::new(
                "template",
                format!(
                    "there is no template {:?}; the catalog has {}",
                    request.template,
                    self.catalog.names().join(", ")
                ),
            )
        })?;
        // A template that does not build is the operator's fault, checked at start-up.
        let config = template.config("template", request.env_vars)?;
        let ownership = self.teams.ownership(principal, team).await?;
        // The values of variables the template marks secret are sealed, never recorded.
        let (env, secret) = template.split_secrets(config.env.clone());
        let usecase_id = Uuid::new_v4();
        let sealed = self
            .vault
            .seal(usecase_id, &clear_secrets(secret.unwrap_or_default()))
            .await?;
        let config = DeploymentConfig { env, ..config }.with_secrets("", sealed, Vec::new())?;
        self.launch(
            ctx,
            ownership,
            usecase_id,
            None,
            Some(template.name.clone()),
            request.visibility,
            config,
        )
        .await
    }

    /// Deploys a raw image under the client's name or a generated one, owned as `create`'s.
    #[instrument(skip(self, ctx, principal, request), fields(actor = %ctx.actor, image = %request.image))]
    pub async fn deploy_image(
        &self,
        ctx: &CommandContext,
        principal: &Principal,
        team: Option<Uuid>,
        request: FromImage,
    ) -> Result<PlatformDeployment, AppError> {
        let image = ImageRef::parse("image", &request.image)?;
        if let Some(name) = &request.name {
            check_platform_name("name", name)?;
        }
        check_env(&request.env_vars, "envVars")?;
        let port = request.container_port.unwrap_or(8080);
        if port == 0 {
            return Err(InvalidField::new("containerPort", "must be between 1 and 65535").into());
        }
        let config = DeploymentConfig::new(image, None, Some(port), request.env_vars, None, None)?;
        let ownership = self.teams.ownership(principal, team).await?;
        self.launch(
            ctx,
            ownership,
            Uuid::new_v4(),
            request.name,
            None,
            request.visibility,
            config,
        )
        .await
    }

    /// Deletes a deployment: what runs is undeployed, then the usecase is deleted
    /// and every Kubernetes object of it (Deployment, Service, Ingress, Secrets) removed.
    #[instrument(skip(self, ctx), fields(actor = %ctx.actor))]
    pub async fn delete(
        &self,
        ctx: &CommandContext,
        principal: &Principal,
        name: &str,
    ) -> Result<(), AppError> {
        let view = self.view(principal, name).await?;
        self.execute(
            ctx,
            view.usecase.id,
            UsecaseCommand::RequestDeletion { at: now() },
        )
        .await
    }

    /// Rolls the pods of the deployment.
    pub async fn restart(
        &self,
        ctx: &CommandContext,
        principal: &Principal,
        name: &str,
    ) -> Result<Accepted, AppError> {
        let view = self.view(principal, name).await?;
        self.operations.restart(ctx, view.usecase.id).await
    }

    /// Deploys again the config of its deployment `target` (default: the one deployed
    /// before the current one) as a new deployment, as the usecase API's rollback does.
    #[instrument(skip(self, ctx), fields(actor = %ctx.actor))]
    pub async fn rollback(
        &self,
        ctx: &CommandContext,
        principal: &Principal,
        name: &str,
        target: Option<Uuid>,
    ) -> Result<Accepted, AppError> {
        let view = self.view(principal, name).await?;
        self.operations.rollback(ctx, view.usecase.id, target).await
    }

    /// The environment it runs with: the serving deployment's, else the newest one's.
    pub async fn config(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<PlatformConfig, AppError> {
        let view = self.view(principal, name).await?;
        let shown = view.serving.or(view.latest).ok_or_else(|| {
            AppError::conflict(
                Conflict::NothingDeployed,
                format!("deployment {name:?} has never been deployed"),
            )
        })?;
        Ok(PlatformConfig {
            deployment_id: shown.id,
            env: shown.config.env.clone(),
            generated: shown
                .config
                .generated_secrets
                .iter()
                .filter(|g| {
                    !shown.config.env.contains_key(*g) && !shown.config.secret_env.contains_key(*g)
                })
                .cloned()
                .collect(),
            secret_env: shown.config.secret_env.clone(),
        })
    }

    /// Replaces the environment (of the serving config, else of the newest, which
    /// mends a failed deployment) and rolls it out as a new deployment; returns its id.
    #[instrument(skip(self, ctx, env), fields(actor = %ctx.actor))]
    pub async fn change_config(
        &self,
        ctx: &CommandContext,
        principal: &Principal,
        name: &str,
        env: BTreeMap<String, String>,
    ) -> Result<Uuid, AppError> {
        check_env(&env, "configData")?;
        let view = self.view(principal, name).await?;
        // Variables the template marks secret are sealed: given, they replace the
        // secret set; none given, the current secret values are kept.
        let (env, secret) = match view
            .usecase
            .template
            .as_deref()
            .and_then(|t| self.catalog.get(t))
        {
            Some(template) => template.split_secrets(env),
            None => (env, None),
        };
        let secret_env = match secret {
            Some(values) => Some(
                self.vault
                    .seal(view.usecase.id, &clear_secrets(values))
                    .await?,
            ),
            None => None,
        };
        let deployment_id = Uuid::new_v4();
        let command = UsecaseCommand::ChangeConfig {
            deployment_id,
            expected_base: None,
            env,
            secret_env,
            secret_refs: None,
            at: now(),
        };
        self.execute(ctx, view.usecase.id, command).await?;
        Ok(deployment_id)
    }

    /// The auto-update settings, the pause and the watcher's last check.
    pub async fn auto_update(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<AutoUpdateStatus, AppError> {
        let view = self.view(principal, name).await?;
        self.operations.auto_update(view.usecase.id).await
    }

    /// Changes the auto-update settings; what `change` leaves out stays as it is.
    #[instrument(skip(self, ctx), fields(actor = %ctx.actor))]
    pub async fn set_auto_update(
        &self,
        ctx: &CommandContext,
        principal: &Principal,
        name: &str,
        change: AutoUpdateChange,
    ) -> Result<AutoUpdateStatus, AppError> {
        let view = self.view(principal, name).await?;
        self.operations
            .configure_auto_update(ctx, view.usecase.id, change)
            .await
    }

    /// The last `tail` lines of a service of the serving deployment (default: the first).
    pub async fn logs(
        &self,
        principal: &Principal,
        name: &str,
        service: Option<&str>,
        tail: Option<u32>,
    ) -> Result<Logs, AppError> {
        let view = self.view(principal, name).await?;
        self.operations
            .logs(view.usecase.id, None, service, tail)
            .await
    }

    /// As [`Platform::logs`], then new lines as they come.
    pub async fn follow_logs(
        &self,
        principal: &Principal,
        name: &str,
        service: Option<&str>,
        tail: Option<u32>,
    ) -> Result<(Uuid, BoxStream<'static, Result<LogLine, ClusterError>>), AppError> {
        let view = self.view(principal, name).await?;
        self.operations
            .follow_logs(view.usecase.id, None, service, tail)
            .await
    }

    /// CPU and memory of a service of the serving deployment (default: the first).
    pub async fn metrics(
        &self,
        principal: &Principal,
        name: &str,
        service: Option<&str>,
    ) -> Result<Usage, AppError> {
        let view = self.view(principal, name).await?;
        let first = view
            .serving
            .as_ref()
            .and_then(|d| d.config.services().first().map(|s| s.name.to_owned()));
        let service = service.map(str::to_owned).or(first);
        self.operations
            .usage(view.usecase.id, service.as_deref())
            .await
    }

    /// Kubernetes events of the deployment's objects, oldest first.
    pub async fn kube_events(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<Vec<KubeEvent>, AppError> {
        let view = self.view(principal, name).await?;
        self.operations.kube_events(view.usecase.id).await
    }

    /// A page of the deployment's changes, oldest first, after revision `after`.
    pub async fn history(
        &self,
        principal: &Principal,
        name: &str,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Page<Revision>, AppError> {
        let view = self.view(principal, name).await?;
        let limit = page_size(limit)?;
        let mut items = self
            .read
            .revisions(view.usecase.id, after, limit + 1)
            .await?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|r| r.revision.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_look_like_the_seeds() {
        for _ in 0..200 {
            let name = generated_name();
            assert_eq!(name.len(), GENERATED_NAME_LEN);
            assert!(name.starts_with(|c: char| c.is_ascii_lowercase()), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "{name}"
            );
            assert!(check_platform_name("name", &name).is_ok());
        }
    }
}
