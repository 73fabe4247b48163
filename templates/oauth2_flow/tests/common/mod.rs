//! The service on a real loopback socket, with its own database and mail
//! outbox; requests go through the kit's client (`auth_kit::testing`).
#![allow(dead_code, clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::ops::Deref;

use auth_kit::config::{Environment, ServiceSettings};
use auth_kit::http::ServeOptions;
pub use auth_kit::testing::{Reply, password_of};
use auth_kit::testing::{TestClient, TestDatabase, on_every_backend, serve_on_loopback};
use serde_json::{Value, json};

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// A running service backed by its own fresh database, writing its mails
/// into its own outbox folder; its requests are the client's methods.
pub struct TestServer {
    pub backend: &'static str,
    client: TestClient,
    outbox: tempfile::TempDir,
    _db: TestDatabase,
}

impl TestServer {
    /// Starts the service on 127.0.0.1, on a free port, with an admin.
    pub async fn start(db: TestDatabase) -> Self {
        Self::start_with(db, &[]).await
    }

    /// The same, with more settings.
    pub async fn start_with(db: TestDatabase, settings: &[(&str, &str)]) -> Self {
        let outbox = tempfile::tempdir().unwrap();
        let mut pairs = vec![
            ("SECRET_KEY".to_owned(), auth_kit::random::secret_hex()),
            ("DATABASE_URL".to_owned(), db.url().to_owned()),
            ("ADMIN_USERNAME".to_owned(), ADMIN.to_owned()),
            ("ADMIN_PASSWORD".to_owned(), ADMIN_PASSWORD.to_owned()),
            (
                "MAIL_URL".to_owned(),
                format!("file://{}", outbox.path().display()),
            ),
            (
                "PUBLIC_URL".to_owned(),
                "https://app.example.com".to_owned(),
            ),
        ];
        pairs.extend(
            settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let env = Environment::from_pairs(pairs);
        let settings = ServiceSettings::from_env(&env, service::SERVICE_NAME).unwrap();
        let app = service::start(&settings).await.unwrap();
        let options = ServeOptions::from_settings(&settings.traffic);
        let base = serve_on_loopback(app.router, options).await;
        Self {
            backend: db.backend_name(),
            client: TestClient::new(base),
            outbox,
            _db: db,
        }
    }

    /// Every mail to `to` so far, oldest first (the outbox's file names
    /// sort by time).
    pub fn mails_to(&self, to: &str) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.outbox.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        let header = format!("To: {to}");
        files
            .into_iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .filter(|m| m.lines().any(|l| l.eq_ignore_ascii_case(&header)))
            .collect()
    }

    /// Waits (up to 10 s) for the `n`-th mail to `to` (mail is sent off
    /// the request path) and returns it.
    pub async fn mail(&self, to: &str, n: usize) -> String {
        for _ in 0..200 {
            if let Some(mail) = self.mails_to(to).get(n - 1) {
                return mail.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{}: no mail #{n} to {to} within 10 s", self.backend);
    }

    /// Signs `username` up, with the password [`password_of`] gives it; the
    /// user's id.
    pub async fn signup(&self, username: &str) -> i64 {
        let reply = self
            .json(
                "POST",
                "/auth/signup",
                None,
                json!({"username": username, "password": password_of(username)}),
            )
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.body["id"].as_i64().unwrap()
    }

    /// A password grant; the whole token response.
    pub async fn login(&self, username: &str, password: &str, scope: Option<&str>) -> Reply {
        let mut form = format!(
            "grant_type=password&username={username}&password={}",
            password.replace(' ', "+")
        );
        if let Some(scope) = scope {
            form.push_str(&format!("&scope={}", scope.replace(' ', "+")));
        }
        self.form("/token", &form).await
    }

    /// The access token of a successful password grant.
    pub async fn token(&self, username: &str, password: &str, scope: Option<&str>) -> String {
        let reply = self.login(username, password, scope).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn admin_token(&self) -> String {
        self.token(ADMIN, ADMIN_PASSWORD, None).await
    }

    /// A refresh grant with the `refresh_token` of an earlier token
    /// response; the whole answer.
    pub async fn refresh(&self, tokens: &Value) -> Reply {
        let refresh_token = tokens["refresh_token"].as_str().unwrap();
        self.form(
            "/token",
            &format!("grant_type=refresh_token&refresh_token={refresh_token}"),
        )
        .await
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
    servers_with(test, &[]).await
}

/// [`servers`] with more settings.
pub async fn servers_with(test: &str, settings: &[(&str, &str)]) -> Vec<TestServer> {
    on_every_backend(test, |db| TestServer::start_with(db, settings)).await
}

/// The value of a mail's `token: ...` line.
pub fn token_in(mail: &str) -> String {
    mail.lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap_or_else(|| panic!("no token line in {mail}"))
        .trim()
        .to_owned()
}

/// The contract's error body.
pub fn error(code: &str, description: &str) -> Value {
    json!({"error": code, "error_description": description})
}

/// `reply` has `status` and exactly this `WWW-Authenticate` challenge.
pub fn assert_challenge(reply: &Reply, status: u16, challenge: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(challenge),
        "{reply:?}"
    );
}

/// `reply` is a 403 refused by role or permission: the contract's
/// `forbidden` body with `description`, and no challenge (the token is fine).
pub fn assert_forbidden(reply: &Reply, description: &str) {
    assert_eq!(
        (reply.status, reply.header("www-authenticate")),
        (403, None),
        "{reply:?}"
    );
    assert_eq!(reply.body, error("forbidden", description));
}
