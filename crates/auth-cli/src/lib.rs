//! The operator tools of a service built on auth-kit, run as
//! `cargo auth <command>` (an alias in the project's `.cargo/config.toml`):
//!
//! - `setup-jwt`: write a fresh signing key into the env file, or rotate it;
//! - `validate`: check a configuration, or probe a running service (`--url`);
//! - `admin create | reset-password | promote`: on the database directly,
//!   the way back in when every admin is locked out;
//! - `kit status | diff`: which files of the copied kit the project changed.
//!
//! This repository's `cargo auth setup-jwt` and `cargo auth validate` run
//! this same code. Every failure is one line naming the problem and the
//! fix, and a non-zero exit.

use anyhow::Result;
use clap::{Parser, Subcommand};

pub mod admin;
pub mod kit;
pub mod setup_jwt;
pub mod validate;

/// `cargo auth`'s command line.
#[derive(Parser, Debug)]
#[command(
    name = "cargo auth",
    about = "The operator tools of this service: signing keys, configuration checks, admin accounts, the kit's provenance."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// One tool.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a fresh signing key (SECRET_KEY, or a key pair) into an env file, or rotate it.
    SetupJwt(setup_jwt::SetupJwtArgs),
    /// Check a configuration (PASS/WARN/FAIL with the fix), or probe a running service with --url.
    Validate(validate::ValidateArgs),
    /// Create an admin, set a user's password, or make a user an admin, on DATABASE_URL directly.
    Admin(admin::AdminArgs),
    /// The copied auth kit: which of its files this project changed, and how.
    Kit(kit::KitArgs),
}

/// Runs one tool.
pub fn run(command: &Command) -> Result<()> {
    match command {
        Command::SetupJwt(args) => setup_jwt::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Admin(args) => admin::run(args),
        Command::Kit(args) => kit::run(args),
    }
}
