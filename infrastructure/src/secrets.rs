//! The vault of secret values: per-usecase data keys in `secret_keys`, wrapped by
//! the master key, and the AEAD that seals each value (XChaCha20-Poly1305 from
//! RustCrypto: 24-byte random nonces, so that random nonces never collide in practice).
//!
//! - A value is sealed under its usecase's data key with a fresh random nonce and
//!   associated data binding it to the usecase and the variable's name: a sealed
//!   value copied to another usecase or variable does not open.
//! - A data key is 32 random bytes, stored wrapped by the master key (associated data:
//!   the usecase id), created on the first seal of its usecase, and destroyed (its row's
//!   wrapped key erased by a trigger, migration 0016) when the usecase's deletion is recorded.
//! - The master key is 32 bytes from `--secret-key-file` (raw, hex or base64), or
//!   generated for the embedded default ([`MasterKey::generated`]).

use crate::db::is_outage;
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use shiplog_application::{ClearSecrets, SealedSecrets, SecretError, SecretValue, SecretVault};
use shiplog_domain::SealedValue;
use sqlx::PgPool;
use std::path::Path;
use thiserror::Error;
use tracing::info;
use uuid::Uuid;
use zeroize::Zeroizing;

/// The length of every key: master and data keys are 256-bit.
const KEY_LEN: usize = 32;
/// The length of an XChaCha20-Poly1305 nonce.
const NONCE_LEN: usize = 24;

/// A 256-bit key, wiped from memory when dropped.
#[derive(Clone)]
struct Key(Zeroizing<[u8; KEY_LEN]>);

impl Key {
    fn random() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::thread_rng().fill_bytes(bytes.as_mut());
        Self(bytes)
    }

    fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Self(Zeroizing::new(array)))
    }

    /// The first 8 bytes of SHA-256 of the key, hex: names the key without revealing it.
    fn fingerprint(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_ref())[..8])
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }

    /// `nonce || ciphertext` of `plaintext` under this key, bound to `aad`.
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<(Vec<u8>, Vec<u8>), SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SecretError::Internal("sealing failed".to_owned()))?;
        Ok((nonce.to_vec(), ciphertext))
    }

    /// The plaintext of `ciphertext` sealed under this key with `nonce` and `aad`;
    /// `None` when it does not open (another key, other associated data, altered bytes).
    fn open(&self, nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if nonce.len() != NONCE_LEN {
            return None;
        }
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

/// The master key that wraps every data key.
#[derive(Clone)]
pub struct MasterKey(Key);

/// Why a master key file cannot be used; shiplog refuses to start with one.
#[derive(Debug, Error)]
pub enum MasterKeyError {
    /// The file cannot be read or written.
    #[error("the secret key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Its content is not 32 bytes in any accepted encoding.
    #[error("the secret key file {0} must hold 32 bytes: raw, as 64 hex characters, or in base64 (44 characters)")]
    Format(String),
}

impl MasterKey {
    /// The key in `text`: exactly 32 raw bytes, or (surrounding whitespace ignored)
    /// 64 hex characters, or standard base64 of 32 bytes.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() == KEY_LEN {
            return Key::from_slice(bytes).map(Self);
        }
        let text = std::str::from_utf8(bytes).ok()?.trim();
        if text.len() == 2 * KEY_LEN {
            if let Ok(decoded) = hex::decode(text) {
                return Key::from_slice(&Zeroizing::new(decoded)).map(Self);
            }
        }
        let decoded = Zeroizing::new(STANDARD.decode(text).ok()?);
        Key::from_slice(&decoded).map(Self)
    }

    /// Reads the key from `path` (`--secret-key-file`).
    pub fn from_file(path: &Path) -> Result<Self, MasterKeyError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| MasterKeyError::Io {
            path: path.display().to_string(),
            source,
        })?);
        Self::parse(&bytes).ok_or_else(|| MasterKeyError::Format(path.display().to_string()))
    }

    /// The key kept at `path` for the embedded default: read when the file exists,
    /// else generated and written there (base64, mode 0600). Returns whether it was created.
    pub fn generated(path: &Path) -> Result<(Self, bool), MasterKeyError> {
        if path.exists() {
            return Self::from_file(path).map(|key| (key, false));
        }
        let key = Key::random();
        let io = |source| MasterKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let text = Zeroizing::new(format!("{}\n", STANDARD.encode(key.0.as_ref())));
        write_private(path, text.as_bytes()).map_err(io)?;
        Ok((Self(key), true))
    }

    /// A fresh key kept in memory only (tests, and an embedded run without a data
    /// directory): what it sealed cannot be opened by another run.
    pub fn ephemeral() -> Self {
        Self(Key::random())
    }

    /// The key's fingerprint (first 8 bytes of its SHA-256, hex), for logs and `secret_keys`.
    pub fn fingerprint(&self) -> String {
        self.0.fingerprint()
    }
}

/// Writes `bytes` to a new file at `path` readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The associated data of a wrapped data key: its usecase.
fn key_aad(usecase_id: Uuid) -> Vec<u8> {
    let mut aad = b"shiplog data key v1\0".to_vec();
    aad.extend_from_slice(usecase_id.as_bytes());
    aad
}

/// The associated data of a sealed value: its usecase and its variable's name.
fn value_aad(usecase_id: Uuid, name: &str) -> Vec<u8> {
    let mut aad = b"shiplog secret v1\0".to_vec();
    aad.extend_from_slice(usecase_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// Seals `value` of variable `name` under `key` for `usecase_id`.
fn seal_value(
    key: &Key,
    usecase_id: Uuid,
    name: &str,
    value: &SecretValue,
) -> Result<SealedValue, SecretError> {
    let (nonce, ciphertext) = key.seal(value.expose().as_bytes(), &value_aad(usecase_id, name))?;
    Ok(SealedValue::new(
        key.fingerprint(),
        STANDARD.encode(nonce),
        STANDARD.encode(ciphertext),
    ))
}

/// Opens the sealed value of variable `name` of `usecase_id` with `key`.
fn open_value(
    key: &Key,
    usecase_id: Uuid,
    name: &str,
    sealed: &SealedValue,
) -> Result<SecretValue, SecretError> {
    let undecryptable = |why: &str| {
        SecretError::Undecryptable(format!(
            "the secret value of {name} of usecase {usecase_id} does not open: {why}"
        ))
    };
    if sealed.key != key.fingerprint() {
        return Err(undecryptable(&format!(
            "it was sealed under data key {}, the usecase's key is {}",
            sealed.key,
            key.fingerprint()
        )));
    }
    let nonce = STANDARD
        .decode(&sealed.nonce)
        .map_err(|_| undecryptable("its nonce is not base64"))?;
    let ciphertext = STANDARD
        .decode(&sealed.ciphertext)
        .map_err(|_| undecryptable("its ciphertext is not base64"))?;
    let plaintext = key
        .open(&nonce, &ciphertext, &value_aad(usecase_id, name))
        .ok_or_else(|| undecryptable("altered, or bound to another usecase or variable"))?;
    let text = String::from_utf8(plaintext.to_vec())
        .map_err(|_| undecryptable("its plaintext is not UTF-8"))?;
    Ok(SecretValue::new(text))
}

/// One row of `secret_keys`.
#[derive(sqlx::FromRow)]
struct KeyRow {
    fingerprint: Option<String>,
    master_fingerprint: Option<String>,
    wrapped_key: Option<Vec<u8>>,
}

/// The vault over `secret_keys` and a master key.
pub struct PgVault {
    pool: PgPool,
    master: MasterKey,
}

/// A database error of the key store: an outage (retry) or a bug.
fn unavailable(err: sqlx::Error) -> SecretError {
    if is_outage(&err) {
        SecretError::Unavailable(format!("database unavailable: {err}"))
    } else {
        SecretError::Internal(format!("database error: {err}"))
    }
}

impl PgVault {
    /// A vault keeping its data keys in `pool`'s `secret_keys`, wrapped by `master`.
    pub fn new(pool: PgPool, master: MasterKey) -> Self {
        Self { pool, master }
    }

    /// The usecase's data key row, if any.
    async fn row(&self, usecase_id: Uuid) -> Result<Option<KeyRow>, SecretError> {
        sqlx::query_as(
            "SELECT fingerprint, master_fingerprint, wrapped_key FROM secret_keys WHERE usecase_id = $1",
        )
        .bind(usecase_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)
    }

    /// Unwraps the data key of a row (`NoKey`/`KeyDestroyed` when there is none).
    fn unwrap_key(&self, usecase_id: Uuid, row: Option<KeyRow>) -> Result<Key, SecretError> {
        let row = row.ok_or(SecretError::NoKey(usecase_id))?;
        let wrapped = row
            .wrapped_key
            .ok_or(SecretError::KeyDestroyed(usecase_id))?;
        let master = self.master.fingerprint();
        if let Some(theirs) = row.master_fingerprint.filter(|f| *f != master) {
            return Err(SecretError::Undecryptable(format!(
                "the data key of usecase {usecase_id} was wrapped by master key {theirs}, this shiplog has master key {master}"
            )));
        }
        let (nonce, ciphertext) = wrapped.split_at(NONCE_LEN.min(wrapped.len()));
        let bytes = self
            .master
            .0
            .open(nonce, ciphertext, &key_aad(usecase_id))
            .ok_or_else(|| {
                SecretError::Undecryptable(format!(
                    "the data key of usecase {usecase_id} does not open with master key {master}"
                ))
            })?;
        let key = Key::from_slice(&bytes).ok_or_else(|| {
            SecretError::Undecryptable(format!("the data key of usecase {usecase_id} is malformed"))
        })?;
        if row.fingerprint.as_deref() != Some(key.fingerprint().as_str()) {
            return Err(SecretError::Undecryptable(format!(
                "the data key of usecase {usecase_id} does not match its fingerprint"
            )));
        }
        Ok(key)
    }

    /// The usecase's data key, created (and stored wrapped) when it has none. Two
    /// first seals racing agree on one key: the second insert does nothing and both
    /// read back the row that won.
    async fn key_for_sealing(&self, usecase_id: Uuid) -> Result<Key, SecretError> {
        if let Some(row) = self.row(usecase_id).await? {
            return self.unwrap_key(usecase_id, Some(row));
        }
        let key = Key::random();
        let (nonce, ciphertext) = self.master.0.seal(key.0.as_ref(), &key_aad(usecase_id))?;
        let wrapped = [nonce, ciphertext].concat();
        sqlx::query(
            "INSERT INTO secret_keys (usecase_id, fingerprint, master_fingerprint, wrapped_key)
             VALUES ($1, $2, $3, $4) ON CONFLICT (usecase_id) DO NOTHING",
        )
        .bind(usecase_id)
        .bind(key.fingerprint())
        .bind(self.master.fingerprint())
        .bind(wrapped)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        info!(%usecase_id, key = %key.fingerprint(), "data key created");
        let row = self.row(usecase_id).await?;
        self.unwrap_key(usecase_id, row)
    }
}

#[async_trait]
impl SecretVault for PgVault {
    async fn seal(
        &self,
        usecase_id: Uuid,
        values: &ClearSecrets,
    ) -> Result<SealedSecrets, SecretError> {
        if values.is_empty() {
            return Ok(SealedSecrets::new());
        }
        let key = self.key_for_sealing(usecase_id).await?;
        values
            .iter()
            .map(|(name, value)| Ok((name.clone(), seal_value(&key, usecase_id, name, value)?)))
            .collect()
    }

    async fn open(
        &self,
        usecase_id: Uuid,
        sealed: &SealedSecrets,
    ) -> Result<ClearSecrets, SecretError> {
        if sealed.is_empty() {
            return Ok(ClearSecrets::new());
        }
        let row = self.row(usecase_id).await?;
        let key = self.unwrap_key(usecase_id, row)?;
        sealed
            .iter()
            .map(|(name, value)| Ok((name.clone(), open_value(&key, usecase_id, name, value)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_for_its_usecase_and_name() {
        let key = Key::random();
        let (u1, u2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let value = SecretValue::new("hunter2".to_owned());
        let sealed = seal_value(&key, u1, "DB_PASSWORD", &value).unwrap_or_else(|e| panic!("{e}"));
        assert!(!sealed.ciphertext.contains("hunter2"));
        assert_eq!(sealed.key, key.fingerprint());
        assert_eq!(sealed.key.len(), 16);
        assert_eq!(
            open_value(&key, u1, "DB_PASSWORD", &sealed).ok(),
            Some(value.clone())
        );
        assert!(open_value(&key, u2, "DB_PASSWORD", &sealed).is_err());
        assert!(open_value(&key, u1, "OTHER", &sealed).is_err());
        assert!(open_value(&Key::random(), u1, "DB_PASSWORD", &sealed).is_err());
        // Two seals of one value differ (fresh nonces): equal values are not told apart.
        let again = seal_value(&key, u1, "DB_PASSWORD", &value).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(again.ciphertext, sealed.ciphertext);
    }

    #[test]
    fn a_master_key_is_read_raw_hex_or_base64() {
        let raw = [7u8; 32];
        let fingerprint = MasterKey::parse(&raw).map(|k| k.fingerprint());
        assert!(fingerprint.is_some());
        let hex_text = format!("{}\n", hex::encode(raw));
        let b64_text = format!("  {}\n", STANDARD.encode(raw));
        assert_eq!(
            MasterKey::parse(hex_text.as_bytes()).map(|k| k.fingerprint()),
            fingerprint
        );
        assert_eq!(
            MasterKey::parse(b64_text.as_bytes()).map(|k| k.fingerprint()),
            fingerprint
        );
        assert!(MasterKey::parse(b"too short").is_none());
        assert!(MasterKey::parse(STANDARD.encode([1u8; 16]).as_bytes()).is_none());
    }
}
