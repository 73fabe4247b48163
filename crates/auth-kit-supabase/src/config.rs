//! The supabase service's settings (docs/contract.md, "Settings").

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use zeroize::Zeroizing;

use auth_kit::config::{
    ConfigError, ConfigErrorKind, Environment, Finding, Report, catalog, leeway, truncate,
};
use auth_kit::token::Leeway;

/// How protected routes check access tokens (SUPABASE_VERIFY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// Locally: against the project's JWKS, or with SUPABASE_JWT_SECRET for
    /// HS256 tokens. An HS256 project without the secret is asked remotely.
    Local,
    /// `GET /auth/v1/user` for every request: instant revocation, one round
    /// trip per request.
    Remote,
}

/// What kind of key a SUPABASE_KEY value is, from its shape alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// `sb_publishable_...`: meant for clients; right here.
    Publishable,
    /// A legacy JWT API key whose `role` is `anon`; right here.
    AnonJwt,
    /// `sb_secret_...`: bypasses Row Level Security. Never in a service.
    Secret,
    /// A legacy JWT API key whose `role` is `service_role`. Never in a
    /// service.
    ServiceRoleJwt,
    /// Neither shape.
    Unrecognized,
}

impl KeyKind {
    /// Whether the key may be used by a service that faces users.
    pub fn is_public(self) -> bool {
        matches!(self, KeyKind::Publishable | KeyKind::AnonJwt)
    }

    fn describe(self) -> &'static str {
        match self {
            KeyKind::Publishable => "a publishable key (sb_publishable_...)",
            KeyKind::AnonJwt => "a legacy anon key (JWT, role anon)",
            KeyKind::Secret => "a secret key (sb_secret_...)",
            KeyKind::ServiceRoleJwt => "a legacy service_role key (JWT, role service_role)",
            KeyKind::Unrecognized => "not a Supabase API key",
        }
    }
}

/// Classifies a Supabase API key by its shape: the `sb_` prefixes, or the
/// `role` in a JWT key's payload (read, not verified: only the shape
/// matters here).
pub fn classify_key(raw: &str) -> KeyKind {
    let key = raw.trim();
    if key.starts_with("sb_publishable_") {
        return KeyKind::Publishable;
    }
    if key.starts_with("sb_secret_") {
        return KeyKind::Secret;
    }
    let mut parts = key.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return KeyKind::Unrecognized;
    };
    let role = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|claims| {
            claims
                .get("role")
                .and_then(|r| r.as_str())
                .map(str::to_owned)
        });
    match role.as_deref() {
        Some("anon") => KeyKind::AnonJwt,
        Some("service_role") => KeyKind::ServiceRoleJwt,
        _ => KeyKind::Unrecognized,
    }
}

/// The project's publishable or anon key, sent as `apikey`. It is meant to
/// be public, but `Debug` still shows only its kind.
#[derive(Clone, PartialEq, Eq)]
pub struct SupabaseKey(String);

impl SupabaseKey {
    /// The key, for the `apikey` header.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kind of key.
    pub fn kind(&self) -> KeyKind {
        classify_key(&self.0)
    }
}

impl fmt::Debug for SupabaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SupabaseKey({:?})", self.kind())
    }
}

/// SUPABASE_JWT_SECRET: wiped on drop, hidden from `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSecret(Zeroizing<String>);

impl JwtSecret {
    /// The secret; keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

/// Everything the supabase service reads from its configuration. Build it
/// with [`SupabaseSettings::from_env`], which runs every check;
/// [`check_supabase`] reports the same checks as findings.
///
/// | variable | default | rule |
/// |---|---|---|
/// | SUPABASE_URL | required | the project URL: `https://...`; `http://` only to localhost / 127.0.0.1 / ::1 (WARN) |
/// | SUPABASE_KEY | required | the publishable key (`sb_publishable_...`) or the anon key (a JWT whose `role` is `anon`); a secret / service role key is refused |
/// | SUPABASE_JWT_SECRET | unset | legacy HS256 projects: at least 32 bytes |
/// | SUPABASE_VERIFY | `local` | `local` or `remote` |
/// | SUPABASE_TIMEOUT_SECONDS | 10 | 1 to 120 |
/// | JWT_LEEWAY_SECONDS | 30 | 0 to 60 |
///
/// ```
/// use auth_kit::config::{Environment, Status};
/// use auth_kit_supabase::config::{SupabaseSettings, check_supabase};
///
/// let env = Environment::from_pairs([
///     ("SUPABASE_URL", "https://abcdefghijklmnopqrst.supabase.co"),
///     ("SUPABASE_KEY", "sb_secret_0123456789abcdef"),
/// ]);
/// let err = SupabaseSettings::from_env(&env).unwrap_err();
/// assert_eq!(err.variable(), "SUPABASE_KEY");
/// assert!(err.to_string().contains("must never sit in a service that faces users"));
/// assert!(check_supabase(&env).iter().any(|f| f.status == Status::Fail && f.subject == "SUPABASE_KEY"));
/// ```
#[derive(Debug, Clone)]
pub struct SupabaseSettings {
    /// The project URL without a trailing slash (SUPABASE_URL).
    pub url: String,
    /// The publishable / anon key (SUPABASE_KEY).
    pub key: SupabaseKey,
    /// The legacy HS256 secret (SUPABASE_JWT_SECRET).
    pub jwt_secret: Option<JwtSecret>,
    /// Local or remote verification (SUPABASE_VERIFY).
    pub verify: VerifyMode,
    /// Connect and whole-request timeout of every call to Supabase
    /// (SUPABASE_TIMEOUT_SECONDS).
    pub timeout: Duration,
    /// Clock leeway on `exp` and `nbf` (JWT_LEEWAY_SECONDS).
    pub leeway: Leeway,
}

impl SupabaseSettings {
    /// Reads and checks every setting; the first refused one is the error.
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let mut report = Report::default();
        let settings = read_supabase(env, &mut report);
        report.settle(settings)
    }

    /// `<SUPABASE_URL>/auth/v1`: the base of every Supabase Auth call, and
    /// the `iss` of the project's access tokens.
    pub fn auth_url(&self) -> String {
        format!("{}/auth/v1", self.url)
    }
}

/// Every check of the supabase service's configuration, as findings.
pub fn check_supabase(env: &Environment) -> Vec<Finding> {
    let mut report = Report::default();
    read_supabase(env, &mut report);
    report.into_findings()
}

const URL_FIX: &str = "set SUPABASE_URL to the project URL from the Supabase dashboard (Project Settings, API), e.g. https://<project-ref>.supabase.co, or to the URL `cargo run -p gotrue-stub` prints for offline development";
const KEY_FIX: &str = "set SUPABASE_KEY to the project's publishable key (sb_publishable_...) or legacy anon key from the Supabase dashboard (Project Settings, API Keys); `cargo run -p gotrue-stub` prints one for offline development";

fn read_supabase(env: &Environment, report: &mut Report) -> Option<SupabaseSettings> {
    let url = report.take(supabase_url(env), |(url, _)| {
        Finding::pass(crate::settings::SUPABASE_URL.name, url.clone())
    });
    if let Some((url, true)) = &url {
        report.push(Finding::warn(
            crate::settings::SUPABASE_URL.name,
            format!("{url} is plain HTTP: fine for a local stand-in (gotrue-stub, `supabase start`), never for a real project"),
            "use the project's https:// URL outside development",
        ));
    }
    let key = report.take(supabase_key(env), |key| {
        Finding::pass(crate::settings::SUPABASE_KEY.name, key.kind().describe())
    });
    let jwt_secret = report.take(jwt_secret(env), |secret| match secret {
        Some(s) => Finding::pass(
            crate::settings::SUPABASE_JWT_SECRET.name,
            format!(
                "set ({} bytes): HS256 tokens are verified locally",
                s.expose().len()
            ),
        ),
        None => Finding::pass(
            crate::settings::SUPABASE_JWT_SECRET.name,
            "unset: tokens are verified with the project's JWKS",
        ),
    });
    let verify = report.take(verify_mode(env), |mode| match mode {
        VerifyMode::Local => Finding::pass(
            crate::settings::SUPABASE_VERIFY.name,
            "local: signatures checked here against the project's JWKS (cached up to 10 minutes); an HS256 project without SUPABASE_JWT_SECRET is asked with GET /auth/v1/user",
        ),
        VerifyMode::Remote => Finding::pass(
            crate::settings::SUPABASE_VERIFY.name,
            "remote: every request asks GET /auth/v1/user (instant revocation, one round trip per request)",
        ),
    });
    if verify == Some(VerifyMode::Remote) && matches!(jwt_secret, Some(Some(_))) {
        report.push(Finding::warn(
            crate::settings::SUPABASE_JWT_SECRET.name,
            "set but not used: SUPABASE_VERIFY=remote asks Supabase for every token",
            "remove SUPABASE_JWT_SECRET, or set SUPABASE_VERIFY=local",
        ));
    }
    let timeout = report.take(crate::settings::SUPABASE_TIMEOUT_SECONDS.number(env), |s| {
        Finding::pass(
            crate::settings::SUPABASE_TIMEOUT_SECONDS.name,
            format!("{s} seconds"),
        )
    });
    let leeway = report.take(leeway(env), |l| {
        Finding::pass(
            catalog::JWT_LEEWAY_SECONDS.name,
            format!("{} seconds", l.as_secs()),
        )
    });
    Some(SupabaseSettings {
        url: url?.0,
        key: key?,
        jwt_secret: jwt_secret?,
        verify: verify?,
        timeout: Duration::from_secs(timeout?),
        leeway: leeway?,
    })
}

/// SUPABASE_URL: the normalized URL and whether it is plain HTTP to this
/// machine.
fn supabase_url(env: &Environment) -> Result<(String, bool), ConfigError> {
    let invalid = |problem: String| {
        ConfigError::new(
            crate::settings::SUPABASE_URL.name,
            ConfigErrorKind::Invalid,
            problem,
            URL_FIX,
        )
    };
    let Some(raw) = env.get(crate::settings::SUPABASE_URL.name) else {
        return Err(ConfigError::new(
            crate::settings::SUPABASE_URL.name,
            ConfigErrorKind::Missing,
            "SUPABASE_URL is not set",
            URL_FIX,
        ));
    };
    let url = raw.trim().trim_end_matches('/');
    let Some((scheme, authority)) = url.split_once("://") else {
        return Err(invalid(format!(
            "SUPABASE_URL={:?} is not a URL",
            truncate(url)
        )));
    };
    if authority.ends_with("/auth/v1") {
        return Err(invalid(
            "SUPABASE_URL ends with /auth/v1: give the project URL, without the path".to_owned(),
        ));
    }
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(invalid(
            "SUPABASE_URL must be the project URL alone: scheme and host, no path, query or credentials"
                .to_owned(),
        ));
    }
    let host = host_of(authority).ok_or_else(|| {
        invalid(format!(
            "SUPABASE_URL={:?} has no valid host",
            truncate(url)
        ))
    })?;
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok((url.to_owned(), false)),
        "http" if is_loopback(host) => Ok((url.to_owned(), true)),
        "http" => Err(invalid(format!(
            "SUPABASE_URL uses plain http:// to {host}: passwords and tokens would cross the network unencrypted"
        ))),
        _ => Err(invalid(format!(
            "SUPABASE_URL={:?} is neither https:// nor http://",
            truncate(url)
        ))),
    }
}

/// The host of `host[:port]` or `[v6]:port`, if both parts are well formed.
fn host_of(authority: &str) -> Option<&str> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return None;
    }
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
    valid.then_some(host)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn supabase_key(env: &Environment) -> Result<SupabaseKey, ConfigError> {
    let Some(raw) = env.get(crate::settings::SUPABASE_KEY.name) else {
        return Err(ConfigError::new(
            crate::settings::SUPABASE_KEY.name,
            ConfigErrorKind::Missing,
            "SUPABASE_KEY is not set",
            KEY_FIX,
        ));
    };
    // Never quote the value: a misplaced secret key must not reach a log.
    match classify_key(raw) {
        KeyKind::Publishable | KeyKind::AnonJwt => Ok(SupabaseKey(raw.trim().to_owned())),
        kind @ (KeyKind::Secret | KeyKind::ServiceRoleJwt) => Err(ConfigError::new(
            crate::settings::SUPABASE_KEY.name,
            ConfigErrorKind::Invalid,
            format!(
                "SUPABASE_KEY is {}: it bypasses Row Level Security and must never sit in a service that faces users",
                kind.describe()
            ),
            "replace it with the publishable (sb_publishable_...) or anon key, and rotate the secret key in the Supabase dashboard if it may have leaked",
        )),
        KeyKind::Unrecognized => Err(ConfigError::new(
            crate::settings::SUPABASE_KEY.name,
            ConfigErrorKind::Invalid,
            "SUPABASE_KEY is neither a publishable key (sb_publishable_...) nor an anon key (a JWT whose role is anon)",
            KEY_FIX,
        )),
    }
}

/// The shortest SUPABASE_JWT_SECRET accepted, in bytes.
const MIN_JWT_SECRET_BYTES: usize = 32;

fn jwt_secret(env: &Environment) -> Result<Option<JwtSecret>, ConfigError> {
    let Some(raw) = env.get(crate::settings::SUPABASE_JWT_SECRET.name) else {
        return Ok(None);
    };
    if raw.len() < MIN_JWT_SECRET_BYTES {
        return Err(ConfigError::new(
            crate::settings::SUPABASE_JWT_SECRET.name,
            ConfigErrorKind::WeakSecret,
            format!(
                "SUPABASE_JWT_SECRET is only {} bytes; a Supabase JWT secret has at least {MIN_JWT_SECRET_BYTES}",
                raw.len()
            ),
            "copy the legacy JWT secret from the Supabase dashboard (Project Settings, JWT Keys), or unset SUPABASE_JWT_SECRET to verify with the project's JWKS",
        ));
    }
    Ok(Some(JwtSecret(Zeroizing::new(raw.to_owned()))))
}

fn verify_mode(env: &Environment) -> Result<VerifyMode, ConfigError> {
    match env
        .get(crate::settings::SUPABASE_VERIFY.name)
        .map(|v| v.trim().to_ascii_lowercase())
    {
        None => Ok(VerifyMode::Local),
        Some(v) if v == "local" => Ok(VerifyMode::Local),
        Some(v) if v == "remote" => Ok(VerifyMode::Remote),
        Some(v) => Err(ConfigError::new(
            crate::settings::SUPABASE_VERIFY.name,
            ConfigErrorKind::Invalid,
            format!(
                "SUPABASE_VERIFY={:?} is neither local nor remote",
                truncate(&v)
            ),
            "set SUPABASE_VERIFY to local (verify tokens here) or remote (ask Supabase for every request)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_kit::config::Status;

    const URL: &str = "https://abcdefghijklmnopqrst.supabase.co";
    const PUBLISHABLE: &str = "sb_publishable_abc123";

    fn jwt_with(claims: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.signature",
            b64(r#"{"alg":"HS256","typ":"JWT"}"#),
            b64(claims)
        )
    }

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().copied())
    }

    /// The status of `subject`'s worst finding for this environment.
    fn check(pairs: &[(&str, &str)], subject: &str, expected: Status) {
        let findings = check_supabase(&env(pairs));
        let worst = findings
            .iter()
            .filter(|f| f.subject == subject)
            .map(|f| f.status)
            .max();
        assert_eq!(worst, Some(expected), "{subject}: {findings:#?}");
        let refused = SupabaseSettings::from_env(&env(pairs));
        match expected {
            Status::Fail => assert_eq!(
                refused.map(|_| ()).map_err(|e| e.variable().to_owned()),
                Err(subject.to_owned())
            ),
            _ => assert!(refused.is_ok(), "{refused:?}"),
        }
    }

    #[test]
    fn urls() {
        let with_url = |url| [("SUPABASE_URL", url), ("SUPABASE_KEY", PUBLISHABLE)];
        check(&with_url(URL), "SUPABASE_URL", Status::Pass);
        check(
            &with_url("https://auth.example.com:8443/"),
            "SUPABASE_URL",
            Status::Pass,
        );
        check(
            &with_url("http://localhost:54321"),
            "SUPABASE_URL",
            Status::Warn,
        );
        check(
            &with_url("http://127.0.0.1:9999"),
            "SUPABASE_URL",
            Status::Warn,
        );
        check(&with_url("http://[::1]:9999"), "SUPABASE_URL", Status::Warn);
        check(
            &with_url("http://example.com"),
            "SUPABASE_URL",
            Status::Fail,
        );
        check(&with_url("ftp://example.com"), "SUPABASE_URL", Status::Fail);
        check(&with_url("example.com"), "SUPABASE_URL", Status::Fail);
        check(
            &with_url("https://x.supabase.co/auth/v1"),
            "SUPABASE_URL",
            Status::Fail,
        );
        check(
            &with_url("https://user:pw@x.supabase.co"),
            "SUPABASE_URL",
            Status::Fail,
        );
        check(
            &with_url("https://x.supabase.co:99999"),
            "SUPABASE_URL",
            Status::Fail,
        );
        check(
            &[("SUPABASE_KEY", PUBLISHABLE)],
            "SUPABASE_URL",
            Status::Fail,
        );
        let s = SupabaseSettings::from_env(&env(&with_url("https://x.supabase.co/"))).unwrap();
        assert_eq!(s.url, "https://x.supabase.co");
        assert_eq!(s.auth_url(), "https://x.supabase.co/auth/v1");
    }

    #[test]
    fn keys() {
        let with_key = |key| [("SUPABASE_URL", URL.to_owned()), ("SUPABASE_KEY", key)];
        let run = |key: String, expected| {
            let pairs = with_key(key);
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            check(&pairs, "SUPABASE_KEY", expected);
        };
        run(PUBLISHABLE.to_owned(), Status::Pass);
        run(
            jwt_with(r#"{"iss":"supabase","role":"anon"}"#),
            Status::Pass,
        );
        run(
            jwt_with(r#"{"iss":"supabase","role":"service_role"}"#),
            Status::Fail,
        );
        run("sb_secret_abc123".to_owned(), Status::Fail);
        run(jwt_with(r#"{"role":"authenticated"}"#), Status::Fail);
        run("not-a-key".to_owned(), Status::Fail);
        check(&[("SUPABASE_URL", URL)], "SUPABASE_KEY", Status::Fail);

        let secret = "sb_secret_very_secret_value";
        let err =
            SupabaseSettings::from_env(&env(&[("SUPABASE_URL", URL), ("SUPABASE_KEY", secret)]))
                .unwrap_err();
        assert!(
            err.to_string()
                .contains("must never sit in a service that faces users")
        );
        assert!(!err.to_string().contains(secret));
        let findings = check_supabase(&env(&[("SUPABASE_URL", URL), ("SUPABASE_KEY", secret)]));
        assert!(findings.iter().all(|f| !f.message.contains(secret)));
    }

    #[test]
    fn verification_settings() {
        let base = [("SUPABASE_URL", URL), ("SUPABASE_KEY", PUBLISHABLE)];
        let s = SupabaseSettings::from_env(&env(&base)).unwrap();
        assert_eq!(s.verify, VerifyMode::Local);
        assert!(s.jwt_secret.is_none());
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!(s.leeway.as_secs(), 30);
        assert!(
            check_supabase(&env(&base))
                .iter()
                .all(|f| f.status == Status::Pass)
        );

        let with = |k, v| {
            let mut pairs = base.to_vec();
            pairs.push((k, v));
            pairs
        };
        check(
            &with("SUPABASE_VERIFY", "remote"),
            "SUPABASE_VERIFY",
            Status::Pass,
        );
        check(
            &with("SUPABASE_VERIFY", "sometimes"),
            "SUPABASE_VERIFY",
            Status::Fail,
        );
        check(
            &with("SUPABASE_TIMEOUT_SECONDS", "0"),
            "SUPABASE_TIMEOUT_SECONDS",
            Status::Fail,
        );
        check(
            &with("SUPABASE_TIMEOUT_SECONDS", "3"),
            "SUPABASE_TIMEOUT_SECONDS",
            Status::Pass,
        );
        check(
            &with("SUPABASE_JWT_SECRET", "short"),
            "SUPABASE_JWT_SECRET",
            Status::Fail,
        );
        let long = "0123456789abcdef0123456789abcdef0123";
        check(
            &with("SUPABASE_JWT_SECRET", long),
            "SUPABASE_JWT_SECRET",
            Status::Pass,
        );
        let mut unused = with("SUPABASE_JWT_SECRET", long);
        unused.push(("SUPABASE_VERIFY", "remote"));
        check(&unused, "SUPABASE_JWT_SECRET", Status::Warn);
        assert!(
            format!("{:?}", SupabaseSettings::from_env(&env(&unused)).unwrap())
                .contains("<redacted>")
        );
        assert!(
            !format!("{:?}", SupabaseSettings::from_env(&env(&unused)).unwrap()).contains(long)
        );
    }
}
