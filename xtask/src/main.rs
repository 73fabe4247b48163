//! `cargo xtask`: the scaffolder, its upgrades, and the test and load harnesses.
//! The operator tools (`setup-jwt`, `validate`) are auth-cli's, the code
//! stamped projects run as `cargo auth`.
//!
//! Plain Rust, one module per subcommand. Every failure prints one line
//! naming the problem and the fix, and exits non-zero.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod browser;
mod demo;
mod fleet;
mod load;
mod new;
mod repo;
mod settings;
mod templates;
mod test;
mod upgrade;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Stamp out authenticated axum services, and check them."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stamp a new service from a template into a standalone workspace.
    New(new::NewArgs),
    /// Stamp the oauth2 template as `demo-api` under target/ and run it on its defaults.
    Demo(demo::DemoArgs),
    /// Run every test: the workspace's, then each template stamped and built.
    Test,
    /// Stamp every template, then build (warnings denied), lint and test each.
    TestTemplates(test::TestTemplatesArgs),
    /// Two instances of a stamped oauth2 service behind nginx, on one PostgreSQL and one Redis.
    FleetTest(fleet::FleetTestArgs),
    /// Load figures (wrk): a stamped service alone or as a fleet, beside the FastAPI peer.
    Load(load::LoadArgs),
    /// Write the files the jwt and supabase templates take from templates/oauth2_flow, their one source, into their folders, or one whole template into --out (--check: only check the edits and what git tracks).
    Templates(templates::TemplatesArgs),
    /// Write the settings tables of the docs from the settings catalogue (--check: only compare).
    Settings(settings::SettingsArgs),
    /// Bring a stamped project's kit to this repository's current one (three-way merges).
    Upgrade(upgrade::UpgradeArgs),
    /// Write a fresh signing key (SECRET_KEY, or a key pair) into an env file (= `cargo auth setup-jwt`).
    SetupJwt(auth_cli::setup_jwt::SetupJwtArgs),
    /// Check a configuration, or probe a running service with --url (= `cargo auth validate`).
    Validate(auth_cli::validate::ValidateArgs),
    /// cargo-generate's own command line (`cargo generate ...`), from its library.
    #[command(hide = true)]
    Generate {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = match auth_cli::parse_command_line::<Cli>() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command {
        Command::New(args) => new::run(&args).map(|_| ()),
        Command::Demo(args) => demo::run(&args),
        Command::Test => test::run_all(),
        Command::TestTemplates(args) => test::run_templates(&args),
        Command::FleetTest(args) => fleet::run(&args),
        Command::Load(args) => load::run(&args),
        Command::Templates(args) => templates::run(&args),
        Command::Settings(args) => settings::run(&args),
        Command::Upgrade(args) => upgrade::run(&args),
        Command::SetupJwt(args) => auth_cli::setup_jwt::run(&args),
        Command::Validate(args) => auth_cli::validate::run(&args),
        Command::Generate { args } => new::generate(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
