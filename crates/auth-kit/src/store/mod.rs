//! Users, logins and refresh tokens, on SQLite or PostgreSQL; the pool a
//! service's own tables share.
//!
//! One schema (`migrations/sqlite` and `migrations/postgres` differ only in
//! how identity columns are spelled) and one implementation of each query:
//! every query in this module is written once and runs on whichever native sqlx pool
//! [`Store::connect`] opened, through the `on_pool!` macro. sqlx's `Any`
//! driver would also give one query text, but it cannot set SQLite's
//! connection options (WAL, `synchronous`, busy timeout) and cannot even
//! decode SQLite's `BOOLEAN`; for the same lookup it costs the same within
//! noise (`cargo bench -p auth-kit --bench store`).
//!
//! Invariants the queries keep:
//! - uniqueness (usernames and emails, ignoring case) is decided by unique
//!   indexes, never by check-then-insert, so it holds under races; the
//!   username's index is on `username_key`, its fold computed in Rust
//!   ([`crate::username::fold`]), never on the database's `lower()`;
//! - rotating a refresh token is one conditional `UPDATE`: of two
//!   concurrent rotations of the same token at most one succeeds, and the
//!   others, in the same transaction, find the winner's successor (the
//!   reuse window) or nothing;
//! - the database never holds a usable refresh token: tokens are stored as
//!   SHA-256, successors only sealed under a key derived from their parent;
//! - the last enabled admin is never demoted, disabled or deleted, also
//!   when two admins change each other at once;
//! - lists are read by keyset (`id > after ORDER BY id LIMIT n + 1`): one
//!   indexed query per page, however deep;
//! - the per-request lookup of a token's user and login is one indexed query,
//!   served from the session cache ([`crate::session_cache`]) when one is
//!   configured;
//! - every write to `users` or `logins` commits through `Store::commit`,
//!   naming the user it changed: the one place that tells the session
//!   caches of this and every other instance (`tests/session_cache.rs`
//!   lists those writes by scanning the SQL in this module's files).

use std::fmt;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

use crate::clock::Clock;
use crate::error::ApiError;
use crate::session_cache::Sessions;

/// The store's connection pool: SQLite or PostgreSQL, sqlx's native pool
/// for each. Reach it with [`Store::pool`]; run one query text on either
/// with [`on_pool!`](crate::on_pool).
#[derive(Debug, Clone)]
pub enum Pool {
    /// An embedded SQLite file.
    Sqlite(SqlitePool),
    /// A PostgreSQL server.
    Postgres(PgPool),
}

/// Runs the same query code against whichever pool a [`Store`] has open:
/// `on_pool!(store, |pool| body)`. In `body`, `pool` is a `&SqlitePool` in
/// one arm and a `&PgPool` in the other; the body must compile for both,
/// which is what keeps one implementation (one SQL text, `$1`-style
/// parameters, which both accept) per query. This is how the kit writes
/// its own queries, and how a service writes its tables' on the same pool.
///
/// `store` is anything with a `pool()` method returning `&Pool` (a
/// [`Store`], a `&Store`). The calling crate depends on `sqlx` for the
/// query functions.
///
/// ```
/// use auth_kit::on_pool;
/// use auth_kit::store::Store;
///
/// /// How many users have logged in since `since` (unix seconds).
/// async fn users_seen_since(store: &Store, since: i64) -> Result<i64, sqlx::Error> {
///     on_pool!(store, |pool| {
///         sqlx::query_scalar("SELECT count(DISTINCT user_id) FROM logins WHERE created_at >= $1")
///             .bind(since)
///             .fetch_one(pool)
///             .await
///     })
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let db = auth_kit::testing::TestDatabase::sqlite();
/// let store = Store::connect(db.url()).await.expect("a fresh SQLite file opens");
/// assert_eq!(users_seen_since(&store, 0).await.expect("the query runs"), 0);
/// # }
/// ```
#[macro_export]
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store.pool() {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}

// One file per concern, each with its own `impl Store` block. Declared
// after `on_pool!`: their queries use it.
mod account_tokens;
mod admin_bootstrap;
mod logins;
mod migrations;
mod open;
mod publish;
mod types;
mod users;

pub use account_tokens::{AccountTokenHash, PasswordReset, TokenPurpose};
pub use admin_bootstrap::{AdminBootstrapOutcome, EnsureAdminError, inspect_admin};
#[doc(hidden)]
pub use logins::ACCESS_LOOKUP_SQL;
pub use logins::{RefreshRecord, RefreshTokenHash, Rotation};
pub use migrations::{MigrationState, SERVICE_MIGRATIONS_FROM, ServiceMigrations, migration_state};
pub use open::{OpenError, check_database};
pub use types::{AdminUserView, MAX_PERMISSION_GRANTS, NewUser, TakenField, User, UserUpdate};
pub use users::{CreateUserError, LockUserRow, UserChangeError};

/// Which database a store is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (WAL mode).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A database failure. Connection problems answer 503, anything else 500;
/// neither shows the client any detail.
#[derive(Debug, thiserror::Error)]
#[error("database error: {0}")]
pub struct StoreError(#[from] sqlx::Error);

impl StoreError {
    /// Whether the database could not be reached (or a connection not had).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.0,
            sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            ApiError::unavailable(e)
        } else {
            ApiError::internal(e)
        }
    }
}

/// The store: a connection pool, the clock timestamps come from, and the
/// session cache its writes keep true.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    clock: Clock,
    sessions: Sessions,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The same store reading time from `clock` (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The connection pool, for a service's own queries on the same
    /// database (with [`on_pool!`](crate::on_pool)). A write to `users` or
    /// `logins` must not go through it: those commit through the store's
    /// methods, which keep the session caches true.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The clock this store timestamps with (a service's rows use it too,
    /// so tests with a manual clock see one time).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Which database this store is on.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Closes every connection (graceful shutdown).
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
    }
}
