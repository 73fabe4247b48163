//! The signed-in user's routes: `GET`/`PUT /user` and `/logout`.

use auth_kit::password::Verification;
use axum::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::errors::GoTrueError;
use crate::store::{AUTHENTICATED, LogoutScope, merge_metadata};

use super::signup::{check_password_strength, password_error, validate_email};
use super::{AppState, is_uuid, lock, nullable, query_param, read, read_params, unexpected};

/// Upstream's `bearerRegexp`: `Bearer` or `bearer`, one space, the token.
pub(super) fn bearer(parts: &Parts) -> Result<&str, GoTrueError> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .filter(|t| !t.is_empty() && !t.contains(char::is_whitespace))
        .ok_or_else(|| {
            GoTrueError::new(
                StatusCode::UNAUTHORIZED,
                "no_authorization",
                "This endpoint requires a valid Bearer token",
            )
        })
}

pub(super) fn bad_jwt(message: impl Into<String>) -> GoTrueError {
    GoTrueError::forbidden("bad_jwt", message)
}

/// The user and session of a request's bearer token (upstream's
/// `requireAuthentication`).
#[derive(Debug, Clone)]
pub(super) struct Caller {
    user_id: String,
    session_id: Option<String>,
    audience: Option<String>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = GoTrueError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GoTrueError> {
        let token = bearer(parts)?;
        let claims = read(&state.keys).verify(token).map_err(|reason| {
            bad_jwt(format!(
                "invalid JWT: unable to parse or verify signature, {reason}"
            ))
        })?;
        let sub = claims["sub"].as_str().unwrap_or_default();
        if sub.is_empty() {
            return Err(bad_jwt("invalid claim: missing sub claim"));
        }
        if !is_uuid(sub) {
            return Err(GoTrueError::bad_request(
                "bad_jwt",
                "invalid claim: sub claim must be a UUID",
            ));
        }
        let store = lock(&state.store);
        if store.user(sub).is_none() {
            return Err(GoTrueError::forbidden(
                "user_not_found",
                "User from sub claim in JWT does not exist",
            ));
        }
        let session_id = claims["session_id"]
            .as_str()
            .filter(|s| !s.is_empty() && *s != "00000000-0000-0000-0000-000000000000");
        if let Some(session_id) = session_id {
            if !is_uuid(session_id) {
                return Err(bad_jwt("invalid claim: session_id claim must be a UUID"));
            }
            if store.session(session_id).is_none() {
                return Err(GoTrueError::forbidden(
                    "session_not_found",
                    "Session from session_id claim in JWT does not exist",
                ));
            }
        }
        let audience = match &claims["aud"] {
            Value::String(aud) => Some(aud.clone()),
            Value::Array(list) => list.first().and_then(Value::as_str).map(str::to_owned),
            _ => None,
        };
        Ok(Self {
            user_id: sub.to_owned(),
            session_id: session_id.map(str::to_owned),
            audience,
        })
    }
}

pub(super) async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, GoTrueError> {
    if caller.audience.as_deref() != Some(AUTHENTICATED) {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "Token audience doesn't match request audience",
        ));
    }
    let store = lock(&state.store);
    let user = store.user(&caller.user_id).ok_or_else(unexpected)?;
    Ok(Json(user.to_json()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UserUpdate {
    #[serde(deserialize_with = "nullable")]
    email: String,
    #[serde(deserialize_with = "nullable")]
    phone: String,
    password: Option<String>,
    data: Option<Map<String, Value>>,
    app_metadata: Option<Map<String, Value>>,
}

/// `PUT /user` (upstream's `UserUpdate`), for `password` and `data`: a new
/// password ends every other session of the user and voids their mailed
/// tokens; the caller's session stays.
pub(super) async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    request: Request,
) -> Result<Json<Value>, GoTrueError> {
    let params: UserUpdate = read_params(request.into_body()).await?;
    let runtime = state.runtime();
    if !params.email.is_empty() {
        validate_email(&params.email)?;
    }
    if let Some(password) = &params.password {
        check_password_strength(password, runtime.password_min_length)?;
    }
    if params.app_metadata.is_some() {
        return Err(GoTrueError::forbidden(
            "not_admin",
            "Updating app_metadata requires admin privileges",
        ));
    }
    let (email, current_hash) = {
        let store = lock(&state.store);
        let user = store.user(&caller.user_id).ok_or_else(unexpected)?;
        (user.email.clone(), user.password_hash.clone())
    };
    if (!params.email.is_empty() && !params.email.eq_ignore_ascii_case(&email))
        || !params.phone.is_empty()
    {
        return Err(GoTrueError::unprocessable(
            "validation_failed",
            "gotrue-stub cannot change a user's email address or phone number",
        ));
    }
    let new_hash = match params.password.as_deref() {
        Some(password) => {
            let same = state
                .hasher
                .verify(password, Some(&current_hash))
                .await
                .map_err(password_error)?;
            if matches!(same, Verification::Match { .. }) {
                return Err(GoTrueError::unprocessable(
                    "same_password",
                    "New password should be different from the old password.",
                ));
            }
            Some(state.hasher.hash(password).await.map_err(password_error)?)
        }
        None => None,
    };
    let mut store = lock(&state.store);
    let user = store.user_mut(&caller.user_id).ok_or_else(unexpected)?;
    if let Some(patch) = params.data {
        merge_metadata(&mut user.user_metadata, patch);
    }
    user.updated_at = OffsetDateTime::now_utc();
    if let Some(hash) = new_hash {
        // Upstream's UpdatePassword: whoever held the old password, or a
        // token mailed before, no longer gets in.
        user.password_hash = hash;
        user.confirmation_sent_at = None;
        user.recovery_sent_at = None;
        store.clear_one_time_tokens(&caller.user_id);
        let scope = if caller.session_id.is_some() {
            LogoutScope::Others
        } else {
            LogoutScope::Global
        };
        store.logout(&caller.user_id, caller.session_id.as_deref(), scope);
    }
    let user = store.user(&caller.user_id).ok_or_else(unexpected)?;
    Ok(Json(user.to_json()))
}

pub(super) async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<StatusCode, GoTrueError> {
    let scope = match query_param(&uri, "scope").as_deref() {
        None | Some("" | "global") => LogoutScope::Global,
        Some("local") => LogoutScope::Local,
        Some("others") => LogoutScope::Others,
        Some(other) => {
            return Err(GoTrueError::bad_request(
                "validation_failed",
                format!("Unsupported logout scope {other:?}"),
            ));
        }
    };
    lock(&state.store).logout(&caller.user_id, caller.session_id.as_deref(), scope);
    Ok(StatusCode::NO_CONTENT)
}
