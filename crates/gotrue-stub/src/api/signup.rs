//! `POST /signup`, with upstream's password and email checks.

use axum::Json;
use axum::extract::{Request, State};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::errors::GoTrueError;
use crate::store::{AuthMethod, OtpKind, User, obfuscated_user};
use crate::verify::{self};

use super::{
    AppState, MAX_PASSWORD_BYTES, Runtime, Shared, lock, nullable, read_params, unexpected,
};

/// Upstream's `checkPasswordStrength` with its default policy (a minimum
/// length; no character classes, no HaveIBeenPwned).
pub(super) fn check_password_strength(
    password: &str,
    min_length: usize,
) -> Result<(), GoTrueError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            format!("Password cannot be longer than {MAX_PASSWORD_BYTES} characters"),
        ));
    }
    if password.len() < min_length {
        return Err(GoTrueError::weak_password(
            format!("Password should be at least {min_length} characters."),
            vec!["length"],
        ));
    }
    Ok(())
}

/// The `weak_password` member of a sign-in answer, when the password no
/// longer meets the policy.
pub(super) fn weak_password_notice(password: &str, min_length: usize) -> Option<Value> {
    (password.len() < min_length).then(|| {
        json!({
            "message": format!("Password should be at least {min_length} characters."),
            "reasons": ["length"],
        })
    })
}

/// Upstream's `validateEmail`: required, at most 255 bytes, a valid
/// address; stored lower-cased.
pub(crate) fn validate_email(email: &str) -> Result<String, GoTrueError> {
    if email.is_empty() {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "An email address is required",
        ));
    }
    if email.len() > 255 {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "An email address is too long",
        ));
    }
    if !email_address::EmailAddress::is_valid(email) {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "Unable to validate email address: invalid format",
        ));
    }
    Ok(email.to_lowercase())
}

pub(crate) fn password_error(e: auth_kit::password::PasswordError) -> GoTrueError {
    tracing::warn!(error = %e, "password hashing unavailable");
    unexpected()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SignupParams {
    #[serde(deserialize_with = "nullable")]
    email: String,
    #[serde(deserialize_with = "nullable")]
    phone: String,
    #[serde(deserialize_with = "nullable")]
    password: String,
    data: Option<Map<String, Value>>,
}

pub(super) async fn signup(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, GoTrueError> {
    let runtime = state.runtime();
    let redirect_to = state.redirects.target(request.headers(), request.uri());
    if runtime.disable_signup {
        return Err(GoTrueError::unprocessable(
            "signup_disabled",
            "Signups not allowed for this instance",
        ));
    }
    let params: SignupParams = read_params(request.into_body()).await?;
    if params.email.is_empty() && params.phone.is_empty() {
        return Err(GoTrueError::unprocessable(
            "anonymous_provider_disabled",
            "Anonymous sign-ins are disabled",
        ));
    }
    if params.password.is_empty() {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "Signup requires a valid password",
        ));
    }
    check_password_strength(&params.password, runtime.password_min_length)?;
    if !params.email.is_empty() && !params.phone.is_empty() {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "Only an email address or phone number should be provided on signup.",
        ));
    }
    if params.email.is_empty() {
        return Err(GoTrueError::bad_request(
            "phone_provider_disabled",
            "Phone signups are disabled",
        ));
    }
    let email = validate_email(&params.email)?;
    let data = params.data.unwrap_or_default();

    let known = lock(&state.store).user_by_email(&email).is_some();
    if known {
        return repeated_signup(&state, &runtime, &email, data, &redirect_to).await;
    }
    // Hash outside the lock: it takes tens of milliseconds.
    let hash = state
        .hasher
        .hash(&params.password)
        .await
        .map_err(password_error)?;
    let id = {
        let mut store = lock(&state.store);
        if store.user_by_email(&email).is_some() {
            None
        } else {
            let mut user = User::new(email.clone(), hash, data.clone());
            let id = user.id.clone();
            if runtime.autoconfirm {
                user.email_confirmed_at = Some(OffsetDateTime::now_utc());
                store.insert_user(user);
                return state
                    .sign_in(&mut store, &id, AuthMethod::Password, None)
                    .map(Json);
            }
            store.insert_user(user);
            Some(id)
        }
    };
    let Some(id) = id else {
        return repeated_signup(&state, &runtime, &email, data, &redirect_to).await;
    };
    // Upstream creates the user and sends the mail in one transaction: a
    // mail that cannot be sent undoes the signup.
    if let Err(e) = verify::send_mail(&state, &id, OtpKind::Confirmation, &redirect_to).await {
        lock(&state.store).remove_user(&id);
        return Err(e);
    }
    let store = lock(&state.store);
    let user = store.user(&id).ok_or_else(unexpected)?;
    Ok(Json(user.to_json()))
}

/// A signup for an address that is already registered.
async fn repeated_signup(
    state: &Shared,
    runtime: &Runtime,
    email: &str,
    data: Map<String, Value>,
    redirect_to: &str,
) -> Result<Json<Value>, GoTrueError> {
    let user_id = match answer_repeated_signup(state, runtime, email, data)? {
        RepeatedSignup::Answer(answer) => return Ok(Json(answer)),
        RepeatedSignup::Resend(user_id) => user_id,
    };
    verify::send_mail(state, &user_id, OtpKind::Confirmation, redirect_to).await?;
    let store = lock(&state.store);
    let user = store.user(&user_id).ok_or_else(unexpected)?;
    Ok(Json(user.to_json()))
}

/// What a repeated signup comes to.
enum RepeatedSignup {
    Answer(Value),
    /// Still unconfirmed: a new confirmation mail (its token voids the
    /// previous one), within the mail limits.
    Resend(String),
}

fn answer_repeated_signup(
    state: &Shared,
    runtime: &Runtime,
    email: &str,
    data: Map<String, Value>,
) -> Result<RepeatedSignup, GoTrueError> {
    let mut store = lock(&state.store);
    let user = store.user_by_email(email).cloned().ok_or_else(unexpected)?;
    let now = OffsetDateTime::now_utc();
    match (user.is_confirmed(), runtime.autoconfirm) {
        (true, true) => Err(GoTrueError::unprocessable(
            "user_already_exists",
            "User already registered",
        )),
        // Confirmation on: an answer that does not reveal the account.
        (true, false) => Ok(RepeatedSignup::Answer(obfuscated_user(email, data))),
        // Upstream confirms the existing (unconfirmed) user and signs in
        // whoever asked: the password of this request is not checked.
        (false, true) => {
            if let Some(u) = store.user_mut(&user.id) {
                u.email_confirmed_at = Some(now);
            }
            store.clear_one_time_tokens(&user.id);
            state
                .sign_in(&mut store, &user.id, AuthMethod::Password, None)
                .map(RepeatedSignup::Answer)
        }
        (false, false) => Ok(RepeatedSignup::Resend(user.id)),
    }
}
