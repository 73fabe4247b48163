//! Configuration (SPEC sections 2 and 9): the environment, then `.env`.
//!
//! [`Environment`] merges the process environment over a `.env` file (the
//! environment wins). [`ServiceSettings::from_env`] turns it into typed
//! settings or the first [`ConfigError`]; [`check_service`] runs the very
//! same checks and reports every one as a [`Finding`] (PASS / WARN / FAIL
//! with the fix), which is what `cargo xtask validate` prints.
//! [`SupabaseSettings::from_env`] and [`check_supabase`] do the same for
//! the supabase service's variables.
//!
//! ```
//! use auth_kit::config::{Environment, ServiceSettings, Status, check_service};
//!
//! let env = Environment::from_pairs([("SECRET_KEY", "changeme")]);
//! let err = ServiceSettings::from_env(&env, "my-api").unwrap_err();
//! assert_eq!(err.variable(), "SECRET_KEY");
//! assert!(err.to_string().contains("cargo xtask setup-jwt"));
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

use crate::token::{KeyError, Leeway, MIN_SECRET_BYTES, SigningAlgorithm, SigningKeys};

// The Supabase settings live in their own file but use this module's
// report and parsing helpers; they need no HTTP client, so they are
// always compiled (for `cargo xtask validate`).
mod supabase;
pub use supabase::{
    JwtSecret, KeyKind, SupabaseKey, SupabaseSettings, VerifyMode, check_supabase, classify_key,
};

/// Placeholders refused as SECRET_KEY (SPEC section 9), compared ignoring
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
pub const SECRET_KEY_FIX: &str = "generate one with `cargo xtask setup-jwt` (or `openssl rand -hex 32`) and set SECRET_KEY to it in the environment or .env";

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
    fn new(
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

/// Failed-login limits (SPEC section 9).
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
    /// SPEC section 9: 5 per username, 50 per IP, 300 s.
    pub const STANDARD: LoginLimits = LoginLimits {
        max_failures_per_username: 5,
        max_failures_per_ip: 50,
        lockout: Duration::from_secs(300),
    };
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
    /// Failed-login limits.
    pub login_limits: LoginLimits,
    /// How many items one user may own (ITEMS_MAX_PER_USER).
    pub items_max_per_user: u32,
}

/// ITEMS_MAX_PER_USER when unset.
pub const DEFAULT_ITEMS_MAX_PER_USER: u32 = 1000;

impl ServiceSettings {
    /// Reads and checks every setting; the first refused one is the error.
    pub fn from_env(env: &Environment, service_name: &str) -> Result<Self, ConfigError> {
        let mut report = Report::default();
        match read_service(env, service_name, &mut report) {
            Some(settings) => Ok(settings),
            None => Err(report.first_error.unwrap_or_else(|| {
                ConfigError::new(
                    "configuration",
                    ConfigErrorKind::Invalid,
                    "the configuration is invalid",
                    "run `cargo xtask validate`",
                )
            })),
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

/// Collects findings; remembers the first failure as a typed error.
#[derive(Default)]
struct Report {
    findings: Vec<Finding>,
    first_error: Option<ConfigError>,
}

impl Report {
    /// Records a check's outcome and passes its value on.
    fn take<T>(
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

    fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }
}

/// Where a service keeps its data and listens: DATABASE_URL, HOST, PORT.
/// (The jwt and oauth2 services read these inside [`ServiceSettings`]; the
/// supabase service, which has no SECRET_KEY, reads them alone.)
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
                    "run `cargo xtask validate`",
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
            secret.and_then(|_| {
                let raw = env.get("SECRET_KEY").unwrap_or_default();
                SigningKeys::hmac(alg, raw.as_bytes()).ok()
            })
        }
        Some(alg) => {
            if env.get("SECRET_KEY").is_some() {
                report.push(Finding::warn(
                    "SECRET_KEY",
                    format!("set but not used: ALGORITHM={alg} signs with JWT_PRIVATE_KEY_FILE"),
                    "remove SECRET_KEY, so nobody mistakes it for the signing key",
                ));
            }
            report.take(key_files(env, alg), |k| {
                Finding::pass(
                    "JWT_PRIVATE_KEY_FILE",
                    format!("{alg} key pair, kid {}", k.kid().unwrap_or("-")),
                )
            })
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
    let leeway = report.take(leeway(env), |l| {
        Finding::pass("JWT_LEEWAY_SECONDS", format!("{} seconds", l.as_secs()))
    });
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
    let max_failures = report.take(integer(env, "LOGIN_MAX_FAILURES", 5, 1, 1000), |n| {
        Finding::pass(
            "LOGIN_MAX_FAILURES",
            format!("{n} failed logins lock a username"),
        )
    });
    let lockout = report.take(integer(env, "LOGIN_LOCKOUT_SECONDS", 300, 1, 86_400), |s| {
        Finding::pass("LOGIN_LOCKOUT_SECONDS", format!("{s} seconds"))
    });
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

    Some(ServiceSettings {
        service_name: service_name.to_owned(),
        keys: keys?,
        access_token_ttl: Duration::from_secs(access_minutes? * 60),
        refresh_token_ttl: Duration::from_secs(refresh_days? * 86_400),
        issuer,
        audience,
        leeway: leeway?,
        database_url: server.as_ref()?.database_url.clone(),
        host: server.as_ref()?.host,
        port: server?.port,
        admin: admin?,
        login_limits: LoginLimits {
            max_failures_per_username: u32::try_from(max_failures?).ok()?,
            max_failures_per_ip: LoginLimits::STANDARD.max_failures_per_ip,
            lockout: Duration::from_secs(lockout?),
        },
        items_max_per_user: u32::try_from(items_max?).ok()?,
    })
}

/// JWT_LEEWAY_SECONDS: 0 to 60, default 30.
fn leeway(env: &Environment) -> Result<Leeway, ConfigError> {
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

/// SPEC section 9's rules for SECRET_KEY, which is used as its UTF-8 bytes.
pub fn secret_key(raw: Option<&str>) -> Result<SecretStrength, ConfigError> {
    let weak = |problem: String| {
        ConfigError::new(
            "SECRET_KEY",
            ConfigErrorKind::WeakSecret,
            problem,
            SECRET_KEY_FIX,
        )
    };
    let Some(raw) = raw else {
        return Err(ConfigError::new(
            "SECRET_KEY",
            ConfigErrorKind::Missing,
            "SECRET_KEY is not set",
            SECRET_KEY_FIX,
        ));
    };
    let normalized = raw.trim().to_ascii_lowercase();
    if PLACEHOLDER_SECRETS.contains(&normalized.as_str()) {
        return Err(weak("SECRET_KEY is a known placeholder value".to_owned()));
    }
    if let Some((_, source)) = PUBLISHED_SECRETS.iter().find(|(key, _)| *key == normalized) {
        return Err(weak(format!(
            "SECRET_KEY is {source}: it is published, so anyone can sign tokens with it"
        )));
    }
    if raw.len() < MIN_SECRET_BYTES {
        return Err(weak(format!(
            "SECRET_KEY is only {} bytes, at least {MIN_SECRET_BYTES} are required",
            raw.len()
        )));
    }
    let distinct: BTreeSet<char> = raw.chars().collect();
    if distinct.len() < MIN_SECRET_DISTINCT_CHARS {
        return Err(weak(format!(
            "SECRET_KEY has only {} distinct characters, at least {MIN_SECRET_DISTINCT_CHARS} are required",
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
                "generate a longer key with `cargo xtask setup-jwt --force` (64 characters) or `openssl rand -hex {}`, or set ALGORITHM=HS256",
                min.div_ceil(2)
            ),
        )),
        _ => Ok(()),
    }
}

/// Reads and checks JWT_PRIVATE_KEY_FILE / JWT_PUBLIC_KEY_FILE for `alg`.
pub fn key_files(env: &Environment, alg: SigningAlgorithm) -> Result<SigningKeys, ConfigError> {
    let fix = format!(
        "generate a key pair with `cargo xtask setup-jwt --algorithm {alg}` and set JWT_PRIVATE_KEY_FILE and JWT_PUBLIC_KEY_FILE, or use ALGORITHM=HS256"
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
fn integer(
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

fn truncate(s: &str) -> String {
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
            assert!(err.fix().contains("cargo xtask setup-jwt"), "{err}");
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
    }

    #[test]
    fn every_secret_error_names_the_fix() {
        for key in ["", "short", "secret", &"a".repeat(40)] {
            let err = secret_key(Some(key).filter(|k| !k.is_empty())).unwrap_err();
            assert!(err.to_string().contains("cargo xtask setup-jwt"), "{err}");
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
        assert_eq!(
            (s.issuer.as_str(), s.audience.as_str()),
            ("my-api", "my-api")
        );
        assert_eq!(s.leeway.as_secs(), 30);
        assert_eq!(s.database_url, "sqlite://my-api.db?mode=rwc");
        assert_eq!(s.listen_addr().to_string(), "127.0.0.1:8000");
        assert!(s.admin.is_none());
        assert_eq!(s.login_limits, LoginLimits::STANDARD);
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
        assert_eq!(warned, ["ACCESS_TOKEN_EXPIRE_MINUTES", "HOST"]);
    }

    #[test]
    fn low_entropy_key_warns() {
        // 32 bytes, 8 distinct characters: accepted by SPEC's rules, about 96 bits.
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
