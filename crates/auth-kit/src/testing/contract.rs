//! Answers every service on the kit gives alike, checked over HTTP: its
//! meta routes and documentation, its refusals of a JSON body, the bounds
//! of a list's page parameters, and a limiter's 429. A service's tests call these for
//! its own routes; each check panics naming the request it found wrong.
//!
//! ```no_run
//! # async fn demo(client: auth_kit::testing::TestClient, token: &str) {
//! use auth_kit::testing::contract;
//!
//! contract::assert_meta_routes(&client).await;
//! contract::assert_json_bodies_refused(&client, "POST", "/items", Some(token)).await;
//! contract::assert_page_parameters_enforced(&client, "/users/me/items", Some(token)).await;
//! # }
//! ```

use std::ops::RangeInclusive;

use serde_json::json;

use super::{Reply, TestClient};
use crate::page::{MAX_PAGE_LIMIT, MIN_PAGE_LIMIT};

/// The kit's meta routes: `/` points at `/token`, `/health` is ok, an
/// unknown path is the contract's 404; `/openapi.json` is OpenAPI 3.1 with
/// the password flow at `/token`, and `/docs/` is Swagger UI.
///
/// # Panics
/// When one of them answers otherwise.
pub async fn assert_meta_routes(client: &TestClient) {
    let root = client.get("/", None).await;
    assert_eq!(root.body["token_url"], json!("/token"), "/: {root:?}");
    let health = client.get("/health", None).await;
    assert_eq!(health.body, json!({"status": "ok"}), "/health: {health:?}");
    let unknown = client.get("/no/such/route", None).await;
    assert_eq!(
        (unknown.status, unknown.error()),
        (404, ("not_found", "No route matches this path")),
        "{unknown:?}"
    );
    assert_eq!(
        unknown.body,
        json!({"error": "not_found", "error_description": "No route matches this path"}),
        "nothing but the contract's fields"
    );

    let doc = client.get("/openapi.json", None).await.body;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "OpenAPI version {}",
        doc["openapi"]
    );
    let password_flow = &doc["components"]["securitySchemes"]["oauth2"]["flows"]["password"];
    assert_eq!(
        password_flow["tokenUrl"],
        json!("/token"),
        "{password_flow}"
    );
    let docs = client.get("/docs/", None).await;
    assert_eq!(docs.status, 200, "/docs/: {docs:?}");
    assert!(
        docs.body
            .as_str()
            .is_some_and(|page| page.contains("swagger-ui")),
        "/docs/ is not Swagger UI: {docs:?}"
    );
}

/// `method path` refuses a body that is not JSON (415
/// `unsupported_media_type`), broken or empty JSON (400
/// `invalid_request`), and one over 64 KiB (413 `request_too_large`).
///
/// # Panics
/// When one of them is answered otherwise.
pub async fn assert_json_bodies_refused(
    client: &TestClient,
    method: &str,
    path: &str,
    token: Option<&str>,
) {
    let json = Some("application/json");
    let cases: [(Option<&str>, Vec<u8>, u16, &str); 5] = [
        (
            Some("text/plain"),
            b"{}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (json, b"{".to_vec(), 400, "invalid_request"),
        (json, br#"{"name":"#.to_vec(), 400, "invalid_request"),
        (json, Vec::new(), 400, "invalid_request"),
        (json, vec![b' '; 65 * 1024], 413, "request_too_large"),
    ];
    for (content_type, body, status, code) in cases {
        let length = body.len();
        let reply = client.send(method, path, token, content_type, body).await;
        assert_eq!(
            (reply.status, reply.error().0),
            (status, code),
            "{method} {path} ({content_type:?}, {length} bytes): {reply:?}"
        );
    }
}

/// `GET path` (a list) takes `limit` from the kit's minimum to its maximum
/// and refuses it outside them or not a number, and refuses an `after`
/// that is not an id: 422 `validation_failed` naming the parameter.
///
/// # Panics
/// When one of them is answered otherwise.
pub async fn assert_page_parameters_enforced(client: &TestClient, path: &str, token: Option<&str>) {
    for limit in [MIN_PAGE_LIMIT, MAX_PAGE_LIMIT] {
        let page = client.get(&format!("{path}?limit={limit}"), token).await;
        assert_eq!(page.status, 200, "{path}?limit={limit}: {page:?}");
    }
    let refused = [
        format!("limit={}", MIN_PAGE_LIMIT - 1),
        format!("limit={}", MAX_PAGE_LIMIT + 1),
        "limit=ten".to_owned(),
        "after=0".to_owned(),
        "after=-1".to_owned(),
        "after=x".to_owned(),
    ];
    for query in refused {
        let bad = client.get(&format!("{path}?{query}"), token).await;
        assert_eq!(
            (bad.status, bad.error().0),
            (422, "validation_failed"),
            "{path}?{query}: {bad:?}"
        );
        let field = query.split('=').next().unwrap_or_default();
        assert!(
            bad.error().1.starts_with(&format!("{field}: ")),
            "{path}?{query}: {bad:?}"
        );
    }
}

/// `reply` is the limiter's 429 `too_many_requests`, with a `Retry-After`
/// of `seconds` (a range: the clock is real, and a second may pass).
///
/// # Panics
/// When it is not.
#[track_caller]
pub fn assert_too_many_requests(reply: &Reply, seconds: RangeInclusive<u64>) {
    assert_eq!(
        (reply.status, reply.error().0),
        (429, "too_many_requests"),
        "{reply:?}"
    );
    let retry_after = reply.header("retry-after").and_then(|s| s.parse().ok());
    assert!(
        retry_after.is_some_and(|s: u64| seconds.contains(&s)),
        "Retry-After {retry_after:?}, not within {seconds:?}: {reply:?}"
    );
}

#[cfg(test)]
mod tests {
    use std::panic::AssertUnwindSafe;

    use axum::http::HeaderMap;

    use super::*;

    fn reply(status: u16, retry_after: &str) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", retry_after.parse().unwrap());
        Reply {
            status,
            headers,
            body: json!({"error": "too_many_requests", "error_description": "Wait"}),
        }
    }

    #[test]
    fn a_lock_within_the_range_passes() {
        assert_too_many_requests(&reply(429, "3595"), 3590..=3600);
    }

    #[test]
    fn a_lock_of_another_kind_fails() {
        for (status, retry_after, seconds, expected) in [
            (429, "3600", 290..=300, "not within 290..=300"),
            (429, "soon", 1..=300, "Retry-After None"),
            (503, "10", 1..=300, "left: (503,"),
        ] {
            let reply = reply(status, retry_after);
            let check = AssertUnwindSafe(|| assert_too_many_requests(&reply, seconds));
            let panic = std::panic::catch_unwind(check).expect_err(expected);
            let message = panic.downcast_ref::<String>().unwrap();
            assert!(message.contains(expected), "{message}");
        }
    }
}
