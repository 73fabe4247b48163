//! Shared by the xtask integration tests: running the real binary, and small
//! HTTP servers (a Supabase health endpoint, a hand-written service that
//! follows the HTTP contract of docs/contract.md, with optional deliberate flaws).
#![allow(dead_code)] // each test file uses a different part

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

/// The xtask binary with a clean environment (only PATH), so no variable
/// of the developer's shell leaks into the configuration under test.
pub fn xtask(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args(args).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
}

/// Runs it; returns the output and how long it took.
pub fn run(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = xtask(args).output().unwrap();
    (output, started.elapsed())
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts exit status 1 with exactly one `error: ...` line on stderr
/// containing `fragment`.
pub fn assert_one_line_error(output: &Output, fragment: &str) {
    let err = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}\nstderr: {err}",
        stdout(output)
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(fragment),
        "{fragment:?} in {err}"
    );
}

#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Serves `router` on a loopback port from a thread of its own (it lives as
/// long as the test process); returns its base URL.
pub fn serve(router: Router) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
    });
    format!("http://{addr}")
}

/// A Supabase Auth health endpoint, as gotrue answers it.
pub fn supabase_health_stub() -> String {
    serve(Router::new().route(
        "/auth/v1/health",
        get(|| async { Json(json!({"version": "stub", "name": "GoTrue"})) }),
    ))
}

/// Deliberate departures from the HTTP contract (docs/contract.md) for [`mini_service`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Flaws {
    /// Verifies signatures but not `exp`.
    pub accepts_expired_tokens: bool,
    /// Answers 401 without a `WWW-Authenticate` header.
    pub no_challenge: bool,
    /// Grants any known scope asked for, held or not.
    pub grants_unheld_scopes: bool,
    /// Answers a second use of a just-rotated refresh token with another
    /// new pair: two live successors.
    pub second_successor: bool,
    /// Has no reuse window: a second use of a refresh token always revokes
    /// its login. Allowed by the contract (the probe says SKIP).
    pub no_reuse_window: bool,
    /// Answers forgot-password differently for an address nobody has.
    pub reveals_unknown_emails: bool,
    /// Has no forgot-password route at all.
    pub no_forgot_password: bool,
    /// Lets its admin administer with a token that lacks the scope `admin`.
    pub admin_ignores_scope: bool,
}

/// The mini service's admin, who holds every scope.
pub const MINI_ADMIN: &str = "root";
/// The password of [`MINI_ADMIN`].
pub const MINI_ADMIN_PASSWORD: &str = "root-password-of-the-mini-service";

/// The scopes a signed-up user holds, and every scope there is.
const HELD: [&str; 3] = ["me", "items", "items:write"];
const KNOWN: [&str; 4] = ["me", "items", "items:write", "admin"];
const NAME: &str = "mini";

/// A small service written from the contract alone (not auth-kit): HS256
/// tokens signed with `secret`, signup, the token endpoint with rotation, a
/// reuse window and reuse detection, logout, two scoped routes. With `flaws`, it breaks
/// exactly those rules.
pub fn mini_service(secret: &str, flaws: Flaws) -> String {
    auth_kit::token::install_crypto_provider();
    let state = Mini {
        secret: secret.to_owned(),
        flaws,
        inner: Arc::new(Mutex::new(Inner::default())),
    };
    {
        let mut inner = state.inner.lock().unwrap();
        let id = inner.next();
        inner
            .users
            .insert(MINI_ADMIN.to_owned(), (id, MINI_ADMIN_PASSWORD.to_owned()));
    }
    let router = Router::new()
        .route("/", get(|| async { Json(json!({"service": NAME})) }))
        .route("/auth/signup", post(signup))
        .route("/token", post(token))
        .route("/auth/logout", post(logout))
        .route("/users/me", get(me))
        .route("/users/me/items", get(items))
        .route("/users", get(users));
    let router = if flaws.no_forgot_password {
        router
    } else {
        router.route("/auth/forgot-password", post(forgot_password))
    };
    serve(router.with_state(state))
}

#[derive(Clone)]
struct Mini {
    secret: String,
    flaws: Flaws,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// username -> (id, password)
    users: HashMap<String, (u64, String)>,
    /// user id -> email
    emails: HashMap<u64, String>,
    /// refresh token -> (login id, user id, scope, spent)
    refresh: HashMap<String, (String, u64, String, bool)>,
    /// rotated refresh token -> its successor
    successors: HashMap<String, String>,
    revoked_logins: Vec<String>,
    counter: u64,
}

impl Inner {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn error(status: StatusCode, code: &str, challenge: Option<String>) -> Response {
    let body = Json(json!({"error": code, "error_description": code.replace('_', " ")}));
    match challenge {
        Some(c) => (status, [(header::WWW_AUTHENTICATE, c)], body).into_response(),
        None => (status, body).into_response(),
    }
}

async fn signup(State(s): State<Mini>, Json(body): Json<Value>) -> Response {
    let (Some(username), Some(password)) = (body["username"].as_str(), body["password"].as_str())
    else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", None);
    };
    let mut inner = s.inner.lock().unwrap();
    let id = inner.next();
    inner
        .users
        .insert(username.to_owned(), (id, password.to_owned()));
    if let Some(email) = body["email"].as_str() {
        inner.emails.insert(id, email.to_owned());
    }
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "username": username})),
    )
        .into_response()
}

impl Mini {
    /// A new pair; with `successor`, that refresh token instead of a new one.
    fn issue(
        &self,
        inner: &mut Inner,
        user: u64,
        scope: &str,
        login: &str,
        successor: Option<String>,
    ) -> (Response, String) {
        let n = inner.next();
        let refresh = successor.unwrap_or_else(|| {
            let refresh = format!("refresh-{n}-{}", auth_kit::random::secret_hex());
            inner.refresh.insert(
                refresh.clone(),
                (login.to_owned(), user, scope.to_owned(), false),
            );
            refresh
        });
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".to_owned());
        let now = now();
        let claims = json!({"sub": user.to_string(), "iss": NAME, "aud": NAME, "iat": now, "exp": now + 900,
            "jti": format!("jti-{n}"), "scope": scope, "sid": login});
        let access = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(self.secret.as_bytes()).unwrap(),
        )
        .unwrap();
        let body = json!({"access_token": access, "token_type": "bearer", "expires_in": 900, "refresh_token": refresh, "scope": scope});
        (
            ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response(),
            refresh,
        )
    }

    /// The caller's claims, or the contract's 401/403 (bent by the flaws).
    #[allow(clippy::result_large_err)] // axum's own handler shape
    fn authorize(&self, headers: &HeaderMap, needed: Option<&str>) -> Result<Value, Response> {
        let challenge = |c: &str| {
            if self.flaws.no_challenge {
                None
            } else {
                Some(c.to_owned())
            }
        };
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                challenge("Bearer"),
            ));
        };
        let invalid = || {
            error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                challenge("Bearer error=\"invalid_token\""),
            )
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[NAME]);
        validation.set_audience(&[NAME]);
        validation.validate_exp = !self.flaws.accepts_expired_tokens;
        let key = DecodingKey::from_secret(self.secret.as_bytes()).unwrap();
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|_| invalid())?
            .claims;
        let login = claims["sid"].as_str().unwrap_or_default();
        if self
            .inner
            .lock()
            .unwrap()
            .revoked_logins
            .iter()
            .any(|l| l == login)
        {
            return Err(invalid());
        }
        if let Some(needed) = needed
            && !claims["scope"]
                .as_str()
                .unwrap_or_default()
                .split(' ')
                .any(|s| s == needed)
        {
            let c = format!("Bearer error=\"insufficient_scope\", scope=\"{needed}\"");
            return Err(error(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                challenge(&c),
            ));
        }
        Ok(claims)
    }
}

async fn token(State(s): State<Mini>, Form(form): Form<HashMap<String, String>>) -> Response {
    let bad = |code: &str| error(StatusCode::BAD_REQUEST, code, None);
    let mut inner = s.inner.lock().unwrap();
    match form.get("grant_type").map(String::as_str) {
        Some("password") => {
            let (Some(username), Some(password)) = (form.get("username"), form.get("password"))
            else {
                return bad("invalid_request");
            };
            let Some((id, _)) = inner
                .users
                .get(username)
                .filter(|(_, p)| p == password)
                .cloned()
            else {
                return bad("invalid_grant");
            };
            let requested: Vec<&str> = form
                .get("scope")
                .map(|s| s.split_whitespace().collect())
                .unwrap_or_default();
            if requested.iter().any(|r| !KNOWN.contains(r)) {
                return bad("invalid_scope");
            }
            let held: &[&str] = if username == MINI_ADMIN {
                &KNOWN
            } else {
                &HELD
            };
            if !s.flaws.grants_unheld_scopes && requested.iter().any(|r| !held.contains(r)) {
                return bad("invalid_scope");
            }
            let scope = if requested.is_empty() {
                held.join(" ")
            } else {
                requested.join(" ")
            };
            let login = format!("login-{}", inner.next());
            s.issue(&mut inner, id, &scope, &login, None).0
        }
        Some("refresh_token") => {
            let Some(presented) = form.get("refresh_token") else {
                return bad("invalid_request");
            };
            let Some((login, user, scope, spent)) = inner.refresh.get(presented).cloned() else {
                return bad("invalid_grant");
            };
            if inner.revoked_logins.contains(&login) {
                return bad("invalid_grant");
            }
            if spent {
                if s.flaws.second_successor {
                    return s.issue(&mut inner, user, &scope, &login, None).0;
                }
                // The reuse window (no clock here: the probe's second use
                // follows at once), while the successor is unspent.
                let successor = inner.successors.get(presented).cloned();
                let unspent = successor
                    .as_ref()
                    .and_then(|n| inner.refresh.get(n))
                    .is_some_and(|entry| !entry.3);
                if unspent && !s.flaws.no_reuse_window {
                    return s.issue(&mut inner, user, &scope, &login, successor).0;
                }
                // Reuse: the whole login goes.
                inner.revoked_logins.push(login);
                return bad("invalid_grant");
            }
            if let Some(entry) = inner.refresh.get_mut(presented) {
                entry.3 = true;
            }
            let (answer, successor) = s.issue(&mut inner, user, &scope, &login, None);
            inner.successors.insert(presented.to_owned(), successor);
            answer
        }
        _ => bad("unsupported_grant_type"),
    }
}

async fn logout(State(s): State<Mini>, headers: HeaderMap) -> Response {
    match s.authorize(&headers, None) {
        Ok(claims) => {
            let login = claims["sid"].as_str().unwrap_or_default().to_owned();
            s.inner.lock().unwrap().revoked_logins.push(login);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}

async fn me(State(s): State<Mini>, headers: HeaderMap) -> Response {
    match s.authorize(&headers, Some("me")) {
        Ok(claims) => {
            let id: u64 = claims["sub"].as_str().unwrap().parse().unwrap();
            let inner = s.inner.lock().unwrap();
            let name = inner
                .users
                .iter()
                .find(|(_, (uid, _))| *uid == id)
                .map(|(n, _)| n.clone());
            Json(json!({"id": id, "username": name, "email": inner.emails.get(&id)}))
                .into_response()
        }
        Err(r) => r,
    }
}

async fn items(State(s): State<Mini>, headers: HeaderMap) -> Response {
    match s.authorize(&headers, Some("items")) {
        Ok(_) => Json(json!([])).into_response(),
        Err(r) => r,
    }
}

async fn forgot_password(State(s): State<Mini>, Json(body): Json<Value>) -> Response {
    let email = body["email"].as_str().unwrap_or_default();
    let known = s.inner.lock().unwrap().emails.values().any(|e| e == email);
    if s.flaws.reveals_unknown_emails && !known {
        return error(StatusCode::NOT_FOUND, "unknown_email", None);
    }
    (StatusCode::ACCEPTED, Json(json!({"status": "accepted"}))).into_response()
}

/// The admin route: role first (403 `forbidden`), then the scope `admin`.
async fn users(State(s): State<Mini>, headers: HeaderMap) -> Response {
    let claims = match s.authorize(&headers, None) {
        Ok(claims) => claims,
        Err(r) => return r,
    };
    let admin_id = s.inner.lock().unwrap().users[MINI_ADMIN].0;
    if claims["sub"].as_str() != Some(admin_id.to_string().as_str()) {
        return error(StatusCode::FORBIDDEN, "forbidden", None);
    }
    if !s.flaws.admin_ignores_scope
        && let Err(r) = s.authorize(&headers, Some("admin"))
    {
        return r;
    }
    Json(json!([{"id": admin_id, "username": MINI_ADMIN}])).into_response()
}
