//! Who may do what in this example: its scopes and roles as data, and the
//! scope markers its routes name (`RequireScopes<ReadItems>`). Your service
//! declares its own the same way; `ReadMe` and `Admin` (the account routes'
//! markers) come with auth-kit.

use auth_kit::extract::ScopeRequirement;
use auth_kit::policy::{PolicySpec, RoleSpec, ScopeSpec};

/// `guest` may hold `me`; `user` holds `me items items:write`; `admin`
/// holds every scope and every permission.
pub const POLICY: PolicySpec = PolicySpec {
    scopes: &[
        ScopeSpec {
            name: "me",
            description: "Read your own profile.",
        },
        ScopeSpec {
            name: "items",
            description: "Read your items.",
        },
        ScopeSpec {
            name: "items:write",
            description: "Create items.",
        },
        ScopeSpec {
            name: "admin",
            description: "Administrative access.",
        },
    ],
    permissions: &[
        "items:read",
        "items:write",
        "items:delete",
        "users:read",
        "users:delete",
    ],
    roles: &[
        RoleSpec::new("guest").scopes(&["me"]),
        RoleSpec::new("user")
            .scopes(&["me", "items", "items:write"])
            .permissions(&["items:read", "items:write"]),
        RoleSpec::holding_everything("admin"),
    ],
    signup_role: "user",
};

/// Scope `items`: read your items.
#[derive(Debug)]
pub struct ReadItems;
impl ScopeRequirement for ReadItems {
    const SCOPES: &'static [&'static str] = &["items"];
}

/// Scope `items:write`: create items.
#[derive(Debug)]
pub struct WriteItems;
impl ScopeRequirement for WriteItems {
    const SCOPES: &'static [&'static str] = &["items:write"];
}
