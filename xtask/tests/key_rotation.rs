//! `cargo xtask setup-jwt --rotate` against a real stamped service: a token
//! signed before the rotation is accepted after a restart with the rotated
//! configuration, and one signed with a key that is neither current nor
//! previous is refused; HS256 and ES256.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Map, Value, json};

const NAME: &str = "rotation-target";

/// The stamped service, killed when the test ends however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the stamped binary in `project` (it reads `./.env`); its base URL.
fn start(binary: &Path, project: &Path) -> (Running, String) {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .current_dir(project)
        .env("PORT", "0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
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

fn setup_jwt(env_file: &Path, extra: &[&str]) {
    let mut args = vec!["setup-jwt", "--env-file", env_file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (output, _) = common::run(&args);
    assert!(output.status.success(), "{}", common::stderr(&output));
}

async fn login(client: &reqwest::Client, base: &str) -> String {
    let reply = client
        .post(format!("{base}/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password&username=rotor&password=correct+horse+battery")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// GET /users/me with `token`: the status and the error description.
async fn me(client: &reqwest::Client, base: &str, token: &str) -> (u16, String) {
    let reply = client
        .get(format!("{base}/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = reply.status().as_u16();
    let body: Value = reply.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error_description"].as_str().unwrap_or("").to_owned(),
    )
}

fn parts(token: &str) -> (Map<String, Value>, Map<String, Value>) {
    let mut segments = token.split('.');
    let mut decode = || -> Map<String, Value> {
        serde_json::from_slice(&B64.decode(segments.next().unwrap()).unwrap()).unwrap()
    };
    (decode(), decode())
}

/// `token`'s claims, signed with `key` and naming `kid`.
fn resign(token: &str, kid: &str, key: &EncodingKey) -> String {
    let (header, claims) = parts(token);
    let mut forged = Header::new(header["alg"].as_str().unwrap().parse().unwrap());
    forged.typ = Some("at+jwt".to_owned());
    forged.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&forged, &claims, key).unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/auth-kit/tests/fixtures")
        .join(name)
}

/// One rotation: log in, rotate, restart, and check the old token and a
/// stranger's. `stranger` is a key the service never had, with its kid.
async fn rotate_and_check(
    binary: &Path,
    project: &Path,
    stranger: (&EncodingKey, &str),
    first_run: bool,
) {
    let client = reqwest::Client::new();
    let env_file = project.join(".env");
    let (service, base) = start(binary, project);
    if first_run {
        let signup = client
            .post(format!("{base}/auth/signup"))
            .json(&json!({"username": "rotor", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(signup.status(), 201);
    }
    let before = login(&client, &base).await;
    let old_kid = parts(&before).0["kid"].as_str().unwrap().to_owned();
    assert_eq!(me(&client, &base, &before).await.0, 200);
    drop(service);

    setup_jwt(&env_file, &["--rotate"]);
    let (_service, base) = start(binary, project);
    let (status, why) = me(&client, &base, &before).await;
    assert_eq!(status, 200, "the token signed before the rotation: {why}");
    let after = login(&client, &base).await;
    let (header, _) = parts(&after);
    assert_ne!(header["kid"].as_str().unwrap(), old_kid, "a new key signs");
    assert_eq!(me(&client, &base, &after).await.0, 200);

    let (key, kid) = stranger;
    let (status, why) = me(&client, &base, &resign(&before, kid, key)).await;
    assert_eq!(
        (status, why.as_str()),
        (401, "The access token was signed with an unknown key")
    );
    let (status, why) = me(&client, &base, &resign(&before, &old_kid, key)).await;
    assert_eq!(
        (status, why.as_str()),
        (401, "The access token signature is invalid"),
        "a stranger's key naming the previous kid"
    );
    if header["alg"] != "HS256" {
        let jwks: Value = client
            .get(format!("{base}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [header["kid"].as_str().unwrap(), old_kid.as_str()]);
    }
}

#[tokio::test]
async fn a_token_signed_before_a_rotation_is_accepted_after_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join(NAME);
    let stamped = common::xtask(&[
        "new",
        "--strategy",
        "jwt",
        "--name",
        NAME,
        "--dest",
        project.to_str().unwrap(),
    ])
    .env("CARGO_NAME", "xtask-tests")
    .output()
    .unwrap();
    assert!(stamped.status.success(), "{}", common::stderr(&stamped));
    // The template harness's target directory, so dependencies built there
    // are reused.
    let target = repo.join("target").join("stamped");
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .arg("build")
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTFLAGS", "-D warnings")
        .status()
        .unwrap();
    assert!(build.success());
    let binary = target.join("debug").join(NAME);

    // HS256, with the SECRET_KEY `cargo xtask new` wrote.
    let stranger_secret = auth_kit::random::secret_hex();
    let stranger_kid = auth_kit::token::SigningKeys::hmac(
        auth_kit::token::SigningAlgorithm::HS256,
        stranger_secret.as_bytes(),
    )
    .unwrap()
    .kid()
    .to_owned();
    let stranger = EncodingKey::from_secret(stranger_secret.as_bytes()).unwrap();
    rotate_and_check(&binary, &project, (&stranger, &stranger_kid), true).await;

    // ES256: a fresh key pair (everyone logs in again), then a rotation.
    setup_jwt(&project.join(".env"), &["--algorithm", "ES256", "--force"]);
    let stranger_pem = std::fs::read(fixture("es256-other-private.pem")).unwrap();
    let stranger_kid = auth_kit::token::SigningKeys::from_pem(
        auth_kit::token::SigningAlgorithm::ES256,
        &stranger_pem,
        &std::fs::read(fixture("es256-other-public.pem")).unwrap(),
    )
    .unwrap()
    .kid()
    .to_owned();
    let stranger = EncodingKey::from_ec_pem(&stranger_pem).unwrap();
    rotate_and_check(&binary, &project, (&stranger, &stranger_kid), false).await;
}
