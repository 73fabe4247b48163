//! What a client sends to create an item (POST /items), and its rules:
//! one constant each, read by the validator and by the OpenAPI schema, so
//! the document and the service cannot disagree.

use auth_kit::ApiError;
use serde::Deserialize;
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
