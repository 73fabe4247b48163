//! Items, the example resource: yours to list and create (scopes `items`,
//! `items:write`); anyone's to delete with the permission `items:delete`.

use auth_kit::extract::standard::{DeleteItems, ReadItems, WriteItems};
use auth_kit::http::{JsonBody, ResourceId};
use auth_kit::store::{Item, NewItem, Store};
use auth_kit::{ApiError, ErrorBody, RequirePermission, RequireScopes};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

/// Your items (scope `items`).
#[utoipa::path(get, path = "/users/me/items", tag = "items", security(("oauth2" = ["items"])), responses(
    (status = 200, body = [Item]),
    (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody),
))]
pub async fn my_items(
    caller: RequireScopes<ReadItems>,
    State(store): State<Store>,
) -> Result<Json<Vec<Item>>, ApiError> {
    Ok(Json(store.items_of(caller.user.id).await?))
}

/// Creates an item you own (scope `items:write`).
#[utoipa::path(post, path = "/items", tag = "items", security(("oauth2" = ["items:write"])), request_body = NewItem, responses(
    (status = 201, body = Item),
    (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody),
    (status = 415, body = ErrorBody),
    (status = 422, body = ErrorBody),
))]
pub async fn create_item(
    caller: RequireScopes<WriteItems>,
    State(store): State<Store>,
    JsonBody(item): JsonBody<NewItem>,
) -> Result<(StatusCode, Json<Item>), ApiError> {
    item.validate()?;
    let item = store.create_item(caller.user.id, &item).await?;
    Ok((StatusCode::CREATED, Json(item)))
}

/// Deletes any item (permission `items:delete`, from the role or a
/// per-user grant). Authorization comes first: 403 before 404.
#[utoipa::path(delete, path = "/items/{id}", tag = "items", security(("oauth2" = [])),
    params(("id" = i64, Path, description = "The item's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Permission 'items:delete' required", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn delete_item(
    _: RequirePermission<DeleteItems>,
    ResourceId(id): ResourceId,
    State(store): State<Store>,
) -> Result<StatusCode, ApiError> {
    if !store.delete_item(id).await? {
        return Err(ApiError::not_found("Item not found"));
    }
    Ok(StatusCode::NO_CONTENT)
}
