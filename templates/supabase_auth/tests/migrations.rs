//! Upgrading: a database an earlier auth-kit migrated (its migrations 0001
//! to 0006, when the kit still owned the example tables; copied byte for
//! byte under `tests/fixtures/kit-migrations-0006`) opens with this kit
//! and this service's migrations and keeps its schema exactly; a fresh
//! database gets the same indexes. SQLite always, PostgreSQL when
//! TEST_DATABASE_URL is set.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;

use auth_kit::store::Store;
use auth_kit::testing::TestDatabase;
use sqlx::migrate::Migrator;

/// What the earlier kit did for every service that this one does not use:
/// its migration 0006 re-indexed `items` (created by the kit's 0001, which
/// this service leaves alone), so a fresh database keeps 0001's index.
const NOT_THIS_SERVICES: &[&str] = &["index items_owner_id"];

/// Every table's columns and every index, as comparable text.
async fn schema(db: &TestDatabase) -> Vec<String> {
    let rows: Vec<(String, String)> = match db.backend_name() {
        "sqlite" => {
            let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
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
            .unwrap();
            pool.close().await;
            rows
        }
        _ => {
            let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
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
            .unwrap();
            pool.close().await;
            rows
        }
    };
    let mut schema: Vec<String> = rows.into_iter().map(|(_, text)| text).collect();
    schema.sort();
    schema
}

/// The indexes in `schema` (by name and columns), without the tables this
/// service does not use.
fn indexes(schema: &[String]) -> Vec<String> {
    schema
        .iter()
        .filter(|line| line.starts_with("index "))
        .filter(|line| !NOT_THIS_SERVICES.iter().any(|t| line.contains(t)))
        // SQLite keeps each index's statement as written (`IF NOT EXISTS`
        // or not); its columns, listed on their own lines, are compared.
        .filter(|line| !line.contains("CREATE INDEX") || line.contains(" USING "))
        .cloned()
        .collect()
}

async fn migrate_as_the_earlier_kit(db: &TestDatabase) {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kit-migrations-0006")
        .join(db.backend_name());
    let old = Migrator::new(folder).await.unwrap();
    let versions: Vec<i64> = old.iter().map(|m| m.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    match db.backend_name() {
        "sqlite" => {
            let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
            old.run(&pool).await.unwrap();
            pool.close().await;
        }
        _ => {
            let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
            old.run(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

#[tokio::test]
async fn a_database_the_earlier_kit_migrated_keeps_its_schema() {
    for (old, fresh) in TestDatabase::all("earlier_kit_old")
        .await
        .into_iter()
        .zip(TestDatabase::all("earlier_kit_fresh").await)
    {
        migrate_as_the_earlier_kit(&old).await;
        let before = schema(&old).await;
        let store = Store::connect_with(old.url(), &service::migrations())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", old.backend_name()));
        store.close().await;
        // Twice: the second opening has nothing left to do.
        let store = Store::connect_with(old.url(), &service::migrations())
            .await
            .unwrap();
        store.close().await;
        let after = schema(&old).await;
        assert_eq!(before, after, "{}", old.backend_name());

        let store = Store::connect_with(fresh.url(), &service::migrations())
            .await
            .unwrap();
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
