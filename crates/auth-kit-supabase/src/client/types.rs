//! What the client's calls return: sessions, users, signup outcomes,
//! the fetched JWKS.

use jsonwebtoken::jwk::JwkSet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::claims::null_as_empty;
use auth_kit::http::SecretString;

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
    pub(super) fn as_str(self) -> &'static str {
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
pub(super) struct RawSession {
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
