//! The `ImageResolver` on the OCI distribution API (`oci-client`): a HEAD (or GET)
//! of the tag's manifest gives the digest the deployment is pinned to. Credentials
//! come from the pull secrets shiplog already names (docker config JSON in the
//! namespace's Secrets) and go nowhere else: not into events, not into logs.

use crate::kube_calls::KubeCalls;
use async_trait::async_trait;
use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::Client;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use serde_json::Value;
use shiplog_application::{ImageResolver, ResolveError};
use shiplog_domain::ImageRef;
use std::net::IpAddr;
use std::time::Duration;
use tracing::{debug, info, instrument, warn};

/// How long connecting to a registry may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one resolution may take in all (authentication, HEAD, a GET fallback).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(30);

/// How the registry resolver behaves.
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    /// Registries (`HOST[:PORT]`, or `HOST` for any port) spoken to over plain HTTP
    /// besides those on loopback addresses, which always are (as Docker's daemon allows).
    pub insecure: Vec<String>,
    /// Leave an image unresolved when its registry cannot be reached instead of
    /// failing the deployment: the simulated mode, where the seeds' made-up
    /// registries (`registry.example.com`) must still deploy.
    pub skip_unreachable: bool,
}

/// Where the pull secrets are read: the namespace's Secrets of these names.
#[derive(Clone)]
pub struct PullSecrets {
    /// The cluster's client.
    pub client: Client,
    /// The namespace of shiplog's objects.
    pub namespace: String,
    /// The Secrets named by `--image-pull-secret`, in order.
    pub names: Vec<String>,
    /// How they are read: bounded and retried as every call of the cluster adapter.
    pub calls: KubeCalls,
}

/// Resolves tags against their registries with `oci-client`.
#[derive(Clone)]
pub struct RegistryResolver {
    settings: RegistrySettings,
    secrets: Option<PullSecrets>,
}

impl RegistryResolver {
    /// A resolver with `settings`, authenticating with `secrets` when given (anonymous otherwise).
    pub fn new(settings: RegistrySettings, secrets: Option<PullSecrets>) -> Self {
        Self { settings, secrets }
    }

    /// Whether `registry` is spoken to over plain HTTP: loopback, or named insecure.
    pub fn plain_http(&self, registry: &str) -> bool {
        let host = host_of(registry);
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        loopback
            || self
                .settings
                .insecure
                .iter()
                .any(|entry| entry == registry || (!entry.contains(':') && entry == host))
    }

    /// The credentials for `registry` from the first pull secret that has some.
    async fn auth_for(&self, registry: &str) -> RegistryAuth {
        let Some(secrets) = &self.secrets else {
            return RegistryAuth::Anonymous;
        };
        let api: Api<Secret> = Api::namespaced(secrets.client.clone(), &secrets.namespace);
        for name in &secrets.names {
            let read = secrets
                .calls
                .call("pull_secrets", || api.get_opt(name))
                .await;
            let secret = match read {
                Ok(Some(secret)) => secret,
                Ok(None) => {
                    debug!(secret = %name, "pull secret not found; skipped");
                    continue;
                }
                Err(e) => {
                    warn!(secret = %name, error = %e, "pull secret unreadable; skipped");
                    continue;
                }
            };
            let data = secret.data.unwrap_or_default();
            let config = data
                .get(".dockerconfigjson")
                .or_else(|| data.get(".dockercfg"));
            if let Some(auth) = config.and_then(|c| docker_config_auth(&c.0, registry)) {
                debug!(secret = %name, %registry, "credentials from pull secret");
                return auth;
            }
        }
        RegistryAuth::Anonymous
    }
}

/// Tags read per page of a tag listing, and pages read at most (a repository with
/// more tags than that is followed among its first 10,000).
const TAG_PAGE: usize = 1000;
const TAG_PAGES: usize = 10;

impl RegistryResolver {
    /// Runs `op` against `image`'s registry with the right protocol and credentials,
    /// and puts its failure in the user's words. `Ok(None)`: the registry could not
    /// be reached and this resolver skips such registries (the simulated mode).
    async fn ask<T, F, Fut>(&self, image: &ImageRef, op: F) -> Result<Option<T>, ResolveError>
    where
        F: FnOnce(oci_client::Client, Reference, RegistryAuth) -> Fut,
        Fut: std::future::Future<Output = Result<T, OciDistributionError>>,
    {
        let reference = Reference::with_tag(
            image.registry.clone(),
            image.repository.clone(),
            image.tag.clone(),
        );
        let protocol = if self.plain_http(&image.registry) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        // A client per question: oci-client keeps credentials per registry, and a
        // pull secret may have changed since the last one.
        let client = oci_client::Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(RESOLVE_TIMEOUT),
            ..ClientConfig::default()
        });
        let auth = self.auth_for(&image.registry).await;
        let answer = tokio::time::timeout(RESOLVE_TIMEOUT, op(client, reference, auth)).await;
        let failure = match answer {
            Ok(Ok(value)) => return Ok(Some(value)),
            Ok(Err(e)) => describe(&e),
            Err(_) => {
                Failure::Unreachable(format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs()))
            }
        };
        let error = |answer: String, rate_limited| ResolveError {
            registry: image.registry.clone(),
            reference: format!("{}/{}:{}", image.registry, image.repository, image.tag),
            answer,
            rate_limited,
        };
        match failure {
            Failure::Unreachable(why) if self.settings.skip_unreachable => {
                info!(registry = %image.registry, %why, "registry unreachable; the simulated cluster runs the image by its tag");
                Ok(None)
            }
            Failure::Unreachable(why) => Err(error(format!("unreachable ({why})"), false)),
            Failure::Answered(answer) => Err(error(answer, false)),
            Failure::RateLimited(answer) => Err(error(answer, true)),
        }
    }
}

#[async_trait]
impl ImageResolver for RegistryResolver {
    #[instrument(skip(self), fields(image = %image))]
    async fn resolve(&self, image: &ImageRef) -> Result<Option<String>, ResolveError> {
        self.ask(image, |client, reference, auth| async move {
            client.fetch_manifest_digest(&reference, &auth).await
        })
        .await
    }

    #[instrument(skip(self), fields(image = %image))]
    async fn tags(&self, image: &ImageRef) -> Result<Option<Vec<String>>, ResolveError> {
        self.ask(image, |client, reference, auth| async move {
            let mut tags: Vec<String> = Vec::new();
            for _ in 0..TAG_PAGES {
                let page = client
                    .list_tags(
                        &reference,
                        &auth,
                        Some(TAG_PAGE),
                        tags.last().map(String::as_str),
                    )
                    .await?;
                let full = page.tags.len() >= TAG_PAGE;
                tags.extend(page.tags);
                if !full {
                    break;
                }
            }
            Ok(tags)
        })
        .await
    }
}

/// What went wrong, as the user reads it.
enum Failure {
    /// No answer came: a refused connection, an unknown host, a timeout.
    Unreachable(String),
    /// The registry answered, with this (status first: "404 Not Found: manifest unknown").
    Answered(String),
    /// The registry answered 429 Too Many Requests, with this.
    RateLimited(String),
}

/// Puts an `oci-client` error in the user's words: the registry's status when it answered.
fn describe(e: &OciDistributionError) -> Failure {
    use OciDistributionError as E;
    match e {
        E::RequestError(e) if e.is_connect() || e.is_timeout() || e.status().is_none() => {
            Failure::Unreachable(root_cause(e))
        }
        E::RequestError(e) if e.status() == Some(http::StatusCode::TOO_MANY_REQUESTS) => {
            Failure::RateLimited("429 Too Many Requests".to_owned())
        }
        E::RequestError(e) => Failure::Answered(e.to_string()),
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => {
            Failure::Answered("401 Unauthorized".to_owned())
        }
        E::ImageManifestNotFoundError(_) => Failure::Answered("404 Not Found".to_owned()),
        E::RegistryError { envelope, .. } => {
            let status = envelope.errors.first().map(|e| match e.code {
                OciErrorCode::ManifestUnknown
                | OciErrorCode::NameUnknown
                | OciErrorCode::NotFound
                | OciErrorCode::BlobUnknown => "404 Not Found",
                OciErrorCode::Unauthorized => "401 Unauthorized",
                OciErrorCode::Denied => "403 Forbidden",
                OciErrorCode::Toomanyrequests => "429 Too Many Requests",
                _ => "400 Bad Request",
            });
            let messages: Vec<&str> = envelope
                .errors
                .iter()
                .map(|e| e.message.as_str())
                .filter(|m| !m.is_empty())
                .collect();
            let answer = format!("{}: {}", status.unwrap_or("error"), messages.join("; "));
            let rate_limited = envelope
                .errors
                .iter()
                .any(|e| e.code == OciErrorCode::Toomanyrequests);
            if rate_limited {
                Failure::RateLimited(answer)
            } else {
                Failure::Answered(answer)
            }
        }
        E::ServerError { code, message, .. } => {
            let reason = http::StatusCode::from_u16(*code)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            let message = message.trim();
            let answer = if message.is_empty() {
                format!("{code} {reason}")
            } else {
                format!("{code} {reason}: {message}")
            };
            if *code == 429 {
                Failure::RateLimited(answer)
            } else {
                Failure::Answered(answer)
            }
        }
        other => Failure::Answered(other.to_string()),
    }
}

/// The innermost cause of a transport error ("Connection refused (os error 111)"),
/// which says more than reqwest's "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `registry` without its port (`127.0.0.1:5000` -> `127.0.0.1`, `[::1]:5000` -> `[::1]`).
fn host_of(registry: &str) -> &str {
    match registry.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !host.ends_with(':') => {
            host
        }
        _ => registry,
    }
}

/// The credentials for `registry` in a docker config JSON (`{"auths": {host: {auth |
/// username, password}}}`, or the older `.dockercfg` map without `auths`).
pub fn docker_config_auth(json: &[u8], registry: &str) -> Option<RegistryAuth> {
    let config: Value = serde_json::from_slice(json).ok()?;
    let auths = config.get("auths").unwrap_or(&config).as_object()?;
    let wanted = normalise(registry);
    let entry = auths
        .iter()
        .find(|(key, _)| normalise(key) == wanted)
        .map(|(_, entry)| entry)?;
    if let (Some(user), Some(password)) = (
        entry.get("username").and_then(Value::as_str),
        entry.get("password").and_then(Value::as_str),
    ) {
        return Some(RegistryAuth::Basic(user.to_owned(), password.to_owned()));
    }
    let encoded = entry.get("auth").and_then(Value::as_str)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(RegistryAuth::Basic(user.to_owned(), password.to_owned()))
}

/// A docker config key as the registry it names: no scheme, no path, Docker Hub's aliases as one.
fn normalise(key: &str) -> String {
    let key = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = key.split('/').next().unwrap_or(key);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(auth: Option<RegistryAuth>) -> Option<(String, String)> {
        match auth {
            Some(RegistryAuth::Basic(user, password)) => Some((user, password)),
            _ => None,
        }
    }

    #[test]
    fn docker_config_json_gives_the_registry_s_credentials() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("robot:s3cret");
        let cases = [
            (
                "an auth field",
                format!(r#"{{"auths":{{"registry.example.com":{{"auth":"{encoded}"}}}}}}"#),
                "registry.example.com",
                Some(("robot", "s3cret")),
            ),
            (
                "username and password",
                r#"{"auths":{"https://registry.example.com:5000/v2/":{"username":"u","password":"p"}}}"#.to_owned(),
                "registry.example.com:5000",
                Some(("u", "p")),
            ),
            (
                "Docker Hub under its legacy key",
                format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{encoded}"}}}}}}"#),
                "docker.io",
                Some(("robot", "s3cret")),
            ),
            (
                "the older .dockercfg map",
                format!(r#"{{"registry.example.com":{{"auth":"{encoded}"}}}}"#),
                "registry.example.com",
                Some(("robot", "s3cret")),
            ),
            (
                "another registry's credentials",
                format!(r#"{{"auths":{{"other.example.com":{{"auth":"{encoded}"}}}}}}"#),
                "registry.example.com",
                None,
            ),
            ("not JSON", "{".to_owned(), "registry.example.com", None),
        ];
        for (description, json, registry, expected) in cases {
            let expected = expected.map(|(u, p)| (u.to_owned(), p.to_owned()));
            assert_eq!(
                basic(docker_config_auth(json.as_bytes(), registry)),
                expected,
                "{description}"
            );
        }
    }

    #[test]
    fn loopback_and_named_registries_speak_plain_http() {
        let resolver = RegistryResolver::new(
            RegistrySettings {
                insecure: vec!["registry.lan:5000".to_owned(), "mirror.lan".to_owned()],
                skip_unreachable: false,
            },
            None,
        );
        let cases = [
            ("127.0.0.1:5000", true),
            ("127.8.9.10", true),
            ("localhost:5000", true),
            ("[::1]:5000", true),
            ("registry.lan:5000", true),
            ("registry.lan:5001", false),
            ("mirror.lan:443", true),
            ("registry.example.com", false),
            ("10.0.0.1:5000", false),
        ];
        for (registry, plain) in cases {
            assert_eq!(resolver.plain_http(registry), plain, "{registry}");
        }
    }
}
