//! The items queries (`src/items/`) on SQLite always and on PostgreSQL
//! when TEST_DATABASE_URL is set: the same test code for both.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use auth_kit::page::PageRequest;
use auth_kit::store::{NewUser, RefreshTokenHash, Store};
use auth_kit::testing::TestDatabase;
use service::items::{self, CreateItemError, NewItem};

/// A quota no test reaches unless it means to.
const QUOTA: u32 = 1000;

fn all_rows() -> PageRequest {
    PageRequest::parse("/", Some("limit=200")).unwrap()
}

fn new_user<'a>(username: &'a str, email: Option<&'a str>) -> NewUser<'a> {
    NewUser {
        username,
        email,
        full_name: Some("Ann Example"),
        password_hash: "$argon2id$v=19$x",
        role: "user",
    }
}

async fn stores(test: &str) -> Vec<(TestDatabase, Store)> {
    auth_kit::testing::stores(test, Some(&service::migrations())).await
}

#[tokio::test]
async fn items_belong_to_their_owner() {
    for (db, store) in stores("items_belong_to_their_owner").await {
        let a = store.create_user(&new_user("owner-a", None)).await.unwrap();
        let b = store.create_user(&new_user("owner-b", None)).await.unwrap();
        let a1 = items::create(
            &store,
            a.id,
            &NewItem {
                title: "a1".into(),
                description: None,
            },
            QUOTA,
        )
        .await
        .unwrap();
        let a2 = items::create(
            &store,
            a.id,
            &NewItem {
                title: "a2".into(),
                description: Some("two".into()),
            },
            QUOTA,
        )
        .await
        .unwrap();
        items::create(
            &store,
            b.id,
            &NewItem {
                title: "b1".into(),
                description: None,
            },
            QUOTA,
        )
        .await
        .unwrap();
        assert_eq!(
            items::page_of(&store, a.id, &all_rows())
                .await
                .unwrap()
                .into_rows(),
            vec![a1.clone(), a2],
            "{db:?}"
        );
        assert!(items::delete(&store, a1.id).await.unwrap());
        assert!(!items::delete(&store, a1.id).await.unwrap());
    }
}

#[tokio::test]
async fn lists_are_paged_by_id() {
    for (db, store) in stores("lists_are_paged_by_id").await {
        let owner = store.create_user(&new_user("pager", None)).await.unwrap();
        let other = store.create_user(&new_user("other", None)).await.unwrap();
        let mut mine = Vec::new();
        for n in 0..5 {
            let item = NewItem {
                title: format!("item {n}"),
                description: None,
            };
            mine.push(
                items::create(&store, owner.id, &item, QUOTA)
                    .await
                    .unwrap()
                    .id,
            );
            // Interleaved rows of another owner never show up.
            items::create(&store, other.id, &item, QUOTA).await.unwrap();
        }
        let mut seen = Vec::new();
        let mut page = PageRequest::parse("/users/me/items", Some("limit=2")).unwrap();
        let mut links = Vec::new();
        loop {
            let answer = items::page_of(&store, owner.id, &page).await.unwrap();
            seen.extend(answer.rows().iter().map(|i| i.id));
            let Some(link) = answer.next_link() else {
                break;
            };
            let query = link
                .trim_start_matches("</users/me/items?")
                .split('>')
                .next()
                .unwrap()
                .to_owned();
            links.push(link);
            page = PageRequest::parse("/users/me/items", Some(&query)).unwrap();
        }
        assert_eq!(seen, mine, "{db:?}");
        assert_eq!(links.len(), 2, "5 rows in pages of 2: two links {links:?}");
        assert_eq!(
            links[0],
            format!("</users/me/items?after={}&limit=2>; rel=\"next\"", mine[1])
        );
        // Users are paged the same way.
        let users = store
            .list_users(&PageRequest::parse("/users", Some("limit=1")).unwrap())
            .await
            .unwrap();
        assert_eq!(users.rows().len(), 1);
        assert!(users.next_link().is_some());
    }
}

#[tokio::test]
async fn the_item_quota_holds_under_concurrency() {
    for (db, store) in stores("the_item_quota_holds_under_concurrency").await {
        let owner = store.create_user(&new_user("hoarder", None)).await.unwrap();
        let quota = 5;
        // Twenty concurrent creations for one owner: exactly five succeed.
        let attempts = (0..20).map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let item = NewItem {
                    title: format!("item {n}"),
                    description: None,
                };
                items::create(&store, owner.id, &item, quota).await
            })
        });
        let mut created = 0;
        let mut refused = 0;
        for attempt in attempts.collect::<Vec<_>>() {
            match attempt.await.unwrap() {
                Ok(_) => created += 1,
                Err(CreateItemError::QuotaExceeded { limit }) => {
                    assert_eq!(limit, quota);
                    refused += 1;
                }
                Err(e) => panic!("{db:?}: {e}"),
            }
        }
        assert_eq!((created, refused), (5, 15), "{db:?}");
        let stored = items::page_of(&store, owner.id, &all_rows()).await.unwrap();
        assert_eq!(stored.rows().len(), 5, "{db:?}");
        // A deleted item frees a place.
        assert!(items::delete(&store, stored.rows()[0].id).await.unwrap());
        let again = NewItem {
            title: "again".into(),
            description: None,
        };
        assert!(items::create(&store, owner.id, &again, quota).await.is_ok());
        // An owner deleted meanwhile gets no item.
        assert!(matches!(
            items::create(&store, 999_999, &again, quota).await,
            Err(CreateItemError::OwnerGone)
        ));
    }
}

#[tokio::test]
async fn deleting_a_user_takes_items_and_logins() {
    for (db, store) in stores("deleting_a_user_takes_items_and_logins").await {
        let user = store.create_user(&new_user("gone", None)).await.unwrap();
        let keeper = store.create_user(&new_user("keeper", None)).await.unwrap();
        let item = items::create(
            &store,
            user.id,
            &NewItem {
                title: "mine".into(),
                description: None,
            },
            QUOTA,
        )
        .await
        .unwrap();
        let kept = items::create(
            &store,
            keeper.id,
            &NewItem {
                title: "kept".into(),
                description: Some("d".into()),
            },
            QUOTA,
        )
        .await
        .unwrap();
        let refresh = RefreshTokenHash::of("r");
        store
            .start_login(
                user.id,
                "$argon2id$v=19$x",
                "",
                &refresh,
                Duration::from_secs(60),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(store.delete_user(user.id).await.unwrap());
        assert!(!store.delete_user(user.id).await.unwrap());
        assert!(
            items::get(&store, item.id).await.unwrap().is_none(),
            "{db:?}"
        );
        assert!(
            store.find_refresh_token(&refresh).await.unwrap().is_none(),
            "{db:?}"
        );
        assert_eq!(
            items::page_of(&store, keeper.id, &all_rows())
                .await
                .unwrap()
                .into_rows(),
            vec![kept]
        );
        // A new user never gets the deleted user's id.
        let next = store.create_user(&new_user("next", None)).await.unwrap();
        assert!(next.id > keeper.id, "{db:?}");
        assert!(
            store
                .start_login(
                    user.id,
                    "$argon2id$v=19$x",
                    "",
                    &RefreshTokenHash::of("z"),
                    Duration::from_secs(60)
                )
                .await
                .unwrap()
                .is_none()
        );
    }
}
