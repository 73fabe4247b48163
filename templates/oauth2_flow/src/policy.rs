//! Who may do what: this service's scopes, roles and permissions, and the
//! marker types its routes name in their signatures
//! (`RequireScopes<ReadItems>`, `RequirePermission<DeleteItems>`; the
//! account routes' `ReadMe` and `Admin` come with auth-kit).
//!
//! Change the model here. Start-up checks it: a role naming an undeclared
//! scope or permission, or a route guard naming a name this policy does not
//! declare, stops the service with a message naming it.

use auth_kit::extract::{PermissionRequirement, ScopeRequirement};
use auth_kit::policy::{PolicySpec, RoleSpec, ScopeSpec};

/// `guest` may hold `me`; `user` holds `me items items:write` and may read
/// and write items; `admin` holds every scope and every permission. A
/// signup is a `user`.
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

/// Permission `items:delete` (the role's or a per-user grant); with
/// scopes, also the scope `items:write`, so a down-scoped token cannot use
/// it.
#[derive(Debug)]
pub struct DeleteItems;
impl PermissionRequirement for DeleteItems {
    const PERMISSION: &'static str = "items:delete";
    const SCOPES: &'static [&'static str] = &["items:write"];
}
