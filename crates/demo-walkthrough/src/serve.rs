//! What an example's `main` does around its own start-up: HOST and PORT,
//! the banner, and serving until Ctrl-C or SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

/// HOST and PORT from the environment (default 127.0.0.1:8000; PORT=0
/// picks a free port); nothing else about a demo is configurable.
pub fn listen_addr() -> Result<SocketAddr, String> {
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

/// Listens on `addr`, prints `banner` of the base URL it listens on (the
/// walkthrough's curl commands), and serves `router`, with client
/// addresses for the login limiter, until Ctrl-C or SIGTERM. Returns the
/// exit code: success after a graceful shutdown, failure when the address
/// cannot be bound or the server fails.
pub async fn serve(
    addr: SocketAddr,
    router: axum::Router,
    banner: impl FnOnce(&str) -> String,
) -> ExitCode {
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
    println!("{}", banner(&base_url));
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(auth_kit::http::shutdown_signal())
        .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves `router` on 127.0.0.1, on a free port, as [`serve`] does (with
/// client addresses), for as long as the test's runtime lives, and keeps
/// `owner` (what the router needs alive, such as a demo's temporary
/// database) as long; the base URL (`http://127.0.0.1:<port>`).
///
/// # Panics
/// When no loopback port can be bound.
#[cfg(feature = "replay")]
pub async fn serve_on_loopback(router: axum::Router, owner: impl Send + 'static) -> String {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("cannot bind a port on 127.0.0.1");
    let address = listener
        .local_addr()
        .expect("a bound listener has an address");
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        let _owner = owner;
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("server error: {e}");
        }
    });
    format!("http://{address}")
}
