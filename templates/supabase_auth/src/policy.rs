//! Who may do what: the roles Supabase users have (`app_metadata.role`,
//! which only the service role can write), the permissions each role holds,
//! and the marker types the routes name in their signatures
//! (`RequireSupabasePermission<DeleteItems>`; the admin routes' `Admin`
//! comes with auth-kit).
//!
//! Change the model here. Start-up checks it: a role naming an undeclared
//! permission, or a route guard naming a name this policy does not declare,
//! stops the service with a message naming it.

use auth_kit::extract::PermissionRequirement;
use auth_kit::policy::{PolicySpec, RoleSpec};

/// `user` may read and write items; `admin` holds every permission. A user
/// without a role in `app_metadata` is a `user`. Supabase tokens carry no
/// scopes, and the Supabase guards check none.
pub const POLICY: PolicySpec = PolicySpec {
    scopes: &[],
    permissions: &[
        "items:read",
        "items:write",
        "items:delete",
        "users:read",
        "users:delete",
    ],
    roles: &[
        RoleSpec::new("guest"),
        RoleSpec::new("user").permissions(&["items:read", "items:write"]),
        RoleSpec::holding_everything("admin"),
    ],
    signup_role: "user",
};

/// Permission `items:delete` (the role's, or `app_metadata.permissions`).
#[derive(Debug)]
pub struct DeleteItems;
impl PermissionRequirement for DeleteItems {
    const PERMISSION: &'static str = "items:delete";
    const SCOPES: &'static [&'static str] = &[];
}
