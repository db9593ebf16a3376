//! The transport: one `Client` per base URL and token that adds the token, turns every
//! failure into a `ClientError`, reads answers into the server's own types and follows
//! pages.

use crate::error::ClientError;
use reqwest::header::HeaderValue;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long an ordinary request may take (streams have no such limit).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest page the API hands out; listings ask for it to need few requests.
const PAGE_SIZE: u32 = 200;
/// The header a reason for a change travels in.
const REASON_HEADER: &str = "x-shiplog-reason";

/// shiplog's API as one caller sees it: base URL, token, and an HTTP client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// Sent as `X-Shiplog-Reason`: shiplog records it with the changes this client makes.
    reason: Option<HeaderValue>,
}

/// One page of any listing (`items` and `nextCursor`), read generically so that
/// `all_pages` serves every paged route.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyPage<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

impl Client {
    /// A client of the shiplog at `url` (no trailing slash needed), authenticating with
    /// `token`; an empty or blank token is the same as none.
    pub fn new(url: &str, token: Option<&str>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(concat!("shiplog-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Unreachable {
                url: url.to_owned(),
                reason: innermost(&e),
            })?;
        Ok(Self::with_http(http, url, token))
    }

    /// A client that sends through `http`, for callers that tune the connection pool
    /// (load generators); otherwise as [`Client::new`].
    pub fn with_http(http: reqwest::Client, url: &str, token: Option<&str>) -> Self {
        Self {
            http,
            base: url.trim_end_matches('/').to_owned(),
            token: token
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            reason: None,
        }
    }

    /// The same client, saying `reason` (`X-Shiplog-Reason`) with every request: shiplog
    /// records it on the events of the changes it makes. A blank reason is none.
    pub fn with_reason(mut self, reason: Option<&str>) -> Result<Self, ClientError> {
        self.reason = match reason.map(str::trim).filter(|r| !r.is_empty()) {
            None => None,
            Some(reason) => Some(HeaderValue::from_bytes(reason.as_bytes()).map_err(|_| {
                ClientError::Unexpected(
                    "the reason cannot be sent in a header (it has a control character)".to_owned(),
                )
            })?),
        };
        Ok(self)
    }

    /// A client of the same shiplog over the same connections, speaking with `token`.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            reason: self.reason.clone(),
            ..Self::with_http(self.http.clone(), &self.base, Some(token))
        }
    }

    /// The base URL this client calls.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// A request to `path` (starting with `/`) with the token, for calls the typed
    /// methods do not cover (streams, extra headers).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(reason) = &self.reason {
            request = request.header(REASON_HEADER, reason.clone());
        }
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request` and returns the response if its status is a success; maps
    /// everything else to the error the caller sees.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized);
        }
        let text = response.text().await.unwrap_or_default();
        Err(ClientError::from_answer(status, &text))
    }

    /// Sends an ordinary request and reads its JSON body as `T`.
    pub async fn fetch<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self.send(request.timeout(REQUEST_TIMEOUT)).await?;
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Unexpected(format!("an answer this client cannot read ({e})"))
        })
    }

    /// Sends an ordinary request whose answer has no body worth reading (202, 204).
    pub async fn execute(&self, request: RequestBuilder) -> Result<(), ClientError> {
        let response = self.send(request.timeout(REQUEST_TIMEOUT)).await?;
        response.bytes().await.map_err(|e| self.unreachable(&e))?;
        Ok(())
    }

    /// `GET path?query` read as `T`.
    pub async fn get<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T, ClientError> {
        self.fetch(self.request(Method::GET, path).query(query))
            .await
    }

    /// `POST path?query` with a JSON body, read as `T`.
    pub async fn post<T: DeserializeOwned, Q: Serialize + ?Sized, B: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
        body: &B,
    ) -> Result<T, ClientError> {
        self.fetch(self.request(Method::POST, path).query(query).json(body))
            .await
    }

    /// `PUT path` with a JSON body, read as `T`.
    pub async fn put<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.fetch(self.request(Method::PUT, path).json(body)).await
    }

    /// `DELETE path`, answered without a body worth reading.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.execute(self.request(Method::DELETE, path)).await
    }

    /// Every item of a paged listing, following `nextCursor` to the last page.
    pub async fn all_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>, ClientError> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut page_query: Vec<(&str, String)> = query.to_vec();
            page_query.push(("limit", PAGE_SIZE.to_string()));
            if let Some(after) = &after {
                page_query.push(("after", after.clone()));
            }
            let page: AnyPage<T> = self.get(path, &page_query).await?;
            items.extend(page.items);
            match page.next_cursor {
                // A cursor that does not move would loop forever; stop instead.
                Some(next) if after.as_deref() != Some(next.as_str()) => after = Some(next),
                _ => return Ok(items),
            }
        }
    }

    /// The error for a request that got no answer, naming the innermost cause.
    pub fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        let reason = if error.is_timeout() {
            "no answer in time".to_owned()
        } else {
            innermost(error)
        };
        ClientError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }
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
