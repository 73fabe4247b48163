//! Start-up: configuration (refused settings exit with code 2), logs, and the
//! server (header and request timeouts, client addresses behind
//! TRUSTED_PROXIES) with graceful shutdown on Ctrl-C or SIGTERM, all but
//! the settings and `service::start` done by auth-kit (`auth_kit::run`).

use std::process::ExitCode;

use auth_kit::config::{Environment, ServiceSettings};

#[tokio::main]
async fn main() -> ExitCode {
    auth_kit::run::init_logs();
    let settings = match Environment::load()
        .and_then(|env| ServiceSettings::from_env(&env, service::SERVICE_NAME))
    {
        Ok(settings) => settings,
        Err(e) => return auth_kit::run::settings_refused(&e),
    };
    let app = match service::start(&settings).await {
        Ok(app) => app,
        Err(e) => return auth_kit::run::start_failed(&e),
    };
    let (server, traffic) = (&settings.server, &settings.traffic);
    auth_kit::run::serve_until_shutdown(app.router, app.store, server, traffic, |addr| {
        tracing::info!("listening on http://{addr} (API docs: http://{addr}/docs)");
    })
    .await
}
