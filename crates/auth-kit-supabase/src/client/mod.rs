//! The Supabase Auth client.
//!
//! Files: this one holds the client and its transport; `types` what its
//! calls return; `answers` how an answer is read and a failure classified.

mod answers;
mod types;

pub(crate) use types::FetchedKeys;
pub use types::{LogoutScope, Session, SignUpOutcome, UserRecord, WeakPasswordNotice};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::config::{SupabaseKey, SupabaseSettings};
use crate::error::{SupabaseError, Unavailable};

use answers::{cache_max_age, check_bearer, classify_failure, mail_declined, parse_success};
use types::RawSession;

/// The error shape this client asks for (upstream's newest).
const API_VERSION: &str = "2024-01-01";
/// Largest answer read.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// The pause before the one retry of an idempotent call.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// bcrypt's limit, which Supabase Auth enforces for every password.
const MAX_PASSWORD_BYTES: usize = 72;
/// Supabase Auth's limit on an email address.
const MAX_EMAIL_BYTES: usize = 255;
/// Why Supabase Auth may decline to mail a registered address: its mail
/// limits and address checks, which it only reaches for registered ones.
pub(super) const MAIL_DECLINED_CODES: &[&str] = &[
    "over_email_send_rate_limit",
    "email_address_not_authorized",
    "email_address_invalid",
];

/// The client could not be built (TLS setup): a start-up error.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the Supabase Auth client: {0}")]
pub struct ClientBuildError(String);

/// A Supabase Auth client for one project: signup, password sign-in,
/// refresh, get user, logout, password recovery (and the JWKS, for the
/// verifier). Cheap to clone.
///
/// - TLS: rustls with the *ring* provider, configured explicitly (no
///   process-wide default provider is needed or consulted), and the
///   operating system's trust store.
/// - Every call sends `apikey`, `X-Supabase-Api-Version: 2024-01-01` and,
///   with a body, `Content-Type: application/json`; redirects are not
///   followed (the `apikey` header must not travel to another host).
/// - Every call ends within the configured timeout (SUPABASE_TIMEOUT_SECONDS):
///   it covers connecting, the answer and, for the idempotent calls
///   (`GET /user`, the JWKS), their single retry after a short pause on a
///   refused or dropped connection or a 502/503/504. Token, signup,
///   logout and recovery calls are never retried.
/// - Answers are read up to 1 MiB, their Content-Type is checked before
///   parsing, and errors are classified by code in both of upstream's
///   shapes (see [`SupabaseError`]).
#[derive(Clone)]
pub struct SupabaseClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    auth_url: String,
    key: SupabaseKey,
    timeout: Duration,
}

impl fmt::Debug for SupabaseClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupabaseClient")
            .field("auth_url", &self.inner.auth_url)
            .field("key", &self.inner.key)
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

/// The TLS configuration: rustls with *ring*, TLS 1.2 and 1.3, the
/// platform's certificate verifier.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth())
}

/// Which call this is: it decides retries and what an error code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    Signup,
    PasswordGrant,
    RefreshGrant,
    GetUser,
    Logout,
    Jwks,
    Recover,
}

impl Call {
    fn is_idempotent(self) -> bool {
        matches!(self, Call::GetUser | Call::Jwks)
    }

    fn is_grant(self) -> bool {
        matches!(self, Call::PasswordGrant | Call::RefreshGrant)
    }

    fn is_user_call(self) -> bool {
        matches!(self, Call::GetUser | Call::Logout)
    }
}

/// A complete answer.
#[derive(Debug)]
pub(super) struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl SupabaseClient {
    /// A client for the project in `settings`, with its timeout.
    pub fn new(settings: &SupabaseSettings) -> Result<Self, ClientBuildError> {
        let tls = tls_config().map_err(|e| ClientBuildError(e.to_string()))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("auth-kit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientBuildError(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                auth_url: settings.auth_url(),
                key: settings.key.clone(),
                timeout: settings.timeout,
            }),
        })
    }

    /// `<SUPABASE_URL>/auth/v1`.
    pub fn auth_url(&self) -> &str {
        &self.inner.auth_url
    }

    /// Our `/token` endpoint on top of Supabase: `grant_type=password`
    /// (`username` is the email) or `grant_type=refresh_token`, answered in
    /// RFC 6749's shape; Supabase's errors mapped by their code.
    pub async fn token(
        &self,
        request: &auth_kit::http::TokenRequest,
    ) -> Result<auth_kit::login::TokenResponse, auth_kit::OAuthError> {
        use auth_kit::OAuthError;
        use std::borrow::Cow;
        match request.grant_type.as_deref() {
            Some("password") => {
                let (Some(email), Some(password)) =
                    (request.username.as_deref(), request.password.as_ref())
                else {
                    return Err(OAuthError::InvalidRequest(Cow::Borrowed(
                        "The username (your email) and password parameters are required",
                    )));
                };
                Ok(self
                    .sign_in_with_password(email, password.expose())
                    .await?
                    .into())
            }
            Some("refresh_token") => {
                let Some(refresh_token) = request.refresh_token.as_ref() else {
                    return Err(OAuthError::InvalidRequest(Cow::Borrowed(
                        "The refresh_token parameter is missing",
                    )));
                };
                Ok(self.refresh_session(refresh_token.expose()).await?.into())
            }
            Some(other) => Err(OAuthError::UnsupportedGrantType(Cow::Owned(format!(
                "The grant type '{}' is not supported",
                other.chars().take(64).collect::<String>()
            )))),
            None => Err(OAuthError::InvalidRequest(Cow::Borrowed(
                "The grant_type parameter is missing",
            ))),
        }
    }

    /// [`SupabaseClient::token`] behind the kit's limiter: the password
    /// grant is counted per email and per client address, as the jwt and
    /// oauth2 services count theirs (Supabase sees every request coming from
    /// this service's address, so its own per-IP limits cannot tell clients
    /// apart). Refreshes are not counted.
    pub async fn token_limited(
        &self,
        request: &auth_kit::http::TokenRequest,
        limiter: &auth_kit::limiter::RateLimiter,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<auth_kit::login::TokenResponse, auth_kit::OAuthError> {
        match (request.grant_type.as_deref(), request.username.as_deref()) {
            (Some("password"), Some(email)) => {
                limiter
                    .password_grant(email, client_ip, self.token(request))
                    .await
            }
            _ => self.token(request).await,
        }
    }

    /// `POST /auth/v1/signup` with `{email, password, data}` (`data`
    /// becomes `user_metadata`). The email's shape and the password's
    /// length (1 to 72 bytes) are checked here first.
    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        data: Option<Map<String, Value>>,
    ) -> Result<SignUpOutcome, SupabaseError> {
        if !email_address::EmailAddress::is_valid(email) {
            return Err(SupabaseError::Validation {
                field: "email".into(),
                message: "is not a valid email address".into(),
            });
        }
        if password.is_empty() {
            return Err(SupabaseError::Validation {
                field: "password".into(),
                message: "field required".into(),
            });
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(SupabaseError::Validation {
                field: "password".into(),
                message: "must be at most 72 bytes long".into(),
            });
        }
        let body = json!({
            "email": email,
            "password": password,
            "data": data.unwrap_or_default(),
        });
        let url = format!("{}/signup", self.inner.auth_url);
        let reply = self
            .execute(Call::Signup, || self.inner.http.post(&url).json(&body))
            .await?;
        let value: Value = parse_success(Call::Signup, reply)?;
        if value.get("access_token").is_some() {
            let raw: RawSession = serde_json::from_value(value)
                .map_err(|_| Unavailable::UnexpectedBody(StatusCode::OK))?;
            Ok(SignUpOutcome::Session(raw.into()))
        } else {
            let user: UserRecord = serde_json::from_value(value)
                .map_err(|_| Unavailable::UnexpectedBody(StatusCode::OK))?;
            Ok(SignUpOutcome::ConfirmationRequired(user))
        }
    }

    /// `POST /auth/v1/token?grant_type=password` with `{email, password}`.
    pub async fn sign_in_with_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Session, SupabaseError> {
        let body = json!({ "email": email, "password": password });
        let url = format!("{}/token?grant_type=password", self.inner.auth_url);
        let reply = self
            .execute(Call::PasswordGrant, || {
                self.inner.http.post(&url).json(&body)
            })
            .await?;
        parse_success::<RawSession>(Call::PasswordGrant, reply).map(Session::from)
    }

    /// `POST /auth/v1/token?grant_type=refresh_token` with
    /// `{refresh_token}`: a new session; the old refresh token is spent.
    pub async fn refresh_session(&self, refresh_token: &str) -> Result<Session, SupabaseError> {
        if refresh_token.is_empty() {
            return Err(SupabaseError::InvalidGrant {
                code: "refresh_token_not_found".to_owned(),
            });
        }
        let body = json!({ "refresh_token": refresh_token });
        let url = format!("{}/token?grant_type=refresh_token", self.inner.auth_url);
        let reply = self
            .execute(Call::RefreshGrant, || {
                self.inner.http.post(&url).json(&body)
            })
            .await?;
        parse_success::<RawSession>(Call::RefreshGrant, reply).map(Session::from)
    }

    /// `GET /auth/v1/user` with the user's access token.
    pub async fn get_user(&self, access_token: &str) -> Result<UserRecord, SupabaseError> {
        check_bearer(access_token)?;
        let url = format!("{}/user", self.inner.auth_url);
        let reply = self
            .execute(Call::GetUser, || {
                self.inner.http.get(&url).bearer_auth(access_token)
            })
            .await?;
        parse_success(Call::GetUser, reply)
    }

    /// `POST /auth/v1/recover` with `{email}`: Supabase mails a password
    /// recovery link when the address is registered, and answers alike when
    /// it is not. The email's shape is checked here first.
    ///
    /// `Ok(())` also when Supabase declines to mail because of its mail
    /// limits or address checks (`over_email_send_rate_limit`,
    /// `email_address_not_authorized`, `email_address_invalid`): it only
    /// reaches those for a registered address, so passing them on would tell
    /// the caller that the address has an account. They are logged instead.
    /// A per-client rate limit (`over_request_rate_limit`, applied before
    /// any lookup) is [`SupabaseError::RateLimited`].
    pub async fn recover(&self, email: &str) -> Result<(), SupabaseError> {
        if email.len() > MAX_EMAIL_BYTES || !email_address::EmailAddress::is_valid(email) {
            return Err(SupabaseError::Validation {
                field: "email".into(),
                message: "is not a valid email address".into(),
            });
        }
        let body = json!({ "email": email });
        let url = format!("{}/recover", self.inner.auth_url);
        let reply = self
            .execute(Call::Recover, || self.inner.http.post(&url).json(&body))
            .await?;
        if let Some(code) = mail_declined(&reply) {
            tracing::warn!(
                code = %code,
                "Supabase Auth did not send a recovery mail; answering as if it had, so the answer does not reveal the address"
            );
            return Ok(());
        }
        parse_success::<Value>(Call::Recover, reply).map(drop)
    }

    /// `POST /auth/v1/logout?scope=...` with the user's access token.
    pub async fn logout(
        &self,
        access_token: &str,
        scope: LogoutScope,
    ) -> Result<(), SupabaseError> {
        check_bearer(access_token)?;
        let url = format!("{}/logout?scope={}", self.inner.auth_url, scope.as_str());
        let reply = self
            .execute(Call::Logout, || {
                self.inner.http.post(&url).bearer_auth(access_token)
            })
            .await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(classify_failure(Call::Logout, &reply))
        }
    }

    /// `GET /auth/v1/.well-known/jwks.json`. Keys of kinds jsonwebtoken
    /// does not know are skipped, not fatal.
    pub(crate) async fn fetch_jwks(&self) -> Result<FetchedKeys, SupabaseError> {
        let url = format!("{}/.well-known/jwks.json", self.inner.auth_url);
        let reply = self
            .execute(Call::Jwks, || self.inner.http.get(&url))
            .await?;
        let max_age = cache_max_age(&reply.headers);
        let status = reply.status;
        let document: Value = parse_success(Call::Jwks, reply)?;
        let keys = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(Unavailable::UnexpectedBody(status))?
            .iter()
            .filter_map(|key| serde_json::from_value::<Jwk>(key.clone()).ok())
            .collect();
        Ok(FetchedKeys {
            keys: JwkSet { keys },
            max_age,
        })
    }

    /// Sends a request built by `build` (again for the retry), within the
    /// timeout for the whole call.
    async fn execute(
        &self,
        call: Call,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Reply, SupabaseError> {
        let deadline = Instant::now() + self.inner.timeout;
        let mut retries_left = u8::from(call.is_idempotent());
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let request = build()
                .header("apikey", self.inner.key.as_str())
                .header("X-Supabase-Api-Version", API_VERSION)
                .timeout(remaining);
            // reqwest's timeout covers the exchange; this one also bounds
            // reading the body, so nothing can outlive the deadline.
            let outcome = match tokio::time::timeout(remaining, self.exchange(request)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(Unavailable::Timeout(self.inner.timeout)),
            };
            let transient = match &outcome {
                Ok(reply) => matches!(reply.status.as_u16(), 502..=504),
                Err(Unavailable::Connect(_) | Unavailable::Transport(_)) => true,
                Err(_) => false,
            };
            let time_left = deadline.saturating_duration_since(Instant::now());
            if transient && retries_left > 0 && time_left > RETRY_PAUSE {
                retries_left -= 1;
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
            return outcome.map_err(SupabaseError::from);
        }
    }

    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Reply, Unavailable> {
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                Unavailable::Timeout(self.inner.timeout)
            } else if e.is_connect() {
                Unavailable::Connect(e)
            } else {
                Unavailable::Transport(e)
            }
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(Unavailable::TooLarge(MAX_ANSWER_BYTES));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Unavailable::TooLarge(MAX_ANSWER_BYTES));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_without_a_process_wide_tls_provider() {
        use auth_kit::config::Environment;
        // Nothing in this test binary installs a rustls default provider:
        // the client must not need one (reqwest would panic without it).
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
        let settings = SupabaseSettings::from_env(&Environment::from_pairs([
            ("SUPABASE_URL", "https://abcdefghijklmnopqrst.supabase.co"),
            ("SUPABASE_KEY", "sb_publishable_abc"),
        ]))
        .expect("valid settings");
        assert!(SupabaseClient::new(&settings).is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    }
}
