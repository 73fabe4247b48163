//! Who a verified Supabase access token is for.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::client::UserRecord;
use auth_kit::extract::Account;

/// The claims of a Supabase access token that a service uses. Unknown
/// claims are ignored; `iss`, `aud` and `exp` are checked during
/// verification and not kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupabaseClaims {
    /// The user's id (a UUID).
    pub sub: String,
    /// The user's email, if any.
    #[serde(default)]
    pub email: Option<String>,
    /// The user's phone number, if any.
    #[serde(default)]
    pub phone: Option<String>,
    /// The *database* role (`authenticated`, `anon`, `service_role`), not
    /// an application role: see [`SupabaseUser::role`].
    #[serde(default)]
    pub role: Option<String>,
    /// Authenticator assurance level (`aal1`, `aal2`).
    #[serde(default)]
    pub aal: Option<String>,
    /// The login (session) the token belongs to.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Whether the user signed in anonymously.
    #[serde(default)]
    pub is_anonymous: bool,
    /// Set by the server (and admins) only: roles and permissions are read
    /// from here.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub app_metadata: Map<String, Value>,
    /// Editable by the user: never trusted for authorization.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub user_metadata: Map<String, Value>,
}

/// GoTrue writes a nil map as `null`.
pub(crate) fn null_as_empty<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Map<String, Value>, D::Error> {
    Ok(Option::<Map<String, Value>>::deserialize(d)?.unwrap_or_default())
}

impl SupabaseClaims {
    /// The claims `GET /auth/v1/user` vouches for (remote verification):
    /// the user object's fields; no session id or assurance level.
    pub fn from_record(user: UserRecord) -> Self {
        Self {
            sub: user.id,
            email: user.email,
            phone: user.phone,
            role: Some(user.role).filter(|r| !r.is_empty()),
            aal: None,
            session_id: None,
            is_anonymous: user.is_anonymous,
            app_metadata: user.app_metadata,
            user_metadata: user.user_metadata,
        }
    }
}

/// An authenticated Supabase user, as handlers receive it.
///
/// Its application role and permissions come from `app_metadata` only
/// (`app_metadata.role`, a string, and `app_metadata.permissions`, a list
/// of strings), which only the server and admins can write; the same keys
/// in `user_metadata` grant nothing. A user without `app_metadata.role` has
/// the policy's signup role.
#[derive(Debug, Clone)]
pub struct SupabaseUser {
    claims: SupabaseClaims,
    role: String,
    permissions: Vec<String>,
}

impl SupabaseUser {
    /// The user `claims` describe; `default_role` applies when
    /// `app_metadata` names none.
    pub fn new(claims: SupabaseClaims, default_role: &str) -> Self {
        let role = claims
            .app_metadata
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or(default_role)
            .to_owned();
        let permissions = claims
            .app_metadata
            .get("permissions")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            claims,
            role,
            permissions,
        }
    }

    /// The user's id (the token's `sub`).
    pub fn id(&self) -> &str {
        &self.claims.sub
    }

    /// The user's email, if any.
    pub fn email(&self) -> Option<&str> {
        self.claims.email.as_deref()
    }

    /// The application role (from `app_metadata.role`).
    pub fn role(&self) -> &str {
        &self.role
    }

    /// Per-user permission grants (from `app_metadata.permissions`).
    pub fn permissions(&self) -> &[String] {
        &self.permissions
    }

    /// Everything the token said.
    pub fn claims(&self) -> &SupabaseClaims {
        &self.claims
    }

    /// The `GET /users/me` answer (docs/contract.md), built from the
    /// verified token alone.
    pub fn profile(&self) -> SupabaseProfile {
        SupabaseProfile {
            id: self.claims.sub.clone(),
            email: self.claims.email.clone(),
            role: self.role.clone(),
            app_metadata: self.claims.app_metadata.clone(),
            user_metadata: self.claims.user_metadata.clone(),
        }
    }
}

impl Account for SupabaseUser {
    fn role(&self) -> &str {
        &self.role
    }

    fn granted_permissions(&self) -> &[String] {
        &self.permissions
    }

    /// Banned users are refused by Supabase itself (remote mode, refresh);
    /// a valid token is an active user.
    fn is_disabled(&self) -> bool {
        false
    }
}

/// `{id, email, role, app_metadata, user_metadata}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SupabaseProfile {
    /// The user's id.
    pub id: String,
    /// The user's email.
    pub email: Option<String>,
    /// The application role.
    pub role: String,
    /// Server-set metadata.
    #[schema(value_type = Object)]
    pub app_metadata: Map<String, Value>,
    /// User-editable metadata.
    #[schema(value_type = Object)]
    pub user_metadata: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use serde_json::json;

    fn user(claims: Value) -> SupabaseUser {
        SupabaseUser::new(serde_json::from_value(claims).unwrap(), "user")
    }

    #[test]
    fn roles_come_from_app_metadata_only() {
        let u = user(json!({
            "sub": "u1",
            "app_metadata": {"provider": "email"},
            "user_metadata": {"role": "admin", "permissions": ["items:delete"]},
        }));
        assert_eq!(Account::role(&u), "user");
        assert!(u.granted_permissions().is_empty());

        let u = user(json!({
            "sub": "u1",
            "app_metadata": {"role": "admin", "permissions": ["items:delete", 7]},
            "user_metadata": null,
        }));
        assert_eq!(u.role(), "admin");
        assert_eq!(u.permissions(), ["items:delete"]);
        assert!(u.claims().user_metadata.is_empty());
        // A role that is not a string is no role.
        let u = user(json!({"sub": "u1", "app_metadata": {"role": ["admin"]}}));
        assert_eq!(u.role(), "user");
    }
}
