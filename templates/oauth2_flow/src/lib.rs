//! The service: its state and its start-up. Everything security-related
//! lives in auth-kit (`crates/auth-kit`); this crate wires it to routes.
//!
//! Reading order: this file, `policy.rs` (who may do what), then
//! `routes/mod.rs` (the route table), `routes/auth.rs`, `routes/account.rs`,
//! `routes/users.rs`, `routes/items.rs`, `main.rs`.

use std::sync::Arc;
use std::time::Duration;

use auth_kit::Clock;
use auth_kit::account::{self, AccountService};
use auth_kit::config::ServiceSettings;
use auth_kit::extract::Authenticator;
use auth_kit::limiter::{RateLimiter, RedisUrlError};
use auth_kit::login::{LoginService, LoginServiceParts, ScopeMode};
use auth_kit::password::{PasswordHasher, PoolSize};
use auth_kit::policy::{AccessPolicy, PolicyError};
use auth_kit::run::App;
use auth_kit::store::{OpenError, ServiceMigrations, Store, User};
use auth_kit::token::{AccessTokenVerifier, ClaimRules, JwkSet, TokenIssuer};
use axum::extract::FromRef;

pub mod items;
pub mod policy;
pub mod routes;

/// The name the project was stamped with: the default token issuer and
/// audience, and the default SQLite file name.
pub const SERVICE_NAME: &str = env!("CARGO_PKG_NAME");

/// Tokens carry OAuth2 scopes (RFC 9068 `scope`), and routes require them.
pub const SCOPES: ScopeMode = ScopeMode::Scoped;

/// What every handler can reach, each part by its own type (`State<Store>`,
/// `State<LoginService>`, ...); auth-kit's extractors find the
/// `Authenticator` here.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// Verifies tokens and loads the caller.
    pub auth: Authenticator<User>,
    /// Signup, the token endpoint, logout.
    pub logins: LoginService,
    /// Email verification, password reset and change, and their mails.
    pub accounts: AccountService,
    /// Users and items.
    pub store: Store,
    /// The public key set, for asymmetric algorithms only.
    pub jwks: Option<Arc<JwkSet>>,
    /// How many items one user may own.
    pub item_quota: ItemQuota,
}

/// How many items one user may own (ITEMS_MAX_PER_USER).
#[derive(Debug, Clone, Copy)]
pub struct ItemQuota(pub u32);

/// This service's own migrations (`migrations/`, versions from 1000 up),
/// run after auth-kit's.
pub fn migrations() -> ServiceMigrations {
    auth_kit::service_migrations!()
}

/// Opens the database (running migrations), creates the bootstrap admin
/// when configured, and wires auth-kit.
pub async fn start(settings: &ServiceSettings) -> Result<App, StartupError> {
    let store = Store::connect_with(&settings.server.database_url, &migrations())
        .await
        .map_err(StartupError::Database)?
        // A verified user and login served from memory for at most
        // SESSION_CACHE_SECONDS; every change to them drops the entry
        // here at once, and on the other instances through PostgreSQL
        // or Redis.
        .with_session_cache(&settings.session_cache, SERVICE_NAME)
        .map_err(StartupError::Limiter)?;
    let keys = Arc::new(settings.keys.clone());
    let rules = ClaimRules::new(&settings.issuer, &settings.audience, settings.leeway);
    let policy = AccessPolicy::new(&policy::POLICY).map_err(StartupError::Policy)?;
    let logins = LoginService::new(LoginServiceParts {
        store: store.clone(),
        hasher: PasswordHasher::new(PoolSize::for_this_machine()),
        issuer: TokenIssuer::new(
            keys.clone(),
            rules.clone(),
            settings.access_token_ttl,
            Clock::System,
        ),
        policy: policy.clone(),
        scopes: SCOPES,
        refresh_ttl: settings.refresh_token_ttl,
        refresh_reuse: settings.refresh_reuse,
        // In Redis when RATE_LIMIT_URL is set, so every instance shares
        // the counters; in this process otherwise.
        limiter: RateLimiter::from_settings(&settings.traffic, SERVICE_NAME, Clock::System)
            .map_err(StartupError::Limiter)?,
        clock: Clock::System,
        email_verification: settings.account.email_verification,
    });
    let accounts = AccountService::start(logins.clone(), settings).map_err(StartupError::Mail)?;
    tracing::info!("mail is {}", settings.account.mail.describe());
    if let Some(admin) = &settings.admin {
        logins
            .bootstrap_admin(admin)
            .await
            .map_err(|e| StartupError::Admin(e.to_string()))?;
    }
    store.spawn_purge_task(Duration::from_secs(600));
    let state = AppState {
        auth: Authenticator::new(
            AccessTokenVerifier::new(&keys, rules),
            store.clone(),
            policy,
            SCOPES,
        ),
        logins,
        accounts,
        store: store.clone(),
        jwks: keys.jwks().map(Arc::new),
        item_quota: ItemQuota(settings.items_max_per_user),
    };
    Ok(App {
        router: routes::router(state).map_err(StartupError::Policy)?,
        store,
    })
}

/// Why the service could not start (after its configuration was accepted).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// DATABASE_URL could not be opened or migrated.
    #[error("{0}; check DATABASE_URL (`cargo auth validate` tests it)")]
    Database(OpenError),
    /// The bootstrap admin could not be created.
    #[error("the bootstrap admin could not be created: {0}")]
    Admin(String),
    /// The mail outbox or the SMTP client could not be set up.
    #[error("{0}; check MAIL_URL and MAIL_FROM (`cargo auth validate` tests them)")]
    Mail(account::StartError),
    /// The access policy (`policy.rs`) names something it does not
    /// declare, or a route's guard does (a typo in a marker type).
    #[error("{0}")]
    Policy(PolicyError),
    /// RATE_LIMIT_URL could not be used (limiter or session cache).
    #[error("{0}")]
    Limiter(RedisUrlError),
}
