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

use std::fmt;

use anyhow::Result;
use clap::error::ErrorKind;
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

/// A command-line value outside its closed set (a `--strategy`, an
/// `--algorithm`), as one line: the value, the option and the possible values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue(String);

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidValue {}

/// The process's command line as `C`. A value outside its closed set is an
/// [`InvalidValue`], so that it fails like every other failure of these
/// tools (one line, exit status 1); help, `--version` and the other usage
/// errors are clap's own, and exit here.
pub fn parse_command_line<C: Parser>() -> Result<C, InvalidValue> {
    match C::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) if e.kind() == ErrorKind::InvalidValue => Err(invalid_value(&e)),
        Err(e) => e.exit(),
    }
}

/// clap's message without its "error: " prefix and its "--help" pointer,
/// its lines (the possible values, a similar value) joined.
fn invalid_value(error: &clap::Error) -> InvalidValue {
    let rendered = error.render().to_string();
    let lines: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .collect();
    let joined = lines.join(" ");
    InvalidValue(
        joined
            .strip_prefix("error: ")
            .map_or_else(|| joined.clone(), str::to_owned),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_are_one_line() {
        let error = Cli::try_parse_from(["cargo-auth", "setup-jwt", "--algorithm", "none"])
            .expect_err("none is no algorithm");
        assert_eq!(
            invalid_value(&error).to_string(),
            "invalid value 'none' for '--algorithm <ALGORITHM>' [possible values: HS256, HS384, HS512, RS256, ES256, EdDSA]"
        );
    }
}
