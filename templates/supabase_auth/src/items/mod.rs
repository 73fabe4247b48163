//! Items, stored here and owned by Supabase user ids: their types and their
//! queries, written once for SQLite and PostgreSQL with auth-kit's
//! `on_pool!` on the store's pool. The table is this service's own
//! (`migrations/`); what a client may send, and its rules, is in
//! `new_item.rs`.

use auth_kit::clock::rfc3339;
use auth_kit::on_pool;
use auth_kit::page::{Page, PageRequest};
use auth_kit::store::{Store, StoreError};
use serde::{Deserialize, Serialize};

mod new_item;

pub use new_item::{
    ITEM_DESCRIPTION_MAX_CHARS, ITEM_TITLE_BLANKS, ITEM_TITLE_MAX_CHARS, ITEM_TITLE_PATTERN,
    NewItem,
};

/// An item owned by a Supabase user: `owner_id` is their `sub`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubjectItem {
    /// The id.
    pub id: i64,
    /// 1 to 200 characters.
    pub title: String,
    /// Up to 5000 characters.
    pub description: Option<String>,
    /// The owner's `sub`.
    pub owner_id: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

#[derive(sqlx::FromRow)]
struct SubjectItemRow {
    id: i64,
    title: String,
    description: Option<String>,
    owner_sub: String,
    created_at: i64,
}

impl From<SubjectItemRow> for SubjectItem {
    fn from(r: SubjectItemRow) -> Self {
        SubjectItem {
            id: r.id,
            title: r.title,
            description: r.description,
            owner_id: r.owner_sub,
            created_at: rfc3339(r.created_at),
        }
    }
}

/// Stores an item owned by the subject `owner`.
pub async fn create(store: &Store, owner: &str, new: &NewItem) -> Result<SubjectItem, StoreError> {
    let now = store.clock().now();
    let id = on_pool!(store, |pool| {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO subject_items (owner_sub, title, description, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(owner)
        .bind(&new.title)
        .bind(&new.description)
        .bind(now)
        .fetch_one(pool)
        .await
    })?;
    Ok(SubjectItem {
        id,
        title: new.title.clone(),
        description: new.description.clone(),
        owner_id: owner.to_owned(),
        created_at: rfc3339(now),
    })
}

/// One page of the items the subject `owner` owns, by id (keyset: one
/// indexed query per page, however deep).
pub async fn page_of(
    store: &Store,
    owner: &str,
    page: &PageRequest,
) -> Result<Page<SubjectItem>, StoreError> {
    let rows = on_pool!(store, |pool| {
        sqlx::query_as::<_, SubjectItemRow>(
            "SELECT id, title, description, owner_sub, created_at FROM subject_items \
             WHERE owner_sub = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(owner)
        .bind(page.after_id())
        .bind(page.lookahead_limit())
        .fetch_all(pool)
        .await
    })?;
    let items = rows.into_iter().map(SubjectItem::from).collect();
    Ok(Page::from_lookahead(page, items, |i: &SubjectItem| i.id))
}

/// Deletes a subject's item; `false` when there was none.
pub async fn delete(store: &Store, id: i64) -> Result<bool, StoreError> {
    let deleted = on_pool!(store, |pool| {
        sqlx::query("DELETE FROM subject_items WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(deleted > 0)
}
