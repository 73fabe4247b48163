//! The probes' transport: one request at a time to the service under test,
//! and the parts of its answer the contract speaks about.

use anyhow::{Result, anyhow};
use serde_json::Value;

use super::super::{IO_TIMEOUT, error_chain};

/// The service under test: its base URL and the client that reaches it.
pub(super) struct Http {
    client: reqwest::Client,
    /// Without a trailing slash.
    pub(super) base: String,
}

/// What came back: the parts the contract speaks about.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) challenge: Option<String>,
    pub(super) cache_control: Option<String>,
    /// The JSON body, `Null` when there is none.
    pub(super) body: Value,
}

impl Http {
    pub(super) fn new(client: reqwest::Client, base: String) -> Self {
        Self { client, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path`, with `token` as the bearer token when there is one.
    pub(super) async fn get(&self, path: &str, token: Option<&str>) -> Result<Answer> {
        let request = self.client.get(self.url(path));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        self.send(request, &format!("GET {path}")).await
    }

    /// POST `body` as JSON to `path`.
    pub(super) async fn post_json(&self, path: &str, body: &Value) -> Result<Answer> {
        let request = self.client.post(self.url(path)).json(body);
        self.send(request, &format!("POST {path}")).await
    }

    /// POST to `path` with `token` as the bearer token and no body.
    pub(super) async fn post_bearer(&self, path: &str, token: &str) -> Result<Answer> {
        let request = self.client.post(self.url(path)).bearer_auth(token);
        self.send(request, &format!("POST {path}")).await
    }

    /// POST `form` to the token endpoint.
    pub(super) async fn token(&self, form: &[(&str, &str)]) -> Result<Answer> {
        let request = self.client.post(self.url("/token")).form(form);
        self.send(request, "POST /token").await
    }

    /// Sends one request; a transport failure ends the run (one line).
    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Answer> {
        let stopped = |e: reqwest::Error| {
            anyhow!(
                "{} stopped answering ({what}): {}",
                self.base,
                error_chain(&e)
            )
        };
        let response = request.send().await.map_err(stopped)?;
        let status = response.status().as_u16();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let challenge = header(reqwest::header::WWW_AUTHENTICATE);
        let cache_control = header(reqwest::header::CACHE_CONTROL);
        let bytes = response.bytes().await.map_err(stopped)?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            challenge,
            cache_control,
            body,
        })
    }

    /// GET /: the public route, and the reachability check, so its failure
    /// is the one line. Its status, and whether the body is JSON.
    pub(super) async fn reach(&self) -> Result<(u16, bool)> {
        let unreachable = |e: reqwest::Error| {
            let cause = error_chain(&e);
            let base = &self.base;
            if e.is_timeout() {
                anyhow!(
                    "{base} did not answer within {} s ({cause}): is the service running, and does it speak HTTP?",
                    IO_TIMEOUT.as_secs()
                )
            } else if e.is_connect() {
                anyhow!(
                    "cannot connect to {base}: {cause}; is the service running, and is the URL right?"
                )
            } else {
                anyhow!("{base} does not answer HTTP ({cause}): check the URL and the port")
            }
        };
        let response = self
            .client
            .get(self.url("/"))
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(unreachable)?;
        Ok((status, serde_json::from_slice::<Value>(&bytes).is_ok()))
    }
}

impl Answer {
    pub(super) fn error_code(&self) -> Option<&str> {
        self.body.get("error").and_then(Value::as_str)
    }

    /// 400 with `error` = `code`.
    pub(super) fn is_error(&self, code: &str) -> bool {
        self.status == 400 && self.error_code() == Some(code)
    }

    pub(super) fn is_invalid_token(&self) -> bool {
        self.status == 401
            && self
                .challenge
                .as_deref()
                .is_some_and(|c| is_bearer(c) && c.contains("error=\"invalid_token\""))
    }

    /// The status and, for errors, the challenge or the error code; never a body's content.
    pub(super) fn describe(&self) -> String {
        let mut out = self.status.to_string();
        match &self.challenge {
            Some(challenge) => {
                out.push_str(&format!(", WWW-Authenticate: {}", shorten(challenge, 110)))
            }
            None => {
                if matches!(self.status, 401 | 403) {
                    out.push_str(", no WWW-Authenticate");
                }
                if let Some(code) = self.error_code() {
                    out.push_str(&format!(", error \"{}\"", shorten(code, 40)));
                }
            }
        }
        out
    }
}

pub(super) fn is_bearer(challenge: &str) -> bool {
    challenge
        .get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
}

/// At most `max` characters of `s`, "..." marking a cut.
pub(super) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}...", s.chars().take(max).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let answer = |status, challenge: Option<&str>| Answer {
            status,
            challenge: challenge.map(str::to_owned),
            cache_control: None,
            body: Value::Null,
        };
        assert!(
            answer(
                401,
                Some("Bearer error=\"invalid_token\", error_description=\"x\"")
            )
            .is_invalid_token()
        );
        assert!(answer(401, Some("bearer error=\"invalid_token\"")).is_invalid_token());
        assert!(!answer(401, Some("Bearer")).is_invalid_token());
        assert!(!answer(401, None).is_invalid_token());
        assert!(!answer(403, Some("Bearer error=\"invalid_token\"")).is_invalid_token());
        assert_eq!(answer(401, None).describe(), "401, no WWW-Authenticate");
    }
}
