//! The problem+json error rows many routes share, each documented once: a route
//! names the ones it answers in its `#[utoipa::path(responses(...))]` (for example
//! `Unauthorized, DatabaseUnavailable, NoSuchUsecase`) instead of repeating them.
//! A route whose row says something more specific keeps its own line.

use shiplog_wire::Problem;
use utoipa::IntoResponses;

/// Declares one unit of documentation per shared row: a type whose only use is to
/// be named in `responses(...)`, answering `$status` with a [`Problem`] body.
macro_rules! problem_rows {
    ($($(#[doc = $doc:literal])* $name:ident = ($status:literal, $description:literal);)*) => {
        $(
            $(#[doc = $doc])*
            #[derive(IntoResponses)]
            #[response(status = $status, description = $description, content_type = "application/problem+json")]
            pub struct $name(pub Problem);
        )*
    };
}

problem_rows! {
    /// 401 on every route behind a bearer token.
    Unauthorized = (401, "Missing, invalid or expired token");
    /// 401 on the event streams, whose token may come as a query parameter.
    UnauthorizedStream = (401, "Missing, invalid or expired token (header or access_token), or a stream ticket that is unknown, used, expired or whose token was revoked");
    /// 503 on every route that needs the database.
    DatabaseUnavailable = (503, "Database unavailable; retry");
    /// 503 on the routes that seal secret values (deploy, change config, create).
    SecretsOrDatabaseUnavailable = (503, "Database unavailable (database-unavailable, with Retry-After), or the request carries secret values and this shiplog cannot seal them: no master key is configured (secrets-unavailable)");
    /// 503 on the routes that ask the cluster too.
    ClusterUnavailable = (503, "The cluster or the database is unavailable; retry");
    /// 400 on the routes with a JSON body.
    NotJson = (400, "Body is not JSON");
    /// 415 on the routes with a JSON body.
    NotDeclaredJson = (415, "Body is not declared as JSON");
    /// 429 on the event and log streams.
    TooManyStreams = (429, "The token has as many event and log streams open as it may (--max-streams-per-token); retry after Retry-After seconds, or close one");
    /// 400 on the routes with query parameters.
    MalformedQuery = (400, "A query parameter is malformed");
    /// 403 on the admin-only routes.
    AdminOnly = (403, "Token lacks admin");
    /// 403 on `POST /api/stream-tickets` for an OIDC caller.
    TicketsForApiTokens = (403, "The caller authenticated with an OIDC token: stream tickets are issued to API tokens (pass the JWT as access_token)");
    /// 403 on the audit routes.
    AuditorOnly = (403, "Token lacks audit:read");
    /// 403 on the PhariaOS routes that read a usecase's deployments.
    ReadUsecaseDenied = (403, "Token lacks deployments:read, or the usecase belongs to another owner or team (ownership verification failed)");
    /// 403 on the PhariaOS routes that change a usecase's deployments.
    WriteUsecaseDenied = (403, "Token lacks deployments:write, or the usecase belongs to another owner or team (ownership verification failed)");
    /// 403 on the platform routes that read a deployment.
    ReadDeploymentDenied = (403, "Token lacks deployments:read, or the deployment belongs to another owner or team (ownership verification failed)");
    /// 403 on the platform routes that change a deployment.
    WriteDeploymentDenied = (403, "Token lacks deployments:write, or the deployment belongs to another owner or team (ownership verification failed)");
    /// 404 on the PhariaOS routes of one usecase.
    NoSuchUsecase = (404, "No such usecase");
    /// 404 on the platform routes of one deployment (named).
    NoSuchDeployment = (404, "No deployment of this name");
    /// 404 on the routes of one team.
    NoSuchTeam = (404, "No such team");
    /// 404 on the routes that take a `team_id` to create or list in.
    UnknownTeamId = (404, "team_id names no team");
}
