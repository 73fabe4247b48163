//! The curl session an example prints at start-up, kept as data: each
//! example lists its [`Call`]s, [`session`] renders them as commands, and
//! the example's tests [`replay`] the very same calls against a running
//! server, so every printed command and the answer it claims stay true.
//!
//! This is demo tooling for `examples/`, not part of any service: the auth
//! machinery is in auth-kit.
//!
//! ```
//! use demo_walkthrough::{Body, DemoUser, call, login};
//!
//! const ANN: DemoUser = DemoUser { username: "ann", password: "demo-password", role: "user" };
//! let calls = [
//!     login(ANN, "TOKEN", "Log in"),
//!     call("GET", "/users/me", 200).bearer("TOKEN").shows("Who am I?"),
//!     call("POST", "/items", 401).body(Body::Json(r#"{"title":"x"}"#)).error("unauthorized").shows("No token"),
//! ];
//! let text = demo_walkthrough::session("http://127.0.0.1:8000", &calls);
//! assert!(text.contains("# Who am I? -> 200\ncurl -i http://127.0.0.1:8000/users/me -H \"Authorization: Bearer $TOKEN\""));
//! ```

use std::fmt::Write as _;

use auth_kit::password::PasswordHasher;
use auth_kit::store::{NewUser, Store};
use tempfile::TempDir;

#[cfg(feature = "replay")]
mod replay;
mod serve;

#[cfg(feature = "replay")]
pub use replay::{check_routes_exist, replay};
#[cfg(feature = "replay")]
pub use serve::serve_on_loopback;
pub use serve::{listen_addr, serve};

/// A demo account created at start, its password printed for the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoUser {
    /// The username.
    pub username: &'static str,
    /// A password for this demo only.
    pub password: &'static str,
    /// The role.
    pub role: &'static str,
}

/// A demo's database: a SQLite file in a new temporary directory, with the
/// kit's tables and the demo's users. Dropping it deletes the directory
/// with the file; [`close`](Self::close) closes the store first.
#[derive(Debug)]
pub struct DemoDatabase {
    store: Store,
    _dir: TempDir,
}

impl DemoDatabase {
    /// Creates the database and `users` in it (hashed by `hasher`).
    ///
    /// # Panics
    /// When the directory, the database or a user cannot be created
    /// (start-up only).
    pub async fn create(hasher: &PasswordHasher, users: &[DemoUser]) -> Self {
        let dir = tempfile::tempdir().expect("could not create a temporary directory");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("demo.db").display());
        let store = Store::connect(&url)
            .await
            .expect("could not create the demo database");
        create_users(&store, hasher, users).await;
        Self { store, _dir: dir }
    }

    /// The store on it.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Closes the store, then removes the directory.
    pub async fn close(self) {
        self.store.close().await;
    }
}

/// Creates `users` in `store`.
///
/// # Panics
/// When a user cannot be created (start-up only: the database is fresh).
async fn create_users(store: &Store, hasher: &PasswordHasher, users: &[DemoUser]) {
    for demo in users {
        let password_hash = hasher
            .hash(demo.password)
            .await
            .expect("the password hashing pool is running");
        let new = NewUser {
            username: demo.username,
            email: None,
            full_name: None,
            password_hash: &password_hash,
            role: demo.role,
        };
        store
            .create_user(&new)
            .await
            .expect("could not create a demo user");
    }
}

/// One printed command and the answer it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// What the command shows (printed above it).
    pub shows: &'static str,
    /// The HTTP method.
    pub method: &'static str,
    /// The path; it may name shell variables saved by earlier calls.
    pub path: &'static str,
    /// The shell variable holding the bearer token sent, if any.
    pub bearer: Option<&'static str>,
    /// The request body.
    pub body: Body,
    /// The status the server answers.
    pub status: u16,
    /// The `error` code of a failure's body.
    pub error: Option<&'static str>,
    /// Saves a field of the JSON answer in a shell variable:
    /// `(variable, field)`.
    pub saves: Option<(&'static str, &'static str)>,
}

/// A request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body.
    Empty,
    /// An OAuth2 password grant for a demo user.
    PasswordGrant(DemoUser),
    /// An OAuth2 password grant for a demo user, asking for these scopes
    /// (space-separated).
    ScopedPasswordGrant(DemoUser, &'static str),
    /// A form (it may name shell variables).
    Form(&'static str),
    /// JSON.
    Json(&'static str),
}

impl Body {
    /// The `Content-Type` and the text sent, if there is a body.
    pub fn content(&self) -> Option<(&'static str, String)> {
        const FORM: &str = "application/x-www-form-urlencoded";
        match self {
            Body::Empty => None,
            Body::PasswordGrant(user) => Some((
                FORM,
                format!(
                    "grant_type=password&username={}&password={}",
                    user.username, user.password
                ),
            )),
            Body::ScopedPasswordGrant(user, scope) => Some((
                FORM,
                format!(
                    "grant_type=password&username={}&password={}&scope={}",
                    user.username,
                    user.password,
                    scope.replace(' ', "+")
                ),
            )),
            Body::Form(form) => Some((FORM, (*form).to_owned())),
            Body::Json(json) => Some(("application/json", (*json).to_owned())),
        }
    }
}

/// A call answering `status`, with nothing else set yet.
pub const fn call(method: &'static str, path: &'static str, status: u16) -> Call {
    Call {
        shows: "",
        method,
        path,
        bearer: None,
        body: Body::Empty,
        status,
        error: None,
        saves: None,
    }
}

/// Logs `user` in and saves the access token in `variable`.
pub const fn login(user: DemoUser, variable: &'static str, shows: &'static str) -> Call {
    call("POST", "/token", 200)
        .body(Body::PasswordGrant(user))
        .saves(variable, "access_token")
        .shows(shows)
}

impl Call {
    /// What the command shows.
    #[must_use]
    pub const fn shows(mut self, text: &'static str) -> Self {
        self.shows = text;
        self
    }

    /// Sends the token saved in `variable`.
    #[must_use]
    pub const fn bearer(mut self, variable: &'static str) -> Self {
        self.bearer = Some(variable);
        self
    }

    /// Sends `body`.
    #[must_use]
    pub const fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    /// The answer's `error` code.
    #[must_use]
    pub const fn error(mut self, code: &'static str) -> Self {
        self.error = Some(code);
        self
    }

    /// Saves `field` of the answer in the shell variable `variable`.
    #[must_use]
    pub const fn saves(mut self, variable: &'static str, field: &'static str) -> Self {
        self.saves = Some((variable, field));
        self
    }
}

/// `calls` as commented curl commands against `base_url`, in order.
pub fn session(base_url: &str, calls: &[Call]) -> String {
    let mut out = String::new();
    for call in calls {
        let answer = match call.error {
            Some(code) => format!("{} {code}", call.status),
            None => call.status.to_string(),
        };
        let _ = write!(
            out,
            "\n# {} -> {answer}\n{}\n",
            call.shows,
            curl(base_url, call)
        );
    }
    out
}

/// One call as a curl command line.
pub fn curl(base_url: &str, call: &Call) -> String {
    let content = call.body.content();
    let mut command = String::from(if call.saves.is_some() {
        "curl -s"
    } else {
        "curl -i"
    });
    // curl sends GET, or POST when there is a body; anything else is named.
    let implied = if content.is_some() { "POST" } else { "GET" };
    if call.method != implied {
        let _ = write!(command, " -X {}", call.method);
    }
    let _ = write!(command, " {base_url}{}", call.path);
    if let Some(variable) = call.bearer {
        let _ = write!(command, " -H \"Authorization: Bearer ${variable}\"");
    }
    match (call.body, content) {
        (Body::Json(json), _) => {
            let _ = write!(command, " -H 'Content-Type: application/json' -d '{json}'");
        }
        // curl sends -d as a form; double quotes let the shell fill in variables.
        (_, Some((_, form))) => {
            let _ = write!(command, " -d \"{form}\"");
        }
        (_, None) => {}
    }
    match call.saves {
        Some((variable, field)) => {
            format!("{variable}=$({command} | sed -E 's/.*\"{field}\":\"?([^\",}}]*).*/\\1/')")
        }
        None => command,
    }
}
