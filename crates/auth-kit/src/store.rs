//! Users, logins and refresh tokens, on SQLite or PostgreSQL; the pool a
//! service's own tables share.
//!
//! One schema (`migrations/sqlite` and `migrations/postgres` differ only in
//! how identity columns are spelled) and one implementation of each query:
//! every query below is written once and runs on whichever native sqlx pool
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
//!   lists those writes by scanning this module's SQL).

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::clock::{Clock, rfc3339};
use crate::config::{RateLimitUrl, SessionCacheSettings};
use crate::error::ApiError;
use crate::extract::{Account, Lookup, LookupError, UserDirectory};
use crate::limiter::RedisUrlError;
use crate::page::{Page, PageRequest};
use crate::refresh::{ReuseWindow, SealedSuccessor};
use crate::session_cache::{Change, Delivery, Sessions};
use crate::token::VerifiedAccess;
use crate::username;

// The kit's migrations tolerate versions they do not know: the ones this
// kit once shipped and retired, and the service's own (see
// `ServiceMigrations`), all recorded in the same `_sqlx_migrations` table.
static SQLITE_MIGRATIONS: LazyLock<Migrator> =
    LazyLock::new(|| tolerant(sqlx::migrate!("./migrations/sqlite")));
static POSTGRES_MIGRATIONS: LazyLock<Migrator> =
    LazyLock::new(|| tolerant(sqlx::migrate!("./migrations/postgres")));

/// Versions this kit once shipped and no longer does: 0002 and 0006 created
/// and indexed the example items tables, which the services now own (their
/// migrations redo both idempotently). A database may have them applied.
const RETIRED_KIT_VERSIONS: [i64; 2] = [2, 6];

/// A service's own migrations are numbered from here up; below is the kit's.
pub const SERVICE_MIGRATIONS_FROM: i64 = 1000;

fn tolerant(mut migrator: Migrator) -> Migrator {
    migrator.set_ignore_missing(true);
    migrator
}

/// A service's own migrations, one folder per backend, run after the kit's
/// on the same database (and the same `_sqlx_migrations` table). Their
/// versions start at [`SERVICE_MIGRATIONS_FROM`], so they never meet the
/// kit's.
///
/// ```ignore
/// let migrations = ServiceMigrations::new(
///     sqlx::migrate!("./migrations/sqlite"),
///     sqlx::migrate!("./migrations/postgres"),
/// );
/// let store = Store::connect_with(&settings.database_url, &migrations).await?;
/// ```
#[derive(Debug)]
pub struct ServiceMigrations {
    sqlite: Migrator,
    postgres: Migrator,
}

impl ServiceMigrations {
    /// The service's SQLite and PostgreSQL migrations (`sqlx::migrate!`).
    /// Both are made to tolerate the kit's versions.
    pub fn new(sqlite: Migrator, postgres: Migrator) -> Self {
        Self {
            sqlite: tolerant(sqlite),
            postgres: tolerant(postgres),
        }
    }

    /// The first version below [`SERVICE_MIGRATIONS_FROM`], if any.
    fn kit_range_version(&self) -> Option<i64> {
        self.sqlite
            .iter()
            .chain(self.postgres.iter())
            .map(|m| m.version)
            .find(|v| *v < SERVICE_MIGRATIONS_FROM)
    }
}

/// How long a request waits for a database connection before answering 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

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

// Reset and verification tokens: their queries use `on_pool!`, so the
// module is declared after it.
mod account_tokens;
pub use account_tokens::{AccountTokenHash, PasswordReset, TokenPurpose};

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

/// What opening a database may do to its schema.
#[derive(Clone, Copy)]
enum Schema<'a> {
    /// Create a missing SQLite file and bring the schema up to date: the
    /// kit's migrations, then the service's, if any.
    Migrate(Option<&'a ServiceMigrations>),
    /// Change nothing.
    AsIs,
}

/// Could not open or migrate the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// DATABASE_URL is neither SQLite nor PostgreSQL, or does not parse.
    #[error("DATABASE_URL cannot be used: {0}")]
    Url(String),
    /// The database could not be reached or opened.
    #[error("the database cannot be opened: {0}")]
    Connect(#[source] sqlx::Error),
    /// The SQLite file could not be created.
    #[error("the database file cannot be created: {0}")]
    Create(#[source] std::io::Error),
    /// Migrations failed.
    #[error("the database schema cannot be brought up to date: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A service migration is numbered in the kit's range.
    #[error(
        "service migration {0} is numbered below {SERVICE_MIGRATIONS_FROM}, which the kit's migrations use; renumber it"
    )]
    ServiceMigrationVersion(i64),
    /// The database has migrations applied that neither this kit nor the
    /// service knows: a newer release migrated it (a rollback?).
    #[error(
        "the database was migrated by a newer release (migrations {0:?} are unknown here): run that release, or restore a backup taken before it"
    )]
    NewerSchema(Vec<i64>),
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
    /// Opens `url` (`sqlite://file.db?mode=rwc` or `postgres://...`) and
    /// applies the migrations.
    ///
    /// SQLite runs in WAL mode with foreign keys on, `synchronous=FULL` and
    /// a 5 s busy timeout: an acknowledged write survives a crash of the
    /// process or the machine.
    ///
    /// A new SQLite file is created readable by its owner only (0600); its
    /// `-wal` and `-shm` files take the same mode from it.
    pub async fn connect(url: &str) -> Result<Self, OpenError> {
        Self::open(url, Schema::Migrate(None)).await
    }

    /// Opens a database as it is: no SQLite file is created, no migration
    /// run, no row backfilled. For the operator tools, which check
    /// ([`migration_state`]) that the service has migrated the database and
    /// must not change its schema under a running service.
    pub async fn connect_migrated(url: &str) -> Result<Self, OpenError> {
        Self::open(url, Schema::AsIs).await
    }

    /// [`Store::connect`], then the service's own migrations on the same
    /// database (the kit's first: theirs may refer to the kit's tables).
    pub async fn connect_with(url: &str, service: &ServiceMigrations) -> Result<Self, OpenError> {
        if let Some(version) = service.kit_range_version() {
            return Err(OpenError::ServiceMigrationVersion(version));
        }
        Self::open(url, Schema::Migrate(Some(service))).await
    }

    async fn open(url: &str, schema: Schema<'_>) -> Result<Self, OpenError> {
        let service = match schema {
            Schema::Migrate(service) => service,
            Schema::AsIs => None,
        };
        let migrate = matches!(schema, Schema::Migrate(_));
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|_| OpenError::Url("not a valid sqlite: URL".to_owned()))?;
            let options = if migrate {
                create_private_file(options.get_filename()).map_err(OpenError::Create)?;
                options
            } else {
                options.create_if_missing(false)
            };
            let options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(OpenError::Connect)?;
            if migrate {
                let applied =
                    applied_versions(sqlx::query_scalar(APPLIED_VERSIONS).fetch_all(&pool).await)?;
                refuse_newer(&SQLITE_MIGRATIONS, service.map(|s| &s.sqlite), &applied)?;
            }
            for migrator in [
                migrate.then_some(&*SQLITE_MIGRATIONS),
                service.map(|s| &s.sqlite),
            ]
            .into_iter()
            .flatten()
            {
                migrator.run(&pool).await.map_err(OpenError::Migrate)?;
            }
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)
                .map_err(|_| OpenError::Url("not a valid postgres:// URL".to_owned()))?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(OpenError::Connect)?;
            if migrate {
                let applied =
                    applied_versions(sqlx::query_scalar(APPLIED_VERSIONS).fetch_all(&pool).await)?;
                refuse_newer(&POSTGRES_MIGRATIONS, service.map(|s| &s.postgres), &applied)?;
            }
            for migrator in [
                migrate.then_some(&*POSTGRES_MIGRATIONS),
                service.map(|s| &s.postgres),
            ]
            .into_iter()
            .flatten()
            {
                migrator.run(&pool).await.map_err(OpenError::Migrate)?;
            }
            Pool::Postgres(pool)
        } else {
            return Err(OpenError::Url(
                "use sqlite://<file>.db?mode=rwc or postgres://...".to_owned(),
            ));
        };
        // Even without a cache of its own, a store on PostgreSQL announces
        // its changes, for the instances that cache.
        let postgres_channel = match &pool {
            Pool::Postgres(pool) => Some(postgres_channel(pool).await.map_err(OpenError::Connect)?),
            Pool::Sqlite(_) => None,
        };
        let store = Self {
            pool,
            clock: Clock::System,
            sessions: Sessions::uncached(postgres_channel),
        };
        if migrate {
            store
                .fill_username_keys()
                .await
                .map_err(|e| OpenError::Connect(e.0))?;
        }
        Ok(store)
    }

    /// Computes `username_key` for rows written before it existed. Two old
    /// rows whose names fold alike cannot both have the key: the older one
    /// keeps it, and the newer stays unable to log in by name until an
    /// operator renames it (logged as an error, with the ids).
    async fn fill_username_keys(&self) -> Result<(), StoreError> {
        let rows: Vec<(i64, String)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT id, username FROM users WHERE username_key IS NULL ORDER BY id")
                .fetch_all(pool)
                .await
        })?;
        for (id, name) in rows {
            let key = username::fold(&name);
            let updated = on_pool!(self, |pool| async {
                let mut tx = pool.begin().await?;
                sqlx::query("UPDATE users SET username_key = $1 WHERE id = $2")
                    .bind(&key)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                self.commit(tx, Change::User(id)).await
            }
            .await);
            match updated {
                Ok(_) => {}
                Err(sqlx::Error::Database(db))
                    if db.kind() == sqlx::error::ErrorKind::UniqueViolation =>
                {
                    tracing::error!(
                        user_id = id,
                        "this user's name is the same as an older user's when case is ignored; \
                         it cannot log in by name until it is renamed"
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The same store reading time from `clock` (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same store serving verified sessions from memory for at most
    /// `settings.ttl` (SESSION_CACHE_SECONDS; zero keeps reading the
    /// database on every request), as [`crate::session_cache`] describes:
    /// on PostgreSQL, other instances' changes arrive by LISTEN/NOTIFY; on
    /// SQLite, through `settings.redis` (RATE_LIMIT_URL) when set, else
    /// this is assumed to be the only instance. `service_name` names the
    /// Redis channel. Starts background tasks: call it inside a Tokio
    /// runtime, once, at start-up.
    pub fn with_session_cache(
        mut self,
        settings: &SessionCacheSettings,
        service_name: &str,
    ) -> Result<Self, RedisUrlError> {
        let postgres = match &self.pool {
            Pool::Postgres(pool) => Some(pool.clone()),
            Pool::Sqlite(_) => None,
        };
        let channel = self.sessions.postgres_channel().map(str::to_owned);
        self.sessions = Sessions::start(settings, postgres, channel, service_name)?;
        Ok(self)
    }

    /// Publishes this store's changes on `redis` without caching anything:
    /// for a process that writes a SQLite database a service fleet shares
    /// through RATE_LIMIT_URL but serves no requests itself (the operator
    /// tools). Each change is retried for up to `retry_for`; wait for them
    /// with [`Store::published`] before exiting. On PostgreSQL the store
    /// already announces its changes itself, and this changes nothing.
    pub fn publishing_on(
        mut self,
        redis: &RateLimitUrl,
        service_name: &str,
        retry_for: Duration,
    ) -> Result<Self, RedisUrlError> {
        if let Pool::Sqlite(_) = self.pool {
            self.sessions = Sessions::publishing(redis, service_name, retry_for)?;
        }
        Ok(self)
    }

    /// Waits, for at most `limit`, until every change this store made has
    /// reached the other instances' channel, and says how that went (see
    /// [`Delivery`]). At once on PostgreSQL, whose transactions carried
    /// their own notifications.
    pub async fn published(&self, limit: Duration) -> Delivery {
        self.sessions.published(limit).await
    }

    /// Commits a transaction that wrote `users` or `logins`, and tells every
    /// session cache what it changed: on PostgreSQL with a `NOTIFY` in the
    /// transaction (delivered on commit only), here right after the commit
    /// (also when the commit reports an error: it may have happened), and
    /// on Redis after that. Every such write ends here.
    async fn commit<DB: Announce>(
        &self,
        mut tx: sqlx::Transaction<'_, DB>,
        change: Change,
    ) -> Result<(), sqlx::Error> {
        if let (Some(channel), Some(payload)) = (self.sessions.postgres_channel(), change.payload())
        {
            DB::announce(&mut tx, channel, &payload).await?;
        }
        let committed = tx.commit().await;
        self.sessions.changed(change);
        committed
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

    // -- users ---------------------------------------------------------------

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

    // -- logins and refresh tokens --------------------------------------------

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

/// Opens `url` just long enough to check that it answers (`cargo auth validate`).
pub async fn check_database(url: &str, timeout: Duration) -> Result<Backend, String> {
    let probe = async {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|_| "not a valid sqlite: URL".to_owned())?;
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query("SELECT 1")
                .execute(&pool)
                .await
                .map_err(|e| e.to_string())?;
            pool.close().await;
            Ok(Backend::Sqlite)
        } else {
            let options = PgConnectOptions::from_str(url)
                .map_err(|_| "not a valid postgres:// URL".to_owned())?;
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(timeout)
                .connect_with(options)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query("SELECT 1")
                .execute(&pool)
                .await
                .map_err(|e| e.to_string())?;
            pool.close().await;
            Ok(Backend::Postgres)
        }
    };
    tokio::time::timeout(timeout, probe)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", timeout.as_secs())))
}

/// Which of this kit's migrations a database has not applied, and which it
/// applied that this kit does not know (a newer kit migrated it). Neither
/// the versions this kit retired nor a service's own (from
/// [`SERVICE_MIGRATIONS_FROM`] up) count as unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationState {
    /// `(version, description)` of each migration not applied yet, in order.
    pub pending: Vec<(i64, String)>,
    /// Kit versions applied that this kit has no migration for.
    pub unknown: Vec<i64>,
}

impl MigrationState {
    /// Every migration applied, none unknown.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.unknown.is_empty()
    }
}

/// Reads which migrations `url` has applied, without changing it (the
/// operator tools refuse a database the service has not migrated). A SQLite
/// file that does not exist is not created: every migration is pending.
pub async fn migration_state(url: &str, timeout: Duration) -> Result<MigrationState, String> {
    const APPLIED: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
    let probe = async {
        let (migrator, applied): (&Migrator, Result<Vec<i64>, sqlx::Error>) =
            if url.starts_with("sqlite:") {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|_| "not a valid sqlite: URL".to_owned())?
                    .read_only(true)
                    .create_if_missing(false);
                let applied = if options.get_filename().exists() {
                    let pool = SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect_with(options)
                        .await
                        .map_err(|e| e.to_string())?;
                    let applied = sqlx::query_scalar(APPLIED).fetch_all(&pool).await;
                    pool.close().await;
                    applied
                } else {
                    Ok(Vec::new())
                };
                (&*SQLITE_MIGRATIONS, applied)
            } else {
                let options = PgConnectOptions::from_str(url)
                    .map_err(|_| "not a valid postgres:// URL".to_owned())?;
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(timeout)
                    .connect_with(options)
                    .await
                    .map_err(|e| e.to_string())?;
                let applied = sqlx::query_scalar(APPLIED).fetch_all(&pool).await;
                pool.close().await;
                (&*POSTGRES_MIGRATIONS, applied)
            };
        let applied = match applied {
            Ok(applied) => applied,
            // Never migrated: no bookkeeping table yet.
            Err(sqlx::Error::Database(db))
                if db.code().as_deref() == Some("42P01")
                    || db.message().contains("no such table") =>
            {
                Vec::new()
            }
            Err(e) => return Err(e.to_string()),
        };
        Ok(compare_migrations(migrator, &applied))
    };
    tokio::time::timeout(timeout, probe)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", timeout.as_secs())))
}

/// The migrations a database applied, as recorded by sqlx.
const APPLIED_VERSIONS: &str =
    "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

/// The applied versions from reading [`APPLIED_VERSIONS`]; none when the
/// database was never migrated (no bookkeeping table yet).
fn applied_versions(read: Result<Vec<i64>, sqlx::Error>) -> Result<Vec<i64>, OpenError> {
    match read {
        Ok(applied) => Ok(applied),
        Err(sqlx::Error::Database(db))
            if db.code().as_deref() == Some("42P01") || db.message().contains("no such table") =>
        {
            Ok(Vec::new())
        }
        Err(e) => Err(OpenError::Connect(e)),
    }
}

/// Refuses a database a newer release migrated. The migrators tolerate
/// versions they do not know (each other's, and the kit's retired ones),
/// so this is where an unknown kit version, or an unknown service version
/// when the service's migrations are given, stops start-up, as sqlx itself
/// would without that tolerance.
fn refuse_newer(
    kit: &Migrator,
    service: Option<&Migrator>,
    applied: &[i64],
) -> Result<(), OpenError> {
    let mut unknown = compare_migrations(kit, applied).unknown;
    if let Some(service) = service {
        unknown.extend(
            applied.iter().copied().filter(|v| {
                *v >= SERVICE_MIGRATIONS_FROM && !service.iter().any(|m| m.version == *v)
            }),
        );
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(OpenError::NewerSchema(unknown))
    }
}

/// [`MigrationState`] of a database that applied `applied`, against `migrator`.
fn compare_migrations(migrator: &Migrator, applied: &[i64]) -> MigrationState {
    let known: Vec<&sqlx::migrate::Migration> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .collect();
    MigrationState {
        pending: known
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect(),
        unknown: applied
            .iter()
            .copied()
            .filter(|v| {
                *v < SERVICE_MIGRATIONS_FROM
                    && !RETIRED_KIT_VERSIONS.contains(v)
                    && !known.iter().any(|m| m.version == *v)
            })
            .collect(),
    }
}

/// The role the last-admin rule protects (and admin bootstrap creates).
const ADMIN_ROLE: &str = "admin";
/// In a statement on `users`: another enabled user holds the row's role
/// (it guards only rows whose role is the admin role).
const ANOTHER_ENABLED_ADMIN: &str = "EXISTS (SELECT 1 FROM users other WHERE other.role = users.role \
     AND NOT other.disabled AND other.id <> users.id)";
const USER_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)";
const USER_COLUMNS: &str =
    "id, username, email, full_name, role, permissions, disabled, email_verified, created_at";
/// The per-request lookup: the token's user and its login, by primary keys
/// (`$1` user id, `$2` login id or NULL). Public for the `store` benchmark.
#[doc(hidden)]
pub const ACCESS_LOOKUP_SQL: &str = "SELECT u.id, u.username, u.email, u.full_name, u.role, u.permissions, u.disabled, \
     u.email_verified, u.created_at, l.id AS login_id, l.revoked_at FROM users u \
     LEFT JOIN logins l ON l.id = $2 AND l.user_id = u.id WHERE u.id = $1";

/// How a transaction tells other instances what it changed: PostgreSQL
/// sends a `NOTIFY`, delivered when (and only if) the transaction commits.
/// SQLite has no such thing (its changes go through Redis, after the commit).
trait Announce: sqlx::Database {
    fn announce<'c>(
        connection: &'c mut Self::Connection,
        channel: &'c str,
        payload: &'c str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;
}

impl Announce for sqlx::Postgres {
    fn announce<'c>(
        connection: &'c mut Self::Connection,
        channel: &'c str,
        payload: &'c str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>
    {
        Box::pin(async move {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(connection)
                .await
                .map(|_| ())
        })
    }
}

impl Announce for sqlx::Sqlite {
    fn announce<'c>(
        _connection: &'c mut Self::Connection,
        _channel: &'c str,
        _payload: &'c str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>
    {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The PostgreSQL channel of this database schema's session changes:
/// stores of other schemas on the same server (other services, tests) do
/// not hear them. A channel name is at most 63 bytes.
async fn postgres_channel(pool: &PgPool) -> Result<String, sqlx::Error> {
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await?;
    let name = format!("sessions.{schema}");
    Ok(if name.len() <= 63 {
        name
    } else {
        format!(
            "sessions.{}",
            &hex::encode(Sha256::digest(schema.as_bytes()))[..32]
        )
    })
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    email: Option<String>,
    full_name: Option<String>,
    role: String,
    permissions: String,
    disabled: bool,
    email_verified: bool,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct CredentialsRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

#[derive(sqlx::FromRow)]
struct AccessRow {
    #[sqlx(flatten)]
    user: UserRow,
    login_id: Option<String>,
    revoked_at: Option<i64>,
}

/// A user as the API shows it: never with the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// The id (`sub` in tokens).
    pub id: i64,
    /// Unique ignoring case.
    pub username: String,
    /// Unique ignoring case, when present.
    pub email: Option<String>,
    /// Free text.
    pub full_name: Option<String>,
    /// `guest`, `user` or `admin`.
    pub role: String,
    /// Disabled users cannot log in or use their tokens.
    pub disabled: bool,
    /// Whether the user proved they receive mail at `email` (a verification
    /// or password-reset link was used).
    pub email_verified: bool,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// Per-user permission grants (shown only in admin answers).
    #[serde(skip)]
    pub permissions: Vec<String>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            username: r.username,
            email: r.email,
            full_name: r.full_name,
            role: r.role,
            disabled: r.disabled,
            email_verified: r.email_verified,
            created_at: rfc3339(r.created_at),
            permissions: r
                .permissions
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
        }
    }
}

impl Account for User {
    fn role(&self) -> &str {
        &self.role
    }

    fn granted_permissions(&self) -> &[String] {
        &self.permissions
    }

    fn is_disabled(&self) -> bool {
        self.disabled
    }
}

/// A user with their per-user permission grants: what admin routes answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminUserView {
    /// The user.
    #[serde(flatten)]
    pub user: User,
    /// Per-user grants (the role's own come on top).
    pub permissions: Vec<String>,
}

impl From<User> for AdminUserView {
    fn from(user: User) -> Self {
        let permissions = user.permissions.clone();
        Self { user, permissions }
    }
}

/// Creates the SQLite database file readable and writable by its owner
/// only, unless it exists (or the database is in memory).
fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    if path.as_os_str().is_empty() || path == std::path::Path::new(":memory:") {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A user to create.
#[derive(Clone, Copy)]
pub struct NewUser<'a> {
    /// Already validated.
    pub username: &'a str,
    /// Already validated.
    pub email: Option<&'a str>,
    /// Free text.
    pub full_name: Option<&'a str>,
    /// A PHC string.
    pub password_hash: &'a str,
    /// A role the policy declares.
    pub role: &'a str,
}

impl fmt::Debug for NewUser<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Which unique field a new user collided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakenField {
    /// The username (ignoring case).
    Username,
    /// The email (ignoring case).
    Email,
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

/// The most per-user permission grants one user may hold.
pub const MAX_PERMISSION_GRANTS: usize = 64;

/// A change to a user (PATCH /users/{id}); `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserUpdate {
    /// A role the policy declares.
    #[serde(default)]
    pub role: Option<String>,
    /// Disable or re-enable.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// Replaces the per-user grants (`[]` revokes them all).
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

impl UserUpdate {
    /// Refuses unknown roles and permissions (422).
    pub fn validate(&self, policy: &crate::policy::AccessPolicy) -> Result<(), ApiError> {
        if let Some(role) = &self.role
            && policy.role(role).is_none()
        {
            let known: Vec<&str> = policy.roles().iter().map(|r| r.name).collect();
            return Err(ApiError::validation(
                "role",
                format!("unknown role; known: {}", known.join(", ")),
            ));
        }
        if let Some(permissions) = &self.permissions {
            if permissions.len() > MAX_PERMISSION_GRANTS {
                return Err(ApiError::validation(
                    "permissions",
                    format!("at most {MAX_PERMISSION_GRANTS} entries"),
                ));
            }
            if permissions.iter().any(|p| !policy.is_permission(p)) {
                return Err(ApiError::validation(
                    "permissions",
                    format!(
                        "unknown permission; known: {}",
                        policy.permissions().join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The operator tools refuse a database "newer than the kit" by
    /// `unknown`: the versions this kit retired and a service's own must not
    /// land there, a real newer kit version must.
    #[test]
    fn migration_state_ignores_retired_and_service_versions() {
        for migrator in [&*SQLITE_MIGRATIONS, &*POSTGRES_MIGRATIONS] {
            let kit: Vec<i64> = migrator.iter().map(|m| m.version).collect();
            assert_eq!(kit, [1, 3, 4, 5]);

            let current = compare_migrations(migrator, &[1, 2, 3, 4, 5, 6, 1000, 1001]);
            assert!(current.is_current(), "{current:?}");

            let newer = compare_migrations(migrator, &[1, 3, 4, 5, 7, 999, 1000]);
            assert_eq!(newer.unknown, [7, 999]);
            assert!(newer.pending.is_empty());

            let behind = compare_migrations(migrator, &[1, 2, 1000]);
            let pending: Vec<i64> = behind.pending.iter().map(|(v, _)| *v).collect();
            assert_eq!(pending, [3, 4, 5]);
            assert!(behind.unknown.is_empty());
        }
    }

    #[test]
    fn service_migrations_stay_out_of_the_kit_range() {
        let service = ServiceMigrations::new(
            sqlx::migrate!("./migrations/sqlite"),
            sqlx::migrate!("./migrations/postgres"),
        );
        assert_eq!(service.kit_range_version(), Some(1));
    }
}
