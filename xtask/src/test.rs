//! `cargo xtask test` and `cargo xtask test-templates`.
//!
//! The template harness stamps every template into target/template-tests,
//! checks that the stamped workspace has no path back into this repository,
//! then builds it with warnings denied, lints it, runs its own tests and
//! the kit's copied tests (`cargo test --workspace`, as its user would),
//! and clicks through its Swagger UI in a real browser. All stamped projects
//! share target/stamped, so dependencies build once.
//!
//! The copies of a kit crate are the same in every stamp: with
//! `STAMP_KIT_TESTS=once` (CI sets it) each crate's tests run in the first
//! stamp that carries it and are left out (`--exclude`) of the next ones.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::new::{self, Strategy};
use crate::repo;

/// Arguments of `cargo xtask test-templates`.
#[derive(clap::Args, Debug)]
pub struct TestTemplatesArgs {
    /// Only these strategies (default: every template that exists).
    #[arg(long = "strategy", value_enum)]
    pub strategies: Vec<Strategy>,
}

/// Every test: the templates', the fleet test, then the workspace's. In that order because
/// building the workspace's tests relinks this very binary (dev-dependency
/// features unify into the build), and stamping re-runs this binary.
pub fn run_all() -> Result<()> {
    run_templates(&TestTemplatesArgs {
        strategies: Vec::new(),
    })?;
    crate::fleet::run(&crate::fleet::FleetTestArgs { keep: false })?;
    cargo(
        repo::root(),
        &["test", "--workspace", "--all-features"],
        &[],
    )
}

pub fn run_templates(args: &TestTemplatesArgs) -> Result<()> {
    let strategies = if args.strategies.is_empty() {
        Strategy::ALL
            .into_iter()
            .filter(|s| s.template_dir().exists())
            .collect()
    } else {
        args.strategies.clone()
    };
    let kit_tests_once = std::env::var_os("STAMP_KIT_TESTS").is_some_and(|v| v == "once");
    let mut kit_tested: Vec<&str> = Vec::new();
    let mut report = Vec::new();
    for strategy in strategies {
        let name = format!("stamped-{}", strategy.name());
        let dest = repo::root()
            .join("target")
            .join("template-tests")
            .join(&name);
        let started = Instant::now();
        new::stamp(strategy, &name, &dest, true)?;
        let stamp_time = started.elapsed();
        check_standalone(&dest)?;
        // The project is formatted as `cargo fmt` leaves it, and `cargo fmt`
        // runs there at all (it follows every `mod`, whatever its `cfg`).
        cargo(&dest, &["fmt", "--all", "--check"], &[])?;
        // Warnings are errors for the stamped crates (dependencies are capped by cargo).
        let deny = [("RUSTFLAGS", "-D warnings")];
        let build = timed(|| cargo(&dest, &["build", "--all-targets"], &deny))?;
        let lint = timed(|| {
            cargo(
                &dest,
                &["clippy", "--all-targets", "--", "-D", "warnings"],
                &deny,
            )
        })?;
        // The whole workspace: the service's tests and the copied kit's.
        let mut test_args = vec!["test", "--workspace"];
        for krate in auth_cli::kit::kit_crates(strategy.name()) {
            if kit_tests_once && kit_tested.contains(krate) {
                test_args.extend(["--exclude", krate]);
            } else {
                kit_tested.push(krate);
            }
        }
        let test = timed(|| cargo(&dest, &test_args, &deny))?;
        let browser = match strategy {
            // The supabase service's Authorize dialog needs a Supabase Auth
            // to log in against; its check runs with gotrue-stub in its tests.
            Strategy::Supabase => 0.0,
            _ => timed(|| {
                crate::browser::check_swagger_ui(
                    &repo::stamped_target_dir().join("debug").join(&name),
                    &dest,
                )
            })?,
        };
        report.push(format!(
            "{:<9} stamp {:>5.1}s  build {:>6.1}s  clippy {:>6.1}s  test {:>6.1}s  browser {:>5.1}s",
            strategy.name(),
            stamp_time.as_secs_f64(),
            build,
            lint,
            test,
            browser
        ));
    }
    println!("\ntemplate tests passed:\n{}", report.join("\n"));
    Ok(())
}

fn timed(step: impl FnOnce() -> Result<()>) -> Result<f64> {
    let started = Instant::now();
    step()?;
    Ok(started.elapsed().as_secs_f64())
}

/// Runs cargo in `dir`, stamped projects sharing one target directory.
fn cargo(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command.args(args).current_dir(dir);
    if dir != repo::root() {
        command.env("CARGO_TARGET_DIR", repo::stamped_target_dir());
    }
    for (key, value) in env {
        command.env(key, value);
    }
    println!("--> cargo {} (in {})", args.join(" "), dir.display());
    let status = command.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed in {}", args.join(" "), dir.display());
    }
    Ok(())
}

/// Every package and path dependency of the stamped workspace lives inside it.
fn check_standalone(project: &Path) -> Result<()> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(project)
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed in {}: {}",
            project.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata = String::from_utf8_lossy(&output.stdout);
    let project = project.canonicalize()?;
    let repo_root = repo::root().canonicalize()?;
    // Absolute paths in the metadata: every one must be inside the project.
    for path in metadata.split('"').filter(|s| s.starts_with('/')) {
        let path = Path::new(path);
        if path.starts_with(&repo_root)
            && !path.starts_with(&project)
            && !path.starts_with(repo::stamped_target_dir())
        {
            bail!(
                "the stamped project refers back into this repository: {}",
                path.display()
            );
        }
    }
    Ok(())
}
