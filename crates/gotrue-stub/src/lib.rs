//! # gotrue-stub: an offline stand-in for Supabase Auth. **Not Supabase.**
//!
//! A small axum server that speaks the part of the Supabase Auth (GoTrue)
//! API a service needs, with upstream's request and response shapes and
//! error codes, so the supabase template's tests and offline development
//! run without a Supabase project. It keeps everything in memory, has no
//! database and sends no email: its mails are kept in memory and, with an
//! outbox folder, written there as `.eml` files. Never put it in front of
//! real users.
//!
//! Routes, all under `/auth/v1` so that `SUPABASE_URL=<stub url>` works
//! like a project URL:
//!
//! | route | what |
//! |---|---|
//! | `POST /signup` | `{email, password, data?}`: a session (autoconfirm on), or a user with `confirmation_sent_at` and a confirmation mail |
//! | `POST /token?grant_type=password` | `{email, password}`: a session; 400 `email_not_confirmed` until the email is confirmed |
//! | `POST /token?grant_type=refresh_token` | `{refresh_token}`: a new session; the old token is spent, reusing it ends the session |
//! | `POST /recover` | `{email}`: `{}` whether or not the address is registered; a recovery mail when it is; 429 `over_email_send_rate_limit` within 60 s of the last one |
//! | `POST /verify` | `{type, token_hash}` or `{type, email, token}` (`type`: `signup`, `recovery`, `email`, `magiclink`, `invite`): a session; 403 `otp_expired` for a token unknown, spent, expired or of another type |
//! | `GET /verify?token=&type=&redirect_to=` | the mail's link: 303 to `redirect_to` (if allowed, else the site URL) with the session, or the error, in the fragment; no API key needed |
//! | `GET /user` | bearer: the user |
//! | `PUT /user` | bearer, `{password?, data?}`: the user; a new password ends the user's other sessions and voids mailed tokens |
//! | `POST /logout?scope=global\|local\|others` | bearer: 204 |
//! | `GET`, `PUT /admin/users/{id}` | service role key: read a user, merge `app_metadata` / `user_metadata` |
//! | `GET /settings`, `GET /health` | public settings, `{"version","name":"GoTrue","description"}` |
//! | `GET /.well-known/jwks.json` | the public keys (`{"keys":[]}` for HS256), `Cache-Control: public, max-age=600`; no API key needed |
//!
//! Every other route needs `apikey: <anon or service role key>`. Errors
//! come in upstream's legacy shape `{"code":400,"error_code":"...","msg":"..."}`
//! (with the `x-sb-error-code` header), or `{"code":"...","message":"..."}`
//! when the request sends `X-Supabase-Api-Version: 2024-01-01`.
//!
//! Mails, as upstream's: a 6-digit code and its token hash (hex SHA-224 of
//! the email and the code), single use, valid 86400 s (`otp_expiry`), a new
//! one voiding the last of its kind, at most one per address and kind per
//! 60 s (`email_max_frequency`), at most 30 per hour for the project while
//! autoconfirm is off (`email_rate_limit`). The plain-text body carries the
//! link and the lines `token: <code>` and `token_hash: <hash>`. The stub
//! stores only the SHA-256 of each token hash.
//!
//! ## Where the stub differs from upstream
//!
//! - Passwords are hashed with Argon2id (upstream: bcrypt); the 72-byte
//!   limit is kept.
//! - No phone, SSO, OAuth providers, MFA, anonymous users, PKCE (`/recover`
//!   with a `code_challenge` is refused with 400 `validation_failed`),
//!   invitations, magic links or email changes: `PUT /user` changes only
//!   `password` and `data` (a new email or phone is 422), and `/verify` of
//!   a phone code is always 403 `otp_expired`.
//! - A missing or wrong API key is answered by the stub in GoTrue's shape
//!   (`no_api_key`, `invalid_api_key`); Supabase's gateway uses its own.
//! - `GET /verify` redirects with 303 as upstream's code does (the API
//!   description says 302); no cookies are set.
//! - Redirect allow-list entries are URL prefixes, not globs.
//! - Upstream's per-IP limits apply only behind its proxy; the stub's are
//!   off unless configured (`token_rate_limit`, `recover_rate_limit`), and
//!   `/verify` has none.
//! - A confirmation does not add `email_verified` to `user_metadata`, and
//!   users carry no `email`/`sub` there.
//! - No `Retry-After` on 429s (upstream sends none either), no audit log,
//!   no hooks, no password-changed notification mail.
//!
//! Tests start one in-process on a random loopback port and steer it
//! through the [`StubHandle`]: rotate the signing key, count JWKS fetches,
//! set `app_metadata`, mint tokens with any `kid`, and switch [`Fault`]s
//! (slow answers, HTML 500s, dropped or refused connections).
//!
//! ```
//! use gotrue_stub::{Fault, StubConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let stub = gotrue_stub::spawn(StubConfig::es256()).await.expect("the stub starts");
//! // What a service under test is configured with:
//! let supabase_url = stub.url();
//! let supabase_key = stub.anon_key();
//! assert!(supabase_url.starts_with("http://127.0.0.1:"));
//! # let _ = supabase_key;
//!
//! let old_kid = stub.current_kid();
//! let new_kid = stub.rotate_signing_key().expect("ES256 keys rotate");
//! assert_ne!(old_kid.as_deref(), Some(new_kid.as_str()));
//! stub.set_fault(Fault::RefuseConnections).await; // connects now fail
//! stub.set_fault(Fault::None).await; // and work again
//! # }
//! ```
//!
//! The binary (`cargo run -p gotrue-stub -- --port 9999`) serves the same
//! API for local development, writing its mails to `./gotrue-outbox`
//! (`--outbox DIR`).

#![warn(missing_docs)]

mod api;
mod config;
mod errors;
mod keys;
mod mail;
mod net;
mod store;
mod verify;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use auth_kit::password::{PasswordHasher, PoolSize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{RateLimit, Signing, StubConfig};
pub use keys::Kid;
pub use mail::{MailKind, SentMail};
pub use net::{Fault, HTML_ERROR_BODY};

use api::{Project, Runtime, Shared, lock, read, write};
use keys::KeyRing;
use mail::Outbox;
use net::{ConnInfo, StubListener};
use verify::Redirects;

/// Why the stub could not start or do what it was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StubError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The HS256 secret is shorter than 32 bytes.
    #[error("the HS256 secret must be at least 32 bytes")]
    WeakSecret,
    /// Generating or loading a key failed.
    #[error("signing key error: {0}")]
    Key(String),
    /// Signing a token failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The stub signs with HS256: there is no key pair to rotate.
    #[error("the stub signs with HS256; there is no key pair to rotate")]
    NotAsymmetric,
    /// No user has this id or email.
    #[error("no such user: {0}")]
    UnknownUser(String),
    /// Metadata must be a JSON object.
    #[error("metadata must be a JSON object")]
    NotAnObject,
    /// The outbox folder could not be created.
    #[error("cannot create the outbox folder {path}: {source}")]
    Outbox {
        /// The folder asked for.
        path: std::path::PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The site URL is not an absolute http(s) URL.
    #[error("invalid {0}")]
    SiteUrl(String),
}

/// A running stub. Dropping the handle stops the server.
pub struct StubHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    accepting: watch::Sender<bool>,
    listening: watch::Receiver<bool>,
    server: JoinHandle<()>,
}

impl fmt::Debug for StubHandle {
    // No keys: they are credentials, even if throwaway ones.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StubHandle")
            .field("url", &self.url)
            .field("fault", &self.fault())
            .finish_non_exhaustive()
    }
}

/// Starts a stub on `config`'s address (by default 127.0.0.1 and a free
/// port) and serves until the handle is dropped.
///
/// Must be called inside a Tokio runtime.
pub async fn spawn(config: StubConfig) -> Result<StubHandle, StubError> {
    let keys = KeyRing::new(&config.signing)?;
    let redirects = Redirects::new(&config.site_url, config.redirect_allow_list.clone())
        .map_err(StubError::SiteUrl)?;
    let outbox = Outbox::new(config.outbox.clone()).map_err(|source| StubError::Outbox {
        path: config.outbox.clone().unwrap_or_default(),
        source,
    })?;
    let wanted = SocketAddr::new(config.host, config.port);
    let socket = TcpListener::bind(wanted)
        .await
        .map_err(|source| StubError::Bind {
            addr: wanted,
            source,
        })?;
    let addr = socket.local_addr().map_err(|source| StubError::Bind {
        addr: wanted,
        source,
    })?;
    let url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let anon_key = match config.anon_key.clone() {
        Some(key) => key,
        None => api_key(&keys, "anon")?,
    };
    let service_role_key = api_key(&keys, "service_role")?;
    let runtime = Runtime {
        autoconfirm: config.autoconfirm,
        disable_signup: config.disable_signup,
        password_min_length: config.password_min_length,
        access_token_ttl: config.access_token_ttl,
        token_rate_limit: config.token_rate_limit,
        recover_rate_limit: config.recover_rate_limit,
        otp_expiry: config.otp_expiry,
        email_max_frequency: config.email_max_frequency,
        email_rate_limit: config.email_rate_limit,
    };
    let hasher = PasswordHasher::new(PoolSize {
        workers: 2,
        queue: 256,
    });
    let shared = Arc::new(Shared::new(
        runtime,
        keys,
        hasher,
        Project {
            anon_key,
            service_role_key,
            issuer: format!("{url}/auth/v1"),
        },
        outbox,
        redirects,
    ));
    let (accepting, accepting_rx) = watch::channel(true);
    let (listening_tx, listening) = watch::channel(true);
    let listener = StubListener::new(socket, addr, accepting_rx, listening_tx);
    let app = api::router(shared.clone());
    let server = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<ConnInfo>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = %e, "gotrue-stub stopped");
        }
    });
    Ok(StubHandle {
        shared,
        addr,
        url,
        accepting,
        listening,
        server,
    })
}

/// A project API key in the form the Supabase CLI's local stack uses: a
/// JWT with `role` `anon` or `service_role`, signed with the project key.
fn api_key(keys: &KeyRing, role: &str) -> Result<String, StubError> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "iss": "supabase-demo",
        "ref": "gotrue-stub",
        "role": role,
        "iat": now,
        "exp": now + 10 * 365 * 86_400,
    });
    keys.sign(&Kid::Current, &claims)
}

/// A random (version 4) UUID, as GoTrue uses for users, sessions and keys.
pub(crate) fn uuid_v4() -> String {
    let mut b = auth_kit::random::bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl StubHandle {
    /// The project URL (`SUPABASE_URL`), e.g. `http://127.0.0.1:40213`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address the stub listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `iss` of its tokens: `<url>/auth/v1`.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The anon key (`SUPABASE_KEY`, sent as `apikey`): a JWT whose `role`
    /// is `anon`.
    pub fn anon_key(&self) -> &str {
        &self.shared.anon_key
    }

    /// The service role key: a JWT whose `role` is `service_role`. It opens
    /// the admin API; a service that faces users never holds it.
    pub fn service_role_key(&self) -> &str {
        &self.shared.service_role_key
    }

    /// The `kid` new tokens carry; `None` for HS256.
    pub fn current_kid(&self) -> Option<String> {
        read(&self.shared.keys).current_kid().map(str::to_owned)
    }

    /// Rotates the ES256 signing key, as a Supabase key rotation does: a
    /// new key with a new `kid` signs every new token, and the JWKS lists
    /// it first with the previous key after it (tokens signed before stay
    /// valid). The key before the previous one is withdrawn. Returns the
    /// new `kid`.
    pub fn rotate_signing_key(&self) -> Result<String, StubError> {
        write(&self.shared.keys).rotate()
    }

    /// How many times `GET /auth/v1/.well-known/jwks.json` was answered.
    pub fn jwks_fetches(&self) -> u64 {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// The current fault.
    pub fn fault(&self) -> Fault {
        self.shared.fault()
    }

    /// Switches to `fault`. Returns once it is in effect: for
    /// [`Fault::RefuseConnections`] the socket is closed when this returns,
    /// and for any other fault it is open again.
    pub async fn set_fault(&self, fault: Fault) {
        let refuse = fault == Fault::RefuseConnections;
        *write(&self.shared.fault) = fault;
        self.accepting.send_replace(!refuse);
        let mut listening = self.listening.clone();
        // Err only if the server task is gone, and then nothing listens.
        let _ = listening.wait_for(|open| *open != refuse).await;
    }

    /// Sets (`Some`) or lifts (`None`) the per-IP limit on the token
    /// endpoint.
    pub fn set_token_rate_limit(&self, limit: Option<RateLimit>) {
        write(&self.shared.runtime).token_rate_limit = limit;
    }

    /// Sets (`Some`) or lifts (`None`) the per-IP limit on
    /// `POST /auth/v1/recover`.
    pub fn set_recover_rate_limit(&self, limit: Option<RateLimit>) {
        write(&self.shared.runtime).recover_rate_limit = limit;
    }

    /// Sets (`Some`) or lifts (`None`) the project's mail quota (counted
    /// only while autoconfirm is off, as upstream).
    pub fn set_email_rate_limit(&self, limit: Option<RateLimit>) {
        write(&self.shared.runtime).email_rate_limit = limit;
    }

    /// Every mail the stub wrote (the last 256), oldest first.
    pub fn mails(&self) -> Vec<SentMail> {
        self.shared.outbox.sent()
    }

    /// The newest mail to `email`, if any.
    pub fn last_mail_to(&self, email: &str) -> Option<SentMail> {
        self.mails()
            .into_iter()
            .rev()
            .find(|m| m.to.eq_ignore_ascii_case(email))
    }

    /// The folder mails are written to, if any.
    pub fn outbox_dir(&self) -> Option<&std::path::Path> {
        self.shared.outbox.dir()
    }

    /// Turns email autoconfirm on or off for later signups.
    pub fn set_autoconfirm(&self, autoconfirm: bool) {
        write(&self.shared.runtime).autoconfirm = autoconfirm;
    }

    /// Allows or refuses (422 `signup_disabled`) later signups.
    pub fn set_signup_disabled(&self, disabled: bool) {
        write(&self.shared.runtime).disable_signup = disabled;
    }

    /// The id of the user registered with `email`.
    pub fn user_id(&self, email: &str) -> Option<String> {
        lock(&self.shared.store)
            .user_by_email(email)
            .map(|u| u.id.clone())
    }

    /// Confirms `email` (what clicking the confirmation link does).
    pub fn confirm_email(&self, email: &str) -> Result<(), StubError> {
        let mut store = lock(&self.shared.store);
        let id = store
            .user_by_email(email)
            .map(|u| u.id.clone())
            .ok_or_else(|| StubError::UnknownUser(email.to_owned()))?;
        if let Some(user) = store.user_mut(&id) {
            user.email_confirmed_at = Some(OffsetDateTime::now_utc());
        }
        store.clear_one_time_tokens(&id);
        Ok(())
    }

    /// Merges `patch` (a JSON object) into the user's `app_metadata`, as
    /// `PUT /auth/v1/admin/users/{id}` does: keys replaced, `null` removes.
    /// Tokens issued afterwards (sign-in, refresh) carry the new value.
    pub fn set_app_metadata(&self, user_id: &str, patch: Value) -> Result<(), StubError> {
        self.merge(user_id, patch, |u| &mut u.app_metadata)
    }

    /// Merges `patch` into the user's `user_metadata` (which users may edit
    /// themselves: it must never grant anything).
    pub fn set_user_metadata(&self, user_id: &str, patch: Value) -> Result<(), StubError> {
        self.merge(user_id, patch, |u| &mut u.user_metadata)
    }

    fn merge(
        &self,
        user_id: &str,
        patch: Value,
        field: impl FnOnce(&mut store::User) -> &mut serde_json::Map<String, Value>,
    ) -> Result<(), StubError> {
        let Value::Object(patch) = patch else {
            return Err(StubError::NotAnObject);
        };
        let mut store = lock(&self.shared.store);
        let user = store
            .user_mut(user_id)
            .ok_or_else(|| StubError::UnknownUser(user_id.to_owned()))?;
        store::merge_metadata(field(user), patch);
        user.updated_at = OffsetDateTime::now_utc();
        Ok(())
    }

    /// How many live sessions the user has.
    pub fn session_count(&self, user_id: &str) -> usize {
        lock(&self.shared.store).session_count(user_id)
    }

    /// Signs arbitrary `claims` with the current key, the header naming
    /// `kid`: for tokens the stub would never issue (expired, another
    /// issuer, an unknown `kid`, ...). The claims are used as given.
    pub fn sign_claims(&self, kid: Kid, claims: &Value) -> Result<String, StubError> {
        read(&self.shared.keys).sign(&kid, claims)
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) {
        self.server.abort();
        // Cancelled is the expected outcome; there is nothing to report.
        let _ = (&mut self.server).await;
    }
}

impl Drop for StubHandle {
    fn drop(&mut self) {
        self.server.abort();
    }
}
