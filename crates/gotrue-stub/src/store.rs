//! Users, sessions and refresh tokens, in memory.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The audience and database role of every signed-up user.
pub(crate) const AUTHENTICATED: &str = "authenticated";

/// Formats a time as GoTrue does (RFC 3339, UTC, fractional seconds).
pub(crate) fn timestamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// A user. The password is an Argon2id PHC string, never the password.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) password_hash: String,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) updated_at: OffsetDateTime,
    pub(crate) email_confirmed_at: Option<OffsetDateTime>,
    pub(crate) confirmation_sent_at: Option<OffsetDateTime>,
    pub(crate) recovery_sent_at: Option<OffsetDateTime>,
    pub(crate) last_sign_in_at: Option<OffsetDateTime>,
    pub(crate) app_metadata: Map<String, Value>,
    pub(crate) user_metadata: Map<String, Value>,
    pub(crate) identity_id: String,
}

impl User {
    pub(crate) fn new(email: String, password_hash: String, data: Map<String, Value>) -> Self {
        let now = OffsetDateTime::now_utc();
        let mut app_metadata = Map::new();
        app_metadata.insert("provider".into(), json!("email"));
        app_metadata.insert("providers".into(), json!(["email"]));
        Self {
            id: crate::uuid_v4(),
            email,
            password_hash,
            created_at: now,
            updated_at: now,
            email_confirmed_at: None,
            confirmation_sent_at: None,
            recovery_sent_at: None,
            last_sign_in_at: None,
            app_metadata,
            user_metadata: data,
            identity_id: crate::uuid_v4(),
        }
    }

    pub(crate) fn is_confirmed(&self) -> bool {
        self.email_confirmed_at.is_some()
    }

    /// When the last mail of `kind` went out.
    pub(crate) fn sent_at(&mut self, kind: OtpKind) -> &mut Option<OffsetDateTime> {
        match kind {
            OtpKind::Confirmation => &mut self.confirmation_sent_at,
            OtpKind::Recovery => &mut self.recovery_sent_at,
        }
    }

    /// The user object upstream answers with (`GET /user`, signup, the
    /// `user` of a session).
    pub(crate) fn to_json(&self) -> Value {
        let mut identity_data = Map::new();
        identity_data.insert("email".into(), json!(self.email));
        identity_data.insert("email_verified".into(), json!(self.is_confirmed()));
        identity_data.insert("phone_verified".into(), json!(false));
        identity_data.insert("sub".into(), json!(self.id));
        for (k, v) in &self.user_metadata {
            identity_data.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let mut identity = json!({
            "identity_id": self.identity_id,
            "id": self.id,
            "user_id": self.id,
            "identity_data": identity_data,
            "provider": "email",
            "created_at": timestamp(self.created_at),
            "updated_at": timestamp(self.updated_at),
            "email": self.email,
        });
        let mut user = json!({
            "id": self.id,
            "aud": AUTHENTICATED,
            "role": AUTHENTICATED,
            "email": self.email,
            "phone": "",
            "app_metadata": self.app_metadata,
            "user_metadata": self.user_metadata,
            "created_at": timestamp(self.created_at),
            "updated_at": timestamp(self.updated_at),
            "is_anonymous": false,
        });
        if let Some(t) = self.email_confirmed_at {
            user["email_confirmed_at"] = json!(timestamp(t));
            user["confirmed_at"] = json!(timestamp(t));
        }
        if let Some(t) = self.confirmation_sent_at {
            user["confirmation_sent_at"] = json!(timestamp(t));
        }
        if let Some(t) = self.recovery_sent_at {
            user["recovery_sent_at"] = json!(timestamp(t));
        }
        if let Some(t) = self.last_sign_in_at {
            user["last_sign_in_at"] = json!(timestamp(t));
            identity["last_sign_in_at"] = json!(timestamp(t));
        }
        user["identities"] = json!([identity]);
        user
    }
}

/// What upstream answers for a repeated signup when confirmation is on: a
/// plausible user with a fresh random id, so the answer does not reveal
/// that the address is registered.
pub(crate) fn obfuscated_user(email: &str, data: Map<String, Value>) -> Value {
    let now = timestamp(OffsetDateTime::now_utc());
    json!({
        "id": crate::uuid_v4(),
        "aud": AUTHENTICATED,
        "role": "",
        "email": email,
        "phone": "",
        "confirmation_sent_at": now,
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": data,
        "identities": [],
        "created_at": now,
        "updated_at": now,
        "is_anonymous": false,
    })
}

/// Merges `patch` into `target` like GoTrue's `UpdateAppMetaData`: top-level
/// keys are replaced, a `null` value removes the key.
pub(crate) fn merge_metadata(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            target.remove(&key);
        } else {
            target.insert(key, value);
        }
    }
}

/// How a session was started (the `amr` method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthMethod {
    Password,
    /// A mailed one-time token (upstream's `otp`, for links and codes alike).
    Otp,
}

impl AuthMethod {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Otp => "otp",
        }
    }
}

/// A login.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) user_id: String,
    /// When the login happened (the `amr` timestamp), Unix seconds.
    pub(crate) authenticated_at: i64,
    pub(crate) method: AuthMethod,
}

/// What a mailed one-time token proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OtpKind {
    Confirmation,
    Recovery,
}

/// A mailed one-time token, stored under the SHA-256 of its token hash.
#[derive(Debug, Clone)]
pub(crate) struct OneTimeToken {
    pub(crate) user_id: String,
    pub(crate) kind: OtpKind,
    pub(crate) sent_at: OffsetDateTime,
}

/// The key a token hash is stored under: the store never holds a value
/// that `/verify` would accept.
fn token_key(token_hash: &str) -> [u8; 32] {
    Sha256::digest(token_hash.as_bytes()).into()
}

#[derive(Debug, Clone)]
struct RefreshToken {
    session_id: String,
    /// Spent: exchanged once already.
    revoked: bool,
}

/// Why a refresh failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshFailure {
    NotFound,
    AlreadyUsed,
}

/// How much a logout revokes (`?scope=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogoutScope {
    Global,
    Local,
    Others,
}

/// Everything the stub remembers.
#[derive(Debug, Default)]
pub(crate) struct Store {
    users: HashMap<String, User>,
    /// Lower-cased email to user id.
    by_email: HashMap<String, String>,
    sessions: HashMap<String, Session>,
    refresh_tokens: HashMap<String, RefreshToken>,
    one_time_tokens: HashMap<[u8; 32], OneTimeToken>,
}

impl Store {
    pub(crate) fn user(&self, id: &str) -> Option<&User> {
        self.users.get(id)
    }

    pub(crate) fn user_mut(&mut self, id: &str) -> Option<&mut User> {
        self.users.get_mut(id)
    }

    pub(crate) fn user_by_email(&self, email: &str) -> Option<&User> {
        self.by_email
            .get(&email.to_lowercase())
            .and_then(|id| self.users.get(id))
    }

    pub(crate) fn insert_user(&mut self, user: User) {
        self.by_email
            .insert(user.email.to_lowercase(), user.id.clone());
        self.users.insert(user.id.clone(), user);
    }

    /// Forgets a user whose signup could not be completed.
    pub(crate) fn remove_user(&mut self, id: &str) {
        if let Some(user) = self.users.remove(id) {
            self.by_email.remove(&user.email.to_lowercase());
        }
        self.clear_one_time_tokens(id);
        self.logout(id, None, LogoutScope::Global);
    }

    /// Stores `token_hash` as the user's token of `kind`, voiding the one
    /// before (upstream's `CreateOneTimeToken`).
    pub(crate) fn put_one_time_token(
        &mut self,
        user_id: &str,
        kind: OtpKind,
        token_hash: &str,
        sent_at: OffsetDateTime,
    ) {
        self.one_time_tokens
            .retain(|_, t| !(t.user_id == user_id && t.kind == kind));
        self.one_time_tokens.insert(
            token_key(token_hash),
            OneTimeToken {
                user_id: user_id.to_owned(),
                kind,
                sent_at,
            },
        );
    }

    /// The token stored for `token_hash`, if it is of one of `kinds`.
    pub(crate) fn one_time_token(
        &self,
        token_hash: &str,
        kinds: &[OtpKind],
    ) -> Option<&OneTimeToken> {
        self.one_time_tokens
            .get(&token_key(token_hash))
            .filter(|t| kinds.contains(&t.kind))
    }

    /// Voids every token of the user (upstream's
    /// `ClearAllOneTimeTokensForUser`: after a confirmation, a recovery or
    /// a password change).
    pub(crate) fn clear_one_time_tokens(&mut self, user_id: &str) {
        self.one_time_tokens.retain(|_, t| t.user_id != user_id);
    }

    pub(crate) fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id)
    }

    /// How many live sessions a user has.
    pub(crate) fn session_count(&self, user_id: &str) -> usize {
        self.sessions
            .values()
            .filter(|s| s.user_id == user_id)
            .count()
    }

    /// A new login for `user_id` and its first refresh token.
    pub(crate) fn create_session(
        &mut self,
        user_id: &str,
        now: i64,
        method: AuthMethod,
    ) -> (Session, String) {
        let session = Session {
            id: crate::uuid_v4(),
            user_id: user_id.to_owned(),
            authenticated_at: now,
            method,
        };
        self.sessions.insert(session.id.clone(), session.clone());
        let token = self.new_refresh_token(&session.id);
        (session, token)
    }

    fn new_refresh_token(&mut self, session_id: &str) -> String {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(auth_kit::random::bytes::<16>());
        self.refresh_tokens.insert(
            token.clone(),
            RefreshToken {
                session_id: session_id.to_owned(),
                revoked: false,
            },
        );
        token
    }

    /// Spends `token` and issues its successor in the same session. Reusing
    /// a spent token ends the whole session (reuse detection).
    pub(crate) fn refresh(&mut self, token: &str) -> Result<(Session, String), RefreshFailure> {
        let Some(entry) = self.refresh_tokens.get_mut(token) else {
            return Err(RefreshFailure::NotFound);
        };
        let session_id = entry.session_id.clone();
        if entry.revoked {
            self.delete_session(&session_id);
            return Err(RefreshFailure::AlreadyUsed);
        }
        entry.revoked = true;
        let Some(session) = self.sessions.get(&session_id).cloned() else {
            return Err(RefreshFailure::NotFound);
        };
        let next = self.new_refresh_token(&session_id);
        Ok((session, next))
    }

    /// Ends a session with all its refresh tokens.
    pub(crate) fn delete_session(&mut self, session_id: &str) {
        self.sessions.remove(session_id);
        self.refresh_tokens
            .retain(|_, t| t.session_id != session_id);
    }

    /// Logs `user_id` out of the sessions `scope` names, relative to
    /// `current` (the session of the token used; `None` means global).
    pub(crate) fn logout(&mut self, user_id: &str, current: Option<&str>, scope: LogoutScope) {
        let doomed: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.user_id == user_id)
            .filter(|s| match (scope, current) {
                (LogoutScope::Local, Some(current)) => s.id == current,
                (LogoutScope::Others, Some(current)) => s.id != current,
                _ => true,
            })
            .map(|s| s.id.clone())
            .collect();
        for id in doomed {
            self.delete_session(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn store_with_user() -> (Store, String) {
        let mut store = Store::default();
        let user = User::new("a@example.com".into(), "$argon2id$x".into(), Map::new());
        let id = user.id.clone();
        store.insert_user(user);
        (store, id)
    }

    #[test]
    fn refresh_rotation_and_reuse() {
        let (mut store, id) = store_with_user();
        let (session, first) = store.create_session(&id, 1, AuthMethod::Password);
        let (_, second) = store.refresh(&first).unwrap();
        assert_eq!(
            store.refresh(&first).unwrap_err(),
            RefreshFailure::AlreadyUsed
        );
        // Reuse ended the session: its newer token is gone too.
        assert_eq!(
            store.refresh(&second).unwrap_err(),
            RefreshFailure::NotFound
        );
        assert!(store.session(&session.id).is_none());
        assert_eq!(store.refresh("nope").unwrap_err(), RefreshFailure::NotFound);
    }

    #[test]
    fn logout_scopes() {
        let (mut store, id) = store_with_user();
        let (a, _) = store.create_session(&id, 1, AuthMethod::Password);
        let (b, _) = store.create_session(&id, 1, AuthMethod::Password);
        let (c, _) = store.create_session(&id, 1, AuthMethod::Password);
        store.logout(&id, Some(&a.id), LogoutScope::Others);
        assert!(store.session(&a.id).is_some());
        assert!(store.session(&b.id).is_none() && store.session(&c.id).is_none());
        store.logout(&id, Some(&a.id), LogoutScope::Local);
        assert_eq!(store.session_count(&id), 0);
        store.create_session(&id, 1, AuthMethod::Password);
        store.create_session(&id, 1, AuthMethod::Password);
        store.logout(&id, None, LogoutScope::Local);
        assert_eq!(store.session_count(&id), 0);
    }

    #[test]
    fn one_time_tokens() {
        let (mut store, id) = store_with_user();
        let now = OffsetDateTime::now_utc();
        store.put_one_time_token(&id, OtpKind::Recovery, "first", now);
        store.put_one_time_token(&id, OtpKind::Confirmation, "confirm", now);
        store.put_one_time_token(&id, OtpKind::Recovery, "second", now);
        let recovery = [OtpKind::Recovery];
        assert!(store.one_time_token("first", &recovery).is_none(), "voided");
        assert!(store.one_time_token("second", &recovery).is_some());
        assert!(
            store.one_time_token("confirm", &recovery).is_none(),
            "another kind"
        );
        assert!(
            store
                .one_time_token("confirm", &[OtpKind::Confirmation])
                .is_some()
        );
        // Stored under SHA-256 of the hash, never the hash itself.
        assert!(
            store
                .one_time_tokens
                .keys()
                .all(|k| k.as_slice() != b"second" && k.len() == 32)
        );
        store.clear_one_time_tokens(&id);
        assert!(store.one_time_tokens.is_empty());
    }

    #[test]
    fn metadata_merge() {
        let mut target = json!({"provider": "email", "role": "user"})
            .as_object()
            .unwrap()
            .clone();
        let patch = json!({"role": "admin", "provider": null, "permissions": ["items:delete"]})
            .as_object()
            .unwrap()
            .clone();
        merge_metadata(&mut target, patch);
        assert_eq!(
            Value::Object(target),
            json!({"role": "admin", "permissions": ["items:delete"]})
        );
    }
}
