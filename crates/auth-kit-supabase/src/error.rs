//! What a call to Supabase Auth can fail with, and its mapping to the
//! contract (see [`SupabaseError`]).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use auth_kit::error::{ApiError, AuthError, OAuthError, ProviderUnavailable};
use auth_kit::token::InvalidToken;

/// Why Supabase Auth could not be asked or its answer could not be used.
/// The `Display` text is for logs (it may name the URL, never a token);
/// clients only ever see `supabase_unavailable`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// No connection could be made (refused, DNS, TLS).
    #[error("could not connect to Supabase Auth: {0}")]
    Connect(#[source] reqwest::Error),
    /// No complete answer within the configured timeout.
    #[error("Supabase Auth did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed or was dropped mid-exchange.
    #[error("the connection to Supabase Auth failed: {0}")]
    Transport(#[source] reqwest::Error),
    /// A 5xx answer.
    #[error("Supabase Auth answered {0}")]
    ServerError(StatusCode),
    /// An answer that is not JSON (a proxy's HTML page, say).
    #[error("Supabase Auth answered {status} with a non-JSON body ({content_type})")]
    NotJson {
        /// The status.
        status: StatusCode,
        /// The Content-Type, or `none`.
        content_type: String,
    },
    /// JSON of an unexpected shape, or an error without a code.
    #[error("Supabase Auth answered {0} with a body of an unexpected shape")]
    UnexpectedBody(StatusCode),
    /// The answer exceeds the size limit.
    #[error("the answer from Supabase Auth exceeds {0} bytes")]
    TooLarge(usize),
    /// The gateway refused SUPABASE_KEY: a configuration error of this
    /// service, not the user's.
    #[error("Supabase refused the API key ({0}): check SUPABASE_KEY")]
    ApiKeyRejected(String),
    /// The JWKS could not be fetched before, and the next attempt is not
    /// due yet.
    #[error("the project's JWKS is not available (the last fetch failed)")]
    KeysUnavailable,
}

/// A failed call to Supabase Auth, classified by its error code (never by
/// its message text), and how each maps to the contract (docs/contract.md)
/// through `From` into [`ApiError`] (signup and other routes),
/// [`OAuthError`] (the token endpoint) and [`AuthError`] (bearer checks):
///
/// | Supabase answer | [`SupabaseError`] | as [`ApiError`] | as [`OAuthError`] | as [`AuthError`] |
/// |---|---|---|---|---|
/// | `user_already_exists`, `email_exists` | `EmailTaken` | 409 `email_taken` | 400 `invalid_request` | 401 |
/// | `weak_password` (+ reasons) | `WeakPassword` | 422 `validation_failed`, `password: ...` | 400 `invalid_request` | 401 |
/// | any 429, `over_*_rate_limit` | `RateLimited` | 429 `too_many_requests` | 429 `too_many_requests` | 503 |
/// | `invalid_credentials`, `email_not_confirmed`, `refresh_token_not_found`, `refresh_token_already_used`, ... on `/token` | `InvalidGrant` | 400 `invalid_request` | 400 `invalid_grant` | 401 |
/// | `no_authorization`, `bad_jwt`, `session_not_found`, `user_not_found` on user calls | `InvalidToken` | 401 `invalid_token` | 400 `invalid_grant` | 401 `invalid_token` |
/// | `user_banned` on user calls | `Banned` | 403 `forbidden` | 400 `invalid_grant` | 403 `forbidden` |
/// | `signup_disabled`, `*_provider_disabled` | `SignupDisabled` | 403 `forbidden` | 400 `invalid_request` | 401 |
/// | `validation_failed`, `bad_json`, `email_address_invalid` | `Validation` | 422 `validation_failed` | 400 `invalid_request` | 401 |
/// | connection refused or dropped, timeout, 5xx, non-JSON, API key refused | `Unavailable` | 503 `supabase_unavailable` | 503 `supabase_unavailable` | 503 `supabase_unavailable` |
///
/// 503 bodies are generic; the cause rides in the response's extensions for
/// [`auth_kit::http::log_server_errors`]. `IntoResponse` uses the [`ApiError`]
/// mapping.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupabaseError {
    /// The email is registered (`user_already_exists`, `email_exists`).
    #[error("the email address is already registered")]
    EmailTaken,
    /// The password does not meet the project's policy (`weak_password`).
    #[error("the password is too weak ({})", reasons.join(", "))]
    WeakPassword {
        /// Upstream's reasons: `length`, `characters`, `pwned`.
        reasons: Vec<String>,
    },
    /// Rate limited (any 429).
    #[error("rate limited by Supabase Auth")]
    RateLimited {
        /// Seconds to wait, from `Retry-After` when Supabase sent one.
        retry_after: Option<u64>,
    },
    /// A password or refresh grant was refused.
    #[error("the grant was refused ({code})")]
    InvalidGrant {
        /// The upstream error code.
        code: String,
    },
    /// The access token was refused by a user endpoint.
    #[error("the access token was refused ({code})")]
    InvalidToken {
        /// The upstream error code.
        code: String,
    },
    /// The user is banned.
    #[error("the user is banned")]
    Banned,
    /// Signups are disabled for the project.
    #[error("signups are disabled")]
    SignupDisabled,
    /// The request was refused as invalid, locally or by Supabase.
    #[error("{field}: {message}")]
    Validation {
        /// The field at fault (`email`, `password`, or `body`).
        field: Cow<'static, str>,
        /// What is wrong with it.
        message: Cow<'static, str>,
    },
    /// Any other 4xx answer with an error code.
    #[error("Supabase Auth refused the request with {status} ({code})")]
    Other {
        /// The status.
        status: StatusCode,
        /// The upstream error code.
        code: String,
    },
    /// Supabase Auth could not be asked.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl SupabaseError {
    /// Whether this is a `supabase_unavailable` failure.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, SupabaseError::Unavailable(_))
    }

    /// The error as the cause of a 503, for logging.
    fn into_cause(self) -> Arc<dyn std::error::Error + Send + Sync> {
        Arc::new(self)
    }

    /// 503 `supabase_unavailable`: the cause logged, a generic description
    /// sent (never upstream's body).
    pub(crate) fn into_outage(self) -> ProviderUnavailable {
        supabase_unavailable(self.into_cause())
    }
}

/// The answer when Supabase Auth cannot be asked: 503
/// `supabase_unavailable` with `Retry-After: 1`.
pub(crate) fn supabase_unavailable(
    cause: Arc<dyn std::error::Error + Send + Sync>,
) -> ProviderUnavailable {
    ProviderUnavailable {
        code: "supabase_unavailable",
        description: "Supabase Auth is unavailable; retry shortly",
        cause,
    }
}

/// A human description of upstream's weak-password reasons.
fn weak_password_description(reasons: &[String]) -> String {
    let said: Vec<&str> = reasons
        .iter()
        .map(|r| match r.as_str() {
            "length" => "too short",
            "characters" => "needs more kinds of characters",
            "pwned" => "known from a data breach",
            _ => "does not meet the project's policy",
        })
        .collect();
    if said.is_empty() {
        "is too weak".to_owned()
    } else {
        format!(
            "is too weak: {} (reasons: {})",
            said.join(", "),
            reasons.join(", ")
        )
    }
}

/// The password grant's answer for an unconfirmed email: the user needs to
/// act, and only someone holding the password learns it.
const EMAIL_NOT_CONFIRMED: &str =
    "The email address is not confirmed yet; follow the link in the confirmation email";

impl From<SupabaseError> for OAuthError {
    /// The token endpoint's view (sign-in and refresh).
    fn from(e: SupabaseError) -> Self {
        match e {
            SupabaseError::InvalidGrant { code } => match code.as_str() {
                "email_not_confirmed" | "phone_not_confirmed" => {
                    OAuthError::InvalidGrant(Cow::Borrowed(EMAIL_NOT_CONFIRMED))
                }
                "invalid_credentials" | "user_banned" | "user_not_found" => {
                    OAuthError::bad_credentials()
                }
                _ => OAuthError::bad_refresh_token(),
            },
            SupabaseError::InvalidToken { .. } | SupabaseError::Banned => {
                OAuthError::bad_refresh_token()
            }
            SupabaseError::RateLimited { retry_after } => OAuthError::TooManyRequests {
                retry_after: retry_after.unwrap_or(60),
            },
            SupabaseError::Validation { field, message } => {
                OAuthError::InvalidRequest(Cow::Owned(format!("{field}: {message}")))
            }
            SupabaseError::Unavailable(_) => OAuthError::ProviderUnavailable(e.into_outage()),
            SupabaseError::EmailTaken
            | SupabaseError::WeakPassword { .. }
            | SupabaseError::SignupDisabled
            | SupabaseError::Other { .. } => {
                OAuthError::InvalidRequest(Cow::Borrowed("Supabase Auth refused the request"))
            }
        }
    }
}

impl From<SupabaseError> for AuthError {
    /// A protected route's view (remote verification, logout).
    fn from(e: SupabaseError) -> Self {
        match e {
            SupabaseError::InvalidToken { code } => AuthError::InvalidToken(match code.as_str() {
                "session_not_found" | "session_expired" => InvalidToken::Revoked,
                "user_not_found" => InvalidToken::UnknownUser,
                _ => InvalidToken::RejectedByIssuer,
            }),
            SupabaseError::Banned => AuthError::Disabled,
            // A remote check that cannot be made is not the caller's fault.
            SupabaseError::Unavailable(_) | SupabaseError::RateLimited { .. } => {
                AuthError::ProviderUnavailable(e.into_outage())
            }
            SupabaseError::EmailTaken
            | SupabaseError::WeakPassword { .. }
            | SupabaseError::InvalidGrant { .. }
            | SupabaseError::SignupDisabled
            | SupabaseError::Validation { .. }
            | SupabaseError::Other { .. } => {
                AuthError::InvalidToken(InvalidToken::RejectedByIssuer)
            }
        }
    }
}

impl From<SupabaseError> for ApiError {
    /// Every other route's view (signup above all).
    fn from(e: SupabaseError) -> Self {
        match e {
            SupabaseError::EmailTaken => ApiError::Conflict {
                code: "email_taken",
                description: Cow::Borrowed("An account with this email address already exists"),
            },
            SupabaseError::WeakPassword { reasons } => {
                ApiError::validation("password", weak_password_description(&reasons))
            }
            SupabaseError::RateLimited { retry_after } => ApiError::TooManyRequests {
                retry_after: retry_after.unwrap_or(60),
            },
            SupabaseError::SignupDisabled => {
                ApiError::Forbidden(Cow::Borrowed("Signups are disabled for this project"))
            }
            SupabaseError::Validation { field, message } => ApiError::Validation { field, message },
            SupabaseError::InvalidToken { .. } | SupabaseError::Banned => {
                ApiError::Auth(AuthError::from(e))
            }
            SupabaseError::InvalidGrant { .. } | SupabaseError::Other { .. } => {
                ApiError::InvalidRequest(Cow::Borrowed("Supabase Auth refused the request"))
            }
            SupabaseError::Unavailable(_) => ApiError::ProviderUnavailable(e.into_outage()),
        }
    }
}

impl IntoResponse for SupabaseError {
    /// The answer of a route that is neither the token endpoint (use
    /// [`OAuthError::from`]) nor a bearer check (use [`AuthError::from`]).
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: impl IntoResponse) -> u16 {
        e.into_response().status().as_u16()
    }

    #[test]
    fn weak_password_descriptions() {
        assert_eq!(
            weak_password_description(&["length".into()]),
            "is too weak: too short (reasons: length)"
        );
        assert_eq!(weak_password_description(&[]), "is too weak");
        let e = ApiError::from(SupabaseError::WeakPassword {
            reasons: vec!["length".into(), "pwned".into()],
        });
        assert_eq!(
            e.to_string(),
            "password: is too weak: too short, known from a data breach (reasons: length, pwned)"
        );
    }

    #[test]
    fn statuses_by_view() {
        let grant = || SupabaseError::InvalidGrant {
            code: "invalid_credentials".into(),
        };
        assert_eq!(status(OAuthError::from(grant())), 400);
        assert_eq!(OAuthError::from(grant()).code(), "invalid_grant");
        assert_eq!(status(ApiError::from(SupabaseError::EmailTaken)), 409);
        assert_eq!(status(SupabaseError::SignupDisabled), 403);
        assert_eq!(
            status(OAuthError::from(SupabaseError::RateLimited {
                retry_after: None
            })),
            429
        );
        let down = || SupabaseError::Unavailable(Unavailable::Timeout(Duration::from_secs(1)));
        for response in [
            ApiError::from(down()).into_response(),
            OAuthError::from(down()).into_response(),
            AuthError::from(down()).into_response(),
        ] {
            assert_eq!(response.status(), 503);
            assert!(
                response
                    .extensions()
                    .get::<auth_kit::error::ServerErrorDetail>()
                    .is_some()
            );
        }
        assert_eq!(
            status(AuthError::from(SupabaseError::InvalidToken {
                code: "bad_jwt".into()
            })),
            401
        );
        assert_eq!(status(AuthError::from(SupabaseError::Banned)), 403);
    }
}
