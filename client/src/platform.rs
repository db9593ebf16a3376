//! The platform API of seed 002: templates and named deployments.

use crate::error::ClientError;
use crate::http::Client;
use crate::usecases::team_query;
use shiplog_wire::platform::{
    ChangeAccepted, CreateFromTemplateBody, DeployImageBody, DeploymentNameBody,
    PlatformDeploymentBody, StatusBody, TemplateBody,
};
use uuid::Uuid;

impl Client {
    /// `GET /api/templates`: the catalog deployments are created from.
    pub async fn templates(&self) -> Result<Vec<TemplateBody>, ClientError> {
        self.get("/api/templates", &()).await
    }

    /// `GET /api/deployments`: every named deployment this token can see (or `team`'s).
    pub async fn platform_deployments(
        &self,
        team: Option<Uuid>,
    ) -> Result<Vec<PlatformDeploymentBody>, ClientError> {
        self.get("/api/deployments", &team_query(team)).await
    }

    /// The named deployment as `GET /api/deployments` shows it (the API has no read by
    /// name in this shape); `NoSuchUsecase` when there is none.
    pub async fn platform_deployment(
        &self,
        name: &str,
    ) -> Result<PlatformDeploymentBody, ClientError> {
        self.platform_deployments(None)
            .await?
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| ClientError::NoSuchUsecase(name.to_owned()))
    }

    /// `POST /api/deployments`: a deployment of a template, for `team` when given.
    pub async fn create_deployment(
        &self,
        body: &CreateFromTemplateBody,
        team: Option<Uuid>,
    ) -> Result<PlatformDeploymentBody, ClientError> {
        self.post("/api/deployments", &team_query(team), body).await
    }

    /// `POST /api/deployments/deploy-image`: a deployment of a raw image.
    pub async fn deploy_image(
        &self,
        body: &DeployImageBody,
        team: Option<Uuid>,
    ) -> Result<PlatformDeploymentBody, ClientError> {
        self.post("/api/deployments/deploy-image", &team_query(team), body)
            .await
    }

    /// `GET /api/deployments/status?name=`.
    pub async fn deployment_status(&self, name: &str) -> Result<StatusBody, ClientError> {
        self.get("/api/deployments/status", &[("name", name)]).await
    }

    /// `POST /api/deployments/delete`: undeploys and deletes a named deployment.
    pub async fn delete_deployment(&self, name: &str) -> Result<ChangeAccepted, ClientError> {
        let body = DeploymentNameBody {
            deployment_name: name.to_owned(),
        };
        self.post("/api/deployments/delete", &(), &body).await
    }
}
