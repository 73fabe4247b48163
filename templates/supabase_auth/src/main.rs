//! Start-up: configuration (refused settings exit with code 2), logs, and the
//! server (header and request timeouts, client addresses behind
//! TRUSTED_PROXIES) with graceful shutdown on Ctrl-C or SIGTERM, all but
//! the settings and `service::start` done by auth-kit (`auth_kit::run`).

use std::process::ExitCode;

use auth_kit::config::{ConfigError, Environment, ServerSettings, TrafficSettings};
use auth_kit_supabase::SupabaseSettings;

#[tokio::main]
async fn main() -> ExitCode {
    auth_kit::run::init_logs();
    let settings = Environment::load().and_then(|env| -> Result<_, ConfigError> {
        Ok((
            SupabaseSettings::from_env(&env)?,
            ServerSettings::from_env(&env, service::SERVICE_NAME)?,
            TrafficSettings::from_env(&env)?,
        ))
    });
    let (supabase, server, traffic) = match settings {
        Ok(settings) => settings,
        Err(e) => return auth_kit::run::settings_refused(&e),
    };
    let app = match service::start(&supabase, &server, &traffic).await {
        Ok(app) => app,
        Err(e) => return auth_kit::run::start_failed(&e),
    };
    auth_kit::run::serve_until_shutdown(app.router, app.store, &server, &traffic, |addr| {
        tracing::info!(
            "listening on http://{addr} (API docs: http://{addr}/docs), Supabase Auth at {}",
            supabase.auth_url()
        );
    })
    .await
}
