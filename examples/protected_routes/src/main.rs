//! `cargo run -p protected-routes`: starts the demo on HOST:PORT
//! (default 127.0.0.1:8000; PORT=0 picks a free port) and prints the curl
//! commands that show every route's answers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use protected_routes::{Demo, walkthrough};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = match listen_addr() {
        Ok(addr) => addr,
        Err(problem) => {
            eprintln!("{problem}");
            return ExitCode::from(2);
        }
    };

    let demo = Demo::start().await;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e} (set PORT to a free port, or PORT=0)");
            return ExitCode::FAILURE;
        }
    };
    let base_url = match listener.local_addr() {
        Ok(bound) => format!("http://{bound}"),
        Err(_) => format!("http://{addr}"),
    };
    println!("{}", walkthrough::banner(&base_url));

    let app = demo
        .router
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(auth_kit::http::shutdown_signal())
        .await;
    // Closing removes the temporary database, so nothing is left behind.
    demo.close().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// HOST and PORT from the environment; nothing else is configurable.
fn listen_addr() -> Result<SocketAddr, String> {
    let host = match std::env::var("HOST") {
        Ok(raw) => raw
            .parse::<IpAddr>()
            .map_err(|_| format!("HOST must be an IP address, e.g. 127.0.0.1 (got {raw:?})"))?,
        Err(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let port = match std::env::var("PORT") {
        Ok(raw) => raw
            .parse::<u16>()
            .map_err(|_| format!("PORT must be 0 to 65535 (got {raw:?})"))?,
        Err(_) => 8000,
    };
    Ok(SocketAddr::new(host, port))
}
