//! Items, the example resource: yours to list and create with any valid
//! token, up to ITEMS_MAX_PER_USER each; anyone's to delete with the
//! permission `items:delete`.

use auth_kit::http::{JsonBody, ResourceId};
use auth_kit::openapi::{InvalidInput, JsonBodyErrors};
use auth_kit::page::{Page, PageRequest};
use auth_kit::store::Store;
use auth_kit::{ApiError, CurrentUser, ErrorBody, RequirePermission};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::ItemQuota;
use crate::items::{self, Item, NewItem};
use crate::policy::DeleteItems;

/// Your items by id, a page at a time.
#[utoipa::path(get, path = "/users/me/items", tag = "items", params(PageRequest), responses(
    (status = 200, body = [Item], headers(
        ("Link" = String, description = "`<...?after=N&limit=L>; rel=\"next\"` when more items follow (RFC 8288)"),
    )),
    InvalidInput,
))]
pub async fn my_items(
    caller: CurrentUser,
    page: PageRequest,
    State(store): State<Store>,
) -> Result<Page<Item>, ApiError> {
    Ok(items::page_of(&store, caller.user.id, &page).await?)
}

/// Creates an item you own.
#[utoipa::path(post, path = "/items", tag = "items", request_body = NewItem, responses(
    (status = 201, body = Item),
    (status = 409, description = "`quota_exceeded`: you own ITEMS_MAX_PER_USER items already", body = ErrorBody),
    JsonBodyErrors,
))]
pub async fn create_item(
    caller: CurrentUser,
    State(store): State<Store>,
    State(ItemQuota(quota)): State<ItemQuota>,
    JsonBody(item): JsonBody<NewItem>,
) -> Result<(StatusCode, Json<Item>), ApiError> {
    item.validate()?;
    let item = items::create(&store, caller.user.id, &item, quota).await?;
    Ok((StatusCode::CREATED, Json(item)))
}

/// Deletes any item (permission `items:delete`, from the role or a
/// per-user grant). Authorization comes first: 403 before 404.
#[utoipa::path(delete, path = "/items/{id}", tag = "items",
    params(("id" = i64, Path, minimum = 1, description = "The item's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such item", body = ErrorBody),
        InvalidInput,
    ))]
pub async fn delete_item(
    _: RequirePermission<DeleteItems>,
    ResourceId(id): ResourceId,
    State(store): State<Store>,
) -> Result<StatusCode, ApiError> {
    if !items::delete(&store, id).await? {
        return Err(ApiError::not_found("Item not found"));
    }
    Ok(StatusCode::NO_CONTENT)
}
