//! Upgrading from an earlier kit: a database that an earlier auth-kit
//! migrated (its migrations 0001 to 0006, when the kit still owned the
//! example tables; kept byte for byte under `testing/kit-migrations-0006`)
//! opens with this kit and a service's migrations and keeps its schema
//! exactly; a fresh database gets the same indexes.
//!
//! ```no_run
//! # async fn demo(service: auth_kit::store::ServiceMigrations) {
//! // The earlier kit's tables this service does not use.
//! const NOT_THIS_SERVICES: &[&str] = &["subject_items"];
//! auth_kit::testing::upgrade::assert_earlier_kit_schema_kept(&service, NOT_THIS_SERVICES).await;
//! # }
//! ```

use sqlx::migrate::Migrator;

use super::TestDatabase;
use crate::store::{ServiceMigrations, Store};

/// The earlier kit's SQLite migrations 0001 to 0006, as it shipped them.
static EARLIER_KIT_SQLITE: Migrator = sqlx::migrate!("testing/kit-migrations-0006/sqlite");
/// The same for PostgreSQL.
static EARLIER_KIT_POSTGRES: Migrator = sqlx::migrate!("testing/kit-migrations-0006/postgres");

/// Migrates a database as the earlier kit did, opens it twice with this kit
/// and `service`'s migrations, and asserts that its schema is unchanged and
/// that a fresh database gets the same indexes. On SQLite always, on
/// PostgreSQL when `TEST_DATABASE_URL` is set.
///
/// `not_this_services` names what the earlier kit created for every service
/// that this one does not use (a table, or `index <name>`): such indexes
/// are left out of the comparison with a fresh database.
///
/// # Panics
/// When an assertion fails or a database cannot be used.
pub async fn assert_earlier_kit_schema_kept(
    service: &ServiceMigrations,
    not_this_services: &[&str],
) {
    let indexes = |schema: &[String]| indexes(schema, not_this_services);
    for (old, fresh) in TestDatabase::all("earlier_kit_old")
        .await
        .into_iter()
        .zip(TestDatabase::all("earlier_kit_fresh").await)
    {
        migrate_as_the_earlier_kit(&old).await;
        let before = schema(&old).await;
        let store = Store::connect_with(old.url(), service)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", old.backend_name()));
        store.close().await;
        // Twice: the second opening has nothing left to do.
        let store = Store::connect_with(old.url(), service)
            .await
            .unwrap_or_else(|e| panic!("{} (again): {e}", old.backend_name()));
        store.close().await;
        let after = schema(&old).await;
        assert_eq!(before, after, "{}", old.backend_name());

        let store = Store::connect_with(fresh.url(), service)
            .await
            .unwrap_or_else(|e| panic!("{} (fresh): {e}", fresh.backend_name()));
        store.close().await;
        assert_eq!(
            indexes(&after),
            indexes(&schema(&fresh).await),
            "{}",
            fresh.backend_name()
        );
        assert!(!indexes(&after).is_empty());
    }
}

/// Every table's columns and every index, as comparable text.
async fn schema(db: &TestDatabase) -> Vec<String> {
    let rows: Vec<(String, String)> = match db.backend_name() {
        "sqlite" => {
            let pool = sqlx::SqlitePool::connect(db.url())
                .await
                .expect("the SQLite test database opens");
            let rows = sqlx::query_as(
                "SELECT m.tbl_name, m.type || ' ' || m.name || ': ' || coalesce(m.sql, '') \
                 FROM sqlite_master m \
                 WHERE m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%' \
                 UNION ALL \
                 SELECT m.name, 'index ' || m.name || ' columns ' || i.seqno || ': ' || i.name \
                 FROM sqlite_master m JOIN pragma_index_info(m.name) i WHERE m.type = 'index'",
            )
            .fetch_all(&pool)
            .await
            .expect("the SQLite schema can be read");
            pool.close().await;
            rows
        }
        _ => {
            let pool = sqlx::PgPool::connect(db.url())
                .await
                .expect("the PostgreSQL test schema opens");
            let rows = sqlx::query_as(
                "SELECT table_name::text, 'column ' || table_name || '.' || column_name || ': ' \
                 || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') \
                 || ' ' || is_identity FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%' \
                 UNION ALL \
                 SELECT tablename::text, 'index ' || indexname || ': ' \
                 || replace(indexdef, current_schema() || '.', '') \
                 FROM pg_indexes WHERE schemaname = current_schema() AND tablename NOT LIKE '_sqlx%'",
            )
            .fetch_all(&pool)
            .await
            .expect("the PostgreSQL schema can be read");
            pool.close().await;
            rows
        }
    };
    let mut schema: Vec<String> = rows.into_iter().map(|(_, text)| text).collect();
    schema.sort();
    schema
}

/// The indexes in `schema` (by name and columns), without what
/// `not_this_services` names.
fn indexes(schema: &[String], not_this_services: &[&str]) -> Vec<String> {
    schema
        .iter()
        .filter(|line| line.starts_with("index "))
        .filter(|line| !not_this_services.iter().any(|t| line.contains(t)))
        // SQLite keeps each index's statement as written (`IF NOT EXISTS`
        // or not); its columns, listed on their own lines, are compared.
        .filter(|line| !line.contains("CREATE INDEX") || line.contains(" USING "))
        .cloned()
        .collect()
}

/// Runs the earlier kit's migrations 0001 to 0006 on `db`.
async fn migrate_as_the_earlier_kit(db: &TestDatabase) {
    let old = match db.backend_name() {
        "sqlite" => &EARLIER_KIT_SQLITE,
        _ => &EARLIER_KIT_POSTGRES,
    };
    let versions: Vec<i64> = old.iter().map(|m| m.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    match db.backend_name() {
        "sqlite" => {
            let pool = sqlx::SqlitePool::connect(db.url())
                .await
                .expect("the SQLite test database opens");
            old.run(&pool)
                .await
                .expect("the earlier kit's SQLite migrations run");
            pool.close().await;
        }
        _ => {
            let pool = sqlx::PgPool::connect(db.url())
                .await
                .expect("the PostgreSQL test schema opens");
            old.run(&pool)
                .await
                .expect("the earlier kit's PostgreSQL migrations run");
            pool.close().await;
        }
    }
}
