//! The PhariaOS usecase API: usecases, their deployments, and operating what runs
//! (restart, rollback, config, logs).

use crate::error::ClientError;
use crate::http::Client;
use reqwest::Method;
use shiplog_wire::auto_update::{AutoUpdateChangeBody, AutoUpdateState};
use shiplog_wire::operations::{
    ConfigAccepted, ConfigChange, ConfigResponse, LogLineBody, LogsResponse, RestartAccepted,
    RollbackAccepted, RollbackRequest,
};
use shiplog_wire::problem::ProblemType;
use shiplog_wire::usecases::{
    CreateDeployment, CreateUsecase, DeploymentAccepted, DeploymentPage, DeploymentResponse,
    UsecaseResponse,
};
use uuid::Uuid;

/// The `?team_id=` of a creation or listing acting for `team`, or none.
pub(crate) fn team_query(team: Option<Uuid>) -> Vec<(&'static str, String)> {
    team.map(|id| ("team_id", id.to_string()))
        .into_iter()
        .collect()
}

impl Client {
    /// `POST /api/usecases`, for `team` when given.
    pub async fn create_usecase(
        &self,
        body: &CreateUsecase,
        team: Option<Uuid>,
    ) -> Result<UsecaseResponse, ClientError> {
        self.post("/api/usecases", &team_query(team), body).await
    }

    /// Every usecase this token can see (or `team`'s), whose name contains `name`.
    pub async fn usecases(
        &self,
        name: Option<&str>,
        team: Option<Uuid>,
    ) -> Result<Vec<UsecaseResponse>, ClientError> {
        let mut query = team_query(team);
        query.extend(name.map(|n| ("name", n.to_owned())));
        self.all_pages("/api/usecases", &query).await
    }

    /// `GET /api/usecases/{id}`.
    pub async fn usecase(&self, id: Uuid) -> Result<UsecaseResponse, ClientError> {
        self.get(&format!("/api/usecases/{id}"), &()).await
    }

    /// The usecase by id or exact name.
    pub async fn usecase_by(&self, id_or_name: &str) -> Result<UsecaseResponse, ClientError> {
        match id_or_name.trim().parse::<Uuid>() {
            Ok(id) => self.usecase(id).await,
            Err(_) => self.usecase_named(id_or_name).await,
        }
    }

    /// The id of the usecase named by `id_or_name`: a UUID is taken as an id as it is;
    /// anything else must be the exact name of a usecase.
    pub async fn resolve_usecase(&self, id_or_name: &str) -> Result<Uuid, ClientError> {
        match id_or_name.trim().parse::<Uuid>() {
            Ok(id) => Ok(id),
            Err(_) => Ok(self.usecase_named(id_or_name).await?.id),
        }
    }

    /// The usecase named exactly `name` (trimmed, as the server stores names). The
    /// API's `name` filter matches parts of names, case-insensitively, so the exact match
    /// is picked from its answer. When none this token can see has it, the error says
    /// whether it is someone else's.
    pub async fn usecase_named(&self, name: &str) -> Result<UsecaseResponse, ClientError> {
        let name = name.trim();
        let matches = self.usecases(Some(name), None).await?;
        match matches.into_iter().find(|u| u.name == name) {
            Some(usecase) => Ok(usecase),
            None => Err(self.unseen_usecase(name).await),
        }
    }

    /// Why no usecase this token can see is named `name`. Listings leave out other
    /// owners' usecases, so "no usecase named …" would send the user looking for a typo;
    /// the platform API's read by name tells that case apart (403, ownership
    /// verification failed) from a name nobody has.
    async fn unseen_usecase(&self, name: &str) -> ClientError {
        match self.deployment_status(name).await {
            Err(refused) if refused.kind() == Some(ProblemType::NotOwner) => refused,
            // The server or the network failed: that is the news, not the name.
            Err(e @ ClientError::Unreachable { .. }) => e,
            Err(e @ ClientError::Api { status: 500.., .. }) => e,
            // 404; a token without deployments:read (it cannot ask); or created just now.
            _ => ClientError::NoSuchUsecase(name.to_owned()),
        }
    }

    /// `DELETE /api/usecases/{id}`.
    pub async fn delete_usecase(&self, id: Uuid) -> Result<(), ClientError> {
        self.delete(&format!("/api/usecases/{id}")).await
    }

    /// `POST /api/usecases/{id}/deployments`: requests a deployment.
    pub async fn deploy(
        &self,
        usecase: Uuid,
        body: &CreateDeployment,
    ) -> Result<DeploymentAccepted, ClientError> {
        self.post(&format!("/api/usecases/{usecase}/deployments"), &(), body)
            .await
    }

    /// The newest `limit` deployments of a usecase (one page).
    pub async fn deployments_page(
        &self,
        usecase: Uuid,
        limit: u32,
    ) -> Result<DeploymentPage, ClientError> {
        self.get(
            &format!("/api/usecases/{usecase}/deployments"),
            &[("limit", limit)],
        )
        .await
    }

    /// Every deployment of a usecase, newest first.
    pub async fn deployments(&self, usecase: Uuid) -> Result<Vec<DeploymentResponse>, ClientError> {
        self.all_pages(&format!("/api/usecases/{usecase}/deployments"), &[])
            .await
    }

    /// `GET /api/usecases/{usecase}/deployments/{id}`.
    pub async fn deployment(
        &self,
        usecase: Uuid,
        id: Uuid,
    ) -> Result<DeploymentResponse, ClientError> {
        self.get(&format!("/api/usecases/{usecase}/deployments/{id}"), &())
            .await
    }

    /// `DELETE /api/usecases/{id}/deployments`: takes down what is deployed or in
    /// flight. `request_id` comes back on the events it causes.
    pub async fn undeploy(&self, usecase: Uuid, request_id: &str) -> Result<(), ClientError> {
        self.execute(
            self.request(
                Method::DELETE,
                &format!("/api/usecases/{usecase}/deployments"),
            )
            .header("x-request-id", request_id),
        )
        .await
    }

    /// `POST /api/usecases/{id}/restart`.
    pub async fn restart(&self, usecase: Uuid) -> Result<RestartAccepted, ClientError> {
        self.fetch(self.request(Method::POST, &format!("/api/usecases/{usecase}/restart")))
            .await
    }

    /// `POST /api/usecases/{id}/rollback`.
    pub async fn rollback(
        &self,
        usecase: Uuid,
        body: &RollbackRequest,
    ) -> Result<RollbackAccepted, ClientError> {
        self.post(&format!("/api/usecases/{usecase}/rollback"), &(), body)
            .await
    }

    /// `GET /api/usecases/{id}/config`: the deployed deployment's environment.
    pub async fn config(&self, usecase: Uuid) -> Result<ConfigResponse, ClientError> {
        self.get(&format!("/api/usecases/{usecase}/config"), &())
            .await
    }

    /// `PUT /api/usecases/{id}/config`: a new environment, rolled out as a deployment.
    pub async fn change_config(
        &self,
        usecase: Uuid,
        body: &ConfigChange,
    ) -> Result<ConfigAccepted, ClientError> {
        self.put(&format!("/api/usecases/{usecase}/config"), body)
            .await
    }

    /// `GET /api/usecases/{id}/auto-update`: the settings, the pause and the last check.
    pub async fn auto_update(&self, usecase: Uuid) -> Result<AutoUpdateState, ClientError> {
        self.get(&format!("/api/usecases/{usecase}/auto-update"), &())
            .await
    }

    /// `PUT /api/usecases/{id}/auto-update`: what the body leaves out stays.
    pub async fn set_auto_update(
        &self,
        usecase: Uuid,
        body: &AutoUpdateChangeBody,
    ) -> Result<AutoUpdateState, ClientError> {
        self.put(&format!("/api/usecases/{usecase}/auto-update"), body)
            .await
    }

    /// `GET /api/usecases/{id}/logs`: the last `tail` lines of each pod.
    pub async fn logs(
        &self,
        usecase: Uuid,
        tail: Option<u32>,
    ) -> Result<LogsResponse, ClientError> {
        let query: Vec<(&str, u32)> = tail.map(|t| ("tail", t)).into_iter().collect();
        self.get(&format!("/api/usecases/{usecase}/logs"), &query)
            .await
    }

    /// `GET /api/usecases/{id}/logs?follow=true`: lines as they are written, until the
    /// stream ends.
    pub async fn follow_logs(
        &self,
        usecase: Uuid,
        tail: Option<u32>,
    ) -> Result<LogFollower, ClientError> {
        let mut query: Vec<(&str, String)> =
            tail.map(|t| ("tail", t.to_string())).into_iter().collect();
        query.push(("follow", "true".to_owned()));
        let response = self
            .send(
                self.request(Method::GET, &format!("/api/usecases/{usecase}/logs"))
                    .query(&query),
            )
            .await?;
        Ok(LogFollower {
            client: self.clone(),
            response,
            pending: Vec::new(),
        })
    }
}

/// A followed log: one JSON line per log line.
pub struct LogFollower {
    client: Client,
    response: reqwest::Response,
    pending: Vec<u8>,
}

impl LogFollower {
    /// The next line, or `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<LogLineBody>, ClientError> {
        loop {
            while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.pending.drain(..=end).collect();
                // A line cut by a broken connection is skipped; the next one is whole.
                if let Ok(line) = serde_json::from_slice::<LogLineBody>(&raw) {
                    return Ok(Some(line));
                }
            }
            match self
                .response
                .chunk()
                .await
                .map_err(|e| self.client.unreachable(&e))?
            {
                Some(chunk) => self.pending.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
    }
}
