//! A stamped oauth2 project, moved to a folder with no path back to this
//! repository, runs its own operator tools through its `.cargo/config.toml`
//! alias: `cargo auth validate`, `cargo auth setup-jwt --rotate`,
//! `cargo auth admin reset-password --password-stdin` (against the running
//! service: the old password and the old refresh token stop working, the
//! new password logs in) and `cargo auth kit status`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{stderr, stdout};
use serde_json::{Value, json};

const NAME: &str = "tools-target";

/// The stamped service, killed when the test ends however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cargo <args>` in the project, with the shared target directory and no
/// variable of the developer's shell.
fn cargo(project: &Path, target: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command
        .args(args)
        .current_dir(project)
        .env_clear()
        .env("CARGO_TARGET_DIR", target)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for kept in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
    ] {
        if let Some(value) = std::env::var_os(kept) {
            command.env(kept, value);
        }
    }
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn start(binary: &Path, project: &Path) -> (Running, String) {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .current_dir(project)
        .env("PORT", "0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
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
    (running, base)
}

fn env_value(env: &str, key: &str) -> Option<String> {
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

async fn password_grant(client: &reqwest::Client, base: &str, password: &str) -> (u16, Value) {
    let reply = client
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_moved_stamp_runs_its_own_tools() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let work = tempfile::tempdir().unwrap();
    let stamped_at = work.path().join("first").join(NAME);
    let stamped = common::xtask(&[
        "new",
        "--strategy",
        "oauth2",
        "--name",
        NAME,
        "--dest",
        stamped_at.to_str().unwrap(),
    ])
    .env("CARGO_NAME", "xtask-tests")
    .output()
    .unwrap();
    assert!(stamped.status.success(), "{}", stderr(&stamped));
    // Moved elsewhere: nothing in it may lead back to this repository.
    let project = work.path().join("elsewhere").join(NAME);
    std::fs::create_dir_all(project.parent().unwrap()).unwrap();
    std::fs::rename(&stamped_at, &project).unwrap();
    let repo_path = repo.canonicalize().unwrap().display().to_string();
    let grep = Command::new("grep")
        .args(["-rlF", &repo_path, "."])
        .current_dir(&project)
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "paths to the repository in: {}",
        stdout(&grep)
    );
    // The template harness's target directory: its dependencies are reused.
    let target = repo.join("target").join("stamped");

    let build = cargo(&project, &target, &["build", "--workspace"], None);
    assert!(build.status.success(), "{}", stderr(&build));

    // validate: every check passes on the project as stamped.
    let validate = cargo(&project, &target, &["auth", "validate"], None);
    assert!(
        validate.status.success(),
        "{}{}",
        stdout(&validate),
        stderr(&validate)
    );
    assert!(
        stdout(&validate).contains(" 0 FAIL"),
        "{}",
        stdout(&validate)
    );

    // setup-jwt --rotate: the key moves to the previous slot, a fresh one signs.
    let env_before = std::fs::read_to_string(project.join(".env")).unwrap();
    let rotate = cargo(&project, &target, &["auth", "setup-jwt", "--rotate"], None);
    assert!(rotate.status.success(), "{}", stderr(&rotate));
    let env_after = std::fs::read_to_string(project.join(".env")).unwrap();
    let old_key = env_value(&env_before, "SECRET_KEY").unwrap();
    let new_key = env_value(&env_after, "SECRET_KEY").unwrap();
    assert_ne!(old_key, new_key);
    assert_eq!(new_key.len(), 64);
    assert_eq!(
        env_value(&env_after, "SECRET_KEY_PREVIOUS").as_deref(),
        Some(old_key.as_str())
    );
    assert!(env_value(&env_after, "JWT_KEY_ROTATED_AT").is_some());
    assert!(
        !stdout(&rotate).contains(&new_key),
        "the key is never printed"
    );

    // admin on a database the service never migrated: refused, untouched.
    let refused = cargo(
        &project,
        &target,
        &[
            "auth",
            "admin",
            "reset-password",
            "--username",
            "alice",
            "--password-stdin",
        ],
        Some("a new password\n"),
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("start the service once"),
        "{}",
        stderr(&refused)
    );

    // The service (it migrates at start-up), alice, and her login.
    let binary = target.join("debug").join(NAME);
    let (_service, base) = start(&binary, &project);
    let client = reqwest::Client::new();
    let signup = client
        .post(format!("{base}/auth/signup"))
        .json(&json!({"username": "alice", "password": "the old password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 201);
    let (status, session) = password_grant(&client, &base, "the old password").await;
    assert_eq!(status, 200, "{session}");
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();

    // reset-password, while the service runs.
    let reset = cargo(
        &project,
        &target,
        &[
            "auth",
            "admin",
            "reset-password",
            "--username",
            "alice",
            "--password-stdin",
        ],
        Some("a brand new password\n"),
    );
    assert!(reset.status.success(), "{}", stderr(&reset));
    let said = format!("{}{}", stdout(&reset), stderr(&reset));
    assert!(said.contains("revoked 1 login"), "{said}");
    assert!(
        !said.contains("a brand new password"),
        "never printed: {said}"
    );
    assert!(!said.contains("$argon2"), "never printed: {said}");

    let (status, body) = password_grant(&client, &base, "the old password").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the old password no longer logs in"
    );
    let (status, body) = password_grant(&client, &base, "a brand new password").await;
    assert_eq!(status, 200, "the new password logs in: {body}");
    let reused = client
        .post(format!("{base}/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        reused.status(),
        400,
        "the login before the reset is revoked"
    );

    // A password the kit's rule refuses is refused before anything changes.
    let short = cargo(
        &project,
        &target,
        &[
            "auth",
            "admin",
            "reset-password",
            "--username",
            "alice",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert_eq!(short.status.code(), Some(1));
    assert!(
        stderr(&short).contains("at least 8 characters"),
        "{}",
        stderr(&short)
    );

    // kit status: clean as stamped, then the one file changed.
    let status = cargo(&project, &target, &["auth", "kit", "status"], None);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(stdout(&status).contains("No kit file changed since."));
    let changed = project.join("crates/auth-kit/src/clock.rs");
    let text = std::fs::read_to_string(&changed).unwrap();
    std::fs::write(&changed, format!("// ours\n{text}")).unwrap();
    let status = cargo(&project, &target, &["auth", "kit", "status"], None);
    assert!(
        stdout(&status).lines().any(|l| l
            .split_whitespace()
            .eq(["changed", "crates/auth-kit/src/clock.rs"])),
        "{}",
        stdout(&status)
    );
}
