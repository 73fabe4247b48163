//! What the handlers share: the settings that change at run time, the
//! per-IP rate-limit windows, the user store and keys, and the session
//! answer every sign-in returns.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use auth_kit::password::PasswordHasher;
use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::config::RateLimit;
use crate::errors::GoTrueError;
use crate::keys::{KeyRing, Kid};
use crate::mail::Outbox;
use crate::net::Fault;
use crate::store::{AUTHENTICATED, AuthMethod, Session, Store, User};
use crate::verify::Redirects;

/// The settings that can change while the stub runs.
#[derive(Debug, Clone)]
pub(crate) struct Runtime {
    pub(crate) autoconfirm: bool,
    pub(crate) disable_signup: bool,
    pub(crate) password_min_length: usize,
    pub(crate) access_token_ttl: Duration,
    pub(crate) token_rate_limit: Option<RateLimit>,
    pub(crate) recover_rate_limit: Option<RateLimit>,
    pub(crate) otp_expiry: Duration,
    pub(crate) email_max_frequency: Duration,
    pub(crate) email_rate_limit: Option<RateLimit>,
}

/// A fixed rate-limit window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    started: Instant,
    count: u32,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self {
            started: now,
            count: 0,
        }
    }

    /// Counts one event against `limit`; false when the window is full.
    pub(crate) fn admit(&mut self, limit: RateLimit, now: Instant) -> bool {
        if now.duration_since(self.started) >= limit.per {
            *self = Window::new(now);
        }
        if self.count >= limit.requests {
            return false;
        }
        self.count += 1;
        true
    }
}

/// The routes limited per client IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Limited {
    Token,
    Recover,
}

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) runtime: RwLock<Runtime>,
    pub(crate) keys: RwLock<KeyRing>,
    pub(crate) store: Mutex<Store>,
    pub(crate) hasher: PasswordHasher,
    pub(crate) fault: RwLock<Fault>,
    pub(crate) jwks_fetches: AtomicU64,
    pub(crate) anon_key: String,
    pub(crate) service_role_key: String,
    pub(crate) issuer: String,
    pub(crate) outbox: Outbox,
    pub(crate) redirects: Redirects,
    /// The project's mail quota window.
    pub(crate) mails_sent: Mutex<Window>,
    limiter: Mutex<HashMap<(Limited, IpAddr), Window>>,
}

/// The router state.
pub(crate) type AppState = Arc<Shared>;

// A panic while a lock is held leaves data that is still consistent enough
// for a stub; carry on rather than poison every later request.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Who the stub is to its clients: its API keys and its issuer.
#[derive(Debug)]
pub(crate) struct Project {
    pub(crate) anon_key: String,
    pub(crate) service_role_key: String,
    pub(crate) issuer: String,
}

impl Shared {
    pub(crate) fn new(
        runtime: Runtime,
        keys: KeyRing,
        hasher: PasswordHasher,
        project: Project,
        outbox: Outbox,
        redirects: Redirects,
    ) -> Self {
        let Project {
            anon_key,
            service_role_key,
            issuer,
        } = project;
        Self {
            runtime: RwLock::new(runtime),
            keys: RwLock::new(keys),
            store: Mutex::new(Store::default()),
            hasher,
            fault: RwLock::new(Fault::None),
            jwks_fetches: AtomicU64::new(0),
            anon_key,
            service_role_key,
            issuer,
            outbox,
            redirects,
            mails_sent: Mutex::new(Window::new(Instant::now())),
            limiter: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn fault(&self) -> Fault {
        *read(&self.fault)
    }

    pub(crate) fn runtime(&self) -> Runtime {
        read(&self.runtime).clone()
    }

    /// Counts a request to `route` from `ip` against its configured limit.
    pub(crate) fn check_rate_limit(&self, route: Limited, ip: IpAddr) -> Result<(), GoTrueError> {
        let runtime = self.runtime();
        let limit = match route {
            Limited::Token => runtime.token_rate_limit,
            Limited::Recover => runtime.recover_rate_limit,
        };
        let Some(limit) = limit else {
            return Ok(());
        };
        let now = Instant::now();
        let mut windows = lock(&self.limiter);
        if windows.len() > 10_000 {
            windows.retain(|_, w| now.duration_since(w.started) < limit.per);
        }
        if windows
            .entry((route, ip))
            .or_insert_with(|| Window::new(now))
            .admit(limit, now)
        {
            Ok(())
        } else {
            Err(GoTrueError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "over_request_rate_limit",
                "Request rate limit reached",
            ))
        }
    }

    /// A session answer for `session`, with a fresh access token.
    pub(super) fn session_json(
        &self,
        store: &Store,
        session: &Session,
        refresh_token: String,
        weak_password: Option<Value>,
    ) -> Result<Value, GoTrueError> {
        let user = store.user(&session.user_id).ok_or_else(unexpected)?;
        let ttl = self.runtime().access_token_ttl.as_secs();
        let now = now_unix();
        let expires_at = now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
        let claims = access_claims(&self.issuer, user, session, now, expires_at);
        let access_token = read(&self.keys)
            .sign(&Kid::Current, &claims)
            .map_err(|_| unexpected())?;
        let mut answer = json!({
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": ttl,
            "expires_at": expires_at,
            "refresh_token": refresh_token,
            "user": user.to_json(),
        });
        if let Some(weak) = weak_password {
            answer["weak_password"] = weak;
        }
        Ok(answer)
    }

    /// Signs `user_id` in: a new session and its answer.
    pub(crate) fn sign_in(
        &self,
        store: &mut Store,
        user_id: &str,
        method: AuthMethod,
        weak_password: Option<Value>,
    ) -> Result<Value, GoTrueError> {
        let now = OffsetDateTime::now_utc();
        let user = store.user_mut(user_id).ok_or_else(unexpected)?;
        user.last_sign_in_at = Some(now);
        let (session, refresh_token) = store.create_session(user_id, now.unix_timestamp(), method);
        self.session_json(store, &session, refresh_token, weak_password)
    }
}

/// The claims of an access token, as upstream's `AccessTokenClaims`.
pub(crate) fn access_claims(
    issuer: &str,
    user: &User,
    session: &Session,
    issued_at: i64,
    expires_at: i64,
) -> Value {
    json!({
        "iss": issuer,
        "sub": user.id,
        "aud": AUTHENTICATED,
        "exp": expires_at,
        "iat": issued_at,
        "email": user.email,
        "phone": "",
        "app_metadata": user.app_metadata,
        "user_metadata": user.user_metadata,
        "role": AUTHENTICATED,
        "aal": "aal1",
        "amr": [{"method": session.method.as_str(), "timestamp": session.authenticated_at}],
        "session_id": session.id,
        "is_anonymous": false,
    })
}

pub(crate) fn unexpected() -> GoTrueError {
    GoTrueError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "unexpected_failure",
        "Unexpected failure, please check server logs for more information",
    )
}
