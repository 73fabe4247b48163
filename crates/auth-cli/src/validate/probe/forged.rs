//! The forged-token probes: a token without a signature, one signed with
//! another key, and an expired one signed with the service's own key, each
//! a copy of a real token but for that one property.

use anyhow::Result;
use auth_kit::config::catalog;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value, json};

use super::jwt::{alg_none, forge, now, other_key};
use super::session::Session;
use super::{INVALID_TOKEN, Prober};

impl Prober<'_> {
    /// The real token's claims, or (without a login) plausible ones.
    fn token_parts(&self, session: Option<&Session>) -> (Map<String, Value>, Map<String, Value>) {
        if let Some(s) = session {
            return (s.header.clone(), s.claims.clone());
        }
        let env = self.env.map(|e| &e.env);
        let alg = self
            .keys
            .as_ref()
            .and_then(|k| k.algorithm)
            .unwrap_or(Algorithm::HS256);
        let name = self.env.map_or("unknown", |e| e.service_name.as_str());
        let iss = env
            .and_then(|e| e.get(catalog::JWT_ISSUER.name))
            .unwrap_or(name);
        let aud = env
            .and_then(|e| e.get(catalog::JWT_AUDIENCE.name))
            .unwrap_or(name);
        let now = now();
        let header = json!({"alg": format!("{alg:?}"), "typ": "at+jwt"});
        let claims = json!({"sub": "1", "iss": iss, "aud": aud, "iat": now, "exp": now + 600, "jti": auth_kit::random::secret_hex()});
        match (header, claims) {
            (Value::Object(h), Value::Object(c)) => (h, c),
            _ => (Map::new(), Map::new()),
        }
    }

    pub(super) async fn forged_alg_none(&mut self, session: Option<&Session>) -> Result<()> {
        let (header, claims) = self.token_parts(session);
        let answer = self.me(&alg_none(&header, &claims)).await?;
        self.expect_invalid_token("alg=none token (no signature)", &answer);
        Ok(())
    }

    pub(super) async fn forged_other_key(&mut self, session: Option<&Session>) -> Result<()> {
        const PROBE: &str = "token signed with another key";
        let (header, claims) = self.token_parts(session);
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(|a| a.parse().ok())
            .unwrap_or(Algorithm::HS256);
        let token = match other_key(alg).and_then(|key| forge(&header, &claims, &key)) {
            Ok(token) => token,
            Err(e) => {
                self.skip(
                    PROBE,
                    INVALID_TOKEN,
                    format!("cannot sign a {alg:?} token: {e}"),
                );
                return Ok(());
            }
        };
        let answer = self.me(&token).await?;
        self.expect_invalid_token(PROBE, &answer);
        Ok(())
    }

    /// An expired copy of the real token, signed with the service's key,
    /// after a control: the same copy unexpired must be accepted, or the env
    /// file's key is not this service's and a 401 would prove nothing.
    pub(super) async fn forged_expired(&mut self, session: Option<&Session>) -> Result<()> {
        const PROBE: &str = "expired token (signed with the service's key)";
        let (fresh, expired) = match self.fresh_and_expired(session) {
            Ok(tokens) => tokens,
            Err(reason) => {
                self.skip(PROBE, INVALID_TOKEN, reason);
                return Ok(());
            }
        };
        let control = self.me(&fresh).await?;
        if control.status != 200 {
            let reason = format!(
                "a copy of the service's own token re-signed with the env file's key got {}: the env file's key is not this service's",
                control.describe()
            );
            self.skip(PROBE, INVALID_TOKEN, reason);
            return Ok(());
        }
        let answer = self.me(&expired).await?;
        let got = format!("{} (the same token unexpired: 200)", answer.describe());
        self.record(
            answer.is_invalid_token(),
            PROBE,
            &format!("{INVALID_TOKEN}, exp an hour ago"),
            got,
        );
        Ok(())
    }

    /// The real token re-signed with the env file's key, expiring in five
    /// minutes and an hour ago; or why it cannot be (the probe's SKIP).
    fn fresh_and_expired(&self, session: Option<&Session>) -> Result<(String, String), String> {
        let Some(keys) = &self.keys else {
            return Err("no env file with the service's key (pass --env-file)".to_owned());
        };
        let Some(key) = &keys.encoding else {
            return Err(keys
                .problem
                .clone()
                .unwrap_or_else(|| "no signing key in the env file".to_owned()));
        };
        let Some(session) = session else {
            return Err(format!(
                "{}, no real token to copy the claims from",
                self.no_login
            ));
        };
        let service_alg = session.alg().unwrap_or("?");
        if keys.algorithm.map(|a| format!("{a:?}")).as_deref() != Some(service_alg) {
            return Err(format!(
                "the service signs with {service_alg}, the env file configures another algorithm"
            ));
        }
        let now = now();
        let with_times = |iat: i64, exp: i64| {
            let mut claims = session.claims.clone();
            claims.insert("iat".to_owned(), json!(iat));
            claims.insert("exp".to_owned(), json!(exp));
            if claims.contains_key("nbf") {
                claims.insert("nbf".to_owned(), json!(iat));
            }
            forge(&session.header, &claims, key)
        };
        match (
            with_times(now, now + 300),
            with_times(now - 7200, now - 3600),
        ) {
            (Ok(fresh), Ok(expired)) => Ok((fresh, expired)),
            (Err(e), _) | (_, Err(e)) => Err(format!("cannot sign: {e}")),
        }
    }
}
