//! Every route of the example over real HTTP on loopback: each success and
//! each failure, with exact statuses, challenges and JSON bodies; and the
//! start-up banner replayed against the server.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::ops::Deref;

use auth_kit::testing::{Reply, TestClient};
use protected_routes::walkthrough::{self, CALLS};
use protected_routes::{ADMIN, DEMO_USERS, Demo, DemoUser, GUEST, USER};
use serde_json::{Value, json};

/// The kit's test client for the demo, served on loopback as its `main`
/// serves it.
struct Server(TestClient);

impl Deref for Server {
    type Target = TestClient;
    fn deref(&self) -> &TestClient {
        &self.0
    }
}

async fn serve() -> Server {
    let demo = Demo::start().await;
    let router = demo.router.clone();
    // The server owns the demo, so its database lives as long as it does.
    let base = demo_walkthrough::serve_on_loopback(router, demo).await;
    Server(TestClient::new(base))
}

/// The `WWW-Authenticate` challenge, if any.
fn challenge(answer: &Reply) -> Option<&str> {
    answer.header("www-authenticate")
}

impl Server {
    async fn call(&self, method: &str, path: &str, token: Option<&str>) -> Reply {
        self.send(method, path, token, None, Vec::new()).await
    }

    async fn post_item(&self, token: Option<&str>, content_type: &str, body: &str) -> Reply {
        let body = body.as_bytes().to_vec();
        self.send("POST", "/items", token, Some(content_type), body)
            .await
    }

    async fn token_form(&self, form: &str) -> Reply {
        self.form("/token", form).await
    }

    async fn login(&self, user: DemoUser, scope: Option<&str>) -> Reply {
        let mut form = format!(
            "grant_type=password&username={}&password={}",
            user.username, user.password
        );
        if let Some(scope) = scope {
            form.push_str(&format!("&scope={}", scope.replace(' ', "+")));
        }
        self.token_form(&form).await
    }

    /// An access token for `user` with every scope their role holds.
    async fn access(&self, user: DemoUser) -> String {
        let answer = self.login(user, None).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.body["access_token"].as_str().unwrap().to_owned()
    }
}

fn error(code: &str, description: &str) -> Value {
    json!({"error": code, "error_description": description})
}

fn assert_no_token(answer: &Reply) {
    assert_eq!(answer.status, 401);
    assert_eq!(challenge(answer), Some("Bearer"));
    assert_eq!(
        answer.body,
        error("unauthorized", "Authentication required")
    );
}

fn assert_insufficient_scope(answer: &Reply, scope: &str) {
    let description = format!("The access token lacks the scope '{scope}'");
    assert_eq!(answer.status, 403);
    assert_eq!(
        challenge(answer),
        Some(
            format!(
                r#"Bearer error="insufficient_scope", scope="{scope}", error_description="{description}""#
            )
            .as_str()
        )
    );
    assert_eq!(answer.body, error("insufficient_scope", &description));
}

#[tokio::test]
async fn the_public_route_needs_no_token_and_ignores_one() {
    let s = serve().await;
    for token in [None, Some("not-a-token")] {
        let answer = s.call("GET", "/", token).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body["service"], json!("protected-routes"));
    }
}

#[tokio::test]
async fn the_password_grant_issues_scoped_tokens() {
    let s = serve().await;
    for (user, scope) in [
        (GUEST, "me"),
        (USER, "me items items:write"),
        (ADMIN, "me items items:write admin"),
    ] {
        let answer = s.login(user, None).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.body["token_type"], json!("bearer"));
        assert_eq!(answer.body["expires_in"], json!(1800));
        assert_eq!(answer.body["scope"], json!(scope), "{}", user.username);
        assert!(answer.body["refresh_token"].is_string());
        assert_eq!(answer.headers["cache-control"], "no-store");
    }
    let narrowed = s.login(USER, Some("me")).await;
    assert_eq!(narrowed.body["scope"], json!("me"));

    let answer = s.login(GUEST, Some("items")).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            400,
            error(
                "invalid_scope",
                "The requested scope exceeds what the user holds"
            )
        )
    );
    let answer = s.login(USER, Some("root")).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            400,
            error("invalid_scope", "The requested scope is unknown: root")
        )
    );

    // Unknown user and wrong password: one answer.
    let bad_credentials = error("invalid_grant", "Incorrect username or password");
    for form in [
        "grant_type=password&username=user&password=wrong-password",
        "grant_type=password&username=nobody&password=user-demo-password",
    ] {
        let answer = s.token_form(form).await;
        assert_eq!((answer.status, &answer.body), (400, &bad_credentials));
        assert_eq!(answer.headers["cache-control"], "no-store");
    }

    let answer = s.token_form("username=user&password=x").await;
    assert_eq!(
        (answer.status, answer.body),
        (
            400,
            error("invalid_request", "The grant_type parameter is missing")
        )
    );
    let answer = s.token_form("grant_type=client_credentials").await;
    assert_eq!(
        (answer.status, answer.body),
        (
            400,
            error(
                "unsupported_grant_type",
                "The grant type 'client_credentials' is not supported"
            )
        )
    );
    let body = br#"{"grant_type":"password"}"#.to_vec();
    let answer = s
        .send("POST", "/token", None, Some("application/json"), body)
        .await;
    assert_eq!(
        (answer.status, answer.body),
        (
            400,
            error(
                "invalid_request",
                "The token request must be an application/x-www-form-urlencoded form"
            )
        )
    );
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_username() {
    let s = serve().await;
    for _ in 0..5 {
        let answer = s
            .token_form("grant_type=password&username=admin&password=wrong-password")
            .await;
        assert_eq!(answer.status, 400);
    }
    // Locked: even the right password waits.
    let answer = s.login(ADMIN, None).await;
    assert_eq!(answer.status, 429);
    assert_eq!(
        answer.body,
        error(
            "too_many_requests",
            "Too many failed logins; try again later"
        )
    );
    assert!(answer.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn the_refresh_grant_rotates_and_detects_reuse() {
    let s = serve().await;
    let first = s.login(USER, None).await.body;
    let first_refresh = first["refresh_token"].as_str().unwrap();
    let refresh = |token: &str| format!("grant_type=refresh_token&refresh_token={token}");

    let second = s.token_form(&refresh(first_refresh)).await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(second.body["scope"], json!("me items items:write"));
    let second_access = second.body["access_token"].as_str().unwrap();
    let second_refresh = second.body["refresh_token"].as_str().unwrap();
    assert_ne!(second_refresh, first_refresh);
    assert_eq!(
        s.call("GET", "/users/me", Some(second_access)).await.status,
        200
    );

    // Presented again at once (a second tab): the same new refresh token.
    let again = s.token_form(&refresh(first_refresh)).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["refresh_token"], json!(second_refresh));

    // Once the new one was used, reusing the spent token is refused and
    // revokes the whole login.
    let third = s.token_form(&refresh(second_refresh)).await;
    assert_eq!(third.status, 200, "{third:?}");
    let third_access = third.body["access_token"].as_str().unwrap();
    let third_refresh = third.body["refresh_token"].as_str().unwrap();
    let invalid = error("invalid_grant", "The refresh token is invalid");
    let reuse = s.token_form(&refresh(first_refresh)).await;
    assert_eq!((reuse.status, &reuse.body), (400, &invalid));
    let after = s.token_form(&refresh(third_refresh)).await;
    assert_eq!((after.status, &after.body), (400, &invalid));
    assert_eq!(
        s.call("GET", "/users/me", Some(second_access)).await.status,
        401
    );
    let revoked = s.call("GET", "/users/me", Some(third_access)).await;
    assert_eq!(revoked.status, 401);
    assert_eq!(
        revoked.body,
        error("invalid_token", "The access token has been revoked")
    );

    let missing = s.token_form("grant_type=refresh_token").await;
    assert_eq!(
        (missing.status, missing.body),
        (
            400,
            error("invalid_request", "The refresh_token parameter is missing")
        )
    );
}

#[tokio::test]
async fn users_me_needs_any_valid_token() {
    let s = serve().await;
    assert_no_token(&s.call("GET", "/users/me", None).await);

    let garbage = s.call("GET", "/users/me", Some("garbage")).await;
    assert_eq!(garbage.status, 401);
    assert_eq!(
        challenge(&garbage),
        Some(r#"Bearer error="invalid_token", error_description="The access token is malformed""#)
    );
    assert_eq!(
        garbage.body,
        error("invalid_token", "The access token is malformed")
    );

    for user in DEMO_USERS {
        let token = s.access(user).await;
        let answer = s.call("GET", "/users/me", Some(&token)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body["username"], json!(user.username));
        assert_eq!(answer.body["role"], json!(user.role));
        let mut fields: Vec<&str> = answer
            .body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "created_at",
                "disabled",
                "email",
                "email_verified",
                "full_name",
                "id",
                "role",
                "username"
            ],
            "never a password hash"
        );
    }
}

#[tokio::test]
async fn users_me_items_needs_the_items_scope() {
    let s = serve().await;
    assert_no_token(&s.call("GET", "/users/me/items", None).await);

    let guest = s.access(GUEST).await;
    assert_insufficient_scope(
        &s.call("GET", "/users/me/items", Some(&guest)).await,
        "items",
    );
    // The user's role holds `items`, but this token was granted `me` only.
    let narrowed = s.login(USER, Some("me")).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_insufficient_scope(
        &s.call("GET", "/users/me/items", Some(&narrowed)).await,
        "items",
    );

    let user = s.access(USER).await;
    let empty = s.call("GET", "/users/me/items", Some(&user)).await;
    assert_eq!((empty.status, empty.body), (200, json!([])));
    let created = s
        .post_item(Some(&user), "application/json", r#"{"title":"Buy milk"}"#)
        .await;
    let listed = s.call("GET", "/users/me/items", Some(&user)).await;
    assert_eq!((listed.status, listed.body), (200, json!([created.body])));
    // Only the caller's own items.
    let admin = s.access(ADMIN).await;
    assert_eq!(
        s.call("GET", "/users/me/items", Some(&admin)).await.body,
        json!([])
    );
}

#[tokio::test]
async fn post_items_needs_the_items_write_scope() {
    let s = serve().await;
    let json_type = "application/json";
    let milk = r#"{"title":"Buy milk","description":"semi-skimmed"}"#;
    assert_no_token(&s.post_item(None, json_type, milk).await);
    // Refused before the body is even read.
    assert_no_token(&s.post_item(None, json_type, "{broken").await);

    let guest = s.access(GUEST).await;
    assert_insufficient_scope(
        &s.post_item(Some(&guest), json_type, milk).await,
        "items:write",
    );

    let user = s.access(USER).await;
    let me = s.call("GET", "/users/me", Some(&user)).await.body;
    let created = s.post_item(Some(&user), json_type, milk).await;
    assert_eq!(created.status, 201);
    let item = created.body.as_object().unwrap();
    assert_eq!(item["title"], json!("Buy milk"));
    assert_eq!(item["description"], json!("semi-skimmed"));
    assert_eq!(item["owner_id"], me["id"]);
    assert!(item["id"].as_i64().unwrap() > 0);
    assert!(item["created_at"].is_string());
    assert_eq!(item.len(), 5);

    for (content_type, body, status, expected) in [
        (
            json_type,
            r#"{"title":"   "}"#,
            422,
            error("validation_failed", "title: must not be empty"),
        ),
        (
            json_type,
            r#"{"description":"no title"}"#,
            422,
            error("validation_failed", "title: field required"),
        ),
        (
            json_type,
            "{broken",
            400,
            error("invalid_request", "The request body is not valid JSON"),
        ),
        (
            "text/plain",
            milk,
            415,
            error(
                "unsupported_media_type",
                "The request body must be application/json",
            ),
        ),
    ] {
        let answer = s.post_item(Some(&user), content_type, body).await;
        assert_eq!((answer.status, answer.body), (status, expected), "{body}");
    }

    let huge = format!(r#"{{"title":"{}"}}"#, "x".repeat(70 * 1024));
    let answer = s.post_item(Some(&user), json_type, &huge).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            413,
            error("request_too_large", "The request body exceeds 65536 bytes")
        )
    );
}

#[tokio::test]
async fn admin_needs_the_admin_role() {
    let s = serve().await;
    assert_no_token(&s.call("GET", "/admin", None).await);

    let not_admin = error("forbidden", "Role 'admin' required");
    for user in [GUEST, USER] {
        let token = s.access(user).await;
        let answer = s.call("GET", "/admin", Some(&token)).await;
        assert_eq!((answer.status, &answer.body), (403, &not_admin));
        assert_eq!(challenge(&answer), None, "a role is not a scope");
    }

    let admin = s.access(ADMIN).await;
    let answer = s.call("GET", "/admin", Some(&admin)).await;
    assert_eq!(answer.status, 200);
    // Least privilege: the role first, then the scope `admin`.
    let down_scoped = s
        .token_form(
            "grant_type=password&username=admin&password=admin-demo-password&scope=me+items",
        )
        .await;
    let down_scoped = down_scoped.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = s.call("GET", "/admin", Some(&down_scoped)).await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    assert_eq!(
        challenge(&refused),
        Some(
            r#"Bearer error="insufficient_scope", scope="admin", error_description="The access token lacks the scope 'admin'""#
        )
    );
    let users = answer.body.as_array().unwrap();
    let names: Vec<&Value> = users.iter().map(|u| &u["username"]).collect();
    assert_eq!(names, [&json!("guest"), &json!("user"), &json!("admin")]);
    assert!(users.iter().all(|u| u["permissions"] == json!([])));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let s = serve().await;
    let answer = s.call("GET", "/nope", None).await;
    assert_eq!(
        (answer.status, answer.body),
        (404, error("not_found", "No route matches this path"))
    );
    let answer = s.call("DELETE", "/users/me", None).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            405,
            error(
                "method_not_allowed",
                "The method is not allowed on this route"
            )
        )
    );
}

#[tokio::test]
async fn the_printed_walkthrough_is_true() {
    let s = serve().await;
    let banner = walkthrough::banner(&s.base);
    demo_walkthrough::replay(&s.base, CALLS, &banner)
        .await
        .unwrap();
}

#[tokio::test]
async fn every_printed_command_names_an_existing_route() {
    let s = serve().await;
    let banner = walkthrough::banner(&s.base);
    demo_walkthrough::check_routes_exist(&s.base, &banner, CALLS.len())
        .await
        .unwrap();
}
