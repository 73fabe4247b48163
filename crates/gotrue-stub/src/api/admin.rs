//! The service-role routes under `/admin/users`.

use axum::Json;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::errors::GoTrueError;
use crate::store::{Store, User, merge_metadata};

use super::user::{bad_jwt, bearer};
use super::{AppState, equal, is_uuid, lock, read, read_params};

/// A request made with the service role key (upstream's
/// `requireAdminCredentials`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = GoTrueError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GoTrueError> {
        let token = bearer(parts)?;
        if equal(token, &state.service_role_key) {
            return Ok(Admin);
        }
        let claims = read(&state.keys).verify(token).map_err(|reason| {
            bad_jwt(format!(
                "invalid JWT: unable to parse or verify signature, {reason}"
            ))
        })?;
        if claims["role"] == "service_role" {
            Ok(Admin)
        } else {
            Err(GoTrueError::forbidden("not_admin", "User not allowed"))
        }
    }
}

/// Upstream's `loadUser`.
fn load_user<'a>(store: &'a mut Store, user_id: &str) -> Result<&'a mut User, GoTrueError> {
    if !is_uuid(user_id) {
        return Err(GoTrueError::new(
            StatusCode::NOT_FOUND,
            "validation_failed",
            "user_id must be an UUID",
        ));
    }
    store
        .user_mut(user_id)
        .ok_or_else(|| GoTrueError::new(StatusCode::NOT_FOUND, "user_not_found", "User not found"))
}

pub(super) async fn admin_get_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, GoTrueError> {
    let mut store = lock(&state.store);
    Ok(Json(load_user(&mut store, &user_id)?.to_json()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AdminUpdate {
    app_metadata: Option<Map<String, Value>>,
    user_metadata: Option<Map<String, Value>>,
}

pub(super) async fn admin_update_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(user_id): Path<String>,
    request: Request,
) -> Result<Json<Value>, GoTrueError> {
    load_user(&mut lock(&state.store), &user_id)?;
    let params: AdminUpdate = read_params(request.into_body()).await?;
    let mut store = lock(&state.store);
    let user = load_user(&mut store, &user_id)?;
    if let Some(patch) = params.app_metadata {
        merge_metadata(&mut user.app_metadata, patch);
    }
    if let Some(patch) = params.user_metadata {
        merge_metadata(&mut user.user_metadata, patch);
    }
    user.updated_at = OffsetDateTime::now_utc();
    Ok(Json(user.to_json()))
}
