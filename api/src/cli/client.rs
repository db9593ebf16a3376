//! The HTTP side of the client: one `Api` per command that adds the token, turns every
//! failure into a `CliError` (network, 401, problem+json), follows pages and resolves names.

use super::args::Connection;
use super::error::CliError;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use shiplog_application::OWNERSHIP_REFUSED;
use shiplog_wire::teams::TeamBody;
use std::time::Duration;
use uuid::Uuid;

/// How long an ordinary request may take (streams have no such limit).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest page the API hands out; listings ask for it to need few requests.
const PAGE_SIZE: &str = "200";

/// shiplog's API as one command sees it: base URL, token, and an HTTP client.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    /// A client for the shiplog at `conn.url`, authenticating with `conn.token`.
    pub fn new(conn: &Connection) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(concat!("shiplog-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Unreachable {
                url: conn.url.clone(),
                reason: innermost(&e),
            })?;
        Ok(Self {
            http,
            base: conn.url.clone(),
            // An empty SHIPLOG_TOKEN is the same as none: no header, so the server says 401.
            token: conn.token.clone().filter(|t| !t.trim().is_empty()),
        })
    }

    /// A request to `path` (starting with `/`) with the token, for callers that need more
    /// than the helpers below (streams, headers).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token.trim()),
            None => request,
        }
    }

    /// Sends `request` and returns the response if its status is a success; maps
    /// everything else to the error the user sees.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, CliError> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(CliError::Unauthorized);
        }
        let text = response.text().await.unwrap_or_default();
        Err(problem(status, &text))
    }

    /// Sends an ordinary request and returns its JSON body (`Null` when it has none).
    pub async fn json(&self, request: RequestBuilder) -> Result<Value, CliError> {
        let response = self.send(request.timeout(REQUEST_TIMEOUT)).await?;
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| CliError::Unexpected(format!("the answer is not JSON ({e})")))
    }

    /// `GET path` with a query.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, CliError> {
        self.json(self.request(Method::GET, path).query(query))
            .await
    }

    /// `POST path` with a JSON body, or none.
    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        let request = self.request(Method::POST, path);
        self.json(match body {
            Some(body) => request.json(body),
            None => request,
        })
        .await
    }

    /// `POST path` with a typed body (serialised as JSON).
    pub async fn post_body<B: Serialize>(&self, path: &str, body: &B) -> Result<Value, CliError> {
        self.post_query(path, &[], body).await
    }

    /// `POST path?query` with a typed body: for creations that name the team they act
    /// for (`?team_id=`).
    pub async fn post_query<B: Serialize>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: &B,
    ) -> Result<Value, CliError> {
        self.json(self.request(Method::POST, path).query(query).json(body))
            .await
    }

    /// `PUT path` with a typed body (serialised as JSON).
    pub async fn put<B: Serialize>(&self, path: &str, body: &B) -> Result<Value, CliError> {
        self.json(self.request(Method::PUT, path).json(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.json(self.request(Method::DELETE, path)).await
    }

    /// Every item of a paged listing, following `nextCursor` to the last page.
    pub async fn all_pages(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Value>, CliError> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query: Vec<(&str, &str)> = query.to_vec();
            query.push(("limit", PAGE_SIZE));
            if let Some(after) = &after {
                query.push(("after", after));
            }
            let page = self.get(path, &query).await?;
            let Some(page_items) = page.get("items").and_then(Value::as_array) else {
                return Err(CliError::Unexpected(format!(
                    "{path} answered without items"
                )));
            };
            items.extend(page_items.iter().cloned());
            match page.get("nextCursor").and_then(Value::as_str) {
                // A cursor that does not move would loop forever; stop instead.
                Some(next) if after.as_deref() != Some(next) => after = Some(next.to_owned()),
                _ => return Ok(items),
            }
        }
    }

    /// The id of the usecase named by `id_or_name`: a UUID is taken as an id as it is;
    /// anything else must be the exact name of a usecase (the API's `name` filter matches
    /// parts of names, case-insensitively, so the exact match is picked from its answer).
    pub async fn resolve_usecase(&self, id_or_name: &str) -> Result<Uuid, CliError> {
        if let Ok(id) = id_or_name.trim().parse::<Uuid>() {
            return Ok(id);
        }
        let usecase = self.usecase_named(id_or_name).await?;
        id_of(&usecase)
    }

    /// The usecase named exactly `name` (trimmed, as the server stores names). When
    /// none this token can see has it, the error says whether it is someone else's.
    pub async fn usecase_named(&self, name: &str) -> Result<Value, CliError> {
        let name = name.trim();
        let matches = self.all_pages("/api/usecases", &[("name", name)]).await?;
        let exact = matches
            .iter()
            .find(|u| u.get("name").and_then(Value::as_str) == Some(name));
        match exact {
            Some(usecase) => Ok(usecase.clone()),
            None => Err(self.unseen_usecase(name).await),
        }
    }

    /// Why no usecase this token can see is named `name`. Listings leave out other
    /// owners' usecases, so "no usecase named …" would send the user looking for a typo;
    /// the platform API's read by name tells that case apart (403 "ownership
    /// verification failed", exit 1) from a name nobody has (exit 3).
    async fn unseen_usecase(&self, name: &str) -> CliError {
        match self.get("/api/deployments/status", &[("name", name)]).await {
            Err(refused @ CliError::Api { status: 403, .. })
                if refused.to_string().starts_with(OWNERSHIP_REFUSED) =>
            {
                refused
            }
            // The server or the network failed: that is the news, not the name.
            Err(e @ CliError::Unreachable { .. }) => e,
            Err(e @ CliError::Api { status: 500.., .. }) => e,
            // 404; a token without deployments:read (it cannot ask); or created just now.
            _ => CliError::NoSuchUsecase(name.to_owned()),
        }
    }

    /// The usecase, by id or name, as `GET /api/usecases/{id}` answers it.
    pub async fn usecase(&self, id_or_name: &str) -> Result<Value, CliError> {
        match id_or_name.trim().parse::<Uuid>() {
            Ok(id) => self.get(&format!("/api/usecases/{id}"), &[]).await,
            Err(_) => self.usecase_named(id_or_name).await,
        }
    }

    /// The error for a request that got no answer, naming the innermost cause.
    pub fn unreachable(&self, error: &reqwest::Error) -> CliError {
        let reason = if error.is_timeout() {
            "no answer in time".to_owned()
        } else {
            innermost(error)
        };
        CliError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }
}

/// Team names and ids as this token sees them (`GET /api/teams`: its own teams, every
/// team for an admin), fetched at most once per command and only when a name is needed.
pub struct TeamLookup<'a> {
    api: &'a Api,
    teams: Option<Vec<TeamBody>>,
}

impl<'a> TeamLookup<'a> {
    /// A lookup that has not asked the server anything yet.
    pub fn new(api: &'a Api) -> Self {
        Self { api, teams: None }
    }

    /// The id of the team `id_or_name` names: a UUID is taken as an id as it is (the
    /// server then checks it), anything else must be the exact name of a team this
    /// token can see (exit 3 otherwise).
    pub async fn resolve(&mut self, id_or_name: &str) -> Result<Uuid, CliError> {
        let wanted = id_or_name.trim();
        if let Ok(id) = wanted.parse::<Uuid>() {
            return Ok(id);
        }
        self.teams()
            .await?
            .iter()
            .find(|t| t.name == wanted)
            .map(|t| t.id)
            .ok_or_else(|| CliError::NoSuchTeam(wanted.to_owned()))
    }

    /// `resolve` for an optional `--team`, as the text `team_query` sends.
    pub async fn resolve_opt(
        &mut self,
        id_or_name: Option<&str>,
    ) -> Result<Option<String>, CliError> {
        match id_or_name {
            Some(team) => Ok(Some(self.resolve(team).await?.to_string())),
            None => Ok(None),
        }
    }

    /// How to show team `id` in a cell: its name, or when this token cannot see it
    /// (a team its subject has left), the start of its id.
    pub async fn display(&mut self, id: Uuid) -> Result<String, CliError> {
        let name = self.teams().await?.iter().find(|t| t.id == id);
        Ok(match name {
            Some(team) => team.name.clone(),
            None => super::events::short(&id.to_string()),
        })
    }

    async fn teams(&mut self) -> Result<&[TeamBody], CliError> {
        if self.teams.is_none() {
            let answer = self.api.get("/api/teams", &[]).await?;
            self.teams = Some(typed(&answer, "a team list")?);
        }
        Ok(self.teams.as_deref().unwrap_or_default())
    }
}

/// The `?team_id=` of a creation or listing for `team` (an id as text), or no query.
pub fn team_query(team: Option<&str>) -> Vec<(&'static str, &str)> {
    team.map(|id| ("team_id", id)).into_iter().collect()
}

/// Reads an answer into the server's own DTO, so that a field renamed on one side fails
/// to compile (or here, loudly) instead of printing an empty cell. `what` names it in errors.
pub fn typed<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T, CliError> {
    T::deserialize(value)
        .map_err(|e| CliError::Unexpected(format!("{what} this client cannot read ({e})")))
}

/// The id field of an API object.
pub fn id_of(value: &Value) -> Result<Uuid, CliError> {
    uuid_field(value, "id")
}

/// A UUID field of an API object; its absence means the server spoke another dialect.
pub fn uuid_field(value: &Value, field: &str) -> Result<Uuid, CliError> {
    value
        .get(field)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CliError::Unexpected(format!("no {field} in {value}")))
}

/// The message of the deepest error in the chain ("Connection refused (os error 111)"),
/// which says more than reqwest's "error sending request".
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// The error for a failed status, from its problem+json body when it has one.
fn problem(status: StatusCode, text: &str) -> CliError {
    let body: Option<Value> = serde_json::from_str(text).ok();
    let detail = body
        .as_ref()
        .and_then(|b| b.get("detail"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            // Not shiplog's problem document (a proxy in between, say): show what there is.
            let reason = status.canonical_reason().unwrap_or("error");
            let excerpt: String = text.trim().chars().take(200).collect();
            if excerpt.is_empty() {
                format!("HTTP {} {reason}", status.as_u16())
            } else {
                format!("HTTP {} {reason}: {excerpt}", status.as_u16())
            }
        });
    let field = body
        .as_ref()
        .and_then(|b| b.get("field"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    CliError::Api {
        status: status.as_u16(),
        detail,
        field,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_document_gives_detail_and_field() {
        let error = problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"bad tag","field":"config.image.tag"}"#,
        );
        assert_eq!(error.to_string(), "bad tag (field: config.image.tag)");
        assert_eq!(error.exit_code(), 1);
    }

    #[test]
    fn a_body_that_is_no_problem_document_is_shown_as_it_is() {
        let error = problem(StatusCode::BAD_GATEWAY, "<html>upstream down</html>");
        assert_eq!(
            error.to_string(),
            "HTTP 502 Bad Gateway: <html>upstream down</html>"
        );
        assert_eq!(problem(StatusCode::NOT_FOUND, "").exit_code(), 3);
    }
}
