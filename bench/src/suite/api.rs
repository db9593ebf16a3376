//! The few API calls the measurements make, over one pooled HTTP client.

use anyhow::{bail, Context};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// A client of one shiplog, speaking with one token.
#[derive(Clone)]
pub struct Api {
    /// The pooled HTTP client (keep-alive connections reused across tasks).
    pub http: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The bearer token.
    pub token: String,
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
pub fn deploy_body(n: u64) -> Value {
    json!({"config": {
        "image": {"registry": "registry.example.com", "repository": "bench/app", "tag": format!("1.0.{n}")},
        "containerPort": 8080,
        "env": {"MODE": "bench"},
        "replicas": 1
    }})
}

impl Api {
    /// A client of `base` with `token`.
    pub fn new(http: reqwest::Client, base: &str, token: &str) -> Self {
        Self {
            http,
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    /// As an admin: creates a pipeline-like token with every read and write scope and
    /// returns a client that speaks with it (it owns what it registers).
    pub async fn pipeline_token(&self, name: &str) -> anyhow::Result<Api> {
        let body = json!({"name": name, "scopes": ["usecases:read", "usecases:write", "deployments:read", "deployments:write"]});
        let created = self
            .post_json("/api/tokens", &body, StatusCode::CREATED)
            .await?;
        let token = created["token"]
            .as_str()
            .context("POST /api/tokens answered without a token")?;
        Ok(Api::new(self.http.clone(), &self.base, token))
    }

    async fn post_json(&self, path: &str, body: &Value, want: StatusCode) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if status != want {
            bail!("POST {path}: {status} {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("POST {path} answered {text}"))
    }

    /// Registers a usecase named `name`.
    pub async fn register(&self, name: &str) -> anyhow::Result<Uuid> {
        let created = self
            .post_json(
                "/api/usecases",
                &json!({"name": name, "description": "benchmark"}),
                StatusCode::CREATED,
            )
            .await?;
        parse_id(&created)
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
            .post_json(
                &format!("/api/usecases/{usecase}/deployments"),
                &deploy_body(n),
                StatusCode::ACCEPTED,
            )
            .await?;
        parse_id(&accepted)
    }

    /// `GET path`: the status and the body as JSON (`Null` when it is not JSON).
    pub async fn get(&self, path: &str) -> anyhow::Result<(StatusCode, Value)> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
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
            let (status, body) = self
                .get(&format!("/api/usecases/{usecase}/deployments/{deployment}"))
                .await?;
            if status.is_success() {
                match body["status"].as_str() {
                    Some("deployed") => return Ok(()),
                    Some("error") | Some("superseded") | Some("undeployed") => {
                        bail!("deployment {deployment} ended {body}")
                    }
                    _ => {}
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("deployment {deployment} not deployed after {limit:?}: {status} {body}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn parse_id(body: &Value) -> anyhow::Result<Uuid> {
    body["id"]
        .as_str()
        .with_context(|| format!("no id in {body}"))?
        .parse()
        .with_context(|| format!("the id in {body} is not a UUID"))
}
