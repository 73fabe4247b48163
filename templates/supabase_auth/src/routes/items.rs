//! Items, stored here and owned by Supabase user ids: yours to list and
//! create; anyone's to delete with the permission `items:delete` (from the
//! role in `app_metadata`, or `app_metadata.permissions`).

use auth_kit::extract::standard::DeleteItems;
use auth_kit::http::{JsonBody, ResourceId};
use auth_kit::store::{NewItem, Store, SubjectItem};
use auth_kit::supabase::{CurrentSupabaseUser, RequireSupabasePermission};
use auth_kit::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

/// Your items.
#[utoipa::path(get, path = "/users/me/items", tag = "items", security(("oauth2" = [])), responses(
    (status = 200, body = [SubjectItem]),
    (status = 401, body = ErrorBody),
))]
pub async fn my_items(
    caller: CurrentSupabaseUser,
    State(store): State<Store>,
) -> Result<Json<Vec<SubjectItem>>, ApiError> {
    Ok(Json(store.items_of_subject(caller.user.id()).await?))
}

/// Creates an item you own.
#[utoipa::path(post, path = "/items", tag = "items", security(("oauth2" = [])), request_body = NewItem, responses(
    (status = 201, body = SubjectItem),
    (status = 401, body = ErrorBody),
    (status = 415, body = ErrorBody),
    (status = 422, body = ErrorBody),
))]
pub async fn create_item(
    caller: CurrentSupabaseUser,
    State(store): State<Store>,
    JsonBody(item): JsonBody<NewItem>,
) -> Result<(StatusCode, Json<SubjectItem>), ApiError> {
    item.validate()?;
    let item = store.create_subject_item(caller.user.id(), &item).await?;
    Ok((StatusCode::CREATED, Json(item)))
}

/// Deletes any item (permission `items:delete`). Authorization comes first:
/// 403 before 404.
#[utoipa::path(delete, path = "/items/{id}", tag = "items", security(("oauth2" = [])),
    params(("id" = i64, Path, description = "The item's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Permission 'items:delete' required", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn delete_item(
    _: RequireSupabasePermission<DeleteItems>,
    ResourceId(id): ResourceId,
    State(store): State<Store>,
) -> Result<StatusCode, ApiError> {
    if !store.delete_subject_item(id).await? {
        return Err(ApiError::not_found("Item not found"));
    }
    Ok(StatusCode::NO_CONTENT)
}
