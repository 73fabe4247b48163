//! Signup, the OAuth2 token endpoint and logout. The logic (password
//! checks, the failed-login limiter, refresh rotation and reuse detection)
//! is auth-kit's `LoginService`.

use auth_kit::account::AccountService;
use auth_kit::http::{ClientIp, JsonBody, TokenRequest};
use auth_kit::login::{LoginService, SignupRequest, TokenResponse};
use auth_kit::openapi::{JsonBodyErrors, TokenForm};
use auth_kit::store::User;
use auth_kit::{ApiError, CurrentUser, ErrorBody, OAuthError};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

/// Creates an account with the role `user`. With an email, a verification
/// link is mailed to it (required to log in when REQUIRE_VERIFIED_EMAIL is
/// on; signup then needs an email).
#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = SignupRequest, responses(
    (status = 201, body = User),
    (status = 409, description = "`username_taken` or `email_taken`", body = ErrorBody),
    (status = 429, description = "`too_many_requests`: too many signups from this address; see `Retry-After`", body = ErrorBody),
    (status = 503, description = "`temporarily_unavailable`: busy hashing passwords; see `Retry-After`", body = ErrorBody),
    JsonBodyErrors,
))]
pub async fn signup(
    State(accounts): State<AccountService>,
    ClientIp(client_ip): ClientIp,
    JsonBody(request): JsonBody<SignupRequest>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let user = accounts.signup(&request, client_ip).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// The OAuth2 token endpoint (RFC 6749): `grant_type=password` with
/// `username`, `password` and optional `scope`, or `grant_type=refresh_token`.
#[utoipa::path(post, path = "/token", tag = "auth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, description = "invalid_request, invalid_grant, invalid_scope or unsupported_grant_type", body = ErrorBody),
        (status = 413, description = "`request_too_large`: the form is over 64 KiB", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: too many failed logins; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`: busy; see `Retry-After`", body = ErrorBody),
    ))]
pub async fn token(
    State(logins): State<LoginService>,
    ClientIp(client_ip): ClientIp,
    request: TokenRequest,
) -> Result<TokenResponse, OAuthError> {
    logins.token(request, client_ip).await
}

/// Ends this login: its refresh tokens and access tokens stop working.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", responses(
    (status = 204, description = "Logged out"),
))]
pub async fn logout(
    caller: CurrentUser,
    State(logins): State<LoginService>,
) -> Result<StatusCode, ApiError> {
    logins.logout(&caller.access).await?;
    Ok(StatusCode::NO_CONTENT)
}
