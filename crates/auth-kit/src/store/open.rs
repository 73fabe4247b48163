//! Opening a database: the connection options of each backend, the
//! schema brought up to date (or left as it is), and the probe the
//! operator tools use.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::migrations::{SERVICE_MIGRATIONS_FROM, ServiceMigrations, bring_up_to_date};
use super::publish::postgres_channel;
use super::{Backend, Pool, Store, StoreError};
use crate::clock::Clock;
use crate::session_cache::{Change, Sessions};
use crate::username;

/// How long a request waits for a database connection before answering 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// ([`migration_state`](super::migration_state)) that the service has
    /// migrated the database and must not change its schema under a running
    /// service.
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
        let (migrate, service) = match schema {
            Schema::Migrate(service) => (true, service),
            Schema::AsIs => (false, None),
        };
        let pool = if url.starts_with("sqlite:") {
            Pool::Sqlite(connect_sqlite(url, migrate).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(connect_postgres(url).await?)
        } else {
            return Err(OpenError::Url(
                "use sqlite://<file>.db?mode=rwc or postgres://...".to_owned(),
            ));
        };
        if migrate {
            bring_up_to_date(&pool, service).await?;
        }
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
}

/// A pool on the SQLite file of `url`: WAL mode, foreign keys on,
/// `synchronous=FULL`, a 5 s busy timeout. With `create`, a missing file is
/// created first (owner only); without, a missing file is an error.
async fn connect_sqlite(url: &str, create: bool) -> Result<SqlitePool, OpenError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|_| OpenError::Url("not a valid sqlite: URL".to_owned()))?;
    let options = if create {
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
    SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(OpenError::Connect)
}

/// A pool on the PostgreSQL server of `url`.
async fn connect_postgres(url: &str) -> Result<PgPool, OpenError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|_| OpenError::Url("not a valid postgres:// URL".to_owned()))?;
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(OpenError::Connect)
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
