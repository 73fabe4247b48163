//! The stub over real HTTP: upstream's shapes, status codes and error codes,
//! in both error shapes, and the fault switches.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use base64::Engine as _;
use gotrue_stub::{Fault, Kid, RateLimit, StubConfig, StubHandle};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the legacy error shape with `code`.
    fn legacy_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["code"], json!(status), "{}", self.body);
        assert_eq!(self.body["error_code"], code, "{}", self.body);
        assert!(self.body["msg"].is_string(), "{}", self.body);
        assert_eq!(self.header("x-sb-error-code"), Some(code));
    }

    /// Asserts the 2024-01-01 error shape with `code`.
    fn versioned_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert!(self.body["message"].is_string(), "{}", self.body);
        assert!(self.body.get("msg").is_none(), "{}", self.body);
        assert_eq!(self.header("x-supabase-api-version"), Some("2024-01-01"));
    }
}

struct Api {
    stub: StubHandle,
    http: reqwest::Client,
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Legacy,
    Versioned,
}

impl Api {
    async fn start(config: StubConfig) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let stub = gotrue_stub::spawn(config).await.unwrap();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self { stub, http }
    }

    async fn es256() -> Self {
        Self::start(StubConfig::es256()).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
        shape: Shape,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}/auth/v1{path}", self.stub.url()))
            .header("apikey", self.stub.anon_key());
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if shape == Shape::Versioned {
            request = request.header("X-Supabase-Api-Version", "2024-01-01");
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body), None, Shape::Legacy)
            .await
    }

    async fn signup(&self, email: &str) -> Answer {
        self.post("/signup", json!({"email": email, "password": PASSWORD}))
            .await
    }

    async fn login(&self, email: &str, password: &str) -> Answer {
        self.post(
            "/token?grant_type=password",
            json!({"email": email, "password": password}),
        )
        .await
    }

    async fn refresh(&self, token: &str) -> Answer {
        self.post(
            "/token?grant_type=refresh_token",
            json!({"refresh_token": token}),
        )
        .await
    }

    async fn user(&self, token: &str) -> Answer {
        self.call(Method::GET, "/user", None, Some(token), Shape::Legacy)
            .await
    }
}

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn session_token(answer: &Answer) -> (String, String) {
    assert_eq!(answer.status, 200, "{}", answer.body);
    (
        answer.body["access_token"].as_str().unwrap().to_owned(),
        answer.body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn health_settings_and_jwks() {
    let api = Api::es256().await;
    let health = api
        .call(Method::GET, "/health", None, None, Shape::Legacy)
        .await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["name"], "GoTrue");
    assert!(health.body["version"].is_string());
    assert!(
        health.body["description"]
            .as_str()
            .unwrap()
            .contains("Not Supabase")
    );

    let settings = api
        .call(Method::GET, "/settings", None, None, Shape::Legacy)
        .await;
    assert_eq!(settings.body["external"]["email"], true);
    assert_eq!(settings.body["mailer_autoconfirm"], true);
    assert_eq!(settings.body["disable_signup"], false);

    // No API key needed for the JWKS.
    let jwks = api
        .http
        .get(format!("{}/auth/v1/.well-known/jwks.json", api.stub.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        jwks.headers()["cache-control"].to_str().unwrap(),
        "public, max-age=600"
    );
    let jwks: Value = jwks.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"].as_str(), api.stub.current_kid().as_deref());
    assert_eq!(keys[0]["kty"], "EC");
    assert!(keys[0].get("d").is_none(), "private part published");
    assert_eq!(api.stub.jwks_fetches(), 1);

    let unknown = api
        .call(Method::GET, "/nope", None, None, Shape::Legacy)
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn hs256_stub_publishes_no_keys() {
    let api = Api::start(StubConfig::hs256("x".repeat(40))).await;
    let jwks: Value = api
        .http
        .get(format!("{}/auth/v1/.well-known/jwks.json", api.stub.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks, json!({"keys": []}));
    let (access, _) = session_token(&api.signup("hs@example.com").await);
    assert_eq!(decode_part(&access, 0)["alg"], "HS256");
    assert_eq!(api.user(&access).await.status, 200);
    assert!(api.stub.rotate_signing_key().is_err());
    assert!(
        gotrue_stub::spawn(StubConfig::hs256("short"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn api_key_is_required() {
    let api = Api::es256().await;
    let url = format!("{}/auth/v1/settings", api.stub.url());
    let missing = api.http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error_code"], "no_api_key");
    let wrong = api
        .http
        .get(&url)
        .header("apikey", "sb_publishable_wrong")
        .header("X-Supabase-Api-Version", "2024-01-01")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": "invalid_api_key", "message": "Invalid API key"})
    );
    let service = api
        .http
        .get(&url)
        .header("apikey", api.stub.service_role_key())
        .send()
        .await
        .unwrap();
    assert_eq!(service.status(), 200);
    // The keys are JWTs with the roles Supabase's local stack uses.
    assert_eq!(decode_part(api.stub.anon_key(), 1)["role"], "anon");
    assert_eq!(
        decode_part(api.stub.service_role_key(), 1)["role"],
        "service_role"
    );
}

#[tokio::test]
async fn signup_with_autoconfirm_answers_a_session() {
    let api = Api::es256().await;
    let answer = api
        .post(
            "/signup",
            json!({"email": "Ann@Example.com", "password": PASSWORD, "data": {"name": "Ann"}}),
        )
        .await;
    let (access, refresh) = session_token(&answer);
    let body = &answer.body;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["expires_at"].as_i64().unwrap() > 1_700_000_000);
    assert!(refresh.len() >= 12);
    let user = &body["user"];
    for field in [
        "id",
        "aud",
        "role",
        "email",
        "phone",
        "app_metadata",
        "user_metadata",
        "identities",
        "created_at",
        "updated_at",
        "is_anonymous",
        "email_confirmed_at",
        "last_sign_in_at",
    ] {
        assert!(user.get(field).is_some(), "user lacks {field}: {user}");
    }
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["aud"], "authenticated");
    assert_eq!(user["user_metadata"]["name"], "Ann");
    assert_eq!(
        user["app_metadata"],
        json!({"provider": "email", "providers": ["email"]})
    );

    let header = decode_part(&access, 0);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"].as_str(), api.stub.current_kid().as_deref());
    let claims = decode_part(&access, 1);
    assert_eq!(claims["iss"], format!("{}/auth/v1", api.stub.url()));
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["aud"], "authenticated");
    assert_eq!(claims["role"], "authenticated");
    assert_eq!(claims["aal"], "aal1");
    assert_eq!(claims["amr"][0]["method"], "password");
    assert_eq!(claims["email"], "ann@example.com");
    assert_eq!(claims["phone"], "");
    assert_eq!(claims["is_anonymous"], false);
    assert_eq!(claims["app_metadata"]["provider"], "email");
    assert_eq!(claims["user_metadata"]["name"], "Ann");
    assert!(claims["session_id"].is_string());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );

    let me = api.user(&access).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["id"], user["id"]);
}

#[tokio::test]
async fn signup_without_autoconfirm_needs_confirmation() {
    let api = Api::start(StubConfig::es256().require_email_confirmation()).await;
    let answer = api.signup("bob@example.com").await;
    assert_eq!(answer.status, 200);
    assert!(answer.body.get("access_token").is_none());
    assert!(answer.body["confirmation_sent_at"].is_string());
    assert!(answer.body.get("email_confirmed_at").is_none());
    let id = answer.body["id"].as_str().unwrap().to_owned();

    api.login("bob@example.com", PASSWORD)
        .await
        .legacy_error(400, "email_not_confirmed");
    // A repeat within a minute would send another email: rate limited.
    api.signup("bob@example.com")
        .await
        .legacy_error(429, "over_email_send_rate_limit");

    api.stub.confirm_email("bob@example.com").unwrap();
    session_token(&api.login("bob@example.com", PASSWORD).await);

    // Confirmed and confirmation on: an obfuscated user, not an error.
    let repeat = api.signup("bob@example.com").await;
    assert_eq!(repeat.status, 200);
    assert_ne!(repeat.body["id"].as_str().unwrap(), id);
    assert_eq!(repeat.body["identities"], json!([]));
}

#[tokio::test]
async fn signup_errors_in_both_shapes() {
    let api = Api::es256().await;
    session_token(&api.signup("carol@example.com").await);

    api.signup("carol@example.com")
        .await
        .legacy_error(422, "user_already_exists");
    api.call(
        Method::POST,
        "/signup",
        Some(json!({"email": "CAROL@example.com", "password": PASSWORD})),
        None,
        Shape::Versioned,
    )
    .await
    .versioned_error(422, "user_already_exists");

    let weak = api
        .post(
            "/signup",
            json!({"email": "d@example.com", "password": "abc"}),
        )
        .await;
    weak.legacy_error(422, "weak_password");
    assert_eq!(weak.body["weak_password"]["reasons"], json!(["length"]));
    assert_eq!(
        weak.body["msg"],
        "Password should be at least 6 characters."
    );
    let weak = api
        .call(
            Method::POST,
            "/signup",
            Some(json!({"email": "d@example.com", "password": "abc"})),
            None,
            Shape::Versioned,
        )
        .await;
    assert_eq!(weak.status, 422);
    assert_eq!(weak.body["code"], "weak_password");
    assert_eq!(weak.body["weak_password"]["reasons"], json!(["length"]));

    api.post(
        "/signup",
        json!({"email": "not-an-email", "password": PASSWORD}),
    )
    .await
    .legacy_error(400, "validation_failed");
    api.post(
        "/signup",
        json!({"email": "e@example.com", "password": "x".repeat(73)}),
    )
    .await
    .legacy_error(400, "validation_failed");
    api.post("/signup", json!({"password": PASSWORD}))
        .await
        .legacy_error(422, "anonymous_provider_disabled");
    let broken = api
        .http
        .post(format!("{}/auth/v1/signup", api.stub.url()))
        .header("apikey", api.stub.anon_key())
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    assert_eq!(
        broken.json::<Value>().await.unwrap()["error_code"],
        "bad_json"
    );

    api.stub.set_signup_disabled(true);
    api.signup("f@example.com")
        .await
        .legacy_error(422, "signup_disabled");
}

#[tokio::test]
async fn password_grant_errors() {
    let api = Api::es256().await;
    session_token(&api.signup("gina@example.com").await);
    let wrong = api.login("gina@example.com", "wrong password").await;
    wrong.legacy_error(400, "invalid_credentials");
    assert_eq!(wrong.body["msg"], "Invalid login credentials");
    let unknown = api.login("nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.body, wrong.body);
    api.call(
        Method::POST,
        "/token?grant_type=password",
        Some(json!({"email": "gina@example.com", "password": "nope"})),
        None,
        Shape::Versioned,
    )
    .await
    .versioned_error(400, "invalid_credentials");

    let unsupported = api
        .post("/token?grant_type=client_credentials", json!({}))
        .await;
    unsupported.legacy_error(400, "invalid_credentials");
    assert_eq!(unsupported.body["msg"], "unsupported_grant_type");
    api.post("/token?grant_type=password", json!({"password": PASSWORD}))
        .await
        .legacy_error(400, "validation_failed");
    // Case does not matter for the address.
    session_token(&api.login("GINA@example.com", PASSWORD).await);
}

#[tokio::test]
async fn refresh_rotates_and_detects_reuse() {
    let api = Api::es256().await;
    let (access, first) = session_token(&api.signup("hal@example.com").await);
    let (_, second) = session_token(&api.refresh(&first).await);
    assert_ne!(first, second);

    api.refresh(&first)
        .await
        .legacy_error(400, "refresh_token_already_used");
    // Reuse ended the session: its access tokens and newer refresh token.
    api.user(&access)
        .await
        .legacy_error(403, "session_not_found");
    api.refresh(&second)
        .await
        .legacy_error(400, "refresh_token_not_found");
    api.refresh("abcdefghijklmnopqrstuv")
        .await
        .legacy_error(400, "refresh_token_not_found");
    api.refresh("short")
        .await
        .legacy_error(400, "validation_failed");
}

#[tokio::test]
async fn user_endpoint_refusals() {
    let api = Api::es256().await;
    let (access, _) = session_token(&api.signup("ida@example.com").await);
    api.call(Method::GET, "/user", None, None, Shape::Legacy)
        .await
        .legacy_error(401, "no_authorization");
    api.call(Method::GET, "/user", None, None, Shape::Versioned)
        .await
        .versioned_error(401, "no_authorization");
    api.user("not.a.jwt").await.legacy_error(403, "bad_jwt");

    let mut claims = decode_part(&access, 1);
    let foreign = api
        .stub
        .sign_claims(Kid::Named("someone-elses-key".into()), &claims)
        .unwrap();
    api.user(&foreign).await.legacy_error(403, "bad_jwt");
    claims["exp"] = json!(1_000_000_000);
    let expired = api.stub.sign_claims(Kid::Current, &claims).unwrap();
    api.user(&expired).await.legacy_error(403, "bad_jwt");
    // The anon key is a valid JWT of the project, but not a user's.
    api.user(api.stub.anon_key())
        .await
        .legacy_error(403, "bad_jwt");
}

#[tokio::test]
async fn logout_scopes() {
    let api = Api::es256().await;
    let (a, _) = session_token(&api.signup("jo@example.com").await);
    let (b, _) = session_token(&api.login("jo@example.com", PASSWORD).await);
    let (c, _) = session_token(&api.login("jo@example.com", PASSWORD).await);
    let id = api.stub.user_id("jo@example.com").unwrap();
    assert_eq!(api.stub.session_count(&id), 3);

    let bad = api
        .call(
            Method::POST,
            "/logout?scope=everything",
            None,
            Some(&a),
            Shape::Legacy,
        )
        .await;
    bad.legacy_error(400, "validation_failed");

    let others = api
        .call(
            Method::POST,
            "/logout?scope=others",
            None,
            Some(&a),
            Shape::Legacy,
        )
        .await;
    assert_eq!(others.status, 204);
    assert_eq!(api.user(&a).await.status, 200);
    api.user(&b).await.legacy_error(403, "session_not_found");
    api.user(&c).await.legacy_error(403, "session_not_found");

    let local = api
        .call(
            Method::POST,
            "/logout?scope=local",
            None,
            Some(&a),
            Shape::Legacy,
        )
        .await;
    assert_eq!(local.status, 204);
    assert_eq!(api.stub.session_count(&id), 0);

    let (d, _) = session_token(&api.login("jo@example.com", PASSWORD).await);
    session_token(&api.login("jo@example.com", PASSWORD).await);
    let global = api
        .call(Method::POST, "/logout", None, Some(&d), Shape::Legacy)
        .await;
    assert_eq!(global.status, 204);
    assert_eq!(api.stub.session_count(&id), 0);
}

#[tokio::test]
async fn admin_updates_app_metadata() {
    let api = Api::es256().await;
    let (access, refresh) = session_token(&api.signup("kim@example.com").await);
    let id = api.stub.user_id("kim@example.com").unwrap();
    let path = format!("/admin/users/{id}");
    let patch = json!({"app_metadata": {"role": "admin", "permissions": ["items:delete"]}});

    api.call(Method::PUT, &path, Some(patch.clone()), None, Shape::Legacy)
        .await
        .legacy_error(401, "no_authorization");
    api.call(
        Method::PUT,
        &path,
        Some(patch.clone()),
        Some(&access),
        Shape::Legacy,
    )
    .await
    .legacy_error(403, "not_admin");
    let service = api.stub.service_role_key().to_owned();
    api.call(
        Method::PUT,
        "/admin/users/nope",
        Some(patch.clone()),
        Some(&service),
        Shape::Legacy,
    )
    .await
    .legacy_error(404, "validation_failed");
    let stranger = format!("/admin/users/{}", "123e4567-e89b-42d3-a456-426614174000");
    api.call(
        Method::PUT,
        &stranger,
        Some(patch.clone()),
        Some(&service),
        Shape::Legacy,
    )
    .await
    .legacy_error(404, "user_not_found");

    let updated = api
        .call(
            Method::PUT,
            &path,
            Some(patch),
            Some(&service),
            Shape::Legacy,
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(
        updated.body["app_metadata"],
        json!({"provider": "email", "providers": ["email"], "role": "admin", "permissions": ["items:delete"]})
    );
    // Merging: null removes a key, other keys stay.
    let updated = api
        .call(
            Method::PUT,
            &path,
            Some(json!({"app_metadata": {"permissions": null}})),
            Some(&service),
            Shape::Legacy,
        )
        .await;
    assert!(updated.body["app_metadata"].get("permissions").is_none());
    assert_eq!(updated.body["app_metadata"]["role"], "admin");

    // New tokens carry it; old ones do not.
    assert!(
        decode_part(&access, 1)["app_metadata"]
            .get("role")
            .is_none()
    );
    let (fresh, _) = session_token(&api.refresh(&refresh).await);
    assert_eq!(decode_part(&fresh, 1)["app_metadata"]["role"], "admin");

    let got = api
        .call(Method::GET, &path, None, Some(&service), Shape::Legacy)
        .await;
    assert_eq!(got.body["id"], id.as_str());
}

#[tokio::test]
async fn token_endpoint_rate_limit() {
    let api = Api::start(StubConfig::es256().token_rate_limit(RateLimit {
        requests: 2,
        per: Duration::from_secs(60),
    }))
    .await;
    api.login("x@example.com", PASSWORD)
        .await
        .legacy_error(400, "invalid_credentials");
    api.login("x@example.com", PASSWORD)
        .await
        .legacy_error(400, "invalid_credentials");
    let limited = api.login("x@example.com", PASSWORD).await;
    limited.legacy_error(429, "over_request_rate_limit");
    api.call(
        Method::POST,
        "/token?grant_type=password",
        Some(json!({"email": "x@example.com", "password": PASSWORD})),
        None,
        Shape::Versioned,
    )
    .await
    .versioned_error(429, "over_request_rate_limit");
    api.stub.set_token_rate_limit(None);
    api.login("x@example.com", PASSWORD)
        .await
        .legacy_error(400, "invalid_credentials");
}

#[tokio::test]
async fn rotation_publishes_old_and_new_keys() {
    let api = Api::es256().await;
    let (old_token, refresh) = session_token(&api.signup("lee@example.com").await);
    let old_kid = api.stub.current_kid().unwrap();
    let new_kid = api.stub.rotate_signing_key().unwrap();
    let jwks: Value = api
        .http
        .get(format!("{}/auth/v1/.well-known/jwks.json", api.stub.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);
    let (new_token, _) = session_token(&api.refresh(&refresh).await);
    assert_eq!(decode_part(&new_token, 0)["kid"], new_kid.as_str());
    assert_eq!(api.user(&old_token).await.status, 200);
    assert_eq!(api.user(&new_token).await.status, 200);
}

#[tokio::test]
async fn fault_switches() {
    let api = Api::es256().await;
    let health = format!("{}/auth/v1/health", api.stub.url());
    let get = || {
        api.http
            .get(&health)
            .header("apikey", api.stub.anon_key())
            .send()
    };

    api.stub
        .set_fault(Fault::Slow(Duration::from_millis(300)))
        .await;
    let started = Instant::now();
    assert_eq!(get().await.unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    api.stub.set_fault(Fault::ServerErrorHtml).await;
    let html = get().await.unwrap();
    assert_eq!(html.status(), 500);
    assert!(
        html.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    api.stub.set_fault(Fault::NotJson).await;
    let plain = get().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert!(
        plain.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );

    api.stub.set_fault(Fault::DropConnection).await;
    assert!(get().await.is_err(), "a dropped connection is an error");

    api.stub.set_fault(Fault::RefuseConnections).await;
    let refused = get().await.unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");
    let raw = tokio::net::TcpStream::connect(api.stub.addr()).await;
    assert!(raw.is_err(), "the socket is closed");

    api.stub.set_fault(Fault::None).await;
    assert_eq!(get().await.unwrap().status(), 200);
}

// ---- Mailed one-time tokens: recover, verify, PUT /user -------------------

/// A stub writing its mails to a fresh folder.
async fn with_outbox(config: StubConfig) -> (Api, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(config.outbox(dir.path().join("outbox"))).await;
    (api, dir)
}

/// The `.eml` files in the stub's outbox folder, oldest first.
fn eml_files(api: &Api) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(api.stub.outbox_dir().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

/// `(token, token_hash)` read from the newest `.eml` file.
fn tokens_from_outbox(api: &Api) -> (String, String) {
    let newest = eml_files(api).pop().expect("a mail in the outbox");
    let text = std::fs::read_to_string(newest).unwrap();
    let line = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {text}"))
            .to_owned()
    };
    (line("token: "), line("token_hash: "))
}

impl Api {
    async fn recover(&self, email: &str) -> Answer {
        self.post("/recover", json!({"email": email})).await
    }

    async fn verify(&self, body: Value) -> Answer {
        self.post("/verify", body).await
    }

    async fn update_user(&self, token: Option<&str>, body: Value) -> Answer {
        self.call(Method::PUT, "/user", Some(body), token, Shape::Legacy)
            .await
    }

    /// `GET` of a mail's link, redirects not followed, no API key (a
    /// browser has none).
    async fn open_link(&self, link: &str) -> (StatusCode, String) {
        let browser = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = browser.get(link).send().await.unwrap();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (response.status(), location)
    }
}

#[tokio::test]
async fn recover_answers_alike_and_writes_one_mail_for_a_known_address() {
    let (api, _dir) = with_outbox(StubConfig::es256()).await;
    session_token(&api.signup("ann@example.com").await);

    let known = api.recover("Ann@Example.com").await;
    let unknown = api.recover("nobody@example.com").await;
    assert_eq!((known.status, &known.body), (StatusCode::OK, &json!({})));
    assert_eq!((unknown.status, &unknown.body), (known.status, &known.body));

    let mails = api.stub.mails();
    assert_eq!(mails.len(), 1, "no mail for an unknown address");
    let files = eml_files(&api);
    assert_eq!(files.len(), 1, "one file, no temporary left: {files:?}");
    assert_eq!(mails[0].path.as_deref(), Some(files[0].as_path()));
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert_eq!(text, mails[0].message);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the mail holds a live token");
    }
    // RFC 5322: CRLF headers, a blank line, the body.
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    for header in [
        "From: ",
        "To: ann@example.com",
        "Subject: Reset your password",
        "Date: ",
        "Message-ID: <",
    ] {
        assert!(
            head.split("\r\n").any(|l| l.starts_with(header)),
            "{header:?} in {head}"
        );
    }
    let (token, token_hash) = tokens_from_outbox(&api);
    assert!(
        token.len() == 6 && token.bytes().all(|b| b.is_ascii_digit()),
        "{token}"
    );
    assert!(token_hash.len() == 56 && token_hash.bytes().all(|b| b.is_ascii_hexdigit()));
    let link = mails[0].link().unwrap();
    assert!(
        link.starts_with(&format!(
            "{}/verify?token={token_hash}&type=recovery&redirect_to=",
            api.stub.issuer()
        )),
        "{link}"
    );
    assert!(body.contains(link));
    let user = api
        .post(
            "/token?grant_type=password",
            json!({"email": "ann@example.com", "password": PASSWORD}),
        )
        .await;
    assert!(
        user.body["user"]["recovery_sent_at"].is_string(),
        "{}",
        user.body
    );

    // Within a minute of the last mail: upstream's per-address interval.
    let again = api.recover("ann@example.com").await;
    again.legacy_error(429, "over_email_send_rate_limit");
    assert!(
        again.body["msg"]
            .as_str()
            .unwrap()
            .starts_with("For security purposes")
    );
    api.call(
        Method::POST,
        "/recover",
        Some(json!({"email": "ann@example.com"})),
        None,
        Shape::Versioned,
    )
    .await
    .versioned_error(429, "over_email_send_rate_limit");
    assert_eq!(api.stub.mails().len(), 1);

    api.recover("not-an-email")
        .await
        .legacy_error(400, "validation_failed");
    api.post("/recover", json!({}))
        .await
        .legacy_error(400, "validation_failed");
    api.post(
        "/recover",
        json!({"email": "ann@example.com", "code_challenge": "x", "code_challenge_method": "s256"}),
    )
    .await
    .legacy_error(400, "validation_failed");
    let no_key = api
        .http
        .post(format!("{}/auth/v1/recover", api.stub.url()))
        .json(&json!({"email": "ann@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_recovery_token_logs_in_once_then_put_user_sets_the_password() {
    let (api, _dir) = with_outbox(StubConfig::es256()).await;
    let (_, old_refresh) = session_token(&api.signup("bo@example.com").await);
    api.recover("bo@example.com").await;
    let (_, token_hash) = tokens_from_outbox(&api);

    let verified = api
        .verify(json!({"type": "recovery", "token_hash": token_hash}))
        .await;
    let (access, _) = session_token(&verified);
    assert_eq!(verified.body["user"]["email"], "bo@example.com");
    assert_eq!(decode_part(&access, 1)["amr"][0]["method"], "otp");
    // Single use, in both error shapes.
    api.verify(json!({"type": "recovery", "token_hash": token_hash}))
        .await
        .legacy_error(403, "otp_expired");
    api.call(
        Method::POST,
        "/verify",
        Some(json!({"type": "recovery", "token_hash": token_hash})),
        None,
        Shape::Versioned,
    )
    .await
    .versioned_error(403, "otp_expired");

    api.update_user(None, json!({"password": "a new password"}))
        .await
        .legacy_error(401, "no_authorization");
    api.update_user(Some(&access), json!({"password": "abc"}))
        .await
        .legacy_error(422, "weak_password");
    api.update_user(Some(&access), json!({"password": PASSWORD}))
        .await
        .legacy_error(422, "same_password");
    api.update_user(Some(&access), json!({"app_metadata": {"role": "admin"}}))
        .await
        .legacy_error(403, "not_admin");
    let updated = api
        .update_user(
            Some(&access),
            json!({"password": "a new password", "data": {"theme": "dark"}}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["user_metadata"], json!({"theme": "dark"}));

    // The other session is gone, the caller's stays, the old password fails.
    api.refresh(&old_refresh)
        .await
        .legacy_error(400, "refresh_token_not_found");
    assert_eq!(api.user(&access).await.status, 200);
    api.login("bo@example.com", PASSWORD)
        .await
        .legacy_error(400, "invalid_credentials");
    session_token(&api.login("bo@example.com", "a new password").await);
    // The password change reset the mail interval.
    assert_eq!(api.recover("bo@example.com").await.status, 200);
}

#[tokio::test]
async fn a_new_token_voids_the_last_and_codes_need_their_address() {
    let config = StubConfig::es256().email_max_frequency(Duration::ZERO);
    let (api, _dir) = with_outbox(config).await;
    session_token(&api.signup("cy@example.com").await);
    session_token(&api.signup("dee@example.com").await);

    api.recover("cy@example.com").await;
    let (first_code, first_hash) = tokens_from_outbox(&api);
    api.recover("cy@example.com").await;
    let (code, hash) = tokens_from_outbox(&api);
    assert_ne!(hash, first_hash);
    api.verify(json!({"type": "recovery", "token_hash": first_hash}))
        .await
        .legacy_error(403, "otp_expired");
    api.verify(json!({"type": "recovery", "email": "cy@example.com", "token": first_code}))
        .await
        .legacy_error(403, "otp_expired");
    // The code belongs to its address, and to its type.
    api.verify(json!({"type": "recovery", "email": "dee@example.com", "token": code}))
        .await
        .legacy_error(403, "otp_expired");
    api.verify(json!({"type": "recovery", "email": "nobody@example.com", "token": code}))
        .await
        .legacy_error(403, "otp_expired");
    api.verify(json!({"type": "signup", "token_hash": hash}))
        .await
        .legacy_error(403, "otp_expired");
    let answer = api
        .verify(json!({"type": "recovery", "email": "CY@example.com", "token": code}))
        .await;
    assert!(!session_token(&answer).0.is_empty());
    api.verify(json!({"type": "recovery", "token_hash": hash}))
        .await
        .legacy_error(403, "otp_expired");

    // `email` accepts a recovery code too (as upstream, for email OTPs).
    api.recover("cy@example.com").await;
    let (code, _) = tokens_from_outbox(&api);
    session_token(
        &api.verify(json!({"type": "email", "email": "cy@example.com", "token": code}))
            .await,
    );

    // Malformed requests.
    for (body, status) in [
        (json!({"token_hash": "x"}), 400),
        (json!({"type": "recovery"}), 400),
        (
            json!({"type": "recovery", "token": "1", "token_hash": "x"}),
            400,
        ),
        (
            json!({"type": "recovery", "token_hash": "x", "email": "cy@example.com"}),
            400,
        ),
        (json!({"type": "recovery", "token": "123456"}), 400),
        (json!({"type": "bogus", "token_hash": "x"}), 400),
        (
            json!({"type": "recovery", "token": "123456", "email": "nope"}),
            422,
        ),
    ] {
        api.verify(body.clone())
            .await
            .legacy_error(status, "validation_failed");
    }
    api.verify(json!({"type": "sms", "token": "123456", "phone": "+15555550100"}))
        .await
        .legacy_error(403, "otp_expired");
    let bad_json = api
        .http
        .post(format!("{}/auth/v1/verify", api.stub.url()))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn mailed_tokens_expire() {
    let (api, _dir) = with_outbox(StubConfig::es256().otp_expiry(Duration::ZERO)).await;
    session_token(&api.signup("eve@example.com").await);
    api.recover("eve@example.com").await;
    let (code, hash) = tokens_from_outbox(&api);
    api.verify(json!({"type": "recovery", "token_hash": hash}))
        .await
        .legacy_error(403, "otp_expired");
    api.verify(json!({"type": "recovery", "email": "eve@example.com", "token": code}))
        .await
        .legacy_error(403, "otp_expired");
}

#[tokio::test]
async fn signup_confirmation_by_the_mailed_link() {
    let config = StubConfig::es256()
        .require_email_confirmation()
        .site_url("https://app.example.com");
    let (api, _dir) = with_outbox(config).await;
    // A redirect to a foreign site is not honoured: the link goes home.
    let created = api
        .post(
            "/signup?redirect_to=https%3A%2F%2Fevil.example.net%2F",
            json!({"email": "fay@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(created.body.get("access_token").is_none());
    api.login("fay@example.com", PASSWORD)
        .await
        .legacy_error(400, "email_not_confirmed");
    let mail = api.stub.last_mail_to("fay@example.com").unwrap();
    assert_eq!(mail.kind, gotrue_stub::MailKind::Confirmation);
    assert!(
        mail.message
            .contains("\r\nSubject: Confirm your email address\r\n")
    );
    let link = mail.link().unwrap();
    assert!(
        link.ends_with("&type=signup&redirect_to=https%3A%2F%2Fapp.example.com%2F"),
        "{link}"
    );

    let (status, location) = api.open_link(link).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (target, fragment) = location.split_once('#').unwrap();
    assert_eq!(target, "https://app.example.com/");
    let fields: std::collections::HashMap<String, String> =
        form_urlencoded::parse(fragment.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(fields["type"], "signup");
    assert_eq!(fields["token_type"], "bearer");
    let user = api.user(&fields["access_token"]).await;
    assert!(user.body["email_confirmed_at"].is_string(), "{}", user.body);
    session_token(&api.login("fay@example.com", PASSWORD).await);

    // Used once: the second click lands with the error in the fragment.
    let (status, location) = api.open_link(link).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location,
        "https://app.example.com/#error=access_denied&error_code=otp_expired&error_description=Email+link+is+invalid+or+has+expired&sb="
    );
    // Parameters missing: a JSON error, no redirect.
    let (status, _) = api
        .open_link(&format!("{}/verify?token=abc", api.stub.issuer()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // An allowed redirect (loopback, any port) is kept.
    api.post(
        "/signup?redirect_to=http%3A%2F%2F127.0.0.1%3A5173%2Fwelcome",
        json!({"email": "gus@example.com", "password": PASSWORD}),
    )
    .await;
    let link = api.stub.last_mail_to("gus@example.com").unwrap();
    let (_, location) = api.open_link(link.link().unwrap()).await;
    assert!(
        location.starts_with("http://127.0.0.1:5173/welcome#access_token="),
        "{location}"
    );
}

#[tokio::test]
async fn mail_quota_and_write_failures() {
    let config = StubConfig::es256()
        .require_email_confirmation()
        .email_rate_limit(Some(RateLimit {
            requests: 1,
            per: Duration::from_secs(3600),
        }));
    let (api, dir) = with_outbox(config).await;
    assert_eq!(api.signup("hal@example.com").await.status, 200);
    let refused = api.signup("ida@example.com").await;
    refused.legacy_error(429, "over_email_send_rate_limit");
    assert_eq!(refused.body["msg"], "email rate limit exceeded");
    assert!(
        api.stub.user_id("ida@example.com").is_none(),
        "the signup was undone"
    );
    api.stub.set_email_rate_limit(None);
    assert_eq!(api.signup("ida@example.com").await.status, 200);

    // The outbox folder vanishes: upstream's 500, and nothing changes.
    api.stub.confirm_email("hal@example.com").unwrap();
    std::fs::remove_dir_all(dir.path().join("outbox")).unwrap();
    api.recover("hal@example.com")
        .await
        .legacy_error(500, "unexpected_failure");
    std::fs::create_dir(dir.path().join("outbox")).unwrap();
    assert_eq!(
        api.recover("hal@example.com").await.status,
        200,
        "the failed mail did not count against the interval"
    );
}

#[tokio::test]
async fn recover_rate_limit_per_ip() {
    let api = Api::start(StubConfig::es256().recover_rate_limit(RateLimit {
        requests: 2,
        per: Duration::from_secs(60),
    }))
    .await;
    for _ in 0..2 {
        assert_eq!(api.recover("x@example.com").await.status, 200);
    }
    api.recover("x@example.com")
        .await
        .legacy_error(429, "over_request_rate_limit");
    api.stub.set_recover_rate_limit(None);
    assert_eq!(api.recover("x@example.com").await.status, 200);
}
