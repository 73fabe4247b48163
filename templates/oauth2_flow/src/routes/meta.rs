//! Public routes about the service itself: its signing keys. `/` (its name
//! and where its documentation is) and `/health` come with auth-kit
//! (`auth_kit::openapi::meta`).

use std::sync::Arc;

use auth_kit::ApiError;
use auth_kit::token::JwkSet;
use axum::Json;
use axum::extract::State;

/// The public signing key (RS256, ES256, EdDSA); 404 for HMAC algorithms,
/// whose secret is never published.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "meta", responses(
    (status = 200, description = "A JWKS document", body = Object),
    (status = 404, body = auth_kit::ErrorBody),
))]
pub async fn jwks(State(jwks): State<Option<Arc<JwkSet>>>) -> Result<Json<JwkSet>, ApiError> {
    let jwks = jwks.ok_or_else(|| {
        ApiError::not_found("This service signs with a shared secret and publishes no keys")
    })?;
    Ok(Json(JwkSet::clone(&jwks)))
}
