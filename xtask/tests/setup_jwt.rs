//! `cargo xtask setup-jwt`, through the real binary.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::fs;
use std::path::Path;

use auth_kit::token::{SigningAlgorithm, SigningKeys};
use common::{assert_one_line_error, run, stdout};

fn setup(env_file: &Path, extra: &[&str]) -> std::process::Output {
    let path = env_file.to_str().unwrap();
    let mut args = vec!["setup-jwt", "--env-file", path];
    args.extend_from_slice(extra);
    run(&args).0
}

/// The value of the active `key=` line.
fn value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

/// The lines setup-jwt does not own, in order.
fn other_lines(text: &str) -> Vec<&str> {
    let owned = [
        "SECRET_KEY=",
        "ALGORITHM=",
        "ACCESS_TOKEN_EXPIRE_MINUTES=",
        "JWT_PRIVATE_KEY_FILE=",
        "JWT_PUBLIC_KEY_FILE=",
    ];
    text.split_inclusive('\n')
        .filter(|l| !owned.iter().any(|o| l.starts_with(o)))
        .collect()
}

fn check_fresh_key(text: &str, output: &std::process::Output) {
    let key = value(text, "SECRET_KEY").unwrap();
    assert_eq!(key.len(), 64, "256 bits as hex");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(auth_kit::config::secret_key(Some(&key)).is_ok());
    assert!(
        !stdout(output).contains(&key) && !common::stderr(output).contains(&key),
        "the key is never printed"
    );
}

#[test]
fn creates_a_missing_file_private() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    let output = setup(&env_file, &[]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let text = fs::read_to_string(&env_file).unwrap();
    check_fresh_key(&text, &output);
    assert_eq!(value(&text, "ALGORITHM").as_deref(), Some("HS256"));
    assert_eq!(
        value(&text, "ACCESS_TOKEN_EXPIRE_MINUTES").as_deref(),
        Some("30")
    );
    #[cfg(unix)]
    assert_eq!(common::mode(&env_file), 0o600);
    // No temporary file is left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn keeps_every_other_line_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    let original = "# Settings of my-api.\n\n# SECRET_KEY=commented-out-stays\nDATABASE_URL=sqlite://my-api.db?mode=rwc\nSECRET_KEY=\n  # indented comment = with equals\nPORT=8001\nRUST_LOG=\"info,sqlx=warn\"\nACCESS_TOKEN_EXPIRE_MINUTES=15\nLAST_LINE=no-newline";
    fs::write(&env_file, original).unwrap();
    let output = setup(&env_file, &[]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let text = fs::read_to_string(&env_file).unwrap();
    check_fresh_key(&text, &output);
    // Every line it does not own is unchanged and in place (the last one
    // gains the newline that lets the new settings follow it).
    let mut expected = other_lines(original);
    let last = expected.pop().unwrap();
    assert_eq!(last, "LAST_LINE=no-newline");
    let got = other_lines(&text);
    assert_eq!(&got[..expected.len()], expected.as_slice());
    assert_eq!(got[expected.len()], "LAST_LINE=no-newline\n");
    // SECRET_KEY replaced where it was; an existing expiry kept; ALGORITHM appended.
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[4].starts_with("SECRET_KEY="), "{text}");
    assert_eq!(
        value(&text, "ACCESS_TOKEN_EXPIRE_MINUTES").as_deref(),
        Some("15")
    );
    assert_eq!(lines.last(), Some(&"ALGORITHM=HS256"));
    assert!(stdout(&output).contains("ACCESS_TOKEN_EXPIRE_MINUTES kept: 15"));
    // And the result is a configuration validate accepts.
    let (check, _) = run(&["validate", "--env-file", env_file.to_str().unwrap()]);
    assert!(check.status.success(), "{}", stdout(&check));
}

#[test]
fn refuses_to_replace_a_key_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    let original = "# mine\nSECRET_KEY=0123456789abcdef0123456789abcdef-existing\nPORT=8000\n";
    fs::write(&env_file, original).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&env_file, fs::Permissions::from_mode(0o640)).unwrap();
    }
    let output = setup(&env_file, &[]);
    assert_one_line_error(&output, "--force");
    assert!(common::stderr(&output).contains("SECRET_KEY"));
    assert_eq!(
        fs::read_to_string(&env_file).unwrap(),
        original,
        "untouched"
    );
    #[cfg(unix)]
    assert_eq!(common::mode(&env_file), 0o640, "untouched");
    // The same for an asymmetric setup.
    assert_one_line_error(&setup(&env_file, &["--algorithm", "ES256"]), "--force");
    assert_eq!(fs::read_to_string(&env_file).unwrap(), original);
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no key files written"
    );
}

#[test]
fn replaces_a_key_with_force_and_says_old_tokens_stop_working() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    let original = "# mine\nSECRET_KEY=0123456789abcdef0123456789abcdef-existing\nPORT=8000\n";
    fs::write(&env_file, original).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&env_file, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let output = setup(&env_file, &["--force"]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let text = fs::read_to_string(&env_file).unwrap();
    check_fresh_key(&text, &output);
    assert!(!text.contains("existing"));
    assert_eq!(other_lines(&text), ["# mine\n", "PORT=8000\n"]);
    let said = stdout(&output);
    assert!(
        said.contains("stop working") && said.contains("log in again"),
        "{said}"
    );
    #[cfg(unix)]
    assert_eq!(common::mode(&env_file), 0o600, "rewritten private");
}

#[test]
fn unknown_algorithms_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    assert_one_line_error(
        &setup(&env_file, &["--algorithm", "none"]),
        "HS256, HS384, HS512, RS256, ES256, EdDSA",
    );
    assert!(!env_file.exists());
    assert_one_line_error(
        &setup(&dir.path().join("missing/.env"), &[]),
        "does not exist",
    );
}

#[test]
fn hmac_algorithms_write_a_secret_key() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    let output = setup(&env_file, &["--algorithm", "HS512"]);
    assert!(output.status.success());
    let text = fs::read_to_string(&env_file).unwrap();
    check_fresh_key(&text, &output);
    assert_eq!(value(&text, "ALGORITHM").as_deref(), Some("HS512"));
}

#[test]
fn key_pairs_load_and_validate() {
    for (alg, name) in [
        (SigningAlgorithm::ES256, "es256"),
        (SigningAlgorithm::EdDSA, "eddsa"),
        (SigningAlgorithm::RS256, "rs256"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join(".env");
        fs::write(&env_file, "# keep me\nHOST=127.0.0.1\n").unwrap();
        let output = setup(&env_file, &["--algorithm", alg.as_str()]);
        assert!(
            output.status.success(),
            "{alg}: {}",
            common::stderr(&output)
        );
        let text = fs::read_to_string(&env_file).unwrap();
        assert_eq!(other_lines(&text), ["# keep me\n", "HOST=127.0.0.1\n"]);
        assert_eq!(value(&text, "ALGORITHM").as_deref(), Some(alg.as_str()));
        assert_eq!(value(&text, "SECRET_KEY"), None);
        let private = dir
            .path()
            .join(value(&text, "JWT_PRIVATE_KEY_FILE").unwrap());
        let public = dir
            .path()
            .join(value(&text, "JWT_PUBLIC_KEY_FILE").unwrap());
        assert_eq!(
            private.file_name().unwrap().to_str().unwrap(),
            format!("jwt-{name}-private.pem")
        );
        let private_pem = fs::read_to_string(&private).unwrap();
        assert!(
            private_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
            "PKCS#8"
        );
        assert!(
            fs::read_to_string(&public)
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----"),
            "SPKI"
        );
        SigningKeys::from_pem(alg, private_pem.as_bytes(), &fs::read(&public).unwrap()).unwrap();
        #[cfg(unix)]
        for file in [&private, &public, &env_file] {
            assert_eq!(common::mode(file), 0o600, "{}", file.display());
        }
        assert!(
            !stdout(&output).contains("PRIVATE KEY"),
            "the key is never printed"
        );
        let (check, _) = run(&["validate", "--env-file", env_file.to_str().unwrap()]);
        assert!(check.status.success(), "{alg}: {}", stdout(&check));
        assert!(stdout(&check).contains(&format!("{alg} key pair")));

        // Existing key files (and the key in the env file) need --force.
        let again = setup(&env_file, &["--algorithm", alg.as_str()]);
        assert_one_line_error(&again, "--force");
        assert_eq!(
            fs::read_to_string(&private).unwrap(),
            private_pem,
            "untouched"
        );
        fs::write(&env_file, "").unwrap();
        assert_one_line_error(
            &setup(&env_file, &["--algorithm", alg.as_str()]),
            "already exists",
        );
        let forced = setup(&env_file, &["--algorithm", alg.as_str(), "--force"]);
        assert!(forced.status.success());
        assert_ne!(
            fs::read_to_string(&private).unwrap(),
            private_pem,
            "a new pair"
        );
    }
}

/// The service's settings from an env file, as the service reads them
/// (paths relative to the env file's folder).
fn settings_of(env_file: &Path) -> auth_kit::config::ServiceSettings {
    let text = fs::read_to_string(env_file).unwrap();
    let folder = env_file.parent().unwrap();
    let pairs: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.starts_with('#'))
        .map(|(k, v)| {
            let v = if k.ends_with("_FILE") || k.ends_with("_FILES") {
                v.split(',')
                    .map(|p| folder.join(p.trim()).display().to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                v.to_owned()
            };
            (k.to_owned(), v)
        })
        .collect();
    auth_kit::config::ServiceSettings::from_env(
        &auth_kit::config::Environment::from_pairs(pairs),
        "svc",
    )
    .unwrap()
}

/// A token signed by `settings`' current key, verified by `later`'s keys.
fn verifies_later(
    settings: &auth_kit::config::ServiceSettings,
    later: &auth_kit::config::ServiceSettings,
) -> Result<(), auth_kit::token::InvalidToken> {
    use auth_kit::token::{AccessGrant, AccessTokenVerifier, ClaimRules, Leeway, TokenIssuer};
    let rules = ClaimRules::new("svc", "svc", Leeway::seconds(30).unwrap());
    let token = TokenIssuer::new(
        std::sync::Arc::new(settings.keys.clone()),
        rules.clone(),
        std::time::Duration::from_secs(600),
        auth_kit::Clock::System,
    )
    .issue(&AccessGrant {
        user_id: 1,
        scope: None,
        login_id: None,
    })
    .unwrap();
    AccessTokenVerifier::new(&later.keys, rules)
        .verify(token.as_str())
        .map(|_| ())
}

#[test]
fn rotating_an_hmac_key_keeps_the_old_one_verifying() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    let first = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let original = format!("# mine\nSECRET_KEY={first}\nPORT=8001\n# the end\n");
    fs::write(&env_file, &original).unwrap();
    let before = settings_of(&env_file);

    let output = setup(&env_file, &["--rotate"]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let text = fs::read_to_string(&env_file).unwrap();
    assert_eq!(value(&text, "SECRET_KEY_PREVIOUS").as_deref(), Some(first));
    let fresh = value(&text, "SECRET_KEY").unwrap();
    assert_ne!(fresh, first);
    check_fresh_key(&text, &output);
    assert!(!stdout(&output).contains(first), "no key is printed");
    let rotated_at = value(&text, "JWT_KEY_ROTATED_AT").unwrap();
    let at = auth_kit::clock::parse_rfc3339(&rotated_at).unwrap();
    assert!((auth_kit::Clock::System.now() - at).abs() < 60);
    // Every other line kept, in place; the new settings appended.
    assert!(text.starts_with("# mine\nSECRET_KEY="), "{text}");
    assert!(text.contains("\nPORT=8001\n# the end\n"), "{text}");
    #[cfg(unix)]
    assert_eq!(common::mode(&env_file), 0o600);

    // A token signed before the rotation verifies after it.
    let after = settings_of(&env_file);
    verifies_later(&before, &after).unwrap();
    assert_eq!(after.keys.previous_kids().next(), Some(before.keys.kid()));
    let (check, _) = run(&["validate", "--env-file", env_file.to_str().unwrap()]);
    assert!(check.status.success(), "{}", stdout(&check));
    assert!(stdout(&check).contains("SECRET_KEY_PREVIOUS"));
    assert!(
        stdout(&check).contains("keep it until"),
        "{}",
        stdout(&check)
    );

    // Rotating again at once would drop a key that still verifies live tokens.
    let again = setup(&env_file, &["--rotate"]);
    assert_one_line_error(&again, "--force");
    assert_eq!(fs::read_to_string(&env_file).unwrap(), text, "untouched");
    let forced = setup(&env_file, &["--rotate", "--force"]);
    assert!(forced.status.success(), "{}", common::stderr(&forced));
    let third = settings_of(&env_file);
    verifies_later(&after, &third).unwrap();
    assert!(
        verifies_later(&before, &third).is_err(),
        "two rotations ago: neither current nor previous"
    );
}

#[test]
fn rotating_a_key_pair_keeps_the_old_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    fs::write(&env_file, "HOST=127.0.0.1\n").unwrap();
    assert!(setup(&env_file, &["--algorithm", "ES256"]).status.success());
    let before_text = fs::read_to_string(&env_file).unwrap();
    let old_private = dir.path().join("jwt-es256-private.pem");
    let old_private_pem = fs::read(&old_private).unwrap();
    let before = settings_of(&env_file);

    let output = setup(&env_file, &["--rotate"]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let text = fs::read_to_string(&env_file).unwrap();
    assert_eq!(
        value(&text, "JWT_PREVIOUS_PUBLIC_KEY_FILES").as_deref(),
        Some("jwt-es256-public.pem")
    );
    let new_private = value(&text, "JWT_PRIVATE_KEY_FILE").unwrap();
    assert!(
        new_private.starts_with("jwt-es256-") && new_private.ends_with("-private.pem"),
        "{new_private}"
    );
    assert_ne!(new_private, "jwt-es256-private.pem");
    assert_eq!(
        fs::read(&old_private).unwrap(),
        old_private_pem,
        "untouched"
    );
    #[cfg(unix)]
    assert_eq!(common::mode(&dir.path().join(&new_private)), 0o600);
    assert_eq!(other_lines(&text)[0], other_lines(&before_text)[0]);
    let after = settings_of(&env_file);
    verifies_later(&before, &after).unwrap();
    assert_eq!(after.keys.jwks().unwrap().keys.len(), 2);
    let (check, _) = run(&["validate", "--env-file", env_file.to_str().unwrap()]);
    assert!(check.status.success(), "{}", stdout(&check));
    assert!(stdout(&check).contains("JWT_PREVIOUS_PUBLIC_KEY_FILES"));
}

#[test]
fn rotation_refuses_what_it_cannot_do_safely() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    assert_one_line_error(&setup(&env_file, &["--rotate"]), "no key to rotate");
    for (text, fragment) in [
        ("PORT=8000\n", "no SECRET_KEY to rotate"),
        (
            "SECRET_KEY=changeme\n",
            "a weak key must not keep verifying",
        ),
        (
            "SECRET_KEY=0123456789abcdef0123456789abcdef0123456789abcdef\nSECRET_KEY_PREVIOUS=fedcba9876543210fedcba9876543210fedcba98\n",
            "JWT_KEY_ROTATED_AT is not",
        ),
        ("ALGORITHM=ES256\n", "no JWT_PRIVATE_KEY_FILE to rotate"),
        ("ALGORITHM=none\n", "fix it before rotating"),
    ] {
        fs::write(&env_file, text).unwrap();
        assert_one_line_error(&setup(&env_file, &["--rotate"]), fragment);
        assert_eq!(fs::read_to_string(&env_file).unwrap(), text, "untouched");
    }
    fs::write(
        &env_file,
        "SECRET_KEY=0123456789abcdef0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    assert_one_line_error(
        &setup(&env_file, &["--rotate", "--algorithm", "ES256"]),
        "logs everyone out",
    );
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing else written"
    );
}

#[test]
fn a_new_key_of_another_kind_clears_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    fs::write(
        &env_file,
        "SECRET_KEY=0123456789abcdef0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    assert!(setup(&env_file, &["--rotate"]).status.success());
    let output = setup(&env_file, &["--algorithm", "EdDSA", "--force"]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let text = fs::read_to_string(&env_file).unwrap();
    assert_eq!(value(&text, "SECRET_KEY_PREVIOUS").as_deref(), Some(""));
    assert_eq!(value(&text, "JWT_KEY_ROTATED_AT").as_deref(), Some(""));
    let (check, _) = run(&["validate", "--env-file", env_file.to_str().unwrap()]);
    assert!(check.status.success(), "{}", stdout(&check));
}
