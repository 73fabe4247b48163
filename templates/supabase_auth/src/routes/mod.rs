//! The route table. Each handler documents itself (`#[utoipa::path]`);
//! `routes!` registers it with axum and OpenAPI at once, so the two cannot
//! drift apart. A protected handler's first argument is its guard (the
//! permission or role it needs), and `guarded_route!` documents its
//! security requirement and its 401/403 answers from that guard's type.

use auth_kit::ScopeMode;
use auth_kit::guarded_route;
use auth_kit::policy::PolicyError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub mod auth;
pub mod items;
pub mod users;

/// Supabase tokens carry no OAuth2 scopes: roles and permissions come from
/// the user's `app_metadata`.
const SCOPES: ScopeMode = ScopeMode::Unscoped;

/// Every route, with auth-kit's `/`, `/health`, `/openapi.json` and
/// `/docs`, and the standard layers; a guard naming a scope, permission or
/// role the policy does not declare is refused here, at start-up.
pub fn router(state: AppState) -> Result<axum::Router, PolicyError> {
    let api = OpenApiRouter::new()
        .routes(routes!(auth::signup))
        .routes(routes!(auth::token))
        .routes(guarded_route!(SCOPES, auth::logout))
        .routes(routes!(auth::forgot_password))
        .routes(guarded_route!(SCOPES, users::me))
        .routes(guarded_route!(SCOPES, users::admin))
        .routes(guarded_route!(SCOPES, items::my_items))
        .routes(guarded_route!(SCOPES, items::create_item))
        .routes(guarded_route!(SCOPES, items::delete_item));
    let info = auth_kit::api_info!(
        description: "Supabase Auth behind an OAuth2 password-flow token endpoint. \
                      Click Authorize, log in with your email and password, then try the routes.",
    );
    let router = auth_kit::openapi::service_router(api, info, state.auth.policy(), SCOPES)?;
    Ok(router.with_state(state))
}
