//! Items, the resource of the runnable examples (`examples/`): their
//! types, their input rules and their queries, written once for SQLite and
//! PostgreSQL with auth-kit's `on_pool!` on the store's pool. The table is
//! created by auth-kit's first migration. A stamped service has its own
//! items module (`src/items/`, with its migrations and OpenAPI schemas).

use auth_kit::clock::rfc3339;
use auth_kit::on_pool;
use auth_kit::page::{Page, PageRequest};
use auth_kit::store::{LockUserRow, Store, StoreError};
use auth_kit::token::InvalidToken;
use auth_kit::{ApiError, AuthError};
use serde::{Deserialize, Serialize};

/// The longest item title, in characters.
pub const ITEM_TITLE_MAX_CHARS: usize = 200;
/// The longest item description, in characters.
pub const ITEM_DESCRIPTION_MAX_CHARS: usize = 5000;
/// The characters that do not count as a title on their own (spelled the
/// same in every regex dialect, unlike `\\s`).
pub const ITEM_TITLE_BLANKS: [char; 4] = [' ', '\t', '\r', '\n'];

/// An item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The id.
    pub id: i64,
    /// 1 to 200 characters.
    pub title: String,
    /// Up to 5000 characters.
    pub description: Option<String>,
    /// The owner's user id.
    pub owner_id: i64,
    /// RFC 3339 UTC.
    pub created_at: String,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    id: i64,
    title: String,
    description: Option<String>,
    owner_id: i64,
    created_at: i64,
}

impl From<ItemRow> for Item {
    fn from(r: ItemRow) -> Self {
        Item {
            id: r.id,
            title: r.title,
            description: r.description,
            owner_id: r.owner_id,
            created_at: rfc3339(r.created_at),
        }
    }
}

/// An item to create (POST /items).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NewItem {
    /// 1 to 200 characters, not only blanks.
    pub title: String,
    /// Up to 5000 characters.
    #[serde(default)]
    pub description: Option<String>,
}

impl NewItem {
    /// 422 for an empty, blank or over-long title, or an over-long
    /// description (the OpenAPI schema states the same rules).
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.title.trim_matches(ITEM_TITLE_BLANKS).is_empty() {
            return Err(ApiError::validation("title", "must not be empty"));
        }
        if self.title.chars().count() > ITEM_TITLE_MAX_CHARS {
            return Err(ApiError::validation(
                "title",
                format!("must be at most {ITEM_TITLE_MAX_CHARS} characters"),
            ));
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > ITEM_DESCRIPTION_MAX_CHARS)
        {
            return Err(ApiError::validation(
                "description",
                format!("must be at most {ITEM_DESCRIPTION_MAX_CHARS} characters"),
            ));
        }
        Ok(())
    }
}

/// Why an item was not created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateItemError {
    /// The owner already owns the most items allowed: 409 `quota_exceeded`.
    #[error("the owner already owns {limit} items, the most allowed")]
    QuotaExceeded {
        /// ITEMS_MAX_PER_USER.
        limit: u32,
    },
    /// The owner was deleted meanwhile: 401, as their token now gets.
    #[error("the owner no longer exists")]
    OwnerGone,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CreateItemError {
    fn from(e: sqlx::Error) -> Self {
        CreateItemError::Store(e.into())
    }
}

impl From<CreateItemError> for ApiError {
    fn from(e: CreateItemError) -> Self {
        match e {
            CreateItemError::QuotaExceeded { limit } => ApiError::Conflict {
                code: "quota_exceeded",
                description: format!(
                    "You already own {limit} items, the most allowed; delete some first"
                )
                .into(),
            },
            CreateItemError::OwnerGone => AuthError::from(InvalidToken::UnknownUser).into(),
            CreateItemError::Store(e) => e.into(),
        }
    }
}

/// Stores an item owned by `owner_id`, unless they already own
/// `max_items` ([`CreateItemError::QuotaExceeded`]).
///
/// The owner's row is locked first (auth-kit's [`LockUserRow`], which
/// changes no user), then the item is inserted only if the count is below
/// the quota, in one transaction: concurrent creations for one owner queue
/// on that lock, so none can slip past the quota between a count and an
/// insert.
pub async fn create(
    store: &Store,
    owner_id: i64,
    new: &NewItem,
    max_items: u32,
) -> Result<Item, CreateItemError> {
    let now = store.clock().now();
    let created = on_pool!(store, |pool| {
        let mut tx = pool.begin().await?;
        let owner_exists = tx.lock_user_row(owner_id).await?;
        let id = if owner_exists {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO items (owner_id, title, description, created_at) SELECT $1, $2, $3, $4 \
                 WHERE (SELECT count(*) FROM items WHERE owner_id = $1) < $5 RETURNING id",
            )
            .bind(owner_id)
            .bind(&new.title)
            .bind(&new.description)
            .bind(now)
            .bind(i64::from(max_items))
            .fetch_optional(&mut *tx)
            .await?
        } else {
            None
        };
        // Always ended here, never left open on an early return.
        tx.commit().await?;
        Ok::<_, sqlx::Error>((owner_exists, id))
    })?;
    let id = match created {
        (false, _) => return Err(CreateItemError::OwnerGone),
        (true, None) => return Err(CreateItemError::QuotaExceeded { limit: max_items }),
        (true, Some(id)) => id,
    };
    Ok(Item {
        id,
        title: new.title.clone(),
        description: new.description.clone(),
        owner_id,
        created_at: rfc3339(now),
    })
}

/// One page of the items `owner_id` owns, by id (keyset: one indexed query
/// per page, however deep).
pub async fn page_of(
    store: &Store,
    owner_id: i64,
    page: &PageRequest,
) -> Result<Page<Item>, StoreError> {
    let rows = on_pool!(store, |pool| {
        sqlx::query_as::<_, ItemRow>(
            "SELECT id, title, description, owner_id, created_at FROM items \
             WHERE owner_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(owner_id)
        .bind(page.after_id())
        .bind(page.lookahead_limit())
        .fetch_all(pool)
        .await
    })?;
    let items = rows.into_iter().map(Item::from).collect();
    Ok(Page::from_lookahead(page, items, |i: &Item| i.id))
}

/// The item with this id.
pub async fn get(store: &Store, id: i64) -> Result<Option<Item>, StoreError> {
    let row = on_pool!(store, |pool| {
        sqlx::query_as::<_, ItemRow>(
            "SELECT id, title, description, owner_id, created_at FROM items WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
    })?;
    Ok(row.map(Item::from))
}

/// Deletes an item; `false` when there was none.
pub async fn delete(store: &Store, id: i64) -> Result<bool, StoreError> {
    let deleted = on_pool!(store, |pool| {
        sqlx::query("DELETE FROM items WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(deleted > 0)
}
