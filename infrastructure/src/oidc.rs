//! The identity provider's side of OIDC bearer tokens: its signing keys (JWKS), fetched
//! over HTTP and cached, and the check of a JWT against them with `jsonwebtoken`; and
//! the API tokens' names, which no OIDC subject may take.
//!
//! What is checked: the signature, by the key the token's `kid` names (any key of its
//! algorithm when it names none), with RS256 or ES256 only (never `none`, never an HMAC
//! algorithm, which would let a public key serve as a shared secret); `iss` equal to
//! the configured issuer; the configured audience among `aud`; `exp` and `nbf` with
//! [`LEEWAY_SECONDS`] of clock skew; and a `sub`.
//!
//! The keys are fetched when first needed (so shiplog starts while the provider is
//! down), again when they are older than [`JWKS_MAX_AGE`] (a key the provider withdrew
//! stops being accepted), and again when a token names a `kid` they lack (the provider
//! rotated its keys). Fetches happen at most once per refetch interval, one at a time,
//! so tokens with made-up `kid`s cannot make shiplog hammer the provider. When a fetch
//! fails the keys already fetched stay in use; with none at all, a token cannot be
//! checked and the answer is 503, not 401: it is an outage, not a bad token.

use async_trait::async_trait;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use reqwest::Url;
use serde::Deserialize;
use shiplog_application::oidc::{ClaimMapping, Claims, JwtVerifier, TokenIdentities};
use shiplog_application::AppError;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;
use tracing::{debug, info, instrument, warn};

use crate::db::app_error;

/// The algorithms a token may be signed with: the asymmetric ones identity providers use.
pub const ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];
/// Seconds of clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 30;
/// How long fetched keys are used before they are fetched again.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// The default of `--oidc-jwks-refetch-interval`: the least time between two fetches.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// How long one request to the provider may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest discovery document or JWKS read; a key set is a few kilobytes.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// Which identity provider's tokens are accepted, and what their claims grant.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcSettings {
    /// The issuer (`iss`) tokens must name, exactly; its discovery document is at
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// The audience (`aud`) tokens must include: shiplog's client id at the provider.
    pub audience: String,
    /// Where the provider publishes its keys; `None`: the discovery document's `jwks_uri`.
    pub jwks_url: Option<String>,
    /// The least time between two fetches of the keys (or of the discovery document).
    pub refetch_interval: Duration,
    /// Which claims give teams and scopes, and the actor prefix.
    pub claims: ClaimMapping,
}

/// Why the OIDC settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OidcSetupError {
    /// The issuer is not an http(s) URL.
    #[error(
        "--oidc-issuer {0:?} is not an http(s) URL such as https://login.example.com/realms/ops"
    )]
    Issuer(String),
    /// The JWKS URL is not an http(s) URL.
    #[error("--oidc-jwks-url {0:?} is not an http(s) URL")]
    JwksUrl(String),
    /// The audience is empty.
    #[error("--oidc-audience must not be empty")]
    Audience,
    /// This build has no crypto backend for `jsonwebtoken`.
    #[error("this build of shiplog cannot check JWT signatures (no jsonwebtoken crypto provider)")]
    NoCrypto,
    /// The HTTP client cannot be built (no TLS roots, say).
    #[error("cannot build the HTTP client for the identity provider: {0}")]
    Client(String),
}

/// One key a token may be verified with.
struct VerifyingKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The provider's usable keys, and when they were fetched.
struct KeySet {
    keys: Vec<VerifyingKey>,
    fetched_at: Instant,
}

impl KeySet {
    /// The keys a token with `kid` and `alg` may have been signed with.
    fn matching(&self, kid: Option<&str>, alg: Algorithm) -> Vec<DecodingKey> {
        self.keys
            .iter()
            .filter(|k| k.alg == alg && (kid.is_none() || k.kid.as_deref() == kid))
            .map(|k| k.key.clone())
            .collect()
    }
}

/// The state of fetching: when it was last tried, why it failed, and the discovered
/// JWKS URL. Held while a fetch runs, so that only one runs at a time.
#[derive(Default)]
struct Fetching {
    last_attempt: Option<Instant>,
    last_error: Option<String>,
    discovered: Option<Url>,
}

/// Checks JWTs against an identity provider's published keys.
pub struct JwksVerifier {
    issuer: String,
    audience: String,
    jwks_url: Option<Url>,
    discovery_url: Url,
    refetch_interval: Duration,
    http: reqwest::Client,
    keys: RwLock<Option<Arc<KeySet>>>,
    fetching: Mutex<Fetching>,
}

/// An http(s) URL, or `None`.
fn http_url(raw: &str) -> Option<Url> {
    Url::parse(raw)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
}

impl JwksVerifier {
    /// A verifier for `settings`' provider; nothing is fetched yet.
    pub fn new(settings: &OidcSettings) -> Result<Self, OidcSetupError> {
        let issuer = http_url(&settings.issuer)
            .ok_or_else(|| OidcSetupError::Issuer(settings.issuer.clone()))?;
        let jwks_url = match &settings.jwks_url {
            Some(raw) => Some(http_url(raw).ok_or_else(|| OidcSetupError::JwksUrl(raw.clone()))?),
            None => None,
        };
        if settings.audience.trim().is_empty() {
            return Err(OidcSetupError::Audience);
        }
        // Fail at start, not on the first token, when no backend was compiled in.
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err(OidcSetupError::NoCrypto);
        }
        // OIDC Discovery: the issuer's path, then /.well-known/openid-configuration.
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            settings.issuer.trim_end_matches('/')
        );
        let discovery_url =
            http_url(&discovery).ok_or_else(|| OidcSetupError::Issuer(settings.issuer.clone()))?;
        for url in std::iter::once(&issuer).chain(jwks_url.as_ref()) {
            if url.scheme() == "http" && !is_loopback(url) {
                warn!(%url, "OIDC: the identity provider is spoken to over plain HTTP; anyone on the path can forge its keys (use https)");
            }
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| OidcSetupError::Client(e.to_string()))?;
        Ok(Self {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            jwks_url,
            discovery_url,
            refetch_interval: settings.refetch_interval,
            http,
            keys: RwLock::new(None),
            fetching: Mutex::new(Fetching::default()),
        })
    }

    /// The keys that may have signed a token with `kid` and `alg`, fetching the key set
    /// when there is none, it is old, or it lacks `kid`. Fails only when no key set was
    /// ever fetched.
    async fn keys_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<DecodingKey>, AppError> {
        let cached = self.keys.read().await.clone();
        if let Some(set) = &cached {
            let found = set.matching(kid, alg);
            if !found.is_empty() && set.fetched_at.elapsed() < JWKS_MAX_AGE {
                return Ok(found);
            }
        }
        let refreshed = self.refresh().await;
        match self.keys.read().await.clone() {
            // Old keys, when the provider cannot be reached: better than locking everyone out.
            Some(set) => Ok(set.matching(kid, alg)),
            None => Err(AppError::IdentityProviderUnavailable(format!(
                "no signing keys of the identity provider {}: {}",
                self.issuer,
                refreshed
                    .err()
                    .unwrap_or_else(|| "none fetched yet".to_owned())
            ))),
        }
    }

    /// Fetches the key set again unless that was tried less than the refetch interval
    /// ago; one fetch at a time (who waits for it sees its result).
    async fn refresh(&self) -> Result<(), String> {
        let mut fetching = self.fetching.lock().await;
        if let Some(at) = fetching.last_attempt {
            if at.elapsed() < self.refetch_interval {
                return match &fetching.last_error {
                    Some(error) => Err(error.clone()),
                    None => Ok(()),
                };
            }
        }
        fetching.last_attempt = Some(Instant::now());
        match self.fetch(&mut fetching).await {
            Ok(set) => {
                info!(issuer = %self.issuer, keys = set.keys.len(), "OIDC: identity provider keys fetched");
                *self.keys.write().await = Some(Arc::new(set));
                fetching.last_error = None;
                Ok(())
            }
            Err(error) => {
                warn!(issuer = %self.issuer, %error, "OIDC: cannot fetch the identity provider's keys");
                fetching.last_error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Fetches the key set (after the discovery document, the first time, when no JWKS
    /// URL is configured). A set with no usable key is an error: the old one stays.
    async fn fetch(&self, fetching: &mut Fetching) -> Result<KeySet, String> {
        let url = match (&self.jwks_url, &fetching.discovered) {
            (Some(url), _) | (None, Some(url)) => url.clone(),
            (None, None) => {
                let url = self.discover().await?;
                fetching.discovered = Some(url.clone());
                url
            }
        };
        let document: JwksDocument = self.get_json(&url).await?;
        let keys: Vec<VerifyingKey> = document.keys.iter().filter_map(usable_key).collect();
        if keys.is_empty() {
            return Err(format!(
                "{url} holds no RS256 or ES256 signing key ({} keys in all)",
                document.keys.len()
            ));
        }
        Ok(KeySet {
            keys,
            fetched_at: Instant::now(),
        })
    }

    /// The JWKS URL the discovery document names; its `issuer` must be ours.
    async fn discover(&self) -> Result<Url, String> {
        let document: Discovery = self.get_json(&self.discovery_url).await?;
        if document.issuer != self.issuer {
            return Err(format!(
                "{} names the issuer {:?}, not {:?}",
                self.discovery_url, document.issuer, self.issuer
            ));
        }
        http_url(&document.jwks_uri).ok_or_else(|| {
            format!(
                "{} names a jwks_uri that is not an http(s) URL: {:?}",
                self.discovery_url, document.jwks_uri
            )
        })
    }

    /// GETs `url` and reads its JSON body (at most [`MAX_DOCUMENT_BYTES`]).
    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &Url) -> Result<T, String> {
        let mut response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "{url} answered more than {MAX_DOCUMENT_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url} answered no valid document: {e}"))
    }
}

/// Whether `url` names a loopback host (where plain HTTP stays on the machine).
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host.ends_with(".localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What shiplog reads of the discovery document.
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// A JWKS, each key read on its own so that one shiplog cannot read spoils none of the others.
#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

/// The key `raw` describes, when it is a signing key of an allowed algorithm: RSA for
/// RS256, P-256 for ES256. A key that names its algorithm is used with that one only.
fn usable_key(raw: &serde_json::Value) -> Option<VerifyingKey> {
    let jwk: Jwk = serde_json::from_value(raw.clone()).ok()?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|use_| *use_ != PublicKeyUse::Signature)
    {
        return None;
    }
    let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        (_, Some(named)) => Algorithm::try_from(named).ok()?,
        _ => return None,
    };
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        _ => false,
    };
    if !fits {
        return None;
    }
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(VerifyingKey {
        kid: jwk.common.key_id,
        alg,
        key,
    })
}

#[async_trait]
impl JwtVerifier for JwksVerifier {
    #[instrument(skip_all)]
    async fn verify(&self, token: &str) -> Result<Option<Claims>, AppError> {
        let header = match decode_header(token) {
            Ok(header) => header,
            Err(error) => {
                debug!(%error, "OIDC token refused: its header is not a JWT's");
                return Ok(None);
            }
        };
        if !ALGORITHMS.contains(&header.alg) {
            debug!(alg = ?header.alg, "OIDC token refused: its algorithm is not RS256 or ES256");
            return Ok(None);
        }
        let keys = self.keys_for(header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let mut refusal = None;
        for key in &keys {
            match decode::<Claims>(token, key, &validation) {
                Ok(data) => return Ok(Some(data.claims)),
                Err(error) => refusal = Some(error.to_string()),
            }
        }
        debug!(
            kid = ?header.kid,
            why = refusal.as_deref().unwrap_or("no key of the identity provider has this kid"),
            "OIDC token refused"
        );
        Ok(None)
    }
}

/// The names and subjects of API tokens, in the `api_tokens` table.
pub struct PgTokenIdentities {
    pool: PgPool,
}

impl PgTokenIdentities {
    /// Reads `api_tokens` on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl TokenIdentities for PgTokenIdentities {
    async fn taken(&self, principal: &str) -> Result<bool, AppError> {
        // Revoked tokens count: their subject still owns what they created.
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM api_tokens WHERE name = $1)
                 OR EXISTS (SELECT 1 FROM api_tokens WHERE subject = $1)",
        )
        .bind(principal)
        .fetch_one(&self.pool)
        .await
        .map_err(app_error)
    }
}
