//! Users: creating, reading, listing, changing and deleting them, with
//! uniqueness decided by the unique indexes and the last enabled admin
//! kept.

use super::types::{NewUser, TakenField, USER_COLUMNS, User, UserRow, UserUpdate};
use super::{Backend, Store, StoreError};
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::page::{Page, PageRequest};
use crate::session_cache::Change;
use crate::username;

/// Locks a user's row for the rest of a service's own transaction, changing
/// nothing (so no session cache needs telling); whether the user exists.
///
/// A per-user rule a service keeps with a count and an insert (a quota of
/// items, say) holds under concurrency when its transaction starts here:
/// PostgreSQL queues concurrent transactions for one user on the row lock,
/// SQLite on its single writer, which this statement takes. Works inside
/// [`on_pool!`](crate::on_pool) on either backend:
///
/// ```no_run
/// use auth_kit::on_pool;
/// use auth_kit::store::{LockUserRow, Store};
///
/// async fn add_note(store: &Store, user_id: i64) -> Result<bool, sqlx::Error> {
///     on_pool!(store, |pool| {
///         let mut tx = pool.begin().await?;
///         if !tx.lock_user_row(user_id).await? {
///             return Ok(false); // the user is gone
///         }
///         // ... count the user's notes, insert one if below the quota ...
///         tx.commit().await?;
///         Ok(true)
///     })
/// }
/// ```
pub trait LockUserRow {
    /// Locks `user_id`'s row until the transaction ends; `false` when no
    /// such user exists.
    fn lock_user_row(
        &mut self,
        user_id: i64,
    ) -> impl std::future::Future<Output = Result<bool, sqlx::Error>> + Send;
}

macro_rules! lock_user_row_on {
    ($($database:ty),*) => {$(
        impl LockUserRow for sqlx::Transaction<'_, $database> {
            async fn lock_user_row(&mut self, user_id: i64) -> Result<bool, sqlx::Error> {
                // A no-op UPDATE rather than SELECT ... FOR UPDATE, which
                // SQLite lacks: on both it takes the lock a write takes.
                let locked = sqlx::query("UPDATE users SET disabled = disabled WHERE id = $1")
                    .bind(user_id)
                    .execute(&mut **self)
                    .await?
                    .rows_affected();
                Ok(locked == 1)
            }
        }
    )*};
}

lock_user_row_on!(sqlx::Sqlite, sqlx::Postgres);

impl Store {
    /// Creates a user. A username or email already in use (ignoring case) is
    /// [`CreateUserError::Taken`], decided by the unique indexes even when
    /// two signups race.
    pub async fn create_user(&self, new: &NewUser<'_>) -> Result<User, CreateUserError> {
        let now = self.clock.now();
        let email_key = new.email.map(str::to_lowercase);
        let result = on_pool!(self, |pool| {
            async {
            let mut tx = pool.begin().await?;
            let id = sqlx::query_scalar::<_, i64>(
                "INSERT INTO users (username, username_key, email, email_key, full_name, password_hash, role, permissions, disabled, created_at) \
                 VALUES ($1, $8, $2, $3, $4, $5, $6, '', FALSE, $7) RETURNING id",
            )
            .bind(new.username)
            .bind(new.email)
            .bind(&email_key)
            .bind(new.full_name)
            .bind(new.password_hash)
            .bind(new.role)
            .bind(now)
            .bind(username::fold(new.username))
            .fetch_one(&mut *tx)
            .await?;
            // A new id names nothing cached; announced all the same, like
            // every write to users.
            self.commit(tx, Change::User(id)).await?;
            Ok::<_, sqlx::Error>(id)
        }
        .await
        });
        match result {
            Ok(id) => Ok(User {
                id,
                username: new.username.to_owned(),
                email: new.email.map(str::to_owned),
                full_name: new.full_name.map(str::to_owned),
                role: new.role.to_owned(),
                disabled: false,
                email_verified: false,
                created_at: rfc3339(now),
                permissions: Vec::new(),
            }),
            Err(sqlx::Error::Database(db))
                if db.kind() == sqlx::error::ErrorKind::UniqueViolation =>
            {
                match UsersUniqueIndex::violated(db.as_ref()) {
                    Some(index) => Err(CreateUserError::Taken(index.field())),
                    // A unique index this code does not know of is no
                    // answer a client can act on: a 500, never "taken".
                    None => Err(CreateUserError::Store(sqlx::Error::Database(db).into())),
                }
            }
            Err(e) => Err(CreateUserError::Store(e.into())),
        }
    }

    /// The user with this id.
    pub async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(User::from))
    }

    /// Which of `username` and `email` (each ignoring case) a user already
    /// has, username first: signup asks before it spends a hash. (The
    /// unique indexes still decide when two signups race.)
    pub async fn taken(
        &self,
        username: &str,
        email: Option<&str>,
    ) -> Result<Option<TakenField>, StoreError> {
        let email_key = email.map(str::to_lowercase);
        // 1 when the row holds the username, 0 when only the email.
        let hits: Vec<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT CAST(CASE WHEN username_key = $1 THEN 1 ELSE 0 END AS BIGINT) FROM users \
                 WHERE username_key = $1 OR email_key = $2 LIMIT 2",
            )
            .bind(username::fold(username))
            .bind(&email_key)
            .fetch_all(pool)
            .await
        })?;
        Ok(if hits.iter().any(|(by_name,)| *by_name == 1) {
            Some(TakenField::Username)
        } else if hits.is_empty() {
            None
        } else {
            Some(TakenField::Email)
        })
    }

    /// The user with this username (ignoring case, as [`username::fold`]
    /// decides) and its password hash.
    pub async fn credentials(&self, username: &str) -> Result<Option<(User, String)>, StoreError> {
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, CredentialsRow>(&format!(
                "SELECT {USER_COLUMNS}, password_hash FROM users WHERE username_key = $1"
            ))
            .bind(username::fold(username))
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|r| (User::from(r.user), r.password_hash)))
    }

    /// Replaces a user's password hash `checked_hash` with `password_hash`
    /// (verify-and-update: the same password in a better format). `false`
    /// when the user's hash is no longer `checked_hash`: a password set
    /// meanwhile is never overwritten with the old password.
    pub async fn set_password_hash(
        &self,
        user_id: i64,
        checked_hash: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let replaced = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let replaced = sqlx::query(
                "UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3",
            )
            .bind(password_hash)
            .bind(user_id)
            .bind(checked_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let change = if replaced {
                Change::User(user_id)
            } else {
                Change::Nothing
            };
            self.commit(tx, change).await?;
            Ok::<_, sqlx::Error>(replaced)
        }
        .await)?;
        Ok(replaced)
    }

    /// One page of users, by id.
    pub async fn list_users(&self, page: &PageRequest) -> Result<Page<User>, StoreError> {
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, UserRow>(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2"
            ))
            .bind(page.after_id())
            .bind(page.lookahead_limit())
            .fetch_all(pool)
            .await
        })?;
        let users = rows.into_iter().map(User::from).collect();
        Ok(Page::from_lookahead(page, users, |u: &User| u.id))
    }

    /// Applies `update`; `None` when there is no such user. Absent fields are
    /// left as they are; `permissions` replaces the grants.
    ///
    /// A change that would leave no enabled admin (demoting or disabling the
    /// last one) is [`UserChangeError::LastAdmin`], decided by the database:
    /// see [`Store::delete_user`] for how it holds under concurrent changes.
    pub async fn update_user(
        &self,
        id: i64,
        update: &UserUpdate,
    ) -> Result<Option<User>, UserChangeError> {
        let permissions = update.permissions.as_ref().map(|p| {
            let mut p = p.clone();
            p.sort();
            p.dedup();
            p.join(" ")
        });
        let may_remove_an_admin = update.role.as_deref().is_some_and(|r| r != ADMIN_ROLE)
            || update.disabled == Some(true);
        let lock = self.admin_lock().filter(|_| may_remove_an_admin);
        let (row, exists) = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            if let Some(lock) = lock {
                sqlx::query(lock).bind(ADMIN_ROLE).execute(&mut *tx).await?;
            }
            // The row changes unless it is an enabled admin that would stop
            // being one while no other enabled admin exists.
            let row = sqlx::query_as::<_, UserRow>(&format!(
                "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled), \
                 permissions = COALESCE($4, permissions) \
                 WHERE id = $1 AND (role <> $5 OR disabled \
                 OR (COALESCE($2, role) = $5 AND NOT COALESCE($3, disabled)) \
                 OR {ANOTHER_ENABLED_ADMIN}) \
                 RETURNING {USER_COLUMNS}"
            ))
            .bind(id)
            .bind(&update.role)
            .bind(update.disabled)
            .bind(&permissions)
            .bind(ADMIN_ROLE)
            .fetch_optional(&mut *tx)
            .await?;
            let exists = match row {
                Some(_) => true,
                None => {
                    sqlx::query_scalar::<_, bool>(USER_EXISTS)
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?
                }
            };
            let change = if row.is_some() {
                Change::User(id)
            } else {
                Change::Nothing
            };
            self.commit(tx, change).await?;
            Ok::<_, sqlx::Error>((row, exists))
        }
        .await)
        .map_err(StoreError::from)?;
        match (row, exists) {
            (Some(row), _) => Ok(Some(User::from(row))),
            (None, true) => Err(UserChangeError::LastAdmin),
            (None, false) => Ok(None),
        }
    }

    /// Deletes a user with their items and logins (foreign keys cascade);
    /// `false` when there was no such user.
    ///
    /// Deleting the last enabled admin is [`UserChangeError::LastAdmin`].
    /// The rule is decided by the database, so two admins demoting, disabling
    /// or deleting each other at the same moment cannot both succeed: SQLite
    /// runs one writer at a time, and on PostgreSQL the transaction first
    /// locks every enabled admin's row (under READ COMMITTED both would
    /// otherwise still see the other enabled: write skew).
    pub async fn delete_user(&self, id: i64) -> Result<bool, UserChangeError> {
        let lock = self.admin_lock();
        let (deleted, exists) = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            if let Some(lock) = lock {
                sqlx::query(lock).bind(ADMIN_ROLE).execute(&mut *tx).await?;
            }
            let deleted = sqlx::query(&format!(
                "DELETE FROM users WHERE id = $1 AND (role <> $2 OR disabled OR {ANOTHER_ENABLED_ADMIN})"
            ))
            .bind(id)
            .bind(ADMIN_ROLE)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            let exists = !deleted
                && sqlx::query_scalar::<_, bool>(USER_EXISTS)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            let change = if deleted {
                Change::User(id)
            } else {
                Change::Nothing
            };
            self.commit(tx, change).await?;
            Ok::<_, sqlx::Error>((deleted, exists))
        }
        .await)
        .map_err(StoreError::from)?;
        if exists {
            return Err(UserChangeError::LastAdmin);
        }
        Ok(deleted)
    }

    /// The statement that serialises changes to the set of enabled admins
    /// (`$1` the admin role): on PostgreSQL, lock their rows, in id order so
    /// two such transactions cannot deadlock. SQLite's single writer
    /// serialises them already.
    fn admin_lock(&self) -> Option<&'static str> {
        match self.backend() {
            Backend::Postgres => {
                Some("SELECT id FROM users WHERE role = $1 AND NOT disabled ORDER BY id FOR UPDATE")
            }
            Backend::Sqlite => None,
        }
    }
}

/// The role the last-admin rule protects (and admin bootstrap creates).
pub(super) const ADMIN_ROLE: &str = "admin";
/// In a statement on `users`: another enabled user holds the row's role
/// (it guards only rows whose role is the admin role).
const ANOTHER_ENABLED_ADMIN: &str = "EXISTS (SELECT 1 FROM users other WHERE other.role = users.role \
     AND NOT other.disabled AND other.id <> users.id)";
const USER_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)";

#[derive(sqlx::FromRow)]
struct CredentialsRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

/// The unique indexes of `users` that make a signup's field taken, by the
/// names the migrations give them (`users_username_key` in 0001 and 0003,
/// `users_email_key` in 0001, the same in both dialects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UsersUniqueIndex {
    /// On `username_key` (the folded username).
    UsernameKey,
    /// On `email_key` (the lower-cased email).
    EmailKey,
}

impl UsersUniqueIndex {
    const ALL: [Self; 2] = [Self::UsernameKey, Self::EmailKey];

    /// The index's name: what PostgreSQL reports as the violated constraint.
    const fn name(self) -> &'static str {
        match self {
            Self::UsernameKey => "users_username_key",
            Self::EmailKey => "users_email_key",
        }
    }

    /// The message SQLite gives instead (it reports no constraint name):
    /// the indexed columns as `table.column`.
    const fn sqlite_message(self) -> &'static str {
        match self {
            Self::UsernameKey => "UNIQUE constraint failed: users.username_key",
            Self::EmailKey => "UNIQUE constraint failed: users.email_key",
        }
    }

    const fn field(self) -> TakenField {
        match self {
            Self::UsernameKey => TakenField::Username,
            Self::EmailKey => TakenField::Email,
        }
    }

    /// The index a unique violation names, or `None` for any other.
    fn violated(error: &dyn sqlx::error::DatabaseError) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|index| match error.constraint() {
                Some(constraint) => constraint == index.name(),
                None => error.message() == index.sqlite_message(),
            })
    }
}

/// Why a user was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// The username or email is in use.
    #[error("that {} is already taken", match .0 { TakenField::Username => "username", TakenField::Email => "email" })]
    Taken(TakenField),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CreateUserError> for ApiError {
    fn from(e: CreateUserError) -> Self {
        match e {
            CreateUserError::Taken(TakenField::Username) => ApiError::Conflict {
                code: "username_taken",
                description: "That username is already taken".into(),
            },
            CreateUserError::Taken(TakenField::Email) => ApiError::Conflict {
                code: "email_taken",
                description: "That email is already taken".into(),
            },
            CreateUserError::Store(e) => e.into(),
        }
    }
}

/// Why an admin's change to a user was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserChangeError {
    /// The change would leave no enabled admin (409 `last_admin`).
    #[error("the last enabled admin cannot be demoted, disabled or deleted")]
    LastAdmin,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<UserChangeError> for ApiError {
    fn from(e: UserChangeError) -> Self {
        match e {
            UserChangeError::LastAdmin => ApiError::Conflict {
                code: "last_admin",
                description: "The last enabled admin cannot be demoted, disabled or deleted; make another user an admin first".into(),
            },
            UserChangeError::Store(e) => e.into(),
        }
    }
}
