//! Every setting a service reads, defined once, as data: its name, its
//! default and rule as the docs show them, what the stamped `.env` says
//! about it and writes for it, which strategies read it, whether its value
//! is a secret, and, for a number, its range and default, which the parser
//! takes from here (so the docs, the `.env` and the checks cannot drift).
//!
//! A service whose users an external identity provider keeps reads the
//! settings marked [`Strategy::External`] and its provider's own, which
//! the crate for that provider declares with the same [`Setting`] type.
//!
//! Texts (`default`, `rule`) are Markdown, as docs/contract.md shows them;
//! [`SERVICE_NAME`] stands for the name the service was stamped with.
//!
//! ```
//! use auth_kit::config::Environment;
//! use auth_kit::config::catalog::{self, Strategy};
//!
//! let minutes = catalog::ACCESS_TOKEN_EXPIRE_MINUTES;
//! assert_eq!(minutes.default, "30");
//! assert_eq!(minutes.number(&Environment::from_pairs([("X", "1")])).unwrap(), 30);
//! assert!(catalog::for_strategy(Strategy::External).all(|s| s.name != "SECRET_KEY"));
//! ```

use super::{ConfigError, ConfigErrorKind, Environment, integer};
use crate::refresh::ReuseWindow;
use crate::token::Leeway;

/// Which services read a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// JWT access and refresh tokens, no scopes (the jwt template).
    Jwt,
    /// The OAuth2 password flow with scopes (the oauth2 template).
    Oauth2,
    /// A service whose users an external identity provider keeps: it
    /// reads the shared settings here, and its provider's own.
    External,
}

/// A whole-number setting's bounds (inclusive) and its value when unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The smallest value accepted.
    pub min: u64,
    /// The largest value accepted.
    pub max: u64,
    /// The value when the variable is unset.
    pub default: u64,
}

/// What the stamped `.env` writes for a setting, after its comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvValue {
    /// `# NAME=VALUE`: commented out, showing the default (or an example,
    /// or nothing); [`SERVICE_NAME`] is replaced by the service's name.
    CommentedOut(&'static str),
    /// `NAME=VALUE`: set, to this value.
    Set(&'static str),
    /// `NAME=PREFIX<hex>`: set, to a fresh random value of `hex_chars`
    /// hexadecimal characters after `prefix`.
    Fresh {
        /// What the value starts with.
        prefix: &'static str,
        /// How many random hexadecimal characters follow (at most 64).
        hex_chars: usize,
    },
}

/// One setting: one environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable.
    pub name: &'static str,
    /// Its default, as shown to people ("30", "unset", "none: required
    /// for ...").
    pub default: &'static str,
    /// What values it takes, and what they do, as shown to people.
    pub rule: &'static str,
    /// What the stamped `.env` says above its line: what it controls or
    /// protects (lines without `# `; empty when the line speaks for itself
    /// or the comment above a group covers it).
    pub comment: &'static str,
    /// The strategies whose services read it.
    pub strategies: &'static [Strategy],
    /// Whether its value is (or may hold) a credential: never printed.
    pub secret: bool,
    /// What the stamped `.env` writes for it.
    pub env: EnvValue,
    /// A whole number's bounds and default, which the parser uses.
    pub range: Option<Range>,
}

/// Stands for the service's name in defaults and `.env` values.
pub const SERVICE_NAME: &str = "<service name>";

impl Setting {
    /// Whether services of `strategy` read it.
    pub fn read_by(&self, strategy: Strategy) -> bool {
        self.strategies.contains(&strategy)
    }

    /// The whole number this setting holds: within its [`Range`], or its
    /// default when unset.
    pub fn number(&self, env: &Environment) -> Result<u64, ConfigError> {
        match self.range {
            Some(r) => integer(env, self.name, r.default, r.min, r.max),
            // A setting that is not a number read as one: a mistake in the
            // kit, reported rather than guessed around.
            None => Err(ConfigError::new(
                self.name,
                ConfigErrorKind::Invalid,
                format!("{} is not a number setting", self.name),
                "report this as a bug in auth-kit",
            )),
        }
    }

    /// Its lines in the stamped `.env` of the service `service_name`: the
    /// comment, then the setting.
    pub fn env_lines(&self, service_name: &str) -> String {
        let mut lines: String = self
            .comment
            .lines()
            .map(|line| format!("# {line}\n"))
            .collect();
        let line = match self.env {
            EnvValue::CommentedOut(value) => {
                format!(
                    "# {}={}",
                    self.name,
                    value.replace(SERVICE_NAME, service_name)
                )
            }
            EnvValue::Set(value) => format!("{}={value}", self.name),
            EnvValue::Fresh { prefix, hex_chars } => {
                let random = crate::random::secret_hex();
                let hex = random.get(..hex_chars).unwrap_or(&random);
                format!("{}={prefix}{hex}", self.name)
            }
        };
        lines.push_str(&line);
        lines.push('\n');
        lines
    }
}

/// The settings of a `strategy` service, in catalogue order.
pub fn for_strategy(strategy: Strategy) -> impl Iterator<Item = &'static Setting> {
    ALL.iter().filter(move |s| s.read_by(strategy))
}

/// The setting named `name`, if the catalogue has it.
pub fn find(name: &str) -> Option<&'static Setting> {
    ALL.iter().find(|s| s.name == name)
}

const EVERY: &[Strategy] = &[Strategy::Jwt, Strategy::Oauth2, Strategy::External];
const TOKENS: &[Strategy] = &[Strategy::Jwt, Strategy::Oauth2];

/// SECRET_KEY.
pub const SECRET_KEY: Setting = Setting {
    name: "SECRET_KEY",
    default: "none: required for jwt and oauth2 with an HMAC ALGORITHM",
    rule: "used as its UTF-8 bytes; at least 32 bytes and 8 distinct characters; placeholders (`changeme`, `secret`, `your_secret_key_here`, ...) refused",
    comment: "256 bits from the operating system's random number generator.",
    strategies: TOKENS,
    secret: true,
    env: EnvValue::Fresh {
        prefix: "",
        hex_chars: 64,
    },
    range: None,
};

/// ALGORITHM.
pub const ALGORITHM: Setting = Setting {
    name: "ALGORITHM",
    default: "HS256",
    rule: "HS256, HS384, HS512; RS256, ES256, EdDSA with JWT_PRIVATE_KEY_FILE and JWT_PUBLIC_KEY_FILE (PEM)",
    comment: "",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut("HS256"),
    range: None,
};

/// JWT_PRIVATE_KEY_FILE.
pub const JWT_PRIVATE_KEY_FILE: Setting = Setting {
    name: "JWT_PRIVATE_KEY_FILE",
    default: "unset",
    rule: "RS256, ES256, EdDSA: the PEM file of the private key that signs",
    comment: "",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut("  (RS256, ES256, EdDSA)"),
    range: None,
};

/// JWT_PUBLIC_KEY_FILE.
pub const JWT_PUBLIC_KEY_FILE: Setting = Setting {
    name: "JWT_PUBLIC_KEY_FILE",
    default: "unset",
    rule: "RS256, ES256, EdDSA: the PEM file of its public key, published at `/.well-known/jwks.json`",
    comment: "",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut(""),
    range: None,
};

/// ACCESS_TOKEN_EXPIRE_MINUTES.
pub const ACCESS_TOKEN_EXPIRE_MINUTES: Setting = Setting {
    name: "ACCESS_TOKEN_EXPIRE_MINUTES",
    default: "30",
    rule: "1 to 1440; over 60 is a WARN",
    comment: "",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut("30"),
    range: Some(Range {
        min: 1,
        max: 1440,
        default: 30,
    }),
};

/// REFRESH_TOKEN_EXPIRE_DAYS.
pub const REFRESH_TOKEN_EXPIRE_DAYS: Setting = Setting {
    name: "REFRESH_TOKEN_EXPIRE_DAYS",
    default: "14",
    rule: "1 to 365",
    comment: "",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut("14"),
    range: Some(Range {
        min: 1,
        max: 365,
        default: 14,
    }),
};

/// REFRESH_TOKEN_REUSE_SECONDS.
pub const REFRESH_TOKEN_REUSE_SECONDS: Setting = Setting {
    name: "REFRESH_TOKEN_REUSE_SECONDS",
    default: "10",
    rule: "0 (off) to 60",
    comment: "Seconds a used refresh token still gets the same new one (0 to 60, 0 off):",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut("10"),
    range: Some(Range {
        min: 0,
        max: ReuseWindow::MAX_SECONDS,
        default: ReuseWindow::STANDARD.as_secs(),
    }),
};

/// SECRET_KEY_PREVIOUS.
pub const SECRET_KEY_PREVIOUS: Setting = Setting {
    name: "SECRET_KEY_PREVIOUS",
    default: "unset",
    rule: "HS*: the key before the last rotation, held to SECRET_KEY's rules; verifies, never signs ([operations.md](operations.md))",
    comment: "Written by `cargo auth setup-jwt --rotate`: the key before the last rotation,
which verifies but never signs, and when it was retired:",
    strategies: TOKENS,
    secret: true,
    env: EnvValue::CommentedOut(""),
    range: None,
};

/// JWT_PREVIOUS_PUBLIC_KEY_FILES.
pub const JWT_PREVIOUS_PUBLIC_KEY_FILES: Setting = Setting {
    name: "JWT_PREVIOUS_PUBLIC_KEY_FILES",
    default: "unset",
    rule: "RS256, ES256, EdDSA: the public key files before the last rotation, comma-separated; verify, never sign ([operations.md](operations.md))",
    comment: "",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut("  (RS256, ES256, EdDSA; comma-separated)"),
    range: None,
};

/// JWT_KEY_ROTATED_AT.
pub const JWT_KEY_ROTATED_AT: Setting = Setting {
    name: "JWT_KEY_ROTATED_AT",
    default: "unset",
    rule: "when the last rotation happened (RFC 3339), so validate can say when the previous key may go",
    comment: "",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut(""),
    range: None,
};

/// JWT_ISSUER.
pub const JWT_ISSUER: Setting = Setting {
    name: "JWT_ISSUER",
    default: "the service name",
    rule: "`iss`: always issued and checked",
    comment: "",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut(SERVICE_NAME),
    range: None,
};

/// JWT_AUDIENCE.
pub const JWT_AUDIENCE: Setting = Setting {
    name: "JWT_AUDIENCE",
    default: "the service name",
    rule: "`aud`: always issued and checked",
    comment: "",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut(SERVICE_NAME),
    range: None,
};

/// JWT_LEEWAY_SECONDS.
pub const JWT_LEEWAY_SECONDS: Setting = Setting {
    name: "JWT_LEEWAY_SECONDS",
    default: "30",
    rule: "0 to 60; applies to `exp` and `nbf`",
    comment: "",
    strategies: EVERY,
    secret: false,
    env: EnvValue::CommentedOut("30"),
    range: Some(Range {
        min: 0,
        max: Leeway::MAX_SECONDS,
        default: 30,
    }),
};

/// DATABASE_URL.
pub const DATABASE_URL: Setting = Setting {
    name: "DATABASE_URL",
    default: "`sqlite://<service name>.db?mode=rwc`",
    rule: "`sqlite:` (a relative path is relative to the working directory; files created with mode 0600) or `postgres://`",
    comment: "",
    strategies: EVERY,
    // A PostgreSQL URL holds the database password.
    secret: true,
    env: EnvValue::CommentedOut("sqlite://<service name>.db?mode=rwc"),
    range: None,
};

/// HOST.
pub const HOST: Setting = Setting {
    name: "HOST",
    default: "127.0.0.1",
    rule: "an IP address to listen on (`localhost` is 127.0.0.1); 0.0.0.0, every interface, is a WARN",
    comment: "",
    strategies: EVERY,
    secret: false,
    env: EnvValue::CommentedOut("127.0.0.1"),
    range: None,
};

/// PORT.
pub const PORT: Setting = Setting {
    name: "PORT",
    default: "8000",
    rule: "0 to 65535; 0 picks a free port",
    comment: "",
    strategies: EVERY,
    secret: false,
    env: EnvValue::CommentedOut("8000"),
    range: Some(Range {
        min: 0,
        max: 65535,
        default: 8000,
    }),
};

/// ADMIN_USERNAME.
pub const ADMIN_USERNAME: Setting = Setting {
    name: "ADMIN_USERNAME",
    default: "unset",
    rule: "with ADMIN_PASSWORD: an admin is created at start-up when missing; an existing user is never changed; 3 to 64 of `A-Z a-z 0-9 _ . -`",
    comment: "",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut(""),
    range: None,
};

/// ADMIN_PASSWORD.
pub const ADMIN_PASSWORD: Setting = Setting {
    name: "ADMIN_PASSWORD",
    default: "unset",
    rule: "with ADMIN_USERNAME; a password shorter than 8 characters (or over 1024 bytes) is exit code 2",
    comment: "",
    strategies: TOKENS,
    secret: true,
    env: EnvValue::CommentedOut(""),
    range: None,
};

/// SESSION_CACHE_SECONDS.
pub const SESSION_CACHE_SECONDS: Setting = Setting {
    name: "SESSION_CACHE_SECONDS",
    default: "30",
    rule: "0 (off) to 300 ([below](#the-session-cache))",
    comment: "Seconds a verified user and login may be served from memory (0 to 300, 0 off).
A change is seen by every instance at once: PostgreSQL tells the others, and
with SQLite so does the Redis of RATE_LIMIT_URL (without it: one instance).",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut("30"),
    range: Some(Range {
        min: 0,
        max: 300,
        default: 30,
    }),
};

/// TRUSTED_PROXIES.
pub const TRUSTED_PROXIES: Setting = Setting {
    name: "TRUSTED_PROXIES",
    default: "empty",
    rule: "comma-separated addresses or CIDR networks ([below](#behind-a-proxy-as-a-fleet))",
    comment: "Behind a reverse proxy or load balancer: its addresses or networks
(comma-separated), so the client is the address it forwards in
X-Forwarded-For (or Forwarded). Empty: the client is the socket peer.",
    strategies: EVERY,
    secret: false,
    env: EnvValue::CommentedOut(""),
    range: None,
};

/// LOGIN_MAX_FAILURES.
pub const LOGIN_MAX_FAILURES: Setting = Setting {
    name: "LOGIN_MAX_FAILURES",
    default: "5",
    rule: "1 to 1000 failed logins per username within LOGIN_LOCKOUT_SECONDS",
    comment: "Failed logins that lock a username, and a client address, for LOGIN_LOCKOUT_SECONDS:",
    strategies: EVERY,
    secret: false,
    env: EnvValue::CommentedOut("5"),
    range: Some(Range {
        min: 1,
        max: 1000,
        default: 5,
    }),
};

/// LOGIN_MAX_FAILURES_PER_IP.
pub const LOGIN_MAX_FAILURES_PER_IP: Setting = Setting {
    name: "LOGIN_MAX_FAILURES_PER_IP",
    default: "50",
    rule: "1 to 100000 per client address",
    comment: "",
    strategies: EVERY,
    secret: false,
    env: EnvValue::CommentedOut("50"),
    range: Some(Range {
        min: 1,
        max: 100_000,
        default: 50,
    }),
};

/// LOGIN_LOCKOUT_SECONDS.
pub const LOGIN_LOCKOUT_SECONDS: Setting = Setting {
    name: "LOGIN_LOCKOUT_SECONDS",
    default: "300",
    rule: "1 to 86400",
    comment: "",
    strategies: EVERY,
    secret: false,
    env: EnvValue::CommentedOut("300"),
    range: Some(Range {
        min: 1,
        max: 86_400,
        default: 300,
    }),
};

/// SIGNUP_MAX_PER_IP.
pub const SIGNUP_MAX_PER_IP: Setting = Setting {
    name: "SIGNUP_MAX_PER_IP",
    default: "20",
    rule: "1 to 100000 signups (successful or not) per client address per hour",
    comment: "Signups per client address per hour:",
    strategies: EVERY,
    secret: false,
    env: EnvValue::CommentedOut("20"),
    range: Some(Range {
        min: 1,
        max: 100_000,
        default: 20,
    }),
};

/// MAIL_MAX_PER_ADDRESS.
pub const MAIL_MAX_PER_ADDRESS: Setting = Setting {
    name: "MAIL_MAX_PER_ADDRESS",
    default: "5",
    rule: "1 to 1000 reset and verification mails asked for one address per hour (both routes together), known or not",
    comment: "Password-reset and verification mails asked for, per address and per
client address, per hour:",
    strategies: EVERY,
    secret: false,
    env: EnvValue::CommentedOut("5"),
    range: Some(Range {
        min: 1,
        max: 1000,
        default: 5,
    }),
};

/// MAIL_MAX_PER_IP.
pub const MAIL_MAX_PER_IP: Setting = Setting {
    name: "MAIL_MAX_PER_IP",
    default: "30",
    rule: "1 to 100000 such requests per client address per hour",
    comment: "",
    strategies: EVERY,
    secret: false,
    env: EnvValue::CommentedOut("30"),
    range: Some(Range {
        min: 1,
        max: 100_000,
        default: 30,
    }),
};

/// RATE_LIMIT_URL.
pub const RATE_LIMIT_URL: Setting = Setting {
    name: "RATE_LIMIT_URL",
    default: "unset",
    rule: "`redis://host:port[/db]`: the limiter's counters in Redis, shared by every instance",
    comment: "Several instances: keep those counters in one Redis (unset: in this process).",
    strategies: EVERY,
    // May hold the Redis password.
    secret: true,
    env: EnvValue::CommentedOut("redis://127.0.0.1:6379"),
    range: None,
};

/// REQUEST_TIMEOUT_SECONDS.
pub const REQUEST_TIMEOUT_SECONDS: Setting = Setting {
    name: "REQUEST_TIMEOUT_SECONDS",
    default: "30",
    rule: "1 to 300",
    comment: "A request not answered in time gets 503 (headers must arrive within 10 s):",
    strategies: EVERY,
    secret: false,
    env: EnvValue::CommentedOut("30"),
    range: Some(Range {
        min: 1,
        max: 300,
        default: 30,
    }),
};

/// MAIL_URL.
pub const MAIL_URL: Setting = Setting {
    name: "MAIL_URL",
    default: "`file://./outbox`",
    rule: "`file://DIR` writes each mail as an RFC 5322 `.eml` file into DIR (created at start-up, mode 0700; files 0600, written aside then renamed so a reader never sees half a mail). `smtp://user:password@host[:port]` sends through SMTP with STARTTLS required (port 587); to a loopback host without TLS (port 25), or with `?tls=none` anywhere (a WARN in `validate`). `smtps://user:password@host[:port]` uses TLS from the start (port 465). Percent-encode special characters in the user and password. The URL is a secret: it is never logged or echoed.",
    comment: "Mail (password-reset and verification links). file://DIR writes each mail as
an .eml file into DIR; smtp://user:password@host:587 (STARTTLS) or
smtps://user:password@host:465 (TLS) sends it. Percent-encode special characters.",
    strategies: TOKENS,
    secret: true,
    env: EnvValue::CommentedOut(super::DEFAULT_MAIL_URL),
    range: None,
};

/// MAIL_FROM.
pub const MAIL_FROM: Setting = Setting {
    name: "MAIL_FROM",
    default: "`no-reply@localhost`",
    rule: "`addr@example.com` or `Name <addr@example.com>`; `validate` warns when mail goes over SMTP from `@localhost`",
    comment: "",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut(super::DEFAULT_MAIL_FROM),
    range: None,
};

/// PUBLIC_URL.
pub const PUBLIC_URL: Setting = Setting {
    name: "PUBLIC_URL",
    default: "`http://HOST:PORT`",
    rule: "the address users open: links are `{PUBLIC_URL}/reset-password?token=...` and `{PUBLIC_URL}/verify?token=...`. An http(s) URL without credentials, query or fragment; a path is kept.",
    comment: "The address users open: links are PUBLIC_URL/reset-password?token=... and
PUBLIC_URL/verify?token=... (https outside loopback). Default http://HOST:PORT.",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut("http://127.0.0.1:8000"),
    range: None,
};

/// RESET_TOKEN_EXPIRE_MINUTES.
pub const RESET_TOKEN_EXPIRE_MINUTES: Setting = Setting {
    name: "RESET_TOKEN_EXPIRE_MINUTES",
    default: "30",
    rule: "1 to 1440; over 60 is a WARN",
    comment: "",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut("30"),
    range: Some(Range {
        min: 1,
        max: 1440,
        default: 30,
    }),
};

/// VERIFY_TOKEN_EXPIRE_HOURS.
pub const VERIFY_TOKEN_EXPIRE_HOURS: Setting = Setting {
    name: "VERIFY_TOKEN_EXPIRE_HOURS",
    default: "48",
    rule: "1 to 720",
    comment: "",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut("48"),
    range: Some(Range {
        min: 1,
        max: 720,
        default: 48,
    }),
};

/// REQUIRE_VERIFIED_EMAIL.
pub const REQUIRE_VERIFIED_EMAIL: Setting = Setting {
    name: "REQUIRE_VERIFIED_EMAIL",
    default: "false",
    rule: "`true` or `false` (also `1`, `0`)",
    comment: "true: logins need a verified email (and signup an email).",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut("false"),
    range: None,
};

/// ITEMS_MAX_PER_USER.
pub const ITEMS_MAX_PER_USER: Setting = Setting {
    name: "ITEMS_MAX_PER_USER",
    default: "1000",
    rule: "1 to 1000000",
    comment: "Items one user may own (one more is 409 quota_exceeded).",
    strategies: TOKENS,
    secret: false,
    env: EnvValue::CommentedOut("1000"),
    range: Some(Range {
        min: 1,
        max: 1_000_000,
        default: 1000,
    }),
};

/// Every setting, in the order the stamped `.env` lists them.
pub const ALL: &[Setting] = &[
    SECRET_KEY,
    ALGORITHM,
    JWT_PRIVATE_KEY_FILE,
    JWT_PUBLIC_KEY_FILE,
    ACCESS_TOKEN_EXPIRE_MINUTES,
    REFRESH_TOKEN_EXPIRE_DAYS,
    REFRESH_TOKEN_REUSE_SECONDS,
    SECRET_KEY_PREVIOUS,
    JWT_PREVIOUS_PUBLIC_KEY_FILES,
    JWT_KEY_ROTATED_AT,
    JWT_ISSUER,
    JWT_AUDIENCE,
    JWT_LEEWAY_SECONDS,
    DATABASE_URL,
    HOST,
    PORT,
    ADMIN_USERNAME,
    ADMIN_PASSWORD,
    SESSION_CACHE_SECONDS,
    TRUSTED_PROXIES,
    LOGIN_MAX_FAILURES,
    LOGIN_MAX_FAILURES_PER_IP,
    LOGIN_LOCKOUT_SECONDS,
    SIGNUP_MAX_PER_IP,
    MAIL_MAX_PER_ADDRESS,
    MAIL_MAX_PER_IP,
    RATE_LIMIT_URL,
    REQUEST_TIMEOUT_SECONDS,
    MAIL_URL,
    MAIL_FROM,
    PUBLIC_URL,
    RESET_TOKEN_EXPIRE_MINUTES,
    VERIFY_TOKEN_EXPIRE_HOURS,
    REQUIRE_VERIFIED_EMAIL,
    ITEMS_MAX_PER_USER,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LoginLimits, MailLimits, SignupLimits};

    #[test]
    fn names_are_unique_and_every_setting_has_a_strategy() {
        for (i, s) in ALL.iter().enumerate() {
            assert!(!s.strategies.is_empty(), "{}", s.name);
            assert!(
                ALL[i + 1..].iter().all(|other| other.name != s.name),
                "{} twice",
                s.name
            );
            assert_eq!(find(s.name), Some(s));
        }
    }

    /// A number's default and range are shown as the parser applies them,
    /// and the `.env` shows its default.
    #[test]
    fn numbers_are_shown_as_read() {
        let unset = Environment::from_pairs::<&str, &str>([]);
        for s in ALL {
            let Some(r) = s.range else {
                assert!(s.number(&unset).is_err(), "{}", s.name);
                continue;
            };
            assert_eq!(s.default, r.default.to_string(), "{}", s.name);
            assert_eq!(s.env, EnvValue::CommentedOut(s.default), "{}", s.name);
            assert_eq!(s.number(&unset).unwrap(), r.default, "{}", s.name);
            let (min, max) = (r.min.to_string(), r.max.to_string());
            let shown = s.rule.starts_with(&format!("{min} to {max}"))
                || s.rule.starts_with(&format!("{min} (off) to {max}"));
            assert!(shown, "{}: {}", s.name, s.rule);
            let at = |v: u64| Environment::from_pairs([(s.name, v.to_string())]);
            assert!(s.number(&at(r.min)).is_ok() && s.number(&at(r.max)).is_ok());
            assert!(s.number(&at(r.max + 1)).is_err(), "{}", s.name);
        }
    }

    /// A secret is never shown: no range (a refused number echoes the
    /// value), never written as a fixed value, and an example in the
    /// `.env` carries no credentials (a URL without `user:password@`).
    #[test]
    fn secrets_are_never_shown() {
        for s in ALL.iter().filter(|s| s.secret) {
            assert!(s.range.is_none(), "{}", s.name);
            assert!(!matches!(s.env, EnvValue::Set(_)), "{}", s.name);
            if let EnvValue::CommentedOut(example) = s.env {
                assert!(!example.contains('@'), "{}: {example}", s.name);
            }
        }
    }

    /// The limits' constants are the catalogue's defaults.
    #[test]
    fn standard_limits_are_the_defaults() {
        let default = |s: Setting| s.range.map(|r| r.default);
        let login = LoginLimits::STANDARD;
        assert_eq!(
            default(LOGIN_MAX_FAILURES),
            Some(u64::from(login.max_failures_per_username))
        );
        assert_eq!(
            default(LOGIN_MAX_FAILURES_PER_IP),
            Some(u64::from(login.max_failures_per_ip))
        );
        assert_eq!(
            default(LOGIN_LOCKOUT_SECONDS),
            Some(login.lockout.as_secs())
        );
        assert_eq!(
            default(SIGNUP_MAX_PER_IP),
            Some(u64::from(SignupLimits::STANDARD.max_per_ip))
        );
        let mail = MailLimits::STANDARD;
        assert_eq!(
            default(MAIL_MAX_PER_ADDRESS),
            Some(u64::from(mail.max_per_address))
        );
        assert_eq!(default(MAIL_MAX_PER_IP), Some(u64::from(mail.max_per_ip)));
        assert_eq!(
            default(REQUEST_TIMEOUT_SECONDS),
            Some(crate::config::DEFAULT_REQUEST_TIMEOUT.as_secs())
        );
        assert_eq!(
            default(SESSION_CACHE_SECONDS),
            Some(crate::config::DEFAULT_SESSION_CACHE.as_secs())
        );
        assert_eq!(
            default(ITEMS_MAX_PER_USER),
            Some(u64::from(crate::config::DEFAULT_ITEMS_MAX_PER_USER))
        );
    }

    #[test]
    fn env_lines() {
        assert_eq!(
            JWT_ISSUER.env_lines("my-api"),
            "# JWT_ISSUER=my-api\n",
            "the service name filled in"
        );
        let key = SECRET_KEY.env_lines("x");
        assert!(key.starts_with("# 256 bits"), "{key}");
        let value = key
            .lines()
            .nth(1)
            .and_then(|l| l.strip_prefix("SECRET_KEY="));
        assert_eq!(value.map(str::len), Some(64));
    }
}
