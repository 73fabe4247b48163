//! How a service meets its clients: trusted proxies, login, signup and
//! mail limits, where the counters live (RATE_LIMIT_URL), request
//! timeouts, and the session cache.

use std::fmt;
use std::time::Duration;

use crate::client_ip::TrustedProxies;

use super::{ConfigError, ConfigErrorKind, Environment, Finding, MailLimits, Report, catalog};

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
        let settings = read_traffic(env, &mut report);
        report.settle(settings)
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

/// Reads TRUSTED_PROXIES, the login, signup and mail limits, RATE_LIMIT_URL
/// and REQUEST_TIMEOUT_SECONDS into `report`.
///
/// Long because it is a list: each setting read, checked and reported in
/// the order `cargo auth validate` prints them, which one function keeps.
pub(super) fn read_traffic(env: &Environment, report: &mut Report) -> Option<TrafficSettings> {
    let proxies = report.take(trusted_proxies(env), |p| {
        if p.is_empty() {
            Finding::pass(
                catalog::TRUSTED_PROXIES.name,
                "none: the client is the socket peer and forwarding headers are ignored",
            )
        } else {
            Finding::pass(
                catalog::TRUSTED_PROXIES.name,
                format!("forwarding headers are believed from {p}"),
            )
        }
    });
    if proxies
        .as_ref()
        .is_some_and(TrustedProxies::trusts_everyone)
    {
        report.push(Finding::warn(
            catalog::TRUSTED_PROXIES.name,
            "every address is trusted: a client that reaches the service directly can choose its address with X-Forwarded-For",
            "list only your proxies' addresses or networks, and keep the service unreachable except through them",
        ));
    }
    let max_failures = report.take(catalog::LOGIN_MAX_FAILURES.number(env), |n| {
        Finding::pass(
            catalog::LOGIN_MAX_FAILURES.name,
            format!("{n} failed logins lock a username"),
        )
    });
    let max_per_ip = report.take(catalog::LOGIN_MAX_FAILURES_PER_IP.number(env), |n| {
        Finding::pass(
            catalog::LOGIN_MAX_FAILURES_PER_IP.name,
            format!("{n} failed logins lock a client address"),
        )
    });
    let lockout = report.take(catalog::LOGIN_LOCKOUT_SECONDS.number(env), |s| {
        Finding::pass(catalog::LOGIN_LOCKOUT_SECONDS.name, format!("{s} seconds"))
    });
    let signups = report.take(catalog::SIGNUP_MAX_PER_IP.number(env), |n| {
        Finding::pass(
            catalog::SIGNUP_MAX_PER_IP.name,
            format!("{n} signups per client address per hour"),
        )
    });
    let mails_per_address = report.take(catalog::MAIL_MAX_PER_ADDRESS.number(env), |n| {
        Finding::pass(
            catalog::MAIL_MAX_PER_ADDRESS.name,
            format!("{n} password-reset or verification mails per address per hour"),
        )
    });
    let mails_per_ip = report.take(catalog::MAIL_MAX_PER_IP.number(env), |n| {
        Finding::pass(
            catalog::MAIL_MAX_PER_IP.name,
            format!("{n} password-reset or verification mail requests per client address per hour"),
        )
    });
    let rate_limit_url = report.take(rate_limit_url(env), |url| match url {
        Some(url) => Finding::pass(
            catalog::RATE_LIMIT_URL.name,
            format!("login and signup counters are shared through {url}"),
        ),
        None => Finding::pass(
            catalog::RATE_LIMIT_URL.name,
            "unset: login and signup counters live in this process (one instance)",
        ),
    });
    let timeout = report.take(catalog::REQUEST_TIMEOUT_SECONDS.number(env), |s| {
        Finding::pass(
            catalog::REQUEST_TIMEOUT_SECONDS.name,
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
pub(super) fn trusted_proxies(env: &Environment) -> Result<TrustedProxies, ConfigError> {
    let Some(raw) = env.get(catalog::TRUSTED_PROXIES.name) else {
        return Ok(TrustedProxies::none());
    };
    raw.parse().map_err(|e: crate::client_ip::InvalidProxyEntry| {
        ConfigError::new(
            catalog::TRUSTED_PROXIES.name,
            ConfigErrorKind::Invalid,
            format!("TRUSTED_PROXIES: {e}"),
            "list your reverse proxies' addresses or networks, comma-separated, e.g. TRUSTED_PROXIES=10.0.0.0/8,192.0.2.10",
        )
    })
}

/// RATE_LIMIT_URL: `redis://host:port[/db]`, or unset.
///
/// ```
/// use auth_kit::config::{Environment, rate_limit_url};
///
/// let env = Environment::from_pairs([("RATE_LIMIT_URL", "redis://:pw@cache:6379/2")]);
/// let url = rate_limit_url(&env).unwrap().expect("set");
/// assert_eq!(url.to_string(), "Redis at cache:6379/2"); // never the password
/// ```
pub fn rate_limit_url(env: &Environment) -> Result<Option<RateLimitUrl>, ConfigError> {
    let Some(raw) = env.get(catalog::RATE_LIMIT_URL.name) else {
        return Ok(None);
    };
    let url = raw.trim();
    let fix = "set RATE_LIMIT_URL to redis://host:port or redis://host:port/db (redis://:password@host:port with a password), or unset it to count in this process";
    let invalid = |problem: &str| {
        ConfigError::new(
            catalog::RATE_LIMIT_URL.name,
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

/// SESSION_CACHE_SECONDS: 0 (off) to 300, default 30; the finding says how
/// changes reach other instances with this database and RATE_LIMIT_URL.
pub(super) fn read_session_cache(
    env: &Environment,
    database_url: Option<&str>,
    redis: Option<&RateLimitUrl>,
    report: &mut Report,
) -> Option<SessionCacheSettings> {
    let postgres = database_url.is_some_and(|u| u.starts_with("postgres"));
    let seconds = report.take(
        catalog::SESSION_CACHE_SECONDS.number(env),
        |&s| {
            let reach = if postgres {
                "changes reach every instance at once through PostgreSQL LISTEN/NOTIFY".to_owned()
            } else if let Some(redis) = redis {
                format!("changes reach every instance at once through pub/sub on {redis}")
            } else {
                "SQLite without RATE_LIMIT_URL: one instance is assumed (another process on this database would serve a revoked token for up to this long)".to_owned()
            };
            Finding::pass(
                catalog::SESSION_CACHE_SECONDS.name,
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
