//! The route table. Each handler documents itself (`#[utoipa::path]`);
//! `routes!` registers it with axum and OpenAPI at once, so the two cannot
//! drift apart. A protected handler's first argument is its guard (the
//! scopes, permission or role it needs), and `guarded_route!` documents its
//! security requirement and its 401/403 answers from that guard's type.

use auth_kit::guarded_route;
use auth_kit::policy::PolicyError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{AppState, SCOPES};

pub mod account;
pub mod auth;
pub mod items;
pub mod meta;
pub mod users;

/// Every route, with auth-kit's `/`, `/health`, `/openapi.json` and
/// `/docs`, and the standard layers; a guard naming a scope, permission or
/// role the policy does not declare is refused here, at start-up.
pub fn router(state: AppState) -> Result<axum::Router, PolicyError> {
    let api = OpenApiRouter::new()
        .routes(routes!(meta::jwks))
        .routes(routes!(auth::signup))
        .routes(routes!(auth::token))
        .routes(guarded_route!(SCOPES, auth::logout))
        .routes(routes!(account::forgot_password))
        .routes(routes!(account::reset_password))
        .routes(routes!(account::request_verification))
        .routes(routes!(account::verify_email))
        .routes(guarded_route!(SCOPES, account::change_password))
        .routes(guarded_route!(SCOPES, users::me))
        .routes(guarded_route!(SCOPES, users::list_users))
        .routes(guarded_route!(SCOPES, users::update_user))
        .routes(guarded_route!(SCOPES, users::delete_user))
        .routes(guarded_route!(SCOPES, items::my_items))
        .routes(guarded_route!(SCOPES, items::create_item))
        .routes(guarded_route!(SCOPES, items::delete_item));
    let info = auth_kit::api_info!(
        description: "OAuth2 password flow with scopes, roles and permissions. \
                      Click Authorize, log in with a username and password, then try the routes.",
    );
    let router = auth_kit::openapi::service_router(api, info, state.auth.policy(), SCOPES)?;
    Ok(router.with_state(state))
}
