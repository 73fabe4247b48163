//! Everything a jwt or oauth2 service reads, read in one pass that either
//! returns the settings or reports every finding.

use std::time::Duration;

use crate::refresh::ReuseWindow;
use crate::token::{Leeway, SigningKeys};

use super::keys::{algorithm, check_key_rotation, leeway, read_signing_keys, refresh_reuse};
use super::server::{AdminBootstrap, ServerSettings, admin, read_server};
use super::traffic::{SessionCacheSettings, TrafficSettings, read_session_cache, read_traffic};
use super::{AccountSettings, ConfigError, Environment, Finding, Report, account, catalog};

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
    /// DATABASE_URL, HOST and PORT (what every service reads, one on an
    /// external identity provider too).
    pub server: ServerSettings,
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
        report.settle(settings)
    }
}

/// Every check of a jwt/oauth2 service's configuration, as findings.
pub fn check_service(env: &Environment, service_name: &str) -> Vec<Finding> {
    let mut report = Report::default();
    read_service(env, service_name, &mut report);
    report.findings
}

fn read_service(
    env: &Environment,
    service_name: &str,
    report: &mut Report,
) -> Option<ServiceSettings> {
    let algorithm = report.take(algorithm(env), |a| {
        Finding::pass(catalog::ALGORITHM.name, format!("{a}"))
    });
    let keys = algorithm.and_then(|alg| read_signing_keys(env, alg, report));

    let lifetimes = read_lifetimes(env, report);
    let issuer = env
        .get(catalog::JWT_ISSUER.name)
        .unwrap_or(service_name)
        .trim()
        .to_owned();
    report.push(Finding::pass(
        catalog::JWT_ISSUER.name,
        format!("'{issuer}'"),
    ));
    let audience = env
        .get(catalog::JWT_AUDIENCE.name)
        .unwrap_or(service_name)
        .trim()
        .to_owned();
    report.push(Finding::pass(
        catalog::JWT_AUDIENCE.name,
        format!("'{audience}'"),
    ));

    let server = read_server(env, service_name, report);
    let admin = report.take(admin(env), |a| match a {
        Some(a) => Finding::pass(
            catalog::ADMIN_USERNAME.name,
            format!("'{}' is created at start-up if missing", a.username),
        ),
        None => Finding::pass(
            catalog::ADMIN_USERNAME.name,
            "no bootstrap admin (ADMIN_USERNAME/ADMIN_PASSWORD unset)",
        ),
    });
    let traffic = read_traffic(env, report);
    let account = account::read_account(env, server.as_ref().map(|s| (s.host, s.port)), report);
    let items_max = report.take(catalog::ITEMS_MAX_PER_USER.number(env), |n| {
        Finding::pass(
            catalog::ITEMS_MAX_PER_USER.name,
            format!("{n} items per user"),
        )
    });
    let session_cache = read_session_cache(
        env,
        server.as_ref().map(|s| s.database_url.as_str()),
        traffic.as_ref().and_then(|t| t.rate_limit_url.as_ref()),
        report,
    );

    Some(ServiceSettings {
        service_name: service_name.to_owned(),
        keys: keys?,
        access_token_ttl: lifetimes?.access,
        refresh_token_ttl: lifetimes?.refresh,
        refresh_reuse: lifetimes?.refresh_reuse,
        issuer,
        audience,
        leeway: lifetimes?.leeway,
        server: server?,
        admin: admin?,
        traffic: traffic?,
        account: account?,
        items_max_per_user: u32::try_from(items_max?).ok()?,
        session_cache: session_cache?,
    })
}

/// How long tokens live, and the clock leeway their checks allow.
#[derive(Clone, Copy)]
struct Lifetimes {
    access: Duration,
    refresh: Duration,
    refresh_reuse: ReuseWindow,
    leeway: Leeway,
}

/// ACCESS_TOKEN_EXPIRE_MINUTES, REFRESH_TOKEN_EXPIRE_DAYS,
/// REFRESH_TOKEN_REUSE_SECONDS and JWT_LEEWAY_SECONDS; and, knowing how long
/// a token lives, whether a previous key may be dropped yet.
fn read_lifetimes(env: &Environment, report: &mut Report) -> Option<Lifetimes> {
    let access_minutes = report.take(catalog::ACCESS_TOKEN_EXPIRE_MINUTES.number(env), |m| {
        Finding::pass(
            catalog::ACCESS_TOKEN_EXPIRE_MINUTES.name,
            format!("{m} minutes"),
        )
    });
    if let Some(m) = access_minutes
        && m > 60
    {
        report.push(Finding::warn(
            catalog::ACCESS_TOKEN_EXPIRE_MINUTES.name,
            format!("access tokens live {m} minutes: a stolen one stays usable that long"),
            "keep access tokens short (15-60 minutes) and let clients refresh",
        ));
    }
    let refresh_days = report.take(catalog::REFRESH_TOKEN_EXPIRE_DAYS.number(env), |d| {
        Finding::pass(catalog::REFRESH_TOKEN_EXPIRE_DAYS.name, format!("{d} days"))
    });
    let refresh_reuse = report.take(refresh_reuse(env), |w| {
        Finding::pass(
            catalog::REFRESH_TOKEN_REUSE_SECONDS.name,
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
        Finding::pass(
            catalog::JWT_LEEWAY_SECONDS.name,
            format!("{} seconds", l.as_secs()),
        )
    });
    if let (Some(a), Some(l)) = (access_minutes, leeway) {
        let lifetime = Duration::from_secs(a * 60 + l.as_secs());
        if let Err(e) = check_key_rotation(env, report, lifetime, crate::Clock::System.now()) {
            report.refuse(e);
        }
    }
    Some(Lifetimes {
        access: Duration::from_secs(access_minutes? * 60),
        refresh: Duration::from_secs(refresh_days? * 86_400),
        refresh_reuse: refresh_reuse?,
        leeway: leeway?,
    })
}
