//! Shared wiring for the store and login tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use auth_kit::Clock;
use auth_kit::config::{LoginLimits, SignupLimits};
use auth_kit::limiter::RateLimiter;
use auth_kit::login::{LoginService, LoginServiceParts, ScopeMode};
use auth_kit::password::{PasswordHasher, PoolSize};
use auth_kit::policy::AccessPolicy;
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
        limiter: RateLimiter::in_process(limits, SignupLimits::STANDARD, clock.clone()),
        clock: clock.clone(),
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
