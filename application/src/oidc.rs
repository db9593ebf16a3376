//! OIDC bearer tokens: a JWT an identity provider signed becomes a principal beside
//! shiplog's own API tokens. Verifying the token (signature, issuer, audience, times)
//! is a port ([`JwtVerifier`]) the infrastructure implements with the provider's keys;
//! what the verified claims grant (actor and owner, teams, scopes) is decided here.
//!
//! An identity provider chooses its subjects, shiplog's admins choose the names and
//! subjects of API tokens: the two would meet in ownership (a usecase belongs to a
//! subject) and in the audit trail (the actor). So a subject that is the name or the
//! subject of any API token ever issued, or a name shiplog acts under itself (the
//! bootstrap `admin`, `process-manager`, `auto-update`), is refused: no account at
//! the provider can take over what an API token created, or act under its name. `--oidc-actor-prefix` (say `oidc:`) keeps the two apart by construction.

use crate::auth::{Principal, Scope, BOOTSTRAP_ADMIN, MAX_PRINCIPAL_LEN};
use crate::auto_update::AUTO_UPDATE;
use crate::error::AppError;
use crate::ports::{ReadModel, TeamView};
use crate::process_manager::PROCESS_MANAGER;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use shiplog_domain::config::normalized_name;
use std::sync::Arc;
use tracing::{debug, warn};
use uuid::Uuid;

/// The claims of a verified token, as the provider wrote them.
pub type Claims = serde_json::Map<String, Value>;

/// Checks a JWT against the identity provider: its signature against the provider's
/// published keys (JWKS), its issuer, audience, expiry and not-before.
#[async_trait]
pub trait JwtVerifier: Send + Sync {
    /// The claims of `token` when it checks out (with a `sub`); `None` when it does not
    /// (forged, expired, for another audience, not a JWT at all): a 401. An error only
    /// when the provider's keys cannot be had at all: [`AppError::IdentityProviderUnavailable`].
    async fn verify(&self, token: &str) -> Result<Option<Claims>, AppError>;
}

/// The names API tokens have taken, which no OIDC subject may take over.
#[async_trait]
pub trait TokenIdentities: Send + Sync {
    /// Whether `principal` is the name or the subject of an API token ever issued
    /// (revoked ones too: what they created is still owned by their subject).
    async fn taken(&self, principal: &str) -> Result<bool, AppError>;
}

/// Which claims say what (`--oidc-teams-claim`, `--oidc-scopes-claim`), and how the
/// subject becomes a principal (`--oidc-actor-prefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    /// The claim listing the caller's teams, by name or id (default `groups`).
    pub teams_claim: String,
    /// The claim listing its shiplog scopes (default `shiplog_scopes`).
    pub scopes_claim: String,
    /// Put before `sub` to make the actor and owner (default: nothing).
    pub actor_prefix: String,
}

/// The actors shiplog records for itself, which no OIDC subject may be.
pub const RESERVED_SUBJECTS: [&str; 3] = [BOOTSTRAP_ADMIN, PROCESS_MANAGER, AUTO_UPDATE];

/// The default teams claim: what most identity providers call group membership.
pub const DEFAULT_TEAMS_CLAIM: &str = "groups";
/// The default scopes claim: a private claim name, so that no provider grants shiplog
/// scopes by accident through a claim it uses for something else.
pub const DEFAULT_SCOPES_CLAIM: &str = "shiplog_scopes";

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            teams_claim: DEFAULT_TEAMS_CLAIM.to_owned(),
            scopes_claim: DEFAULT_SCOPES_CLAIM.to_owned(),
            actor_prefix: String::new(),
        }
    }
}

/// What verified claims say about the caller, before its teams are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The actor and owner: the prefix and `sub`, normalised as token names are.
    pub subject: String,
    /// The teams claim's entries (team names or ids), as written.
    pub teams: Vec<String>,
    /// The shiplog scopes of the scopes claim; unknown names are left out.
    pub scopes: Vec<Scope>,
}

impl ClaimMapping {
    /// The identity the claims describe; `Err` says why they describe none (no usable `sub`).
    pub fn identity(&self, claims: &Claims) -> Result<Identity, String> {
        let sub = match claims.get("sub") {
            Some(Value::String(sub)) => sub,
            _ => return Err("the token has no sub claim (a string)".to_owned()),
        };
        let subject = normalized_name(
            "sub",
            &format!("{}{sub}", self.actor_prefix),
            MAX_PRINCIPAL_LEN,
        )
        .map_err(|e| e.to_string())?;
        Ok(Identity {
            subject,
            teams: strings(claims.get(&self.teams_claim), false),
            scopes: scopes(claims.get(&self.scopes_claim)),
        })
    }
}

/// The strings of a claim: an array's string entries, or a single string (split at
/// spaces when `split`, as OAuth's `scope` is written). Anything else is nothing.
fn strings(claim: Option<&Value>, split: bool) -> Vec<String> {
    match claim {
        Some(Value::String(one)) if split => one.split_whitespace().map(str::to_owned).collect(),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// The scopes a scopes claim grants: a space-separated string or an array of scope
/// names; names shiplog does not know grant nothing. No claim: no scopes.
pub fn scopes(claim: Option<&Value>) -> Vec<Scope> {
    let mut granted: Vec<Scope> = strings(claim, true)
        .iter()
        .filter_map(|name| name.parse().ok())
        .collect();
    granted.sort();
    granted.dedup();
    granted
}

/// The ids of the teams `entries` name, by id or by name (as team names are kept:
/// trimmed, NFC); entries that name no team are left out.
pub fn team_ids(entries: &[String], teams: &[TeamView]) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = entries
        .iter()
        .filter_map(|entry| {
            let (by_id, name) = team_reference(entry);
            teams
                .iter()
                .find(|team| Some(team.id) == by_id || Some(&team.name) == name.as_ref())
                .map(|team| team.id)
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// What one entry of the teams claim may name: a team id, and a team name as names
/// are normalised.
fn team_reference(entry: &str) -> (Option<Uuid>, Option<String>) {
    (
        Uuid::parse_str(entry.trim()).ok(),
        normalized_name("teams", entry, usize::MAX).ok(),
    )
}

/// Turns an OIDC bearer token into a principal: actor and owner the (prefixed) `sub`,
/// teams and scopes from the configured claims.
pub struct Oidc {
    verifier: Arc<dyn JwtVerifier>,
    tokens: Arc<dyn TokenIdentities>,
    read: Arc<dyn ReadModel>,
    mapping: ClaimMapping,
}

impl Oidc {
    /// Wires the verifier of the provider's tokens, the API tokens' names (which no
    /// subject may take), the teams, and the claim mapping.
    pub fn new(
        verifier: Arc<dyn JwtVerifier>,
        tokens: Arc<dyn TokenIdentities>,
        read: Arc<dyn ReadModel>,
        mapping: ClaimMapping,
    ) -> Self {
        Self {
            verifier,
            tokens,
            read,
            mapping,
        }
    }

    /// The principal behind `token`, or `None` when it does not check out or its subject
    /// is an API token's. Fails only when the provider's keys or the database cannot be
    /// reached (503).
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, AppError> {
        Ok(self
            .authenticate_until(token)
            .await?
            .map(|(principal, _)| principal))
    }

    /// As [`Oidc::authenticate`], with the instant the token stops being valid (its
    /// `exp`), so what is derived from it (a console session) ends with it.
    pub async fn authenticate_until(
        &self,
        token: &str,
    ) -> Result<Option<(Principal, Option<DateTime<Utc>>)>, AppError> {
        let Some(claims) = self.verifier.verify(token).await? else {
            return Ok(None);
        };
        let identity = match self.mapping.identity(&claims) {
            Ok(identity) => identity,
            Err(why) => {
                debug!(%why, "OIDC token refused");
                return Ok(None);
            }
        };
        if RESERVED_SUBJECTS.contains(&identity.subject.as_str())
            || self.tokens.taken(&identity.subject).await?
        {
            // The provider vouches for this account, but the name is shiplog's or an API
            // token's: let it in and it would own that token's usecases and act under its name.
            warn!(subject = %identity.subject, "OIDC token refused: its subject is shiplog's own actor or the name or subject of an API token (set --oidc-actor-prefix to keep them apart)");
            return Ok(None);
        }
        let teams = if identity.teams.is_empty() {
            Vec::new()
        } else {
            // Only the teams the claim names are read, by index, however many exist.
            let (ids, names): (Vec<_>, Vec<_>) =
                identity.teams.iter().map(|e| team_reference(e)).unzip();
            let ids: Vec<Uuid> = ids.into_iter().flatten().collect();
            let names: Vec<String> = names.into_iter().flatten().collect();
            team_ids(&identity.teams, &self.read.teams_named(&names, &ids).await?)
        };
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_i64)
            .and_then(|exp| DateTime::from_timestamp(exp, 0));
        Ok(Some((
            Principal {
                name: identity.subject.clone(),
                subject: identity.subject,
                scopes: identity.scopes,
                teams,
            },
            expires_at,
        )))
    }
}

/// Whether `token` has the shape of a JWT (three dot-separated parts), which no API
/// token has: such a token is the identity provider's to vouch for.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && !token.starts_with("shiplog_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;
    use shiplog_domain::Tier;

    fn claims(value: Value) -> Claims {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn a_scopes_claim_is_a_string_or_an_array_and_unknown_names_grant_nothing() {
        // (description, claim, scopes granted)
        let cases = [
            ("no claim", None, vec![]),
            (
                "a space-separated string",
                Some(json!("usecases:read  deployments:write")),
                vec![Scope::UsecasesRead, Scope::DeploymentsWrite],
            ),
            (
                "an array",
                Some(json!(["audit:read", "usecases:write"])),
                vec![Scope::UsecasesWrite, Scope::AuditRead],
            ),
            (
                "unknown names and non-strings",
                Some(json!(["openid", 7, "usecases:read", "usecases:read"])),
                vec![Scope::UsecasesRead],
            ),
            ("a number", Some(json!(3)), vec![]),
            ("an empty string", Some(json!("")), vec![]),
        ];
        for (description, claim, expected) in cases {
            assert_eq!(scopes(claim.as_ref()), expected, "{description}");
        }
    }

    #[test]
    fn the_subject_is_the_prefixed_sub_and_a_token_without_one_describes_no_one() {
        let mapping = ClaimMapping {
            actor_prefix: "oidc:".to_owned(),
            ..ClaimMapping::default()
        };
        let identity = mapping.identity(&claims(json!({
            "sub": "248289761001",
            "groups": ["core", 5],
            "shiplog_scopes": "usecases:read",
        })));
        assert_eq!(
            identity,
            Ok(Identity {
                subject: "oidc:248289761001".to_owned(),
                teams: vec!["core".to_owned()],
                scopes: vec![Scope::UsecasesRead],
            })
        );
        // (description, claims)
        let refused = [
            ("no sub", json!({"groups": ["core"]})),
            ("a number", json!({"sub": 42})),
            ("blank", json!({"sub": "  "})),
            ("too long", json!({"sub": "x".repeat(200)})),
            ("a control character", json!({"sub": "a\u{7}b"})),
        ];
        for (description, value) in refused {
            assert!(
                ClaimMapping::default().identity(&claims(value)).is_err(),
                "{description}"
            );
        }
    }

    #[test]
    fn the_claim_names_are_configurable_and_a_single_team_may_be_a_string() {
        let mapping = ClaimMapping {
            teams_claim: "teams".to_owned(),
            scopes_claim: "scp".to_owned(),
            actor_prefix: String::new(),
        };
        let identity = mapping.identity(&claims(json!({
            "sub": "alice",
            "groups": ["ignored"],
            "teams": "Platform Team",
            "shiplog_scopes": "admin",
            "scp": ["deployments:read"],
        })));
        assert_eq!(
            identity,
            Ok(Identity {
                subject: "alice".to_owned(),
                teams: vec!["Platform Team".to_owned()],
                scopes: vec![Scope::DeploymentsRead],
            })
        );
    }

    fn team(name: &str) -> TeamView {
        TeamView {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            tier: Tier::Free,
            created_at: Utc::now(),
            created_by: "admin".to_owned(),
            updated_at: Utc::now(),
            updated_by: "admin".to_owned(),
        }
    }

    #[test]
    fn teams_are_named_by_name_or_id_and_unknown_ones_are_left_out() {
        let core = team("core");
        let ml = team("ml");
        let teams = [core.clone(), ml.clone()];
        let mut both = vec![core.id, ml.id];
        both.sort();
        // (description, entries, ids)
        let cases = [
            ("by name", vec!["core".to_owned()], vec![core.id]),
            ("by id", vec![ml.id.to_string()], vec![ml.id]),
            (
                "both ways, twice, with spaces",
                vec![" core ".to_owned(), ml.id.to_string(), core.id.to_string()],
                both,
            ),
            (
                "unknown names and ids",
                vec!["Core".to_owned(), Uuid::new_v4().to_string()],
                vec![],
            ),
        ];
        for (description, entries, expected) in cases {
            assert_eq!(team_ids(&entries, &teams), expected, "{description}");
        }
    }

    #[test]
    fn only_three_part_tokens_that_are_not_shiplog_tokens_look_like_jwts() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"));
        assert!(!looks_like_jwt("shiplog_0123abcd"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("shiplog_a.b.c"));
    }
}
