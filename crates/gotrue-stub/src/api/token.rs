//! `POST /token`: the password and refresh-token grants.

use auth_kit::password::Verification;
use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use serde::Deserialize;
use serde_json::Value;

use crate::errors::GoTrueError;
use crate::net::ConnInfo;
use crate::store::{AuthMethod, RefreshFailure, User};

use super::signup::{password_error, weak_password_notice};
use super::{AppState, Limited, Shared, lock, nullable, query_param, read_params};

pub(super) async fn token(
    State(state): State<AppState>,
    ConnectInfo(conn): ConnectInfo<ConnInfo>,
    request: Request,
) -> Result<Json<Value>, GoTrueError> {
    let grant_type = query_param(request.uri(), "grant_type");
    let grant_type = match grant_type.as_deref() {
        Some(g @ ("password" | "refresh_token")) => g.to_owned(),
        _ => {
            return Err(GoTrueError::bad_request(
                "invalid_credentials",
                "unsupported_grant_type",
            ));
        }
    };
    state.check_rate_limit(Limited::Token, conn.peer.ip())?;
    if grant_type == "password" {
        password_grant(&state, read_params(request.into_body()).await?).await
    } else {
        refresh_grant(&state, read_params(request.into_body()).await?)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PasswordGrant {
    #[serde(deserialize_with = "nullable")]
    email: String,
    #[serde(deserialize_with = "nullable")]
    phone: String,
    #[serde(deserialize_with = "nullable")]
    password: String,
}

fn invalid_credentials() -> GoTrueError {
    GoTrueError::bad_request("invalid_credentials", "Invalid login credentials")
}

async fn password_grant(state: &Shared, params: PasswordGrant) -> Result<Json<Value>, GoTrueError> {
    if !params.email.is_empty() && !params.phone.is_empty() {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "Only an email address or phone number should be provided on login.",
        ));
    }
    if params.email.is_empty() {
        return Err(if params.phone.is_empty() {
            GoTrueError::bad_request("validation_failed", "missing email or phone")
        } else {
            GoTrueError::unprocessable("phone_provider_disabled", "Phone logins are disabled")
        });
    }
    let stored = lock(&state.store)
        .user_by_email(&params.email)
        .map(|u| (u.id.clone(), u.password_hash.clone()));
    // Unknown addresses cost a verification too.
    let verification = state
        .hasher
        .verify(&params.password, stored.as_ref().map(|(_, h)| h.as_str()))
        .await
        .map_err(password_error)?;
    let (Some((user_id, _)), Verification::Match { .. }) = (stored, verification) else {
        return Err(invalid_credentials());
    };
    let min_length = state.runtime().password_min_length;
    let mut store = lock(&state.store);
    let confirmed = store.user(&user_id).is_some_and(User::is_confirmed);
    if !confirmed {
        return Err(GoTrueError::bad_request(
            "email_not_confirmed",
            "Email not confirmed",
        ));
    }
    state
        .sign_in(
            &mut store,
            &user_id,
            AuthMethod::Password,
            weak_password_notice(&params.password, min_length),
        )
        .map(Json)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RefreshGrant {
    #[serde(deserialize_with = "nullable")]
    refresh_token: String,
}

fn refresh_grant(state: &Shared, params: RefreshGrant) -> Result<Json<Value>, GoTrueError> {
    if params.refresh_token.len() < 12 {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "Refresh token is not valid",
        ));
    }
    let mut store = lock(&state.store);
    match store.refresh(&params.refresh_token) {
        Ok((session, next)) => state.session_json(&store, &session, next, None).map(Json),
        Err(RefreshFailure::NotFound) => Err(GoTrueError::bad_request(
            "refresh_token_not_found",
            "Invalid Refresh Token: Refresh Token Not Found",
        )),
        Err(RefreshFailure::AlreadyUsed) => Err(GoTrueError::bad_request(
            "refresh_token_already_used",
            "Invalid Refresh Token: Already Used",
        )),
    }
}
