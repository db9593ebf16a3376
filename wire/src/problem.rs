//! The RFC 9457 problem document every error answer of shiplog carries, read by
//! clients to tell one failure from another, and the catalogue of its `type`s.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// An RFC 9457 problem document: what every error response of shiplog carries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// What kind of problem this is: one URI per kind, stable, for clients to match on.
    #[serde(rename = "type")]
    #[schema(schema_with = <ProblemType as PartialSchema>::schema)]
    pub kind: ProblemType,
    /// Short summary of the problem kind.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this request, in words a user can act on.
    pub detail: String,
    /// The request field at fault (dotted JSON path), for input errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The same sentence as `detail`: the member seed 002's clients read.
    pub error: String,
}

/// Where every problem type's URI starts; the kind's slug follows.
pub const PROBLEM_TYPE_BASE: &str = "https://shiplog.dev/problems/";

/// Declares [`ProblemType`] and its slugs from one list, so that the enum, its URIs,
/// its catalogue and the OpenAPI enum cannot drift apart.
macro_rules! problem_types {
    ($($(#[doc = $doc:literal])* $variant:ident = $slug:literal,)*) => {
        /// The kind of a problem, as its `type` URI names it
        /// (`https://shiplog.dev/problems/<slug>`): one per way a request can fail
        /// that a client may want to tell apart. Serialised as the URI.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProblemType {
            $($(#[doc = $doc])* $variant,)*
            /// `about:blank`: no more than the HTTP status says. shiplog sends it for
            /// nothing; a client reads a type it does not know (from a newer server)
            /// as this, as RFC 9457 asks.
            Blank,
        }

        impl ProblemType {
            /// Every kind shiplog sends, in the catalogue's order (not [`ProblemType::Blank`]).
            pub const ALL: &'static [ProblemType] = &[$(ProblemType::$variant,)*];

            /// The last segment of the kind's URI (`name-taken`); `about:blank` for
            /// [`ProblemType::Blank`].
            pub const fn slug(self) -> &'static str {
                match self {
                    $(ProblemType::$variant => $slug,)*
                    ProblemType::Blank => "about:blank",
                }
            }

            /// When the kind is sent, with its status: the variant's doc comment.
            pub fn when(self) -> &'static str {
                match self {
                    $(ProblemType::$variant => concat!($($doc),*).trim_start(),)*
                    ProblemType::Blank => "only what the HTTP status says",
                }
            }

            /// The kind's `type` URI, as sent.
            pub const fn uri(self) -> &'static str {
                match self {
                    $(ProblemType::$variant => concat!("https://shiplog.dev/problems/", $slug),)*
                    ProblemType::Blank => "about:blank",
                }
            }
        }
    };
}

problem_types! {
    /// 400 or 422: the input is malformed (400: not JSON, a malformed query value;
    /// on the platform routes every invalid field) or a field is missing, unknown or
    /// invalid (422); `field` names it when there is one.
    InvalidInput = "invalid-input",
    /// 415: the body is declared as something other than JSON.
    UnsupportedMediaType = "unsupported-media-type",
    /// 413: the request body is larger than the server accepts (`--max-body-size`);
    /// nothing was changed.
    ContentTooLarge = "content-too-large",
    /// 408: the request body did not arrive in time (`--body-read-timeout`); nothing
    /// was changed.
    RequestTimeout = "request-timeout",
    /// 401: no bearer token, or an unknown or revoked one, or an OIDC token (JWT) that
    /// does not check out (signature, issuer, audience, expiry).
    Unauthorized = "unauthorized",
    /// 403: the token lacks the scope the route needs; the detail names it.
    MissingScope = "missing-scope",
    /// 403: the caller neither owns the usecase (deployment) nor belongs to its
    /// team, or is not a member of the team it names ("ownership verification failed").
    NotOwner = "not-owner",
    /// 403: with billing on, the account's tier allows no more deployments.
    DeploymentLimitReached = "deployment-limit-reached",
    /// 403: a request authenticated by the web console's session cookie changes
    /// something without the session's CSRF token (form field `csrf_token` or header
    /// `X-CSRF-Token`); nothing was changed.
    CsrfTokenInvalid = "csrf-token-invalid",
    /// 404: no such usecase (or it did not exist at the instant asked for).
    UsecaseNotFound = "usecase-not-found",
    /// 404: no such deployment (of this usecase; on the platform routes, no
    /// deployment of this name).
    DeploymentNotFound = "deployment-not-found",
    /// 404: no such team.
    TeamNotFound = "team-not-found",
    /// 404: no such API token.
    TokenNotFound = "token-not-found",
    /// 404: the deployment runs no service of this name (`service` of the platform
    /// log and metrics routes); the detail names the services it runs.
    ServiceNotFound = "service-not-found",
    /// 404: no such route, or a path value that cannot name anything (a malformed id).
    NotFound = "not-found",
    /// 409: the name (of a usecase, platform deployment, team or token) is taken.
    NameTaken = "name-taken",
    /// 409: the request needs a deployed deployment and none is (also when reading
    /// the config of what is deployed).
    NothingDeployed = "nothing-deployed",
    /// 409: a usecase, deployment or team with this id exists already.
    AlreadyExists = "already-exists",
    /// 409: an undeploy, a restart or the deletion of the usecase is already under way.
    OperationInProgress = "operation-in-progress",
    /// 409: the usecase cannot be deleted while a deployment is deployed or in flight.
    UsecaseBusy = "usecase-busy",
    /// 409: the deployment's status does not allow this step.
    InvalidTransition = "invalid-transition",
    /// 409: there is no earlier finished deployment to roll back to, or the one
    /// named is not one (also when it is no deployment of the usecase at all).
    InvalidRollbackTarget = "invalid-rollback-target",
    /// 429 with Retry-After: the token has as many event and log streams open as it
    /// may (`--max-streams-per-token`); retry once one of them has closed.
    TooManyStreams = "too-many-streams",
    /// 503 with Retry-After: the database cannot be reached; nothing was changed.
    DatabaseUnavailable = "database-unavailable",
    /// 503 with Retry-After: the cluster cannot answer, or lacks what was asked for.
    ClusterUnavailable = "cluster-unavailable",
    /// 503 with Retry-After: the OIDC identity provider's keys (JWKS) cannot be fetched
    /// and none are cached, so its bearer tokens cannot be checked; nothing was changed.
    IdentityProviderUnavailable = "identity-provider-unavailable",
    /// 503 without Retry-After: secret values cannot be sealed or opened, because this
    /// shiplog has no master key (`--secret-key-file`) or its key does not open the
    /// usecase's data key; nothing was changed, and retrying helps only once the operator
    /// has configured the right key.
    SecretsUnavailable = "secrets-unavailable",
    /// 502: the applications proxy found no deployed application, or it did not answer.
    BadGateway = "bad-gateway",
    /// 500: a bug; logged with its details, shown without them.
    Internal = "internal",
}

impl ProblemType {
    /// The kind whose URI is `uri`; `None` for one this build does not know.
    pub fn from_uri(uri: &str) -> Option<Self> {
        let slug = uri.strip_prefix(PROBLEM_TYPE_BASE)?;
        Self::ALL.iter().copied().find(|kind| kind.slug() == slug)
    }

    /// The catalogue as Markdown, one line per kind: the `type` URI and when it is sent.
    fn catalogue() -> String {
        let mut text = String::from(
            "What kind of problem this is: one stable URI per kind, for clients to match on \
             (a client reads a URI it does not know as `about:blank`).\n",
        );
        for kind in Self::ALL {
            text.push_str("\n- `");
            text.push_str(kind.uri());
            text.push_str("`: ");
            text.push_str(kind.when());
        }
        text
    }
}

impl std::fmt::Display for ProblemType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.uri())
    }
}

impl Serialize for ProblemType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.uri())
    }
}

impl<'de> Deserialize<'de> for ProblemType {
    /// Any string: a URI this build does not know is [`ProblemType::Blank`] (RFC 9457 §4.2.1).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let uri = Cow::<str>::deserialize(deserializer)?;
        Ok(Self::from_uri(&uri).unwrap_or(Self::Blank))
    }
}

impl PartialSchema for ProblemType {
    /// A string, one of the catalogue's URIs, with the catalogue as its description.
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(Self::catalogue()))
            .enum_values(Some(Self::ALL.iter().map(|kind| kind.uri())))
            .into()
    }
}

impl ToSchema for ProblemType {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_uri() {
        for kind in ProblemType::ALL {
            assert!(kind.uri().starts_with(PROBLEM_TYPE_BASE), "{kind:?}");
            assert_eq!(ProblemType::from_uri(kind.uri()), Some(*kind));
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.uri());
            assert_eq!(serde_json::from_value::<ProblemType>(json).unwrap(), *kind);
        }
    }

    #[test]
    fn slugs_are_distinct() {
        let mut slugs: Vec<&str> = ProblemType::ALL.iter().map(|k| k.slug()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), ProblemType::ALL.len());
    }

    #[test]
    fn an_unknown_type_reads_as_about_blank() {
        for uri in [
            "about:blank",
            "https://shiplog.dev/problems/from-a-newer-server",
            "https://example.com/x",
        ] {
            let kind: ProblemType = serde_json::from_value(uri.into()).unwrap();
            assert_eq!(kind, ProblemType::Blank, "{uri}");
        }
        assert_eq!(ProblemType::Blank.uri(), "about:blank");
    }
}
