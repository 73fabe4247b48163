//! `cargo auth <command>`: see the library's documentation.

use std::process::ExitCode;

fn main() -> ExitCode {
    let outcome = auth_cli::parse_command_line::<auth_cli::Cli>()
        .map_err(anyhow::Error::from)
        .and_then(|cli| auth_cli::run(&cli.command));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
