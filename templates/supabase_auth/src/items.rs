//! Items, stored here and owned by Supabase user ids: their types, their
//! input rules (one constant each, read by the validator and the OpenAPI
//! schema), and their queries, written once for SQLite and PostgreSQL with
//! auth-kit's `on_pool!` on the store's pool. The table is this service's
//! own (`migrations/`).

use auth_kit::ApiError;
use auth_kit::clock::rfc3339;
use auth_kit::on_pool;
use auth_kit::page::{Page, PageRequest};
use auth_kit::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

/// The longest item title, in characters.
pub const ITEM_TITLE_MAX_CHARS: usize = 200;
/// The longest item description, in characters.
pub const ITEM_DESCRIPTION_MAX_CHARS: usize = 5000;
/// What a title must contain, as a JSON Schema pattern: a character other
/// than the blanks [`ITEM_TITLE_BLANKS`].
pub const ITEM_TITLE_PATTERN: &str = "[^ \\t\\r\\n]";
/// The characters that do not count as a title on their own (spelled the
/// same in every regex dialect, unlike `\\s`).
pub const ITEM_TITLE_BLANKS: [char; 4] = [' ', '\t', '\r', '\n'];

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

/// An item to create (POST /items).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
pub struct NewItem {
    /// 1 to 200 characters, not only blanks.
    #[schema(schema_with = title_schema)]
    pub title: String,
    /// Up to 5000 characters.
    #[serde(default)]
    #[schema(schema_with = description_schema)]
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

/// 1 to 200 characters, not only spaces, tabs and line breaks.
fn title_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(ITEM_TITLE_MAX_CHARS))
        .pattern(Some(ITEM_TITLE_PATTERN))
        .description(Some(format!(
            "1 to {ITEM_TITLE_MAX_CHARS} characters, not only spaces, tabs and line breaks"
        )))
        .build()
}

/// Up to 5000 characters, or null.
fn description_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .max_length(Some(ITEM_DESCRIPTION_MAX_CHARS))
        .description(Some(format!(
            "Optional, up to {ITEM_DESCRIPTION_MAX_CHARS} characters"
        )))
        .build()
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
