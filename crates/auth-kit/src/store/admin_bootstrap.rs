//! The bootstrap admin: created at start-up unless its name is taken, and
//! inspected read-only by `cargo auth validate`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::types::{NewUser, USER_COLUMNS, User, UserRow};
use super::users::{ADMIN_ROLE, CreateUserError};
use super::{Store, StoreError};
use crate::username;

impl Store {
    /// Creates the bootstrap admin unless a user of that name exists (an
    /// existing user is never changed, even when it is not an enabled admin:
    /// [`AdminBootstrapOutcome::NotAnAdmin`]). `hash` is only called when
    /// needed.
    pub async fn ensure_admin<F, Fut, E>(
        &self,
        username: &str,
        hash: F,
    ) -> Result<AdminBootstrapOutcome, EnsureAdminError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String, E>>,
    {
        if let Some((user, _)) = self
            .credentials(username)
            .await
            .map_err(EnsureAdminError::Store)?
        {
            return Ok(AdminBootstrapOutcome::existing(user));
        }
        let password_hash = hash().await.map_err(EnsureAdminError::Hash)?;
        let new = NewUser {
            username,
            email: None,
            full_name: None,
            password_hash: &password_hash,
            role: ADMIN_ROLE,
        };
        match self.create_user(&new).await {
            Ok(_) => Ok(AdminBootstrapOutcome::Created),
            // Created meanwhile by another instance: still left alone.
            Err(CreateUserError::Taken(_)) => Ok(AdminBootstrapOutcome::LeftAlone),
            Err(CreateUserError::Store(e)) => Err(EnsureAdminError::Store(e)),
        }
    }
}

/// What admin bootstrap did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminBootstrapOutcome {
    /// The admin was created.
    Created,
    /// An enabled admin of that name exists and was not changed.
    LeftAlone,
    /// A user of that name exists but is not an enabled admin (someone
    /// signed up with the name first, or the admin was demoted or
    /// disabled): nothing was changed, and the service has no admin of that
    /// name.
    NotAnAdmin {
        /// The user's role.
        role: String,
        /// Whether the user is disabled.
        disabled: bool,
    },
}

impl AdminBootstrapOutcome {
    fn existing(user: User) -> Self {
        if user.role == ADMIN_ROLE && !user.disabled {
            AdminBootstrapOutcome::LeftAlone
        } else {
            AdminBootstrapOutcome::NotAnAdmin {
                role: user.role,
                disabled: user.disabled,
            }
        }
    }

    /// How to make the existing user of `username` the admin (for
    /// [`AdminBootstrapOutcome::NotAnAdmin`]): the stamped tool, or SQL by
    /// hand. Both spellings work on SQLite and PostgreSQL.
    pub fn promote_hint(username: &str) -> String {
        let key = username::fold(username).replace('\'', "''");
        format!(
            "if that user should be the admin, run `cargo auth admin promote --username {username}` in the service's project, or by hand in the database: UPDATE users SET role = 'admin', disabled = FALSE WHERE username_key = '{key}'; then restart the service; otherwise set ADMIN_USERNAME to a name nobody uses"
        )
    }
}

/// Who the bootstrap admin's name belongs to, read without changing the
/// database (`cargo auth validate`): `Ok(None)` when nobody has it (or the
/// schema does not exist yet), else [`AdminBootstrapOutcome::LeftAlone`]
/// or [`AdminBootstrapOutcome::NotAnAdmin`].
pub async fn inspect_admin(
    url: &str,
    username: &str,
    timeout: Duration,
) -> Result<Option<AdminBootstrapOutcome>, String> {
    let query = format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = $1");
    let key = username::fold(username);
    let probe = async {
        let row: Result<Option<UserRow>, sqlx::Error> = if url.starts_with("sqlite:") {
            // Read-only: never creates the file or takes a write lock.
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|_| "not a valid sqlite: URL".to_owned())?
                .read_only(true)
                .create_if_missing(false);
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .map_err(|e| e.to_string())?;
            let row = sqlx::query_as(&query)
                .bind(&key)
                .fetch_optional(&pool)
                .await;
            pool.close().await;
            row
        } else {
            let options = PgConnectOptions::from_str(url)
                .map_err(|_| "not a valid postgres:// URL".to_owned())?;
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(timeout)
                .connect_with(options)
                .await
                .map_err(|e| e.to_string())?;
            let row = sqlx::query_as(&query)
                .bind(&key)
                .fetch_optional(&pool)
                .await;
            pool.close().await;
            row
        };
        match row {
            Ok(row) => Ok(row.map(|r| AdminBootstrapOutcome::existing(User::from(r)))),
            // A database the service never started on has no users table:
            // the admin will be created.
            Err(sqlx::Error::Database(db))
                if db.code().as_deref() == Some("42P01")
                    || db.message().contains("no such table") =>
            {
                Ok(None)
            }
            Err(e) => Err(e.to_string()),
        }
    };
    tokio::time::timeout(timeout, probe)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", timeout.as_secs())))
}

/// Admin bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum EnsureAdminError<E> {
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
    /// Hashing the password failed.
    #[error("hashing the admin password failed: {0}")]
    Hash(E),
}
