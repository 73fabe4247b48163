//! The service: its state and its start-up. Supabase Auth owns the users
//! and their passwords; auth-kit (`crates/auth-kit`) talks to it and
//! verifies its tokens; this crate wires both to routes and keeps the items.
//!
//! Reading order: this file, `policy.rs` (who may do what), then
//! `routes/mod.rs` (the route table), `routes/auth.rs`, `routes/users.rs`,
//! `routes/items.rs`, `main.rs`.

use auth_kit::Clock;
use auth_kit::config::{ServerSettings, TrafficSettings};
use auth_kit::limiter::{MailRequestLimiter, RateLimiter, RedisUrlError};
use auth_kit::policy::{AccessPolicy, PolicyError};
use auth_kit::run::App;
use auth_kit::store::{OpenError, ServiceMigrations, Store};
use auth_kit_supabase::{
    ClientBuildError, SupabaseAuth, SupabaseClient, SupabaseSettings, SupabaseVerifier,
};
use axum::extract::FromRef;

pub mod items;
pub mod policy;
pub mod routes;

/// The name the project was stamped with (the default SQLite file name).
pub const SERVICE_NAME: &str = env!("CARGO_PKG_NAME");

/// What every handler can reach, each part by its own type.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// Signup, sign-in, refresh and logout against Supabase Auth.
    pub supabase: SupabaseClient,
    /// Verifies Supabase access tokens; the extractors find it here.
    pub auth: SupabaseAuth,
    /// The items (owned by Supabase user ids).
    pub store: Store,
    /// Failed sign-ins per email and client address, signups per address:
    /// checked here, before Supabase, which sees only this service's address.
    pub limiter: RateLimiter,
    /// Recovery mails asked for, per email and per client address, so one
    /// client cannot spend the project's mail budget (Supabase counts them
    /// per address it sees: this service's).
    pub mail_requests: MailRequestLimiter,
}

/// This service's own migrations (`migrations/`, versions from 1000 up),
/// run after auth-kit's.
pub fn migrations() -> ServiceMigrations {
    auth_kit::service_migrations!()
}

/// Opens the database and wires the Supabase client and verifier.
pub async fn start(
    supabase: &SupabaseSettings,
    server: &ServerSettings,
    traffic: &TrafficSettings,
) -> Result<App, StartupError> {
    let store = Store::connect_with(&server.database_url, &migrations())
        .await
        .map_err(StartupError::Database)?;
    let client = SupabaseClient::new(supabase).map_err(StartupError::Client)?;
    let verifier = SupabaseVerifier::new(supabase, client.clone());
    // Warm the key cache; when Supabase is not reachable yet, the first
    // request fetches the keys instead (and answers 503 until it can).
    if let Err(e) = verifier.prefetch_keys().await {
        tracing::warn!(error = %e, "could not fetch the project's signing keys yet");
    }
    // Roles and permissions come from `app_metadata`; the policy says
    // what each role may do.
    let policy = AccessPolicy::new(&policy::POLICY).map_err(StartupError::Policy)?;
    let auth = SupabaseAuth::new(verifier, policy);
    let limiter = RateLimiter::from_settings(traffic, SERVICE_NAME, Clock::System)
        .map_err(StartupError::Limiter)?;
    let mail_requests = MailRequestLimiter::from_settings(
        traffic,
        traffic.mail_limits,
        SERVICE_NAME,
        Clock::System,
    )
    .map_err(StartupError::Limiter)?;
    let state = AppState {
        supabase: client,
        auth,
        store: store.clone(),
        limiter,
        mail_requests,
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
    /// The HTTP client for Supabase could not be built.
    #[error("the Supabase client could not be built: {0}")]
    Client(ClientBuildError),
    /// The access policy (`policy.rs`) names something it does not
    /// declare, or a route's guard does (a typo in a marker type).
    #[error("{0}")]
    Policy(PolicyError),
    /// RATE_LIMIT_URL could not be used.
    #[error("{0}")]
    Limiter(RedisUrlError),
}
