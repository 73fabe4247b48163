//! Keyset pagination for list routes: `?limit=L&after=N`.
//!
//! A list answer stays a JSON array ordered by id; when more rows follow,
//! it carries an RFC 8288 `Link: </path?after=N&limit=L>; rel="next"`
//! header, where `N` is the id of the page's last row. The store reads one
//! row more than asked (one query) to know whether more follow, so an
//! answer never costs a count.
//!
//! ```
//! use auth_kit::page::{Page, PageRequest};
//!
//! let request = PageRequest::parse("/users", Some("limit=2")).unwrap();
//! // Three rows read for a limit of two: more follow.
//! let page = Page::from_lookahead(&request, vec![1_i64, 2, 3], |id| *id);
//! assert_eq!(page.rows(), &[1, 2]);
//! assert_eq!(page.next_link().as_deref(), Some(r#"</users?after=2&limit=2>; rel="next""#));
//! ```

use std::borrow::Cow;

use axum::Json;
use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::HeaderValue;
use axum::http::header::LINK;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;

/// Rows per page when `limit` is absent.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
/// The smallest `limit` accepted.
pub const MIN_PAGE_LIMIT: u32 = 1;
/// The largest `limit` accepted.
pub const MAX_PAGE_LIMIT: u32 = 200;

/// Which page a list route was asked for. As an extractor it reads the
/// query string (422 `limit: ...` or `after: ...` for a bad value; other
/// parameters are ignored) and remembers the path for the `Link` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows per page, [`MIN_PAGE_LIMIT`] to [`MAX_PAGE_LIMIT`].
    pub limit: u32,
    /// The page starts after this id (`None`: from the first row).
    pub after: Option<i64>,
    path: String,
}

impl PageRequest {
    /// The first page of `path`, with the default limit.
    pub fn first(path: impl Into<String>) -> Self {
        Self {
            limit: DEFAULT_PAGE_LIMIT,
            after: None,
            path: path.into(),
        }
    }

    /// Reads `limit` and `after` from a query string (without the `?`).
    pub fn parse(path: &str, query: Option<&str>) -> Result<Self, ApiError> {
        let mut request = Self::first(path);
        let (mut limit_seen, mut after_seen) = (false, false);
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match name.as_ref() {
                "limit" => {
                    once(&mut limit_seen, "limit")?;
                    request.limit = parse_positive(&value)
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| (MIN_PAGE_LIMIT..=MAX_PAGE_LIMIT).contains(n))
                        .ok_or_else(|| {
                            ApiError::validation(
                                "limit",
                                format!(
                                    "must be a whole number from {MIN_PAGE_LIMIT} to {MAX_PAGE_LIMIT}"
                                ),
                            )
                        })?;
                }
                "after" => {
                    once(&mut after_seen, "after")?;
                    request.after = Some(parse_positive(&value).ok_or_else(|| {
                        ApiError::validation("after", "must be a positive integer (an id)")
                    })?);
                }
                _ => {}
            }
        }
        Ok(request)
    }

    /// How many rows a store reads for this page: one more than the limit,
    /// to know whether another page follows.
    pub fn lookahead_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// The id the page starts after (0 before every id: ids are positive).
    pub fn after_id(&self) -> i64 {
        self.after.unwrap_or(0)
    }
}

fn once(seen: &mut bool, name: &'static str) -> Result<(), ApiError> {
    if std::mem::replace(seen, true) {
        return Err(ApiError::validation(name, "given more than once"));
    }
    Ok(())
}

/// A positive integer written as plain decimal digits (no sign, no space).
pub(crate) fn parse_positive(raw: &str) -> Option<i64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<i64>().ok().filter(|n| *n > 0)
}

impl<S: Send + Sync> FromRequestParts<S> for PageRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The path the client asked for, also when the router is nested.
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |original| &original.0);
        Self::parse(uri.path(), uri.query())
    }
}

/// One page of a list: a JSON array, with a `Link` to the next page when
/// more rows follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    rows: Vec<T>,
    next_after: Option<i64>,
    limit: u32,
    path: String,
}

impl<T> Page<T> {
    /// The page from the rows a store read with
    /// [`PageRequest::lookahead_limit`]: the extra row, if any, is dropped
    /// and means that a next page exists.
    pub fn from_lookahead(request: &PageRequest, mut rows: Vec<T>, id: impl Fn(&T) -> i64) -> Self {
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let next_after = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(id)
        } else {
            None
        };
        Self {
            rows,
            next_after,
            limit: request.limit,
            path: request.path.clone(),
        }
    }

    /// The rows of this page.
    pub fn rows(&self) -> &[T] {
        &self.rows
    }

    /// The rows of this page, owned.
    pub fn into_rows(self) -> Vec<T> {
        self.rows
    }

    /// The same page with every row converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            rows: self.rows.into_iter().map(f).collect(),
            next_after: self.next_after,
            limit: self.limit,
            path: self.path,
        }
    }

    /// The RFC 8288 `Link` header value for the next page, if one exists.
    pub fn next_link(&self) -> Option<String> {
        self.next_after.map(|after| {
            format!(
                "<{}?after={after}&limit={}>; rel=\"next\"",
                self.path, self.limit
            )
        })
    }
}

impl<T: Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        let link = self
            .next_link()
            .and_then(|link| HeaderValue::try_from(link).ok());
        let mut response = Json(self.rows).into_response();
        if let Some(link) = link {
            response.headers_mut().insert(LINK, link);
        }
        response
    }
}

/// How the list parameters appear in OpenAPI: `limit` (1 to 200, default
/// 50) and `after` (an id), both optional query parameters.
#[cfg(feature = "openapi")]
impl utoipa::IntoParams for PageRequest {
    fn into_params(
        _parameter_in_provider: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::Required;
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        let limit = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(f64::from(MIN_PAGE_LIMIT)))
            .maximum(Some(f64::from(MAX_PAGE_LIMIT)))
            .default(Some(serde_json::Value::from(DEFAULT_PAGE_LIMIT)));
        let after = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1.0));
        vec![
            ParameterBuilder::new()
                .name("limit")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(Cow::<str>::Owned(format!(
                    "Rows per page, {MIN_PAGE_LIMIT} to {MAX_PAGE_LIMIT} (default {DEFAULT_PAGE_LIMIT})"
                ))))
                .schema(Some(limit))
                .build(),
            ParameterBuilder::new()
                .name("after")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(
                    "The page starts after this id: the `after` of the previous answer's `Link: rel=\"next\"`",
                ))
                .schema(Some(after))
                .build(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, expected: Result<(u32, Option<i64>), &str>) {
        let got = PageRequest::parse("/x", Some(query)).map(|r| (r.limit, r.after));
        assert_eq!(
            got.map_err(|e| e.to_string()),
            expected.map_err(str::to_owned),
            "{query:?}"
        );
    }

    #[test]
    fn queries() {
        check("", Ok((50, None)));
        check("limit=1", Ok((1, None)));
        check("limit=200&after=7", Ok((200, Some(7))));
        check("after=9223372036854775807", Ok((50, Some(i64::MAX))));
        check("other=1&limit=3", Ok((3, None)));
        let limit = Err("limit: must be a whole number from 1 to 200");
        for bad in [
            "limit=0",
            "limit=201",
            "limit=",
            "limit=-1",
            "limit=+5",
            "limit=5x",
            "limit=99999999999",
        ] {
            check(bad, limit);
        }
        let after = Err("after: must be a positive integer (an id)");
        for bad in [
            "after=0",
            "after=",
            "after=-3",
            "after=+3",
            "after=%203",
            "after=9223372036854775808",
        ] {
            check(bad, after);
        }
        check("limit=2&limit=3", Err("limit: given more than once"));
        check("after=2&after=3", Err("after: given more than once"));
    }

    #[test]
    fn pages_link_to_the_next_one_only_when_more_follow() {
        let request = PageRequest::parse("/users/me/items", Some("limit=2&after=10")).unwrap();
        let full = Page::from_lookahead(&request, vec![11_i64, 12, 13], |id| *id);
        assert_eq!(full.rows(), &[11, 12]);
        assert_eq!(
            full.next_link().as_deref(),
            Some(r#"</users/me/items?after=12&limit=2>; rel="next""#)
        );
        let last = Page::from_lookahead(&request, vec![11_i64, 12], |id| *id);
        assert_eq!(last.next_link(), None);
        let empty = Page::from_lookahead(&request, Vec::<i64>::new(), |id| *id);
        assert_eq!((empty.rows().len(), empty.next_link()), (0, None));
    }
}
