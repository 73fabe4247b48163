//! A login: the token response the contract describes, what it lacks, and
//! how it is described (never its secret values).

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::http::{Answer, shorten};
use super::jwt::jwt_parts;

/// A login: its tokens and the access token's decoded parts.
pub(super) struct Session {
    pub(super) access: Zeroizing<String>,
    pub(super) refresh: Option<Zeroizing<String>>,
    pub(super) header: Map<String, Value>,
    pub(super) claims: Map<String, Value>,
    /// The `scope` of the token response.
    pub(super) response_scope: Option<String>,
    pub(super) expires_in: Option<i64>,
}

impl Session {
    /// The granted scopes, from the response or else the token; `None` when
    /// the service issues none (a jwt service).
    pub(super) fn scope(&self) -> Option<&str> {
        self.response_scope
            .as_deref()
            .or_else(|| self.claims.get("scope").and_then(Value::as_str))
    }

    pub(super) fn holds(&self, scope: &str) -> bool {
        self.scope()
            .is_some_and(|s| s.split_whitespace().any(|s| s == scope))
    }

    /// Whether the granted scopes are exactly `scope`.
    pub(super) fn holds_only(&self, scope: &str) -> bool {
        self.scope()
            .is_some_and(|granted| granted.split_whitespace().eq([scope]))
    }

    /// The access token's `alg`.
    pub(super) fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }
}

/// What a successful token response lacks (docs/contract.md; RFC 6749 5.1).
pub(super) fn token_response_problems(answer: &Answer) -> Vec<String> {
    if answer.status != 200 {
        return vec![format!("status {}", answer.status)];
    }
    let body = &answer.body;
    let mut problems = Vec::new();
    if body.get("access_token").and_then(Value::as_str).is_none() {
        problems.push("no access_token".to_owned());
    }
    if !body
        .get("token_type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("bearer"))
    {
        problems.push("token_type is not bearer".to_owned());
    }
    if body
        .get("expires_in")
        .and_then(Value::as_i64)
        .is_none_or(|e| e <= 0)
    {
        problems.push("no positive expires_in".to_owned());
    }
    if body.get("refresh_token").and_then(Value::as_str).is_none() {
        problems.push("no refresh_token".to_owned());
    }
    if !answer
        .cache_control
        .as_deref()
        .is_some_and(|c| c.to_ascii_lowercase().contains("no-store"))
    {
        problems.push("no Cache-Control: no-store".to_owned());
    }
    if body
        .get("access_token")
        .and_then(Value::as_str)
        .is_some_and(|t| jwt_parts(t).is_none())
    {
        problems.push("the access token is not a JWT".to_owned());
    }
    problems
}

/// A token response's fields, never their secret values.
pub(super) fn describe_token_answer(answer: &Answer) -> String {
    let body = &answer.body;
    let mut fields = Vec::new();
    for name in ["access_token", "refresh_token"] {
        if body.get(name).is_some() {
            fields.push(name.to_owned());
        }
    }
    if let Some(kind) = body.get("token_type").and_then(Value::as_str) {
        fields.push(format!("token_type {}", shorten(kind, 20)));
    }
    if let Some(expires_in) = body.get("expires_in") {
        fields.push(format!(
            "expires_in {}",
            shorten(&expires_in.to_string(), 20)
        ));
    }
    if let Some(scope) = body.get("scope").and_then(Value::as_str) {
        fields.push(format!("scope '{}'", shorten(scope, 60)));
    }
    let cache = answer.cache_control.as_deref().map_or_else(
        || "no Cache-Control".to_owned(),
        |c| format!("Cache-Control: {}", shorten(c, 40)),
    );
    format!("{} {{{}}}, {cache}", answer.status, fields.join(", "))
}

/// The login in a 200 token response, if it holds a readable JWT.
pub(super) fn session_of(answer: &Answer) -> Option<Session> {
    if answer.status != 200 {
        return None;
    }
    let access = answer.body.get("access_token").and_then(Value::as_str)?;
    let (header, claims) = jwt_parts(access)?;
    Some(Session {
        access: Zeroizing::new(access.to_owned()),
        refresh: answer
            .body
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(|r| Zeroizing::new(r.to_owned())),
        header,
        claims,
        response_scope: answer
            .body
            .get("scope")
            .and_then(Value::as_str)
            .map(str::to_owned),
        expires_in: answer.body.get("expires_in").and_then(Value::as_i64),
    })
}
