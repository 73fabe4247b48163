//! The service on a real loopback socket, in front of an in-process
//! gotrue-stub (an offline Supabase Auth stand-in); requests go through the
//! kit's client (`auth_kit::testing`).
#![allow(dead_code, clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::ops::Deref;

use auth_kit::config::{Environment, ServerSettings, TrafficSettings};
use auth_kit::http::ServeOptions;
pub use auth_kit::testing::{Reply, password_of};
use auth_kit::testing::{TestClient, TestDatabase, on_every_backend, serve_on_loopback};
use auth_kit_supabase::SupabaseSettings;
use gotrue_stub::{StubConfig, StubHandle};
use serde_json::{Value, json};

/// A running service, its stub, and its own fresh database; its requests
/// are the client's methods.
pub struct TestServer {
    pub backend: &'static str,
    pub stub: StubHandle,
    client: TestClient,
    _db: TestDatabase,
}

impl TestServer {
    /// A stub (ES256, autoconfirm) and the service in front of it, with a
    /// 2-second Supabase timeout.
    pub async fn start(db: TestDatabase) -> Self {
        Self::start_with(db, StubConfig::es256(), &[]).await
    }

    pub async fn start_with(db: TestDatabase, stub: StubConfig, env: &[(&str, &str)]) -> Self {
        let stub = gotrue_stub::spawn(stub).await.unwrap();
        let mut pairs = vec![
            ("SUPABASE_URL".to_owned(), stub.url().to_owned()),
            ("SUPABASE_KEY".to_owned(), stub.anon_key().to_owned()),
            ("SUPABASE_TIMEOUT_SECONDS".to_owned(), "2".to_owned()),
            ("DATABASE_URL".to_owned(), db.url().to_owned()),
        ];
        pairs.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let env = Environment::from_pairs(pairs);
        let supabase = SupabaseSettings::from_env(&env).unwrap();
        let server = ServerSettings::from_env(&env, service::SERVICE_NAME).unwrap();
        let traffic = TrafficSettings::from_env(&env).unwrap();
        let app = service::start(&supabase, &server, &traffic)
            .await
            .unwrap();
        let base = serve_on_loopback(app.router, ServeOptions::from_settings(&traffic)).await;
        Self {
            backend: db.backend_name(),
            stub,
            client: TestClient::new(base),
            _db: db,
        }
    }

    /// Signs `email` up, with the password [`password_of`] gives it; the
    /// user's id.
    pub async fn signup(&self, email: &str, data: Value) -> String {
        let reply = self
            .json(
                "POST",
                "/auth/signup",
                None,
                json!({"email": email, "password": password_of(email), "data": data}),
            )
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.body["user"]["id"].as_str().unwrap().to_owned()
    }

    /// `POST /auth/signup` with `email` and `password`; the whole answer.
    pub async fn post_signup(&self, email: &str, password: &str) -> Reply {
        let body = json!({"email": email, "password": password});
        self.json("POST", "/auth/signup", None, body).await
    }

    /// `POST /items` titled `title`, as the holder of `token`; the whole
    /// answer.
    pub async fn post_item(&self, token: &str, title: &str) -> Reply {
        let body = json!({"title": title});
        self.json("POST", "/items", Some(token), body).await
    }

    /// A password grant (username = email); the whole answer.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.form(
            "/token",
            &format!("grant_type=password&username={email}&password={password}"),
        )
        .await
    }

    /// The access token of a successful password grant.
    pub async fn token(&self, email: &str) -> String {
        let reply = self.login(email, &password_of(email)).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body["access_token"].as_str().unwrap().to_owned()
    }
}

impl Deref for TestServer {
    type Target = TestClient;

    fn deref(&self) -> &TestClient {
        &self.client
    }
}

/// A server on every backend this run can test: SQLite, and PostgreSQL
/// when configured.
pub async fn servers(test: &str) -> Vec<TestServer> {
    on_every_backend(test, TestServer::start).await
}
