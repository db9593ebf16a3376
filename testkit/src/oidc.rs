//! An OIDC identity provider for a test: a small axum server on a free loopback port
//! that publishes its discovery document (`/.well-known/openid-configuration`) and its
//! keys (`/jwks.json`), and signing keys that mint tokens as it would.
//!
//! - [`SigningKey`]: the committed test keys (`testkit/keys/`, test-only: anyone can
//!   read them), each with a `kid`; [`SigningKey::sign`] makes a JWT of any claims.
//! - [`TestIdp::start`] publishes some keys; [`TestIdp::publish`] replaces them (a key
//!   rotation); [`TestIdp::set_down`] makes both documents answer `503`, as a provider
//!   in an outage does; [`TestIdp::jwks_fetches`] counts the key set's fetches.
//! - [`TestIdp::claims`]: the claims a valid token for an audience carries (`iss`,
//!   `aud`, `sub`, `iat`, `exp` five minutes on), to change one at a time.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// The first RSA test key (test-only; see `testkit/keys/README.md`).
const RSA_A: &str = include_str!("../keys/oidc-rsa-a.pem");
/// The second RSA test key: the one a provider rotates to, or a forger's.
const RSA_B: &str = include_str!("../keys/oidc-rsa-b.pem");
/// The P-256 test key.
const EC: &str = include_str!("../keys/oidc-ec.pem");

/// A key the test provider signs with, and its public half as a JWK.
#[derive(Clone)]
pub struct SigningKey {
    /// Its key id, as tokens' headers and the JWKS name it.
    pub kid: String,
    /// RS256 or ES256.
    pub alg: Algorithm,
    key: EncodingKey,
    /// The public key as published, with `kid`, `alg` and `use`.
    pub jwk: Value,
    /// The private key's PEM (for tests that misuse it, as an HMAC secret, say).
    pub pem: &'static str,
}

impl SigningKey {
    /// The first RSA key (RS256), named `kid`.
    pub fn rsa_a(kid: &str) -> Self {
        Self::new(kid, Algorithm::RS256, RSA_A)
    }

    /// The second RSA key (RS256), named `kid`.
    pub fn rsa_b(kid: &str) -> Self {
        Self::new(kid, Algorithm::RS256, RSA_B)
    }

    /// The P-256 key (ES256), named `kid`.
    pub fn ec(kid: &str) -> Self {
        Self::new(kid, Algorithm::ES256, EC)
    }

    fn new(kid: &str, alg: Algorithm, pem: &'static str) -> Self {
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .unwrap_or_else(|e| panic!("test key {kid}: {e}"));
        let mut jwk = Jwk::from_encoding_key(&key, alg)
            .ok()
            .and_then(|jwk| serde_json::to_value(jwk).ok())
            .unwrap_or_else(|| panic!("test key {kid}: no JWK"));
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        Self {
            kid: kid.to_owned(),
            alg,
            key,
            jwk,
            pem,
        }
    }

    /// A JWT of `claims`, signed with this key, its header naming the key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(claims, Some(&self.kid))
    }

    /// A JWT of `claims` signed with this key, its header naming `kid` (or none).
    pub fn sign_as(&self, claims: &Value, kid: Option<&str>) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        encode(&header, claims, &self.key).unwrap_or_else(|e| panic!("signing: {e}"))
    }
}

/// A token whose header says `alg` and whose signature is `signature`, made by hand:
/// what no library would sign (`"alg": "none"`, say).
pub fn unsigned_token(header: &Value, claims: &Value, signature: &str) -> String {
    let part = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.{signature}", part(header), part(claims))
}

/// Seconds since the epoch, as `exp`, `nbf` and `iat` count.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// What the provider's handlers and its owner share.
struct Shared {
    issuer: String,
    state: Mutex<IdpState>,
}

struct IdpState {
    keys: Vec<Value>,
    down: bool,
    jwks_fetches: usize,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, IdpState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An identity provider on a loopback port; stops on drop.
pub struct TestIdp {
    /// Its issuer, `http://127.0.0.1:PORT`: what tokens' `iss` says.
    pub issuer: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestIdp {
    /// Starts a provider publishing `keys`.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("a free port for the identity provider: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the identity provider's address: {e}"));
        let issuer = format!("http://{addr}");
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            state: Mutex::new(IdpState {
                keys: keys.iter().map(|k| k.jwk.clone()).collect(),
                down: false,
                jwks_fetches: 0,
            }),
        });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks.json", get(jwks))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("identity provider at {addr}: {e}");
            }
        });
        Self {
            issuer,
            shared,
            server,
        }
    }

    /// Publishes `keys` instead of the keys published so far (a rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        self.shared.state().keys = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// Makes both documents answer `503` (`true`) or answer again (`false`).
    pub fn set_down(&self, down: bool) {
        self.shared.state().down = down;
    }

    /// How often the key set was fetched (answered or not).
    pub fn jwks_fetches(&self) -> usize {
        self.shared.state().jwks_fetches
    }

    /// The URL of its key set.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.issuer)
    }

    /// The claims of a valid token of this provider for `audience` about `sub`, valid
    /// for five more minutes; change or add claims with `extra` (a JSON object).
    pub fn claims(&self, audience: &str, sub: &str, extra: Value) -> Value {
        let mut claims = json!({
            "iss": self.issuer,
            "aud": audience,
            "sub": sub,
            "iat": now(),
            "exp": now() + 300,
        });
        if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            claims.extend(extra);
        }
        claims
    }
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    if shared.state().down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    Json(json!({
        "issuer": shared.issuer,
        "jwks_uri": format!("{}/jwks.json", shared.issuer),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
    .into_response()
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    let mut state = shared.state();
    state.jwks_fetches += 1;
    if state.down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    Json(json!({ "keys": state.keys })).into_response()
}
