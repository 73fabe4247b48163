//! Errors as HTTP answers (docs/contract.md, "Errors").
//!
//! Every error body is `{"error": "<code>", "error_description": "<text>"}`.
//! - [`AuthError`]: bearer-token failures on protected routes (RFC 6750):
//!   401 with a `WWW-Authenticate: Bearer ...` challenge, or 403.
//! - [`OAuthError`]: the token endpoint (RFC 6749 section 5.2): 400 with
//!   `invalid_request`, `invalid_grant`, ..., always `Cache-Control: no-store`.
//! - [`ApiError`]: everything else a route can answer.
//!
//! 5xx bodies are generic. The cause travels in the response's extensions as
//! [`ServerErrorDetail`], where [`crate::http::log_server_errors`] logs it:
//! `IntoResponse` has no side effects.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::token::InvalidToken;

/// The JSON body of every error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `invalid_token`.
    pub error: String,
    /// Text for humans; for 422 it starts with `<field>: `.
    pub error_description: String,
}

fn json_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(ErrorBody {
            error: error.to_owned(),
            error_description: description.to_owned(),
        }),
    )
        .into_response()
}

/// The cause of a 5xx answer, carried in response extensions for logging.
#[derive(Clone)]
pub struct ServerErrorDetail(pub Arc<dyn std::error::Error + Send + Sync>);

impl fmt::Debug for ServerErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

fn with_detail(
    mut response: Response,
    cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
) -> Response {
    if let Some(cause) = cause {
        response.extensions_mut().insert(ServerErrorDetail(cause));
    }
    response
}

/// A protected route refused the request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AuthError {
    /// No bearer credentials (or another scheme): 401 with a bare challenge.
    MissingCredentials,
    /// The token is unacceptable: 401 `invalid_token`.
    InvalidToken(InvalidToken),
    /// The token lacks scopes the route needs: 403 `insufficient_scope`.
    InsufficientScope(&'static [&'static str]),
    /// The user is disabled: 403.
    Disabled,
    /// The user lacks a permission: 403 `Permission '<p>' required`.
    PermissionRequired(&'static str),
    /// The user lacks a role: 403 `Role '<r>' required`.
    RoleRequired(&'static str),
    /// The user store did not answer: 503.
    Unavailable(Arc<dyn std::error::Error + Send + Sync>),
    /// An identity provider the service relies on could not be asked: 503
    /// with the provider's code. The cause is logged, never sent.
    ProviderUnavailable(ProviderUnavailable),
}

impl From<InvalidToken> for AuthError {
    fn from(e: InvalidToken) -> Self {
        AuthError::InvalidToken(e)
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::MissingCredentials => f.write_str("Authentication required"),
            AuthError::InvalidToken(reason) => write!(f, "{reason}"),
            AuthError::InsufficientScope(scopes) => {
                write!(f, "The access token lacks the scope '{}'", scopes.join(" "))
            }
            AuthError::Disabled => f.write_str("The user is disabled"),
            AuthError::PermissionRequired(p) => write!(f, "Permission '{p}' required"),
            AuthError::RoleRequired(r) => write!(f, "Role '{r}' required"),
            AuthError::Unavailable(_) => {
                f.write_str("The service is temporarily unavailable; retry shortly")
            }
            AuthError::ProviderUnavailable(outage) => f.write_str(outage.description),
        }
    }
}

impl std::error::Error for AuthError {}

/// An identity provider the service relies on (a hosted auth service) could
/// not be asked: unreachable, timing out, dropping the connection,
/// answering 5xx or garbage. Answered 503 with `Retry-After: 1`, the
/// provider's own error code and a generic description; the cause is
/// logged, never sent.
#[derive(Debug, Clone)]
pub struct ProviderUnavailable {
    /// The error code, e.g. `<provider>_unavailable`.
    pub code: &'static str,
    /// What the caller reads: generic, never the provider's answer.
    pub description: &'static str,
    /// Why (logged, never sent).
    pub cause: Arc<dyn std::error::Error + Send + Sync>,
}

/// An RFC 6750 challenge. Descriptions are ours (no quotes or backslashes),
/// so quoting is safe; the check keeps it that way.
fn bearer_challenge(error: &str, description: &str, scope: Option<&str>) -> HeaderValue {
    let clean = |s: &str| s.replace(['"', '\\'], "'");
    let mut value = format!("Bearer error=\"{error}\"");
    if let Some(scope) = scope {
        value.push_str(&format!(", scope=\"{}\"", clean(scope)));
    }
    value.push_str(&format!(", error_description=\"{}\"", clean(description)));
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// The answers every error type gives alike: a client should retry later.
/// 429 after a lock, 503 while something the service needs cannot answer;
/// each with `Retry-After`, each 503 with its cause kept for the log.
/// Descriptions stay each type's own.
enum RetryLater<'a> {
    /// 429 `too_many_requests`; `Retry-After` is the seconds left.
    Locked { seconds: u64 },
    /// 503 `temporarily_unavailable`, `Retry-After: 1`.
    Unavailable(Option<&'a Arc<dyn std::error::Error + Send + Sync>>),
    /// 503 with the provider's code, `Retry-After: 1`.
    ProviderUnavailable(&'a ProviderUnavailable),
}

impl RetryLater<'_> {
    /// The JSON answer with `description` and `Retry-After`, the cause of a
    /// 503 in its extensions.
    fn response(&self, description: &str) -> Response {
        let (status, code, seconds, cause) = match self {
            RetryLater::Locked { seconds } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                *seconds,
                None,
            ),
            RetryLater::Unavailable(cause) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                1,
                cause.cloned(),
            ),
            RetryLater::ProviderUnavailable(outage) => (
                StatusCode::SERVICE_UNAVAILABLE,
                outage.code,
                1,
                Some(outage.cause.clone()),
            ),
        };
        let mut response = json_error(status, code, description);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        with_detail(response, cause)
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let description = self.to_string();
        let (status, code, challenge) = match &self {
            AuthError::MissingCredentials => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                Some(HeaderValue::from_static("Bearer")),
            ),
            AuthError::InvalidToken(_) => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                Some(bearer_challenge("invalid_token", &description, None)),
            ),
            AuthError::InsufficientScope(scopes) => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                Some(bearer_challenge(
                    "insufficient_scope",
                    &description,
                    Some(&scopes.join(" ")),
                )),
            ),
            AuthError::Disabled | AuthError::PermissionRequired(_) | AuthError::RoleRequired(_) => {
                (StatusCode::FORBIDDEN, "forbidden", None)
            }
            AuthError::Unavailable(cause) => {
                return RetryLater::Unavailable(Some(cause)).response(&description);
            }
            AuthError::ProviderUnavailable(outage) => {
                return RetryLater::ProviderUnavailable(outage).response(&description);
            }
        };
        let mut response = json_error(status, code, &description);
        if let Some(challenge) = challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// RFC 6749 section 5.2 error codes, plus the throttling and capacity
/// answers the token endpoint can give.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum OAuthError {
    /// 400 `invalid_request`: a missing, repeated or malformed parameter.
    InvalidRequest(Cow<'static, str>),
    /// 400 `invalid_grant`: bad credentials, or a bad, spent or expired
    /// refresh token. One body for unknown user, wrong password and
    /// disabled user.
    InvalidGrant(Cow<'static, str>),
    /// 400 `invalid_scope`.
    InvalidScope(Cow<'static, str>),
    /// 400 `unsupported_grant_type`.
    UnsupportedGrantType(Cow<'static, str>),
    /// 429 `too_many_requests` with `Retry-After`.
    TooManyRequests {
        /// Seconds until the lock ends.
        retry_after: u64,
    },
    /// 413 `request_too_large`: the form is over the body limit.
    RequestTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 503 `temporarily_unavailable` with `Retry-After: 1`.
    Unavailable(Option<Arc<dyn std::error::Error + Send + Sync>>),
    /// 503 with `Retry-After: 1` and the provider's code: an identity
    /// provider could not be asked. The cause is logged, never sent.
    ProviderUnavailable(ProviderUnavailable),
}

impl OAuthError {
    /// The answer for unknown user, wrong password and disabled user alike.
    pub fn bad_credentials() -> Self {
        OAuthError::InvalidGrant(Cow::Borrowed("Incorrect username or password"))
    }

    /// The answer for any unusable refresh token.
    pub fn bad_refresh_token() -> Self {
        OAuthError::InvalidGrant(Cow::Borrowed("The refresh token is invalid"))
    }

    /// A 503 caused by `cause` (logged, never sent).
    pub fn unavailable(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        OAuthError::Unavailable(Some(Arc::new(cause)))
    }

    /// The RFC 6749 error code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::TooManyRequests { .. } => "too_many_requests",
            OAuthError::RequestTooLarge { .. } => "request_too_large",
            OAuthError::Unavailable(_) => "temporarily_unavailable",
            OAuthError::ProviderUnavailable(outage) => outage.code,
        }
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::InvalidGrant(d)
            | OAuthError::InvalidScope(d)
            | OAuthError::UnsupportedGrantType(d) => f.write_str(d),
            OAuthError::TooManyRequests { .. } => {
                f.write_str("Too many failed logins; try again later")
            }
            OAuthError::RequestTooLarge { limit } => {
                write!(f, "The request body exceeds {limit} bytes")
            }
            OAuthError::Unavailable(_) => f.write_str("The server is busy; retry shortly"),
            OAuthError::ProviderUnavailable(outage) => f.write_str(outage.description),
        }
    }
}

impl std::error::Error for OAuthError {}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 section 5.1).
pub fn no_store_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let description = self.to_string();
        let retry_later = match &self {
            OAuthError::TooManyRequests { retry_after } => Some(RetryLater::Locked {
                seconds: *retry_after,
            }),
            OAuthError::Unavailable(cause) => Some(RetryLater::Unavailable(cause.as_ref())),
            OAuthError::ProviderUnavailable(outage) => {
                Some(RetryLater::ProviderUnavailable(outage))
            }
            _ => None,
        };
        let mut response = match retry_later {
            Some(retry) => retry.response(&description),
            None => {
                let status = match &self {
                    OAuthError::RequestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                };
                json_error(status, self.code(), &description)
            }
        };
        response.headers_mut().extend(no_store_headers());
        response
    }
}

/// Any other failure of a route.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ApiError {
    /// A bearer-token failure.
    Auth(AuthError),
    /// 400 `invalid_request`: malformed JSON or form.
    InvalidRequest(Cow<'static, str>),
    /// 403 `forbidden`: the action is not allowed for anyone (signups
    /// disabled, say). A user lacking a permission or role is
    /// [`ApiError::Auth`] instead.
    Forbidden(Cow<'static, str>),
    /// 404 `not_found`.
    NotFound(Cow<'static, str>),
    /// 405 `method_not_allowed`.
    MethodNotAllowed,
    /// 409 with a specific code (`username_taken`, `email_taken`, `last_admin`).
    Conflict {
        /// The error code.
        code: &'static str,
        /// The description.
        description: Cow<'static, str>,
    },
    /// 413 `request_too_large`.
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 415 `unsupported_media_type`.
    UnsupportedMediaType(Cow<'static, str>),
    /// 422 `validation_failed`; the description starts with `<field>: `.
    Validation {
        /// The offending field.
        field: Cow<'static, str>,
        /// What is wrong with it.
        message: Cow<'static, str>,
    },
    /// 429 `too_many_requests`.
    TooManyRequests {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 503 `temporarily_unavailable` with `Retry-After: 1`.
    Unavailable(Option<Arc<dyn std::error::Error + Send + Sync>>),
    /// 500 `server_error`, generic body; the cause is logged.
    Internal(Arc<dyn std::error::Error + Send + Sync>),
    /// 503 with `Retry-After: 1` and the provider's code: an identity
    /// provider could not be asked. The cause is logged, never sent.
    ProviderUnavailable(ProviderUnavailable),
}

impl ApiError {
    /// 422 for `field`.
    pub fn validation(
        field: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        ApiError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// 404 with `description`.
    pub fn not_found(description: impl Into<Cow<'static, str>>) -> Self {
        ApiError::NotFound(description.into())
    }

    /// 500 caused by `cause` (logged, never sent).
    pub fn internal(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Arc::new(cause))
    }

    /// 503 caused by `cause` (logged, never sent).
    pub fn unavailable(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Unavailable(Some(Arc::new(cause)))
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::Auth(e)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Auth(e) => write!(f, "{e}"),
            ApiError::InvalidRequest(d)
            | ApiError::Forbidden(d)
            | ApiError::NotFound(d)
            | ApiError::UnsupportedMediaType(d) => f.write_str(d),
            ApiError::MethodNotAllowed => f.write_str("The method is not allowed on this route"),
            ApiError::Conflict { description, .. } => f.write_str(description),
            ApiError::PayloadTooLarge { limit } => {
                write!(f, "The request body exceeds {limit} bytes")
            }
            ApiError::Validation { field, message } => write!(f, "{field}: {message}"),
            ApiError::TooManyRequests { .. } => f.write_str("Too many requests; try again later"),
            ApiError::Unavailable(_) => {
                f.write_str("The service is temporarily unavailable; retry shortly")
            }
            ApiError::Internal(_) => f.write_str("Internal server error"),
            ApiError::ProviderUnavailable(outage) => f.write_str(outage.description),
        }
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let description = self.to_string();
        let (status, code) = match &self {
            ApiError::Auth(e) => return e.clone().into_response(),
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, *code),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large")
            }
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::TooManyRequests { retry_after } => {
                return RetryLater::Locked {
                    seconds: *retry_after,
                }
                .response(&description);
            }
            ApiError::Unavailable(cause) => {
                return RetryLater::Unavailable(cause.as_ref()).response(&description);
            }
            ApiError::ProviderUnavailable(outage) => {
                return RetryLater::ProviderUnavailable(outage).response(&description);
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        };
        let mut response = json_error(status, code, &description);
        if matches!(self, ApiError::PayloadTooLarge { .. }) {
            // The unread rest of the body makes the connection unusable.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        match self {
            ApiError::Internal(cause) => with_detail(response, Some(cause)),
            _ => response,
        }
    }
}

/// The `WWW-Authenticate` header name, re-exported for tests and probes.
pub const WWW_AUTHENTICATE: HeaderName = header::WWW_AUTHENTICATE;

#[cfg(test)]
mod tests {
    use super::*;

    fn header(r: &Response, name: HeaderName) -> Option<&str> {
        r.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn bearer_challenges() {
        let r = AuthError::MissingCredentials.into_response();
        assert_eq!(r.status(), 401);
        assert_eq!(header(&r, header::WWW_AUTHENTICATE), Some("Bearer"));

        let r = AuthError::InvalidToken(InvalidToken::Expired).into_response();
        assert_eq!(r.status(), 401);
        assert_eq!(
            header(&r, header::WWW_AUTHENTICATE),
            Some(r#"Bearer error="invalid_token", error_description="The access token expired""#)
        );

        let r = AuthError::InsufficientScope(&["items", "items:write"]).into_response();
        assert_eq!(r.status(), 403);
        assert_eq!(
            header(&r, header::WWW_AUTHENTICATE),
            Some(
                r#"Bearer error="insufficient_scope", scope="items items:write", error_description="The access token lacks the scope 'items items:write'""#
            )
        );

        let r = AuthError::PermissionRequired("items:delete").into_response();
        assert_eq!(r.status(), 403);
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn token_endpoint_errors_are_not_cached() {
        for e in [
            OAuthError::bad_credentials(),
            OAuthError::TooManyRequests { retry_after: 42 },
        ] {
            let r = e.into_response();
            assert_eq!(header(&r, header::CACHE_CONTROL), Some("no-store"));
        }
        let r = OAuthError::TooManyRequests { retry_after: 42 }.into_response();
        assert_eq!(
            (r.status().as_u16(), header(&r, header::RETRY_AFTER)),
            (429, Some("42"))
        );
    }

    #[test]
    fn every_type_answers_retry_later_alike() {
        let cause = || -> Arc<dyn std::error::Error + Send + Sync> {
            Arc::new(std::io::Error::other("down"))
        };
        let outage = || ProviderUnavailable {
            code: "provider_unavailable",
            description: "The provider is unavailable; retry shortly",
            cause: cause(),
        };
        let answers = [
            (AuthError::Unavailable(cause()).into_response(), 503, "1"),
            (
                AuthError::ProviderUnavailable(outage()).into_response(),
                503,
                "1",
            ),
            (
                OAuthError::Unavailable(Some(cause())).into_response(),
                503,
                "1",
            ),
            (
                OAuthError::ProviderUnavailable(outage()).into_response(),
                503,
                "1",
            ),
            (
                ApiError::Unavailable(Some(cause())).into_response(),
                503,
                "1",
            ),
            (
                ApiError::ProviderUnavailable(outage()).into_response(),
                503,
                "1",
            ),
            (
                OAuthError::TooManyRequests { retry_after: 7 }.into_response(),
                429,
                "7",
            ),
            (
                ApiError::TooManyRequests { retry_after: 7 }.into_response(),
                429,
                "7",
            ),
        ];
        for (response, status, seconds) in answers {
            assert_eq!(response.status(), status);
            assert_eq!(header(&response, header::RETRY_AFTER), Some(seconds));
            assert_eq!(
                response.extensions().get::<ServerErrorDetail>().is_some(),
                status == 503,
                "a 503's cause is logged"
            );
        }
    }

    #[test]
    fn internal_errors_stay_generic() {
        let cause = std::io::Error::other("SELECT * FROM users failed at /var/lib/secret.db");
        let r = ApiError::internal(cause).into_response();
        assert_eq!(r.status(), 500);
        assert!(r.extensions().get::<ServerErrorDetail>().is_some());
    }
}
