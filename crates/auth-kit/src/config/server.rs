//! Where a service keeps its data and listens (DATABASE_URL, HOST, PORT),
//! and who may be its bootstrap admin.

use std::fmt;
use std::net::IpAddr;

use zeroize::Zeroizing;

use super::{ConfigError, ConfigErrorKind, Environment, Finding, Report, catalog, truncate};

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
        let settings = read_server(env, service_name, &mut report);
        report.settle(settings)
    }

    /// The address to listen on.
    pub fn listen_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }
}

pub(super) fn read_server(
    env: &Environment,
    service_name: &str,
    report: &mut Report,
) -> Option<ServerSettings> {
    let database_url = report.take(database_url(env, service_name), |url| {
        Finding::pass(catalog::DATABASE_URL.name, describe_database(url))
    });
    let host = report.take(host(env), |h| {
        Finding::pass(catalog::HOST.name, h.to_string())
    });
    if let Some(h) = host
        && h.is_unspecified()
    {
        report.push(Finding::warn(
            catalog::HOST.name,
            format!("{h} listens on every network interface"),
            "put the service behind a TLS-terminating proxy, or use 127.0.0.1 in development",
        ));
    }
    // 0 asks the operating system for any free port (tests, demos).
    let port = report.take(catalog::PORT.number(env), |p| {
        Finding::pass(catalog::PORT.name, p.to_string())
    });
    Some(ServerSettings {
        database_url: database_url?,
        host: host?,
        port: u16::try_from(port?).ok()?,
    })
}

/// DATABASE_URL: `sqlite:` or `postgres://`, parseable; default a SQLite
/// file named after the service in the working directory.
pub fn database_url(env: &Environment, service_name: &str) -> Result<String, ConfigError> {
    let url = env.get(catalog::DATABASE_URL.name).map_or_else(
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
            catalog::DATABASE_URL.name,
            ConfigErrorKind::Invalid,
            "DATABASE_URL is neither a sqlite: nor a postgres:// URL",
            fix,
        ));
    };
    // The parser's message may quote the URL, password included: keep it out.
    parsed.map_err(|_| {
        ConfigError::new(
            catalog::DATABASE_URL.name,
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

pub(super) fn host(env: &Environment) -> Result<IpAddr, ConfigError> {
    let Some(raw) = env.get(catalog::HOST.name) else {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    };
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    raw.parse().map_err(|_| {
        ConfigError::new(
            catalog::HOST.name,
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

pub(super) fn admin(env: &Environment) -> Result<Option<AdminBootstrap>, ConfigError> {
    match (
        env.get(catalog::ADMIN_USERNAME.name),
        env.get(catalog::ADMIN_PASSWORD.name),
    ) {
        (Some(username), Some(password)) => {
            if !is_valid_username(username) {
                return Err(ConfigError::new(
                    catalog::ADMIN_USERNAME.name,
                    ConfigErrorKind::Invalid,
                    "ADMIN_USERNAME is not a valid username",
                    "use 3 to 64 of A-Z a-z 0-9 _ . -",
                ));
            }
            if password.chars().count() < 8 || password.len() > 1024 {
                return Err(ConfigError::new(
                    catalog::ADMIN_PASSWORD.name,
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
            catalog::ADMIN_PASSWORD.name,
            ConfigErrorKind::Missing,
            "ADMIN_USERNAME is set but ADMIN_PASSWORD is not",
            "set both ADMIN_USERNAME and ADMIN_PASSWORD, or neither",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            catalog::ADMIN_USERNAME.name,
            ConfigErrorKind::Missing,
            "ADMIN_PASSWORD is set but ADMIN_USERNAME is not",
            "set both ADMIN_USERNAME and ADMIN_PASSWORD, or neither",
        )),
    }
}
