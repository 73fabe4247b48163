//! The account-lifecycle settings of a jwt or oauth2 service: where mail
//! goes (MAIL_URL, MAIL_FROM), the base of the links it carries
//! (PUBLIC_URL), how long reset and verification tokens live, whether
//! logins need a verified email (REQUIRE_VERIFIED_EMAIL), and how many
//! mails may be requested per address and per client IP.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::{Host, Url};
use zeroize::Zeroizing;

use super::{ConfigError, ConfigErrorKind, Finding, Report, catalog};
use crate::mail::{MailTransportSettings, SmtpCredentials, SmtpSecurity, SmtpSettings};

/// MAIL_URL when unset: an outbox folder in the working directory.
pub const DEFAULT_MAIL_URL: &str = "file://./outbox";
/// MAIL_FROM when unset.
pub const DEFAULT_MAIL_FROM: &str = "no-reply@localhost";

const MAIL_URL_FIX: &str = "use file://./outbox (mails written as files), smtp://user:password@host:587 (STARTTLS) or smtps://user:password@host:465 (TLS); percent-encode special characters in the user and password";

/// Whether a correct password is enough to log in (REQUIRE_VERIFIED_EMAIL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailVerification {
    /// A user whose email is not verified is refused at `/token` (only once
    /// the password checked out), and signup needs an email.
    Required,
    /// Verification is offered but not needed to log in.
    Optional,
}

/// How many reset and verification mails may be requested (forgot-password
/// and request-verify together) per address and per client IP, per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailLimits {
    /// Requests per email address (MAIL_MAX_PER_ADDRESS).
    pub max_per_address: u32,
    /// Requests per client IP (MAIL_MAX_PER_IP).
    pub max_per_ip: u32,
    /// The window, and how long a limit lasts once reached.
    pub window: Duration,
}

impl MailLimits {
    /// 5 per address and 30 per client IP per hour: enough for a user who
    /// mistypes or waits for slow mail, too few to flood an inbox.
    pub const STANDARD: MailLimits = MailLimits {
        max_per_address: 5,
        max_per_ip: 30,
        window: Duration::from_secs(3600),
    };
}

/// Everything the account lifecycle (reset, verification, password
/// change) reads from the configuration.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// MAIL_URL.
    pub mail: MailTransportSettings,
    /// MAIL_FROM, as written (checked to be a mailbox).
    pub mail_from: String,
    /// PUBLIC_URL without a trailing slash: links are `{public_url}/reset-password?token=...`.
    pub public_url: String,
    /// RESET_TOKEN_EXPIRE_MINUTES.
    pub reset_token_ttl: Duration,
    /// VERIFY_TOKEN_EXPIRE_HOURS.
    pub verify_token_ttl: Duration,
    /// REQUIRE_VERIFIED_EMAIL.
    pub email_verification: EmailVerification,
}

/// Reads the account settings into `report`; `listen` is the service's
/// HOST and PORT (the default PUBLIC_URL), when they were valid.
///
/// Long because it is a list: each setting read, checked and reported in
/// the order `cargo auth validate` prints them, which one function keeps.
pub(super) fn read_account(
    env: &super::Environment,
    listen: Option<(IpAddr, u16)>,
    report: &mut Report,
) -> Option<AccountSettings> {
    let mail = report.take(mail_transport(env), |t| {
        Finding::pass(catalog::MAIL_URL.name, format!("mail is {}", t.describe()))
    });
    if let Some(MailTransportSettings::Smtp(smtp)) = &mail
        && smtp.security == SmtpSecurity::Plaintext
        && !is_loopback_name(&smtp.host)
    {
        report.push(Finding::warn(
            catalog::MAIL_URL.name,
            format!(
                "mail to {} is sent unencrypted (tls=none): reset links and SMTP credentials cross the network in clear",
                smtp.host
            ),
            "drop ?tls=none to require STARTTLS, or use smtps://",
        ));
    }
    let mail_from = report.take(mail_from(env), |from| {
        Finding::pass(catalog::MAIL_FROM.name, format!("mails come from {from}"))
    });
    if let (Some(MailTransportSettings::Smtp(_)), Some(from)) = (&mail, &mail_from)
        && from.trim_end_matches('>').ends_with("@localhost")
    {
        report.push(Finding::warn(
            catalog::MAIL_FROM.name,
            format!("{from} is not an address of a real domain: mail servers refuse or file it as spam"),
            "set MAIL_FROM to an address of your domain, e.g. MAIL_FROM=\"My API <no-reply@example.com>\"",
        ));
    }
    let public_url = listen.and_then(|(host, port)| {
        let url = report.take(public_url(env, host, port), |u| {
            Finding::pass(
                catalog::PUBLIC_URL.name,
                format!("links in mails start with {u}"),
            )
        })?;
        if let Some(warning) = public_url_warning(env, &url, host) {
            report.push(warning);
        }
        Some(url)
    });
    let reset_minutes = report.take(catalog::RESET_TOKEN_EXPIRE_MINUTES.number(env), |m| {
        Finding::pass(
            catalog::RESET_TOKEN_EXPIRE_MINUTES.name,
            format!("reset links work for {m} minutes"),
        )
    });
    if let Some(m) = reset_minutes
        && m > 60
    {
        report.push(Finding::warn(
            catalog::RESET_TOKEN_EXPIRE_MINUTES.name,
            format!("reset links stay usable for {m} minutes: a mailbox read later can still take over the account"),
            "keep reset links short (15-60 minutes); a user can always ask for a new one",
        ));
    }
    let verify_hours = report.take(catalog::VERIFY_TOKEN_EXPIRE_HOURS.number(env), |h| {
        Finding::pass(
            catalog::VERIFY_TOKEN_EXPIRE_HOURS.name,
            format!("verification links work for {h} hours"),
        )
    });
    let email_verification = report.take(require_verified_email(env), |v| {
        Finding::pass(
            catalog::REQUIRE_VERIFIED_EMAIL.name,
            match v {
                EmailVerification::Required => {
                    "logins need a verified email; signup needs an email"
                }
                EmailVerification::Optional => "logins do not need a verified email",
            },
        )
    });
    if email_verification == Some(EmailVerification::Required)
        && matches!(mail, Some(MailTransportSettings::Outbox { .. }))
    {
        report.push(Finding::warn(
            catalog::REQUIRE_VERIFIED_EMAIL.name,
            "verification mails only reach the outbox folder: users cannot verify and so cannot log in",
            "set MAIL_URL to an SMTP server (smtp:// or smtps://), or REQUIRE_VERIFIED_EMAIL=false",
        ));
    }
    Some(AccountSettings {
        mail: mail?,
        mail_from: mail_from?,
        public_url: public_url?,
        reset_token_ttl: Duration::from_secs(reset_minutes? * 60),
        verify_token_ttl: Duration::from_secs(verify_hours? * 3600),
        email_verification: email_verification?,
    })
}

/// MAIL_URL: `file://DIR`, `smtp://[user:password@]host[:port][?tls=none]`
/// or `smtps://[user:password@]host[:port]`; default [`DEFAULT_MAIL_URL`].
///
/// `smtp://` requires STARTTLS (port 587 by default), except to a loopback
/// host (a local relay or test sink; port 25) or with `?tls=none`;
/// `smtps://` is TLS from the start (port 465). Messages never quote the
/// URL: it may hold a password.
///
/// Long because each part of the URL (scheme, host, port, credentials,
/// `tls`) has its own refusal with its own fix, read in one pass.
pub fn mail_transport(env: &super::Environment) -> Result<MailTransportSettings, ConfigError> {
    let raw = env
        .get(catalog::MAIL_URL.name)
        .unwrap_or(DEFAULT_MAIL_URL)
        .trim();
    let invalid = |problem: &str| {
        ConfigError::new(
            catalog::MAIL_URL.name,
            ConfigErrorKind::Invalid,
            format!("MAIL_URL {problem}"),
            MAIL_URL_FIX,
        )
    };
    if let Some(path) = raw.strip_prefix("file://") {
        if path.is_empty() {
            return Err(invalid(
                "names no folder (file://./outbox is a folder next to the service)",
            ));
        }
        return Ok(MailTransportSettings::Outbox {
            dir: PathBuf::from(path),
        });
    }
    let scheme = raw.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let security = match scheme.as_deref() {
        Some("smtps") => SmtpSecurity::ImplicitTls,
        Some("smtp") => SmtpSecurity::StartTls,
        _ => return Err(invalid("is not a file://, smtp:// or smtps:// URL")),
    };
    let url = Url::parse(raw).map_err(|_| invalid("cannot be parsed"))?;
    let host = match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() => d.to_owned(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(invalid("has no host")),
    };
    if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
        return Err(invalid("has a path or fragment; give only the server"));
    }
    let mut security = match security {
        SmtpSecurity::StartTls if is_loopback_name(&host) => SmtpSecurity::Plaintext,
        other => other,
    };
    for (key, value) in url.query_pairs() {
        match (key.as_ref(), value.as_ref(), scheme.as_deref()) {
            ("tls", "none", Some("smtp")) => security = SmtpSecurity::Plaintext,
            ("tls", "required", Some("smtp")) => security = SmtpSecurity::StartTls,
            ("tls", _, _) => {
                return Err(invalid(
                    "has an unsupported tls= option (smtp:// takes tls=required or tls=none; smtps:// takes none)",
                ));
            }
            _ => {
                return Err(invalid(
                    "has an unknown query parameter (only tls= is known)",
                ));
            }
        }
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|d| d.into_owned())
            .map_err(|_| invalid("has a user or password that is not UTF-8 once decoded"))
    };
    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        (user, Some(password)) if !user.is_empty() => Some(SmtpCredentials {
            username: decode(user)?,
            password: Zeroizing::new(decode(password)?),
        }),
        _ => {
            return Err(invalid(
                "has a user without a password, or a password without a user",
            ));
        }
    };
    let port = url.port().unwrap_or(match security {
        SmtpSecurity::ImplicitTls => 465,
        SmtpSecurity::StartTls => 587,
        SmtpSecurity::Plaintext => 25,
    });
    Ok(MailTransportSettings::Smtp(SmtpSettings {
        host,
        port,
        security,
        credentials,
    }))
}

/// MAIL_FROM: `addr@example.com` or `Name <addr@example.com>`.
fn mail_from(env: &super::Environment) -> Result<String, ConfigError> {
    let from = env
        .get(catalog::MAIL_FROM.name)
        .unwrap_or(DEFAULT_MAIL_FROM)
        .trim();
    from.parse::<lettre::message::Mailbox>()
        .map(|_| from.to_owned())
        .map_err(|_| {
            ConfigError::new(
                catalog::MAIL_FROM.name,
                ConfigErrorKind::Invalid,
                format!(
                    "MAIL_FROM={:?} is not an email address",
                    super::truncate(from)
                ),
                "set MAIL_FROM to an address such as no-reply@example.com or \"My API <no-reply@example.com>\"",
            )
        })
}

/// PUBLIC_URL: an http(s) URL without credentials, query or fragment (a
/// path is allowed); default `http://HOST:PORT`. No trailing slash.
fn public_url(env: &super::Environment, host: IpAddr, port: u16) -> Result<String, ConfigError> {
    let Some(raw) = env.get(catalog::PUBLIC_URL.name) else {
        let host = match host {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        return Ok(format!("http://{host}:{port}"));
    };
    let fix = "set PUBLIC_URL to the address users open, e.g. https://api.example.com (the links are PUBLIC_URL/reset-password?token=... and PUBLIC_URL/verify?token=...)";
    let invalid = |problem: String| {
        ConfigError::new(
            catalog::PUBLIC_URL.name,
            ConfigErrorKind::Invalid,
            problem,
            fix,
        )
    };
    let shown = super::truncate(raw.trim());
    let url = Url::parse(raw.trim())
        .map_err(|_| invalid(format!("PUBLIC_URL={shown:?} is not a URL")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "PUBLIC_URL={shown:?} is not an http:// or https:// URL"
        )));
    }
    if url.host().is_none() {
        return Err(invalid(format!("PUBLIC_URL={shown:?} has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "PUBLIC_URL carries credentials, which would be mailed to every user".to_owned(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(format!(
            "PUBLIC_URL={shown:?} has a query or fragment"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Plain http outside loopback is a WARN, not a refusal: the service cannot
/// tell a development network (a LAN address, a compose network, a
/// staging box) from production, and such setups are common; the warning
/// says what is at stake. A default that points at a wildcard address is
/// a WARN too: no user can open it.
fn public_url_warning(env: &super::Environment, url: &str, host: IpAddr) -> Option<Finding> {
    if env.get(catalog::PUBLIC_URL.name).is_none() && host.is_unspecified() {
        return Some(Finding::warn(
            catalog::PUBLIC_URL.name,
            format!(
                "unset, so links in mails point at {url}, which no user can open (HOST listens on every interface)"
            ),
            "set PUBLIC_URL to the address users open, e.g. https://api.example.com",
        ));
    }
    let parsed = Url::parse(url).ok()?;
    let loopback = match parsed.host()? {
        Host::Domain(d) => is_loopback_name(d),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    };
    (parsed.scheme() == "http" && !loopback).then(|| {
        Finding::warn(
            catalog::PUBLIC_URL.name,
            format!("{url} is plain http outside loopback: reset and verification links (their tokens) would cross the network unencrypted"),
            "use https:// for anything users reach over a network (terminate TLS at a proxy and set PUBLIC_URL to its address)",
        )
    })
}

/// REQUIRE_VERIFIED_EMAIL: `true` or `false` (also `1`, `0`); default false.
fn require_verified_email(env: &super::Environment) -> Result<EmailVerification, ConfigError> {
    match env
        .get(catalog::REQUIRE_VERIFIED_EMAIL.name)
        .map(|v| v.trim().to_ascii_lowercase())
    {
        None => Ok(EmailVerification::Optional),
        Some(v) if v == "true" || v == "1" => Ok(EmailVerification::Required),
        Some(v) if v == "false" || v == "0" => Ok(EmailVerification::Optional),
        Some(v) => Err(ConfigError::new(
            catalog::REQUIRE_VERIFIED_EMAIL.name,
            ConfigErrorKind::Invalid,
            format!(
                "REQUIRE_VERIFIED_EMAIL={:?} is neither true nor false",
                super::truncate(&v)
            ),
            "set REQUIRE_VERIFIED_EMAIL=true or REQUIRE_VERIFIED_EMAIL=false",
        )),
    }
}

/// `localhost`, `*.localhost`, or a loopback IP address.
fn is_loopback_name(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::super::{Environment, Status};
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().copied())
    }

    fn transport(url: &str) -> Result<MailTransportSettings, String> {
        mail_transport(&env(&[("MAIL_URL", url)])).map_err(|e| e.to_string())
    }

    fn smtp(host: &str, port: u16, security: SmtpSecurity) -> MailTransportSettings {
        MailTransportSettings::Smtp(SmtpSettings {
            host: host.to_owned(),
            port,
            security,
            credentials: None,
        })
    }

    #[test]
    fn mail_urls() {
        assert_eq!(
            mail_transport(&env(&[])).unwrap(),
            MailTransportSettings::Outbox {
                dir: "./outbox".into()
            }
        );
        for (url, expected) in [
            (
                "file:///var/spool/api",
                MailTransportSettings::Outbox {
                    dir: "/var/spool/api".into(),
                },
            ),
            (
                "smtp://mail.example.com",
                smtp("mail.example.com", 587, SmtpSecurity::StartTls),
            ),
            (
                "smtps://mail.example.com",
                smtp("mail.example.com", 465, SmtpSecurity::ImplicitTls),
            ),
            (
                "smtp://127.0.0.1:2525",
                smtp("127.0.0.1", 2525, SmtpSecurity::Plaintext),
            ),
            ("smtp://[::1]", smtp("::1", 25, SmtpSecurity::Plaintext)),
            (
                "smtp://localhost?tls=required",
                smtp("localhost", 587, SmtpSecurity::StartTls),
            ),
            (
                "smtp://mailpit:1025?tls=none",
                smtp("mailpit", 1025, SmtpSecurity::Plaintext),
            ),
        ] {
            assert_eq!(transport(url).unwrap(), expected, "{url}");
        }
        let Ok(MailTransportSettings::Smtp(with_login)) =
            transport("smtp://ann%40example.com:p%40ss%3Aword@mail.example.com:2587")
        else {
            panic!("credentials parse");
        };
        let credentials = with_login.credentials.unwrap();
        assert_eq!(credentials.username, "ann@example.com");
        assert_eq!(credentials.password.as_str(), "p@ss:word");
        assert_eq!(with_login.port, 2587);
    }

    #[test]
    fn refused_mail_urls_never_quote_the_password() {
        for (url, fragment) in [
            ("ftp://hunter2@x", "not a file://, smtp:// or smtps://"),
            ("mail.example.com", "not a file://, smtp:// or smtps://"),
            ("file://", "names no folder"),
            ("smtp://", "has no host"),
            ("smtp://user:hunter2@host/inbox", "path"),
            ("smtp://user:hunter2@host?tls=opportunistic", "tls="),
            ("smtps://user:hunter2@host?tls=none", "tls="),
            ("smtp://host?pool=true", "unknown query parameter"),
            ("smtp://user@host", "without a password"),
        ] {
            let e = transport(url).unwrap_err();
            assert!(e.contains(fragment), "{url}: {e}");
            assert!(e.contains("smtps://user:password@host:465"), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{url}: {e}");
        }
    }

    fn findings(pairs: &[(&str, &str)]) -> Vec<Finding> {
        let mut report = Report::default();
        read_account(
            &env(pairs),
            Some((IpAddr::from([127, 0, 0, 1]), 8000)),
            &mut report,
        );
        report.findings
    }

    fn statuses(pairs: &[(&str, &str)], subject: &str) -> Vec<Status> {
        findings(pairs)
            .into_iter()
            .filter(|f| f.subject == subject)
            .map(|f| f.status)
            .collect()
    }

    #[test]
    fn defaults_pass() {
        let mut report = Report::default();
        let settings = read_account(
            &env(&[]),
            Some((IpAddr::from([127, 0, 0, 1]), 8000)),
            &mut report,
        )
        .unwrap();
        assert!(
            report.findings.iter().all(|f| f.status == Status::Pass),
            "{:#?}",
            report.findings
        );
        assert_eq!(settings.public_url, "http://127.0.0.1:8000");
        assert_eq!(settings.mail_from, "no-reply@localhost");
        assert_eq!(settings.reset_token_ttl, Duration::from_secs(30 * 60));
        assert_eq!(settings.verify_token_ttl, Duration::from_secs(48 * 3600));
        assert_eq!(settings.email_verification, EmailVerification::Optional);
    }

    #[test]
    fn public_urls() {
        let public = |url: &str| statuses(&[("PUBLIC_URL", url)], "PUBLIC_URL");
        assert_eq!(public("https://api.example.com/"), [Status::Pass]);
        assert_eq!(public("http://localhost:3000"), [Status::Pass]);
        assert_eq!(public("http://[::1]:8000/app"), [Status::Pass]);
        assert_eq!(
            public("http://api.example.com"),
            [Status::Pass, Status::Warn]
        );
        assert_eq!(public("http://10.0.0.5:8000"), [Status::Pass, Status::Warn]);
        for bad in [
            "api.example.com",
            "ftp://x",
            "https://u:p@x",
            "https://x/?a=b",
            "https://x/#f",
        ] {
            assert_eq!(public(bad), [Status::Fail], "{bad}");
        }
        let mut report = Report::default();
        let wildcard = read_account(
            &env(&[]),
            Some((IpAddr::from([0, 0, 0, 0]), 8000)),
            &mut report,
        )
        .unwrap();
        assert_eq!(wildcard.public_url, "http://0.0.0.0:8000");
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.subject == "PUBLIC_URL" && f.status == Status::Warn)
        );
        let mut report = Report::default();
        let v6 = read_account(&env(&[]), Some(("::1".parse().unwrap(), 9000)), &mut report);
        assert_eq!(v6.unwrap().public_url, "http://[::1]:9000");
    }

    #[test]
    fn other_settings() {
        let check = |pairs: &[(&str, &str)], subject: &str, expected: &[Status]| {
            assert_eq!(statuses(pairs, subject), expected, "{pairs:?}");
        };
        check(
            &[("RESET_TOKEN_EXPIRE_MINUTES", "0")],
            "RESET_TOKEN_EXPIRE_MINUTES",
            &[Status::Fail],
        );
        check(
            &[("RESET_TOKEN_EXPIRE_MINUTES", "120")],
            "RESET_TOKEN_EXPIRE_MINUTES",
            &[Status::Pass, Status::Warn],
        );
        check(
            &[("VERIFY_TOKEN_EXPIRE_HOURS", "721")],
            "VERIFY_TOKEN_EXPIRE_HOURS",
            &[Status::Fail],
        );
        check(
            &[("REQUIRE_VERIFIED_EMAIL", "yes")],
            "REQUIRE_VERIFIED_EMAIL",
            &[Status::Fail],
        );
        check(
            &[("REQUIRE_VERIFIED_EMAIL", "TRUE")],
            "REQUIRE_VERIFIED_EMAIL",
            &[Status::Pass, Status::Warn],
        );
        check(
            &[
                ("REQUIRE_VERIFIED_EMAIL", "true"),
                ("MAIL_URL", "smtps://mail.example.com"),
                ("MAIL_FROM", "a@example.com"),
            ],
            "REQUIRE_VERIFIED_EMAIL",
            &[Status::Pass],
        );
        check(
            &[("MAIL_FROM", "not an address")],
            "MAIL_FROM",
            &[Status::Fail],
        );
        check(
            &[("MAIL_FROM", "My API <no-reply@example.com>")],
            "MAIL_FROM",
            &[Status::Pass],
        );
        check(
            &[("MAIL_URL", "smtps://mail.example.com")],
            "MAIL_FROM",
            &[Status::Pass, Status::Warn],
        );
        check(
            &[("MAIL_URL", "smtp://mailpit:1025?tls=none")],
            "MAIL_URL",
            &[Status::Pass, Status::Warn],
        );
        check(
            &[("MAIL_URL", "smtp://127.0.0.1:1025")],
            "MAIL_URL",
            &[Status::Pass],
        );
    }
}
