//! The store on SQLite always and on PostgreSQL when TEST_DATABASE_URL is
//! set: the same test code for both (`TestDatabase::all`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use auth_kit::extract::Lookup;
use auth_kit::page::PageRequest;
use auth_kit::refresh::{ReuseWindow, SealedSuccessor, SuccessorBinding};
use auth_kit::store::{
    AdminBootstrapOutcome, Backend, CreateUserError, NewUser, OpenError, RefreshTokenHash,
    Rotation, Store, TakenField, UserChangeError, UserUpdate,
};
use auth_kit::testing::TestDatabase;

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
    auth_kit::testing::stores(test, None).await
}

#[tokio::test]
async fn users_are_unique_ignoring_case() {
    for (db, store) in stores("users_are_unique_ignoring_case").await {
        let ann = store
            .create_user(&new_user("Ann", Some("Ann@Example.com")))
            .await
            .unwrap();
        assert_eq!(
            (ann.username.as_str(), ann.role.as_str(), ann.disabled),
            ("Ann", "user", false),
            "{db:?}"
        );
        assert!(ann.created_at.ends_with('Z'));
        let again = store.create_user(&new_user("aNN", None)).await;
        assert!(
            matches!(again, Err(CreateUserError::Taken(TakenField::Username))),
            "{db:?}: {again:?}"
        );
        let same_email = store
            .create_user(&new_user("bob", Some("ann@EXAMPLE.com")))
            .await;
        assert!(
            matches!(same_email, Err(CreateUserError::Taken(TakenField::Email))),
            "{db:?}: {same_email:?}"
        );
        // No email is not a collision.
        store.create_user(&new_user("carl", None)).await.unwrap();
        store.create_user(&new_user("dora", None)).await.unwrap();
        let (found, hash) = store.credentials("ANN").await.unwrap().unwrap();
        assert_eq!((found.id, hash.as_str()), (ann.id, "$argon2id$v=19$x"));
        assert!(store.credentials("nobody").await.unwrap().is_none());
    }
}

/// A unique index other than the username's and the email's is a database
/// failure, not a taken field.
#[tokio::test]
async fn an_unknown_unique_index_is_no_taken_field() {
    const EXTRA_INDEX: &str = "CREATE UNIQUE INDEX users_full_name_test ON users (full_name)";
    for (db, store) in stores("an_unknown_unique_index_is_no_taken_field").await {
        match db.backend_name() {
            "sqlite" => {
                let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
                sqlx::query(EXTRA_INDEX).execute(&pool).await.unwrap();
            }
            _ => {
                let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
                sqlx::query(EXTRA_INDEX).execute(&pool).await.unwrap();
            }
        }
        store.create_user(&new_user("ann", None)).await.unwrap();
        let same_full_name = store.create_user(&new_user("bob", None)).await;
        assert!(
            matches!(same_full_name, Err(CreateUserError::Store(_))),
            "{db:?}: {same_full_name:?}"
        );
        // The known indexes still name their field.
        let again = store
            .create_user(&NewUser {
                full_name: Some("Another Ann"),
                ..new_user("ANN", None)
            })
            .await;
        assert!(
            matches!(again, Err(CreateUserError::Taken(TakenField::Username))),
            "{db:?}: {again:?}"
        );
    }
}

#[tokio::test]
async fn concurrent_signups_of_one_name_give_one_user() {
    for (db, store) in stores("concurrent_signups_of_one_name_give_one_user").await {
        let attempts: Vec<_> = (0..50)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let name = if i % 2 == 0 { "racer" } else { "RACER" };
                    store.create_user(&new_user(name, None)).await
                })
            })
            .collect();
        let (mut created, mut taken) = (0, 0);
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(_) => created += 1,
                Err(CreateUserError::Taken(TakenField::Username)) => taken += 1,
                Err(other) => panic!("{db:?}: {other}"),
            }
        }
        assert_eq!((created, taken), (1, 49), "{db:?}");
    }
}

/// Rotates `parent` (a token, not a hash) to `next` in `login`.
async fn rotate(
    store: &Store,
    parent: &str,
    next: &str,
    login: &str,
    window: ReuseWindow,
) -> Rotation {
    let (parent_hash, next_hash) = (RefreshTokenHash::of(parent), RefreshTokenHash::of(next));
    let sealed = SealedSuccessor::seal(
        parent,
        next,
        &SuccessorBinding {
            parent: &parent_hash,
            successor: &next_hash,
            login_id: login,
        },
    );
    store
        .rotate_refresh_token(
            &parent_hash,
            &next_hash,
            &sealed,
            login,
            Duration::from_secs(60),
            window,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn refresh_rotation_is_atomic() {
    for (db, store) in stores("refresh_rotation_is_atomic").await {
        let user = store.create_user(&new_user("rot", None)).await.unwrap();
        let login = store
            .start_login(
                user.id,
                "$argon2id$v=19$x",
                "me",
                &RefreshTokenHash::of("first"),
                Duration::from_secs(60),
            )
            .await
            .unwrap()
            .unwrap();
        let window = ReuseWindow::STANDARD;
        assert_eq!(
            rotate(&store, "first", "second", &login, window).await,
            Rotation::Rotated
        );
        let spent = store
            .find_refresh_token(&RefreshTokenHash::of("first"))
            .await
            .unwrap()
            .unwrap();
        assert!(spent.spent_at.is_some(), "{db:?}");
        // Again, within the window: the first successor, never a second one.
        match rotate(&store, "first", "x", &login, window).await {
            Rotation::AlreadyRotated { successor, .. } => {
                assert_eq!(successor, RefreshTokenHash::of("second"), "{db:?}")
            }
            other => panic!("{db:?}: {other:?}"),
        }
        assert!(
            store
                .find_refresh_token(&RefreshTokenHash::of("x"))
                .await
                .unwrap()
                .is_none(),
            "nothing stored for the loser"
        );
        assert_eq!(
            rotate(&store, "first", "x", &login, ReuseWindow::DISABLED).await,
            Rotation::Refused,
            "{db:?}: no window, no successor"
        );

        // 20 concurrent rotations of one token: exactly one wins, and every
        // other one gets the winner's successor.
        let racers: Vec<_> = (0..20)
            .map(|i| {
                let (store, login) = (store.clone(), login.clone());
                tokio::spawn(async move {
                    rotate(&store, "second", &format!("next-{i}"), &login, window).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut successors = std::collections::BTreeSet::new();
        for (i, r) in racers.into_iter().enumerate() {
            match r.await.unwrap() {
                Rotation::Rotated => winners.push(i),
                Rotation::AlreadyRotated { successor, .. } => {
                    successors.insert(successor.as_hex().to_owned());
                }
                Rotation::Refused => panic!("{db:?}: a racer was refused"),
            }
        }
        assert_eq!(winners.len(), 1, "{db:?}");
        let winner = RefreshTokenHash::of(&format!("next-{}", winners[0]));
        assert_eq!(
            successors.into_iter().collect::<Vec<_>>(),
            [winner.as_hex().to_owned()],
            "{db:?}"
        );
        // Once the successor is used, its parent gets nothing.
        assert_eq!(
            rotate(
                &store,
                &format!("next-{}", winners[0]),
                "third",
                &login,
                window
            )
            .await,
            Rotation::Rotated
        );
        assert_eq!(
            rotate(&store, "second", "y", &login, window).await,
            Rotation::Refused,
            "{db:?}"
        );
    }
}

#[tokio::test]
async fn access_lookup_checks_the_login() {
    for (db, store) in stores("access_lookup_checks_the_login").await {
        let user = store.create_user(&new_user("look", None)).await.unwrap();
        let login = store
            .start_login(
                user.id,
                "$argon2id$v=19$x",
                "me",
                &RefreshTokenHash::of("t"),
                Duration::from_secs(60),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(store.user_for_access(user.id, Some(&login)).await.unwrap(), Lookup::Found(u) if u.id == user.id)
        );
        assert!(
            matches!(
                store.user_for_access(user.id, None).await.unwrap(),
                Lookup::Found(_)
            ),
            "no sid: still valid"
        );
        assert_eq!(
            store
                .user_for_access(user.id, Some("unknown"))
                .await
                .unwrap(),
            Lookup::RevokedLogin
        );
        let other = store.create_user(&new_user("other", None)).await.unwrap();
        assert_eq!(
            store.user_for_access(other.id, Some(&login)).await.unwrap(),
            Lookup::RevokedLogin,
            "{db:?}: another user's sid"
        );
        assert!(
            !store.revoke_login(&login, Some(other.id)).await.unwrap(),
            "only the owner may revoke"
        );
        assert!(store.revoke_login(&login, Some(user.id)).await.unwrap());
        assert_eq!(
            store.user_for_access(user.id, Some(&login)).await.unwrap(),
            Lookup::RevokedLogin
        );
        assert!(store.delete_user(user.id).await.unwrap());
        assert_eq!(
            store.user_for_access(user.id, None).await.unwrap(),
            Lookup::UnknownUser
        );
    }
}

#[tokio::test]
async fn admin_updates() {
    for (db, store) in stores("admin_updates").await {
        let user = store.create_user(&new_user("patch", None)).await.unwrap();
        let noop = store
            .update_user(user.id, &UserUpdate::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(noop, user, "{db:?}");
        let update = UserUpdate {
            role: Some("guest".into()),
            disabled: Some(true),
            permissions: Some(vec![
                "items:delete".into(),
                "items:delete".into(),
                "items:read".into(),
            ]),
        };
        let changed = store.update_user(user.id, &update).await.unwrap().unwrap();
        assert_eq!((changed.role.as_str(), changed.disabled), ("guest", true));
        assert_eq!(changed.permissions, ["items:delete", "items:read"]);
        let only_role = store
            .update_user(
                user.id,
                &UserUpdate {
                    role: Some("user".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (only_role.disabled, only_role.permissions.len()),
            (true, 2),
            "absent fields are left alone"
        );
        let revoked = store
            .update_user(
                user.id,
                &UserUpdate {
                    permissions: Some(vec![]),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert!(revoked.permissions.is_empty());
        assert!(
            store
                .update_user(999_999, &UserUpdate::default())
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(store.list_users(&all_rows()).await.unwrap().rows().len(), 1);
    }
}

fn admin(username: &str) -> NewUser<'_> {
    NewUser {
        role: "admin",
        ..new_user(username, None)
    }
}

fn set_role(role: &str) -> UserUpdate {
    UserUpdate {
        role: Some(role.into()),
        ..Default::default()
    }
}

fn set_disabled(disabled: bool) -> UserUpdate {
    UserUpdate {
        disabled: Some(disabled),
        ..Default::default()
    }
}

async fn enabled_admins(store: &Store) -> Vec<i64> {
    let users = store.list_users(&all_rows()).await.unwrap();
    users
        .into_rows()
        .into_iter()
        .filter(|u| u.role == "admin" && !u.disabled)
        .map(|u| u.id)
        .collect()
}

#[tokio::test]
async fn the_last_enabled_admin_stays() {
    for (db, store) in stores("the_last_enabled_admin_stays").await {
        let root = store.create_user(&admin("root")).await.unwrap();
        for refused in [set_role("user"), set_role("guest"), set_disabled(true)] {
            let e = store.update_user(root.id, &refused).await.unwrap_err();
            assert!(matches!(e, UserChangeError::LastAdmin), "{db:?}: {e:?}");
        }
        let both = UserUpdate {
            role: Some("admin".into()),
            disabled: Some(true),
            ..Default::default()
        };
        assert!(matches!(
            store.update_user(root.id, &both).await,
            Err(UserChangeError::LastAdmin)
        ));
        assert!(matches!(
            store.delete_user(root.id).await,
            Err(UserChangeError::LastAdmin)
        ));
        assert_eq!(enabled_admins(&store).await, [root.id], "{db:?}: unchanged");
        // Changes that keep it an enabled admin go through.
        let kept = UserUpdate {
            role: Some("admin".into()),
            disabled: Some(false),
            permissions: Some(vec!["items:delete".into()]),
        };
        let same = store.update_user(root.id, &kept).await.unwrap().unwrap();
        assert_eq!(same.permissions, ["items:delete"]);

        // A disabled admin does not count; a second enabled one does.
        let dormant = store.create_user(&admin("dormant")).await.unwrap();
        store
            .update_user(dormant.id, &set_disabled(true))
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            store.update_user(root.id, &set_role("user")).await,
            Err(UserChangeError::LastAdmin)
        ));
        store
            .update_user(dormant.id, &set_disabled(false))
            .await
            .unwrap()
            .unwrap();
        let demoted = store
            .update_user(root.id, &set_role("user"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(demoted.role, "user", "{db:?}");
        assert!(matches!(
            store.delete_user(dormant.id).await,
            Err(UserChangeError::LastAdmin)
        ));
        // Users who are not enabled admins are never held back.
        assert!(store.delete_user(root.id).await.unwrap());
        assert!(!store.delete_user(root.id).await.unwrap(), "gone already");
        assert!(
            store
                .update_user(root.id, &set_role("user"))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(enabled_admins(&store).await, [dormant.id]);
    }
}

/// Two admins demoting, disabling or deleting each other at the same
/// moment: exactly one change goes through. Looped, because on PostgreSQL
/// the write skew this guards against needs the two transactions to
/// overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_removing_each_other_concurrently_leave_one() {
    for (db, store) in stores("admins_removing_each_other_concurrently_leave_one").await {
        let rounds = match db.backend_name() {
            "postgres" => 150,
            _ => 40,
        };
        let mut survivor: Option<i64> = None;
        for round in 0..rounds {
            let a = store
                .create_user(&admin(&format!("a{round}")))
                .await
                .unwrap();
            let b = store
                .create_user(&admin(&format!("b{round}")))
                .await
                .unwrap();
            if let Some(previous) = survivor {
                store.delete_user(previous).await.unwrap();
            }
            let change = |store: Store, id: i64, how: u32| async move {
                match how {
                    0 => store.update_user(id, &set_role("user")).await.map(|_| ()),
                    1 => store.update_user(id, &set_disabled(true)).await.map(|_| ()),
                    _ => store.delete_user(id).await.map(|_| ()),
                }
            };
            let (first, second) = tokio::join!(
                tokio::spawn(change(store.clone(), a.id, round % 3)),
                tokio::spawn(change(store.clone(), b.id, (round / 3) % 3)),
            );
            let outcomes = [first.unwrap(), second.unwrap()];
            let refused = outcomes
                .iter()
                .filter(|o| matches!(o, Err(UserChangeError::LastAdmin)))
                .count();
            let left = enabled_admins(&store).await;
            assert_eq!(
                (left.len(), refused),
                (1, 1),
                "{db:?} round {round}: {outcomes:?}"
            );
            survivor = Some(left[0]);
        }
    }
}

#[tokio::test]
async fn admin_bootstrap_is_idempotent() {
    for (db, store) in stores("admin_bootstrap_is_idempotent").await {
        let hash = || async { Ok::<_, std::convert::Infallible>("$argon2id$admin".to_owned()) };
        assert_eq!(
            store.ensure_admin("root", hash).await.unwrap(),
            AdminBootstrapOutcome::Created,
            "{db:?}"
        );
        assert_eq!(
            store.ensure_admin("ROOT", hash).await.unwrap(),
            AdminBootstrapOutcome::LeftAlone
        );
        let (admin, _) = store.credentials("root").await.unwrap().unwrap();
        assert_eq!(admin.role, "admin");
        // An existing non-admin of that name (a squatter) is never promoted
        // nor touched, and the outcome says so.
        store.create_user(&new_user("plain", None)).await.unwrap();
        let never = || async { Err::<String, _>("must not hash for an existing user") };
        assert_eq!(
            store.ensure_admin("plain", never).await.unwrap(),
            AdminBootstrapOutcome::NotAnAdmin {
                role: "user".into(),
                disabled: false
            }
        );
        // validate reads the same without writing.
        let timeout = Duration::from_secs(5);
        assert_eq!(
            auth_kit::store::inspect_admin(db.url(), "PLAIN", timeout).await,
            Ok(Some(AdminBootstrapOutcome::NotAnAdmin {
                role: "user".into(),
                disabled: false
            }))
        );
        assert_eq!(
            auth_kit::store::inspect_admin(db.url(), "root", timeout).await,
            Ok(Some(AdminBootstrapOutcome::LeftAlone))
        );
        assert_eq!(
            auth_kit::store::inspect_admin(db.url(), "nobody", timeout).await,
            Ok(None)
        );
        // A disabled admin is not an admin either (another admin stays, as
        // the last-admin rule requires).
        store.create_user(&self::admin("deputy")).await.unwrap();
        let (root, _) = store.credentials("root").await.unwrap().unwrap();
        store
            .update_user(
                root.id,
                &UserUpdate {
                    disabled: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            store.ensure_admin("root", never).await.unwrap(),
            AdminBootstrapOutcome::NotAnAdmin {
                role: "admin".into(),
                disabled: true
            }
        );
        assert_eq!(
            store.credentials("plain").await.unwrap().unwrap().0.role,
            "user"
        );
    }
}

#[tokio::test]
async fn purge_removes_expired_tokens_and_empty_logins() {
    for (db, store) in stores("purge_removes_expired_tokens_and_empty_logins").await {
        let clock = auth_kit::Clock::manual(1_000_000);
        let store = store.with_clock(clock.clone());
        let user = store.create_user(&new_user("purge", None)).await.unwrap();
        let short = RefreshTokenHash::of("short");
        let login = store
            .start_login(
                user.id,
                "$argon2id$v=19$x",
                "",
                &short,
                Duration::from_secs(10),
            )
            .await
            .unwrap()
            .unwrap();
        let long = RefreshTokenHash::of("long");
        let kept = store
            .start_login(
                user.id,
                "$argon2id$v=19$x",
                "",
                &long,
                Duration::from_secs(1000),
            )
            .await
            .unwrap()
            .unwrap();
        clock.advance(11);
        assert_eq!(store.purge_expired().await.unwrap(), 1, "{db:?}");
        assert!(store.find_refresh_token(&short).await.unwrap().is_none());
        assert_eq!(
            store.user_for_access(user.id, Some(&login)).await.unwrap(),
            Lookup::RevokedLogin
        );
        assert!(matches!(
            store.user_for_access(user.id, Some(&kept)).await.unwrap(),
            Lookup::Found(_)
        ));
    }
}

/// SQLite and PostgreSQL migrations must describe the same tables and columns.
#[tokio::test]
async fn schema_parity() {
    let dbs = stores("schema_parity").await;
    let mut schemas = Vec::new();
    for (db, store) in &dbs {
        let _ = store;
        let columns: Vec<(String, String)> = match db.backend_name() {
            "sqlite" => {
                let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
                sqlx::query_as(
                    "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
                )
                .fetch_all(&pool)
                .await
                .unwrap()
            }
            _ => {
                let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
                sqlx::query_as(
                    "SELECT table_name::text, column_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%'",
                )
                .fetch_all(&pool)
                .await
                .unwrap()
            }
        };
        let mut by_table: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (table, column) in columns {
            by_table.entry(table).or_default().push(column);
        }
        by_table.values_mut().for_each(|c| c.sort());
        assert_eq!(
            by_table.keys().collect::<Vec<_>>(),
            [
                "account_tokens",
                "items",
                "logins",
                "refresh_tokens",
                "users"
            ]
        );
        schemas.push(by_table);
    }
    match schemas.as_slice() {
        [sqlite, postgres] => assert_eq!(sqlite, postgres),
        _ => eprintln!("schema_parity: only SQLite checked (TEST_DATABASE_URL unset)"),
    }
    assert_eq!(dbs[0].1.backend(), Backend::Sqlite);
}

/// Run by `acknowledged_writes_survive_sigkill` as a separate process.
#[tokio::test]
#[ignore = "helper: started as a child process by acknowledged_writes_survive_sigkill"]
async fn durability_child() {
    let url = std::env::var("AUTH_KIT_DURABILITY_URL").expect("started by the durability test");
    let store = Store::connect(&url).await.unwrap();
    let user = store.create_user(&new_user("durable", None)).await.unwrap();
    println!("ACK {}", user.id);
    use std::io::Write as _;
    std::io::stdout().flush().unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    use std::io::BufRead as _;
    let db = TestDatabase::sqlite();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durability_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("AUTH_KIT_DURABILITY_URL", db.url())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ack = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest prints "test durability_child ... " on the same line first.
        .find_map(|line| {
            line.split("ACK ")
                .nth(1)
                .map(|id| id.trim().parse::<i64>().unwrap())
        })
        .expect("the child acknowledged a write");
    child.kill().unwrap(); // SIGKILL: no destructors, no clean close
    let status = child.wait().unwrap();
    assert!(!status.success());
    let store = Store::connect(db.url()).await.unwrap();
    let user = store
        .user(ack)
        .await
        .unwrap()
        .expect("the acknowledged user survived SIGKILL");
    assert_eq!(user.username, "durable");
}

/// The per-request lookup is one query, answered from primary-key indexes:
/// no table scan, however many users and logins there are.
#[tokio::test]
async fn access_lookup_uses_indexes_only() {
    use auth_kit::store::ACCESS_LOOKUP_SQL;
    let db = TestDatabase::sqlite();
    Store::connect(db.url()).await.unwrap();
    let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
    let plan: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(&format!("EXPLAIN QUERY PLAN {ACCESS_LOOKUP_SQL}"))
            .bind(1_i64)
            .bind("login")
            .fetch_all(&pool)
            .await
            .unwrap();
    let steps: Vec<&str> = plan
        .iter()
        .map(|(_, _, _, detail)| detail.as_str())
        .collect();
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(
        steps
            .iter()
            .all(|s| s.starts_with("SEARCH") && !s.contains("SCAN")),
        "{steps:?}"
    );

    if let Some(pg) = TestDatabase::postgres("access_lookup_uses_indexes_only").await {
        Store::connect(pg.url()).await.unwrap();
        let pool = sqlx::PgPool::connect(pg.url()).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        // Small tables may be scanned by choice; forbid it to prove index paths exist.
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *conn)
            .await
            .unwrap();
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {ACCESS_LOOKUP_SQL}"))
            .bind(1_i64)
            .bind("login")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        assert!(
            plan.iter().all(|line| !line.contains("Seq Scan")),
            "{plan:#?}"
        );
        assert!(
            plan.iter().filter(|line| line.contains("Index")).count() >= 2,
            "{plan:#?}"
        );
    }
}

/// Who is "the same user" is decided in Rust (`auth_kit::username::fold`),
/// so PostgreSQL and SQLite agree, whatever their `lower()` does: dotted
/// capital I, fullwidth and combining forms.
#[tokio::test]
async fn usernames_fold_alike_on_every_database() {
    let mut outcomes = Vec::new();
    for (db, store) in stores("username_fold").await {
        let mut seen = Vec::new();
        for name in [
            "admin",
            "ADMIN",
            "ＡＤＭＩＮ",
            "admİn",
            "ADMİN",
            "\u{C5}sa",
            "A\u{30A}SA",
            "Straße",
        ] {
            let created = match store.create_user(&new_user(name, None)).await {
                Ok(_) => "created".to_owned(),
                Err(CreateUserError::Taken(TakenField::Username)) => "taken".to_owned(),
                Err(e) => panic!("{db:?}: {e}"),
            };
            seen.push(format!("{name}: {created}"));
        }
        for name in ["Admin", "ａｄｍｉｎ", "ADMİN", "a\u{30A}sa", "STRASSE"] {
            let found = store.credentials(name).await.unwrap();
            let taken = store.taken(name, None).await.unwrap();
            seen.push(format!(
                "{name}: found {:?}, taken {taken:?}",
                found.map(|(u, _)| u.username)
            ));
        }
        outcomes.push((db.backend_name(), seen));
    }
    let expected = [
        "admin: created",
        "ADMIN: taken",
        "ＡＤＭＩＮ: taken",
        "admİn: created",
        "ADMİN: taken",
        "\u{C5}sa: created",
        "A\u{30A}SA: taken",
        "Straße: created",
        "Admin: found Some(\"admin\"), taken Some(Username)",
        "ａｄｍｉｎ: found Some(\"admin\"), taken Some(Username)",
        "ADMİN: found Some(\"admİn\"), taken Some(Username)",
        "a\u{30A}sa: found Some(\"\u{C5}sa\"), taken Some(Username)",
        "STRASSE: found None, taken None",
    ];
    for (backend, seen) in &outcomes {
        assert_eq!(seen, &expected, "{backend}");
    }
}

/// Rows written before `username_key` existed get it when the store opens,
/// computed in Rust, non-ASCII names included; of two old names that fold
/// alike, the older keeps the name.
#[tokio::test]
async fn username_keys_are_filled_in_for_existing_rows() {
    for db in TestDatabase::all("username_backfill").await {
        let mut migrator = match db.backend_name() {
            "sqlite" => sqlx::migrate!("./migrations/sqlite"),
            _ => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.migrations = migrator
            .migrations
            .iter()
            .filter(|m| m.version < 3)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        let insert = "INSERT INTO users (username, password_hash, role, created_at) VALUES ($1, 'x', 'user', 0)";
        let names = ["bob", "ＢＯＢ", "Ärger", "ADMİN"];
        match db.backend_name() {
            "sqlite" => {
                let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
                migrator.run(&pool).await.unwrap();
                for name in names {
                    sqlx::query(insert).bind(name).execute(&pool).await.unwrap();
                }
                pool.close().await;
            }
            _ => {
                let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
                migrator.run(&pool).await.unwrap();
                for name in names {
                    sqlx::query(insert).bind(name).execute(&pool).await.unwrap();
                }
                pool.close().await;
            }
        }
        let store = Store::connect(db.url()).await.unwrap();
        let id = |name: &'static str| {
            let store = store.clone();
            async move { store.credentials(name).await.unwrap().map(|(u, _)| u.id) }
        };
        assert_eq!(id("BOB").await, Some(1), "{db:?}");
        assert_eq!(
            id("ｂｏｂ").await,
            Some(1),
            "{db:?}: the older row keeps the name"
        );
        assert_eq!(id("äRGER").await, Some(3), "{db:?}");
        assert_eq!(id("admİn").await, Some(4), "{db:?}");
        assert_eq!(id("admin").await, None, "{db:?}");
        // Opening again changes nothing, and new users follow the same rule.
        drop(store);
        let store = Store::connect(db.url()).await.unwrap();
        assert!(matches!(
            store.create_user(&new_user("ärger", None)).await,
            Err(CreateUserError::Taken(TakenField::Username))
        ));
    }
}

#[cfg(unix)]
#[tokio::test]
async fn sqlite_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let db = TestDatabase::sqlite();
    let store = Store::connect(db.url()).await.unwrap();
    store.create_user(&new_user("ann", None)).await.unwrap();
    let path = db
        .url()
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    for file in [path.clone(), format!("{path}-wal"), format!("{path}-shm")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is {mode:o}");
    }
}

/// A password reset, change or disable that commits while a grant's
/// password is being checked (against the hash read before it) wins: the
/// login does not start, a format upgrade never puts the old password
/// back, and a change checked against the old hash changes nothing.
#[tokio::test]
async fn writes_checked_against_a_replaced_hash_change_nothing() {
    const OLD: &str = "$argon2id$v=19$x";
    for (db, store) in stores("writes_checked_against_a_replaced_hash_change_nothing").await {
        let user = store.create_user(&new_user("raced", None)).await.unwrap();
        let reset = store
            .change_password(user.id, OLD, "$argon2id$v=19$new", None)
            .await
            .unwrap();
        assert_eq!(reset, Some(0), "{db:?}");
        let started = store
            .start_login(
                user.id,
                OLD,
                "",
                &RefreshTokenHash::of("late"),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert!(
            started.is_none(),
            "{db:?}: a login checked against the old hash"
        );
        assert!(
            !store
                .set_password_hash(user.id, OLD, "$argon2id$v=19$upgraded-old")
                .await
                .unwrap(),
            "{db:?}"
        );
        assert_eq!(
            store
                .change_password(user.id, OLD, "$argon2id$v=19$other", None)
                .await
                .unwrap(),
            None,
            "{db:?}"
        );
        assert_eq!(
            store.password_hash(user.id).await.unwrap().as_deref(),
            Some("$argon2id$v=19$new"),
            "{db:?}"
        );
        // With the current hash: the upgrade and the login go through,
        // unless the user is disabled meanwhile.
        assert!(
            store
                .set_password_hash(user.id, "$argon2id$v=19$new", "$argon2id$v=19$newer")
                .await
                .unwrap()
        );
        let update = UserUpdate {
            disabled: Some(true),
            ..UserUpdate::default()
        };
        store.update_user(user.id, &update).await.unwrap();
        let started = store
            .start_login(
                user.id,
                "$argon2id$v=19$newer",
                "",
                &RefreshTokenHash::of("disabled"),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert!(started.is_none(), "{db:?}: disabled meanwhile");
    }
}

#[tokio::test]
async fn deleting_a_user_takes_logins() {
    for (db, store) in stores("deleting_a_user_takes_logins").await {
        let user = store.create_user(&new_user("gone", None)).await.unwrap();
        let keeper = store.create_user(&new_user("keeper", None)).await.unwrap();
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
            store.find_refresh_token(&refresh).await.unwrap().is_none(),
            "{db:?}"
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

#[tokio::test]
async fn users_are_paged_by_id() {
    for (_db, store) in stores("users_are_paged_by_id").await {
        store.create_user(&new_user("pager", None)).await.unwrap();
        store.create_user(&new_user("other", None)).await.unwrap();
        let users = store
            .list_users(&PageRequest::parse("/users", Some("limit=1")).unwrap())
            .await
            .unwrap();
        assert_eq!(users.rows().len(), 1);
        assert!(users.next_link().is_some());
    }
}

/// The operator tools' way in: a database as it is, never created or
/// migrated.
#[tokio::test]
async fn connect_migrated_changes_no_schema() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let url = format!("sqlite://{}?mode=rwc", missing.display());
    assert!(Store::connect_migrated(&url).await.is_err());
    assert!(!missing.exists(), "no file created");

    // A database nobody migrated stays unmigrated.
    let bare = dir.path().join("bare.db");
    std::fs::File::create(&bare).unwrap();
    let url = format!("sqlite://{}", bare.display());
    let store = Store::connect_migrated(&url).await.unwrap();
    store.close().await;
    let state = auth_kit::store::migration_state(&url, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(!state.pending.is_empty(), "{state:?}");

    // One the service migrated opens, and is current.
    let served = dir.path().join("served.db");
    let url = format!("sqlite://{}?mode=rwc", served.display());
    Store::connect(&url).await.unwrap().close().await;
    let store = Store::connect_migrated(&url).await.unwrap();
    store.ping().await.unwrap();
    store.close().await;
    let state = auth_kit::store::migration_state(&url, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(state.is_current(), "{state:?}");
}

/// A database a newer release migrated is refused at start-up (a rollback
/// would otherwise run on a schema it does not know); the versions the kit
/// retired are accepted.
#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("newer.db").display()
    );
    Store::connect(&url).await.unwrap().close().await;
    let record = |version: i64| {
        let url = url.clone();
        async move {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES ($1, 'recorded by the test', TRUE, X'00', 0)",
            )
            .bind(version)
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
    };
    record(2).await;
    Store::connect(&url).await.unwrap().close().await;
    record(7).await;
    let refused = Store::connect(&url).await.unwrap_err();
    assert!(
        matches!(&refused, OpenError::NewerSchema(v) if v == &[7]),
        "{refused}"
    );
    assert!(refused.to_string().contains("newer release"), "{refused}");
}
