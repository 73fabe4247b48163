//! The configuration's checks, end to end through [`ServiceSettings::from_env`]
//! and the findings `cargo auth validate` prints.

use std::time::Duration;

use super::*;
use crate::refresh::ReuseWindow;
use crate::token::{KeyError, SigningAlgorithm, SigningKeys};

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
        let err =
            ServiceSettings::from_env(&env(&[("ALGORITHM", alg), ("SECRET_KEY", &short)]), "svc")
                .unwrap_err();
        assert!(err.fix().contains("cargo auth setup-jwt"), "{err}");
        let long = key(min);
        let settings =
            ServiceSettings::from_env(&env(&[("ALGORITHM", alg), ("SECRET_KEY", &long)]), "svc");
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
    assert_eq!(s.server.database_url, "sqlite://my-api.db?mode=rwc");
    assert_eq!(s.server.listen_addr().to_string(), "127.0.0.1:8000");
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
