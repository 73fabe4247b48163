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

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail};
use auth_kit::token::SigningAlgorithm;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::{IO_TIMEOUT, LoadedEnv, error_chain, http_client};

/// The verdict of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
enum Verdict {
    Pass,
    Fail,
    Skip,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        }
    }
}

/// One probe's line: what was sent, what the contract expects, what came back.
#[derive(Debug, Serialize)]
struct Probe {
    status: Verdict,
    probe: &'static str,
    expected: String,
    got: String,
}

#[derive(Serialize)]
struct ProbeReport<'a> {
    url: &'a str,
    env_file: Option<&'a std::path::Path>,
    probes: &'a [Probe],
    pass: usize,
    fail: usize,
    skip: usize,
}

const INVALID_TOKEN: &str = "401, WWW-Authenticate: Bearer error=\"invalid_token\"";
const NAME_WIDTH: usize = 46;

/// Runs every probe against `url`; an error is one line (unreachable URL).
pub async fn run(
    url: &str,
    env: Option<&LoadedEnv>,
    credentials: Option<(String, Zeroizing<String>)>,
    json: bool,
) -> Result<()> {
    let base = base_url(url)?;
    let client = http_client().map_err(|e| anyhow!("cannot build the HTTP client: {e}"))?;
    let keys = env.map(|e| ServiceKeys::from_env(&e.env));
    let mut prober = Prober {
        client,
        base: base.clone(),
        keys,
        env,
        json,
        results: Vec::new(),
        no_login: "no login".to_owned(),
    };
    prober.all(credentials).await?;

    let results = &prober.results;
    let count = |v| results.iter().filter(|p| p.status == v).count();
    let (pass, fail, skip) = (
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Skip),
    );
    if json {
        let report = ProbeReport {
            url: &base,
            env_file: env.map(|e| e.path.as_path()),
            probes: results,
            pass,
            fail,
            skip,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "\n{} probes: {pass} PASS, {fail} FAIL, {skip} SKIP",
            results.len()
        );
    }
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

/// What the env file says about the service's keys.
struct ServiceKeys {
    algorithm: Option<Algorithm>,
    /// To forge tokens the service should find valid but for one property.
    encoding: Option<EncodingKey>,
    /// To verify the service's own tokens.
    decoding: Option<DecodingKey>,
    /// Why a key is missing, when it is.
    problem: Option<String>,
}

impl ServiceKeys {
    fn from_env(env: &auth_kit::config::Environment) -> Self {
        let mut keys = ServiceKeys {
            algorithm: None,
            encoding: None,
            decoding: None,
            problem: None,
        };
        let alg = match auth_kit::config::algorithm(env) {
            Ok(alg) => alg,
            Err(e) => {
                keys.problem = Some(e.problem().to_owned());
                return keys;
            }
        };
        keys.algorithm = Some(jwt_algorithm(alg));
        if alg.is_hmac() {
            match env.get("SECRET_KEY") {
                // Used as its UTF-8 bytes, as written (docs/contract.md, Tokens).
                Some(secret) => {
                    keys.encoding = EncodingKey::from_secret(secret.as_bytes()).ok();
                    keys.decoding = DecodingKey::from_secret(secret.as_bytes()).ok();
                }
                None => keys.problem = Some("the env file sets no SECRET_KEY".to_owned()),
            }
            return keys;
        }
        let read = |var: &str| -> Result<Zeroizing<Vec<u8>>, String> {
            let path = env
                .get(var)
                .ok_or_else(|| format!("the env file sets no {var}"))?;
            std::fs::read(path.trim())
                .map(Zeroizing::new)
                .map_err(|e| format!("{var} cannot be read ({e})"))
        };
        match read("JWT_PRIVATE_KEY_FILE") {
            Ok(pem) => {
                keys.encoding = match alg {
                    SigningAlgorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
                    SigningAlgorithm::ES256 => EncodingKey::from_ec_pem(&pem),
                    _ => EncodingKey::from_ed_pem(&pem),
                }
                .ok();
            }
            Err(problem) => keys.problem = Some(problem),
        }
        if let Ok(pem) = read("JWT_PUBLIC_KEY_FILE") {
            keys.decoding = match alg {
                SigningAlgorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                SigningAlgorithm::ES256 => DecodingKey::from_ec_pem(&pem),
                _ => DecodingKey::from_ed_pem(&pem),
            }
            .ok();
        }
        if keys.encoding.is_none() && keys.problem.is_none() {
            keys.problem = Some(format!(
                "JWT_PRIVATE_KEY_FILE is not a PEM {alg} private key"
            ));
        }
        keys
    }

    fn describe(&self) -> String {
        match (&self.algorithm, &self.encoding, &self.problem) {
            (Some(alg), Some(_), _) => {
                format!("{alg:?}, the service's signing key is known (never shown)")
            }
            (_, _, Some(problem)) => format!("no usable signing key ({problem})"),
            _ => "no usable signing key".to_owned(),
        }
    }
}

fn jwt_algorithm(alg: SigningAlgorithm) -> Algorithm {
    match alg {
        SigningAlgorithm::HS256 => Algorithm::HS256,
        SigningAlgorithm::HS384 => Algorithm::HS384,
        SigningAlgorithm::HS512 => Algorithm::HS512,
        SigningAlgorithm::RS256 => Algorithm::RS256,
        SigningAlgorithm::ES256 => Algorithm::ES256,
        SigningAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// What came back: the parts the contract speaks about.
struct Answer {
    status: u16,
    challenge: Option<String>,
    cache_control: Option<String>,
    /// The JSON body, `Null` when there is none.
    body: Value,
}

impl Answer {
    fn error_code(&self) -> Option<&str> {
        self.body.get("error").and_then(Value::as_str)
    }

    fn is_invalid_token(&self) -> bool {
        self.status == 401
            && self
                .challenge
                .as_deref()
                .is_some_and(|c| is_bearer(c) && c.contains("error=\"invalid_token\""))
    }

    /// The status and, for errors, the challenge or the error code; never a body's content.
    fn describe(&self) -> String {
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

fn is_bearer(challenge: &str) -> bool {
    challenge
        .get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}...", s.chars().take(max).collect::<String>())
    }
}

/// A login: its tokens and the access token's decoded parts.
struct Session {
    access: Zeroizing<String>,
    refresh: Option<Zeroizing<String>>,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    /// The `scope` of the token response.
    response_scope: Option<String>,
    expires_in: Option<i64>,
}

impl Session {
    /// The granted scopes, from the response or else the token; `None` when
    /// the service issues none (a jwt service).
    fn scope(&self) -> Option<&str> {
        self.response_scope
            .as_deref()
            .or_else(|| self.claims.get("scope").and_then(Value::as_str))
    }

    fn holds(&self, scope: &str) -> bool {
        self.scope()
            .is_some_and(|s| s.split_whitespace().any(|s| s == scope))
    }
}

/// The header and claims of a JWT, decoded without verifying.
fn jwt_parts(token: &str) -> Option<(Map<String, Value>, Map<String, Value>)> {
    let mut parts = token.split('.');
    let (header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let decode = |part: &str| -> Option<Map<String, Value>> {
        let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
        match serde_json::from_slice(&bytes).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    };
    Some((decode(header)?, decode(payload)?))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A NumericDate claim as whole seconds.
fn seconds(value: Option<&Value>) -> Option<i64> {
    #[allow(clippy::cast_possible_truncation)] // NumericDates are far inside i64
    value.and_then(Value::as_f64).map(|f| f as i64)
}

/// Signs `claims` with `header`'s algorithm, type and key id.
fn forge(
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
    key: &EncodingKey,
) -> Result<String, String> {
    let alg: Algorithm = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok())
        .ok_or("the token's alg is not one jsonwebtoken signs")?;
    let mut forged = Header::new(alg);
    forged.typ = header.get("typ").and_then(Value::as_str).map(str::to_owned);
    forged.kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
    jsonwebtoken::encode(&forged, claims, key).map_err(|e| e.to_string())
}

/// The same claims with `alg: none` and no signature.
fn alg_none(header: &Map<String, Value>, claims: &Map<String, Value>) -> String {
    let mut header = header.clone();
    header.insert("alg".to_owned(), json!("none"));
    let encode =
        |map: &Map<String, Value>| URL_SAFE_NO_PAD.encode(Value::Object(map.clone()).to_string());
    format!("{}.{}.", encode(&header), encode(claims))
}

/// A fresh key of `alg`'s kind, which the service has never seen.
fn other_key(alg: Algorithm) -> Result<EncodingKey, String> {
    let pair = |alg| crate::setup_jwt::generate_key_pair(alg).map_err(|e| e.to_string());
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(auth_kit::random::secret_hex().as_bytes())
                .map_err(|e| e.to_string())
        }
        Algorithm::ES256 => {
            EncodingKey::from_ec_pem(pair(SigningAlgorithm::ES256)?.private_pem.as_bytes())
                .map_err(|e| e.to_string())
        }
        Algorithm::EdDSA => {
            EncodingKey::from_ed_pem(pair(SigningAlgorithm::EdDSA)?.private_pem.as_bytes())
                .map_err(|e| e.to_string())
        }
        Algorithm::RS256 => {
            EncodingKey::from_rsa_pem(pair(SigningAlgorithm::RS256)?.private_pem.as_bytes())
                .map_err(|e| e.to_string())
        }
        other => Err(format!("{other:?} is not an algorithm of the contract")),
    }
}

struct Prober<'a> {
    client: reqwest::Client,
    base: String,
    keys: Option<ServiceKeys>,
    env: Option<&'a LoadedEnv>,
    json: bool,
    results: Vec<Probe>,
    /// Why the probes that need a login are skipped, when they are.
    no_login: String,
}

/// A username and password to log in with.
type Credentials = (String, Zeroizing<String>);

impl Prober<'_> {
    async fn all(&mut self, credentials: Option<Credentials>) -> Result<()> {
        // First the reachability check, so an unreachable URL is one line and nothing else.
        let (root_status, root_json) = self.reach().await?;
        if !self.json {
            println!(
                "Probing {} against the HTTP contract (each request times out after {} s; no retries).",
                self.base,
                IO_TIMEOUT.as_secs()
            );
            match (self.env, &self.keys) {
                (Some(env), Some(keys)) => {
                    println!("Keys from {}: {}.\n", env.path.display(), keys.describe())
                }
                _ => println!(
                    "No env file: the probes that need the service's key are skipped (pass --env-file).\n"
                ),
            }
        }
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

        let bare = self
            .send(self.client.get(self.url("/users/me")), "GET /users/me")
            .await?;
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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn record(&mut self, pass: bool, probe: &'static str, expected: &str, got: String) {
        let status = if pass { Verdict::Pass } else { Verdict::Fail };
        self.push(Probe {
            status,
            probe,
            expected: expected.to_owned(),
            got,
        });
    }

    fn skip(&mut self, probe: &'static str, expected: &str, reason: impl Into<String>) {
        self.push(Probe {
            status: Verdict::Skip,
            probe,
            expected: expected.to_owned(),
            got: reason.into(),
        });
    }

    fn push(&mut self, probe: Probe) {
        if !self.json {
            match probe.status {
                Verdict::Skip => {
                    println!("SKIP  {:<NAME_WIDTH$}  skipped: {}", probe.probe, probe.got)
                }
                v => println!(
                    "{}  {:<NAME_WIDTH$}  expected {}; got {}",
                    v.label(),
                    probe.probe,
                    probe.expected,
                    probe.got
                ),
            }
        }
        self.results.push(probe);
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

    async fn me(&self, token: &str) -> Result<Answer> {
        self.send(
            self.client.get(self.url("/users/me")).bearer_auth(token),
            "GET /users/me",
        )
        .await
    }

    async fn token(&self, form: &[(&str, &str)]) -> Result<Answer> {
        self.send(
            self.client.post(self.url("/token")).form(form),
            "POST /token",
        )
        .await
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
        self.token(&form).await
    }

    async fn refresh_with(&self, refresh_token: &str) -> Result<Answer> {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    fn expect_invalid_token(&mut self, probe: &'static str, answer: &Answer) {
        self.record(
            answer.is_invalid_token(),
            probe,
            INVALID_TOKEN,
            answer.describe(),
        );
    }

    /// GET /: the public route, and the reachability check, so its failure
    /// is the one line. Its status, and whether the body is JSON.
    async fn reach(&self) -> Result<(u16, bool)> {
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

    /// Signs up a throwaway user when the service offers signup.
    async fn signup(&mut self) -> Result<Option<Credentials>> {
        const PROBE: &str = "POST /auth/signup (a throwaway user)";
        let username = format!("validate-{}", &auth_kit::random::secret_hex()[..10]);
        let password = Zeroizing::new(auth_kit::random::secret_hex()[..24].to_owned());
        // An address at a reserved domain (RFC 2606), so the forgot-password
        // probe has a known address; its verification mail goes nowhere.
        let body = json!({"username": username, "password": password.as_str(), "email": format!("{username}@example.com")});
        let answer = self
            .send(
                self.client.post(self.url("/auth/signup")).json(&body),
                "POST /auth/signup",
            )
            .await?;
        match answer.status {
            201 => {
                let got = format!("201: user '{username}' (it stays in the service's database)");
                self.record(true, PROBE, "201", got);
                Ok(Some((username, password)))
            }
            404 | 405 => {
                self.no_login =
                    "no login: the service has no signup, pass --username (and VALIDATE_PASSWORD)"
                        .to_owned();
                let reason = format!(
                    "no signup here ({}): pass --username (and VALIDATE_PASSWORD) to test logins",
                    answer.status
                );
                self.skip(PROBE, "201", reason);
                Ok(None)
            }
            _ => {
                self.no_login =
                    "no login: the signup failed (or pass --username and VALIDATE_PASSWORD)"
                        .to_owned();
                self.record(false, PROBE, "201", answer.describe());
                Ok(None)
            }
        }
    }

    async fn first_login(&mut self, username: &str, password: &str) -> Result<Option<Session>> {
        const PROBE: &str = "POST /token (password grant)";
        let expected = "200 {access_token, token_type bearer, expires_in, refresh_token}, Cache-Control: no-store";
        let answer = self.login(username, password, None).await?;
        let problems = token_response_problems(&answer);
        let session = session_of(&answer);
        let got = if answer.status == 200 {
            describe_token_answer(&answer)
        } else {
            answer.describe()
        };
        match (&session, problems.is_empty()) {
            (Some(_), true) => self.record(true, PROBE, expected, got),
            _ => {
                self.no_login = "no login: the login failed".to_owned();
                let got = match answer.status {
                    200 => format!("{got} ({})", problems.join("; ")),
                    400 if answer.body["error_description"] == "email not verified" => format!(
                        "{got}: the service requires verified emails; pass --username (and VALIDATE_PASSWORD) of a verified user"
                    ),
                    400 => format!("{got}; check --username and VALIDATE_PASSWORD"),
                    _ => got,
                };
                self.record(false, PROBE, expected, got);
            }
        }
        Ok(session)
    }

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
        let iss = env.and_then(|e| e.get("JWT_ISSUER")).unwrap_or(name);
        let aud = env.and_then(|e| e.get("JWT_AUDIENCE")).unwrap_or(name);
        let now = now();
        let header = json!({"alg": format!("{alg:?}"), "typ": "at+jwt"});
        let claims = json!({"sub": "1", "iss": iss, "aud": aud, "iat": now, "exp": now + 600, "jti": auth_kit::random::secret_hex()});
        match (header, claims) {
            (Value::Object(h), Value::Object(c)) => (h, c),
            _ => (Map::new(), Map::new()),
        }
    }

    async fn forged_alg_none(&mut self, session: Option<&Session>) -> Result<()> {
        let (header, claims) = self.token_parts(session);
        let answer = self.me(&alg_none(&header, &claims)).await?;
        self.expect_invalid_token("alg=none token (no signature)", &answer);
        Ok(())
    }

    async fn forged_other_key(&mut self, session: Option<&Session>) -> Result<()> {
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

    async fn forged_expired(&mut self, session: Option<&Session>) -> Result<()> {
        const PROBE: &str = "expired token (signed with the service's key)";
        let Some(keys) = &self.keys else {
            self.skip(
                PROBE,
                INVALID_TOKEN,
                "no env file with the service's key (pass --env-file)",
            );
            return Ok(());
        };
        let Some(key) = &keys.encoding else {
            let reason = keys
                .problem
                .clone()
                .unwrap_or_else(|| "no signing key in the env file".to_owned());
            self.skip(PROBE, INVALID_TOKEN, reason);
            return Ok(());
        };
        let Some(session) = session else {
            let reason = format!("{}, no real token to copy the claims from", self.no_login);
            self.skip(PROBE, INVALID_TOKEN, reason);
            return Ok(());
        };
        let service_alg = session
            .header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or("?");
        if keys.algorithm.map(|a| format!("{a:?}")).as_deref() != Some(service_alg) {
            let reason = format!(
                "the service signs with {service_alg}, the env file configures another algorithm"
            );
            self.skip(PROBE, INVALID_TOKEN, reason);
            return Ok(());
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
        // The control: the same token re-signed with a fresh expiry must be
        // accepted, or the env file's key is not this service's and a 401
        // below would prove nothing.
        let (fresh, expired) = match (
            with_times(now, now + 300),
            with_times(now - 7200, now - 3600),
        ) {
            (Ok(f), Ok(e)) => (f, e),
            (Err(e), _) | (_, Err(e)) => {
                self.skip(PROBE, INVALID_TOKEN, format!("cannot sign: {e}"));
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

    /// The access token's claims: present and sane (docs/contract.md, Tokens).
    fn claims(&mut self, session: Option<&Session>) {
        const PROBE: &str = "access token claims";
        let expected =
            "sub, iss, aud, iat, exp (in the future, at most 24 h), jti; scope as granted";
        let Some(session) = session else {
            self.skip(PROBE, expected, self.no_login.clone());
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

    fn claim_problems(&self, s: &Session) -> (Vec<String>, String) {
        let mut problems = Vec::new();
        let claims = &s.claims;
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        let alg = s
            .header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or("(none)");
        if alg.eq_ignore_ascii_case("none") {
            problems.push("the token is unsigned (alg none)".to_owned());
        }
        for name in ["sub", "iss", "jti"] {
            if text(name).is_none() {
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
        if let Some(issuer) = env.and_then(|e| e.get("JWT_ISSUER"))
            && text("iss") != Some(issuer.trim())
        {
            problems.push(format!("iss is not '{}' (JWT_ISSUER)", issuer.trim()));
        }
        if let Some(audience) = env.and_then(|e| e.get("JWT_AUDIENCE"))
            && !audiences.contains(&audience.trim())
        {
            problems.push(format!(
                "aud does not contain '{}' (JWT_AUDIENCE)",
                audience.trim()
            ));
        }
        let now = now();
        let (exp, iat) = (seconds(claims.get("exp")), seconds(claims.get("iat")));
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
            (Some(iat), Some(exp)) if exp <= iat => {
                problems.push("exp is not after iat".to_owned())
            }
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
        let claim_scope = claims.get("scope");
        match (&s.response_scope, claim_scope) {
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
            (_, Some(_)) => problems
                .push("the scope claim is not a space-separated string (RFC 9068)".to_owned()),
            (Some(_), None) => problems
                .push("the token response has a scope but the token has no scope claim".to_owned()),
        }
        let mut signature = "payload read without verifying (no key)".to_owned();
        if let Some(keys) = &self.keys
            && let (Some(configured), Some(decoding)) = (keys.algorithm, &keys.decoding)
        {
            if format!("{configured:?}") == alg {
                let mut validation = Validation::new(configured);
                validation.set_issuer(&[text("iss").unwrap_or_default()]);
                validation.set_audience(&audiences);
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

    /// Asymmetric keys are published with a `kid`;
    /// an HMAC service answers 404 (its secret is never published).
    async fn jwks(&mut self, session: Option<&Session>) -> Result<()> {
        const PROBE: &str = "GET /.well-known/jwks.json";
        let alg = session.and_then(|s| {
            s.header
                .get("alg")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let Some(alg) = alg else {
            self.skip(
                PROBE,
                "200 with the token's kid, or 404 for HMAC",
                self.no_login.clone(),
            );
            return Ok(());
        };
        let answer = self
            .send(
                self.client.get(self.url("/.well-known/jwks.json")),
                "GET /.well-known/jwks.json",
            )
            .await?;
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

    async fn user_me(&mut self, session: Option<&Session>, username: Option<&str>) -> Result<()> {
        const PROBE: &str = "GET /users/me with the token";
        let expected = "200, the user (its username, no password hash)";
        let Some(session) = session else {
            self.skip(PROBE, expected, self.no_login.clone());
            return Ok(());
        };
        let answer = self.me(&session.access).await?;
        let Value::Object(user) = &answer.body else {
            self.record(false, PROBE, expected, answer.describe());
            return Ok(());
        };
        let name_matches = user
            .get("username")
            .and_then(Value::as_str)
            .zip(username)
            .is_some_and(|(got, ours)| got.eq_ignore_ascii_case(ours));
        let leaks = user.keys().any(|k| {
            let k = k.to_ascii_lowercase();
            k.contains("password") || k.contains("hash")
        });
        let got = format!(
            "{}{}{}",
            answer.status,
            if name_matches {
                ", the user"
            } else {
                ", not the user who logged in"
            },
            if leaks { ", WITH a password field" } else { "" }
        );
        self.record(
            answer.status == 200 && name_matches && !leaks,
            PROBE,
            expected,
            got,
        );
        Ok(())
    }

    async fn missing_scope(
        &mut self,
        session: Option<&Session>,
        credentials: Option<&Credentials>,
    ) -> Result<()> {
        const PROBE: &str = "missing scope (token with scope=me only)";
        let expected = "403, WWW-Authenticate: Bearer error=\"insufficient_scope\", scope=\"...\" at GET /users/me/items";
        let (Some(session), Some((username, password))) = (session, credentials) else {
            self.skip(PROBE, expected, self.no_login.clone());
            return Ok(());
        };
        if session.scope().is_none() {
            self.skip(
                PROBE,
                expected,
                "the service issues no scopes (tokens carry no scope claim)",
            );
            return Ok(());
        }
        let answer = self.login(username, password, Some("me")).await?;
        let narrow = session_of(&answer);
        let Some(narrow) =
            narrow.filter(|s| s.scope().is_some_and(|g| g.split_whitespace().eq(["me"])))
        else {
            let got = format!(
                "asking for scope=me: {}",
                if answer.status == 200 {
                    describe_token_answer(&answer)
                } else {
                    answer.describe()
                }
            );
            self.record(false, PROBE, expected, got);
            return Ok(());
        };
        let items = self
            .send(
                self.client
                    .get(self.url("/users/me/items"))
                    .bearer_auth(narrow.access.as_str()),
                "GET /users/me/items",
            )
            .await?;
        let pass = items.status == 403
            && items.challenge.as_deref().is_some_and(|c| {
                is_bearer(c) && c.contains("error=\"insufficient_scope\"") && c.contains("scope=\"")
            });
        self.record(pass, PROBE, expected, items.describe());
        Ok(())
    }

    async fn unheld_scope(
        &mut self,
        session: Option<&Session>,
        credentials: Option<&Credentials>,
    ) -> Result<()> {
        const PROBE: &str = "scope the user does not hold (scope=admin)";
        let expected = "400, error \"invalid_scope\"";
        let (Some(session), Some((username, password))) = (session, credentials) else {
            self.skip(PROBE, expected, self.no_login.clone());
            return Ok(());
        };
        if session.holds("admin") {
            self.skip(
                PROBE,
                expected,
                "this user holds admin: probe with a non-admin --username",
            );
            return Ok(());
        }
        let answer = self.login(username, password, Some("admin")).await?;
        if answer.status == 400 {
            self.record(
                answer.error_code() == Some("invalid_scope"),
                PROBE,
                expected,
                answer.describe(),
            );
            return Ok(());
        }
        let granted = session_of(&answer);
        match granted {
            Some(g) if g.holds("admin") => {
                self.record(
                    false,
                    PROBE,
                    expected,
                    format!(
                        "{}: admin GRANTED to a user who does not hold it",
                        answer.status
                    ),
                );
            }
            Some(g) if g.scope().is_none() && session.scope().is_none() => {
                self.skip(
                    PROBE,
                    expected,
                    "the service issues no scopes and ignores the scope parameter",
                );
            }
            _ => self.record(false, PROBE, expected, answer.describe()),
        }
        Ok(())
    }

    /// Least privilege: an admin's token asked for `me` only must not
    /// administer (the role is not enough without the scope `admin`).
    async fn down_scoped_admin(
        &mut self,
        session: Option<&Session>,
        credentials: Option<&Credentials>,
    ) -> Result<()> {
        const PROBE: &str = "down-scoped admin token at GET /users";
        let expected =
            "403, WWW-Authenticate: Bearer error=\"insufficient_scope\", scope=\"admin\"";
        let (Some(session), Some((username, password))) = (session, credentials) else {
            self.skip(PROBE, expected, self.no_login.clone());
            return Ok(());
        };
        if session.scope().is_none() {
            self.skip(
                PROBE,
                expected,
                "the service issues no scopes: roles alone decide",
            );
            return Ok(());
        }
        if !session.holds("admin") {
            self.skip(
                PROBE,
                expected,
                "this user is no admin: probe with an admin's --username",
            );
            return Ok(());
        }
        let answer = self.login(username, password, Some("me")).await?;
        let Some(narrow) = session_of(&answer)
            .filter(|s| s.scope().is_some_and(|g| g.split_whitespace().eq(["me"])))
        else {
            let got = format!("asking for scope=me: {}", answer.describe());
            self.record(false, PROBE, expected, got);
            return Ok(());
        };
        let users = self
            .send(
                self.client
                    .get(self.url("/users"))
                    .bearer_auth(narrow.access.as_str()),
                "GET /users",
            )
            .await?;
        let pass = users.status == 403
            && users.challenge.as_deref().is_some_and(|c| {
                is_bearer(c)
                    && c.contains("error=\"insufficient_scope\"")
                    && c.contains("scope=\"admin\"")
            });
        self.record(pass, PROBE, expected, users.describe());
        Ok(())
    }

    /// Rotation, the optional reuse window, and reuse detection. A service
    /// with a reuse window answers a second use of a just-rotated token
    /// with the same successor; one without answers 400 (and revokes the
    /// login). Either way, once the successor was used, the old token is
    /// reuse: 400, and the login's tokens die.
    async fn refresh(&mut self, session: Option<&Session>) -> Result<()> {
        const ROTATION: &str = "refresh rotation (old refresh token spent)";
        const WINDOW: &str = "refresh again within the reuse window";
        const REUSE_REFRESH: &str = "refresh reuse: the newer refresh token";
        const REUSE_ACCESS: &str = "refresh reuse: the login's access token";
        let rotation_expected = "200 with a new pair, then 400 invalid_grant for the old refresh token (once its successor was used)";
        let window_expected = "200 with the same new refresh token (optional; a service without a window answers 400)";
        let reuse_expected = "400, error \"invalid_grant\" (reuse revokes the login)";
        let Some(old) = session.and_then(|s| s.refresh.as_ref()) else {
            for (probe, expected) in [
                (ROTATION, rotation_expected),
                (WINDOW, window_expected),
                (REUSE_REFRESH, reuse_expected),
                (REUSE_ACCESS, INVALID_TOKEN),
            ] {
                let reason = self.no_login.clone();
                self.skip(probe, expected, reason);
            }
            return Ok(());
        };
        let rotated = self.refresh_with(old).await?;
        let next = session_of(&rotated).filter(|s| {
            s.refresh
                .as_ref()
                .is_some_and(|new| new.as_str() != old.as_str())
        });
        let Some(next) = next else {
            let got = if rotated.status == 200 {
                format!("{} (no new refresh token)", describe_token_answer(&rotated))
            } else {
                rotated.describe()
            };
            self.record(false, ROTATION, rotation_expected, got);
            for (probe, expected) in [
                (WINDOW, window_expected),
                (REUSE_REFRESH, reuse_expected),
                (REUSE_ACCESS, INVALID_TOKEN),
            ] {
                self.skip(probe, expected, "the refresh failed");
            }
            return Ok(());
        };
        let next_refresh = next.refresh.as_ref().map(|r| r.as_str());

        // At once, the same token again: a second tab, or a retry.
        let again = self.refresh_with(old).await?;
        let replayed = session_of(&again);
        let same_successor = replayed
            .as_ref()
            .is_some_and(|s| s.refresh.as_ref().map(|r| r.as_str()) == next_refresh);
        let refused = again.status == 400 && again.error_code() == Some("invalid_grant");
        let newest = if same_successor {
            let window_got = "200 with the same new refresh token and a fresh access token";
            // Use the successor; the old token is then reuse, window or not.
            let spent = self.refresh_with(next_refresh.unwrap_or_default()).await?;
            let Some(newest) = session_of(&spent) else {
                let got = format!("the new refresh token was refused: {}", spent.describe());
                self.record(false, ROTATION, rotation_expected, got);
                self.record(true, WINDOW, window_expected, window_got.to_owned());
                self.skip(REUSE_REFRESH, reuse_expected, "the refresh failed");
                self.skip(REUSE_ACCESS, INVALID_TOKEN, "the refresh failed");
                return Ok(());
            };
            let reused = self.refresh_with(old).await?;
            let got = format!(
                "200 with a new pair; the old refresh token, once the new one was used: {}",
                reused.describe()
            );
            self.record(
                reused.status == 400 && reused.error_code() == Some("invalid_grant"),
                ROTATION,
                rotation_expected,
                got,
            );
            self.record(true, WINDOW, window_expected, window_got.to_owned());
            newest
        } else if refused {
            let got = format!(
                "200 with a new pair; the old refresh token then: {}",
                again.describe()
            );
            self.record(true, ROTATION, rotation_expected, got);
            self.skip(
                WINDOW,
                window_expected,
                "400 invalid_grant at once: the service has no reuse window (it is optional)",
            );
            next
        } else {
            let got = if replayed.is_some() {
                "200 with ANOTHER new refresh token: one token gave two live successors".to_owned()
            } else {
                again.describe()
            };
            let rotation_got = format!("200 with a new pair; the old refresh token then: {got}");
            self.record(false, ROTATION, rotation_expected, rotation_got);
            self.record(false, WINDOW, window_expected, got);
            self.skip(
                REUSE_REFRESH,
                reuse_expected,
                "the old refresh token was not refused",
            );
            self.skip(
                REUSE_ACCESS,
                INVALID_TOKEN,
                "the old refresh token was not refused",
            );
            return Ok(());
        };

        let Some(newer) = &newest.refresh else {
            return Ok(());
        };
        let after = self.refresh_with(newer).await?;
        self.record(
            after.status == 400 && after.error_code() == Some("invalid_grant"),
            REUSE_REFRESH,
            reuse_expected,
            after.describe(),
        );
        let access = self.me(&newest.access).await?;
        self.record(
            access.is_invalid_token(),
            REUSE_ACCESS,
            INVALID_TOKEN,
            access.describe(),
        );
        Ok(())
    }

    /// POST /auth/forgot-password answers a known and an unknown address
    /// alike (status and body), so it cannot tell who has an account. The
    /// known address is the logged-in user's (GET /users/me); the unknown
    /// one is random at a reserved domain. SKIP when there is no such route.
    async fn forgot_password(&mut self, session: Option<&Session>) -> Result<()> {
        const PROBE: &str = "forgot-password: known vs unknown address";
        let expected = "202 and the same body for both";
        let forgot = async |email: &str| {
            self.send(
                self.client
                    .post(self.url("/auth/forgot-password"))
                    .json(&json!({ "email": email })),
                "POST /auth/forgot-password",
            )
            .await
        };
        let known_address = match session {
            Some(session) => self
                .me(&session.access)
                .await?
                .body
                .get("email")
                .and_then(Value::as_str)
                .map(str::to_owned),
            None => None,
        };
        let Some(known_address) = known_address else {
            let reason = match session {
                Some(_) => "the probe's user has no email address".to_owned(),
                None => self.no_login.clone(),
            };
            self.skip(PROBE, expected, reason);
            return Ok(());
        };
        // The known address first: a 404 for it means there is no such
        // route; a 404 for the unknown one alone is the leak probed for.
        let known = forgot(&known_address).await?;
        if matches!(known.status, 404 | 405) {
            let reason = format!("no forgot-password route here ({})", known.status);
            self.skip(PROBE, expected, reason);
            return Ok(());
        }
        let unknown_address = format!(
            "validate-{}@example.com",
            &auth_kit::random::secret_hex()[..12]
        );
        let unknown = forgot(&unknown_address).await?;
        let alike = known.status == unknown.status && known.body == unknown.body;
        // Statuses and codes only: the bodies are compared, never printed.
        let got = if alike {
            format!("{} for both, the same body", known.status)
        } else if known.status == unknown.status {
            format!("{} for both, but different bodies", known.status)
        } else {
            format!(
                "known: {}; unknown: {}",
                known.describe(),
                unknown.describe()
            )
        };
        self.record(alike && known.status == 202, PROBE, expected, got);
        Ok(())
    }

    async fn logout(&mut self, credentials: Option<&Credentials>) -> Result<()> {
        const LOGOUT: &str = "POST /auth/logout";
        const ACCESS: &str = "after logout: the access token";
        const REFRESH: &str = "after logout: the refresh token";
        let refused = "400, error \"invalid_grant\"";
        let Some((username, password)) = credentials else {
            for (probe, expected) in [(LOGOUT, "204"), (ACCESS, INVALID_TOKEN), (REFRESH, refused)]
            {
                let reason = self.no_login.clone();
                self.skip(probe, expected, reason);
            }
            return Ok(());
        };
        let answer = self.login(username, password, None).await?;
        let Some(session) = session_of(&answer) else {
            self.record(
                false,
                LOGOUT,
                "204",
                format!("a fresh login for it failed: {}", answer.describe()),
            );
            return Ok(());
        };
        let out = self
            .send(
                self.client
                    .post(self.url("/auth/logout"))
                    .bearer_auth(session.access.as_str()),
                "POST /auth/logout",
            )
            .await?;
        self.record(out.status == 204, LOGOUT, "204", out.describe());
        let access = self.me(&session.access).await?;
        self.expect_invalid_token(ACCESS, &access);
        match &session.refresh {
            Some(refresh) => {
                let answer = self.refresh_with(refresh).await?;
                let pass = answer.status == 400 && answer.error_code() == Some("invalid_grant");
                self.record(pass, REFRESH, refused, answer.describe());
            }
            None => self.skip(REFRESH, refused, "the login gave no refresh token"),
        }
        Ok(())
    }
}

/// What a successful token response lacks (docs/contract.md; RFC 6749 5.1).
fn token_response_problems(answer: &Answer) -> Vec<String> {
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
fn describe_token_answer(answer: &Answer) -> String {
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
fn session_of(answer: &Answer) -> Option<Session> {
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

    #[test]
    fn alg_none_tokens_have_no_signature() {
        let (header, claims) = (
            Map::from_iter([("alg".to_owned(), json!("HS256"))]),
            Map::from_iter([("sub".to_owned(), json!("1"))]),
        );
        let token = alg_none(&header, &claims);
        assert!(token.ends_with('.'));
        let (h, c) = jwt_parts(&token).unwrap();
        assert_eq!(h["alg"], "none");
        assert_eq!(c["sub"], "1");
    }

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
