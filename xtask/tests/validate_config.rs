//! `cargo auth validate [--env-file PATH] [--json]`, through the real binary:
//! each bad configuration gets its FAIL line and exit status 1.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::fs;
use std::path::Path;

use base64::Engine as _;
use common::{assert_one_line_error, closed_port, run, stdout};

/// Writes `text` as `.env` (mode 0600) in `dir` and validates it.
fn validate_in(dir: &Path, text: &str) -> std::process::Output {
    let env_file = dir.join(".env");
    fs::write(&env_file, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&env_file, fs::Permissions::from_mode(0o600)).unwrap();
    }
    run(&["validate", "--env-file", env_file.to_str().unwrap()]).0
}

/// The configuration `text` exits with `exit`, and its table has a line
/// `STATUS  SUBJECT  ...fragment...` for each of `lines`.
fn check_in(dir: &Path, text: &str, exit: i32, lines: &[(&str, &str, &str)]) -> String {
    let output = validate_in(dir, text);
    let out = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(exit),
        "{text}\n{out}{}",
        common::stderr(&output)
    );
    for (status, subject, fragment) in lines {
        let found = out.lines().any(|line| {
            let mut words = line.split_whitespace();
            words.next() == Some(status) && words.next() == Some(subject) && line.contains(fragment)
        });
        assert!(
            found,
            "no `{status} {subject} ...{fragment}...` for\n{text}\n{out}"
        );
    }
    if exit == 1 {
        assert!(
            common::stderr(&output).contains("FAILED"),
            "{}",
            common::stderr(&output)
        );
    } else {
        assert!(!out.lines().any(|l| l.starts_with("FAIL")), "{out}");
    }
    out
}

fn check(text: &str, exit: i32, lines: &[(&str, &str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    check_in(dir.path(), text, exit, lines)
}

fn good_key() -> String {
    auth_kit::random::secret_hex()
}

fn jwt_with_role(role: &str) -> String {
    let b64 = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.sig",
        b64(r#"{"alg":"HS256","typ":"JWT"}"#.to_owned()),
        b64(format!(r#"{{"iss":"supabase","role":"{role}"}}"#))
    )
}

#[test]
fn a_good_configuration_passes() {
    let key = good_key();
    let out = check(
        &format!("# comment\nSECRET_KEY={key}\nDATABASE_URL=sqlite://app.db?mode=rwc\n"),
        0,
        &[
            // Not the bit estimate: a random hex key misses one of the 16 digits about a quarter of the time.
            ("PASS", "SECRET_KEY", "64 bytes, about 2"),
            ("PASS", "ALGORITHM", "HS256"),
            ("PASS", "DATABASE_URL", "does not exist yet"),
            ("PASS", "ENV_FILE", "mode 0600"),
        ],
    );
    assert!(!out.contains(&key), "the key is never printed");
    assert!(!out.lines().any(|l| l.starts_with("WARN")), "{out}");
    assert!(out.contains("STATUS  WHAT"), "{out}");
}

#[test]
fn secret_key_problems() {
    check(
        "PORT=8000\n",
        1,
        &[("FAIL", "SECRET_KEY", "SECRET_KEY is not set")],
    );
    check(
        "SECRET_KEY=0123456789\n",
        1,
        &[("FAIL", "SECRET_KEY", "only 10 bytes")],
    );
    check(
        "SECRET_KEY=your_secret_key_here\n",
        1,
        &[("FAIL", "SECRET_KEY", "placeholder")],
    );
    check(
        &format!("SECRET_KEY={}\n", "ab".repeat(20)),
        1,
        &[("FAIL", "SECRET_KEY", "distinct characters")],
    );
    check(
        "SECRET_KEY=09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7\n",
        1,
        &[("FAIL", "SECRET_KEY", "FastAPI's JWT tutorial")],
    );
    // 32 bytes of 8 characters: allowed, about 96 bits: a warning.
    let out = check(
        &format!("SECRET_KEY={}\n", "abcdefgh".repeat(4)),
        0,
        &[("WARN", "SECRET_KEY", "bits of entropy")],
    );
    assert!(
        out.contains("fix: generate one with `cargo auth setup-jwt`"),
        "{out}"
    );
}

#[test]
fn algorithm_and_key_file_problems() {
    let key = good_key();
    check(
        &format!("SECRET_KEY={key}\nALGORITHM=none\n"),
        1,
        &[("FAIL", "ALGORITHM", "ALGORITHM=none is not supported")],
    );
    check(
        &format!("SECRET_KEY={key}\nALGORITHM=HS999\n"),
        1,
        &[("FAIL", "ALGORITHM", "not supported")],
    );
    check(
        "ALGORITHM=ES256\n",
        1,
        &[("FAIL", "JWT_PRIVATE_KEY_FILE", "needs JWT_PRIVATE_KEY_FILE")],
    );
    check(
        "ALGORITHM=ES256\nJWT_PRIVATE_KEY_FILE=missing.pem\nJWT_PUBLIC_KEY_FILE=missing-public.pem\n",
        1,
        &[("FAIL", "JWT_PRIVATE_KEY_FILE", "cannot be read")],
    );

    // Two real ES256 pairs from setup-jwt, then mixed up.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for folder in [&a, &b] {
        fs::create_dir(folder).unwrap();
        let env_file = folder.join(".env");
        assert!(
            run(&[
                "setup-jwt",
                "--algorithm",
                "ES256",
                "--env-file",
                env_file.to_str().unwrap()
            ])
            .0
            .status
            .success()
        );
    }
    let (a_private, b_public) = (
        a.join("jwt-es256-private.pem"),
        b.join("jwt-es256-public.pem"),
    );
    let files = |private: &Path, public: &Path| {
        format!(
            "JWT_PRIVATE_KEY_FILE={}\nJWT_PUBLIC_KEY_FILE={}\n",
            private.display(),
            public.display()
        )
    };
    check_in(
        &a,
        &format!(
            "ALGORITHM=ES256\n{}",
            files(&a_private, &a.join("jwt-es256-public.pem"))
        ),
        0,
        &[("PASS", "JWT_PRIVATE_KEY_FILE", "ES256 key pair, kid")],
    );
    check_in(
        &a,
        &format!("ALGORITHM=ES256\n{}", files(&a_private, &b_public)),
        1,
        &[("FAIL", "JWT_PRIVATE_KEY_FILE", "does not match")],
    );
    check_in(
        &a,
        &format!("ALGORITHM=RS256\n{}", files(&a_private, &b_public)),
        1,
        &[(
            "FAIL",
            "JWT_PRIVATE_KEY_FILE",
            "not a PEM RS256 private key",
        )],
    );
    // A folder where a key file should be cannot be read.
    check_in(
        &a,
        &format!("ALGORITHM=ES256\n{}", files(&b, &b_public)),
        1,
        &[("FAIL", "JWT_PRIVATE_KEY_FILE", "cannot be read")],
    );
    // Relative key file paths are read from the env file's folder, as the service does.
    check_in(
        &a,
        "ALGORITHM=ES256\nJWT_PRIVATE_KEY_FILE=jwt-es256-private.pem\nJWT_PUBLIC_KEY_FILE=jwt-es256-public.pem\n",
        0,
        &[],
    );
    check_in(
        &a,
        &format!(
            "SECRET_KEY={key}\nALGORITHM=ES256\n{}",
            files(&a_private, &a.join("jwt-es256-public.pem"))
        ),
        0,
        &[("WARN", "SECRET_KEY", "set but not used")],
    );
}

#[test]
fn expiry_out_of_range() {
    let key = good_key();
    check(
        &format!("SECRET_KEY={key}\nACCESS_TOKEN_EXPIRE_MINUTES=90\n"),
        0,
        &[
            ("PASS", "ACCESS_TOKEN_EXPIRE_MINUTES", "90 minutes"),
            ("WARN", "ACCESS_TOKEN_EXPIRE_MINUTES", "90 minutes"),
        ],
    );
    // Above the service's limit: the service itself refuses it (exit 2).
    check(
        &format!("SECRET_KEY={key}\nACCESS_TOKEN_EXPIRE_MINUTES=1441\n"),
        1,
        &[("FAIL", "ACCESS_TOKEN_EXPIRE_MINUTES", "out of range")],
    );
    check(
        &format!("SECRET_KEY={key}\nACCESS_TOKEN_EXPIRE_MINUTES=0\n"),
        1,
        &[("FAIL", "ACCESS_TOKEN_EXPIRE_MINUTES", "out of range")],
    );
    check(
        &format!("SECRET_KEY={key}\nACCESS_TOKEN_EXPIRE_MINUTES=soon\n"),
        1,
        &[("FAIL", "ACCESS_TOKEN_EXPIRE_MINUTES", "not a whole number")],
    );
}

#[test]
fn database_problems() {
    let key = good_key();
    check(
        &format!("SECRET_KEY={key}\nDATABASE_URL=mysql://db/app\n"),
        1,
        &[("FAIL", "DATABASE_URL", "neither")],
    );
    check(
        &format!("SECRET_KEY={key}\nDATABASE_URL=postgres://u:p@[::1\n"),
        1,
        &[("FAIL", "DATABASE_URL", "cannot be parsed")],
    );
    let port = closed_port();
    let out = check(
        &format!("SECRET_KEY={key}\nDATABASE_URL=postgres://app:hunter2@127.0.0.1:{port}/app\n"),
        1,
        &[(
            "FAIL",
            "DATABASE_URL",
            "unreachable: PostgreSQL at 127.0.0.1",
        )],
    );
    assert!(
        out.contains("(timeout 5 s)"),
        "the timeout is stated: {out}"
    );
    assert!(!out.contains("hunter2"), "{out}");
    check(
        &format!("SECRET_KEY={key}\nDATABASE_URL=sqlite://no/such/folder/app.db?mode=rwc\n"),
        1,
        &[("FAIL", "DATABASE_URL", "does not exist")],
    );
    check(
        &format!("SECRET_KEY={key}\nDATABASE_URL=sqlite://app.db\n"),
        1,
        &[("FAIL", "DATABASE_URL", "without mode=rwc")],
    );
    check(
        &format!("SECRET_KEY={key}\nDATABASE_URL=sqlite::memory:\n"),
        0,
        &[("WARN", "DATABASE_URL", "in memory")],
    );

    // An existing file is opened (relative to the env file's folder), and must be SQLite.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("app.db"), "").unwrap();
    check_in(
        dir.path(),
        &format!("SECRET_KEY={key}\nDATABASE_URL=sqlite://app.db?mode=rwc\n"),
        0,
        &[(
            "PASS",
            "DATABASE_URL",
            "reachable: SQLite file app.db answered SELECT 1 (timeout 5 s)",
        )],
    );
    fs::write(
        dir.path().join("app.db"),
        "this is not a database, it is text that goes on for a while".repeat(30),
    )
    .unwrap();
    check_in(
        dir.path(),
        &format!("SECRET_KEY={key}\nDATABASE_URL=sqlite://app.db?mode=rwc\n"),
        1,
        &[("FAIL", "DATABASE_URL", "unreachable")],
    );
}

/// An SMTP server on loopback that greets, answers EHLO and NOOP, and says
/// goodbye: enough for the reachability check. Its port.
fn smtp_greeter() -> u16 {
    use std::io::{BufRead as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let _ = stream.write_all(b"220 greeter ESMTP\r\n");
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                let reply: &[u8] = match line.trim().to_ascii_uppercase().as_str() {
                    l if l.starts_with("EHLO") => b"250 greeter\r\n",
                    "QUIT" => b"221 bye\r\n",
                    _ => b"250 ok\r\n",
                };
                let _ = stream.write_all(reply);
                line.clear();
            }
        }
    });
    port
}

#[test]
fn mail_problems() {
    let key = good_key();
    let out = check(
        &format!("SECRET_KEY={key}\nMAIL_URL=ftp://mail:hunter2@example.com\n"),
        1,
        &[("FAIL", "MAIL_URL", "not a file://, smtp:// or smtps:// URL")],
    );
    assert!(out.contains("fix: use file://./outbox"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    let port = closed_port();
    let out = check(
        &format!(
            "SECRET_KEY={key}\nMAIL_URL=smtp://mail:hunter2@127.0.0.1:{port}\nMAIL_FROM=a@example.com\n"
        ),
        1,
        &[(
            "FAIL",
            "MAIL_URL",
            "unreachable: mail is sent over SMTP to 127.0.0.1",
        )],
    );
    assert!(
        out.contains("(timeout 5 s)"),
        "the timeout is stated: {out}"
    );
    assert!(!out.contains("hunter2"), "{out}");
    let port = smtp_greeter();
    check(
        &format!("SECRET_KEY={key}\nMAIL_URL=smtp://127.0.0.1:{port}\nMAIL_FROM=a@example.com\n"),
        0,
        &[(
            "PASS",
            "MAIL_URL",
            "reachable: mail is sent over SMTP to 127.0.0.1",
        )],
    );
    check(
        &format!("SECRET_KEY={key}\nMAIL_URL=smtps://mail.example.com\n"),
        1,
        &[
            ("PASS", "MAIL_URL", "(TLS, without credentials)"),
            ("WARN", "MAIL_FROM", "not an address of a real domain"),
        ],
    );
    check(
        &format!(
            "SECRET_KEY={key}\nPUBLIC_URL=http://api.example.com\nRESET_TOKEN_EXPIRE_MINUTES=0\nREQUIRE_VERIFIED_EMAIL=maybe\n"
        ),
        1,
        &[
            ("WARN", "PUBLIC_URL", "plain http outside loopback"),
            ("FAIL", "RESET_TOKEN_EXPIRE_MINUTES", "out of range"),
            ("FAIL", "REQUIRE_VERIFIED_EMAIL", "neither true nor false"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    check_in(
        dir.path(),
        &format!("SECRET_KEY={key}\n"),
        0,
        &[("PASS", "MAIL_URL", "the outbox ./outbox does not exist yet")],
    );
    fs::write(dir.path().join("outbox"), "a file").unwrap();
    check_in(
        dir.path(),
        &format!("SECRET_KEY={key}\n"),
        1,
        &[("FAIL", "MAIL_URL", "exists and is not a folder")],
    );
}

#[test]
fn supabase_problems() {
    let publishable = "sb_publishable_abc123";
    check(
        &format!("SUPABASE_URL=http://example.com\nSUPABASE_KEY={publishable}\n"),
        1,
        &[("FAIL", "SUPABASE_URL", "plain http:// to example.com")],
    );
    let service_role = jwt_with_role("service_role");
    let out = check(
        &format!("SUPABASE_URL=https://abc.supabase.co\nSUPABASE_KEY={service_role}\n"),
        1,
        &[(
            "FAIL",
            "SUPABASE_KEY",
            "must never sit in a service that faces users",
        )],
    );
    assert!(!out.contains(&service_role), "the key is never printed");
    check(
        "SUPABASE_URL=https://abc.supabase.co\nSUPABASE_KEY=sb_secret_abc\n",
        1,
        &[("FAIL", "SUPABASE_KEY", "must never sit")],
    );
    check(
        "SUPABASE_URL=https://abc.supabase.co\nSUPABASE_KEY=not-a-key\n",
        1,
        &[("FAIL", "SUPABASE_KEY", "neither a publishable key")],
    );

    // Plain HTTP to this machine: a warning, and the health check answers.
    let stub = common::supabase_health_stub();
    check(
        &format!(
            "SUPABASE_URL={stub}\nSUPABASE_KEY={}\n",
            jwt_with_role("anon")
        ),
        0,
        &[
            ("WARN", "SUPABASE_URL", "plain HTTP"),
            ("PASS", "SUPABASE_URL", "reachable: GET"),
            ("PASS", "SUPABASE_KEY", "anon key"),
        ],
    );
    let port = closed_port();
    let out = check(
        &format!("SUPABASE_URL=http://127.0.0.1:{port}\nSUPABASE_KEY={publishable}\n"),
        1,
        &[("FAIL", "SUPABASE_URL", "unreachable")],
    );
    assert!(
        out.contains("(timeout 5 s)"),
        "the timeout is stated: {out}"
    );
    // A jwt/oauth2 service with SUPABASE_URL set gets both sets of checks.
    check(
        &format!(
            "SECRET_KEY={}\nSUPABASE_URL=https://abc.supabase.co\nSUPABASE_KEY=sb_secret_x\n",
            good_key()
        ),
        1,
        &[
            ("PASS", "SECRET_KEY", "bytes"),
            ("FAIL", "SUPABASE_KEY", "must never sit"),
        ],
    );
}

#[test]
fn env_file_problems_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.env");
    assert_one_line_error(
        &run(&["validate", "--env-file", missing.to_str().unwrap()]).0,
        "does not exist",
    );
    // Without --env-file: ./.env.
    let output = common::xtask(&["validate"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_one_line_error(&output, "the env file .env does not exist");

    let broken = dir.path().join("broken.env");
    fs::write(
        &broken,
        "SECRET_KEY=abcdefgh-secret-value\nthis line is broken\n",
    )
    .unwrap();
    let output = run(&["validate", "--env-file", broken.to_str().unwrap()]).0;
    assert_one_line_error(&output, "cannot be parsed");
    assert!(!common::stderr(&output).contains("abcdefgh-secret-value"));
    assert_one_line_error(
        &run(&["validate", "--env-file", dir.path().to_str().unwrap()]).0,
        "is a folder",
    );
}

#[test]
fn a_readable_env_file_warns() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    fs::write(&env_file, format!("SECRET_KEY={}\n", good_key())).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&env_file, fs::Permissions::from_mode(0o644)).unwrap();
        let output = run(&["validate", "--env-file", env_file.to_str().unwrap()]).0;
        assert_eq!(output.status.code(), Some(0));
        let out = stdout(&output);
        assert!(
            out.lines()
                .any(|l| l.starts_with("WARN    ENV_FILE") && l.contains("mode 0644")),
            "{out}"
        );
        assert!(out.contains("fix: chmod 600"), "{out}");
    }
}

#[test]
fn json_output_parses() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    fs::write(
        &env_file,
        "SECRET_KEY=short\nACCESS_TOKEN_EXPIRE_MINUTES=120\n",
    )
    .unwrap();
    let output = run(&[
        "validate",
        "--env-file",
        env_file.to_str().unwrap(),
        "--json",
    ])
    .0;
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["status"] == "FAIL" && f["subject"] == "SECRET_KEY" && f["fix"].is_string())
    );
    assert!(
        findings
            .iter()
            .any(|f| f["status"] == "WARN" && f["subject"] == "ACCESS_TOKEN_EXPIRE_MINUTES")
    );
    assert!(findings.iter().all(|f| f["message"].is_string()));
    assert_eq!(
        report["fail"].as_u64().unwrap(),
        findings.iter().filter(|f| f["status"] == "FAIL").count() as u64
    );
    assert_eq!(report["kind"], "jwt");

    fs::write(&env_file, format!("SECRET_KEY={}\n", good_key())).unwrap();
    let output = run(&[
        "validate",
        "--env-file",
        env_file.to_str().unwrap(),
        "--json",
    ])
    .0;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["fail"], 0);
}

#[test]
fn hmac_keys_must_be_as_long_as_their_hash() {
    let key = good_key(); // 64 hex characters: enough for HS512
    check(
        &format!("ALGORITHM=HS512\nSECRET_KEY={}\n", &key[..48]),
        1,
        &[(
            "FAIL",
            "SECRET_KEY",
            "48 bytes, but ALGORITHM=HS512 needs at least 64",
        )],
    );
    check(
        &format!("ALGORITHM=HS384\nSECRET_KEY={}\n", &key[..32]),
        1,
        &[("FAIL", "SECRET_KEY", "ALGORITHM=HS384 needs at least 48")],
    );
    check(
        &format!("ALGORITHM=HS512\nSECRET_KEY={key}\n"),
        0,
        &[("PASS", "SECRET_KEY", "64 bytes")],
    );
}

/// ADMIN_USERNAME taken by someone who is not an enabled admin: FAIL with
/// the way out, once the database can be read.
#[test]
fn a_squatted_admin_name_fails() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/app.db?mode=rwc", dir.path().display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = auth_kit::store::Store::connect(&database).await.unwrap();
        for (username, role) in [("boss", "user"), ("chief", "admin")] {
            let user = auth_kit::store::NewUser {
                username,
                email: None,
                full_name: None,
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
                role,
            };
            store.create_user(&user).await.unwrap();
        }
        store.close().await;
    });
    let key = good_key();
    let config = |admin: &str| {
        format!(
            "SECRET_KEY={key}\nDATABASE_URL={database}\nADMIN_USERNAME={admin}\nADMIN_PASSWORD=a-long-admin-password\n"
        )
    };
    let out = check_in(
        dir.path(),
        &config("boss"),
        1,
        &[(
            "FAIL",
            "ADMIN_USERNAME",
            "'boss' belongs to a user who is not an enabled admin (role 'user', enabled)",
        )],
    );
    assert!(
        out.contains("cargo auth admin promote --username boss"),
        "{out}"
    );
    assert!(
        out.contains(
            "UPDATE users SET role = 'admin', disabled = FALSE WHERE username_key = 'boss'"
        ),
        "{out}"
    );
    assert!(!out.contains("a-long-admin-password"));
    check_in(
        dir.path(),
        &config("chief"),
        0,
        &[("PASS", "ADMIN_USERNAME", "'chief' is an enabled admin")],
    );
    check_in(
        dir.path(),
        &config("newcomer"),
        0,
        &[("PASS", "ADMIN_USERNAME", "creates the admin at start-up")],
    );
}
