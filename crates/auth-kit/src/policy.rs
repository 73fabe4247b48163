//! Roles, scopes and permissions as data (docs/contract.md, "Roles, scopes
//! and permissions").
//!
//! A service describes its access model once, as a [`PolicySpec`] constant
//! (the templates keep theirs in `src/policy.rs`, next to the marker types
//! its routes name), and turns it into an [`AccessPolicy`] at start-up;
//! [`AccessPolicy::new`] refuses a spec that names an undeclared scope,
//! permission or role, so a typo fails once at start-up instead of silently
//! denying (or allowing) per request.
//!
//! ```
//! use auth_kit::policy::{AccessPolicy, PolicySpec, RoleSpec, ScopeSpec};
//!
//! const POLICY: PolicySpec = PolicySpec {
//!     scopes: &[
//!         ScopeSpec { name: "notes", description: "Read your notes." },
//!         ScopeSpec { name: "admin", description: "Administrative access." },
//!     ],
//!     permissions: &["notes:delete"],
//!     roles: &[
//!         RoleSpec::new("guest"),
//!         RoleSpec::new("editor").scopes(&["notes"]),
//!         RoleSpec::holding_everything("admin"),
//!     ],
//!     signup_role: "editor",
//! };
//!
//! let policy = AccessPolicy::new(&POLICY).expect("the policy is valid");
//! assert!(policy.role_holds_scope("editor", "notes"));
//! assert!(!policy.role_holds_scope("guest", "notes"));
//! assert!(policy.allows("admin", &[], "notes:delete"));
//! assert!(policy.allows("editor", &["notes:delete".to_owned()], "notes:delete"));
//! ```

use std::fmt;

/// A scope a token can carry, with the text OpenAPI shows for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeSpec {
    /// The scope as it appears in the token's `scope` claim.
    pub name: &'static str,
    /// One line for humans (shown in Swagger UI's Authorize dialog).
    pub description: &'static str,
}

/// A role: the scopes its users may be granted and the permissions it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleSpec {
    /// The role's name as stored with the user.
    pub name: &'static str,
    /// Scopes a user with this role may be granted.
    pub scopes: &'static [&'static str],
    /// Permissions the role holds (per-user grants come on top).
    pub permissions: &'static [&'static str],
    /// Holds every scope and every permission (the admin role).
    pub holds_everything: bool,
}

impl RoleSpec {
    /// A role that holds nothing yet: no scope, no permission. Add them
    /// with [`RoleSpec::scopes`] and [`RoleSpec::permissions`].
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            scopes: &[],
            permissions: &[],
            holds_everything: false,
        }
    }

    /// The role that holds every scope and every permission, declared or
    /// added later (the admin role).
    pub const fn holding_everything(name: &'static str) -> Self {
        Self {
            holds_everything: true,
            ..Self::new(name)
        }
    }

    /// This role, whose users may be granted `scopes` (replacing any
    /// scopes set before).
    #[must_use]
    pub const fn scopes(self, scopes: &'static [&'static str]) -> Self {
        Self { scopes, ..self }
    }

    /// This role, holding `permissions` (replacing any set before).
    #[must_use]
    pub const fn permissions(self, permissions: &'static [&'static str]) -> Self {
        Self {
            permissions,
            ..self
        }
    }
}

/// A whole access model, written as a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicySpec {
    /// Every scope the service knows, in the order OpenAPI lists them.
    pub scopes: &'static [ScopeSpec],
    /// Every permission the service knows.
    pub permissions: &'static [&'static str],
    /// Every role.
    pub roles: &'static [RoleSpec],
    /// The role a signup creates (never taken from the request).
    pub signup_role: &'static str,
}

/// What a route guard names: the scopes it checks, and the permission or
/// role it needs. [`AccessPolicy::check_guard`] holds it to the policy when
/// the routes are documented ([`crate::openapi::document`]), so a typo in a
/// marker type fails start-up instead of refusing every request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardNames<'a> {
    /// Scopes the token must carry (in a service with scopes).
    pub scopes: &'a [&'a str],
    /// The permission the user must hold, if any.
    pub permission: Option<&'a str>,
    /// The role the user must have, if any.
    pub role: Option<&'a str>,
}

/// A [`PolicySpec`] that names something it does not declare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("access policy: {0}")]
pub struct PolicyError(String);

/// A validated access model. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    spec: &'static PolicySpec,
}

/// A requested scope that the policy does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the scope '{0}' is unknown")]
pub struct UnknownScope(pub String);

impl AccessPolicy {
    /// Validates `spec`: every scope, permission and role it mentions is
    /// declared, names are unique and free of spaces, and the signup role
    /// exists.
    pub fn new(spec: &'static PolicySpec) -> Result<Self, PolicyError> {
        fn unique<'a>(kind: &str, names: impl Iterator<Item = &'a str>) -> Result<(), PolicyError> {
            let mut seen = std::collections::HashSet::new();
            for name in names {
                if name.is_empty() || name.contains(char::is_whitespace) {
                    return Err(PolicyError(format!(
                        "{kind} name {name:?} must be non-empty without spaces"
                    )));
                }
                if !seen.insert(name) {
                    return Err(PolicyError(format!("{kind} '{name}' is declared twice")));
                }
            }
            Ok(())
        }
        unique("scope", spec.scopes.iter().map(|s| s.name))?;
        unique("permission", spec.permissions.iter().copied())?;
        unique("role", spec.roles.iter().map(|r| r.name))?;
        for role in spec.roles {
            if let Some(scope) = role
                .scopes
                .iter()
                .find(|s| !spec.scopes.iter().any(|d| d.name == **s))
            {
                return Err(PolicyError(format!(
                    "role '{}' names the undeclared scope '{scope}'",
                    role.name
                )));
            }
            if let Some(p) = role
                .permissions
                .iter()
                .find(|p| !spec.permissions.contains(p))
            {
                return Err(PolicyError(format!(
                    "role '{}' names the undeclared permission '{p}'",
                    role.name
                )));
            }
        }
        if !spec.roles.iter().any(|r| r.name == spec.signup_role) {
            return Err(PolicyError(format!(
                "the signup role '{}' is not declared",
                spec.signup_role
            )));
        }
        Ok(Self { spec })
    }

    /// Whether the guard of `route` names only what the policy declares;
    /// the error names the first name it does not.
    ///
    /// ```
    /// use auth_kit::policy::{AccessPolicy, GuardNames, PolicySpec, RoleSpec, ScopeSpec};
    ///
    /// const POLICY: PolicySpec = PolicySpec {
    ///     scopes: &[ScopeSpec { name: "notes", description: "Read your notes." }],
    ///     permissions: &[],
    ///     roles: &[RoleSpec::new("editor").scopes(&["notes"])],
    ///     signup_role: "editor",
    /// };
    /// let policy = AccessPolicy::new(&POLICY).expect("valid");
    /// let typo = GuardNames { scopes: &["ntoes"], ..GuardNames::default() };
    /// let err = policy.check_guard("GET /notes", &typo).unwrap_err();
    /// assert!(err.to_string().contains("'ntoes'"));
    /// ```
    pub fn check_guard(&self, route: &str, guard: &GuardNames<'_>) -> Result<(), PolicyError> {
        let undeclared = |kind: &str, name: &str| {
            PolicyError(format!(
                "the guard of {route} names the {kind} '{name}', which the policy does not declare"
            ))
        };
        if let Some(scope) = guard
            .scopes
            .iter()
            .find(|s| !self.spec.scopes.iter().any(|d| d.name == **s))
        {
            return Err(undeclared("scope", scope));
        }
        if let Some(permission) = guard.permission.filter(|p| !self.is_permission(p)) {
            return Err(undeclared("permission", permission));
        }
        if let Some(role) = guard.role.filter(|r| self.role(r).is_none()) {
            return Err(undeclared("role", role));
        }
        Ok(())
    }

    /// Whether a user with `role` has the role `required` (a declared one:
    /// [`AccessPolicy::check_guard`] refuses a guard naming another).
    pub fn has_role(&self, role: &str, required: &str) -> bool {
        role == required && self.role(required).is_some()
    }

    /// Every scope, in declaration order.
    pub fn scopes(&self) -> &'static [ScopeSpec] {
        self.spec.scopes
    }

    /// Every permission.
    pub fn permissions(&self) -> &'static [&'static str] {
        self.spec.permissions
    }

    /// Every role.
    pub fn roles(&self) -> &'static [RoleSpec] {
        self.spec.roles
    }

    /// The role a signup creates.
    pub fn signup_role(&self) -> &'static str {
        self.spec.signup_role
    }

    /// The declared role called `name`, if any.
    pub fn role(&self, name: &str) -> Option<&'static RoleSpec> {
        self.spec.roles.iter().find(|r| r.name == name)
    }

    /// Whether `name` is a declared permission.
    pub fn is_permission(&self, name: &str) -> bool {
        self.spec.permissions.contains(&name)
    }

    /// Whether a user with `role` may be granted `scope`.
    pub fn role_holds_scope(&self, role: &str, scope: &str) -> bool {
        match self.role(role) {
            Some(r) if r.holds_everything => self.spec.scopes.iter().any(|s| s.name == scope),
            Some(r) => r.scopes.contains(&scope),
            None => false,
        }
    }

    /// Whether a user with `role` and the per-user `grants` holds `permission`.
    /// An unknown role holds nothing; the admin role holds everything.
    pub fn allows(&self, role: &str, grants: &[String], permission: &str) -> bool {
        match self.role(role) {
            Some(r) if r.holds_everything => true,
            Some(r) => {
                r.permissions.contains(&permission) || grants.iter().any(|g| g == permission)
            }
            None => false,
        }
    }

    /// Parses a space-separated `scope` request parameter. `Ok(None)` means
    /// nothing was requested; an unknown scope is an error at once.
    pub fn parse_scope_request(&self, raw: Option<&str>) -> Result<Option<ScopeSet>, UnknownScope> {
        let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let mut set = ScopeSet::default();
        for word in raw.split_ascii_whitespace() {
            let known = self
                .spec
                .scopes
                .iter()
                .find(|s| s.name == word)
                .ok_or_else(|| {
                    // Bounded: the description echoes at most 64 characters of client input.
                    UnknownScope(word.chars().take(64).collect())
                })?;
            set.insert(known.name);
        }
        Ok(Some(set))
    }

    /// Every scope `role` holds, in declaration order.
    pub fn scopes_of_role(&self, role: &str) -> ScopeSet {
        let mut set = ScopeSet::default();
        for scope in self
            .spec
            .scopes
            .iter()
            .filter(|s| self.role_holds_scope(role, s.name))
        {
            set.insert(scope.name);
        }
        set
    }

    /// The scopes of a stored grant string (space-separated), keeping only
    /// the ones the policy still declares.
    pub fn parse_grant(&self, stored: &str) -> ScopeSet {
        let mut set = ScopeSet::default();
        for word in stored.split_ascii_whitespace() {
            if let Some(known) = self.spec.scopes.iter().find(|s| s.name == word) {
                set.insert(known.name);
            }
        }
        set
    }

    /// Orders `set` as the policy declares its scopes (stable token output).
    fn ordered(&self, set: &ScopeSet) -> ScopeSet {
        let mut out = ScopeSet::default();
        for scope in self.spec.scopes.iter().filter(|s| set.contains(s.name)) {
            out.insert(scope.name);
        }
        out
    }

    /// The intersection of two grants, in declaration order.
    pub fn intersect(&self, a: &ScopeSet, b: &ScopeSet) -> ScopeSet {
        let both: ScopeSet = ScopeSet(a.0.iter().copied().filter(|s| b.contains(s)).collect());
        self.ordered(&both)
    }
}

/// A set of declared scopes. Its `Display` is the RFC 9068 `scope` string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<&'static str>);

impl ScopeSet {
    fn insert(&mut self, scope: &'static str) {
        if !self.0.contains(&scope) {
            self.0.push(scope);
        }
    }

    /// Whether the set holds `scope`.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(&scope)
    }

    /// Whether every scope of `self` is in `other`.
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.iter().all(|s| other.contains(s))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().copied()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope)?;
        }
        Ok(())
    }
}

/// Whether a space-separated `scope` claim holds every scope in `required`.
/// Allocation-free: this runs on every request to a scope-guarded route.
pub fn claim_holds_all(claim: &str, required: &[&str]) -> bool {
    required
        .iter()
        .all(|needed| claim.split(' ').any(|held| held == *needed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_checks() {
        assert!(claim_holds_all("me items", &["items"]));
        assert!(claim_holds_all("me items", &["me", "items"]));
        assert!(!claim_holds_all("me items", &["items:write"]));
        assert!(!claim_holds_all("me itemsx", &["items"]));
        assert!(!claim_holds_all("", &["me"]));
        assert!(claim_holds_all("", &[]));
    }

    #[test]
    fn bad_specs_are_refused() {
        static UNDECLARED_SCOPE: PolicySpec = PolicySpec {
            scopes: &[],
            permissions: &[],
            roles: &[RoleSpec {
                name: "r",
                scopes: &["x"],
                permissions: &[],
                holds_everything: false,
            }],
            signup_role: "r",
        };
        static MISSING_SIGNUP_ROLE: PolicySpec = PolicySpec {
            scopes: &[],
            permissions: &[],
            roles: &[],
            signup_role: "user",
        };
        static DUPLICATE: PolicySpec = PolicySpec {
            scopes: &[],
            permissions: &["a", "a"],
            roles: &[RoleSpec {
                name: "r",
                scopes: &[],
                permissions: &[],
                holds_everything: false,
            }],
            signup_role: "r",
        };
        for spec in [&UNDECLARED_SCOPE, &MISSING_SIGNUP_ROLE, &DUPLICATE] {
            assert!(AccessPolicy::new(spec).is_err(), "{spec:?}");
        }
    }
}
