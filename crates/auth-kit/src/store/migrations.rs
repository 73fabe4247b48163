//! The schema's bookkeeping: the kit's migrations and a service's, which
//! versions a database applied, and the refusal of one a newer release
//! migrated.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::{OpenError, Pool};

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
/// kit's. From the standard folders, [`service_migrations!`](crate::service_migrations)
/// writes this:
///
/// ```ignore
/// let migrations = ServiceMigrations::new(
///     sqlx::migrate!("./migrations/sqlite"),
///     sqlx::migrate!("./migrations/postgres"),
/// );
/// let store = Store::connect_with(&settings.server.database_url, &migrations).await?;
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
    pub(super) fn kit_range_version(&self) -> Option<i64> {
        self.sqlite
            .iter()
            .chain(self.postgres.iter())
            .map(|m| m.version)
            .find(|v| *v < SERVICE_MIGRATIONS_FROM)
    }
}

/// The calling service's [`ServiceMigrations`] from its standard folders,
/// `migrations/sqlite` and `migrations/postgres` next to its Cargo.toml,
/// embedded at compile time with `sqlx::migrate!` (so the service depends
/// on sqlx, as its own queries do).
///
/// ```no_run
/// use auth_kit::store::ServiceMigrations;
///
/// /// This service's own migrations, run after auth-kit's.
/// pub fn migrations() -> ServiceMigrations {
///     auth_kit::service_migrations!()
/// }
/// ```
#[macro_export]
macro_rules! service_migrations {
    () => {
        $crate::store::ServiceMigrations::new(
            ::sqlx::migrate!("./migrations/sqlite"),
            ::sqlx::migrate!("./migrations/postgres"),
        )
    };
}

/// Brings a freshly opened database up to date: refuses it when a newer
/// release migrated it, then runs the kit's migrations and the service's
/// (the kit's first: theirs may refer to the kit's tables).
pub(super) async fn bring_up_to_date(
    pool: &Pool,
    service: Option<&ServiceMigrations>,
) -> Result<(), OpenError> {
    let (kit, service) = match pool {
        Pool::Sqlite(_) => (&*SQLITE_MIGRATIONS, service.map(|s| &s.sqlite)),
        Pool::Postgres(_) => (&*POSTGRES_MIGRATIONS, service.map(|s| &s.postgres)),
    };
    let read = match pool {
        Pool::Sqlite(pool) => sqlx::query_scalar(APPLIED_VERSIONS).fetch_all(pool).await,
        Pool::Postgres(pool) => sqlx::query_scalar(APPLIED_VERSIONS).fetch_all(pool).await,
    };
    refuse_newer(kit, service, &applied_versions(read)?)?;
    for migrator in std::iter::once(kit).chain(service) {
        match pool {
            Pool::Sqlite(pool) => migrator.run(pool).await,
            Pool::Postgres(pool) => migrator.run(pool).await,
        }
        .map_err(OpenError::Migrate)?;
    }
    Ok(())
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
