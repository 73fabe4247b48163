//! Signup, the token endpoint (password and refresh grants) and logout:
//! what a jwt or oauth2 service's handlers call, so they stay a few lines.
//!
//! The password grant, step by step:
//! 1. `username` and `password` present, else `invalid_request`; unknown
//!    requested scopes are `invalid_scope` at once.
//! 2. The failed-login limiter is asked first (429 with `Retry-After`; 503
//!    when its shared counters cannot be reached).
//! 3. The password is verified on the hashing pool; an unknown user costs a
//!    dummy verification, so unknown user, wrong password and disabled user
//!    take the same time and get the same `invalid_grant`.
//! 4. An obsolete hash is replaced (verify-and-update).
//! 5. With REQUIRE_VERIFIED_EMAIL, a user whose email is not verified gets
//!    `invalid_grant` "email not verified": only now, once the password
//!    checked out, so the answer tells a guesser nothing.
//! 6. Requested scopes the user does not hold: `invalid_scope`. None
//!    requested: everything the role holds.
//! 7. A login is stored with its first refresh token (only its SHA-256), and
//!    the access token carries the login's id as `sid`.
//!
//! Signup is counted per client address first (SIGNUP_MAX_PER_IP), then a
//! taken username or email is refused before any hashing, and the hash runs
//! in the signups' share of the pool, so a signup flood cannot starve logins.
//!
//! The refresh grant spends the presented token and issues the next in the
//! same login. Presenting a spent token again within the reuse window
//! ([`crate::refresh`]) of its rotation, while its successor is unspent,
//! answers with that same successor and a fresh access token (two tabs, or
//! a retry, refreshing at once); any other reuse revokes the whole login
//! (RFC 9700 reuse detection).

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::{
    AdminBootstrap, EmailVerification, USERNAME_MAX_CHARS, USERNAME_MIN_CHARS, is_valid_email,
    is_valid_username,
};
use crate::error::{ApiError, OAuthError, no_store_headers};
use crate::http::TokenRequest;
use crate::limiter::RateLimiter;
use crate::password::{
    MAX_PASSWORD_BYTES, PasswordError, PasswordHasher, Verification, check_new_password,
};
use crate::policy::{AccessPolicy, ScopeSet};
use crate::refresh::{ReuseWindow, SealedSuccessor, SuccessorBinding};
use crate::store::{
    AdminBootstrapOutcome, CreateUserError, EnsureAdminError, NewUser, RefreshTokenHash, Rotation,
    Store, User,
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
            && !is_valid_email(email)
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
    limiter: RateLimiter,
    policy: AccessPolicy,
    scopes: ScopeMode,
    refresh_ttl: Duration,
    refresh_reuse: ReuseWindow,
    clock: Clock,
    email_verification: EmailVerification,
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
    /// REFRESH_TOKEN_REUSE_SECONDS: how long a rotated refresh token still
    /// gets its successor instead of revoking the login.
    pub refresh_reuse: ReuseWindow,
    /// Failed logins and signups per username and client address.
    pub limiter: RateLimiter,
    /// The clock for refresh-token expiry (the store, issuer and limiter
    /// should share it).
    pub clock: Clock,
    /// Whether the password grant refuses users whose email is not
    /// verified (REQUIRE_VERIFIED_EMAIL).
    pub email_verification: EmailVerification,
}

impl LoginService {
    /// Wires the service.
    pub fn new(parts: LoginServiceParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: parts.store,
                hasher: parts.hasher,
                issuer: parts.issuer,
                limiter: parts.limiter,
                policy: parts.policy,
                scopes: parts.scopes,
                refresh_ttl: parts.refresh_ttl,
                refresh_reuse: parts.refresh_reuse,
                clock: parts.clock,
                email_verification: parts.email_verification,
            }),
        }
    }

    /// The store behind the service.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The hashing pool (the account lifecycle hashes new passwords on it).
    pub(crate) fn hasher(&self) -> &PasswordHasher {
        &self.inner.hasher
    }

    /// The failed-login limiter: a wrong current password at a password
    /// change counts against the same budget as a failed `/token`.
    pub(crate) fn limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    /// Whether logins need a verified email.
    pub(crate) fn email_verification(&self) -> EmailVerification {
        self.inner.email_verification
    }

    /// Creates a user with the signup role, for a client at `client_ip`.
    pub async fn signup(
        &self,
        request: &SignupRequest,
        client_ip: Option<IpAddr>,
    ) -> Result<User, ApiError> {
        request.validate()?;
        self.inner.limiter.count_signup(client_ip).await?;
        // Refused before the hash is paid for; the unique indexes still
        // decide when two signups race.
        if let Some(field) = self
            .inner
            .store
            .taken(&request.username, request.email.as_deref())
            .await?
        {
            return Err(CreateUserError::Taken(field).into());
        }
        let password_hash = self
            .inner
            .hasher
            .hash_for_signup(&request.password)
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

    /// The password grant. Long on purpose: the order of its steps is the
    /// security property (the attempt reserved before any work, one answer
    /// for every failure, the hash upgraded only after a match, the email
    /// rule and the scopes only for a caller who knows the password, the
    /// login started only if nothing changed meanwhile), and it reads top
    /// to bottom here.
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
        let attempt = inner.limiter.begin_login(username, client_ip).await?;
        // An absurdly long username cannot exist, and a password over the
        // signup limit cannot be right (and would make legacy hashes
        // expensive): skip the lookup, spend the same dummy verification.
        // (Usernames are not held to the signup rule here: users migrated
        // from elsewhere may have other shapes.)
        let plausible = username.chars().count() <= MAX_LOGIN_USERNAME_CHARS
            && password.expose().len() <= MAX_PASSWORD_BYTES;
        // Failing to judge the password is the service's fault, not the
        // client's: the attempt is released without counting.
        let found = if plausible {
            match inner.store.credentials(username).await {
                Ok(found) => found,
                Err(e) => {
                    attempt.released().await;
                    return Err(OAuthError::unavailable(e));
                }
            }
        } else {
            None
        };
        let stored_hash = found.as_ref().map(|(_, hash)| hash.as_str());
        let verification = match inner.hasher.verify(password.expose(), stored_hash).await {
            Ok(verification) => verification,
            Err(e) => {
                attempt.released().await;
                return Err(oauth_busy(e));
            }
        };
        let (user, mut checked_hash, rehashed) = match (found, verification) {
            (Some((user, hash)), Verification::Match { rehashed }) if !user.disabled => {
                (user, hash, rehashed)
            }
            // Unknown user, wrong password, disabled user: one answer, and a
            // disabled user's right password counts as a failure too, so the
            // limiter cannot tell them apart either.
            _ => {
                attempt.failed().await;
                return Err(OAuthError::bad_credentials());
            }
        };
        attempt.succeeded().await;
        if let Some(new_hash) = rehashed {
            match inner
                .store
                .set_password_hash(user.id, &checked_hash, &new_hash)
                .await
            {
                Ok(true) => checked_hash = new_hash,
                // Changed meanwhile: the login below will not start.
                Ok(false) => {}
                // The login still succeeds; the upgrade is retried next time.
                Err(e) => {
                    tracing::warn!(user_id = user.id, error = %e, "could not store the upgraded password hash");
                }
            }
        }
        // Only a caller who knows the password learns that the email is not
        // verified: a guesser gets the same answer as for any wrong password.
        if inner.email_verification == EmailVerification::Required
            && user.email.is_some()
            && !user.email_verified
        {
            return Err(OAuthError::InvalidGrant(Cow::Borrowed(
                "email not verified",
            )));
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
                &checked_hash,
                &grant,
                &RefreshTokenHash::of(&refresh_token),
                inner.refresh_ttl,
            )
            .await
            .map_err(OAuthError::unavailable)?
            // Deleted, disabled, or given a new password while the password
            // was being checked.
            .ok_or_else(OAuthError::bad_credentials)?;
        self.respond(user.id, &grant, &login_id, refresh_token)
    }

    /// The refresh grant. Long on purpose, like the password grant: reuse
    /// outside the window revokes the login before anything else is
    /// looked at, the scopes never exceed the original grant or the role's
    /// current scopes, and the one conditional rotation decides between a
    /// new successor, the reuse window's successor, and revocation.
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
        let now = inner.clock.now();
        match record.spent_at {
            // Spent before the window: reuse, whatever the database says now.
            Some(spent_at) if now.saturating_sub(spent_at) > reuse_seconds(inner.refresh_reuse) => {
                self.revoke_for_reuse(&record.login_id).await;
                return Err(OAuthError::bad_refresh_token());
            }
            Some(_) => {}
            None if record.expires_at <= now => {
                return Err(OAuthError::InvalidGrant(Cow::Borrowed(
                    "The refresh token expired",
                )));
            }
            None => {}
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
        let next_hash = RefreshTokenHash::of(&next);
        let sealed = SealedSuccessor::seal(
            presented.expose(),
            &next,
            &SuccessorBinding {
                parent: &old,
                successor: &next_hash,
                login_id: &record.login_id,
            },
        );
        let rotation = inner
            .store
            .rotate_refresh_token(
                &old,
                &next_hash,
                &sealed,
                &record.login_id,
                inner.refresh_ttl,
                inner.refresh_reuse,
            )
            .await
            .map_err(OAuthError::unavailable)?;
        let successor = match rotation {
            Rotation::Rotated => next,
            Rotation::AlreadyRotated { successor, sealed } => {
                let binding = SuccessorBinding {
                    parent: &old,
                    successor: &successor,
                    login_id: &record.login_id,
                };
                let Some(opened) = sealed.open(presented.expose(), &binding) else {
                    // Only a changed row can get here: treated as reuse.
                    tracing::error!(login_id = %record.login_id, "a stored refresh-token successor does not open with its parent");
                    self.revoke_for_reuse(&record.login_id).await;
                    return Err(OAuthError::bad_refresh_token());
                };
                tracing::info!(login_id = %record.login_id, "a refresh token was presented again within the reuse window; answered with its successor");
                opened.to_string()
            }
            Rotation::Refused => {
                // Spent by a concurrent request whose successor is used, or
                // outside the window, expired, or revoked meanwhile: reuse.
                self.revoke_for_reuse(&record.login_id).await;
                return Err(OAuthError::bad_refresh_token());
            }
        };
        self.respond(user.id, &granted, &record.login_id, successor)
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

/// The reuse window in the clock's seconds; a disabled window lets
/// nothing through (not even a reuse within the same second).
fn reuse_seconds(window: ReuseWindow) -> i64 {
    if window.is_disabled() {
        -1
    } else {
        i64::try_from(window.as_secs()).unwrap_or(i64::MAX)
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
