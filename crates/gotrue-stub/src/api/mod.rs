//! The Supabase Auth API subset, under `/auth/v1`.
//!
//! Handlers follow upstream's code paths (supabase/auth, `internal/api`):
//! the same checks in the same order, the same status codes, `error_code`s
//! and messages.
//!
//! Files: `state` (what the handlers share), `meta`, `signup`, `token`,
//! `user` (the signed-in user's routes) and `admin` (the service-role
//! routes); this file holds the route table, the API-key gate and the
//! request-reading helpers they all use.

mod admin;
mod meta;
mod signup;
mod state;
mod token;
mod user;

use admin::{admin_get_user, admin_update_user};
use meta::{health, jwks, settings};
use signup::signup;
pub(crate) use signup::validate_email;
pub(crate) use state::{
    AppState, Limited, Project, Runtime, Shared, lock, read, unexpected, write,
};
use token::token;
use user::{get_user, logout, update_user};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{StatusCode, Uri};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use subtle::ConstantTimeEq;

use crate::errors::{GoTrueError, api_version};
use crate::net::apply_fault;
use crate::verify::{self};

/// Largest request body read (upstream's `limitRequestBody(1 << 20)`).
const MAX_BODY_BYTES: usize = 1 << 20;
/// bcrypt's limit, which upstream enforces for every password.
const MAX_PASSWORD_BYTES: usize = 72;

/// The whole API.
pub(crate) fn router(state: AppState) -> Router {
    let keyed = Router::new()
        .route("/health", get(health))
        .route("/settings", get(settings))
        .route("/signup", post(signup))
        .route("/token", post(token))
        .route("/recover", post(verify::recover))
        .route("/user", get(get_user).put(update_user))
        .route("/logout", post(logout))
        .route(
            "/admin/users/{user_id}",
            get(admin_get_user).put(admin_update_user),
        )
        .route_layer(from_fn_with_state(state.clone(), require_apikey));
    // Hosted Supabase serves the JWKS without an API key, and /verify too:
    // a link clicked in a mail carries no header.
    let open = Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/verify", get(verify::verify_link).post(verify::verify));
    Router::new()
        .nest("/auth/v1", keyed.merge(open))
        .fallback(not_found)
        .layer(from_fn(api_version))
        .layer(from_fn_with_state(state.clone(), apply_fault))
        .with_state(state)
}

/// What chi (upstream's router) answers for an unknown path.
async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

fn equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The API gateway's check: every call carries the project's `apikey`
/// (anon or service role). Upstream's gateway answers in its own shape;
/// the stub uses GoTrue's shapes with codes `no_api_key` / `invalid_api_key`.
async fn require_apikey(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let key = request
        .headers()
        .get("apikey")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    match key {
        None => GoTrueError::new(
            StatusCode::UNAUTHORIZED,
            "no_api_key",
            "No API key found in request",
        )
        .into_response(),
        Some(key) if equal(key, &state.anon_key) || equal(key, &state.service_role_key) => {
            next.run(request).await
        }
        Some(_) => GoTrueError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "Invalid API key",
        )
        .into_response(),
    }
}

/// Reads a JSON body as upstream's `retrieveRequestParams` does (whatever
/// the Content-Type).
pub(crate) async fn read_params<T: DeserializeOwned>(body: Body) -> Result<T, GoTrueError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            GoTrueError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_entity_too_large",
                format!("Request body too large (max {MAX_BODY_BYTES} bytes)"),
            )
        })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        GoTrueError::bad_request(
            "bad_json",
            format!("Could not parse request body as JSON: {e}"),
        )
    })
}

/// Go leaves a field at its zero value for JSON `null`; so does this.
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

pub(crate) fn query_param(uri: &Uri, name: &str) -> Option<String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        assert!(is_uuid("123e4567-e89b-42d3-a456-426614174000"));
        assert!(!is_uuid("123e4567e89b42d3a456426614174000"));
        assert!(!is_uuid("123e4567-e89b-42d3-a456-42661417400g"));
    }

    #[test]
    fn emails() {
        assert_eq!(
            validate_email("Ann@Example.COM").ok().as_deref(),
            Some("ann@example.com")
        );
        assert!(validate_email("not-an-email").is_err());
        assert!(validate_email("").is_err());
    }
}
