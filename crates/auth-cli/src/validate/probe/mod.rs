//! `cargo auth validate --url URL`: probes a running service over HTTP
//! against the contract (docs/contract.md).
//!
//! It knows only the contract, not this project's code (beyond the HTTP
//! client, and jsonwebtoken to forge test tokens), so it works against any
//! service that follows it, in any language. Bounded: about twenty requests
//! in a fixed order, each with a 5 s timeout, never a retry. The first
//! request doubles as the reachability check: a URL that is unreachable,
//! refuses connections or does not speak HTTP is one line and exit status 1.
//! Tokens, passwords and keys are never printed.
//!
//! Tokens are forged from a real one when a login is possible (its header
//! and claims copied, so only the tested property differs); a probe that
//! needs the service's key (the expired token) runs only when the env file
//! supplies it, and says SKIP otherwise, never PASS.

use anyhow::{Result, anyhow, bail};
use zeroize::Zeroizing;

use super::{LoadedEnv, http_client};
use http::{Answer, Http, is_bearer};
use keys::ServiceKeys;
use print::Printer;
use record::{Probe, Progress, Record, Verdict};

mod accounts;
mod claims;
mod forged;
mod http;
mod jwt;
mod keys;
mod print;
mod record;
mod refresh;
mod scopes;
mod session;

const INVALID_TOKEN: &str = "401, WWW-Authenticate: Bearer error=\"invalid_token\"";

/// Runs every probe against `url`; an error is one line (unreachable URL).
pub async fn run(
    url: &str,
    env: Option<&LoadedEnv>,
    credentials: Option<(String, Zeroizing<String>)>,
    json: bool,
) -> Result<()> {
    let base = base_url(url)?;
    let client = http_client().map_err(|e| anyhow!("cannot build the HTTP client: {e}"))?;
    let printer = Printer::new(json, &base, env);
    let mut prober = Prober {
        http: Http::new(client, base.clone()),
        keys: env.map(|e| ServiceKeys::from_env(&e.env)),
        env,
        progress: &printer,
        record: Record::default(),
        no_login: "no login".to_owned(),
    };
    prober.all(credentials).await?;

    printer.finish(&prober.record)?;
    let fail = prober.record.tally().fail;
    if fail > 0 {
        bail!(
            "{fail} probe{} FAILED against {base}: see the FAIL lines",
            if fail == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// The base URL without a trailing slash; anything but http(s) is refused.
fn base_url(raw: &str) -> Result<String> {
    let shown: String = raw.chars().take(100).collect();
    let example = "give the service's base URL, e.g. --url http://127.0.0.1:8000";
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|_| anyhow!("'{shown}' is not a URL: {example}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("'{shown}' is not an http:// or https:// URL: {example}");
    }
    if url.host_str().is_none_or(str::is_empty) {
        bail!("'{shown}' has no host: {example}");
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!(
            "give the URL without credentials: log in with --username (its password from VALIDATE_PASSWORD or a prompt)"
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("'{shown}' has a query or fragment: {example}");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Runs the probes and records their outcomes; formats and prints nothing
/// itself (its [`Progress`] hears of each outcome).
struct Prober<'a> {
    http: Http,
    keys: Option<ServiceKeys>,
    env: Option<&'a LoadedEnv>,
    progress: &'a dyn Progress,
    record: Record,
    /// Why the probes that need a login are skipped, when they are.
    no_login: String,
}

/// A username and password to log in with.
type Credentials = (String, Zeroizing<String>);

impl Prober<'_> {
    async fn all(&mut self, credentials: Option<Credentials>) -> Result<()> {
        // First the reachability check, so an unreachable URL is one line and nothing else.
        let (root_status, root_json) = self.http.reach().await?;
        self.progress.reached(self.keys.as_ref());
        let got = format!(
            "{root_status}{}",
            if root_json {
                " with JSON"
            } else {
                " without a JSON body"
            }
        );
        self.record(
            root_status == 200 && root_json,
            "GET / (public)",
            "200 with a JSON body",
            got,
        );

        let bare = self.http.get("/users/me", None).await?;
        let bare_challenge = bare.status == 401
            && bare
                .challenge
                .as_deref()
                .is_some_and(|c| is_bearer(c) && !c.contains("error="));
        self.record(
            bare_challenge,
            "GET /users/me without a token",
            "401, WWW-Authenticate: Bearer (no error)",
            bare.describe(),
        );

        let credentials = match credentials {
            Some(c) => Some(c),
            None => self.signup().await?,
        };
        let session = match &credentials {
            Some((username, password)) => self.first_login(username, password).await?,
            None => None,
        };
        // One failed login is enough: more would only feed the service's lockout.
        let credentials = credentials.filter(|_| session.is_some());
        let session = session.as_ref();

        let garbage = self.me("auth-cli-validate-garbage-token").await?;
        self.expect_invalid_token("garbage bearer token", &garbage);
        self.forged_alg_none(session).await?;
        self.forged_other_key(session).await?;
        self.forged_expired(session).await?;
        self.claims(session);
        self.jwks(session).await?;
        self.user_me(session, credentials.as_ref().map(|c| c.0.as_str()))
            .await?;
        self.missing_scope(session, credentials.as_ref()).await?;
        self.unheld_scope(session, credentials.as_ref()).await?;
        // Before the refresh probes, which end this login.
        self.forgot_password(session).await?;
        self.down_scoped_admin(session, credentials.as_ref())
            .await?;
        self.refresh(session).await?;
        self.logout(credentials.as_ref()).await
    }

    /// Records a PASS or FAIL.
    fn record(&mut self, pass: bool, probe: &'static str, expected: &str, got: String) {
        let status = if pass { Verdict::Pass } else { Verdict::Fail };
        self.push(Probe {
            status,
            probe,
            expected: expected.to_owned(),
            got,
        });
    }

    /// Records a SKIP and why.
    fn skip(&mut self, probe: &'static str, expected: &str, reason: impl Into<String>) {
        self.push(Probe {
            status: Verdict::Skip,
            probe,
            expected: expected.to_owned(),
            got: reason.into(),
        });
    }

    /// Records `probe` as skipped for want of a login.
    fn skip_no_login(&mut self, probe: &'static str, expected: &str) {
        let reason = self.no_login.clone();
        self.skip(probe, expected, reason);
    }

    fn push(&mut self, probe: Probe) {
        self.progress.recorded(&probe);
        self.record.push(probe);
    }

    fn expect_invalid_token(&mut self, probe: &'static str, answer: &Answer) {
        self.record(
            answer.is_invalid_token(),
            probe,
            INVALID_TOKEN,
            answer.describe(),
        );
    }

    /// GET /users/me with `token`.
    async fn me(&self, token: &str) -> Result<Answer> {
        self.http.get("/users/me", Some(token)).await
    }

    async fn login(&self, username: &str, password: &str, scope: Option<&str>) -> Result<Answer> {
        let mut form = vec![
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        self.http.token(&form).await
    }

    async fn refresh_with(&self, refresh_token: &str) -> Result<Answer> {
        self.http
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            base_url("http://127.0.0.1:8000/").unwrap(),
            "http://127.0.0.1:8000"
        );
        assert_eq!(
            base_url("https://api.example.com/v1").unwrap(),
            "https://api.example.com/v1"
        );
        for bad in [
            "ftp://x",
            "not a url",
            "http://u:p@host",
            "http://host/?q=1",
            "file:///etc/passwd",
        ] {
            let e = base_url(bad).unwrap_err().to_string();
            assert!(!e.contains('\n') && !e.contains("p@host"), "{e}");
        }
    }
}
