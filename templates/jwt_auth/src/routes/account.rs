//! The account lifecycle: email verification, password reset, password
//! change. auth-kit's `AccountService` does the work: single-use tokens
//! stored as hashes, mail off the request path, limits per address and per
//! client, and the same answer for known and unknown addresses.

use auth_kit::account::{
    Accepted, AccountError, AccountService, ChangePasswordRequest, EmailRequest,
    ResetPasswordRequest, VerifyEmailRequest,
};
use auth_kit::http::{ClientIp, JsonBody};
use auth_kit::store::User;
use auth_kit::{ApiError, CurrentUser, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

/// Mails a password-reset link when the address belongs to an account.
/// The answer is the same, and as quick, either way.
#[utoipa::path(post, path = "/auth/forgot-password", tag = "account", request_body = EmailRequest, responses(
    (status = 202, body = Accepted, description = "Always, whether or not the address belongs to an account"),
    (status = 400, description = "Malformed JSON", body = ErrorBody),
    (status = 413, body = ErrorBody),
    (status = 415, body = ErrorBody),
    (status = 422, description = "email: not a valid address", body = ErrorBody),
    (status = 429, description = "Too many mails asked for this address or from this client; see Retry-After", body = ErrorBody),
))]
pub async fn forgot_password(
    State(accounts): State<AccountService>,
    ClientIp(client_ip): ClientIp,
    JsonBody(request): JsonBody<EmailRequest>,
) -> Result<Accepted, ApiError> {
    accounts.forgot_password(&request, client_ip).await
}

/// Sets a new password with the token of a reset mail. Every login of the
/// user ends: their refresh and access tokens stop working at once.
#[utoipa::path(post, path = "/auth/reset-password", tag = "account", request_body = ResetPasswordRequest, responses(
    (status = 204, description = "The password is changed; every login of the user is revoked"),
    (status = 400, description = "invalid_token (unknown, used or expired token), or malformed JSON", body = ErrorBody),
    (status = 413, body = ErrorBody),
    (status = 415, body = ErrorBody),
    (status = 422, description = "password: too short or too long", body = ErrorBody),
    (status = 503, description = "Busy; see Retry-After", body = ErrorBody),
))]
pub async fn reset_password(
    State(accounts): State<AccountService>,
    JsonBody(request): JsonBody<ResetPasswordRequest>,
) -> Result<StatusCode, AccountError> {
    accounts.reset_password(&request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mails a new verification link when the address belongs to an account
/// that is not verified yet. The answer is the same either way.
#[utoipa::path(post, path = "/auth/request-verify", tag = "account", request_body = EmailRequest, responses(
    (status = 202, body = Accepted, description = "Always, whether or not the address belongs to an account"),
    (status = 400, description = "Malformed JSON", body = ErrorBody),
    (status = 413, body = ErrorBody),
    (status = 415, body = ErrorBody),
    (status = 422, description = "email: not a valid address", body = ErrorBody),
    (status = 429, description = "Too many mails asked for this address or from this client; see Retry-After", body = ErrorBody),
))]
pub async fn request_verification(
    State(accounts): State<AccountService>,
    ClientIp(client_ip): ClientIp,
    JsonBody(request): JsonBody<EmailRequest>,
) -> Result<Accepted, ApiError> {
    accounts.request_verification(&request, client_ip).await
}

/// Confirms an email address with the token of a verification mail.
#[utoipa::path(post, path = "/auth/verify", tag = "account", request_body = VerifyEmailRequest, responses(
    (status = 200, body = User, description = "The user, now with email_verified true"),
    (status = 400, description = "invalid_token (unknown, used or expired token), or malformed JSON", body = ErrorBody),
    (status = 413, body = ErrorBody),
    (status = 415, body = ErrorBody),
    (status = 422, description = "token: missing or not a string", body = ErrorBody),
    (status = 503, description = "Busy; see Retry-After", body = ErrorBody),
))]
pub async fn verify_email(
    State(accounts): State<AccountService>,
    JsonBody(request): JsonBody<VerifyEmailRequest>,
) -> Result<Json<User>, AccountError> {
    Ok(Json(accounts.verify_email(&request).await?))
}

/// Changes your password. Your other logins end; this one stays. A wrong
/// current password counts as a failed login.
#[utoipa::path(post, path = "/users/me/password", tag = "account", security(("oauth2" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; every other login of yours is revoked"),
        (status = 400, description = "invalid_grant (wrong current password), or malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A disabled user", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "new_password: too short or too long", body = ErrorBody),
        (status = 429, description = "Too many failed logins; see Retry-After", body = ErrorBody),
        (status = 503, description = "Busy; see Retry-After", body = ErrorBody),
    ))]
pub async fn change_password(
    caller: CurrentUser,
    State(accounts): State<AccountService>,
    ClientIp(client_ip): ClientIp,
    JsonBody(request): JsonBody<ChangePasswordRequest>,
) -> Result<StatusCode, AccountError> {
    accounts
        .change_password(&caller.user, &caller.access, &request, client_ip)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
