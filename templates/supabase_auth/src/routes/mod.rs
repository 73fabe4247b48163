//! The route table. Each handler documents itself (`#[utoipa::path]`,
//! with the permission or role it needs); `routes!` registers it with axum
//! and OpenAPI at once, so the two cannot drift apart.

use auth_kit::ScopeMode;
use auth_kit::openapi::ApiInfo;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{AppState, SERVICE_NAME};

pub mod auth;
pub mod items;
pub mod meta;
pub mod users;

/// Every route, `/openapi.json` and `/docs`, and the standard layers.
pub fn router(state: AppState) -> axum::Router {
    let api = OpenApiRouter::new()
        .routes(routes!(meta::root))
        .routes(routes!(meta::health))
        .routes(routes!(auth::signup))
        .routes(routes!(auth::token))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::forgot_password))
        .routes(routes!(users::me))
        .routes(routes!(users::admin))
        .routes(routes!(items::my_items))
        .routes(routes!(items::create_item))
        .routes(routes!(items::delete_item));
    let info = ApiInfo {
        title: SERVICE_NAME,
        version: env!("CARGO_PKG_VERSION"),
        description: "Supabase Auth behind an OAuth2 password-flow token endpoint. \
                      Click Authorize, log in with your email and password, then try the routes.",
    };
    // Supabase tokens carry no OAuth2 scopes: roles and permissions come
    // from the user's `app_metadata`.
    let router = auth_kit::openapi::document(api, info, state.auth.policy(), ScopeMode::Unscoped);
    auth_kit::http::with_service_layers(router).with_state(state)
}
