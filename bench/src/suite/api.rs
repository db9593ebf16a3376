//! The few API calls the measurements make, through shiplog's typed client over one
//! pooled HTTP client.

use anyhow::{bail, Context};
use shiplog_client::wire::ledger::AtQuery;
use shiplog_client::wire::usecases::{
    CreateDeployment, CreateToken, CreateUsecase, DeploymentConfigBody, ImageBody,
};
use shiplog_client::{Client, ClientError};
use std::time::Duration;
use uuid::Uuid;

/// A client of one shiplog, speaking with one token.
#[derive(Clone)]
pub struct Api {
    /// shiplog's typed client (keep-alive connections reused across tasks).
    pub client: Client,
}

/// The pooled client all load goes through: keep-alive, no Nagle delay, enough idle
/// connections for every concurrent client.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")
}

/// The body of a deploy command; `n` varies the tag so that commands differ.
pub fn deploy_body(n: u64) -> CreateDeployment {
    CreateDeployment {
        config: DeploymentConfigBody {
            image: ImageBody {
                registry: "registry.example.com".to_owned(),
                repository: "bench/app".to_owned(),
                tag: format!("1.0.{n}"),
                digest: None,
            },
            service_monitor: None,
            container_port: Some(8080),
            env: Some([("MODE".to_owned(), "bench".to_owned())].into()),
            replicas: Some(1),
            resources: None,
            secret_env: None,
            secret_refs: None,
        },
    }
}

impl Api {
    /// A client of `base` with `token`.
    pub fn new(http: reqwest::Client, base: &str, token: &str) -> Self {
        Self {
            client: Client::with_http(http, base, Some(token)),
        }
    }

    /// As an admin: creates a pipeline-like token with every read and write scope and
    /// returns a client that speaks with it (it owns what it registers).
    pub async fn pipeline_token(&self, name: &str) -> anyhow::Result<Api> {
        let body = CreateToken {
            name: name.to_owned(),
            scopes: [
                "usecases:read",
                "usecases:write",
                "deployments:read",
                "deployments:write",
            ]
            .map(str::to_owned)
            .to_vec(),
            subject: None,
            teams: Vec::new(),
            expires_in: None,
        };
        let created = self
            .client
            .create_token(&body)
            .await
            .context("POST /api/tokens")?;
        Ok(Api {
            client: self.client.with_token(&created.token),
        })
    }

    /// Registers a usecase named `name`.
    pub async fn register(&self, name: &str) -> anyhow::Result<Uuid> {
        let body = CreateUsecase {
            name: name.to_owned(),
            description: Some("benchmark".to_owned()),
        };
        let created = self
            .client
            .create_usecase(&body, None)
            .await
            .with_context(|| format!("registering {name}"))?;
        Ok(created.id)
    }

    /// Registers `n` usecases `<prefix>-<i>`, 8 at a time.
    pub async fn register_many(&self, prefix: &str, n: usize) -> anyhow::Result<Vec<Uuid>> {
        let mut ids = Vec::with_capacity(n);
        for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
            let mut tasks = tokio::task::JoinSet::new();
            for &i in chunk {
                let api = self.clone();
                let name = format!("{prefix}-{i}");
                tasks.spawn(async move { api.register(&name).await });
            }
            while let Some(done) = tasks.join_next().await {
                ids.push(done??);
            }
        }
        Ok(ids)
    }

    /// Requests a deployment; the new deployment's id.
    pub async fn deploy(&self, usecase: Uuid, n: u64) -> anyhow::Result<Uuid> {
        let accepted = self
            .client
            .deploy(usecase, &deploy_body(n))
            .await
            .with_context(|| format!("deploying to {usecase}"))?;
        Ok(accepted.id)
    }

    /// Reads the usecase as it stood at `at` (time travel); an error unless it answered.
    pub async fn usecase_at(
        &self,
        usecase: Uuid,
        at: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<()> {
        self.client
            .usecase_at(usecase, &AtQuery { at: Some(at) })
            .await
            .with_context(|| format!("GET /api/usecases/{usecase}?at={at:?}"))?;
        Ok(())
    }

    /// Whether the deployment can be read yet (false while the read model lags: 404).
    pub async fn deployment_visible(
        &self,
        usecase: Uuid,
        deployment: Uuid,
    ) -> anyhow::Result<bool> {
        match self.client.deployment(usecase, deployment).await {
            Ok(_) => Ok(true),
            Err(ClientError::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until the deployment's status is `deployed` (error when it fails or `limit` passes).
    pub async fn wait_deployed(
        &self,
        usecase: Uuid,
        deployment: Uuid,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let status = match self.client.deployment(usecase, deployment).await {
                Ok(read) => Some(read.status.as_str()),
                Err(ClientError::Api { status: 404, .. }) => None,
                Err(e) => return Err(e.into()),
            };
            match status {
                Some("deployed") => return Ok(()),
                Some(ended @ ("error" | "superseded" | "undeployed")) => {
                    bail!("deployment {deployment} ended {ended}")
                }
                _ => {}
            }
            if tokio::time::Instant::now() > deadline {
                bail!("deployment {deployment} not deployed after {limit:?}: {status:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
