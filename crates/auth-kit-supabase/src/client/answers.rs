//! Reading Supabase Auth's answers: content types, cache lifetimes, and
//! the classification of every failure by upstream's error code (in both
//! of its error shapes).

use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{SupabaseError, Unavailable};

use super::{Call, MAIL_DECLINED_CODES, Reply};

/// The code of a 4xx JSON answer by which Supabase declined to mail a
/// registered address (see [`SupabaseClient::recover`]).
pub(super) fn mail_declined(reply: &Reply) -> Option<String> {
    if !reply.status.is_client_error() || !is_json(&reply.headers) {
        return None;
    }
    let body = serde_json::from_slice::<Value>(&reply.body).ok()?;
    error_code(&body).filter(|code| MAIL_DECLINED_CODES.contains(&code.as_str()))
}

/// A token that cannot be sent in a header is not worth a round trip.
pub(super) fn check_bearer(token: &str) -> Result<(), SupabaseError> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SupabaseError::InvalidToken {
            code: "malformed".to_owned(),
        });
    }
    Ok(())
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

fn is_json(headers: &HeaderMap) -> bool {
    content_type(headers).is_some_and(|m| {
        m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
    })
}

fn not_json(status: StatusCode, headers: &HeaderMap) -> Unavailable {
    Unavailable::NotJson {
        status,
        content_type: content_type(headers).unwrap_or_else(|| "none".to_owned()),
    }
}

/// A 2xx JSON answer as `T`; anything else classified.
pub(super) fn parse_success<T: DeserializeOwned>(
    call: Call,
    reply: Reply,
) -> Result<T, SupabaseError> {
    if !reply.status.is_success() {
        return Err(classify_failure(call, &reply));
    }
    if !is_json(&reply.headers) {
        return Err(not_json(reply.status, &reply.headers).into());
    }
    serde_json::from_slice(&reply.body)
        .map_err(|_| Unavailable::UnexpectedBody(reply.status).into())
}

/// `Cache-Control: max-age=N` (0 for `no-store` / `no-cache`).
pub(super) fn cache_max_age(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(header::CACHE_CONTROL)?.to_str().ok()?;
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(0);
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            max_age = n.trim_matches('"').parse().ok();
        }
    }
    max_age
}

/// Upstream's error codes are short snake_case words; anything else is
/// cut down before it reaches a log.
fn sanitize(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

/// The error code of either shape: legacy `error_code`, versioned `code`
/// (a string; the legacy `code` is the status number), or OAuth `error`.
fn error_code(body: &Value) -> Option<String> {
    ["error_code", "code", "error"]
        .iter()
        .find_map(|field| body.get(*field).and_then(Value::as_str))
        .map(sanitize)
        .filter(|c| !c.is_empty())
}

/// Classifies a non-2xx answer.
pub(super) fn classify_failure(call: Call, reply: &Reply) -> SupabaseError {
    let status = reply.status;
    if status.is_server_error() {
        return Unavailable::ServerError(status).into();
    }
    let retry_after = reply
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if !is_json(&reply.headers) {
        // A gateway's 429 page is still a rate limit.
        if status == StatusCode::TOO_MANY_REQUESTS {
            return SupabaseError::RateLimited { retry_after };
        }
        return not_json(status, &reply.headers).into();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&reply.body) else {
        return Unavailable::UnexpectedBody(status).into();
    };
    let reasons = body
        .get("weak_password")
        .and_then(|w| w.get("reasons"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(sanitize)
                .collect()
        })
        .unwrap_or_default();
    classify(call, status, error_code(&body), reasons, retry_after)
}

/// The mapping by error code (see [`SupabaseError`]).
fn classify(
    call: Call,
    status: StatusCode,
    code: Option<String>,
    reasons: Vec<String>,
    retry_after: Option<u64>,
) -> SupabaseError {
    let Some(code) = code else {
        // Supabase's gateway refuses a bad key with `{"message": ...}`.
        return if matches!(status.as_u16(), 401 | 403) {
            Unavailable::ApiKeyRejected(status.to_string()).into()
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            SupabaseError::RateLimited { retry_after }
        } else {
            Unavailable::UnexpectedBody(status).into()
        };
    };
    match code.as_str() {
        "no_api_key" | "invalid_api_key" => Unavailable::ApiKeyRejected(code).into(),
        "user_already_exists" | "email_exists" => SupabaseError::EmailTaken,
        "weak_password" => SupabaseError::WeakPassword { reasons },
        "over_request_rate_limit" | "over_email_send_rate_limit" | "over_sms_send_rate_limit" => {
            SupabaseError::RateLimited { retry_after }
        }
        _ if status == StatusCode::TOO_MANY_REQUESTS => SupabaseError::RateLimited { retry_after },
        "signup_disabled"
        | "email_provider_disabled"
        | "phone_provider_disabled"
        | "anonymous_provider_disabled" => SupabaseError::SignupDisabled,
        "invalid_credentials"
        | "email_not_confirmed"
        | "phone_not_confirmed"
        | "refresh_token_not_found"
        | "refresh_token_already_used"
        | "session_not_found"
        | "session_expired"
        | "user_banned"
        | "user_not_found"
        | "validation_failed"
        | "invalid_grant"
            if call.is_grant() =>
        {
            SupabaseError::InvalidGrant { code }
        }
        "user_banned" if call.is_user_call() => SupabaseError::Banned,
        "no_authorization" | "bad_jwt" | "session_not_found" | "session_expired"
        | "user_not_found"
            if call.is_user_call() =>
        {
            SupabaseError::InvalidToken { code }
        }
        "validation_failed" | "bad_json" => SupabaseError::Validation {
            field: "body".into(),
            message: format!("was refused by Supabase Auth ({code})").into(),
        },
        "email_address_invalid" | "email_address_not_authorized" => SupabaseError::Validation {
            field: "email".into(),
            message: format!("was refused by Supabase Auth ({code})").into(),
        },
        "request_timeout" | "hook_timeout" | "hook_timeout_after_retry" | "unexpected_failure" => {
            Unavailable::ServerError(status).into()
        }
        _ => SupabaseError::Other { status, code },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn reply(status: u16, content_type: Option<&str>, body: &str) -> Reply {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(ct).unwrap_or(HeaderValue::from_static("x")),
            );
        }
        Reply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    /// The classification of an error answer, as its `Display`.
    fn check(call: Call, status: u16, content_type: Option<&str>, body: &str, expected: &str) {
        let got = classify_failure(call, &reply(status, content_type, body)).to_string();
        assert_eq!(got, expected, "{body}");
    }

    const JSON: Option<&str> = Some("application/json; charset=utf-8");

    #[test]
    fn both_error_shapes() {
        let legacy =
            r#"{"code":400,"error_code":"invalid_credentials","msg":"Invalid login credentials"}"#;
        let versioned = r#"{"code":"invalid_credentials","message":"Invalid login credentials"}"#;
        for body in [legacy, versioned] {
            check(
                Call::PasswordGrant,
                400,
                JSON,
                body,
                "the grant was refused (invalid_credentials)",
            );
        }
        let weak_legacy = r#"{"code":422,"error_code":"weak_password","msg":"Password should be at least 6 characters.","weak_password":{"reasons":["length"]}}"#;
        let weak_versioned = r#"{"code":"weak_password","message":"Password should be at least 6 characters.","weak_password":{"reasons":["length","characters"]}}"#;
        check(
            Call::Signup,
            422,
            JSON,
            weak_legacy,
            "the password is too weak (length)",
        );
        check(
            Call::Signup,
            422,
            JSON,
            weak_versioned,
            "the password is too weak (length, characters)",
        );
        // GoTrue's OAuth-style errors.
        check(
            Call::RefreshGrant,
            400,
            JSON,
            r#"{"error":"invalid_grant","error_description":"Invalid Refresh Token"}"#,
            "the grant was refused (invalid_grant)",
        );
    }

    #[test]
    fn codes_by_call() {
        let body =
            |code: &str| format!(r#"{{"code":"{code}","message":"whatever the text says"}}"#);
        check(
            Call::Signup,
            422,
            JSON,
            &body("user_already_exists"),
            "the email address is already registered",
        );
        check(
            Call::Signup,
            422,
            JSON,
            &body("email_exists"),
            "the email address is already registered",
        );
        check(
            Call::Signup,
            422,
            JSON,
            &body("signup_disabled"),
            "signups are disabled",
        );
        check(
            Call::Signup,
            400,
            JSON,
            &body("validation_failed"),
            "body: was refused by Supabase Auth (validation_failed)",
        );
        check(
            Call::RefreshGrant,
            400,
            JSON,
            &body("refresh_token_already_used"),
            "the grant was refused (refresh_token_already_used)",
        );
        check(
            Call::RefreshGrant,
            400,
            JSON,
            &body("validation_failed"),
            "the grant was refused (validation_failed)",
        );
        check(
            Call::PasswordGrant,
            400,
            JSON,
            &body("email_not_confirmed"),
            "the grant was refused (email_not_confirmed)",
        );
        check(
            Call::GetUser,
            403,
            JSON,
            &body("session_not_found"),
            "the access token was refused (session_not_found)",
        );
        check(
            Call::GetUser,
            401,
            JSON,
            &body("no_authorization"),
            "the access token was refused (no_authorization)",
        );
        check(
            Call::GetUser,
            403,
            JSON,
            &body("user_banned"),
            "the user is banned",
        );
        check(
            Call::PasswordGrant,
            429,
            JSON,
            &body("over_request_rate_limit"),
            "rate limited by Supabase Auth",
        );
        check(
            Call::Signup,
            429,
            JSON,
            &body("over_email_send_rate_limit"),
            "rate limited by Supabase Auth",
        );
        check(
            Call::Signup,
            400,
            JSON,
            &body("something_new"),
            "Supabase Auth refused the request with 400 Bad Request (something_new)",
        );
        // Never the message text: a misleading message changes nothing.
        check(
            Call::PasswordGrant,
            400,
            JSON,
            r#"{"code":"user_already_exists","message":"Invalid login credentials"}"#,
            "the email address is already registered",
        );
    }

    #[test]
    fn unusable_answers_are_unavailable() {
        let unavailable = |status, ct, body: &str| {
            classify_failure(Call::GetUser, &reply(status, ct, body)).is_unavailable()
        };
        assert!(unavailable(
            500,
            JSON,
            r#"{"code":500,"error_code":"unexpected_failure","msg":"x"}"#
        ));
        assert!(unavailable(
            502,
            Some("text/html"),
            "<html>Bad gateway</html>"
        ));
        assert!(unavailable(400, Some("text/html"), "<html>nope</html>"));
        assert!(unavailable(400, None, ""));
        assert!(unavailable(400, JSON, "{not json"));
        assert!(unavailable(
            404,
            JSON,
            r#"{"message":"no Route matched with those values"}"#
        ));
        assert!(unavailable(401, JSON, r#"{"message":"Invalid API key"}"#));
        assert!(unavailable(
            401,
            JSON,
            r#"{"code":"invalid_api_key","message":"Invalid API key"}"#
        ));
        // A 429 page without JSON is still a rate limit.
        assert!(matches!(
            classify_failure(
                Call::PasswordGrant,
                &reply(429, Some("text/html"), "slow down")
            ),
            SupabaseError::RateLimited { .. }
        ));
        // A 2xx that is not JSON.
        assert!(
            parse_success::<Value>(Call::GetUser, reply(200, Some("text/plain"), "OK"))
                .is_err_and(|e| e.is_unavailable())
        );
    }

    #[test]
    fn recovery_mail_refusals_that_would_reveal_an_account() {
        let declined = |status, ct, body: &str| mail_declined(&reply(status, ct, body));
        for code in MAIL_DECLINED_CODES {
            let versioned = format!(r#"{{"code":"{code}","message":"x"}}"#);
            let legacy = format!(r#"{{"code":429,"error_code":"{code}","msg":"x"}}"#);
            assert_eq!(declined(429, JSON, &versioned).as_deref(), Some(*code));
            assert_eq!(declined(400, JSON, &legacy).as_deref(), Some(*code));
        }
        // A per-client limit says nothing about the address: passed on.
        assert_eq!(
            declined(
                429,
                JSON,
                r#"{"code":"over_request_rate_limit","message":"x"}"#
            ),
            None
        );
        assert_eq!(
            declined(400, JSON, r#"{"code":"validation_failed","message":"x"}"#),
            None
        );
        assert_eq!(
            declined(500, JSON, r#"{"code":"over_email_send_rate_limit"}"#),
            None
        );
        assert_eq!(
            declined(429, Some("text/html"), "over_email_send_rate_limit"),
            None
        );
    }

    #[test]
    fn cache_control() {
        let headers = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(v));
            h
        };
        assert_eq!(cache_max_age(&headers("public, max-age=600")), Some(600));
        assert_eq!(cache_max_age(&headers("no-store")), Some(0));
        assert_eq!(cache_max_age(&headers("public")), None);
        assert_eq!(cache_max_age(&HeaderMap::new()), None);
    }

    #[test]
    fn codes_are_sanitized() {
        assert_eq!(sanitize("bad_jwt"), "bad_jwt");
        assert_eq!(sanitize("<script>\n"), "script");
        assert_eq!(sanitize(&"a".repeat(100)).len(), 64);
    }
}
