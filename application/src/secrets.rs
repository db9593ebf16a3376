//! The port to the sealing of secret values, and the clear values on their way.
//!
//! A secret value is sealed here, in the application layer, before a command is
//! built: the aggregate, the events, the read models and the exports only ever
//! hold [`SealedValue`]s. The process manager opens them just before it applies a
//! deployment's Secret. Each usecase has its own data key; deleting the usecase
//! destroys it (crypto-shredding), after which its values cannot be opened again.

use crate::error::AppError;
use async_trait::async_trait;
use shiplog_domain::{DeploymentConfig, SealedValue, SecretRef};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use thiserror::Error;
use uuid::Uuid;
use zeroize::Zeroizing;

/// A secret value in clear: what a client sent, on its way to be sealed, or what
/// the process manager opened, on its way to the cluster. Its `Debug` never shows
/// it, and its memory is wiped when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// Wraps a clear value.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The clear value: for the sealing adapter and the cluster's Secret only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(••••••)")
    }
}

/// Secret variables in clear, by name.
pub type ClearSecrets = BTreeMap<String, SecretValue>;

/// Sealed secret variables, by name.
pub type SealedSecrets = BTreeMap<String, SealedValue>;

/// Clear values from a map of strings (a request body's `secretEnv`).
pub fn clear_secrets(values: BTreeMap<String, String>) -> ClearSecrets {
    values
        .into_iter()
        .map(|(name, value)| (name, SecretValue::new(value)))
        .collect()
}

/// The secret variables of a deploy or a config change, in clear and checked, on
/// their way to be sealed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecretInput {
    /// Values to seal; `None`: the request gave none (a config change keeps the current ones).
    pub values: Option<ClearSecrets>,
    /// References to Kubernetes Secrets; `None`: the request gave none.
    pub refs: Option<Vec<SecretRef>>,
}

impl SecretInput {
    /// Seals the values under the usecase's key, for a command: `(values, refs)`,
    /// each `None` when the request gave none.
    pub async fn seal(
        self,
        vault: &dyn SecretVault,
        usecase_id: Uuid,
    ) -> Result<(Option<SealedSecrets>, Option<Vec<SecretRef>>), AppError> {
        let sealed = match &self.values {
            Some(values) => Some(vault.seal(usecase_id, values).await?),
            None => None,
        };
        Ok((sealed, self.refs))
    }

    /// `config` with these values sealed and these references (none given: none);
    /// `prefix` is where the config sits in the request, for errors.
    pub async fn sealed_into(
        self,
        vault: &dyn SecretVault,
        usecase_id: Uuid,
        config: DeploymentConfig,
        prefix: &str,
    ) -> Result<DeploymentConfig, AppError> {
        let (sealed, refs) = self.seal(vault, usecase_id).await?;
        Ok(config.with_secrets(prefix, sealed.unwrap_or_default(), refs.unwrap_or_default())?)
    }
}

/// The vault a use case gets when none is wired: one without a master key.
pub fn no_vault() -> Arc<dyn SecretVault> {
    Arc::new(NoVault)
}

/// Why secret values could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SecretError {
    /// This shiplog has no master key (`--secret-key-file`): it refuses to seal
    /// rather than record a value in clear, and cannot open what was sealed.
    #[error("this shiplog has no master key (--secret-key-file / SHIPLOG_SECRET_KEY_FILE), so it cannot seal or open secret values; nothing was changed")]
    NoMasterKey,
    /// The usecase's data key was destroyed when the usecase was deleted: its
    /// secret values are gone for good (crypto-shredding).
    #[error("the data key of usecase {0} was destroyed when the usecase was deleted; its secret values cannot be recovered")]
    KeyDestroyed(Uuid),
    /// Nothing was ever sealed for the usecase, so there is no key to open with.
    #[error("usecase {0} has no data key")]
    NoKey(Uuid),
    /// A key or a value does not open: another master key than the one that wrapped
    /// the data key, or altered data. The text says which.
    #[error("{0}")]
    Undecryptable(String),
    /// The key store cannot be reached; retry later.
    #[error("the key store is unavailable: {0}")]
    Unavailable(String),
    /// The key store failed in a way that is a bug (logged, not shown).
    #[error("the key store failed: {0}")]
    Internal(String),
}

impl From<SecretError> for AppError {
    fn from(err: SecretError) -> Self {
        match err {
            SecretError::Unavailable(detail) => AppError::Unavailable(detail),
            SecretError::Internal(detail) => AppError::Internal(detail),
            SecretError::KeyDestroyed(_) => {
                AppError::not_found(crate::error::Missing::Usecase, "usecase not found")
            }
            other => AppError::SecretsUnavailable(other.to_string()),
        }
    }
}

/// Seals and opens secret values under per-usecase data keys.
#[async_trait]
pub trait SecretVault: Send + Sync {
    /// Seals each value under the usecase's data key (created on first use), bound
    /// to the usecase and the variable's name. An empty map needs no key.
    async fn seal(
        &self,
        usecase_id: Uuid,
        values: &ClearSecrets,
    ) -> Result<SealedSecrets, SecretError>;

    /// Opens each sealed value of the usecase. An empty map needs no key, so a
    /// deployment without secrets never touches the key store.
    async fn open(
        &self,
        usecase_id: Uuid,
        sealed: &SealedSecrets,
    ) -> Result<ClearSecrets, SecretError>;
}

/// The vault of a shiplog without a master key: it seals and opens nothing but
/// empty maps, and refuses everything else with [`SecretError::NoMasterKey`].
pub struct NoVault;

#[async_trait]
impl SecretVault for NoVault {
    async fn seal(
        &self,
        _usecase_id: Uuid,
        values: &ClearSecrets,
    ) -> Result<SealedSecrets, SecretError> {
        match values.is_empty() {
            true => Ok(SealedSecrets::new()),
            false => Err(SecretError::NoMasterKey),
        }
    }

    async fn open(
        &self,
        _usecase_id: Uuid,
        sealed: &SealedSecrets,
    ) -> Result<ClearSecrets, SecretError> {
        match sealed.is_empty() {
            true => Ok(ClearSecrets::new()),
            false => Err(SecretError::NoMasterKey),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clear_value_never_shows_in_debug_output() {
        let values = clear_secrets(BTreeMap::from([(
            "DB_PASSWORD".to_owned(),
            "hunter2".to_owned(),
        )]));
        let shown = format!("{values:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("DB_PASSWORD"), "{shown}");
    }
}
