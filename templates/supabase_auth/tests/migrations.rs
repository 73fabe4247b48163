//! Upgrading: this service's migrations on a database the earlier auth-kit
//! migrated leave its schema as it was (the check, and the earlier kit's
//! migrations, are in `auth_kit::testing::upgrade`).

use auth_kit::testing::upgrade::assert_earlier_kit_schema_kept;

/// What the earlier kit did for every service that this one does not use:
/// its migration 0006 re-indexed `items` (created by the kit's 0001, which
/// this service leaves alone), so a fresh database keeps 0001's index.
const NOT_THIS_SERVICES: &[&str] = &["index items_owner_id"];

#[tokio::test]
async fn a_database_the_earlier_kit_migrated_keeps_its_schema() {
    assert_earlier_kit_schema_kept(&service::migrations(), NOT_THIS_SERVICES).await;
}
