//! This service's tokens carry no scopes (`SCOPES` in src/lib.rs): a
//! `scope` asked for at /token is ignored, any valid token reaches the
//! routes the oauth2 template guards with a scope, and roles and
//! permissions alone decide. Over real HTTP on loopback, on SQLite and
//! (when TEST_DATABASE_URL is set) PostgreSQL.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{ADMIN, ADMIN_PASSWORD, assert_forbidden, password_of, servers};
use serde_json::json;

/// The document lists no scopes, and no guarded route asks for one.
#[tokio::test]
async fn the_document_lists_no_scopes() {
    for s in servers("the_document_lists_no_scopes").await {
        let doc = s.get("/openapi.json", None).await.body;
        let password_flow = &doc["components"]["securitySchemes"]["oauth2"]["flows"]["password"];
        assert_eq!(
            password_flow["scopes"],
            json!({}),
            "this service has no scopes"
        );
        assert_eq!(
            doc["paths"]["/users/me/items"]["get"]["security"],
            json!([{"oauth2": []}])
        );
        assert_eq!(
            doc["paths"]["/items"]["post"]["security"],
            json!([{"oauth2": []}])
        );
    }
}

/// A token answer has no `scope` field, whatever was asked for.
#[tokio::test]
async fn a_scope_asked_for_is_ignored() {
    for s in servers("a_scope_asked_for_is_ignored").await {
        s.signup("dana").await;
        let ok = s.login("dana", &password_of("dana"), None).await;
        assert_eq!(ok.status, 200, "{}: {ok:?}", s.backend);
        assert!(
            ok.body.get("scope").is_none(),
            "no scopes, no `scope` field: {ok:?}"
        );

        // Swagger UI's Authorize dialog may send `scope`: ignored.
        let swagger = s.form("/token", &format!("grant_type=password&username=dana&password={}&scope=me&client_id=x&client_secret=", password_of("dana"))).await;
        assert_eq!(
            swagger.status, 200,
            "the `scope` field is ignored: {swagger:?}"
        );
        let ignored = s
            .login("dana", &password_of("dana"), Some("root admin"))
            .await;
        assert_eq!(ignored.status, 200, "any `scope` is ignored: {ignored:?}");
        assert!(ignored.body.get("scope").is_none());

        let first = s
            .login("dana", &password_of("dana"), Some("me items"))
            .await
            .body;
        let second = s.refresh(&first).await;
        assert_eq!(second.status, 200, "{second:?}");
        assert!(second.body.get("scope").is_none());

        assert!(
            s.login(ADMIN, ADMIN_PASSWORD, None)
                .await
                .body
                .get("scope")
                .is_none()
        );
    }
}

/// Any valid token reaches the routes the oauth2 template guards with a
/// scope.
#[tokio::test]
async fn any_valid_token_reaches_the_item_routes() {
    for s in servers("any_valid_token_reaches_the_item_routes").await {
        s.signup("erin").await;
        let token = s.token("erin", &password_of("erin"), Some("me")).await;
        let token = token.as_str();
        // No scopes: any valid token reaches the routes the oauth2 template guards with one.
        assert_eq!(s.get("/users/me/items", Some(token)).await.status, 200);
        assert_eq!(
            s.json("POST", "/items", Some(token), json!({"title": "x"}))
                .await
                .status,
            201
        );
    }
}

/// Without scopes (this service) the role or permission alone decides:
/// a `scope` asked at /token changes nothing, and the document lists no
/// scopes for the admin routes.
#[tokio::test]
async fn roles_and_permissions_alone_decide_without_scopes() {
    for s in servers("roles_and_permissions_alone_decide_without_scopes").await {
        let kim = s.signup("kim").await;
        // A `scope` is ignored: this token still administers.
        let admin = s.token(ADMIN, ADMIN_PASSWORD, Some("me")).await;
        assert_eq!(
            s.get("/users", Some(&admin)).await.status,
            200,
            "{}",
            s.backend
        );
        let kim_path = format!("/users/{kim}");
        let patched = s
            .json(
                "PATCH",
                &kim_path,
                Some(&admin),
                json!({"permissions": ["items:delete"]}),
            )
            .await;
        assert_eq!(patched.status, 200, "{patched:?}");
        let kim_token = s.token("kim", &password_of("kim"), None).await;
        let refused = s.get("/users", Some(&kim_token)).await;
        assert_forbidden(&refused, "Role 'admin' required");
        // kim's grant alone lets her delete any item.
        let item = s
            .json("POST", "/items", Some(&admin), json!({"title": "admin's"}))
            .await
            .body["id"]
            .as_i64()
            .unwrap();
        assert_eq!(
            s.delete(&format!("/items/{item}"), Some(&kim_token))
                .await
                .status,
            204
        );
        assert_eq!(s.delete(&kim_path, Some(&admin)).await.status, 204);

        let doc = s.get("/openapi.json", None).await.body;
        for (method, path) in [
            ("get", "/users"),
            ("patch", "/users/{id}"),
            ("delete", "/users/{id}"),
            ("delete", "/items/{id}"),
        ] {
            assert_eq!(
                doc["paths"][path][method]["security"],
                json!([{ "oauth2": [] }]),
                "{method} {path}"
            );
        }
    }
}
