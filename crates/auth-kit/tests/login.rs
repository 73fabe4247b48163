//! The login service on SQLite always and on PostgreSQL when
//! TEST_DATABASE_URL is set.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use auth_kit::config::LoginLimits;
use auth_kit::extract::Lookup;
use auth_kit::login::{LoginService, ScopeMode, TokenResponse};
use auth_kit::refresh::{ReuseWindow, SealedSuccessor, SuccessorBinding};
use auth_kit::store::{RefreshTokenHash, UserUpdate};
use auth_kit::testing::TestDatabase;
use auth_kit::token::AccessTokenVerifier;
use auth_kit::{ApiError, OAuthError};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{
    Harness, REFRESH_TTL, harness, harness_with_reuse, password_grant, refresh_grant, signup,
};

fn code(e: &OAuthError) -> &'static str {
    e.code()
}

#[tokio::test]
async fn password_grant_issues_a_scoped_pair() {
    for db in TestDatabase::all("password_grant_issues_a_scoped_pair").await {
        let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
        let user = h
            .logins
            .signup(&signup("Ann", "correct horse"), None)
            .await
            .unwrap();
        let pair = h
            .logins
            .token(password_grant("ann", "correct+horse", None), None)
            .await
            .unwrap();
        assert_eq!(
            (
                pair.token_type.as_str(),
                pair.expires_in,
                pair.scope.as_deref()
            ),
            ("bearer", 1800, Some("me items items:write"))
        );
        let access = h.verifier.verify(&pair.access_token).unwrap();
        assert_eq!(access.user_id, user.id, "{db:?}");
        assert!(access.login_id().is_some());
        assert_eq!(pair.refresh_token.len(), 43, "256 bits, base64url");

        let narrow = h
            .logins
            .token(password_grant("ann", "correct+horse", Some("me")), None)
            .await
            .unwrap();
        assert_eq!(narrow.scope.as_deref(), Some("me"));
        let too_much = h
            .logins
            .token(
                password_grant("ann", "correct+horse", Some("me admin")),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(code(&too_much), "invalid_scope");
        // An unknown scope is refused before the password is even checked.
        let unknown = h
            .logins
            .token(password_grant("ann", "WRONG", Some("root")), None)
            .await
            .unwrap_err();
        assert_eq!(code(&unknown), "invalid_scope");
    }
}

#[tokio::test]
async fn unscoped_service_ignores_scope() {
    let db = TestDatabase::sqlite();
    let h = harness(db.url(), ScopeMode::Unscoped, LoginLimits::STANDARD).await;
    h.logins
        .signup(&signup("jwt-user", "correct horse"), None)
        .await
        .unwrap();
    let pair = h
        .logins
        .token(
            password_grant("jwt-user", "correct+horse", Some("nonsense admin")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(pair.scope, None);
    assert_eq!(h.verifier.verify(&pair.access_token).unwrap().scope(), "");
}

#[tokio::test]
async fn bad_requests() {
    let db = TestDatabase::sqlite();
    let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
    let parse = |form: &str| auth_kit::http::TokenRequest::parse(form.as_bytes()).unwrap();
    for (form, expected) in [
        ("", "invalid_request"),
        ("grant_type=password&username=a", "invalid_request"),
        ("grant_type=password&password=a", "invalid_request"),
        ("grant_type=client_credentials", "unsupported_grant_type"),
        ("grant_type=refresh_token", "invalid_request"),
        (
            "grant_type=refresh_token&refresh_token=nope",
            "invalid_grant",
        ),
    ] {
        let e = h.logins.token(parse(form), None).await.unwrap_err();
        assert_eq!(code(&e), expected, "{form}");
    }
    let long = format!("grant_type=refresh_token&refresh_token={}", "x".repeat(600));
    assert_eq!(
        code(&h.logins.token(parse(&long), None).await.unwrap_err()),
        "invalid_grant"
    );
}

#[tokio::test]
async fn signup_rules() {
    let db = TestDatabase::sqlite();
    let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
    let check = |body: serde_json::Value, field: &str| {
        let request: auth_kit::login::SignupRequest = serde_json::from_value(body).unwrap();
        match request.validate() {
            Err(ApiError::Validation { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected a 422 on {field}, got {other:?}"),
        }
    };
    check(
        serde_json::json!({"username": "ab", "password": "long enough"}),
        "username",
    );
    check(
        serde_json::json!({"username": "has space", "password": "long enough"}),
        "username",
    );
    check(
        serde_json::json!({"username": "ok-name", "password": "short"}),
        "password",
    );
    check(
        serde_json::json!({"username": "ok-name", "password": "x".repeat(1025)}),
        "password",
    );
    check(
        serde_json::json!({"username": "ok-name", "password": "long enough", "email": "not-an-email"}),
        "email",
    );
    check(
        serde_json::json!({"username": "ok-name", "password": "long enough", "full_name": "x".repeat(257)}),
        "full_name",
    );
    let with_role: auth_kit::login::SignupRequest = serde_json::from_value(
        serde_json::json!({"username": "sneaky", "password": "long enough", "role": "admin"}),
    )
    .unwrap();
    assert_eq!(
        h.logins.signup(&with_role, None).await.unwrap().role,
        "user",
        "a signup never chooses its role"
    );
    let taken = h
        .logins
        .signup(&signup("SNEAKY", "long enough"), None)
        .await
        .unwrap_err();
    assert!(matches!(
        taken,
        ApiError::Conflict {
            code: "username_taken",
            ..
        }
    ));
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_login() {
    for db in TestDatabase::all("refresh_rotates_and_reuse_revokes_the_login").await {
        let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
        h.logins
            .signup(&signup("rotor", "correct horse"), None)
            .await
            .unwrap();
        let first = h
            .logins
            .token(
                password_grant("rotor", "correct+horse", Some("me items")),
                None,
            )
            .await
            .unwrap();
        let other_login = h
            .logins
            .token(password_grant("rotor", "correct+horse", None), None)
            .await
            .unwrap();
        let second = h
            .logins
            .token(refresh_grant(&first.refresh_token, None), None)
            .await
            .unwrap();
        assert_ne!(second.refresh_token, first.refresh_token);
        assert_eq!(
            second.scope.as_deref(),
            Some("me items"),
            "{db:?}: the original grant, not more"
        );
        let sid = |t: &str| h.verifier.verify(t).unwrap().login_id().unwrap().to_owned();
        assert_eq!(
            sid(&second.access_token),
            sid(&first.access_token),
            "same login"
        );

        // Asking for more than the original grant on refresh is refused; less is fine.
        let more = h
            .logins
            .token(
                refresh_grant(&second.refresh_token, Some("items:write")),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(code(&more), "invalid_scope");
        let third = h
            .logins
            .token(refresh_grant(&second.refresh_token, Some("me")), None)
            .await
            .unwrap();
        assert_eq!(third.scope.as_deref(), Some("me"));

        // Reuse of the spent first token: invalid_grant, and the whole login is revoked.
        let reuse = h
            .logins
            .token(refresh_grant(&first.refresh_token, None), None)
            .await
            .unwrap_err();
        assert_eq!(code(&reuse), "invalid_grant");
        let after = h
            .logins
            .token(refresh_grant(&third.refresh_token, None), None)
            .await
            .unwrap_err();
        assert_eq!(
            code(&after),
            "invalid_grant",
            "{db:?}: the newest token of a revoked login is dead too"
        );
        let access = h.verifier.verify(&third.access_token).unwrap();
        assert_eq!(
            h.store
                .user_for_access(access.user_id, access.login_id())
                .await
                .unwrap(),
            Lookup::RevokedLogin
        );
        // The user's other login is untouched.
        let other = h.verifier.verify(&other_login.access_token).unwrap();
        assert!(matches!(
            h.store
                .user_for_access(other.user_id, other.login_id())
                .await
                .unwrap(),
            Lookup::Found(_)
        ));
        assert!(
            h.logins
                .token(refresh_grant(&other_login.refresh_token, None), None)
                .await
                .is_ok()
        );
    }
}

/// Refreshes `token` `n` times at once, spread over `services`; every answer.
async fn refresh_concurrently(
    services: &[&LoginService],
    token: &str,
    n: usize,
) -> Vec<Result<TokenResponse, OAuthError>> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (logins, token) = (services[i % services.len()].clone(), token.to_owned());
            tokio::spawn(async move { logins.token(refresh_grant(&token, None), None).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

/// The one successor every answer carries, checking each is a 200 whose
/// access token belongs to `login`.
fn one_successor(
    db: &TestDatabase,
    answers: &[Result<TokenResponse, OAuthError>],
    verifiers: &[&AccessTokenVerifier],
    login: &str,
) -> String {
    let mut successors = BTreeSet::new();
    for answer in answers {
        let pair = answer
            .as_ref()
            .unwrap_or_else(|e| panic!("{db:?}: a refresh was refused: {e}"));
        let sid = verifiers
            .iter()
            .find_map(|v| v.verify(&pair.access_token).ok())
            .unwrap()
            .login_id()
            .map(str::to_owned);
        assert_eq!(sid.as_deref(), Some(login), "{db:?}: the same login");
        successors.insert(pair.refresh_token.clone());
    }
    assert_eq!(successors.len(), 1, "{db:?}: {successors:?}");
    successors.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_all_get_the_one_successor() {
    for db in TestDatabase::all("concurrent_refreshes_all_get_the_one_successor").await {
        let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
        h.logins
            .signup(&signup("racer", "correct horse"), None)
            .await
            .unwrap();
        let pair = h
            .logins
            .token(password_grant("racer", "correct+horse", None), None)
            .await
            .unwrap();
        let login = sid_of(&h, &pair.access_token);
        let answers = refresh_concurrently(&[&h.logins], &pair.refresh_token, 20).await;
        let successor = one_successor(&db, &answers, &[&h.verifier], &login);
        assert_ne!(successor, pair.refresh_token);
        // Nothing was revoked: every access token works, and the successor rotates.
        for answer in &answers {
            let access = h
                .verifier
                .verify(&answer.as_ref().unwrap().access_token)
                .unwrap();
            assert!(matches!(
                h.store
                    .user_for_access(access.user_id, access.login_id())
                    .await
                    .unwrap(),
                Lookup::Found(_)
            ));
        }
        let next = h
            .logins
            .token(refresh_grant(&successor, None), None)
            .await
            .unwrap();
        assert_ne!(next.refresh_token, successor, "{db:?}");
    }
}

/// Two independently built services on one database: concurrent refreshes
/// of one token on both agree on one successor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_agree() {
    for db in TestDatabase::all("two_instances_on_one_database_agree").await {
        let a = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
        let b = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
        a.logins
            .signup(&signup("twins", "correct horse"), None)
            .await
            .unwrap();
        for round in 0..5 {
            let pair = b
                .logins
                .token(password_grant("twins", "correct+horse", None), None)
                .await
                .unwrap();
            let login = sid_of(&b, &pair.access_token);
            let answers =
                refresh_concurrently(&[&a.logins, &b.logins], &pair.refresh_token, 20).await;
            let successor = one_successor(&db, &answers, &[&a.verifier, &b.verifier], &login);
            assert!(
                a.logins
                    .token(refresh_grant(&successor, None), None)
                    .await
                    .is_ok(),
                "{db:?} round {round}"
            );
        }
    }
}

#[tokio::test]
async fn reuse_outside_the_window_revokes_the_login() {
    for db in TestDatabase::all("reuse_outside_the_window_revokes_the_login").await {
        let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
        h.logins
            .signup(&signup("late", "correct horse"), None)
            .await
            .unwrap();
        let first = h
            .logins
            .token(password_grant("late", "correct+horse", None), None)
            .await
            .unwrap();
        let second = h
            .logins
            .token(refresh_grant(&first.refresh_token, None), None)
            .await
            .unwrap();
        // The last second of the window still answers with the successor...
        h.clock.advance(ReuseWindow::STANDARD.as_secs() as i64);
        let again = h
            .logins
            .token(refresh_grant(&first.refresh_token, None), None)
            .await
            .unwrap();
        assert_eq!(again.refresh_token, second.refresh_token, "{db:?}");
        // ...the next one is reuse: the login goes, access tokens included.
        h.clock.advance(1);
        let reuse = h
            .logins
            .token(refresh_grant(&first.refresh_token, None), None)
            .await
            .unwrap_err();
        assert_eq!(code(&reuse), "invalid_grant");
        assert_revoked(&h, &db, &second).await;
        assert_revoked(&h, &db, &again).await;
    }
}

#[tokio::test]
async fn reuse_after_the_successor_was_used_revokes_the_login() {
    for db in TestDatabase::all("reuse_after_the_successor_was_used_revokes_the_login").await {
        let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
        h.logins
            .signup(&signup("used", "correct horse"), None)
            .await
            .unwrap();
        let first = h
            .logins
            .token(password_grant("used", "correct+horse", None), None)
            .await
            .unwrap();
        let second = h
            .logins
            .token(refresh_grant(&first.refresh_token, None), None)
            .await
            .unwrap();
        let third = h
            .logins
            .token(refresh_grant(&second.refresh_token, None), None)
            .await
            .unwrap();
        // Within the window, but the successor is spent: reuse.
        let reuse = h
            .logins
            .token(refresh_grant(&first.refresh_token, None), None)
            .await
            .unwrap_err();
        assert_eq!(code(&reuse), "invalid_grant", "{db:?}");
        assert_revoked(&h, &db, &third).await;
    }
}

#[tokio::test]
async fn without_a_window_any_reuse_revokes() {
    for db in TestDatabase::all("without_a_window_any_reuse_revokes").await {
        let h = harness_with_reuse(
            db.url(),
            ScopeMode::Scoped,
            LoginLimits::STANDARD,
            ReuseWindow::DISABLED,
        )
        .await;
        h.logins
            .signup(&signup("strict", "correct horse"), None)
            .await
            .unwrap();
        let first = h
            .logins
            .token(password_grant("strict", "correct+horse", None), None)
            .await
            .unwrap();
        let second = h
            .logins
            .token(refresh_grant(&first.refresh_token, None), None)
            .await
            .unwrap();
        let reuse = h
            .logins
            .token(refresh_grant(&first.refresh_token, None), None)
            .await
            .unwrap_err();
        assert_eq!(code(&reuse), "invalid_grant", "{db:?}");
        assert_revoked(&h, &db, &second).await;

        // And of 20 concurrent refreshes at most one succeeds, its pair revoked.
        let pair = h
            .logins
            .token(password_grant("strict", "correct+horse", None), None)
            .await
            .unwrap();
        let answers = refresh_concurrently(&[&h.logins], &pair.refresh_token, 20).await;
        let won: Vec<_> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
        assert!(won.len() <= 1, "{db:?}: {} pairs", won.len());
        for pair in won {
            assert_revoked(&h, &db, pair).await;
        }
    }
}

/// The database alone never yields a usable refresh token: read every
/// stored value after a rotation and try them.
#[tokio::test]
async fn the_successor_cannot_be_read_from_the_database() {
    for db in TestDatabase::all("the_successor_cannot_be_read_from_the_database").await {
        let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
        h.logins
            .signup(&signup("sealed", "correct horse"), None)
            .await
            .unwrap();
        let first = h
            .logins
            .token(password_grant("sealed", "correct+horse", None), None)
            .await
            .unwrap();
        let second = h
            .logins
            .token(refresh_grant(&first.refresh_token, None), None)
            .await
            .unwrap();
        let login = sid_of(&h, &first.access_token);
        let rows = refresh_token_rows(&db).await;
        assert_eq!(rows.len(), 2, "{db:?}");
        let parent = rows
            .iter()
            .find(|r| r.0 == RefreshTokenHash::of(&first.refresh_token).as_hex())
            .unwrap();
        let (successor_hash, sealed) = (parent.1.clone().unwrap(), parent.2.clone().unwrap());
        assert_eq!(
            successor_hash,
            RefreshTokenHash::of(&second.refresh_token).as_hex()
        );

        // No stored value is, contains or encodes either token.
        let stored: Vec<&str> = rows
            .iter()
            .flat_map(|r| [Some(r.0.as_str()), r.1.as_deref(), r.2.as_deref()])
            .flatten()
            .collect();
        let sealed_bytes = B64.decode(sealed.strip_prefix("v1.").unwrap()).unwrap();
        for token in [&first.refresh_token, &second.refresh_token] {
            let raw = B64.decode(token).unwrap();
            for value in &stored {
                assert!(
                    !value.contains(token.as_str()),
                    "{db:?}: a token in the database"
                );
            }
            assert!(
                !sealed_bytes.windows(raw.len()).any(|w| w == raw.as_slice())
                    && !sealed_bytes
                        .windows(token.len())
                        .any(|w| w == token.as_bytes()),
                "{db:?}: the sealed successor shows it"
            );
        }
        // Every stored value presented as a refresh token is refused.
        for value in &stored {
            assert!(
                h.logins
                    .token(refresh_grant(value, None), None)
                    .await
                    .is_err(),
                "{db:?}"
            );
        }
        // Opening the seal needs the parent: with anything else it fails,
        // with the parent it gives exactly the successor.
        let parent_hash = RefreshTokenHash::of(&first.refresh_token);
        let successor = RefreshTokenHash::of(&second.refresh_token);
        let binding = SuccessorBinding {
            parent: &parent_hash,
            successor: &successor,
            login_id: &login,
        };
        let sealed = SealedSuccessor::from_stored(sealed);
        for guess in stored
            .iter()
            .copied()
            .chain([second.refresh_token.as_str(), "x"])
        {
            assert!(sealed.open(guess, &binding).is_none(), "{db:?}");
        }
        assert_eq!(
            sealed
                .open(&first.refresh_token, &binding)
                .as_deref()
                .map(String::as_str),
            Some(second.refresh_token.as_str())
        );

        // Past the longest reuse window the purge drops the sealed copy:
        // the database plus an old token opens nothing any more.
        let past_every_window =
            auth_kit::Clock::System.now() + i64::try_from(ReuseWindow::MAX_SECONDS).unwrap() + 1;
        h.store
            .clone()
            .with_clock(auth_kit::Clock::manual(past_every_window))
            .purge_expired()
            .await
            .unwrap();
        assert!(
            refresh_token_rows(&db).await.iter().all(|r| r.2.is_none()),
            "{db:?}: a sealed successor outlived every reuse window"
        );
    }
}

/// `(token_hash, successor_hash, successor_sealed)` of every refresh token,
/// read straight from the database.
async fn refresh_token_rows(db: &TestDatabase) -> Vec<(String, Option<String>, Option<String>)> {
    let sql = "SELECT token_hash, successor_hash, successor_sealed FROM refresh_tokens";
    match db.backend_name() {
        "sqlite" => {
            let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
            sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
        }
        _ => {
            let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
            sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
        }
    }
}

fn sid_of(h: &common::Harness, access_token: &str) -> String {
    h.verifier
        .verify(access_token)
        .unwrap()
        .login_id()
        .unwrap()
        .to_owned()
}

/// The pair's login is revoked: its refresh token refused, its access token too.
async fn assert_revoked(h: &common::Harness, db: &TestDatabase, pair: &TokenResponse) {
    let refused = h
        .logins
        .token(refresh_grant(&pair.refresh_token, None), None)
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "invalid_grant", "{db:?}");
    let access = h.verifier.verify(&pair.access_token).unwrap();
    assert_eq!(
        h.store
            .user_for_access(access.user_id, access.login_id())
            .await
            .unwrap(),
        Lookup::RevokedLogin,
        "{db:?}"
    );
}

#[tokio::test]
async fn logout_revokes_only_that_login() {
    for db in TestDatabase::all("logout_revokes_only_that_login").await {
        let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
        h.logins
            .signup(&signup("leaver", "correct horse"), None)
            .await
            .unwrap();
        let a = h
            .logins
            .token(password_grant("leaver", "correct+horse", None), None)
            .await
            .unwrap();
        let b = h
            .logins
            .token(password_grant("leaver", "correct+horse", None), None)
            .await
            .unwrap();
        h.logins
            .logout(&h.verifier.verify(&a.access_token).unwrap())
            .await
            .unwrap();
        let a_access = h.verifier.verify(&a.access_token).unwrap();
        assert_eq!(
            h.store
                .user_for_access(a_access.user_id, a_access.login_id())
                .await
                .unwrap(),
            Lookup::RevokedLogin
        );
        assert_eq!(
            code(
                &h.logins
                    .token(refresh_grant(&a.refresh_token, None), None)
                    .await
                    .unwrap_err()
            ),
            "invalid_grant"
        );
        assert!(
            h.logins
                .token(refresh_grant(&b.refresh_token, None), None)
                .await
                .is_ok(),
            "{db:?}"
        );
    }
}

#[tokio::test]
async fn refresh_tokens_expire() {
    for db in TestDatabase::all("refresh_tokens_expire").await {
        let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
        h.logins
            .signup(&signup("ager", "correct horse"), None)
            .await
            .unwrap();
        let a = h
            .logins
            .token(password_grant("ager", "correct+horse", None), None)
            .await
            .unwrap();
        h.clock.advance(REFRESH_TTL.as_secs() as i64 - 1);
        let b = h
            .logins
            .token(refresh_grant(&a.refresh_token, None), None)
            .await
            .unwrap();
        // b was issued now: it has a full lifetime of its own.
        h.clock.advance(REFRESH_TTL.as_secs() as i64);
        let e = h
            .logins
            .token(refresh_grant(&b.refresh_token, None), None)
            .await
            .unwrap_err();
        assert_eq!(
            (code(&e), e.to_string().as_str()),
            ("invalid_grant", "The refresh token expired"),
            "{db:?}"
        );
    }
}

#[tokio::test]
async fn disabled_users_and_lowered_roles() {
    for db in TestDatabase::all("disabled_users_and_lowered_roles").await {
        let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
        let user = h
            .logins
            .signup(&signup("demoted", "correct horse"), None)
            .await
            .unwrap();
        let pair = h
            .logins
            .token(password_grant("demoted", "correct+horse", None), None)
            .await
            .unwrap();
        h.store
            .update_user(
                user.id,
                &UserUpdate {
                    role: Some("guest".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let lowered = h
            .logins
            .token(refresh_grant(&pair.refresh_token, None), None)
            .await
            .unwrap();
        assert_eq!(
            lowered.scope.as_deref(),
            Some("me"),
            "{db:?}: never more than the role holds now"
        );
        h.store
            .update_user(
                user.id,
                &UserUpdate {
                    disabled: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let e = h
            .logins
            .token(password_grant("demoted", "correct+horse", None), None)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            OAuthError::bad_credentials().to_string(),
            "same answer as a wrong password"
        );
        assert_eq!(
            code(
                &h.logins
                    .token(refresh_grant(&lowered.refresh_token, None), None)
                    .await
                    .unwrap_err()
            ),
            "invalid_grant"
        );
    }
}

#[tokio::test]
async fn old_hashes_are_upgraded_on_login() {
    for db in TestDatabase::all("old_hashes_are_upgraded_on_login").await {
        let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
        // sha512-crypt of "password" (glibc), as a table migrated from elsewhere would hold.
        let legacy = "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";
        let new = auth_kit::store::NewUser {
            username: "migrated",
            email: None,
            full_name: None,
            password_hash: legacy,
            role: "user",
        };
        h.store.create_user(&new).await.unwrap();
        h.logins
            .token(password_grant("migrated", "password", None), None)
            .await
            .unwrap();
        let (_, stored) = h.store.credentials("migrated").await.unwrap().unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{db:?}: {stored}"
        );
        h.logins
            .token(password_grant("migrated", "password", None), None)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn failed_logins_lock_then_unlock() {
    for db in TestDatabase::all("failed_logins_lock_then_unlock").await {
        let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
        h.logins
            .signup(&signup("target", "correct horse"), None)
            .await
            .unwrap();
        let ip = Some(std::net::IpAddr::from([192, 0, 2, 1]));
        for _ in 0..5 {
            let e = h
                .logins
                .token(password_grant("target", "guess", None), ip)
                .await
                .unwrap_err();
            assert_eq!(code(&e), "invalid_grant");
        }
        // Locked: even the right password gets 429 with the seconds left.
        match h
            .logins
            .token(password_grant("TARGET", "correct+horse", None), ip)
            .await
            .unwrap_err()
        {
            OAuthError::TooManyRequests { retry_after } => assert_eq!(retry_after, 300, "{db:?}"),
            other => panic!("expected 429, got {other:?}"),
        }
        // Unknown usernames are counted and locked exactly alike.
        for _ in 0..5 {
            let _ = h
                .logins
                .token(password_grant("no-such-user", "guess", None), None)
                .await;
        }
        assert_eq!(
            code(
                &h.logins
                    .token(password_grant("no-such-user", "guess", None), None)
                    .await
                    .unwrap_err()
            ),
            "too_many_requests"
        );
        // Failed refreshes never count.
        for _ in 0..10 {
            let _ = h.logins.token(refresh_grant("bogus", None), ip).await;
        }
        h.clock.advance(120);
        match h
            .logins
            .token(password_grant("target", "correct+horse", None), ip)
            .await
            .unwrap_err()
        {
            OAuthError::TooManyRequests { retry_after } => assert_eq!(retry_after, 180),
            other => panic!("expected 429, got {other:?}"),
        }
        h.clock.advance(180);
        assert!(
            h.logins
                .token(password_grant("target", "correct+horse", None), ip)
                .await
                .is_ok(),
            "{db:?}: lock over"
        );
    }
}

/// Unknown user and wrong password take the same time (the contract:
/// medians within 10%). Asserted loosely here (a shared, noisy machine);
/// the exact figures are printed.
#[tokio::test]
async fn unknown_user_and_wrong_password_take_the_same_time() {
    let db = TestDatabase::sqlite();
    let generous = LoginLimits {
        max_failures_per_username: 1000,
        max_failures_per_ip: 1000,
        lockout: Duration::from_secs(1),
    };
    let h = harness(db.url(), ScopeMode::Scoped, generous).await;
    h.logins
        .signup(&signup("timed", "correct horse"), None)
        .await
        .unwrap();
    let disabled = h
        .logins
        .signup(&signup("timed-off", "correct horse"), None)
        .await
        .unwrap();
    h.store
        .update_user(
            disabled.id,
            &UserUpdate {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Up to three measurements: a loaded machine (these tests also run in
    // every stamped project) can skew one, while a real difference between
    // the three paths shows in all of them.
    let mut last = String::new();
    for _attempt in 0..3 {
        match timing_ratios(&h).await {
            Ok(()) => return,
            Err(e) => {
                eprintln!("{e}; measuring again");
                last = e;
            }
        }
    }
    panic!("{last}");
}

/// Medians over 20 rounds of the three failed logins; `Err` says which ratio
/// is out of bounds.
async fn timing_ratios(h: &Harness) -> Result<(), String> {
    let mut samples: [Vec<f64>; 3] = Default::default();
    for i in 0..21 {
        for (k, username, password) in [
            (0, format!("ghost-{i}"), "guess"),
            (1, "timed".to_owned(), "guess"),
            (2, "timed-off".to_owned(), "correct+horse"),
        ] {
            let started = Instant::now();
            let e = h
                .logins
                .token(password_grant(&username, password, None), None)
                .await
                .unwrap_err();
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(e.to_string(), "Incorrect username or password");
            if i > 0 {
                samples[k].push(elapsed); // the first round warms up
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [unknown, wrong, off] = samples.each_mut().map(median);
    let ratio = unknown / wrong;
    eprintln!(
        "login timing medians over 20: unknown user {unknown:.2} ms, wrong password {wrong:.2} ms, disabled {off:.2} ms; unknown/wrong = {ratio:.3}"
    );
    if !(0.7..1.43).contains(&ratio) {
        return Err(format!("unknown/wrong = {ratio:.3}"));
    }
    if !(0.7..1.43).contains(&(off / wrong)) {
        return Err(format!("disabled/wrong = {:.3}", off / wrong));
    }
    Ok(())
}
