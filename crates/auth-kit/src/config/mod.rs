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
//! Files: this one holds the environment, errors, findings and the
//! [`Report`] they are gathered in; `service` reads a jwt or oauth2
//! service's whole configuration from the parts: `keys` (secrets, key
//! files, algorithm, token lifetimes' building blocks), `server`
//! (DATABASE_URL, HOST, PORT, the bootstrap admin), `traffic` (proxies,
//! limits, RATE_LIMIT_URL, the session cache) and `account` (mail and the
//! account lifecycle).
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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

// Every setting's name, default, rule and `.env` line, as data.
pub mod catalog;

// Mail, links and tokens of the account lifecycle (reset, verification).
mod account;
pub use account::{
    AccountSettings, DEFAULT_MAIL_FROM, DEFAULT_MAIL_URL, EmailVerification, MailLimits,
    mail_transport,
};

mod keys;
mod server;
mod service;
mod traffic;
pub use keys::{
    MIN_SECRET_DISTINCT_CHARS, PLACEHOLDER_SECRETS, PUBLISHED_SECRETS, SECRET_KEY_FIX,
    SecretStrength, algorithm, key_files, leeway, secret_key, secret_length_for,
};
pub use server::{
    AdminBootstrap, ServerSettings, USERNAME_MAX_CHARS, USERNAME_MIN_CHARS, USERNAME_PATTERN,
    database_url, describe_database, is_valid_email, is_valid_username,
};
pub use service::{DEFAULT_ITEMS_MAX_PER_USER, ServiceSettings, check_service};
pub use traffic::{
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_SESSION_CACHE, LoginLimits, RateLimitUrl,
    SessionCacheSettings, SignupLimits, TrafficSettings, check_traffic, rate_limit_url,
};

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

/// Collects findings; remembers the first failure as a typed error. A
/// service with settings of its own checks them through one, so its
/// startup error and its findings come from the same code.
#[derive(Debug, Default)]
pub struct Report {
    findings: Vec<Finding>,
    first_error: Option<ConfigError>,
}

impl Report {
    /// The settings read, unless a setting was refused: any refusal
    /// refuses the whole, also one that reading could go on without. The
    /// error is the first refused setting.
    ///
    /// ```
    /// use auth_kit::config::{Environment, Finding, Report, integer};
    ///
    /// let env = Environment::from_pairs([("WORKERS", "0")]);
    /// let mut report = Report::default();
    /// let workers = report.take(integer(&env, "WORKERS", 4, 1, 64), |n| {
    ///     Finding::pass("WORKERS", format!("{n}"))
    /// });
    /// let err = report.settle(workers).unwrap_err();
    /// assert_eq!(err.variable(), "WORKERS");
    /// ```
    pub fn settle<T>(self, read: Option<T>) -> Result<T, ConfigError> {
        match (read, self.first_error.is_some()) {
            (Some(settings), false) => Ok(settings),
            _ => Err(self.into_error()),
        }
    }

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

#[cfg(test)]
mod tests;
