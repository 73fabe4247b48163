//! `cargo bench -p auth-kit --bench store`: the per-request lookup (a
//! token's user and its login, one query by primary keys) on SQLite, and
//! on PostgreSQL when TEST_DATABASE_URL is set, through the store's native
//! pools and through sqlx's `Any` driver running the very same SQL: the
//! numbers behind the choice of native pools (see `auth_kit::store`).
#![allow(clippy::unwrap_used)] // bench code: a failed unwrap is a failed run

use std::hint::black_box;
use std::time::Duration;

use auth_kit::extract::Lookup;
use auth_kit::store::{ACCESS_LOOKUP_SQL, NewUser, RefreshTokenHash, Store};
use auth_kit::testing::TestDatabase;
use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::Row;

const USERS: i64 = 2_000;

fn lookups(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    sqlx::any::install_default_drivers();
    let mut dbs = vec![TestDatabase::sqlite()];
    dbs.extend(rt.block_on(TestDatabase::postgres("store bench")));
    let mut group = c.benchmark_group("access_lookup");
    group.measurement_time(Duration::from_secs(5));
    for db in &dbs {
        let (store, user_id, login_id) = rt.block_on(seed(db.url()));
        let backend = db.backend_name();
        group.bench_function(format!("{backend}_native"), |b| {
            b.to_async(&rt).iter(|| async {
                let found = store
                    .user_for_access(black_box(user_id), Some(&login_id))
                    .await
                    .unwrap();
                assert!(matches!(found, Lookup::Found(_)));
            })
        });
        let any = rt
            .block_on(
                sqlx::any::AnyPoolOptions::new()
                    .max_connections(8)
                    .connect(db.url()),
            )
            .unwrap();
        // The Any driver cannot decode SQLite's BOOLEAN ("Any driver does not
        // support the SQLite type Bool"): one of the reasons the store uses the
        // native pools. Cast those columns so its cost can be measured at all.
        let any_sql = ACCESS_LOOKUP_SQL
            .replace("u.disabled,", "CAST(u.disabled AS INTEGER) AS disabled,")
            .replace(
                "u.email_verified,",
                "CAST(u.email_verified AS INTEGER) AS email_verified,",
            );
        group.bench_function(format!("{backend}_any_driver"), |b| {
            b.to_async(&rt).iter(|| async {
                let row = sqlx::query(&any_sql)
                    .bind(black_box(user_id))
                    .bind(login_id.as_str())
                    .fetch_one(&any)
                    .await
                    .unwrap();
                assert_eq!(row.get::<i64, _>(0), user_id);
            })
        });
    }
    group.finish();
}

/// USERS users, one login for the one looked up.
async fn seed(url: &str) -> (Store, i64, String) {
    let store = Store::connect(url).await.unwrap();
    let mut last = 0;
    for i in 0..USERS {
        let name = format!("user-{i}");
        let new = NewUser {
            username: &name,
            email: None,
            full_name: None,
            password_hash: "x",
            role: "user",
        };
        last = store.create_user(&new).await.unwrap().id;
    }
    let login = store
        .start_login(
            last,
            "x",
            "me",
            &RefreshTokenHash::of("t"),
            Duration::from_secs(60),
        )
        .await
        .unwrap()
        .unwrap();
    (store, last, login)
}

criterion_group!(benches, lookups);
criterion_main!(benches);
