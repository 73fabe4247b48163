//! Authentication and authorization as axum extractors.
//!
//! The FastAPI forms and theirs here:
//!
//! | FastAPI | auth-kit |
//! |---|---|
//! | `Depends(oauth2_scheme)` | [`BearerToken`] |
//! | `Depends(get_current_active_user)` | [`CurrentUser`] |
//! | `Security(get_current_active_user, scopes=["items"])` | [`RequireScopes<Items>`](RequireScopes) |
//! | `Depends(require_permission("items:delete"))` | [`RequirePermission<DeleteItems>`](RequirePermission) |
//! | `Depends(get_current_admin_user)` | [`RequireRole<Admin>`](RequireRole) |
//!
//! Each one verifies the bearer token (algorithm pinned, see
//! [`crate::token`]), loads the user and its login through the service's
//! [`UserDirectory`] (one query: a deleted user or a revoked login fails at
//! once), refuses disabled users, then checks what the route needs. A route
//! names its requirement in its signature, so it cannot run without it:
//!
//! ```
//! use auth_kit::extract::{RequireScopes, ScopeRequirement};
//! use auth_kit::store::User;
//!
//! /// The `notes:write` scope (a service declares its own markers).
//! pub struct WriteNotes;
//! impl ScopeRequirement for WriteNotes {
//!     const SCOPES: &'static [&'static str] = &["notes:write"];
//! }
//!
//! async fn create_note(caller: RequireScopes<WriteNotes>) -> String {
//!     format!("user {} may write notes", caller.user.id)
//! }
//! ```
//!
//! The extractors find the [`Authenticator`] in the router state through
//! `FromRef`, so a service state only needs to hold one.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::AuthError;
use crate::login::ScopeMode;
use crate::policy::{AccessPolicy, GuardNames};
use crate::token::{AccessTokenVerifier, InvalidToken, MAX_TOKEN_BYTES, VerifiedAccess};

/// What an authorization check needs to know about a user.
pub trait Account: Clone + Send + Sync + 'static {
    /// The user's role name.
    fn role(&self) -> &str;
    /// Per-user permission grants (the role's come on top).
    fn granted_permissions(&self) -> &[String];
    /// Disabled users are refused with 403 on every protected route.
    fn is_disabled(&self) -> bool;
}

/// What the directory found for a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<U> {
    /// The user, whose login (if the token names one) is live.
    Found(U),
    /// No such user (deleted since the token was issued).
    UnknownUser,
    /// The token's login was logged out or revoked.
    RevokedLogin,
}

/// The directory could not answer (database down).
pub type LookupError = Arc<dyn std::error::Error + Send + Sync>;

/// Turns a verified token into a user. Services implement this on their
/// user store; auth-kit's [`crate::store::Store`] already does.
pub trait UserDirectory: Send + Sync + 'static {
    /// The user type handlers receive.
    type User: Account;

    /// The user `access` was issued to, checking its login (`sid`).
    fn find(
        &self,
        access: &VerifiedAccess,
    ) -> impl Future<Output = Result<Lookup<Self::User>, LookupError>> + Send;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `UserDirectory` made object-safe, so `Authenticator<U>` need not name
/// the directory type.
trait DynDirectory<U>: Send + Sync {
    fn find<'a>(
        &'a self,
        access: &'a VerifiedAccess,
    ) -> BoxFuture<'a, Result<Lookup<U>, LookupError>>;
}

impl<D: UserDirectory> DynDirectory<D::User> for D {
    fn find<'a>(
        &'a self,
        access: &'a VerifiedAccess,
    ) -> BoxFuture<'a, Result<Lookup<D::User>, LookupError>> {
        Box::pin(UserDirectory::find(self, access))
    }
}

/// Verifies tokens and loads users: the state every extractor here needs.
pub struct Authenticator<U> {
    verifier: Arc<AccessTokenVerifier>,
    directory: Arc<dyn DynDirectory<U>>,
    policy: Arc<AccessPolicy>,
    scopes: ScopeMode,
}

impl<U> Clone for Authenticator<U> {
    fn clone(&self) -> Self {
        Self {
            verifier: self.verifier.clone(),
            directory: self.directory.clone(),
            policy: self.policy.clone(),
            scopes: self.scopes,
        }
    }
}

impl<U> fmt::Debug for Authenticator<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl<U: Account> Authenticator<U> {
    /// Every argument is required: there is no default key, directory,
    /// policy or scope mode. With [`ScopeMode::Scoped`] every extractor here
    /// also checks the scopes its requirement names; with
    /// [`ScopeMode::Unscoped`] (tokens carry no scopes) roles and
    /// permissions alone decide.
    pub fn new<D: UserDirectory<User = U>>(
        verifier: AccessTokenVerifier,
        directory: D,
        policy: AccessPolicy,
        scopes: ScopeMode,
    ) -> Self {
        Self {
            verifier: Arc::new(verifier),
            directory: Arc::new(directory),
            policy: Arc::new(policy),
            scopes,
        }
    }

    /// The access policy checks run against.
    pub fn policy(&self) -> &AccessPolicy {
        &self.policy
    }

    /// 403 `insufficient_scope` naming all of `scopes` unless the caller's
    /// token carries every one of them and the caller's role still holds
    /// them (a demoted user's tokens lose the scopes at once, not when they
    /// expire). Always `Ok` for a service without scopes.
    pub fn check_scopes(
        &self,
        caller: &CurrentUser<U>,
        scopes: &'static [&'static str],
    ) -> Result<(), AuthError> {
        if self.scopes == ScopeMode::Unscoped {
            return Ok(());
        }
        let role = caller.user.role();
        if caller.access.has_scopes(scopes)
            && scopes.iter().all(|s| self.policy.role_holds_scope(role, s))
        {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope(scopes))
        }
    }

    /// Verifies the request's bearer token and loads its active user.
    pub async fn authenticate(&self, parts: &Parts) -> Result<CurrentUser<U>, AuthError> {
        let token = bearer_token(parts)?;
        let access = self.verifier.verify(token)?;
        let user = match self
            .directory
            .find(&access)
            .await
            .map_err(AuthError::Unavailable)?
        {
            Lookup::Found(user) => user,
            Lookup::UnknownUser => return Err(InvalidToken::UnknownUser.into()),
            Lookup::RevokedLogin => return Err(InvalidToken::Revoked.into()),
        };
        if user.is_disabled() {
            return Err(AuthError::Disabled);
        }
        Ok(CurrentUser { user, access })
    }
}

/// The raw bearer token (RFC 6750 section 2.1): the scheme is
/// case-insensitive; another scheme counts as no credentials; an empty or
/// over-long token is `invalid_token`.
pub fn bearer_token(parts: &Parts) -> Result<&str, AuthError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Err(AuthError::MissingCredentials);
    };
    let value = value.to_str().map_err(|_| InvalidToken::Malformed)?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingCredentials);
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(InvalidToken::Malformed.into());
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(InvalidToken::TooLong.into());
    }
    Ok(token)
}

/// The bearer token itself, unverified (FastAPI's `oauth2_scheme`).
///
/// Most routes want [`CurrentUser`] or a stricter extractor instead.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(pub String);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        bearer_token(parts).map(|t| BearerToken(t.to_owned()))
    }
}

/// An authenticated, active user (FastAPI's `get_current_active_user`).
///
/// `Option<CurrentUser>` is `None` when the request carries no bearer
/// token, and still rejects a bad one.
#[derive(Debug, Clone)]
pub struct CurrentUser<U = crate::store::User> {
    /// The user, as the directory loaded it.
    pub user: U,
    /// The verified token (scopes, login id).
    pub access: VerifiedAccess,
}

impl<S, U> FromRequestParts<S> for CurrentUser<U>
where
    U: Account,
    Authenticator<U>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Authenticator::<U>::from_ref(state)
            .authenticate(parts)
            .await
    }
}

impl<S, U> OptionalFromRequestParts<S> for CurrentUser<U>
where
    U: Account,
    Authenticator<U>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match Authenticator::<U>::from_ref(state)
            .authenticate(parts)
            .await
        {
            Ok(user) => Ok(Some(user)),
            Err(AuthError::MissingCredentials) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Scopes a route needs, named by a marker type.
pub trait ScopeRequirement: Send + Sync + 'static {
    /// Every scope the token must carry.
    const SCOPES: &'static [&'static str];
}

/// A permission a route needs, named by a marker type.
pub trait PermissionRequirement: Send + Sync + 'static {
    /// The permission (the role's or a per-user grant).
    const PERMISSION: &'static str;
    /// The scopes the token must also carry in a service with scopes, so a
    /// token asked for less (a down-scoped token) cannot use the
    /// permission. No default: each requirement says which scopes cover it.
    const SCOPES: &'static [&'static str];
}

/// A role a route needs, named by a marker type.
pub trait RoleRequirement: Send + Sync + 'static {
    /// The role.
    const ROLE: &'static str;
    /// The scopes the token must also carry in a service with scopes (see
    /// [`PermissionRequirement::SCOPES`]).
    const SCOPES: &'static [&'static str];
}

/// What a guarding extractor demands, as data: what OpenAPI shows for a
/// route that names it ([`crate::openapi`] derives each route's security
/// requirement and its 401/403 answers from it, so the document and the
/// check cannot drift apart).
pub trait RouteGuard {
    /// The scopes the token must carry in a service with scopes, and the
    /// permission or role whose absence is 403 `forbidden`.
    fn names() -> GuardNames<'static>;
    /// Why a user with a valid token is refused with 403 `forbidden` on
    /// every route this guard protects.
    fn account_refusal() -> &'static str {
        "the user is disabled"
    }
    /// What a 503 from this guard means.
    fn unavailable() -> &'static str {
        "`temporarily_unavailable`: the user store did not answer; retry after `Retry-After` seconds"
    }
}

impl<U> RouteGuard for CurrentUser<U> {
    fn names() -> GuardNames<'static> {
        GuardNames::default()
    }
}

macro_rules! guarded_extractor {
    ($(#[$doc:meta])* $name:ident<$marker:ident: $bound:ident>, names: $names:expr, |$caller:ident, $auth:ident| $check:expr) => {
        $(#[$doc])*
        pub struct $name<$marker, U = crate::store::User> {
            /// The user.
            pub user: U,
            /// The verified token.
            pub access: VerifiedAccess,
            marker: PhantomData<fn() -> $marker>,
        }

        impl<$marker, U: fmt::Debug> fmt::Debug for $name<$marker, U> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("user", &self.user).field("access", &self.access).finish()
            }
        }

        impl<S, $marker, U> FromRequestParts<S> for $name<$marker, U>
        where
            $marker: $bound,
            U: Account,
            Authenticator<U>: FromRef<S>,
            S: Send + Sync,
        {
            type Rejection = AuthError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
                let $auth = Authenticator::<U>::from_ref(state);
                let $caller = $auth.authenticate(parts).await?;
                $check?;
                Ok(Self { user: $caller.user, access: $caller.access, marker: PhantomData })
            }
        }

        impl<$marker: $bound, U> RouteGuard for $name<$marker, U> {
            fn names() -> GuardNames<'static> {
                $names
            }
        }
    };
}

guarded_extractor!(
    /// An active user whose token carries every scope of `S`
    /// (FastAPI's `Security(get_current_active_user, scopes=[...])`), and
    /// whose role still holds them (a demoted user's tokens lose the scopes
    /// at once, not when they expire): 403 `insufficient_scope` otherwise,
    /// naming all of them. In a service without scopes any active user
    /// passes.
    RequireScopes<R: ScopeRequirement>,
    names: GuardNames { scopes: R::SCOPES, ..GuardNames::default() },
    |caller, auth| auth.check_scopes(&caller, R::SCOPES)
);

guarded_extractor!(
    /// An active user holding permission `P` through their role or a
    /// per-user grant (FastAPI's `Depends(require_permission(...))`): 403
    /// `forbidden` otherwise. In a service with scopes the token must also
    /// carry `P::SCOPES`, checked after the permission: 403
    /// `insufficient_scope` naming them.
    RequirePermission<R: PermissionRequirement>,
    names: GuardNames { scopes: R::SCOPES, permission: Some(R::PERMISSION), role: None },
    |caller, auth| check_permission(auth.policy(), &caller.user, R::PERMISSION)
        .and_then(|()| auth.check_scopes(&caller, R::SCOPES))
);

guarded_extractor!(
    /// An active user with role `R` (FastAPI's
    /// `Depends(get_current_admin_user)`): 403 `forbidden` otherwise. In a
    /// service with scopes the token must also carry `R::SCOPES`, checked
    /// after the role: 403 `insufficient_scope` naming them.
    RequireRole<R: RoleRequirement>,
    names: GuardNames { scopes: R::SCOPES, permission: None, role: Some(R::ROLE) },
    |caller, auth| if auth.policy().has_role(caller.user.role(), R::ROLE) {
        auth.check_scopes(&caller, R::SCOPES)
    } else {
        Err(AuthError::RoleRequired(R::ROLE))
    }
);

/// The check [`RequirePermission`] makes, for permissions that depend on
/// the resource and must be decided in the handler (an owner may delete
/// their own item; anyone else needs `items:delete`):
///
/// ```
/// # use auth_kit::extract::{Account, check_permission};
/// # use auth_kit::policy::AccessPolicy;
/// # fn demo<U: Account>(user: &U, user_id: i64, owner_id: i64, policy: &AccessPolicy) -> Result<(), auth_kit::AuthError> {
/// if owner_id != user_id {
///     check_permission(policy, user, "items:delete")?;
/// }
/// # Ok(()) }
/// ```
pub fn check_permission<U: Account>(
    policy: &AccessPolicy,
    user: &U,
    permission: &'static str,
) -> Result<(), AuthError> {
    if policy.allows(user.role(), user.granted_permissions(), permission) {
        Ok(())
    } else {
        Err(AuthError::PermissionRequired(permission))
    }
}

/// Marker types for the account routes every service has: your profile
/// (scope `me`) and user administration (role `admin`, the role admin
/// bootstrap gives and the store keeps one enabled user of). A service whose
/// routes name them in auth-kit's guards (`RequireScopes<ReadMe>`,
/// `RequireRole<Admin>`) declares the scope `me` and the role and scope
/// `admin` in its policy (the guard check at start-up refuses one that does
/// not); guards that check no scopes need only the role. The markers of a service's own resources live in the service.
pub mod standard {
    use super::{RoleRequirement, ScopeRequirement};

    /// Scope `me`: read your own profile.
    #[derive(Debug)]
    pub struct ReadMe;
    impl ScopeRequirement for ReadMe {
        const SCOPES: &'static [&'static str] = &["me"];
    }

    /// Role `admin`; with scopes, also the scope `admin`.
    #[derive(Debug)]
    pub struct Admin;
    impl RoleRequirement for Admin {
        const ROLE: &'static str = "admin";
        const SCOPES: &'static [&'static str] = &["admin"];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(authorization: Option<&str>) -> Parts {
        let mut req = Request::builder();
        if let Some(v) = authorization {
            req = req.header(AUTHORIZATION, v);
        }
        req.body(()).unwrap().into_parts().0
    }

    fn check(authorization: Option<&str>, expected: Result<&str, &str>) {
        let p = parts(authorization);
        let got = bearer_token(&p).map_err(|e| match e {
            AuthError::MissingCredentials => "missing".to_owned(),
            other => other.to_string(),
        });
        assert_eq!(
            got.as_deref().map_err(String::as_str),
            expected,
            "{authorization:?}"
        );
    }

    #[test]
    fn bearer_header_forms() {
        check(None, Err("missing"));
        check(Some("Basic dXNlcjpwYXNz"), Err("missing"));
        check(Some("Bearer abc"), Ok("abc"));
        check(Some("bearer abc"), Ok("abc"));
        check(Some("BEARER   abc  "), Ok("abc"));
        check(Some("Bearer"), Err("The access token is malformed"));
        check(Some("Bearer    "), Err("The access token is malformed"));
        check(
            Some(&format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1))),
            Err("The access token is too long"),
        );
    }
}
