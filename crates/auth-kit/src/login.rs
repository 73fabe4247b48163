//! Signup, the token endpoint (password and refresh grants) and logout:
//! what a jwt or oauth2 service's handlers call, so they stay a few lines.
//!
//! The password grant, step by step:
//! 1. `username` and `password` present, else `invalid_request`; unknown
//!    requested scopes are `invalid_scope` at once.
//! 2. The failed-login limiter is asked first (429 with `Retry-After`).
//! 3. The password is verified on the hashing pool; an unknown user costs a
//!    dummy verification, so unknown user, wrong password and disabled user
//!    take the same time and get the same `invalid_grant`.
//! 4. An obsolete hash is replaced (verify-and-update).
//! 5. Requested scopes the user does not hold: `invalid_scope`. None
//!    requested: everything the role holds.
//! 6. A login is stored with its first refresh token (only its SHA-256), and
//!    the access token carries the login's id as `sid`.
//!
//! The refresh grant spends the presented token and issues the next in the
//! same login; presenting a spent token revokes the whole login (RFC 9700
//! reuse detection), as does losing a race with a concurrent use of it.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::{
    AdminBootstrap, LoginLimits, USERNAME_MAX_CHARS, USERNAME_MIN_CHARS, is_valid_username,
};
use crate::error::{ApiError, OAuthError, no_store_headers};
use crate::http::TokenRequest;
use crate::limiter::LoginLimiter;
use crate::password::{
    MAX_PASSWORD_BYTES, PasswordError, PasswordHasher, Verification, check_new_password,
};
use crate::policy::{AccessPolicy, ScopeSet};
use crate::store::{
    AdminBootstrapOutcome, EnsureAdminError, NewUser, RefreshTokenHash, Store, User,
};
use crate::token::{AccessGrant, TokenIssuer, VerifiedAccess};

/// Whether tokens carry scopes (the oauth2 service) or not (the jwt service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeMode {
    /// Tokens carry the granted `scope`; `/token` honours the `scope` field.
    Scoped,
    /// Tokens carry no `scope`; `/token` ignores the `scope` field and its
    /// answer has no `scope`.
    Unscoped,
}

/// Longest username looked up at login; longer ones cannot exist.
const MAX_LOGIN_USERNAME_CHARS: usize = 256;
/// Longest refresh token looked up (ours are 43 characters).
const MAX_REFRESH_TOKEN_CHARS: usize = 512;

/// The successful answer of `/token` (RFC 6749 section 5.1).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    /// The JWT access token.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The opaque refresh token (single use).
    pub refresh_token: String,
    /// The granted scopes, space-separated (absent without scopes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        (no_store_headers(), Json(self)).into_response()
    }
}

/// The longest email address a signup accepts, in characters.
pub const EMAIL_MAX_CHARS: usize = 254;
/// The longest `full_name` a signup accepts, in characters.
pub const FULL_NAME_MAX_CHARS: usize = 256;

/// A signup (POST /auth/signup). Unknown fields, such as `role`, are
/// ignored: a signup always gets the policy's signup role.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignupRequest {
    /// 3 to 64 of `A-Z a-z 0-9 _ . -`, unique ignoring case.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::schemas::username))]
    pub username: String,
    /// 8 characters to 1024 bytes.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::schemas::password))]
    pub password: String,
    /// Optional; unique ignoring case.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::schemas::email))]
    pub email: Option<String>,
    /// Optional, up to 256 characters.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::schemas::full_name))]
    pub full_name: Option<String>,
}

impl std::fmt::Debug for SignupRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignupRequest")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl SignupRequest {
    /// The signup rules (the OpenAPI schema states the same, from the same
    /// constants); the error names the field (422).
    pub fn validate(&self) -> Result<(), ApiError> {
        if !is_valid_username(&self.username) {
            return Err(ApiError::validation(
                "username",
                format!(
                    "must be {USERNAME_MIN_CHARS} to {USERNAME_MAX_CHARS} characters of A-Z a-z 0-9 _ . -"
                ),
            ));
        }
        check_new_password(&self.password).map_err(|m| ApiError::validation("password", m))?;
        if let Some(email) = &self.email
            && (email.chars().count() > EMAIL_MAX_CHARS
                || !email_address::EmailAddress::is_valid(email)
                || !email.contains('.'))
        {
            return Err(ApiError::validation(
                "email",
                "must be a valid email address",
            ));
        }
        if self
            .full_name
            .as_ref()
            .is_some_and(|n| n.chars().count() > FULL_NAME_MAX_CHARS)
        {
            return Err(ApiError::validation(
                "full_name",
                format!("must be at most {FULL_NAME_MAX_CHARS} characters"),
            ));
        }
        Ok(())
    }
}

/// Everything the token endpoint and signup need, wired once at start-up.
#[derive(Debug, Clone)]
pub struct LoginService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    hasher: PasswordHasher,
    issuer: TokenIssuer,
    limiter: LoginLimiter,
    policy: AccessPolicy,
    scopes: ScopeMode,
    refresh_ttl: Duration,
    clock: Clock,
}

/// The parts a [`LoginService`] is built from. Every field is required.
#[derive(Debug)]
pub struct LoginServiceParts {
    /// Users, logins and refresh tokens.
    pub store: Store,
    /// The hashing pool.
    pub hasher: PasswordHasher,
    /// Signs access tokens.
    pub issuer: TokenIssuer,
    /// Roles and scopes.
    pub policy: AccessPolicy,
    /// Whether tokens carry scopes.
    pub scopes: ScopeMode,
    /// REFRESH_TOKEN_EXPIRE_DAYS.
    pub refresh_ttl: Duration,
    /// Failed-login limits.
    pub limits: LoginLimits,
    /// The clock for refresh-token expiry and the limiter (the store and
    /// issuer should share it).
    pub clock: Clock,
}

impl LoginService {
    /// Wires the service.
    pub fn new(parts: LoginServiceParts) -> Self {
        let limiter = LoginLimiter::new(parts.limits, parts.clock.clone());
        Self {
            inner: Arc::new(Inner {
                store: parts.store,
                hasher: parts.hasher,
                issuer: parts.issuer,
                limiter,
                policy: parts.policy,
                scopes: parts.scopes,
                refresh_ttl: parts.refresh_ttl,
                clock: parts.clock,
            }),
        }
    }

    /// The store behind the service.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Creates a user with the signup role.
    pub async fn signup(&self, request: &SignupRequest) -> Result<User, ApiError> {
        request.validate()?;
        let password_hash = self
            .inner
            .hasher
            .hash(&request.password)
            .await
            .map_err(busy)?;
        let new = NewUser {
            username: &request.username,
            email: request.email.as_deref(),
            full_name: request.full_name.as_deref(),
            password_hash: &password_hash,
            role: self.inner.policy.signup_role(),
        };
        self.inner
            .store
            .create_user(&new)
            .await
            .map_err(ApiError::from)
    }

    /// The token endpoint: dispatches on `grant_type`.
    pub async fn token(
        &self,
        request: TokenRequest,
        client_ip: Option<IpAddr>,
    ) -> Result<TokenResponse, OAuthError> {
        let Some(grant_type) = request.grant_type.as_deref() else {
            return Err(OAuthError::InvalidRequest(Cow::Borrowed(
                "The grant_type parameter is missing",
            )));
        };
        let requested = match self.inner.scopes {
            ScopeMode::Scoped => self
                .inner
                .policy
                .parse_scope_request(request.scope.as_deref())
                .map_err(|e| {
                    OAuthError::InvalidScope(Cow::Owned(format!(
                        "The requested scope is unknown: {}",
                        e.0
                    )))
                })?,
            ScopeMode::Unscoped => None,
        };
        match grant_type {
            "password" => self.password_grant(&request, requested, client_ip).await,
            "refresh_token" => self.refresh_grant(&request, requested).await,
            other => Err(OAuthError::UnsupportedGrantType(Cow::Owned(format!(
                "The grant type '{}' is not supported",
                other.chars().take(64).collect::<String>()
            )))),
        }
    }

    async fn password_grant(
        &self,
        request: &TokenRequest,
        requested: Option<ScopeSet>,
        client_ip: Option<IpAddr>,
    ) -> Result<TokenResponse, OAuthError> {
        let inner = &self.inner;
        let (Some(username), Some(password)) =
            (request.username.as_deref(), request.password.as_ref())
        else {
            return Err(OAuthError::InvalidRequest(Cow::Borrowed(
                "The username and password parameters are required",
            )));
        };
        // Reserve the attempt before any work: the limit holds even for
        // concurrent guesses.
        let attempt = inner
            .limiter
            .begin(username, client_ip)
            .map_err(|retry_after| OAuthError::TooManyRequests { retry_after })?;
        // An absurdly long username cannot exist, and a password over the
        // signup limit cannot be right (and would make legacy hashes
        // expensive): skip the lookup, spend the same dummy verification.
        // (Usernames are not held to the signup rule here: users migrated
        // from elsewhere may have other shapes.)
        let plausible = username.chars().count() <= MAX_LOGIN_USERNAME_CHARS
            && password.expose().len() <= MAX_PASSWORD_BYTES;
        let found = if plausible {
            inner
                .store
                .credentials(username)
                .await
                .map_err(OAuthError::unavailable)?
        } else {
            None
        };
        let stored_hash = found.as_ref().map(|(_, hash)| hash.as_str());
        let verification = inner
            .hasher
            .verify(password.expose(), stored_hash)
            .await
            .map_err(oauth_busy)?;
        let (user, rehashed) = match (found, verification) {
            (Some((user, _)), Verification::Match { rehashed }) if !user.disabled => {
                (user, rehashed)
            }
            // Unknown user, wrong password, disabled user: one answer, and a
            // disabled user's right password counts as a failure too, so the
            // limiter cannot tell them apart either.
            _ => {
                attempt.failed();
                return Err(OAuthError::bad_credentials());
            }
        };
        attempt.succeeded();
        if let Some(new_hash) = rehashed
            && let Err(e) = inner.store.set_password_hash(user.id, &new_hash).await
        {
            // The login still succeeds; the upgrade is retried next time.
            tracing::warn!(user_id = user.id, error = %e, "could not store the upgraded password hash");
        }
        let held = inner.policy.scopes_of_role(&user.role);
        let granted = match requested {
            Some(requested) if !requested.is_subset(&held) => {
                return Err(OAuthError::InvalidScope(Cow::Borrowed(
                    "The requested scope exceeds what the user holds",
                )));
            }
            Some(requested) => requested,
            None => held,
        };
        let grant = granted.to_string();
        let refresh_token = new_refresh_token();
        let login_id = inner
            .store
            .start_login(
                user.id,
                &grant,
                &RefreshTokenHash::of(&refresh_token),
                inner.refresh_ttl,
            )
            .await
            .map_err(OAuthError::unavailable)?
            // Deleted while the password was being checked.
            .ok_or_else(OAuthError::bad_credentials)?;
        self.respond(user.id, &grant, &login_id, refresh_token)
    }

    async fn refresh_grant(
        &self,
        request: &TokenRequest,
        requested: Option<ScopeSet>,
    ) -> Result<TokenResponse, OAuthError> {
        let inner = &self.inner;
        let Some(presented) = request.refresh_token.as_ref() else {
            return Err(OAuthError::InvalidRequest(Cow::Borrowed(
                "The refresh_token parameter is missing",
            )));
        };
        if presented.expose().len() > MAX_REFRESH_TOKEN_CHARS {
            return Err(OAuthError::bad_refresh_token());
        }
        let old = RefreshTokenHash::of(presented.expose());
        let record = inner
            .store
            .find_refresh_token(&old)
            .await
            .map_err(OAuthError::unavailable)?;
        let Some(record) = record.filter(|r| r.revoked_at.is_none()) else {
            return Err(OAuthError::bad_refresh_token());
        };
        if record.spent_at.is_some() {
            self.revoke_for_reuse(&record.login_id).await;
            return Err(OAuthError::bad_refresh_token());
        }
        if record.expires_at <= inner.clock.now() {
            return Err(OAuthError::InvalidGrant(Cow::Borrowed(
                "The refresh token expired",
            )));
        }
        let user = inner
            .store
            .user(record.user_id)
            .await
            .map_err(OAuthError::unavailable)?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            return Err(OAuthError::bad_refresh_token());
        };
        let original = inner.policy.parse_grant(&record.scope);
        let wanted = match requested {
            Some(requested) if !requested.is_subset(&original) => {
                return Err(OAuthError::InvalidScope(Cow::Borrowed(
                    "The requested scope exceeds the original grant",
                )));
            }
            Some(requested) => requested,
            None => original,
        };
        // Never more than the role holds now (it may have been lowered).
        let granted = inner
            .policy
            .intersect(&wanted, &inner.policy.scopes_of_role(&user.role))
            .to_string();
        let next = new_refresh_token();
        let rotated = inner
            .store
            .rotate_refresh_token(
                &old,
                &RefreshTokenHash::of(&next),
                &record.login_id,
                inner.refresh_ttl,
            )
            .await
            .map_err(OAuthError::unavailable)?;
        if !rotated {
            // Spent by a concurrent request, expired, or revoked meanwhile:
            // treated as reuse, like a spent token.
            self.revoke_for_reuse(&record.login_id).await;
            return Err(OAuthError::bad_refresh_token());
        }
        self.respond(user.id, &granted, &record.login_id, next)
    }

    async fn revoke_for_reuse(&self, login_id: &str) {
        tracing::warn!(
            login_id,
            "refresh token reuse detected; the login is revoked"
        );
        if let Err(e) = self.inner.store.revoke_login(login_id, None).await {
            tracing::error!(login_id, error = %e, "could not revoke a login after refresh token reuse");
        }
    }

    fn respond(
        &self,
        user_id: i64,
        grant: &str,
        login_id: &str,
        refresh_token: String,
    ) -> Result<TokenResponse, OAuthError> {
        let scope = match self.inner.scopes {
            ScopeMode::Scoped => Some(grant),
            ScopeMode::Unscoped => None,
        };
        let access = self
            .inner
            .issuer
            .issue(&AccessGrant {
                user_id,
                scope,
                login_id: Some(login_id),
            })
            .map_err(OAuthError::unavailable)?;
        Ok(TokenResponse {
            expires_in: access.expires_in,
            access_token: access.into_string(),
            token_type: "bearer".to_owned(),
            refresh_token,
            scope: scope.map(str::to_owned),
        })
    }

    /// Logs out the token's login: its refresh tokens and access tokens stop
    /// working at once. Other logins of the same user are untouched.
    pub async fn logout(&self, access: &VerifiedAccess) -> Result<(), ApiError> {
        if let Some(login_id) = access.login_id() {
            self.inner
                .store
                .revoke_login(login_id, Some(access.user_id))
                .await?;
        }
        Ok(())
    }

    /// Creates the bootstrap admin when missing; never changes an existing user.
    pub async fn bootstrap_admin(
        &self,
        admin: &AdminBootstrap,
    ) -> Result<AdminBootstrapOutcome, ApiError> {
        let hasher = self.inner.hasher.clone();
        let password = admin.password.clone();
        let outcome = self
            .inner
            .store
            .ensure_admin(
                &admin.username,
                || async move { hasher.hash(&password).await },
            )
            .await
            .map_err(|e| match e {
                EnsureAdminError::Store(e) => ApiError::from(e),
                EnsureAdminError::Hash(e) => busy(e),
            })?;
        match &outcome {
            AdminBootstrapOutcome::Created => {
                tracing::info!(username = %admin.username, "created the bootstrap admin")
            }
            AdminBootstrapOutcome::LeftAlone => {
                tracing::info!(username = %admin.username, "the bootstrap admin exists; left it alone");
            }
            AdminBootstrapOutcome::NotAnAdmin { role, disabled } => {
                let state = if *disabled { "disabled" } else { "enabled" };
                tracing::warn!(
                    username = %admin.username,
                    "ADMIN_USERNAME names an existing user who is not an enabled admin (role '{role}', {state}); nothing was changed, and ADMIN_PASSWORD is not used. {}",
                    AdminBootstrapOutcome::promote_hint(&admin.username)
                );
            }
        }
        Ok(outcome)
    }
}

/// 256 random bits, base64url: an opaque refresh token.
fn new_refresh_token() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::random::bytes::<32>())
}

fn busy(e: PasswordError) -> ApiError {
    ApiError::Unavailable(Some(Arc::new(e)))
}

fn oauth_busy(e: PasswordError) -> OAuthError {
    OAuthError::Unavailable(Some(Arc::new(e)))
}
