//! The account lifecycle over real HTTP on loopback, on SQLite and (when
//! TEST_DATABASE_URL is set) PostgreSQL, reading the mails from the
//! service's outbox folder: forgot and reset password, email verification,
//! password change, and REQUIRE_VERIFIED_EMAIL.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{Reply, TestServer, password_of, servers, servers_with, token_in};
use serde_json::{Value, json};

/// Signs `username` up with `email`; the user as answered.
async fn signup(s: &TestServer, username: &str, email: &str) -> Value {
    let body = json!({"username": username, "password": password_of(username), "email": email});
    let reply = s.json("POST", "/auth/signup", None, body).await;
    assert_eq!(reply.status, 201, "{}: {reply:?}", s.backend);
    reply.body
}

async fn post(s: &TestServer, path: &str, token: Option<&str>, body: Value) -> Reply {
    s.json("POST", path, token, body).await
}

/// A password grant's access and refresh tokens.
async fn login(s: &TestServer, username: &str, password: &str) -> (String, String) {
    let reply = s.login(username, password, None).await;
    assert_eq!(reply.status, 200, "{}: {reply:?}", s.backend);
    let field = |name: &str| reply.body[name].as_str().unwrap().to_owned();
    (field("access_token"), field("refresh_token"))
}

fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!((reply.status, reply.error().0), (status, code), "{reply:?}");
}

/// Junk a client may send as a token: each is 400 invalid_token, never 5xx.
fn junk_tokens(someone_elses: &str) -> Vec<String> {
    vec![
        String::new(),
        " ".to_owned(),
        "x".repeat(20_000),
        "not base64: ☃ %00 '; DROP TABLE users; --".to_owned(),
        someone_elses.to_owned(),
    ]
}

#[tokio::test]
async fn forgot_and_reset_password() {
    for s in servers("forgot_and_reset_password").await {
        let ann = signup(&s, "ann", "ann@example.com").await;
        assert_eq!(ann["email_verified"], json!(false));
        let (access_a, refresh_a) = login(&s, "ann", &password_of("ann")).await;
        let (access_b, _) = login(&s, "ann", &password_of("ann")).await;

        let known = post(
            &s,
            "/auth/forgot-password",
            None,
            json!({"email": "ANN@example.com"}),
        )
        .await;
        let unknown = post(
            &s,
            "/auth/forgot-password",
            None,
            json!({"email": "nobody@example.com"}),
        )
        .await;
        assert_eq!(known.status, 202, "{known:?}");
        assert_eq!(
            (known.status, &known.body),
            (unknown.status, &unknown.body),
            "the same answer for a known and an unknown address"
        );
        // Mail 1 is the verification sent at signup.
        let first = s.mail("ann@example.com", 2).await;
        assert!(first.contains("Subject: Reset your password"), "{first}");
        let earlier = token_in(&first);
        assert!(
            first.contains(&format!(
                "https://app.example.com/reset-password?token={earlier}"
            )),
            "{first}"
        );
        post(
            &s,
            "/auth/forgot-password",
            None,
            json!({"email": "ann@example.com"}),
        )
        .await;
        let latest = token_in(&s.mail("ann@example.com", 3).await);
        assert!(s.mails_to("nobody@example.com").is_empty());

        let voided = post(
            &s,
            "/auth/reset-password",
            None,
            json!({"token": earlier, "password": "a new password"}),
        )
        .await;
        assert_error(&voided, 400, "invalid_token");
        let weak = post(
            &s,
            "/auth/reset-password",
            None,
            json!({"token": latest, "password": "short"}),
        )
        .await;
        assert_error(&weak, 422, "validation_failed");
        assert!(weak.error().1.starts_with("password: "), "{weak:?}");
        let reset = post(
            &s,
            "/auth/reset-password",
            None,
            json!({"token": latest, "password": "a new password"}),
        )
        .await;
        assert_eq!(reset.status, 204, "{}: {reset:?}", s.backend);
        let again = post(
            &s,
            "/auth/reset-password",
            None,
            json!({"token": latest, "password": "another password"}),
        )
        .await;
        assert_error(&again, 400, "invalid_token");

        // Every login of the user ends: access and refresh tokens alike.
        for access in [&access_a, &access_b] {
            assert_error(
                &s.get("/users/me", Some(access)).await,
                401,
                "invalid_token",
            );
        }
        let refresh = s
            .form(
                "/token",
                &format!("grant_type=refresh_token&refresh_token={refresh_a}"),
            )
            .await;
        assert_error(&refresh, 400, "invalid_grant");
        assert_error(
            &s.login("ann", &password_of("ann"), None).await,
            400,
            "invalid_grant",
        );
        let (fresh, _) = login(&s, "ann", "a new password").await;
        let me = s.get("/users/me", Some(&fresh)).await;
        assert_eq!(
            me.body["email_verified"],
            json!(true),
            "a used reset link proves the address"
        );

        let verification = token_in(&s.mail("ann@example.com", 1).await);
        for junk in junk_tokens(&verification) {
            let reply = post(
                &s,
                "/auth/reset-password",
                None,
                json!({"token": junk, "password": "a new password"}),
            )
            .await;
            assert_error(&reply, 400, "invalid_token");
        }
        for (body, status, code) in [
            (json!({"email": "not an address"}), 422, "validation_failed"),
            (json!({"email": 5}), 422, "validation_failed"),
            (json!({}), 422, "validation_failed"),
        ] {
            assert_error(
                &post(&s, "/auth/forgot-password", None, body).await,
                status,
                code,
            );
        }
        for body in [
            json!({"password": "a new password"}),
            json!({"token": 5, "password": "a new password"}),
        ] {
            assert_error(
                &post(&s, "/auth/reset-password", None, body).await,
                422,
                "validation_failed",
            );
        }
        let plain = s
            .send(
                "POST",
                "/auth/forgot-password",
                None,
                Some("text/plain"),
                b"{}".to_vec(),
            )
            .await;
        assert_error(&plain, 415, "unsupported_media_type");
    }
}

#[tokio::test]
async fn verify_email_once() {
    for s in servers("verify_email_once").await {
        signup(&s, "bob", "bob@example.com").await;
        let mail = s.mail("bob@example.com", 1).await;
        assert!(
            mail.contains("Subject: Confirm your email address"),
            "{mail}"
        );
        let token = token_in(&mail);
        assert!(mail.contains(&format!("https://app.example.com/verify?token={token}")));

        let verified = post(&s, "/auth/verify", None, json!({"token": token})).await;
        assert_eq!(verified.status, 200, "{}: {verified:?}", s.backend);
        assert_eq!(
            (&verified.body["username"], &verified.body["email_verified"]),
            (&json!("bob"), &json!(true))
        );
        let again = post(&s, "/auth/verify", None, json!({"token": token})).await;
        assert_error(&again, 400, "invalid_token");

        signup(&s, "cyd", "cyd@example.com").await;
        let first = token_in(&s.mail("cyd@example.com", 1).await);
        let asked = post(
            &s,
            "/auth/request-verify",
            None,
            json!({"email": "cyd@example.com"}),
        )
        .await;
        let unknown = post(
            &s,
            "/auth/request-verify",
            None,
            json!({"email": "nobody@example.com"}),
        )
        .await;
        assert_eq!((asked.status, &asked.body), (202, &unknown.body));
        let second = token_in(&s.mail("cyd@example.com", 2).await);
        assert_error(
            &post(&s, "/auth/verify", None, json!({"token": first})).await,
            400,
            "invalid_token",
        );
        assert_eq!(
            post(&s, "/auth/verify", None, json!({"token": second}))
                .await
                .status,
            200
        );

        // A reset token is no verification token, and junk is refused.
        post(
            &s,
            "/auth/forgot-password",
            None,
            json!({"email": "bob@example.com"}),
        )
        .await;
        let reset_token = token_in(&s.mail("bob@example.com", 2).await);
        for junk in junk_tokens(&reset_token) {
            assert_error(
                &post(&s, "/auth/verify", None, json!({"token": junk})).await,
                400,
                "invalid_token",
            );
        }
        assert_error(
            &post(&s, "/auth/verify", None, json!({"token": null})).await,
            422,
            "validation_failed",
        );
        assert_error(
            &post(&s, "/auth/request-verify", None, json!({"email": "@"})).await,
            422,
            "validation_failed",
        );
    }
}

#[tokio::test]
async fn change_password_keeps_this_login_and_revokes_the_others() {
    for s in servers("change_password_keeps_this_login_and_revokes_the_others").await {
        s.signup("dee").await;
        let (mine, _) = login(&s, "dee", &password_of("dee")).await;
        let (other, other_refresh) = login(&s, "dee", &password_of("dee")).await;
        let change =
            |current: &str, new: &str| json!({"current_password": current, "new_password": new});

        assert_error(
            &post(
                &s,
                "/users/me/password",
                None,
                change(&password_of("dee"), "a new password"),
            )
            .await,
            401,
            "unauthorized",
        );
        let weak = post(
            &s,
            "/users/me/password",
            Some(&mine),
            change(&password_of("dee"), "short"),
        )
        .await;
        assert_error(&weak, 422, "validation_failed");
        assert!(weak.error().1.starts_with("new_password: "), "{weak:?}");
        assert_error(
            &post(
                &s,
                "/users/me/password",
                Some(&mine),
                json!({"new_password": "a new password"}),
            )
            .await,
            422,
            "validation_failed",
        );
        let wrong = post(
            &s,
            "/users/me/password",
            Some(&mine),
            change("not my password", "a new password"),
        )
        .await;
        assert_error(&wrong, 400, "invalid_grant");

        let changed = post(
            &s,
            "/users/me/password",
            Some(&mine),
            change(&password_of("dee"), "a new password"),
        )
        .await;
        assert_eq!(changed.status, 204, "{}: {changed:?}", s.backend);
        assert_eq!(
            s.get("/users/me", Some(&mine)).await.status,
            200,
            "this login stays"
        );
        assert_error(
            &s.get("/users/me", Some(&other)).await,
            401,
            "invalid_token",
        );
        let refresh = s
            .form(
                "/token",
                &format!("grant_type=refresh_token&refresh_token={other_refresh}"),
            )
            .await;
        assert_error(&refresh, 400, "invalid_grant");
        assert_error(
            &s.login("dee", &password_of("dee"), None).await,
            400,
            "invalid_grant",
        );
        login(&s, "dee", "a new password").await;

        // Wrong current passwords are failed logins: LOGIN_MAX_FAILURES
        // (5) of them lock the username, here and at /token alike.
        for _ in 0..5 {
            let guess = post(
                &s,
                "/users/me/password",
                Some(&mine),
                change("a guess", "another password"),
            )
            .await;
            assert_error(&guess, 400, "invalid_grant");
        }
        let locked = post(
            &s,
            "/users/me/password",
            Some(&mine),
            change("a new password", "another password"),
        )
        .await;
        assert_error(&locked, 429, "too_many_requests");
        assert!(locked.header("retry-after").is_some(), "{locked:?}");
        assert_error(
            &s.login("dee", "a new password", None).await,
            429,
            "too_many_requests",
        );
    }
}

#[tokio::test]
async fn required_verification_refuses_only_the_right_password() {
    for s in servers_with(
        "required_verification",
        &[("REQUIRE_VERIFIED_EMAIL", "true")],
    )
    .await
    {
        let no_email = s
            .json(
                "POST",
                "/auth/signup",
                None,
                json!({"username": "eli", "password": password_of("eli")}),
            )
            .await;
        assert_error(&no_email, 422, "validation_failed");
        assert!(no_email.error().1.starts_with("email: "), "{no_email:?}");
        signup(&s, "eli", "eli@example.com").await;
        let wrong = s.login("eli", "not the password", None).await;
        assert_eq!(
            wrong.error(),
            ("invalid_grant", "Incorrect username or password")
        );
        let right = s.login("eli", &password_of("eli"), None).await;
        assert_eq!(
            (right.status, right.error()),
            (400, ("invalid_grant", "email not verified"))
        );
        let token = token_in(&s.mail("eli@example.com", 1).await);
        assert_eq!(
            post(&s, "/auth/verify", None, json!({"token": token}))
                .await
                .status,
            200
        );
        login(&s, "eli", &password_of("eli")).await;
        // The bootstrap admin has no address to verify and still logs in.
        s.admin_token().await;
    }
}

#[tokio::test]
async fn mail_requests_are_limited() {
    let limits = [("MAIL_MAX_PER_ADDRESS", "2"), ("MAIL_MAX_PER_IP", "3")];
    for s in servers_with("mail_requests_are_limited", &limits).await {
        for _ in 0..2 {
            let ok = post(
                &s,
                "/auth/forgot-password",
                None,
                json!({"email": "flo@example.com"}),
            )
            .await;
            assert_eq!(ok.status, 202);
        }
        let by_address = post(
            &s,
            "/auth/request-verify",
            None,
            json!({"email": "FLO@example.com"}),
        )
        .await;
        assert_error(&by_address, 429, "too_many_requests");
        assert!(by_address.header("retry-after").is_some());
        assert_eq!(
            post(
                &s,
                "/auth/forgot-password",
                None,
                json!({"email": "gus@example.com"})
            )
            .await
            .status,
            202
        );
        let by_ip = post(
            &s,
            "/auth/forgot-password",
            None,
            json!({"email": "hal@example.com"}),
        )
        .await;
        assert_error(&by_ip, 429, "too_many_requests");
    }
}

#[tokio::test]
async fn lifecycle_routes_are_documented() {
    let s = &servers("lifecycle_routes_are_documented").await[0];
    let doc = s.get("/openapi.json", None).await.body;
    for (path, statuses, schema) in [
        (
            "/auth/forgot-password",
            &["202", "400", "413", "415", "422", "429"][..],
            "EmailRequest",
        ),
        (
            "/auth/reset-password",
            &["204", "400", "413", "415", "422", "503"][..],
            "ResetPasswordRequest",
        ),
        (
            "/auth/request-verify",
            &["202", "400", "413", "415", "422", "429"][..],
            "EmailRequest",
        ),
        (
            "/auth/verify",
            &["200", "400", "413", "415", "422", "503"][..],
            "VerifyEmailRequest",
        ),
        (
            "/users/me/password",
            &[
                "204", "400", "401", "403", "413", "415", "422", "429", "503",
            ][..],
            "ChangePasswordRequest",
        ),
    ] {
        let operation = &doc["paths"][path]["post"];
        let documented: Vec<&str> = operation["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(documented, statuses, "{path}");
        assert_eq!(
            operation["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            json!(format!("#/components/schemas/{schema}")),
            "{path}"
        );
    }
    let user = &doc["components"]["schemas"]["User"]["properties"];
    assert_eq!(user["email_verified"]["type"], json!("boolean"));
}
