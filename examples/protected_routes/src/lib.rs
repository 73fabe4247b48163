//! Four kinds of route side by side, each guarded by what its handler's
//! signature asks for:
//!
//! | route | kind | extractor | FastAPI |
//! |---|---|---|---|
//! | `GET /` | public | none | no dependency |
//! | `GET /users/me` | any valid token | [`CurrentUser`] | `Depends(get_current_active_user)` |
//! | `GET /users/me/items` | scope `items` | [`RequireScopes<ReadItems>`](RequireScopes) | `Security(get_current_active_user, scopes=["items"])` |
//! | `POST /items` | scope `items:write` | [`RequireScopes<WriteItems>`](RequireScopes) | `Security(get_current_active_user, scopes=["items:write"])` |
//! | `GET /admin` | role `admin` | [`RequireRole<Admin>`](RequireRole) | `Depends(get_current_admin_user)` |
//!
//! `POST /token` hands out the tokens (OAuth2 password and refresh grants).
//! Every check lives in auth-kit: a handler cannot run unless its extractor
//! succeeded, and a failed extractor answers 401 or 403 in the contract's
//! JSON shape with the RFC 6750 `WWW-Authenticate` challenge.
//!
//! [`Demo::start`] wires it all on embedded defaults (a SQLite file in a
//! temporary directory, a signing key made for this run, three demo users);
//! [`walkthrough`] is the curl session printed at start-up.

use std::sync::Arc;
use std::time::Duration;

use auth_kit::config::{DEFAULT_ITEMS_MAX_PER_USER, EmailVerification, LoginLimits, SignupLimits};
use auth_kit::extract::standard::Admin;
use auth_kit::http::{ClientIp, JsonBody, TokenRequest};
use auth_kit::limiter::RateLimiter;
use auth_kit::login::{LoginServiceParts, TokenResponse};
use auth_kit::page::{Page, PageRequest};
use auth_kit::password::{PasswordHasher, PoolSize};
use auth_kit::policy::AccessPolicy;
use auth_kit::refresh::ReuseWindow;
use auth_kit::store::{AdminUserView, Store, User};

use crate::policy::{POLICY, ReadItems, WriteItems};
use auth_kit::token::{AccessTokenVerifier, ClaimRules, Leeway, SigningKeys, TokenIssuer};
use auth_kit::{
    ApiError, Authenticator, Clock, CurrentUser, LoginService, OAuthError, RequireRole,
    RequireScopes, ScopeMode,
};
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use demo_walkthrough::DemoDatabase;
use example_items::{self as items, Item, NewItem};
use serde_json::{Value, json};

pub mod policy;
pub mod walkthrough;

/// The name tokens are issued by and for (`iss` and `aud`).
pub const SERVICE: &str = "protected-routes";

// -- the routes ---------------------------------------------------------------

/// What the handlers need. The auth-kit extractors find the
/// `Authenticator` in it through `FromRef`.
#[derive(Debug, Clone, FromRef)]
struct AppState {
    auth: Authenticator<User>,
    logins: LoginService,
    store: Store,
}

/// Every route, the four kinds side by side.
fn router(state: AppState) -> Router {
    let routes = Router::new()
        // 1. Public: no extractor, so no token is looked at.
        .route("/", get(index))
        // Where tokens come from: the OAuth2 token endpoint.
        .route("/token", post(token))
        // 2. Authenticated: any valid token of an active user.
        .route("/users/me", get(me))
        // 3. Scope-guarded: the token must carry the scope.
        .route("/users/me/items", get(my_items))
        .route("/items", post(create_item))
        // 4. Admin only: the user must have the admin role.
        .route("/admin", get(admin));
    // JSON 404/405, the body limit, 5xx causes logged (never sent), request
    // logs with the path only.
    auth_kit::http::with_service_layers(routes).with_state(state)
}

/// Kind 1, public: no extractor, so no token is looked at.
async fn index() -> Json<Value> {
    Json(json!({
        "service": SERVICE,
        "message": "This route is public. Get a token at POST /token, then try /users/me, /users/me/items, POST /items and /admin.",
    }))
}

/// The token endpoint: auth-kit checks the grant, the limiter and the scopes.
async fn token(
    State(logins): State<LoginService>,
    ClientIp(ip): ClientIp,
    request: TokenRequest,
) -> Result<TokenResponse, OAuthError> {
    logins.token(request, ip).await
}

/// Kind 2, authenticated: any valid token of an active user.
async fn me(caller: CurrentUser) -> Json<User> {
    Json(caller.user)
}

/// Kind 3, scope-guarded: the token must carry `items`. A page at a time
/// (`?limit=&after=`), with a `Link` to the next.
async fn my_items(
    caller: RequireScopes<ReadItems>,
    page: PageRequest,
    State(store): State<Store>,
) -> Result<Page<Item>, ApiError> {
    Ok(items::page_of(&store, caller.user.id, &page).await?)
}

/// Kind 3, scope-guarded: the token must carry `items:write`. The guard
/// comes before the body, so an unauthenticated request is refused before
/// its body is read.
async fn create_item(
    caller: RequireScopes<WriteItems>,
    State(store): State<Store>,
    JsonBody(new): JsonBody<NewItem>,
) -> Result<(StatusCode, Json<Item>), ApiError> {
    new.validate()?;
    let item = items::create(&store, caller.user.id, &new, DEFAULT_ITEMS_MAX_PER_USER).await?;
    Ok((StatusCode::CREATED, Json(item)))
}

/// Kind 4, admin only: the users, with their per-user permission grants.
/// The role is not enough: the token must also carry the scope `admin`, so
/// an admin's token asked for less cannot administer.
async fn admin(
    _admin: RequireRole<Admin>,
    page: PageRequest,
    State(store): State<Store>,
) -> Result<Page<AdminUserView>, ApiError> {
    Ok(store.list_users(&page).await?.map(AdminUserView::from))
}

// -- start-up on embedded defaults ---------------------------------------------

/// A demo account created at start (username, demo password, role).
pub use demo_walkthrough::DemoUser;

/// Role `guest`: may hold the scope `me` only.
pub const GUEST: DemoUser = DemoUser {
    username: "guest",
    password: "guest-demo-password",
    role: "guest",
};
/// Role `user`: `me items items:write`.
pub const USER: DemoUser = DemoUser {
    username: "user",
    password: "user-demo-password",
    role: "user",
};
/// Role `admin`: every scope and permission.
pub const ADMIN: DemoUser = DemoUser {
    username: "admin",
    password: "admin-demo-password",
    role: "admin",
};
/// Every demo account.
pub const DEMO_USERS: [DemoUser; 3] = [GUEST, USER, ADMIN];

/// Access tokens live 30 minutes, refresh tokens 14 days (the defaults in docs/contract.md).
const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(30 * 60);
const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

/// The app on embedded defaults, and its temporary database.
#[derive(Debug)]
pub struct Demo {
    /// Every route. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()` so the login
    /// limiter sees client addresses.
    pub router: Router,
    database: DemoDatabase,
}

impl Demo {
    /// A fresh demo: a SQLite file in a new temporary directory, a signing
    /// key made for this run (tokens die with the process) and the
    /// [`DEMO_USERS`].
    ///
    /// # Panics
    /// When the temporary directory or the database cannot be created
    /// (start-up only).
    pub async fn start() -> Self {
        let hasher = PasswordHasher::new(PoolSize::for_this_machine());
        let database = DemoDatabase::create(&hasher, &DEMO_USERS).await;
        let store = database.store().clone();

        let keys = Arc::new(SigningKeys::random_hmac());
        let leeway = Leeway::seconds(30).expect("30 s is an allowed leeway");
        let rules = ClaimRules::new(SERVICE, SERVICE, leeway);
        let policy = AccessPolicy::new(&POLICY).expect("the example's policy is valid");
        let logins = LoginService::new(LoginServiceParts {
            store: store.clone(),
            hasher,
            issuer: TokenIssuer::new(keys.clone(), rules.clone(), ACCESS_TOKEN_TTL, Clock::System),
            policy: policy.clone(),
            // Tokens carry the granted scopes; RequireScopes checks them.
            scopes: ScopeMode::Scoped,
            refresh_ttl: REFRESH_TOKEN_TTL,
            refresh_reuse: ReuseWindow::STANDARD,
            limiter: RateLimiter::in_process(
                LoginLimits::STANDARD,
                SignupLimits::STANDARD,
                Clock::System,
            ),
            clock: Clock::System,
            email_verification: EmailVerification::Optional,
        });
        let auth = Authenticator::new(
            AccessTokenVerifier::new(&keys, rules),
            store.clone(),
            policy,
            ScopeMode::Scoped,
        );

        let router = router(AppState {
            auth,
            logins,
            store: store.clone(),
        });
        Self { router, database }
    }

    /// Closes the database, then removes its temporary directory.
    pub async fn close(self) {
        self.database.close().await;
    }
}
