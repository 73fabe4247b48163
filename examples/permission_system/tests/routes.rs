//! Every route of the example over real HTTP on loopback: each success and
//! each failure, with exact statuses, challenges and JSON bodies; and the
//! start-up banner replayed against the server.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::ops::Deref;

use auth_kit::policy::AccessPolicy;
use auth_kit::testing::{Reply, TestClient};
use permission_system::walkthrough::{self, CALLS};
use permission_system::{
    ADMIN, DEMO_USERS, Demo, DemoUser, EDITOR, GUEST, MARKER_PERMISSIONS, POLICY, USER,
};
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

    async fn send_json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> Reply {
        let body = body.as_bytes().to_vec();
        self.send(method, path, token, Some(content_type), body)
            .await
    }

    async fn post_item(&self, token: &str, title: &str) -> Value {
        let answer = self
            .send_json(
                "POST",
                "/items",
                Some(token),
                "application/json",
                &json!({ "title": title }).to_string(),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body
    }

    async fn patch_user(&self, token: &str, id: &Value, body: &str) -> Reply {
        self.send_json(
            "PATCH",
            &format!("/users/{id}"),
            Some(token),
            "application/json",
            body,
        )
        .await
    }

    /// The caller's user id.
    async fn id_of(&self, token: &str) -> Value {
        self.call("GET", "/users/me", Some(token)).await.body["id"].clone()
    }

    async fn token_form(&self, form: &str) -> Reply {
        self.form("/token", form).await
    }

    async fn login(&self, user: DemoUser) -> Reply {
        self.token_form(&format!(
            "grant_type=password&username={}&password={}",
            user.username, user.password
        ))
        .await
    }

    /// An access token for `user`.
    async fn access(&self, user: DemoUser) -> String {
        let answer = self.login(user).await;
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

fn forbidden(description: &str) -> Value {
    error("forbidden", description)
}

/// Asserts a 403 without a challenge: permissions and roles are not scopes.
fn assert_forbidden(answer: &Reply, description: &str) {
    assert_eq!(
        (answer.status, &answer.body, challenge(answer)),
        (403, &forbidden(description), None)
    );
}

#[test]
fn the_policy_declares_every_permission_a_marker_or_demo_user_names() {
    let policy = AccessPolicy::new(&POLICY).unwrap();
    for permission in MARKER_PERMISSIONS {
        assert!(policy.is_permission(permission), "{permission}");
    }
    for user in DEMO_USERS {
        assert!(policy.role(user.role).is_some(), "{}", user.role);
    }
}

#[tokio::test]
async fn the_public_route_needs_no_token() {
    let s = serve().await;
    let answer = s.call("GET", "/", None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["service"], json!("permission-system"));
}

#[tokio::test]
async fn tokens_carry_no_scope() {
    let s = serve().await;
    let answer = s.login(USER).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["token_type"], json!("bearer"));
    assert!(answer.body.get("scope").is_none(), "{answer:?}");
    assert_eq!(answer.headers["cache-control"], "no-store");
    // The scope field is ignored, even an unknown scope.
    let answer = s
        .token_form("grant_type=password&username=user&password=user-demo-password&scope=root")
        .await;
    assert_eq!(answer.status, 200);
    assert!(answer.body.get("scope").is_none());

    let answer = s
        .token_form("grant_type=password&username=user&password=wrong-password")
        .await;
    assert_eq!(
        (answer.status, answer.body),
        (
            400,
            error("invalid_grant", "Incorrect username or password")
        )
    );

    let refresh = s.login(GUEST).await.body["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = s
        .token_form(&format!("grant_type=refresh_token&refresh_token={refresh}"))
        .await;
    assert_eq!(answer.status, 200);
    let next = answer.body["refresh_token"].as_str().unwrap().to_owned();
    let answer = s
        .token_form(&format!("grant_type=refresh_token&refresh_token={next}"))
        .await;
    assert_eq!(answer.status, 200);
    // Its successor used, the first refresh token is reuse.
    let answer = s
        .token_form(&format!("grant_type=refresh_token&refresh_token={refresh}"))
        .await;
    assert_eq!(
        (answer.status, answer.body),
        (400, error("invalid_grant", "The refresh token is invalid"))
    );
}

#[tokio::test]
async fn users_me_shows_what_the_role_and_grants_allow() {
    let s = serve().await;
    assert_no_token(&s.call("GET", "/users/me", None).await);
    let garbage = s.call("GET", "/users/me", Some("garbage")).await;
    assert_eq!(
        (garbage.status, garbage.body),
        (401, error("invalid_token", "The access token is malformed"))
    );

    for (user, effective) in [
        (GUEST, json!([])),
        (USER, json!(["items:read", "items:write"])),
        (EDITOR, json!(["items:read", "items:write", "items:delete"])),
        (
            ADMIN,
            json!(["items:read", "items:write", "items:delete", "users:read"]),
        ),
    ] {
        let token = s.access(user).await;
        let answer = s.call("GET", "/users/me", Some(&token)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body["username"], json!(user.username));
        assert_eq!(answer.body["role"], json!(user.role));
        assert_eq!(answer.body["permissions"], json!([]));
        assert!(answer.body.get("password_hash").is_none());
        assert_eq!(
            answer.body["effective_permissions"], effective,
            "{}",
            user.username
        );
    }
}

#[tokio::test]
async fn creating_and_listing_items_need_their_permissions() {
    let s = serve().await;
    let milk = r#"{"title":"Buy milk"}"#;
    let json_type = "application/json";
    assert_no_token(&s.send_json("POST", "/items", None, json_type, milk).await);
    assert_no_token(&s.call("GET", "/users/me/items", None).await);

    let guest = s.access(GUEST).await;
    assert_forbidden(
        &s.send_json("POST", "/items", Some(&guest), json_type, milk)
            .await,
        "Permission 'items:write' required",
    );
    assert_forbidden(
        &s.call("GET", "/users/me/items", Some(&guest)).await,
        "Permission 'items:read' required",
    );

    let user = s.access(USER).await;
    let created = s
        .send_json("POST", "/items", Some(&user), json_type, milk)
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["title"], json!("Buy milk"));
    assert_eq!(created.body["owner_id"], s.id_of(&user).await);
    let listed = s.call("GET", "/users/me/items", Some(&user)).await;
    assert_eq!((listed.status, listed.body), (200, json!([created.body])));
    let editor = s.access(EDITOR).await;
    let others = s.call("GET", "/users/me/items", Some(&editor)).await;
    assert_eq!(
        (others.status, others.body),
        (200, json!([])),
        "only your own"
    );

    for (content_type, body, status, expected) in [
        (
            json_type,
            r#"{"title":""}"#,
            422,
            error("validation_failed", "title: must not be empty"),
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
        let answer = s
            .send_json("POST", "/items", Some(&user), content_type, body)
            .await;
        assert_eq!((answer.status, answer.body), (status, expected), "{body}");
    }
}

#[tokio::test]
async fn reading_an_item_is_refused_before_it_is_looked_up() {
    let s = serve().await;
    let user = s.access(USER).await;
    let item = s.post_item(&user, "Buy milk").await;
    let path = format!("/items/{}", item["id"]);
    assert_no_token(&s.call("GET", &path, None).await);

    // Without the permission, a missing item and an existing one look alike.
    let guest = s.access(GUEST).await;
    for path in [path.as_str(), "/items/999999"] {
        assert_forbidden(
            &s.call("GET", path, Some(&guest)).await,
            "Permission 'items:read' required",
        );
    }

    for reader in [USER, EDITOR, ADMIN] {
        let token = s.access(reader).await;
        let answer = s.call("GET", &path, Some(&token)).await;
        assert_eq!(
            (answer.status, &answer.body),
            (200, &item),
            "{}",
            reader.username
        );
    }
    let missing = s.call("GET", "/items/999999", Some(&user)).await;
    assert_eq!(
        (missing.status, missing.body),
        (404, error("not_found", "Item not found"))
    );
    for bad in ["/items/abc", "/items/0", "/items/-1"] {
        let answer = s.call("GET", bad, Some(&user)).await;
        assert_eq!(
            (answer.status, answer.body),
            (
                422,
                error("validation_failed", "id: must be a positive integer")
            ),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn deleting_an_item_depends_on_who_owns_it() {
    let s = serve().await;
    let user = s.access(USER).await;
    let guest = s.access(GUEST).await;
    let editor = s.access(EDITOR).await;
    let admin = s.access(ADMIN).await;
    let not_found = error("not_found", "Item not found");

    let item = s.post_item(&user, "Buy milk").await;
    let path = format!("/items/{}", item["id"]);
    assert_no_token(&s.call("DELETE", &path, None).await);
    assert_forbidden(
        &s.call("DELETE", &path, Some(&guest)).await,
        "Permission 'items:delete' required",
    );
    // The rule needs the item, so existence shows, even to the guest.
    let missing = s.call("DELETE", "/items/999999", Some(&guest)).await;
    assert_eq!((missing.status, &missing.body), (404, &not_found));

    // The owner needs no permission.
    assert_eq!(s.call("DELETE", &path, Some(&user)).await.status, 204);
    let again = s.call("DELETE", &path, Some(&user)).await;
    assert_eq!((again.status, &again.body), (404, &not_found));

    // Someone else's item: the user lacks items:delete; editor and admin hold it.
    let editors = s.post_item(&editor, "Edit the page").await;
    assert_forbidden(
        &s.call("DELETE", &format!("/items/{}", editors["id"]), Some(&user))
            .await,
        "Permission 'items:delete' required",
    );
    for deleter in [&editor, &admin] {
        let item = s.post_item(&user, "Water the plants").await;
        let path = format!("/items/{}", item["id"]);
        assert_eq!(s.call("DELETE", &path, Some(deleter)).await.status, 204);
        assert_eq!(
            s.call("GET", &path, Some(&user)).await.status,
            404,
            "deleted"
        );
    }

    let bad = s.call("DELETE", "/items/abc", Some(&user)).await;
    assert_eq!(
        (bad.status, bad.body),
        (
            422,
            error("validation_failed", "id: must be a positive integer")
        )
    );
}

#[tokio::test]
async fn admins_grant_permissions_per_user() {
    let s = serve().await;
    let admin = s.access(ADMIN).await;
    let user = s.access(USER).await;
    let guest = s.access(GUEST).await;
    let guest_id = s.id_of(&guest).await;
    let grant = r#"{"permissions":["items:delete"]}"#;

    assert_no_token(
        &s.send_json(
            "PATCH",
            &format!("/users/{guest_id}"),
            None,
            "application/json",
            grant,
        )
        .await,
    );
    for not_admin in [USER, EDITOR] {
        let token = s.access(not_admin).await;
        assert_forbidden(
            &s.patch_user(&token, &guest_id, grant).await,
            "Role 'admin' required",
        );
    }

    for (body, status, expected) in [
        (
            r#"{"permissions":["items:fly"]}"#,
            422,
            error(
                "validation_failed",
                "permissions: unknown permission; known: items:read, items:write, items:delete, users:read",
            ),
        ),
        (
            r#"{"role":"king"}"#,
            422,
            error(
                "validation_failed",
                "role: unknown role; known: guest, user, editor, admin",
            ),
        ),
        (
            r#"{"disabled":"yes"}"#,
            422,
            error("validation_failed", "disabled: must be true or false"),
        ),
        (
            "{",
            400,
            error("invalid_request", "The request body is not valid JSON"),
        ),
    ] {
        let answer = s.patch_user(&admin, &guest_id, body).await;
        assert_eq!((answer.status, answer.body), (status, expected), "{body}");
    }
    let missing = s.patch_user(&admin, &json!(999999), grant).await;
    assert_eq!(
        (missing.status, missing.body),
        (404, error("not_found", "User not found"))
    );
    let bad_id = s.patch_user(&admin, &json!("abc"), grant).await;
    assert_eq!(bad_id.status, 422);

    // {} changes nothing.
    let unchanged = s.patch_user(&admin, &guest_id, "{}").await;
    assert_eq!(unchanged.status, 200);
    assert_eq!(unchanged.body["role"], json!("guest"));
    assert_eq!(unchanged.body["permissions"], json!([]));

    // The grant applies to the guest's very next request, with the same token.
    let item = s.post_item(&user, "Buy milk").await;
    let path = format!("/items/{}", item["id"]);
    let granted = s.patch_user(&admin, &guest_id, grant).await;
    assert_eq!(granted.status, 200);
    assert_eq!(granted.body["id"], guest_id);
    assert_eq!(granted.body["permissions"], json!(["items:delete"]));
    let me = s.call("GET", "/users/me", Some(&guest)).await.body;
    assert_eq!(me["effective_permissions"], json!(["items:delete"]));
    assert_eq!(s.call("DELETE", &path, Some(&guest)).await.status, 204);

    // [] revokes every grant.
    let revoked = s
        .patch_user(&admin, &guest_id, r#"{"permissions":[]}"#)
        .await;
    assert_eq!(revoked.body["permissions"], json!([]));
    let item = s.post_item(&user, "Walk the dog").await;
    assert_forbidden(
        &s.call("DELETE", &format!("/items/{}", item["id"]), Some(&guest))
            .await,
        "Permission 'items:delete' required",
    );

    // A new role brings its permissions.
    let promoted = s
        .patch_user(&admin, &guest_id, r#"{"role":"editor"}"#)
        .await;
    assert_eq!(promoted.body["role"], json!("editor"));
    assert_eq!(
        s.call("DELETE", &format!("/items/{}", item["id"]), Some(&guest))
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn a_disabled_user_is_refused_everywhere() {
    let s = serve().await;
    let admin = s.access(ADMIN).await;
    let user = s.access(USER).await;
    let user_id = s.id_of(&user).await;

    let disabled = s.patch_user(&admin, &user_id, r#"{"disabled":true}"#).await;
    assert_eq!(
        (disabled.status, &disabled.body["disabled"]),
        (200, &json!(true))
    );
    for (method, path) in [("GET", "/users/me"), ("GET", "/users/me/items")] {
        assert_forbidden(
            &s.call(method, path, Some(&user)).await,
            "The user is disabled",
        );
    }
    let login = s.login(USER).await;
    assert_eq!(
        (login.status, login.body),
        (
            400,
            error("invalid_grant", "Incorrect username or password")
        )
    );

    s.patch_user(&admin, &user_id, r#"{"disabled":false}"#)
        .await;
    assert_eq!(s.call("GET", "/users/me", Some(&user)).await.status, 200);
}

#[tokio::test]
async fn listing_users_needs_users_read() {
    let s = serve().await;
    assert_no_token(&s.call("GET", "/users", None).await);
    for user in [GUEST, USER, EDITOR] {
        let token = s.access(user).await;
        assert_forbidden(
            &s.call("GET", "/users", Some(&token)).await,
            "Permission 'users:read' required",
        );
    }
    let admin = s.access(ADMIN).await;
    let answer = s.call("GET", "/users", Some(&admin)).await;
    assert_eq!(answer.status, 200);
    let names: Vec<&Value> = answer
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["username"])
        .collect();
    assert_eq!(
        names,
        [
            &json!("guest"),
            &json!("user"),
            &json!("editor"),
            &json!("admin")
        ]
    );

    // users:read can be granted, unlike the admin role that PATCH needs.
    let editor = s.access(EDITOR).await;
    let editor_id = s.id_of(&editor).await;
    let granted = s
        .patch_user(&admin, &editor_id, r#"{"permissions":["users:read"]}"#)
        .await;
    assert_eq!(granted.status, 200);
    assert_eq!(s.call("GET", "/users", Some(&editor)).await.status, 200);
    assert_forbidden(
        &s.patch_user(&editor, &editor_id, r#"{"role":"admin"}"#)
            .await,
        "Role 'admin' required",
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let s = serve().await;
    let answer = s.call("GET", "/nope", None).await;
    assert_eq!(
        (answer.status, answer.body),
        (404, error("not_found", "No route matches this path"))
    );
    let answer = s.call("PUT", "/items/1", None).await;
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
