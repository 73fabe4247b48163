//! Signup, the token endpoint and logout, proxied to Supabase Auth. Its
//! errors are mapped by their code: email taken 409, weak password 422 with
//! the reasons, rate limited 429, bad credentials 400 `invalid_grant`, and
//! Supabase unreachable, slow or broken 503 `supabase_unavailable`.

use auth_kit::extract::BearerToken;
use auth_kit::http::{JsonBody, TokenRequest};
use auth_kit::login::TokenResponse;
use auth_kit::openapi::{JsonBodyErrors, TokenForm};
use auth_kit::supabase::{
    CurrentSupabaseUser, LogoutScope, SignUpOutcome, SupabaseAuth, SupabaseClaims, SupabaseClient,
    SupabaseProfile, SupabaseUser,
};
use auth_kit::{ApiError, ErrorBody, OAuthError};
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
    #[schema(schema_with = auth_kit::openapi::schemas::supabase_password)]
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
    (status = 429, description = "`too_many_requests`: Supabase's rate limit", body = ErrorBody),
    (status = 503, description = "`supabase_unavailable`: Supabase Auth could not be asked; see `Retry-After`", body = ErrorBody),
    JsonBodyErrors,
))]
pub async fn signup(
    State(supabase): State<SupabaseClient>,
    State(auth): State<SupabaseAuth>,
    JsonBody(request): JsonBody<SignupRequest>,
) -> Result<Response, ApiError> {
    auth_kit::supabase::check_signup_password(&request.password)?;
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
        (status = 429, description = "`too_many_requests`: Supabase's rate limit", body = ErrorBody),
        (status = 503, description = "`supabase_unavailable`: Supabase Auth could not be asked; see `Retry-After`", body = ErrorBody),
    ))]
pub async fn token(
    State(supabase): State<SupabaseClient>,
    request: TokenRequest,
) -> Result<TokenResponse, OAuthError> {
    supabase.token(&request).await
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
