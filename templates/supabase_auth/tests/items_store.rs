//! The subject items queries (`src/items/`) on SQLite always and on
//! PostgreSQL when TEST_DATABASE_URL is set: the same test code for both.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use auth_kit::page::PageRequest;
use auth_kit::store::Store;
use auth_kit::testing::TestDatabase;
use service::items::{self, NewItem};

fn all_rows() -> PageRequest {
    PageRequest::parse("/", Some("limit=200")).unwrap()
}

async fn stores(test: &str) -> Vec<(TestDatabase, Store)> {
    auth_kit::testing::stores(test, Some(&service::migrations())).await
}

#[tokio::test]
async fn subject_items_belong_to_their_subject() {
    for (db, store) in stores("subject_items_belong_to_their_subject").await {
        let a = "0b6c1f3e-6f0e-4d3a-9a43-2d1f5d8a9c11";
        let first = items::create(
            &store,
            a,
            &NewItem {
                title: "one".into(),
                description: None,
            },
        )
        .await
        .unwrap();
        items::create(
            &store,
            "someone-else",
            &NewItem {
                title: "two".into(),
                description: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            items::page_of(&store, a, &all_rows())
                .await
                .unwrap()
                .into_rows(),
            vec![first.clone()],
            "{db:?}"
        );
        assert_eq!(first.owner_id, a);
        assert!(items::delete(&store, first.id).await.unwrap());
        assert!(!items::delete(&store, first.id).await.unwrap());
    }
}
