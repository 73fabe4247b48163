//! Roles and permissions as data, per-user grants, and permission checks as
//! extractors.
//!
//! - [`POLICY`] is the whole access model: which permissions exist and
//!   which role holds which. Adding a role or a permission is an edit there
//!   and nowhere else (see its documentation).
//! - A route that needs a permission says so in its signature:
//!   [`RequirePermission<WriteItems>`](RequirePermission) is FastAPI's
//!   `Depends(require_permission("items:write"))`. The check runs before
//!   the handler, against the user's role plus their per-user grants,
//!   both loaded from the database on every request.
//! - An admin grants a user extra permissions with `PATCH /users/{id}`;
//!   the grant applies to the user's very next request.
//! - `DELETE /items/{id}` is the permission that depends on the resource:
//!   the owner may delete their item, anyone else needs `items:delete`.
//!
//! [`Demo::start`] wires it all on embedded defaults (a SQLite file in a
//! temporary directory, a signing key made for this run, four demo users);
//! [`walkthrough`] is the curl session printed at start-up.

use std::sync::Arc;
use std::time::Duration;

use auth_kit::config::{DEFAULT_ITEMS_MAX_PER_USER, EmailVerification, LoginLimits, SignupLimits};
use auth_kit::extract::standard::Admin;
use auth_kit::extract::{PermissionRequirement, check_permission};
use auth_kit::http::{ClientIp, JsonBody, ResourceId, TokenRequest};
use auth_kit::limiter::RateLimiter;
use auth_kit::login::{LoginServiceParts, TokenResponse};
use auth_kit::page::{Page, PageRequest};
use auth_kit::password::{PasswordHasher, PoolSize};
use auth_kit::policy::{AccessPolicy, PolicySpec, RoleSpec};
use auth_kit::refresh::ReuseWindow;
use auth_kit::store::{AdminUserView, Store, User, UserUpdate};

use auth_kit::token::{AccessTokenVerifier, ClaimRules, Leeway, SigningKeys, TokenIssuer};
use auth_kit::{
    ApiError, Authenticator, Clock, CurrentUser, LoginService, OAuthError, RequirePermission,
    RequireRole, ScopeMode,
};
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use demo_walkthrough::DemoDatabase;
use example_items::{self as items, Item, NewItem};
use serde::Serialize;
use serde_json::{Value, json};

pub mod walkthrough;

/// The name tokens are issued by and for (`iss` and `aud`).
pub const SERVICE: &str = "permission-system";

// -- the access model, as data ---------------------------------------------------

/// Every permission and every role of this service.
///
/// To add a permission, say `items:publish`:
/// 1. add `"items:publish"` to `permissions` below;
/// 2. add it to the `permissions` of each role that should hold it (admin
///    holds everything already);
/// 3. give it a marker type, like [`WriteItems`], for the routes that need it.
///
/// To add a role, add a [`RoleSpec`] to `roles` (the `editor` role below was
/// added exactly so), then `PATCH /users/{id}` with `{"role": "editor"}`.
///
/// [`AccessPolicy::new`] checks the whole spec at start-up: a role naming an
/// undeclared permission stops the service with a message, instead of
/// silently denying on every request.
pub const POLICY: PolicySpec = PolicySpec {
    // No scopes: see the README for why this example's tokens carry none.
    scopes: &[],
    permissions: &["items:read", "items:write", "items:delete", "users:read"],
    roles: &[
        RoleSpec::new("guest"),
        RoleSpec::new("user").permissions(&["items:read", "items:write"]),
        RoleSpec::new("editor").permissions(&["items:read", "items:write", "items:delete"]),
        RoleSpec::holding_everything("admin"),
    ],
    signup_role: "user",
};

/// This service's tokens carry no scopes (`ScopeMode::Unscoped`): a
/// permission needs no scope beside it.
const NO_SCOPES: &[&str] = &[];

/// Permission `items:read`.
#[derive(Debug)]
pub struct ReadItems;
impl PermissionRequirement for ReadItems {
    const PERMISSION: &'static str = "items:read";
    const SCOPES: &'static [&'static str] = NO_SCOPES;
}

/// Permission `items:write`.
#[derive(Debug)]
pub struct WriteItems;
impl PermissionRequirement for WriteItems {
    const PERMISSION: &'static str = "items:write";
    const SCOPES: &'static [&'static str] = NO_SCOPES;
}

/// Permission `items:delete` (checked in the handler: it depends on the item).
#[derive(Debug)]
pub struct DeleteItems;
impl PermissionRequirement for DeleteItems {
    const PERMISSION: &'static str = "items:delete";
    const SCOPES: &'static [&'static str] = NO_SCOPES;
}

/// Permission `users:read`.
#[derive(Debug)]
pub struct ReadUsers;
impl PermissionRequirement for ReadUsers {
    const PERMISSION: &'static str = "users:read";
    const SCOPES: &'static [&'static str] = NO_SCOPES;
}

/// Every permission a marker type names (the tests check each is declared
/// in [`POLICY`]).
pub const MARKER_PERMISSIONS: [&str; 4] = [
    ReadItems::PERMISSION,
    WriteItems::PERMISSION,
    DeleteItems::PERMISSION,
    ReadUsers::PERMISSION,
];

// -- the routes ---------------------------------------------------------------

/// What the handlers need. The auth-kit extractors find the
/// `Authenticator` in it through `FromRef`.
#[derive(Debug, Clone, FromRef)]
struct AppState {
    auth: Authenticator<User>,
    logins: LoginService,
    store: Store,
    policy: AccessPolicy,
}

/// Every route, with what it needs.
fn router(state: AppState) -> Router {
    let routes = Router::new()
        // Public.
        .route("/", get(index))
        .route("/token", post(token))
        // Any valid token: who am I, and what may I do?
        .route("/users/me", get(me))
        // Static permissions: decided before the handler runs (403 before 404).
        .route("/users/me/items", get(my_items)) // items:read
        .route("/items", post(create_item)) // items:write
        .route("/users", get(list_users)) // users:read
        // GET needs `items:read`; DELETE depends on the item: its owner may,
        // anyone else needs `items:delete`.
        .route("/items/{id}", get(read_item).delete(delete_item))
        // The admin role only: changing roles and grants.
        .route("/users/{id}", patch(update_user));
    // JSON 404/405, the body limit, 5xx causes logged (never sent), request
    // logs with the path only.
    auth_kit::http::with_service_layers(routes).with_state(state)
}

/// Public.
async fn index() -> Json<Value> {
    Json(json!({
        "service": SERVICE,
        "message": "This route is public. Get a token at POST /token, then see GET /users/me for what you may do.",
    }))
}

/// The token endpoint: auth-kit checks the grant and the limiter.
async fn token(
    State(logins): State<LoginService>,
    ClientIp(ip): ClientIp,
    request: TokenRequest,
) -> Result<TokenResponse, OAuthError> {
    logins.token(request, ip).await
}

/// `GET /users/me`: the caller with their per-user grants (`permissions`)
/// and everything their role and grants allow (`effective_permissions`).
#[derive(Debug, Serialize)]
struct Me {
    #[serde(flatten)]
    user: AdminUserView,
    effective_permissions: Vec<&'static str>,
}

/// Any valid token: who am I, and what may I do?
async fn me(caller: CurrentUser, State(policy): State<AccessPolicy>) -> Json<Me> {
    let user = caller.user;
    let effective_permissions = policy
        .permissions()
        .iter()
        .copied()
        .filter(|p| policy.allows(&user.role, &user.permissions, p))
        .collect();
    Json(Me {
        user: AdminUserView::from(user),
        effective_permissions,
    })
}

/// Permission `items:read`: the caller's items, a page at a time.
async fn my_items(
    caller: RequirePermission<ReadItems>,
    page: PageRequest,
    State(store): State<Store>,
) -> Result<Page<Item>, ApiError> {
    Ok(items::page_of(&store, caller.user.id, &page).await?)
}

/// Permission `items:write`.
async fn create_item(
    caller: RequirePermission<WriteItems>,
    State(store): State<Store>,
    JsonBody(new): JsonBody<NewItem>,
) -> Result<(StatusCode, Json<Item>), ApiError> {
    new.validate()?;
    let item = items::create(&store, caller.user.id, &new, DEFAULT_ITEMS_MAX_PER_USER).await?;
    Ok((StatusCode::CREATED, Json(item)))
}

/// Permission `items:read`, any item. Without it the answer is 403 whether
/// or not the item exists, so the route reveals nothing to such callers.
async fn read_item(
    _caller: RequirePermission<ReadItems>,
    State(store): State<Store>,
    ResourceId(id): ResourceId,
) -> Result<Json<Item>, ApiError> {
    let item = items::get(&store, id).await?;
    item.map(Json)
        .ok_or_else(|| ApiError::not_found("Item not found"))
}

/// The owner may delete their item; anyone else needs `items:delete`.
///
/// The rule depends on the item, so it is checked here, after loading it:
/// unlike the static permission routes above (403 before 404), this route
/// necessarily tells any authenticated caller whether an item exists (404).
async fn delete_item(
    caller: CurrentUser,
    State(store): State<Store>,
    State(policy): State<AccessPolicy>,
    ResourceId(id): ResourceId,
) -> Result<StatusCode, ApiError> {
    let item = items::get(&store, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Item not found"))?;
    if item.owner_id != caller.user.id {
        check_permission(&policy, &caller.user, DeleteItems::PERMISSION)?;
    }
    items::delete(&store, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Permission `users:read`: every user with their grants. Only admin holds
/// it here, but it can be granted, unlike the admin role `PATCH` needs.
async fn list_users(
    _caller: RequirePermission<ReadUsers>,
    page: PageRequest,
    State(store): State<Store>,
) -> Result<Page<AdminUserView>, ApiError> {
    Ok(store.list_users(&page).await?.map(AdminUserView::from))
}

/// Admin only: set a user's role, grants (`permissions` replaces them;
/// `[]` revokes them) or `disabled`. A role rather than a permission guards
/// this route, so no grant can be used to grant more.
async fn update_user(
    _admin: RequireRole<Admin>,
    State(store): State<Store>,
    State(policy): State<AccessPolicy>,
    ResourceId(id): ResourceId,
    JsonBody(update): JsonBody<UserUpdate>,
) -> Result<Json<AdminUserView>, ApiError> {
    update.validate(&policy)?;
    let user = store
        .update_user(id, &update)
        .await?
        .ok_or_else(|| ApiError::not_found("User not found"))?;
    Ok(Json(AdminUserView::from(user)))
}

// -- start-up on embedded defaults ---------------------------------------------

/// A demo account created at start (username, demo password, role).
pub use demo_walkthrough::DemoUser;

/// Role `guest`: no permissions until granted some.
pub const GUEST: DemoUser = DemoUser {
    username: "guest",
    password: "guest-demo-password",
    role: "guest",
};
/// Role `user`: reads and writes items.
pub const USER: DemoUser = DemoUser {
    username: "user",
    password: "user-demo-password",
    role: "user",
};
/// Role `editor`: also deletes anyone's items.
pub const EDITOR: DemoUser = DemoUser {
    username: "editor",
    password: "editor-demo-password",
    role: "editor",
};
/// Role `admin`: everything.
pub const ADMIN: DemoUser = DemoUser {
    username: "admin",
    password: "admin-demo-password",
    role: "admin",
};
/// Every demo account.
pub const DEMO_USERS: [DemoUser; 4] = [GUEST, USER, EDITOR, ADMIN];

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
    /// A fresh demo: [`POLICY`] checked, a SQLite file in a new temporary
    /// directory, a signing key made for this run (tokens die with the
    /// process) and the [`DEMO_USERS`].
    ///
    /// # Panics
    /// When [`POLICY`] is inconsistent, or the temporary directory or the
    /// database cannot be created (start-up only).
    pub async fn start() -> Self {
        let policy = match AccessPolicy::new(&POLICY) {
            Ok(policy) => policy,
            Err(e) => panic!("fix POLICY in examples/permission_system/src/lib.rs: {e}"),
        };
        let hasher = PasswordHasher::new(PoolSize::for_this_machine());
        let database = DemoDatabase::create(&hasher, &DEMO_USERS).await;
        let store = database.store().clone();

        let keys = Arc::new(SigningKeys::random_hmac());
        let leeway = Leeway::seconds(30).expect("30 s is an allowed leeway");
        let rules = ClaimRules::new(SERVICE, SERVICE, leeway);
        let logins = LoginService::new(LoginServiceParts {
            store: store.clone(),
            hasher,
            issuer: TokenIssuer::new(keys.clone(), rules.clone(), ACCESS_TOKEN_TTL, Clock::System),
            policy: policy.clone(),
            // Permissions are read from the database on every request, so a
            // grant or revocation applies at once; scopes would freeze a
            // snapshot into each token instead.
            scopes: ScopeMode::Unscoped,
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
            policy.clone(),
            ScopeMode::Unscoped,
        );

        let router = router(AppState {
            auth,
            logins,
            store: store.clone(),
            policy,
        });
        Self { router, database }
    }

    /// Closes the database, then removes its temporary directory.
    pub async fn close(self) {
        self.database.close().await;
    }
}
