//! GoTrue's two error shapes.
//!
//! Handlers return [`GoTrueError`], whose response is the legacy shape
//! `{"code":<status>,"error_code":"<code>","msg":"<text>"}` with the
//! `x-sb-error-code` header. [`api_version`] rewrites it into the versioned
//! shape `{"code":"<code>","message":"<text>"}` when the request carries
//! `X-Supabase-Api-Version: 2024-01-01` (or any later date), and echoes
//! the version header, as upstream's `HandleResponseError` does.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The request header that selects the error shape.
pub(crate) const API_VERSION_HEADER: HeaderName = HeaderName::from_static("x-supabase-api-version");
/// The one versioned shape upstream knows.
const API_VERSION_2024_01_01: &str = "2024-01-01";
/// Upstream's machine-readable error code header.
const ERROR_CODE_HEADER: HeaderName = HeaderName::from_static("x-sb-error-code");

/// An error answer in GoTrue's terms.
#[derive(Debug, Clone)]
pub(crate) struct GoTrueError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// `weak_password.reasons`, for `weak_password` errors only.
    weak_password: Option<Vec<&'static str>>,
}

impl GoTrueError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            weak_password: None,
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub(crate) fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub(crate) fn weak_password(message: String, reasons: Vec<&'static str>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "weak_password",
            message,
            weak_password: Some(reasons),
        }
    }

    /// Status, code and message (for an error carried in a redirect).
    pub(crate) fn parts(&self) -> (StatusCode, &'static str, &str) {
        (self.status, self.code, &self.message)
    }

    fn legacy_body(&self) -> Value {
        let mut body = json!({
            "code": self.status.as_u16(),
            "error_code": self.code,
            "msg": self.message,
        });
        if let Some(reasons) = &self.weak_password {
            body["weak_password"] = json!({ "reasons": reasons });
        }
        body
    }

    fn versioned_body(&self) -> Value {
        let mut body = json!({ "code": self.code, "message": self.message });
        if let Some(reasons) = &self.weak_password {
            body["weak_password"] = json!({ "reasons": reasons });
        }
        body
    }
}

impl IntoResponse for GoTrueError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.legacy_body())).into_response();
        response
            .headers_mut()
            .insert(ERROR_CODE_HEADER, HeaderValue::from_static(self.code));
        // The middleware picks the shape; it needs the parts, not the body.
        response.extensions_mut().insert(self);
        response
    }
}

/// Whether an `X-Supabase-Api-Version` value selects the 2024-01-01 shape:
/// a valid date on or after it. Anything else means the initial version.
pub(crate) fn is_versioned(header: Option<&HeaderValue>) -> bool {
    let Some(raw) = header.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut parts = raw.trim().splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i32>(), m.parse::<u8>(), d.parse::<u8>()) else {
        return false;
    };
    let Ok(month) = time::Month::try_from(m) else {
        return false;
    };
    time::Date::from_calendar_date(y, month, d).is_ok() && (y, m, d) >= (2024, 1, 1)
}

/// Middleware: rewrites [`GoTrueError`] answers into the shape the request
/// asked for.
pub(crate) async fn api_version(request: Request, next: Next) -> Response {
    let versioned = is_versioned(request.headers().get(API_VERSION_HEADER));
    let mut response = next.run(request).await;
    if !versioned {
        return response;
    }
    let Some(error) = response.extensions_mut().remove::<GoTrueError>() else {
        return response;
    };
    let mut rewritten = (error.status, Json(error.versioned_body())).into_response();
    let headers = rewritten.headers_mut();
    headers.insert(
        API_VERSION_HEADER,
        HeaderValue::from_static(API_VERSION_2024_01_01),
    );
    // Upstream sets x-sb-error-code on versioned answers too, except for
    // weak passwords.
    if error.weak_password.is_none() {
        headers.insert(ERROR_CODE_HEADER, HeaderValue::from_static(error.code));
    }
    rewritten
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_header_values() {
        let check = |raw: Option<&str>, expected: bool| {
            let value =
                raw.map(|r| HeaderValue::from_str(r).unwrap_or(HeaderValue::from_static("")));
            assert_eq!(is_versioned(value.as_ref()), expected, "{raw:?}");
        };
        check(None, false);
        check(Some("2024-01-01"), true);
        check(Some("2025-06-30"), true);
        check(Some("2023-12-31"), false);
        check(Some("2024-13-01"), false);
        check(Some("yesterday"), false);
    }
}
