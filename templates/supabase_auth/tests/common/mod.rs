//! The service on a real loopback socket, in front of an in-process
//! gotrue-stub (an offline Supabase Auth stand-in), and a small HTTP client.
#![allow(dead_code, clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;

use auth_kit::config::{Environment, ServerSettings, TrafficSettings};
use auth_kit_supabase::SupabaseSettings;
use auth_kit::http::ServeOptions;
use auth_kit::testing::TestDatabase;
use gotrue_stub::{StubConfig, StubHandle};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// A running service, its stub, and its own fresh database.
pub struct TestServer {
    pub base: String,
    pub backend: &'static str,
    pub stub: StubHandle,
    client: reqwest::Client,
    _db: TestDatabase,
}

/// What came back: status, headers, and the body as JSON (or a JSON string).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `{"error", "error_description"}` body as a pair.
    pub fn error(&self) -> (&str, &str) {
        (
            self.body["error"].as_str().unwrap_or(""),
            self.body["error_description"].as_str().unwrap_or(""),
        )
    }
}

impl TestServer {
    /// A stub (ES256, autoconfirm) and the service in front of it, with a
    /// 2-second Supabase timeout.
    pub async fn start(db: TestDatabase) -> Self {
        Self::start_with(db, StubConfig::es256(), &[]).await
    }

    pub async fn start_with(db: TestDatabase, stub: StubConfig, env: &[(&str, &str)]) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
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
        let app = service::App::start(&supabase, &server, &traffic)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(auth_kit::http::serve(
            listener,
            app.router,
            ServeOptions::from_settings(&traffic),
            std::future::pending(),
        ));
        Self {
            base,
            backend: db.backend_name(),
            stub,
            client: reqwest::Client::new(),
            _db: db,
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        self.send_forwarded(None, method, path, token, content_type, body)
            .await
    }

    /// `send`, as a proxy forwarding the request of `client` in
    /// `X-Forwarded-For` (the tests' requests come from 127.0.0.1).
    pub async fn send_forwarded(
        &self,
        client: Option<&str>,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .body(body);
        if let Some(client) = client {
            request = request.header("x-forwarded-for", client);
        }
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send("GET", path, token, None, Vec::new()).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.send("DELETE", path, token, None, Vec::new()).await
    }

    pub async fn json(&self, method: &str, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(
            method,
            path,
            token,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    pub async fn form(&self, path: &str, form: &str) -> Reply {
        self.send(
            "POST",
            path,
            None,
            Some("application/x-www-form-urlencoded"),
            form.as_bytes().to_vec(),
        )
        .await
    }

    /// Signs `email` up with the password `password-of-<email>`; the user's id.
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

pub fn password_of(email: &str) -> String {
    format!("password-of-{email}")
}

/// Every backend this run can test: SQLite, and PostgreSQL when configured.
pub async fn servers(test: &str) -> Vec<TestServer> {
    let mut servers = Vec::new();
    for db in TestDatabase::all(test).await {
        servers.push(TestServer::start(db).await);
    }
    servers
}
