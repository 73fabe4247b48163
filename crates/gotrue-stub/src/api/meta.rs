//! `/health`, `/settings` and the JWKS.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{AppState, read};

pub(super) async fn health() -> Json<Value> {
    Json(json!({
        "version": concat!("gotrue-stub-", env!("CARGO_PKG_VERSION")),
        "name": "GoTrue",
        "description": "gotrue-stub: an offline development stand-in for Supabase Auth (GoTrue). Not Supabase.",
    }))
}

pub(super) async fn settings(State(state): State<AppState>) -> Json<Value> {
    let runtime = state.runtime();
    let mut external = Map::new();
    for provider in [
        "anonymous_users",
        "apple",
        "azure",
        "bitbucket",
        "discord",
        "facebook",
        "snapchat",
        "figma",
        "fly",
        "github",
        "gitlab",
        "google",
        "keycloak",
        "kakao",
        "linkedin",
        "linkedin_oidc",
        "notion",
        "spotify",
        "slack",
        "slack_oidc",
        "workos",
        "twitch",
        "twitter",
        "phone",
        "zoom",
    ] {
        external.insert(provider.to_owned(), Value::Bool(false));
    }
    external.insert("email".to_owned(), Value::Bool(true));
    Json(json!({
        "external": external,
        "disable_signup": runtime.disable_signup,
        "mailer_autoconfirm": runtime.autoconfirm,
        "phone_autoconfirm": false,
        "sms_provider": "",
        "saml_enabled": false,
        "saml_private_key_next_configured": false,
        "passkeys_enabled": false,
    }))
}

pub(super) async fn jwks(State(state): State<AppState>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let body = read(&state.keys).jwks();
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=600"),
    );
    response
}
