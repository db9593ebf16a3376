//! The JSON shapes of secret variables: a value as a client sends it, the masked
//! form every answer shows instead (`{"secret": true, "key": "<fingerprint>"}`),
//! and references to existing Kubernetes Secrets.

use serde::{Deserialize, Serialize};
#[cfg(feature = "server")]
use shiplog_application::{clear_secrets, ClearSecrets};
#[cfg(feature = "server")]
use shiplog_domain::{
    check_disjoint, check_env, check_secret_refs, InvalidField, SealedValue, SecretKeySelector,
    SecretRef,
};
#[cfg(feature = "server")]
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The most references to Kubernetes Secrets one deployment may have (the domain's
/// `MAX_SECRET_REFS`; the document states it).
pub const MAX_SECRET_REFS: usize = 100;

/// A secret value as every answer, history and stream shows it: that it is secret,
/// and the fingerprint of the usecase's data key that sealed it. The value itself
/// is never shown (events, exports and streams add the sealed bytes, `nonce` and
/// `ciphertext`, which the hash chain covers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaskedSecret {
    /// Always true.
    pub secret: bool,
    /// The first 8 bytes of SHA-256 of the usecase's data key, hex.
    #[schema(example = "3fa2c1d0a1b2c3d4", pattern = "^[0-9a-f]{16}$")]
    pub key: String,
}

/// A secret variable's value: in a request the value itself (a string); in an
/// answer always [`MaskedSecret`]. A masked value sent back is refused (422): send
/// the value, or leave `secretEnv` out of a config change to keep the current ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SecretEnvValue {
    /// The value, as a client sends it.
    Value(String),
    /// The masked value, as shiplog shows it.
    Masked(MaskedSecret),
}

impl SecretEnvValue {
    /// The masked form, for a display: `•••••• (key 3fa2c1d0a1b2c3d4)`.
    pub fn display(&self) -> String {
        match self {
            Self::Masked(m) => format!("•••••• (key {})", m.key),
            Self::Value(_) => "••••••".to_owned(),
        }
    }
}

/// Where in an existing Kubernetes Secret (in shiplog's namespace) a value is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyBody {
    /// The Secret's name: a DNS subdomain (lower-case letters, digits, `-`, `.`).
    #[schema(
        example = "db",
        max_length = 253,
        pattern = r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$"
    )]
    pub name: String,
    /// The key within it: letters, digits, `-`, `_`, `.`.
    #[schema(example = "password", max_length = 253, pattern = r"^[-._a-zA-Z0-9]+$")]
    pub key: String,
}

/// A variable read from an existing Kubernetes Secret (`valueFrom.secretKeyRef`);
/// shiplog never sees the value, so the reference itself is recorded in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRefBody {
    /// The environment variable's name, as an `env` name.
    #[schema(
        example = "DB_PASSWORD",
        max_length = 253,
        pattern = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
    )]
    pub name: String,
    /// Where its value is.
    pub secret: SecretKeyBody,
}

/// The masked map of sealed values, for answers; `None` when there are none.
#[cfg(feature = "server")]
pub fn masked(sealed: &BTreeMap<String, SealedValue>) -> Option<BTreeMap<String, SecretEnvValue>> {
    (!sealed.is_empty()).then(|| {
        sealed
            .iter()
            .map(|(name, v)| {
                let m = v.masked();
                (
                    name.clone(),
                    SecretEnvValue::Masked(MaskedSecret {
                        secret: m.secret,
                        key: m.key,
                    }),
                )
            })
            .collect()
    })
}

/// The references, for answers; `None` when there are none.
#[cfg(feature = "server")]
pub fn ref_bodies(refs: &[SecretRef]) -> Option<Vec<SecretRefBody>> {
    (!refs.is_empty()).then(|| {
        refs.iter()
            .map(|r| SecretRefBody {
                name: r.name.clone(),
                secret: SecretKeyBody {
                    name: r.secret.name.clone(),
                    key: r.secret.key.clone(),
                },
            })
            .collect()
    })
}

/// The secret part of a request, checked: clear values (names and sizes as `env`'s)
/// and references, none of them also in `env`. `prefix` is where they sit in the
/// body (`config`, or empty at the top).
#[cfg(feature = "server")]
pub fn parse_secrets(
    prefix: &str,
    env: &BTreeMap<String, String>,
    secret_env: Option<BTreeMap<String, SecretEnvValue>>,
    secret_refs: Option<Vec<SecretRefBody>>,
) -> Result<(Option<ClearSecrets>, Option<Vec<SecretRef>>), InvalidField> {
    let at = |rest: &str| {
        if prefix.is_empty() {
            rest.to_owned()
        } else {
            format!("{prefix}.{rest}")
        }
    };
    let values = secret_env
        .map(|map| {
            map.into_iter()
                .map(|(name, value)| match value {
                    SecretEnvValue::Value(v) => Ok((name, v)),
                    SecretEnvValue::Masked(_) => Err(InvalidField::new(
                        at(&format!("secretEnv.{name}")),
                        "is a masked value; send the value itself (or leave secretEnv out of a config change to keep the current values)",
                    )),
                })
                .collect::<Result<BTreeMap<String, String>, InvalidField>>()
        })
        .transpose()?;
    if let Some(values) = &values {
        check_env(values, &at("secretEnv"))?;
    }
    let refs: Option<Vec<SecretRef>> = secret_refs.map(|refs| {
        refs.into_iter()
            .map(|r| SecretRef {
                name: r.name,
                secret: SecretKeySelector {
                    name: r.secret.name,
                    key: r.secret.key,
                },
            })
            .collect()
    });
    if let Some(refs) = &refs {
        check_secret_refs(refs, prefix)?;
    }
    check_disjoint(
        env,
        values.as_ref().unwrap_or(&BTreeMap::new()),
        refs.as_deref().unwrap_or_default(),
        prefix,
    )?;
    Ok((values.map(clear_secrets), refs))
}
