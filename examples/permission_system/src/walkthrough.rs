//! The curl session printed at start-up, kept as data: [`banner`] renders
//! [`CALLS`], and the tests replay the same calls against a running server,
//! so every printed command and the answer it claims stay true.

use std::fmt::Write as _;

use demo_walkthrough::{Body, Call, call, login};

use crate::{ADMIN, DEMO_USERS, EDITOR, GUEST, POLICY, SERVICE, USER};

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
    out.push_str(&demo_walkthrough::session(base_url, CALLS));
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
