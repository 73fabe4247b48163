//! Test support: throwaway databases, so the same test code runs on SQLite
//! always and on PostgreSQL when `TEST_DATABASE_URL` is set; a service on a
//! loopback socket and an HTTP client for it ([`client`]); the checks every
//! service on the kit passes alike, of its answers ([`contract`]) and of
//! its OpenAPI document ([`openapi`]); and the check that a database an
//! earlier kit migrated still opens ([`upgrade`]).
//!
//! ```no_run
//! # async fn demo() {
//! use auth_kit::testing::TestDatabase;
//!
//! for db in TestDatabase::all("my_test").await {
//!     let store = auth_kit::store::Store::connect(db.url()).await.unwrap();
//!     // ... the same assertions on every backend ...
//! }
//! # }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::store::{ServiceMigrations, Store};

pub mod client;
pub mod contract;
pub mod openapi;
pub mod upgrade;

pub use client::{Reply, TestClient, serve_on_loopback};

/// The variable naming the PostgreSQL server tests may use.
pub const TEST_DATABASE_URL: &str = "TEST_DATABASE_URL";

/// A fresh, empty database: a SQLite file in the temp directory, or a
/// PostgreSQL schema of its own. Removed when dropped.
pub struct TestDatabase {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteFile(PathBuf),
    PostgresSchema { server: String, schema: String },
}

impl fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.backend_name())
    }
}

impl TestDatabase {
    /// A new SQLite file (WAL mode is set by the store).
    pub fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!(
            "auth-kit-test-{}.db",
            hex::encode(crate::random::bytes::<8>())
        ));
        Self {
            url: format!("sqlite://{}?mode=rwc", path.display()),
            cleanup: Cleanup::SqliteFile(path),
        }
    }

    /// A new schema on the `TEST_DATABASE_URL` server, or `None` (with a
    /// line on stderr saying the PostgreSQL run is skipped) when it is unset.
    ///
    /// # Panics
    /// When `TEST_DATABASE_URL` is set but the server cannot be used: a test
    /// that was asked to run on PostgreSQL must not pass silently.
    pub async fn postgres(test_name: &str) -> Option<Self> {
        let Ok(server) = std::env::var(TEST_DATABASE_URL) else {
            eprintln!("{test_name}: PostgreSQL run skipped: {TEST_DATABASE_URL} is unset");
            return None;
        };
        let schema = format!("auth_kit_test_{}", hex::encode(crate::random::bytes::<6>()));
        let options = PgConnectOptions::from_str(&server)
            .expect("TEST_DATABASE_URL is not a postgres:// URL");
        let mut conn = PgConnection::connect_with(&options)
            .await
            .expect("TEST_DATABASE_URL does not answer");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await
            .expect("cannot create a test schema");
        let _ = conn.close().await;
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{separator}options=-c%20search_path%3D{schema}");
        Some(Self {
            url,
            cleanup: Cleanup::PostgresSchema { server, schema },
        })
    }

    /// SQLite, then PostgreSQL when configured: loop over this to run the
    /// same assertions on every backend.
    pub async fn all(test_name: &str) -> Vec<Self> {
        let mut dbs = vec![Self::sqlite()];
        dbs.extend(Self::postgres(test_name).await);
        dbs
    }

    /// The connection URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `sqlite` or `postgres`, for test messages.
    pub fn backend_name(&self) -> &'static str {
        match self.cleanup {
            Cleanup::SqliteFile(_) => "sqlite",
            Cleanup::PostgresSchema { .. } => "postgres",
        }
    }
}

/// `start` run on each of [`TestDatabase::all`]: a service (or anything
/// that keeps its database) on every backend this run can test.
///
/// ```no_run
/// # use auth_kit::testing::TestDatabase;
/// # struct TestServer(TestDatabase);
/// # impl TestServer { async fn start(db: TestDatabase) -> Self { Self(db) } }
/// # async fn demo() {
/// for server in auth_kit::testing::on_every_backend("my_test", TestServer::start).await {
///     // ... the same assertions on every backend ...
/// }
/// # }
/// ```
pub async fn on_every_backend<T, F>(
    test_name: &str,
    mut start: impl FnMut(TestDatabase) -> F,
) -> Vec<T>
where
    F: Future<Output = T>,
{
    let mut out = Vec::new();
    for db in TestDatabase::all(test_name).await {
        out.push(start(db).await);
    }
    out
}

/// The password tests give the user `name`: distinct per user, and long
/// enough for the kit's least password length.
pub fn password_of(name: &str) -> String {
    format!("password-of-{name}")
}

/// A [`Store`] on each of [`TestDatabase::all`], migrated with the kit's
/// migrations and `service`'s, if any; each with its database, which must
/// outlive it.
///
/// # Panics
/// When a database cannot be opened or migrated.
pub async fn stores(
    test_name: &str,
    service: Option<&ServiceMigrations>,
) -> Vec<(TestDatabase, Store)> {
    on_every_backend(test_name, |db| async move {
        let store = match service {
            Some(service) => Store::connect_with(db.url(), service).await,
            None => Store::connect(db.url()).await,
        }
        .unwrap_or_else(|e| panic!("{}: {e}", db.backend_name()));
        (db, store)
    })
    .await
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Cleanup::PostgresSchema { server, schema } => {
                let (server, schema) = (server.clone(), schema.clone());
                // Drop may run inside a runtime: do the async cleanup on a thread of its own.
                let _ = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    rt.block_on(async {
                        let Ok(options) = PgConnectOptions::from_str(&server) else {
                            return;
                        };
                        if let Ok(mut conn) = PgConnection::connect_with(&options).await {
                            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                                .execute(&mut conn)
                                .await;
                            let _ = conn.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}
