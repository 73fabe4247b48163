//! The HTTP contract of the supabase service, over real HTTP on loopback,
//! against gotrue-stub (never Supabase itself), on SQLite and (when
//! TEST_DATABASE_URL is set) PostgreSQL.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use auth_kit::testing::{TestDatabase, contract, openapi};
use common::{Reply, TestServer, password_of, servers};
use gotrue_stub::{Fault, Kid, RateLimit, StubConfig};
use serde_json::json;

fn refresh_form(reply: &Reply) -> String {
    format!(
        "grant_type=refresh_token&refresh_token={}",
        reply.body["refresh_token"].as_str().unwrap()
    )
}

#[tokio::test]
async fn public_routes_and_documentation() {
    for s in servers("public_routes_and_documentation").await {
        contract::assert_meta_routes(&s).await;
        let doc = s.get("/openapi.json", None).await.body;
        let flow = &doc["components"]["securitySchemes"]["oauth2"]["flows"]["password"];
        assert_eq!(flow["scopes"], json!({}), "{}", s.backend);
        assert_eq!(
            doc["paths"]["/admin"]["get"]["security"],
            json!([{"oauth2": []}])
        );
    }
}

#[tokio::test]
async fn signup_login_me_refresh_logout() {
    for s in servers("signup_login_me_refresh_logout").await {
        let created = s.post_signup("ann@example.com", "correct horse").await;
        assert_eq!(created.status, 201, "{}: {created:?}", s.backend);
        assert_eq!(created.header("cache-control"), Some("no-store"));
        assert_eq!(created.body["user"]["email"], json!("ann@example.com"));
        assert_eq!(created.body["user"]["role"], json!("user"));
        assert!(
            created.body["session"]["access_token"].is_string(),
            "autoconfirm gives a session"
        );
        let id = created.body["user"]["id"].as_str().unwrap().to_owned();

        let login = s.login("ann@example.com", "correct horse").await;
        assert_eq!(login.status, 200, "{login:?}");
        assert_eq!(login.header("cache-control"), Some("no-store"));
        assert_eq!(login.body["token_type"], json!("bearer"));
        assert!(login.body.get("scope").is_none());
        let access = login.body["access_token"].as_str().unwrap();
        let me = s.get("/users/me", Some(access)).await;
        assert_eq!(
            me.body,
            json!({
                "id": id, "email": "ann@example.com", "role": "user",
                "app_metadata": {"provider": "email", "providers": ["email"]}, "user_metadata": {},
            })
        );

        let refreshed = s.form("/token", &refresh_form(&login)).await;
        assert_eq!(refreshed.status, 200, "{refreshed:?}");
        assert_ne!(refreshed.body["refresh_token"], login.body["refresh_token"]);
        let new_access = refreshed.body["access_token"].as_str().unwrap();
        assert_eq!(
            s.send("POST", "/auth/logout", None, None, Vec::new())
                .await
                .status,
            401
        );
        assert_eq!(
            s.send("POST", "/auth/logout", Some(new_access), None, Vec::new())
                .await
                .status,
            204
        );
        let after = s.form("/token", &refresh_form(&refreshed)).await;
        assert_eq!(
            after.error().0,
            "invalid_grant",
            "logout revoked the session's refresh tokens"
        );
        let reused = s.form("/token", &refresh_form(&login)).await;
        assert_eq!(
            (reused.status, reused.error().0),
            (400, "invalid_grant"),
            "a spent refresh token"
        );

        // Reuse of a spent refresh token ends the whole session at Supabase.
        let second = s.login("ann@example.com", "correct horse").await;
        let rotated = s.form("/token", &refresh_form(&second)).await;
        assert_eq!(rotated.status, 200);
        assert_eq!(
            s.form("/token", &refresh_form(&second)).await.error().0,
            "invalid_grant"
        );
        assert_eq!(
            s.form("/token", &refresh_form(&rotated)).await.error().0,
            "invalid_grant",
            "the newer token died with its session"
        );
    }
}

#[tokio::test]
async fn supabase_errors_map_to_the_contract() {
    let s = TestServer::start(TestDatabase::sqlite()).await;
    s.signup("bo@example.com", json!({})).await;
    let taken = s.post_signup("bo@example.com", "another one").await;
    assert_eq!((taken.status, taken.error().0), (409, "email_taken"));
    let weak = s.post_signup("weak@example.com", "abc").await;
    assert_eq!(
        (weak.status, weak.error().0),
        (422, "validation_failed"),
        "{weak:?}"
    );
    assert!(
        weak.error().1.starts_with("password: ") && weak.error().1.contains("at least"),
        "{weak:?}"
    );
    let bad_email = s.post_signup("nope", "long enough").await;
    assert_eq!(
        (bad_email.status, bad_email.error().0),
        (422, "validation_failed")
    );

    let wrong = s.login("bo@example.com", "wrong password").await;
    assert_eq!((wrong.status, wrong.error().0), (400, "invalid_grant"));
    assert_eq!(
        s.login("nobody@example.com", "whatever1").await.body,
        wrong.body,
        "unknown user: the same answer"
    );
    for (form, code) in [
        (
            "grant_type=password&username=bo@example.com",
            "invalid_request",
        ),
        ("grant_type=client_credentials", "unsupported_grant_type"),
        (
            "grant_type=refresh_token&refresh_token=not-a-token",
            "invalid_grant",
        ),
    ] {
        let reply = s.form("/token", form).await;
        assert_eq!(
            (reply.status, reply.error().0),
            (400, code),
            "{form}: {reply:?}"
        );
    }
    let json_body = s
        .json("POST", "/token", None, json!({"grant_type": "password"}))
        .await;
    assert_eq!(json_body.error().0, "invalid_request");

    s.stub.set_token_rate_limit(Some(RateLimit {
        requests: 1,
        per: Duration::from_secs(60),
    }));
    s.login("bo@example.com", &password_of("bo@example.com"))
        .await;
    let limited = s
        .login("bo@example.com", &password_of("bo@example.com"))
        .await;
    assert_eq!(
        (limited.status, limited.error().0),
        (429, "too_many_requests"),
        "{limited:?}"
    );
}

#[tokio::test]
async fn an_unreachable_supabase_is_503_within_the_timeout() {
    let s = TestServer::start(TestDatabase::sqlite()).await;
    s.signup("cy@example.com", json!({})).await;
    for fault in [
        Fault::Slow(Duration::from_secs(10)),
        Fault::ServerErrorHtml,
        Fault::NotJson,
        Fault::DropConnection,
        Fault::RefuseConnections,
    ] {
        s.stub.set_fault(fault).await;
        let started = Instant::now();
        let reply = s
            .login("cy@example.com", &password_of("cy@example.com"))
            .await;
        let took = started.elapsed();
        assert_eq!(
            (reply.status, reply.error().0),
            (503, "supabase_unavailable"),
            "{fault:?}: {reply:?}"
        );
        assert!(
            took < Duration::from_secs(4),
            "{fault:?} took {took:?} with a 2 s timeout"
        );
        assert!(
            !reply.body.to_string().contains("<html"),
            "{fault:?}: the upstream body leaked"
        );
        let signup = s.post_signup("dee@example.com", "long enough").await;
        assert_eq!(signup.error().0, "supabase_unavailable", "{fault:?}");
    }
    s.stub.set_fault(Fault::None).await;
    assert_eq!(
        s.login("cy@example.com", &password_of("cy@example.com"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn bearer_failures() {
    let s = TestServer::start(TestDatabase::sqlite()).await;
    let id = s.signup("di@example.com", json!({})).await;
    let missing = s.get("/users/me", None).await;
    assert_eq!(
        (missing.status, missing.header("www-authenticate")),
        (401, Some("Bearer"))
    );
    let garbage = s.get("/users/me", Some("garbage")).await;
    assert_eq!((garbage.status, garbage.error().0), (401, "invalid_token"));
    assert!(
        garbage
            .header("www-authenticate")
            .unwrap()
            .starts_with(r#"Bearer error="invalid_token""#)
    );
    // A token signed by the project's key but for a key id it never published.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": id, "aud": "authenticated", "iss": s.stub.issuer(), "exp": now + 600, "iat": now, "role": "authenticated"});
    let forged = s
        .stub
        .sign_claims(Kid::Named("not-in-the-jwks".into()), &claims)
        .unwrap();
    assert_eq!(
        s.get("/users/me", Some(&forged)).await.error().0,
        "invalid_token"
    );
    let fine = s.stub.sign_claims(Kid::Current, &claims).unwrap();
    assert_eq!(
        s.get("/users/me", Some(&fine)).await.status,
        200,
        "the control: same claims, published key"
    );
}

#[tokio::test]
async fn roles_and_permissions_come_from_app_metadata_only() {
    for s in servers("roles_and_permissions_come_from_app_metadata_only").await {
        // A user writing a role into their own user_metadata gains nothing.
        let eve = s
            .signup(
                "eve@example.com",
                json!({"role": "admin", "permissions": ["items:delete"]}),
            )
            .await;
        let token = s.token("eve@example.com").await;
        let item = s.post_item(&token, "mine").await;
        assert_eq!(item.status, 201, "{}: {item:?}", s.backend);
        assert_eq!(item.body["owner_id"], json!(eve));
        let item_id = item.body["id"].as_i64().unwrap();
        assert_eq!(
            s.get("/admin", Some(&token)).await.error(),
            ("forbidden", "Role 'admin' required")
        );
        assert_eq!(
            s.delete(&format!("/items/{item_id}"), Some(&token))
                .await
                .error(),
            ("forbidden", "Permission 'items:delete' required")
        );

        // The same in app_metadata (set by the server) does: new tokens carry it.
        s.stub
            .set_app_metadata(&eve, json!({"permissions": ["items:delete"]}))
            .unwrap();
        let granted = s.token("eve@example.com").await;
        assert_eq!(
            s.delete(&format!("/items/{item_id}"), Some(&granted))
                .await
                .status,
            204
        );
        assert_eq!(
            s.delete(&format!("/items/{item_id}"), Some(&granted))
                .await
                .error()
                .0,
            "not_found"
        );
        assert_eq!(s.get("/admin", Some(&granted)).await.status, 403);
        s.stub
            .set_app_metadata(&eve, json!({"role": "admin"}))
            .unwrap();
        let admin = s.token("eve@example.com").await;
        let answer = s.get("/admin", Some(&admin)).await;
        assert_eq!(
            (answer.status, &answer.body["user"]["role"]),
            (200, &json!("admin"))
        );
    }
}

#[tokio::test]
async fn items_belong_to_their_owner() {
    for s in servers("items_belong_to_their_owner").await {
        s.signup("fay@example.com", json!({})).await;
        s.signup("gus@example.com", json!({})).await;
        let fay = s.token("fay@example.com").await;
        let gus = s.token("gus@example.com").await;
        s.post_item(&fay, "fay's").await;
        s.post_item(&gus, "gus's").await;
        let empty = s.post_item(&fay, "").await;
        assert_eq!(
            (empty.status, empty.error().1),
            (422, "title: must not be empty")
        );
        let listed = s.get("/users/me/items", Some(&fay)).await.body;
        assert_eq!(listed.as_array().unwrap().len(), 1, "{}", s.backend);
        assert_eq!(listed[0]["title"], json!("fay's"));
        assert_eq!(s.get("/users/me/items", None).await.status, 401);
    }
}

/// The items list takes `limit` and `after`, stays an array ordered by
/// id, and links the next page (RFC 8288), as in the other services.
#[tokio::test]
async fn items_are_paged_with_a_link_to_the_next_page() {
    for s in servers("items_are_paged_with_a_link_to_the_next_page").await {
        s.signup("pam@example.com", json!({})).await;
        let token = s.token("pam@example.com").await;
        let mut created = Vec::new();
        for n in 0..3 {
            let item = s.post_item(&token, &format!("item {n}")).await;
            created.push(item.body["id"].clone());
        }
        let pages = s.pages("/users/me/items?limit=2", Some(&token)).await;
        let ids: Vec<Vec<_>> = pages
            .iter()
            .map(|page| {
                let items = page.body.as_array().unwrap();
                items.iter().map(|i| i["id"].clone()).collect()
            })
            .collect();
        assert_eq!(ids, [&created[..2], &created[2..]], "{}", s.backend);
        let second = format!("/users/me/items?after={}&limit=2", created[1]);
        assert_eq!(pages[0].next_page(), Some(second.as_str()));
        // Wrong JSON names the field and what it must be, never a Rust type.
        for (body, expected) in [
            ("17", "body: must be a JSON object"),
            (r#"{"title": 5}"#, "title: must be a string"),
            (
                r#"{"title": "t", "description": ["d"]}"#,
                "description: must be a string",
            ),
        ] {
            let reply = s
                .send(
                    "POST",
                    "/items",
                    Some(&token),
                    Some("application/json"),
                    body.as_bytes().to_vec(),
                )
                .await;
            assert_eq!(
                (reply.status, reply.error()),
                (422, ("validation_failed", expected)),
                "{body}"
            );
        }
        contract::assert_page_parameters_enforced(&s, "/users/me/items", Some(&token)).await;
    }
}

/// The document states this service's own rules, and the service keeps
/// them at their edges; it carries the service's own `info` only, the list
/// bounds, and every error each route can answer, in the contract's shape.
#[tokio::test]
async fn the_openapi_document_tells_the_truth() {
    use auth_kit_supabase::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};

    for s in servers("the_openapi_document_tells_the_truth").await {
        let doc = s.get("/openapi.json", None).await.body;
        let signup = &doc["components"]["schemas"]["SignupRequest"]["properties"];
        assert_eq!(signup["email"]["format"], json!("email"));
        assert_eq!(signup["password"]["minLength"], json!(MIN_PASSWORD_CHARS));
        assert_eq!(signup["password"]["maxLength"], json!(MAX_PASSWORD_BYTES));
        // The service agrees at the edges (Supabase counts bytes: a short
        // password of wide characters is refused here, by characters).
        for (password, status) in [
            ("é".repeat(MIN_PASSWORD_CHARS - 1), 422),
            ("p".repeat(MIN_PASSWORD_CHARS), 201),
            ("p".repeat(MAX_PASSWORD_BYTES + 1), 422),
        ] {
            let email = format!("edge{}@example.com", password.len());
            let reply = s.post_signup(&email, &password).await;
            assert_eq!(reply.status, status, "{reply:?}");
        }
        let item = &doc["components"]["schemas"]["NewItem"]["properties"];
        assert_eq!(
            item["title"]["maxLength"],
            json!(service::items::ITEM_TITLE_MAX_CHARS)
        );
        let limit = &openapi::parameter(&doc, "/users/me/items", "get", "limit")["schema"];
        assert_eq!(
            (&limit["minimum"], &limit["maximum"]),
            (&json!(1), &json!(200))
        );
        assert!(
            openapi::response_description(&doc, "/admin", "get", "403")
                .contains("Role 'admin' required")
        );

        let version = env!("CARGO_PKG_VERSION");
        openapi::assert_info_is_the_services(&doc, service::SERVICE_NAME, version);
        openapi::assert_page_parameters(&doc, "/users/me/items");
        openapi::assert_every_response_in_contract_shape(&doc);
        // The routes that ask for a token may have to ask Supabase, too.
        openapi::assert_protected_operations_list(&doc, &["401", "403", "503"]);
        openapi::assert_request_bodies_can_be_refused(&doc);
    }
}

#[tokio::test]
async fn remote_verification_refuses_a_logged_out_token_at_once() {
    let s = TestServer::start_with(
        TestDatabase::sqlite(),
        gotrue_stub::StubConfig::es256(),
        &[("SUPABASE_VERIFY", "remote")],
    )
    .await;
    s.signup("hal@example.com", json!({})).await;
    let token = s.token("hal@example.com").await;
    assert_eq!(s.get("/users/me", Some(&token)).await.status, 200);
    assert_eq!(
        s.send("POST", "/auth/logout", Some(&token), None, Vec::new())
            .await
            .status,
        204
    );
    assert_eq!(
        s.get("/users/me", Some(&token)).await.status,
        401,
        "remote mode asks Supabase on every request"
    );
}

#[tokio::test]
async fn legacy_hs256_projects_verify_with_the_secret() {
    let secret = "a-legacy-jwt-secret-of-32-bytes-or-more!";
    let s = TestServer::start_with(
        TestDatabase::sqlite(),
        gotrue_stub::StubConfig::hs256(secret),
        &[("SUPABASE_JWT_SECRET", secret)],
    )
    .await;
    s.signup("ida@example.com", json!({})).await;
    let token = s.token("ida@example.com").await;
    assert_eq!(
        s.get("/users/me", Some(&token)).await.body["email"],
        json!("ida@example.com")
    );
}

/// The kit's limiter stands in front of Supabase (which sees every request
/// coming from this service): failed sign-ins per email and per forwarded
/// client, signups per forwarded client.
#[tokio::test]
async fn the_limiter_stands_in_front_of_supabase() {
    let settings = [
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("LOGIN_MAX_FAILURES", "3"),
        ("LOGIN_MAX_FAILURES_PER_IP", "5"),
        ("SIGNUP_MAX_PER_IP", "2"),
    ];
    for db in TestDatabase::all("supabase_limiter").await {
        let s = TestServer::start_with(db, StubConfig::es256(), &settings).await;
        let signup = |client: &'static str, email: &str| {
            let body = json!({"email": email, "password": password_of(email)});
            s.json_forwarded(client, "POST", "/auth/signup", None, body)
        };
        for email in ["ann@example.com", "bo@example.com"] {
            assert_eq!(signup("203.0.113.1", email).await.status, 201, "{email}");
        }
        let r = signup("203.0.113.1", "cy@example.com").await;
        contract::assert_too_many_requests(&r, 3590..=3600);
        assert_eq!(signup("203.0.113.2", "cy@example.com").await.status, 201);

        let login = async |client: &str, email: &str, password: &str| {
            let form = format!("grant_type=password&username={email}&password={password}");
            s.form_forwarded(client, "/token", &form).await
        };
        let right = password_of("ann@example.com");
        for _ in 0..3 {
            let r = login("203.0.113.3", "ann@example.com", "wrong-password").await;
            assert_eq!(
                (r.status, r.error().0),
                (400, "invalid_grant"),
                "{}",
                s.backend
            );
        }
        // The email is locked for every client, before Supabase is asked.
        let r = login("203.0.113.4", "ANN@example.com", &right).await;
        contract::assert_too_many_requests(&r, 290..=300);
        // Per client: two more failures lock 203.0.113.3 for other emails.
        for email in ["bo@example.com", "cy@example.com"] {
            assert_eq!(
                login("203.0.113.3", email, "wrong-password").await.status,
                400
            );
        }
        let r = login(
            "203.0.113.3",
            "bo@example.com",
            &password_of("bo@example.com"),
        )
        .await;
        assert_eq!(r.status, 429, "{}: {r:?}", s.backend);
        let r = login(
            "203.0.113.5",
            "bo@example.com",
            &password_of("bo@example.com"),
        )
        .await;
        assert_eq!(r.status, 200, "{}: {r:?}", s.backend);
    }
}
