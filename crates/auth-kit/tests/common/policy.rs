//! The access model the kit's tests run with: the templates' own (items,
//! with `me` and `admin`), declared here as a service declares its own.
#![allow(dead_code)] // each test binary uses a part

use auth_kit::extract::{PermissionRequirement, ScopeRequirement};
use auth_kit::policy::{AccessPolicy, PolicySpec, RoleSpec, ScopeSpec};

/// `guest` may hold `me`; `user` holds `me items items:write` and may read
/// and write items; `admin` holds every scope and every permission.
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

/// [`POLICY`], validated.
pub fn policy() -> AccessPolicy {
    AccessPolicy::new(&POLICY).expect("the tests' policy is valid")
}

/// Scope `items`.
#[derive(Debug)]
pub struct ReadItems;
impl ScopeRequirement for ReadItems {
    const SCOPES: &'static [&'static str] = &["items"];
}

/// Permission `items:delete`; with scopes, also `items:write`.
#[derive(Debug)]
pub struct DeleteItems;
impl PermissionRequirement for DeleteItems {
    const PERMISSION: &'static str = "items:delete";
    const SCOPES: &'static [&'static str] = &["items:write"];
}
