//! Teams and tokens: who owns deployments and who may call.

use crate::error::ClientError;
use crate::http::Client;
use reqwest::Method;
use shiplog_wire::teams::{CreateTeam, TeamBody, UpdateTeam, UsageBody, UsageQuery};
use shiplog_wire::usecases::{
    CreateToken, StreamTicketBody, TokenCreated, TokenResponse, UpdateToken,
};
use uuid::Uuid;

impl Client {
    /// `GET /api/teams`: this token's teams (every team for an admin).
    pub async fn teams(&self) -> Result<Vec<TeamBody>, ClientError> {
        self.get("/api/teams", &()).await
    }

    /// `GET /api/teams/{id}`.
    pub async fn team(&self, id: Uuid) -> Result<TeamBody, ClientError> {
        self.get(&format!("/api/teams/{id}"), &()).await
    }

    /// `POST /api/teams`.
    pub async fn create_team(&self, body: &CreateTeam) -> Result<TeamBody, ClientError> {
        self.post("/api/teams", &(), body).await
    }

    /// `PUT /api/teams/{id}`: a new name, tier, or both.
    pub async fn update_team(&self, id: Uuid, body: &UpdateTeam) -> Result<TeamBody, ClientError> {
        self.put(&format!("/api/teams/{id}"), body).await
    }

    /// `GET /api/teams/{id}/usage` over a time range.
    pub async fn team_usage(&self, id: Uuid, range: &UsageQuery) -> Result<UsageBody, ClientError> {
        self.get(&format!("/api/teams/{id}/usage"), range).await
    }

    /// `GET /api/tokens`: the active tokens.
    pub async fn tokens(&self) -> Result<Vec<TokenResponse>, ClientError> {
        self.get("/api/tokens", &()).await
    }

    /// `POST /api/tokens`: a new token; its secret is in the answer, once.
    pub async fn create_token(&self, body: &CreateToken) -> Result<TokenCreated, ClientError> {
        self.post("/api/tokens", &(), body).await
    }

    /// `PATCH /api/tokens/{id}`: what the token may do from now on.
    pub async fn update_token(
        &self,
        id: Uuid,
        body: &UpdateToken,
    ) -> Result<TokenResponse, ClientError> {
        self.fetch(
            self.request(Method::PATCH, &format!("/api/tokens/{id}"))
                .json(body),
        )
        .await
    }

    /// `DELETE /api/tokens/{id}`.
    pub async fn revoke_token(&self, id: Uuid) -> Result<(), ClientError> {
        self.delete(&format!("/api/tokens/{id}")).await
    }

    /// `POST /api/stream-tickets`: a ticket that opens one event or log stream within
    /// its lifetime, as this client's caller (`?ticket=` in an `EventSource` URL).
    pub async fn stream_ticket(&self) -> Result<StreamTicketBody, ClientError> {
        self.fetch(self.request(Method::POST, "/api/stream-tickets"))
            .await
    }
}
