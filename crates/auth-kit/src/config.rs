//! Configuration (docs/contract.md, "Settings"): the environment, then `.env`.
//!
//! [`Environment`] merges the process environment over a `.env` file (the
//! environment wins). [`ServiceSettings::from_env`] turns it into typed
//! settings or the first [`ConfigError`]; [`check_service`] runs the very
//! same checks and reports every one as a [`Finding`] (PASS / WARN / FAIL
//! with the fix), which is what `cargo auth validate` prints.
//! A service with settings of its own (an identity provider's) reads them
//! with the same building blocks: [`Report`], [`integer`], [`leeway`].
//!
//! ```
//! use auth_kit::config::{Environment, ServiceSettings, Status, check_service};
//!
//! let env = Environment::from_pairs([("SECRET_KEY", "changeme")]);
//! let err = ServiceSettings::from_env(&env, "my-api").unwrap_err();
//! assert_eq!(err.variable(), "SECRET_KEY");
//! assert!(err.to_string().contains("cargo auth setup-jwt"));
//!
//! let findings = check_service(&env, "my-api");
//! assert!(findings.iter().any(|f| f.status == Status::Fail && f.subject == "SECRET_KEY"));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::client_ip::TrustedProxies;
use crate::refresh::ReuseWindow;
use crate::token::{KeyError, Leeway, MIN_SECRET_BYTES, SigningAlgorithm, SigningKeys};

// Mail, links and tokens of the account lifecycle (reset, verification).
mod account;
pub use account::{
    AccountSettings, DEFAULT_MAIL_FROM, DEFAULT_MAIL_URL, EmailVerification, MailLimits,
    mail_transport,
};

/// Placeholders refused as SECRET_KEY, compared ignoring
/// case and surrounding space.
pub const PLACEHOLDER_SECRETS: &[&str] = &[
    "your_secret_key_here",
    "your-secret-key",
    "changeme",
    "change-me",
    "secret",
    "secret_key",
    "supersecret",
    "password",
];

/// Keys printed in widely copied documentation, refused like the
/// placeholders: they pass every length and variety rule, yet anyone can
/// sign tokens with them. Each with where it comes from.
pub const PUBLISHED_SECRETS: &[(&str, &str)] = &[
    (
        "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
        "the example key of FastAPI's JWT tutorial",
    ),
    (
        "a-string-secret-at-least-256-bits-long",
        "the example key of the jwt.io debugger",
    ),
];

/// Fewest distinct characters a SECRET_KEY must have.
pub const MIN_SECRET_DISTINCT_CHARS: usize = 8;

/// How to get a good key, quoted by every SECRET_KEY error.
pub const SECRET_KEY_FIX: &str = "generate one with `cargo auth setup-jwt` (or `openssl rand -hex 32`) and set SECRET_KEY to it in the environment or .env";

/// The process environment over an optional `.env` file.
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    dotenv: Option<PathBuf>,
}

impl fmt::Debug for Environment {
    // Values may be secrets: show only which variables are set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("variables", &self.vars.keys().collect::<Vec<_>>())
            .field("dotenv", &self.dotenv)
            .finish()
    }
}

impl Environment {
    /// The process environment over `./.env` when that file exists.
    pub fn load() -> Result<Self, ConfigError> {
        let dotenv = Path::new(".env");
        if dotenv.is_file() {
            Self::load_with_file(dotenv)
        } else {
            Ok(Self::from_process(BTreeMap::new(), None))
        }
    }

    /// The process environment over the env file at `path`, which must exist
    /// and parse.
    pub fn load_with_file(path: &Path) -> Result<Self, ConfigError> {
        let file_error = |problem: String| ConfigError {
            variable: "ENV_FILE".to_owned(),
            kind: ConfigErrorKind::EnvFile,
            problem,
            fix: format!("fix or remove {}", path.display()),
        };
        let iter = dotenvy::from_path_iter(path).map_err(|e| match e {
            dotenvy::Error::Io(io) => {
                file_error(format!("{} cannot be read ({io})", path.display()))
            }
            other => file_error(format!("{} cannot be parsed ({other})", path.display())),
        })?;
        let mut file_vars = BTreeMap::new();
        for item in iter {
            let (key, value) = item.map_err(|e| match e {
                dotenvy::Error::LineParse(_, index) => {
                    // The line itself may hold a secret: report where, not what.
                    file_error(format!(
                        "{} has a line that cannot be parsed (at character {index})",
                        path.display()
                    ))
                }
                other => file_error(format!("{} cannot be parsed ({other})", path.display())),
            })?;
            file_vars.insert(key, value);
        }
        Ok(Self::from_process(file_vars, Some(path.to_owned())))
    }

    fn from_process(mut vars: BTreeMap<String, String>, dotenv: Option<PathBuf>) -> Self {
        for (key, value) in std::env::vars_os() {
            if let (Some(key), Some(value)) = (key.to_str(), value.to_str()) {
                vars.insert(key.to_owned(), value.to_owned());
            }
        }
        Self { vars, dotenv }
    }

    /// Exactly these variables and nothing from the process (tests, embedding).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            dotenv: None,
        }
    }

    /// A variable's value; an empty or all-space value counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// The `.env` file that was read, if any.
    pub fn dotenv_path(&self) -> Option<&Path> {
        self.dotenv.as_deref()
    }
}

/// What kind of problem a [`ConfigError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// A required variable is unset.
    Missing,
    /// The value cannot be parsed or is not allowed.
    Invalid,
    /// A number outside its range.
    OutOfRange,
    /// SECRET_KEY is too short, a placeholder, or too repetitive.
    WeakSecret,
    /// A key file is missing, unreadable or the wrong kind of key.
    KeyFile,
    /// The env file cannot be read or parsed.
    EnvFile,
}

/// A refused setting: which variable, what is wrong, and how to fix it.
/// Its `Display` is the one line a service prints before exiting with 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}; {fix}")]
pub struct ConfigError {
    variable: String,
    kind: ConfigErrorKind,
    problem: String,
    fix: String,
}

impl ConfigError {
    /// A refused `variable`: what is wrong with it, and how to fix it.
    pub fn new(
        variable: &str,
        kind: ConfigErrorKind,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            variable: variable.to_owned(),
            kind,
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// The variable at fault.
    pub fn variable(&self) -> &str {
        &self.variable
    }

    /// The kind of problem.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// What to do about it.
    pub fn fix(&self) -> &str {
        &self.fix
    }

    /// What is wrong (names the variable).
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Fine.
    Pass,
    /// Works, but should be looked at.
    Warn,
    /// The service would refuse to start (or the check failed).
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        })
    }
}

/// One line of a configuration report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// PASS, WARN or FAIL.
    pub status: Status,
    /// What was checked (usually a variable name).
    pub subject: String,
    /// What was found. Never a secret's value.
    pub message: String,
    /// How to fix it (empty for PASS).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

impl Finding {
    /// A passing check.
    pub fn pass(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: Status::Pass,
            subject: subject.into(),
            message: message.into(),
            fix: String::new(),
        }
    }

    /// A warning with its fix.
    pub fn warn(
        subject: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            status: Status::Warn,
            subject: subject.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// A failure with its fix.
    pub fn fail(
        subject: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            status: Status::Fail,
            subject: subject.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

impl From<&ConfigError> for Finding {
    fn from(e: &ConfigError) -> Self {
        Finding::fail(e.variable.clone(), e.problem.clone(), e.fix.clone())
    }
}

/// The bootstrap admin (ADMIN_USERNAME / ADMIN_PASSWORD). `Debug` hides the
/// password.
#[derive(Clone)]
pub struct AdminBootstrap {
    /// The admin's username.
    pub username: String,
    /// The admin's password, wiped from memory when dropped.
    pub password: Zeroizing<String>,
}

impl fmt::Debug for AdminBootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminBootstrap")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Failed-login limits (docs/contract.md, "Settings").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures per username within the window that lock it.
    pub max_failures_per_username: u32,
    /// Failures per client IP within the window that lock it.
    pub max_failures_per_ip: u32,
    /// The window, and how long a lock lasts.
    pub lockout: Duration,
}

impl LoginLimits {
    /// The defaults: 5 per username, 50 per IP, 300 s.
    pub const STANDARD: LoginLimits = LoginLimits {
        max_failures_per_username: 5,
        max_failures_per_ip: 50,
        lockout: Duration::from_secs(300),
    };
}

/// Signups per client address (SIGNUP_MAX_PER_IP), successful or not:
/// every signup whose fields are valid counts, a taken name included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignupLimits {
    /// Signups per client address within the window; then 429.
    pub max_per_ip: u32,
    /// The window, and how long the address waits once it is used up.
    pub window: Duration,
}

impl SignupLimits {
    /// The defaults: 20 per client address per hour.
    pub const STANDARD: SignupLimits = SignupLimits {
        max_per_ip: 20,
        window: Duration::from_secs(3600),
    };
}

/// How long a request may take before it is answered 503 (the default of
/// REQUEST_TIMEOUT_SECONDS).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How a service meets its clients, for every service
/// services alike: who the client is behind proxies, how many login and
/// signup attempts it gets, where those counters live, and how long a
/// request may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSettings {
    /// TRUSTED_PROXIES: whose forwarding headers name the client.
    pub trusted_proxies: TrustedProxies,
    /// LOGIN_MAX_FAILURES, LOGIN_MAX_FAILURES_PER_IP, LOGIN_LOCKOUT_SECONDS.
    pub login_limits: LoginLimits,
    /// SIGNUP_MAX_PER_IP.
    pub signup_limits: SignupLimits,
    /// MAIL_MAX_PER_ADDRESS, MAIL_MAX_PER_IP: password-reset and
    /// verification mails asked for (forgot-password, request-verify).
    pub mail_limits: MailLimits,
    /// RATE_LIMIT_URL: the Redis the counters live in (`None`: in process).
    pub rate_limit_url: Option<RateLimitUrl>,
    /// REQUEST_TIMEOUT_SECONDS.
    pub request_timeout: Duration,
}

impl TrafficSettings {
    /// Reads and checks the traffic settings; the first refused one is the
    /// error.
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let mut report = Report::default();
        read_traffic(env, &mut report).ok_or_else(|| report.into_error())
    }
}

/// The checks of [`TrafficSettings`], as findings.
pub fn check_traffic(env: &Environment) -> Vec<Finding> {
    let mut report = Report::default();
    read_traffic(env, &mut report);
    report.findings
}

/// RATE_LIMIT_URL, which may hold a password: `Debug` and `Display` show
/// the host only.
#[derive(Clone, PartialEq, Eq)]
pub struct RateLimitUrl(String);

impl RateLimitUrl {
    /// The URL itself, for connecting; keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RateLimitUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RateLimitUrl({self})")
    }
}

impl fmt::Display for RateLimitUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let after_scheme = self.0.split_once("://").map_or(self.0.as_str(), |(_, r)| r);
        let location = after_scheme
            .rsplit_once('@')
            .map_or(after_scheme, |(_, h)| h);
        write!(f, "Redis at {location}")
    }
}

/// The default of SESSION_CACHE_SECONDS.
pub const DEFAULT_SESSION_CACHE: Duration = Duration::from_secs(30);

/// SESSION_CACHE_SECONDS, and the Redis that carries the cache's
/// invalidations when the database is SQLite (see
/// [`crate::session_cache`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCacheSettings {
    /// How long a verified user and login may be served from memory; zero
    /// reads the database on every protected request.
    pub ttl: Duration,
    /// RATE_LIMIT_URL: with SQLite, changes reach other processes through
    /// this Redis (PostgreSQL carries them itself).
    pub redis: Option<RateLimitUrl>,
}

/// Everything a jwt or oauth2 service reads from its configuration.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// The name the service was stamped with (default issuer and audience).
    pub service_name: String,
    /// Signing and verification keys.
    pub keys: SigningKeys,
    /// Access-token lifetime (ACCESS_TOKEN_EXPIRE_MINUTES).
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime (REFRESH_TOKEN_EXPIRE_DAYS).
    pub refresh_token_ttl: Duration,
    /// How long a rotated refresh token still gets its successor
    /// (REFRESH_TOKEN_REUSE_SECONDS).
    pub refresh_reuse: ReuseWindow,
    /// `iss` (JWT_ISSUER).
    pub issuer: String,
    /// `aud` (JWT_AUDIENCE).
    pub audience: String,
    /// Clock leeway (JWT_LEEWAY_SECONDS).
    pub leeway: Leeway,
    /// DATABASE_URL.
    pub database_url: String,
    /// HOST.
    pub host: IpAddr,
    /// PORT.
    pub port: u16,
    /// The admin to create at start-up, if both variables are set.
    pub admin: Option<AdminBootstrap>,
    /// Client addresses, login and signup limits, request timeout.
    pub traffic: TrafficSettings,
    /// Mail, links, reset and verification tokens.
    pub account: AccountSettings,
    /// How many items one user may own (ITEMS_MAX_PER_USER).
    pub items_max_per_user: u32,
    /// SESSION_CACHE_SECONDS.
    pub session_cache: SessionCacheSettings,
}

/// ITEMS_MAX_PER_USER when unset.
pub const DEFAULT_ITEMS_MAX_PER_USER: u32 = 1000;

impl ServiceSettings {
    /// Reads and checks every setting; the first refused one is the error.
    pub fn from_env(env: &Environment, service_name: &str) -> Result<Self, ConfigError> {
        let mut report = Report::default();
        let settings = read_service(env, service_name, &mut report);
        // Any refused setting refuses the whole, also one that reading
        // could go on without.
        match (settings, report.first_error) {
            (_, Some(e)) => Err(e),
            (Some(settings), None) => Ok(settings),
            (None, None) => Err(ConfigError::new(
                "configuration",
                ConfigErrorKind::Invalid,
                "the configuration is invalid",
                "run `cargo auth validate`",
            )),
        }
    }

    /// The address to listen on.
    pub fn listen_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }
}

/// Every check of a jwt/oauth2 service's configuration, as findings.
pub fn check_service(env: &Environment, service_name: &str) -> Vec<Finding> {
    let mut report = Report::default();
    read_service(env, service_name, &mut report);
    report.findings
}

/// Collects findings; remembers the first failure as a typed error. A
/// service with settings of its own checks them through one, so its
/// startup error and its findings come from the same code.
#[derive(Debug, Default)]
pub struct Report {
    findings: Vec<Finding>,
    first_error: Option<ConfigError>,
}

impl Report {
    /// The first refused setting (or a generic one if none was recorded).
    pub fn into_error(self) -> ConfigError {
        self.first_error.unwrap_or_else(|| {
            ConfigError::new(
                "configuration",
                ConfigErrorKind::Invalid,
                "the configuration is invalid",
                "run `cargo auth validate`",
            )
        })
    }

    /// Every finding, in the order recorded.
    pub fn into_findings(self) -> Vec<Finding> {
        self.findings
    }

    /// Records a check's outcome and passes its value on.
    pub fn take<T>(
        &mut self,
        result: Result<T, ConfigError>,
        pass: impl FnOnce(&T) -> Finding,
    ) -> Option<T> {
        match result {
            Ok(value) => {
                self.findings.push(pass(&value));
                Some(value)
            }
            Err(e) => {
                self.findings.push(Finding::from(&e));
                self.first_error.get_or_insert(e);
                None
            }
        }
    }

    /// Records a finding that refuses nothing (a pass or a warning).
    pub fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    /// Records a refused setting that has no value to pass on.
    pub fn refuse(&mut self, e: ConfigError) {
        self.findings.push(Finding::from(&e));
        self.first_error.get_or_insert(e);
    }
}

/// Where a service keeps its data and listens: DATABASE_URL, HOST, PORT.
/// (The jwt and oauth2 services read these inside [`ServiceSettings`]; the
/// services without a SECRET_KEY read them alone.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// DATABASE_URL.
    pub database_url: String,
    /// HOST.
    pub host: IpAddr,
    /// PORT (0: any free port).
    pub port: u16,
}

impl ServerSettings {
    /// Reads and checks DATABASE_URL, HOST and PORT.
    pub fn from_env(env: &Environment, service_name: &str) -> Result<Self, ConfigError> {
        let mut report = Report::default();
        read_server(env, service_name, &mut report).ok_or_else(|| {
            report.first_error.take().unwrap_or_else(|| {
                ConfigError::new(
                    "configuration",
                    ConfigErrorKind::Invalid,
                    "the configuration is invalid",
                    "run `cargo auth validate`",
                )
            })
        })
    }

    /// The address to listen on.
    pub fn listen_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }
}

/// The checks of [`ServerSettings`], as findings.
pub fn check_server(env: &Environment, service_name: &str) -> Vec<Finding> {
    let mut report = Report::default();
    read_server(env, service_name, &mut report);
    report.findings
}

fn read_server(
    env: &Environment,
    service_name: &str,
    report: &mut Report,
) -> Option<ServerSettings> {
    let database_url = report.take(database_url(env, service_name), |url| {
        Finding::pass("DATABASE_URL", describe_database(url))
    });
    let host = report.take(host(env), |h| Finding::pass("HOST", h.to_string()));
    if let Some(h) = host
        && h.is_unspecified()
    {
        report.push(Finding::warn(
            "HOST",
            format!("{h} listens on every network interface"),
            "put the service behind a TLS-terminating proxy, or use 127.0.0.1 in development",
        ));
    }
    // 0 asks the operating system for any free port (tests, demos).
    let port = report.take(integer(env, "PORT", 8000, 0, 65535), |p| {
        Finding::pass("PORT", p.to_string())
    });
    Some(ServerSettings {
        database_url: database_url?,
        host: host?,
        port: u16::try_from(port?).ok()?,
    })
}

fn read_service(
    env: &Environment,
    service_name: &str,
    report: &mut Report,
) -> Option<ServiceSettings> {
    let algorithm = report.take(algorithm(env), |a| {
        Finding::pass("ALGORITHM", format!("{a}"))
    });
    let keys = match algorithm {
        Some(alg) if alg.is_hmac() => {
            if env.get("JWT_PRIVATE_KEY_FILE").is_some() || env.get("JWT_PUBLIC_KEY_FILE").is_some()
            {
                report.push(Finding::warn(
                    "JWT_PRIVATE_KEY_FILE",
                    format!("key files are set but ALGORITHM={alg} signs with SECRET_KEY; they are ignored"),
                    "remove the key file settings, or set ALGORITHM to RS256, ES256 or EdDSA",
                ));
            }
            let raw = env.get("SECRET_KEY");
            let checked = secret_key(raw).and_then(|strength| {
                secret_length_for("SECRET_KEY", alg, raw.unwrap_or_default()).map(|()| strength)
            });
            let secret = report.take(checked, |s| {
                Finding::pass(
                    "SECRET_KEY",
                    format!(
                        "{} bytes, about {} bits of entropy",
                        s.bytes, s.entropy_bits
                    ),
                )
            });
            if let Some(strength) = &secret
                && strength.entropy_bits < 128
            {
                report.push(Finding::warn(
                    "SECRET_KEY",
                    format!(
                        "only about {} bits of entropy (repetitive characters)",
                        strength.entropy_bits
                    ),
                    SECRET_KEY_FIX,
                ));
            }
            if env.get("JWT_PREVIOUS_PUBLIC_KEY_FILES").is_some() {
                report.refuse(ConfigError::new(
                    "JWT_PREVIOUS_PUBLIC_KEY_FILES",
                    ConfigErrorKind::Invalid,
                    format!(
                        "JWT_PREVIOUS_PUBLIC_KEY_FILES is set but ALGORITHM={alg} verifies with SECRET_KEY and SECRET_KEY_PREVIOUS"
                    ),
                    "remove JWT_PREVIOUS_PUBLIC_KEY_FILES: keys rotate within one algorithm (changing the algorithm logs everyone out)",
                ));
            }
            let current = secret.and_then(|_| {
                let raw = env.get("SECRET_KEY").unwrap_or_default();
                SigningKeys::hmac(alg, raw.as_bytes()).ok()
            });
            match env.get("SECRET_KEY_PREVIOUS") {
                None => current,
                Some(raw) => {
                    // Held to SECRET_KEY's rules, then added to the current keys.
                    let checked = check_secret("SECRET_KEY_PREVIOUS", Some(raw))
                        .and_then(|strength| {
                            secret_length_for("SECRET_KEY_PREVIOUS", alg, raw).map(|()| strength)
                        })
                        .and_then(|strength| match current {
                            Some(keys) => keys
                                .with_previous_hmac(raw.as_bytes())
                                .map(|keys| (strength, Some(keys)))
                                .map_err(|e| {
                                    previous_key_error("SECRET_KEY_PREVIOUS", "SECRET_KEY", &e)
                                }),
                            None => Ok((strength, None)),
                        });
                    report
                        .take(checked, |(strength, keys)| {
                            let kid = keys
                                .as_ref()
                                .and_then(|k| k.previous_kids().next())
                                .map(|kid| format!(", kid {kid}"))
                                .unwrap_or_default();
                            Finding::pass(
                                "SECRET_KEY_PREVIOUS",
                                format!(
                                    "{} bytes, about {} bits of entropy{kid}: verifies tokens signed before the rotation, never signs",
                                    strength.bytes, strength.entropy_bits
                                ),
                            )
                        })
                        .and_then(|(_, keys)| keys)
                }
            }
        }
        Some(alg) => {
            if env.get("SECRET_KEY").is_some() {
                report.push(Finding::warn(
                    "SECRET_KEY",
                    format!("set but not used: ALGORITHM={alg} signs with JWT_PRIVATE_KEY_FILE"),
                    "remove SECRET_KEY, so nobody mistakes it for the signing key",
                ));
            }
            if env.get("SECRET_KEY_PREVIOUS").is_some() {
                report.refuse(ConfigError::new(
                    "SECRET_KEY_PREVIOUS",
                    ConfigErrorKind::Invalid,
                    format!(
                        "SECRET_KEY_PREVIOUS is set but ALGORITHM={alg} verifies with public keys (JWT_PREVIOUS_PUBLIC_KEY_FILES)"
                    ),
                    "remove SECRET_KEY_PREVIOUS: keys rotate within one algorithm (changing the algorithm logs everyone out)",
                ));
            }
            let keys = report.take(key_files(env, alg), |k| {
                Finding::pass(
                    "JWT_PRIVATE_KEY_FILE",
                    format!("{alg} key pair, kid {}", k.kid()),
                )
            });
            match env.get("JWT_PREVIOUS_PUBLIC_KEY_FILES") {
                Some(files) => keys.and_then(|keys| {
                    report.take(previous_key_files(keys, alg, files), |k| {
                        let kids: Vec<&str> = k.previous_kids().collect();
                        Finding::pass(
                            "JWT_PREVIOUS_PUBLIC_KEY_FILES",
                            format!(
                                "{} previous {alg} public key(s), kid {}: verify tokens signed before the rotation, never sign; published in the JWKS",
                                kids.len(),
                                kids.join(", ")
                            ),
                        )
                    })
                }),
                None => keys,
            }
        }
        None => None,
    };

    let access_minutes = report.take(
        integer(env, "ACCESS_TOKEN_EXPIRE_MINUTES", 30, 1, 1440),
        |m| Finding::pass("ACCESS_TOKEN_EXPIRE_MINUTES", format!("{m} minutes")),
    );
    if let Some(m) = access_minutes
        && m > 60
    {
        report.push(Finding::warn(
            "ACCESS_TOKEN_EXPIRE_MINUTES",
            format!("access tokens live {m} minutes: a stolen one stays usable that long"),
            "keep access tokens short (15-60 minutes) and let clients refresh",
        ));
    }
    let refresh_days = report.take(integer(env, "REFRESH_TOKEN_EXPIRE_DAYS", 14, 1, 365), |d| {
        Finding::pass("REFRESH_TOKEN_EXPIRE_DAYS", format!("{d} days"))
    });
    let refresh_reuse = report.take(refresh_reuse(env), |w| {
        Finding::pass(
            "REFRESH_TOKEN_REUSE_SECONDS",
            if w.is_disabled() {
                "0: off; presenting a used refresh token again always revokes its login".to_owned()
            } else {
                format!(
                    "{} seconds: a refresh token presented again that soon after its use gets the same successor",
                    w.as_secs()
                )
            },
        )
    });
    let leeway = report.take(leeway(env), |l| {
        Finding::pass("JWT_LEEWAY_SECONDS", format!("{} seconds", l.as_secs()))
    });
    if let (Some(a), Some(l)) = (access_minutes, leeway) {
        let lifetime = Duration::from_secs(a * 60 + l.as_secs());
        if let Err(e) = check_key_rotation(env, report, lifetime, crate::Clock::System.now()) {
            report.refuse(e);
        }
    }
    let issuer = env
        .get("JWT_ISSUER")
        .unwrap_or(service_name)
        .trim()
        .to_owned();
    report.push(Finding::pass("JWT_ISSUER", format!("'{issuer}'")));
    let audience = env
        .get("JWT_AUDIENCE")
        .unwrap_or(service_name)
        .trim()
        .to_owned();
    report.push(Finding::pass("JWT_AUDIENCE", format!("'{audience}'")));

    let server = read_server(env, service_name, report);
    let admin = report.take(admin(env), |a| match a {
        Some(a) => Finding::pass(
            "ADMIN_USERNAME",
            format!("'{}' is created at start-up if missing", a.username),
        ),
        None => Finding::pass(
            "ADMIN_USERNAME",
            "no bootstrap admin (ADMIN_USERNAME/ADMIN_PASSWORD unset)",
        ),
    });
    let traffic = read_traffic(env, report);
    let account = account::read_account(env, server.as_ref().map(|s| (s.host, s.port)), report);
    let items_max = report.take(
        integer(
            env,
            "ITEMS_MAX_PER_USER",
            u64::from(DEFAULT_ITEMS_MAX_PER_USER),
            1,
            1_000_000,
        ),
        |n| Finding::pass("ITEMS_MAX_PER_USER", format!("{n} items per user")),
    );
    let session_cache = read_session_cache(
        env,
        server.as_ref().map(|s| s.database_url.as_str()),
        traffic.as_ref().and_then(|t| t.rate_limit_url.as_ref()),
        report,
    );

    Some(ServiceSettings {
        service_name: service_name.to_owned(),
        keys: keys?,
        access_token_ttl: Duration::from_secs(access_minutes? * 60),
        refresh_token_ttl: Duration::from_secs(refresh_days? * 86_400),
        refresh_reuse: refresh_reuse?,
        issuer,
        audience,
        leeway: leeway?,
        database_url: server.as_ref()?.database_url.clone(),
        host: server.as_ref()?.host,
        port: server?.port,
        admin: admin?,
        traffic: traffic?,
        account: account?,
        items_max_per_user: u32::try_from(items_max?).ok()?,
        session_cache: session_cache?,
    })
}

/// SESSION_CACHE_SECONDS: 0 (off) to 300, default 30; the finding says how
/// changes reach other instances with this database and RATE_LIMIT_URL.
fn read_session_cache(
    env: &Environment,
    database_url: Option<&str>,
    redis: Option<&RateLimitUrl>,
    report: &mut Report,
) -> Option<SessionCacheSettings> {
    let postgres = database_url.is_some_and(|u| u.starts_with("postgres"));
    let seconds = report.take(
        integer(
            env,
            "SESSION_CACHE_SECONDS",
            DEFAULT_SESSION_CACHE.as_secs(),
            0,
            300,
        ),
        |&s| {
            let reach = if postgres {
                "changes reach every instance at once through PostgreSQL LISTEN/NOTIFY".to_owned()
            } else if let Some(redis) = redis {
                format!("changes reach every instance at once through pub/sub on {redis}")
            } else {
                "SQLite without RATE_LIMIT_URL: one instance is assumed (another process on this database would serve a revoked token for up to this long)".to_owned()
            };
            Finding::pass(
                "SESSION_CACHE_SECONDS",
                if s == 0 {
                    "0: off; every protected request reads its user and login from the database"
                        .to_owned()
                } else {
                    format!("a verified user and login are served from memory for at most {s} seconds; {reach}")
                },
            )
        },
    )?;
    Some(SessionCacheSettings {
        ttl: Duration::from_secs(seconds),
        redis: redis.cloned(),
    })
}

/// REFRESH_TOKEN_REUSE_SECONDS: 0 (off) to 60, default 10.
fn refresh_reuse(env: &Environment) -> Result<ReuseWindow, ConfigError> {
    let seconds = integer(
        env,
        "REFRESH_TOKEN_REUSE_SECONDS",
        ReuseWindow::STANDARD.as_secs(),
        0,
        ReuseWindow::MAX_SECONDS,
    )?;
    ReuseWindow::seconds(seconds).ok_or_else(|| {
        ConfigError::new(
            "REFRESH_TOKEN_REUSE_SECONDS",
            ConfigErrorKind::OutOfRange,
            "REFRESH_TOKEN_REUSE_SECONDS is out of range",
            "set it from 0 (off) to 60",
        )
    })
}

fn read_traffic(env: &Environment, report: &mut Report) -> Option<TrafficSettings> {
    let proxies = report.take(trusted_proxies(env), |p| {
        if p.is_empty() {
            Finding::pass(
                "TRUSTED_PROXIES",
                "none: the client is the socket peer and forwarding headers are ignored",
            )
        } else {
            Finding::pass(
                "TRUSTED_PROXIES",
                format!("forwarding headers are believed from {p}"),
            )
        }
    });
    if proxies
        .as_ref()
        .is_some_and(TrustedProxies::trusts_everyone)
    {
        report.push(Finding::warn(
            "TRUSTED_PROXIES",
            "every address is trusted: a client that reaches the service directly can choose its address with X-Forwarded-For",
            "list only your proxies' addresses or networks, and keep the service unreachable except through them",
        ));
    }
    let max_failures = report.take(integer(env, "LOGIN_MAX_FAILURES", 5, 1, 1000), |n| {
        Finding::pass(
            "LOGIN_MAX_FAILURES",
            format!("{n} failed logins lock a username"),
        )
    });
    let max_per_ip = report.take(
        integer(env, "LOGIN_MAX_FAILURES_PER_IP", 50, 1, 100_000),
        |n| {
            Finding::pass(
                "LOGIN_MAX_FAILURES_PER_IP",
                format!("{n} failed logins lock a client address"),
            )
        },
    );
    let lockout = report.take(integer(env, "LOGIN_LOCKOUT_SECONDS", 300, 1, 86_400), |s| {
        Finding::pass("LOGIN_LOCKOUT_SECONDS", format!("{s} seconds"))
    });
    let signups = report.take(integer(env, "SIGNUP_MAX_PER_IP", 20, 1, 100_000), |n| {
        Finding::pass(
            "SIGNUP_MAX_PER_IP",
            format!("{n} signups per client address per hour"),
        )
    });
    let mails_per_address = report.take(integer(env, "MAIL_MAX_PER_ADDRESS", 5, 1, 1000), |n| {
        Finding::pass(
            "MAIL_MAX_PER_ADDRESS",
            format!("{n} password-reset or verification mails per address per hour"),
        )
    });
    let mails_per_ip = report.take(integer(env, "MAIL_MAX_PER_IP", 30, 1, 100_000), |n| {
        Finding::pass(
            "MAIL_MAX_PER_IP",
            format!("{n} password-reset or verification mail requests per client address per hour"),
        )
    });
    let rate_limit_url = report.take(rate_limit_url(env), |url| match url {
        Some(url) => Finding::pass(
            "RATE_LIMIT_URL",
            format!("login and signup counters are shared through {url}"),
        ),
        None => Finding::pass(
            "RATE_LIMIT_URL",
            "unset: login and signup counters live in this process (one instance)",
        ),
    });
    let timeout = report.take(integer(env, "REQUEST_TIMEOUT_SECONDS", 30, 1, 300), |s| {
        Finding::pass(
            "REQUEST_TIMEOUT_SECONDS",
            format!("requests not answered within {s} seconds get 503"),
        )
    });
    Some(TrafficSettings {
        trusted_proxies: proxies?,
        login_limits: LoginLimits {
            max_failures_per_username: u32::try_from(max_failures?).ok()?,
            max_failures_per_ip: u32::try_from(max_per_ip?).ok()?,
            lockout: Duration::from_secs(lockout?),
        },
        signup_limits: SignupLimits {
            max_per_ip: u32::try_from(signups?).ok()?,
            window: SignupLimits::STANDARD.window,
        },
        mail_limits: MailLimits {
            max_per_address: u32::try_from(mails_per_address?).ok()?,
            max_per_ip: u32::try_from(mails_per_ip?).ok()?,
            window: MailLimits::STANDARD.window,
        },
        rate_limit_url: rate_limit_url?,
        request_timeout: Duration::from_secs(timeout?),
    })
}

/// TRUSTED_PROXIES: comma-separated IP addresses and CIDR networks.
fn trusted_proxies(env: &Environment) -> Result<TrustedProxies, ConfigError> {
    let Some(raw) = env.get("TRUSTED_PROXIES") else {
        return Ok(TrustedProxies::none());
    };
    raw.parse().map_err(|e: crate::client_ip::InvalidProxyEntry| {
        ConfigError::new(
            "TRUSTED_PROXIES",
            ConfigErrorKind::Invalid,
            format!("TRUSTED_PROXIES: {e}"),
            "list your reverse proxies' addresses or networks, comma-separated, e.g. TRUSTED_PROXIES=10.0.0.0/8,192.0.2.10",
        )
    })
}

/// RATE_LIMIT_URL: `redis://host:port[/db]`, or unset.
fn rate_limit_url(env: &Environment) -> Result<Option<RateLimitUrl>, ConfigError> {
    let Some(raw) = env.get("RATE_LIMIT_URL") else {
        return Ok(None);
    };
    let url = raw.trim();
    let fix = "set RATE_LIMIT_URL to redis://host:port or redis://host:port/db (redis://:password@host:port with a password), or unset it to count in this process";
    let invalid = |problem: &str| {
        ConfigError::new(
            "RATE_LIMIT_URL",
            ConfigErrorKind::Invalid,
            format!("RATE_LIMIT_URL {problem}"),
            fix,
        )
    };
    if url.starts_with("rediss://") {
        return Err(invalid(
            "asks for TLS (rediss://), which this build does not include; reach Redis over a private network or a TLS tunnel with redis://",
        ));
    }
    if !url.starts_with("redis://") {
        return Err(invalid("is not a redis:// URL"));
    }
    // The parser's message may quote the URL, password included: keep it out.
    redis::Client::open(url).map_err(|_| invalid("cannot be parsed"))?;
    Ok(Some(RateLimitUrl(url.to_owned())))
}

/// JWT_LEEWAY_SECONDS: 0 to 60, default 30.
pub fn leeway(env: &Environment) -> Result<Leeway, ConfigError> {
    let seconds = integer(env, "JWT_LEEWAY_SECONDS", 30, 0, Leeway::MAX_SECONDS)?;
    Leeway::seconds(seconds).ok_or_else(|| {
        ConfigError::new(
            "JWT_LEEWAY_SECONDS",
            ConfigErrorKind::OutOfRange,
            "JWT_LEEWAY_SECONDS is out of range",
            "set it from 0 to 60",
        )
    })
}

/// The configured algorithm (default HS256).
pub fn algorithm(env: &Environment) -> Result<SigningAlgorithm, ConfigError> {
    let Some(raw) = env.get("ALGORITHM") else {
        return Ok(SigningAlgorithm::HS256);
    };
    raw.trim().parse::<SigningAlgorithm>().map_err(|e| {
        let choices: Vec<&str> = SigningAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
        ConfigError::new(
            "ALGORITHM",
            ConfigErrorKind::Invalid,
            format!("ALGORITHM={} is not supported", e.0),
            format!("set ALGORITHM to one of {}", choices.join(", ")),
        )
    })
}

/// What a SECRET_KEY that passed the checks looks like (never its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretStrength {
    /// Length in bytes.
    pub bytes: usize,
    /// A rough estimate: length times log2 of the distinct characters used.
    pub entropy_bits: u32,
}

/// The rules for SECRET_KEY, which is used as its UTF-8 bytes.
pub fn secret_key(raw: Option<&str>) -> Result<SecretStrength, ConfigError> {
    check_secret("SECRET_KEY", raw)
}

/// The rules for an HMAC secret in `var` (SECRET_KEY, or the retired key in
/// SECRET_KEY_PREVIOUS: a weak key must not verify tokens either).
fn check_secret(var: &str, raw: Option<&str>) -> Result<SecretStrength, ConfigError> {
    let fix = if var == "SECRET_KEY" {
        SECRET_KEY_FIX
    } else {
        PREVIOUS_SECRET_FIX
    };
    let weak = |problem: String| ConfigError::new(var, ConfigErrorKind::WeakSecret, problem, fix);
    let Some(raw) = raw else {
        return Err(ConfigError::new(
            var,
            ConfigErrorKind::Missing,
            format!("{var} is not set"),
            fix,
        ));
    };
    let normalized = raw.trim().to_ascii_lowercase();
    if PLACEHOLDER_SECRETS.contains(&normalized.as_str()) {
        return Err(weak(format!("{var} is a known placeholder value")));
    }
    if let Some((_, source)) = PUBLISHED_SECRETS.iter().find(|(key, _)| *key == normalized) {
        return Err(weak(format!(
            "{var} is {source}: it is published, so anyone can sign tokens with it"
        )));
    }
    if raw.len() < MIN_SECRET_BYTES {
        return Err(weak(format!(
            "{var} is only {} bytes, at least {MIN_SECRET_BYTES} are required",
            raw.len()
        )));
    }
    let distinct: BTreeSet<char> = raw.chars().collect();
    if distinct.len() < MIN_SECRET_DISTINCT_CHARS {
        return Err(weak(format!(
            "{var} has only {} distinct characters, at least {MIN_SECRET_DISTINCT_CHARS} are required",
            distinct.len()
        )));
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let entropy_bits = (raw.chars().count() as f64 * (distinct.len() as f64).log2()) as u32;
    Ok(SecretStrength {
        bytes: raw.len(),
        entropy_bits,
    })
}

/// How to fix a refused SECRET_KEY_PREVIOUS.
const PREVIOUS_SECRET_FIX: &str = "SECRET_KEY_PREVIOUS is the key SECRET_KEY had before `cargo auth setup-jwt --rotate`; a weak key must not verify tokens either: remove SECRET_KEY_PREVIOUS (tokens it signed stop working, their users log in again)";

/// A previous key refused by [`SigningKeys`], as the variable's error.
fn previous_key_error(var: &str, current: &str, e: &KeyError) -> ConfigError {
    let problem = match e {
        KeyError::SameAsCurrent => format!("{var} is the current key ({current})"),
        KeyError::DuplicatePrevious => format!("{var} lists the same key twice"),
        other => format!("{var}: {other}"),
    };
    ConfigError::new(
        var,
        ConfigErrorKind::KeyFile,
        problem,
        format!(
            "{var} holds the key {current} had before `cargo auth setup-jwt --rotate`: remove it, or set it to the retired key"
        ),
    )
}

/// Adds the public keys listed in JWT_PREVIOUS_PUBLIC_KEY_FILES (comma-separated PEM files).
fn previous_key_files(
    mut keys: SigningKeys,
    alg: SigningAlgorithm,
    files: &str,
) -> Result<SigningKeys, ConfigError> {
    const VAR: &str = "JWT_PREVIOUS_PUBLIC_KEY_FILES";
    let fix = format!(
        "list the {alg} public key files retired by `cargo auth setup-jwt --rotate`, comma-separated, or remove {VAR}"
    );
    for path in files.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let pem = std::fs::read(path).map_err(|e| {
            ConfigError::new(
                VAR,
                ConfigErrorKind::KeyFile,
                format!("{VAR}: {path} cannot be read ({e})"),
                fix.clone(),
            )
        })?;
        keys = keys.with_previous_public_pem(&pem).map_err(|e| match e {
            KeyError::SameAsCurrent | KeyError::DuplicatePrevious => {
                let mut error = previous_key_error(VAR, "JWT_PUBLIC_KEY_FILE", &e);
                error.problem = format!("{VAR}: {path} is the current public key or listed twice");
                error
            }
            other => ConfigError::new(
                VAR,
                ConfigErrorKind::KeyFile,
                format!("{VAR}: {path}: {other}"),
                fix.clone(),
            ),
        })?;
    }
    Ok(keys)
}

/// JWT_KEY_ROTATED_AT, written by `cargo auth setup-jwt --rotate`: when
/// the previous key stopped signing. With it, the report says when the
/// previous key may be dropped: once every token it signed has expired,
/// `lifetime` (the access-token lifetime and the leeway) after the rotation.
fn check_key_rotation(
    env: &Environment,
    report: &mut Report,
    lifetime: Duration,
    now: i64,
) -> Result<(), ConfigError> {
    const VAR: &str = "JWT_KEY_ROTATED_AT";
    let previous = ["SECRET_KEY_PREVIOUS", "JWT_PREVIOUS_PUBLIC_KEY_FILES"]
        .into_iter()
        .find(|v| env.get(v).is_some());
    let rotated_at = match env.get(VAR) {
        None => None,
        Some(raw) => Some(crate::clock::parse_rfc3339(raw.trim()).ok_or_else(|| {
            ConfigError::new(
                VAR,
                ConfigErrorKind::Invalid,
                format!("{VAR}={:?} is not an RFC 3339 time", truncate(raw)),
                "set it to when the key was rotated, e.g. 2026-12-01T10:00:00Z (`cargo auth setup-jwt --rotate` writes it), or remove it",
            )
        })?),
    };
    let minutes = lifetime.as_secs().div_ceil(60);
    match (previous, rotated_at) {
        (None, None) => {}
        (None, Some(_)) => report.push(Finding::warn(
            VAR,
            "set, but no previous key is (SECRET_KEY_PREVIOUS, JWT_PREVIOUS_PUBLIC_KEY_FILES)",
            format!("remove {VAR}: it dates the previous key, which is gone"),
        )),
        (Some(var), None) => report.push(Finding::warn(
            var,
            format!("when the key was retired is unknown ({VAR} unset): validate cannot tell when {var} may be dropped"),
            format!(
                "drop {var} once every token it signed has expired: {minutes} minutes (the access-token lifetime and leeway) after every instance runs the new key; set {VAR} to that moment, as `cargo auth setup-jwt --rotate` does"
            ),
        )),
        (Some(var), Some(at)) => {
            let until = at.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
            if now >= until {
                report.push(Finding::warn(
                    var,
                    format!(
                        "can be dropped: retired at {} ({VAR}), more than the access-token lifetime and leeway ({minutes} minutes) ago, so every token it signed has expired (if every instance has run the new key since then)",
                        crate::clock::rfc3339(at)
                    ),
                    format!("remove {var} and {VAR} from the configuration, then restart"),
                ));
            } else {
                report.push(Finding::pass(
                    VAR,
                    format!(
                        "{var} retired at {}; the tokens it signed expire by {}: keep it until then",
                        crate::clock::rfc3339(at),
                        crate::clock::rfc3339(until)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The one length rule an HMAC secret in `variable` (SECRET_KEY, or a
/// retired key kept for verification) must meet for `alg` on top of
/// [`secret_key`]'s: at least the hash's output size (RFC 7518 section 3.2:
/// 32, 48 and 64 bytes for HS256, HS384 and HS512). Asymmetric algorithms
/// take no secret: always `Ok`.
pub fn secret_length_for(
    variable: &str,
    alg: SigningAlgorithm,
    raw: &str,
) -> Result<(), ConfigError> {
    match alg.min_secret_bytes() {
        Some(min) if raw.len() < min => Err(ConfigError::new(
            variable,
            ConfigErrorKind::WeakSecret,
            format!(
                "{variable} is {} bytes, but ALGORITHM={alg} needs at least {min} (RFC 7518 section 3.2: a key as long as the hash)",
                raw.len()
            ),
            format!(
                "generate a longer key with `cargo auth setup-jwt --force` (64 characters) or `openssl rand -hex {}`, or set ALGORITHM=HS256",
                min.div_ceil(2)
            ),
        )),
        _ => Ok(()),
    }
}

/// Reads and checks JWT_PRIVATE_KEY_FILE / JWT_PUBLIC_KEY_FILE for `alg`.
pub fn key_files(env: &Environment, alg: SigningAlgorithm) -> Result<SigningKeys, ConfigError> {
    let fix = format!(
        "generate a key pair with `cargo auth setup-jwt --algorithm {alg}` and set JWT_PRIVATE_KEY_FILE and JWT_PUBLIC_KEY_FILE, or use ALGORITHM=HS256"
    );
    let read = |var: &str| -> Result<Vec<u8>, ConfigError> {
        let path = env.get(var).ok_or_else(|| {
            ConfigError::new(
                var,
                ConfigErrorKind::Missing,
                format!("ALGORITHM={alg} needs {var} (a PEM file)"),
                fix.clone(),
            )
        })?;
        std::fs::read(path).map_err(|e| {
            ConfigError::new(
                var,
                ConfigErrorKind::KeyFile,
                format!("{var}={path} cannot be read ({e})"),
                fix.clone(),
            )
        })
    };
    let private = Zeroizing::new(read("JWT_PRIVATE_KEY_FILE")?);
    let public = read("JWT_PUBLIC_KEY_FILE")?;
    SigningKeys::from_pem(alg, &private, &public).map_err(|e| {
        let var = if matches!(e, KeyError::PublicKey(_)) {
            "JWT_PUBLIC_KEY_FILE"
        } else {
            "JWT_PRIVATE_KEY_FILE"
        };
        ConfigError::new(
            var,
            ConfigErrorKind::KeyFile,
            format!("{var}: {e}"),
            fix.clone(),
        )
    })
}

/// A whole number from `lo` to `hi`, or `default` when unset.
pub fn integer(
    env: &Environment,
    var: &str,
    default: u64,
    lo: u64,
    hi: u64,
) -> Result<u64, ConfigError> {
    let Some(raw) = env.get(var) else {
        return Ok(default);
    };
    let fix = format!("set {var} to a whole number from {lo} to {hi}");
    let value: u64 = raw.trim().parse().map_err(|_| {
        ConfigError::new(
            var,
            ConfigErrorKind::Invalid,
            format!("{var}={:?} is not a whole number", truncate(raw)),
            fix.clone(),
        )
    })?;
    if !(lo..=hi).contains(&value) {
        return Err(ConfigError::new(
            var,
            ConfigErrorKind::OutOfRange,
            format!("{var}={value} is out of range"),
            fix,
        ));
    }
    Ok(value)
}

/// The first 40 characters of a value, to quote it in a message.
pub fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// DATABASE_URL: `sqlite:` or `postgres://`, parseable; default a SQLite
/// file named after the service in the working directory.
pub fn database_url(env: &Environment, service_name: &str) -> Result<String, ConfigError> {
    let url = env.get("DATABASE_URL").map_or_else(
        || format!("sqlite://{service_name}.db?mode=rwc"),
        |u| u.trim().to_owned(),
    );
    let fix = "use sqlite://<file>.db?mode=rwc or postgres://user:password@host:5432/database";
    let parsed = if url.starts_with("sqlite:") {
        url.parse::<sqlx::sqlite::SqliteConnectOptions>()
            .map(|_| ())
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url.parse::<sqlx::postgres::PgConnectOptions>().map(|_| ())
    } else {
        return Err(ConfigError::new(
            "DATABASE_URL",
            ConfigErrorKind::Invalid,
            "DATABASE_URL is neither a sqlite: nor a postgres:// URL",
            fix,
        ));
    };
    // The parser's message may quote the URL, password included: keep it out.
    parsed.map_err(|_| {
        ConfigError::new(
            "DATABASE_URL",
            ConfigErrorKind::Invalid,
            "DATABASE_URL cannot be parsed",
            fix,
        )
    })?;
    Ok(url)
}

/// A database URL for display: the scheme and location, never a password.
pub fn describe_database(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let file = rest.trim_start_matches("//");
        let file = file.split('?').next().unwrap_or(file);
        if file.is_empty() || file == ":memory:" {
            "SQLite in memory".to_owned()
        } else {
            format!("SQLite file {file}")
        }
    } else {
        let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
        let host_part = after_scheme
            .rsplit_once('@')
            .map_or(after_scheme, |(_, h)| h);
        format!(
            "PostgreSQL at {}",
            host_part.split('?').next().unwrap_or(host_part)
        )
    }
}

fn host(env: &Environment) -> Result<IpAddr, ConfigError> {
    let Some(raw) = env.get("HOST") else {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    };
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    raw.parse().map_err(|_| {
        ConfigError::new(
            "HOST",
            ConfigErrorKind::Invalid,
            format!("HOST={:?} is not an IP address", truncate(raw)),
            "set HOST to an IP address such as 127.0.0.1 or 0.0.0.0",
        )
    })
}

/// The shortest username a signup accepts.
pub const USERNAME_MIN_CHARS: usize = 3;
/// The longest username a signup accepts.
pub const USERNAME_MAX_CHARS: usize = 64;
/// The characters of a username, as a JSON Schema pattern (the length is
/// [`USERNAME_MIN_CHARS`] to [`USERNAME_MAX_CHARS`]).
pub const USERNAME_PATTERN: &str = "^[A-Za-z0-9_.-]+$";

/// The username rule: 3 to 64 of `A-Z a-z 0-9 _ . -`.
pub fn is_valid_username(name: &str) -> bool {
    (USERNAME_MIN_CHARS..=USERNAME_MAX_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// An email address as signup and the account routes accept it: at most
/// 254 bytes, RFC 5321 syntax, and a dot (no bare `user@host`). A bare
/// address only: no display name (`Name <a@b.c>` would make many "unique"
/// addresses of one mailbox, and put the sender's text in the service's
/// own mail) and no domain literal (`a@[10.0.0.1]`).
pub fn is_valid_email(email: &str) -> bool {
    use email_address::{EmailAddress, Options};
    let bare = Options::default()
        .without_display_text()
        .without_domain_literal();
    email.chars().count() <= crate::login::EMAIL_MAX_CHARS
        && EmailAddress::parse_with_options(email, bare).is_ok_and(|a| a.email() == email)
        && email.contains('.')
}

fn admin(env: &Environment) -> Result<Option<AdminBootstrap>, ConfigError> {
    match (env.get("ADMIN_USERNAME"), env.get("ADMIN_PASSWORD")) {
        (Some(username), Some(password)) => {
            if !is_valid_username(username) {
                return Err(ConfigError::new(
                    "ADMIN_USERNAME",
                    ConfigErrorKind::Invalid,
                    "ADMIN_USERNAME is not a valid username",
                    "use 3 to 64 of A-Z a-z 0-9 _ . -",
                ));
            }
            if password.chars().count() < 8 || password.len() > 1024 {
                return Err(ConfigError::new(
                    "ADMIN_PASSWORD",
                    ConfigErrorKind::Invalid,
                    "ADMIN_PASSWORD must be at least 8 characters and at most 1024 bytes",
                    "choose a longer admin password",
                ));
            }
            Ok(Some(AdminBootstrap {
                username: username.to_owned(),
                password: Zeroizing::new(password.to_owned()),
            }))
        }
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::new(
            "ADMIN_PASSWORD",
            ConfigErrorKind::Missing,
            "ADMIN_USERNAME is set but ADMIN_PASSWORD is not",
            "set both ADMIN_USERNAME and ADMIN_PASSWORD, or neither",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            "ADMIN_USERNAME",
            ConfigErrorKind::Missing,
            "ADMIN_PASSWORD is set but ADMIN_USERNAME is not",
            "set both ADMIN_USERNAME and ADMIN_PASSWORD, or neither",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn emails_are_bare_addresses() {
        for good in ["ann@example.com", "a.b+tag@sub.example.org"] {
            assert!(is_valid_email(good), "{good}");
        }
        for bad in [
            "x <victim@corp.com>",
            "\"y\" <victim@corp.com>",
            "a@[10.0.0.1]",
            "ann@localhost",
            "nope",
            " ann@example.com",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().copied())
    }

    /// The variable and a fragment of the message for a refused configuration.
    fn check_refused(pairs: &[(&str, &str)], variable: &str, fragment: &str) {
        let err = ServiceSettings::from_env(&env(pairs), "svc").unwrap_err();
        assert_eq!(err.variable(), variable, "{err}");
        assert!(
            err.to_string().contains(fragment),
            "{err:?} lacks {fragment:?}"
        );
        let findings = check_service(&env(pairs), "svc");
        assert!(
            findings
                .iter()
                .any(|f| f.status == Status::Fail && f.subject == variable),
            "{findings:#?}"
        );
    }

    #[test]
    fn hmac_keys_are_as_long_as_their_hash() {
        let key = |n: usize| "0123456789abcdef".repeat(4)[..n].to_owned();
        for (alg, min) in [("HS384", 48), ("HS512", 64)] {
            let short = key(min - 1);
            check_refused(
                &[("ALGORITHM", alg), ("SECRET_KEY", &short)],
                "SECRET_KEY",
                &format!("ALGORITHM={alg} needs at least {min}"),
            );
            let err = ServiceSettings::from_env(
                &env(&[("ALGORITHM", alg), ("SECRET_KEY", &short)]),
                "svc",
            )
            .unwrap_err();
            assert!(err.fix().contains("cargo auth setup-jwt"), "{err}");
            let long = key(min);
            let settings = ServiceSettings::from_env(
                &env(&[("ALGORITHM", alg), ("SECRET_KEY", &long)]),
                "svc",
            );
            assert!(settings.is_ok(), "{alg} with {min} bytes: {settings:?}");
        }
        // HS256 keeps the 32-byte floor.
        assert!(ServiceSettings::from_env(&env(&[("SECRET_KEY", &key(32))]), "svc").is_ok());
        // The kit refuses the same keys when they are built directly.
        let e = SigningKeys::hmac(SigningAlgorithm::HS512, key(48).as_bytes()).unwrap_err();
        assert_eq!(e, KeyError::SecretTooShortFor(SigningAlgorithm::HS512, 48));
    }

    #[test]
    fn item_quota() {
        let settings = ServiceSettings::from_env(&env(&[("SECRET_KEY", GOOD_KEY)]), "svc").unwrap();
        assert_eq!(settings.items_max_per_user, DEFAULT_ITEMS_MAX_PER_USER);
        let settings = ServiceSettings::from_env(
            &env(&[("SECRET_KEY", GOOD_KEY), ("ITEMS_MAX_PER_USER", "3")]),
            "svc",
        )
        .unwrap();
        assert_eq!(settings.items_max_per_user, 3);
        for bad in ["0", "-1", "many", "1000001"] {
            check_refused(
                &[("SECRET_KEY", GOOD_KEY), ("ITEMS_MAX_PER_USER", bad)],
                "ITEMS_MAX_PER_USER",
                "set ITEMS_MAX_PER_USER to a whole number from 1 to 1000000",
            );
        }
    }

    #[test]
    fn refused_configurations() {
        check_refused(&[], "SECRET_KEY", "is not set");
        check_refused(
            &[("SECRET_KEY", "0123456789")],
            "SECRET_KEY",
            "only 10 bytes",
        );
        check_refused(
            &[("SECRET_KEY", "your_secret_key_here")],
            "SECRET_KEY",
            "placeholder",
        );
        check_refused(&[("SECRET_KEY", " ChangeMe ")], "SECRET_KEY", "placeholder");
        check_refused(
            &[(
                "SECRET_KEY",
                "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
            )],
            "SECRET_KEY",
            "FastAPI's JWT tutorial",
        );
        check_refused(
            &[("SECRET_KEY", "a-string-secret-at-least-256-bits-long")],
            "SECRET_KEY",
            "is published",
        );
        check_refused(
            &[("SECRET_KEY", &"ab".repeat(20))],
            "SECRET_KEY",
            "distinct characters",
        );
        check_refused(
            &[("SECRET_KEY", GOOD_KEY), ("ALGORITHM", "none")],
            "ALGORITHM",
            "not supported",
        );
        check_refused(
            &[("SECRET_KEY", GOOD_KEY), ("ALGORITHM", "hs256")],
            "ALGORITHM",
            "not supported",
        );
        check_refused(
            &[("ALGORITHM", "RS256")],
            "JWT_PRIVATE_KEY_FILE",
            "needs JWT_PRIVATE_KEY_FILE",
        );
        check_refused(
            &[
                ("ALGORITHM", "ES256"),
                ("JWT_PRIVATE_KEY_FILE", "/nonexistent/key.pem"),
                ("JWT_PUBLIC_KEY_FILE", "/x"),
            ],
            "JWT_PRIVATE_KEY_FILE",
            "cannot be read",
        );
        check_refused(
            &[
                ("SECRET_KEY", GOOD_KEY),
                ("ACCESS_TOKEN_EXPIRE_MINUTES", "0"),
            ],
            "ACCESS_TOKEN_EXPIRE_MINUTES",
            "out of range",
        );
        check_refused(
            &[
                ("SECRET_KEY", GOOD_KEY),
                ("ACCESS_TOKEN_EXPIRE_MINUTES", "1441"),
            ],
            "ACCESS_TOKEN_EXPIRE_MINUTES",
            "out of range",
        );
        check_refused(
            &[("SECRET_KEY", GOOD_KEY), ("REFRESH_TOKEN_EXPIRE_DAYS", "x")],
            "REFRESH_TOKEN_EXPIRE_DAYS",
            "not a whole number",
        );
        check_refused(
            &[
                ("SECRET_KEY", GOOD_KEY),
                ("REFRESH_TOKEN_REUSE_SECONDS", "61"),
            ],
            "REFRESH_TOKEN_REUSE_SECONDS",
            "out of range",
        );
        check_refused(
            &[
                ("SECRET_KEY", GOOD_KEY),
                ("REFRESH_TOKEN_REUSE_SECONDS", "-1"),
            ],
            "REFRESH_TOKEN_REUSE_SECONDS",
            "not a whole number",
        );
        check_refused(
            &[("SECRET_KEY", GOOD_KEY), ("JWT_LEEWAY_SECONDS", "61")],
            "JWT_LEEWAY_SECONDS",
            "out of range",
        );
        check_refused(
            &[("SECRET_KEY", GOOD_KEY), ("DATABASE_URL", "mysql://x")],
            "DATABASE_URL",
            "neither",
        );
        check_refused(
            &[("SECRET_KEY", GOOD_KEY), ("PORT", "70000")],
            "PORT",
            "out of range",
        );
        check_refused(
            &[("SECRET_KEY", GOOD_KEY), ("HOST", "example.com")],
            "HOST",
            "not an IP address",
        );
        check_refused(
            &[
                ("SECRET_KEY", GOOD_KEY),
                ("ADMIN_USERNAME", "admin"),
                ("ADMIN_PASSWORD", "short"),
            ],
            "ADMIN_PASSWORD",
            "at least 8",
        );
        check_refused(
            &[("SECRET_KEY", GOOD_KEY), ("ADMIN_USERNAME", "admin")],
            "ADMIN_PASSWORD",
            "ADMIN_PASSWORD is not",
        );
        for (var, value, fragment) in [
            (
                "TRUSTED_PROXIES",
                "10.0.0.0/8, proxy.internal",
                "\"proxy.internal\" is neither",
            ),
            ("TRUSTED_PROXIES", "10.0.0.0/40", "CIDR"),
            ("LOGIN_MAX_FAILURES_PER_IP", "0", "out of range"),
            ("SIGNUP_MAX_PER_IP", "many", "not a whole number"),
            ("RATE_LIMIT_URL", "http://cache:6379", "not a redis:// URL"),
            ("RATE_LIMIT_URL", "rediss://cache:6379", "TLS"),
            (
                "RATE_LIMIT_URL",
                "redis://:hunter2@cache:notaport",
                "cannot be parsed",
            ),
            ("REQUEST_TIMEOUT_SECONDS", "0", "out of range"),
            ("REQUEST_TIMEOUT_SECONDS", "301", "out of range"),
        ] {
            check_refused(&[("SECRET_KEY", GOOD_KEY), (var, value)], var, fragment);
            assert!(TrafficSettings::from_env(&env(&[(var, value)])).is_err());
            assert!(
                check_traffic(&env(&[(var, value)]))
                    .iter()
                    .all(|f| !f.message.contains("hunter2"))
            );
        }
    }

    #[test]
    fn session_cache_settings() {
        for (value, fragment) in [("301", "out of range"), ("-1", "not a whole number")] {
            check_refused(
                &[("SECRET_KEY", GOOD_KEY), ("SESSION_CACHE_SECONDS", value)],
                "SESSION_CACHE_SECONDS",
                fragment,
            );
        }
        // Which channel the finding names follows the database and RATE_LIMIT_URL.
        for (extra, ttl, says) in [
            (vec![], 30, "one instance is assumed"),
            (vec![("SESSION_CACHE_SECONDS", "0")], 0, "0: off"),
            (
                vec![("RATE_LIMIT_URL", "redis://:hunter2@cache:6379")],
                30,
                "pub/sub on Redis at cache:6379",
            ),
            (
                vec![
                    ("DATABASE_URL", "postgres://db/auth"),
                    ("RATE_LIMIT_URL", "redis://cache:6379"),
                    ("SESSION_CACHE_SECONDS", "5"),
                ],
                5,
                "PostgreSQL LISTEN/NOTIFY",
            ),
        ] {
            let pairs: Vec<(&str, &str)> = [("SECRET_KEY", GOOD_KEY)]
                .into_iter()
                .chain(extra)
                .collect();
            let s = ServiceSettings::from_env(&env(&pairs), "svc").unwrap();
            assert_eq!(s.session_cache.ttl, Duration::from_secs(ttl));
            let finding = check_service(&env(&pairs), "svc")
                .into_iter()
                .find(|f| f.subject == "SESSION_CACHE_SECONDS")
                .unwrap();
            assert_eq!(finding.status, Status::Pass);
            assert!(finding.message.contains(says), "{}", finding.message);
            assert!(!finding.message.contains("hunter2"));
        }
    }

    #[test]
    fn traffic_settings() {
        let pairs = [
            ("TRUSTED_PROXIES", "10.0.0.0/8,::1"),
            ("LOGIN_MAX_FAILURES_PER_IP", "200"),
            ("SIGNUP_MAX_PER_IP", "3"),
            ("RATE_LIMIT_URL", "redis://:hunter2@cache:6379/2"),
            ("REQUEST_TIMEOUT_SECONDS", "12"),
        ];
        let t = TrafficSettings::from_env(&env(&pairs)).unwrap();
        assert_eq!(t.trusted_proxies.to_string(), "10.0.0.0/8, ::1/128");
        assert_eq!(t.login_limits.max_failures_per_ip, 200);
        assert_eq!(t.signup_limits.max_per_ip, 3);
        assert_eq!(t.request_timeout, Duration::from_secs(12));
        let url = t.rate_limit_url.unwrap();
        assert_eq!(url.expose(), "redis://:hunter2@cache:6379/2");
        assert_eq!(
            format!("{url} {url:?}"),
            "Redis at cache:6379/2 RateLimitUrl(Redis at cache:6379/2)"
        );
        let findings = check_traffic(&env(&pairs));
        assert!(
            findings.iter().all(|f| f.status == Status::Pass),
            "{findings:#?}"
        );
        assert!(findings.iter().all(|f| !f.message.contains("hunter2")));
        let everyone = check_traffic(&env(&[("TRUSTED_PROXIES", "0.0.0.0/0")]));
        assert!(
            everyone
                .iter()
                .any(|f| f.status == Status::Warn && f.subject == "TRUSTED_PROXIES")
        );
    }

    fn fixture(name: &str) -> String {
        format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    const OLD_KEY: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn previous_keys_are_refused_when_wrong() {
        let (es_private, es_public) = (fixture("es256-private.pem"), fixture("es256-public.pem"));
        let es256 = [
            ("ALGORITHM", "ES256"),
            ("JWT_PRIVATE_KEY_FILE", es_private.as_str()),
            ("JWT_PUBLIC_KEY_FILE", es_public.as_str()),
        ];
        fn with(base: &[(&str, &str)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
            base.iter()
                .chain(extra)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        }
        fn borrowed(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
            pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        }
        let refused = |pairs: Vec<(String, String)>, variable: &str, fragment: &str| {
            check_refused(&borrowed(&pairs), variable, fragment);
        };
        let hs = [("SECRET_KEY", GOOD_KEY)];
        refused(
            with(&hs, &[("SECRET_KEY_PREVIOUS", GOOD_KEY)]),
            "SECRET_KEY_PREVIOUS",
            "is the current key",
        );
        refused(
            with(&hs, &[("SECRET_KEY_PREVIOUS", "changeme")]),
            "SECRET_KEY_PREVIOUS",
            "placeholder",
        );
        refused(
            with(&hs, &[("SECRET_KEY_PREVIOUS", "0123456789")]),
            "SECRET_KEY_PREVIOUS",
            "only 10 bytes",
        );
        refused(
            with(&hs, &[("JWT_PREVIOUS_PUBLIC_KEY_FILES", &es_public)]),
            "JWT_PREVIOUS_PUBLIC_KEY_FILES",
            "ALGORITHM=HS256",
        );
        refused(
            with(&es256, &[("SECRET_KEY_PREVIOUS", OLD_KEY)]),
            "SECRET_KEY_PREVIOUS",
            "ALGORITHM=ES256",
        );
        refused(
            with(&es256, &[("JWT_PREVIOUS_PUBLIC_KEY_FILES", &es_public)]),
            "JWT_PREVIOUS_PUBLIC_KEY_FILES",
            "is the current public key",
        );
        refused(
            with(
                &es256,
                &[(
                    "JWT_PREVIOUS_PUBLIC_KEY_FILES",
                    &fixture("eddsa-public.pem"),
                )],
            ),
            "JWT_PREVIOUS_PUBLIC_KEY_FILES",
            "not a PEM ES256 public key",
        );
        refused(
            with(
                &es256,
                &[("JWT_PREVIOUS_PUBLIC_KEY_FILES", "/nonexistent/old.pem")],
            ),
            "JWT_PREVIOUS_PUBLIC_KEY_FILES",
            "cannot be read",
        );
        refused(
            with(
                &hs,
                &[
                    ("SECRET_KEY_PREVIOUS", OLD_KEY),
                    ("JWT_KEY_ROTATED_AT", "last week"),
                ],
            ),
            "JWT_KEY_ROTATED_AT",
            "not an RFC 3339 time",
        );

        // And accepted when right: a previous key of each kind.
        let s = ServiceSettings::from_env(
            &env(&[("SECRET_KEY", GOOD_KEY), ("SECRET_KEY_PREVIOUS", OLD_KEY)]),
            "svc",
        )
        .unwrap();
        assert_eq!(s.keys.previous_kids().count(), 1);
        let other = fixture("es256-other-public.pem");
        let pairs = with(
            &es256,
            &[("JWT_PREVIOUS_PUBLIC_KEY_FILES", &format!("{other}, "))],
        );
        let s = ServiceSettings::from_env(&env(&borrowed(&pairs)), "svc").unwrap();
        assert_eq!(s.keys.jwks().unwrap().keys.len(), 2);
    }

    #[test]
    fn validate_says_when_the_previous_key_can_go() {
        let now = crate::Clock::System.now();
        let status_of = |pairs: &[(&str, &str)], subject: &str| -> Vec<(Status, String)> {
            check_service(&env(pairs), "svc")
                .into_iter()
                .filter(|f| f.subject == subject)
                .map(|f| (f.status, f.message))
                .collect()
        };
        let recent = crate::clock::rfc3339(now - 60);
        let found = status_of(
            &[
                ("SECRET_KEY", GOOD_KEY),
                ("SECRET_KEY_PREVIOUS", OLD_KEY),
                ("JWT_KEY_ROTATED_AT", &recent),
            ],
            "JWT_KEY_ROTATED_AT",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, Status::Pass);
        assert!(found[0].1.contains("keep it until"), "{found:?}");
        // 30 minutes of tokens and 30 s of leeway: 31 minutes later it can go.
        let old = crate::clock::rfc3339(now - 31 * 60);
        let found = status_of(
            &[
                ("SECRET_KEY", GOOD_KEY),
                ("SECRET_KEY_PREVIOUS", OLD_KEY),
                ("JWT_KEY_ROTATED_AT", &old),
            ],
            "SECRET_KEY_PREVIOUS",
        );
        assert!(
            found
                .iter()
                .any(|(s, m)| *s == Status::Warn && m.starts_with("can be dropped")),
            "{found:?}"
        );
        // A longer token lifetime keeps it needed.
        let found = status_of(
            &[
                ("SECRET_KEY", GOOD_KEY),
                ("SECRET_KEY_PREVIOUS", OLD_KEY),
                ("JWT_KEY_ROTATED_AT", &old),
                ("ACCESS_TOKEN_EXPIRE_MINUTES", "60"),
            ],
            "JWT_KEY_ROTATED_AT",
        );
        assert_eq!(found[0].0, Status::Pass, "{found:?}");
        let unknown = status_of(
            &[("SECRET_KEY", GOOD_KEY), ("SECRET_KEY_PREVIOUS", OLD_KEY)],
            "SECRET_KEY_PREVIOUS",
        );
        assert!(
            unknown
                .iter()
                .any(|(s, m)| *s == Status::Warn && m.contains("unknown")),
            "{unknown:?}"
        );
        let leftover = status_of(
            &[("SECRET_KEY", GOOD_KEY), ("JWT_KEY_ROTATED_AT", &old)],
            "JWT_KEY_ROTATED_AT",
        );
        assert_eq!(leftover[0].0, Status::Warn, "{leftover:?}");
        // Warnings never stop the service.
        assert!(
            ServiceSettings::from_env(
                &env(&[
                    ("SECRET_KEY", GOOD_KEY),
                    ("SECRET_KEY_PREVIOUS", OLD_KEY),
                    ("JWT_KEY_ROTATED_AT", &old),
                ]),
                "svc"
            )
            .is_ok()
        );
    }

    #[test]
    fn every_secret_error_names_the_fix() {
        for key in ["", "short", "secret", &"a".repeat(40)] {
            let err = secret_key(Some(key).filter(|k| !k.is_empty())).unwrap_err();
            assert!(err.to_string().contains("cargo auth setup-jwt"), "{err}");
            assert!(err.to_string().contains("openssl rand -hex 32"), "{err}");
        }
    }

    #[test]
    fn secrets_never_appear_in_messages() {
        let secret = "abcdefgh";
        let err = secret_key(Some(secret)).unwrap_err();
        assert!(!err.to_string().contains(secret));
        let findings = check_service(&env(&[("SECRET_KEY", GOOD_KEY)]), "svc");
        assert!(findings.iter().all(|f| !f.message.contains(GOOD_KEY)));
    }

    #[test]
    fn defaults() {
        let s = ServiceSettings::from_env(&env(&[("SECRET_KEY", GOOD_KEY)]), "my-api").unwrap();
        assert_eq!(s.keys.algorithm(), SigningAlgorithm::HS256);
        assert_eq!(s.access_token_ttl, Duration::from_secs(30 * 60));
        assert_eq!(s.refresh_token_ttl, Duration::from_secs(14 * 86_400));
        assert_eq!(s.refresh_reuse, ReuseWindow::STANDARD);
        assert_eq!(s.refresh_reuse.as_secs(), 10);
        assert_eq!(
            (s.issuer.as_str(), s.audience.as_str()),
            ("my-api", "my-api")
        );
        assert_eq!(s.leeway.as_secs(), 30);
        assert_eq!(s.database_url, "sqlite://my-api.db?mode=rwc");
        assert_eq!(s.listen_addr().to_string(), "127.0.0.1:8000");
        assert!(s.admin.is_none());
        assert_eq!(s.traffic.login_limits, LoginLimits::STANDARD);
        assert_eq!(s.traffic.signup_limits, SignupLimits::STANDARD);
        assert!(s.traffic.trusted_proxies.is_empty());
        assert_eq!(s.traffic.rate_limit_url, None);
        assert_eq!(s.traffic.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(s.session_cache.ttl, DEFAULT_SESSION_CACHE);
        assert_eq!(s.session_cache.redis, None);
        let findings = check_service(&env(&[("SECRET_KEY", GOOD_KEY)]), "my-api");
        assert!(
            findings.iter().all(|f| f.status == Status::Pass),
            "{findings:#?}"
        );
    }

    #[test]
    fn warnings_do_not_refuse() {
        let pairs = [
            ("SECRET_KEY", GOOD_KEY),
            ("ACCESS_TOKEN_EXPIRE_MINUTES", "600"),
            ("HOST", "0.0.0.0"),
        ];
        assert!(ServiceSettings::from_env(&env(&pairs), "svc").is_ok());
        let warned: Vec<_> = check_service(&env(&pairs), "svc")
            .into_iter()
            .filter(|f| f.status == Status::Warn)
            .map(|f| f.subject)
            .collect();
        // HOST=0.0.0.0 also leaves the default PUBLIC_URL unusable in mails.
        assert_eq!(
            warned,
            ["ACCESS_TOKEN_EXPIRE_MINUTES", "HOST", "PUBLIC_URL"]
        );
    }

    #[test]
    fn low_entropy_key_warns() {
        // 32 bytes, 8 distinct characters: accepted by the rules, about 96 bits.
        let key = "abcdefgh".repeat(4);
        let findings = check_service(&env(&[("SECRET_KEY", &key)]), "svc");
        assert!(
            findings
                .iter()
                .any(|f| f.status == Status::Warn && f.subject == "SECRET_KEY"),
            "{findings:#?}"
        );
    }

    #[test]
    fn describes_databases_without_passwords() {
        assert_eq!(
            describe_database("sqlite://app.db?mode=rwc"),
            "SQLite file app.db"
        );
        assert_eq!(describe_database("sqlite::memory:"), "SQLite in memory");
        assert_eq!(
            describe_database("postgres://u:hunter2@db:5432/app?sslmode=require"),
            "PostgreSQL at db:5432/app"
        );
    }

    #[test]
    fn dotenv_file_is_read_and_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "# comment\nAUTH_KIT_TEST_ONLY_IN_FILE=from-file\nPATH=from-file\n",
        )
        .unwrap();
        let env = Environment::load_with_file(&path).unwrap();
        assert_eq!(env.get("AUTH_KIT_TEST_ONLY_IN_FILE"), Some("from-file"));
        assert_ne!(env.get("PATH"), Some("from-file"));
        std::fs::write(&path, "SECRET_KEY=abc\nthis line is broken\n").unwrap();
        let err = Environment::load_with_file(&path).unwrap_err();
        assert!(err.to_string().contains("cannot be parsed"), "{err}");
        assert!(!err.to_string().contains("abc"), "{err}");
        assert!(Environment::load_with_file(&dir.path().join("missing")).is_err());
    }
}
