//! The HTTP contract, over real HTTP on loopback, on SQLite and (when
//! TEST_DATABASE_URL is set) PostgreSQL.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use auth_kit::testing::TestDatabase;
use common::{ADMIN, ADMIN_PASSWORD, Reply, TestServer, password_of, servers};
use serde_json::{Value, json};

fn error(code: &str, description: &str) -> Value {
    json!({"error": code, "error_description": description})
}

fn assert_challenge(reply: &Reply, status: u16, challenge: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(challenge),
        "{reply:?}"
    );
}

#[tokio::test]
async fn public_routes_and_documentation() {
    for s in servers("public_routes_and_documentation").await {
        assert_eq!(s.get("/", None).await.body["token_url"], json!("/token"));
        assert_eq!(
            s.get("/health", None).await.body,
            json!({"status": "ok"}),
            "{}",
            s.backend
        );
        let jwks = s.get("/.well-known/jwks.json", None).await;
        assert_eq!(
            (jwks.status, jwks.error().0),
            (404, "not_found"),
            "an HMAC service publishes no keys"
        );
        assert_eq!(
            s.get("/no/such/route", None).await.body,
            error("not_found", "No route matches this path")
        );
        assert_eq!(
            s.send("PUT", "/health", None, None, Vec::new())
                .await
                .error()
                .0,
            "method_not_allowed"
        );

        let doc = s.get("/openapi.json", None).await.body;
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            doc["openapi"]
        );
        let password_flow = &doc["components"]["securitySchemes"]["oauth2"]["flows"]["password"];
        assert_eq!(password_flow["tokenUrl"], json!("/token"));
        assert_eq!(
            password_flow["scopes"],
            json!({}),
            "this service has no scopes"
        );
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
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let documented = operation["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|r| r.get("oauth2").is_some()));
                assert_eq!(
                    documented,
                    !public.contains(&path.as_str()),
                    "{method} {path}: security requirement"
                );
            }
        }
        assert_eq!(
            doc["paths"]["/users/me/items"]["get"]["security"],
            json!([{"oauth2": []}])
        );
        assert_eq!(
            doc["paths"]["/items"]["post"]["security"],
            json!([{"oauth2": []}])
        );
        let docs = s.get("/docs/", None).await;
        assert_eq!(docs.status, 200);
        assert!(docs.body.as_str().unwrap().contains("swagger-ui"));
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
        let plain = s
            .send(
                "POST",
                "/auth/signup",
                None,
                Some("text/plain"),
                b"{}".to_vec(),
            )
            .await;
        assert_eq!(
            (plain.status, plain.error().0),
            (415, "unsupported_media_type")
        );
        let broken = s
            .send(
                "POST",
                "/auth/signup",
                None,
                Some("application/json"),
                b"{\"username\":".to_vec(),
            )
            .await;
        assert_eq!((broken.status, broken.error().0), (400, "invalid_request"));
        let empty = s
            .send(
                "POST",
                "/auth/signup",
                None,
                Some("application/json"),
                Vec::new(),
            )
            .await;
        assert_eq!((empty.status, empty.error().0), (400, "invalid_request"));
        let huge = s
            .send(
                "POST",
                "/auth/signup",
                None,
                Some("application/json"),
                vec![b' '; 65 * 1024],
            )
            .await;
        assert_eq!((huge.status, huge.error().0), (413, "request_too_large"));
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
        assert!(
            ok.body.get("scope").is_none(),
            "no scopes, no `scope` field: {ok:?}"
        );
        assert_eq!(ok.body["refresh_token"].as_str().unwrap().len(), 43);

        // Swagger UI's Authorize dialog sends client_id/client_secret: ignored.
        let swagger = s.form("/token", &format!("grant_type=password&username=dana&password={}&scope=me&client_id=x&client_secret=", password_of("dana"))).await;
        assert_eq!(
            swagger.status, 200,
            "the `scope` field is ignored: {swagger:?}"
        );

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
        let ignored = s
            .login("dana", &password_of("dana"), Some("root admin"))
            .await;
        assert_eq!(ignored.status, 200, "any `scope` is ignored: {ignored:?}");
        assert!(ignored.body.get("scope").is_none());

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
        assert_eq!(
            (locked.status, locked.error().0),
            (429, "too_many_requests")
        );
        let retry_after: u64 = locked.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=300).contains(&retry_after), "{retry_after}");
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

        let pair = s.login("erin", &password_of("erin"), Some("me")).await.body;
        let token = pair["access_token"].as_str().unwrap();
        assert_eq!(
            s.get("/users/me", Some(token)).await.body["username"],
            json!("erin"),
            "{}",
            s.backend
        );
        // No scopes: any valid token reaches the routes the oauth2 template guards with one.
        assert_eq!(s.get("/users/me/items", Some(token)).await.status, 200);
        assert_eq!(
            s.json("POST", "/items", Some(token), json!({"title": "x"}))
                .await
                .status,
            201
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
        assert!(second.body.get("scope").is_none());
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
        assert!(
            s.login(ADMIN, ADMIN_PASSWORD, None)
                .await
                .body
                .get("scope")
                .is_none()
        );
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
        let form = |user: &str, password: &str| {
            format!("grant_type=password&username={user}&password={password}").into_bytes()
        };
        let token = |client: &'static str, body: Vec<u8>| {
            s.send_forwarded(
                Some(client),
                "POST",
                "/token",
                None,
                Some("application/x-www-form-urlencoded"),
                body,
            )
        };
        for n in 0..3 {
            let r = token("203.0.113.5", form(&format!("guess{n}"), "wrong")).await;
            assert_eq!(r.status, 400, "{}: {r:?}", s.backend);
        }
        let r = token("203.0.113.5", form(ADMIN, ADMIN_PASSWORD)).await;
        assert_eq!(r.status, 429, "{}: {r:?}", s.backend);
        let r = token("203.0.113.6", form(ADMIN, ADMIN_PASSWORD)).await;
        assert_eq!(r.status, 200, "{}: {r:?}", s.backend);

        let signup = |client: &'static str, name: &str| {
            let body = json!({"username": name, "password": password_of(name)});
            s.send_forwarded(
                Some(client),
                "POST",
                "/auth/signup",
                None,
                Some("application/json"),
                body.to_string().into_bytes(),
            )
        };
        assert_eq!(signup("203.0.113.7", "kim").await.status, 201);
        assert_eq!(signup("203.0.113.7", "KIM").await.status, 409);
        let r = signup("203.0.113.7", "lou").await;
        assert_eq!(r.status, 429, "{}: {r:?}", s.backend);
        // Seconds left on the lock (the clock is real: a second may pass).
        let retry_after: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((3590..=3600).contains(&retry_after), "{retry_after}");
        assert_eq!(signup("203.0.113.8", "lou").await.status, 201);
    }
}
