//! Logins and their refresh tokens: starting, rotating, revoking and
//! purging them, and the per-request lookup of a token's user and login.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::types::{User, UserRow};
use super::{Store, StoreError};
use crate::extract::{Lookup, LookupError, UserDirectory};
use crate::refresh::{ReuseWindow, SealedSuccessor};
use crate::session_cache::Change;
use crate::token::VerifiedAccess;

impl Store {
    /// Starts a login (a password grant) for `user_id` with `scope` and its
    /// first refresh token, provided the user is still enabled and still has
    /// `checked_hash`, the password hash the grant's password was checked
    /// against. `Ok(None)` otherwise: a password reset or change (which
    /// revokes every login) or a disable that commits while the password was
    /// being checked also stops this login from starting after it.
    pub async fn start_login(
        &self,
        user_id: i64,
        checked_hash: &str,
        scope: &str,
        refresh: &RefreshTokenHash,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        let now = self.clock.now();
        let login_id = hex::encode(crate::random::bytes::<16>());
        let expires_at = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let inserted = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let created = sqlx::query(
                "INSERT INTO logins (id, user_id, scope, created_at) SELECT $1, id, $3, $4 FROM users \
                 WHERE id = $2 AND password_hash = $5 AND NOT disabled",
            )
            .bind(&login_id)
            .bind(user_id)
            .bind(scope)
            .bind(now)
            .bind(checked_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if created == 1 {
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, login_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&refresh.0)
                .bind(&login_id)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
            }
            // A new login is not cached anywhere; announced all the same,
            // like every write to logins.
            let change = if created == 1 {
                Change::User(user_id)
            } else {
                Change::Nothing
            };
            self.commit(tx, change).await?;
            Ok::<_, sqlx::Error>(created == 1)
        })?;
        Ok(inserted.then_some(login_id))
    }

    /// What the store knows about a presented refresh token (one query).
    pub async fn find_refresh_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, RefreshRecord>(
                "SELECT r.login_id, l.user_id, l.scope, r.expires_at, r.spent_at, l.revoked_at \
                 FROM refresh_tokens r JOIN logins l ON l.id = r.login_id WHERE r.token_hash = $1",
            )
            .bind(&hash.0)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row)
    }

    /// Spends `old` and stores its successor `new` in the same login, in one
    /// transaction: the conditional `UPDATE` lets exactly one of several
    /// concurrent rotations through, and records the successor's hash and
    /// `sealed` (the successor sealed under a key only `old`'s holder can
    /// derive) on `old`'s row.
    ///
    /// When `old` is already spent, the same transaction asks whether it
    /// was rotated within `window` and its successor is still unspent (and
    /// the login live): then the answer is that successor, still sealed, for
    /// the caller to open with the presented token. Concurrent rotations on
    /// any number of instances agree: the losers' `UPDATE` waits for the
    /// winner's commit (a row lock on PostgreSQL, the single writer on
    /// SQLite), and the lookup that follows, a new statement under READ
    /// COMMITTED, sees the winner's successor.
    pub async fn rotate_refresh_token(
        &self,
        old: &RefreshTokenHash,
        new: &RefreshTokenHash,
        sealed: &SealedSuccessor,
        login_id: &str,
        ttl: Duration,
        window: ReuseWindow,
    ) -> Result<Rotation, StoreError> {
        let now = self.clock.now();
        let expires_at = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let window_start = now.saturating_sub(i64::try_from(window.as_secs()).unwrap_or(0));
        let (spent, replay) = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let spent = sqlx::query(
                "UPDATE refresh_tokens SET spent_at = $1, successor_hash = $4, successor_sealed = $5 \
                 WHERE token_hash = $2 AND login_id = $3 AND spent_at IS NULL AND expires_at > $1 \
                 AND EXISTS (SELECT 1 FROM logins WHERE id = $3 AND revoked_at IS NULL)",
            )
            .bind(now)
            .bind(&old.0)
            .bind(login_id)
            .bind(&new.0)
            .bind(sealed.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let replay = if spent {
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, login_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&new.0)
                .bind(login_id)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
                None
            } else if window.is_disabled() {
                None
            } else {
                sqlx::query_as::<_, (String, String)>(
                    "SELECT r.successor_hash, r.successor_sealed FROM refresh_tokens r \
                     JOIN refresh_tokens s ON s.token_hash = r.successor_hash \
                     JOIN logins l ON l.id = r.login_id \
                     WHERE r.token_hash = $1 AND r.login_id = $2 AND r.spent_at >= $3 \
                     AND r.successor_sealed IS NOT NULL \
                     AND s.spent_at IS NULL AND s.expires_at > $4 AND l.revoked_at IS NULL",
                )
                .bind(&old.0)
                .bind(login_id)
                .bind(window_start)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?
            };
            tx.commit().await?;
            Ok::<_, sqlx::Error>((spent, replay))
        })?;
        Ok(match (spent, replay) {
            (true, _) => Rotation::Rotated,
            (false, Some((successor, sealed))) => Rotation::AlreadyRotated {
                successor: RefreshTokenHash(successor),
                sealed: SealedSuccessor::from_stored(sealed),
            },
            (false, None) => Rotation::Refused,
        })
    }

    /// Revokes a login: its refresh tokens stop working, and so, at once, do
    /// its access tokens (the per-request lookup checks the login). With
    /// `owner`, only that user's login is touched.
    pub async fn revoke_login(
        &self,
        login_id: &str,
        owner: Option<i64>,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let revoked = on_pool!(self, |pool| {
            async {
            let mut tx = pool.begin().await?;
            let user_id = sqlx::query_scalar::<_, i64>(
                "UPDATE logins SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL AND ($3 IS NULL OR user_id = $3) \
                 RETURNING user_id",
            )
            .bind(now)
            .bind(login_id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
            self.commit(tx, user_id.map_or(Change::Nothing, Change::User))
                .await?;
            Ok::<_, sqlx::Error>(user_id.is_some())
        }
        .await
        })?;
        Ok(revoked)
    }

    /// Deletes expired refresh tokens and the logins left without any. A
    /// deleted login's access tokens are refused (an unknown `sid` counts as
    /// revoked), so this never resurrects anything.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let purged = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let tokens = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            // Past the longest reuse window a sealed successor is never
            // served: nothing usable stays in the database.
            sqlx::query(
                "UPDATE refresh_tokens SET successor_sealed = NULL \
                 WHERE successor_sealed IS NOT NULL AND spent_at <= $1",
            )
            .bind(now.saturating_sub(i64::try_from(ReuseWindow::MAX_SECONDS).unwrap_or(i64::MAX)))
            .execute(&mut *tx)
            .await?;
            let logins = sqlx::query("DELETE FROM logins WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.login_id = logins.id)")
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let change = if logins > 0 {
                Change::Everyone
            } else {
                Change::Nothing
            };
            self.commit(tx, change).await?;
            Ok::<_, sqlx::Error>(tokens.rows_affected())
        })?;
        Ok(purged)
    }

    /// Purges expired refresh tokens (and reset and verification tokens) every `every`, in the background, for
    /// as long as the runtime lives.
    pub fn spawn_purge_task(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(e) = store.purge_expired().await {
                    tracing::warn!(error = %e, "purging expired refresh tokens failed; will retry");
                }
                if let Err(e) = store.purge_expired_account_tokens().await {
                    tracing::warn!(error = %e, "purging expired reset and verification tokens failed; will retry");
                }
            }
        })
    }

    /// The user a token names and whether its login is live: one indexed
    /// query (primary-key lookups on `users` and `logins`).
    pub async fn user_for_access(
        &self,
        user_id: i64,
        login_id: Option<&str>,
    ) -> Result<Lookup<User>, StoreError> {
        let now = self.clock.now();
        if let Some(user) = self.sessions.cached(user_id, login_id, now) {
            return Ok(Lookup::Found(user));
        }
        // Before the read: a change committed meanwhile keeps its answer out.
        let ticket = self.sessions.ticket();
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, AccessRow>(ACCESS_LOOKUP_SQL)
                .bind(user_id)
                .bind(login_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(match row {
            None => Lookup::UnknownUser,
            // A token naming a login that is revoked, or gone, is refused.
            Some(r) if login_id.is_some() && (r.login_id.is_none() || r.revoked_at.is_some()) => {
                Lookup::RevokedLogin
            }
            Some(r) => {
                let user = User::from(r.user);
                self.sessions.remember(ticket, &user, login_id, now);
                Lookup::Found(user)
            }
        })
    }
}

impl UserDirectory for Store {
    type User = User;

    async fn find(&self, access: &VerifiedAccess) -> Result<Lookup<User>, LookupError> {
        self.user_for_access(access.user_id, access.login_id())
            .await
            .map_err(|e| LookupError::from(Box::new(e) as Box<_>))
    }
}

/// The per-request lookup: the token's user and its login, by primary keys
/// (`$1` user id, `$2` login id or NULL). Public for the `store` benchmark.
#[doc(hidden)]
pub const ACCESS_LOOKUP_SQL: &str = "SELECT u.id, u.username, u.email, u.full_name, u.role, u.permissions, u.disabled, \
     u.email_verified, u.created_at, l.id AS login_id, l.revoked_at FROM users u \
     LEFT JOIN logins l ON l.id = $2 AND l.user_id = u.id WHERE u.id = $1";

#[derive(sqlx::FromRow)]
struct AccessRow {
    #[sqlx(flatten)]
    user: UserRow,
    login_id: Option<String>,
    revoked_at: Option<i64>,
}

/// A refresh token's SHA-256, hex: the only form in which it is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshTokenHash(String);

impl RefreshTokenHash {
    /// Hashes a presented token.
    pub fn of(token: &str) -> Self {
        Self(hex::encode(Sha256::digest(token.as_bytes())))
    }

    /// The hash, hex (what the database stores).
    pub fn as_hex(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RefreshTokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenHash(..)")
    }
}

/// What [`Store::rotate_refresh_token`] decided for a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It was spent now and its successor stored.
    Rotated,
    /// It was spent already, within the reuse window, and its successor is
    /// unspent: that successor, sealed under a key derived from the
    /// presented token.
    AlreadyRotated {
        /// The successor's hash (part of the seal's binding).
        successor: RefreshTokenHash,
        /// The successor, sealed.
        sealed: SealedSuccessor,
    },
    /// Spent outside the window (or its successor used), expired, or its
    /// login revoked: reuse.
    Refused,
}

/// A stored refresh token and its login.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshRecord {
    /// The login it belongs to.
    pub login_id: String,
    /// The login's user.
    pub user_id: i64,
    /// The login's original grant.
    pub scope: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// When it was used, if it was.
    pub spent_at: Option<i64>,
    /// When its login was revoked, if it was.
    pub revoked_at: Option<i64>,
}
