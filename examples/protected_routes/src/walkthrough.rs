//! The curl session printed at start-up, kept as data: [`banner`] renders
//! [`CALLS`], and the tests replay the same calls against a running server,
//! so every printed command and the answer it claims stay true.

use std::fmt::Write as _;

use demo_walkthrough::{Body, Call, call, login};

use auth_kit::policy::AccessPolicy;

use crate::{ADMIN, DEMO_USERS, GUEST, SERVICE, USER};

/// The session, in order: later calls use the variables earlier ones saved.
pub const CALLS: &[Call] = &[
    call("GET", "/", 200).shows("Public: no token needed"),
    login(GUEST, "GUEST_TOKEN", "Log in as guest (password grant)"),
    login(USER, "USER_TOKEN", "Log in as user"),
    login(ADMIN, "ADMIN_TOKEN", "Log in as admin"),
    call("GET", "/users/me", 401)
        .error("unauthorized")
        .shows("Authenticated route without a token: 401 with WWW-Authenticate: Bearer"),
    call("GET", "/users/me", 200)
        .bearer("GUEST_TOKEN")
        .shows("Any valid token will do"),
    call("GET", "/users/me/items", 403)
        .bearer("GUEST_TOKEN")
        .error("insufficient_scope")
        .shows("The guest token lacks the scope items"),
    call("POST", "/items", 403)
        .bearer("GUEST_TOKEN")
        .body(Body::Json(r#"{"title":"Buy milk"}"#))
        .error("insufficient_scope")
        .shows("The guest token lacks the scope items:write"),
    call("POST", "/items", 201)
        .bearer("USER_TOKEN")
        .body(Body::Json(r#"{"title":"Buy milk"}"#))
        .shows("The user token carries items:write"),
    call("GET", "/users/me/items", 200)
        .bearer("USER_TOKEN")
        .shows("The user token carries items"),
    call("GET", "/admin", 403)
        .bearer("USER_TOKEN")
        .error("forbidden")
        .shows("Not an admin"),
    call("GET", "/admin", 200)
        .bearer("ADMIN_TOKEN")
        .shows("The admin sees the users"),
    call("POST", "/token", 200)
        .body(Body::ScopedPasswordGrant(ADMIN, "me"))
        .saves("ADMIN_ME_TOKEN", "access_token")
        .shows(
            "Log in as admin, asking for the scope me only (a token for a tool that needs no more)",
        ),
    call("GET", "/admin", 403)
        .bearer("ADMIN_ME_TOKEN")
        .error("insufficient_scope")
        .shows("The role is not enough: the admin route also needs the scope admin"),
    call("POST", "/token", 200)
        .body(Body::PasswordGrant(USER))
        .saves("REFRESH_TOKEN", "refresh_token")
        .shows("Log in as user again, keeping the refresh token this time"),
    call("POST", "/token", 200)
        .body(Body::Form(
            "grant_type=refresh_token&refresh_token=$REFRESH_TOKEN",
        ))
        .saves("NEW_REFRESH_TOKEN", "refresh_token")
        .shows("Trade the refresh token for a new pair (refresh grant)"),
    call("POST", "/token", 200)
        .body(Body::Form(
            "grant_type=refresh_token&refresh_token=$REFRESH_TOKEN",
        ))
        .shows(
            "The same refresh token again within 10 s (a second tab): the same new refresh token",
        ),
    call("POST", "/token", 200)
        .body(Body::Form(
            "grant_type=refresh_token&refresh_token=$NEW_REFRESH_TOKEN",
        ))
        .shows("Use the new refresh token"),
    call("POST", "/token", 400)
        .body(Body::Form(
            "grant_type=refresh_token&refresh_token=$REFRESH_TOKEN",
        ))
        .error("invalid_grant")
        .shows("Its successor used, the old refresh token is refused, and its login revoked"),
];

/// What the server prints at start: the demo users and [`CALLS`] as curl
/// commands against `base_url` (`http://127.0.0.1:8000`).
pub fn banner(base_url: &str) -> String {
    let policy = AccessPolicy::new(&crate::policy::POLICY).expect("the example's policy is valid");
    let mut out = format!("{SERVICE} is listening on {base_url}\n\n");
    out.push_str("Demo users (these passwords exist for this demo only):\n");
    for user in DEMO_USERS {
        let _ = writeln!(
            out,
            "  {:<6} password {:<20} role {:<6} scopes: {}",
            user.username,
            user.password,
            user.role,
            policy.scopes_of_role(user.role)
        );
    }
    out.push_str(
        "\nTry it: paste these into a shell, in order (the tokens are saved in shell variables).\n",
    );
    out.push_str(&demo_walkthrough::session(base_url, CALLS));
    out
}
