//! OIDC bearer tokens: a JWT of the configured identity provider is accepted beside API
//! tokens, its `sub` acting and owning, its claims giving teams and scopes; a forged,
//! expired or misaddressed one is a 401, a provider whose keys cannot be had a 503.

use crate::helpers::{deploy_body, TestApp, ADMIN_TOKEN};
use crate::problem_types::problem_type;
use crate::sse::SseStream;
use reqwest::Method;
use serde_json::{json, Value};
use shiplog_application::oidc::ClaimMapping;
use shiplog_infrastructure::oidc::OidcSettings;
use shiplog_testkit::oidc::{now, unsigned_token};
use shiplog_testkit::{eventually, SigningKey, TestIdp};
use std::time::Duration;
use uuid::Uuid;

/// The audience shiplog is configured with: its client id at the provider.
const AUDIENCE: &str = "shiplog";

/// Every scope a user who registers and deploys needs.
const DEPLOYER: &str = "usecases:read usecases:write deployments:read deployments:write";

/// The OIDC settings of a shiplog that trusts `idp` (keys found through discovery).
fn trusting(idp: &TestIdp, refetch_interval: Duration) -> OidcSettings {
    OidcSettings {
        issuer: idp.issuer.clone(),
        audience: AUDIENCE.to_owned(),
        jwks_url: None,
        refetch_interval,
        claims: ClaimMapping::default(),
    }
}

/// shiplog trusting `idp`, with the default refetch interval (30 s: no refetch in a test).
async fn app_trusting(idp: &TestIdp) -> TestApp {
    let settings = trusting(idp, Duration::from_secs(30));
    TestApp::spawn_configured(|s| s.oidc = Some(settings)).await
}

/// A token of `idp`, signed with `key`, for `sub` with the claims in `extra`.
fn token(idp: &TestIdp, key: &SigningKey, sub: &str, extra: Value) -> String {
    key.sign(&idp.claims(AUDIENCE, sub, extra))
}

#[tokio::test]
async fn a_token_with_the_right_claims_registers_and_deploys_and_the_ledger_names_its_subject() {
    let key = SigningKey::rsa_a("2024-a");
    let idp = TestIdp::start(&[&key]).await;
    let app = app_trusting(&idp).await;
    let alice = token(
        &idp,
        &key,
        "alice@example.com",
        json!({"shiplog_scopes": DEPLOYER}),
    );

    let (status, created) = app
        .send(
            Method::POST,
            "/api/usecases",
            Some(&alice),
            Some(json!({"name": "chat"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let (status, deployed) = app
        .send(
            Method::POST,
            &format!("/api/usecases/{id}/deployments"),
            Some(&alice),
            Some(deploy_body("1.0")),
        )
        .await;
    assert_eq!(status, 202, "{deployed}");

    let (status, history) = app
        .send(
            Method::GET,
            &format!("/api/usecases/{id}/history"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, 200, "{history}");
    let trail: Vec<(&str, &str)> = history["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default(),
                e["actor"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        trail,
        [
            ("UsecaseRegistered", "alice@example.com"),
            ("DeploymentRequested", "alice@example.com")
        ]
    );
    assert_eq!(
        history["items"][0]["payload"]["UsecaseRegistered"]["owner"], "alice@example.com",
        "the subject owns what it registers: {history}"
    );

    // Another subject of the same provider, with the same scopes, does not own it.
    let bob = token(
        &idp,
        &key,
        "bob@example.com",
        json!({"shiplog_scopes": DEPLOYER}),
    );
    let (status, refused) = app
        .send(
            Method::GET,
            &format!("/api/usecases/{id}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(
        (status, refused["type"].as_str()),
        (403, Some(problem_type("not-owner").as_str())),
        "{refused}"
    );
    // API tokens work as before beside OIDC.
    let (status, _) = app
        .send(
            Method::GET,
            &format!("/api/usecases/{id}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_es256_token_is_accepted_and_streams_take_one_as_access_token() {
    let key = SigningKey::ec("ec-1");
    let idp = TestIdp::start(&[&key]).await;
    let app = app_trusting(&idp).await;
    let auditor = token(
        &idp,
        &key,
        "auditor",
        json!({"shiplog_scopes": ["audit:read"]}),
    );

    let (status, body) = app
        .send(Method::GET, "/api/events", Some(&auditor), None)
        .await;
    assert_eq!(status, 200, "{body}");
    // A browser's EventSource sends no header: the JWT comes in the query.
    let stream = SseStream::open(
        &app.url(&format!("/api/events/stream?access_token={auditor}")),
        &[],
    )
    .await;
    assert_eq!(stream.status, 200);
    // A stream ticket could not check the JWT again on use: the JWT is the way.
    let (status, body) = app
        .send(Method::POST, "/api/stream-tickets", Some(&auditor), None)
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("access_token")),
        "{body}"
    );
}

#[tokio::test]
async fn forged_expired_and_misaddressed_tokens_are_refused_with_401() {
    let key = SigningKey::rsa_a("a");
    let forger = SigningKey::rsa_b("a");
    let idp = TestIdp::start(&[&key]).await;
    let app = app_trusting(&idp).await;
    let scopes = json!({"shiplog_scopes": DEPLOYER});
    let claims = |extra: Value| {
        let mut claims = idp.claims(AUDIENCE, "mallory", scopes.clone());
        if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            claims.extend(extra);
        }
        claims
    };
    let valid = key.sign(&claims(json!({})));
    let (status, body) = app
        .send(Method::GET, "/api/usecases", Some(&valid), None)
        .await;
    assert_eq!(status, 200, "the control case: {body}");
    let within_leeway = key.sign(&claims(json!({"exp": now() - 10})));
    let (status, body) = app
        .send(Method::GET, "/api/usecases", Some(&within_leeway), None)
        .await;
    assert_eq!(status, 200, "10 s past exp is clock skew: {body}");

    let mut no_sub = claims(json!({}));
    no_sub.as_object_mut().map(|c| c.remove("sub"));
    let good_signature = valid.rsplit('.').next().unwrap_or_default().to_owned();
    // (description, token)
    let cases: Vec<(&str, String)> = vec![
        (
            "signed with another key under the provider's kid",
            forger.sign(&claims(json!({}))),
        ),
        (
            "claims changed after signing",
            unsigned_token(
                &json!({"alg": "RS256", "kid": "a"}),
                &claims(json!({"sub": "admin-of-everything"})),
                &good_signature,
            ),
        ),
        ("expired", key.sign(&claims(json!({"exp": now() - 120})))),
        (
            "not yet valid",
            key.sign(&claims(json!({"nbf": now() + 120}))),
        ),
        (
            "for another audience",
            key.sign(&claims(json!({"aud": "another-service"}))),
        ),
        (
            "from another issuer",
            key.sign(&claims(json!({"iss": "https://evil.example.com"}))),
        ),
        ("without a sub", key.sign(&no_sub)),
        ("without an exp", {
            let mut endless = claims(json!({}));
            endless.as_object_mut().map(|c| c.remove("exp"));
            key.sign(&endless)
        }),
        (
            "alg none",
            unsigned_token(
                &json!({"alg": "none", "typ": "JWT"}),
                &claims(json!({})),
                "",
            ),
        ),
        ("HS256 with the provider's public key as the secret", {
            let secret = jsonwebtoken::EncodingKey::from_secret(key.jwk.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some("a".to_owned());
            jsonwebtoken::encode(&header, &claims(json!({})), &secret)
                .unwrap_or_else(|e| panic!("{e}"))
        }),
        ("three parts of garbage", "abc.def.ghi".to_owned()),
    ];
    for (description, token) in cases {
        let response = app
            .client
            .get(app.url("/api/usecases"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let problem: Value = response.json().await.unwrap_or_default();
        assert_eq!(
            (status, problem["type"].as_str(), challenge.as_deref()),
            (
                401,
                Some(problem_type("unauthorized").as_str()),
                Some("Bearer")
            ),
            "{description}: {problem}"
        );
    }
    assert_eq!(
        idp.jwks_fetches(),
        1,
        "refused tokens naming the known kid fetch nothing more"
    );
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_made_up_kids_do_not_hammer_the_provider() {
    let old = SigningKey::rsa_a("2024");
    let new = SigningKey::rsa_b("2025");
    let idp = TestIdp::start(&[&old]).await;
    let settings = trusting(&idp, Duration::from_millis(500));
    let app = TestApp::spawn_configured(|s| s.oidc = Some(settings)).await;
    let reader = json!({"shiplog_scopes": "usecases:read"});

    let (status, body) = app
        .send(
            Method::GET,
            "/api/usecases",
            Some(&token(&idp, &old, "carol", reader.clone())),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(idp.jwks_fetches(), 1);

    // The provider rotates: the new key signs from now on.
    idp.publish(&[&old, &new]);
    let rotated = token(&idp, &new, "carol", reader.clone());
    eventually("a token of the rotated key is accepted", || async {
        match app
            .send(Method::GET, "/api/usecases", Some(&rotated), None)
            .await
        {
            (200, _) => Ok(()),
            other => Err(other),
        }
    })
    .await;
    assert_eq!(
        idp.jwks_fetches(),
        2,
        "one refetch, however often the unknown kid was tried within the interval"
    );

    // Made-up kids right after: refused, and no fetch within the interval.
    for n in 0..10 {
        let forged = new.sign_as(
            &idp.claims(AUDIENCE, "carol", reader.clone()),
            Some(&format!("made-up-{n}")),
        );
        let (status, body) = app
            .send(Method::GET, "/api/usecases", Some(&forged), None)
            .await;
        assert_eq!(status, 401, "{body}");
    }
    assert!(
        idp.jwks_fetches() <= 3,
        "at most one fetch per interval: {}",
        idp.jwks_fetches()
    );
}

#[tokio::test]
async fn with_the_provider_down_and_no_keys_cached_a_token_gets_503_with_retry_after() {
    let key = SigningKey::rsa_a("a");
    let idp = TestIdp::start(&[&key]).await;
    idp.set_down(true);
    let settings = OidcSettings {
        jwks_url: Some(idp.jwks_url()),
        ..trusting(&idp, Duration::from_millis(300))
    };
    let app = TestApp::spawn_configured(|s| s.oidc = Some(settings)).await;
    let dave = token(
        &idp,
        &key,
        "dave",
        json!({"shiplog_scopes": "usecases:read"}),
    );

    let response = app
        .client
        .get(app.url("/api/usecases"))
        .bearer_auth(&dave)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 503);
    assert!(
        response.headers().contains_key("retry-after"),
        "{:?}",
        response.headers()
    );
    let problem: Value = response.json().await.unwrap_or_default();
    assert_eq!(
        problem["type"],
        problem_type("identity-provider-unavailable"),
        "{problem}"
    );
    // API tokens do not depend on the provider.
    let (status, _) = app
        .send(Method::GET, "/api/usecases", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(status, 200);

    idp.set_down(false);
    eventually(
        "the provider's token is accepted once it is back",
        || async {
            match app
                .send(Method::GET, "/api/usecases", Some(&dave), None)
                .await
            {
                (200, _) => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn the_teams_claim_grants_a_teams_usecases_and_the_scopes_claim_limits_what_a_token_may_do() {
    let key = SigningKey::rsa_a("a");
    let idp = TestIdp::start(&[&key]).await;
    let app = app_trusting(&idp).await;
    let team = |name: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app.post("/api/teams", json!({"name": name})).await;
            assert_eq!(status, 201, "{body}");
            body["id"].as_str().unwrap_or_default().to_owned()
        }
    };
    let core = team("core").await;
    let ml = team("ml").await;
    let (status, usecase) = app
        .send(
            Method::POST,
            &format!("/api/usecases?team_id={core}"),
            Some(ADMIN_TOKEN),
            Some(json!({"name": "core-chat"})),
        )
        .await;
    assert_eq!(status, 201, "{usecase}");
    let path = format!(
        "/api/usecases/{}",
        usecase["id"].as_str().unwrap_or_default()
    );
    let read = "usecases:read";

    // (description, extra claims, status, problem)
    let cases = [
        (
            "a member by team name",
            json!({"groups": ["core"], "shiplog_scopes": read}),
            200,
            None,
        ),
        (
            "a member by team id",
            json!({"groups": [core], "shiplog_scopes": read}),
            200,
            None,
        ),
        (
            "a single group as a string",
            json!({"groups": "core", "shiplog_scopes": [read]}),
            200,
            None,
        ),
        (
            "another team and unknown groups",
            json!({"groups": ["ml", "nope", Uuid::new_v4()], "shiplog_scopes": read}),
            403,
            Some("not-owner"),
        ),
        (
            "no groups claim",
            json!({"shiplog_scopes": read}),
            403,
            Some("not-owner"),
        ),
        (
            "a member without the scopes claim",
            json!({"groups": ["core"]}),
            403,
            Some("missing-scope"),
        ),
        (
            "a member with unknown scopes only",
            json!({"groups": ["core"], "shiplog_scopes": "openid profile"}),
            403,
            Some("missing-scope"),
        ),
    ];
    for (description, extra, expected, kind) in cases {
        let jwt = token(&idp, &key, "erin", extra);
        let (status, body) = app.send(Method::GET, &path, Some(&jwt), None).await;
        assert_eq!(status, expected, "{description}: {body}");
        if let Some(kind) = kind {
            assert_eq!(body["type"], problem_type(kind), "{description}: {body}");
        }
    }

    // A member creates in its team; a reader may not create at all.
    let member = token(
        &idp,
        &key,
        "erin",
        json!({"groups": ["core", "ml"], "shiplog_scopes": DEPLOYER}),
    );
    let (status, body) = app
        .send(
            Method::POST,
            &format!("/api/usecases?team_id={ml}"),
            Some(&member),
            Some(json!({"name": "ml-chat"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let reader = token(&idp, &key, "erin", json!({"shiplog_scopes": read}));
    let (status, body) = app
        .send(
            Method::POST,
            "/api/usecases",
            Some(&reader),
            Some(json!({"name": "nope"})),
        )
        .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (403, Some(problem_type("missing-scope").as_str())),
        "{body}"
    );
}

#[tokio::test]
async fn a_subject_cannot_take_over_an_api_tokens_usecases_or_shiplogs_own_names() {
    let key = SigningKey::rsa_a("a");
    let idp = TestIdp::start(&[&key]).await;
    let app = app_trusting(&idp).await;
    let (status, ci) = app
        .post(
            "/api/tokens",
            json!({"name": "ci", "scopes": ["usecases:read", "usecases:write"], "subject": "platform-bot"}),
        )
        .await;
    assert_eq!(status, 201, "{ci}");
    let ci_secret = ci["token"].as_str().unwrap_or_default().to_owned();
    let (status, owned) = app
        .send(
            Method::POST,
            "/api/usecases",
            Some(&ci_secret),
            Some(json!({"name": "bots-own"})),
        )
        .await;
    assert_eq!(status, 201, "{owned}");
    let everything = json!({"shiplog_scopes": "usecases:read"});

    for (description, sub) in [
        ("an API token's name", "ci"),
        ("an API token's subject", "platform-bot"),
        ("the bootstrap admin", "admin"),
        ("the process manager", "process-manager"),
        ("the auto-update watcher", "auto-update"),
    ] {
        let jwt = token(&idp, &key, sub, everything.clone());
        let (status, body) = app
            .send(Method::GET, "/api/usecases", Some(&jwt), None)
            .await;
        assert_eq!(status, 401, "{description}: {body}");
    }
    // Revoking the token does not free its subject: what it created is still owned by it.
    let token_id = ci["id"].as_str().unwrap_or_default();
    let (status, _) = app.delete(&format!("/api/tokens/{token_id}")).await;
    assert_eq!(status, 204);
    let jwt = token(&idp, &key, "platform-bot", everything.clone());
    let (status, body) = app
        .send(Method::GET, "/api/usecases", Some(&jwt), None)
        .await;
    assert_eq!(status, 401, "a revoked token's subject: {body}");

    // With a prefix the provider's subjects are apart by construction.
    let settings = OidcSettings {
        claims: ClaimMapping {
            actor_prefix: "oidc:".to_owned(),
            ..ClaimMapping::default()
        },
        ..trusting(&idp, Duration::from_secs(30))
    };
    let prefixed = TestApp::spawn_configured(|s| s.oidc = Some(settings)).await;
    let jwt = token(
        &idp,
        &key,
        "admin",
        json!({"shiplog_scopes": "usecases:write usecases:read"}),
    );
    let (status, created) = prefixed
        .send(
            Method::POST,
            "/api/usecases",
            Some(&jwt),
            Some(json!({"name": "mine"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap_or_default();
    let (_, history) = prefixed.get(&format!("/api/usecases/{id}/history")).await;
    assert_eq!(history["items"][0]["actor"], "oidc:admin", "{history}");
}
