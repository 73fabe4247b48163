//! The account lifecycle: email verification, password reset and password
//! change. What a jwt or oauth2 service's account handlers call.
//!
//! - `forgot_password` and `request_verification` answer 202 with the same
//!   body whether or not the address belongs to anyone, and do the same
//!   work on the request path either way: they check the address, count
//!   the request against the per-address and per-IP limits, and queue a
//!   job. The lookup, the token and the mail happen on the mail worker.
//! - Reset and verification tokens are 256 random bits (base64url), mailed
//!   as a link and as a `token:` line, stored only as SHA-256, single use,
//!   expiring (RESET_TOKEN_EXPIRE_MINUTES, VERIFY_TOKEN_EXPIRE_HOURS); a
//!   new one replaces the previous one of the same purpose. Spending one is
//!   one conditional statement ([`crate::store`]), so two concurrent uses
//!   cannot both succeed.
//! - A reset sets the password and revokes every login of the user (their
//!   access tokens stop working at once); a change, which needs the current
//!   password, revokes every login but the caller's. A wrong current
//!   password counts as a failed login in the login limiter, so this route
//!   is no way around it.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::{EmailVerification, ServiceSettings, is_valid_email};
use crate::error::{ApiError, ErrorBody};
use crate::limiter::MailRequestLimiter;
use crate::login::{LoginService, SignupRequest};
use crate::mail::{Mail, MailQueue, Mailer, MailerError, RetryPolicy};
use crate::password::{MAX_PASSWORD_BYTES, PasswordError, Verification, check_new_password};
use crate::store::{AccountTokenHash, Store, TokenPurpose, User};
use crate::token::VerifiedAccess;

/// Longest token looked up (ours are 43 characters); longer ones are refused
/// without a query.
const MAX_PRESENTED_TOKEN_CHARS: usize = 128;

/// The body of POST /auth/forgot-password and POST /auth/request-verify.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailRequest {
    /// The account's email address.
    #[cfg_attr(feature = "openapi", schema(format = Email))]
    pub email: String,
}

/// The body of POST /auth/reset-password.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResetPasswordRequest {
    /// The token from the reset mail (its `token:` line, or the link's `token` parameter).
    pub token: String,
    /// The new password: 8 characters to 1024 bytes.
    #[cfg_attr(feature = "openapi", schema(format = Password, min_length = 8))]
    pub password: String,
}

/// The body of POST /auth/verify.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyEmailRequest {
    /// The token from the verification mail.
    pub token: String,
}

/// The body of POST /users/me/password.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangePasswordRequest {
    /// The password in use now.
    #[cfg_attr(feature = "openapi", schema(format = Password))]
    pub current_password: String,
    /// The new password: 8 characters to 1024 bytes.
    #[cfg_attr(feature = "openapi", schema(format = Password, min_length = 8))]
    pub new_password: String,
}

macro_rules! redacted_debug {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    )*};
}
redacted_debug!(
    ResetPasswordRequest,
    VerifyEmailRequest,
    ChangePasswordRequest
);

/// 202 Accepted: the same answer whether or not the address belongs to an
/// account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accepted {
    /// Always `accepted`.
    pub status: String,
    /// Says a mail is sent only if the address belongs to an account.
    pub message: String,
}

impl Accepted {
    /// The one answer.
    pub fn new() -> Self {
        Self {
            status: "accepted".to_owned(),
            message: "If the address belongs to an account, a mail is on its way".to_owned(),
        }
    }
}

impl Default for Accepted {
    fn default() -> Self {
        Self::new()
    }
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        (StatusCode::ACCEPTED, Json(self)).into_response()
    }
}

/// A refused account request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AccountError {
    /// 400 `invalid_token`: the reset or verification token is unknown,
    /// used or expired (one answer for all three).
    InvalidToken,
    /// 400 `invalid_grant`: the current password is wrong.
    WrongPassword,
    /// Anything else: 422 naming the field, 429, 503, ...
    Api(ApiError),
}

impl From<ApiError> for AccountError {
    fn from(e: ApiError) -> Self {
        AccountError::Api(e)
    }
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountError::InvalidToken => {
                f.write_str("The token is unknown, already used or expired; ask for a new mail")
            }
            AccountError::WrongPassword => f.write_str("The current password is incorrect"),
            AccountError::Api(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AccountError {}

impl IntoResponse for AccountError {
    fn into_response(self) -> Response {
        let code = match &self {
            AccountError::InvalidToken => "invalid_token",
            AccountError::WrongPassword => "invalid_grant",
            AccountError::Api(e) => return e.clone().into_response(),
        };
        let body = ErrorBody {
            error: code.to_owned(),
            error_description: self.to_string(),
        };
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

/// Verification, reset and change of passwords, wired once at start-up.
#[derive(Debug, Clone)]
pub struct AccountService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    logins: LoginService,
    mail: MailQueue,
    requests: MailRequestLimiter,
    public_url: String,
    reset_ttl: Duration,
    verify_ttl: Duration,
}

/// The parts an [`AccountService`] is built from. Every field is required.
#[derive(Debug)]
pub struct AccountServiceParts {
    /// The login service: its store, hashing pool and failed-login limiter.
    pub logins: LoginService,
    /// Where mails go.
    pub mail: MailQueue,
    /// PUBLIC_URL, without a trailing slash: the base of the mailed links.
    pub public_url: String,
    /// RESET_TOKEN_EXPIRE_MINUTES.
    pub reset_token_ttl: Duration,
    /// VERIFY_TOKEN_EXPIRE_HOURS.
    pub verify_token_ttl: Duration,
    /// Counts mail requests per address and per client IP.
    pub mail_requests: MailRequestLimiter,
}

impl AccountService {
    /// Wires the service.
    pub fn new(parts: AccountServiceParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                logins: parts.logins,
                mail: parts.mail,
                requests: parts.mail_requests,
                public_url: parts.public_url.trim_end_matches('/').to_owned(),
                reset_ttl: parts.reset_token_ttl,
                verify_ttl: parts.verify_token_ttl,
            }),
        }
    }

    /// The service as a jwt or oauth2 service runs it: a [`Mailer`] for
    /// the account settings behind a [`MailQueue`] with the standard
    /// retries, and the mail-request limits counted where the login limits
    /// are (in Redis with RATE_LIMIT_URL), on the system clock. Fails when
    /// the outbox folder cannot be created or TLS for the SMTP server cannot
    /// be set up.
    ///
    /// # Panics
    /// Outside a tokio runtime (the mail worker is spawned on it).
    pub fn start(logins: LoginService, settings: &ServiceSettings) -> Result<Self, StartError> {
        let account = &settings.account;
        let mailer = Mailer::new(&account.mail, &account.mail_from)?;
        let mail_requests = MailRequestLimiter::from_settings(
            &settings.traffic,
            settings.traffic.mail_limits,
            &settings.service_name,
            Clock::System,
        )?;
        Ok(Self::new(AccountServiceParts {
            logins,
            mail: MailQueue::start(mailer, RetryPolicy::STANDARD),
            public_url: account.public_url.clone(),
            reset_token_ttl: account.reset_token_ttl,
            verify_token_ttl: account.verify_token_ttl,
            mail_requests,
        }))
    }

    fn store(&self) -> &Store {
        self.inner.logins.store()
    }

    /// Signup, then a verification mail when the user gave an email. With
    /// REQUIRE_VERIFIED_EMAIL an email is required (422 otherwise): an
    /// account without one could never log in.
    pub async fn signup(
        &self,
        request: &SignupRequest,
        client_ip: Option<IpAddr>,
    ) -> Result<User, ApiError> {
        request.validate()?;
        if self.inner.logins.email_verification() == EmailVerification::Required
            && request.email.is_none()
        {
            return Err(ApiError::validation(
                "email",
                "field required: this service needs a verified email to log in",
            ));
        }
        let user = self.inner.logins.signup(request, client_ip).await?;
        if user.email.is_some() {
            let (job, recipient) = (self.clone(), user.clone());
            self.inner.mail.submit("verify_email", async move {
                job.verification_mail(recipient).await
            });
        }
        Ok(user)
    }

    /// POST /auth/forgot-password: 202 whatever the address; a reset mail
    /// when it belongs to an enabled account. 422 for a malformed address,
    /// 429 over the per-address or per-IP limit.
    pub async fn forgot_password(
        &self,
        request: &EmailRequest,
        client_ip: Option<IpAddr>,
    ) -> Result<Accepted, ApiError> {
        let email = self.admit(request, client_ip).await?;
        let job = self.clone();
        self.inner.mail.submit("reset_password", async move {
            let user = job.mail_recipient(&email).await?;
            job.reset_mail(user).await
        });
        Ok(Accepted::new())
    }

    /// POST /auth/request-verify: 202 whatever the address; a verification
    /// mail when it belongs to an enabled account not verified yet. 422 for
    /// a malformed address, 429 over the limits (shared with forgot-password).
    pub async fn request_verification(
        &self,
        request: &EmailRequest,
        client_ip: Option<IpAddr>,
    ) -> Result<Accepted, ApiError> {
        let email = self.admit(request, client_ip).await?;
        let job = self.clone();
        self.inner.mail.submit("verify_email", async move {
            let user = job.mail_recipient(&email).await?;
            job.verification_mail(user).await
        });
        Ok(Accepted::new())
    }

    /// POST /auth/reset-password: sets the new password and revokes every
    /// login of the user. 400 `invalid_token` for an unknown, used or
    /// expired token (checked first, so nobody invents a password for a
    /// dead link), 422 for a password the signup rule refuses.
    pub async fn reset_password(&self, request: &ResetPasswordRequest) -> Result<(), AccountError> {
        let token = presented_token(&request.token)?;
        if self
            .store()
            .peek_account_token(&token, TokenPurpose::ResetPassword)
            .await
            .map_err(ApiError::from)?
            .is_none()
        {
            return Err(AccountError::InvalidToken);
        }
        check_new_password(&request.password).map_err(|m| ApiError::validation("password", m))?;
        let password_hash = self
            .inner
            .logins
            .hasher()
            .hash(&request.password)
            .await
            .map_err(busy)?;
        let reset = self
            .store()
            .reset_password(&token, &password_hash)
            .await
            .map_err(ApiError::from)?
            // Spent or expired while the password was being hashed.
            .ok_or(AccountError::InvalidToken)?;
        tracing::info!(
            user_id = reset.user_id,
            logins_revoked = reset.logins_revoked,
            "password reset with a mailed token; every login revoked"
        );
        Ok(())
    }

    /// POST /auth/verify: marks the address the token was mailed to as
    /// verified and answers the user. 400 `invalid_token` otherwise.
    pub async fn verify_email(&self, request: &VerifyEmailRequest) -> Result<User, AccountError> {
        let token = presented_token(&request.token)?;
        self.store()
            .verify_email(&token)
            .await
            .map_err(ApiError::from)?
            .ok_or(AccountError::InvalidToken)
    }

    /// POST /users/me/password: with the right current password, sets the
    /// new one and revokes every other login of the user; the caller's
    /// login (`access`'s `sid`) stays. A wrong current password is 400
    /// `invalid_grant` and a failed login in the limiter (429 once locked).
    pub async fn change_password(
        &self,
        user: &User,
        access: &VerifiedAccess,
        request: &ChangePasswordRequest,
        client_ip: Option<IpAddr>,
    ) -> Result<(), AccountError> {
        // Refusing a weak new password first tells a guesser nothing.
        check_new_password(&request.new_password)
            .map_err(|m| ApiError::validation("new_password", m))?;
        let logins = &self.inner.logins;
        let attempt = logins
            .limiter()
            .begin_login(&user.username, client_ip)
            .await
            .map_err(ApiError::from)?;
        // A password over the signup limit cannot be right (and would make
        // legacy hashes expensive): the same dummy verification instead.
        let stored = if request.current_password.len() <= MAX_PASSWORD_BYTES {
            match self.store().password_hash(user.id).await {
                Ok(stored) => stored,
                Err(e) => {
                    attempt.released().await;
                    return Err(ApiError::from(e).into());
                }
            }
        } else {
            None
        };
        let verification = match logins
            .hasher()
            .verify(&request.current_password, stored.as_deref())
            .await
        {
            Ok(verification) => verification,
            Err(e) => {
                attempt.released().await;
                return Err(busy(e));
            }
        };
        let checked_hash = match (stored, verification) {
            (Some(stored), Verification::Match { .. }) => stored,
            _ => {
                attempt.failed().await;
                return Err(AccountError::WrongPassword);
            }
        };
        attempt.succeeded().await;
        let password_hash = logins
            .hasher()
            .hash(&request.new_password)
            .await
            .map_err(busy)?;
        let revoked = self
            .store()
            .change_password(user.id, &checked_hash, &password_hash, access.login_id())
            .await
            .map_err(ApiError::from)?
            // Reset or changed meanwhile (which revoked this login): the
            // password checked above is no longer the current one.
            .ok_or(AccountError::WrongPassword)?;
        tracing::info!(
            user_id = user.id,
            logins_revoked = revoked,
            "password changed; the other logins revoked"
        );
        Ok(())
    }

    /// Checks the address and counts the request; the address, lower-cased.
    async fn admit(
        &self,
        request: &EmailRequest,
        client_ip: Option<IpAddr>,
    ) -> Result<String, ApiError> {
        let email = request.email.trim();
        if !is_valid_email(email) {
            return Err(ApiError::validation(
                "email",
                "must be a valid email address",
            ));
        }
        self.inner.requests.admit(email, client_ip).await?;
        Ok(email.to_lowercase())
    }

    /// The enabled user with this address (on the mail worker).
    async fn mail_recipient(&self, email: &str) -> Option<User> {
        match self.store().user_by_email(email).await {
            Ok(user) => user.filter(|u| !u.disabled),
            Err(e) => {
                tracing::error!(error = %e, "could not look up the recipient of a mail");
                None
            }
        }
    }

    async fn reset_mail(&self, user: User) -> Option<Mail> {
        let ttl = self.inner.reset_ttl;
        let token = self.issue(&user, TokenPurpose::ResetPassword, ttl).await?;
        let link = format!("{}/reset-password?token={token}", self.inner.public_url);
        let text = format!(
            "Hello {name},\n\n\
             someone (we hope you) asked to reset the password of your account at\n\
             {base}. To choose a new password, open this link within {minutes} minutes:\n\n\
             {link}\n\n\
             Or send the token below with your new password to POST /auth/reset-password.\n\
             Only the newest reset mail works, and only once.\n\n\
             token: {token}\n\n\
             If you did not ask for this, ignore this mail: your password stays as it is.\n",
            name = user.username,
            base = self.inner.public_url,
            minutes = ttl.as_secs() / 60,
        );
        Some(Mail {
            to: user.email?,
            subject: "Reset your password".to_owned(),
            text,
        })
    }

    async fn verification_mail(&self, user: User) -> Option<Mail> {
        if user.email_verified || user.disabled {
            return None;
        }
        let ttl = self.inner.verify_ttl;
        let token = self.issue(&user, TokenPurpose::VerifyEmail, ttl).await?;
        let link = format!("{}/verify?token={token}", self.inner.public_url);
        let text = format!(
            "Hello {name},\n\n\
             please confirm that this is your email address for your account at\n\
             {base} by opening this link within {hours} hours:\n\n\
             {link}\n\n\
             Or send the token below to POST /auth/verify.\n\n\
             token: {token}\n\n\
             If you did not sign up, ignore this mail.\n",
            name = user.username,
            base = self.inner.public_url,
            hours = ttl.as_secs() / 3600,
        );
        Some(Mail {
            to: user.email?,
            subject: "Confirm your email address".to_owned(),
            text,
        })
    }

    /// A fresh token for `user`, stored (replacing the previous one).
    async fn issue(&self, user: &User, purpose: TokenPurpose, ttl: Duration) -> Option<String> {
        let token = crate::random::url_token();
        match self
            .store()
            .issue_account_token(user.id, purpose, &AccountTokenHash::of(&token), ttl)
            .await
        {
            Ok(true) => Some(token),
            // Deleted, or the email removed, since the lookup.
            Ok(false) => None,
            Err(e) => {
                tracing::error!(user_id = user.id, purpose = purpose.as_str(), error = %e, "could not store a mailed token");
                None
            }
        }
    }
}

/// A presented token's hash, or `invalid_token` for one that cannot be ours.
fn presented_token(token: &str) -> Result<AccountTokenHash, AccountError> {
    let token = token.trim();
    if token.is_empty() || token.chars().count() > MAX_PRESENTED_TOKEN_CHARS {
        return Err(AccountError::InvalidToken);
    }
    Ok(AccountTokenHash::of(token))
}

fn busy(e: PasswordError) -> AccountError {
    AccountError::Api(ApiError::Unavailable(Some(Arc::new(e))))
}

/// Why [`AccountService::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The mailer could not be set up.
    #[error(transparent)]
    Mailer(#[from] MailerError),
    /// RATE_LIMIT_URL could not be used.
    #[error(transparent)]
    RateLimit(#[from] crate::limiter::RedisUrlError),
}
