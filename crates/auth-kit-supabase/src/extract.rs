//! axum extractors for Supabase users.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;

use crate::claims::SupabaseUser;
use crate::verifier::SupabaseVerifier;
use auth_kit::error::AuthError;
use auth_kit::extract::{
    Account, PermissionRequirement, RoleRequirement, RouteGuard, check_permission,
};
use auth_kit::policy::{AccessPolicy, GuardNames};

/// Verifies bearer tokens and applies the access policy: the state the
/// extractors [`CurrentSupabaseUser`], [`RequireSupabasePermission`] and
/// [`RequireSupabaseRole`] need (found through `FromRef`). Cheap to clone.
///
/// The extractors are the counterparts of [`auth_kit::extract`]'s: rejections
/// are [`AuthError`]s with RFC 6750 challenges, and permission and role
/// checks are [`auth_kit::extract::check_permission`] and the same role
/// comparison, over [`SupabaseUser`]'s `app_metadata`.
///
/// ```
/// use auth_kit::extract::PermissionRequirement;
/// use auth_kit::extract::standard::Admin;
/// use auth_kit_supabase::{CurrentSupabaseUser, RequireSupabasePermission, RequireSupabaseRole};
///
/// /// The permission `items:delete`.
/// struct DeleteItems;
/// impl PermissionRequirement for DeleteItems {
///     const PERMISSION: &'static str = "items:delete";
///     const SCOPES: &'static [&'static str] = &[];
/// }
///
/// async fn me(caller: CurrentSupabaseUser) -> String {
///     caller.user.id().to_owned()
/// }
///
/// async fn delete_item(caller: RequireSupabasePermission<DeleteItems>) -> String {
///     format!("{} may delete items", caller.user.id())
/// }
///
/// async fn admin(_: RequireSupabaseRole<Admin>) -> &'static str {
///     "hello, admin"
/// }
/// ```
#[derive(Clone)]
pub struct SupabaseAuth {
    verifier: SupabaseVerifier,
    policy: Arc<AccessPolicy>,
}

impl fmt::Debug for SupabaseAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupabaseAuth")
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl SupabaseAuth {
    /// Both are required: there is no default verifier or policy.
    pub fn new(verifier: SupabaseVerifier, policy: AccessPolicy) -> Self {
        Self {
            verifier,
            policy: Arc::new(policy),
        }
    }

    /// The access policy checks run against.
    pub fn policy(&self) -> &AccessPolicy {
        &self.policy
    }

    /// The token verifier.
    pub fn verifier(&self) -> &SupabaseVerifier {
        &self.verifier
    }

    /// Verifies the request's bearer token and returns its user; a user
    /// without `app_metadata.role` gets the policy's signup role.
    pub async fn authenticate(&self, parts: &Parts) -> Result<SupabaseUser, AuthError> {
        let token = auth_kit::extract::bearer_token(parts)?;
        let claims = self.verifier.verify(token).await?;
        Ok(SupabaseUser::new(claims, self.policy.signup_role()))
    }
}

/// An authenticated Supabase user.
///
/// `Option<CurrentSupabaseUser>` is `None` when the request carries no
/// bearer token, and still rejects a bad one.
#[derive(Debug, Clone)]
pub struct CurrentSupabaseUser {
    /// The user.
    pub user: SupabaseUser,
}

impl<S> FromRequestParts<S> for CurrentSupabaseUser
where
    SupabaseAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = SupabaseAuth::from_ref(state).authenticate(parts).await?;
        Ok(Self { user })
    }
}

impl<S> OptionalFromRequestParts<S> for CurrentSupabaseUser
where
    SupabaseAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match SupabaseAuth::from_ref(state).authenticate(parts).await {
            Ok(user) => Ok(Some(Self { user })),
            Err(AuthError::MissingCredentials) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A Supabase user holding permission `P` through their `app_metadata`
/// role or `app_metadata.permissions`: 403 otherwise.
pub struct RequireSupabasePermission<P> {
    /// The user.
    pub user: SupabaseUser,
    marker: PhantomData<fn() -> P>,
}

/// A Supabase user whose `app_metadata.role` is `R`: 403 otherwise.
pub struct RequireSupabaseRole<R> {
    /// The user.
    pub user: SupabaseUser,
    marker: PhantomData<fn() -> R>,
}

impl<P> fmt::Debug for RequireSupabasePermission<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireSupabasePermission")
            .field("user", &self.user)
            .finish()
    }
}

impl<R> fmt::Debug for RequireSupabaseRole<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireSupabaseRole")
            .field("user", &self.user)
            .finish()
    }
}

impl<S, P> FromRequestParts<S> for RequireSupabasePermission<P>
where
    P: PermissionRequirement,
    SupabaseAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = SupabaseAuth::from_ref(state);
        let user = auth.authenticate(parts).await?;
        check_permission(auth.policy(), &user, P::PERMISSION)?;
        Ok(Self {
            user,
            marker: PhantomData,
        })
    }
}

impl<S, R> FromRequestParts<S> for RequireSupabaseRole<R>
where
    R: RoleRequirement,
    SupabaseAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = SupabaseAuth::from_ref(state);
        let user = auth.authenticate(parts).await?;
        if !auth.policy.has_role(Account::role(&user), R::ROLE) {
            return Err(AuthError::RoleRequired(R::ROLE));
        }
        Ok(Self {
            user,
            marker: PhantomData,
        })
    }
}

/// How the Supabase guards refuse, for OpenAPI.
macro_rules! supabase_guard {
    ($(impl$(<$param:ident: $bound:ident>)? for $ty:ty => $names:expr;)*) => {$(
        impl$(<$param: $bound>)? RouteGuard for $ty {
            // Supabase tokens carry no OAuth2 scopes.
            fn names() -> GuardNames<'static> {
                $names
            }

            fn account_refusal() -> &'static str {
                "the user is banned (seen in remote verification)"
            }

            fn unavailable() -> &'static str {
                "`supabase_unavailable`: Supabase Auth could not be asked; retry after `Retry-After` seconds"
            }
        }
    )*};
}

supabase_guard! {
    impl for CurrentSupabaseUser => GuardNames::default();
    impl<P: PermissionRequirement> for RequireSupabasePermission<P> => GuardNames { permission: Some(P::PERMISSION), ..GuardNames::default() };
    impl<R: RoleRequirement> for RequireSupabaseRole<R> => GuardNames { role: Some(R::ROLE), ..GuardNames::default() };
}
