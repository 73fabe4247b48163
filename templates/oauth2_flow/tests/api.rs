//! The HTTP contract, over real HTTP on loopback, on SQLite and (when
//! TEST_DATABASE_URL is set) PostgreSQL.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use auth_kit::testing::{TestDatabase, contract, openapi};
use common::{
    ADMIN, ADMIN_PASSWORD, TestServer, assert_challenge, error, password_of, servers, servers_with,
};
use serde_json::{Value, json};

#[tokio::test]
async fn public_routes_and_documentation() {
    for s in servers("public_routes_and_documentation").await {
        contract::assert_meta_routes(&s).await;
        let jwks = s.get("/.well-known/jwks.json", None).await;
        assert_eq!(
            (jwks.status, jwks.error().0),
            (404, "not_found"),
            "an HMAC service publishes no keys"
        );
        assert_eq!(
            s.send("PUT", "/health", None, None, Vec::new())
                .await
                .error()
                .0,
            "method_not_allowed"
        );

        let doc = s.get("/openapi.json", None).await.body;
        let public = [
            "/",
            "/health",
            "/.well-known/jwks.json",
            "/auth/signup",
            "/token",
            "/auth/forgot-password",
            "/auth/reset-password",
            "/auth/request-verify",
            "/auth/verify",
        ];
        for (method, path, operation) in openapi::operations(&doc) {
            let documented = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("oauth2").is_some()));
            assert_eq!(
                documented,
                !public.contains(&path),
                "{method} {path}: security requirement"
            );
        }
    }
}

#[tokio::test]
async fn signup() {
    for s in servers("signup").await {
        let body = json!({"username": "Ann", "password": "correct horse", "email": "ann@example.com", "full_name": "Ann", "role": "admin"});
        let created = s.json("POST", "/auth/signup", None, body).await;
        assert_eq!(created.status, 201, "{}: {created:?}", s.backend);
        let user = created.body.as_object().unwrap();
        let mut keys: Vec<&str> = user.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "created_at",
                "disabled",
                "email",
                "email_verified",
                "full_name",
                "id",
                "role",
                "username"
            ]
        );
        assert_eq!(
            user["role"],
            json!("user"),
            "a signup never chooses its role"
        );

        let taken = s
            .json(
                "POST",
                "/auth/signup",
                None,
                json!({"username": "aNN", "password": "long enough"}),
            )
            .await;
        assert_eq!((taken.status, taken.error().0), (409, "username_taken"));
        let email = s
            .json(
                "POST",
                "/auth/signup",
                None,
                json!({"username": "bob", "password": "long enough", "email": "ANN@example.com"}),
            )
            .await;
        assert_eq!((email.status, email.error().0), (409, "email_taken"));

        for (body, field) in [
            (
                json!({"username": "ab", "password": "long enough"}),
                "username: ",
            ),
            (
                json!({"username": "bad name", "password": "long enough"}),
                "username: ",
            ),
            (
                json!({"username": "carl", "password": "short"}),
                "password: ",
            ),
            (
                json!({"username": "carl", "password": "x".repeat(1025)}),
                "password: ",
            ),
            (
                json!({"username": "carl", "password": "long enough", "email": "nope"}),
                "email: ",
            ),
            (json!({"password": "long enough"}), "username: "),
            (
                json!({"username": 5, "password": "long enough"}),
                "username: ",
            ),
        ] {
            let reply = s.json("POST", "/auth/signup", None, body).await;
            assert_eq!(
                (reply.status, reply.error().0),
                (422, "validation_failed"),
                "{reply:?}"
            );
            assert!(reply.error().1.starts_with(field), "{reply:?}");
        }
        contract::assert_json_bodies_refused(&s, "POST", "/auth/signup", None).await;
    }
}

#[tokio::test]
async fn token_endpoint() {
    for s in servers("token_endpoint").await {
        s.signup("dana").await;
        let ok = s.login("dana", &password_of("dana"), None).await;
        assert_eq!(ok.status, 200, "{}: {ok:?}", s.backend);
        assert_eq!(
            (ok.header("cache-control"), ok.header("pragma")),
            (Some("no-store"), Some("no-cache"))
        );
        assert_eq!(ok.body["token_type"], json!("bearer"));
        assert_eq!(ok.body["expires_in"], json!(1800));
        assert_eq!(ok.body["refresh_token"].as_str().unwrap().len(), 43);

        // Swagger UI's Authorize dialog sends client_id/client_secret: ignored.
        let swagger = s.form("/token", &format!("grant_type=password&username=dana&password={}&scope=me&client_id=x&client_secret=", password_of("dana"))).await;
        assert_eq!(swagger.status, 200, "{swagger:?}");

        for (form, code) in [
            ("username=dana&password=x", "invalid_request"),
            ("grant_type=password&username=dana", "invalid_request"),
            (
                "grant_type=password&username=dana&username=eve&password=x",
                "invalid_request",
            ),
            ("grant_type=client_credentials", "unsupported_grant_type"),
        ] {
            let reply = s.form("/token", form).await;
            assert_eq!(
                (reply.status, reply.error().0),
                (400, code),
                "{form}: {reply:?}"
            );
            assert_eq!(reply.header("cache-control"), Some("no-store"));
        }
        let json_body = s
            .json(
                "POST",
                "/token",
                None,
                json!({"grant_type": "password", "username": "dana", "password": "x"}),
            )
            .await;
        assert_eq!(
            (json_body.status, json_body.error().0),
            (400, "invalid_request")
        );

        // Unknown user and wrong password: the same answer.
        let wrong = s.login("dana", "wrong password", None).await;
        let unknown = s.login("nobody-here", "wrong password", None).await;
        assert_eq!(
            wrong.body,
            error("invalid_grant", "Incorrect username or password")
        );
        assert_eq!(unknown.body, wrong.body);

        // Five failures lock the username; even the right password waits.
        for _ in 0..4 {
            s.login("dana", "wrong password", None).await;
        }
        let locked = s.login("dana", &password_of("dana"), None).await;
        contract::assert_too_many_requests(&locked, 1..=300);
    }
}

#[tokio::test]
async fn bearer_failures() {
    for s in servers("bearer_failures").await {
        s.signup("erin").await;
        let missing = s.get("/users/me", None).await;
        assert_challenge(&missing, 401, "Bearer");
        assert_eq!(
            missing.body,
            error("unauthorized", "Authentication required")
        );
        let garbage = s.get("/users/me", Some("not.a.token")).await;
        assert_challenge(
            &garbage,
            401,
            r#"Bearer error="invalid_token", error_description="The access token is malformed""#,
        );
        assert_eq!(garbage.error().0, "invalid_token");

        let pair = s.login("erin", &password_of("erin"), None).await.body;
        let token = pair["access_token"].as_str().unwrap();
        assert_eq!(
            s.get("/users/me", Some(token)).await.body["username"],
            json!("erin"),
            "{}",
            s.backend
        );
        // A refresh token is not a bearer token.
        let refresh = s
            .get("/users/me", Some(pair["refresh_token"].as_str().unwrap()))
            .await;
        assert_eq!((refresh.status, refresh.error().0), (401, "invalid_token"));
    }
}

#[tokio::test]
async fn refresh_rotation_reuse_and_logout() {
    for s in servers("refresh_rotation_reuse_and_logout").await {
        s.signup("finn").await;
        let first = s
            .login("finn", &password_of("finn"), Some("me items"))
            .await
            .body;
        let other = s.login("finn", &password_of("finn"), None).await.body;
        let refresh = |token: &Value| {
            format!(
                "grant_type=refresh_token&refresh_token={}",
                token.as_str().unwrap()
            )
        };

        let second = s.form("/token", &refresh(&first["refresh_token"])).await;
        assert_eq!(second.status, 200, "{}: {second:?}", s.backend);
        assert_eq!(second.header("cache-control"), Some("no-store"));
        let second = second.body;
        assert_eq!(
            s.get("/users/me", second["access_token"].as_str())
                .await
                .status,
            200
        );

        // Presented again at once (a second tab, a retry): the same successor
        // and a fresh access token of the same login.
        let again = s.form("/token", &refresh(&first["refresh_token"])).await;
        assert_eq!(again.status, 200, "{}: {again:?}", s.backend);
        assert_eq!(again.body["refresh_token"], second["refresh_token"]);
        assert_ne!(again.body["access_token"], second["access_token"]);

        // Once the successor is used, reusing the spent token revokes the
        // whole login, at once.
        let third = s.form("/token", &refresh(&second["refresh_token"])).await;
        assert_eq!(third.status, 200, "{third:?}");
        let third = third.body;
        let reuse = s.form("/token", &refresh(&first["refresh_token"])).await;
        assert_eq!(
            reuse.body,
            error("invalid_grant", "The refresh token is invalid")
        );
        assert_eq!(
            s.form("/token", &refresh(&third["refresh_token"]))
                .await
                .error()
                .0,
            "invalid_grant"
        );
        let revoked = s.get("/users/me", third["access_token"].as_str()).await;
        assert_challenge(
            &revoked,
            401,
            r#"Bearer error="invalid_token", error_description="The access token has been revoked""#,
        );
        // The other login is untouched.
        assert_eq!(
            s.get("/users/me", other["access_token"].as_str())
                .await
                .status,
            200
        );

        // Logout revokes that login: access and refresh tokens.
        assert_eq!(
            s.send("POST", "/auth/logout", None, None, Vec::new())
                .await
                .status,
            401
        );
        let logout = s
            .send(
                "POST",
                "/auth/logout",
                other["access_token"].as_str(),
                None,
                Vec::new(),
            )
            .await;
        assert_eq!(logout.status, 204);
        assert_eq!(
            s.get("/users/me", other["access_token"].as_str())
                .await
                .status,
            401
        );
        assert_eq!(
            s.form("/token", &refresh(&other["refresh_token"]))
                .await
                .error()
                .0,
            "invalid_grant"
        );
    }
}

/// Twenty clients refreshing one token at the same moment all stay logged
/// in, with one successor between them.
#[tokio::test]
async fn concurrent_refreshes_share_one_successor() {
    for s in servers("concurrent_refreshes_share_one_successor").await {
        s.signup("tabs").await;
        let pair = s.login("tabs", &password_of("tabs"), None).await.body;
        let form = format!(
            "grant_type=refresh_token&refresh_token={}",
            pair["refresh_token"].as_str().unwrap()
        );
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (url, form) = (format!("{}/token", s.base), form.clone());
                tokio::spawn(async move {
                    let reply = reqwest::Client::new()
                        .post(url)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(form)
                        .send()
                        .await
                        .unwrap();
                    let status = reply.status().as_u16();
                    (status, reply.json::<Value>().await.unwrap())
                })
            })
            .collect();
        let mut successors = std::collections::BTreeSet::new();
        for task in tasks {
            let (status, body) = task.await.unwrap();
            assert_eq!(status, 200, "{}: {body}", s.backend);
            successors.insert(body["refresh_token"].as_str().unwrap().to_owned());
            assert_eq!(
                s.get("/users/me", body["access_token"].as_str())
                    .await
                    .status,
                200
            );
        }
        assert_eq!(successors.len(), 1, "{}: {successors:?}", s.backend);
    }
}

#[tokio::test]
async fn items_and_permissions() {
    for s in servers("items_and_permissions").await {
        let gina = s.signup("gina").await;
        s.signup("hank").await;
        let token = s.token("gina", &password_of("gina"), None).await;
        let hank = s.token("hank", &password_of("hank"), None).await;
        let created = s
            .json(
                "POST",
                "/items",
                Some(&token),
                json!({"title": "First", "description": "one"}),
            )
            .await;
        assert_eq!(created.status, 201, "{}: {created:?}", s.backend);
        assert_eq!(created.body["owner_id"], json!(gina));
        assert_eq!(created.body["title"], json!("First"));
        let item = created.body["id"].as_i64().unwrap();
        s.json("POST", "/items", Some(&hank), json!({"title": "Hank's"}))
            .await;
        let mine = s.get("/users/me/items", Some(&token)).await.body;
        assert_eq!(mine.as_array().unwrap().len(), 1, "only the caller's items");
        let empty_title = s
            .json("POST", "/items", Some(&token), json!({"title": ""}))
            .await;
        assert_eq!(
            (empty_title.status, empty_title.error().1),
            (422, "title: must not be empty")
        );

        // 403 before 404: without the permission, existence is not revealed.
        let forbidden = error("forbidden", "Permission 'items:delete' required");
        assert_eq!(
            s.delete(&format!("/items/{item}"), Some(&token)).await.body,
            forbidden
        );
        assert_eq!(
            s.delete("/items/999999", Some(&token)).await.body,
            forbidden
        );
        let admin = s.admin_token().await;
        let grant = s
            .json(
                "PATCH",
                &format!("/users/{gina}"),
                Some(&admin),
                json!({"permissions": ["items:delete"]}),
            )
            .await;
        assert_eq!(grant.body["permissions"], json!(["items:delete"]));
        assert_eq!(
            s.delete(&format!("/items/{item}"), Some(&token))
                .await
                .status,
            204,
            "a per-user grant"
        );
        let gone = s.delete(&format!("/items/{item}"), Some(&admin)).await;
        assert_eq!(gone.body, error("not_found", "Item not found"));
        let bad_id = s.delete("/items/abc", Some(&admin)).await;
        assert_eq!(
            (bad_id.status, bad_id.error().0),
            (422, "validation_failed")
        );
    }
}

#[tokio::test]
async fn administration() {
    for s in servers("administration").await {
        let ivy = s.signup("ivy").await;
        let token = s.token("ivy", &password_of("ivy"), None).await;
        let admin = s.admin_token().await;
        assert_eq!(
            s.get("/users", Some(&token)).await.body,
            error("forbidden", "Role 'admin' required")
        );
        let users = s.get("/users", Some(&admin)).await.body;
        let names: Vec<&str> = users
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap())
            .collect();
        assert_eq!(names, [ADMIN, "ivy"], "{}", s.backend);
        assert!(users[1]["permissions"].is_array());
        assert!(users[1].get("password_hash").is_none());

        let path = format!("/users/{ivy}");
        let noop = s.json("PATCH", &path, Some(&admin), json!({})).await;
        assert_eq!((noop.status, &noop.body["role"]), (200, &json!("user")));
        for (body, field) in [
            (json!({"role": "root"}), "role: "),
            (json!({"permissions": ["fly"]}), "permissions: "),
            (json!({"disabled": "yes"}), "disabled: "),
        ] {
            let reply = s.json("PATCH", &path, Some(&admin), body).await;
            assert_eq!(reply.status, 422, "{reply:?}");
            assert!(reply.error().1.starts_with(field), "{reply:?}");
        }
        assert_eq!(
            s.json("PATCH", "/users/999999", Some(&admin), json!({}))
                .await
                .status,
            404
        );
        assert_eq!(
            s.json("PATCH", &path, Some(&token), json!({"role": "admin"}))
                .await
                .status,
            403
        );

        // Disabled: 403 on resources, invalid_grant at /token; and back.
        s.json("PATCH", &path, Some(&admin), json!({"disabled": true}))
            .await;
        assert_eq!(
            s.get("/users/me", Some(&token)).await.body,
            error("forbidden", "The user is disabled")
        );
        assert_eq!(
            s.login("ivy", &password_of("ivy"), None).await.error().0,
            "invalid_grant"
        );
        s.json("PATCH", &path, Some(&admin), json!({"disabled": false}))
            .await;
        assert_eq!(s.get("/users/me", Some(&token)).await.status, 200);

        // Deleting a user takes their items and logins; their token stops working.
        s.json("POST", "/items", Some(&token), json!({"title": "doomed"}))
            .await;
        assert_eq!(s.delete(&path, Some(&token)).await.status, 403);
        assert_eq!(s.delete(&path, Some(&admin)).await.status, 204);
        let after = s.get("/users/me", Some(&token)).await;
        assert_eq!(
            after.error(),
            ("invalid_token", "The access token's user does not exist")
        );
        assert_eq!(s.delete(&path, Some(&admin)).await.status, 404);
    }
}

#[tokio::test]
async fn the_last_admin_stays() {
    for s in servers("the_last_admin_stays").await {
        let doc = s.get("/openapi.json", None).await.body;
        for method in ["patch", "delete"] {
            assert!(
                doc["paths"]["/users/{id}"][method]["responses"]
                    .get("409")
                    .is_some(),
                "{method} on a user documents 409 last_admin"
            );
        }
        let admin = s.admin_token().await;
        let root = s.get("/users/me", Some(&admin)).await.body["id"]
            .as_i64()
            .unwrap();
        let root_path = format!("/users/{root}");
        let last = error(
            "last_admin",
            "The last enabled admin cannot be demoted, disabled or deleted; make another user an admin first",
        );
        for body in [json!({"role": "user"}), json!({"disabled": true})] {
            let reply = s.json("PATCH", &root_path, Some(&admin), body).await;
            assert_eq!((reply.status, &reply.body), (409, &last), "{}", s.backend);
        }
        let reply = s.delete(&root_path, Some(&admin)).await;
        assert_eq!((reply.status, &reply.body), (409, &last));
        assert_eq!(s.get("/users", Some(&admin)).await.status, 200);

        // With a second admin, the first may step down; the second is then the last.
        let kim = s.signup("kim").await;
        let kim_path = format!("/users/{kim}");
        let promoted = s
            .json("PATCH", &kim_path, Some(&admin), json!({"role": "admin"}))
            .await;
        assert_eq!(promoted.status, 200, "{promoted:?}");
        let stepped_down = s
            .json("PATCH", &root_path, Some(&admin), json!({"role": "user"}))
            .await;
        assert_eq!(
            (stepped_down.status, &stepped_down.body["role"]),
            (200, &json!("user"))
        );
        let kim_token = s.token("kim", &password_of("kim"), None).await;
        let reply = s
            .json(
                "PATCH",
                &kim_path,
                Some(&kim_token),
                json!({"disabled": true}),
            )
            .await;
        assert_eq!((reply.status, &reply.body), (409, &last));
        assert_eq!(s.delete(&root_path, Some(&kim_token)).await.status, 204);
    }
}

/// Behind a reverse proxy (TRUSTED_PROXIES): failed logins and signups are
/// counted per forwarded client, so one client's failures lock neither the
/// proxy's address nor anyone else.
#[tokio::test]
async fn behind_a_proxy_limits_follow_the_forwarded_client() {
    let settings = [
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("LOGIN_MAX_FAILURES_PER_IP", "3"),
        ("SIGNUP_MAX_PER_IP", "2"),
    ];
    for db in TestDatabase::all("behind_a_proxy").await {
        let s = TestServer::start_with(db, &settings).await;
        let token = async |client: &str, user: &str, password: &str| {
            let form = format!("grant_type=password&username={user}&password={password}");
            s.form_forwarded(client, "/token", &form).await
        };
        for n in 0..3 {
            let r = token("203.0.113.5", &format!("guess{n}"), "wrong").await;
            assert_eq!(r.status, 400, "{}: {r:?}", s.backend);
        }
        let r = token("203.0.113.5", ADMIN, ADMIN_PASSWORD).await;
        assert_eq!(r.status, 429, "{}: {r:?}", s.backend);
        let r = token("203.0.113.6", ADMIN, ADMIN_PASSWORD).await;
        assert_eq!(r.status, 200, "{}: {r:?}", s.backend);

        let signup = |client: &'static str, name: &str| {
            let body = json!({"username": name, "password": password_of(name)});
            s.json_forwarded(client, "POST", "/auth/signup", None, body)
        };
        assert_eq!(signup("203.0.113.7", "kim").await.status, 201);
        assert_eq!(signup("203.0.113.7", "KIM").await.status, 409);
        let r = signup("203.0.113.7", "lou").await;
        contract::assert_too_many_requests(&r, 3590..=3600);
        assert_eq!(signup("203.0.113.8", "lou").await.status, 201);
    }
}

/// Lists take `limit` (1 to 200, default 50) and `after` (an id), stay
/// arrays ordered by id, and link the next page (RFC 8288).
#[tokio::test]
async fn lists_are_paged_with_a_link_to_the_next_page() {
    for s in servers("lists_are_paged_with_a_link_to_the_next_page").await {
        s.signup("lena").await;
        let token = s.token("lena", &password_of("lena"), None).await;
        let mut created = Vec::new();
        for n in 0..5 {
            let item = s
                .json(
                    "POST",
                    "/items",
                    Some(&token),
                    json!({"title": format!("item {n}")}),
                )
                .await;
            assert_eq!(item.status, 201, "{item:?}");
            created.push(item.body["id"].clone());
        }
        let pages = s.pages("/users/me/items?limit=2", Some(&token)).await;
        let seen: Vec<_> = pages
            .iter()
            .flat_map(|page| page.body.as_array().unwrap().iter())
            .map(|i| i["id"].clone())
            .collect();
        assert_eq!((seen, pages.len()), (created.clone(), 3), "{}", s.backend);
        let second = format!("/users/me/items?after={}&limit=2", created[1]);
        assert_eq!(pages[0].next_page(), Some(second.as_str()));
        // The default page holds everything here, and links nowhere.
        let all = s.get("/users/me/items", Some(&token)).await;
        assert_eq!(
            (all.body.as_array().unwrap().len(), all.header("link")),
            (5, None)
        );
        let after = s
            .get(
                &format!("/users/me/items?after={}", created[3]),
                Some(&token),
            )
            .await;
        assert_eq!(after.body.as_array().unwrap().len(), 1);

        contract::assert_page_parameters_enforced(&s, "/users/me/items", Some(&token)).await;

        let admin = s.admin_token().await;
        let users = s.get("/users?limit=1", Some(&admin)).await;
        assert_eq!(users.body.as_array().unwrap().len(), 1);
        let link = users.header("link").unwrap().to_owned();
        assert!(link.starts_with("</users?after="), "{link}");
    }
}

/// ITEMS_MAX_PER_USER caps a user's items: one more is 409
/// `quota_exceeded`, also when the creations race.
#[tokio::test]
async fn items_are_capped_per_user() {
    for s in servers_with("items_are_capped_per_user", &[("ITEMS_MAX_PER_USER", "3")]).await {
        s.signup("max").await;
        let token = s.token("max", &password_of("max"), None).await;
        let create = |n: u32| {
            s.json(
                "POST",
                "/items",
                Some(&token),
                json!({"title": format!("item {n}")}),
            )
        };
        // Eight creations in flight at once.
        let replies = tokio::join!(
            create(0),
            create(1),
            create(2),
            create(3),
            create(4),
            create(5),
            create(6),
            create(7)
        );
        let replies = [
            replies.0, replies.1, replies.2, replies.3, replies.4, replies.5, replies.6, replies.7,
        ];
        let created = replies.iter().filter(|r| r.status == 201).count();
        assert_eq!(created, 3, "{}: {replies:?}", s.backend);
        for refused in replies.iter().filter(|r| r.status != 201) {
            assert_eq!(refused.status, 409, "{refused:?}");
            assert_eq!(refused.error().0, "quota_exceeded");
        }
        // Another user has a quota of their own.
        s.signup("min").await;
        let other = s.token("min", &password_of("min"), None).await;
        let theirs = s
            .json("POST", "/items", Some(&other), json!({"title": "t"}))
            .await;
        assert_eq!(theirs.status, 201);
    }
}

/// JSON of the wrong shape is 422 `validation_failed` naming the field and
/// what it must be, in the contract's words: never a Rust type's name,
/// never the input echoed.
#[tokio::test]
async fn validation_messages_name_the_field_never_a_rust_type() {
    for s in servers("validation_messages_name_the_field_never_a_rust_type").await {
        let id = s.signup("vic").await;
        let admin = s.admin_token().await;
        let token = s.token("vic", &password_of("vic"), None).await;
        let user = format!("/users/{id}");
        let cases: [(&str, &str, Option<&str>, &str, &str); 14] = [
            (
                "POST",
                "/auth/signup",
                None,
                r#""vic""#,
                "body: must be a JSON object",
            ),
            (
                "POST",
                "/auth/signup",
                None,
                r#"["vic", "password"]"#,
                "body: must be a JSON object",
            ),
            (
                "POST",
                "/auth/signup",
                None,
                r#"{"username": 5, "password": "long enough"}"#,
                "username: must be a string",
            ),
            (
                "POST",
                "/auth/signup",
                None,
                r#"{"username": "vic2"}"#,
                "password: field required",
            ),
            (
                "POST",
                "/auth/signup",
                None,
                r#"{"username": "vic2", "password": "long enough", "email": ["a"]}"#,
                "email: must be a string",
            ),
            (
                "POST",
                "/auth/signup",
                None,
                r#"{"username": "vic2", "username": "vic3", "password": "long enough"}"#,
                "username: given more than once",
            ),
            (
                "POST",
                "/items",
                Some(&token),
                r#"{"title": 5}"#,
                "title: must be a string",
            ),
            (
                "POST",
                "/items",
                Some(&token),
                r#"{"title": "t", "description": {}}"#,
                "description: must be a string",
            ),
            (
                "POST",
                "/items",
                Some(&token),
                "17",
                "body: must be a JSON object",
            ),
            (
                "PATCH",
                &user,
                Some(&admin),
                r#"{"disabled": "yes"}"#,
                "disabled: must be true or false",
            ),
            (
                "PATCH",
                &user,
                Some(&admin),
                r#"{"permissions": "items:delete"}"#,
                "permissions: must be an array",
            ),
            (
                "PATCH",
                &user,
                Some(&admin),
                r#"{"permissions": [7]}"#,
                "permissions[0]: must be a string",
            ),
            (
                "PATCH",
                &user,
                Some(&admin),
                r#"{"role": "root"}"#,
                "role: unknown role; known: guest, user, admin",
            ),
            (
                "PATCH",
                &user,
                Some(&admin),
                r#"{"role": true}"#,
                "role: must be a string",
            ),
        ];
        for (method, path, token, body, expected) in cases {
            let reply = s
                .send(
                    method,
                    path,
                    token,
                    Some("application/json"),
                    body.as_bytes().to_vec(),
                )
                .await;
            assert_eq!(
                reply.body,
                error("validation_failed", expected),
                "{} {method} {path} {body}",
                s.backend
            );
            assert_eq!(reply.status, 422);
            for rust in [
                "struct", "Request", "Update", "NewItem", "u8", "i64", "Vec", "Option",
            ] {
                assert!(!reply.error().1.contains(rust), "{rust} in {reply:?}");
            }
        }
    }
}

/// /docs and /openapi.json forbid framing, sniffing and foreign content;
/// an unknown page under /docs is the contract's JSON 404.
#[tokio::test]
async fn documentation_pages_carry_security_headers() {
    for s in servers("documentation_pages_carry_security_headers").await {
        for path in ["/docs/", "/openapi.json", "/docs/swagger-initializer.js"] {
            let page = s.get(path, None).await;
            assert_eq!(page.status, 200, "{path}");
            let csp = page.header("content-security-policy").unwrap_or_default();
            for directive in [
                "default-src 'none'",
                "script-src 'self'",
                "frame-ancestors 'none'",
            ] {
                assert!(csp.contains(directive), "{path}: {csp}");
            }
            assert_eq!(
                page.header("x-content-type-options"),
                Some("nosniff"),
                "{path}"
            );
            assert_eq!(page.header("x-frame-options"), Some("DENY"), "{path}");
            assert_eq!(
                page.header("referrer-policy"),
                Some("no-referrer"),
                "{path}"
            );
        }
        for path in ["/docs/no-such-file.js", "/docs/%2e%2e/x"] {
            let missing = s.get(path, None).await;
            assert_eq!(missing.status, 404, "{path}");
            assert_eq!(missing.error().0, "not_found", "{path}: {missing:?}");
            assert_eq!(missing.header("content-type"), Some("application/json"));
        }
    }
}

/// The OpenAPI document tells the truth: the service's own `info` (no
/// dependency's contact or license), every rule the validators enforce as
/// a schema constraint (from the same constants), every error a route can
/// answer, and the service behaves as the constraints say at their edges.
#[tokio::test]
async fn the_openapi_document_tells_the_truth() {
    use auth_kit::config::{USERNAME_MAX_CHARS, USERNAME_MIN_CHARS, USERNAME_PATTERN};
    use auth_kit::login::{EMAIL_MAX_CHARS, FULL_NAME_MAX_CHARS};
    use auth_kit::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
    use service::items::{ITEM_DESCRIPTION_MAX_CHARS, ITEM_TITLE_MAX_CHARS, ITEM_TITLE_PATTERN};

    for s in servers("the_openapi_document_tells_the_truth").await {
        let doc = s.get("/openapi.json", None).await.body;
        // The stamped Cargo.toml sets no authors or license: none is shown.
        let version = env!("CARGO_PKG_VERSION");
        openapi::assert_info_is_the_services(&doc, service::SERVICE_NAME, version);

        let schemas = &doc["components"]["schemas"];
        let signup = &schemas["SignupRequest"]["properties"];
        assert_eq!(signup["username"]["minLength"], json!(USERNAME_MIN_CHARS));
        assert_eq!(signup["username"]["maxLength"], json!(USERNAME_MAX_CHARS));
        assert_eq!(signup["username"]["pattern"], json!(USERNAME_PATTERN));
        assert_eq!(signup["password"]["minLength"], json!(MIN_PASSWORD_CHARS));
        assert_eq!(signup["password"]["maxLength"], json!(MAX_PASSWORD_BYTES));
        assert_eq!(signup["email"]["format"], json!("email"));
        assert_eq!(signup["email"]["maxLength"], json!(EMAIL_MAX_CHARS));
        assert_eq!(signup["full_name"]["maxLength"], json!(FULL_NAME_MAX_CHARS));
        let item = &schemas["NewItem"]["properties"];
        assert_eq!(item["title"]["minLength"], json!(1));
        assert_eq!(item["title"]["maxLength"], json!(ITEM_TITLE_MAX_CHARS));
        assert_eq!(item["title"]["pattern"], json!(ITEM_TITLE_PATTERN));
        assert_eq!(
            item["description"]["maxLength"],
            json!(ITEM_DESCRIPTION_MAX_CHARS)
        );
        let update = &schemas["UserUpdate"]["properties"];
        assert_eq!(
            update["role"]["enum"],
            json!(["guest", "user", "admin", null])
        );
        assert_eq!(update["permissions"]["maxItems"], json!(64));
        assert!(
            update["permissions"]["items"]["enum"]
                .as_array()
                .unwrap()
                .contains(&json!("items:delete"))
        );
        let grants: Vec<&Value> = schemas["TokenForm"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|variant| &variant["properties"]["grant_type"]["enum"])
            .collect();
        assert_eq!(grants, [&json!(["password"]), &json!(["refresh_token"])]);
        for path in ["/users", "/users/me/items"] {
            openapi::assert_page_parameters(&doc, path);
        }
        for (method, path) in [
            ("delete", "/items/{id}"),
            ("patch", "/users/{id}"),
            ("delete", "/users/{id}"),
        ] {
            let id = &doc["paths"][path][method]["parameters"][0];
            assert_eq!(
                (&id["name"], &id["schema"]["minimum"]),
                (&json!("id"), &json!(1)),
                "{method} {path}"
            );
        }

        openapi::assert_every_response_in_contract_shape(&doc);
        openapi::assert_protected_operations_list(&doc, &["401", "403"]);
        openapi::assert_request_bodies_can_be_refused(&doc);
        assert!(
            openapi::response_description(&doc, "/items", "post", "409").contains("quota_exceeded")
        );

        // The service agrees with the document at the edges of each rule.
        let long_name = "u".repeat(USERNAME_MAX_CHARS);
        let signups = [
            (json!({"username": "ab", "password": "long enough"}), 422),
            (
                json!({"username": long_name, "password": "long enough"}),
                201,
            ),
            (
                json!({"username": format!("{long_name}u"), "password": "long enough"}),
                422,
            ),
            (
                json!({"username": "has space", "password": "long enough"}),
                422,
            ),
            (
                json!({"username": "edge7", "password": "x".repeat(MIN_PASSWORD_CHARS - 1)}),
                422,
            ),
            (
                json!({"username": "edge8", "password": "x".repeat(MIN_PASSWORD_CHARS)}),
                201,
            ),
            (
                json!({"username": "edge9", "password": "x".repeat(MAX_PASSWORD_BYTES + 1)}),
                422,
            ),
            (
                json!({"username": "edge10", "password": "long enough", "full_name": "n".repeat(FULL_NAME_MAX_CHARS)}),
                201,
            ),
            (
                json!({"username": "edge11", "password": "long enough", "full_name": "n".repeat(FULL_NAME_MAX_CHARS + 1)}),
                422,
            ),
            (
                json!({"username": "edge12", "password": "long enough", "email": "not-an-email"}),
                422,
            ),
        ];
        for (body, status) in signups {
            let reply = s.json("POST", "/auth/signup", None, body.clone()).await;
            assert_eq!(reply.status, status, "{body}: {reply:?}");
        }
        let token = s.admin_token().await;
        let items = [
            (json!({"title": ""}), 422),
            (json!({"title": " \t\r\n"}), 422),
            (json!({"title": "t".repeat(ITEM_TITLE_MAX_CHARS)}), 201),
            (json!({"title": "t".repeat(ITEM_TITLE_MAX_CHARS + 1)}), 422),
            (
                json!({"title": "t", "description": "d".repeat(ITEM_DESCRIPTION_MAX_CHARS)}),
                201,
            ),
            (
                json!({"title": "t", "description": "d".repeat(ITEM_DESCRIPTION_MAX_CHARS + 1)}),
                422,
            ),
        ];
        for (body, status) in items {
            let reply = s.json("POST", "/items", Some(&token), body.clone()).await;
            assert_eq!(reply.status, status, "{reply:?}");
        }
        contract::assert_page_parameters_enforced(&s, "/users", Some(&token)).await;
    }
}
