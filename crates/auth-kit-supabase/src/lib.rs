//! Supabase Auth as the identity provider of an axum service, on top of
//! auth-kit (docs/contract.md, "Routes of the supabase service" and
//! "Supabase tokens"). Only the supabase service carries this crate.
//!
//! - [`SupabaseSettings`] and [`check_supabase`] (in [`config`]):
//!   SUPABASE_URL, SUPABASE_KEY, SUPABASE_JWT_SECRET, SUPABASE_VERIFY,
//!   SUPABASE_TIMEOUT_SECONDS.
//! - [`SupabaseClient`]: signup, password sign-in, refresh, get user,
//!   logout, password recovery; bounded by the timeout, retried only when
//!   idempotent.
//! - [`SupabaseError`]: every failure classified by upstream's error code,
//!   and mapped to the contract through [`auth_kit::ApiError`],
//!   [`auth_kit::OAuthError`] and [`auth_kit::AuthError`] (`From` impls); an
//!   unreachable, slow or broken Supabase is always 503
//!   `supabase_unavailable`.
//! - [`SupabaseVerifier`]: local verification against the project's JWKS
//!   (or the legacy HS256 secret), or remote verification.
//! - [`SupabaseAuth`] and the extractors [`CurrentSupabaseUser`],
//!   [`RequireSupabasePermission`], [`RequireSupabaseRole`]: roles and
//!   permissions from `app_metadata`, never `user_metadata`.
//!
//! Wiring a service:
//!
//! ```no_run
//! use auth_kit::config::Environment;
//! use auth_kit::policy::{AccessPolicy, PolicySpec, RoleSpec};
//! use auth_kit_supabase::{
//!     CurrentSupabaseUser, SupabaseAuth, SupabaseClient, SupabaseSettings, SupabaseVerifier,
//! };
//! use axum::extract::FromRef;
//! use axum::{Json, Router, routing::get};
//!
//! #[derive(Clone, FromRef)]
//! struct AppState {
//!     supabase: SupabaseClient,
//!     auth: SupabaseAuth,
//! }
//!
//! async fn me(caller: CurrentSupabaseUser) -> Json<auth_kit_supabase::SupabaseProfile> {
//!     Json(caller.user.profile())
//! }
//!
//! /// The service's roles; Supabase tokens carry no scopes.
//! const POLICY: PolicySpec = PolicySpec {
//!     scopes: &[],
//!     permissions: &["notes:delete"],
//!     roles: &[
//!         RoleSpec::new("user"),
//!         RoleSpec::holding_everything("admin"),
//!     ],
//!     signup_role: "user",
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = SupabaseSettings::from_env(&Environment::load()?)?;
//! let supabase = SupabaseClient::new(&settings)?;
//! let verifier = SupabaseVerifier::new(&settings, supabase.clone());
//! let auth = SupabaseAuth::new(verifier, AccessPolicy::new(&POLICY)?);
//! let app: Router = Router::new()
//!     .route("/users/me", get(me))
//!     .with_state(AppState { supabase, auth });
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

mod claims;
mod client;
pub mod config;
mod error;
mod extract;
pub mod settings;
mod verifier;

pub use claims::{SupabaseClaims, SupabaseProfile, SupabaseUser};
pub use client::{
    ClientBuildError, LogoutScope, Session, SignUpOutcome, SupabaseClient, UserRecord,
    WeakPasswordNotice,
};
pub use config::{
    JwtSecret, KeyKind, SupabaseKey, SupabaseSettings, VerifyMode, check_supabase, classify_key,
};
pub use error::{SupabaseError, Unavailable};
pub use extract::{
    CurrentSupabaseUser, RequireSupabasePermission, RequireSupabaseRole, SupabaseAuth,
};
pub use verifier::{JwksTiming, SUPABASE_AUDIENCE, SupabaseVerifier};

use auth_kit::error::ApiError;

/// The shortest password Supabase Auth accepts by default, in characters
/// (a project may ask for more: its 422 names the rule).
pub const MIN_PASSWORD_CHARS: usize = 6;
/// The longest password Supabase Auth accepts, in UTF-8 bytes (bcrypt
/// reads no more).
pub const MAX_PASSWORD_BYTES: usize = 72;

/// The password rules every Supabase project has, checked before asking
/// it (422 naming the field), so a signup's schema can state them: at
/// least [`MIN_PASSWORD_CHARS`] characters (Supabase counts bytes: a
/// shorter password of wide characters would slip past it) and at most
/// [`MAX_PASSWORD_BYTES`] bytes.
pub fn check_signup_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::validation(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters long"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::validation(
            "password",
            format!("must be at most {MAX_PASSWORD_BYTES} bytes long"),
        ));
    }
    Ok(())
}

/// The OpenAPI schema of a signup's password, from the constants
/// [`check_signup_password`] checks, so the document and the check cannot
/// drift apart (`#[schema(schema_with = auth_kit_supabase::password_schema)]`).
pub fn password_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(MIN_PASSWORD_CHARS))
        .max_length(Some(MAX_PASSWORD_BYTES))
        .description(Some(format!(
            "At least {MIN_PASSWORD_CHARS} characters (the Supabase project may ask for more) and at most {MAX_PASSWORD_BYTES} bytes in UTF-8"
        )))
        .build()
}
