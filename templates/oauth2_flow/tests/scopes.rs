//! What scopes do in this service (RFC 6749 section 3.3, RFC 9068): a
//! token carries the scopes granted at /token, a route names the scope it
//! needs, and a role or permission route also needs its scope, so a token
//! asked for less cannot do more. Over real HTTP on loopback, on SQLite and
//! (when TEST_DATABASE_URL is set) PostgreSQL.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{
    ADMIN, ADMIN_PASSWORD, assert_challenge, assert_forbidden, error, password_of, servers,
};
use serde_json::json;

/// The document lists every scope, and the scope each guarded route needs.
#[tokio::test]
async fn the_document_lists_the_scopes() {
    for s in servers("the_document_lists_the_scopes").await {
        let doc = s.get("/openapi.json", None).await.body;
        let password_flow = &doc["components"]["securitySchemes"]["oauth2"]["flows"]["password"];
        let mut scopes: Vec<&str> = password_flow["scopes"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        scopes.sort_unstable();
        assert_eq!(scopes, ["admin", "items", "items:write", "me"]);
        assert_eq!(
            doc["paths"]["/users/me/items"]["get"]["security"],
            json!([{"oauth2": ["items"]}])
        );
        assert_eq!(
            doc["paths"]["/items"]["post"]["security"],
            json!([{"oauth2": ["items:write"]}])
        );
    }
}

/// A token carries what was granted: every scope the user holds when none
/// is asked for, else the scopes asked for if the user holds them all. An
/// unknown scope is `invalid_scope` at once, an unheld one once the
/// password checks out; a refresh keeps the grant.
#[tokio::test]
async fn tokens_carry_the_granted_scopes() {
    for s in servers("tokens_carry_the_granted_scopes").await {
        s.signup("dana").await;
        let all = s.login("dana", &password_of("dana"), None).await;
        assert_eq!(all.status, 200, "{}: {all:?}", s.backend);
        assert_eq!(all.body["scope"], json!("me items items:write"));

        // Swagger UI's Authorize dialog sends the scopes ticked.
        let swagger = s.form("/token", &format!("grant_type=password&username=dana&password={}&scope=me&client_id=x&client_secret=", password_of("dana"))).await;
        assert_eq!(
            (swagger.status, &swagger.body["scope"]),
            (200, &json!("me"))
        );

        let unknown = s
            .form(
                "/token",
                "grant_type=password&username=dana&password=x&scope=root",
            )
            .await;
        assert_eq!((unknown.status, unknown.error().0), (400, "invalid_scope"));
        let unheld = s
            .login("dana", &password_of("dana"), Some("me admin"))
            .await;
        assert_eq!((unheld.status, unheld.error().0), (400, "invalid_scope"));

        let first = s
            .login("dana", &password_of("dana"), Some("me items"))
            .await
            .body;
        let second = s.refresh(&first).await;
        assert_eq!(second.body["scope"], json!("me items"), "{second:?}");

        // Only the admin role holds the `admin` scope.
        assert_eq!(
            s.login(ADMIN, ADMIN_PASSWORD, Some("admin")).await.body["scope"],
            json!("admin")
        );
    }
}

/// A token without the scope a route names is refused: 403
/// `insufficient_scope`, the scope named in the challenge (RFC 6750
/// section 3.1).
#[tokio::test]
async fn a_token_without_the_route_scope_is_refused() {
    for s in servers("a_token_without_the_route_scope_is_refused").await {
        s.signup("erin").await;
        let me_only = s.token("erin", &password_of("erin"), Some("me")).await;
        let me_only = me_only.as_str();
        assert_eq!(
            s.get("/users/me", Some(me_only)).await.body["username"],
            json!("erin"),
            "{}",
            s.backend
        );
        let no_items = s.get("/users/me/items", Some(me_only)).await;
        assert_challenge(
            &no_items,
            403,
            r#"Bearer error="insufficient_scope", scope="items", error_description="The access token lacks the scope 'items'""#,
        );
        assert_eq!(no_items.error().0, "insufficient_scope");
        let no_write = s
            .json("POST", "/items", Some(me_only), json!({"title": "x"}))
            .await;
        assert_eq!(no_write.status, 403);
        assert!(
            no_write
                .header("www-authenticate")
                .unwrap()
                .contains(r#"scope="items:write""#)
        );
    }
}

#[tokio::test]
async fn change_password_needs_the_me_scope() {
    for s in servers("change_password_needs_the_me_scope").await {
        s.signup("ivy").await;
        let items_only = s.token("ivy", &password_of("ivy"), Some("items")).await;
        let body =
            json!({"current_password": password_of("ivy"), "new_password": "a new password"});
        let refused = s
            .json(
                "POST",
                "/users/me/password",
                Some(&items_only),
                body.clone(),
            )
            .await;
        assert_eq!(
            (refused.status, refused.error().0),
            (403, "insufficient_scope"),
            "{refused:?}"
        );
        assert!(
            refused
                .header("www-authenticate")
                .unwrap()
                .contains(r#"scope="me""#)
        );
        let me = s.token("ivy", &password_of("ivy"), Some("me")).await;
        assert_eq!(
            s.json("POST", "/users/me/password", Some(&me), body)
                .await
                .status,
            204
        );
    }
}

/// Least privilege: a role or permission route also needs its scope, so an
/// admin's token asked for less cannot administer. The role or permission
/// is checked first (403 `forbidden`), then the scope (403
/// `insufficient_scope`, named in the challenge).
#[tokio::test]
async fn role_and_permission_routes_need_their_scope() {
    for s in servers("role_and_permission_routes_need_their_scope").await {
        let kim = s.signup("kim").await;
        let admin_me_only = s.token(ADMIN, ADMIN_PASSWORD, Some("me")).await;
        let lacks_admin = r#"Bearer error="insufficient_scope", scope="admin", error_description="The access token lacks the scope 'admin'""#;
        let kim_path = format!("/users/{kim}");
        for reply in [
            s.get("/users", Some(&admin_me_only)).await,
            s.json(
                "PATCH",
                &kim_path,
                Some(&admin_me_only),
                json!({"role": "guest"}),
            )
            .await,
            s.delete(&kim_path, Some(&admin_me_only)).await,
        ] {
            assert_challenge(&reply, 403, lacks_admin);
            assert_eq!(
                reply.body,
                error(
                    "insufficient_scope",
                    "The access token lacks the scope 'admin'"
                ),
                "{}",
                s.backend
            );
        }
        // Nothing happened to kim.
        let admin = s.admin_token().await;
        let users = s.get("/users", Some(&admin)).await;
        assert_eq!(users.status, 200, "{users:?}");
        let kim_now = users
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == json!(kim))
            .unwrap()
            .clone();
        assert_eq!(kim_now["role"], json!("user"));
        // Asked for `admin` (and nothing else), the admin token administers.
        let admin_only = s.token(ADMIN, ADMIN_PASSWORD, Some("admin")).await;
        assert_eq!(s.get("/users", Some(&admin_only)).await.status, 200);

        // A user is refused by role first: `forbidden`, no challenge.
        let kim_token = s.token("kim", &password_of("kim"), None).await;
        let refused = s.get("/users", Some(&kim_token)).await;
        assert_forbidden(&refused, "Role 'admin' required");

        // DELETE /items/{id}: permission `items:delete`, then scope `items:write`.
        let item = s
            .json("POST", "/items", Some(&kim_token), json!({"title": "kept"}))
            .await
            .body["id"]
            .as_i64()
            .unwrap();
        let item_path = format!("/items/{item}");
        let admin_without_write = s.token(ADMIN, ADMIN_PASSWORD, Some("me admin")).await;
        assert_challenge(
            &s.delete(&item_path, Some(&admin_without_write)).await,
            403,
            r#"Bearer error="insufficient_scope", scope="items:write", error_description="The access token lacks the scope 'items:write'""#,
        );
        let kim_reply = s.delete(&item_path, Some(&kim_token)).await;
        assert_eq!(
            kim_reply.body,
            error("forbidden", "Permission 'items:delete' required")
        );
        let writer = s.token(ADMIN, ADMIN_PASSWORD, Some("items:write")).await;
        assert_eq!(s.delete(&item_path, Some(&writer)).await.status, 204);

        // The document says the same.
        let doc = s.get("/openapi.json", None).await.body;
        for (method, path, scopes) in [
            ("get", "/users", json!(["admin"])),
            ("patch", "/users/{id}", json!(["admin"])),
            ("delete", "/users/{id}", json!(["admin"])),
            ("delete", "/items/{id}", json!(["items:write"])),
        ] {
            assert_eq!(
                doc["paths"][path][method]["security"],
                json!([{ "oauth2": scopes }]),
                "{method} {path}"
            );
        }
    }
}
