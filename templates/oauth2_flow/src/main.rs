//! Start-up: configuration (refused settings exit with code 2), logs, and the
//! server (header and request timeouts, client addresses behind
//! TRUSTED_PROXIES) with graceful shutdown on Ctrl-C or SIGTERM.

use std::process::ExitCode;

use auth_kit::config::{Environment, ServiceSettings};
use auth_kit::http::ServeOptions;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    init_logs();
    let settings = match Environment::load()
        .and_then(|env| ServiceSettings::from_env(&env, service::SERVICE_NAME))
    {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let app = match service::App::start(&settings).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("start-up error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(settings.server.listen_addr()).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "start-up error: cannot listen on {}: {e}; set HOST and PORT to a free address",
                settings.server.listen_addr()
            );
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| settings.server.listen_addr());
    tracing::info!("listening on http://{addr} (API docs: http://{addr}/docs)");
    let served = auth_kit::http::serve(
        listener,
        app.router,
        ServeOptions::from_settings(&settings.traffic),
        auth_kit::http::shutdown_signal(),
    )
    .await;
    app.store.close().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stdout: human-readable, or JSON with LOG_FORMAT=json. RUST_LOG
/// filters (default `info`; refused requests are logged at `debug`).
/// Requests are logged by method, path and client address only.
fn init_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal, never in files or pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        logs.json().init();
    } else {
        logs.init();
    }
}
