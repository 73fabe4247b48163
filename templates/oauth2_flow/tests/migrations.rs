//! Upgrading: a database the earlier auth-kit migrated (when it still owned
//! the example tables) opens with this service's migrations and keeps its
//! schema; `auth_kit::testing::upgrade` holds the check and those migrations.

use auth_kit::testing::upgrade::assert_earlier_kit_schema_kept;

/// Tables the earlier kit created for every service, which this one does
/// not use (a fresh database of this service does not have them).
const NOT_THIS_SERVICES: &[&str] = &["subject_items"];

#[tokio::test]
async fn a_database_the_earlier_kit_migrated_keeps_its_schema() {
    assert_earlier_kit_schema_kept(&service::migrations(), NOT_THIS_SERVICES).await;
}
