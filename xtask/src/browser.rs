//! The Swagger UI check in a real browser: start a stamped service, then let
//! `browser/swagger_check.mjs` (playwright-core driving Debian's Chromium)
//! click through Authorize and "Try it out".
//!
//! Without Chromium the check is skipped with a line saying so, unless
//! `REQUIRE_BROWSER_CHECK=1` (CI sets it), which turns the skip into a failure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::repo;

const CHROMIUM: &str = "/usr/bin/chromium";
const ADMIN: &str = "swagger-admin";

/// Runs the check against the stamped service `binary` (run in `project`).
pub fn check_swagger_ui(binary: &Path, project: &Path) -> Result<()> {
    let chromium =
        std::env::var("CHROMIUM").map_or_else(|_| PathBuf::from(CHROMIUM), PathBuf::from);
    if !chromium.exists() || Command::new("node").arg("--version").output().is_err() {
        if std::env::var("REQUIRE_BROWSER_CHECK").is_ok_and(|v| v == "1") {
            bail!(
                "the Swagger UI check needs Chromium at {} and Node.js (apt-get install chromium nodejs)",
                chromium.display()
            );
        }
        println!(
            "SKIP  Swagger UI browser check: no Chromium at {} or no Node.js (apt-get install chromium)",
            chromium.display()
        );
        return Ok(());
    }
    let driver = repo::root().join("xtask").join("browser");
    if !driver.join("node_modules").join("playwright-core").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&driver)
            .status()
            .context("cannot run npm")?;
        if !status.success() {
            bail!("`npm ci` failed in {}", driver.display());
        }
    }
    let password = format!("pw-{}", &auth_kit::random::secret_hex()[..16]);
    let mut service = Service::start(binary, project, &password)?;
    let outcome = Command::new("node")
        .arg("swagger_check.mjs")
        .args([service.base.as_str(), ADMIN, password.as_str()])
        .env("CHROMIUM", &chromium)
        .current_dir(&driver)
        .status()
        .context("cannot run node");
    service.stop();
    if !outcome?.success() {
        bail!("the Swagger UI check failed against {}", binary.display());
    }
    Ok(())
}

/// A stamped service running on a free port with a bootstrap admin.
struct Service {
    child: Child,
    base: String,
}

impl Service {
    fn start(binary: &Path, project: &Path, password: &str) -> Result<Self> {
        let database = format!("sqlite://{}/swagger-check.db?mode=rwc", project.display());
        let mut child = Command::new(binary)
            .current_dir(project)
            .envs([
                ("PORT", "0"),
                ("DATABASE_URL", database.as_str()),
                ("ADMIN_USERNAME", ADMIN),
                ("ADMIN_PASSWORD", password),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => Ok(Self { child, base }),
            Err(_) => {
                let _ = child.kill();
                bail!("{} did not start listening within 60s", binary.display())
            }
        }
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
