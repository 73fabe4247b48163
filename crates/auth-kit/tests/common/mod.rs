//! Shared wiring for the store and login tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use auth_kit::Clock;
use auth_kit::config::{EmailVerification, LoginLimits};
use auth_kit::login::{LoginService, LoginServiceParts, ScopeMode};
use auth_kit::password::{PasswordHasher, PoolSize};
use auth_kit::policy::AccessPolicy;
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

pub async fn harness_with(
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
        hasher: PasswordHasher::new(PoolSize {
            workers: 2,
            queue: 256,
        }),
        issuer,
        policy: AccessPolicy::standard(),
        scopes,
        refresh_ttl: REFRESH_TTL,
        refresh_reuse: reuse,
        limits,
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
