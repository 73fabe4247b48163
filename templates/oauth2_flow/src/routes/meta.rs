//! Public routes about the service itself.

use std::sync::Arc;

use auth_kit::ApiError;
use auth_kit::store::Store;
use auth_kit::token::JwkSet;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::SERVICE_NAME;

/// Where things are.
#[derive(Serialize, ToSchema)]
pub struct ServiceInfo {
    service: &'static str,
    version: &'static str,
    docs: &'static str,
    openapi: &'static str,
    token_url: &'static str,
}

/// The service's name and where its documentation is.
#[utoipa::path(get, path = "/", tag = "meta", responses((status = 200, body = ServiceInfo)))]
pub async fn root() -> Json<ServiceInfo> {
    Json(ServiceInfo {
        service: SERVICE_NAME,
        version: env!("CARGO_PKG_VERSION"),
        docs: "/docs",
        openapi: "/openapi.json",
        token_url: "/token",
    })
}

/// Liveness and readiness.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// 200 once the database answers, 503 otherwise.
#[utoipa::path(get, path = "/health", tag = "meta", responses(
    (status = 200, body = Health),
    (status = 503, body = auth_kit::ErrorBody),
))]
pub async fn health(State(store): State<Store>) -> Result<Json<Health>, ApiError> {
    store.ping().await.map_err(ApiError::unavailable)?;
    Ok(Json(Health { status: "ok" }))
}

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
