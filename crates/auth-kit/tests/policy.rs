//! The access policy's answers for the templates' access model: which
//! scopes a role holds, which permissions it is allowed, how a `scope`
//! request parameter is read.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use auth_kit::policy::UnknownScope;

#[test]
fn spec_roles_and_scopes() {
    let p = common::policy::policy();
    assert_eq!(p.scopes_of_role("guest").to_string(), "me");
    assert_eq!(p.scopes_of_role("user").to_string(), "me items items:write");
    assert_eq!(
        p.scopes_of_role("admin").to_string(),
        "me items items:write admin"
    );
    assert_eq!(p.scopes_of_role("nobody").to_string(), "");
    assert!(!p.allows("user", &[], "items:delete"));
    assert!(p.allows("user", &["items:delete".into()], "items:delete"));
    assert!(!p.allows("guest", &[], "items:read"));
    assert!(p.allows("admin", &[], "users:delete"));
    assert!(!p.allows("nobody", &["items:delete".into()], "items:delete"));
}

#[test]
fn scope_requests() {
    let p = common::policy::policy();
    assert_eq!(p.parse_scope_request(None), Ok(None));
    assert_eq!(p.parse_scope_request(Some("  ")), Ok(None));
    let set = p
        .parse_scope_request(Some("items  me items"))
        .unwrap()
        .unwrap();
    assert_eq!(set.to_string(), "items me");
    assert_eq!(
        p.parse_scope_request(Some("me root")),
        Err(UnknownScope("root".into()))
    );
    // Case matters: scopes are exact strings.
    assert!(p.parse_scope_request(Some("ME")).is_err());
}
