//! The Supabase Auth client.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::claims::null_as_empty;
use crate::config::{SupabaseKey, SupabaseSettings};
use crate::error::{SupabaseError, Unavailable};
use auth_kit::http::SecretString;

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
const MAIL_DECLINED_CODES: &[&str] = &[
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

/// How much a logout ends (`?scope=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    /// Every session of the user.
    Global,
    /// The session of the token used.
    Local,
    /// Every session but the one of the token used.
    Others,
}

impl LogoutScope {
    fn as_str(self) -> &'static str {
        match self {
            LogoutScope::Global => "global",
            LogoutScope::Local => "local",
            LogoutScope::Others => "others",
        }
    }
}

/// A Supabase Auth user object (`GET /auth/v1/user`, a session's `user`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user's id (a UUID).
    pub id: String,
    /// Audience (deprecated upstream; `authenticated`).
    #[serde(default)]
    pub aud: String,
    /// The database role (`authenticated`).
    #[serde(default)]
    pub role: String,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// When the email was confirmed (RFC 3339).
    #[serde(default)]
    pub email_confirmed_at: Option<String>,
    /// When the confirmation email was sent (RFC 3339).
    #[serde(default)]
    pub confirmation_sent_at: Option<String>,
    /// Last sign-in (RFC 3339).
    #[serde(default)]
    pub last_sign_in_at: Option<String>,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
    /// Last update (RFC 3339).
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Server-set metadata (roles and permissions live here).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub app_metadata: Map<String, Value>,
    /// User-editable metadata.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub user_metadata: Map<String, Value>,
    /// Whether the user signed in anonymously.
    #[serde(default)]
    pub is_anonymous: bool,
}

/// Supabase's note that a password that just signed in no longer meets the
/// policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeakPasswordNotice {
    /// Upstream's text.
    #[serde(default)]
    pub message: Option<String>,
    /// `length`, `characters`, `pwned`.
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// A signed-in session. `Debug` hides both tokens.
#[derive(Debug, Clone)]
pub struct Session {
    /// The access token (a JWT).
    pub access_token: SecretString,
    /// `bearer`.
    pub token_type: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
    /// When it expires (Unix seconds), if Supabase said.
    pub expires_at: Option<u64>,
    /// The refresh token (single use).
    pub refresh_token: SecretString,
    /// The user.
    pub user: UserRecord,
    /// Present when the password used is weak by today's policy.
    pub weak_password: Option<WeakPasswordNotice>,
}

#[derive(Deserialize)]
struct RawSession {
    access_token: String,
    #[serde(default)]
    token_type: String,
    #[serde(default)]
    expires_in: u64,
    #[serde(default)]
    expires_at: Option<u64>,
    refresh_token: String,
    user: UserRecord,
    #[serde(default)]
    weak_password: Option<WeakPasswordNotice>,
}

impl From<RawSession> for Session {
    fn from(raw: RawSession) -> Self {
        Self {
            access_token: SecretString::new(raw.access_token),
            token_type: raw.token_type,
            expires_in: raw.expires_in,
            expires_at: raw.expires_at,
            refresh_token: SecretString::new(raw.refresh_token),
            user: raw.user,
            weak_password: raw.weak_password,
        }
    }
}

impl From<Session> for auth_kit::login::TokenResponse {
    /// Our `/token` answer for a Supabase session (no `scope`: Supabase
    /// tokens carry none).
    fn from(session: Session) -> Self {
        Self {
            access_token: session.access_token.expose().to_owned(),
            token_type: "bearer".to_owned(),
            expires_in: session.expires_in,
            refresh_token: session.refresh_token.expose().to_owned(),
            scope: None,
        }
    }
}

/// What a signup produced.
#[derive(Debug, Clone)]
pub enum SignUpOutcome {
    /// Email autoconfirm is on: the user is signed in.
    Session(Session),
    /// The user must confirm their email first. Supabase answers this way
    /// for a repeated signup too (with a made-up user), so the answer does
    /// not reveal whether the address is registered.
    ConfirmationRequired(UserRecord),
}

/// The project's JWKS as fetched, with the cache lifetime it announced.
#[derive(Debug, Clone)]
pub(crate) struct FetchedKeys {
    pub(crate) keys: JwkSet,
    /// `Cache-Control: max-age` in seconds (0 for `no-store`/`no-cache`).
    pub(crate) max_age: Option<u64>,
}

/// Which call this is: it decides retries and what an error code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
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
struct Reply {
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

/// The code of a 4xx JSON answer by which Supabase declined to mail a
/// registered address (see [`SupabaseClient::recover`]).
fn mail_declined(reply: &Reply) -> Option<String> {
    if !reply.status.is_client_error() || !is_json(&reply.headers) {
        return None;
    }
    let body = serde_json::from_slice::<Value>(&reply.body).ok()?;
    error_code(&body).filter(|code| MAIL_DECLINED_CODES.contains(&code.as_str()))
}

/// A token that cannot be sent in a header is not worth a round trip.
fn check_bearer(token: &str) -> Result<(), SupabaseError> {
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
fn parse_success<T: DeserializeOwned>(call: Call, reply: Reply) -> Result<T, SupabaseError> {
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
fn cache_max_age(headers: &HeaderMap) -> Option<u64> {
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
fn classify_failure(call: Call, reply: &Reply) -> SupabaseError {
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

    #[test]
    fn codes_are_sanitized() {
        assert_eq!(sanitize("bad_jwt"), "bad_jwt");
        assert_eq!(sanitize("<script>\n"), "script");
        assert_eq!(sanitize(&"a".repeat(100)).len(), 64);
    }
}
