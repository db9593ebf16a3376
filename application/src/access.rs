//! Access as ledger facts: creating, changing and revoking API tokens are commands
//! on the `Token` aggregate, so each is an event with its actor and reason in the
//! audit trail. The secret is made here, handed back once, and only its hash is
//! kept, outside the ledger (the lookup table the store writes with the events).

use crate::auth::{hash_secret, NewToken, TokenInfo, TokenStore, BOOTSTRAP_ADMIN};
use crate::auth::{Scope, MAX_PRINCIPAL_LEN};
use crate::error::{AppError, Conflict};
use crate::ports::{CommandContext, ReadModel};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use rand::RngCore;
use shiplog_domain::config::normalized_name;
use shiplog_domain::{InvalidField, TokenCommand};
use std::sync::Arc;
use tracing::instrument;
use uuid::Uuid;

/// The longest a token may live: a year. Longer-lived access is a new token, on record.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 365 * 24 * 60 * 60;

/// Creates, lists, changes and revokes API tokens (admins only; the routes check).
pub struct Access {
    store: Arc<dyn TokenStore>,
    read: Arc<dyn ReadModel>,
}

impl Access {
    /// The token use cases over `store`; `read` tells when the ledger's readers have
    /// passed a change (read-your-writes, as for every other change).
    pub fn new(store: Arc<dyn TokenStore>, read: Arc<dyn ReadModel>) -> Self {
        Self { store, read }
    }

    /// Runs `command` on token `id` and waits until the ledger's readers are past its
    /// events, so that `/api/events` shows them once the client has its answer.
    async fn execute(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        command: TokenCommand,
        secret_hash: Option<[u8; 32]>,
    ) -> Result<TokenInfo, AppError> {
        let (info, cursor) = self.store.execute(id, command, secret_hash, ctx).await?;
        if let Some(cursor) = cursor {
            self.read.wait_for(cursor).await;
        }
        Ok(info)
    }

    /// Creates a token and returns it with its secret, which is shown only this once;
    /// its `TokenCreated` event and its lookup row commit together.
    #[instrument(skip(self, ctx, token), fields(actor = %ctx.actor))]
    pub async fn issue(
        &self,
        ctx: &CommandContext,
        token: NewToken,
    ) -> Result<(TokenInfo, String), AppError> {
        // A token's name is a principal: recorded as the actor of every event it causes
        // (and indexed there), so it is checked as names are.
        let name = normalized_name("name", &token.name, MAX_PRINCIPAL_LEN)?;
        if name == BOOTSTRAP_ADMIN {
            return Err(AppError::conflict(
                Conflict::NameTaken,
                format!("the name {BOOTSTRAP_ADMIN:?} is reserved for the bootstrap token"),
            ));
        }
        if token.scopes.is_empty() {
            return Err(InvalidField::new("scopes", "name at least one scope").into());
        }
        let subject = match token.subject.as_deref() {
            None => name.clone(),
            Some(subject) => normalized_name("subject", subject, MAX_PRINCIPAL_LEN)?,
        };
        // Microseconds: what the database keeps, so the event and the row agree.
        let at = Utc::now().trunc_subsecs(6);
        let expires_at = token.expires_in.map(|s| expiry(s, at)).transpose()?;
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let secret = format!("shiplog_{}", hex::encode(bytes));
        let id = Uuid::new_v4();
        let command = TokenCommand::Create {
            token_id: id,
            name,
            scopes: token.scopes,
            subject,
            teams: token.teams,
            expires_at,
            at,
        };
        let info = self
            .execute(ctx, id, command, Some(hash_secret(&secret)))
            .await?;
        Ok((info, secret))
    }

    /// Tokens not revoked (expired ones too, with their expiry), without secrets.
    pub async fn list(&self) -> Result<Vec<TokenInfo>, AppError> {
        self.store.list().await
    }

    /// Replaces what a token may do, at once (`TokenScopesChanged`; nothing when the
    /// scopes are the same); an unknown or revoked token is `NotFound`.
    #[instrument(skip(self, ctx), fields(actor = %ctx.actor))]
    pub async fn change_scopes(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        scopes: Vec<Scope>,
    ) -> Result<TokenInfo, AppError> {
        let command = TokenCommand::ChangeScopes {
            scopes,
            at: Utc::now().trunc_subsecs(6),
        };
        self.execute(ctx, id, command, None).await
    }

    /// Revokes a token: it stops working at once (`TokenRevoked`); an unknown or
    /// already revoked token is `NotFound`.
    #[instrument(skip(self, ctx), fields(actor = %ctx.actor))]
    pub async fn revoke(&self, ctx: &CommandContext, id: Uuid) -> Result<(), AppError> {
        let command = TokenCommand::Revoke {
            at: Utc::now().trunc_subsecs(6),
        };
        self.execute(ctx, id, command, None).await?;
        Ok(())
    }
}

/// When a token created `at` to live `secs` seconds expires: 1 second to a year
/// later, else invalid input naming `expiresIn`. A lifetime rather than an instant,
/// so that no expiry a client can write is in the past.
pub fn expiry(secs: u64, at: DateTime<Utc>) -> Result<DateTime<Utc>, InvalidField> {
    if secs == 0 || secs > MAX_TOKEN_LIFETIME_SECS {
        return Err(InvalidField::new(
            "expiresIn",
            format!("must be 1 to {MAX_TOKEN_LIFETIME_SECS} seconds (a year)"),
        ));
    }
    Ok(at + Duration::seconds(secs as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 6, 7, 8, 9)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn a_lifetime_is_a_second_to_a_year() {
        let year = MAX_TOKEN_LIFETIME_SECS;
        let cases = [
            ("one second", 1, Some(now() + Duration::seconds(1))),
            ("a year", year, Some(now() + Duration::seconds(year as i64))),
            ("zero seconds", 0, None),
            ("a year and a second", year + 1, None),
        ];
        for (description, secs, expected) in cases {
            let got = expiry(secs, now());
            assert_eq!(got.as_ref().ok(), expected.as_ref(), "{description}");
            if let Err(e) = got {
                assert_eq!(e.field, "expiresIn", "{description}");
            }
        }
    }
}
