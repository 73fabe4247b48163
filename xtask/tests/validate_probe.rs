//! `cargo xtask validate --url URL`, through the real binary: against a
//! stamped oauth2 service (every probe passes), against services written
//! here that break one rule each (that probe fails), and against URLs that
//! are not a service at all (one line, promptly).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{
    Flaws, MINI_ADMIN, MINI_ADMIN_PASSWORD, assert_one_line_error, closed_port, mini_service, run,
    stdout,
};

/// The stamped service's bootstrap admin password.
const ADMIN_PASSWORD: &str = "probe-admin-password";

/// The probe lines of an output: (status, line).
fn probe_lines(out: &str) -> Vec<(&str, &str)> {
    out.lines()
        .filter_map(|l| {
            ["PASS", "FAIL", "SKIP"]
                .into_iter()
                .find(|s| l.starts_with(&format!("{s}  ")))
                .map(|s| (s, l))
        })
        .collect()
}

/// The status of the probe whose line starts with `name`.
fn status_of<'a>(out: &'a str, name: &str) -> &'a str {
    probe_lines(out)
        .into_iter()
        .find(|(_, l)| l[6..].starts_with(name))
        .map_or_else(|| panic!("no probe {name:?} in\n{out}"), |(s, _)| s)
}

/// An env file holding `secret`, as the service's configuration.
fn env_file(dir: &Path, secret: &str) -> PathBuf {
    let path = dir.join(".env");
    fs::write(&path, format!("SECRET_KEY={secret}\n")).unwrap();
    path
}

fn probe(url: &str, env_file: &Path) -> (std::process::Output, String) {
    let (output, took) = run(&[
        "validate",
        "--url",
        url,
        "--env-file",
        env_file.to_str().unwrap(),
    ]);
    assert!(took < Duration::from_secs(60), "bounded: {took:?}");
    let out = stdout(&output);
    (output, out)
}

/// [`probe`], logged in as `username`, its password in VALIDATE_PASSWORD.
fn probe_as(
    url: &str,
    env_file: &Path,
    username: &str,
    password: &str,
) -> (std::process::Output, String) {
    let output = common::xtask(&[
        "validate",
        "--url",
        url,
        "--env-file",
        env_file.to_str().unwrap(),
        "--username",
        username,
    ])
    .env("VALIDATE_PASSWORD", password)
    .output()
    .unwrap();
    let out = stdout(&output);
    (output, out)
}

/// The probe that needs an admin's login, skipped for a throwaway user.
const DOWN_SCOPED: &str = "down-scoped admin token";

/// Every probe passes, but for those that need an admin (or a non-admin).
fn assert_all_pass_but(out: &str, skipped: &[&str]) {
    for (status, line) in probe_lines(out) {
        let allowed = skipped.iter().any(|name| line[6..].starts_with(name));
        assert!(
            status == "PASS" || (status == "SKIP" && allowed),
            "{line}\n{out}"
        );
    }
}

/// Kills the stamped service when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_stamped_oauth2_service_passes_every_probe() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("probe-target");
    let stamped = common::xtask(&[
        "new",
        "--strategy",
        "oauth2",
        "--name",
        "probe-target",
        "--dest",
        project.to_str().unwrap(),
    ])
    .env("CARGO_NAME", "xtask-tests")
    .output()
    .unwrap();
    assert!(stamped.status.success(), "{}", common::stderr(&stamped));
    // The template harness's target directory and flags, so dependencies
    // built there are reused (slow only the first time).
    let target = repo.join("target").join("stamped");
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .arg("build")
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTFLAGS", "-D warnings")
        .status()
        .unwrap();
    assert!(build.success());

    let mut child = Command::new(target.join("debug").join("probe-target"))
        .current_dir(&project)
        .env("PORT", "0")
        .env("ADMIN_USERNAME", "admin")
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "info")
        .env_remove("SECRET_KEY")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout_pipe = child.stdout.take().unwrap();
    let _running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout_pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let base = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the service says where it listens");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };

    let (output, out) = probe(&base, &project.join(".env"));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{out}{}",
        common::stderr(&output)
    );
    let lines = probe_lines(&out);
    assert!(lines.len() >= 18, "{out}");
    // A throwaway user is no admin: the down-scoped admin probe waits for one.
    assert_all_pass_but(&out, &[DOWN_SCOPED]);
    for name in [
        "GET /users/me without a token",
        "alg=none token",
        "token signed with another key",
        "expired token",
        "access token claims",
        "missing scope",
        "scope the user does not hold",
        "refresh rotation",
        "refresh again within the reuse window",
        "refresh reuse: the newer refresh token",
        "forgot-password: known vs unknown address",
        "POST /auth/logout",
        "after logout: the access token",
    ] {
        assert_eq!(status_of(&out, name), "PASS", "{name}");
    }
    let secret = fs::read_to_string(project.join(".env")).unwrap();
    let secret = secret
        .lines()
        .find_map(|l| l.strip_prefix("SECRET_KEY="))
        .unwrap();
    assert!(!out.contains(secret), "the key is never printed");
    assert!(!out.contains("eyJ"), "no token is printed");

    // As the admin: an admin token asked for `me` only cannot list users.
    let (output, out) = probe_as(&base, &project.join(".env"), "admin", ADMIN_PASSWORD);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{out}{}",
        common::stderr(&output)
    );
    assert_eq!(status_of(&out, DOWN_SCOPED), "PASS", "{out}");
    // The bootstrap admin has no email address to ask a reset for.
    assert_all_pass_but(
        &out,
        &["scope the user does not hold", "forgot-password: known vs"],
    );
    assert!(
        !out.contains(ADMIN_PASSWORD),
        "the password is never printed"
    );

    // --json: the same probes, parseable.
    let output = run(&[
        "validate",
        "--url",
        &base,
        "--env-file",
        project.join(".env").to_str().unwrap(),
        "--json",
    ])
    .0;
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["fail"], 0);
    assert!(report["probes"].as_array().unwrap().iter().all(|p| {
        p["status"] == "PASS"
            || (p["status"] == "SKIP" && p["probe"].as_str().unwrap().starts_with(DOWN_SCOPED))
    }));
}

#[test]
fn a_service_written_from_the_contract_passes() {
    // The probe knows only the contract: a different implementation passes too.
    let secret = auth_kit::random::secret_hex();
    let dir = tempfile::tempdir().unwrap();
    let url = mini_service(&secret, Flaws::default());
    let (output, out) = probe(&url, &env_file(dir.path(), &secret));
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert_all_pass_but(&out, &[DOWN_SCOPED]);
    let (output, out) = probe_as(
        &url,
        &env_file(dir.path(), &secret),
        MINI_ADMIN,
        MINI_ADMIN_PASSWORD,
    );
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert_eq!(status_of(&out, DOWN_SCOPED), "PASS", "{out}");
}

#[test]
fn an_admin_token_that_ignores_its_scope_fails() {
    let secret = auth_kit::random::secret_hex();
    let dir = tempfile::tempdir().unwrap();
    let url = mini_service(
        &secret,
        Flaws {
            admin_ignores_scope: true,
            ..Flaws::default()
        },
    );
    let (output, out) = probe_as(
        &url,
        &env_file(dir.path(), &secret),
        MINI_ADMIN,
        MINI_ADMIN_PASSWORD,
    );
    assert_one_line_error(&output, "1 probe FAILED");
    assert_eq!(status_of(&out, DOWN_SCOPED), "FAIL", "{out}");
    assert!(out.contains("got 200"), "{out}");
}

#[test]
fn passwords_never_come_from_the_command_line() {
    let (output, _) = run(&[
        "validate",
        "--url",
        "http://127.0.0.1:9",
        "--username",
        "admin",
        "--password",
        "hunter2-hunter2",
    ]);
    assert_one_line_error(&output, "VALIDATE_PASSWORD");
    assert!(!common::stderr(&output).contains("hunter2"));
    // No terminal to ask on and no VALIDATE_PASSWORD: one line saying so.
    let output = common::xtask(&[
        "validate",
        "--url",
        "http://127.0.0.1:9",
        "--username",
        "admin",
    ])
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert_one_line_error(&output, "set VALIDATE_PASSWORD");
}

#[test]
fn forgot_password_revealing_unknown_addresses_fails() {
    let secret = auth_kit::random::secret_hex();
    let dir = tempfile::tempdir().unwrap();
    let env = env_file(dir.path(), &secret);
    let revealing = Flaws {
        reveals_unknown_emails: true,
        ..Flaws::default()
    };
    let (output, out) = probe(&mini_service(&secret, revealing), &env);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert_eq!(
        status_of(&out, "forgot-password: known vs unknown address"),
        "FAIL"
    );
    assert!(out.contains("known: 202; unknown: 404"), "{out}");
    let absent = Flaws {
        no_forgot_password: true,
        ..Flaws::default()
    };
    let (output, out) = probe(&mini_service(&secret, absent), &env);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert_eq!(
        status_of(&out, "forgot-password: known vs unknown address"),
        "SKIP"
    );
}

#[test]
fn accepting_expired_tokens_fails() {
    let secret = auth_kit::random::secret_hex();
    let dir = tempfile::tempdir().unwrap();
    let url = mini_service(
        &secret,
        Flaws {
            accepts_expired_tokens: true,
            ..Flaws::default()
        },
    );
    let (output, out) = probe(&url, &env_file(dir.path(), &secret));
    assert_one_line_error(&output, "1 probe FAILED");
    assert_eq!(status_of(&out, "expired token"), "FAIL");
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL  expired token") && l.contains("got 200")),
        "{out}"
    );
    assert_eq!(status_of(&out, "token signed with another key"), "PASS");

    fs::create_dir(dir.path().join("empty")).unwrap();
    // Without the service's key the expired probe cannot run: SKIP, not PASS.
    let (output, out) = probe(&url, &env_file(dir.path(), &auth_kit::random::secret_hex()));
    assert_eq!(status_of(&out, "expired token"), "SKIP", "{out}");
    assert!(
        out.contains("the env file's key is not this service's"),
        "{out}"
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "the claims' signature does not verify with that key"
    );
    // (Run in an empty folder, so no ./.env is picked up.)
    let output = common::xtask(&["validate", "--url", &url])
        .current_dir(dir.path().join("empty"))
        .output()
        .unwrap();
    let out = stdout(&output);
    assert_eq!(status_of(&out, "expired token"), "SKIP", "{out}");
    assert_eq!(output.status.code(), Some(0), "{out}");
}

#[test]
fn a_401_without_a_challenge_fails() {
    let secret = auth_kit::random::secret_hex();
    let dir = tempfile::tempdir().unwrap();
    let url = mini_service(
        &secret,
        Flaws {
            no_challenge: true,
            ..Flaws::default()
        },
    );
    let (output, out) = probe(&url, &env_file(dir.path(), &secret));
    assert_eq!(output.status.code(), Some(1));
    for name in [
        "GET /users/me without a token",
        "garbage bearer token",
        "alg=none token",
        "token signed with another key",
        "expired token",
        "missing scope",
    ] {
        assert_eq!(status_of(&out, name), "FAIL", "{name}: {out}");
    }
    assert!(out.contains("got 401, no WWW-Authenticate"), "{out}");
    assert_eq!(status_of(&out, "POST /token"), "PASS");
}

#[test]
fn granting_unheld_scopes_fails() {
    let secret = auth_kit::random::secret_hex();
    let dir = tempfile::tempdir().unwrap();
    let url = mini_service(
        &secret,
        Flaws {
            grants_unheld_scopes: true,
            ..Flaws::default()
        },
    );
    let (output, out) = probe(&url, &env_file(dir.path(), &secret));
    assert_one_line_error(&output, "1 probe FAILED");
    assert_eq!(status_of(&out, "scope the user does not hold"), "FAIL");
    assert!(out.contains("admin GRANTED"), "{out}");
}

/// A URL that is not a service: one line, exit status 1, promptly.
fn check_unreachable(url: &str, fragment: &str, within: Duration) {
    let (output, took) = run(&["validate", "--url", url]);
    assert_one_line_error(&output, fragment);
    assert!(
        stdout(&output).is_empty(),
        "nothing else: {}",
        stdout(&output)
    );
    assert!(took < within, "{url}: took {took:?}");
}

#[test]
fn unreachable_urls_are_one_line() {
    let port = closed_port();
    check_unreachable(
        &format!("http://127.0.0.1:{port}"),
        "cannot connect",
        Duration::from_secs(5),
    );
    check_unreachable(
        "ftp://x",
        "not an http:// or https:// URL",
        Duration::from_secs(5),
    );
    check_unreachable("not a url", "is not a URL", Duration::from_secs(5));

    // A port that speaks something else (an SSH banner).
    let banner = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = banner.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in banner.incoming().map_while(Result::ok) {
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
        }
    });
    check_unreachable(
        &format!("http://{addr}"),
        "does not answer HTTP",
        Duration::from_secs(5),
    );

    // A port that accepts and then says nothing: the 5 s timeout, no hang.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in silent.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            held.push(stream);
        }
    });
    check_unreachable(
        &format!("http://{addr}"),
        "did not answer within 5 s",
        Duration::from_secs(12),
    );
}

#[test]
fn a_service_without_a_reuse_window_skips_that_probe() {
    let secret = auth_kit::random::secret_hex();
    let dir = tempfile::tempdir().unwrap();
    let url = mini_service(
        &secret,
        Flaws {
            no_reuse_window: true,
            ..Flaws::default()
        },
    );
    let (output, out) = probe(&url, &env_file(dir.path(), &secret));
    assert_eq!(output.status.code(), Some(0), "optional: no FAIL\n{out}");
    assert_eq!(
        status_of(&out, "refresh again within the reuse window"),
        "SKIP"
    );
    assert!(out.contains("no reuse window"), "{out}");
    for name in [
        "refresh rotation",
        "refresh reuse: the newer refresh token",
        "refresh reuse: the login's access token",
    ] {
        assert_eq!(status_of(&out, name), "PASS", "{name}\n{out}");
    }
}

#[test]
fn two_successors_of_one_refresh_token_fail() {
    let secret = auth_kit::random::secret_hex();
    let dir = tempfile::tempdir().unwrap();
    let url = mini_service(
        &secret,
        Flaws {
            second_successor: true,
            ..Flaws::default()
        },
    );
    let (output, out) = probe(&url, &env_file(dir.path(), &secret));
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert_eq!(
        status_of(&out, "refresh again within the reuse window"),
        "FAIL"
    );
    assert_eq!(status_of(&out, "refresh rotation"), "FAIL");
    assert!(out.contains("two live successors"), "{out}");
}
