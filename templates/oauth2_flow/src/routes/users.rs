//! Your profile, and user administration (role `admin`, and with scopes
//! also the scope `admin`, so a down-scoped admin token cannot administer).

use auth_kit::extract::standard::{Admin, ReadMe};
use auth_kit::http::{JsonBody, ResourceId};
use auth_kit::openapi::{InvalidInput, JsonBodyErrors};
use auth_kit::page::{Page, PageRequest};
use auth_kit::store::{AdminUserView, Store, User, UserUpdate};
use auth_kit::{ApiError, Authenticator, ErrorBody, RequireRole, RequireScopes};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

/// Your own profile (scope `me`).
#[utoipa::path(get, path = "/users/me", tag = "users", responses(
    (status = 200, body = User),
))]
pub async fn me(caller: RequireScopes<ReadMe>) -> Json<User> {
    Json(caller.user)
}

/// Users by id, a page at a time, with their per-user permission grants
/// (role and scope `admin`).
#[utoipa::path(get, path = "/users", tag = "users", params(PageRequest), responses(
    (status = 200, body = [AdminUserView], headers(
        ("Link" = String, description = "`<...?after=N&limit=L>; rel=\"next\"` when more users follow (RFC 8288)"),
    )),
    InvalidInput,
))]
pub async fn list_users(
    _: RequireRole<Admin>,
    page: PageRequest,
    State(store): State<Store>,
) -> Result<Page<AdminUserView>, ApiError> {
    Ok(store.list_users(&page).await?.map(AdminUserView::from))
}

/// Changes a user's role, disabled flag or per-user permissions (role and
/// scope `admin`). Absent or null fields are left alone; `permissions`
/// replaces the grants (`[]` revokes them all). The last enabled admin
/// cannot be demoted or disabled (409 `last_admin`), so the service always
/// keeps one.
#[utoipa::path(patch, path = "/users/{id}", tag = "users",
    params(("id" = i64, Path, minimum = 1, description = "The user's id")),
    request_body = UserUpdate,
    responses(
        (status = 200, body = AdminUserView),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 409, description = "`last_admin`: the change would leave no enabled admin", body = ErrorBody),
        JsonBodyErrors,
    ))]
pub async fn update_user(
    _: RequireRole<Admin>,
    ResourceId(id): ResourceId,
    State(auth): State<Authenticator<User>>,
    State(store): State<Store>,
    JsonBody(update): JsonBody<UserUpdate>,
) -> Result<Json<AdminUserView>, ApiError> {
    update.validate(auth.policy())?;
    let user = store
        .update_user(id, &update)
        .await?
        .ok_or_else(|| ApiError::not_found("User not found"))?;
    tracing::info!(user_id = id, role = ?update.role, disabled = ?update.disabled, permissions = ?update.permissions, "user updated by an admin");
    Ok(Json(AdminUserView::from(user)))
}

/// Deletes a user with their items and logins (role and scope `admin`); never the
/// last enabled admin (409 `last_admin`).
#[utoipa::path(delete, path = "/users/{id}", tag = "users",
    params(("id" = i64, Path, minimum = 1, description = "The user's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 409, description = "`last_admin`: the last enabled admin cannot be deleted", body = ErrorBody),
        InvalidInput,
    ))]
pub async fn delete_user(
    _: RequireRole<Admin>,
    ResourceId(id): ResourceId,
    State(store): State<Store>,
) -> Result<StatusCode, ApiError> {
    if !store.delete_user(id).await? {
        return Err(ApiError::not_found("User not found"));
    }
    tracing::info!(user_id = id, "user deleted by an admin");
    Ok(StatusCode::NO_CONTENT)
}
