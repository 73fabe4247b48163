//! Shared wiring for the store and login tests.
#![allow(dead_code)]

pub mod policy;

use std::sync::Arc;
use std::time::Duration;

use auth_kit::Clock;
use auth_kit::config::{EmailVerification, LoginLimits, SignupLimits};
use auth_kit::limiter::RateLimiter;
use auth_kit::login::{LoginService, LoginServiceParts, ScopeMode};
use auth_kit::password::{PasswordHasher, PoolSize};
use auth_kit::refresh::ReuseWindow;
use auth_kit::store::Store;
use auth_kit::token::{AccessTokenVerifier, ClaimRules, Leeway, SigningKeys, TokenIssuer};

pub struct Harness {
    pub store: Store,
    pub logins: LoginService,
    pub verifier: AccessTokenVerifier,
    pub clock: Clock,
}

pub const REFRESH_TTL: Duration = Duration::from_secs(14 * 86_400);

pub async fn harness(url: &str, scopes: ScopeMode, limits: LoginLimits) -> Harness {
    harness_full(
        url,
        scopes,
        limits,
        ReuseWindow::STANDARD,
        EmailVerification::Optional,
    )
    .await
}

pub async fn harness_with_reuse(
    url: &str,
    scopes: ScopeMode,
    limits: LoginLimits,
    reuse: ReuseWindow,
) -> Harness {
    harness_full(url, scopes, limits, reuse, EmailVerification::Optional).await
}

pub async fn harness_with_verification(
    url: &str,
    scopes: ScopeMode,
    limits: LoginLimits,
    email_verification: EmailVerification,
) -> Harness {
    harness_full(
        url,
        scopes,
        limits,
        ReuseWindow::STANDARD,
        email_verification,
    )
    .await
}

async fn harness_full(
    url: &str,
    scopes: ScopeMode,
    limits: LoginLimits,
    reuse: ReuseWindow,
    email_verification: EmailVerification,
) -> Harness {
    let clock = Clock::manual(Clock::System.now());
    let limiter = RateLimiter::in_process(limits, SignupLimits::STANDARD, clock.clone());
    let pool = PoolSize {
        workers: 2,
        queue: 256,
    };
    harness_parts(url, scopes, limiter, pool, clock, reuse, email_verification).await
}

/// A harness with the given limiter, hashing pool and clock.
pub async fn harness_with(
    url: &str,
    scopes: ScopeMode,
    limiter: RateLimiter,
    pool: PoolSize,
    clock: Clock,
) -> Harness {
    let (reuse, verification) = (ReuseWindow::STANDARD, EmailVerification::Optional);
    harness_parts(url, scopes, limiter, pool, clock, reuse, verification).await
}

async fn harness_parts(
    url: &str,
    scopes: ScopeMode,
    limiter: RateLimiter,
    pool: PoolSize,
    clock: Clock,
    reuse: ReuseWindow,
    email_verification: EmailVerification,
) -> Harness {
    let store = Store::connect(url).await.unwrap().with_clock(clock.clone());
    let keys = Arc::new(SigningKeys::random_hmac());
    let rules = ClaimRules::new("svc", "svc", Leeway::seconds(30).unwrap());
    let issuer = TokenIssuer::new(
        keys.clone(),
        rules.clone(),
        Duration::from_secs(1800),
        clock.clone(),
    );
    let logins = LoginService::new(LoginServiceParts {
        store: store.clone(),
        hasher: PasswordHasher::new(pool),
        issuer,
        policy: policy::policy(),
        scopes,
        refresh_ttl: REFRESH_TTL,
        refresh_reuse: reuse,
        limiter,
        clock: clock.clone(),
        email_verification,
    });
    Harness {
        store,
        logins,
        verifier: AccessTokenVerifier::new(&keys, rules),
        clock,
    }
}

pub fn password_grant(
    username: &str,
    password: &str,
    scope: Option<&str>,
) -> auth_kit::http::TokenRequest {
    let mut form = format!("grant_type=password&username={username}&password={password}");
    if let Some(scope) = scope {
        form.push_str(&format!("&scope={}", scope.replace(' ', "+")));
    }
    auth_kit::http::TokenRequest::parse(form.as_bytes()).unwrap()
}

pub fn refresh_grant(token: &str, scope: Option<&str>) -> auth_kit::http::TokenRequest {
    let mut form = format!("grant_type=refresh_token&refresh_token={token}");
    if let Some(scope) = scope {
        form.push_str(&format!("&scope={}", scope.replace(' ', "+")));
    }
    auth_kit::http::TokenRequest::parse(form.as_bytes()).unwrap()
}

pub fn signup(username: &str, password: &str) -> auth_kit::login::SignupRequest {
    serde_json::from_value(serde_json::json!({"username": username, "password": password})).unwrap()
}

/// A folder the mailer writes `.eml` files into, and a reader for them.
pub struct Outbox {
    pub dir: tempfile::TempDir,
}

impl Outbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Every mail to `to` so far, oldest first (file names sort by time).
    pub fn mails_to(&self, to: &str) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .filter(|m| {
                m.lines()
                    .any(|l| l.eq_ignore_ascii_case(&format!("To: {to}")))
            })
            .collect()
    }

    /// Waits (up to 10 s) until `n` mails to `to` are there; the n-th.
    pub async fn nth_mail_to(&self, to: &str, n: usize) -> String {
        for _ in 0..200 {
            let mails = self.mails_to(to);
            if mails.len() >= n {
                return mails[n - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no mail #{n} to {to} within 10 s");
    }
}

/// The value of a mail's `token: ...` line.
pub fn token_in(mail: &str) -> String {
    mail.lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap_or_else(|| panic!("no token line in {mail}"))
        .trim()
        .to_owned()
}

/// The harness's service over real HTTP: `POST /token`, `POST /auth/signup`
/// and `GET /me` (any valid token), with the kit's layers, served by
/// `auth_kit::http::serve` on 127.0.0.1 with `options`. Answers the base URL.
pub async fn serve(h: &Harness, options: auth_kit::http::ServeOptions) -> String {
    use auth_kit::http::{ClientIp, JsonBody, TokenRequest};
    use auth_kit::login::{SignupRequest, TokenResponse};
    use auth_kit::store::User;
    use auth_kit::{ApiError, Authenticator, CurrentUser, OAuthError};
    use axum::extract::{FromRef, State};
    use axum::routing::{get, post};

    #[derive(Clone, FromRef)]
    struct AppState {
        logins: LoginService,
        auth: Authenticator<User>,
    }
    async fn token(
        State(logins): State<LoginService>,
        ClientIp(ip): ClientIp,
        request: TokenRequest,
    ) -> Result<TokenResponse, OAuthError> {
        logins.token(request, ip).await
    }
    async fn signup(
        State(logins): State<LoginService>,
        ClientIp(ip): ClientIp,
        JsonBody(request): JsonBody<SignupRequest>,
    ) -> Result<(axum::http::StatusCode, axum::Json<User>), ApiError> {
        let user = logins.signup(&request, ip).await?;
        Ok((axum::http::StatusCode::CREATED, axum::Json(user)))
    }
    async fn me(caller: CurrentUser) -> axum::Json<User> {
        axum::Json(caller.user)
    }
    let state = AppState {
        logins: h.logins.clone(),
        auth: Authenticator::new(
            h.verifier.clone(),
            h.store.clone(),
            policy::policy(),
            ScopeMode::Scoped,
        ),
    };
    let router = axum::Router::new()
        .route("/token", post(token))
        .route("/auth/signup", post(signup))
        .route("/me", get(me));
    let router = auth_kit::http::with_service_layers(router).with_state(state);
    auth_kit::testing::serve_on_loopback(router, options).await
}

/// Serve options with these trusted proxies and generous timeouts.
pub fn options(trusted_proxies: &str) -> auth_kit::http::ServeOptions {
    auth_kit::http::ServeOptions {
        trusted_proxies: trusted_proxies.parse().unwrap(),
        request_timeout: Duration::from_secs(30),
        header_read_timeout: Duration::from_secs(10),
    }
}

/// An HTTP client whose connections come from `local` (a loopback address).
pub fn client_from(local: [u8; 4]) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from(local))
        .build()
        .unwrap()
}

/// A password grant over HTTP, optionally with `X-Forwarded-For`.
pub async fn login(
    client: &reqwest::Client,
    base: &str,
    forwarded_for: Option<&str>,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let mut request = client
        .post(format!("{base}/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=password&username={username}&password={password}"
        ));
    if let Some(forwarded) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded);
    }
    request.send().await.unwrap()
}

/// A signup over HTTP, optionally with `X-Forwarded-For`.
pub async fn http_signup(
    client: &reqwest::Client,
    base: &str,
    forwarded_for: Option<&str>,
    username: &str,
) -> reqwest::Response {
    let mut request = client
        .post(format!("{base}/auth/signup"))
        .header("content-type", "application/json")
        .body(serde_json::json!({"username": username, "password": "correct horse"}).to_string());
    if let Some(forwarded) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded);
    }
    request.send().await.unwrap()
}

/// A throwaway redis-server on a free port (`redis-server` from PATH), or
/// `None` (with a line saying the test skips) when it is not installed.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub fn start(test: &str) -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self { port, child: None };
        if !server.restart() {
            assert!(
                std::env::var_os("REQUIRE_REDIS").is_none(),
                "{test}: REQUIRE_REDIS is set but redis-server is not installed"
            );
            eprintln!(
                "{test}: skipped, redis-server is not installed (apt-get install redis-server)"
            );
            return None;
        }
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port; `false` when there is no binary.
    pub fn restart(&mut self) -> bool {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(child) = child else {
            return false;
        };
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
