//! `cargo auth <command>`: see the library's documentation.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = auth_cli::Cli::parse();
    match auth_cli::run(&cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
