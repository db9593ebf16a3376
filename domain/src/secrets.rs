//! Secret environment values as the ledger keeps them: sealed, never in clear.
//!
//! The aggregate never sees a secret value. The application layer seals each value
//! (an AEAD under the usecase's data key, bound to the usecase and the variable's
//! name) before the command is built; the domain carries the sealed value as an
//! opaque fact and checks only names. References to Kubernetes Secrets that exist
//! already are not secret themselves and are kept as they are.

use crate::config::{InvalidField, ENV_NAME_PATTERN, MAX_ENV_NAME_LEN};
use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

/// The `"secret": true` member of a sealed value: it tells every reader of the
/// stored JSON (events, exports) that the object is a secret, never a value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Marker;

impl Serialize for Marker {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bool(true)
    }
}

impl<'de> Deserialize<'de> for Marker {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match bool::deserialize(deserializer)? {
            true => Ok(Self),
            false => Err(serde::de::Error::custom(
                "a sealed value has \"secret\": true",
            )),
        }
    }
}

/// One secret value sealed under its usecase's data key: what events, read models
/// and exports hold in its place. Stored as
/// `{"secret": true, "key": "<fingerprint>", "nonce": "<base64>", "ciphertext": "<base64>"}`;
/// shown to users as `{"secret": true, "key": "<fingerprint>"}` ([`MaskedValue`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedValue {
    secret: Marker,
    /// The fingerprint of the data key that sealed it (16 hex characters).
    pub key: String,
    /// The AEAD nonce, base64.
    pub nonce: String,
    /// The AEAD ciphertext with its tag, base64.
    pub ciphertext: String,
}

impl SealedValue {
    /// A sealed value as the sealing adapter produced it.
    pub fn new(key: String, nonce: String, ciphertext: String) -> Self {
        Self {
            secret: Marker,
            key,
            nonce,
            ciphertext,
        }
    }

    /// What users are shown instead of the value: the key's fingerprint only.
    pub fn masked(&self) -> MaskedValue {
        MaskedValue {
            secret: true,
            key: self.key.clone(),
        }
    }
}

/// A secret value as every view shows it: that it is one, and which data key holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedValue {
    /// Always true: the value is secret and not shown.
    pub secret: bool,
    /// The fingerprint of the usecase's data key that sealed it.
    pub key: String,
}

/// Which key of which existing Kubernetes Secret (in shiplog's namespace) a variable reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeySelector {
    /// The Secret's name.
    pub name: String,
    /// The key within it.
    pub key: String,
}

/// A variable whose value the pod reads from an existing Kubernetes Secret
/// (`valueFrom.secretKeyRef`): shiplog never sees the value, so the reference is kept in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// The environment variable's name.
    pub name: String,
    /// Where its value is.
    pub secret: SecretKeySelector,
}

/// The most characters of a Kubernetes Secret's name (a DNS subdomain).
pub const MAX_SECRET_NAME_LEN: usize = 253;
/// What the name of a referenced Kubernetes Secret must match (an RFC 1123 subdomain);
/// the OpenAPI document states the same pattern.
pub const SECRET_NAME_PATTERN: &str =
    r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$";
/// What a key of a Kubernetes Secret must match; the OpenAPI document states it too.
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";
/// The most secret references one deployment may have.
pub const MAX_SECRET_REFS: usize = 100;

static ENV_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(ENV_NAME_PATTERN).unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static SECRET_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(SECRET_NAME_PATTERN).unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(SECRET_KEY_PATTERN).unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// `prefix.rest`, or `rest` alone when the map sits at the top of the body.
pub(crate) fn field_at(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_owned()
    } else {
        format!("{prefix}.{rest}")
    }
}

/// Checks secret references (`<prefix>.secretRefs`): valid variable names, Secret
/// names and keys, at most [`MAX_SECRET_REFS`], no variable twice.
pub fn check_secret_refs(refs: &[SecretRef], prefix: &str) -> Result<(), InvalidField> {
    let field = field_at(prefix, "secretRefs");
    if refs.len() > MAX_SECRET_REFS {
        return Err(InvalidField::new(
            field,
            format!(
                "has {} references; at most {MAX_SECRET_REFS} are allowed",
                refs.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, r) in refs.iter().enumerate() {
        let at = |member: &str| format!("{field}[{i}].{member}");
        if r.name.is_empty() || r.name.len() > MAX_ENV_NAME_LEN || !ENV_NAME.is_match(&r.name) {
            return Err(InvalidField::new(
                at("name"),
                format!("{:?} is not an environment variable name (letters, digits, '_', '-' and '.', not starting with a digit, at most {MAX_ENV_NAME_LEN} characters)", r.name),
            ));
        }
        if !seen.insert(r.name.as_str()) {
            return Err(InvalidField::new(
                at("name"),
                format!("{} is referenced twice", r.name),
            ));
        }
        if r.secret.name.len() > MAX_SECRET_NAME_LEN || !SECRET_NAME.is_match(&r.secret.name) {
            return Err(InvalidField::new(
                at("secret.name"),
                format!("{:?} is not a Kubernetes Secret name (lower-case letters, digits, '-' and '.', at most {MAX_SECRET_NAME_LEN})", r.secret.name),
            ));
        }
        if r.secret.key.len() > MAX_SECRET_NAME_LEN || !SECRET_KEY.is_match(&r.secret.key) {
            return Err(InvalidField::new(
                at("secret.key"),
                format!("{:?} is not a key of a Kubernetes Secret (letters, digits, '-', '_' and '.', at most {MAX_SECRET_NAME_LEN})", r.secret.key),
            ));
        }
    }
    Ok(())
}

/// Checks that no variable is given twice across the plain environment, the secret
/// values and the references: a variable is plain, secret or referenced, never two
/// of them. `prefix` is where the maps sit in the request (`config`, or empty).
pub fn check_disjoint<V>(
    env: &BTreeMap<String, String>,
    secret_env: &BTreeMap<String, V>,
    secret_refs: &[SecretRef],
    prefix: &str,
) -> Result<(), InvalidField> {
    if let Some(name) = secret_env.keys().find(|n| env.contains_key(*n)) {
        return Err(InvalidField::new(
            field_at(prefix, &format!("secretEnv.{name}")),
            "is also given in env; a variable is either plain (env) or secret (secretEnv)",
        ));
    }
    for (i, r) in secret_refs.iter().enumerate() {
        if env.contains_key(&r.name) || secret_env.contains_key(&r.name) {
            return Err(InvalidField::new(
                field_at(prefix, &format!("secretRefs[{i}].name")),
                format!(
                    "{} is also given in env or secretEnv; a variable has one source",
                    r.name
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sealed() -> SealedValue {
        SealedValue::new(
            "3fa2c1d0a1b2c3d4".into(),
            "bm9uY2U=".into(),
            "Y2lwaGVy".into(),
        )
    }

    #[test]
    fn a_sealed_value_says_it_is_secret_and_masks_to_its_key() {
        let json = serde_json::to_value(sealed()).unwrap_or_default();
        assert_eq!(
            json,
            json!({"secret": true, "key": "3fa2c1d0a1b2c3d4", "nonce": "bm9uY2U=", "ciphertext": "Y2lwaGVy"})
        );
        assert_eq!(
            serde_json::from_value::<SealedValue>(json.clone()).ok(),
            Some(sealed())
        );
        assert_eq!(
            sealed().masked(),
            MaskedValue {
                secret: true,
                key: "3fa2c1d0a1b2c3d4".into()
            }
        );
        assert!(serde_json::from_value::<SealedValue>(
            json!({"secret": false, "key": "k", "nonce": "n", "ciphertext": "c"})
        )
        .is_err());
    }

    #[test]
    fn references_and_names_are_checked_naming_the_field() {
        let r = |name: &str, secret: &str, key: &str| SecretRef {
            name: name.into(),
            secret: SecretKeySelector {
                name: secret.into(),
                key: key.into(),
            },
        };
        let cases = [
            (
                "a valid reference",
                vec![r("DB_PASSWORD", "db", "password")],
                None,
            ),
            (
                "an invalid variable name",
                vec![r("1X", "db", "password")],
                Some("config.secretRefs[0].name"),
            ),
            (
                "an empty variable name",
                vec![r("", "db", "password")],
                Some("config.secretRefs[0].name"),
            ),
            (
                "an upper-case Secret name",
                vec![r("A", "DB", "password")],
                Some("config.secretRefs[0].secret.name"),
            ),
            (
                "an empty key",
                vec![r("A", "db", "")],
                Some("config.secretRefs[0].secret.key"),
            ),
            (
                "a key with a slash",
                vec![r("A", "db", "a/b")],
                Some("config.secretRefs[0].secret.key"),
            ),
            (
                "a variable referenced twice",
                vec![r("A", "db", "a"), r("A", "db", "b")],
                Some("config.secretRefs[1].name"),
            ),
        ];
        for (description, refs, field) in cases {
            assert_eq!(
                check_secret_refs(&refs, "config")
                    .err()
                    .map(|e| e.field)
                    .as_deref(),
                field,
                "{description}"
            );
        }
        let env = BTreeMap::from([("A".to_owned(), "x".to_owned())]);
        let secret = BTreeMap::from([("A".to_owned(), sealed())]);
        assert_eq!(
            check_disjoint(&env, &secret, &[], "config")
                .err()
                .map(|e| e.field),
            Some("config.secretEnv.A".to_owned())
        );
        assert_eq!(
            check_disjoint(&BTreeMap::new(), &secret, &[r("A", "db", "k")], "")
                .err()
                .map(|e| e.field),
            Some("secretRefs[0].name".to_owned())
        );
    }
}
