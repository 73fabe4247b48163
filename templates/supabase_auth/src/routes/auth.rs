//! Signup, the token endpoint, logout and forgot-password, proxied to
//! Supabase Auth. Its errors are mapped by their code: email taken 409,
//! weak password 422 with the reasons, rate limited 429, bad credentials
//! 400 `invalid_grant`, and Supabase unreachable, slow or broken 503
//! `supabase_unavailable`. Before Supabase is asked, auth-kit's limiter
//! counts failed sign-ins per email and client address, and signups per
//! address (429 with `Retry-After`), since Supabase sees every request
//! coming from here.

use auth_kit::account::Accepted;
use auth_kit::extract::BearerToken;
use auth_kit::http::{ClientIp, JsonBody, TokenRequest};
use auth_kit::limiter::{MailRequestLimiter, RateLimiter};
use auth_kit::login::TokenResponse;
use auth_kit::openapi::{JsonBodyErrors, TokenForm};
use auth_kit::{ApiError, ErrorBody, OAuthError};
use auth_kit_supabase::{
    CurrentSupabaseUser, LogoutScope, SignUpOutcome, SupabaseAuth, SupabaseClaims, SupabaseClient,
    SupabaseError, SupabaseProfile, SupabaseUser,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A signup. `data` becomes the user's `user_metadata`, which the user can
/// edit: it never grants a role or a permission.
#[derive(Deserialize, ToSchema)]
pub struct SignupRequest {
    /// The user's email address.
    #[schema(format = Email)]
    email: String,
    /// At least 6 characters, at most 72 bytes (checked here); the Supabase
    /// project may ask for more (its 422 names the reasons).
    #[schema(schema_with = auth_kit_supabase::password_schema)]
    password: String,
    /// Optional: the user's `user_metadata` (an object, or null).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    data: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The new user, and a session when the project confirms emails
/// automatically (`null` while the email awaits confirmation).
#[derive(Serialize, ToSchema)]
pub struct SignupAnswer {
    user: SupabaseProfile,
    session: Option<TokenResponse>,
}

/// Creates a Supabase user.
#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = SignupRequest, responses(
    (status = 201, body = SignupAnswer),
    (status = 403, description = "`forbidden`: signups are disabled in the Supabase project", body = ErrorBody),
    (status = 409, description = "`email_taken`", body = ErrorBody),
    (status = 429, description = "`too_many_requests`: too many signups from this address, or Supabase's rate limit; see `Retry-After`", body = ErrorBody),
    (status = 503, description = "`supabase_unavailable`: Supabase Auth could not be asked; see `Retry-After`", body = ErrorBody),
    JsonBodyErrors,
))]
pub async fn signup(
    State(supabase): State<SupabaseClient>,
    State(auth): State<SupabaseAuth>,
    State(limiter): State<RateLimiter>,
    ClientIp(client_ip): ClientIp,
    JsonBody(request): JsonBody<SignupRequest>,
) -> Result<Response, ApiError> {
    auth_kit_supabase::check_signup_password(&request.password)?;
    limiter.count_signup(client_ip).await?;
    let outcome = supabase
        .sign_up(&request.email, &request.password, request.data)
        .await?;
    let (user, session) = match outcome {
        SignUpOutcome::Session(session) => {
            (session.user.clone(), Some(TokenResponse::from(session)))
        }
        SignUpOutcome::ConfirmationRequired(user) => (user, None),
    };
    let user = SupabaseUser::new(
        SupabaseClaims::from_record(user),
        auth.policy().signup_role(),
    )
    .profile();
    // The answer may hold tokens: never cached.
    Ok((
        StatusCode::CREATED,
        auth_kit::error::no_store_headers(),
        Json(SignupAnswer { user, session }),
    )
        .into_response())
}

/// The OAuth2 token endpoint (RFC 6749), as a form: `grant_type=password`
/// with `username` (your email) and `password`, or
/// `grant_type=refresh_token`.
#[utoipa::path(post, path = "/token", tag = "auth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, description = "invalid_request, invalid_grant or unsupported_grant_type", body = ErrorBody),
        (status = 413, description = "`request_too_large`: the form is over 64 KiB", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: too many failed sign-ins, or Supabase's rate limit; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`supabase_unavailable`: Supabase Auth could not be asked; see `Retry-After`", body = ErrorBody),
    ))]
pub async fn token(
    State(supabase): State<SupabaseClient>,
    State(limiter): State<RateLimiter>,
    ClientIp(client_ip): ClientIp,
    request: TokenRequest,
) -> Result<TokenResponse, OAuthError> {
    supabase.token_limited(&request, &limiter, client_ip).await
}

/// Ends this session at Supabase: its refresh tokens stop working. Access
/// tokens verified locally stay valid until they expire (SUPABASE_VERIFY=remote
/// refuses them at once).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", responses(
    (status = 204, description = "Logged out"),
))]
pub async fn logout(
    _caller: CurrentSupabaseUser,
    BearerToken(token): BearerToken,
    State(supabase): State<SupabaseClient>,
) -> Result<StatusCode, ApiError> {
    supabase.logout(&token, LogoutScope::Local).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A password reset request.
#[derive(Deserialize, ToSchema)]
pub struct ForgotPasswordRequest {
    #[schema(format = Email)]
    email: String,
}

/// Asks Supabase Auth to mail a password reset link. The answer is the
/// same whether or not the address has an account, so it reveals nothing.
/// The link leads to Supabase, which signs the user in so they can set a
/// new password (`PUT /auth/v1/user`).
#[utoipa::path(post, path = "/auth/forgot-password", tag = "auth", request_body = ForgotPasswordRequest, responses(
    (status = 202, description = "Accepted, whether or not the address has an account", body = Accepted),
    (status = 400, description = "Malformed JSON", body = ErrorBody),
    (status = 403, description = "The project has email sign-in disabled", body = ErrorBody),
    (status = 413, description = "The body is too large", body = ErrorBody),
    (status = 415, description = "The body is not application/json", body = ErrorBody),
    (status = 422, description = "The email is missing or malformed", body = ErrorBody),
    (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody),
    (status = 503, description = "supabase_unavailable", body = ErrorBody),
))]
pub async fn forgot_password(
    State(supabase): State<SupabaseClient>,
    State(mail_requests): State<MailRequestLimiter>,
    ClientIp(client_ip): ClientIp,
    JsonBody(request): JsonBody<ForgotPasswordRequest>,
) -> Result<Accepted, ApiError> {
    mail_requests.admit(&request.email, client_ip).await?;
    supabase
        .recover(&request.email)
        .await
        .map_err(|e| match e {
            SupabaseError::SignupDisabled => {
                ApiError::Forbidden("Email sign-in is disabled for this project".into())
            }
            other => other.into(),
        })?;
    Ok(Accepted::new())
}
