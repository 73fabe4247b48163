//! A service's `main`, apart from its own settings and start-up: the logs,
//! the exit codes, and serving until Ctrl-C or SIGTERM. Every service's
//! binary does these the same way, whatever its login strategy, so they
//! live here once.
//!
//! Exit codes: [`SETTINGS_REFUSED`] (2) for settings the service refuses,
//! `1` for a start-up or server failure, `0` after a graceful shutdown.
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! use auth_kit::config::{Environment, ServiceSettings};
//! use auth_kit::store::Store;
//!
//! #[tokio::main]
//! async fn main() -> ExitCode {
//!     auth_kit::run::init_logs();
//!     let settings = match Environment::load()
//!         .and_then(|env| ServiceSettings::from_env(&env, "my-api"))
//!     {
//!         Ok(settings) => settings,
//!         Err(e) => return auth_kit::run::settings_refused(&e),
//!     };
//!     let store = match Store::connect(&settings.server.database_url).await {
//!         Ok(store) => store,
//!         Err(e) => return auth_kit::run::start_failed(&e),
//!     };
//!     let router = axum::Router::new();
//!     auth_kit::run::serve_until_shutdown(router, store, &settings.server, &settings.traffic, |addr| {
//!         tracing::info!("listening on http://{addr}")
//!     })
//!     .await
//! }
//! ```

use std::fmt::Display;
use std::net::SocketAddr;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::config::{ServerSettings, TrafficSettings};
use crate::http::{ServeOptions, serve, shutdown_signal};
use crate::store::Store;

/// A started service, as its start-up returns it to `main` and to its
/// tests: every route, documented, with the standard layers, and the
/// database, closed on shutdown by [`serve_until_shutdown`].
#[derive(Debug)]
pub struct App {
    /// Every route.
    pub router: axum::Router,
    /// The database.
    pub store: Store,
}

/// The exit code for settings the service refuses (a typo in `.env` is
/// not a crash: supervisors and scripts can tell the two apart).
pub const SETTINGS_REFUSED: u8 = 2;

/// Logs go to stdout: human-readable, or JSON with LOG_FORMAT=json. RUST_LOG
/// filters (default `info`; refused requests are logged at `debug`).
/// Requests are logged by method, path and client address only
/// ([`crate::http::with_service_layers`]).
pub fn init_logs() {
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

/// Says why the settings were refused (on stderr: the logs may not be
/// read) and returns [`SETTINGS_REFUSED`] for `main` to exit with.
pub fn settings_refused(error: &dyn Display) -> ExitCode {
    eprintln!("configuration error: {error}");
    ExitCode::from(SETTINGS_REFUSED)
}

/// Says why the service could not start, its settings accepted, and
/// returns the failure exit code (1).
pub fn start_failed(error: &dyn Display) -> ExitCode {
    eprintln!("start-up error: {error}");
    ExitCode::FAILURE
}

/// Listens on HOST:PORT, calls `listening` with the bound address (the
/// service logs where it and its docs are, under its own name), serves
/// `router` with [`serve`] until Ctrl-C or SIGTERM ([`shutdown_signal`]),
/// closes `store` and returns the exit code: success after a graceful
/// shutdown, failure when the address cannot be bound (a hint names HOST
/// and PORT) or the server fails.
pub async fn serve_until_shutdown(
    router: axum::Router,
    store: Store,
    server: &ServerSettings,
    traffic: &TrafficSettings,
    listening: impl FnOnce(SocketAddr),
) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(server.listen_addr()).await {
        Ok(listener) => listener,
        Err(e) => {
            return start_failed(&format_args!(
                "cannot listen on {}: {e}; set HOST and PORT to a free address",
                server.listen_addr()
            ));
        }
    };
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| server.listen_addr());
    listening(addr);
    let served = serve(
        listener,
        router,
        ServeOptions::from_settings(traffic),
        shutdown_signal(),
    )
    .await;
    store.close().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}
