//! The Supabase Auth API subset, under `/auth/v1`.
//!
//! Handlers follow upstream's code paths (supabase/auth, `internal/api`):
//! the same checks in the same order, the same status codes, `error_code`s
//! and messages.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use auth_kit::password::{PasswordHasher, Verification};
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::config::RateLimit;
use crate::errors::{GoTrueError, api_version};
use crate::keys::{KeyRing, Kid};
use crate::mail::Outbox;
use crate::net::{ConnInfo, Fault, apply_fault};
use crate::store::{
    AUTHENTICATED, AuthMethod, LogoutScope, OtpKind, RefreshFailure, Session, Store, User,
    merge_metadata, obfuscated_user,
};
use crate::verify::{self, Redirects};

/// Largest request body read (upstream's `limitRequestBody(1 << 20)`).
const MAX_BODY_BYTES: usize = 1 << 20;
/// bcrypt's limit, which upstream enforces for every password.
const MAX_PASSWORD_BYTES: usize = 72;

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
    fn session_json(
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

/// The whole API.
pub(crate) fn router(state: AppState) -> Router {
    let keyed = Router::new()
        .route("/health", get(health))
        .route("/settings", get(settings))
        .route("/signup", post(signup))
        .route("/token", post(token))
        .route("/recover", post(verify::recover))
        .route("/user", get(get_user).put(update_user))
        .route("/logout", post(logout))
        .route(
            "/admin/users/{user_id}",
            get(admin_get_user).put(admin_update_user),
        )
        .route_layer(from_fn_with_state(state.clone(), require_apikey));
    // Hosted Supabase serves the JWKS without an API key, and /verify too:
    // a link clicked in a mail carries no header.
    let open = Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/verify", get(verify::verify_link).post(verify::verify));
    Router::new()
        .nest("/auth/v1", keyed.merge(open))
        .fallback(not_found)
        .layer(from_fn(api_version))
        .layer(from_fn_with_state(state.clone(), apply_fault))
        .with_state(state)
}

/// What chi (upstream's router) answers for an unknown path.
async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

fn equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The API gateway's check: every call carries the project's `apikey`
/// (anon or service role). Upstream's gateway answers in its own shape;
/// the stub uses GoTrue's shapes with codes `no_api_key` / `invalid_api_key`.
async fn require_apikey(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let key = request
        .headers()
        .get("apikey")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    match key {
        None => GoTrueError::new(
            StatusCode::UNAUTHORIZED,
            "no_api_key",
            "No API key found in request",
        )
        .into_response(),
        Some(key) if equal(key, &state.anon_key) || equal(key, &state.service_role_key) => {
            next.run(request).await
        }
        Some(_) => GoTrueError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "Invalid API key",
        )
        .into_response(),
    }
}

/// Reads a JSON body as upstream's `retrieveRequestParams` does (whatever
/// the Content-Type).
pub(crate) async fn read_params<T: DeserializeOwned>(body: Body) -> Result<T, GoTrueError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            GoTrueError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_entity_too_large",
                format!("Request body too large (max {MAX_BODY_BYTES} bytes)"),
            )
        })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        GoTrueError::bad_request(
            "bad_json",
            format!("Could not parse request body as JSON: {e}"),
        )
    })
}

/// Go leaves a field at its zero value for JSON `null`; so does this.
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

pub(crate) fn query_param(uri: &Uri, name: &str) -> Option<String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

async fn health() -> Json<Value> {
    Json(json!({
        "version": concat!("gotrue-stub-", env!("CARGO_PKG_VERSION")),
        "name": "GoTrue",
        "description": "gotrue-stub: an offline development stand-in for Supabase Auth (GoTrue). Not Supabase.",
    }))
}

async fn settings(State(state): State<AppState>) -> Json<Value> {
    let runtime = state.runtime();
    let mut external = Map::new();
    for provider in [
        "anonymous_users",
        "apple",
        "azure",
        "bitbucket",
        "discord",
        "facebook",
        "snapchat",
        "figma",
        "fly",
        "github",
        "gitlab",
        "google",
        "keycloak",
        "kakao",
        "linkedin",
        "linkedin_oidc",
        "notion",
        "spotify",
        "slack",
        "slack_oidc",
        "workos",
        "twitch",
        "twitter",
        "phone",
        "zoom",
    ] {
        external.insert(provider.to_owned(), Value::Bool(false));
    }
    external.insert("email".to_owned(), Value::Bool(true));
    Json(json!({
        "external": external,
        "disable_signup": runtime.disable_signup,
        "mailer_autoconfirm": runtime.autoconfirm,
        "phone_autoconfirm": false,
        "sms_provider": "",
        "saml_enabled": false,
        "saml_private_key_next_configured": false,
        "passkeys_enabled": false,
    }))
}

async fn jwks(State(state): State<AppState>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let body = read(&state.keys).jwks();
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=600"),
    );
    response
}

/// Upstream's `checkPasswordStrength` with its default policy (a minimum
/// length; no character classes, no HaveIBeenPwned).
fn check_password_strength(password: &str, min_length: usize) -> Result<(), GoTrueError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            format!("Password cannot be longer than {MAX_PASSWORD_BYTES} characters"),
        ));
    }
    if password.len() < min_length {
        return Err(GoTrueError::weak_password(
            format!("Password should be at least {min_length} characters."),
            vec!["length"],
        ));
    }
    Ok(())
}

/// The `weak_password` member of a sign-in answer, when the password no
/// longer meets the policy.
fn weak_password_notice(password: &str, min_length: usize) -> Option<Value> {
    (password.len() < min_length).then(|| {
        json!({
            "message": format!("Password should be at least {min_length} characters."),
            "reasons": ["length"],
        })
    })
}

/// Upstream's `validateEmail`: required, at most 255 bytes, a valid
/// address; stored lower-cased.
pub(crate) fn validate_email(email: &str) -> Result<String, GoTrueError> {
    if email.is_empty() {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "An email address is required",
        ));
    }
    if email.len() > 255 {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "An email address is too long",
        ));
    }
    if !email_address::EmailAddress::is_valid(email) {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "Unable to validate email address: invalid format",
        ));
    }
    Ok(email.to_lowercase())
}

pub(crate) fn password_error(e: auth_kit::password::PasswordError) -> GoTrueError {
    tracing::warn!(error = %e, "password hashing unavailable");
    unexpected()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SignupParams {
    #[serde(deserialize_with = "nullable")]
    email: String,
    #[serde(deserialize_with = "nullable")]
    phone: String,
    #[serde(deserialize_with = "nullable")]
    password: String,
    data: Option<Map<String, Value>>,
}

async fn signup(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, GoTrueError> {
    let runtime = state.runtime();
    let redirect_to = state.redirects.target(request.headers(), request.uri());
    if runtime.disable_signup {
        return Err(GoTrueError::unprocessable(
            "signup_disabled",
            "Signups not allowed for this instance",
        ));
    }
    let params: SignupParams = read_params(request.into_body()).await?;
    if params.email.is_empty() && params.phone.is_empty() {
        return Err(GoTrueError::unprocessable(
            "anonymous_provider_disabled",
            "Anonymous sign-ins are disabled",
        ));
    }
    if params.password.is_empty() {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "Signup requires a valid password",
        ));
    }
    check_password_strength(&params.password, runtime.password_min_length)?;
    if !params.email.is_empty() && !params.phone.is_empty() {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "Only an email address or phone number should be provided on signup.",
        ));
    }
    if params.email.is_empty() {
        return Err(GoTrueError::bad_request(
            "phone_provider_disabled",
            "Phone signups are disabled",
        ));
    }
    let email = validate_email(&params.email)?;
    let data = params.data.unwrap_or_default();

    let known = lock(&state.store).user_by_email(&email).is_some();
    if known {
        return repeated_signup(&state, &runtime, &email, data, &redirect_to).await;
    }
    // Hash outside the lock: it takes tens of milliseconds.
    let hash = state
        .hasher
        .hash(&params.password)
        .await
        .map_err(password_error)?;
    let id = {
        let mut store = lock(&state.store);
        if store.user_by_email(&email).is_some() {
            None
        } else {
            let mut user = User::new(email.clone(), hash, data.clone());
            let id = user.id.clone();
            if runtime.autoconfirm {
                user.email_confirmed_at = Some(OffsetDateTime::now_utc());
                store.insert_user(user);
                return state
                    .sign_in(&mut store, &id, AuthMethod::Password, None)
                    .map(Json);
            }
            store.insert_user(user);
            Some(id)
        }
    };
    let Some(id) = id else {
        return repeated_signup(&state, &runtime, &email, data, &redirect_to).await;
    };
    // Upstream creates the user and sends the mail in one transaction: a
    // mail that cannot be sent undoes the signup.
    if let Err(e) = verify::send_mail(&state, &id, OtpKind::Confirmation, &redirect_to).await {
        lock(&state.store).remove_user(&id);
        return Err(e);
    }
    let store = lock(&state.store);
    let user = store.user(&id).ok_or_else(unexpected)?;
    Ok(Json(user.to_json()))
}

/// A signup for an address that is already registered.
async fn repeated_signup(
    state: &Shared,
    runtime: &Runtime,
    email: &str,
    data: Map<String, Value>,
    redirect_to: &str,
) -> Result<Json<Value>, GoTrueError> {
    let user_id = match answer_repeated_signup(state, runtime, email, data)? {
        RepeatedSignup::Answer(answer) => return Ok(Json(answer)),
        RepeatedSignup::Resend(user_id) => user_id,
    };
    verify::send_mail(state, &user_id, OtpKind::Confirmation, redirect_to).await?;
    let store = lock(&state.store);
    let user = store.user(&user_id).ok_or_else(unexpected)?;
    Ok(Json(user.to_json()))
}

/// What a repeated signup comes to.
enum RepeatedSignup {
    Answer(Value),
    /// Still unconfirmed: a new confirmation mail (its token voids the
    /// previous one), within the mail limits.
    Resend(String),
}

fn answer_repeated_signup(
    state: &Shared,
    runtime: &Runtime,
    email: &str,
    data: Map<String, Value>,
) -> Result<RepeatedSignup, GoTrueError> {
    let mut store = lock(&state.store);
    let user = store.user_by_email(email).cloned().ok_or_else(unexpected)?;
    let now = OffsetDateTime::now_utc();
    match (user.is_confirmed(), runtime.autoconfirm) {
        (true, true) => Err(GoTrueError::unprocessable(
            "user_already_exists",
            "User already registered",
        )),
        // Confirmation on: an answer that does not reveal the account.
        (true, false) => Ok(RepeatedSignup::Answer(obfuscated_user(email, data))),
        // Upstream confirms the existing (unconfirmed) user and signs in
        // whoever asked: the password of this request is not checked.
        (false, true) => {
            if let Some(u) = store.user_mut(&user.id) {
                u.email_confirmed_at = Some(now);
            }
            store.clear_one_time_tokens(&user.id);
            state
                .sign_in(&mut store, &user.id, AuthMethod::Password, None)
                .map(RepeatedSignup::Answer)
        }
        (false, false) => Ok(RepeatedSignup::Resend(user.id)),
    }
}

async fn token(
    State(state): State<AppState>,
    ConnectInfo(conn): ConnectInfo<ConnInfo>,
    request: Request,
) -> Result<Json<Value>, GoTrueError> {
    let grant_type = query_param(request.uri(), "grant_type");
    let grant_type = match grant_type.as_deref() {
        Some(g @ ("password" | "refresh_token")) => g.to_owned(),
        _ => {
            return Err(GoTrueError::bad_request(
                "invalid_credentials",
                "unsupported_grant_type",
            ));
        }
    };
    state.check_rate_limit(Limited::Token, conn.peer.ip())?;
    if grant_type == "password" {
        password_grant(&state, read_params(request.into_body()).await?).await
    } else {
        refresh_grant(&state, read_params(request.into_body()).await?)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PasswordGrant {
    #[serde(deserialize_with = "nullable")]
    email: String,
    #[serde(deserialize_with = "nullable")]
    phone: String,
    #[serde(deserialize_with = "nullable")]
    password: String,
}

fn invalid_credentials() -> GoTrueError {
    GoTrueError::bad_request("invalid_credentials", "Invalid login credentials")
}

async fn password_grant(state: &Shared, params: PasswordGrant) -> Result<Json<Value>, GoTrueError> {
    if !params.email.is_empty() && !params.phone.is_empty() {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "Only an email address or phone number should be provided on login.",
        ));
    }
    if params.email.is_empty() {
        return Err(if params.phone.is_empty() {
            GoTrueError::bad_request("validation_failed", "missing email or phone")
        } else {
            GoTrueError::unprocessable("phone_provider_disabled", "Phone logins are disabled")
        });
    }
    let stored = lock(&state.store)
        .user_by_email(&params.email)
        .map(|u| (u.id.clone(), u.password_hash.clone()));
    // Unknown addresses cost a verification too.
    let verification = state
        .hasher
        .verify(&params.password, stored.as_ref().map(|(_, h)| h.as_str()))
        .await
        .map_err(password_error)?;
    let (Some((user_id, _)), Verification::Match { .. }) = (stored, verification) else {
        return Err(invalid_credentials());
    };
    let min_length = state.runtime().password_min_length;
    let mut store = lock(&state.store);
    let confirmed = store.user(&user_id).is_some_and(User::is_confirmed);
    if !confirmed {
        return Err(GoTrueError::bad_request(
            "email_not_confirmed",
            "Email not confirmed",
        ));
    }
    state
        .sign_in(
            &mut store,
            &user_id,
            AuthMethod::Password,
            weak_password_notice(&params.password, min_length),
        )
        .map(Json)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RefreshGrant {
    #[serde(deserialize_with = "nullable")]
    refresh_token: String,
}

fn refresh_grant(state: &Shared, params: RefreshGrant) -> Result<Json<Value>, GoTrueError> {
    if params.refresh_token.len() < 12 {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "Refresh token is not valid",
        ));
    }
    let mut store = lock(&state.store);
    match store.refresh(&params.refresh_token) {
        Ok((session, next)) => state.session_json(&store, &session, next, None).map(Json),
        Err(RefreshFailure::NotFound) => Err(GoTrueError::bad_request(
            "refresh_token_not_found",
            "Invalid Refresh Token: Refresh Token Not Found",
        )),
        Err(RefreshFailure::AlreadyUsed) => Err(GoTrueError::bad_request(
            "refresh_token_already_used",
            "Invalid Refresh Token: Already Used",
        )),
    }
}

/// Upstream's `bearerRegexp`: `Bearer` or `bearer`, one space, the token.
fn bearer(parts: &Parts) -> Result<&str, GoTrueError> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .filter(|t| !t.is_empty() && !t.contains(char::is_whitespace))
        .ok_or_else(|| {
            GoTrueError::new(
                StatusCode::UNAUTHORIZED,
                "no_authorization",
                "This endpoint requires a valid Bearer token",
            )
        })
}

fn bad_jwt(message: impl Into<String>) -> GoTrueError {
    GoTrueError::forbidden("bad_jwt", message)
}

/// The user and session of a request's bearer token (upstream's
/// `requireAuthentication`).
#[derive(Debug, Clone)]
struct Caller {
    user_id: String,
    session_id: Option<String>,
    audience: Option<String>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = GoTrueError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GoTrueError> {
        let token = bearer(parts)?;
        let claims = read(&state.keys).verify(token).map_err(|reason| {
            bad_jwt(format!(
                "invalid JWT: unable to parse or verify signature, {reason}"
            ))
        })?;
        let sub = claims["sub"].as_str().unwrap_or_default();
        if sub.is_empty() {
            return Err(bad_jwt("invalid claim: missing sub claim"));
        }
        if !is_uuid(sub) {
            return Err(GoTrueError::bad_request(
                "bad_jwt",
                "invalid claim: sub claim must be a UUID",
            ));
        }
        let store = lock(&state.store);
        if store.user(sub).is_none() {
            return Err(GoTrueError::forbidden(
                "user_not_found",
                "User from sub claim in JWT does not exist",
            ));
        }
        let session_id = claims["session_id"]
            .as_str()
            .filter(|s| !s.is_empty() && *s != "00000000-0000-0000-0000-000000000000");
        if let Some(session_id) = session_id {
            if !is_uuid(session_id) {
                return Err(bad_jwt("invalid claim: session_id claim must be a UUID"));
            }
            if store.session(session_id).is_none() {
                return Err(GoTrueError::forbidden(
                    "session_not_found",
                    "Session from session_id claim in JWT does not exist",
                ));
            }
        }
        let audience = match &claims["aud"] {
            Value::String(aud) => Some(aud.clone()),
            Value::Array(list) => list.first().and_then(Value::as_str).map(str::to_owned),
            _ => None,
        };
        Ok(Self {
            user_id: sub.to_owned(),
            session_id: session_id.map(str::to_owned),
            audience,
        })
    }
}

async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, GoTrueError> {
    if caller.audience.as_deref() != Some(AUTHENTICATED) {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "Token audience doesn't match request audience",
        ));
    }
    let store = lock(&state.store);
    let user = store.user(&caller.user_id).ok_or_else(unexpected)?;
    Ok(Json(user.to_json()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UserUpdate {
    #[serde(deserialize_with = "nullable")]
    email: String,
    #[serde(deserialize_with = "nullable")]
    phone: String,
    password: Option<String>,
    data: Option<Map<String, Value>>,
    app_metadata: Option<Map<String, Value>>,
}

/// `PUT /user` (upstream's `UserUpdate`), for `password` and `data`: a new
/// password ends every other session of the user and voids their mailed
/// tokens; the caller's session stays.
async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    request: Request,
) -> Result<Json<Value>, GoTrueError> {
    let params: UserUpdate = read_params(request.into_body()).await?;
    let runtime = state.runtime();
    if !params.email.is_empty() {
        validate_email(&params.email)?;
    }
    if let Some(password) = &params.password {
        check_password_strength(password, runtime.password_min_length)?;
    }
    if params.app_metadata.is_some() {
        return Err(GoTrueError::forbidden(
            "not_admin",
            "Updating app_metadata requires admin privileges",
        ));
    }
    let (email, current_hash) = {
        let store = lock(&state.store);
        let user = store.user(&caller.user_id).ok_or_else(unexpected)?;
        (user.email.clone(), user.password_hash.clone())
    };
    if (!params.email.is_empty() && !params.email.eq_ignore_ascii_case(&email))
        || !params.phone.is_empty()
    {
        return Err(GoTrueError::unprocessable(
            "validation_failed",
            "gotrue-stub cannot change a user's email address or phone number",
        ));
    }
    let new_hash = match params.password.as_deref() {
        Some(password) => {
            let same = state
                .hasher
                .verify(password, Some(&current_hash))
                .await
                .map_err(password_error)?;
            if matches!(same, Verification::Match { .. }) {
                return Err(GoTrueError::unprocessable(
                    "same_password",
                    "New password should be different from the old password.",
                ));
            }
            Some(state.hasher.hash(password).await.map_err(password_error)?)
        }
        None => None,
    };
    let mut store = lock(&state.store);
    let user = store.user_mut(&caller.user_id).ok_or_else(unexpected)?;
    if let Some(patch) = params.data {
        merge_metadata(&mut user.user_metadata, patch);
    }
    user.updated_at = OffsetDateTime::now_utc();
    if let Some(hash) = new_hash {
        // Upstream's UpdatePassword: whoever held the old password, or a
        // token mailed before, no longer gets in.
        user.password_hash = hash;
        user.confirmation_sent_at = None;
        user.recovery_sent_at = None;
        store.clear_one_time_tokens(&caller.user_id);
        let scope = if caller.session_id.is_some() {
            LogoutScope::Others
        } else {
            LogoutScope::Global
        };
        store.logout(&caller.user_id, caller.session_id.as_deref(), scope);
    }
    let user = store.user(&caller.user_id).ok_or_else(unexpected)?;
    Ok(Json(user.to_json()))
}

async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<StatusCode, GoTrueError> {
    let scope = match query_param(&uri, "scope").as_deref() {
        None | Some("" | "global") => LogoutScope::Global,
        Some("local") => LogoutScope::Local,
        Some("others") => LogoutScope::Others,
        Some(other) => {
            return Err(GoTrueError::bad_request(
                "validation_failed",
                format!("Unsupported logout scope {other:?}"),
            ));
        }
    };
    lock(&state.store).logout(&caller.user_id, caller.session_id.as_deref(), scope);
    Ok(StatusCode::NO_CONTENT)
}

/// A request made with the service role key (upstream's
/// `requireAdminCredentials`).
#[derive(Debug, Clone, Copy)]
struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = GoTrueError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GoTrueError> {
        let token = bearer(parts)?;
        if equal(token, &state.service_role_key) {
            return Ok(Admin);
        }
        let claims = read(&state.keys).verify(token).map_err(|reason| {
            bad_jwt(format!(
                "invalid JWT: unable to parse or verify signature, {reason}"
            ))
        })?;
        if claims["role"] == "service_role" {
            Ok(Admin)
        } else {
            Err(GoTrueError::forbidden("not_admin", "User not allowed"))
        }
    }
}

/// Upstream's `loadUser`.
fn load_user<'a>(store: &'a mut Store, user_id: &str) -> Result<&'a mut User, GoTrueError> {
    if !is_uuid(user_id) {
        return Err(GoTrueError::new(
            StatusCode::NOT_FOUND,
            "validation_failed",
            "user_id must be an UUID",
        ));
    }
    store
        .user_mut(user_id)
        .ok_or_else(|| GoTrueError::new(StatusCode::NOT_FOUND, "user_not_found", "User not found"))
}

async fn admin_get_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, GoTrueError> {
    let mut store = lock(&state.store);
    Ok(Json(load_user(&mut store, &user_id)?.to_json()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AdminUpdate {
    app_metadata: Option<Map<String, Value>>,
    user_metadata: Option<Map<String, Value>>,
}

async fn admin_update_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(user_id): Path<String>,
    request: Request,
) -> Result<Json<Value>, GoTrueError> {
    load_user(&mut lock(&state.store), &user_id)?;
    let params: AdminUpdate = read_params(request.into_body()).await?;
    let mut store = lock(&state.store);
    let user = load_user(&mut store, &user_id)?;
    if let Some(patch) = params.app_metadata {
        merge_metadata(&mut user.app_metadata, patch);
    }
    if let Some(patch) = params.user_metadata {
        merge_metadata(&mut user.user_metadata, patch);
    }
    user.updated_at = OffsetDateTime::now_utc();
    Ok(Json(user.to_json()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        assert!(is_uuid("123e4567-e89b-42d3-a456-426614174000"));
        assert!(!is_uuid("123e4567e89b42d3a456426614174000"));
        assert!(!is_uuid("123e4567-e89b-42d3-a456-42661417400g"));
    }

    #[test]
    fn emails() {
        assert_eq!(
            validate_email("Ann@Example.COM").ok().as_deref(),
            Some("ann@example.com")
        );
        assert!(validate_email("not-an-email").is_err());
        assert!(validate_email("").is_err());
    }
}
