//! The public routes about the service itself, the same in every service:
//! `/` (its name, version and where its documentation is) and `/health`.
//! [`service_router`](super::service_router) adds them.

use axum::extract::{FromRef, State};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiInfo, TOKEN_URL};
use crate::error::ApiError;
use crate::store::Store;

/// Where things are.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceInfo {
    service: String,
    version: String,
    docs: &'static str,
    openapi: &'static str,
    token_url: &'static str,
}

impl ServiceInfo {
    /// The service's name and version (its [`ApiInfo`] title and version),
    /// and the kit's paths: `/docs`, `/openapi.json` and `/token`.
    pub fn new(info: &ApiInfo<'_>) -> Self {
        Self {
            service: info.title.to_owned(),
            version: info.version.to_owned(),
            docs: "/docs",
            openapi: "/openapi.json",
            token_url: TOKEN_URL,
        }
    }
}

/// The service's name and where its documentation is.
#[utoipa::path(get, path = "/", tag = "meta", responses((status = 200, body = ServiceInfo)))]
pub async fn root(Extension(info): Extension<ServiceInfo>) -> Json<ServiceInfo> {
    Json(info)
}

/// Liveness and readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// 200 once the database answers, 503 otherwise.
#[utoipa::path(get, path = "/health", tag = "meta", responses(
    (status = 200, body = Health),
    (status = 503, body = crate::ErrorBody),
))]
pub async fn health(State(store): State<Store>) -> Result<Json<Health>, ApiError> {
    store.ping().await.map_err(ApiError::unavailable)?;
    Ok(Json(Health { status: "ok" }))
}

/// `/` (answering `info`'s name and version) and `/health`, documented,
/// for a router whose state holds the [`Store`].
pub fn routes<S>(info: &ApiInfo<'_>) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Store: FromRef<S>,
{
    let (schemas, paths, root) = routes!(root);
    OpenApiRouter::new()
        .routes((
            schemas,
            paths,
            root.layer(Extension(ServiceInfo::new(info))),
        ))
        .routes(routes!(health))
}
