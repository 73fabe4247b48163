//! The curl session printed at start-up, kept as data: [`banner`] renders
//! [`CALLS`], and the tests replay the same calls against a running server,
//! so every printed command and the answer it claims stay true.

use std::fmt::Write as _;

use crate::{ADMIN, DEMO_USERS, DemoUser, EDITOR, GUEST, POLICY, SERVICE, USER};

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
            Body::Form(form) => Some((FORM, (*form).to_owned())),
            Body::Json(json) => Some(("application/json", (*json).to_owned())),
        }
    }
}

const fn call(method: &'static str, path: &'static str, status: u16) -> Call {
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
const fn login(user: DemoUser, variable: &'static str, shows: &'static str) -> Call {
    call("POST", "/token", 200)
        .body(Body::PasswordGrant(user))
        .saves(variable, "access_token")
        .shows(shows)
}

impl Call {
    const fn shows(mut self, text: &'static str) -> Self {
        self.shows = text;
        self
    }
    const fn bearer(mut self, variable: &'static str) -> Self {
        self.bearer = Some(variable);
        self
    }
    const fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
    const fn error(mut self, code: &'static str) -> Self {
        self.error = Some(code);
        self
    }
    const fn saves(mut self, variable: &'static str, field: &'static str) -> Self {
        self.saves = Some((variable, field));
        self
    }
}

/// The session, in order: later calls use the variables earlier ones saved.
pub const CALLS: &[Call] = &[
    call("GET", "/", 200).shows("Public: no token needed"),
    login(GUEST, "GUEST_TOKEN", "Log in as guest (password grant)"),
    login(USER, "USER_TOKEN", "Log in as user"),
    login(EDITOR, "EDITOR_TOKEN", "Log in as editor"),
    login(ADMIN, "ADMIN_TOKEN", "Log in as admin"),
    call("GET", "/users/me", 401)
        .error("unauthorized")
        .shows("Without a token"),
    call("GET", "/users/me", 200)
        .bearer("GUEST_TOKEN")
        .shows("What may the guest do? effective_permissions is empty"),
    call("GET", "/users/me", 200)
        .bearer("GUEST_TOKEN")
        .saves("GUEST_ID", "id")
        .shows("Keep the guest's id for the admin's calls below"),
    call("POST", "/items", 403)
        .bearer("GUEST_TOKEN")
        .body(Body::Json(r#"{"title":"Buy milk"}"#))
        .error("forbidden")
        .shows("The guest lacks items:write"),
    call("POST", "/items", 201)
        .bearer("USER_TOKEN")
        .body(Body::Json(r#"{"title":"Buy milk"}"#))
        .saves("ITEM_ID", "id")
        .shows("The user's role holds items:write; keep the new item's id"),
    call("GET", "/items/$ITEM_ID", 200)
        .bearer("USER_TOKEN")
        .shows("The user's role holds items:read"),
    call("GET", "/items/$ITEM_ID", 403)
        .bearer("GUEST_TOKEN")
        .error("forbidden")
        .shows("The guest lacks items:read"),
    call("GET", "/items/999999", 403)
        .bearer("GUEST_TOKEN")
        .error("forbidden")
        .shows("Same answer for a missing item: a static permission is checked before anything is looked up"),
    call("DELETE", "/items/$ITEM_ID", 403)
        .bearer("GUEST_TOKEN")
        .error("forbidden")
        .shows("Not the owner, and no items:delete"),
    call("DELETE", "/items/999999", 404)
        .bearer("GUEST_TOKEN")
        .error("not_found")
        .shows("The owner rule needs the item first, so this route reveals that it does not exist"),
    call("PATCH", "/users/$GUEST_ID", 403)
        .bearer("USER_TOKEN")
        .body(Body::Json(r#"{"permissions":["items:delete"]}"#))
        .error("forbidden")
        .shows("Only the admin role may grant permissions"),
    call("PATCH", "/users/$GUEST_ID", 422)
        .bearer("ADMIN_TOKEN")
        .body(Body::Json(r#"{"permissions":["items:fly"]}"#))
        .error("validation_failed")
        .shows("Only permissions POLICY declares can be granted"),
    call("PATCH", "/users/$GUEST_ID", 200)
        .bearer("ADMIN_TOKEN")
        .body(Body::Json(r#"{"permissions":["items:delete"]}"#))
        .shows("The admin grants the guest items:delete"),
    call("GET", "/users/me", 200)
        .bearer("GUEST_TOKEN")
        .shows("The grant applies at once, to the same token"),
    call("DELETE", "/items/$ITEM_ID", 204)
        .bearer("GUEST_TOKEN")
        .shows("Now the guest may delete the user's item"),
    call("POST", "/items", 201)
        .bearer("USER_TOKEN")
        .body(Body::Json(r#"{"title":"Walk the dog"}"#))
        .saves("ITEM_ID", "id")
        .shows("The user creates another item"),
    call("DELETE", "/items/$ITEM_ID", 204)
        .bearer("USER_TOKEN")
        .shows("An owner may delete their own item without items:delete"),
    call("POST", "/items", 201)
        .bearer("USER_TOKEN")
        .body(Body::Json(r#"{"title":"Water the plants"}"#))
        .saves("ITEM_ID", "id")
        .shows("And one more"),
    call("DELETE", "/items/$ITEM_ID", 204)
        .bearer("EDITOR_TOKEN")
        .shows("The editor's role holds items:delete"),
    call("GET", "/users", 403)
        .bearer("EDITOR_TOKEN")
        .error("forbidden")
        .shows("The editor lacks users:read"),
    call("GET", "/users", 200)
        .bearer("ADMIN_TOKEN")
        .shows("The admin holds every permission"),
];

/// What the server prints at start: the demo users and [`CALLS`] as curl
/// commands against `base_url` (`http://127.0.0.1:8000`).
pub fn banner(base_url: &str) -> String {
    let mut out = format!("{SERVICE} is listening on {base_url}\n\n");
    out.push_str("Demo users (these passwords exist for this demo only):\n");
    for user in DEMO_USERS {
        let _ = writeln!(
            out,
            "  {:<6} password {:<20} role {:<6} permissions: {}",
            user.username,
            user.password,
            user.role,
            role_permissions(user.role)
        );
    }
    out.push_str(
        "\nTry it: paste these into a shell, in order (tokens and ids are saved in shell variables).\n",
    );
    for call in CALLS {
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

/// What [`POLICY`] gives `role`, for the banner.
fn role_permissions(role: &str) -> String {
    match POLICY.roles.iter().find(|r| r.name == role) {
        Some(r) if r.holds_everything => "all".to_owned(),
        Some(r) if r.permissions.is_empty() => "none".to_owned(),
        Some(r) => r.permissions.join(" "),
        None => "none (unknown role)".to_owned(),
    }
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
