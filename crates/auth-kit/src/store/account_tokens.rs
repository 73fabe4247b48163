//! Password-reset and email-verification tokens, and the password changes
//! they lead to.
//!
//! A token is mailed to a user and stored only as its SHA-256. There is at
//! most one live token per user and purpose (the table's primary key):
//! issuing a new one replaces the previous, so a new reset link voids the
//! older ones. Spending a token is one conditional `DELETE ... RETURNING`:
//! of two concurrent uses of the same token exactly one gets the row, and
//! the change it authorises (new password, logins revoked; or the email
//! marked verified) commits in the same transaction.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::types::{USER_COLUMNS, User, UserRow};
use super::{Store, StoreError};
use crate::session_cache::Change;

/// What a mailed token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Choosing a new password without the old one.
    ResetPassword,
    /// Confirming that the user receives mail at their address.
    VerifyEmail,
}

impl TokenPurpose {
    /// The value stored in `account_tokens.purpose`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::ResetPassword => "reset_password",
            TokenPurpose::VerifyEmail => "verify_email",
        }
    }
}

/// A mailed token's SHA-256, hex: the only form in which it is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountTokenHash(String);

impl AccountTokenHash {
    /// Hashes a presented (or freshly made) token.
    pub fn of(token: &str) -> Self {
        Self(hex::encode(Sha256::digest(token.as_bytes())))
    }
}

impl fmt::Debug for AccountTokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountTokenHash(..)")
    }
}

/// What spending a reset token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordReset {
    /// Whose password changed.
    pub user_id: i64,
    /// How many of their logins were revoked.
    pub logins_revoked: u64,
}

impl Store {
    /// The user whose email is `email`, ignoring case.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, UserRow>(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE email_key = $1"
            ))
            .bind(email.to_lowercase())
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(User::from))
    }

    /// Stores `token` for `user` and `purpose`, replacing the previous one,
    /// bound to the user's current email. `false` when the user is gone or
    /// has no email (nothing is stored then).
    pub async fn issue_account_token(
        &self,
        user_id: i64,
        purpose: TokenPurpose,
        token: &AccountTokenHash,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let expires_at = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let stored = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO account_tokens (user_id, purpose, token_hash, email_key, issued_at, expires_at) \
                 SELECT id, $2, $3, email_key, $4, $5 FROM users WHERE id = $1 AND email_key IS NOT NULL \
                 ON CONFLICT (user_id, purpose) DO UPDATE SET token_hash = excluded.token_hash, \
                 email_key = excluded.email_key, issued_at = excluded.issued_at, expires_at = excluded.expires_at",
            )
            .bind(user_id)
            .bind(purpose.as_str())
            .bind(&token.0)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(stored > 0)
    }

    /// Whose live token this is, without spending it: lets a caller refuse
    /// an unknown token before doing expensive work (hashing a password).
    pub async fn peek_account_token(
        &self,
        token: &AccountTokenHash,
        purpose: TokenPurpose,
    ) -> Result<Option<i64>, StoreError> {
        let now = self.clock.now();
        let user_id = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>(
                "SELECT user_id FROM account_tokens WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3",
            )
            .bind(&token.0)
            .bind(purpose.as_str())
            .bind(now)
            .fetch_optional(pool)
            .await
        })?;
        Ok(user_id)
    }

    /// Spends a reset token: sets the new password hash and revokes every
    /// login of the user, in one transaction. Since the token was mailed to
    /// the user's address, using it also verifies that address. `None`
    /// when the token is unknown, spent, expired or lost a race with a
    /// concurrent use (nothing changes then).
    pub async fn reset_password(
        &self,
        token: &AccountTokenHash,
        password_hash: &str,
    ) -> Result<Option<PasswordReset>, StoreError> {
        let now = self.clock.now();
        let reset = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let spent = sqlx::query_as::<_, (i64, String)>(
                "DELETE FROM account_tokens WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 \
                 RETURNING user_id, email_key",
            )
            .bind(&token.0)
            .bind(TokenPurpose::ResetPassword.as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((user_id, email_key)) = spent else {
                // Dropping the transaction rolls it back.
                return Ok(None);
            };
            sqlx::query(
                "UPDATE users SET password_hash = $1, \
                 email_verified = CASE WHEN email_key = $3 THEN TRUE ELSE email_verified END WHERE id = $2",
            )
            .bind(password_hash)
            .bind(user_id)
            .bind(&email_key)
            .execute(&mut *tx)
            .await?;
            let revoked = sqlx::query(
                "UPDATE logins SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            self.commit(tx, Change::User(user_id)).await?;
            Ok::<_, sqlx::Error>(Some(PasswordReset {
                user_id,
                logins_revoked: revoked,
            }))
        })?;
        Ok(reset)
    }

    /// Spends a verification token and marks the address it was mailed to
    /// as verified. `None` when the token is unknown, spent or expired, or
    /// the user's address changed since it was mailed.
    pub async fn verify_email(&self, token: &AccountTokenHash) -> Result<Option<User>, StoreError> {
        let now = self.clock.now();
        let row = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let spent = sqlx::query_as::<_, (i64, String)>(
                "DELETE FROM account_tokens WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 \
                 RETURNING user_id, email_key",
            )
            .bind(&token.0)
            .bind(TokenPurpose::VerifyEmail.as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((user_id, email_key)) = spent else {
                // Dropping the transaction rolls it back.
                return Ok(None);
            };
            let user = sqlx::query_as::<_, UserRow>(&format!(
                "UPDATE users SET email_verified = TRUE WHERE id = $1 AND email_key = $2 RETURNING {USER_COLUMNS}"
            ))
            .bind(user_id)
            .bind(&email_key)
            .fetch_optional(&mut *tx)
            .await?;
            self.commit(tx, Change::User(user_id)).await?;
            Ok::<_, sqlx::Error>(user)
        })?;
        Ok(row.map(User::from))
    }

    /// The stored password hash of the user with this id.
    pub async fn password_hash(&self, user_id: i64) -> Result<Option<String>, StoreError> {
        let hash = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>("SELECT password_hash FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(hash)
    }

    /// Replaces the password hash `checked_hash` (the one the current
    /// password was checked against) with `password_hash`, revokes every
    /// login of the user except `keep` (the caller's own), and voids a
    /// pending reset token, in one transaction. Returns how many logins were
    /// revoked; `None`, changing nothing, when the hash is no longer
    /// `checked_hash` (a reset or another change committed meanwhile, and
    /// revoked the caller's login).
    pub async fn change_password(
        &self,
        user_id: i64,
        checked_hash: &str,
        password_hash: &str,
        keep: Option<&str>,
    ) -> Result<Option<u64>, StoreError> {
        let now = self.clock.now();
        let revoked = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3",
            )
            .bind(password_hash)
            .bind(user_id)
            .bind(checked_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed != 1 {
                tx.rollback().await?;
                return Ok(None);
            }
            let revoked = sqlx::query(
                "UPDATE logins SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL \
                 AND ($3 IS NULL OR id <> $3)",
            )
            .bind(now)
            .bind(user_id)
            .bind(keep)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM account_tokens WHERE user_id = $1 AND purpose = $2")
                .bind(user_id)
                .bind(TokenPurpose::ResetPassword.as_str())
                .execute(&mut *tx)
                .await?;
            self.commit(tx, Change::User(user_id)).await?;
            Ok::<_, sqlx::Error>(Some(revoked))
        })?;
        Ok(revoked)
    }

    /// Deletes expired reset and verification tokens.
    pub async fn purge_expired_account_tokens(&self) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let purged = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM account_tokens WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(purged)
    }
}
