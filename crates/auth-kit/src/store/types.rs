//! The values the store reads and writes: users as the API shows them,
//! the row they are read from, and what creates or changes one.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::extract::Account;

pub(super) const USER_COLUMNS: &str =
    "id, username, email, full_name, role, permissions, disabled, email_verified, created_at";

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: i64,
    username: String,
    email: Option<String>,
    full_name: Option<String>,
    role: String,
    permissions: String,
    disabled: bool,
    email_verified: bool,
    created_at: i64,
}

/// A user as the API shows it: never with the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// The id (`sub` in tokens).
    pub id: i64,
    /// Unique ignoring case.
    pub username: String,
    /// Unique ignoring case, when present.
    pub email: Option<String>,
    /// Free text.
    pub full_name: Option<String>,
    /// `guest`, `user` or `admin`.
    pub role: String,
    /// Disabled users cannot log in or use their tokens.
    pub disabled: bool,
    /// Whether the user proved they receive mail at `email` (a verification
    /// or password-reset link was used).
    pub email_verified: bool,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// Per-user permission grants (shown only in admin answers).
    #[serde(skip)]
    pub permissions: Vec<String>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            username: r.username,
            email: r.email,
            full_name: r.full_name,
            role: r.role,
            disabled: r.disabled,
            email_verified: r.email_verified,
            created_at: rfc3339(r.created_at),
            permissions: r
                .permissions
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
        }
    }
}

impl Account for User {
    fn role(&self) -> &str {
        &self.role
    }

    fn granted_permissions(&self) -> &[String] {
        &self.permissions
    }

    fn is_disabled(&self) -> bool {
        self.disabled
    }
}

/// A user with their per-user permission grants: what admin routes answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminUserView {
    /// The user.
    #[serde(flatten)]
    pub user: User,
    /// Per-user grants (the role's own come on top).
    pub permissions: Vec<String>,
}

impl From<User> for AdminUserView {
    fn from(user: User) -> Self {
        let permissions = user.permissions.clone();
        Self { user, permissions }
    }
}

/// A user to create.
#[derive(Clone, Copy)]
pub struct NewUser<'a> {
    /// Already validated.
    pub username: &'a str,
    /// Already validated.
    pub email: Option<&'a str>,
    /// Free text.
    pub full_name: Option<&'a str>,
    /// A PHC string.
    pub password_hash: &'a str,
    /// A role the policy declares.
    pub role: &'a str,
}

impl fmt::Debug for NewUser<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Which unique field a new user collided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakenField {
    /// The username (ignoring case).
    Username,
    /// The email (ignoring case).
    Email,
}

/// The most per-user permission grants one user may hold.
pub const MAX_PERMISSION_GRANTS: usize = 64;

/// A change to a user (PATCH /users/{id}); `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserUpdate {
    /// A role the policy declares.
    #[serde(default)]
    pub role: Option<String>,
    /// Disable or re-enable.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// Replaces the per-user grants (`[]` revokes them all).
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

impl UserUpdate {
    /// Refuses unknown roles and permissions (422).
    pub fn validate(&self, policy: &crate::policy::AccessPolicy) -> Result<(), ApiError> {
        if let Some(role) = &self.role
            && policy.role(role).is_none()
        {
            let known: Vec<&str> = policy.roles().iter().map(|r| r.name).collect();
            return Err(ApiError::validation(
                "role",
                format!("unknown role; known: {}", known.join(", ")),
            ));
        }
        if let Some(permissions) = &self.permissions {
            if permissions.len() > MAX_PERMISSION_GRANTS {
                return Err(ApiError::validation(
                    "permissions",
                    format!("at most {MAX_PERMISSION_GRANTS} entries"),
                ));
            }
            if permissions.iter().any(|p| !policy.is_permission(p)) {
                return Err(ApiError::validation(
                    "permissions",
                    format!(
                        "unknown permission; known: {}",
                        policy.permissions().join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}
