//! The route table. Each handler documents itself (`#[utoipa::path]`,
//! with the scopes, permission or role it needs); `routes!` registers it with
//! axum and OpenAPI at once, so the two cannot drift apart.

use auth_kit::openapi::ApiInfo;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{AppState, SCOPES, SERVICE_NAME};

pub mod account;
pub mod auth;
pub mod items;
pub mod meta;
pub mod users;

/// Every route, `/openapi.json` and `/docs`, and the standard layers.
pub fn router(state: AppState) -> axum::Router {
    let api = OpenApiRouter::new()
        .routes(routes!(meta::root))
        .routes(routes!(meta::health))
        .routes(routes!(meta::jwks))
        .routes(routes!(auth::signup))
        .routes(routes!(auth::token))
        .routes(routes!(auth::logout))
        .routes(routes!(account::forgot_password))
        .routes(routes!(account::reset_password))
        .routes(routes!(account::request_verification))
        .routes(routes!(account::verify_email))
        .routes(routes!(account::change_password))
        .routes(routes!(users::me))
        .routes(routes!(users::list_users))
        .routes(routes!(users::update_user, users::delete_user))
        .routes(routes!(items::my_items))
        .routes(routes!(items::create_item))
        .routes(routes!(items::delete_item));
    let info = ApiInfo {
        title: SERVICE_NAME,
        version: env!("CARGO_PKG_VERSION"),
        description: "OAuth2 password flow with scopes, roles and permissions. \
                      Click Authorize, log in with a username and password, then try the routes.",
    };
    let router = auth_kit::openapi::document(api, info, state.auth.policy(), SCOPES);
    auth_kit::http::with_service_layers(router).with_state(state)
}
