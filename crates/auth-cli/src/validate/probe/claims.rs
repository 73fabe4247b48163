//! The probes of the service's own tokens: their claims (present, sane,
//! verified with the env file's key when it is known) and the published
//! keys (JWKS).

use anyhow::Result;
use auth_kit::config::catalog;
use jsonwebtoken::Validation;
use serde_json::{Map, Value};

use super::Prober;
use super::http::shorten;
use super::jwt::{now, seconds};
use super::session::Session;

impl Prober<'_> {
    /// The access token's claims: present and sane (docs/contract.md, Tokens).
    pub(super) fn claims(&mut self, session: Option<&Session>) {
        const PROBE: &str = "access token claims";
        let expected =
            "sub, iss, aud, iat, exp (in the future, at most 24 h), jti; scope as granted";
        let Some(session) = session else {
            self.skip_no_login(PROBE, expected);
            return;
        };
        let (problems, summary) = self.claim_problems(session);
        if problems.is_empty() {
            self.record(true, PROBE, expected, summary);
        } else {
            self.record(
                false,
                PROBE,
                expected,
                format!("{} ({summary})", problems.join("; ")),
            );
        }
    }

    /// What is wrong with the token's claims, and a summary of them.
    fn claim_problems(&self, s: &Session) -> (Vec<String>, String) {
        let mut problems = Vec::new();
        let claims = &s.claims;
        let text = |name: &str| claim_text(claims, name);
        let alg = s.alg().unwrap_or("(none)");
        if alg.eq_ignore_ascii_case("none") {
            problems.push("the token is unsigned (alg none)".to_owned());
        }
        let audiences = self.identity_problems(claims, &mut problems);
        let now = now();
        let exp = time_problems(s, now, &mut problems);
        let claim_scope = claims.get("scope");
        scope_problems(s.response_scope.as_deref(), claim_scope, &mut problems);
        let signature = self.signature_problems(s, alg, &audiences, &mut problems);
        let scope = match claim_scope.and_then(Value::as_str) {
            Some(scope) => format!("scope '{scope}'"),
            None => "no scope (a service without scopes)".to_owned(),
        };
        let expiry = exp.map_or_else(
            || "no exp".to_owned(),
            |exp| format!("exp in {} s", exp - now),
        );
        let summary = format!(
            "alg {alg}, iss '{}', aud '{}', {expiry}, {scope}; {signature}",
            shorten(text("iss").unwrap_or("-"), 40),
            shorten(&audiences.join(" "), 40)
        );
        (problems, summary)
    }

    /// Who the token is for and from: sub, iss, jti and aud present, iss
    /// and aud as the env file configures them. The audiences.
    fn identity_problems<'c>(
        &self,
        claims: &'c Map<String, Value>,
        problems: &mut Vec<String>,
    ) -> Vec<&'c str> {
        for name in ["sub", "iss", "jti"] {
            if claim_text(claims, name).is_none() {
                problems.push(format!("no {name}"));
            }
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if audiences.is_empty() {
            problems.push("no aud".to_owned());
        }
        let env = self.env.map(|e| &e.env);
        if let Some(issuer) = env.and_then(|e| e.get(catalog::JWT_ISSUER.name))
            && claim_text(claims, "iss") != Some(issuer.trim())
        {
            problems.push(format!("iss is not '{}' (JWT_ISSUER)", issuer.trim()));
        }
        if let Some(audience) = env.and_then(|e| e.get(catalog::JWT_AUDIENCE.name))
            && !audiences.contains(&audience.trim())
        {
            problems.push(format!(
                "aud does not contain '{}' (JWT_AUDIENCE)",
                audience.trim()
            ));
        }
        audiences
    }

    /// Whether the token verifies with the env file's key, when it is
    /// known; what was done, for the summary.
    fn signature_problems(
        &self,
        s: &Session,
        alg: &str,
        audiences: &[&str],
        problems: &mut Vec<String>,
    ) -> String {
        let mut signature = "payload read without verifying (no key)".to_owned();
        if let Some(keys) = &self.keys
            && let (Some(configured), Some(decoding)) = (keys.algorithm, &keys.decoding)
        {
            if format!("{configured:?}") == alg {
                let mut validation = Validation::new(configured);
                validation.set_issuer(&[claim_text(&s.claims, "iss").unwrap_or_default()]);
                validation.set_audience(audiences);
                validation.leeway = 60;
                match jsonwebtoken::decode::<Value>(s.access.as_str(), decoding, &validation) {
                    Ok(_) => signature = "signature verified with the env file's key".to_owned(),
                    Err(e) => problems.push(format!("does not verify with the env file's key ({e}): is --env-file this service's?")),
                }
            } else {
                problems.push(format!(
                    "signed with {alg}, the env file configures {configured:?}"
                ));
            }
        }
        signature
    }

    /// Asymmetric keys are published with a `kid`;
    /// an HMAC service answers 404 (its secret is never published).
    pub(super) async fn jwks(&mut self, session: Option<&Session>) -> Result<()> {
        const PROBE: &str = "GET /.well-known/jwks.json";
        let Some(alg) = session.and_then(Session::alg).map(str::to_owned) else {
            self.skip_no_login(PROBE, "200 with the token's kid, or 404 for HMAC");
            return Ok(());
        };
        let answer = self.http.get("/.well-known/jwks.json", None).await?;
        if alg.starts_with("HS") {
            let got = answer.status.to_string();
            self.record(
                answer.status == 404,
                PROBE,
                "404 (an HMAC secret is never published)",
                got,
            );
            return Ok(());
        }
        let kid = session.and_then(|s| s.header.get("kid").and_then(Value::as_str));
        let kids: Vec<&str> = answer.body["keys"]
            .as_array()
            .map(|keys| keys.iter().filter_map(|k| k["kid"].as_str()).collect())
            .unwrap_or_default();
        let listed = kid.is_some_and(|kid| kids.contains(&kid));
        let got = format!(
            "{}, {} key(s){}",
            answer.status,
            kids.len(),
            match kid {
                None => ", and the token has no kid",
                Some(_) if listed => ", the token's kid among them",
                Some(_) => ", the token's kid NOT among them",
            }
        );
        self.record(
            answer.status == 200 && listed,
            PROBE,
            "200 with the key of the token's kid",
            got,
        );
        Ok(())
    }
}

/// A claim's text, when it is a non-empty string.
fn claim_text<'c>(claims: &'c Map<String, Value>, name: &str) -> Option<&'c str> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
}

/// exp in the future and at most a day away, iat not in the future and
/// before exp, expires_in matching them. The exp.
fn time_problems(s: &Session, now: i64, problems: &mut Vec<String>) -> Option<i64> {
    let (exp, iat) = (seconds(s.claims.get("exp")), seconds(s.claims.get("iat")));
    match exp {
        None => problems.push("no numeric exp".to_owned()),
        Some(exp) if exp <= now => problems.push("exp is in the past".to_owned()),
        // 1440 minutes is the longest ACCESS_TOKEN_EXPIRE_MINUTES allowed.
        Some(exp) if exp > now + 1440 * 60 + 120 => {
            problems.push("exp is more than 24 hours away".to_owned())
        }
        Some(_) => {}
    }
    match (iat, exp) {
        (None, _) => problems.push("no numeric iat".to_owned()),
        (Some(iat), _) if iat > now + 60 => problems.push("iat is in the future".to_owned()),
        (Some(iat), Some(exp)) if exp <= iat => problems.push("exp is not after iat".to_owned()),
        (Some(iat), Some(exp)) => {
            if let Some(expires_in) = s.expires_in
                && (expires_in - (exp - iat)).abs() > 5
            {
                problems.push(format!(
                    "expires_in {expires_in} does not match exp - iat = {}",
                    exp - iat
                ));
            }
        }
        _ => {}
    }
    exp
}

/// The scope claim, a space-separated string, as the token response granted.
fn scope_problems(granted: Option<&str>, claim: Option<&Value>, problems: &mut Vec<String>) {
    match (granted, claim) {
        (None, None) => {}
        (Some(granted), Some(Value::String(claim))) => {
            let set = |s: &str| {
                s.split_whitespace()
                    .map(str::to_owned)
                    .collect::<std::collections::BTreeSet<_>>()
            };
            if set(granted) != set(claim) {
                problems.push("the scope claim differs from the response's scope".to_owned());
            }
        }
        (_, Some(Value::String(_))) => {
            problems.push("a scope claim but no scope in the token response".to_owned())
        }
        (_, Some(_)) => {
            problems.push("the scope claim is not a space-separated string (RFC 9068)".to_owned())
        }
        (Some(_), None) => problems
            .push("the token response has a scope but the token has no scope claim".to_owned()),
    }
}
